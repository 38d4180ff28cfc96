//! Durable storage under a data directory: a segmented write-ahead log, atomic files for checkpoints, and the directory lock.
//!
//! This module knows nothing about events or the dataflow: it stores numbered
//! records `(seq, kind, payload)` and whole files, and reports every problem
//! as a [`StoreError`] whose message tells the operator what to do.

mod atomic;
mod fsutil;
mod lock;
#[cfg(test)]
mod proptests;
mod record;
mod repair;
mod replay;
mod scan;
mod segment;
#[cfg(test)]
mod test_dir;
mod wal;

use std::io;
use std::path::{Path, PathBuf};

pub use atomic::{read_if_exists, write_atomic};
pub use lock::DirLock;
#[cfg(feature = "internals")]
pub use record::HEADER_LEN;
pub use repair::{repair, RepairReport};
pub use replay::ReplayError;
pub use wal::{Wal, WalOptions};

/// Everything that can go wrong in the storage layer.
///
/// Each message names the file involved and says what the operator can do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An operating-system call failed; `op` says which ("write", "fsync", ...).
    #[error("could not {op} {}: {}", path.display(), io_advice(source))]
    Io {
        /// What was being done, as a verb phrase: "write", "fsync", "create", ...
        op: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },

    /// A file holds bytes that are not a valid record where one must be.
    #[error(
        "{} is damaged at byte {offset} ({detail}); run `tidemark repair --data {}` to keep everything before the damage and drop the rest",
        file.display(),
        data_dir_of(file)
    )]
    Corrupt {
        /// The damaged segment file.
        file: PathBuf,
        /// Where the first bad record starts.
        offset: u64,
        /// What is wrong there.
        detail: String,
    },

    /// The segment after `after` does not start where `after` ends.
    #[error(
        "the log segment after {} should start at record {expected_seq}, but {}: a segment is missing; restore it from a backup, or run `tidemark repair --data {}` to keep the records up to the end of {} and drop the rest",
        after.display(),
        match found {
            Some(p) => format!("the next one is {}", p.display()),
            None => "there is none".to_string(),
        },
        data_dir_of(after),
        after.display()
    )]
    MissingSegment {
        /// The last segment whose records are intact.
        after: PathBuf,
        /// The sequence number the next segment should start with.
        expected_seq: u64,
        /// The segment found instead, if any.
        found: Option<PathBuf>,
    },

    /// Another process (or another handle in this one) holds the directory lock.
    #[error(
        "another tidemark is using the data directory {} ({} is locked); stop that process, or start this one with a different data directory",
        path.parent().unwrap_or(Path::new(".")).display(),
        path.display()
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
    },

    /// Every sequence number has been used (only a damaged or hand-made log gets here).
    #[error("the log in {} has used every sequence number (the last is {last}); check the segment file names, or start from a new data directory", dir.display())]
    SequenceExhausted {
        /// The log directory.
        dir: PathBuf,
        /// The last sequence number in use.
        last: u64,
    },

    /// A record larger than the format can hold was offered to the log.
    #[error("a log record of {len} bytes is larger than the limit of {max} bytes; split it into smaller records")]
    RecordTooLarge {
        /// The payload length offered.
        len: usize,
        /// The largest payload a record can hold.
        max: usize,
    },
}

/// The data directory that holds `file` (which lives in `DATA/wal/`), for messages.
fn data_dir_of(file: &Path) -> String {
    match file.parent().and_then(Path::parent) {
        Some(dir) if !dir.as_os_str().is_empty() => dir.display().to_string(),
        _ => "DIR".to_string(),
    }
}

/// What the operator can do about an I/O error, keyed on its kind.
fn io_advice(e: &io::Error) -> &'static str {
    use io::ErrorKind as K;
    match e.kind() {
        K::StorageFull | K::QuotaExceeded | K::FileTooLarge => {
            "the disk (or the file size limit) is full; free some space, then try again"
        }
        K::PermissionDenied | K::ReadOnlyFilesystem => {
            "permission denied; make the data directory writable by this user, then try again"
        }
        K::NotFound => "it does not exist; check the data directory path",
        _ => "check the disk and the data directory, then try again",
    }
}
