//! The write-ahead log: opening (with recovery of a torn tail), appending, syncing and removing covered segments.
//!
//! Records are `(seq, kind, payload)` with consecutive sequence numbers. They
//! live in segment files `DATA/wal/<first seq, 20 digits>.seg` (see
//! `record.rs` for the byte layout). Appends are buffered in memory until
//! [`Wal::sync`] writes and fsyncs them; a sync that fails is undone on disk,
//! so the log always holds exactly the records of successful syncs.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::fsutil::{create_dir_durable, fsync_dir, io_err};
use super::record::{encode, MAX_PAYLOAD};
use super::scan::scan;
use super::segment::{file_name, WAL_DIR};
use super::StoreError;

/// How the log is laid out and where it starts.
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// A new segment is started once the current one holds at least this many bytes.
    pub segment_bytes: u64,
    /// The sequence number of the first record when the log holds no records
    /// (for example the sequence number after a checkpoint's). Ignored otherwise.
    pub start_seq: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_bytes: 64 << 20,
            start_seq: 1,
        }
    }
}

/// What [`Wal::open`] found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Valid records in the log.
    pub records: u64,
    /// The last record's sequence number (`next_seq - 1` when the log is empty).
    pub last_seq: u64,
    /// The first record's sequence number, if there is one.
    pub first_seq: Option<u64>,
    /// Bytes of an incomplete last record cut off the end of the last segment.
    pub torn_bytes_cut: u64,
    /// Segment files kept.
    pub segments: usize,
    /// Their total size.
    pub bytes: u64,
}

/// What one [`Wal::sync`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Records made durable.
    pub records: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Time spent in fsync (files and directory).
    pub fsync: Duration,
    /// Segment files created.
    pub segments_created: usize,
}

/// A segment file as the log knows it: only synced records count.
#[derive(Clone, Debug)]
pub(crate) struct Segment {
    pub path: PathBuf,
    pub first_seq: u64,
    pub records: u64,
    pub len: u64,
}

impl Segment {
    /// One past the last record's sequence number.
    fn end_seq(&self) -> u64 {
        self.first_seq + self.records
    }
}

/// Appended records not yet written, bound for one segment.
#[derive(Debug)]
struct Pending {
    /// Whether they start a new segment (else they go to the end of the current one).
    new_segment: bool,
    first_seq: u64,
    records: u64,
    bytes: Vec<u8>,
}

/// Work left over from a failed sync whose undo itself failed; retried before the next write.
#[derive(Debug, Default)]
struct Undo {
    truncate: Option<(PathBuf, u64)>,
    remove: Vec<PathBuf>,
}

/// A segmented, append-only log of numbered records.
///
/// Not safe to open twice on one directory: hold a [`super::DirLock`] first.
#[derive(Debug)]
pub struct Wal {
    wal_dir: PathBuf,
    options: WalOptions,
    /// Segment files on disk, oldest first; the last one is written to.
    pub(crate) segments: Vec<Segment>,
    /// An open handle on the last segment, opened on demand.
    current: Option<File>,
    pending: Vec<Pending>,
    next_seq: u64,
    synced_next_seq: u64,
    undo: Option<Undo>,
}

