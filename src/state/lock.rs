//! The cycle lock: an OS file lock on `state_dir/cycle.lock`, so a manual `tidewatch update` and
//! the `tidewatch run` daemon never run cycles at once.
//!
//! An OS lock rather than "the file exists": the kernel releases it when the holder exits, even
//! by a crash, so a stale lock never needs cleaning up. The holder's pid is written into the file
//! only so the refusal can say who holds it.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::StateError;

/// Name of the lock file inside `state_dir`.
pub const LOCK_FILE: &str = "cycle.lock";

/// What to do when another process holds the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Wait until it is released. Blocks the thread: call from `spawn_blocking` in async code.
    Block,
    /// Fail at once with [`StateError::Busy`].
    NoWait,
}

/// Held while a cycle runs; dropping it releases the lock.
#[derive(Debug)]
pub struct CycleLock {
    file: File,
    path: PathBuf,
}

impl CycleLock {
    /// Takes the lock on `state_dir/cycle.lock`, creating the directory and file if needed.
    pub fn acquire(state_dir: &Path, wait: Wait) -> Result<CycleLock, StateError> {
        fs::create_dir_all(state_dir).map_err(|source| StateError::CreateDir {
            path: state_dir.to_path_buf(),
            source,
        })?;
        let path = state_dir.join(LOCK_FILE);
        let io_err = |op| {
            let path = path.clone();
            move |source| StateError::Lock { path, op, source }
        };
        // Not truncated on open: until we hold the lock, the pid in it is the holder's.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err("opening"))?;
        match wait {
            Wait::Block => file.lock().map_err(io_err("waiting for the lock"))?,
            Wait::NoWait => match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let pid = read_pid(&mut file);
                    return Err(StateError::Busy { path, pid });
                }
                Err(TryLockError::Error(source)) => {
                    return Err(io_err("locking")(source));
                }
            },
        }
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .map_err(io_err("writing our pid"))?;
        Ok(CycleLock { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for CycleLock {
    fn drop(&mut self) {
        // Clear our pid so it cannot later name an unrelated process. Best effort: if this
        // fails the lock is still released when the file closes, and the next holder
        // overwrites the pid anyway.
        let _ = self.file.set_len(0);
    }
}

/// The pid the holder wrote, if the file holds one (it is empty for a moment after the holder
/// takes the lock).
fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// Says who holds the lock, for [`StateError::Busy`].
pub(super) fn describe_holder(pid: Option<u32>, path: &Path) -> String {
    match pid {
        Some(pid) => format!("pid {pid} holds {}", path.display()),
        None => format!("{} is locked", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::thread;
    use std::time::Duration;

    use super::*;

    #[test]
    fn second_lock_is_busy_until_first_drops() {
        let dir = tempfile::TempDir::new().unwrap();
        let first = CycleLock::acquire(dir.path(), Wait::NoWait).unwrap();
        assert_eq!(first.path(), dir.path().join(LOCK_FILE));

        // A second acquire opens its own file description, which flock treats as a separate
        // holder, just as another process would be.
        let err = CycleLock::acquire(dir.path(), Wait::NoWait).unwrap_err();
        let me = std::process::id();
        assert!(
            matches!(&err, StateError::Busy { pid: Some(pid), .. } if *pid == me),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.starts_with("another cycle is in progress"),
            "{message}"
        );
        assert!(message.contains(&format!("pid {me}")), "{message}");
        assert!(message.contains(LOCK_FILE), "{message}");

        drop(first);
        let again = CycleLock::acquire(dir.path(), Wait::NoWait).unwrap();
        assert_eq!(
            fs::read_to_string(again.path()).unwrap().trim(),
            me.to_string()
        );
    }

    #[test]
    fn blocking_acquire_waits_for_the_holder() {
        let dir = tempfile::TempDir::new().unwrap();
        let first = CycleLock::acquire(dir.path(), Wait::NoWait).unwrap();

        let (tx, rx) = mpsc::channel();
        let state_dir = dir.path().to_path_buf();
        let waiter = thread::spawn(move || {
            let lock = CycleLock::acquire(&state_dir, Wait::Block);
            tx.send(lock.is_ok()).unwrap();
            lock
        });
        // A blocked waiter cannot be observed directly; not hearing from it for a while while
        // the lock is held is the best available evidence.
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        drop(first);
        assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap());
        waiter.join().unwrap().unwrap();
    }

    #[test]
    fn lock_of_a_crashed_holder_is_free_and_its_pid_replaced() {
        let dir = tempfile::TempDir::new().unwrap();
        // What a holder that died leaves behind: the file with its pid, but no lock.
        fs::write(dir.path().join(LOCK_FILE), "999999\n").unwrap();
        let lock = CycleLock::acquire(dir.path(), Wait::NoWait).unwrap();
        assert_eq!(
            fs::read_to_string(lock.path()).unwrap().trim(),
            std::process::id().to_string()
        );
    }

    #[test]
    fn busy_without_a_readable_pid_still_explains() {
        let path = Path::new("/var/lib/tidewatch/cycle.lock");
        let err = StateError::Busy {
            path: path.to_path_buf(),
            pid: None,
        };
        assert_eq!(
            err.to_string(),
            "another cycle is in progress (/var/lib/tidewatch/cycle.lock is locked)"
        );
    }
}
