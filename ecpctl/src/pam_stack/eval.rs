//! libpam's dispatch loop (pam_dispatch.c) over an `auth` stack, run for
//! every combination of answers the modules in it can give, recording
//! what the linter needs to judge pam_ecp: where it is reached, what it
//! answered, and how each run ended.

use super::parse::{Action, Entry, Kind, ModuleLine, CODES};

/// A module's return value: a PAM return code by number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer(pub usize);

impl Answer {
    pub const SUCCESS: Answer = Answer(0);
    pub const PERM_DENIED: Answer = Answer(6);
    pub const AUTH_ERR: Answer = Answer(7);
    pub const AUTHINFO_UNAVAIL: Answer = Answer(9);
    pub const USER_UNKNOWN: Answer = Answer(10);
    pub const MAXTRIES: Answer = Answer(11);
    pub const IGNORE: Answer = Answer(25);
    pub const MODULE_UNKNOWN: Answer = Answer(28);
    const INCOMPLETE: Answer = Answer(31);

    /// The name a control gives it: `auth_err`.
    pub fn key(self) -> &'static str {
        CODES.get(self.0).copied().unwrap_or("?")
    }
}

/// Failure codes in the order one is picked to stand for "any other code"
/// (the ones an admin recognises first).
const OTHER_CODES: [Answer; 8] = [
    Answer::AUTH_ERR,
    Answer::AUTHINFO_UNAVAIL,
    Answer::USER_UNKNOWN,
    Answer::MODULE_UNKNOWN,
    Answer::PERM_DENIED,
    Answer::MAXTRIES,
    Answer(4),  // system_err
    Answer(19), // conv_err
];

/// Whether `module` may answer PAM_IGNORE in `auth`: pam_ecp only with
/// `nouserok` or `root_console_rescue`; pam_sss and pam_ldap with their `ignore_*` options;
/// pam_unix and the other local password modules never; modules ecp knows
/// nothing about, and pam_systemd_home (for users it does not manage), may.
fn may_ignore(module: &ModuleLine) -> bool {
    match (module.kind, module.module.as_str()) {
        (Kind::Ecp, _) => {
            module.option("nouserok").is_some() || module.option("root_console_rescue").is_some()
        }
        (Kind::Password, "pam_sss.so" | "pam_ldap.so") => {
            module.option("ignore_unknown_user").is_some()
                || module.option("ignore_authinfo_unavail").is_some()
        }
        (Kind::Password, "pam_krb5.so") => {
            module.option("minimum_uid").is_some() || module.option("ignore_root").is_some()
        }
        (Kind::Password, "pam_systemd_home.so") => true,
        (Kind::Password, _) => false,
        (Kind::Other, _) => true,
        (Kind::Deny | Kind::Permit | Kind::RootOk | Kind::MustFail, _) => false,
    }
}

/// The answers worth trying for `module`: every return code libpam can
/// hand the dispatcher, grouped by what the dispatcher does with it (its
/// action, and whether it is PAM_SUCCESS or PAM_IGNORE), one code standing
/// for each group. Besides what the module is known to answer, that is
/// every code its control names and one code that falls to `default`; and
/// any module may be missing or fail to load (PAM_MODULE_UNKNOWN).
fn answers(module: &ModuleLine) -> Vec<Answer> {
    use Answer as A;
    let mut known: Vec<Answer> = match module.kind {
        Kind::MustFail => return vec![A::PERM_DENIED],
        Kind::Ecp => vec![
            A::SUCCESS,
            A::AUTH_ERR,
            A::AUTHINFO_UNAVAIL,
            A::USER_UNKNOWN,
            A::MODULE_UNKNOWN,
        ],
        Kind::Password => vec![
            A::SUCCESS,
            A::AUTH_ERR,
            A::USER_UNKNOWN,
            A::AUTHINFO_UNAVAIL,
            A::MAXTRIES,
            A::MODULE_UNKNOWN,
        ],
        Kind::Deny => vec![A::AUTH_ERR, A::MODULE_UNKNOWN],
        Kind::Permit => vec![A::SUCCESS, A::MODULE_UNKNOWN],
        Kind::RootOk => vec![A::SUCCESS, A::AUTH_ERR, A::MODULE_UNKNOWN],
        Kind::Other => vec![A::SUCCESS, A::AUTH_ERR, A::MODULE_UNKNOWN],
    };
    if may_ignore(module) {
        known.push(A::IGNORE);
    }
    // Modules that can answer anything: what the control names, and
    // whatever else falls to `default`.
    if matches!(module.kind, Kind::Ecp | Kind::Password | Kind::Other) {
        known.extend(
            module
                .control
                .named
                .iter()
                .map(|&code| Answer(code))
                .filter(|&a| a != A::INCOMPLETE && (a != A::IGNORE || may_ignore(module))),
        );
        if let Some(other) = OTHER_CODES
            .iter()
            .find(|a| !module.control.named.contains(&a.0))
        {
            known.push(*other);
        }
    }
    let mut groups: Vec<(Action, bool, bool)> = Vec::new();
    known
        .into_iter()
        .filter(|&answer| {
            let group = (
                module.control.action(answer.0),
                answer == A::SUCCESS,
                answer == A::IGNORE,
            );
            let new = !groups.contains(&group);
            if new {
                groups.push(group);
            }
            new
        })
        .collect()
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

/// Each module line's answers, worked out once per stack rather than at
/// every step of every run (by the line's address: lines do not move
/// while a stack is run).
type AnswerTable = std::collections::HashMap<*const ModuleLine, Vec<Answer>>;

fn answer_table(stack: &[Entry], table: &mut AnswerTable) {
    for entry in stack {
        match entry {
            Entry::Module(m) => {
                table.insert(m as *const ModuleLine, answers(m));
            }
            Entry::Substack(inner) => answer_table(inner, table),
        }
    }
}

/// One run through the stack.
pub struct Run<'a> {
    answers: &'a AnswerTable,
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
    /// The first password module that succeeded.
    first_password_ok: Option<&'a ModuleLine>,
    /// A password module that asks again after `first_password_ok`
    /// succeeded: (that one, the one asking again).
    pub password_asked_again: Option<(&'a ModuleLine, &'a ModuleLine)>,
}

