//! The module in the programs it is for: a real sshd (keyboard-interactive:
//! password, then an ecp challenge answered by `ecpctl askpass`) and a real
//! sudo (password, then the user's key file). Nothing in the machine's /etc
//! changes: sshd reads its PAM service from pam_wrapper's directory, and
//! sudo runs in a private mount namespace with a test /etc/pam.d and
//! /etc/sudoers bind-mounted over the real ones. Needs root.

use ecp_tests::daemon::{running_as_root, TestDaemon, TestUser};
use ecp_tests::sshd::*;

#[test]
fn sshd_login_needs_the_password_and_a_signed_challenge() {
    if !running_as_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let daemon =
        TestDaemon::start("host_name = \"sshd-test-host\"\nchallenges_per_user_per_minute = 0\n");
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let (user, key) = enrolled_user(&daemon, dir);

    let (_services, _sshd, port) = sshd_with_ecp(&daemon, dir);

    // The person types the password; `ecpctl askpass` answers the challenge.
    let askpass = dir.join("askpass");
    askpass_script(&askpass, &key, PASSWORD);
    // This server is not on the approved list yet, and with no terminal
    // to ask on, askpass signs nothing: no login.
    let approved = dir.join("home/.config/ecp/approved_hosts");
    let run = ssh(dir, &askpass, &user.name, port);
    assert_ne!(run.code, 0);
    assert!(!run.stdout.contains("logged-in-as"));
    assert!(
        run.stderr.contains("not on your approved list"),
        "{}",
        run.stderr
    );

    // On a terminal the person is asked. ssh knows the host as
    // sshd-test-host (the name the challenge carries) and says so before
    // the prompt, so a "yes" signs and is remembered.
    let host = Some("sshd-test-host");
    let run = ssh_on_terminal(dir, &askpass, &user.name, port, host, "yes\n");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains(&format!("ssh is connected to {}@sshd-test-host", user.name)),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!("logged-in-as-{}", user.name)),
        "{}",
        run.stdout
    );
    assert_eq!(
        std::fs::read_to_string(&approved).unwrap(),
        format!(
            "{0}@sshd-test-host sshd-ecp {0}@sshd-test-host\n",
            user.name
        )
    );

    // From now on that login needs no terminal.
    let run = ssh_as(dir, &askpass, &user.name, port, host);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains(&format!("logged-in-as-{}", user.name)),
        "{}",
        run.stdout
    );

    // The same server's challenge seen through another destination (as
    // through a relay: ssh names the host it talks to, here 127.0.0.1)
    // is not approved, and with no terminal nothing is signed.
    let run = ssh(dir, &askpass, &user.name, port);
    assert_ne!(run.code, 0);
    assert!(!run.stdout.contains("logged-in-as"));

    // Without the key: the password alone is not enough.
    let no_key = dir.join("askpass-nokey");
    write_script(
        &no_key,
        &format!("#!/bin/sh\ncase \"$*\" in\n  *'ecp challenge'*) echo 'MEUCIQDnotasignature' ;;\n  *) echo '{PASSWORD}' ;;\nesac\n"),
    );
    let run = ssh(dir, &no_key, &user.name, port);
    assert_ne!(run.code, 0);
    assert!(!run.stdout.contains("logged-in-as"));

    // With the key but the wrong password: refused too.
    let wrong_password = dir.join("askpass-wrongpw");
    askpass_script(&wrong_password, &key, "not-the-password");
    let run = ssh(dir, &wrong_password, &user.name, port);
    assert_ne!(run.code, 0);
    assert!(!run.stdout.contains("logged-in-as"));
}

