//! Tells whether pam_ecp in each PAM `auth` stack is a real second factor
//! behind the password, by running the stack the way libpam would for
//! every combination of answers its modules can give.
//!
//! A stack is judged by what can happen in it: pam_ecp reached although
//! every password module failed; a login that completes while pam_ecp
//! failed, was unreachable (ecpd down), was missing, or never ran; a login
//! that needs no password. Every module may answer any return code libpam
//! can pass on (grouped by what the dispatcher does with it), so a
//! `default=ignore` catches PAM_MODULE_UNKNOWN and PAM_MAXTRIES too. Root's
//! own bypass (`sufficient pam_rootok.so`) is by design only in services a
//! user starts (su, runuser, chfn…): sshd and login run PAM as root, where
//! it lets everyone in. A file that another file includes is judged
//! through its includers, as a part of their stacks.

mod eval;
mod parse;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use eval::{for_each_run, Answer, Run};
use parse::{in_order, Entry, Kind, ModuleLine, Reader};
pub use parse::{Place, VENDOR_DIRS};

/// Editor and package-manager leftovers that are not services.
const NOT_SERVICES: &[&str] = &[".dpkg-old", ".dpkg-dist", ".dpkg-new", ".ucf-old", "~"];

/// Runs tried per stack before the answer is called incomplete: a stack
/// of a dozen modules of unknown behaviour needs a few hundred thousand.
const MAX_RUNS: usize = 500_000;

/// One problem with a pam_ecp line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// The pam_ecp line concerned.
    pub place: Place,
    pub why: String,
}

/// A service that uses pam_ecp for `auth`.
#[derive(Debug)]
pub struct Service {
    pub name: String,
    /// Each pam_ecp auth line: where it is and its mode.
    pub uses: Vec<(Place, String)>,
    pub findings: Vec<Finding>,
}

/// What the linter needs to know besides the files.
pub struct Context {
    /// Whether any user is enrolled; None when that is unknown.
    pub users_enrolled: Option<bool>,
    /// Vendor PAM directories (/usr/lib/pam.d…): services and included
    /// files that the PAM directory lacks are read from there, as libpam
    /// does.
    pub vendor_dirs: Vec<PathBuf>,
}

/// Lints every service in `dir` whose auth stack uses pam_ecp.
pub fn lint_dir(dir: &Path, context: &Context) -> std::io::Result<Vec<Service>> {
    let service_names = |d: &Path| -> std::io::Result<Vec<String>> {
        Ok(std::fs::read_dir(d)?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| !t.is_dir()).unwrap_or(false))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.') && !NOT_SERVICES.iter().any(|s| n.ends_with(s)))
            .collect())
    };
    // A service in /etc/pam.d hides the vendor's file of the same name.
    let mut names: BTreeSet<String> = service_names(dir)?.into_iter().collect();
    for vendor in &context.vendor_dirs {
        names.extend(service_names(vendor).unwrap_or_default());
    }
    let reader = Reader {
        dir,
        vendor: &context.vendor_dirs,
    };
    let path_of = |name: &str| reader.resolve(name);
    let included: BTreeSet<PathBuf> = names
        .iter()
        .flat_map(|n| reader.included_by(&path_of(n)))
        .collect();
    let mut services = Vec::new();
    for name in names {
        let path = path_of(&name);
        if included.contains(&path) {
            continue;
        }
        let stack = reader.stack(&path);
        let uses: Vec<(Place, String)> = in_order(&stack)
            .into_iter()
            .filter(|m| m.kind == Kind::Ecp)
            .map(|m| {
                let mode = m.option("mode").unwrap_or("auto").to_owned();
                (m.place.clone(), mode)
            })
            .collect();
        if uses.is_empty() {
            continue;
        }
        let findings = lint_stack(&name, &stack, context);
        services.push(Service {
            name,
            uses,
            findings,
        });
    }
    Ok(services)
}

/// "pam_unix.so at FILE:LINE ("required") answering auth_err".
fn describe(module: &ModuleLine, answer: Answer) -> String {
    format!(
        "{} at {} (\"{}\") answering {}",
        module.module,
        module.place,
        module.control.written,
        answer.key()
    )
}

/// What a failing pam_ecp answer means to an admin.
fn meaning(answer: Answer) -> &'static str {
    match answer {
        Answer::AUTH_ERR => "a wrong or missing signature",
        Answer::AUTHINFO_UNAVAIL => "ecpd down or unreachable",
        Answer::USER_UNKNOWN => "an unknown user",
        Answer::IGNORE => "no certificate (nouserok), or root at the console with ecpd down",
        Answer::SUCCESS => "success",
        Answer::MODULE_UNKNOWN => "pam_ecp.so missing or failing to load",
        _ => "an error of another kind",
    }
}

