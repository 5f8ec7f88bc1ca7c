//! The SELinux policy module, without an enforcing kernel: built the way
//! `make selinux` builds it (the reference policy's development Makefile),
//! loaded into a scratch copy of the machine's policy store (never the
//! machine's own), and queried with sesearch/seinfo: each rule ecp needs is
//! there, and what ecpd must not do is not allowed.
//!
//! What only an enforcing Fedora/RHEL host can confirm (Fedora's own
//! domain names, denials at run time) is the README's checklist.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use ecp_tests::Run;

const DEVEL_MAKEFILE: &str = "/usr/share/selinux/devel/Makefile";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn sh(program: &str, args: &[&str]) -> Run {
    ecp_tests::run(Path::new(program), args)
}

/// The scratch store with ecp loaded, made once per test process.
struct Store {
    _dir: tempfile::TempDir,
    root: PathBuf,
    policy: String,
}

fn store() -> &'static Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE.get_or_init(|| {
        assert!(
            Path::new(DEVEL_MAKEFILE).exists(),
            "{DEVEL_MAKEFILE} missing: scripts/deps.sh installs selinux-policy-dev"
        );
        let dir = tempfile::Builder::new()
            .prefix("ecp-selinux-")
            .tempdir()
            .unwrap();
        let build = dir.path().join("build");
        std::fs::create_dir_all(&build).unwrap();
        for file in ["ecp.te", "ecp.fc", "ecp.if"] {
            std::fs::copy(
                repo().join("packaging/selinux").join(file),
                build.join(file),
            )
            .unwrap();
        }
        let made = Command::new("make")
            .args(["-s", "-f", DEVEL_MAKEFILE, "ecp.pp"])
            .current_dir(&build)
            .output()
            .unwrap();
        let made = Run::from_output("make -f …/devel/Makefile ecp.pp", made);
        assert_eq!(made.code, 0, "the module does not build: {}", made.stdout);

        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("var/lib")).unwrap();
        sh(
            "/bin/cp",
            &["-a", "/etc/selinux", &format!("{}/etc/", root.display())],
        )
        .ok();
        sh(
            "/bin/cp",
            &[
                "-a",
                "/var/lib/selinux",
                &format!("{}/var/lib/", root.display()),
            ],
        )
        .ok();
        sh(
            "/usr/sbin/semodule",
            &[
                "-n",
                "-p",
                root.to_str().unwrap(),
                "-i",
                build.join("ecp.pp").to_str().unwrap(),
            ],
        )
        .ok();
        let policy_dir = root.join("etc/selinux/default/policy");
        let policy = std::fs::read_dir(&policy_dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("policy."))
            })
            .expect("a compiled policy in the scratch store");
        Store {
            policy: policy.to_str().unwrap().to_owned(),
            root,
            _dir: dir,
        }
    })
}

/// sesearch's answer on the scratch policy: `kind` is -A (allow rules)
/// or -T (type transitions), `args` the query.
fn sesearch(kind: &str, args: &[&str]) -> String {
    let mut all = vec![kind];
    all.extend_from_slice(args);
    all.push(&store().policy);
    sh("/usr/bin/sesearch", &all).ok()
}

/// The allow rules sesearch finds for `args`, one per line.
fn allows(args: &[&str]) -> Vec<String> {
    sesearch("-A", args)
        .lines()
        .map(str::to_owned)
        .filter(|l| l.starts_with("allow"))
        .collect()
}

/// Whether `source` may `perm` on `target`'s `class`: any rule, under a
/// boolean or not.
fn may(source: &str, target: &str, class: &str, perm: &str) -> bool {
    !allows(&["-s", source, "-t", target, "-c", class, "-p", perm]).is_empty()
}

/// The type transition rules sesearch finds for `args`.
fn transitions(args: &[&str]) -> String {
    sesearch("-T", args)
}

#[test]
fn the_module_declares_its_types_and_a_boolean_off_by_default() {
    let store = store();
    for ty in [
        "ecpd_t",
        "ecpd_exec_t",
        "ecpd_conf_t",
        "ecpd_var_lib_t",
        "ecp_home_t",
    ] {
        let out = sh("/usr/bin/seinfo", &["-t", ty, &store.policy]).ok();
        assert!(
            out.contains(&format!("   {ty}")),
            "type {ty} missing: {out}"
        );
    }
    let out = sh(
        "/usr/bin/seinfo",
        &["-b", "ecpd_can_network_connect_ldap", "-x", &store.policy],
    )
    .ok();
    assert!(
        out.contains("ecpd_can_network_connect_ldap") && out.contains("false"),
        "boolean missing or on by default: {out}"
    );
    // systemd starts ecpd into its domain.
    let out = transitions(&["-s", "init_t", "-t", "ecpd_exec_t", "-c", "process"]);
    assert!(
        out.contains("ecpd_t"),
        "no transition init_t → ecpd_t: {out}"
    );
}

#[test]
fn ecpd_owns_its_name_reads_its_config_and_writes_only_its_store() {
    assert!(may("ecpd_t", "system_dbusd_t", "dbus", "acquire_svc"));
    assert!(may("ecpd_t", "ecpd_conf_t", "file", "read"));
    assert!(!may("ecpd_t", "ecpd_conf_t", "file", "write"));
    for perm in ["write", "create", "unlink", "rename"] {
        assert!(
            may("ecpd_t", "ecpd_var_lib_t", "file", perm),
            "ecpd cannot {perm} its store"
        );
    }
    // Nothing else on the disk is writable: every file or directory
    // ecpd_t may write is its store (or its own /proc files, or systemd's
    // journal memory files it inherits and cannot open).
    for class in ["file", "dir"] {
        for rule in allows(&["-s", "ecpd_t", "-c", class, "-p", "write"]) {
            assert!(
                rule.contains("ecpd_var_lib_t")
                    || rule.contains(" ecpd_t:")
                    || (rule.contains(" init_tmpfs_t:") && !rule.contains(" open")),
                "ecpd may write more than its store: {rule}"
            );
        }
    }
}

