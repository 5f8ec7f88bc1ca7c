//! Throttling that fits a signature factor.
//!
//! A signature cannot be guessed, so locking an account buys nothing and
//! hands an attacker a weapon. Instead every count is kept per *(user,
//! source)*, where the source is where the attempts come from:
//!
//! - a remote login: the network of its address (IPv4 /32 and IPv6 /64 by
//!   default, so one host's privacy addresses are one source), or the host
//!   name as given when it is not an address;
//! - a local login (no remote host, the module running as root): `local`,
//!   a source of its own that no remote attempt can touch;
//! - a non-root caller (a screen locker, `ecpctl`): its uid, never a
//!   remote host it names.
//!
//! Repeated failures from one source for one user earn that pair a
//! penalty that doubles with each further failure up to a cap (like
//! OpenSSH's PerSourcePenalties); every other source, and so the real
//! user on their own network or at the console, is unaffected. Requests
//! are counted only once accepted. Both tables are bounded and evict the
//! least recently used entry when full: a flood from many sources can
//! only push out other entries (at worst letting an attacker's own source
//! escape its penalty early), never make the daemon refuse everyone.

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Mutex;

use ecp_core::{RemoteHost, UserName};
use lru::LruCache;

/// Where login attempts come from, for counting.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// A login on this machine (no remote host), asked for by root.
    Local,
    /// A non-root caller, by uid.
    Uid(u32),
    /// A remote address, reduced to its network.
    Network { address: IpAddr, prefix_len: u8 },
    /// A remote host given by name (lower-cased).
    Host(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Local => f.write_str("local"),
            Source::Uid(uid) => write!(f, "uid {uid}"),
            Source::Network {
                address,
                prefix_len,
            } => write!(f, "{address}/{prefix_len}"),
            Source::Host(name) => write!(f, "host {name}"),
        }
    }
}

/// How remote addresses are grouped into sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grouping {
    pub ipv4_prefix_len: u8,
    pub ipv6_prefix_len: u8,
}

impl Source {
    /// The source of a request: `requester_uid` is who asked the daemon
    /// (0 for the PAM module), `rhost` what PAM said the login came from.
    pub fn of(requester_uid: u32, rhost: &RemoteHost, grouping: Grouping) -> Self {
        if requester_uid != 0 {
            return Source::Uid(requester_uid);
        }
        if rhost.is_local() {
            return Source::Local;
        }
        let raw = rhost.as_str();
        // sshd may hand over `[addr]`, and a link-local address a `%zone`.
        let bare = raw.trim_start_matches('[').trim_end_matches(']');
        let bare = bare.split('%').next().unwrap_or(bare);
        match bare.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::network(IpAddr::V4(v4), grouping.ipv4_prefix_len),
                None => Self::network(IpAddr::V6(v6), grouping.ipv6_prefix_len),
            },
            Ok(v4) => Self::network(v4, grouping.ipv4_prefix_len),
            Err(_) => Source::Host(raw.to_ascii_lowercase()),
        }
    }

    fn network(address: IpAddr, prefix_len: u8) -> Self {
        let address = match address {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4);
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(prefix_len.min(32)))
                    .unwrap_or(0);
                IpAddr::V4((bits & mask).into())
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(prefix_len.min(128)))
                    .unwrap_or(0);
                IpAddr::V6((bits & mask).into())
            }
        };
        Source::Network {
            address,
            prefix_len,
        }
    }

    /// Remote sources share a per-source allowance across user names;
    /// local logins and non-root callers are counted per user only.
    fn is_remote(&self) -> bool {
        matches!(self, Source::Network { .. } | Source::Host(_))
    }
}

/// The rules, from `ecpd.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Challenges for one user from one source per window (0 = no limit).
    pub per_user_and_source: u32,
    /// Challenges from one remote source, any users, per window (0 = no limit).
    pub per_source: u32,
    /// Failures from one source for one user that cost nothing (0 = never
    /// penalise).
    pub free_failures: u32,
    pub penalty_initial_secs: u64,
    pub penalty_max_secs: u64,
    /// Entries kept in each table.
    pub max_entries: usize,
}

