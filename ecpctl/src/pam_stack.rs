//! Reads PAM `auth` stacks the way libpam evaluates them, to tell whether
//! pam_ecp in them is a real second factor behind the password.
//!
//! Each service file is parsed into a tree (`include` and Debian's
//! `@include` spliced in place, `substack` kept as a nested scope, as libpam
//! does), then run through a few scenarios: the password fails; the
//! password is right and pam_ecp fails; both succeed. Modules that are
//! neither a password module nor pam_ecp answer PAM_IGNORE, except
//! pam_deny (fails) and pam_permit (succeeds), so the verdicts depend on
//! the stack's shape, not on guesses about other modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules that check a password (or another knowledge factor) that
/// pam_ecp is meant to stand behind.
const PASSWORD_MODULES: &[&str] = &[
    "pam_unix.so",
    "pam_unix2.so",
    "pam_sss.so",
    "pam_ldap.so",
    "pam_krb5.so",
    "pam_winbind.so",
    "pam_userdb.so",
    "pam_pwdb.so",
];

const ECP_MODULE: &str = "pam_ecp.so";

/// libpam gives up on include chains deeper than this; so do we (and it
/// stops include loops).
const MAX_INCLUDE_DEPTH: usize = 16;

/// Editor and package-manager leftovers that are not services.
const NOT_SERVICES: &[&str] = &[".dpkg-old", ".dpkg-dist", ".dpkg-new", ".ucf-old", "~"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Ignore,
    Bad,
    Die,
    Ok,
    Done,
    Reset,
    Jump(usize),
}

/// What a module returns in a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Success,
    AuthErr,
    Ignore,
}

impl Answer {
    fn key(self) -> &'static str {
        match self {
            Answer::Success => "success",
            Answer::AuthErr => "auth_err",
            Answer::Ignore => "ignore",
        }
    }
}

#[derive(Debug, Clone)]
struct Control {
    /// As written, for messages: `required`, `[success=1 default=ignore]`.
    written: String,
    actions: BTreeMap<String, Action>,
}

impl Control {
    fn parse(written: &str) -> Option<Control> {
        let pairs: &[(&str, &str)] = match written {
            "required" => &[
                ("success", "ok"),
                ("new_authtok_reqd", "ok"),
                ("ignore", "ignore"),
                ("default", "bad"),
            ],
            "requisite" => &[
                ("success", "ok"),
                ("new_authtok_reqd", "ok"),
                ("ignore", "ignore"),
                ("default", "die"),
            ],
            "sufficient" => &[
                ("success", "done"),
                ("new_authtok_reqd", "done"),
                ("default", "ignore"),
            ],
            "optional" => &[
                ("success", "ok"),
                ("new_authtok_reqd", "ok"),
                ("default", "ignore"),
            ],
            _ => &[],
        };
        let mut actions = BTreeMap::new();
        if !pairs.is_empty() {
            for (value, action) in pairs {
                actions.insert(value.to_string(), parse_action(action)?);
            }
        } else {
            let inner = written.strip_prefix('[')?.strip_suffix(']')?;
            for pair in inner.split_whitespace() {
                let (value, action) = pair.split_once('=')?;
                actions.insert(value.to_ascii_lowercase(), parse_action(action)?);
            }
        }
        Some(Control {
            written: written.to_owned(),
            actions,
        })
    }

    fn action(&self, answer: Answer) -> Action {
        self.actions
            .get(answer.key())
            .or_else(|| self.actions.get("default"))
            .copied()
            .unwrap_or(Action::Bad)
    }

    fn is_keyword(&self, keyword: &str) -> bool {
        self.written == keyword
    }
}

fn parse_action(action: &str) -> Option<Action> {
    Some(match action.to_ascii_lowercase().as_str() {
        "ignore" => Action::Ignore,
        "bad" => Action::Bad,
        "die" => Action::Die,
        "ok" => Action::Ok,
        "done" => Action::Done,
        "reset" => Action::Reset,
        n => Action::Jump(n.parse().ok()?),
    })
}

/// Where a line is written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Place {
    pub file: PathBuf,
    pub line: usize,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

#[derive(Debug, Clone)]
struct ModuleLine {
    place: Place,
    control: Control,
    /// The file name of the module, without its directory.
    module: String,
    args: Vec<String>,
}