#[test]
fn ecpd_reads_no_home_files_and_reaches_ldap_only_behind_the_boolean() {
    // No class at all: files, directories, links, sockets.
    for ty in [
        "user_home_t",
        "user_home_dir_t",
        "ecp_home_t",
        "xdg_config_t",
        "user_tmp_t",
    ] {
        let rules = allows(&["-s", "ecpd_t", "-t", ty]);
        assert!(rules.is_empty(), "ecpd may touch {ty}: {rules:?}");
    }
    let ldap = allows(&[
        "-s",
        "ecpd_t",
        "-t",
        "ldap_port_t",
        "-c",
        "tcp_socket",
        "-p",
        "name_connect",
    ]);
    assert!(!ldap.is_empty(), "no rule for LDAP at all");
    for rule in &ldap {
        assert!(
            rule.contains("[ ecpd_can_network_connect_ldap ]:True"),
            "LDAP reachable without the boolean: {rule}"
        );
    }
    // No network connection of any other kind, boolean or not.
    for rule in allows(&["-s", "ecpd_t", "-c", "tcp_socket", "-p", "name_connect"]) {
        assert!(
            rule.contains("ldap_port_t") || rule.contains("dns_port_t"),
            "ecpd may connect elsewhere: {rule}"
        );
        assert!(rule.contains("ecpd_can_network_connect_ldap"), "{rule}");
    }
}

#[test]
fn the_login_programs_may_call_ecpd_and_read_only_the_key_directory() {
    // The PAM stacks that run pam_ecp: sshd, console and remote login,
    // sudo, su, display managers and screen lockers, polkit; users
    // (ecpctl, screen lockers running as the user).
    for caller in [
        "sshd_t",
        "local_login_t",
        "remote_login_t",
        "sudodomain",
        "user_su_t",
        "staff_su_t",
        "sysadm_su_t",
        "xdm_t",
        "policykit_t",
        "policykit_auth_t",
        "userdomain",
    ] {
        assert!(
            may(caller, "ecpd_t", "dbus", "send_msg"),
            "{caller} cannot call ecpd"
        );
        assert!(
            may("ecpd_t", caller, "dbus", "send_msg"),
            "ecpd cannot answer {caller}"
        );
    }
    // sshd never reads a key file: a remote person's key is not on the
    // server.
    assert!(!may("sshd_t", "ecp_home_t", "file", "read"));
    // sudo with mode=agent reaches the agent sshd forwarded.
    assert!(may(
        "sudodomain",
        "sshd_t",
        "unix_stream_socket",
        "connectto"
    ));
    // Key-file mode reads ~/.config/ecp in local login domains: that
    // type, read-only. (The reference policy's xdm_t manages all of a
    // user's home already; nothing ecp adds.)
    for domain in [
        "local_login_t",
        "sudodomain",
        "xdm_t",
        "user_su_t",
        "policykit_auth_t",
    ] {
        assert!(may(domain, "ecp_home_t", "file", "read"));
        assert!(
            !may(domain, "ecp_home_t", "file", "write") || domain == "xdm_t",
            "{domain} may write key files"
        );
    }
    // The way there: search ~/.config, not read it.
    assert!(may("local_login_t", "xdg_config_t", "dir", "search"));
    // ecpd answers unconfined callers (replies are checked too).
    assert!(may("ecpd_t", "unconfined_t", "dbus", "send_msg"));
    // The user's own programs keep managing their key directory, and a
    // new one is labelled ecp_home_t from the start.
    assert!(may("user_t", "ecp_home_t", "file", "write"));
    let out = transitions(&["-s", "user_t", "-t", "xdg_config_t", "-c", "dir"]);
    assert!(out.contains("ecp_home_t ecp"), "{out}");
}

#[test]
fn file_contexts_label_the_daemon_its_files_and_key_directories() {
    let files = store().root.join("etc/selinux/default/contexts/files");
    let contexts = std::fs::read_to_string(files.join("file_contexts")).unwrap();
    for (path, ty) in [
        ("/usr/sbin/ecpd\t--", "ecpd_exec_t"),
        ("/etc/ecp(/.*)?", "ecpd_conf_t"),
        ("/var/lib/ecpd(/.*)?", "ecpd_var_lib_t"),
    ] {
        assert!(
            contexts
                .lines()
                .any(|l| l.starts_with(path) && l.contains(&format!(":{ty}:"))),
            "{path} is not labelled {ty}"
        );
    }
    assert!(
        contexts
            .lines()
            .any(|l| l.starts_with("/root/\\.config/ecp(/.*)?") && l.contains(":ecp_home_t:")),
        "root's key directory is not labelled"
    );
    let homes = std::fs::read_to_string(files.join("file_contexts.homedirs")).unwrap();
    assert!(
        homes
            .lines()
            .any(|l| l.contains("/\\.config/ecp(/.*)?") && l.contains(":ecp_home_t:")),
        "no home directory context for ~/.config/ecp"
    );
}