const WINDOW_SECS: u64 = 60;

/// Why a request was refused, for the caller and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Too many challenges in the current minute.
    TooMany {
        limit: u32,
        per_user: bool,
        source: Source,
    },
    /// Failures earned this (user, source) a wait.
    Penalised { until: u64, source: Source },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::TooMany {
                limit,
                per_user: true,
                source,
            } => write!(
                f,
                "more than {limit} challenges a minute for this user from {source}"
            ),
            Refusal::TooMany {
                limit,
                per_user: false,
                source,
            } => write!(f, "more than {limit} challenges a minute from {source}"),
            Refusal::Penalised { until, source } => write!(
                f,
                "too many failed attempts for this user from {source}; try again after {}",
                ecp_core::when::format_utc(i64::try_from(*until).unwrap_or(i64::MAX))
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Window {
    start: u64,
    count: u32,
}

impl Window {
    /// The count in the window that holds `now`.
    fn current(&mut self, now: u64) -> &mut u32 {
        if now >= self.start.saturating_add(WINDOW_SECS) || now < self.start {
            *self = Window {
                start: now,
                count: 0,
            };
        }
        &mut self.count
    }

    fn is_stale(&self, now: u64) -> bool {
        now >= self.start.saturating_add(WINDOW_SECS)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct PairState {
    challenges: Window,
    failures: u32,
    penalty_until: u64,
    last_failure: u64,
}

impl PairState {
    /// Refuses while the pair serves a penalty.
    fn check_penalty(&self, source: &Source, now: u64) -> Result<(), Refusal> {
        if self.penalty_until > now {
            return Err(Refusal::Penalised {
                until: self.penalty_until,
                source: source.clone(),
            });
        }
        Ok(())
    }
}

/// Failures are forgotten this long after the last one, penalty or not.
const FAILURE_MEMORY_SECS: u64 = 24 * 3600;

struct Tables {
    /// (user, remote source) pairs.
    pairs: LruCache<(UserName, Source), PairState>,
    /// (user, `local` or uid) pairs, apart so that a flood from remote
    /// sources can never push a local login's count or wait out.
    local_pairs: LruCache<(UserName, Source), PairState>,
    sources: LruCache<Source, Window>,
}

impl Tables {
    fn pairs_of(&mut self, source: &Source) -> &mut LruCache<(UserName, Source), PairState> {
        if source.is_remote() {
            &mut self.pairs
        } else {
            &mut self.local_pairs
        }
    }

    /// The (user, source) key and its state, fresh if it has none.
    fn pair(&mut self, user: &UserName, source: &Source) -> ((UserName, Source), PairState) {
        let key = (user.clone(), source.clone());
        let state = self
            .pairs_of(source)
            .peek(&key)
            .copied()
            .unwrap_or_default();
        (key, state)
    }
}

pub struct Throttle {
    limits: Limits,
    tables: Mutex<Tables>,
}

/// What `failure` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureCount {
    pub failures: u32,
    /// Set when this failure started or lengthened a penalty.
    pub penalty_until: Option<u64>,
}

impl Throttle {
    pub fn new(limits: Limits) -> Self {
        let cap = NonZeroUsize::new(limits.max_entries).unwrap_or(NonZeroUsize::MIN);
        Self {
            limits,
            tables: Mutex::new(Tables {
                pairs: LruCache::new(cap),
                local_pairs: LruCache::new(cap),
                sources: LruCache::new(cap),
            }),
        }
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Refuses while (user, source) serves a penalty. Counts nothing.
    pub fn check_penalty(&self, user: &UserName, source: &Source, now: u64) -> Result<(), Refusal> {
        let (_, state) = self.tables().pair(user, source);
        state.check_penalty(source, now)
    }

    /// Admits a challenge request and counts it, or refuses it and counts
    /// nothing.
    pub fn admit_challenge(
        &self,
        user: &UserName,
        source: &Source,
        now: u64,
    ) -> Result<(), Refusal> {
        let limits = self.limits;
        let mut tables = self.tables();
        let (key, mut pair) = tables.pair(user, source);
        pair.check_penalty(source, now)?;
        let per_pair = pair.challenges.current(now);
        if limits.per_user_and_source > 0 && *per_pair >= limits.per_user_and_source {
            return Err(Refusal::TooMany {
                limit: limits.per_user_and_source,
                per_user: true,
                source: source.clone(),
            });
        }
        let counts_per_source = limits.per_source > 0 && source.is_remote();
        let mut window = if counts_per_source {
            tables.sources.peek(source).copied().unwrap_or_default()
        } else {
            Window::default()
        };
        if counts_per_source && *window.current(now) >= limits.per_source {
            return Err(Refusal::TooMany {
                limit: limits.per_source,
                per_user: false,
                source: source.clone(),
            });
        }
        // Accepted: only now is anything counted.
        *per_pair += 1;
        tables.pairs_of(source).put(key, pair);
        if counts_per_source {
            *window.current(now) += 1;
            tables.sources.put(source.clone(), window);
        }
        Ok(())
    }

    /// Counts a failed answer from `source` for `user`; past the free
    /// failures, each one doubles the pair's penalty up to the cap.
    pub fn failure(&self, user: &UserName, source: &Source, now: u64) -> FailureCount {
        let limits = self.limits;
        let mut tables = self.tables();
        let (key, mut state) = tables.pair(user, source);
        if now >= state.last_failure.saturating_add(FAILURE_MEMORY_SECS) {
            state.failures = 0;
        }
        state.failures = state.failures.saturating_add(1);
        state.last_failure = now;
        let mut penalty_until = None;
        if limits.free_failures > 0 && state.failures > limits.free_failures {
            let doublings = (state.failures - limits.free_failures - 1).min(32);
            let secs = limits
                .penalty_initial_secs
                .saturating_mul(1u64 << doublings)
                .min(limits.penalty_max_secs);
            state.penalty_until = now.saturating_add(secs);
            penalty_until = Some(state.penalty_until);
        }
        let failures = state.failures;
        tables.pairs_of(source).put(key, state);
        FailureCount {
            failures,
            penalty_until,
        }
    }

    /// A verified login clears the failures of its (user, source).
    pub fn success(&self, user: &UserName, source: &Source) {
        let mut tables = self.tables();
        if let Some(state) = tables
            .pairs_of(source)
            .get_mut(&(user.clone(), source.clone()))
        {
            state.failures = 0;
            state.penalty_until = 0;
        }
    }

    /// Clears every penalty and count of `user`; returns how many sources
    /// had one (`ecpctl unlock`).
    pub fn clear_user(&self, user: &UserName) -> usize {
        let mut guard = self.tables();
        let tables = &mut *guard;
        let mut cleared = 0;
        for pairs in [&mut tables.pairs, &mut tables.local_pairs] {
            let keys: Vec<_> = pairs
                .iter()
                .filter(|((u, _), _)| u == user)
                .map(|(k, _)| k.clone())
                .collect();
            for key in &keys {
                pairs.pop(key);
            }
            cleared += keys.len();
        }
        cleared
    }

    /// Drops entries that no longer hold anything: ended windows, served
    /// penalties, failures past their memory.
    pub fn prune(&self, now: u64) {
        let mut guard = self.tables();
        let tables = &mut *guard;
        for pairs in [&mut tables.pairs, &mut tables.local_pairs] {
            let dead: Vec<_> = pairs
                .iter()
                .filter(|(_, s)| {
                    s.challenges.is_stale(now)
                        && s.penalty_until <= now
                        && (s.failures == 0
                            || now >= s.last_failure.saturating_add(FAILURE_MEMORY_SECS))
                })
                .map(|(k, _)| k.clone())
                .collect();
            for key in dead {
                pairs.pop(&key);
            }
        }
        let dead: Vec<_> = tables
            .sources
            .iter()
            .filter(|(_, w)| w.is_stale(now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in dead {
            tables.sources.pop(&key);
        }
    }

    /// (user, source) pairs serving a penalty at `now`.
    pub fn penalised(&self, now: u64) -> usize {
        let tables = self.tables();
        tables
            .pairs
            .iter()
            .chain(tables.local_pairs.iter())
            .filter(|(_, s)| s.penalty_until > now)
            .count()
    }

    /// Entries in the (user, source) tables and the per-source table.
    pub fn sizes(&self) -> (usize, usize) {
        let tables = self.tables();
        (
            tables.pairs.len() + tables.local_pairs.len(),
            tables.sources.len(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROUPING: Grouping = Grouping {
        ipv4_prefix_len: 32,
        ipv6_prefix_len: 64,
    };

    fn remote(raw: &str) -> Source {
        Source::of(0, &RemoteHost::parse(raw).unwrap(), GROUPING)
    }

    fn user(name: &str) -> UserName {
        UserName::parse(name).unwrap()
    }

    fn limits() -> Limits {
        Limits {
            per_user_and_source: 3,
            per_source: 5,
            free_failures: 2,
            penalty_initial_secs: 10,
            penalty_max_secs: 35,
            max_entries: 100,
        }
    }

    #[test]
    fn sources_group_addresses_by_network() {
        assert_eq!(
            remote("2001:db8:1:2:aaaa::1"),
            remote("2001:db8:1:2:ffff::9")
        );
        assert_ne!(remote("2001:db8:1:2::1"), remote("2001:db8:1:3::1"));
        assert_ne!(remote("192.0.2.1"), remote("192.0.2.2"));
        assert_eq!(remote("::ffff:192.0.2.1"), remote("192.0.2.1"));
        assert_eq!(remote("[2001:db8::1]"), remote("2001:db8::2"));
        assert_eq!(remote("fe80::1%eth0"), remote("fe80::2%eth1"));
        assert_eq!(remote("Client.Example.ORG"), remote("client.example.org"));
        assert_eq!(remote("2001:db8:1:2::1").to_string(), "2001:db8:1:2::/64");
        let wide = Grouping {
            ipv4_prefix_len: 24,
            ipv6_prefix_len: 48,
        };
        let of = |raw| Source::of(0, &RemoteHost::parse(raw).unwrap(), wide);
        assert_eq!(of("192.0.2.1"), of("192.0.2.200"));
        assert_eq!(of("2001:db8:1:2::1"), of("2001:db8:1:ff::1"));
    }

    #[test]
    fn local_logins_and_non_root_callers_are_sources_of_their_own() {
        assert_eq!(Source::of(0, &RemoteHost::local(), GROUPING), Source::Local);
        // A non-root caller is itself, whatever rhost it names.
        assert_eq!(
            Source::of(1000, &RemoteHost::parse("192.0.2.1").unwrap(), GROUPING),
            Source::Uid(1000)
        );
    }

    #[test]
    fn challenges_are_counted_per_user_and_source_and_only_when_accepted() {
        let t = Throttle::new(limits());
        let (alice, bob) = (user("alice"), user("bob"));
        let attacker = remote("192.0.2.66");
        for _ in 0..3 {
            t.admit_challenge(&alice, &attacker, 1000).unwrap();
        }
        for _ in 0..10 {
            assert!(matches!(
                t.admit_challenge(&alice, &attacker, 1000),
                Err(Refusal::TooMany { per_user: true, .. })
            ));
        }
        // Alice elsewhere, and locally, is untouched.
        t.admit_challenge(&alice, &remote("198.51.100.1"), 1000)
            .unwrap();
        t.admit_challenge(&alice, &Source::Local, 1000).unwrap();
        // The source's allowance across users: 3 used, refusals not counted.
        t.admit_challenge(&bob, &attacker, 1000).unwrap();
        t.admit_challenge(&bob, &attacker, 1000).unwrap();
        assert!(matches!(
            t.admit_challenge(&bob, &attacker, 1000),
            Err(Refusal::TooMany {
                per_user: false,
                ..
            })
        ));
        // A new minute, a new allowance.
        t.admit_challenge(&alice, &attacker, 1060).unwrap();
    }

    #[test]
    fn failures_earn_a_doubling_wait_for_that_pair_only() {
        let t = Throttle::new(limits());
        let alice = user("alice");
        let attacker = remote("192.0.2.66");
        assert_eq!(t.failure(&alice, &attacker, 1000).penalty_until, None);
        assert_eq!(t.failure(&alice, &attacker, 1000).penalty_until, None);
        assert_eq!(t.failure(&alice, &attacker, 1000).penalty_until, Some(1010));
        assert!(t.check_penalty(&alice, &attacker, 1009).is_err());
        assert!(t.admit_challenge(&alice, &attacker, 1009).is_err());
        assert!(t.check_penalty(&alice, &attacker, 1010).is_ok());
        assert_eq!(t.failure(&alice, &attacker, 1010).penalty_until, Some(1030));
        // Capped.
        assert_eq!(t.failure(&alice, &attacker, 1030).penalty_until, Some(1065));
        assert_eq!(t.failure(&alice, &attacker, 1065).penalty_until, Some(1100));
        assert_eq!(t.penalised(1066), 1);
        // Everyone else is free.
        assert!(t.check_penalty(&alice, &Source::Local, 1066).is_ok());
        assert!(t.check_penalty(&alice, &remote("192.0.2.67"), 1066).is_ok());
        assert!(t.check_penalty(&user("bob"), &attacker, 1066).is_ok());
        // A success from the source clears it; so does an unlock.
        t.success(&alice, &attacker);
        assert!(t.check_penalty(&alice, &attacker, 1066).is_ok());
        for _ in 0..3 {
            t.failure(&alice, &attacker, 2000);
        }
        assert!(t.check_penalty(&alice, &attacker, 2000).is_err());
        assert_eq!(t.clear_user(&alice), 1);
        assert!(t.check_penalty(&alice, &attacker, 2000).is_ok());
    }

    #[test]
    fn no_penalty_when_turned_off() {
        let t = Throttle::new(Limits {
            free_failures: 0,
            ..limits()
        });
        let alice = user("alice");
        for _ in 0..100 {
            assert_eq!(t.failure(&alice, &Source::Local, 1000).penalty_until, None);
        }
        assert!(t.check_penalty(&alice, &Source::Local, 1000).is_ok());
    }

    #[test]
    fn tables_stay_bounded_and_a_flood_refuses_no_newcomer() {
        let t = Throttle::new(limits());
        let alice = user("alice");
        for i in 0..1000u32 {
            let source = remote(&format!("2001:db8:{:x}::1", i));
            let name = user(&format!("u{i}"));
            t.admit_challenge(&name, &source, 1000).unwrap();
            t.failure(&name, &source, 1000);
        }
        let (pairs, sources) = t.sizes();
        assert!(pairs <= 100 && sources <= 100, "{pairs} {sources}");
        t.admit_challenge(&alice, &remote("198.51.100.1"), 1000)
            .unwrap();
    }

    #[test]
    fn a_remote_flood_cannot_push_out_a_local_wait() {
        let t = Throttle::new(limits());
        let alice = user("alice");
        for _ in 0..3 {
            t.failure(&alice, &Source::Local, 1000);
        }
        assert!(t.check_penalty(&alice, &Source::Local, 1000).is_err());
        for i in 0..1000u32 {
            let source = remote(&format!("2001:db8:{i:x}::1"));
            t.admit_challenge(&user(&format!("u{i}")), &source, 1000)
                .unwrap();
        }
        assert!(t.check_penalty(&alice, &Source::Local, 1000).is_err());
    }

    #[test]
    fn pruning_drops_what_holds_nothing() {
        let t = Throttle::new(limits());
        let alice = user("alice");
        t.admit_challenge(&alice, &remote("192.0.2.1"), 1000)
            .unwrap();
        for _ in 0..3 {
            t.failure(&alice, &remote("192.0.2.2"), 1000);
        }
        t.prune(1060);
        // The failed pair is remembered for a day, the quiet one is gone.
        assert_eq!(t.sizes(), (1, 0));
        t.prune(1000 + FAILURE_MEMORY_SECS);
        assert_eq!(t.sizes(), (0, 0));
    }
}
