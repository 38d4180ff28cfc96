//! Segment files: their names (`wal/<first seq, 20 digits>.seg`) and listing them in order.

use std::fs;
use std::path::{Path, PathBuf};

use super::fsutil::io_err;
use super::StoreError;

/// The sub-directory of the data directory that holds the segments.
pub(crate) const WAL_DIR: &str = "wal";

/// A segment file on disk, as listed (before its records are read).
#[derive(Clone, Debug)]
pub(crate) struct SegmentFile {
    pub path: PathBuf,
    /// The first sequence number, as the file name says.
    pub name_seq: u64,
    /// The file's length when it was listed.
    pub len: u64,
}

/// The file name of the segment whose first record is `seq`.
pub(crate) fn file_name(seq: u64) -> String {
    format!("{seq:020}.seg")
}

/// The first sequence number a segment file name stands for, if it is one.
pub(crate) fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Lists the segment files of `wal_dir` in sequence order; other files are ignored.
/// A missing directory lists as empty.
pub(crate) fn list(wal_dir: &Path) -> Result<Vec<SegmentFile>, StoreError> {
    let entries = match fs::read_dir(wal_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", wal_dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("list", wal_dir))?;
        let Some(name_seq) = entry.file_name().to_str().and_then(parse_name) else {
            continue;
        };
        let path = entry.path();
        let meta = fs::metadata(&path).map_err(io_err("read the size of", &path))?;
        if !meta.is_file() {
            continue;
        }
        out.push(SegmentFile {
            path,
            name_seq,
            len: meta.len(),
        });
    }
    out.sort_by_key(|s| s.name_seq);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort_as_numbers() {
        assert_eq!(file_name(1), "00000000000000000001.seg");
        assert_eq!(parse_name(&file_name(1)), Some(1));
        assert_eq!(parse_name(&file_name(u64::MAX)), Some(u64::MAX));
        assert!(file_name(9) < file_name(10));
        for bad in [
            "1.seg",
            "0000000000000000000a.seg",
            "00000000000000000001.seg.tmp",
            "99999999999999999999.seg",
            "+0000000000000000001.seg",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }
}
