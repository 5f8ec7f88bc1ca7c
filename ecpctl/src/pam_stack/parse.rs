//! Reading PAM service files into `auth` stacks the way libpam does:
//! `include` and Debian's `@include` spliced in place, `substack` kept as a
//! nested scope, controls read case-insensitively, and a line libpam cannot
//! use kept as a line that always fails (so jumps still count it).

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
    "pam_systemd_home.so",
];

const ECP_MODULE: &str = "pam_ecp.so";

/// libpam gives up on include chains deeper than this; so do we (and it
/// stops include loops).
const MAX_INCLUDE_DEPTH: usize = 16;

/// Where libpam looks for a service or included file after /etc/pam.d
/// (distribution defaults that /etc/pam.d overrides).
const VENDOR_DIRS: &[&str] = &["/usr/lib/pam.d", "/usr/share/pam.d", "/usr/etc/pam.d"];

/// The PAM return codes by number, as control values name them
/// (libpam's pam_tokens.h; note `authtok_recover_err`).
pub const CODES: [&str; 32] = [
    "success",
    "open_err",
    "symbol_err",
    "service_err",
    "system_err",
    "buf_err",
    "perm_denied",
    "auth_err",
    "cred_insufficient",
    "authinfo_unavail",
    "user_unknown",
    "maxtries",
    "new_authtok_reqd",
    "acct_expired",
    "session_err",
    "cred_unavail",
    "cred_expired",
    "cred_err",
    "no_module_data",
    "conv_err",
    "authtok_err",
    "authtok_recover_err",
    "authtok_lock_busy",
    "authtok_disable_aging",
    "try_again",
    "ignore",
    "abort",
    "authtok_expired",
    "module_unknown",
    "bad_item",
    "conv_again",
    "incomplete",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Ignore,
    Bad,
    Die,
    Ok,
    Done,
    Reset,
    Jump(usize),
}

/// Action names as libpam matches them (case-sensitive, by prefix).
const ACTIONS: [(&str, Action); 6] = [
    ("ignore", Action::Ignore),
    ("ok", Action::Ok),
    ("done", Action::Done),
    ("bad", Action::Bad),
    ("die", Action::Die),
    ("reset", Action::Reset),
];

#[derive(Debug, Clone)]
pub struct Control {
    /// As written, for messages: `required`, `[success=1 default=ignore]`.
    pub written: String,
    /// The action for each return code, as libpam fills its table.
    actions: Box<[Action; 32]>,
    /// Why libpam could not read it (then every code is `bad`).
    pub invalid: Option<String>,
    /// The codes the control names itself (not through `default`).
    pub named: Vec<usize>,
}

impl Control {
    /// The control as libpam reads it (pam_handlers.c, pam_misc.c): the
    /// four keywords case-insensitively; anything else as `value=action`
    /// pairs, case-sensitive, the last setting of a value winning and the
    /// first `default` filling what is left; a control libpam cannot read
    /// makes every code `bad`, so the line always fails.
    pub fn parse(written: &str) -> Control {
        let keyword = |success: Action, ignore: Option<Action>, default: Action| {
            let mut actions = [default; 32];
            actions[0] = success;
            actions[12] = success;
            if let Some(ignore) = ignore {
                actions[25] = ignore;
            }
            Control {
                written: written.to_owned(),
                actions: Box::new(actions),
                invalid: None,
                named: Vec::new(),
            }
        };
        match written.to_ascii_lowercase().as_str() {
            "required" => return keyword(Action::Ok, Some(Action::Ignore), Action::Bad),
            "requisite" => return keyword(Action::Ok, Some(Action::Ignore), Action::Die),
            "optional" => return keyword(Action::Ok, None, Action::Ignore),
            "sufficient" => return keyword(Action::Done, None, Action::Ignore),
            _ => {}
        }
        let inner = written.strip_prefix('[').unwrap_or(written);
        let inner = inner.strip_suffix(']').unwrap_or(inner);
        match parse_pairs(inner) {
            Ok((explicit, default)) => {
                let mut actions = [default.unwrap_or(Action::Bad); 32];
                let mut named = Vec::new();
                for (code, action) in explicit {
                    actions[code] = action;
                    named.push(code);
                }
                named.sort_unstable();
                named.dedup();
                Control {
                    written: written.to_owned(),
                    actions: Box::new(actions),
                    invalid: None,
                    named,
                }
            }
            Err(why) => Control::unreadable(written, why),
        }
    }

