//! Whether sshd's effective configuration lets pam_ecp be a second factor:
//! read from `sshd -T` (the global settings, and with `-C` once for each
//! `Match` block), never from the files alone, so that includes, defaults
//! and Match blocks count as sshd counts them.
//!
//! A login authenticated by publickey (or hostbased, or GSSAPI) alone
//! never runs PAM's auth stack: with pam_ecp in sshd's stack, ecp is then
//! silently absent. Keyboard-interactive is the method that runs it and
//! can answer pam_ecp's challenge.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a check found: a failure or a warning, said for an admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub fail: bool,
    pub text: String,
}

/// Beyond this many Match blocks, pairs of them are not tried (each pair
/// is one run of sshd -T).
const MAX_COMBINED_BLOCKS: usize = 16;

/// The connection `sshd -T -C` is asked about when no Match block says
/// otherwise: documentation addresses (RFC 5737) and a user that does not
/// exist, so that only blocks written for everyone apply.
const BASELINE: [(&str, &str); 5] = [
    ("user", "ecp-doctor-nobody"),
    ("host", "doctor.invalid"),
    ("addr", "192.0.2.1"),
    ("laddr", "192.0.2.2"),
    ("lport", "22"),
];

/// Checks the effective configuration for the baseline connection and for
/// one connection each `Match` block in `config` (and the files it
/// includes) applies to.
pub fn check(sshd: &Path, config: &Path) -> Result<Vec<Finding>, String> {
    let mut findings = Vec::new();
    // Each context: what it is called, its -C specification, and which
    // Match blocks (by index in `testable`) it stands for.
    let mut contexts = vec![(String::from("the global settings"), spec(&[]), vec![])];
    let mut testable = Vec::new();
    for (line, criteria) in match_blocks(config) {
        match overrides_for(&criteria) {
            Ok(Some(overrides)) => {
                contexts.push((
                    format!("\"{line}\""),
                    spec(&overrides),
                    vec![testable.len()],
                ));
                testable.push((line, overrides, criteria));
            }
            // No account this host knows meets it (a group without
            // members here): said, since sshd may still meet it through a
            // directory's groups.
            Ok(None) => findings.push(Finding {
                fail: false,
                text: format!(
                    "sshd's \"{line}\" was not checked: no account known here is in its \
                     group, so whether logins it applies to run keyboard-interactive is \
                     unknown"
                ),
            }),
            Err(why) => findings.push(Finding {
                fail: true,
                text: format!(
                    "sshd's \"{line}\" cannot be checked ({why}): whether logins it \
                     applies to run keyboard-interactive is unknown"
                ),
            }),
        }
    }
    // sshd keeps the first value of a setting from every block that
    // applies: blocks that are fine alone can combine into a hole. Every
    // pair, and all of them at once, are tried too (the first pattern of
    // each; where two blocks name the same key, such as the user, the
    // earlier block's value makes the test connection).
    if testable.len() > 1 && testable.len() <= MAX_COMBINED_BLOCKS {
        for (i, (first, a, _)) in testable.iter().enumerate() {
            for (j, (second, b, _)) in testable.iter().enumerate().skip(i + 1) {
                let merged: Vec<(&str, String)> = a.iter().chain(b).cloned().collect();
                contexts.push((
                    format!("\"{first}\" with \"{second}\""),
                    spec(&merged),
                    vec![i, j],
                ));
            }
        }
        let all: Vec<(&str, String)> = testable.iter().flat_map(|(_, o, _)| o.clone()).collect();
        contexts.push((
            "every Match block at once".into(),
            spec(&all),
            (0..testable.len()).collect(),
        ));
    }
    let combined = testable.len() <= MAX_COMBINED_BLOCKS;
    if !combined {
        findings.push(Finding {
            fail: false,
            text: format!(
                "sshd has {} Match blocks: more than {MAX_COMBINED_BLOCKS}, so how they \
                 combine was not checked (each was checked alone)",
                testable.len()
            ),
        });
    }
    let mut judged = Vec::new();
    for (context, spec, blocks) in contexts {
        let settings = effective(sshd, config, &spec)?;
        let user = spec
            .split(',')
            .find_map(|kv| kv.strip_prefix("user="))
            .unwrap_or_default()
            .to_owned();
        judged.push(Judged {
            findings: judge(&settings, &context),
            blocks,
            user,
        });
    }
    let blocks: Vec<(String, Vec<(String, String)>)> = testable
        .into_iter()
        .map(|(line, _, criteria)| (line, criteria))
        .collect();
    // Without the combinations a hole inside a rollout could hide as a
    // block judged alone: then nothing is called a rollout.
    if combined {
        findings.extend(rollout(judged, &blocks, &user_applies));
    } else {
        findings.extend(judged.into_iter().flat_map(|j| j.findings));
    }
    findings.dedup();
    Ok(findings)
}

