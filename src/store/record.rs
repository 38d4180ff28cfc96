//! The on-disk record format: a 17-byte header then the payload, and a streaming reader for it.
//!
//! ```text
//! offset size field
//!      0    4 payload length, u32 little-endian
//!      4    4 CRC-32 (IEEE, crc32fast) of kind, seq (LE) and payload, u32 little-endian
//!      8    1 kind
//!      9    8 seq, u64 little-endian
//!     17    n payload
//! ```

use std::io::{self, BufRead, BufReader, Read};

/// Bytes in a record header.
pub const HEADER_LEN: usize = 17;

/// The largest payload one record can hold (its length field is a u32).
pub const MAX_PAYLOAD: usize = u32::MAX as usize;

/// A decoded record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub len: u32,
    pub crc: u32,
    pub kind: u8,
    pub seq: u64,
}

/// The checksum stored in a header: CRC-32 over kind, seq and payload.
pub(crate) fn checksum(kind: u8, seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&[kind]);
    h.update(&seq.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Appends one encoded record to `out`. The caller has checked `payload.len() <= MAX_PAYLOAD`.
pub(crate) fn encode(out: &mut Vec<u8>, seq: u64, kind: u8, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.reserve(HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&checksum(kind, seq, payload).to_le_bytes());
    out.push(kind);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
}

fn decode_header(b: &[u8; HEADER_LEN]) -> Header {
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&b[9..17]);
    Header {
        len: u32_at(0),
        crc: u32_at(4),
        kind: b[8],
        seq: u64::from_le_bytes(seq),
    }
}

/// What the reader found at its position.
#[derive(Debug)]
pub(crate) enum Step {
    /// The end of the readable bytes, exactly at a record boundary.
    End,
    /// Fewer bytes than a header remain: `have` of them.
    ShortHeader { have: u64 },
    /// A header whose payload runs past the end: `have` of its `len` bytes exist.
    ShortPayload { header: Header, have: u64 },
    /// A complete header; its payload comes next.
    Header(Header),
}

/// Reads records sequentially from a segment, never past `end` bytes.
pub(crate) struct RecordReader<R> {
    inner: BufReader<R>,
    pos: u64,
    end: u64,
}

impl<R: Read> RecordReader<R> {
    /// Reads from `inner`, which is positioned at byte 0 and holds `end` readable bytes.
    pub fn new(inner: R, end: u64) -> Self {
        RecordReader {
            inner: BufReader::with_capacity(256 * 1024, inner),
            pos: 0,
            end,
        }
    }

    /// The offset of the next unread byte.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// Reads the next header. The file shrinking under the reader shows as `UnexpectedEof`.
    pub fn header(&mut self) -> io::Result<Step> {
        let left = self.end - self.pos;
        if left == 0 {
            return Ok(Step::End);
        }
        if left < HEADER_LEN as u64 {
            return Ok(Step::ShortHeader { have: left });
        }
        let mut b = [0u8; HEADER_LEN];
        self.inner.read_exact(&mut b)?;
        self.pos += HEADER_LEN as u64;
        let header = decode_header(&b);
        let have = self.end - self.pos;
        if u64::from(header.len) > have {
            return Ok(Step::ShortPayload { header, have });
        }
        Ok(Step::Header(header))
    }

    /// Reads the payload of `header` into `buf` and says whether its checksum matches.
    pub fn payload(&mut self, header: &Header, buf: &mut Vec<u8>) -> io::Result<bool> {
        buf.clear();
        let len = u64::from(header.len);
        (&mut self.inner).take(len).read_to_end(buf)?;
        if buf.len() as u64 != len {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.pos += len;
        Ok(checksum(header.kind, header.seq, buf) == header.crc)
    }

    /// Skips the payload of `header` without checking it.
    pub fn skip(&mut self, header: &Header) -> io::Result<()> {
        let mut left = u64::from(header.len);
        while left > 0 {
            let avail = self.inner.fill_buf()?.len();
            if avail == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let n = avail.min(usize::try_from(left).unwrap_or(usize::MAX));
            self.inner.consume(n);
            left -= n as u64;
        }
        self.pos += u64::from(header.len);
        Ok(())
    }

    /// Whether every byte from the current position to `end` is zero (consumes them).
    pub fn rest_is_zero(&mut self) -> io::Result<bool> {
        while self.pos < self.end {
            let chunk = self.inner.fill_buf()?;
            if chunk.is_empty() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let n = chunk
                .len()
                .min(usize::try_from(self.end - self.pos).unwrap_or(usize::MAX));
            if chunk[..n].iter().any(|&b| b != 0) {
                return Ok(false);
            }
            self.inner.consume(n);
            self.pos += n as u64;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(seq: u64, kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        encode(&mut v, seq, kind, payload);
        v
    }

    #[test]
    fn header_layout_is_as_documented() {
        let b = one(0x0102_0304_0506_0708, 9, b"abc");
        assert_eq!(b.len(), HEADER_LEN + 3);
        assert_eq!(&b[0..4], &3u32.to_le_bytes());
        assert_eq!(
            &b[4..8],
            &checksum(9, 0x0102_0304_0506_0708, b"abc").to_le_bytes()
        );
        assert_eq!(b[8], 9);
        assert_eq!(&b[9..17], &0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(&b[17..], b"abc");
    }

    #[test]
    fn reads_back_and_detects_each_problem() {
        let mut log = one(1, 1, b"hello");
        log.extend(one(2, 2, b""));
        let mut r = RecordReader::new(&log[..], log.len() as u64);
        let mut buf = Vec::new();
        let Step::Header(h) = r.header().unwrap() else {
            panic!()
        };
        assert!(r.payload(&h, &mut buf).unwrap());
        assert_eq!((h.seq, h.kind, &buf[..]), (1, 1, &b"hello"[..]));
        let Step::Header(h) = r.header().unwrap() else {
            panic!()
        };
        assert!(r.payload(&h, &mut buf).unwrap());
        assert_eq!((h.seq, buf.len()), (2, 0));
        assert!(matches!(r.header().unwrap(), Step::End));

        let cut = &log[..HEADER_LEN - 1];
        let mut r = RecordReader::new(cut, cut.len() as u64);
        assert!(matches!(
            r.header().unwrap(),
            Step::ShortHeader { have: 16 }
        ));
        let cut = &log[..HEADER_LEN + 2];
        let mut r = RecordReader::new(cut, cut.len() as u64);
        assert!(matches!(
            r.header().unwrap(),
            Step::ShortPayload { have: 2, .. }
        ));

        let mut bad = log.clone();
        bad[HEADER_LEN] ^= 1;
        let mut r = RecordReader::new(&bad[..], bad.len() as u64);
        let Step::Header(h) = r.header().unwrap() else {
            panic!()
        };
        assert!(!r.payload(&h, &mut buf).unwrap());
    }

    #[test]
    fn skip_and_zero_tail() {
        let mut log = one(1, 0, &[7u8; 1000]);
        log.extend([0u8; 50]);
        let mut r = RecordReader::new(&log[..], log.len() as u64);
        let Step::Header(h) = r.header().unwrap() else {
            panic!()
        };
        r.skip(&h).unwrap();
        assert_eq!(r.pos(), (HEADER_LEN + 1000) as u64);
        assert!(r.rest_is_zero().unwrap());
        let mut r = RecordReader::new(&log[..], log.len() as u64);
        assert!(!r.rest_is_zero().unwrap());
    }
}