/// A user who can log in with PASSWORD and has a key (passphrase
/// PASSPHRASE) in ~/.config/ecp, made as the user: (user, that directory,
/// the passphrase file).
#[test]
fn sshd_login_with_askpass_signing_on_a_pkcs11_token() {
    if !running_as_root() {
        eprintln!("skipped: needs root");
        return;
    }
    use ecp_tests::token::{TestToken, SOFTHSM_MODULE};
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let daemon =
        TestDaemon::start("host_name = \"token-host\"\nchallenges_per_user_per_minute = 0\n");
    let user = TestUser::create(daemon.bus.dir());
    user.enable_login(PASSWORD);
    // The key is made on the token; only its certificate is enrolled.
    let token = TestToken::new("ecp");
    let uri = token.uri(&user.name);
    let pin = token.pin_file();
    let certdir = dir.join("cert");
    token
        .ecpctl(&[
            "keygen",
            "--pkcs11",
            &uri,
            "--pin-file",
            pin.to_str().unwrap(),
            "--user",
            &user.name,
            "--out",
            certdir.to_str().unwrap(),
        ])
        .ok();
    daemon
        .ecpctl(&[
            "enroll",
            &user.name,
            "--cert",
            certdir.join("certificate.pem").to_str().unwrap(),
        ])
        .ok();

    let (_services, _sshd, port) = sshd_with_ecp(&daemon, dir);
    approve(dir, &user.name, "token-host");
    let askpass = dir.join("askpass");
    askpass_script_with(
        &askpass,
        &format!("--pkcs11 '{uri}' --pin-file {}", pin.display()),
        &format!(
            "export SOFTHSM2_CONF={}\nexport ECP_PKCS11_MODULE={SOFTHSM_MODULE}\n",
            token.conf().display()
        ),
        PASSWORD,
    );
    let run = ssh_as(dir, &askpass, &user.name, port, Some("token-host"));
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, daemon.log());
    assert!(
        run.stdout.contains(&format!("logged-in-as-{}", user.name)),
        "{}",
        run.stdout
    );
}

#[test]
fn sshd_and_sudo_accept_a_ca_issued_certificate_with_nothing_enrolled() {
    if !running_as_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let ca = ecp_tests::ca::TestCa::root(dir, "Org CA", ecp_tests::ca::CaKeyKind::P256);
    std::fs::write(dir.join("ca.pem"), ca.certificate_pem()).unwrap();
    std::fs::write(dir.join("crl.pem"), ca.crl(24)).unwrap();
    let daemon = TestDaemon::start(&format!(
        "host_name = \"ca-host\"\nchallenges_per_user_per_minute = 0\n\
         ca_file = \"{0}/ca.pem\"\ncrl_file = \"{0}/crl.pem\"\n",
        dir.display()
    ));
    // The user's own key, made as the user; the CA's certificate for it
    // replaces the self-signed one beside it. Nothing is enrolled.
    let (user, keydir, pass) = user_with_own_key(&daemon);
    ecp_tests::openssl(&[
        "req",
        "-new",
        "-key",
        keydir.join("private_key.pem").to_str().unwrap(),
        "-passin",
        &format!("file:{}", pass.display()),
        "-subj",
        &format!("/CN={}", user.name),
        "-out",
        dir.join("user.csr").to_str().unwrap(),
    ]);
    ca.sign_user(&dir.join("user.csr"), &dir.join("user.pem"), 30);
    user.write_owned(
        &keydir.join("certificate.pem"),
        &std::fs::read_to_string(dir.join("user.pem")).unwrap(),
    );

    // sudo: the module presents the certificate beside the key.
    let (_sudo_work, pam_d, sudoers) = sudo_setup(&daemon, &user);
    let ok = sudo_as(
        &user,
        &pam_d,
        &sudoers,
        &format!("{PASSWORD}\n{PASSPHRASE}\n"),
    );
    assert_eq!(ok.code, 0, "{}", ok.stderr);

    // ssh: askpass answers with the signature and the certificate.
    let (_services, _sshd, port) = sshd_with_ecp(&daemon, dir);
    let askpass = approving_askpass(dir, &user.name, "ca-host", &keydir);
    let run = ssh_as(dir, &askpass, &user.name, port, Some("ca-host"));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains(&format!("logged-in-as-{}", user.name)),
        "{}",
        run.stdout
    );
    assert!(daemon
        .ecpctl(&["list", &user.name, "--json"])
        .ok()
        .contains("[]"));
}