    /// A control whose every code is `bad`: what libpam makes of one it
    /// cannot read, and of a line it cannot load.
    fn unreadable(written: &str, why: String) -> Control {
        Control {
            written: written.to_owned(),
            actions: Box::new([Action::Bad; 32]),
            invalid: Some(why),
            named: Vec::new(),
        }
    }

    /// The action for the return code with this number.
    pub fn action(&self, code: usize) -> Action {
        self.actions.get(code).copied().unwrap_or(Action::Bad)
    }
}

/// `value=action` pairs as `_pam_parse_control` reads them: names by
/// prefix, blanks allowed around `=`, jumps as positive decimals. The
/// explicit settings in order (a later one overrides an earlier), and the
/// first `default`.
#[allow(clippy::type_complexity)]
fn parse_pairs(text: &str) -> Result<(Vec<(usize, Action)>, Option<Action>), String> {
    let mut explicit = Vec::new();
    let mut default = None;
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Ok((explicit, default));
        }
        let value = CODES
            .iter()
            .enumerate()
            .map(|(i, name)| (Some(i), *name))
            .chain(std::iter::once((None, "default")))
            .find(|(_, name)| rest.starts_with(name));
        let Some((code, name)) = value else {
            return Err(format!("unknown return value in \"{rest}\""));
        };
        rest = rest[name.len()..].trim_start();
        rest = rest
            .strip_prefix('=')
            .ok_or_else(|| format!("expected '=' after {name}"))?
            .trim_start();
        let action = if let Some((word, action)) = ACTIONS.iter().find(|(w, _)| rest.starts_with(w))
        {
            rest = &rest[word.len()..];
            *action
        } else {
            let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            let jump: usize = rest[..digits]
                .parse()
                .map_err(|_| format!("unknown action for {name}"))?;
            if jump == 0 {
                return Err(format!("a jump of 0 for {name}"));
            }
            rest = &rest[digits..];
            Action::Jump(jump)
        };
        match code {
            Some(code) => explicit.push((code, action)),
            None => {
                default.get_or_insert(action);
            }
        }
    }
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

/// What a module is to the linter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ecp,
    Password,
    Deny,
    Permit,
    /// pam_rootok: root skipping authentication is by design.
    RootOk,
    /// A line libpam cannot load (no module, an unknown type, a missing
    /// include): it answers PAM_PERM_DENIED without running anything.
    MustFail,
    Other,
}

#[derive(Debug, Clone)]
pub struct ModuleLine {
    pub place: Place,
    pub control: Control,
    /// The file name of the module, without its directory.
    pub module: String,
    pub args: Vec<String>,
    pub kind: Kind,
}

impl ModuleLine {
    pub fn option(&self, name: &str) -> Option<&str> {
        self.args.iter().find_map(|a| {
            a.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
                .or((a == name).then_some(""))
        })
    }

