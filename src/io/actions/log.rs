//! The delivery log: which actions were sent, delivered and retracted, kept in the data directory
//! and synced before an action goes out, so that a restart never sends one twice.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The log's file name in the data directory.
pub const FILE: &str = "actions.log";

/// What a record says happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The action was decided and handed to its targets.
    Sent,
    /// One target took it.
    Delivered,
    /// One target did not take it within its attempts (or its queue was full).
    Failed,
}

/// One line of the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The action's id (`rule/key` or `alert/bucket/state`).
    pub id: String,
    /// `firing`, `retraction`, `resolved`.
    pub kind: String,
    pub step: Step,
    /// The target, for `Delivered` and `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// A firing's release time, on `Sent` (so that retired firings can leave the log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<i64>,
}

/// Why the log cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot use the delivery log {path}: {source}; check the data directory's permissions and free space")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The delivery log: append-only lines `CRC32 JSON`, a torn last line ignored.
pub struct DeliveryLog {
    path: PathBuf,
    file: File,
    sent: HashSet<(String, String)>,
    delivered: HashSet<(String, String, String)>,
    /// Release times of the firings sent, by id.
    releases: HashMap<String, i64>,
    /// Ids of erased persons' actions: never written again.
    forgotten: HashSet<String>,
    /// Lines dropped at open (a torn or damaged line).
    pub skipped: u64,
}

fn line_of(r: &Record) -> String {
    let json = serde_json::to_string(r).expect("a record serialises");
    format!("{:08x} {json}\n", crc32fast::hash(json.as_bytes()))
}

fn parse_line(line: &str) -> Option<Record> {
    let (crc, json) = line.split_once(' ')?;
    let crc = u32::from_str_radix(crc, 16).ok()?;
    (crc32fast::hash(json.as_bytes()) == crc)
        .then(|| serde_json::from_str(json).ok())
        .flatten()
}

impl DeliveryLog {
    /// Opens (or creates) the log in `dir` and reads what it holds.
    pub fn open(dir: &Path) -> Result<DeliveryLog, LogError> {
        let path = dir.join(FILE);
        let io = |source| LogError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut log = DeliveryLog {
            file: OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .open(&path)
                .map_err(io)?,
            path: path.clone(),
            sent: HashSet::new(),
            delivered: HashSet::new(),
            releases: HashMap::new(),
            forgotten: HashSet::new(),
            skipped: 0,
        };
        // A line cut short by a crash would swallow the next record: cut it off.
        let bytes = std::fs::read(&path).map_err(io)?;
        let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if whole < bytes.len() {
            log.file.set_len(whole as u64).map_err(io)?;
            log.skipped += 1;
        }
        let reader = BufReader::new(&bytes[..whole]);
        for line in reader.split(b'\n') {
            let line = line.map_err(io)?;
            match std::str::from_utf8(&line).ok().and_then(parse_line) {
                Some(r) => log.note(&r),
                None if line.is_empty() => {}
                None => log.skipped += 1,
            }
        }
        if log.skipped > 0 {
            tracing::warn!(
                "{}: {} damaged line(s) skipped (a write cut short by a crash); the actions they recorded may be sent again, with the same Idempotency-Key",
                path.display(),
                log.skipped
            );
        }
        Ok(log)
    }

    fn note(&mut self, r: &Record) {
        match r.step {
            Step::Sent => {
                self.sent.insert((r.id.clone(), r.kind.clone()));
                if let Some(at) = r.release {
                    self.releases.insert(r.id.clone(), at);
                }
            }
            Step::Delivered | Step::Failed => {
                if let Some(t) = &r.target {
                    self.delivered
                        .insert((r.id.clone(), r.kind.clone(), t.clone()));
                }
            }
        }
    }

    /// Whether the action was sent before.
    pub fn was_sent(&self, id: &str, kind: &str) -> bool {
        self.sent.contains(&(id.to_string(), kind.to_string()))
    }

    /// Whether a target took (or finally refused) the action before.
    pub fn was_settled(&self, id: &str, kind: &str, target: &str) -> bool {
        self.delivered
            .contains(&(id.to_string(), kind.to_string(), target.to_string()))
    }

    /// Forgets the records of `ids` (an erased person's actions): rewrites the log without
    /// them (a new file, synced, renamed over the old one), and never writes them again.
    pub fn forget(&mut self, ids: Vec<String>) -> Result<(), LogError> {
        self.forgotten.extend(ids);
        let forgotten = std::mem::take(&mut self.forgotten);
        let result = self.rewrite_without(&forgotten);
        self.forgotten = forgotten;
        result
    }

