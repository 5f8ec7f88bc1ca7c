//! Command-line grammar. The doc comments here are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ecp_core::UserName;

const EXIT_CODES: &str = "\
EXIT STATUS:
  0  success
  1  refused: the certificate, token or signature given was checked and is
     not acceptable, a test login failed, doctor found a problem, or
     askpass was not approved to sign
  2  usage error: bad or missing arguments, invalid user name
  3  key file problem: missing, unsafe owner or mode, wrong passphrase,
     unsupported or damaged format
  4  file system error: output exists (see --force), cannot read or write
  5  the ecpd daemon could not be reached (daemon commands)
  6  the daemon refused the request (daemon commands)
  7  PKCS#11 token unavailable: the module cannot be loaded (token
     removed, --pkcs11-module wrong), no matching token, or it failed
  8  the token refused the PIN (wrong, locked or expired)
  9  no such key on the token (object=/id= name nothing, or not P-256)
 10  ecpd answered but could not decide: the directory holding the
     user's certificates cannot be asked and no cached answer is young
     enough, or the user's directory entry is unusable
 11  agent problem (--agent, `agent`): no agent at ECP_AUTH_SOCK or
     SSH_AUTH_SOCK, it holds no key that fits, or it refused to sign

FILES:
  ~/.config/ecp/private_key.pem   the user's encrypted key (default --key)
  ~/.config/ecp/certificate.pem   the matching public certificate
  ~/.config/ecp/approved_hosts    logins askpass and the agent sign without
                                  asking, one \"user@host service
                                  user@destination\" per line (the agent's
                                  destination is agent@HOST-KEY-FINGERPRINT)";

/// ecpctl — manage ecp keys and certificates, and sign login challenges.
///
/// ecp is a second login factor: besides the account password, a login
/// needs a signature by the user's ECDSA P-256 private key over a one-time
/// challenge from the ecpd daemon. The key stays in an encrypted file on the
/// user's side; the daemon only ever sees the public certificate.
#[derive(Debug, Parser)]
#[command(name = "ecpctl", version, after_long_help = EXIT_CODES, after_help = "Exit codes and files: see `ecpctl --help`.")]
pub struct Cli {
    /// Bus where ecpd runs, for daemon commands: `system`, `session`, or a
    /// D-Bus address such as `unix:path=/run/dbus/system_bus_socket`.
    #[arg(long, global = true, value_name = "BUS", default_value = "system")]
    pub bus: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Keygen(KeygenArgs),
    Sign(SignArgs),
    Passwd(PasswdArgs),
    #[command(subcommand)]
    Cert(CertCommand),
    #[command(subcommand)]
    Ca(CaCommand),
    #[command(subcommand)]
    Cache(CacheCommand),
    Enroll(EnrollArgs),
    List(ListArgs),
    Revoke(RevokeArgs),
    Renew(RenewArgs),
    /// Clear a user's failure waits, from every source (root only)
    ///
    /// ecpd makes a source (a remote network, `local`, or a non-root
    /// caller's uid) wait after repeated failed answers for one user; other
    /// sources are never affected. This ends every such wait of USER now.
    #[command(after_long_help = EXIT_CODES)]
    Unlock(UserArg),
    Status(JsonArg),
    /// Drop expired used nonces and stale counters now (root only)
    ///
    /// ecpd also does this every `cleanup_interval_secs`. Prints how many
    /// used nonces were forgotten.
    #[command(after_long_help = EXIT_CODES)]
    Cleanup,
    TestLogin(TestLoginArgs),
    Askpass(AskpassArgs),
    Agent(AgentArgs),
    Doctor(DoctorArgs),
    Completions(CompletionsArgs),
}

