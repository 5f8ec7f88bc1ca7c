//! What `ecpctl doctor` says on an SELinux host: the mode, whether the ecp
//! policy module is loaded, its LDAP boolean against the configured
//! directory, and files whose label would get ecpd or a login denied.
//!
//! Everything is read from selinuxfs and the files' `security.selinux`
//! attributes, so it works for any user and needs no SELinux library.

use std::path::{Path, PathBuf};

/// Where the kernel shows SELinux.
pub const SELINUXFS: &str = "/sys/fs/selinux";

/// The module's boolean: its file in selinuxfs exists only while the
/// module is loaded.
pub const LDAP_BOOLEAN: &str = "ecpd_can_network_connect_ldap";

/// A file and the type the ecp module gives it.
pub struct Labelled {
    pub path: PathBuf,
    pub want: &'static str,
    /// The file's context, None when it has none or cannot be read.
    pub have: Option<String>,
}

pub struct State {
    pub enforcing: bool,
    /// The boolean's current value; None when the module is not loaded.
    pub ldap_boolean: Option<bool>,
    pub files: Vec<Labelled>,
}

/// What the host looks like, or None when SELinux is off.
pub fn read(selinuxfs: &Path, files: &[(PathBuf, &'static str)]) -> Option<State> {
    let enforce = std::fs::read_to_string(selinuxfs.join("enforce")).ok()?;
    let enforcing = enforce.trim() == "1";
    // "current pending", e.g. "0 0".
    let ldap_boolean = std::fs::read_to_string(selinuxfs.join("booleans").join(LDAP_BOOLEAN))
        .ok()
        .map(|v| v.split_whitespace().next() == Some("1"));
    let files = files
        .iter()
        .filter(|(path, _)| path.exists())
        .map(|(path, want)| Labelled {
            path: path.clone(),
            want,
            have: context_of(path),
        })
        .collect();
    Some(State {
        enforcing,
        ldap_boolean,
        files,
    })
}

fn context_of(path: &Path) -> Option<String> {
    let mut buf = vec![0u8; 256];
    let len = rustix::fs::getxattr(path, "security.selinux", &mut buf).ok()?;
    buf.truncate(len);
    let text = String::from_utf8_lossy(&buf);
    Some(text.trim_end_matches('\0').to_owned())
}

/// The type field of a context (`user:role:type:level`).
fn type_of(context: &str) -> Option<&str> {
    context.split(':').nth(2)
}

/// How a line is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

/// The lines doctor prints. `network_directory` is whether ecpd.toml names
/// ldap:// or ldaps:// servers (None: not known, doctor not run as root).
pub fn assess(state: &State, network_directory: Option<bool>) -> Vec<(Level, String)> {
    let mut lines = Vec::new();
    let mode = if state.enforcing {
        "enforcing"
    } else {
        "permissive"
    };
    // In permissive mode nothing is denied yet: problems are warnings.
    let problem = if state.enforcing {
        Level::Fail
    } else {
        Level::Warn
    };
    let Some(boolean) = state.ldap_boolean else {
        lines.push((
            problem,
            format!(
                "SELinux is {mode} and the ecp policy module is not loaded: ecpd runs \
                 unconfined and login programs may be denied talking to it; load it with \
                 `semodule -i /usr/share/selinux/packages/targeted/ecp.pp.bz2` and run \
                 `restorecon -R /usr/sbin/ecpd /etc/ecp /var/lib/ecpd`"
            ),
        ));
        return lines;
    };
    lines.push((
        Level::Ok,
        format!("SELinux is {mode}; the ecp policy module is loaded"),
    ));
    match (network_directory, boolean) {
        (Some(true), false) => lines.push((
            problem,
            format!(
                "the directory has ldap:// or ldaps:// servers but the SELinux boolean \
                 {LDAP_BOOLEAN} is off, so ecpd cannot reach them: `setsebool -P {LDAP_BOOLEAN} on`"
            ),
        )),
        (Some(false), true) => lines.push((
            Level::Warn,
            format!(
                "the SELinux boolean {LDAP_BOOLEAN} is on but no network directory is \
                 configured: `setsebool -P {LDAP_BOOLEAN} off` keeps ecpd off the network"
            ),
        )),
        (_, on) => lines.push((
            Level::Ok,
            format!(
                "SELinux boolean {LDAP_BOOLEAN} is {}",
                if on { "on" } else { "off" }
            ),
        )),
    }
    for file in &state.files {
        let have = file.have.as_deref().and_then(type_of);
        if have == Some(file.want) {
            continue;
        }
        lines.push((
            problem,
            format!(
                "{} is labelled {}, not {}: `restorecon -R {}`",
                file.path.display(),
                file.have.as_deref().unwrap_or("(no label)"),
                file.want,
                file.path.display()
            ),
        ));
    }
    lines
}

/// Whether the module's file contexts cover `key_path`: a key in the
/// home directory's (or root's) `.config/ecp`.
pub fn key_in_labelled_place(key_path: &Path, home: Option<&Path>) -> bool {
    let Some(dir) = key_path.parent() else {
        return false;
    };
    [home, Some(Path::new("/root"))]
        .into_iter()
        .flatten()
        .any(|h| dir == h.join(ecp_core::user_files::USER_DIR))
}

/// The files the module labels that doctor checks: the daemon, its
/// configuration and store, and the user's key directory and file when
/// the key is where the module's contexts apply.
pub fn files_to_check(key_path: &Path, home: Option<&Path>) -> Vec<(PathBuf, &'static str)> {
    let mut files = vec![
        (PathBuf::from("/usr/sbin/ecpd"), "ecpd_exec_t"),
        (PathBuf::from("/etc/ecp"), "ecpd_conf_t"),
        (PathBuf::from("/var/lib/ecpd"), "ecpd_var_lib_t"),
    ];
    if key_in_labelled_place(key_path, home) {
        if let Some(dir) = key_path.parent() {
            files.push((dir.to_path_buf(), "ecp_home_t"));
            files.push((key_path.to_path_buf(), "ecp_home_t"));
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(
        enforcing: bool,
        boolean: Option<bool>,
        labels: &[(&str, &'static str, Option<&str>)],
    ) -> State {
        State {
            enforcing,
            ldap_boolean: boolean,
            files: labels
                .iter()
                .map(|(path, want, have)| Labelled {
                    path: PathBuf::from(path),
                    want,
                    have: have.map(str::to_owned),
                })
                .collect(),
        }
    }

    fn levels(lines: &[(Level, String)]) -> Vec<&Level> {
        lines.iter().map(|(l, _)| l).collect()
    }

    #[test]
    fn a_missing_module_fails_when_enforcing_and_warns_when_permissive() {
        let lines = assess(&state(true, None, &[]), None);
        assert_eq!(levels(&lines), [&Level::Fail]);
        assert!(lines[0].1.contains("semodule -i"), "{lines:?}");
        let lines = assess(&state(false, None, &[]), None);
        assert_eq!(levels(&lines), [&Level::Warn]);
    }

    #[test]
    fn the_boolean_is_checked_against_the_directory() {
        let off = state(true, Some(false), &[]);
        let lines = assess(&off, Some(true));
        assert_eq!(lines[1].0, Level::Fail, "{lines:?}");
        assert!(lines[1]
            .1
            .contains("setsebool -P ecpd_can_network_connect_ldap on"));
        assert_eq!(levels(&assess(&off, Some(false))), [&Level::Ok, &Level::Ok]);
        assert_eq!(levels(&assess(&off, None)), [&Level::Ok, &Level::Ok]);
        let on = state(true, Some(true), &[]);
        assert_eq!(levels(&assess(&on, Some(false)))[1], &Level::Warn);
        assert_eq!(levels(&assess(&on, Some(true))), [&Level::Ok, &Level::Ok]);
    }

    #[test]
    fn wrong_labels_are_named_with_the_command_that_fixes_them() {
        let s = state(
            true,
            Some(false),
            &[
                (
                    "/var/lib/ecpd",
                    "ecpd_var_lib_t",
                    Some("system_u:object_r:var_lib_t:s0"),
                ),
                (
                    "/etc/ecp",
                    "ecpd_conf_t",
                    Some("system_u:object_r:ecpd_conf_t:s0"),
                ),
                ("/home/a/.config/ecp", "ecp_home_t", None),
            ],
        );
        let lines = assess(&s, None);
        let bad: Vec<&String> = lines
            .iter()
            .filter(|(l, _)| *l == Level::Fail)
            .map(|(_, t)| t)
            .collect();
        assert_eq!(bad.len(), 2, "{lines:?}");
        assert!(bad[0].contains("/var/lib/ecpd is labelled system_u:object_r:var_lib_t:s0, not ecpd_var_lib_t: `restorecon -R /var/lib/ecpd`"));
        assert!(bad[1].contains("(no label)"));
        // Permissive: the same, as warnings.
        let s = State {
            enforcing: false,
            ..s
        };
        assert!(assess(&s, None).iter().all(|(l, _)| *l != Level::Fail));
    }

    #[test]
    fn selinuxfs_is_read_for_mode_and_boolean_and_absent_means_off() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path(), &[]).is_none());
        std::fs::write(dir.path().join("enforce"), "1").unwrap();
        let s = read(dir.path(), &[]).unwrap();
        assert!(s.enforcing && s.ldap_boolean.is_none());
        std::fs::create_dir(dir.path().join("booleans")).unwrap();
        std::fs::write(dir.path().join("booleans").join(LDAP_BOOLEAN), "1 1").unwrap();
        assert_eq!(read(dir.path(), &[]).unwrap().ldap_boolean, Some(true));
        // Files that do not exist are not reported; existing ones are read
        // (this machine has no SELinux labels: None).
        let file = dir.path().join("enforce");
        let s = read(
            dir.path(),
            &[
                (file.clone(), "ecpd_conf_t"),
                (dir.path().join("nope"), "ecpd_conf_t"),
            ],
        )
        .unwrap();
        assert_eq!(s.files.len(), 1);
        assert_eq!(s.files[0].path, file);

        // A label as SELinux stores it (root may set the attribute on
        // ext4 and tmpfs even with SELinux off): read back and judged.
        let labelled = dir.path().join("store");
        std::fs::create_dir(&labelled).unwrap();
        let set = rustix::fs::setxattr(
            &labelled,
            "security.selinux",
            b"system_u:object_r:var_lib_t:s0\0",
            rustix::fs::XattrFlags::empty(),
        );
        if set.is_ok() {
            let s = read(dir.path(), &[(labelled.clone(), "ecpd_var_lib_t")]).unwrap();
            assert_eq!(
                s.files[0].have.as_deref(),
                Some("system_u:object_r:var_lib_t:s0")
            );
            assert!(assess(&s, None)
                .iter()
                .any(|(l, t)| *l == Level::Fail && t.contains("not ecpd_var_lib_t")));
        }
    }

    #[test]
    fn the_key_directory_is_checked_only_where_the_contexts_apply() {
        let home = Some(Path::new("/home/a"));
        let usual = files_to_check(Path::new("/home/a/.config/ecp/private_key.pem"), home);
        assert!(usual
            .iter()
            .any(|(p, t)| p == Path::new("/home/a/.config/ecp") && *t == "ecp_home_t"));
        assert!(key_in_labelled_place(
            Path::new("/root/.config/ecp/private_key.pem"),
            home
        ));
        // Elsewhere (a --key of one's own, a .config/ecp outside a home):
        // no restorecon would label it, so it is not checked but noted.
        for path in ["/srv/keys/k.pem", "/srv/x/.config/ecp/private_key.pem"] {
            assert_eq!(files_to_check(Path::new(path), home).len(), 3, "{path}");
            assert!(!key_in_labelled_place(Path::new(path), home), "{path}");
        }
    }
}