/// Services a user starts from their own session, where PAM runs as that
/// user and pam_rootok lets only root itself through. Anywhere else (sshd,
/// login, display managers run PAM as root) it succeeds for everyone.
const USER_STARTED_SERVICES: &[&str] = &[
    "su",
    "su-l",
    "runuser",
    "runuser-l",
    "chfn",
    "chsh",
    "chage",
    "passwd",
];

/// The first example of each problem, per pam_ecp line.
#[derive(Default)]
struct Examples {
    reached_without_password: Option<String>,
    ecp_failure_passes: Option<String>,
    skipped: Option<String>,
    key_alone: Option<String>,
}

fn lint_stack(service: &str, stack: &[Entry], context: &Context) -> Vec<Finding> {
    let order = in_order(stack);
    let has_password = order.iter().any(|m| m.kind == Kind::Password);
    let ecps: Vec<&ModuleLine> = order
        .iter()
        .copied()
        .filter(|m| m.kind == Kind::Ecp)
        .collect();
    let root_ok_by_design = USER_STARTED_SERVICES.contains(&service);
    let mut examples: Vec<Examples> = ecps.iter().map(|_| Examples::default()).collect();
    let mut asked_twice = None;
    let complete = for_each_run(stack, MAX_RUNS, |run| {
        for (ecp, found) in ecps.iter().zip(examples.iter_mut()) {
            observe(run, ecp, has_password, root_ok_by_design, found);
        }
        if asked_twice.is_none() {
            asked_twice = run.password_asked_again.map(|(first, again)| {
                (
                    first.module.clone(),
                    first.place.clone(),
                    again.module.clone(),
                    again.place.clone(),
                )
            });
        }
    });

    let mut findings = BTreeSet::new();
    // The usual slip: the two ecp lines appended after
    // "@include common-auth" instead of put in its place.
    if let Some((first, first_place, again, place)) = asked_twice {
        findings.insert(Finding {
            place,
            why: format!(
                "the password is asked twice: {} at {} succeeded, then {} asks for it \
                 again; put the password and pam_ecp lines in place of \
                 \"@include common-auth\" rather than after it (or give the second \
                 \"use_first_pass\")",
                first, first_place, again
            ),
        });
    }
    // A control libpam cannot read fails its line at every login.
    for module in &order {
        let why = match (&module.control.invalid, module.kind) {
            (Some(why), Kind::MustFail) => format!(
                "libpam cannot use the line \"{}\" ({why}): it fails at every login",
                module.control.written
            ),
            (Some(why), _) => format!(
                "libpam cannot read the control \"{}\" of {} ({why}): it counts \
                 every answer of that line as a failure",
                module.control.written, module.module
            ),
            (None, _) => continue,
        };
        findings.insert(Finding {
            place: module.place.clone(),
            why,
        });
    }
    for (ecp, found) in ecps.iter().zip(examples) {
        let mut say = |why: String| {
            findings.insert(Finding {
                place: ecp.place.clone(),
                why,
            });
        };
        let position = order
            .iter()
            .position(|m| std::ptr::eq(*m, *ecp))
            .unwrap_or(0);
        if !order[..position].iter().any(|m| m.kind == Kind::Password) {
            say(if has_password {
                "no password module runs before pam_ecp: it is asked for a challenge (and \
                 counts failures) for anyone who reaches the stack; put it after \
                 \"auth requisite pam_unix.so\""
                    .into()
            } else {
                "no password module before pam_ecp: the key is the only factor; put \
                 \"auth requisite pam_unix.so\" before it"
                    .into()
            });
        } else if let Some(why) = found.reached_without_password {
            say(why);
        }
        if let Some(why) = found.skipped {
            say(why);
        }
        if let Some(why) = found.ecp_failure_passes {
            say(why);
        }
        if let Some(why) = found.key_alone {
            say(why);
        }
        if ecp.option("nouserok").is_some() && context.users_enrolled == Some(true) {
            say(
                "\"nouserok\" is still set while users are enrolled: anyone not enrolled \
                 (or whose certificates were all revoked) logs in with the password alone; \
                 remove it once everyone is enrolled"
                    .into(),
            );
        }
        if service == "sshd" && ecp.option("mode") == Some("keyfile") {
            say(
                "sshd uses mode=keyfile: a remote login would be signed with a key file \
                 on the server, which makes the key a second password (pam_ecp refuses \
                 it unless allow_remote_keyfile is set); use mode=challenge"
                    .into(),
            );
        }
        if service == "sshd" && ecp.option("mode") == Some("agent") {
            say(
                "sshd uses mode=agent: pam_ecp refuses it for a login from the network \
                 (sshd's own SSH_AUTH_SOCK is not the remote person's), so no one logs \
                 in; use mode=challenge, and mode=agent for sudo inside the session"
                    .into(),
            );
        }
        if !complete {
            say(format!(
                "the stack has more paths than the {MAX_RUNS} checked: the findings above \
                 may be incomplete"
            ));
        }
    }
    findings.into_iter().collect()
}