/// Enroll a successor certificate by proving possession of a current key
///
/// Before an enrolled certificate expires, its holder makes a successor
/// without an admin: a new key pair and self-signed certificate
/// (`--key-out DIR`), or a certificate for a key already held (`--cert
/// FILE`). ecpd issues a renewal challenge bound to the successor's
/// fingerprint; it is signed with the current key (--key) and checked by
/// ecpd against USER's enrolled certificates. The certificate that signs
/// must be valid now, not revoked, and enrolled at least
/// renew_min_age_secs ago (one day by default); `allow_self_renewal =
/// false` in ecpd.toml turns renewal off for everyone but root. Renewal
/// signatures are domain-separated from login signatures: neither can
/// stand for the other.
///
/// The successor is enrolled under USER with LABEL (default
/// renewed-YYYY-MM-DD); the old certificate stays until it expires unless
/// --retire-old removes it in the same step. With --key-out the new key is
/// written as private_key.pem.new (and certificate.pem.new) before ecpd
/// is asked, renamed into place once ecpd enrolled it, removed if ecpd
/// refuses, and kept if ecpd does not answer. A certificate vouches for
/// one successor only, and a revoked or retired key never comes back.
/// Certificates issued by an organisation CA are renewed by that CA.
///
/// Refusals say why and exit 6: not your account, renewal off, nothing
/// enrolled, a key that matches no enrolled certificate, the signing
/// certificate revoked, expired, too young or already renewed from, a
/// successor valid for more than 3660 days or over a revoked key.
#[derive(Debug, Args)]
#[command(after_long_help = EXIT_CODES)]
#[command(group(clap::ArgGroup::new("successor").required(true).args(["key_out", "cert"])))]
pub struct RenewArgs {
    /// Whose certificate to renew [default: the caller]; only root may
    /// name another user.
    #[arg(value_parser = parse_user)]
    pub user: Option<UserName>,
    /// The current encrypted key file [default: ~/.config/ecp/private_key.pem].
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Read the current key's passphrase from the first line of FILE ("-"
    /// for standard input).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Make a new key pair and certificate in DIR (private_key.pem,
    /// certificate.pem).
    #[arg(long, value_name = "DIR")]
    pub key_out: Option<PathBuf>,
    /// Read the new key's passphrase from the first line of FILE.
    #[arg(long, value_name = "FILE", requires = "key_out")]
    pub new_passphrase_file: Option<PathBuf>,
    /// Validity of the new certificate in days (1 to 3660); ecpd refuses
    /// a successor valid for longer than the current certificate was
    /// issued for [default: that lifetime, read from certificate.pem
    /// beside the current key file; 365 when there is none].
    #[arg(long, value_name = "N", requires = "key_out",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(ecp_core::certificate::MAX_VALIDITY_DAYS)))]
    pub days: Option<u32>,
    /// Replace existing files in the --key-out directory.
    #[arg(long, requires = "key_out")]
    pub force: bool,
    /// Enroll this certificate (PEM, self-signed, CN=USER) for a key you
    /// already hold, instead of making a new one.
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// Remove the certificate that signed, in the same step.
    #[arg(long)]
    pub retire_old: bool,
    /// Label of the new certificate [default: renewed-YYYY-MM-DD].
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,
    #[command(flatten)]
    pub token_key: TokenArgs,
}

