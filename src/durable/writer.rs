//! The log's writer thread: writes and fsyncs each batch of records, then sends the answers that
//! waited for them; keeps records a failed sync could not write and retries them every second;
//! writes checkpoints once the records they cover are durable, and removes what they cover.
//!
//! The live service's thread only copies records into a batch and hands it over, so an fsync
//! never stops it from taking events or feeding the dataflow.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::checkpoint::{self, CheckpointError};
use super::{DataDir, DurableError, DurableStatus};
use crate::ingest::IngestState;
use crate::store::{DirLock, StoreError, Wal};

/// How long a failed sync waits before it is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// An answer that waits for its records: called with `None` once they are durable, or with
/// why they are not.
pub type Reply = Box<dyn FnOnce(Option<&str>) + Send>;

enum Job {
    Write {
        records: Vec<(u8, Vec<u8>)>,
        replies: Vec<Reply>,
    },
    Checkpoint {
        seq: u64,
        state: Box<IngestState>,
    },
    /// A checkpoint after an erasure: written at once, with the log rolled first so that every
    /// segment it covers (the erased events and the erasure record) is removed.
    Scrub {
        seq: u64,
        state: Box<IngestState>,
        reply: Reply,
    },
    Close(mpsc::Sender<()>),
}

/// What the writer shares with the live service.
struct Shared {
    failing: Mutex<Option<String>>,
    status: Mutex<DurableStatus>,
    checkpointing: AtomicBool,
}

/// The live service's end of the log: records are batched here and handed to the writer.
pub struct Journal {
    tx: mpsc::Sender<Job>,
    shared: Arc<Shared>,
    batch: Vec<(u8, Vec<u8>)>,
    /// The sequence number the next appended record gets (the writer numbers them the same).
    next_seq: u64,
    thread: Option<JoinHandle<()>>,
}

impl Journal {
    /// Adds one record to the batch that the next `commit` hands over.
    pub fn append(&mut self, kind: u8, payload: &[u8]) {
        self.batch.push((kind, payload.to_vec()));
        self.next_seq += 1;
    }

    /// Hands the batch over; each reply is called once the batch (and every earlier one) is
    /// durable, or with why not.
    pub fn commit(&mut self, replies: Vec<Reply>) {
        if self.batch.is_empty() && replies.is_empty() {
            return;
        }
        let records = std::mem::take(&mut self.batch);
        if let Err(mpsc::SendError(Job::Write { replies, .. })) =
            self.tx.send(Job::Write { records, replies })
        {
            for r in replies {
                r(Some("the log writer has stopped"));
            }
        }
    }

    /// Why ingest is refused, while the log cannot be written.
    pub fn failing(&self) -> Option<String> {
        self.shared.failing.lock().expect("not poisoned").clone()
    }

    /// Whether a checkpoint is waiting or being written.
    pub fn checkpointing(&self) -> bool {
        self.shared.checkpointing.load(Ordering::SeqCst)
    }

    /// Writes `state`, which holds everything appended so far, as the checkpoint once the
    /// records it covers are durable (the batch is handed over first).
    pub fn checkpoint(&mut self, state: IngestState) {
        self.commit(Vec::new());
        self.shared.checkpointing.store(true, Ordering::SeqCst);
        let seq = self.next_seq - 1;
        let _ = self.tx.send(Job::Checkpoint {
            seq,
            state: Box::new(state),
        });
    }

    /// After an erasure (its record appended): writes `state` as the checkpoint and removes
    /// every log segment before it, so that nothing of the erased person stays in the log;
    /// `reply` is called once that is done, or with why not.
    pub fn scrub(&mut self, state: IngestState, reply: Reply) {
        self.commit(Vec::new());
        let seq = self.next_seq - 1;
        let job = Job::Scrub {
            seq,
            state: Box::new(state),
            reply,
        };
        if let Err(mpsc::SendError(Job::Scrub { reply, .. })) = self.tx.send(job) {
            reply(Some("the log writer has stopped"));
        }
    }