/// Records what `run` shows about the pam_ecp line `ecp`.
fn observe(
    run: &Run<'_>,
    ecp: &ModuleLine,
    has_password: bool,
    root_ok_by_design: bool,
    found: &mut Examples,
) {
    let reached = run.reached.iter().find(|r| std::ptr::eq(r.ecp, ecp));
    if let Some(r) = reached {
        if found.reached_without_password.is_none() && !r.password_ok {
            if let Some((password, answer)) = r.failed_password {
                found.reached_without_password = Some(format!(
                    "pam_ecp is reached after a failed password ({}): anyone can make \
                     ecpd issue challenges and count failures for a user without knowing \
                     the password; use \"requisite\" (or \"[success=ok default=die]\") or \
                     jump to a \"requisite pam_deny.so\"",
                    describe(password, answer)
                ));
            }
        }
    }
    // Root needs no authentication by design (pam_rootok), where only
    // root itself can pass it.
    if !run.logged_in() || (run.root_ok && root_ok_by_design) {
        return;
    }
    match reached {
        Some(r) if r.answer == Answer::SUCCESS => {
            if found.key_alone.is_none() && has_password && !run.password_ok {
                let how = match run.any_failed_password {
                    Some((password, answer)) => format!("even with {}", describe(password, answer)),
                    None => "before any password module runs".to_owned(),
                };
                let fix = match run.any_failed_password {
                    Some((_, Answer::IGNORE)) => {
                        "a password module that may answer PAM_IGNORE needs its own action \
                         for it: \"[success=ok ignore=die default=die]\" (or drop the option \
                         that makes it ignore users)"
                    }
                    _ => "make the password module \"requisite\"",
                };
                found.key_alone = Some(format!(
                    "the password is not required: pam_ecp's success completes the login \
                     {how}; {fix}"
                ));
            }
        }
        // PAM_IGNORE is what nouserok and root_console_rescue mean: the
        // first is judged above, the second is the documented way in.
        Some(r) if r.answer == Answer::IGNORE => {}
        Some(r) => {
            if found.ecp_failure_passes.is_none() {
                found.ecp_failure_passes = Some(format!(
                    "a failed pam_ecp still lets the login through: answering {} ({}) \
                     under its control \"{}\"; make it \"required\" (or \"sufficient\" \
                     followed by \"required pam_deny.so\", after a \"requisite\" password \
                     module)",
                    r.answer.key(),
                    meaning(r.answer),
                    ecp.control.written
                ));
            }
        }
        None => {
            if found.skipped.is_none() && has_password {
                let culprit = run.jumped_over_ecp.or(run.ended_by);
                found.skipped = Some(match culprit {
                    Some((m, Answer::SUCCESS)) if m.kind == Kind::RootOk => format!(
                        "{} lets every user in without pam_ecp: this service runs PAM as \
                         root, so pam_rootok succeeds for remote and local users alike; \
                         keep pam_rootok to services a user starts (su, runuser, chfn)",
                        describe(m, Answer::SUCCESS)
                    ),
                    Some((m, Answer::SUCCESS)) if m.kind == Kind::Password => format!(
                        "a right password alone completes the login before pam_ecp runs \
                         ({}): there is no second factor",
                        describe(m, Answer::SUCCESS)
                    ),
                    Some((m, answer)) => format!(
                        "the login can complete without pam_ecp: {} skips or ends the \
                         stack before it; no second factor is asked on that path",
                        describe(m, answer)
                    ),
                    None => "the login can complete without pam_ecp running: there is no \
                             second factor on that path"
                        .to_owned(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lint(files: &[(&str, &str)], enrolled: Option<bool>) -> Vec<Service> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        lint_dir(
            dir.path(),
            &Context {
                users_enrolled: enrolled,
                vendor_dirs: Vec::new(),
            },
        )
        .unwrap()
    }

    /// (service, line, what the finding says) for each finding.
    fn findings(files: &[(&str, &str)], enrolled: Option<bool>) -> Vec<(String, usize, String)> {
        lint(files, enrolled)
            .into_iter()
            .flat_map(|s| {
                let name = s.name.clone();
                s.findings
                    .into_iter()
                    .map(move |f| (name.clone(), f.place.line, f.why))
            })
            .collect()
    }

    const DEBIAN_COMMON_AUTH: &str = "\
# here are the per-package modules (the \"Primary\" block)
auth\t[success=1 default=ignore]\tpam_unix.so nullok
# here's the fallback if no module succeeds
auth\trequisite\t\t\tpam_deny.so
auth\trequired\t\t\tpam_permit.so
# and here are more per-package modules (the \"Additional\" block)
auth\trequired\t\t\tpam_ecp.so nouserok
";

    /// Fedora's layout: a right password ends the stack at pam_unix.
    const FEDORA_SYSTEM_AUTH: &str = "auth required pam_env.so\n\
                                      auth sufficient pam_unix.so nullok\n\
                                      auth required pam_deny.so\n";

    #[test]
    fn gated_stacks_have_no_finding() {
        let good: &[&[(&str, &str)]] = &[
            &[(
                "sshd",
                "auth requisite pam_unix.so\nauth required pam_ecp.so mode=challenge\n",
            )],
            &[(
                "sudo",
                "auth [success=ok default=die] pam_unix.so\nauth required pam_ecp.so\n",
            )],
            &[
                ("common-auth", DEBIAN_COMMON_AUTH),
                ("sshd", "@include common-auth\n"),
                ("sudo", "#%PAM-1.0\n@include common-auth\n"),
            ],
            // Debian with SSSD: two password modules, either may succeed.
            &[(
                "login",
                "auth [success=2 default=ignore] pam_unix.so nullok\n\
                 auth [success=1 default=ignore] pam_sss.so use_first_pass\n\
                 auth requisite pam_deny.so\n\
                 auth required pam_permit.so\n\
                 auth required /usr/lib/x86_64-linux-gnu/security/pam_ecp.so\n",
            )],
            // Debian 12's common-auth with SSSD and pam_cap, as
            // pam-auth-update writes it with ecp's profile.
            &[
                (
                    "common-auth",
                    "auth\t[success=2 default=ignore]\tpam_unix.so nullok\n\
                     auth\t[success=1 default=ignore]\tpam_sss.so use_first_pass\n\
                     auth\trequisite\t\t\tpam_deny.so\n\
                     auth\trequired\t\t\tpam_permit.so\n\
                     auth\toptional\t\t\tpam_cap.so\n\
                     auth\trequired\t\t\tpam_ecp.so nouserok\n",
                ),
                (
                    "sshd",
                    "auth required pam_env.so\n@include common-auth\naccount required pam_nologin.so\n",
                ),
            ],
            // su: root skips everything, as intended; others are gated.
            &[(
                "su",
                "auth sufficient pam_rootok.so\n\
                 auth requisite pam_unix.so\n\
                 auth required pam_ecp.so mode=keyfile\n",
            )],
            // authselect's idiom: the password requisite, pam_ecp
            // sufficient, then pam_deny for everything else.
            &[(
                "system-auth",
                "auth required pam_env.so\n\
                 auth requisite pam_unix.so\n\
                 auth sufficient pam_ecp.so\n\
                 auth required pam_deny.so\n",
            )],
            // A jump past the end of the stack is a failure, not a way
            // around pam_ecp.
            &[(
                "sudo",
                "auth requisite pam_unix.so\n\
                 auth [success=5 default=ignore] pam_succeed_if.so uid >= 1000\n\
                 auth required pam_ecp.so\n",
            )],
        ];
        for files in good {
            assert_eq!(findings(files, Some(false)), vec![], "{files:?}");
        }
    }

    #[test]
    fn lines_appended_after_common_auth_ask_the_password_twice() {
        // What an admin gets by adding the README's two lines after
        // "@include common-auth" in place of replacing it: gated, but
        // pam_unix asks a second time.
        let appended: &[(&str, &str)] = &[
            ("common-auth", DEBIAN_COMMON_AUTH),
            (
                "sudo",
                "@include common-auth
                 auth requisite pam_unix.so
                 auth required pam_ecp.so mode=keyfile
",
            ),
        ];
        let found = findings(appended, Some(false));
        assert_eq!(found.len(), 1, "{found:?}");
        let (service, line, why) = &found[0];
        assert_eq!((service.as_str(), *line), ("sudo", 2), "{why}");
        assert!(
            why.contains("the password is asked twice: pam_unix.so at ")
                && why.contains("common-auth:2")
                && why.contains("in place of \"@include common-auth\""),
            "{why}"
        );
        // A second module that takes the password already read is fine.
        let reused: &[(&str, &str)] = &[
            ("common-auth", DEBIAN_COMMON_AUTH),
            (
                "sudo",
                "@include common-auth
                 auth requisite pam_unix.so use_first_pass
                 auth required pam_ecp.so mode=keyfile
",
            ),
        ];
        assert_eq!(findings(reused, Some(false)), vec![]);
        // pam_sss takes the password already read unless told otherwise.
        let sss = "auth requisite pam_unix.so\n\
                   auth required pam_sss.so\n\
                   auth required pam_ecp.so\n";
        assert_eq!(findings(&[("sudo", sss)], Some(false)), vec![]);
        let always = sss.replace("pam_sss.so", "pam_sss.so prompt_always");
        assert_eq!(findings(&[("sudo", &always)], Some(false)).len(), 1);
    }

    #[test]
    fn each_bad_stack_is_named_by_line_and_reason() {
        // (files, service, line of the pam_ecp line, what is said)
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, usize, &'a str);
        let table: &[Case] = &[
            (
                &[(
                    "sshd",
                    "auth required pam_unix.so\nauth required pam_ecp.so mode=challenge\n",
                )],
                "sshd",
                2,
                "reached after a failed password (pam_unix.so at ",
            ),
            (
                &[(
                    "sudo",
                    "auth requisite pam_unix.so\nauth sufficient pam_ecp.so\n",
                )],
                "sudo",
                2,
                "a failed pam_ecp still lets the login through: answering auth_err (a wrong or missing signature) under its control \"sufficient\"",
            ),
            (
                &[(
                    "sudo",
                    "auth requisite pam_unix.so\nauth optional pam_ecp.so\n",
                )],
                "sudo",
                2,
                "a failed pam_ecp still lets the login through: answering auth_err (a wrong or missing signature) under its control \"optional\"",
            ),
            (
                &[(
                    "sudo",
                    "auth requisite pam_unix.so\nauth [success=ok default=ignore] pam_ecp.so\n",
                )],
                "sudo",
                2,
                "a failed pam_ecp still lets the login through",
            ),
            (
                &[("sshd", "auth required pam_ecp.so\n")],
                "sshd",
                1,
                "no password module before pam_ecp",
            ),
            (
                &[(
                    "sshd",
                    "auth required pam_ecp.so\nauth requisite pam_unix.so\n",
                )],
                "sshd",
                1,
                "no password module runs before pam_ecp",
            ),
            // Fedora's system-auth: "sufficient pam_unix.so" ends the
            // stack at a right password, pam_ecp after the include never runs.
            (
                &[
                    ("system-auth", FEDORA_SYSTEM_AUTH),
                    (
                        "sshd",
                        "auth include system-auth\nauth required pam_ecp.so\n",
                    ),
                ],
                "sshd",
                2,
                "a right password alone completes the login",
            ),
            // The same file as a substack: its end does not end the login,
            // so pam_ecp runs even after a wrong password.
            (
                &[
                    ("system-auth", FEDORA_SYSTEM_AUTH),
                    (
                        "sshd",
                        "auth substack system-auth\nauth required pam_ecp.so\n",
                    ),
                ],
                "sshd",
                2,
                "reached after a failed password",
            ),
            // Debian's layout with the jump one too far: it skips pam_ecp.
            (
                &[(
                    "common-auth",
                    "auth [success=2 default=ignore] pam_unix.so\n\
                     auth requisite pam_deny.so\n\
                     auth required pam_ecp.so\n\
                     auth required pam_permit.so\n",
                )],
                "common-auth",
                3,
                "a right password alone completes the login",
            ),
            // A "skip the second factor from the LAN" recipe: pam_access
            // jumping over pam_ecp.
            (
                &[(
                    "sshd",
                    "auth requisite pam_unix.so\n\
                     auth [success=1 default=ignore] pam_access.so accessfile=/etc/security/lan.conf\n\
                     auth required pam_ecp.so\n\
                     auth required pam_permit.so\n",
                )],
                "sshd",
                3,
                "pam_access.so at ",
            ),
            // Another factor that is sufficient on its own.
            (
                &[(
                    "sudo",
                    "auth requisite pam_unix.so\nauth sufficient pam_u2f.so\nauth required pam_ecp.so\n",
                )],
                "sudo",
                3,
                "the login can complete without pam_ecp: pam_u2f.so",
            ),
            // Fails closed only on a wrong signature: ecpd down lets it through.
            (
                &[(
                    "sshd",
                    "auth requisite pam_unix.so\n\
                     auth [success=ok auth_err=die default=ignore] pam_ecp.so\n\
                     auth required pam_permit.so\n",
                )],
                "sshd",
                2,
                "answering authinfo_unavail (ecpd down or unreachable)",
            ),
            // libpam reads controls case-insensitively.
            (
                &[(
                    "sshd",
                    "auth requisite pam_unix.so\n\
                     auth Sufficient pam_sss.so use_first_pass\n\
                     auth required pam_ecp.so\n",
                )],
                "sshd",
                3,
                "a right password alone completes the login before pam_ecp runs (pam_sss.so",
            ),
            // Two password modules with their own jumps: the second one's
            // jump passes over pam_ecp.
            (
                &[(
                    "login",
                    "auth [success=2 default=ignore] pam_unix.so\n\
                     auth [success=3 default=ignore] pam_sss.so use_first_pass\n\
                     auth requisite pam_deny.so\n\
                     auth required pam_ecp.so\n\
                     auth sufficient pam_permit.so\n\
                     auth required pam_permit.so\n",
                )],
                "login",
                4,
                "a right password alone completes the login before pam_ecp runs (pam_sss.so",
            ),
            // The key alone: the password's failure is ignored.
            (
                &[(
                    "sudo",
                    "auth optional pam_unix.so\nauth required pam_ecp.so\n",
                )],
                "sudo",
                2,
                "the password is not required",
            ),
            // Blanks around '=' are libpam's too.
            (
                &[(
                    "sshd",
                    "auth requisite pam_unix.so\nauth [success = ok default = ignore] pam_ecp.so\n",
                )],
                "sshd",
                2,
                "a failed pam_ecp still lets the login through",
            ),
            (
                &[(
                    "sshd",
                    "auth requisite pam_unix.so\nauth required pam_ecp.so mode=keyfile\n",
                )],
                "sshd",
                2,
                "sshd uses mode=keyfile",
            ),
            (
                &[(
                    "sshd",
                    "auth requisite pam_unix.so\nauth required pam_ecp.so mode=agent\n",
                )],
                "sshd",
                2,
                "sshd uses mode=agent",
            ),
            (
                &[
                    ("common-auth", DEBIAN_COMMON_AUTH),
                    ("sudo", "@include common-auth\n"),
                ],
                "sudo",
                7,
                "\"nouserok\" is still set while users are enrolled",
            ),
            // sshd runs PAM as root: pam_rootok lets everyone in.
            (
                &[(
                    "sshd",
                    "auth sufficient pam_rootok.so\n\
                     auth requisite pam_unix.so\n\
                     auth required pam_ecp.so\n",
                )],
                "sshd",
                3,
                "pam_rootok.so at ",
            ),
            // A missing or unloadable pam_ecp answers module_unknown,
            // which default=ignore lets through on the password alone.
            (
                &[(
                    "sshd",
                    "auth requisite pam_unix.so\n\
                     auth [success=ok auth_err=bad authinfo_unavail=bad user_unknown=bad default=ignore] pam_ecp.so\n",
                )],
                "sshd",
                2,
                "answering module_unknown (pam_ecp.so missing or failing to load)",
            ),
            // sshd's third wrong password on one handle is PAM_MAXTRIES,
            // ignored here: the key alone logs in.
            (
                &[(
                    "sshd",
                    "auth [success=ok auth_err=die user_unknown=die authinfo_unavail=die default=ignore] pam_unix.so\n\
                     auth required pam_ecp.so\n",
                )],
                "sshd",
                2,
                "the password is not required: pam_ecp's success completes the login even with pam_unix.so at",
            ),
            // pam_sss with ignore_unknown_user answers PAM_IGNORE, which
            // requisite ignores: the key alone.
            (
                &[(
                    "sshd",
                    "auth requisite pam_sss.so ignore_unknown_user\nauth required pam_ecp.so\n",
                )],
                "sshd",
                2,
                "answering ignore; a password module that may answer PAM_IGNORE needs its own action",
            ),
            // libpam keeps the last setting of a value.
            (
                &[(
                    "sshd",
                    "auth requisite pam_unix.so\n\
                     auth [success=ok auth_err=bad auth_err=ignore default=bad] pam_ecp.so\n",
                )],
                "sshd",
                2,
                "answering auth_err (a wrong or missing signature)",
            ),
            // A jump on a code other than success or failure.
            (
                &[(
                    "sshd",
                    "auth requisite pam_unix.so\n\
                     auth [success=ignore perm_denied=1 default=ignore] pam_access.so\n\
                     auth required pam_ecp.so\n\
                     auth required pam_permit.so\n",
                )],
                "sshd",
                3,
                "pam_access.so at ",
            ),
            // pam_systemd_home is a password module: sufficient, it ends
            // the stack before pam_ecp.
            (
                &[(
                    "login",
                    "auth sufficient pam_systemd_home.so\n\
                     auth requisite pam_unix.so\n\
                     auth required pam_ecp.so\n",
                )],
                "login",
                3,
                "a right password alone completes the login before pam_ecp runs (pam_systemd_home.so",
            ),
            // Control values are case-sensitive: this one is unreadable.
            (
                &[(
                    "sshd",
                    "auth requisite pam_unix.so\nauth [SUCCESS=ok default=bad] pam_ecp.so\n",
                )],
                "sshd",
                2,
                "libpam cannot read the control \"[SUCCESS=ok default=bad]\"",
            ),
        ];
        for (files, service, line, says) in table {
            let found = findings(files, Some(true));
            assert!(
                found
                    .iter()
                    .any(|(s, l, why)| s == service && l == line && why.contains(says)),
                "{files:?}: expected {service}:{line} \"{says}\", got {found:#?}"
            );
        }
    }

    #[test]
    fn lines_libpam_cannot_use_fail_and_still_count_for_jumps() {
        // A missing include is a failing line where it stands: the stack
        // after it still runs, and pam_ecp is still judged.
        let found = findings(
            &[(
                "sshd",
                "auth required pam_unix.so\nauth include no-such-file\nauth required pam_ecp.so\n",
            )],
            Some(false),
        );
        assert!(
            found
                .iter()
                .any(|(_, line, why)| *line == 3 && why.contains("reached after a failed password")),
            "{found:#?}"
        );
        // The unreadable control [success=bogus] is one failing line that
        // the jump of 2 counts, so it lands on pam_ecp; were the line
        // dropped, it would land past pam_ecp on pam_permit. The line
        // itself is reported: it fails every login.
        let found = findings(
            &[(
                "sshd",
                "auth [success=2 default=ignore] pam_unix.so\n\
                 auth [success=bogus] pam_env.so\n\
                 auth requisite pam_deny.so\n\
                 auth required pam_ecp.so\n\
                 auth required pam_permit.so\n",
            )],
            Some(false),
        );
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].1, 2);
        assert!(found[0].2.contains("cannot read the control"), "{found:#?}");
        // A backslash with blanks after it still continues the line, and
        // of two settings of `default` the first is the one that counts.
        let found = findings(
            &[(
                "sshd",
                "auth [default=die default=ignore] \\  \n   pam_unix.so\nauth required pam_ecp.so\n",
            )],
            Some(false),
        );
        assert_eq!(found, vec![], "{found:#?}");
    }

    /// Ubuntu's polkit-1 and others live in /usr/lib/pam.d: libpam reads
    /// a service (and an included file) there when /etc/pam.d has none,
    /// and the /etc/pam.d file when it has one.
    #[test]
    fn vendor_services_and_includes_are_read_unless_etc_has_them() {
        let etc = tempfile::tempdir().unwrap();
        let vendor = tempfile::tempdir().unwrap();
        let gated = "auth [success=1 default=ignore] pam_unix.so\n\
                     auth requisite pam_deny.so\n\
                     auth required pam_permit.so\n\
                     auth required pam_ecp.so\n";
        let ungated = "auth optional pam_unix.so\nauth required pam_ecp.so\n";
        // polkit-1 only in the vendor directory, including a part that
        // is only there too; sudo in both (/etc wins).
        std::fs::write(vendor.path().join("polkit-1"), "auth include vendor-auth\n").unwrap();
        std::fs::write(vendor.path().join("vendor-auth"), ungated).unwrap();
        std::fs::write(vendor.path().join("sudo"), ungated).unwrap();
        std::fs::write(etc.path().join("sudo"), gated).unwrap();
        let context = Context {
            users_enrolled: None,
            vendor_dirs: vec![vendor.path().to_path_buf()],
        };
        let services = lint_dir(etc.path(), &context).unwrap();
        let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["polkit-1", "sudo"]);
        let polkit = &services[0];
        assert_eq!(polkit.uses[0].0.file, vendor.path().join("vendor-auth"));
        assert!(!polkit.findings.is_empty(), "{:?}", polkit.findings);
        assert!(
            services[1].findings.is_empty(),
            "{:?}",
            services[1].findings
        );
        assert_eq!(services[1].uses[0].0.file, etc.path().join("sudo"));

        // Debian's @include looks in /etc/pam.d only: a vendor-only part
        // named that way cannot be read, and libpam fails the line.
        std::fs::write(
            vendor.path().join("polkit-1"),
            "@include vendor-auth\nauth required pam_unix.so\n",
        )
        .unwrap();
        let services = lint_dir(etc.path(), &context).unwrap();
        assert!(
            services.iter().all(|s| s.name != "polkit-1"),
            "{services:?}"
        );

        // Without the vendor directory, polkit-1 is not seen at all.
        let context = Context {
            users_enrolled: None,
            vendor_dirs: Vec::new(),
        };
        let services = lint_dir(etc.path(), &context).unwrap();
        assert_eq!(services.len(), 1);
    }

    #[test]
    fn included_parts_are_not_services_and_includes_are_followed() {
        let services = lint(
            &[
                ("common-auth", DEBIAN_COMMON_AUTH),
                ("sudo", "@include common-auth\n"),
                ("cron", "auth required pam_env.so\n"),
                ("sshd.dpkg-old", "auth required pam_ecp.so\n"),
            ],
            None,
        );
        let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["sudo"]);
        assert_eq!(services[0].uses.len(), 1);
        assert!(services[0].uses[0].0.file.ends_with("common-auth"));
        assert_eq!(services[0].uses[0].1, "auto");
    }

    #[test]
    fn continued_lines_comments_and_include_loops_are_read_like_libpam() {
        let found = findings(
            &[
                ("a", "auth include b\n"),
                ("b", "auth include a\n"),
                (
                    "sshd",
                    "auth required \\\n   pam_unix.so # the password\n\
                     auth include a\n\
                     auth required pam_ecp.so\n",
                ),
            ],
            Some(false),
        );
        // The include loop is a line that fails at every login, reported;
        // pam_ecp is judged past it.
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(
            found[0]
                .2
                .contains("libpam cannot use the line \"include a\""),
            "{found:#?}"
        );
        assert_eq!(found[1].1, 4);
        assert!(found[1].2.contains("pam_unix.so at "), "{found:#?}");
        assert!(
            found[1]
                .2
                .contains("sshd:1 (\"required\") answering auth_err"),
            "{found:#?}"
        );
    }

    #[test]
    fn controls_are_read_exactly_as_libpam_reads_them() {
        use parse::{Action, Control};
        let control = |text: &str| Control::parse(text);
        // The last setting of a value wins; of `default`, the first; an
        // explicit value beats `default` wherever it stands.
        assert_eq!(
            control("[auth_err=bad auth_err=ignore]").action(7),
            Action::Ignore
        );
        let c = control("[default=ignore success=ok default=die]");
        assert_eq!((c.action(0), c.action(9)), (Action::Ok, Action::Ignore));
        let c = control("[default=die success = ok]");
        assert_eq!((c.action(0), c.action(7)), (Action::Ok, Action::Die));
        assert_eq!(
            control("[success=3 default=bad]").action(0),
            Action::Jump(3)
        );
        // Without `default`, unnamed codes are bad, PAM_IGNORE included.
        assert_eq!(control("[success=ok]").action(25), Action::Bad);
        // Keywords are case-insensitive; bracketed names are not, and an
        // unknown value, action or a jump of 0 makes every code bad.
        let required = control("Required");
        assert_eq!(
            (required.action(0), required.action(25), required.action(28)),
            (Action::Ok, Action::Ignore, Action::Bad)
        );
        assert_eq!(control("requisite").action(11), Action::Die);
        assert_eq!(control("sufficient").action(25), Action::Ignore);
        for unreadable in [
            "[SUCCESS=ok]",
            "[succes=ok]",
            "[success=0]",
            "[success=maybe]",
            "[success ok]",
            "requird",
        ] {
            let c = control(unreadable);
            assert!(c.invalid.is_some(), "{unreadable}");
            assert_eq!(c.action(0), Action::Bad, "{unreadable}");
        }
        // The token for code 21 is authtok_recover_err.
        assert_eq!(control("[authtok_recover_err=ok]").action(21), Action::Ok);
        assert!(control("[authtok_recovery_err=ok]").invalid.is_some());
    }

    #[test]
    fn lines_are_assembled_byte_for_byte_as_libpam_1_5_2_does() {
        let dir = tempfile::tempdir().unwrap();
        let lint_bytes = |files: &[(&str, &[u8])]| {
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                std::fs::remove_file(entry.unwrap().path()).unwrap();
            }
            for (name, bytes) in files {
                std::fs::write(dir.path().join(name), bytes).unwrap();
            }
            lint_dir(
                dir.path(),
                &Context {
                    users_enrolled: Some(false),
                    vendor_dirs: Vec::new(),
                },
            )
            .unwrap()
        };
        let says = |services: &[Service], line: usize, text: &str| {
            services.iter().any(|s| {
                s.findings
                    .iter()
                    .any(|f| f.place.line == line && f.why.contains(text))
            })
        };
        // A blank line inside a continuation is skipped and the next line
        // joined: pam_ecp becomes an argument of pam_faildelay, so the
        // service does not use pam_ecp at all.
        let found = lint_bytes(&[(
            "sshd",
            b"auth requisite pam_unix.so\nauth optional pam_faildelay.so delay=2000000 \\\n\nauth required pam_ecp.so\n",
        )]);
        assert!(found.is_empty(), "{found:#?}");
        // A '#' ends the line even after a backslash: the next line is a
        // line of its own.
        let found = lint_bytes(&[(
            "sshd",
            b"auth requisite pam_unix.so \\ # the password\nauth sufficient pam_permit.so\nauth required pam_ecp.so\n",
        )]);
        assert!(says(&found, 3, "pam_permit.so at"), "{found:#?}");
        // A physical line of more than 1023 bytes is read in pieces: what
        // looks like the tail of a comment is a line to libpam.
        let mut long = b"auth requisite pam_unix.so\n#".to_vec();
        long.extend(std::iter::repeat_n(b'x', 1022));
        long.extend_from_slice(b"auth sufficient pam_permit.so\nauth required pam_ecp.so\n");
        let found = lint_bytes(&[("sshd", &long)]);
        assert!(says(&found, 3, "pam_permit.so at"), "{found:#?}");
        // A byte that is no UTF-8 does not hide a file's lines.
        let found = lint_bytes(&[
            (
                "common-auth",
                b"# r\xe9seau\nauth [success=done default=ignore] pam_unix.so\n",
            ),
            ("sshd", b"@include common-auth\nauth required pam_ecp.so\n"),
        ]);
        assert!(
            says(&found, 2, "a right password alone completes the login"),
            "{found:#?}"
        );
        // libpam strips the brackets before it compares keywords.
        let found = lint_bytes(&[(
            "sshd",
            b"auth [requisite] pam_unix.so\nauth [required] pam_ecp.so\n",
        )]);
        assert!(found.iter().all(|s| s.findings.is_empty()), "{found:#?}");
    }
}