/// Check an ecp setup and explain what is wrong.
///
/// Checks, in order: the daemon is reachable (and its version); the PAM
/// module is installed; which PAM services use pam_ecp and in which mode,
/// and whether each stack, run as libpam dispatches it for every return
/// code its modules can give, makes pam_ecp a real second factor behind
/// the password; when sshd's service uses pam_ecp, whether sshd's
/// effective configuration (sshd -T, and -C for each Match block) runs
/// keyboard-interactive on every allowed login (a rollout by Match block
/// is a warning for the connections outside it); then, for the user
/// checked, the key file (safe owner and mode, encrypted; missing in the
/// default place is only a warning, since the key may be on the user's own
/// machine, in an agent or on a token) and the enrolled certificates with
/// the days they have left. The user checked is --user, or whoever runs
/// doctor; root without --user checks the host only, so that `sudo ecpctl
/// doctor` can gate configuration management. Another user's key file is
/// read with that user's identity. Exit status 0 when everything is fine,
/// 1 when anything is not (the lines marked FAIL).
#[derive(Debug, Args)]
#[command(after_long_help = EXIT_CODES)]
pub struct DoctorArgs {
    /// The key file to check [default: the user's
    /// ~/.config/ecp/private_key.pem].
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Whose key file and enrollment to check [default: you; root: none,
    /// the host only].
    #[arg(long, value_name = "NAME", value_parser = parse_user)]
    pub user: Option<UserName>,
    /// Directory of PAM service files.
    #[arg(long, value_name = "DIR", default_value = "/etc/pam.d")]
    pub pam_dir: PathBuf,
    /// A vendor directory where libpam finds the services and included
    /// files that --pam-dir lacks (Ubuntu's polkit-1 in /usr/lib/pam.d);
    /// may be given more than once [default, with --pam-dir /etc/pam.d:
    /// /usr/lib/pam.d, /usr/share/pam.d and /usr/etc/pam.d; otherwise none].
    #[arg(long, value_name = "DIR")]
    pub vendor_pam_dir: Vec<PathBuf>,
    /// sshd's configuration, read through `sshd -T` (and `-C` for each
    /// Match block) when pam_ecp is in the sshd PAM service.
    #[arg(long, value_name = "FILE", default_value = "/etc/ssh/sshd_config")]
    pub sshd_config: PathBuf,
}

/// Print a shell completion script (bash, zsh or fish) on standard output.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Serve your ecp keys to ssh and sudo as an ssh agent
///
/// Unlock once, approve each login on this machine, sudo on servers
/// without copy-paste.
///
/// Asks each key file's passphrase once (or reads it from
/// --passphrase-file), keeps the decrypted keys in locked memory, and
/// listens on a socket only you can reach (default: a new 0700 directory
/// under $XDG_RUNTIME_DIR, else /tmp). It prints shell commands that set
/// ECP_AUTH_SOCK and ECP_AGENT_PID, as `ssh-agent -s` does:
///
///   eval "$(ecpctl agent)"
///   SSH_AUTH_SOCK=$ECP_AUTH_SOCK ssh -A server     # then sudo there
///
/// It signs nothing but ecp login challenges and renewal proofs: `ssh-add
/// -l` lists its keys, but an ssh login, `ssh-keygen -Y sign` or any other
/// data is refused (with --upstream, passed to the agent that was in
/// SSH_AUTH_SOCK when it started, so one forwarded socket serves both).
///
/// Before it signs it decides with you. A request that ssh (8.9 or later)
/// forwarded from a server carries that server's host key, signed
/// (session-bind@openssh.com); the agent finds the host's names for that
/// key in your known_hosts (hashed entries too) and refuses, without
/// asking, a challenge for any other host: a compromised server cannot
/// have you sign another server's login. Otherwise a login on your
/// approved list is signed, else you are asked (on this terminal with
/// --foreground, else through $SSH_ASKPASS, as `ssh-agent -c` does) with
/// user@host, service, origin and the host it came through; a "yes" to a
/// forwarded request is remembered. A request with no session-bind (ssh
/// older than 8.9, or a program on this machine) is asked every time and
/// never remembered; ecpctl's own --agent commands are signed at once
/// (they asked you already).
#[derive(Debug, Args)]
#[command(after_long_help = EXIT_CODES)]
pub struct AgentArgs {
    /// A key file to serve (repeatable) [default: ~/.config/ecp/private_key.pem;
    /// with --upstream and no such file, none: the agent then only
    /// decides for ecp keys held upstream].
    #[arg(long = "key", value_name = "FILE")]
    pub keys: Vec<PathBuf>,
    /// Read the passphrase (of every key) from the first line of FILE.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Pass ordinary ssh-agent requests to the agent in SSH_AUTH_SOCK.
    #[arg(long)]
    pub upstream: bool,
    /// Listen here instead of a new directory under $XDG_RUNTIME_DIR.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Forget the keys and stop after SECS seconds.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub lifetime: Option<u64>,
    /// Stay in the foreground, log to standard error, and ask on this
    /// terminal.
    #[arg(short = 'D', long)]
    pub foreground: bool,
    /// Stop the agent named by ECP_AGENT_PID.
    #[arg(short = 'k', long, conflicts_with_all = ["keys", "passphrase_file", "upstream", "socket", "lifetime", "foreground"])]
    pub kill: bool,
    /// known_hosts files that name the servers [default: ~/.ssh/known_hosts,
    /// ~/.ssh/known_hosts2, /etc/ssh/ssh_known_hosts, /etc/ssh/ssh_known_hosts2].
    #[arg(long = "known-hosts", value_name = "FILE")]
    pub known_hosts: Vec<PathBuf>,
    /// Internal: the background agent, reading its keys from standard input.
    #[arg(long, hide = true)]
    pub serve_stdin: bool,
    /// Internal: the upstream agent the starting process found.
    #[arg(long, hide = true, value_name = "PATH")]
    pub upstream_socket: Option<PathBuf>,
}

/// An SSH_ASKPASS program that answers ecp challenges by itself.
///
/// ssh runs it once per prompt, with the prompt as the argument. A prompt
/// that carries "ecp challenge TOKEN" is answered with a signature made with
/// your key file (the passphrase is asked on the terminal, or read from the
/// file named by ECP_PASSPHRASE_FILE), or through the ecp agent when
/// ECP_AUTH_SOCK is set and no key file or token is named (then nothing is
/// typed); any other prompt (your password) is shown on the terminal and
/// your answer passed on.
///
/// It signs only for logins on your approved list, ~/.config/ecp/approved_hosts
/// (lines of "user@host service user@destination": the challenge's user,
/// host and service, then the destination ssh names before its prompt,
/// believed only when OpenSSH 8.4 or later started askpass). For any other
/// it shows them and the origin of the login on the terminal and asks;
/// only "yes" signs, and is remembered when ssh's destination is the
/// challenge's own user@host. Anything else, or no terminal, signs nothing
/// and exits 1. This keeps a host you were lured to from having your real
/// server's challenge signed behind your back: ssh names the lure as its
/// destination. Use it as
///
///   alias ssh='SSH_ASKPASS="$(command -v ecpctl-askpass)" SSH_ASKPASS_REQUIRE=force ssh'
///
/// where ecpctl-askpass is a two-line script running `ecpctl askpass "$@"`
/// (the packages install one), or set SSH_ASKPASS to this program directly
/// through such a wrapper to pass --key.
#[derive(Debug, Args)]
#[command(after_long_help = EXIT_CODES)]
pub struct AskpassArgs {
    /// The encrypted key file [default: $ECP_KEY_FILE, else ~/.config/ecp/private_key.pem].
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    #[command(flatten)]
    pub token_key: TokenArgs,
    /// The prompt ssh shows.
    #[arg(default_value = "")]
    pub prompt: Vec<String>,
}

/// Register a certificate for a user with ecpd (root only).
///
/// Without --cert: generate a key pair and certificate as `keygen` does and
/// enroll the certificate. When root enrolls another user, the files are
/// written with that user's identity, so they belong to the user (mode
/// 0600/0644) in DIR [default: ~USER/.config/ecp]. With --cert: enroll an
/// existing certificate (bring your own key); nothing is written.
#[derive(Debug, Args)]
#[command(after_long_help = EXIT_CODES)]
pub struct EnrollArgs {
    /// The user to enroll.
    #[arg(value_parser = parse_user)]
    pub user: UserName,
    /// Enroll this PEM certificate instead of generating a key pair.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["out", "days", "passphrase_file", "force"])]
    pub cert: Option<PathBuf>,
    /// A name for this certificate, shown by `list` (e.g. "laptop").
    #[arg(long, value_name = "LABEL", default_value = "")]
    pub label: String,
    /// Where to write the generated key pair [default: ~USER/.config/ecp].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Certificate validity in days (1 to 3660).
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(ecp_core::certificate::MAX_VALIDITY_DAYS)))]
    pub days: Option<u32>,
    /// Read the new key's passphrase from the first line of FILE ("-" for standard input).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Replace existing key files in DIR.
    #[arg(long)]
    pub force: bool,
}

