//! ecpd's parts, as a library so that tests and fuzzers can drive the
//! decisions in-process: `config` (ecpd.toml), `store` (sled), `service`
//! (the decisions, no D-Bus or sled types) and `dbus` (the bus edge).
//! The daemon itself is `main.rs`.

#![forbid(unsafe_code)]

pub mod config;
pub mod dbus;
pub mod service;
pub mod store;
