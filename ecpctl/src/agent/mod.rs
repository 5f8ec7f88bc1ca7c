//! `ecpctl agent`: the user's ecp keys, unlocked once, served over the
//! ssh-agent protocol so that ssh can forward them to the servers the user
//! logs in to (sudo there signs through them). See `serve` for what it
//! signs and when.

mod ask;
mod hostkey;
mod known_hosts;
mod log;
mod run;
mod serve;
mod vault;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use ecp_core::keyfile::decrypt_key_pem;
use ecp_core::keyfile_io::read_key_file;
use p256::ecdsa::SigningKey;
use zeroize::Zeroizing;

use crate::cli::AgentArgs;
use crate::failure::Failure;
use crate::keys::{expected_owner, home_dir, key_path_or_default};
use crate::secrets::{ask_passphrase, passphrase_from_file};
use vault::{AgentKey, Vault};

pub use serve::Agent;

/// The name of the directories the agent makes for its socket.
const DIR_PREFIX: &str = "ecp-agent.";

pub fn run(args: &AgentArgs) -> Result<(), Failure> {
    if args.kill {
        return kill();
    }
    // No other process of this user may read the keys out of memory
    // (ptrace) or find them in a core dump.
    let _ = nix::sys::prctl::set_dumpable(false);
    if args.serve_stdin {
        return serve_from_stdin(args);
    }
    let keys = load_keys(args)?;
    let upstream = upstream_socket(args)?;
    let socket = socket_path(args)?;
    if args.foreground {
        let listener = listen(&socket)?;
        print_environment(&socket, std::process::id());
        return serve(args, keys, upstream, socket, listener);
    }
    start_in_background(args, keys, upstream.as_deref(), &socket)
}

/// Each key file, unlocked with its passphrase (asked once per file, or
/// read from --passphrase-file).
fn load_keys(args: &AgentArgs) -> Result<Vec<AgentKey>, Failure> {
    let paths = if args.keys.is_empty() {
        let default = key_path_or_default(None)?;
        // In front of an ssh-agent that holds the ecp key, the agent may
        // hold none itself: it only decides for upstream's key.
        if args.upstream && default.symlink_metadata().is_err() {
            return Ok(Vec::new());
        }
        vec![default]
    } else {
        args.keys.clone()
    };
    // Sized up front: a growing Vec would leave unwiped copies of keys.
    let mut keys = Vec::with_capacity(paths.len());
    for (index, path) in paths.iter().enumerate() {
        let pem = read_key_file(path, expected_owner()).map_err(Failure::KeyFileAccess)?;
        let passphrase = match &args.passphrase_file {
            Some(file) => passphrase_from_file(file)?,
            None => ask_passphrase(&format!("Passphrase for ecp key {}: ", path.display()))?,
        };
        let key = decrypt_key_pem(&pem, &passphrase)?;
        keys.push(AgentKey::new(key, comment_for(index, path)));
    }
    Ok(keys)
}

/// What the agent calls a key: every server it is forwarded to sees this,
/// so the file's name without the path (which names the user's home).
fn comment_for(index: usize, path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("ecp key {} ({name})", index + 1)
}

/// With --upstream: the agent in SSH_AUTH_SOCK now, which must answer.
fn upstream_socket(args: &AgentArgs) -> Result<Option<PathBuf>, Failure> {
    if let Some(path) = &args.upstream_socket {
        return Ok(Some(path.clone()));
    }
    if !args.upstream {
        return Ok(None);
    }
    let path = std::env::var_os("SSH_AUTH_SOCK")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| Failure::Agent("--upstream: SSH_AUTH_SOCK is not set".into()))?;
    ecp_agent::AgentClient::connect(&path, std::time::Duration::from_secs(5))
        .and_then(|mut client| client.identities())
        .map_err(|e| Failure::Agent(format!("--upstream: {e}")))?;
    Ok(Some(path))
}

/// --socket, or a new 0700 directory under $XDG_RUNTIME_DIR (else /tmp).
fn socket_path(args: &AgentArgs) -> Result<PathBuf, Failure> {
    if let Some(path) = &args.socket {
        return Ok(path.clone());
    }
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|dir| {
            std::fs::metadata(dir).is_ok_and(|m| {
                m.is_dir() && m.uid() == nix::unistd::getuid().as_raw() && m.mode() & 0o077 == 0
            })
        })
        .unwrap_or_else(std::env::temp_dir);
    let mut random = [0u8; 6];
    getrandom::fill(&mut random).map_err(|e| Failure::Agent(e.to_string()))?;
    let dir = base.join(format!("{DIR_PREFIX}{}", ecp_core::hex::encode(&random)));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| Failure::Agent(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir.join("agent.sock"))
}