/// List enrolled certificates: label, fingerprint, validity, last use, renewed from.
///
/// Without USER, root sees every user's certificates and anyone else their
/// own.
#[derive(Debug, Args)]
#[command(after_long_help = EXIT_CODES)]
pub struct ListArgs {
    /// Whose certificates to list.
    #[arg(value_parser = parse_user)]
    pub user: Option<UserName>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Revoke one certificate (by fingerprint) or all of a user's (root only).
///
/// Revocation is of the key: once a certificate is revoked, no
/// certificate carrying its key signs for anyone on this host again,
/// whether enrolled, presented with a CA's signature or read from the
/// directory, and none can be enrolled. Every certificate renewed from
/// the revoked one (`ecpctl renew`), directly or through others, is
/// revoked with it, as is any other enrolled certificate with the same
/// key; each is printed with the reason ("renewed from …", "same key as
/// …"). A certificate that a renewal retired can still be named, so that
/// what was renewed from it goes too.
///
/// A stolen key file: `ecpctl revoke USER --all` (or the stolen key's
/// fingerprint, which takes its successors along), then enroll a new
/// certificate.
#[derive(Debug, Args)]
#[command(after_long_help = EXIT_CODES)]
pub struct RevokeArgs {
    #[arg(value_parser = parse_user)]
    pub user: UserName,
    /// SHA-256 fingerprint as `ecpctl list` shows it (colons allowed).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub fingerprint: Option<String>,
    /// Revoke every certificate of USER.
    #[arg(long)]
    pub all: bool,
    /// Leave the certificates renewed from FINGERPRINT enrolled: for an
    /// admin who knows those renewals were the holder's own. A successor
    /// with the revoked key itself is revoked all the same.
    #[arg(long, conflicts_with = "all")]
    pub keep_successors: bool,
}

/// A user name argument.
#[derive(Debug, Args)]
#[command(after_long_help = EXIT_CODES)]
pub struct UserArg {
    /// The user.
    #[arg(value_parser = parse_user)]
    pub user: UserName,
}

/// Show the daemon's version; as root also its counts, store size and
/// uptime.
#[derive(Debug, Args)]
#[command(after_long_help = EXIT_CODES)]
pub struct JsonArg {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run a whole login round against ecpd without PAM.
///
/// Requests a challenge for USER, signs it with the key file, and asks the
/// daemon to verify it: exit status 0 when the daemon accepts. The admin's
/// and the user's way to check a setup. Non-root users can test only
/// themselves. Root naming another user without --key, --pkcs11 or
/// --agent signs with that user's own ~/.config/ecp/private_key.pem, read
/// with that user's identity (so root reads nothing the user could not),
/// and the passphrase is asked of whoever runs the command.
#[derive(Debug, Args)]
#[command(after_long_help = EXIT_CODES)]
pub struct TestLoginArgs {
    #[arg(value_parser = parse_user)]
    pub user: UserName,
    /// The encrypted key file [default: ~/.config/ecp/private_key.pem; for
    /// root naming another user, that user's].
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Read the passphrase from the first line of FILE ("-" for standard input).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// The certificate to present when an organisation CA issued it
    /// [default: certificate.pem beside the key].
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// PAM service name to request the challenge for.
    #[arg(long, value_name = "SERVICE", default_value = "ecp-test-login")]
    pub service: String,
    #[command(flatten)]
    pub token_key: TokenArgs,
}

/// Generate a new key pair and a self-signed certificate for a user.
///
/// Writes DIR/private_key.pem (encrypted PKCS#8, scrypt + AES-256-CBC,
/// mode 0600) and DIR/certificate.pem (mode 0644), creating DIR (mode 0700)
/// if needed. Existing files are never replaced unless --force is given.
/// Without --passphrase-file the passphrase is asked twice on the terminal,
/// without echo. The certificate is then enrolled by root with
/// `ecpctl enroll USER --cert DIR/certificate.pem`.
#[derive(Debug, Args)]
#[command(after_long_help = EXIT_CODES)]
pub struct KeygenArgs {
    /// The user the certificate is for (its subject CN).
    #[arg(long, value_name = "NAME", value_parser = parse_user)]
    pub user: UserName,
    /// Directory to write private_key.pem and certificate.pem into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Certificate validity in days (1 to 3660).
    #[arg(long, value_name = "N", default_value_t = ecp_core::certificate::DEFAULT_VALIDITY_DAYS,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(ecp_core::certificate::MAX_VALIDITY_DAYS)))]
    pub days: u32,
    /// Read the new passphrase from the first line of FILE ("-" for standard input).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Replace existing files in DIR.
    #[arg(long)]
    pub force: bool,
    /// Write DIR/certificate_request.pem (PKCS#10, CN=NAME, signed by the
    /// new key) for an organisation CA to sign, instead of a self-signed
    /// certificate. Put the certificate the CA returns in
    /// DIR/certificate.pem.
    #[arg(long)]
    pub csr: bool,
    /// Make the key pair on a PKCS#11 token (named by this RFC 7512 URI,
    /// with object=LABEL) and write only the certificate (or, with --csr,
    /// the request) to DIR: the private key never leaves the token.
    #[arg(long, value_name = "URI", conflicts_with = "passphrase_file")]
    pub pkcs11: Option<String>,
    /// Use a key an ssh agent holds ($ECP_AUTH_SOCK, else $SSH_AUTH_SOCK:
    /// OpenSSH's ssh-agent, gpg-agent, a TPM- or Secure-Enclave-backed
    /// agent, a token through ssh-agent's PKCS#11 support). The agent signs
    /// the certificate (or, with --csr, the request); only that is written
    /// to DIR. Any ecdsa-sha2-nistp256 key will do (ssh-keygen -t ecdsa -b
    /// 256); sign with `--agent` afterwards.
    #[arg(long, conflicts_with_all = ["passphrase_file", "pkcs11"])]
    pub agent: bool,
    /// With --agent: which key, by its OpenSSH fingerprint (SHA256:…, as
    /// `ssh-add -l` shows) or comment [default: the agent's only P-256 key].
    #[arg(long, value_name = "FINGERPRINT|COMMENT", requires = "agent")]
    pub agent_key: Option<String>,
    /// With --pkcs11: use the key already on the token instead of making one.
    #[arg(long, requires = "pkcs11")]
    pub existing: bool,
    /// The PKCS#11 module [default: the URI's module-path, else
    /// $ECP_PKCS11_MODULE, else p11-kit's proxy].
    #[arg(long, value_name = "PATH", requires = "pkcs11")]
    pub pkcs11_module: Option<PathBuf>,
    /// Read the token's PIN from the first line of FILE.
    #[arg(long, value_name = "FILE", requires = "pkcs11")]
    pub pin_file: Option<PathBuf>,
}

/// The daemon's cache of directory (LDAP) answers.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Drop cached directory answers now, for USER or everyone (root only)
    ///
    /// ecpd keeps each user's certificates from the directory for
    /// cache_ttl_secs; after a revocation in the directory, this makes the
    /// next login ask the directory at once. Prints how many were dropped.
    #[command(after_long_help = EXIT_CODES)]
    Flush(CacheFlushArgs),
}

#[derive(Debug, Args)]
pub struct CacheFlushArgs {
    /// Whose answer to drop [default: everyone's].
    #[arg(value_parser = parse_user)]
    pub user: Option<UserName>,
}

/// Work as an organisation CA kept in files.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    Sign(CaSignArgs),
}

