//! Reading PAM service files into `auth` stacks the way libpam does:
//! `include` and Debian's `@include` spliced in place, `substack` kept as a
//! nested scope, controls read case-insensitively, and a line libpam cannot
//! use kept as a line that always fails (so jumps still count it).

use std::collections::BTreeMap;
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

/// Where libpam looks for a service or included file after /etc/pam.d
/// (distribution defaults that /etc/pam.d overrides).
const VENDOR_DIRS: &[&str] = &["/usr/lib/pam.d", "/usr/share/pam.d", "/usr/etc/pam.d"];

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

#[derive(Debug, Clone)]
pub struct Control {
    /// As written, for messages: `required`, `[success=1 default=ignore]`.
    pub written: String,
    actions: BTreeMap<String, Action>,
}

impl Control {
    /// libpam's meaning of each keyword (pam_handlers.c), or the pairs of
    /// a bracketed control; None when libpam could not read it either.
    pub fn parse(written: &str) -> Option<Control> {
        let keyword = written.to_ascii_lowercase();
        let pairs: &[(&str, &str)] = match keyword.as_str() {
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
            let inner = keyword.strip_prefix('[')?.strip_suffix(']')?;
            // libpam allows blanks around '='.
            let normalised = inner
                .split('=')
                .map(str::trim)
                .collect::<Vec<_>>()
                .join("=");
            for pair in normalised.split_whitespace() {
                let (value, action) = pair.split_once('=')?;
                // The first setting of a value is the one libpam keeps.
                let action = parse_action(action)?;
                actions.entry(value.to_owned()).or_insert(action);
            }
        }
        Some(Control {
            written: written.to_owned(),
            actions,
        })
    }

    /// A line libpam could not load: it fails, and counts as failed.
    fn must_fail(written: &str) -> Control {
        let mut actions = BTreeMap::new();
        actions.insert("default".to_owned(), Action::Bad);
        Control {
            written: written.to_owned(),
            actions,
        }
    }

    /// The action for a return value; a value without its own entry and
    /// without `default` is `bad`, as in libpam.
    pub fn action(&self, value: &str) -> Action {
        self.actions
            .get(value)
            .or_else(|| self.actions.get("default"))
            .copied()
            .unwrap_or(Action::Bad)
    }

    pub fn is_keyword(&self, keyword: &str) -> bool {
        self.written.eq_ignore_ascii_case(keyword)
    }
}

fn parse_action(action: &str) -> Option<Action> {
    Some(match action {
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

/// What a module is to the linter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ecp,
    Password,
    Deny,
    Permit,
    /// pam_rootok: root skipping authentication is by design.
    RootOk,
    /// A line libpam cannot load (bad control, missing include).
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
            if kind != "auth" {
                continue;
            }
            if words.len() < 3 {
                entries.push(must_fail(place, &words.join(" ")));
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
                    let Some(parsed) = Control::parse(&words[1]) else {
                        entries.push(must_fail(place, &words[1]));
                        continue;
                    };
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
            return vec![must_fail(place.clone(), &format!("{how} {name}"))];
        }
        self.stack_at(&path, depth + 1)
    }
}

fn must_fail(place: Place, written: &str) -> Entry {
    Entry::Module(ModuleLine {
        place,
        control: Control::must_fail(written),
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
