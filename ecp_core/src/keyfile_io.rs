//! Reading and writing key files carefully.
//!
//! Reading refuses symlinks, anything that is not a regular file (a FIFO
//! would block, `/dev/zero` would never end), files owned by someone other
//! than the expected user or root, files that group or others may write
//! (someone else could have swapped the key), and files above a size bound.
//! The checks are made on the opened descriptor, so the file cannot be
//! replaced between check and read.
//!
//! Writing goes to a temporary file in the same directory that is then
//! renamed into place, so a reader sees the old file or the new one, never
//! half of one; without `replace`, an existing file is never overwritten.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::libc;
use zeroize::Zeroizing;

use crate::keyfile::MAX_KEY_FILE_LEN;

/// Why a file could not be read or written safely.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{}: no such file", .path.display())]
    NotFound { path: PathBuf },
    #[error("{}: is a symbolic link; refusing to follow it", .path.display())]
    Symlink { path: PathBuf },
    #[error("{}: permission denied", .path.display())]
    PermissionDenied { path: PathBuf },
    #[error("{}: is a {kind}, not a regular file", .path.display())]
    NotRegularFile { path: PathBuf, kind: &'static str },
    #[error("{}: owned by uid {owner}, expected uid {expected} or root", .path.display())]
    WrongOwner {
        path: PathBuf,
        owner: u32,
        expected: u32,
    },
    #[error(
        "{}: mode {mode:04o} lets group or others write it; run `chmod go-w {}`",
        .path.display(), .path.display()
    )]
    WritableByOthers { path: PathBuf, mode: u32 },
    #[error("{}: {len} bytes is larger than the {max} bytes allowed", .path.display())]
    TooLarge { path: PathBuf, len: u64, max: usize },
    #[error("{}: already exists (use --force to replace it)", .path.display())]
    AlreadyExists { path: PathBuf },
    #[error("{}: {action}: {source}", .path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
}

impl FileError {
    fn from_open(path: &Path, err: io::Error) -> Self {
        let path = path.to_path_buf();
        match err.raw_os_error() {
            Some(libc::ENOENT) => Self::NotFound { path },
            Some(libc::ELOOP) => Self::Symlink { path },
            Some(libc::EACCES) | Some(libc::EPERM) => Self::PermissionDenied { path },
            _ => Self::Io {
                path,
                action: "open",
                source: err,
            },
        }
    }
}

fn file_kind(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => "directory",
        libc::S_IFIFO => "FIFO",
        libc::S_IFCHR => "character device",
        libc::S_IFBLK => "block device",
        libc::S_IFSOCK => "socket",
        libc::S_IFLNK => "symbolic link",
        _ => "special file",
    }
}

/// Whose files a reader trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedOwner {
    /// This uid or root.
    Uid(u32),
    /// Any owner: for root, who can read every file anyway. The other
    /// checks (no symlink, regular file, not writable by others) still hold.
    Anyone,
}

/// Reads a key file that must belong to `expected_owner` (or root) and be
/// safe to trust, as described in the module documentation.
pub fn read_key_file(
    path: &Path,
    expected_owner: ExpectedOwner,
) -> Result<Zeroizing<Vec<u8>>, FileError> {
    read_owned_file(path, expected_owner, MAX_KEY_FILE_LEN)
}

/// [`read_key_file`] with a caller-chosen size bound.
pub fn read_owned_file(
    path: &Path,
    expected_owner: ExpectedOwner,
    max_len: usize,
) -> Result<Zeroizing<Vec<u8>>, FileError> {
    let file = OpenOptions::new()
        .read(true)
        // O_NONBLOCK: opening a FIFO must not hang waiting for a writer.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| FileError::from_open(path, e))?;
    let meta = file.metadata().map_err(|source| FileError::Io {
        path: path.to_path_buf(),
        action: "stat",
        source,
    })?;
    if !meta.file_type().is_file() {
        return Err(FileError::NotRegularFile {
            path: path.to_path_buf(),
            kind: file_kind(meta.mode()),
        });
    }
    if let ExpectedOwner::Uid(expected) = expected_owner {
        if meta.uid() != expected && meta.uid() != 0 {
            return Err(FileError::WrongOwner {
                path: path.to_path_buf(),
                owner: meta.uid(),
                expected,
            });
        }
    }
    if meta.mode() & 0o022 != 0 {
        return Err(FileError::WritableByOthers {
            path: path.to_path_buf(),
            mode: meta.mode() & 0o7777,
        });
    }
    if meta.len() > max_len as u64 {
        return Err(FileError::TooLarge {
            path: path.to_path_buf(),
            len: meta.len(),
            max: max_len,
        });
    }
    let mut contents = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
    // Read one byte past the bound: a file that grew after fstat is caught.
    file.take(max_len as u64 + 1)
        .read_to_end(&mut contents)
        .map_err(|source| FileError::Io {
            path: path.to_path_buf(),
            action: "read",
            source,
        })?;
    if contents.len() > max_len {
        return Err(FileError::TooLarge {
            path: path.to_path_buf(),
            len: contents.len() as u64,
            max: max_len,
        });
    }
    Ok(contents)
}

/// Who should own a written file (only root can give a file away).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ownership {
    pub uid: u32,
    pub gid: u32,
}

