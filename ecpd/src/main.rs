//! ecpd: the ecp system daemon (built in the daemon issue).
#![forbid(unsafe_code)]

fn main() {
    eprintln!("ecpd: the daemon is not built yet");
    std::process::exit(1);
}