/// Listens at `path`, a socket only this user can use.
fn listen(path: &Path) -> Result<UnixListener, Failure> {
    use nix::sys::stat::{umask, Mode};
    let old = umask(Mode::from_bits_truncate(0o177));
    let listener = UnixListener::bind(path);
    umask(old);
    listener.map_err(|e| Failure::Agent(format!("cannot listen at {}: {e}", path.display())))
}

/// The shell lines that set the agent's variables. Written at once, and
/// a reader that went away is no error: an agent in the foreground keeps
/// serving whether or not anyone reads them.
fn print_environment(socket: &Path, pid: u32) {
    let text = format!(
        "ECP_AUTH_SOCK={}; export ECP_AUTH_SOCK;\nECP_AGENT_PID={pid}; export ECP_AGENT_PID;\necho Agent pid {pid};\n",
        socket.display()
    );
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Starts this program again as the background agent and hands it the
/// keys through a pipe: no key is written anywhere, and the agent is a
/// new session, away from this terminal.
fn start_in_background(
    args: &AgentArgs,
    keys: Vec<AgentKey>,
    upstream: Option<&Path>,
    socket: &Path,
) -> Result<(), Failure> {
    let exe = std::env::current_exe()
        .map_err(|e| Failure::Agent(format!("cannot find this program: {e}")))?;
    let mut command = Command::new(exe);
    command
        .args(["agent", "--serve-stdin", "--socket"])
        .arg(socket);
    if let Some(upstream) = upstream {
        command.arg("--upstream-socket").arg(upstream);
    }
    if let Some(secs) = args.lifetime {
        command.arg("--lifetime").arg(secs.to_string());
    }
    for file in &args.known_hosts {
        command.arg("--known-hosts").arg(file);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Failure::Agent(format!("cannot start the agent: {e}")))?;
    let mut stdin = child.stdin.take().expect("piped");
    let sent = stdin.write_all(&serialize(&keys));
    drop(stdin);
    drop(keys);
    sent.map_err(|e| Failure::Agent(format!("cannot hand the keys to the agent: {e}")))?;
    let mut line = String::new();
    let _ = BufReader::new(child.stdout.take().expect("piped"))
        .take(4096)
        .read_line(&mut line);
    match line.trim().strip_prefix("ready") {
        Some(_) => {
            print_environment(socket, child.id());
            Ok(())
        }
        None => {
            let _ = child.wait();
            Err(Failure::Agent(
                line.trim()
                    .strip_prefix("error: ")
                    .unwrap_or("the agent did not start")
                    .to_owned(),
            ))
        }
    }
}

/// Keys as they travel to the background agent: per key, the comment's
/// length (2 bytes), the comment, the 32-byte secret scalar.
fn serialize(keys: &[AgentKey]) -> Zeroizing<Vec<u8>> {
    let size = keys.iter().map(|k| 2 + k.comment.len() + 32).sum();
    let mut out = Zeroizing::new(Vec::with_capacity(size));
    for key in keys {
        let comment = key.comment.as_bytes();
        let len = u16::try_from(comment.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&comment[..usize::from(len)]);
        out.extend_from_slice(&Zeroizing::new(key.signing.to_bytes()));
    }
    out
}

fn deserialize(mut bytes: &[u8]) -> Result<Vec<AgentKey>, String> {
    // At most one key per 34 bytes: enough room from the start, so the
    // keys are never moved (and copied unwiped) by a growing Vec.
    let mut keys = Vec::with_capacity(bytes.len() / 34);
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_at_checked(2).ok_or("truncated")?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let (comment, rest) = rest.split_at_checked(len).ok_or("truncated")?;
        let (secret, rest) = rest.split_at_checked(32).ok_or("truncated")?;
        let signing = SigningKey::from_slice(secret).map_err(|_| "not a P-256 key")?;
        keys.push(AgentKey::new(
            signing,
            String::from_utf8_lossy(comment).into_owned(),
        ));
        bytes = rest;
    }
    Ok(keys)
}

