//! Whole files replaced atomically (for checkpoints): write a temporary file, fsync, rename over, fsync the directory.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use super::fsutil::{create_dir_durable, fsync_dir, io_err};
use super::StoreError;

/// Replaces `dir/name` with `bytes` so that after a crash it holds either the old
/// contents or the new ones, never a mix. Creates `dir` if missing.
///
/// `name` must be a plain file name (no path separators). The temporary file is
/// `dir/.name.tmp`; one left by a crash is overwritten by the next call.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let target = dir.join(name);
    if !is_plain_name(name) {
        return Err(io_err("write", &target)(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the file name must not be empty, `.`, `..` or contain a path separator",
        )));
    }
    create_dir_durable(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        f.write_all(bytes).map_err(io_err("write", &tmp))?;
        f.sync_all().map_err(io_err("fsync", &tmp))?;
        fs::rename(&tmp, &target).map_err(io_err("rename a temporary file over", &target))
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fsync_dir(dir)
}

/// The contents of `dir/name`, or `None` if it does not exist.
pub fn read_if_exists(dir: &Path, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let path = dir.join(name);
    match fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", &path)(e)),
    }
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_dir::TestDir;

    #[test]
    fn writes_replaces_and_reads() {
        let dir = TestDir::new("atomic");
        let sub = dir.path().join("checkpoints");
        assert_eq!(read_if_exists(&sub, "cp").unwrap(), None);
        write_atomic(&sub, "cp", b"first").unwrap();
        assert_eq!(
            read_if_exists(&sub, "cp").unwrap().as_deref(),
            Some(&b"first"[..])
        );
        write_atomic(&sub, "cp", b"second, longer").unwrap();
        assert_eq!(
            read_if_exists(&sub, "cp").unwrap().as_deref(),
            Some(&b"second, longer"[..])
        );
        let names: Vec<_> = fs::read_dir(&sub)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["cp"], "no temporary file is left behind");
    }

    #[test]
    fn refuses_names_that_are_paths() {
        let dir = TestDir::new("atomic-names");
        for bad in ["", ".", "..", "a/b", "../x"] {
            let e = write_atomic(dir.path(), bad, b"x").unwrap_err();
            assert!(matches!(e, StoreError::Io { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn a_stale_temporary_file_is_overwritten() {
        let dir = TestDir::new("atomic-stale");
        fs::write(
            dir.path().join(".cp.tmp"),
            b"half-written garbage, much longer",
        )
        .unwrap();
        write_atomic(dir.path(), "cp", b"ok").unwrap();
        assert_eq!(
            read_if_exists(dir.path(), "cp").unwrap().as_deref(),
            Some(&b"ok"[..])
        );
        assert!(!dir.path().join(".cp.tmp").exists());
    }

    #[test]
    fn a_directory_in_the_way_is_an_error_not_a_panic() {
        let dir = TestDir::new("atomic-dir");
        fs::create_dir(dir.path().join("cp")).unwrap();
        fs::write(dir.path().join("cp").join("inside"), b"x").unwrap();
        let e = write_atomic(dir.path(), "cp", b"x").unwrap_err();
        assert!(e.to_string().contains("cp"), "{e}");
        assert!(read_if_exists(dir.path(), "cp").is_err());
    }
}