/// Sign a user's certificate request with a CA kept in files.
///
/// Checks the request (exactly one CN that is a valid user name, an ECDSA
/// P-256 key, signed by that key) and the CA (a CA certificate whose key is
/// --ca-key), then writes a certificate for the user: issued by the CA,
/// CA:FALSE, keyUsage digitalSignature, with subject and authority key
/// identifiers, valid from five minutes ago for --days. It passes
/// `openssl verify -CAfile CA-CERT`, and ecpd accepts it at login when
/// CA-CERT is in its ca_file. The CA key may be PKCS#8, plain or encrypted
/// (its passphrase from --passphrase-file or the terminal); P-256, P-384 and
/// RSA keys are supported.
#[derive(Debug, Args)]
#[command(after_long_help = EXIT_CODES)]
pub struct CaSignArgs {
    /// The CA's certificate (PEM).
    #[arg(long, value_name = "FILE")]
    pub ca_cert: PathBuf,
    /// The CA's private key (PKCS#8 PEM).
    #[arg(long, value_name = "FILE")]
    pub ca_key: PathBuf,
    /// Read the CA key's passphrase from the first line of FILE ("-" for
    /// standard input), if it is encrypted.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Certificate validity in days (1 to 3660).
    #[arg(long, value_name = "N", default_value_t = ecp_core::certificate::DEFAULT_VALIDITY_DAYS,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(ecp_core::certificate::MAX_VALIDITY_DAYS)))]
    pub days: u32,
    /// Write the certificate to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The user the request must be for: a request naming anyone else is
    /// refused (a guard against signing the wrong file).
    #[arg(long, value_name = "NAME", value_parser = parse_user)]
    pub user: Option<UserName>,
    /// Sign a request for root. Refused without this: ecpd accepts
    /// CA-issued certificates for root only with ca_allow_root.
    #[arg(long)]
    pub allow_root: bool,
    /// The user's certificate request (PEM or DER PKCS#10).
    pub request: PathBuf,
}