/// A Match line's criteria: (criterion, pattern-list) pairs.
type Criteria = [(String, String)];

/// One context's findings, the Match blocks it stands for, and the user
/// its test connection is made as.
pub struct Judged {
    pub findings: Vec<Finding>,
    pub blocks: Vec<usize>,
    pub user: String,
}

/// A rollout: the global settings let logins skip keyboard-interactive,
/// and Match blocks on users or groups require it for some (`Match Group
/// ecp-users`). Outside the rollout, and so warnings rather than
/// failures, are only the global settings and blocks that exempt named
/// accounts (`Match User deploy,backup`: plain names, none of them
/// covered by a requiring block), alone or with a requiring block that
/// does not cover the test connection's user. Any other block that lets a
/// login skip keyboard-interactive (an address, a wildcard, a group) may
/// reach a user the rollout covers, so it still fails; and everything
/// fails when no block requires it. `applies` says whether a block's
/// criteria cover a user.
fn rollout(
    judged: Vec<Judged>,
    blocks: &[(String, Vec<(String, String)>)],
    applies: &dyn Fn(&Criteria, &str) -> bool,
) -> Vec<Finding> {
    let on_users = |criteria: &[(String, String)]| {
        criteria.iter().all(|(c, _)| {
            let c = c.to_ascii_lowercase();
            c == "user" || c == "group"
        })
    };
    let global_fails = judged
        .first()
        .is_some_and(|j| j.findings.iter().any(|f| f.fail));
    let requiring: Vec<usize> = judged
        .iter()
        .filter(|j| j.blocks.len() == 1 && j.findings.iter().all(|f| !f.fail))
        .map(|j| j.blocks[0])
        .filter(|&i| on_users(&blocks[i].1))
        .collect();
    if !global_fails || requiring.is_empty() {
        return judged.into_iter().flat_map(|j| j.findings).collect();
    }
    // A block that names its accounts one by one, none of them in the
    // rollout.
    let exempts = |criteria: &Criteria| {
        criteria.iter().all(|(c, patterns)| {
            c.eq_ignore_ascii_case("user")
                && patterns.split(',').all(|name| {
                    !name.is_empty()
                        && !name.contains(['*', '?', '!'])
                        && !requiring.iter().any(|&r| applies(&blocks[r].1, name))
                })
        })
    };
    let exempt: Vec<bool> = blocks.iter().map(|(_, c)| exempts(c)).collect();
    let names: Vec<String> = requiring
        .iter()
        .map(|&i| format!("\"{}\"", blocks[i].0))
        .collect();
    let names = names.join(", ");
    let names = names.as_str();
    judged
        .into_iter()
        .flat_map(|j| {
            let outside = j
                .blocks
                .iter()
                .all(|&i| exempt[i] || (requiring.contains(&i) && !applies(&blocks[i].1, &j.user)));
            j.findings.into_iter().map(move |f| {
                if f.fail && outside {
                    Finding {
                        fail: false,
                        text: format!(
                            "rollout: outside the Match blocks that require \
                             keyboard-interactive ({names}) ecp is not asked: {}",
                            f.text
                        ),
                    }
                } else {
                    f
                }
            })
        })
        .collect()
}

/// Whether a Match block's User and Group criteria cover `user`, as sshd
/// matches them (pattern lists with `*`, `?` and `!`; the user's groups
/// from NSS). Other criteria are not looked at.
fn user_applies(criteria: &Criteria, user: &str) -> bool {
    criteria.iter().all(
        |(criterion, patterns)| match criterion.to_ascii_lowercase().as_str() {
            "user" => pattern_list_matches(patterns, std::iter::once(user.to_owned())),
            "group" => pattern_list_matches(patterns, groups_of(user).into_iter()),
            _ => true,
        },
    )
}