impl ModuleLine {
    fn is_ecp(&self) -> bool {
        self.module == ECP_MODULE
    }
    fn is_password(&self) -> bool {
        PASSWORD_MODULES.contains(&self.module.as_str())
    }
    fn option(&self, name: &str) -> Option<&str> {
        self.args.iter().find_map(|a| {
            a.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
                .or((a == name).then_some(""))
        })
    }
}

#[derive(Debug, Clone)]
enum Entry {
    Module(ModuleLine),
    Substack(Vec<Entry>),
}

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
}

/// Lints every service in `dir` whose auth stack uses pam_ecp.
pub fn lint_dir(dir: &Path, context: &Context) -> std::io::Result<Vec<Service>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| !t.is_dir()).unwrap_or(false))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && !NOT_SERVICES.iter().any(|s| n.ends_with(s)))
        .collect();
    names.sort();
    let reader = Reader { dir };
    // A file that another file includes is a part, not a service of its
    // own: linting common-auth alone would miss what its includers add.
    let included: BTreeSet<PathBuf> = names
        .iter()
        .flat_map(|n| reader.included_by(&dir.join(n)))
        .collect();
    let mut services = Vec::new();
    for name in names {
        let path = dir.join(&name);
        if included.contains(&path) {
            continue;
        }
        let stack = reader.stack(&path, 0);
        let uses: Vec<(Place, String)> = ecp_lines(&stack)
            .into_iter()
            .map(|l| {
                let mode = l.option("mode").unwrap_or("auto").to_owned();
                (l.place.clone(), mode)
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

struct Reader<'a> {
    dir: &'a Path,
}

impl Reader<'_> {
    /// Where an include argument points: relative names live in the PAM
    /// directory, and so do absolute /etc/pam.d ones when another
    /// directory is being checked.
    fn resolve(&self, name: &str) -> PathBuf {
        let path = Path::new(name);
        if path.is_absolute() {
            match path.strip_prefix("/etc/pam.d") {
                Ok(rest) => self.dir.join(rest),
                Err(_) => path.to_path_buf(),
            }
        } else {
            self.dir.join(path)
        }
    }

    fn included_by(&self, file: &Path) -> Vec<PathBuf> {
        let Ok(text) = std::fs::read_to_string(file) else {
            return Vec::new();
        };
        logical_lines(&text)
            .into_iter()
            .filter_map(|(_, words)| match words.as_slice() {
                [at, name, ..] if at == "@include" => Some(self.resolve(name)),
                [_, control, name, ..] if control == "include" || control == "substack" => {
                    Some(self.resolve(name))
                }
                _ => None,
            })
            .collect()
    }

    /// The auth stack of `file`, includes spliced in, substacks nested.
    fn stack(&self, file: &Path, depth: usize) -> Vec<Entry> {
        let mut entries = Vec::new();
        if depth > MAX_INCLUDE_DEPTH {
            return entries;
        }
        let Ok(text) = std::fs::read_to_string(file) else {
            return entries;
        };
        for (line, words) in logical_lines(&text) {
            if words[0] == "@include" {
                if let Some(name) = words.get(1) {
                    entries.extend(self.stack(&self.resolve(name), depth + 1));
                }
                continue;
            }
            let kind = words[0].trim_start_matches('-').to_ascii_lowercase();
            if kind != "auth" || words.len() < 3 {
                continue;
            }
            let control = words[1].to_ascii_lowercase();
            match control.as_str() {
                "include" => entries.extend(self.stack(&self.resolve(&words[2]), depth + 1)),
                "substack" => entries.push(Entry::Substack(
                    self.stack(&self.resolve(&words[2]), depth + 1),
                )),
                _ => {
                    // A control libpam cannot read makes the line fail
                    // closed there; it is no finding of ours.
                    let Some(control) = Control::parse(&words[1]) else {
                        continue;
                    };
                    let module = Path::new(&words[2])
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    entries.push(Entry::Module(ModuleLine {
                        place: Place {
                            file: file.to_path_buf(),
                            line,
                        },
                        control,
                        module,
                        args: words[3..].to_vec(),
                    }));
                }
            }
        }
        entries
    }
}

/// Joins backslash-continued lines, drops comments, splits words (a
/// bracketed control stays one word); yields the first line number.
fn logical_lines(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    let mut first = 0;
    for (index, raw) in text.lines().enumerate() {
        if pending.is_empty() {
            first = index + 1;
        }
        let raw = raw.split('#').next().unwrap_or("");
        if let Some(head) = raw.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(raw);
        let words = split_words(&pending);
        pending.clear();
        if !words.is_empty() {
            out.push((first, words));
        }
    }
    out
}

fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        let end = if rest.starts_with('[') {
            rest.find(']').map(|i| i + 1).unwrap_or(rest.len())
        } else {
            rest.find(char::is_whitespace).unwrap_or(rest.len())
        };
        words.push(rest[..end].to_owned());
        rest = rest[end..].trim_start();
    }
    words
}