/// Sign a login challenge with your key and print the signature.
///
/// TOKEN is what the login prompt shows after "ecp challenge". Before
/// anything is signed, standard error shows what you are approving (user,
/// host, service, expiry); an expired or malformed token is refused. The
/// signature (base64 DER) is printed on standard output, to be pasted at the
/// login prompt.
#[derive(Debug, Args)]
#[command(after_long_help = EXIT_CODES)]
pub struct SignArgs {
    /// The encrypted key file [default: ~/.config/ecp/private_key.pem].
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// The certificate to send with the signature when an organisation CA
    /// issued it [default: certificate.pem beside the key].
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// Read the passphrase from the first line of FILE ("-" for standard input).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    #[command(flatten)]
    pub token_key: TokenArgs,
    /// The challenge token.
    pub token: String,
}

/// Change a key file's passphrase and re-encrypt it with today's default KDF.
///
/// Key files from other tools often use a weak KDF (PBKDF2 with 2,048
/// iterations is common); this upgrades them to scrypt. The file is replaced
/// atomically (a new file is written, then renamed over the old one) and
/// keeps its mode and owner.
#[derive(Debug, Args)]
#[command(after_long_help = EXIT_CODES)]
pub struct PasswdArgs {
    /// The encrypted key file [default: ~/.config/ecp/private_key.pem].
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Read the current passphrase from the first line of FILE ("-" for standard input).
    #[arg(long, value_name = "FILE")]
    pub old_passphrase_file: Option<PathBuf>,
    /// Read the new passphrase from the first line of FILE ("-" for standard input).
    #[arg(long, value_name = "FILE")]
    pub new_passphrase_file: Option<PathBuf>,
}