#[test]
fn sshd_accepts_a_certificate_from_the_directory_until_it_is_removed_there() {
    if !running_as_root() {
        eprintln!("skipped: needs root");
        return;
    }
    use ecp_tests::directory::{TestDirectory, BASE_DN};
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let directory = TestDirectory::start();
    let daemon = TestDaemon::start(&format!(
        "host_name = \"dir-host\"\nchallenges_per_user_per_minute = 0\n\n[directory]\n\
         uri = [\"{}\"]\nbase_dn = \"{BASE_DN}\"\ncache_ttl_secs = 3600\n",
        directory.uri
    ));
    // The user's own key; its self-signed certificate goes into the
    // directory only. Nothing is enrolled on this host.
    let (user, keydir, _pass) = user_with_own_key(&daemon);
    let pem = std::fs::read(keydir.join("certificate.pem")).unwrap();
    let der = ecp_core::certificate::parse_certificate_pem(&pem)
        .unwrap()
        .der()
        .to_vec();
    directory.add_user(&user.name, std::slice::from_ref(&der));

    let (_services, _sshd, port) = sshd_with_ecp(&daemon, dir);
    let askpass = approving_askpass(dir, &user.name, "dir-host", &keydir);
    let login = || ssh_as(dir, &askpass, &user.name, port, Some("dir-host"));
    let run = login();
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, daemon.log());
    assert!(run.stdout.contains(&format!("logged-in-as-{}", user.name)));
    assert!(daemon
        .log()
        .contains("signed with a certificate from the directory"));

    // Removed in the directory and the host's cache flushed: refused.
    directory.remove_certificate(&user.name, &der);
    daemon.ecpctl(&["cache", "flush", &user.name]).ok();
    let run = login();
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(!run.stdout.contains("logged-in-as-"));
}

/// Runs `sudo -S -k true` as `user` with `input` on stdin, inside a mount
/// namespace where `pam_d` and `sudoers` replace /etc/pam.d and /etc/sudoers.
#[test]
fn sudo_needs_the_password_and_the_key_file() {
    if !running_as_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let daemon =
        TestDaemon::start("host_name = \"sudo-test-host\"\nchallenges_per_user_per_minute = 0\n");
    // The user's own key in the default place, made as the user.
    let (user, keydir, _pass) = user_with_own_key(&daemon);
    daemon
        .ecpctl(&[
            "enroll",
            &user.name,
            "--cert",
            keydir.join("certificate.pem").to_str().unwrap(),
        ])
        .ok();

    let (_work, pam_d, sudoers) = sudo_setup(&daemon, &user);

    let ok = sudo_as(
        &user,
        &pam_d,
        &sudoers,
        &format!("{PASSWORD}\n{PASSPHRASE}\n"),
    );
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(
        ok.stderr.contains("Passphrase for ecp key"),
        "{}",
        ok.stderr
    );

    let wrong_passphrase = sudo_as(&user, &pam_d, &sudoers, &format!("{PASSWORD}\nwrong\n"));
    assert_ne!(wrong_passphrase.code, 0);

    // Without the key file, the password is not enough, and sudo's own
    // "incorrect password attempt" is not all the person learns.
    std::fs::rename(keydir.join("private_key.pem"), user.home.join("moved.pem")).unwrap();
    let no_key = sudo_as(
        &user,
        &pam_d,
        &sudoers,
        &format!("{PASSWORD}\n{PASSPHRASE}\n"),
    );
    assert_ne!(no_key.code, 0);
    assert!(
        no_key.stderr.contains(&format!(
            "ecp: no key file on this host: {}",
            keydir.join("private_key.pem").display()
        )) && no_key.stderr.contains("mode=agent"),
        "{}",
        no_key.stderr
    );
}