    fn kind_of(module: &str) -> Kind {
        match module {
            ECP_MODULE => Kind::Ecp,
            "pam_deny.so" => Kind::Deny,
            "pam_permit.so" => Kind::Permit,
            "pam_rootok.so" => Kind::RootOk,
            m if PASSWORD_MODULES.contains(&m) => Kind::Password,
            _ => Kind::Other,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Entry {
    Module(ModuleLine),
    Substack(Vec<Entry>),
}

pub struct Reader<'a> {
    pub dir: &'a Path,
}

impl Reader<'_> {
    /// Where an include argument points: relative names are looked up in
    /// the PAM directory, then (for /etc/pam.d) in the vendor directories;
    /// absolute /etc/pam.d names land in the directory being checked.
    fn resolve(&self, name: &str) -> PathBuf {
        let path = Path::new(name);
        if path.is_absolute() {
            return match path.strip_prefix("/etc/pam.d") {
                Ok(rest) => self.dir.join(rest),
                Err(_) => path.to_path_buf(),
            };
        }
        let local = self.dir.join(path);
        if local.exists() || self.dir != Path::new("/etc/pam.d") {
            return local;
        }
        VENDOR_DIRS
            .iter()
            .map(|d| Path::new(d).join(path))
            .find(|p| p.exists())
            .unwrap_or(local)
    }

    /// Files `file` includes or runs as a substack.
    pub fn included_by(&self, file: &Path) -> Vec<PathBuf> {
        let Ok(text) = std::fs::read_to_string(file) else {
            return Vec::new();
        };
        logical_lines(&text)
            .into_iter()
            .filter_map(|(_, words)| match words.as_slice() {
                [at, name, ..] if at == "@include" => Some(self.resolve(name)),
                [_, control, name, ..]
                    if control.eq_ignore_ascii_case("include")
                        || control.eq_ignore_ascii_case("substack") =>
                {
                    Some(self.resolve(name))
                }
                _ => None,
            })
            .collect()
    }

    /// The auth stack of `file`, includes spliced in, substacks nested.
    pub fn stack(&self, file: &Path) -> Vec<Entry> {
        self.stack_at(file, 0)
    }

    fn stack_at(&self, file: &Path, depth: usize) -> Vec<Entry> {
        let mut entries = Vec::new();
        let Ok(text) = std::fs::read_to_string(file) else {
            return entries;
        };
        for (line, words) in logical_lines(&text) {
            let place = Place {
                file: file.to_path_buf(),
                line,
            };
            if words[0] == "@include" {
                if let Some(name) = words.get(1) {
                    entries.extend(self.included(name, &place, depth, "@include"));
                }
                continue;
            }
            let kind = words[0].trim_start_matches('-').to_ascii_lowercase();
            match kind.as_str() {
                "auth" => {}
                "account" | "password" | "session" => continue,
                // libpam puts a line of no known type into the stack it
                // is reading, as one that fails.
                _ => {
                    let control = words.get(1).map_or("", String::as_str);
                    entries.push(must_fail(place, &words.join(" "), Control::parse(control)));
                    continue;
                }
            }
            if words.len() < 3 {
                let control = match words.get(1) {
                    Some(control) => Control::parse(control),
                    None => Control::unreadable("", "no control".into()),
                };
                entries.push(must_fail(place, &words.join(" "), control));
                continue;
            }
            let control = words[1].to_ascii_lowercase();
            match control.as_str() {
                "include" => entries.extend(self.included(&words[2], &place, depth, "include")),
                "substack" => {
                    entries.push(Entry::Substack(
                        self.included(&words[2], &place, depth, "substack"),
                    ));
                }
                _ => {
                    let parsed = Control::parse(&words[1]);
                    let module = Path::new(&words[2])
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    entries.push(Entry::Module(ModuleLine {
                        place,
                        control: parsed,
                        kind: ModuleLine::kind_of(&module),
                        module,
                        args: words[3..].to_vec(),
                    }));
                }
            }
        }
        entries
    }

    /// The entries of an included file; a file libpam cannot read (or an
    /// include loop) is one failing line, as libpam makes it.
    fn included(&self, name: &str, place: &Place, depth: usize, how: &str) -> Vec<Entry> {
        let path = self.resolve(name);
        if depth >= MAX_INCLUDE_DEPTH || !path.is_file() {
            let written = format!("{how} {name}");
            let control = Control::unreadable(&written, "cannot be read".into());
            return vec![must_fail(place.clone(), &written, control)];
        }
        self.stack_at(&path, depth + 1)
    }
}

/// A line libpam keeps as one that fails (PAM_PERM_DENIED under its
/// control, or `bad` when even that could not be read).
fn must_fail(place: Place, written: &str, control: Control) -> Entry {
    Entry::Module(ModuleLine {
        place,
        control,
        module: format!("(unusable line: {written})"),
        args: Vec::new(),
        kind: Kind::MustFail,
    })
}

/// Joins backslash-continued lines, drops comments, splits words (a
/// bracketed control stays one word); yields the first line number.
pub fn logical_lines(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    let mut first = 0;
    for (index, raw) in text.lines().enumerate() {
        if pending.is_empty() {
            first = index + 1;
        }
        let raw = raw.split('#').next().unwrap_or("");
        // libpam continues a line at a backslash even with blanks after it.
        if let Some(head) = raw.trim_end().strip_suffix('\\') {
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

/// The modules in the order they are written (includes spliced in).
pub fn in_order(stack: &[Entry]) -> Vec<&ModuleLine> {
    let mut out = Vec::new();
    for entry in stack {
        match entry {
            Entry::Module(m) => out.push(m),
            Entry::Substack(inner) => out.extend(in_order(inner)),
        }
    }
    out
}
