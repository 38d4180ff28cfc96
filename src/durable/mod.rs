//! The data directory of `serve`: its lock, the write-ahead log of what ingest decided, and the
//! checkpoint that bounds restart time.
//!
//! Every event ingest accepts is appended to the log as its raw text, and every duplicate or
//! rejection as its reason, so reading the log back through a fresh ingest gives the same
//! state and the same counts. A sync makes the records durable; answers go out only after it.
//! A checkpoint holds ingest's whole state as of one record; the segments it covers are
//! removed, and a restart reads the checkpoint and then only the records after it.

pub mod checkpoint;
mod recover;
mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::config::Config;
use crate::store::{DirLock, StoreError, Wal, WalOptions};
use checkpoint::{Checkpoint, CheckpointError};

pub use recover::recover;
pub use writer::{Journal, Reply};

/// Log record kinds.
pub mod kind {
    /// One accepted event's JSON text.
    pub const EVENT: u8 = 1;
    /// Events not accepted: `duplicate` or the rejection reason's name, a tab and how many.
    pub const OUTCOME: u8 = 2;
    /// An erasure, as an `ErasureRecord` in JSON. The checkpoint written right after it covers
    /// it, and the segment that holds it is then removed.
    pub const ERASE: u8 = 3;
}

/// What the log keeps of an erasure until its checkpoint replaces the log.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ErasureRecord {
    pub kind: String,
    pub value: String,
    /// The person's firings that had been sent (they stay in the campaign rows).
    pub sent: Vec<crate::facts::SentFiring>,
}

/// Why the data directory cannot be opened, read back or written.
#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("log record {seq} in {} cannot be read back: {detail}; run `tidemark repair --data {}` to keep the records before it", dir.display(), dir.display())]
    Record {
        dir: PathBuf,
        seq: u64,
        #[source]
        detail: RecordError,
    },
    #[error("cannot start the data directory's writer thread: {0}; the process may be out of threads or memory (check ulimit -u and free memory)")]
    Thread(std::io::Error),
}

/// Why one record of the log (or the checkpoint's state) cannot be applied again.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The checkpoint's state does not fit the pipeline.
    #[error("the checkpoint's state: {0}")]
    Checkpoint(#[source] crate::ingest::StateError),
    /// An outcome record is not UTF-8.
    #[error("an outcome record that is not text")]
    OutcomeNotText(#[source] std::str::Utf8Error),
    /// An outcome record's count is not a number.
    #[error("an outcome count: {0}")]
    OutcomeCount(#[source] std::num::ParseIntError),
    /// An erasure record is not UTF-8.
    #[error("an erasure record that is not text")]
    ErasureNotText(#[source] std::str::Utf8Error),
    /// An erasure record is not the JSON of an `ErasureRecord`.
    #[error("an erasure record: {0}")]
    Erasure(#[source] serde_json::Error),
    /// A record of a kind this version does not write.
    #[error("unknown record kind {0}")]
    UnknownKind(u8),
}

/// What `/metrics` shows of the data directory.
#[derive(Clone, Debug)]
pub struct DurableStatus {
    pub wal_bytes: u64,
    pub wal_segments: usize,
    /// Time spent in fsync per sync, microseconds.
    pub fsync_us: Histogram<u64>,
    /// When the last checkpoint was written (Unix milliseconds), if one was.
    pub checkpoint_at_ms: Option<u64>,
    pub checkpoint_bytes: u64,
    pub checkpoints: u64,
    pub sync_failures: u64,
    /// Whether ingest is refused because the log cannot be written (filled in by
    /// `Journal::status` from the writer's reason).
    pub failing: bool,
    /// How long reading the data directory back took at start.
    pub recovery: Duration,
    /// Events read back from the log at start (after the checkpoint's).
    pub recovered_events: u64,
}

/// The open data directory: locked for this process until dropped. `recover` reads it back;
/// `start` hands its log to the writer thread.
pub struct DataDir {
    dir: PathBuf,
    lock: DirLock,
    wal: Wal,
    fingerprint: u32,
    /// The checkpoint found at open, until `recover` takes it.
    found: Option<Checkpoint>,
    status: DurableStatus,
}

/// A fingerprint of what a checkpoint's state depends on: the metric and rule sections.
pub fn fingerprint(config: &Config) -> u32 {
    let text = format!(
        "{:?}",
        (
            &config.timezone,
            &config.activity_exclude,
            &config.blocked_values,
            config.max_persons_per_value,
            config.retention_max_day,
            &config.sliding_windows,
            &config.spend_event,
            &config.purchase_event,
            &config.funnels,
            &config.ratios,
            &config.rules,
            &config.alerts,
        )
    ) + if config.serve.hash_identities {
        " hash_identities"
    } else {
        ""
    };
    crc32fast::hash(text.as_bytes())
}

impl DataDir {
    /// Opens (creating) the data directory `dir` for `config`: takes its lock, reads its
    /// checkpoint and opens its log, cutting a torn last record. Damage stops here with a
    /// message that names the file and what to do.
    pub fn open(dir: &Path, config: &Config) -> Result<DataDir, DurableError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Io {
            op: "create",
            path: dir.to_path_buf(),
            source: e,
        })?;
        let lock = DirLock::acquire(dir)?;
        let fingerprint = fingerprint(config);
        let found = checkpoint::read(dir, fingerprint)?;
        let start_seq = found.as_ref().map_or(1, |c| c.seq + 1);
        let (wal, recovery) = Wal::open(
            dir,
            WalOptions {
                start_seq,
                segment_bytes: config.serve.wal_segment,
            },
        )?;
        if recovery.torn_bytes_cut > 0 {
            tracing::warn!(
                "the log's last record was cut short by a crash; {} bytes cut off",
                recovery.torn_bytes_cut
            );
        }
        if let Some(c) = &found {
            if let Some(first) = wal.first_seq() {
                if first > c.seq + 1 {
                    return Err(StoreError::MissingSegment {
                        after: dir.join(checkpoint::FILE),
                        expected_seq: c.seq + 1,
                        found: None,
                    }
                    .into());
                }
            }
        }
        Ok(DataDir {
            dir: dir.to_path_buf(),
            status: DurableStatus {
                wal_bytes: wal.bytes(),
                wal_segments: wal.segments(),
                fsync_us: Histogram::new_with_bounds(1, 60_000_000, 2).expect("valid bounds"),
                checkpoint_at_ms: None,
                checkpoint_bytes: found.as_ref().map_or(0, |c| c.bytes),
                checkpoints: 0,
                sync_failures: 0,
                failing: false,
                recovery: Duration::ZERO,
                recovered_events: 0,
            },
            wal,
            lock,
            fingerprint,
            found,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Starts the writer thread that owns the log from here on; answers go out through it once
    /// their records are durable.
    pub fn start(self) -> Result<Journal, DurableError> {
        writer::start(self)
    }
}
