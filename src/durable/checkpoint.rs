//! The checkpoint file: ingest's whole state as of one log record, checksummed, replaced atomically.
//!
//! Layout: `TMCK`, format version (u32 LE), the last log record it covers (u64 LE), the
//! configuration fingerprint (u32 LE), the payload's CRC-32 (u32 LE), its length (u64 LE),
//! then the payload: a postcard-encoded [`IngestState`].

use std::path::{Path, PathBuf};

use crate::ingest::IngestState;
use crate::store::{read_if_exists, write_atomic, StoreError};

/// The checkpoint's file name in the data directory.
pub const FILE: &str = "checkpoint";

const MAGIC: &[u8; 4] = b"TMCK";
/// 2: dedupe ids carry their day; sealed day, retired facts and final rows (`ingest::retire`).
/// 3: erasure (hashes of erased ids, kept firings). 4: retired rule facts (`ingest::retire_rules`), counted kept firings.
const VERSION: u32 = 4;
const HEADER: usize = 4 + 4 + 8 + 4 + 4 + 8;

/// A checkpoint as read back.
#[derive(Debug)]
pub struct Checkpoint {
    /// The last log record whose effect the state holds.
    pub seq: u64,
    pub state: IngestState,
    /// Size of the file.
    pub bytes: u64,
}

/// Why a checkpoint cannot be written or used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{} is damaged ({detail}); it cannot be repaired, because the log it replaced is gone: restore the data directory from a backup, or move it away to start empty", path.display())]
    Damaged { path: PathBuf, detail: String },
    /// Its header and checksum are right, but the state in it does not decode.
    #[error("{} is damaged (cannot decode it: {source}); it cannot be repaired, because the log it replaced is gone: restore the data directory from a backup, or move it away to start empty", path.display())]
    Undecodable {
        /// The checkpoint file.
        path: PathBuf,
        /// What the decoder found.
        source: postcard::Error,
    },
    #[error("{} was written for other metrics or rules (the configuration's metric and rule sections changed since); start with the configuration it was written with, or with a new data directory (`--data`)", path.display())]
    OtherConfig { path: PathBuf },
    #[error("{} was written by another tidemark version (checkpoint format {found}, this one reads {VERSION}); serve it with the version that wrote it, or move the data directory away to start empty", path.display())]
    OtherVersion { path: PathBuf, found: u32 },
    #[error("cannot encode the checkpoint: {0}")]
    Encode(#[source] postcard::Error),
}

/// Encodes `state` as of record `seq` for a configuration with `fingerprint`.
pub fn encode(seq: u64, fingerprint: u32, state: &IngestState) -> Result<Vec<u8>, CheckpointError> {
    let payload = postcard::to_stdvec(state).map_err(CheckpointError::Encode)?;
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&fingerprint.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Writes encoded checkpoint bytes over the old checkpoint (temporary file, fsync, rename,
/// fsync of the directory).
pub fn write(dir: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    Ok(write_atomic(dir, FILE, bytes)?)
}

/// Reads the checkpoint in `dir`, if there is one, checking it was written for `fingerprint`.
pub fn read(dir: &Path, fingerprint: u32) -> Result<Option<Checkpoint>, CheckpointError> {
    let Some(bytes) = read_if_exists(dir, FILE)? else {
        return Ok(None);
    };
    let path = dir.join(FILE);
    let damaged = |detail: &str| CheckpointError::Damaged {
        path: path.clone(),
        detail: detail.to_string(),
    };
    if bytes.len() < HEADER || &bytes[..4] != MAGIC {
        return Err(damaged("it does not start with a checkpoint header"));
    }
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
    if u32_at(4) != VERSION {
        return Err(CheckpointError::OtherVersion {
            path,
            found: u32_at(4),
        });
    }
    let seq = u64_at(8);
    if u32_at(16) != fingerprint {
        return Err(CheckpointError::OtherConfig { path });
    }
    let crc = u32_at(20);
    let len = u64_at(24);
    let payload = &bytes[HEADER..];
    if payload.len() as u64 != len {
        return Err(damaged(&format!(
            "the header says {len} bytes follow, but {} do",
            payload.len()
        )));
    }
    if crc32fast::hash(payload) != crc {
        return Err(damaged("its checksum does not match"));
    }
    let state: IngestState = postcard::from_bytes(payload)
        .map_err(|source| CheckpointError::Undecodable { path, source })?;
    Ok(Some(Checkpoint {
        seq,
        state,
        bytes: bytes.len() as u64,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tidemark-ckpt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn reads_back_what_it_wrote_and_refuses_damage_and_other_configs() {
        let d = dir("roundtrip");
        assert!(read(&d, 7).unwrap().is_none());
        let bytes = encode(42, 7, &IngestState::default()).unwrap();
        write(&d, &bytes).unwrap();
        let c = read(&d, 7).unwrap().unwrap();
        assert_eq!((c.seq, c.state.accepted()), (42, 0));
        assert!(matches!(
            read(&d, 8),
            Err(CheckpointError::OtherConfig { .. })
        ));
        for cut in [0, 10, bytes.len() - 1] {
            std::fs::write(d.join(FILE), &bytes[..cut]).unwrap();
            let e = read(&d, 7).unwrap_err();
            assert!(matches!(e, CheckpointError::Damaged { .. }), "{e}");
        }
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        std::fs::write(d.join(FILE), &flipped).unwrap();
        let e = read(&d, 7).unwrap_err().to_string();
        assert!(e.contains("checksum") && e.contains("checkpoint"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