/// Whether a password module takes the password an earlier module read
/// (PAM_AUTHTOK) rather than asking for it: with an option that says so,
/// or by default (pam_sss unless `prompt_always`, pam_systemd_home).
fn reuses_password(module: &ModuleLine) -> bool {
    match module.module.as_str() {
        "pam_sss.so" => module.option("prompt_always").is_none(),
        "pam_systemd_home.so" => true,
        _ => ["use_first_pass", "try_first_pass", "use_authtok"]
            .iter()
            .any(|o| module.option(o).is_some()),
    }
}

enum Flow {
    Continue,
    Stop,
}

impl<'a> Run<'a> {
    fn new(answers: &'a AnswerTable, prefix: Vec<usize>) -> Self {
        Run {
            answers,
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
            first_password_ok: None,
            password_asked_again: None,
        }
    }

    /// The answer of the next module: the prefix's choice, else the first.
    fn choose(&mut self, module: &'a ModuleLine) -> Answer {
        let options = &self.answers[&(module as *const ModuleLine)];
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
            Kind::Password => {
                if let Some(first) = self.first_password_ok {
                    if self.password_asked_again.is_none() && !reuses_password(module) {
                        self.password_asked_again = Some((first, module));
                    }
                }
                if answer == Answer::SUCCESS {
                    self.password_ok = true;
                    self.first_password_ok.get_or_insert(module);
                } else {
                    self.failed_password = Some((module, answer));
                    self.any_failed_password = Some((module, answer));
                }
            }
            Kind::RootOk if answer == Answer::SUCCESS => self.root_ok = true,
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
            let action = module.control.action(answer.0);
            match action {
                Action::Ignore => {}
                Action::Ok | Action::Done => {
                    // Also for PAM_IGNORE: outside a frozen chain libpam
                    // takes it as the status, and the login then fails.
                    let may_set = self.impression == Impression::Undecided
                        || (self.impression == Impression::Positive && self.granted);
                    if may_set {
                        self.impression = Impression::Positive;
                        self.granted = answer == Answer::SUCCESS;
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
                    let remaining = entries.len() - (index + 1);
                    if n > remaining {
                        // "bad jump in stack": a failure, whatever came
                        // before, and the rest of this scope is skipped.
                        self.impression = Impression::Negative;
                        self.granted = false;
                        return Flow::Continue;
                    }
                    let skipped = &entries[index + 1..index + 1 + n];
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
pub fn for_each_run(stack: &[Entry], limit: usize, mut each: impl FnMut(&Run<'_>)) -> bool {
    let mut table = AnswerTable::new();
    answer_table(stack, &mut table);
    let mut prefix = Vec::new();
    for _ in 0..limit {
        let mut run = Run::new(&table, prefix);
        let _ = run.scope(stack);
        each(&run);
        match run.next_prefix() {
            Some(next) => prefix = next,
            None => return true,
        }
    }
    false
}
