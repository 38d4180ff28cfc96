//! Reading the log back: [`Wal::replay`] streams synced records in order through a buffered reader.

use std::fs::File;
use std::io;

use super::fsutil::io_err;
use super::record::{RecordReader, Step};
use super::wal::Wal;
use super::StoreError;

/// Why a replay stopped: the log could not be read, or the callback refused a record.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError<E> {
    /// The log could not be read (a file changed or vanished since it was opened).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The callback returned this error for record `seq`.
    #[error("applying log record {seq} failed: {error}")]
    Apply {
        /// The record the callback refused.
        seq: u64,
        /// The callback's error.
        error: E,
    },
}

impl Wal {
    /// Calls `f(seq, kind, payload)` for every synced record with `seq >= from_seq`, in
    /// order, and returns how many it called it for. Segments wholly before `from_seq`
    /// are not opened, and earlier records in the first segment read are skipped
    /// without checking them.
    ///
    /// Records are checked again as they are read: a file that changed since
    /// [`Wal::open`] gives [`StoreError::Corrupt`] or [`StoreError::MissingSegment`],
    /// never a panic. Appended records that are not yet synced are not replayed.
    pub fn replay<E>(
        &self,
        from_seq: u64,
        mut f: impl FnMut(u64, u8, &[u8]) -> Result<(), E>,
    ) -> Result<u64, ReplayError<E>> {
        let mut delivered = 0;
        let mut buf = Vec::new();
        for (i, seg) in self.segments.iter().enumerate() {
            if seg.records == 0 || seg.first_seq + seg.records <= from_seq {
                continue;
            }
            let file = match File::open(&seg.path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound && i > 0 => {
                    return Err(StoreError::MissingSegment {
                        after: self.segments[i - 1].path.clone(),
                        expected_seq: seg.first_seq,
                        found: None,
                    }
                    .into())
                }
                Err(e) => return Err(io_err("open", &seg.path)(e).into()),
            };
            let mut reader = RecordReader::new(file, seg.len);
            let changed = |offset: u64, what: &str| StoreError::Corrupt {
                file: seg.path.clone(),
                offset,
                detail: format!("{what}, though the log was valid when opened"),
            };
            for seq in seg.first_seq..seg.first_seq + seg.records {
                let start = reader.pos();
                let header = match reader.header() {
                    Ok(Step::Header(h)) => h,
                    Ok(_) => return Err(changed(start, "a record is cut short").into()),
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        return Err(changed(start, "the file is shorter").into())
                    }
                    Err(e) => return Err(io_err("read", &seg.path)(e).into()),
                };
                if header.seq != seq {
                    let what = format!("record {} where record {seq} was", header.seq);
                    return Err(changed(start, &what).into());
                }
                let read = if seq < from_seq {
                    reader.skip(&header).map(|()| true)
                } else {
                    reader.payload(&header, &mut buf)
                };
                match read {
                    Ok(true) => {}
                    Ok(false) => {
                        return Err(changed(start, "a record's checksum does not match").into())
                    }
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        return Err(changed(start, "the file is shorter").into())
                    }
                    Err(e) => return Err(io_err("read", &seg.path)(e).into()),
                }
                if seq >= from_seq {
                    f(seq, header.kind, &buf).map_err(|error| ReplayError::Apply { seq, error })?;
                    delivered += 1;
                }
            }
        }
        Ok(delivered)
    }
}
