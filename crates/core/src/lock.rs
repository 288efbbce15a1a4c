//! An exclusive lock on a directory, so two processes never write one run (or one output)
//! at once: an advisory `flock(2)` on `<dir>/.flowscale.lock`, held for as long as the
//! [`DirLock`] lives. The kernel releases it when the holder exits, however it exits, so a lock
//! left by a crashed or killed process is stale by construction and the next process simply takes
//! it. The file records the holder's pid, host and start time, which the refusal names.

use crate::atomic::IoError;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The lock file's name inside the locked directory.
pub const LOCK_FILE: &str = ".flowscale.lock";

/// Why a directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{}: in use by another flowscale process ({holder}); wait for it to finish or stop it \
         (its lock is released when it exits)",
        dir.display()
    )]
    Held { dir: PathBuf, holder: String },
    #[error(transparent)]
    Io(#[from] IoError),
}

/// The held lock of a directory; dropping it releases the lock.
#[derive(Debug)]
pub struct DirLock {
    path: PathBuf,
    // Held open: the flock lives as long as this descriptor.
    _file: File,
}

impl DirLock {
    /// Takes the lock of `dir` (which must exist) for `purpose` (e.g. `flowscale train`), or
    /// names who holds it.
    pub fn acquire(dir: &Path, purpose: &str) -> Result<Self, LockError> {
        Self::acquire_file(dir, LOCK_FILE, purpose)
    }

    /// Takes the lock file `name` inside `dir`: for work that several processes share out,
    /// one lock per part (precompute's `--shard-index`), so a part is never done twice at once
    /// while different parts run side by side.
    pub fn acquire_file(dir: &Path, name: &str, purpose: &str) -> Result<Self, LockError> {
        let path = dir.join(name);
        let io = |e| IoError::new(&path, e);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        // SAFETY: flock on a descriptor this function owns; no memory is shared with the call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::WouldBlock {
                return Err(io(err).into());
            }
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "holder unknown".to_owned(),
                h => h.to_owned(),
            };
            return Err(LockError::Held {
                dir: dir.to_path_buf(),
                holder,
            });
        }
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let record = format!(
            "{purpose}, pid {} on host {}, since unix time {started}\n",
            std::process::id(),
            hostname()
        );
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(record.as_bytes()))
            .and_then(|()| file.flush())
            .map_err(io)?;
        Ok(Self { path, _file: file })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// This machine's host name (`?` when the system will not say).
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer outlives the call and its length is passed.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "?".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path(), "flowscale train").unwrap();
        let err = DirLock::acquire(dir.path(), "flowscale train").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, LockError::Held { .. }), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())) && msg.contains("host "),
            "{msg}"
        );
        drop(first);
        let again = DirLock::acquire(dir.path(), "flowscale train").unwrap();
        assert!(again.path().is_file());
    }

    #[test]
    fn a_lock_file_left_by_a_dead_process_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        // What a killed holder leaves: the record, but no flock (the kernel dropped it).
        std::fs::write(
            dir.path().join(LOCK_FILE),
            "flowscale train, pid 1 on host x\n",
        )
        .unwrap();
        let lock = DirLock::acquire(dir.path(), "flowscale train").unwrap();
        let record = std::fs::read_to_string(lock.path()).unwrap();
        assert!(
            record.contains(&format!("pid {}", std::process::id())),
            "{record}"
        );
    }

    #[test]
    fn a_missing_directory_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = DirLock::acquire(&dir.path().join("absent"), "x").unwrap_err();
        assert!(matches!(err, LockError::Io(_)));
        assert!(err.to_string().contains("absent"), "{err}");
    }
}
