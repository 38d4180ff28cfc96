//! The dead-letter file of a long-running service: rejected inputs, one JSON object per line,
//! written by a thread of its own and bounded in size (the file moves to `FILE.1` when full).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use super::Rejection;

/// Records waiting for the writer at most; more are dropped (and counted) rather than wait.
const QUEUE: usize = 4096;

/// Bytes of an input kept at most: more than the largest valid event.
const INPUT_KEPT: usize = super::MAX_EVENT_BYTES + 1024;

/// A cloneable handle to the dead-letter writer.
#[derive(Clone)]
pub struct DeadLetters {
    tx: SyncSender<Vec<u8>>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetters")
            .field("dropped", &self.dropped())
            .finish()
    }
}

/// One record, as written.
#[derive(serde::Serialize)]
struct Record<'a> {
    source: &'a str,
    index: u64,
    reason: &'static str,
    detail: &'a str,
    input: &'a str,
    /// Wall-clock epoch milliseconds at which it was rejected.
    received: u64,
}

impl DeadLetters {
    /// Opens (appends to) `path` and starts the writer thread. The file moves to `path.1` once
    /// it holds `max_bytes`, so the two together hold at most about twice that.
    pub fn open(path: &Path, max_bytes: usize) -> std::io::Result<DeadLetters> {
        let file = open(path)?;
        let written = file.metadata()?.len();
        let (tx, rx) = sync_channel(QUEUE);
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name("tidemark-dead-letter".into())
            .spawn(move || write_all(rx, path, file, written, max_bytes as u64))?;
        Ok(DeadLetters {
            tx,
            dropped: Arc::default(),
        })
    }

    /// Keeps one rejected input (its first 65 KiB); never waits.
    pub fn keep(&self, source: &str, index: u64, r: &Rejection, input: &[u8], received: u64) {
        let cut = &input[..input.len().min(INPUT_KEPT)];
        let input = String::from_utf8_lossy(cut);
        let record = Record {
            source,
            index,
            reason: r.reason.as_str(),
            detail: &r.detail,
            input: &input,
            received,
        };
        let Ok(mut line) = serde_json::to_vec(&record) else {
            return;
        };
        line.push(b'\n');
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Records dropped because the writer was behind or had failed.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn rotated(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

fn write_all(rx: Receiver<Vec<u8>>, path: PathBuf, file: File, mut written: u64, max: u64) {
    let mut out = BufWriter::new(file);
    let fail = |e: std::io::Error| {
        tracing::error!(
            "cannot write the dead-letter file {}: {e}; rejected inputs are no longer kept",
            path.display()
        );
    };
    while let Ok(first) = rx.recv() {
        // Write what is queued, then flush once, so a burst costs one flush.
        for line in std::iter::once(first).chain(rx.try_iter()) {
            if written > 0 && written + line.len() as u64 > max {
                if let Err(e) = out.flush() {
                    return fail(e);
                }
                if let Err(e) = std::fs::rename(&path, rotated(&path)) {
                    return fail(e);
                }
                match open(&path) {
                    Ok(f) => out = BufWriter::new(f),
                    Err(e) => return fail(e),
                }
                written = 0;
            }
            if let Err(e) = out.write_all(&line) {
                return fail(e);
            }
            written += line.len() as u64;
        }
        if let Err(e) = out.flush() {
            return fail(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Reason;

    #[test]
    fn records_are_kept_and_the_file_rotates_at_its_bound() {
        let dir = std::env::temp_dir().join(format!("tidemark-dl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rejects.ndjson");
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(rotated(&path));
        let letters = DeadLetters::open(&path, 4096).unwrap();
        let r = Rejection::new(Reason::FutureTimestamp, "ahead");
        for i in 0..100 {
            letters.keep("http", i, &r, b"{\"id\":\"x\",\"ts\":4133980799999}", 7);
        }
        drop(letters);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let total = || read(&rotated(&path)).lines().count() + read(&path).lines().count();
        while !read(&path).contains("\"index\":99,") && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let current = std::fs::read_to_string(&path).unwrap();
        let first: serde_json::Value =
            serde_json::from_str(current.lines().next().unwrap()).unwrap();
        assert_eq!(first["reason"], "future_timestamp");
        assert_eq!(first["source"], "http");
        assert!(first["input"].as_str().unwrap().contains("4133980799999"));
        assert!(current.len() <= 4096, "the file stays within its bound");
        assert!(
            rotated(&path).exists(),
            "older records moved to {}",
            rotated(&path).display()
        );
        assert!(total() < 100, "the oldest generation is gone");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
