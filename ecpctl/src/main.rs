//! ecpctl: the ecp command-line tool. It parses arguments, calls into
//! ecp_core (and, for daemon commands, ecpd over D-Bus), and prints; it
//! decides no trust question itself.

#![forbid(unsafe_code)]

mod agent;
mod agent_key;
mod approved;
mod askpass;
mod ca;
mod cert;
mod cli;
mod daemon;
mod doctor;
mod failure;
mod keygen;
mod keys;
mod pam_stack;
mod passwd;
mod renew;
mod secrets;
mod selinux;
mod sign;
mod sshd_config;
mod token;
mod unreachable;

use std::process::ExitCode;

use clap::Parser;

use cli::{CaCommand, CacheCommand, CertCommand, Cli, Command};
use failure::Failure;

fn run(cli: &Cli) -> Result<(), Failure> {
    match &cli.command {
        Command::Keygen(args) => keygen::run(args),
        Command::Sign(args) => sign::run(args),
        Command::Passwd(args) => passwd::run(args),
        Command::Cert(CertCommand::Show(args)) => cert::show(args),
        Command::Cert(CertCommand::Check(args)) => cert::check(args),
        Command::Cert(CertCommand::Ldif(args)) => cert::ldif(args),
        Command::Ca(CaCommand::Sign(args)) => ca::sign(args),
        Command::Cache(CacheCommand::Flush(args)) => daemon::flush_cache(&cli.bus, args),
        Command::Enroll(args) => daemon::enroll(&cli.bus, args),
        Command::Renew(args) => renew::run(&cli.bus, args),
        Command::List(args) => daemon::list(&cli.bus, args),
        Command::Revoke(args) => daemon::revoke(&cli.bus, args),
        Command::Unlock(args) => daemon::unlock(&cli.bus, args),
        Command::Status(args) => daemon::status(&cli.bus, args),
        Command::Cleanup => daemon::cleanup(&cli.bus),
        Command::TestLogin(args) => daemon::test_login(&cli.bus, args),
        Command::Askpass(args) => askpass::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Doctor(args) => doctor::run(&cli.bus, args),
        Command::Completions(args) => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(args.shell, &mut command, "ecpctl", &mut std::io::stdout());
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    token::scrub_environment_for_root();
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("ecpctl: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}