    /// Waits until everything handed over is durable and any checkpoint is written.
    pub fn close(&mut self) {
        self.commit(Vec::new());
        let (done, wait) = mpsc::channel();
        if self.tx.send(Job::Close(done)).is_ok() {
            let _ = wait.recv();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// The status for `/metrics`.
    pub fn status(&self) -> DurableStatus {
        let mut status = self.shared.status.lock().expect("not poisoned").clone();
        status.failing = self.failing().is_some();
        status
    }
}

/// Starts the writer on an opened (and read back) data directory.
pub(super) fn start(data: DataDir) -> Result<Journal, DurableError> {
    let shared = Arc::new(Shared {
        failing: Mutex::new(None),
        status: Mutex::new(data.status.clone()),
        checkpointing: AtomicBool::new(false),
    });
    let (tx, rx) = mpsc::channel();
    let next_seq = data.wal.next_seq();
    let writer = Writer {
        dir: data.dir,
        _lock: data.lock,
        wal: data.wal,
        fingerprint: data.fingerprint,
        shared: shared.clone(),
        kept: Vec::new(),
        retry_at: None,
        writing: None,
    };
    let thread = std::thread::Builder::new()
        .name("tidemark-wal".into())
        .spawn(move || writer.run(rx))
        .map_err(DurableError::Thread)?;
    Ok(Journal {
        tx,
        shared,
        batch: Vec::new(),
        next_seq,
        thread: Some(thread),
    })
}

/// A checkpoint being written by its own thread.
struct Writing {
    seq: u64,
    handle: JoinHandle<Result<u64, CheckpointError>>,
}

struct Writer {
    dir: std::path::PathBuf,
    _lock: DirLock,
    wal: Wal,
    fingerprint: u32,
    shared: Arc<Shared>,
    /// Records not yet durable because syncs fail, in order; written again by the retry.
    kept: Vec<(u8, Vec<u8>)>,
    /// When to retry, while syncs fail.
    retry_at: Option<Instant>,
    writing: Option<Writing>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Job>) {
        loop {
            let timeout = match self.retry_at {
                Some(at) => at.saturating_duration_since(Instant::now()),
                None => Duration::from_millis(100),
            };
            match rx.recv_timeout(timeout) {
                Ok(Job::Write { records, replies }) => {
                    let why = self.write(records);
                    for r in replies {
                        r(why.as_deref());
                    }
                }
                Ok(Job::Checkpoint { seq, state }) => self.start_checkpoint(seq, state),
                Ok(Job::Scrub { seq, state, reply }) => {
                    let why = self.scrub(seq, &state);
                    reply(why.as_deref());
                }
                Ok(Job::Close(done)) => {
                    self.finish_checkpoint(true);
                    if self.retry_at.is_some() {
                        self.retry();
                    }
                    let _ = done.send(());
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.finish_checkpoint(true);
                    return;
                }
            }
            self.finish_checkpoint(false);
            if self.retry_at.is_some_and(|at| Instant::now() >= at) {
                self.retry();
            }
        }
    }

    /// Appends and syncs `records`; returns why they are not durable, if they are not.
    fn write(&mut self, records: Vec<(u8, Vec<u8>)>) -> Option<String> {
        if self.retry_at.is_some() {
            self.kept.extend(records);
            return self.shared.failing.lock().expect("not poisoned").clone();
        }
        if records.is_empty() {
            return None;
        }
        for (i, (kind, payload)) in records.iter().enumerate() {
            if let Err(e) = self.wal.append(*kind, payload) {
                // The records before stay pending and are synced below; the rest wait.
                self.kept.extend(records[i..].iter().cloned());
                let _ = self.sync();
                return Some(self.fail(e.to_string()));
            }
        }
        match self.sync() {
            Ok(()) => None,
            Err(why) => {
                // A failed sync forgets what it could not write: keep it for the retry.
                self.kept = records;
                Some(self.fail(why.to_string()))
            }
        }
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        let stats = self.wal.sync()?;
        let mut status = self.shared.status.lock().expect("not poisoned");
        if stats.records > 0 {
            let _ = status
                .fsync_us
                .record(crate::time::micros(stats.fsync).max(1));
        }
        status.wal_bytes = self.wal.bytes();
        status.wal_segments = self.wal.segments();
        Ok(())
    }

    fn fail(&mut self, why: String) -> String {
        let mut failing = self.shared.failing.lock().expect("not poisoned");
        if failing.is_none() {
            tracing::error!(
                "the data directory cannot be written; ingest is refused until it can: {why}"
            );
        }
        *failing = Some(why.clone());
        drop(failing);
        let mut status = self.shared.status.lock().expect("not poisoned");
        status.sync_failures += 1;
        self.retry_at = Some(Instant::now() + RETRY);
        why
    }

    /// Writes the kept records again; ingest reopens when that works.
    fn retry(&mut self) {
        let written = (|| {
            for (kind, payload) in &self.kept {
                self.wal.append(*kind, payload)?;
            }
            self.sync()
        })();
        match written {
            Ok(()) => {
                tracing::warn!(
                    "the data directory can be written again; {} kept records are durable and ingest is open",
                    self.kept.len()
                );
                self.kept.clear();
                self.retry_at = None;
                *self.shared.failing.lock().expect("not poisoned") = None;
            }
            Err(why) => {
                self.fail(why.to_string());
            }
        }
    }

    /// Writes the checkpoint of an erasure now and removes the whole log before it.
    fn scrub(&mut self, seq: u64, state: &IngestState) -> Option<String> {
        self.finish_checkpoint(true);
        if self.retry_at.is_some() {
            return Some(format!(
                "the erasure is done in memory but the data directory cannot be written ({}); it is done on disk once the log can be written again and a checkpoint is taken",
                self.shared.failing.lock().expect("not poisoned").clone().unwrap_or_default()
            ));
        }
        let written = (|| -> Result<u64, DurableError> {
            self.wal.roll()?;
            let bytes = checkpoint::encode(seq, self.fingerprint, state)?;
            checkpoint::write(&self.dir, &bytes)?;
            self.wal.remove_before(seq + 1)?;
            Ok(bytes.len() as u64)
        })();
        match written {
            Ok(bytes) => {
                self.checkpoint_written(bytes);
                None
            }
            Err(e) => Some(format!(
                "the erasure is done in memory, but its checkpoint could not be written: {e}"
            )),
        }
    }

    /// Notes a checkpoint written (and the log it left) for `/metrics`.
    fn checkpoint_written(&self, bytes: u64) {
        let mut status = self.shared.status.lock().expect("not poisoned");
        status.checkpoints += 1;
        status.checkpoint_bytes = bytes;
        status.checkpoint_at_ms = Some(crate::pipeline::now_ms());
        status.wal_bytes = self.wal.bytes();
        status.wal_segments = self.wal.segments();
    }

    fn start_checkpoint(&mut self, seq: u64, state: Box<IngestState>) {
        if self.retry_at.is_some() || self.writing.is_some() {
            // Not every record it covers is durable (or one is being written): skip this one.
            self.shared
                .checkpointing
                .store(self.writing.is_some(), Ordering::SeqCst);
            return;
        }
        let dir = self.dir.clone();
        let fingerprint = self.fingerprint;
        let spawned = std::thread::Builder::new()
            .name("tidemark-checkpoint".into())
            .spawn(move || {
                let bytes = checkpoint::encode(seq, fingerprint, &state)?;
                checkpoint::write(&dir, &bytes)?;
                Ok(bytes.len() as u64)
            });
        match spawned {
            Ok(handle) => self.writing = Some(Writing { seq, handle }),
            Err(e) => {
                tracing::error!("cannot start the checkpoint writer: {e}");
                self.shared.checkpointing.store(false, Ordering::SeqCst);
            }
        }
    }

    /// Finishes a checkpoint whose thread is done (or, with `wait`, waits for it): removes the
    /// log segments it covers.
    fn finish_checkpoint(&mut self, wait: bool) {
        match &self.writing {
            Some(w) if wait || w.handle.is_finished() => {}
            _ => return,
        }
        let Writing { seq, handle } = self.writing.take().expect("checked above");
        match handle.join() {
            Ok(Ok(bytes)) => {
                if let Err(e) = self.wal.remove_before(seq + 1) {
                    tracing::warn!("the checkpoint is written, but old log segments could not be removed: {e}");
                }
                self.checkpoint_written(bytes);
                tracing::info!("checkpoint written: {bytes} bytes, up to log record {seq}");
            }
            Ok(Err(e)) => tracing::error!(
                "the checkpoint could not be written (the log keeps everything, so nothing is lost): {e}"
            ),
            Err(_) => tracing::error!(
                "the checkpoint writer failed (the log keeps everything, so nothing is lost)"
            ),
        }
        self.shared.checkpointing.store(false, Ordering::SeqCst);
    }
}