#[test]
fn doctor_reads_sshds_effective_configuration_and_each_match_block() {
    if !running_as_root() {
        eprintln!("skipped: sshd -T needs root");
        return;
    }
    let daemon = TestDaemon::start("host_name = \"doctor-host\"\n");
    let dir = tempfile::tempdir().unwrap();
    let pam_d = dir.path().join("pam.d");
    std::fs::create_dir(&pam_d).unwrap();
    std::fs::write(
        pam_d.join("sshd"),
        "auth requisite pam_unix.so\nauth required pam_ecp.so mode=challenge\n",
    )
    .unwrap();
    let host_key = make_host_key(dir.path());
    let config = dir.path().join("sshd_config");
    let doctor = |text: &str| {
        std::fs::write(&config, format!("HostKey {}\n{text}", host_key.display())).unwrap();
        daemon.ecpctl(&[
            "doctor",
            "--pam-dir",
            pam_d.to_str().unwrap(),
            "--sshd-config",
            config.to_str().unwrap(),
        ])
    };

    // Debian's default: keyboard-interactive off, and a public key alone
    // logs in without ever running PAM's auth stack.
    let run = doctor("UsePAM yes\nKbdInteractiveAuthentication no\n");
    assert_eq!(run.code, 1);
    assert!(
        run.stdout
            .contains("FAIL  sshd has KbdInteractiveAuthentication off (the global settings)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("\"publickey\" alone logs in"),
        "{}",
        run.stdout
    );

    // Every list runs keyboard-interactive, but a Match block lets bob
    // in with a key alone: named by its Match line.
    let good = "UsePAM yes\nKbdInteractiveAuthentication yes\nPasswordAuthentication no\n\
                AuthenticationMethods publickey,keyboard-interactive\n";
    let run = doctor(&format!(
        "{good}Match User bob Address 10.1.0.0/16\n    AuthenticationMethods publickey\n"
    ));
    assert!(
        run.stdout.contains(
            "FAIL  AuthenticationMethods allows \"publickey\" (\"Match User bob Address 10.1.0.0/16\")"
        ),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("(the global settings)"),
        "{}",
        run.stdout
    );
    let run = doctor(good);
    assert!(
        run.stdout.contains("ok    sshd (") && run.stdout.contains("runs keyboard-interactive"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("FAIL  sshd"), "{}", run.stdout);
    assert!(
        !run.stdout.contains("AuthenticationMethods"),
        "{}",
        run.stdout
    );
    // The README's rollout: keyboard-interactive required for one group
    // only. Everyone else is outside the rollout: a warning, no failure.
    let member = TestUser::create(dir.path());
    let rollout = format!(
        "UsePAM yes\nKbdInteractiveAuthentication yes\n\
         Match Group {}\n    AuthenticationMethods publickey,keyboard-interactive\n",
        member.name
    );
    let run = doctor(&rollout);
    assert!(
        run.stdout.contains(&format!(
            "warn  rollout: outside the Match blocks that require keyboard-interactive \
             (\"Match Group {}\") ecp is not asked",
            member.name
        )),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("FAIL  sshd"), "{}", run.stdout);
    assert!(
        !run.stdout.contains("FAIL  AuthenticationMethods"),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("on every allowed login"),
        "{}",
        run.stdout
    );
    // A block that loosens the rollout for its members still fails: a
    // member from 10/8 gets public keys alone (the first value wins).
    let run = doctor(&format!(
        "UsePAM yes\nKbdInteractiveAuthentication yes\n\
         Match Address 10.0.0.0/8\n    AuthenticationMethods publickey\n\
         Match Group {}\n    AuthenticationMethods publickey,keyboard-interactive\n",
        member.name
    ));
    assert!(
        run.stdout.contains(&format!(
            "FAIL  AuthenticationMethods allows \"publickey\" (\"Match Address 10.0.0.0/8\" with \"Match Group {}\")",
            member.name
        )),
        "{}",
        run.stdout
    );
    // An account exempted on purpose (automation with a key alone), its
    // block before the group's: outside the rollout, a warning.
    let exempt = TestUser::create(dir.path());
    let run = doctor(&format!(
        "UsePAM yes\nKbdInteractiveAuthentication yes\n\
         Match User {}\n    AuthenticationMethods publickey\n\
         Match Group {}\n    AuthenticationMethods publickey,keyboard-interactive\n",
        exempt.name, member.name
    ));
    assert!(
        !run.stdout.contains("FAIL  AuthenticationMethods"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!(
            "warn  rollout: outside the Match blocks that require keyboard-interactive \
             (\"Match Group {}\") ecp is not asked: AuthenticationMethods allows \"publickey\" \
             (\"Match User {}\")",
            member.name, exempt.name
        )),
        "{}",
        run.stdout
    );
    // Without a block that requires it, nothing is a rollout: the
    // global hole fails as before.
    let run = doctor("UsePAM yes\nKbdInteractiveAuthentication yes\n");
    assert!(
        run.stdout
            .contains("FAIL  AuthenticationMethods is \"any\""),
        "{}",
        run.stdout
    );

    // Two blocks fine alone, a hole together: alice from 10/8 gets "any"
    // from the first and public keys from the second (sshd keeps the
    // first value of each setting among the blocks that apply).
    let run = doctor(
        "UsePAM yes\nKbdInteractiveAuthentication yes\nPubkeyAuthentication no\n\
         PasswordAuthentication no\n\
         Match User alice\n    AuthenticationMethods any\n\
         Match Address 10.0.0.0/8\n    PubkeyAuthentication yes\n\
         AuthenticationMethods publickey,keyboard-interactive\n",
    );
    assert!(
        run.stdout
            .contains("(\"Match User alice\" with \"Match Address 10.0.0.0/8\")"),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("(\"Match User alice\")"),
        "{}",
        run.stdout
    );
    // UsePAM off: pam_ecp is never asked.
    let run = doctor("UsePAM no\n");
    assert!(run.stdout.contains("sshd has UsePAM off"), "{}", run.stdout);
}
