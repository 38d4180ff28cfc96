//! Fuzz target: arbitrary bytes as log segments; open, replay and repair never panic, and a repaired log opens.
//!
//! Input layout: byte 0 picks 1 to 3 segments, bytes 1-2 and 3-4 (u16 LE) are the
//! offsets where the rest is cut between them. Each segment is named after the sequence number in its first
//! header when it has one, so continuity across segments is exercised too.
#![no_main]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use tidemark::store::{repair, Wal, WalOptions, HEADER_LEN};

/// A per-process scratch directory, on tmpfs when there is one (fsync is free there).
static SCRATCH: LazyLock<PathBuf> = LazyLock::new(|| {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    base.join(format!("tidemark-fuzz-wal-{}", std::process::id()))
});

fn options() -> WalOptions {
    WalOptions {
        segment_bytes: 256,
        start_seq: 1,
    }
}

fn count(wal: &Wal) -> u64 {
    let mut n = 0;
    let delivered = wal
        .replay(0, |_, _, _| {
            n += 1;
            Ok::<(), ()>(())
        })
        .expect("replay right after open reads what open validated");
    assert_eq!(delivered, n);
    n
}

fn write_segments(wal_dir: &Path, data: &[u8]) {
    let (head, rest) = data.split_at(data.len().min(5));
    let parts = head.first().map_or(1, |b| usize::from(b % 3) + 1);
    let cut = |i: usize| match head.get(i..i + 2) {
        Some(b) => usize::from(u16::from_le_bytes([b[0], b[1]])).min(rest.len()),
        None => rest.len(),
    };
    let (a, b) = (cut(1).min(cut(3)), cut(1).max(cut(3)));
    let bounds: Vec<(usize, usize)> = match parts {
        1 => vec![(0, rest.len())],
        2 => vec![(0, a), (a, rest.len())],
        _ => vec![(0, a), (a, b), (b, rest.len())],
    };
    for (i, (from, to)) in bounds.into_iter().enumerate() {
        let bytes = &rest[from..to];
        let name = if bytes.len() >= HEADER_LEN {
            u64::from_le_bytes(bytes[9..17].try_into().unwrap())
        } else {
            i as u64 + 1
        };
        fs::write(wal_dir.join(format!("{name:020}.seg")), bytes).unwrap();
    }
}

fuzz_target!(|data: &[u8]| {
    let dir: &Path = &SCRATCH;
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir.join("wal")).unwrap();
    write_segments(&dir.join("wal"), data);

    if let Ok((mut wal, rec)) = Wal::open(dir, options()) {
        assert_eq!(count(&wal), rec.records);
        // A recovered log takes appends again.
        let seq = wal.append(1, b"after recovery").unwrap();
        assert_eq!(seq, rec.last_seq + 1);
        wal.sync().unwrap();
    }
    let report = repair(dir).expect("repair fails only on I/O errors");
    let (wal, rec) = Wal::open(dir, options()).expect("a repaired log opens");
    assert_eq!(rec.torn_bytes_cut, 0, "repair leaves no torn tail");
    assert_eq!(rec.records, report.kept_records);
    assert_eq!(count(&wal), rec.records);
    drop(wal);
    assert_eq!(repair(dir).unwrap().damage, None, "a second repair finds nothing");
});