/// Inspect and check certificates.
#[derive(Debug, Subcommand)]
pub enum CertCommand {
    Show(CertShowArgs),
    Check(CertCheckArgs),
    Ldif(CertLdifArgs),
}

/// Print the LDIF that adds a certificate to a user's directory entry.
///
/// The certificate must pass the structural rule for USER (one CN equal to
/// the user name, a P-256 key, key usage allowing signatures; a
/// self-signed one must sign itself). The output is an LDIF modify record
/// adding the certificate's DER to `userCertificate;binary` of DN, for
/// `ldapmodify`. ecpd reads it from there when ecpd.toml has a
/// [directory] section.
#[derive(Debug, Args)]
#[command(after_long_help = EXIT_CODES)]
pub struct CertLdifArgs {
    /// The user the certificate is for (its CN).
    #[arg(long, value_name = "NAME", value_parser = parse_user)]
    pub user: UserName,
    /// The user's entry, e.g. uid=alice,ou=people,dc=example,dc=org.
    #[arg(long, value_name = "DN")]
    pub dn: String,
    /// The attribute to add to [default: userCertificate;binary].
    #[arg(long, value_name = "NAME", default_value = "userCertificate;binary")]
    pub attribute: String,
    /// PEM certificate file.
    pub file: PathBuf,
}

