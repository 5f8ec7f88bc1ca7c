//! Getting passphrases: from a file, standard input, or the terminal.
//! Every buffer that held one is wiped (`Passphrase` zeroizes on drop).

use std::io::Read;
use std::path::Path;

use ecp_core::Passphrase;
use zeroize::Zeroizing;

use crate::failure::Failure;

/// Passphrase files hold one line; anything bigger is a mistake.
const MAX_PASSPHRASE_FILE_LEN: u64 = 4096;

/// At most `max` bytes of `path` ("-" = standard input), in memory that
/// is wiped on drop. The buffer is sized up front, so reading never
/// reallocates and leaves no unwiped copy behind; a FIFO or a huge file
/// is not read on and on.
pub fn read_secret_file(path: &Path, max: u64) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let mut buffer = Zeroizing::new(Vec::with_capacity(max as usize + 1));
    if path.as_os_str() == "-" {
        std::io::stdin().lock().take(max).read_to_end(&mut buffer)?;
    } else {
        std::fs::File::open(path)?
            .take(max)
            .read_to_end(&mut buffer)?;
    }
    Ok(buffer)
}

/// Reads the first line of `path` ("-" = standard input).
pub fn passphrase_from_file(path: &Path) -> Result<Passphrase, Failure> {
    let mut buffer = read_secret_file(path, MAX_PASSPHRASE_FILE_LEN).map_err(|e| {
        Failure::Terminal(format!(
            "cannot read passphrase from {}: {e}",
            path.display()
        ))
    })?;
    Ok(Passphrase::from_first_line(std::mem::take(&mut *buffer))?)
}

/// Asks once on the terminal, without echo.
pub fn ask_passphrase(prompt: &str) -> Result<Passphrase, Failure> {
    let answer = rpassword::prompt_password(prompt).map_err(|e| {
        Failure::Terminal(format!(
            "cannot ask for the passphrase on a terminal ({e}); use --passphrase-file"
        ))
    })?;
    Ok(Passphrase::new(answer.into_bytes())?)
}

/// Asks twice for a new passphrase and insists the two agree.
pub fn ask_new_passphrase() -> Result<Passphrase, Failure> {
    let first = ask_passphrase("New passphrase: ")?;
    let second = ask_passphrase("Repeat passphrase: ")?;
    if first.as_bytes() != second.as_bytes() {
        return Err(Failure::Terminal("the passphrases do not match".into()));
    }
    Ok(first)
}

/// A new passphrase from `file` if given, else asked twice.
pub fn new_passphrase(file: Option<&Path>) -> Result<Passphrase, Failure> {
    match file {
        Some(path) => passphrase_from_file(path),
        None => ask_new_passphrase(),
    }
}

/// An existing key's passphrase from `file` if given, else asked once.
pub fn existing_passphrase(file: Option<&Path>, key_path: &Path) -> Result<Passphrase, Failure> {
    match file {
        Some(path) => passphrase_from_file(path),
        None => ask_passphrase(&format!("Passphrase for {}: ", key_path.display())),
    }
}