/// The background agent: keys from standard input, "ready" (or "error:
/// …") on standard output once it listens.
fn serve_from_stdin(args: &AgentArgs) -> Result<(), Failure> {
    let _ = nix::unistd::setsid();
    // Sized up front, so reading never reallocates an unwiped copy.
    let mut input = Zeroizing::new(Vec::with_capacity((1 << 20) + 1));
    let read = std::io::stdin()
        .lock()
        .take(1 << 20)
        .read_to_end(&mut input);
    let keys = read
        .map_err(|e| e.to_string())
        .and_then(|_| deserialize(&input));
    drop(input);
    let report = |line: &str| {
        let mut out = std::io::stdout();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    let keys = match keys {
        Ok(keys) => keys,
        Err(e) => {
            report(&format!("error: cannot read the keys: {e}"));
            return Err(Failure::Agent(e));
        }
    };
    let Some(socket) = args.socket.clone() else {
        report("error: no socket");
        return Err(Failure::Usage("--serve-stdin needs --socket".into()));
    };
    let listener = match listen(&socket) {
        Ok(listener) => listener,
        Err(e) => {
            report(&format!("error: {e}"));
            return Err(e);
        }
    };
    report("ready");
    serve(args, keys, args.upstream_socket.clone(), socket, listener)
}

fn serve(
    args: &AgentArgs,
    keys: Vec<AgentKey>,
    upstream: Option<PathBuf>,
    socket: PathBuf,
    listener: UnixListener,
) -> Result<(), Failure> {
    let log = log::AgentLog::new(args.foreground);
    stop_on_signal_or_lifetime(&socket, args.lifetime, args.foreground)?;
    let (vault, lock_problem) = Vault::new(keys);
    if let Some(problem) = lock_problem {
        log.warning(&problem);
    }
    let home = home_dir()?;
    let known_hosts = if args.known_hosts.is_empty() {
        known_hosts::default_files(&home)
    } else {
        args.known_hosts.clone()
    };
    let questions = ask::Questions::for_agent(args.foreground);
    if !questions.can_ask() {
        log.warning("no terminal and no SSH_ASKPASS: only approved-list logins and ecpctl's own requests are signed");
    }
    log.info(&format!(
        "serving {} key(s) at {}{}",
        vault.len(),
        socket.display(),
        upstream
            .as_ref()
            .map(|u| format!(", other requests to {}", u.display()))
            .unwrap_or_default()
    ));
    let own_program = std::fs::metadata("/proc/self/exe")
        .ok()
        .map(|m| (m.dev(), m.ino()));
    let agent = Arc::new(Agent {
        vault,
        questions,
        log,
        known_hosts,
        approved_path: ecp_core::user_files::approved_hosts_path(&home),
        upstream,
        own_program,
        ssh_programs: serve::trusted_ssh_programs(),
        target_of: serve::ssh_target,
        targets: Mutex::new(Default::default()),
    });
    agent.serve(listener);
    Ok(())
}

/// SIGTERM, SIGINT and SIGHUP (and the end of --lifetime) remove the
/// socket and end the agent. The signals are blocked here, before any
/// other thread starts, and read from a signalfd.
fn stop_on_signal_or_lifetime(
    socket: &Path,
    lifetime: Option<u64>,
    foreground: bool,
) -> Result<(), Failure> {
    use nix::sys::signal::{SigSet, Signal};
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGHUP);
    signals.add(Signal::SIGINT);
    signals
        .thread_block()
        .map_err(|e| Failure::Agent(format!("cannot block signals: {e}")))?;
    let signal_fd = nix::sys::signalfd::SignalFd::new(&signals)
        .map_err(|e| Failure::Agent(format!("cannot watch signals: {e}")))?;
    let socket_for_signals = socket.to_path_buf();
    std::thread::spawn(move || {
        let _ = signal_fd.read_signal();
        stop(&socket_for_signals, foreground, "stopped by a signal");
    });
    if let Some(secs) = lifetime {
        let socket = socket.to_path_buf();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs(secs));
            stop(&socket, foreground, "lifetime over: keys forgotten");
        });
    }
    Ok(())
}

fn stop(socket: &Path, foreground: bool, why: &str) -> ! {
    let _ = std::fs::remove_file(socket);
    if let Some(dir) = socket.parent() {
        if dir
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(DIR_PREFIX))
        {
            let _ = std::fs::remove_dir(dir);
        }
    }
    log::AgentLog::new(foreground).info(why);
    std::process::exit(0)
}

/// `--kill`: the agent named by ECP_AGENT_PID, if it is this program run
/// by this user.
fn kill() -> Result<(), Failure> {
    let pid: i32 = std::env::var("ECP_AGENT_PID")
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .filter(|p| *p > 0)
        .ok_or_else(|| Failure::Agent("ECP_AGENT_PID is not set".into()))?;
    // The agent is not dumpable, so its /proc/PID/exe cannot be read by
    // its own user: it is known by owner, name and command line.
    let owner = std::fs::metadata(format!("/proc/{pid}")).map(|m| m.uid());
    let uid = nix::unistd::getuid().as_raw();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let is_agent = std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let program = args
            .first()
            .and_then(|a| a.rsplit(|b| *b == b'/').next())
            .unwrap_or_default();
        program == b"ecpctl" && args.get(1) == Some(&b"agent".as_slice())
    });
    match owner {
        Ok(owner) if owner != uid => {
            return Err(Failure::Agent(format!("process {pid} is not yours")));
        }
        Ok(_) if is_agent && comm.trim() == "ecpctl" => {}
        _ => {
            return Err(Failure::Agent(format!(
                "process {pid} (ECP_AGENT_PID) is not an ecp agent"
            )));
        }
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .map_err(|e| Failure::Agent(format!("cannot stop process {pid}: {e}")))?;
    println!("unset ECP_AUTH_SOCK;");
    println!("unset ECP_AGENT_PID;");
    println!("echo Agent pid {pid} killed;");
    Ok(())
}