/// Show a certificate's subject, SHA-256 fingerprint and validity.
#[derive(Debug, Args)]
#[command(after_long_help = EXIT_CODES)]
pub struct CertShowArgs {
    /// PEM certificate file.
    pub file: PathBuf,
}

/// Check whether the daemon would accept a certificate for a user.
///
/// Without --ca-file, applies exactly the rule ecpd applies when enrolling:
/// one PEM certificate, exactly one CN equal to the user name, a P-256 key,
/// a valid self-signature (ecdsa-with-SHA256), and the current time inside
/// its validity (give or take --skew). With --ca-file, applies the rule for
/// a certificate presented at login instead: issued directly by one of
/// those CAs (valid now, CA:TRUE), the same user rule, not a CA itself, and
/// not revoked by a current CRL from --crl-file (one is required, as with
/// ecpd's default require_crl, unless --no-require-crl). Exit status 0 if
/// it would be accepted, 1 with the reason if not.
#[derive(Debug, Args)]
#[command(after_long_help = EXIT_CODES)]
pub struct CertCheckArgs {
    /// The user the certificate must belong to.
    #[arg(long, value_name = "NAME", value_parser = parse_user)]
    pub user: UserName,
    /// Allowed clock difference, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = ecp_core::certificate::DEFAULT_CLOCK_SKEW.as_secs())]
    pub skew: u64,
    /// Organisation CA certificates (PEM), as ecpd's ca_file.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Their revocation lists (PEM or DER), as ecpd's crl_file.
    #[arg(long, value_name = "FILE", requires = "ca_file")]
    pub crl_file: Option<PathBuf>,
    /// Accept without a current CRL, as ecpd's `require_crl = false`.
    #[arg(long, requires = "ca_file")]
    pub no_require_crl: bool,
    /// Seconds a CRL still counts after its nextUpdate (crl_grace_secs).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 0,
        requires = "ca_file"
    )]
    pub crl_grace_secs: u64,
    /// PEM certificate file.
    pub file: PathBuf,
}

/// A key on a hardware token instead of a key file.
#[derive(Debug, Args, Clone, Default)]
pub struct TokenArgs {
    /// Use the key on a PKCS#11 token (smart card, YubiKey PIV, TPM)
    /// named by this RFC 7512 URI, e.g. "pkcs11:token=ecp;object=alice",
    /// instead of a key file.
    #[arg(long, value_name = "URI")]
    pub pkcs11: Option<String>,
    /// The PKCS#11 module [default: the URI's module-path, else
    /// $ECP_PKCS11_MODULE, else p11-kit's proxy].
    #[arg(long, value_name = "PATH")]
    pub pkcs11_module: Option<PathBuf>,
    /// Read the token's PIN from the first line of FILE [default: the
    /// URI's pin-source, else asked on the terminal without echo].
    #[arg(long, value_name = "FILE")]
    pub pin_file: Option<PathBuf>,
    /// Sign with a key held by an ssh agent: the ecp agent at
    /// $ECP_AUTH_SOCK, else the agent at $SSH_AUTH_SOCK (any
    /// ecdsa-sha2-nistp256 key: OpenSSH's ssh-agent, gpg-agent, a TPM- or
    /// token-backed agent). The key is the one whose certificate is given
    /// (--cert, else ~/.config/ecp/certificate.pem) or that ecpd lets
    /// sign, else the agent's only P-256 key.
    #[arg(long, conflicts_with_all = ["pkcs11", "pkcs11_module", "pin_file"])]
    pub agent: bool,
}

fn parse_user(raw: &str) -> Result<UserName, String> {
    UserName::parse(raw).map_err(|e| e.to_string())
}