    /// Drops the records of retired firings (`ingest::retire_rules`): for each rule's id
    /// prefix (`rule/`), those released before its time. A retired firing's key never fires
    /// again, so nothing needs to remember it. Returns how many firings left the log.
    pub fn prune(&mut self, retired: &[(String, i64)]) -> Result<usize, LogError> {
        let gone: HashSet<String> = self
            .releases
            .iter()
            .filter(|(id, at)| retired.iter().any(|(p, t)| id.starts_with(p.as_str()) && **at < *t))
            .map(|(id, _)| id.clone())
            .collect();
        if gone.is_empty() {
            return Ok(0);
        }
        self.rewrite_without(&gone)?;
        Ok(gone.len())
    }

    /// Forgets the records of `gone` in memory and rewrites the log without them (a new
    /// file, synced, renamed over the old one).
    fn rewrite_without(&mut self, gone: &HashSet<String>) -> Result<(), LogError> {
        let io = |source| LogError::Io {
            path: self.path.clone(),
            source,
        };
        self.sent.retain(|(id, _)| !gone.contains(id));
        self.delivered.retain(|(id, _, _)| !gone.contains(id));
        self.releases.retain(|id, _| !gone.contains(id));
        let bytes = std::fs::read(&self.path).map_err(io)?;
        let text = String::from_utf8_lossy(&bytes);
        let kept: String = text
            .split_inclusive('\n')
            .filter(|line| parse_line(line.trim_end()).is_none_or(|r| !gone.contains(&r.id)))
            .collect();
        let fresh = self.path.with_extension("log.new");
        std::fs::write(&fresh, kept.as_bytes()).map_err(io)?;
        File::open(&fresh).and_then(|f| f.sync_all()).map_err(io)?;
        std::fs::rename(&fresh, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        self.file = OpenOptions::new()
            .append(true)
            .read(true)
            .open(&self.path)
            .map_err(io)?;
        Ok(())
    }

    /// Appends records and syncs them to disk.
    pub fn append(&mut self, records: &[Record]) -> Result<(), LogError> {
        let mut text = String::new();
        for r in records.iter().filter(|r| !self.forgotten.contains(&r.id)) {
            text.push_str(&line_of(r));
        }
        if text.is_empty() {
            return Ok(());
        }
        let io = |source| LogError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(text.as_bytes()).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        for r in records {
            self.note(r);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, step: Step, target: Option<&str>) -> Record {
        Record {
            id: id.into(),
            kind: "firing".into(),
            step,
            target: target.map(String::from),
            release: None,
        }
    }

    #[test]
    fn prune_drops_the_retired_firings_of_each_rule_only() {
        let dir = std::env::temp_dir().join(format!("tidemark-dlog-prune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut log = DeliveryLog::open(&dir).unwrap();
        let sent = |id: &str, at: i64| Record {
            release: Some(at),
            ..record(id, Step::Sent, None)
        };
        log.append(&[
            sent("a/1", 10),
            record("a/1", Step::Delivered, Some("http://x/")),
            sent("a/2", 30),
            sent("ab/1", 10),
            sent("b/1", 10),
        ])
        .unwrap();
        // Rule `a` retired before 20, rule `b` before 5: only a/1 goes (not ab/1, another rule).
        assert_eq!(log.prune(&[("a/".into(), 20), ("b/".into(), 5)]).unwrap(), 1);
        for log in [log, DeliveryLog::open(&dir).unwrap()] {
            assert!(!log.was_sent("a/1", "firing"));
            assert!(!log.was_settled("a/1", "firing", "http://x/"));
            assert!(log.was_sent("a/2", "firing") && log.was_sent("ab/1", "firing"));
            assert!(log.was_sent("b/1", "firing"));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn survives_reopening_and_a_torn_last_line() {
        let dir = std::env::temp_dir().join(format!("tidemark-dlog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut log = DeliveryLog::open(&dir).unwrap();
        log.append(&[
            record("r/1", Step::Sent, None),
            record("r/1", Step::Delivered, Some("http://x/")),
        ])
        .unwrap();
        drop(log);
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.join(FILE))
            .unwrap();
        f.write_all(b"0000abcd {\"id\":\"r/2\",\"ki").unwrap();
        let log = DeliveryLog::open(&dir).unwrap();
        assert!(log.was_sent("r/1", "firing"));
        assert!(log.was_settled("r/1", "firing", "http://x/"));
        assert!(!log.was_sent("r/2", "firing"));
        assert_eq!(log.skipped, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