/// Writes `contents` to `path` with `mode` (and `owner`, if given) via a
/// temporary file and a rename. With `replace == false` an existing `path`
/// is left alone and [`FileError::AlreadyExists`] returned.
pub fn write_file_atomically(
    path: &Path,
    contents: &[u8],
    mode: u32,
    owner: Option<Ownership>,
    replace: bool,
) -> Result<(), FileError> {
    let io_err = |action: &'static str| {
        move |source: io::Error| FileError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| FileError::Io {
        path: path.to_path_buf(),
        action: "name",
        source: io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"),
    })?;
    let mut suffix = [0u8; 6];
    getrandom::fill(&mut suffix).map_err(|e| io_err("random")(io::Error::other(e.to_string())))?;
    let temp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        crate::hex::encode(&suffix)
    ));

    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&temp)
            .map_err(|e| FileError::from_open(&temp, e))?;
        // The umask may have narrowed `mode`; set it exactly.
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io_err("chmod"))?;
        if let Some(o) = owner {
            std::os::unix::fs::fchown(&file, Some(o.uid), Some(o.gid)).map_err(io_err("chown"))?;
        }
        file.write_all(contents).map_err(io_err("write"))?;
        file.sync_all().map_err(io_err("fsync"))?;
        drop(file);
        let flags = if replace {
            nix::fcntl::RenameFlags::empty()
        } else {
            nix::fcntl::RenameFlags::RENAME_NOREPLACE
        };
        nix::fcntl::renameat2(
            nix::fcntl::AT_FDCWD,
            &temp,
            nix::fcntl::AT_FDCWD,
            path,
            flags,
        )
        .map_err(|errno| match errno {
            nix::errno::Errno::EEXIST => FileError::AlreadyExists {
                path: path.to_path_buf(),
            },
            other => io_err("rename")(io::Error::from(other)),
        })
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
        return result;
    }
    // Make the rename itself durable.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> ExpectedOwner {
        ExpectedOwner::Uid(nix::unistd::geteuid().as_raw())
    }

    fn temp_dir() -> PathBuf {
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).unwrap();
        let dir =
            std::env::temp_dir().join(format!("ecp-core-test-{}", crate::hex::encode(&suffix)));
        std::fs::create_dir(&dir).unwrap();
        dir
    }

    #[test]
    fn regular_private_file_is_read() {
        let dir = temp_dir();
        let path = dir.join("key.pem");
        write_file_atomically(&path, b"hello", 0o600, None, false).unwrap();
        assert_eq!(read_key_file(&path, me()).unwrap().as_slice(), b"hello");
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn existing_file_is_not_replaced_without_asking() {
        let dir = temp_dir();
        let path = dir.join("key.pem");
        write_file_atomically(&path, b"one", 0o600, None, false).unwrap();
        assert!(matches!(
            write_file_atomically(&path, b"two", 0o600, None, false),
            Err(FileError::AlreadyExists { .. })
        ));
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        write_file_atomically(&path, b"two", 0o600, None, true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        // No temporary files are left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unsafe_files_are_refused() {
        let dir = temp_dir();
        let target = dir.join("real.pem");
        write_file_atomically(&target, b"key", 0o600, None, false).unwrap();

        let link = dir.join("link.pem");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(
            read_key_file(&link, me()),
            Err(FileError::Symlink { .. })
        ));

        assert!(matches!(
            read_key_file(&dir, me()),
            Err(FileError::NotRegularFile {
                kind: "directory",
                ..
            })
        ));
        assert!(matches!(
            read_key_file(Path::new("/dev/zero"), me()),
            Err(FileError::NotRegularFile {
                kind: "character device",
                ..
            })
        ));

        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(matches!(
            read_key_file(&fifo, me()),
            Err(FileError::NotRegularFile { kind: "FIFO", .. })
        ));

        let writable = dir.join("writable.pem");
        write_file_atomically(&writable, b"key", 0o622, None, false).unwrap();
        assert!(matches!(
            read_key_file(&writable, me()),
            Err(FileError::WritableByOthers { mode: 0o622, .. })
        ));

        let big = dir.join("big.pem");
        write_file_atomically(&big, &vec![b'x'; MAX_KEY_FILE_LEN + 1], 0o600, None, false).unwrap();
        assert!(matches!(
            read_key_file(&big, me()),
            Err(FileError::TooLarge { .. })
        ));

        assert!(matches!(
            read_key_file(&dir.join("missing.pem"), me()),
            Err(FileError::NotFound { .. })
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn file_of_another_owner_is_refused() {
        let dir = temp_dir();
        let path = dir.join("key.pem");
        write_file_atomically(&path, b"key", 0o600, None, false).unwrap();
        let owner = std::fs::metadata(&path).unwrap().uid();
        if owner == 0 {
            // Root-owned files are trusted for any user; test the rule from
            // the other side: uid 0 is accepted whoever is expected.
            assert!(read_key_file(&path, ExpectedOwner::Uid(12345)).is_ok());
        } else {
            assert!(matches!(
                read_key_file(&path, ExpectedOwner::Uid(owner + 1)),
                Err(FileError::WrongOwner { .. })
            ));
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