/// The names of the groups `user` is in, primary group included.
fn groups_of(user: &str) -> Vec<String> {
    let Ok(Some(account)) = nix::unistd::User::from_name(user) else {
        return Vec::new();
    };
    let Ok(name) = std::ffi::CString::new(user) else {
        return Vec::new();
    };
    nix::unistd::getgrouplist(&name, account.gid)
        .unwrap_or_else(|_| vec![account.gid])
        .into_iter()
        .filter_map(|gid| nix::unistd::Group::from_gid(gid).ok().flatten())
        .map(|g| g.name)
        .collect()
}

/// sshd's pattern-list rule: no name may match a negated pattern, and
/// some name must match a plain one.
fn pattern_list_matches(patterns: &str, names: impl Iterator<Item = String> + Clone) -> bool {
    let list: Vec<&str> = patterns.split(',').collect();
    let negated = list
        .iter()
        .filter_map(|p| p.strip_prefix('!'))
        .any(|p| names.clone().any(|n| wildcard_matches(p, &n)));
    let plain = list
        .iter()
        .filter(|p| !p.starts_with('!'))
        .any(|p| names.clone().any(|n| wildcard_matches(p, &n)));
    plain && !negated
}

/// `*` (any run) and `?` (any one character) matching, as sshd's
/// match_pattern does.
fn wildcard_matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// `sshd -T -f CONFIG -C SPEC` as keyword → value (keywords lowercase, as
/// sshd prints them).
fn effective(sshd: &Path, config: &Path, spec: &str) -> Result<BTreeMap<String, String>, String> {
    let out = std::process::Command::new(sshd)
        .arg("-T")
        .arg("-f")
        .arg(config)
        .arg("-C")
        .arg(spec)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", sshd.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} -T refused the configuration: {}",
            sshd.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned()))
        .collect())
}

/// The findings for one effective configuration (`context` says which).
pub fn judge(settings: &BTreeMap<String, String>, context: &str) -> Vec<Finding> {
    let on = |key: &str| settings.get(key).is_some_and(|v| v == "yes");
    let mut findings = Vec::new();
    if !on("usepam") {
        fail_push(
            &mut findings,
            format!(
                "sshd has UsePAM off ({context}): it never runs the PAM stack, so pam_ecp is \
             never asked; set \"UsePAM yes\""
            ),
        );
        return findings;
    }
    if !on("kbdinteractiveauthentication") {
        fail_push(
            &mut findings,
            format!(
                "sshd has KbdInteractiveAuthentication off ({context}): pam_ecp's challenge \
             can only be answered by keyboard-interactive; set \
             \"KbdInteractiveAuthentication yes\""
            ),
        );
    }
    // Which lists of methods complete a login: "any" means each enabled
    // method on its own.
    let methods = settings
        .get("authenticationmethods")
        .map_or("any", String::as_str);
    let lists: Vec<Vec<String>> = if methods == "any" {
        [
            ("publickey", "pubkeyauthentication"),
            ("hostbased", "hostbasedauthentication"),
            ("gssapi-with-mic", "gssapiauthentication"),
            ("password", "passwordauthentication"),
            ("keyboard-interactive", "kbdinteractiveauthentication"),
        ]
        .iter()
        .filter(|(_, key)| on(key))
        .map(|(method, _)| vec![(*method).to_owned()])
        .collect()
    } else {
        methods
            .split_whitespace()
            .map(|list| {
                list.split(',')
                    .map(|m| m.split(':').next().unwrap_or(m).to_owned())
                    .collect()
            })
            .collect()
    };
    for list in lists {
        let has = |m: &str| list.iter().any(|x| x == m);
        if has("keyboard-interactive") {
            continue;
        }
        let shown = list.join(",");
        let how = if methods == "any" {
            format!("AuthenticationMethods is \"any\", so \"{shown}\" alone logs in")
        } else {
            format!("AuthenticationMethods allows \"{shown}\"")
        };
        if has("password") {
            // sshd runs the auth stack for a password login, answering
            // every prompt with the password: pam_ecp refuses it.
            findings.push(Finding {
                fail: false,
                text: format!(
                    "{how} ({context}): such logins run pam_ecp but cannot answer its \
                     challenge, so they fail; use keyboard-interactive instead of password"
                ),
            });
        } else {
            fail_push(
                &mut findings,
                format!(
                    "{how} ({context}): a login that way never runs PAM's auth stack, so \
                     ecp is silently absent; require keyboard-interactive in every list, \
                     for example \"AuthenticationMethods publickey,keyboard-interactive\""
                ),
            );
        }
    }
    findings
}

fn fail_push(findings: &mut Vec<Finding>, text: String) {
    findings.push(Finding { fail: true, text });
}