fn ecp_lines(stack: &[Entry]) -> Vec<&ModuleLine> {
    let mut out = Vec::new();
    for entry in stack {
        match entry {
            Entry::Module(m) if m.is_ecp() => out.push(m),
            Entry::Module(_) => {}
            Entry::Substack(inner) => out.extend(ecp_lines(inner)),
        }
    }
    out
}

/// The modules in the order libpam meets them when nothing jumps.
fn in_order(stack: &[Entry]) -> Vec<&ModuleLine> {
    let mut out = Vec::new();
    for entry in stack {
        match entry {
            Entry::Module(m) => out.push(m),
            Entry::Substack(inner) => out.extend(in_order(inner)),
        }
    }
    out
}

/// What the password modules and pam_ecp answer in one run.
#[derive(Clone, Copy)]
struct Scenario {
    password: Answer,
    ecp: Answer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Impression {
    Undecided,
    Positive,
    Negative,
}

/// The state libpam carries through a stack, and what we saw on the way.
struct Run<'a> {
    scenario: Scenario,
    impression: Impression,
    granted: bool,
    /// pam_ecp lines reached, each with the last password module run
    /// before it.
    reached: Vec<(&'a ModuleLine, Option<&'a ModuleLine>)>,
    last_password: Option<&'a ModuleLine>,
    /// The line whose `done` or `die` ended the whole stack.
    ended_by: Option<&'a ModuleLine>,
}

enum Flow {
    Continue,
    Stop,
}

impl<'a> Run<'a> {
    fn new(scenario: Scenario) -> Self {
        Run {
            scenario,
            impression: Impression::Undecided,
            granted: false,
            reached: Vec::new(),
            last_password: None,
            ended_by: None,
        }
    }

    fn answer(&mut self, m: &'a ModuleLine) -> Answer {
        if m.is_ecp() {
            self.reached.push((m, self.last_password));
            self.scenario.ecp
        } else if m.is_password() {
            self.last_password = Some(m);
            self.scenario.password
        } else {
            match m.module.as_str() {
                "pam_deny.so" => Answer::AuthErr,
                "pam_permit.so" => Answer::Success,
                _ => Answer::Ignore,
            }
        }
    }

    /// libpam's dispatch loop (pam_dispatch.c) over one scope. `Stop`
    /// means a `die` or `done` ended this scope.
    fn scope(&mut self, entries: &'a [Entry]) -> Flow {
        let start = (self.impression, self.granted);
        let mut index = 0;
        while index < entries.len() {
            let module = match &entries[index] {
                Entry::Substack(inner) => {
                    // die and done end only the substack.
                    self.scope(inner);
                    index += 1;
                    continue;
                }
                Entry::Module(m) => m,
            };
            let answer = self.answer(module);
            let success = answer == Answer::Success;
            match module.control.action(answer) {
                Action::Ignore => {}
                Action::Ok | Action::Done => {
                    let may_set = self.impression == Impression::Undecided
                        || (self.impression == Impression::Positive && self.granted);
                    if may_set && answer != Answer::Ignore {
                        self.impression = Impression::Positive;
                        self.granted = success;
                    }
                    if module.control.action(answer) == Action::Done
                        && self.impression == Impression::Positive
                    {
                        self.ended_by = Some(module);
                        return Flow::Stop;
                    }
                }
                action @ (Action::Bad | Action::Die) => {
                    if self.impression != Impression::Negative {
                        self.impression = Impression::Negative;
                        self.granted = false;
                    }
                    if action == Action::Die {
                        self.ended_by = Some(module);
                        return Flow::Stop;
                    }
                }
                Action::Reset => {
                    (self.impression, self.granted) = start;
                }
                Action::Jump(n) => index += n,
            }
            index += 1;
        }
        Flow::Continue
    }

