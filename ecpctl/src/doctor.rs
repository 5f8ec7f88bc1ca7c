//! `ecpctl doctor`: checks a setup end to end and says what is wrong.

use std::path::{Path, PathBuf};

use ecp_core::bus::AdminProxy;
use ecp_core::keyfile_io::read_key_file;
use ecp_core::when::{format_utc, unix_now};

use crate::cli::DoctorArgs;
use crate::failure::Failure;
use crate::keys::{expected_owner, key_path_or_default};

/// Where Debian and others install PAM modules.
fn module_dirs() -> Vec<PathBuf> {
    let triple = format!("{}-linux-gnu", std::env::consts::ARCH);
    vec![
        PathBuf::from(format!("/usr/lib/{triple}/security")),
        PathBuf::from(format!("/lib/{triple}/security")),
        PathBuf::from("/usr/lib/security"),
        PathBuf::from("/lib/security"),
        PathBuf::from("/usr/lib64/security"),
    ]
}

struct Report {
    problems: usize,
}

impl Report {
    fn ok(&self, what: &str) {
        println!("ok    {what}");
    }
    fn warn(&self, what: &str) {
        println!("warn  {what}");
    }
    fn fail(&mut self, what: &str) {
        println!("FAIL  {what}");
        self.problems += 1;
    }
}

/// PAM services that use pam_ecp, directly or through an @include, with
/// the mode each line asks for.
fn pam_services(dir: &Path) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(String, String)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(e.path()).ok()?;
            Some((name, text))
        })
        .collect();
    files.sort();
    let direct = |text: &str| -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#') && l.contains("pam_ecp.so"))
            .map(|l| {
                let kind = l
                    .split_whitespace()
                    .next()
                    .unwrap_or("?")
                    .trim_start_matches('-');
                let mode = l
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("mode="))
                    .unwrap_or("auto");
                format!("{kind} mode={mode}")
            })
            .collect()
    };
    let mut found = Vec::new();
    for (name, text) in &files {
        let mut uses = direct(text);
        for line in text.lines() {
            if let Some(included) = line.trim().strip_prefix("@include") {
                let included = included.trim();
                if let Some((_, inner)) = files.iter().find(|(n, _)| n == included) {
                    uses.extend(
                        direct(inner)
                            .into_iter()
                            .map(|u| format!("{u} (via {included})")),
                    );
                }
            }
        }
        if !uses.is_empty() {
            found.push((name.clone(), uses.join(", ")));
        }
    }
    found
}

pub fn run(bus: &str, args: &DoctorArgs) -> Result<(), Failure> {
    let mut report = Report { problems: 0 };
    let user = match &args.user {
        Some(u) => u.to_string(),
        None => nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_default(),
    };

    // 1. The daemon.
    let daemon = zbus::block_on(async {
        let conn = ecp_core::bus::connection_builder(bus)
            .method_timeout(std::time::Duration::from_secs(10))
            .build()
            .await
            .map_err(|e| e.to_string())?;
        let admin = AdminProxy::new(&conn).await.map_err(|e| e.to_string())?;
        let status = admin.status().await.map_err(|e| e.to_string())?;
        let certificates = admin.list(&user).await.map_err(|e| e.to_string());
        Ok::<_, String>((status, certificates))
    });
    let certificates = match daemon {
        Ok((status, certs)) => {
            report.ok(&format!(
                "ecpd {} is running on {} (bus: {bus})",
                status.version, status.host
            ));
            Some(certs)
        }
        Err(e) => {
            report.fail(&format!("ecpd is not reachable on the {bus} bus: {e}"));
            None
        }
    };

    // 2. The module.
    match module_dirs()
        .into_iter()
        .map(|d| d.join("pam_ecp.so"))
        .find(|p| p.exists())
    {
        Some(path) => report.ok(&format!("PAM module installed: {}", path.display())),
        None => report.fail("PAM module pam_ecp.so is not installed in any PAM module directory"),
    }

    // 3. PAM services.
    let services = pam_services(&args.pam_dir);
    if services.is_empty() {
        report.warn(&format!(
            "no PAM service in {} uses pam_ecp (see `pam-auth-update` or README: configure sshd and sudo)",
            args.pam_dir.display()
        ));
    }
    for (service, uses) in services {
        report.ok(&format!("PAM service {service}: {uses}"));
    }

    // 4. The key file.
    let key_path = key_path_or_default(args.key.as_deref())?;
    match read_key_file(&key_path, expected_owner()) {
        Ok(bytes) if String::from_utf8_lossy(&bytes).contains("BEGIN ENCRYPTED PRIVATE KEY") => {
            report.ok(&format!(
                "key file {} is present, private and encrypted",
                key_path.display()
            ))
        }
        Ok(_) => report.fail(&format!(
            "key file {} is not an encrypted PKCS#8 key (see `ecpctl sign` for the exact reason)",
            key_path.display()
        )),
        Err(e) => report.fail(&format!("key file {e}")),
    }

    // 5. Enrollment.
    match certificates {
        None => report.fail("cannot check enrollment without the daemon"),
        Some(Err(e)) => report.fail(&format!("cannot list certificates of {user}: {e}")),
        Some(Ok(list)) if list.is_empty() => report.fail(&format!(
            "no certificate enrolled for {user} (root: `ecpctl enroll {user} --cert FILE`)"
        )),
        Some(Ok(list)) => {
            let now = unix_now();
            for cert in list {
                let days = (cert.not_after - now) / 86_400;
                let line = format!(
                    "certificate \"{}\" of {user} enrolled, valid until {} ({days} days left)",
                    cert.label,
                    format_utc(cert.not_after)
                );
                if cert.not_after <= now {
                    report.fail(&line.replace("valid until", "EXPIRED on"));
                } else if days < 14 {
                    report.warn(&line);
                } else {
                    report.ok(&line);
                }
            }
        }
    }

    if report.problems > 0 {
        return Err(Failure::CheckFailed(format!(
            "{} problem(s) found",
            report.problems
        )));
    }
    println!("no problems found");
    Ok(())
}
