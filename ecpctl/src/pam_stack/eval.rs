//! libpam's dispatch loop (pam_dispatch.c) over an `auth` stack, run for
//! every combination of answers the modules in it can give, recording
//! what the linter needs to judge pam_ecp: where it is reached, what it
//! answered, and how each run ended.

use super::parse::{Action, Entry, Kind, ModuleLine};

/// A module's return value, as PAM control values name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Success,
    AuthErr,
    UserUnknown,
    AuthinfoUnavail,
    Ignore,
}

impl Answer {
    pub fn key(self) -> &'static str {
        match self {
            Answer::Success => "success",
            Answer::AuthErr => "auth_err",
            Answer::UserUnknown => "user_unknown",
            Answer::AuthinfoUnavail => "authinfo_unavail",
            Answer::Ignore => "ignore",
        }
    }
}

/// What each kind of module may answer. pam_ecp answers PAM_IGNORE only
/// with `nouserok` (a user without certificates); a password module may
/// also find no such user or no reachable directory; anything else may
/// succeed, fail or stay out.
fn answers(module: &ModuleLine) -> &'static [Answer] {
    use Answer::*;
    match module.kind {
        Kind::Ecp if module.option("nouserok").is_some() => {
            &[Success, AuthErr, AuthinfoUnavail, UserUnknown, Ignore]
        }
        Kind::Ecp => &[Success, AuthErr, AuthinfoUnavail, UserUnknown],
        Kind::Password => &[Success, AuthErr, UserUnknown, AuthinfoUnavail],
        Kind::Deny | Kind::MustFail => &[AuthErr],
        Kind::Permit => &[Success],
        Kind::RootOk => &[Success, AuthErr],
        Kind::Other => &[Success, AuthErr, Ignore],
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Impression {
    Undecided,
    Positive,
    Negative,
}

/// One pam_ecp line reached in a run.
pub struct Reached<'a> {
    pub ecp: &'a ModuleLine,
    pub answer: Answer,
    /// Whether a password module had succeeded before it.
    pub password_ok: bool,
    /// The last password module that had failed before it, if any.
    pub failed_password: Option<(&'a ModuleLine, Answer)>,
}

/// One run through the stack.
pub struct Run<'a> {
    prefix: Vec<usize>,
    decisions: Vec<(usize, usize)>,
    impression: Impression,
    granted: bool,
    pub reached: Vec<Reached<'a>>,
    pub password_ok: bool,
    pub root_ok: bool,
    failed_password: Option<(&'a ModuleLine, Answer)>,
    /// The last password module that failed, anywhere in the run.
    pub any_failed_password: Option<(&'a ModuleLine, Answer)>,
    /// The line whose `done` ended the stack, with its answer.
    pub ended_by: Option<(&'a ModuleLine, Answer)>,
    /// A line whose jump passed over a pam_ecp line, with its answer.
    pub jumped_over_ecp: Option<(&'a ModuleLine, Answer)>,
}

enum Flow {
    Continue,
    Stop,
}

impl<'a> Run<'a> {
    fn new(prefix: Vec<usize>) -> Self {
        Run {
            prefix,
            decisions: Vec::new(),
            impression: Impression::Undecided,
            granted: false,
            reached: Vec::new(),
            password_ok: false,
            root_ok: false,
            failed_password: None,
            any_failed_password: None,
            ended_by: None,
            jumped_over_ecp: None,
        }
    }

    /// The answer of the next module: the prefix's choice, else the first.
    fn choose(&mut self, module: &'a ModuleLine) -> Answer {
        let options = answers(module);
        let index = self.decisions.len();
        let choice = self.prefix.get(index).copied().unwrap_or(0);
        self.decisions.push((choice, options.len()));
        let answer = options[choice];
        match module.kind {
            Kind::Ecp => self.reached.push(Reached {
                ecp: module,
                answer,
                password_ok: self.password_ok,
                failed_password: self.failed_password,
            }),
            Kind::Password if answer == Answer::Success => self.password_ok = true,
            Kind::Password => {
                self.failed_password = Some((module, answer));
                self.any_failed_password = Some((module, answer));
            }
            Kind::RootOk if answer == Answer::Success => self.root_ok = true,
            _ => {}
        }
        answer
    }

    /// One scope (the stack, or a substack). `Stop` means a `die` or
    /// `done` ended it.
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
            let answer = self.choose(module);
            let action = module.control.action(answer.key());
            match action {
                Action::Ignore => {}
                Action::Ok | Action::Done => {
                    let may_set = self.impression == Impression::Undecided
                        || (self.impression == Impression::Positive && self.granted);
                    if may_set && answer != Answer::Ignore {
                        self.impression = Impression::Positive;
                        self.granted = answer == Answer::Success;
                    }
                    if action == Action::Done && self.impression == Impression::Positive {
                        self.ended_by = Some((module, answer));
                        return Flow::Stop;
                    }
                }
                Action::Bad | Action::Die => {
                    if self.impression != Impression::Negative {
                        self.impression = Impression::Negative;
                        self.granted = false;
                    }
                    if action == Action::Die {
                        self.ended_by = Some((module, answer));
                        return Flow::Stop;
                    }
                }
                Action::Reset => (self.impression, self.granted) = start,
                Action::Jump(n) => {
                    let skipped = &entries[(index + 1).min(entries.len())..]
                        [..n.min(entries.len().saturating_sub(index + 1))];
                    if skipped.iter().any(holds_ecp) {
                        self.jumped_over_ecp = Some((module, answer));
                    }
                    index += n;
                }
            }
            index += 1;
        }
        Flow::Continue
    }

    /// Whether the application is told the user is authenticated.
    pub fn logged_in(&self) -> bool {
        self.impression != Impression::Undecided && self.granted
    }

    /// The prefix of the next run in depth-first order, or None when
    /// every combination has been run.
    fn next_prefix(&self) -> Option<Vec<usize>> {
        let mut digits = self.decisions.clone();
        while let Some((choice, count)) = digits.pop() {
            if choice + 1 < count {
                let mut prefix: Vec<usize> = digits.iter().map(|(c, _)| *c).collect();
                prefix.push(choice + 1);
                return Some(prefix);
            }
        }
        None
    }
}

fn holds_ecp(entry: &Entry) -> bool {
    match entry {
        Entry::Module(m) => m.kind == Kind::Ecp,
        Entry::Substack(inner) => inner.iter().any(holds_ecp),
    }
}

/// Calls `each` with every run of `stack`, at most `limit` of them;
/// returns whether all were run.
pub fn for_each_run<'a>(stack: &'a [Entry], limit: usize, mut each: impl FnMut(&Run<'a>)) -> bool {
    let mut prefix = Vec::new();
    for _ in 0..limit {
        let mut run = Run::new(prefix);
        let _ = run.scope(stack);
        each(&run);
        match run.next_prefix() {
            Some(next) => prefix = next,
            None => return true,
        }
    }
    false
}
