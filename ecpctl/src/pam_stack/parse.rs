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

/// Where libpam looks for a service or included file that /etc/pam.d
/// lacks (distribution defaults that /etc/pam.d overrides): libpam's own
/// /usr/lib/pam.d, and the vendor directories some builds add.
pub const VENDOR_DIRS: &[&str] = &["/usr/lib/pam.d", "/usr/share/pam.d", "/usr/etc/pam.d"];

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
        match keyword_of(written).as_str() {
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
    /// Vendor directories, looked in when `dir` lacks a file.
    pub vendor: &'a [PathBuf],
}

impl Reader<'_> {
    /// Where a service or an include argument points: relative names are
    /// looked up in the PAM directory, then in the vendor directories;
    /// absolute /etc/pam.d names land in the directory being checked.
    pub fn resolve(&self, name: &str) -> PathBuf {
        self.resolve_in(name, true)
    }

    /// Like `resolve`, for the way `how` names the file: Debian's
    /// `@include` looks only in /etc/pam.d (its patch knows no vendor
    /// directory), libpam's `include` and `substack` look in both.
    fn resolve_for(&self, name: &str, how: &str) -> PathBuf {
        self.resolve_in(name, how != "@include")
    }

    fn resolve_in(&self, name: &str, vendor_fallback: bool) -> PathBuf {
        let path = Path::new(name);
        if path.is_absolute() {
            return match path.strip_prefix("/etc/pam.d") {
                Ok(rest) => self.dir.join(rest),
                Err(_) => path.to_path_buf(),
            };
        }
        let local = self.dir.join(path);
        if local.exists() || !vendor_fallback {
            return local;
        }
        self.vendor
            .iter()
            .map(|d| d.join(path))
            .find(|p| p.exists())
            .unwrap_or(local)
    }

    /// Files `file` includes or runs as a substack.
    pub fn included_by(&self, file: &Path) -> Vec<PathBuf> {
        let Ok(bytes) = std::fs::read(file) else {
            return Vec::new();
        };
        logical_lines(&bytes)
            .lines
            .into_iter()
            .filter_map(|(_, words)| match words.as_slice() {
                [at, name, ..] if at == "@include" => Some(self.resolve_for(name, at)),
                [_, control, name, ..]
                    if matches!(keyword_of(control).as_str(), "include" | "substack") =>
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
        let whole = Place {
            file: file.to_path_buf(),
            line: 0,
        };
        let bytes = match std::fs::read(file) {
            Ok(bytes) => bytes,
            Err(e) => {
                let written = format!("{} ({e})", file.display());
                let control = Control::unreadable(&written, "cannot be read".into());
                return vec![must_fail(whole, &written, control)];
            }
        };
        let read = logical_lines(&bytes);
        if let Some(line) = read.stopped_at {
            // libpam keeps what it read before, and the file as a whole
            // fails (its includer gets a failing line).
            let written = format!("{}:{line}", file.display());
            let control = Control::unreadable(
                &written,
                format!(
                    "a continued line longer than {} bytes, or one the file ends in",
                    LINE_BUFFER - 1
                ),
            );
            let place = Place {
                file: file.to_path_buf(),
                line,
            };
            let mut kept = self.entries_of(file, read.lines, depth);
            kept.push(must_fail(place, &written, control));
            return kept;
        }
        entries.extend(self.entries_of(file, read.lines, depth));
        entries
    }

    /// The auth entries of `file`'s assembled lines.
    fn entries_of(
        &self,
        file: &Path,
        lines: Vec<(usize, Vec<String>)>,
        depth: usize,
    ) -> Vec<Entry> {
        let mut entries = Vec::new();
        for (line, words) in lines {
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
            match keyword_of(&words[1]).as_str() {
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
        let path = self.resolve_for(name, how);
        if depth >= MAX_INCLUDE_DEPTH || !path.is_file() {
            let written = format!("{how} {name}");
            let control = Control::unreadable(&written, "cannot be read".into());
            return vec![must_fail(place.clone(), &written, control)];
        }
        self.stack_at(&path, depth + 1)
    }
}

/// A control word as libpam compares it with its keywords: brackets off
/// (its tokenizer strips them), case folded.
fn keyword_of(control: &str) -> String {
    let inner = control.strip_prefix('[').unwrap_or(control);
    inner
        .strip_suffix(']')
        .unwrap_or(inner)
        .to_ascii_lowercase()
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

/// libpam 1.5.2 assembles a logical line in a buffer of this size, read
/// with `fgets`: a longer physical line is cut into pieces that are read
/// as lines of their own, and a continued line that outgrows it stops the
/// reading of the file.
const LINE_BUFFER: usize = 1024;

/// A file's lines as libpam reads them: (first line number, words), and
/// the line where libpam stopped reading the file as unusable, if it did.
pub struct Lines {
    pub lines: Vec<(usize, Vec<String>)>,
    pub stopped_at: Option<usize>,
}

/// `_pam_assemble_line` of libpam 1.5.2, byte for byte: pieces of at most
/// `LINE_BUFFER - 1` bytes; blanks are space, tab and newline only (a
/// carriage return is part of a word); a `#` anywhere ends the line, also
/// right after a backslash; a piece ending in a backslash continues in the
/// next, and pieces holding nothing (blank, or only a comment) are skipped
/// inside a continuation too; running out of room, or out of file within
/// a continuation, stops the file.
pub fn logical_lines(bytes: &[u8]) -> Lines {
    let blank = |b: u8| b == b' ' || b == b'\t' || b == b'\n';
    let mut lines = Vec::new();
    let mut pos = 0;
    let mut line_no = 1;
    loop {
        let mut buffer: Vec<u8> = Vec::new();
        let mut first = None;
        let mut used = false;
        let complete = loop {
            if buffer.len() >= LINE_BUFFER - 1 {
                break false;
            }
            if pos >= bytes.len() {
                if used {
                    break false;
                }
                return Lines {
                    lines,
                    stopped_at: None,
                };
            }
            // fgets: up to the room left, or through a newline.
            let room = LINE_BUFFER - 1 - buffer.len();
            let end = bytes[pos..]
                .iter()
                .take(room)
                .position(|&b| b == b'\n')
                .map_or((pos + room).min(bytes.len()), |n| pos + n + 1);
            let piece = &bytes[pos..end];
            let piece_line = line_no;
            pos = end;
            if piece.last() == Some(&b'\n') {
                line_no += 1;
            }
            let Some(start) = piece.iter().position(|&b| !blank(b)) else {
                continue;
            };
            if piece[start] == b'#' {
                continue;
            }
            first.get_or_insert(piece_line);
            used = true;
            if let Some(hash) = piece[start..].iter().position(|&b| b == b'#') {
                buffer.extend_from_slice(&piece[..start + hash]);
                break true;
            }
            let last = piece.iter().rposition(|&b| !blank(b)).unwrap_or(start);
            if piece[last] == b'\\' {
                buffer.extend_from_slice(&piece[..last]);
                buffer.push(b' ');
                continue;
            }
            buffer.extend_from_slice(piece);
            break true;
        };
        let at = first.unwrap_or(line_no);
        if !complete {
            return Lines {
                lines,
                stopped_at: Some(at),
            };
        }
        let words = split_words(&buffer);
        if !words.is_empty() {
            lines.push((at, words));
        }
    }
}

/// `_pam_StrTok` with libpam's blanks: a word beginning with `[` runs to
/// the first `]` (`\]` standing for `]`), and is kept with its brackets
/// here so that messages show it as written; without a `]` it is the rest
/// of the line. Bytes that are no UTF-8 are kept as replacement characters.
fn split_words(line: &[u8]) -> Vec<String> {
    let blank = |b: u8| b == b' ' || b == b'\t' || b == b'\n';
    let mut words = Vec::new();
    let mut i = 0;
    while i < line.len() {
        while i < line.len() && blank(line[i]) {
            i += 1;
        }
        if i >= line.len() {
            break;
        }
        let mut word = Vec::new();
        if line[i] == b'[' {
            word.push(b'[');
            i += 1;
            while i < line.len() && line[i] != b']' {
                if line[i] == b'\\' && line.get(i + 1) == Some(&b']') {
                    i += 1;
                }
                word.push(line[i]);
                i += 1;
            }
            if i < line.len() {
                word.push(b']');
                i += 1;
            }
        } else {
            while i < line.len() && !blank(line[i]) {
                word.push(line[i]);
                i += 1;
            }
        }
        words.push(String::from_utf8_lossy(&word).into_owned());
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
