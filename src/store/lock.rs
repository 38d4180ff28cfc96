//! The data directory lock: an exclusive advisory `flock` on `DATA/LOCK`, held for the life of a [`DirLock`].

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::fsutil::{create_dir_durable, io_err};
use super::StoreError;

/// Proof that this process alone uses a data directory; released on drop.
///
/// The lock is `flock(LOCK_EX | LOCK_NB)` on `DATA/LOCK`: the kernel releases it
/// when the process exits, however it exits, so a crash never leaves it stale. The
/// file holds the holder's process id, for people; it is never deleted.
#[derive(Debug)]
pub struct DirLock {
    path: PathBuf,
    _file: File,
}

impl DirLock {
    /// Locks `dir` (creating it if missing). Fails with `StoreError::Locked` if
    /// any holder, in this process or another, already has it.
    pub fn acquire(dir: &Path) -> Result<DirLock, StoreError> {
        create_dir_durable(dir)?;
        let path = dir.join("LOCK");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err("open", &path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(StoreError::Locked { path }),
            Err(TryLockError::Error(e)) => return Err(io_err("lock", &path)(e)),
        }
        // Best effort: the pid is only there for a person looking at the directory.
        let _ = file
            .set_len(0)
            .and_then(|()| writeln!(file, "{}", std::process::id()));
        Ok(DirLock { path, _file: file })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_dir::TestDir;

    #[test]
    fn a_second_holder_is_refused_until_the_first_drops() {
        let dir = TestDir::new("lock");
        let data = dir.path().join("data");
        let first = DirLock::acquire(&data).unwrap();
        assert_eq!(first.path(), data.join("LOCK"));
        let e = DirLock::acquire(&data).unwrap_err();
        assert!(matches!(e, StoreError::Locked { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("another tidemark is using the data directory"),
            "{msg}"
        );
        assert!(msg.contains(&data.display().to_string()), "{msg}");
        drop(first);
        let again = DirLock::acquire(&data).unwrap();
        let pid = std::fs::read_to_string(again.path()).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
    }
}