/// A `-C` test specification: the baseline with `overrides` in place.
fn spec(overrides: &[(&str, String)]) -> String {
    BASELINE
        .iter()
        .map(|(key, value)| {
            let value = overrides
                .iter()
                .find(|(k, _)| k == key)
                .map_or((*value).to_owned(), |(_, v)| v.clone());
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The `-C` values of a connection the Match criteria apply to; None when
/// no connection can meet them.
fn overrides_for(
    criteria: &[(String, String)],
) -> Result<Option<Vec<(&'static str, String)>>, String> {
    let mut overrides: Vec<(&'static str, String)> = Vec::new();
    for (criterion, patterns) in criteria {
        let example = example_of(patterns);
        match criterion.to_ascii_lowercase().as_str() {
            "all" => {}
            "user" => overrides.push(("user", example)),
            "host" => overrides.push(("host", example)),
            "address" => overrides.push(("addr", address_in(&example))),
            "localaddress" => overrides.push(("laddr", address_in(&example))),
            "localport" => overrides.push(("lport", example)),
            "group" => match member_of(patterns) {
                Some(member) => overrides.push(("user", member)),
                None => return Ok(None),
            },
            other => {
                return Err(format!(
                    "the criterion {other} cannot be tested with sshd -C"
                ))
            }
        }
    }
    Ok(Some(overrides))
}

/// An account in one of the groups a pattern-list names: a listed member,
/// or one whose primary group it is.
fn member_of(patterns: &str) -> Option<String> {
    patterns
        .split(',')
        .filter(|g| !g.starts_with('!') && !g.contains(['*', '?']))
        .filter_map(|g| nix::unistd::Group::from_name(g).ok().flatten())
        .find_map(|group| {
            group.mem.first().cloned().or_else(|| {
                std::fs::read_to_string("/etc/passwd")
                    .ok()?
                    .lines()
                    .find_map(|l| {
                        let fields: Vec<&str> = l.split(':').collect();
                        (fields.get(3) == Some(&group.gid.to_string().as_str()))
                            .then(|| fields[0].to_owned())
                    })
            })
        })
}

/// The `-C` specification of a connection the Match criteria apply to.
#[cfg(test)]
fn spec_for(criteria: &[(String, String)]) -> Result<String, String> {
    overrides_for(criteria).map(|o| spec(&o.unwrap_or_default()))
}

/// A name a pattern-list matches: its first pattern that is not negated,
/// wildcards filled in.
fn example_of(patterns: &str) -> String {
    patterns
        .split(',')
        .find(|p| !p.starts_with('!'))
        .unwrap_or("ecp-doctor-other")
        .replace(['*', '?'], "x")
}

/// An address inside `pattern`: an address as it is, a CIDR block's first
/// host, a wildcard pattern with its wildcards (and missing parts) as 1.
fn address_in(pattern: &str) -> String {
    let (address, bits) = pattern.split_once('/').unwrap_or((pattern, ""));
    let mut address = address.replace(['x', '*', '?'], "1");
    if !address.contains(':') {
        while address.split('.').count() < 4 {
            address.push_str(".1");
        }
    }
    match (address.parse::<std::net::Ipv4Addr>(), bits.parse::<u32>()) {
        (Ok(v4), Ok(bits)) if bits < 32 => {
            let first = u32::from(v4) & (u32::MAX.checked_shl(32 - bits).unwrap_or(0));
            std::net::Ipv4Addr::from(first + 1).to_string()
        }
        _ => address,
    }
}

/// The `Match` lines of `config` and the files it includes, with their
/// criteria as (criterion, pattern-list) pairs.
fn match_blocks(config: &Path) -> Vec<(String, Vec<(String, String)>)> {
    let mut found = Vec::new();
    let mut seen = Vec::new();
    collect_matches(config, &mut found, &mut seen);
    found
}

fn collect_matches(
    file: &Path,
    found: &mut Vec<(String, Vec<(String, String)>)>,
    seen: &mut Vec<PathBuf>,
) {
    if seen.contains(&file.to_path_buf()) || seen.len() > 64 {
        return;
    }
    seen.push(file.to_path_buf());
    let Ok(text) = std::fs::read_to_string(file) else {
        return;
    };
    for line in text.lines() {
        // sshd ends a line at a '#' that starts a word, and reads quoted
        // words without their quotes.
        let line = line.trim();
        let line = match line.find(" #").or_else(|| line.find("\t#")) {
            Some(at) => line[..at].trim_end(),
            None if line.starts_with('#') => "",
            None => line,
        };
        let words: Vec<&str> = line
            .split(|c: char| c.is_whitespace() || c == '=')
            .filter(|w| !w.is_empty())
            .map(|w| w.trim_matches('"'))
            .collect();
        match words.first().map(|w| w.to_ascii_lowercase()) {
            Some(keyword) if keyword == "include" => {
                for pattern in &words[1..] {
                    for path in include_paths(pattern) {
                        collect_matches(&path, found, seen);
                    }
                }
            }
            Some(keyword) if keyword == "match" => {
                let criteria = words[1..]
                    .chunks(2)
                    .map(|pair| {
                        (
                            pair[0].to_owned(),
                            pair.get(1).copied().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect();
                found.push((line.to_owned(), criteria));
            }
            _ => {}
        }
    }
}

/// The files an `Include` names: relative to /etc/ssh, with a `*` in the
/// file name matched against that directory's entries (sorted, as sshd
/// reads them).
fn include_paths(pattern: &str) -> Vec<PathBuf> {
    let path = if pattern.starts_with('/') {
        PathBuf::from(pattern)
    } else {
        Path::new("/etc/ssh").join(pattern)
    };
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let name = name.to_string_lossy();
    let Some((prefix, suffix)) = name.split_once('*') else {
        return vec![path.clone()];
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix))
                })
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const GOOD: [(&str, &str); 4] = [
        ("usepam", "yes"),
        ("kbdinteractiveauthentication", "yes"),
        ("pubkeyauthentication", "yes"),
        ("authenticationmethods", "publickey,keyboard-interactive"),
    ];

    #[test]
    fn every_allowed_list_must_run_keyboard_interactive() {
        assert_eq!(judge(&settings(&GOOD), "global"), vec![]);
        let kbd_only = settings(&[
            ("usepam", "yes"),
            ("kbdinteractiveauthentication", "yes"),
            ("authenticationmethods", "keyboard-interactive:pam"),
        ]);
        assert_eq!(judge(&kbd_only, "global"), vec![]);

        // The default: any single enabled method; publickey alone skips PAM.
        let default = settings(&[
            ("usepam", "yes"),
            ("kbdinteractiveauthentication", "yes"),
            ("pubkeyauthentication", "yes"),
            ("authenticationmethods", "any"),
        ]);
        let found = judge(&default, "global");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].fail && found[0].text.contains("\"publickey\" alone logs in"));

        // A second list without it.
        let mut two = settings(&GOOD);
        two.insert(
            "authenticationmethods".into(),
            "publickey,keyboard-interactive publickey".into(),
        );
        let found = judge(&two, "\"Match User bob\"");
        assert!(
            found
                .iter()
                .any(|f| f.fail && f.text.contains("allows \"publickey\" (\"Match User bob\")")),
            "{found:?}"
        );
        // Password runs the stack but cannot answer: a warning.
        let mut password = settings(&GOOD);
        password.insert("authenticationmethods".into(), "password".into());
        let found = judge(&password, "global");
        assert!(found.iter().all(|f| !f.fail), "{found:?}");
    }

    #[test]
    fn pam_or_keyboard_interactive_off_is_a_failure() {
        let mut off = settings(&GOOD);
        off.insert("usepam".into(), "no".into());
        assert!(judge(&off, "global")[0].text.contains("UsePAM off"));
        let mut off = settings(&GOOD);
        off.insert("kbdinteractiveauthentication".into(), "no".into());
        assert!(judge(&off, "global")
            .iter()
            .any(|f| f.fail && f.text.contains("KbdInteractiveAuthentication off")));
    }

    #[test]
    fn match_criteria_become_a_connection_they_apply_to() {
        let criteria = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>()
        };
        let spec = spec_for(&criteria(&[
            ("User", "bob,!alice"),
            ("Address", "10.1.0.0/16"),
        ]))
        .unwrap();
        assert_eq!(
            spec,
            "user=bob,host=doctor.invalid,addr=10.1.0.1,laddr=192.0.2.2,lport=22"
        );
        let spec = spec_for(&criteria(&[("Host", "*.lan"), ("LocalPort", "2222")])).unwrap();
        assert!(
            spec.contains("host=x.lan") && spec.contains("lport=2222"),
            "{spec}"
        );
        assert_eq!(address_in("192.168.*"), "192.168.1.1");
        // A group no account is in: no connection meets it.
        assert_eq!(
            overrides_for(&criteria(&[("Group", "no-such-group-ecp")])),
            Ok(None)
        );
        // A criterion -C cannot express.
        assert!(overrides_for(&criteria(&[("Exec", "/bin/true")])).is_err());
    }

    #[test]
    fn patterns_match_as_sshd_matches_them() {
        assert!(wildcard_matches("ecp-*", "ecp-users"));
        assert!(wildcard_matches("a?c", "abc") && !wildcard_matches("a?c", "abbc"));
        assert!(wildcard_matches("*", "") && !wildcard_matches("x", ""));
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(pattern_list_matches(
            "bob,alice",
            names(&["alice"]).into_iter()
        ));
        assert!(!pattern_list_matches(
            "*,!alice",
            names(&["alice"]).into_iter()
        ));
        assert!(pattern_list_matches(
            "*,!alice",
            names(&["bob"]).into_iter()
        ));
        assert!(!pattern_list_matches("!alice", names(&["bob"]).into_iter()));
    }

    #[test]
    fn a_rollout_is_a_warning_outside_it_and_a_failure_inside() {
        let hole = |text: &str| Finding {
            fail: true,
            text: text.into(),
        };
        let blocks = vec![
            (
                "Match Group ecp-users".to_owned(),
                vec![("Group".to_owned(), "ecp-users".to_owned())],
            ),
            (
                "Match Address 10.0.0.0/8".to_owned(),
                vec![("Address".to_owned(), "10.0.0.0/8".to_owned())],
            ),
            (
                "Match User deploy".to_owned(),
                vec![("User".to_owned(), "deploy".to_owned())],
            ),
            // Names an account the rollout covers among the exempt ones.
            (
                "Match User deploy,member".to_owned(),
                vec![("User".to_owned(), "deploy,member".to_owned())],
            ),
        ];
        // "member" is in ecp-users; "deploy" and the baseline user are not.
        let applies = |criteria: &[(String, String)], user: &str| {
            criteria[0].1 == "ecp-users" && user == "member"
        };
        let judged = |user: &str, blocks: Vec<usize>, fail: bool| Judged {
            findings: if fail {
                vec![hole("publickey alone")]
            } else {
                vec![]
            },
            blocks,
            user: user.into(),
        };
        let run = |list: Vec<Judged>| rollout(list, &blocks, &applies);
        let found = run(vec![
            judged("nobody", vec![], true),
            judged("member", vec![0], false),
            judged("nobody", vec![1], true),
            judged("deploy", vec![2], true),
            // Address first: a member from 10/8 gets public keys alone.
            judged("member", vec![1, 0], true),
            // deploy is not in the group: the pair is deploy's connection.
            judged("deploy", vec![2, 0], true),
            // Tested as deploy, but it also lets member in with a key alone.
            judged("deploy", vec![3], true),
            judged("deploy", vec![3, 0], true),
        ]);
        let fails: Vec<&Finding> = found.iter().filter(|f| f.fail).collect();
        // The address block alone and with the group, and both contexts
        // of the block that names member, stay failures.
        assert_eq!(fails.len(), 4, "{found:?}");
        assert_eq!(found.len(), 7, "{found:?}");
        assert!(found
            .iter()
            .filter(|f| !f.fail)
            .all(|f| f.text.starts_with("rollout: outside the Match blocks that require keyboard-interactive (\"Match Group ecp-users\")")));
        // A requiring block that is not on users (an address) makes no
        // rollout: the holes stay failures.
        let address_only = vec![
            judged("nobody", vec![], true),
            judged("nobody", vec![1], false),
            judged("deploy", vec![2], true),
        ];
        assert!(run(address_only).iter().filter(|f| f.fail).count() == 2);
        // Nothing requires it: no rollout either.
        let none = vec![
            judged("nobody", vec![], true),
            judged("deploy", vec![2], true),
        ];
        assert!(run(none).iter().all(|f| f.fail));
    }

    #[test]
    fn match_lines_are_read_without_quotes_and_comments() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            "Match User \"bob\" # the admins\n  AuthenticationMethods publickey\n# Match User x\n",
        )
        .unwrap();
        let blocks = match_blocks(&config);
        assert_eq!(blocks.len(), 1, "{blocks:?}");
        assert_eq!(blocks[0].1, vec![("User".to_owned(), "bob".to_owned())]);
    }
}
