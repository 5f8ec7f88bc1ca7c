//! ecpd's parts, as a library so that tests and fuzzers can drive the
//! decisions in-process: `config` (ecpd.toml), `store` (sled:
//! certificates), `tokens` (stateless challenges, used nonces),
//! `throttle` (per user and source counts and penalties), `trust_files`
//! (organisation CAs and CRLs, re-read when they change), `clock`,
//! `service` (the decisions, no D-Bus or sled types, one file a concern) and `dbus` (the bus
//! edge). The daemon itself is `main.rs`.

#![forbid(unsafe_code)]

pub mod clock;
pub mod config;
pub mod dbus;
pub mod directory;
pub mod ldap_stream;
pub mod service;
pub mod store;
pub mod throttle;
pub mod tokens;
pub mod trust_files;