impl Wal {
    /// Opens (creating if missing) the log in `dir/wal`, validating every segment.
    ///
    /// A torn write at the end of the last non-empty segment (a record that runs
    /// past the end of the file, or whose checksum fails and which ends at the end of
    /// the file or is followed only by zero bytes) is cut off and counted in
    /// [`Recovery::torn_bytes_cut`]; empty segment files after the last record are
    /// removed. Any other damage is a [`StoreError::Corrupt`] or
    /// [`StoreError::MissingSegment`] naming the file; [`super::repair`] fixes it.
    pub fn open(dir: &Path, options: WalOptions) -> Result<(Wal, Recovery), StoreError> {
        let wal_dir = dir.join(WAL_DIR);
        create_dir_durable(&wal_dir)?;
        let mut scanned = scan(&wal_dir)?;
        let mut torn_bytes_cut = 0;
        if let Some(damage) = scanned.damage.take() {
            if !damage.torn {
                return Err(damage.to_error(&scanned.files));
            }
            let seg = &scanned.segments[damage.index];
            let path = &seg.file.path;
            let f = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io_err("open", path))?;
            f.set_len(damage.offset).map_err(io_err("truncate", path))?;
            f.sync_all().map_err(io_err("fsync", path))?;
            torn_bytes_cut = seg.file.len - damage.offset;
        }
        // Segments after the last record hold nothing: remove them so the next
        // segment can be created with the right name.
        let keep = scanned
            .segments
            .iter()
            .rposition(|s| s.valid_len > 0)
            .map_or(0, |i| i + 1);
        let mut removed = false;
        for s in scanned.segments.drain(keep..) {
            fs::remove_file(&s.file.path).map_err(io_err("remove", &s.file.path))?;
            removed = true;
        }
        // Files the scan stopped before are empty too (only a torn tail stops it
        // without an error), but make sure none is left behind.
        for f in scanned.files.iter().skip(keep) {
            if f.path.exists() {
                fs::remove_file(&f.path).map_err(io_err("remove", &f.path))?;
                removed = true;
            }
        }
        if removed {
            fsync_dir(&wal_dir)?;
        }
        let segments: Vec<Segment> = scanned
            .segments
            .iter()
            .map(|s| Segment {
                path: s.file.path.clone(),
                first_seq: s.first_seq(),
                records: s.records,
                len: s.valid_len,
            })
            .collect();
        let records: u64 = segments.iter().map(|s| s.records).sum();
        let first_seq = segments.iter().find(|s| s.records > 0).map(|s| s.first_seq);
        let next_seq = match segments.iter().rev().find(|s| s.records > 0) {
            Some(s) => s.end_seq(),
            None => options.start_seq.max(1),
        };
        let recovery = Recovery {
            records,
            last_seq: next_seq - 1,
            first_seq,
            torn_bytes_cut,
            segments: segments.len(),
            bytes: segments.iter().map(|s| s.len).sum(),
        };
        let wal = Wal {
            wal_dir,
            options,
            segments,
            current: None,
            pending: Vec::new(),
            next_seq,
            synced_next_seq: next_seq,
            undo: None,
        };
        Ok((wal, recovery))
    }

    /// Buffers one record and returns its sequence number. It is not durable until
    /// [`Wal::sync`] succeeds, and is forgotten if that sync fails.
    pub fn append(&mut self, kind: u8, payload: &[u8]) -> Result<u64, StoreError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(StoreError::RecordTooLarge {
                len: payload.len(),
                max: MAX_PAYLOAD,
            });
        }
        let seq = self.next_seq;
        if seq == u64::MAX {
            // u64::MAX is never a valid record number: the scan rejects it.
            return Err(StoreError::SequenceExhausted {
                dir: self.wal_dir.clone(),
                last: seq - 1,
            });
        }
        // How full is the segment this record would go to?
        let target = match self.pending.last() {
            Some(p) if p.new_segment => Some(p.bytes.len() as u64),
            Some(p) => self.segments.last().map(|s| s.len + p.bytes.len() as u64),
            None => self.segments.last().map(|s| s.len),
        };
        let roll = target.is_none_or(|len| len >= self.options.segment_bytes);
        if roll || self.pending.is_empty() {
            self.pending.push(Pending {
                new_segment: roll,
                first_seq: seq,
                records: 0,
                bytes: Vec::new(),
            });
        }
        let p = self
            .pending
            .last_mut()
            .expect("a pending batch was just ensured");
        encode(&mut p.bytes, seq, kind, payload);
        p.records += 1;
        self.next_seq += 1;
        Ok(seq)
    }

    /// Writes and fsyncs every appended record (and the directory after creating a
    /// segment). On failure the segment files are cut back to their state after the
    /// last successful sync, the unsynced records are forgotten (the next append
    /// reuses their sequence numbers) and the error names the file; later syncs work
    /// again once the cause (a full disk, say) is gone.
    pub fn sync(&mut self) -> Result<SyncStats, StoreError> {
        if let Some(undo) = self.undo.take() {
            if let Err(e) = self.apply_undo(&undo) {
                self.undo = Some(undo);
                self.pending.clear();
                self.next_seq = self.synced_next_seq;
                return Err(e);
            }
        }
        if self.pending.is_empty() {
            return Ok(SyncStats::default());
        }
        let pending = std::mem::take(&mut self.pending);
        let base_segments = self.segments.len();
        let base = self.segments.last().map(|s| (s.records, s.len));
        let mut stats = SyncStats::default();
        match self.write(&pending, &mut stats) {
            Ok(()) => {
                self.synced_next_seq = self.next_seq;
                Ok(stats)
            }
            Err(e) => {
                self.roll_back(base_segments, base);
                self.next_seq = self.synced_next_seq;
                Err(e)
            }
        }
    }

    fn write(&mut self, pending: &[Pending], stats: &mut SyncStats) -> Result<(), StoreError> {
        for p in pending {
            if p.new_segment {
                let path = self.wal_dir.join(file_name(p.first_seq));
                let f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(io_err("create", &path))?;
                self.current = Some(f);
                self.segments.push(Segment {
                    path,
                    first_seq: p.first_seq,
                    records: 0,
                    len: 0,
                });
                stats.segments_created += 1;
            }
            self.open_current()?;
            let file = self.current.as_ref().expect("opened just above");
            let seg = self.segments.last().expect("the current segment exists");
            file.write_all_at(&p.bytes, seg.len)
                .map_err(io_err("write", &seg.path))?;
            let t = Instant::now();
            file.sync_data().map_err(io_err("fsync", &seg.path))?;
            stats.fsync += t.elapsed();
            if p.new_segment {
                let t = Instant::now();
                fsync_dir(&self.wal_dir)?;
                stats.fsync += t.elapsed();
            }
            let seg = self
                .segments
                .last_mut()
                .expect("the current segment exists");
            seg.len += p.bytes.len() as u64;
            seg.records += p.records;
            stats.bytes += p.bytes.len() as u64;
            stats.records += p.records;
        }
        Ok(())
    }

    /// Opens the last segment for writing unless it is open already.
    fn open_current(&mut self) -> Result<(), StoreError> {
        if self.current.is_none() {
            let seg = self.segments.last().expect("the current segment exists");
            let f = OpenOptions::new()
                .write(true)
                .open(&seg.path)
                .map_err(io_err("open", &seg.path))?;
            self.current = Some(f);
        }
        Ok(())
    }

    /// Undoes a failed sync: removes the segments it created and cuts the segment it
    /// appended to back to `base` (records, length). What cannot be undone now is
    /// remembered and retried by the next sync.
    fn roll_back(&mut self, base_segments: usize, base: Option<(u64, u64)>) {
        self.current = None;
        let mut undo = Undo::default();
        for seg in self.segments.drain(base_segments..) {
            undo.remove.push(seg.path);
        }
        if let (Some(seg), Some((records, len))) = (self.segments.last_mut(), base) {
            seg.records = records;
            seg.len = len;
            undo.truncate = Some((seg.path.clone(), len));
        }
        if self.apply_undo(&undo).is_err() {
            self.undo = Some(undo);
        }
    }

    fn apply_undo(&self, undo: &Undo) -> Result<(), StoreError> {
        if let Some((path, len)) = &undo.truncate {
            let f = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io_err("open", path))?;
            f.set_len(*len).map_err(io_err("truncate", path))?;
            f.sync_all().map_err(io_err("fsync", path))?;
        }
        for path in &undo.remove {
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove", path)(e)),
            }
        }
        if !undo.remove.is_empty() {
            fsync_dir(&self.wal_dir)?;
        }
        Ok(())
    }

    /// Deletes the oldest segments whose every record has a sequence number below
    /// `seq` (a checkpoint covers them), never the segment being written, then fsyncs
    /// the directory. Returns how many were deleted.
    pub fn remove_before(&mut self, seq: u64) -> Result<usize, StoreError> {
        let mut removed = 0;
        while self.segments.len() > 1 && self.segments[0].end_seq() <= seq {
            let path = self.segments[0].path.clone();
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    if removed > 0 {
                        fsync_dir(&self.wal_dir)?;
                    }
                    return Err(io_err("remove", &path)(e));
                }
            }
            self.segments.remove(0);
            removed += 1;
        }
        if removed > 0 {
            fsync_dir(&self.wal_dir)?;
        }
        Ok(removed)
    }

    /// Syncs what is appended, then starts a new, empty segment, so that every record so far
    /// lies in segments that [`Wal::remove_before`] can delete (an erasure needs that).
    pub fn roll(&mut self) -> Result<(), StoreError> {
        self.sync()?;
        if self.segments.last().is_some_and(|s| s.records == 0) {
            return Ok(());
        }
        let path = self.wal_dir.join(file_name(self.next_seq));
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err("create", &path))?;
        fsync_dir(&self.wal_dir)?;
        self.current = Some(f);
        self.segments.push(Segment {
            path,
            first_seq: self.next_seq,
            records: 0,
            len: 0,
        });
        Ok(())
    }

    /// The sequence number the next [`Wal::append`] will return.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The first record's sequence number still in the log, if any.
    pub fn first_seq(&self) -> Option<u64> {
        self.segments
            .iter()
            .find(|s| s.records > 0)
            .map(|s| s.first_seq)
    }

    /// Bytes of synced records on disk.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    /// Segment files on disk.
    pub fn segments(&self) -> usize {
        self.segments.len()
    }
}
