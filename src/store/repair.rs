//! Repairing a damaged log: keep every valid record before the first damage, drop the rest.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use super::fsutil::{fsync_dir, io_err};
use super::scan::{scan, DamageKind};
use super::segment::WAL_DIR;
use super::StoreError;

/// What [`repair`] kept and dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Valid records left in the log.
    pub kept_records: u64,
    /// Bytes removed: the damaged segment's tail plus every later segment.
    pub dropped_bytes: u64,
    /// Segment files deleted, in order.
    pub dropped_segments: Vec<PathBuf>,
    /// The damage found (file and offset), or `None` when the log was healthy.
    pub damage: Option<String>,
}

/// Repairs the log in `dir/wal`: finds the first damage (a record that is cut short
/// or fails its checksum, a record out of sequence, a missing segment), cuts the
/// damaged segment at the start of the bad record (deleting it if nothing before
/// remains), deletes every later segment and fsyncs. A healthy log is left as it is.
///
/// Run it with the data directory locked (see [`super::DirLock`]) and no log open.
pub fn repair(dir: &Path) -> Result<RepairReport, StoreError> {
    let wal_dir = dir.join(WAL_DIR);
    let scanned = scan(&wal_dir)?;
    let mut report = RepairReport {
        kept_records: scanned.records(),
        ..RepairReport::default()
    };
    let Some(damage) = &scanned.damage else {
        return Ok(report);
    };
    report.damage = Some(damage.describe(&scanned.files));
    // Where the damaged segment is cut, when records before the damage remain in it.
    let (first_dropped, cut) = match damage.kind {
        DamageKind::Missing { .. } => (damage.index, None),
        _ if damage.offset == 0 => (damage.index, None),
        _ => (damage.index + 1, Some(&scanned.files[damage.index])),
    };
    // Later segments go first, newest first, so that an interrupted repair leaves
    // a log that the next repair (or open) still reads up to the same point.
    for file in scanned.files[first_dropped..].iter().rev() {
        fs::remove_file(&file.path).map_err(io_err("remove", &file.path))?;
        report.dropped_bytes += file.len;
        report.dropped_segments.insert(0, file.path.clone());
    }
    if first_dropped < scanned.files.len() {
        fsync_dir(&wal_dir)?;
    }
    if let Some(file) = cut {
        let f = OpenOptions::new()
            .write(true)
            .open(&file.path)
            .map_err(io_err("open", &file.path))?;
        f.set_len(damage.offset)
            .map_err(io_err("truncate", &file.path))?;
        f.sync_all().map_err(io_err("fsync", &file.path))?;
        report.dropped_bytes += file.len - damage.offset;
    }
    Ok(report)
}
