//! Validation of a whole log: every segment's records, checksums and sequence continuity, up to the first damage.
//!
//! The scan only reads. [`super::Wal::open`] and [`super::repair`] decide what to
//! do with the damage it finds.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::fsutil::io_err;
use super::record::{RecordReader, Step};
use super::segment::{self, SegmentFile};
use super::StoreError;

/// One segment as far as the scan read it.
#[derive(Clone, Debug)]
pub(crate) struct ScannedSegment {
    pub file: SegmentFile,
    /// Valid records from the start of the file.
    pub records: u64,
    /// Bytes those records take (the whole file unless the damage is here).
    pub valid_len: u64,
}

impl ScannedSegment {
    /// The sequence number of its first record (its name; meaningless when empty).
    pub fn first_seq(&self) -> u64 {
        self.file.name_seq
    }
}

/// What is wrong at the first damage.
#[derive(Clone, Debug)]
pub(crate) enum DamageKind {
    /// A record that is incomplete or fails its checksum (detail says which).
    Record,
    /// A record whose sequence number is not the next one.
    Sequence,
    /// The segment at `index` does not start at `expected`, the record after the end of `after`.
    Missing { after: PathBuf, expected: u64 },
}

/// The first damage in the log.
#[derive(Clone, Debug)]
pub(crate) struct Damage {
    /// Index (into [`Scan::files`]) of the damaged segment.
    pub index: usize,
    /// Offset of the first bad record in that segment.
    pub offset: u64,
    pub kind: DamageKind,
    /// A torn write: in the last non-empty segment, and running to its end (or followed only by zeros).
    pub torn: bool,
    pub detail: String,
}

impl Damage {
    /// The error that reports this damage.
    pub fn to_error(&self, files: &[SegmentFile]) -> StoreError {
        let file = files[self.index].path.clone();
        match &self.kind {
            DamageKind::Missing { after, expected } => StoreError::MissingSegment {
                after: after.clone(),
                expected_seq: *expected,
                found: Some(file),
            },
            DamageKind::Record | DamageKind::Sequence => StoreError::Corrupt {
                file,
                offset: self.offset,
                detail: self.detail.clone(),
            },
        }
    }

    /// A one-line description naming file and offset, for reports.
    pub fn describe(&self, files: &[SegmentFile]) -> String {
        let file = files[self.index].path.display();
        match &self.kind {
            DamageKind::Missing { after, expected } => format!(
                "{file} should start at record {expected} to follow {}: a segment is missing",
                after.display()
            ),
            _ => format!("{file} at byte {}: {}", self.offset, self.detail),
        }
    }
}

/// The result of scanning a log directory.
#[derive(Debug)]
pub(crate) struct Scan {
    /// Every segment file, in order.
    pub files: Vec<SegmentFile>,
    /// The segments read: all of them, or those up to and including the damaged one
    /// (up to but excluding it when a segment is missing before it).
    pub segments: Vec<ScannedSegment>,
    pub damage: Option<Damage>,
}

impl Scan {
    /// Valid records in the scanned segments.
    pub fn records(&self) -> u64 {
        self.segments.iter().map(|s| s.records).sum()
    }
}

/// Reads every segment of `wal_dir` up to the first damage. Only I/O failures are errors.
pub(crate) fn scan(wal_dir: &Path) -> Result<Scan, StoreError> {
    let files = segment::list(wal_dir)?;
    let last_nonempty = files.iter().rposition(|f| f.len > 0);
    let mut segments = Vec::with_capacity(files.len());
    // The next sequence number expected, and the segment that ends just before it.
    let mut expected: Option<(u64, usize)> = None;
    let mut damage = None;
    let mut buf = Vec::new();
    for (index, file) in files.iter().enumerate() {
        if file.len == 0 {
            segments.push(ScannedSegment {
                file: file.clone(),
                records: 0,
                valid_len: 0,
            });
            continue;
        }
        if let Some((next, prev)) = expected {
            if file.name_seq != next {
                damage = Some(Damage {
                    index,
                    offset: 0,
                    kind: DamageKind::Missing {
                        after: files[prev].path.clone(),
                        expected: next,
                    },
                    torn: false,
                    detail: String::new(),
                });
                break;
            }
        }
        let is_last = Some(index) == last_nonempty;
        let (seg, found) = scan_segment(file, index, is_last, &mut buf)?;
        let next = seg.first_seq() + seg.records;
        segments.push(seg);
        if found.is_some() {
            damage = found;
            break;
        }
        expected = Some((next, index));
    }
    Ok(Scan {
        files,
        segments,
        damage,
    })
}

/// Reads one non-empty segment; returns what is valid and the damage, if any.
fn scan_segment(
    file: &SegmentFile,
    index: usize,
    is_last: bool,
    buf: &mut Vec<u8>,
) -> Result<(ScannedSegment, Option<Damage>), StoreError> {
    let path = &file.path;
    let f = File::open(path).map_err(io_err("open", path))?;
    let mut reader = RecordReader::new(f, file.len);
    let mut next = file.name_seq;
    let mut records = 0u64;
    let damage = |offset: u64, kind: DamageKind, tail: bool, detail: String| Damage {
        index,
        offset,
        kind,
        torn: is_last && tail,
        detail,
    };
    let found = loop {
        let start = reader.pos();
        let step = reader.header().map_err(io_err("read", path))?;
        let header = match step {
            Step::End => break None,
            Step::ShortHeader { have } => {
                break Some(damage(
                    start,
                    DamageKind::Record,
                    true,
                    format!("a record header is cut short: {have} of 17 bytes"),
                ))
            }
            Step::ShortPayload { header, have } => {
                break Some(damage(
                    start,
                    DamageKind::Record,
                    true,
                    format!(
                    "a record is cut short: its header promises {} payload bytes, {have} follow",
                    header.len
                ),
                ))
            }
            Step::Header(h) => h,
        };
        let crc_ok = reader.payload(&header, buf).map_err(io_err("read", path))?;
        if !crc_ok {
            let tail = reader.pos() == file.len || zero_from(path, start, file.len)?;
            break Some(damage(
                start,
                DamageKind::Record,
                tail,
                "a record's checksum does not match its contents".to_string(),
            ));
        }
        if header.seq != next || header.seq == 0 || header.seq == u64::MAX {
            let detail = if header.seq == 0 || header.seq == u64::MAX {
                format!("record number {} is out of range", header.seq)
            } else if records == 0 {
                format!(
                    "the file name says the segment starts at record {next}, but its first record is {}",
                    header.seq
                )
            } else {
                format!("record {} follows record {}", header.seq, next - 1)
            };
            break Some(damage(start, DamageKind::Sequence, false, detail));
        }
        records += 1;
        next += 1;
    };
    let valid_len = found.as_ref().map_or(file.len, |d| d.offset);
    let seg = ScannedSegment {
        file: file.clone(),
        records,
        valid_len,
    };
    Ok((seg, found))
}

/// Whether every byte of `path` from `offset` to `end` is zero: what a crash can leave
/// when the file's size reached the disk before its data did.
fn zero_from(path: &Path, offset: u64, end: u64) -> Result<bool, StoreError> {
    let mut f = File::open(path).map_err(io_err("open", path))?;
    f.seek(SeekFrom::Start(offset))
        .map_err(io_err("read", path))?;
    let mut reader = RecordReader::new(f, end - offset);
    reader.rest_is_zero().map_err(io_err("read", path))
}
