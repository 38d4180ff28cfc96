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

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::config::Config;
use crate::ingest::IngestState;
use crate::store::{DirLock, StoreError, Wal, WalOptions};
use checkpoint::{Checkpoint, CheckpointError};

pub use recover::{recover, Recovered};

/// Log record kinds.
pub mod kind {
    /// One accepted event's JSON text.
    pub const EVENT: u8 = 1;
    /// One event not accepted: `duplicate` or the rejection reason's name.
    pub const OUTCOME: u8 = 2;
}

/// How long a failed sync waits before it is tried again.
const RETRY: Duration = Duration::from_secs(1);

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
        detail: String,
    },
    #[error("cannot start the checkpoint writer: {0}")]
    Thread(std::io::Error),
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
    /// Whether ingest is refused because the log cannot be written.
    pub failing: bool,
    /// How long reading the data directory back took at start.
    pub recovery: Duration,
    /// Events read back from the log at start (after the checkpoint's).
    pub recovered_events: u64,
}

/// A checkpoint being written by its own thread.
struct Writing {
    seq: u64,
    handle: JoinHandle<Result<u64, CheckpointError>>,
}

/// The open data directory: locked for this process until dropped.
pub struct DataDir {
    dir: PathBuf,
    _lock: DirLock,
    wal: Wal,
    fingerprint: u32,
    /// The checkpoint found at open, until `recover` takes it.
    found: Option<Checkpoint>,
    /// Copies of the records appended since the last successful sync, appended again when a
    /// failed sync is retried.
    unsynced: Vec<(u8, Vec<u8>)>,
    /// Why the last sync failed and when to try again, while it keeps failing.
    failing: Option<(String, Instant)>,
    writing: Option<Writing>,
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
    );
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
            _lock: lock,
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
            fingerprint,
            found,
            unsynced: Vec::new(),
            failing: None,
            writing: None,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Appends one record; it is durable after the next successful `sync`.
    pub fn append(&mut self, kind: u8, payload: &[u8]) {
        self.unsynced.push((kind, payload.to_vec()));
        if self.failing.is_none() {
            if let Err(e) = self.wal.append(kind, payload) {
                self.fail(e.to_string());
            }
        }
    }

    /// Records appended and not yet synced.
    pub fn unsynced(&self) -> usize {
        self.unsynced.len()
    }

    /// Makes every appended record durable. On failure the records are kept here and written
    /// again by `retry`; the error says why, for the answers that now cannot be given.
    pub fn sync(&mut self) -> Result<(), String> {
        if let Some((why, _)) = &self.failing {
            return Err(why.clone());
        }
        if self.unsynced.is_empty() {
            return Ok(());
        }
        match self.wal.sync() {
            Ok(stats) => {
                let _ = self
                    .status
                    .fsync_us
                    .record(stats.fsync.as_micros().max(1) as u64);
                self.unsynced.clear();
                self.status.wal_bytes = self.wal.bytes();
                self.status.wal_segments = self.wal.segments();
                Ok(())
            }
            Err(e) => {
                let why = e.to_string();
                self.fail(why.clone());
                Err(why)
            }
        }
    }

    fn fail(&mut self, why: String) {
        if self.failing.is_none() {
            tracing::error!(
                "the data directory cannot be written; ingest is refused until it can: {why}"
            );
        }
        self.status.sync_failures += 1;
        self.status.failing = true;
        self.failing = Some((why, Instant::now() + RETRY));
    }

    /// Why ingest is refused, while the log cannot be written.
    pub fn failing(&self) -> Option<&str> {
        self.failing.as_ref().map(|(why, _)| why.as_str())
    }

    /// While failing, tries once a second to write the kept records again; true when the log
    /// works again.
    pub fn retry(&mut self) -> bool {
        let Some((_, at)) = &self.failing else {
            return false;
        };
        if Instant::now() < *at {
            return false;
        }
        let written = (|| {
            for (kind, payload) in &self.unsynced {
                self.wal.append(*kind, payload)?;
            }
            self.wal.sync()
        })();
        match written {
            Ok(_) => {
                tracing::warn!(
                    "the data directory can be written again; {} kept records are durable and ingest is open",
                    self.unsynced.len()
                );
                self.unsynced.clear();
                self.failing = None;
                self.status.failing = false;
                self.status.wal_bytes = self.wal.bytes();
                self.status.wal_segments = self.wal.segments();
                true
            }
            Err(e) => {
                self.status.sync_failures += 1;
                self.failing = Some((e.to_string(), Instant::now() + RETRY));
                false
            }
        }
    }

    /// The last durable record: a checkpoint of the state as of now covers up to here.
    pub fn synced_seq(&self) -> u64 {
        self.wal.synced_seq()
    }

    /// Whether a checkpoint is being written.
    pub fn checkpointing(&self) -> bool {
        self.writing.is_some()
    }

    /// Starts writing `state` (everything up to record `seq`, which must be durable) as the
    /// checkpoint, on its own thread; `poll_checkpoint` finishes it.
    pub fn start_checkpoint(&mut self, seq: u64, state: IngestState) -> Result<(), DurableError> {
        let dir = self.dir.clone();
        let fingerprint = self.fingerprint;
        let handle = std::thread::Builder::new()
            .name("tidemark-checkpoint".into())
            .spawn(move || {
                let bytes = checkpoint::encode(seq, fingerprint, &state)?;
                checkpoint::write(&dir, &bytes)?;
                Ok(bytes.len() as u64)
            })
            .map_err(DurableError::Thread)?;
        self.writing = Some(Writing { seq, handle });
        Ok(())
    }

    /// Finishes a checkpoint whose thread is done (or, with `wait`, waits for it): removes
    /// the log segments it covers. Returns true when one finished.
    pub fn poll_checkpoint(&mut self, wait: bool) -> bool {
        match &self.writing {
            Some(w) if wait || w.handle.is_finished() => {}
            _ => return false,
        }
        let Writing { seq, handle } = self.writing.take().expect("checked above");
        match handle.join() {
            Ok(Ok(bytes)) => {
                self.status.checkpoints += 1;
                self.status.checkpoint_bytes = bytes;
                self.status.checkpoint_at_ms = Some(crate::pipeline::now_ms());
                if let Err(e) = self.wal.remove_before(seq + 1) {
                    tracing::warn!("the checkpoint is written, but old log segments could not be removed: {e}");
                }
                self.status.wal_bytes = self.wal.bytes();
                self.status.wal_segments = self.wal.segments();
                tracing::info!("checkpoint written: {bytes} bytes, up to log record {seq}");
            }
            Ok(Err(e)) => tracing::error!("the checkpoint could not be written (the log keeps everything, so nothing is lost): {e}"),
            Err(_) => tracing::error!("the checkpoint writer failed (the log keeps everything, so nothing is lost)"),
        }
        true
    }

    /// The status for `/metrics`.
    pub fn status(&self) -> DurableStatus {
        self.status.clone()
    }
}