    fn logged_in(&self) -> bool {
        self.impression != Impression::Undecided && self.granted
    }
}

fn run(stack: &[Entry], scenario: Scenario) -> Run<'_> {
    let mut run = Run::new(scenario);
    let _ = run.scope(stack);
    run
}

fn lint_stack(service: &str, stack: &[Entry], context: &Context) -> Vec<Finding> {
    let mut findings = BTreeSet::new();
    let order = in_order(stack);
    let has_password = order.iter().any(|m| m.is_password());
    let password_fails = run(
        stack,
        Scenario {
            password: Answer::AuthErr,
            ecp: Answer::AuthErr,
        },
    );
    let ecp_fails = run(
        stack,
        Scenario {
            password: Answer::Success,
            ecp: Answer::AuthErr,
        },
    );
    for (position, ecp) in order.iter().enumerate().filter(|(_, m)| m.is_ecp()) {
        let mut say = |why: String| {
            findings.insert(Finding {
                place: ecp.place.clone(),
                why,
            });
        };
        let lone = ecp.control.is_keyword("sufficient") || ecp.control.is_keyword("optional");
        if ecp.control.is_keyword("sufficient") {
            say(
                "pam_ecp is \"sufficient\": its success alone can end the stack and its \
                 failure is ignored, so it is a lone factor or none; make it \"required\" \
                 after a \"requisite\" password module"
                    .into(),
            );
        }
        if ecp.control.is_keyword("optional") {
            say(
                "pam_ecp is \"optional\": its result is ignored whenever another module \
                 decides, so the second factor is not enforced; make it \"required\""
                    .into(),
            );
        }
        if !order[..position].iter().any(|m| m.is_password()) {
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
        } else if let Some((_, password)) = password_fails
            .reached
            .iter()
            .find(|(reached, _)| std::ptr::eq(*reached, *ecp))
        {
            let culprit = match password {
                Some(p) => format!("{} at {} is \"{}\"", p.module, p.place, p.control.written),
                None => "the password module does not end the stack".into(),
            };
            say(format!(
                "pam_ecp is reached after a failed password ({culprit}): anyone can make \
                 ecpd issue challenges and count failures for a user without knowing the \
                 password; use \"requisite\" (or \"[success=ok default=die]\") or jump to \
                 a \"requisite pam_deny.so\""
            ));
        }
        let reached = ecp_fails
            .reached
            .iter()
            .any(|(reached, _)| std::ptr::eq(*reached, *ecp));
        if has_password && !reached && ecp_fails.logged_in() {
            let how = ecp_fails
                .ended_by
                .map(|m| {
                    format!(
                        " ({} at {} is \"{}\")",
                        m.module, m.place, m.control.written
                    )
                })
                .unwrap_or_default();
            say(format!(
                "a right password alone completes the login before pam_ecp runs{how}: \
                 there is no second factor"
            ));
        } else if reached && ecp_fails.logged_in() && !lone {
            say(format!(
                "a failed pam_ecp still lets the login through (its control is \"{}\"): \
                 make it \"required\"",
                ecp.control.written
            ));
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
    }
    findings.into_iter().collect()
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
            // su: root skips everything, as intended; others are gated.
            &[(
                "su",
                "auth sufficient pam_rootok.so\n\
                 auth requisite pam_unix.so\n\
                 auth required pam_ecp.so mode=keyfile\n",
            )],
        ];
        for files in good {
            assert_eq!(findings(files, Some(false)), vec![], "{files:?}");
        }
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
                "is \"sufficient\"",
            ),
            (
                &[(
                    "sudo",
                    "auth requisite pam_unix.so\nauth optional pam_ecp.so\n",
                )],
                "sudo",
                2,
                "is \"optional\"",
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
                &[
                    ("common-auth", DEBIAN_COMMON_AUTH),
                    ("sudo", "@include common-auth\n"),
                ],
                "sudo",
                7,
                "\"nouserok\" is still set while users are enrolled",
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
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].1, 4);
        assert!(found[0].2.contains("pam_unix.so at "), "{found:#?}");
        assert!(found[0].2.contains("sshd:1 is \"required\""), "{found:#?}");
    }
}
