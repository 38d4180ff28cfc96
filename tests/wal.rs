//! The write-ahead log through its public API: round trips, recovery of torn tails, damage and repair, checkpoints, locking and a full disk.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use tidemark::store::{
    read_if_exists, repair, write_atomic, DirLock, ReplayError, StoreError, Wal, WalOptions,
    HEADER_LEN,
};

/// A scratch data directory, removed on drop.
struct TestDir(PathBuf);

impl TestDir {
    fn new(name: &str) -> TestDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("tidemark-wal-{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TestDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The payload of record `seq` in these tests: its size varies, its bytes depend on `seq`.
#[allow(clippy::cast_possible_truncation)] // each byte is the low byte of `seq * 31 + i`, on purpose
fn payload(seq: u64) -> Vec<u8> {
    let len = (seq * 37 % 300) as usize;
    (0..len).map(|i| (seq as usize * 31 + i) as u8).collect()
}

fn kind(seq: u64) -> u8 {
    (seq % 7) as u8
}

fn small(segment_bytes: u64) -> WalOptions {
    WalOptions {
        segment_bytes,
        ..WalOptions::default()
    }
}

/// Appends records `next_seq..=last`, syncing every `every` records and at the end.
fn fill(wal: &mut Wal, last: u64, every: u64) {
    while wal.next_seq() <= last {
        let seq = wal.next_seq();
        assert_eq!(wal.append(kind(seq), &payload(seq)).unwrap(), seq);
        if seq.is_multiple_of(every) {
            wal.sync().unwrap();
        }
    }
    wal.sync().unwrap();
}

/// Every record from `from`, as `(seq, kind, payload)`.
fn read_all(wal: &Wal, from: u64) -> Vec<(u64, u8, Vec<u8>)> {
    let mut out = Vec::new();
    let n = wal
        .replay(from, |seq, kind, p| {
            out.push((seq, kind, p.to_vec()));
            Ok::<(), std::convert::Infallible>(())
        })
        .unwrap();
    assert_eq!(n, out.len() as u64);
    out
}

/// Asserts that the log holds exactly the test records `first..=last`.
fn assert_holds(wal: &Wal, first: u64, last: u64) {
    let got = read_all(wal, 0);
    assert_eq!(got.len() as u64, last + 1 - first, "record count");
    for (i, (seq, k, p)) in got.into_iter().enumerate() {
        let want = first + i as u64;
        assert_eq!(seq, want);
        assert_eq!(k, kind(want), "kind of {want}");
        assert_eq!(p, payload(want), "payload of {want}");
    }
}

/// The segment files, oldest first.
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// Byte offsets of each record in a segment file, read with the documented layout.
fn record_offsets(file: &Path) -> Vec<(u64, u64)> {
    let bytes = fs::read(file).unwrap();
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let seq = u64::from_le_bytes(bytes[at + 9..at + 17].try_into().unwrap());
        out.push((at as u64, seq));
        at += HEADER_LEN + len;
    }
    assert_eq!(at, bytes.len());
    out
}

/// A log of records 1..=n in segments of about `segment_bytes`.
fn build(dir: &Path, n: u64, segment_bytes: u64) {
    let (mut wal, rec) = Wal::open(dir, small(segment_bytes)).unwrap();
    assert_eq!(rec.records, 0);
    fill(&mut wal, n, 50);
}

fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    segment_files(dir)
        .into_iter()
        .map(|p| {
            let b = fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

#[test]
fn round_trip_across_many_small_segments_and_reopen() {
    let dir = TestDir::new("roundtrip");
    let (mut wal, rec) = Wal::open(dir.path(), small(2048)).unwrap();
    assert_eq!((rec.records, rec.last_seq, rec.segments), (0, 0, 0));
    assert_eq!(wal.next_seq(), 1);
    fill(&mut wal, 1500, 97);
    assert!(wal.segments() > 20, "{} segments", wal.segments());
    assert_holds(&wal, 1, 1500);
    let (segments, bytes) = (wal.segments(), wal.bytes());
    drop(wal);

    // Every segment is named after its first record, and only the last may be under size.
    let files = segment_files(dir.path());
    assert_eq!(files.len(), segments);
    let mut total = 0;
    for (i, f) in files.iter().enumerate() {
        let offsets = record_offsets(f);
        let name = f.file_stem().unwrap().to_str().unwrap();
        assert_eq!(name, format!("{:020}", offsets[0].1));
        let len = fs::metadata(f).unwrap().len();
        total += len;
        if i + 1 < files.len() {
            assert!(len >= 2048, "{} is {len} bytes", f.display());
        }
    }
    assert_eq!(total, bytes);

    let (mut wal, rec) = Wal::open(dir.path(), small(2048)).unwrap();
    assert_eq!(
        (rec.records, rec.last_seq, rec.first_seq, rec.torn_bytes_cut),
        (1500, 1500, Some(1), 0)
    );
    assert_eq!((rec.segments, rec.bytes), (segments, bytes));
    assert_eq!(wal.next_seq(), 1501);
    assert_holds(&wal, 1, 1500);
    // Replay from the middle reads only what follows.
    let tail = read_all(&wal, 1234);
    assert_eq!(tail.first().map(|r| r.0), Some(1234));
    assert_eq!(tail.len(), 267);
    fill(&mut wal, 1600, 1000);
    drop(wal);
    let (wal, _) = Wal::open(dir.path(), small(2048)).unwrap();
    assert_holds(&wal, 1, 1600);
}

#[test]
fn unsynced_records_are_not_kept_and_sync_reports_its_work() {
    let dir = TestDir::new("unsynced");
    let (mut wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    for _ in 0..10 {
        wal.append(1, &[0u8; 100]).unwrap();
    }
    let stats = wal.sync().unwrap();
    assert_eq!(stats.records, 10);
    assert_eq!(stats.bytes, 10 * (HEADER_LEN as u64 + 100));
    assert_eq!(stats.segments_created, 1);
    assert_eq!(wal.sync().unwrap().records, 0, "nothing left to sync");
    wal.append(1, b"lost").unwrap();
    assert_eq!(
        read_all(&wal, 1).len(),
        10,
        "replay shows synced records only"
    );
    drop(wal);
    let (wal, rec) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!((rec.records, wal.next_seq()), (10, 11));
}

#[test]
fn a_torn_last_record_is_cut_at_every_length() {
    let dir = TestDir::new("torn-build");
    build(dir.path(), 120, 1024);
    let files = segment_files(dir.path());
    let last = files.last().unwrap().clone();
    let offsets = record_offsets(&last);
    let (start, seq) = *offsets.last().unwrap();
    assert_eq!(seq, 120);
    let original = fs::read(&last).unwrap();
    let end = original.len() as u64;
    assert!(
        end - start > HEADER_LEN as u64,
        "the last record has a payload"
    );

    for keep in start..end {
        let case = TestDir::new("torn");
        for f in &files {
            fs::create_dir_all(case.path().join("wal")).unwrap();
            fs::copy(f, case.path().join("wal").join(f.file_name().unwrap())).unwrap();
        }
        let copy = case.path().join("wal").join(last.file_name().unwrap());
        fs::write(&copy, &original[..usize::try_from(keep).unwrap()]).unwrap();
        let (mut wal, rec) =
            Wal::open(case.path(), small(1024)).unwrap_or_else(|e| panic!("cut to {keep}: {e}"));
        assert_eq!(rec.torn_bytes_cut, keep - start, "cut to {keep}");
        assert_eq!((rec.records, rec.last_seq), (119, 119), "cut to {keep}");
        assert_eq!(fs::metadata(&copy).map(|m| m.len()).unwrap_or(0), start);
        assert_holds(&wal, 1, 119);
        // The log goes on from the cut.
        fill(&mut wal, 125, 1000);
        drop(wal);
        let (wal, rec) = Wal::open(case.path(), small(1024)).unwrap();
        assert_eq!(rec.torn_bytes_cut, 0);
        assert_holds(&wal, 1, 125);
    }
}

#[test]
fn a_bad_checksum_on_the_final_record_or_a_zeroed_tail_is_a_torn_write() {
    for zero_tail in [false, true] {
        let dir = TestDir::new("torn-crc");
        build(dir.path(), 30, 1 << 20);
        let file = segment_files(dir.path()).pop().unwrap();
        let (start, _) = *record_offsets(&file).last().unwrap();
        let mut bytes = fs::read(&file).unwrap();
        if zero_tail {
            // Size reached the disk, data did not: the last record and more are zeros.
            bytes.truncate(usize::try_from(start).unwrap());
            bytes.extend([0u8; 100]);
        } else {
            let last = bytes.len() - 1;
            bytes[last] ^= 0x40;
        }
        let cut = bytes.len() as u64 - start;
        fs::write(&file, &bytes).unwrap();
        let (wal, rec) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        assert_eq!((rec.records, rec.torn_bytes_cut), (29, cut));
        assert_holds(&wal, 1, 29);
    }
}

#[test]
fn a_flipped_bit_in_a_middle_record_is_corrupt_and_repair_keeps_what_precedes_it() {
    let dir = TestDir::new("flip");
    build(dir.path(), 300, 2048);
    let files = segment_files(dir.path());
    assert!(files.len() >= 4);
    let victim = files[files.len() / 2].clone();
    let offsets = record_offsets(&victim);
    let (offset, seq) = offsets[offsets.len() / 2];
    let mut bytes = fs::read(&victim).unwrap();
    bytes[usize::try_from(offset).unwrap() + HEADER_LEN - 1] ^= 0x01; // a bit of the sequence number
    fs::write(&victim, &bytes).unwrap();

    let err = Wal::open(dir.path(), small(2048)).unwrap_err();
    match &err {
        StoreError::Corrupt {
            file, offset: at, ..
        } => {
            assert_eq!(file, &victim);
            assert_eq!(*at, offset);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&victim.display().to_string()), "{msg}");
    assert!(msg.contains(&format!("at byte {offset}")), "{msg}");
    assert!(
        msg.contains(&format!("tidemark repair --data {}", dir.path().display())),
        "{msg}"
    );

    let later: Vec<PathBuf> = files.iter().filter(|f| **f > victim).cloned().collect();
    let report = repair(dir.path()).unwrap();
    assert_eq!(report.kept_records, seq - 1);
    assert_eq!(report.dropped_segments, later);
    let damage = report.damage.unwrap();
    assert!(damage.contains(&victim.display().to_string()), "{damage}");
    assert!(damage.contains(&offset.to_string()), "{damage}");
    let (mut wal, rec) = Wal::open(dir.path(), small(2048)).unwrap();
    assert_eq!((rec.records, rec.torn_bytes_cut), (seq - 1, 0));
    assert_holds(&wal, 1, seq - 1);
    fill(&mut wal, seq + 10, 1000);
    assert_holds(&wal, 1, seq + 10);
}

#[test]
fn an_out_of_sequence_record_is_corrupt() {
    let dir = TestDir::new("sequence");
    build(dir.path(), 10, 1 << 20);
    let file = segment_files(dir.path()).pop().unwrap();
    let offsets = record_offsets(&file);
    // Rewrite record 5 as a valid record numbered 7.
    let (at, _) = offsets[4];
    let mut bytes = fs::read(&file).unwrap();
    let p = payload(5);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[kind(5)]);
    crc.update(&7u64.to_le_bytes());
    crc.update(&p);
    let at = usize::try_from(at).unwrap();
    bytes[at + 4..at + 8].copy_from_slice(&crc.finalize().to_le_bytes());
    bytes[at + 9..at + 17].copy_from_slice(&7u64.to_le_bytes());
    fs::write(&file, &bytes).unwrap();
    let err = Wal::open(dir.path(), WalOptions::default()).unwrap_err();
    let StoreError::Corrupt { offset, detail, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*offset, at as u64);
    assert!(detail.contains("record 7 follows record 4"), "{detail}");
    let report = repair(dir.path()).unwrap();
    assert_eq!((report.kept_records, report.dropped_segments.len()), (4, 0));
    let (wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_holds(&wal, 1, 4);
}

#[test]
fn a_segment_named_for_another_record_is_corrupt_at_byte_zero() {
    let dir = TestDir::new("name");
    build(dir.path(), 5, 1 << 20);
    let file = segment_files(dir.path()).pop().unwrap();
    let renamed = file.with_file_name(format!("{:020}.seg", 3));
    fs::rename(&file, &renamed).unwrap();
    let err = Wal::open(dir.path(), WalOptions::default()).unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { file, offset: 0, .. } if *file == renamed),
        "{err:?}"
    );
    let report = repair(dir.path()).unwrap();
    assert_eq!(report.kept_records, 0);
    assert_eq!(report.dropped_segments, vec![renamed]);
    let (wal, rec) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!((rec.records, rec.segments, wal.next_seq()), (0, 0, 1));
}

#[test]
fn a_missing_middle_segment_is_reported_and_repair_keeps_the_records_before_it() {
    let dir = TestDir::new("missing");
    build(dir.path(), 300, 2048);
    let files = segment_files(dir.path());
    let gone = files[2].clone();
    let first_gone = record_offsets(&gone)[0].1;
    fs::remove_file(&gone).unwrap();

    let err = Wal::open(dir.path(), small(2048)).unwrap_err();
    match &err {
        StoreError::MissingSegment {
            after,
            expected_seq,
            found,
        } => {
            assert_eq!(after, &files[1]);
            assert_eq!(*expected_seq, first_gone);
            assert_eq!(found.as_ref(), Some(&files[3]));
        }
        other => panic!("expected MissingSegment, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&files[1].display().to_string()), "{msg}");
    assert!(msg.contains(&files[3].display().to_string()), "{msg}");
    assert!(msg.contains("tidemark repair --data"), "{msg}");

    let report = repair(dir.path()).unwrap();
    assert_eq!(report.kept_records, first_gone - 1);
    assert_eq!(report.dropped_segments, files[3..].to_vec());
    let (wal, _) = Wal::open(dir.path(), small(2048)).unwrap();
    assert_holds(&wal, 1, first_gone - 1);
}

#[test]
fn damage_in_the_last_segment_before_its_end_is_not_a_torn_write() {
    let dir = TestDir::new("last-middle");
    build(dir.path(), 20, 1 << 20);
    let file = segment_files(dir.path()).pop().unwrap();
    let (at, _) = record_offsets(&file)[10];
    let mut bytes = fs::read(&file).unwrap();
    bytes[usize::try_from(at).unwrap() + HEADER_LEN + 1] ^= 0x80;
    fs::write(&file, &bytes).unwrap();
    let err = Wal::open(dir.path(), WalOptions::default()).unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt { offset, .. } if offset == at),
        "{err:?}"
    );
    let report = repair(dir.path()).unwrap();
    assert_eq!(report.kept_records, 10);
    assert_eq!(report.dropped_bytes, bytes.len() as u64 - at);
    let (wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_holds(&wal, 1, 10);
}

#[test]
fn repair_leaves_a_healthy_log_alone() {
    let dir = TestDir::new("healthy");
    build(dir.path(), 200, 2048);
    let before = tree(dir.path());
    let report = repair(dir.path()).unwrap();
    assert_eq!(report.kept_records, 200);
    assert_eq!(report.dropped_bytes, 0);
    assert!(report.dropped_segments.is_empty());
    assert_eq!(report.damage, None);
    assert_eq!(tree(dir.path()), before);
    // A directory without a log is healthy too, and repair does not create one.
    let empty = TestDir::new("healthy-empty");
    assert_eq!(repair(empty.path()).unwrap().kept_records, 0);
    assert!(!empty.path().join("wal").exists());
}

#[test]
fn empty_trailing_segments_are_fine() {
    let dir = TestDir::new("empty-trailing");
    build(dir.path(), 10, 1 << 20);
    let wal_dir = dir.path().join("wal");
    fs::write(wal_dir.join(format!("{:020}.seg", 11)), b"").unwrap();
    fs::write(wal_dir.join(format!("{:020}.seg", 500)), b"").unwrap();
    fs::write(wal_dir.join("notes.txt"), b"not a segment").unwrap();
    let (mut wal, rec) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!((rec.records, rec.segments), (10, 1));
    fill(&mut wal, 12, 1000);
    drop(wal);
    let (wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_holds(&wal, 1, 12);
    assert!(
        wal_dir.join("notes.txt").exists(),
        "other files are left alone"
    );
}

#[test]
fn remove_before_drops_covered_segments_and_replay_stays_correct() {
    let dir = TestDir::new("remove");
    let (mut wal, _) = Wal::open(dir.path(), small(2048)).unwrap();
    fill(&mut wal, 400, 25);
    let segments = wal.segments();
    assert_eq!(wal.remove_before(1).unwrap(), 0);
    // A checkpoint covers records up to 250: the log must still hold 251 on.
    let removed = wal.remove_before(251).unwrap();
    assert!(removed > 0);
    assert_eq!(wal.segments(), segments - removed);
    let first = wal.first_seq().unwrap();
    assert!(first > 1 && first <= 251, "first remaining record {first}");
    let got = read_all(&wal, 251);
    assert_eq!(got.first().map(|r| r.0), Some(251));
    assert_eq!(got.len(), 150);
    // The current segment is never removed, even when everything is covered.
    wal.remove_before(10_000).unwrap();
    assert_eq!(wal.segments(), 1);
    let first = wal.first_seq().unwrap();
    assert_eq!(read_all(&wal, 0).first().map(|r| r.0), Some(first));
    fill(&mut wal, 420, 1000);
    drop(wal);

    // Open checks continuity from the first remaining segment on.
    let options = WalOptions {
        segment_bytes: 2048,
        start_seq: 401,
    };
    let (wal, rec) = Wal::open(dir.path(), options).unwrap();
    assert_eq!((rec.first_seq, rec.last_seq), (Some(first), 420));
    assert_holds(&wal, first, 420);
    assert_eq!(repair(dir.path()).unwrap().damage, None);
}

#[test]
fn an_empty_log_starts_at_the_given_sequence_number() {
    let dir = TestDir::new("start");
    let options = WalOptions {
        segment_bytes: 1024,
        start_seq: 1000,
    };
    let (mut wal, rec) = Wal::open(dir.path(), options.clone()).unwrap();
    assert_eq!((rec.records, rec.last_seq, rec.first_seq), (0, 999, None));
    assert_eq!(wal.append(3, b"x").unwrap(), 1000);
    wal.sync().unwrap();
    drop(wal);
    let files = segment_files(dir.path());
    assert_eq!(
        files[0].file_name().unwrap().to_str().unwrap(),
        "00000000000000001000.seg"
    );
    // Once the log holds records, start_seq no longer matters.
    let (wal, rec) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(
        (rec.first_seq, rec.last_seq, wal.next_seq()),
        (Some(1000), 1000, 1001)
    );
}

#[test]
fn the_last_sequence_number_is_refused_not_wrapped() {
    let dir = TestDir::new("exhausted");
    let options = WalOptions {
        segment_bytes: 1024,
        start_seq: u64::MAX - 1,
    };
    let (mut wal, _) = Wal::open(dir.path(), options.clone()).unwrap();
    assert_eq!(wal.append(0, b"last").unwrap(), u64::MAX - 1);
    let err = wal.append(0, b"one too many").unwrap_err();
    assert!(matches!(err, StoreError::SequenceExhausted { last, .. } if last == u64::MAX - 1));
    wal.sync().unwrap();
    drop(wal);
    let (wal, rec) = Wal::open(dir.path(), options).unwrap();
    assert_eq!(
        (rec.records, rec.last_seq, wal.next_seq()),
        (1, u64::MAX - 1, u64::MAX)
    );
}

#[test]
fn replay_stops_at_the_first_callback_error_and_notices_changed_files() {
    let dir = TestDir::new("replay");
    let (mut wal, _) = Wal::open(dir.path(), small(1024)).unwrap();
    fill(&mut wal, 100, 1000);
    let mut seen = 0;
    let err = wal
        .replay(1, |seq, _, _| {
            seen += 1;
            if seq == 42 {
                Err("no room")
            } else {
                Ok(())
            }
        })
        .unwrap_err();
    assert!(matches!(
        err,
        ReplayError::Apply {
            seq: 42,
            error: "no room"
        }
    ));
    assert_eq!(seen, 42);
    assert!(err.to_string().contains("record 42"));

    // A segment that shrinks or vanishes under an open log is an error, not a panic.
    let files = segment_files(dir.path());
    let f = fs::OpenOptions::new().write(true).open(&files[1]).unwrap();
    f.set_len(10).unwrap();
    let err = wal.replay(1, |_, _, _| Ok::<(), String>(())).unwrap_err();
    assert!(
        matches!(&err, ReplayError::Store(StoreError::Corrupt { file, .. }) if *file == files[1]),
        "{err:?}"
    );
    fs::remove_file(&files[2]).unwrap();
    let err = wal.replay(files.len() as u64 * 1000, |_, _, _| Ok::<(), String>(()));
    assert!(err.is_ok(), "segments before from_seq are not read");
    let from = record_offsets(&files[3])[0].1 - 1;
    let err = wal
        .replay(from, |_, _, _| Ok::<(), String>(()))
        .unwrap_err();
    assert!(
        matches!(
            &err,
            ReplayError::Store(StoreError::MissingSegment { found: None, .. })
        ),
        "{err:?}"
    );
}

#[test]
fn a_sync_that_fails_is_undone_and_the_log_goes_on() {
    // A directory where the next segment file must go makes creating it fail.
    let dir = TestDir::new("sync-fail");
    let (mut wal, _) = Wal::open(dir.path(), small(1024)).unwrap();
    fill(&mut wal, 5, 1000);
    let len_before = wal.bytes();
    let segment = segment_files(dir.path())[0].clone();
    for seq in 6..=39 {
        wal.append(kind(seq), &payload(seq)).unwrap();
    }
    // Block every segment file the batch would create.
    let names = planned_segments(6, 39, 1024, len_before);
    assert!(!names.is_empty());
    for n in &names {
        fs::create_dir(dir.path().join("wal").join(n)).unwrap();
    }
    let err = wal.sync().unwrap_err();
    assert!(
        matches!(&err, StoreError::Io { op: "create", path, .. } if path.ends_with(&names[0])),
        "{err:?}"
    );
    assert_eq!(wal.next_seq(), 6, "the unsynced records are forgotten");
    assert_eq!(
        fs::metadata(&segment).unwrap().len(),
        len_before,
        "cut back"
    );
    assert_eq!(wal.bytes(), len_before);
    assert_holds(&wal, 1, 5);
    for n in &names {
        fs::remove_dir(dir.path().join("wal").join(n)).unwrap();
    }
    fill(&mut wal, 39, 1000);
    assert_holds(&wal, 1, 39);
    drop(wal);
    let (wal, rec) = Wal::open(dir.path(), small(1024)).unwrap();
    assert_eq!(rec.torn_bytes_cut, 0);
    assert_holds(&wal, 1, 39);
}

/// The segment files that appending records `from..=to` to a segment holding `len`
/// bytes creates, following the rule "a record starts a new segment once the current
/// one holds at least `segment_bytes`".
fn planned_segments(from: u64, to: u64, segment_bytes: u64, len: u64) -> Vec<String> {
    let mut names = Vec::new();
    let mut len = len;
    for seq in from..=to {
        if len >= segment_bytes {
            names.push(format!("{seq:020}.seg"));
            len = 0;
        }
        len += (HEADER_LEN + payload(seq).len()) as u64;
    }
    names
}

#[test]
fn the_directory_lock_excludes_a_second_holder() {
    let dir = TestDir::new("lock");
    let lock = DirLock::acquire(dir.path()).unwrap();
    for _ in 0..2 {
        let err = DirLock::acquire(dir.path()).unwrap_err();
        assert!(matches!(&err, StoreError::Locked { path } if path == lock.path()));
        assert!(err
            .to_string()
            .contains("another tidemark is using the data directory"));
    }
    // Another process is refused too.
    let held = Command::new("flock")
        .args(["--nonblock", "--exclusive"])
        .arg(lock.path())
        .arg("true")
        .status();
    if let Ok(status) = held {
        assert!(!status.success(), "flock(1) got a lock that is held");
    }
    drop(lock);
    DirLock::acquire(dir.path()).unwrap();
}

#[test]
fn checkpoint_files_are_replaced_whole() {
    let dir = TestDir::new("checkpoint");
    assert_eq!(read_if_exists(dir.path(), "checkpoint").unwrap(), None);
    write_atomic(dir.path(), "checkpoint", &vec![1u8; 100_000]).unwrap();
    write_atomic(dir.path(), "checkpoint", b"small").unwrap();
    assert_eq!(
        read_if_exists(dir.path(), "checkpoint").unwrap().as_deref(),
        Some(&b"small"[..])
    );
}

#[test]
fn error_messages_say_what_to_do() {
    let corrupt = StoreError::Corrupt {
        file: PathBuf::from("/data/wal/00000000000000000001.seg"),
        offset: 77,
        detail: "a record's checksum does not match its contents".into(),
    };
    assert_eq!(
        corrupt.to_string(),
        "/data/wal/00000000000000000001.seg is damaged at byte 77 (a record's checksum does not \
         match its contents); run `tidemark repair --data /data` to keep everything before the \
         damage and drop the rest"
    );
    let missing = StoreError::MissingSegment {
        after: PathBuf::from("/data/wal/00000000000000000001.seg"),
        expected_seq: 90,
        found: Some(PathBuf::from("/data/wal/00000000000000000180.seg")),
    };
    let msg = missing.to_string();
    assert!(msg.contains("should start at record 90"), "{msg}");
    assert!(msg.contains("restore it from a backup"), "{msg}");
    let full = StoreError::Io {
        op: "write",
        path: PathBuf::from("/data/wal/x.seg"),
        source: std::io::Error::from(std::io::ErrorKind::StorageFull),
    };
    assert_eq!(
        full.to_string(),
        "could not write /data/wal/x.seg: the disk (or the file size limit) is full; free some \
         space, then try again"
    );
    let locked = StoreError::Locked {
        path: PathBuf::from("/data/LOCK"),
    };
    assert!(locked.to_string().starts_with(
        "another tidemark is using the data directory /data (/data/LOCK is locked); stop that process"
    ));
}

// ---- A full disk -------------------------------------------------------------------------

const FSIZE_CHILD: &str = "TIDEMARK_WAL_TEST_FSIZE_CHILD";

/// Record `seq` of the disk-full tests: 200 bytes, so 217 on disk.
fn full_payload(seq: u64) -> Vec<u8> {
    vec![(seq % 251) as u8; 200]
}

fn append_n(wal: &mut Wal, n: u64) {
    for _ in 0..n {
        let seq = wal.next_seq();
        wal.append(1, &full_payload(seq)).unwrap();
    }
}

fn assert_full_records(wal: &Wal, last: u64) {
    let got = read_all(wal, 0);
    assert_eq!(got.len() as u64, last);
    for (i, (seq, _, p)) in got.iter().enumerate() {
        assert_eq!(*seq, i as u64 + 1);
        assert_eq!(*p, full_payload(*seq));
    }
}

/// Sets this process's file size limit; only ever called in the child, since the limit (and
/// ignoring SIGXFSZ) would otherwise reach every test of the binary.
fn set_file_size_limit(bytes: Option<u64>) {
    assert!(
        std::env::var_os(FSIZE_CHILD).is_some(),
        "the file size limit is set only in the child process"
    );
    let limit = libc::rlimit {
        rlim_cur: bytes.map_or(libc::RLIM_INFINITY, |b| b as libc::rlim_t),
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain system calls with valid arguments.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
}

/// Runs in a child process: the file size limit is process-wide.
fn file_size_limit_child(dir: &Path) {
    let options = small(4096);
    let (mut wal, _) = Wal::open(dir, options.clone()).unwrap();
    append_n(&mut wal, 18); // 18 * 217 = 3906 bytes, one segment
    wal.sync().unwrap();
    let first = segment_files(dir)[0].clone();

    // Record 19 fits in the first segment (4123 bytes); record 20 starts a second
    // one and is too big for the limit: the batch fails after its first part was
    // made durable.
    set_file_size_limit(Some(4200));
    append_n(&mut wal, 1);
    wal.append(1, &[7u8; 5000]).unwrap();
    let err = wal.sync().unwrap_err();
    let second = dir.join("wal").join(format!("{:020}.seg", 20));
    assert!(
        matches!(&err, StoreError::Io { op: "write", path, source }
            if *path == second && source.kind() == std::io::ErrorKind::FileTooLarge),
        "{err:?}"
    );
    assert!(err.to_string().contains("free some space"), "{err}");
    assert_eq!(wal.next_seq(), 19, "unsynced records are forgotten");
    assert_eq!(fs::metadata(&first).unwrap().len(), 3906, "cut back");
    assert!(!second.exists(), "the half-written segment is removed");
    {
        // What a restart would see now: exactly the synced records.
        let (view, rec) = Wal::open(dir, options.clone()).unwrap();
        assert_eq!((rec.records, rec.torn_bytes_cut), (18, 0));
        assert_full_records(&view, 18);
    }

    // Still limited, but small syncs fit again.
    append_n(&mut wal, 1);
    wal.sync().unwrap();
    append_n(&mut wal, 1);
    assert_eq!(wal.sync().unwrap().segments_created, 1);

    // A failure while appending to an existing segment.
    set_file_size_limit(Some(3000));
    append_n(&mut wal, 30);
    let err = wal.sync().unwrap_err();
    assert!(
        matches!(&err, StoreError::Io { path, .. } if *path == second),
        "{err:?}"
    );
    assert_eq!(fs::metadata(&second).unwrap().len(), 217);
    assert_eq!(wal.next_seq(), 21);

    // Space is back: the log goes on.
    set_file_size_limit(None);
    append_n(&mut wal, 30);
    assert_eq!(wal.sync().unwrap().records, 30);
    assert_full_records(&wal, 50);
}

#[test]
fn a_file_size_limit_fails_the_sync_cleanly_and_the_log_recovers() {
    if let Some(dir) = std::env::var_os(FSIZE_CHILD) {
        file_size_limit_child(Path::new(&dir));
        return;
    }
    let dir = TestDir::new("fsize");
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            // The test's path in the integration binary: its module, then its name.
            "wal::a_file_size_limit_fails_the_sync_cleanly_and_the_log_recovers",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(FSIZE_CHILD, dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
    let (wal, rec) = Wal::open(dir.path(), small(4096)).unwrap();
    assert_eq!((rec.records, rec.torn_bytes_cut), (50, 0));
    assert_full_records(&wal, 50);
}

/// A real full disk: a 256 KiB tmpfs. Skipped (with a note) where mounting is not allowed.
#[test]
fn a_full_tmpfs_fails_the_sync_cleanly_and_the_log_recovers() {
    struct Mount(PathBuf);
    impl Drop for Mount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
            let _ = fs::remove_dir(&self.0);
        }
    }
    let dir = TestDir::new("tmpfs");
    let point = dir.path().join("mnt");
    fs::create_dir(&point).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&point)
        .output();
    if !mounted.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: cannot mount a tmpfs here ({mounted:?}); the file size limit test covers this");
        return;
    }
    let mount = Mount(point.clone());
    let data = point.join("data");
    let filler = point.join("filler");
    let (mut wal, _) = Wal::open(&data, small(16 * 1024)).unwrap();
    append_n(&mut wal, 20);
    wal.sync().unwrap();
    // Fill what is left of the file system.
    let mut f = fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 4096];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    drop(f);

    append_n(&mut wal, 100);
    let err = wal.sync().unwrap_err();
    assert!(
        matches!(&err, StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull),
        "{err:?}"
    );
    assert!(err.to_string().contains("free some space"), "{err}");
    assert_eq!(wal.next_seq(), 21);
    {
        let (view, rec) = Wal::open(&data, small(16 * 1024)).unwrap();
        assert_eq!((rec.records, rec.torn_bytes_cut), (20, 0));
        assert_full_records(&view, 20);
    }
    fs::remove_file(&filler).unwrap();
    append_n(&mut wal, 100);
    assert_eq!(wal.sync().unwrap().records, 100);
    drop(wal);
    let (wal, rec) = Wal::open(&data, small(16 * 1024)).unwrap();
    assert_eq!(rec.records, 120);
    assert_full_records(&wal, 120);
    drop(wal);
    drop(mount);
}

// ---- Measurement (not a timed test) ------------------------------------------------------

/// Append+sync throughput for 200-byte records synced every 1,000, and sync latency.
/// Run: `cargo test --release --test integration -- --ignored --nocapture wal::measure`
/// (set TIDEMARK_WAL_MEASURE_DIR to measure another disk than the temp directory's).
#[test]
#[ignore = "a measurement; run it by hand: cargo test --release --test integration -- --ignored --nocapture wal::measure"]
fn measure_append_sync_throughput_and_latency() {
    use std::time::{Duration, Instant};
    let scratch = TestDir::new("measure");
    let base = std::env::var_os("TIDEMARK_WAL_MEASURE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| scratch.path().to_path_buf());
    let dir = base.join(format!("tidemark-wal-measure-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let percentile = |v: &mut Vec<Duration>, p: f64| {
        v.sort();
        #[allow(clippy::cast_possible_truncation)] // a rounded index below v.len()
        let i = ((v.len() - 1) as f64 * p).round() as usize;
        v[i]
    };

    let (mut wal, _) = Wal::open(&dir, WalOptions::default()).unwrap();
    let record = vec![b'x'; 200];
    let (records, per_sync) = (300_000u64, 1_000u64);
    let mut sync_wall = Vec::new();
    let mut fsync = Vec::new();
    let start = Instant::now();
    for i in 1..=records {
        wal.append(1, &record).unwrap();
        if i % per_sync == 0 {
            let t = Instant::now();
            let stats = wal.sync().unwrap();
            sync_wall.push(t.elapsed());
            fsync.push(stats.fsync);
        }
    }
    let elapsed = start.elapsed();
    let bytes = wal.bytes();
    println!(
        "batched: {records} records of 200 B, a sync every {per_sync}: {:.2} s, {:.0} records/s, {:.1} MB/s on disk, {} segments",
        elapsed.as_secs_f64(),
        records as f64 / elapsed.as_secs_f64(),
        bytes as f64 / elapsed.as_secs_f64() / 1e6,
        wal.segments()
    );
    println!(
        "batched: sync() p50 {:?} p99 {:?} max {:?}; of which fsync p50 {:?} p99 {:?}",
        percentile(&mut sync_wall, 0.5),
        percentile(&mut sync_wall, 0.99),
        percentile(&mut sync_wall, 1.0),
        percentile(&mut fsync, 0.5),
        percentile(&mut fsync, 0.99),
    );

    let mut single = Vec::new();
    for _ in 0..1_000 {
        wal.append(1, &record).unwrap();
        let t = Instant::now();
        wal.sync().unwrap();
        single.push(t.elapsed());
    }
    println!(
        "one record per sync: p50 {:?} p99 {:?} max {:?}",
        percentile(&mut single, 0.5),
        percentile(&mut single, 0.99),
        percentile(&mut single, 1.0),
    );
    drop(wal);
    let t = Instant::now();
    let (wal, rec) = Wal::open(&dir, WalOptions::default()).unwrap();
    let opened = t.elapsed();
    let t = Instant::now();
    let n = wal.replay(0, |_, _, _| Ok::<(), ()>(())).unwrap();
    println!(
        "reopen of {} records ({:.1} MB): open {:?}, replay {:?} ({n} records)",
        rec.records,
        rec.bytes as f64 / 1e6,
        opened,
        t.elapsed()
    );
    let _ = fs::remove_dir_all(&dir);
}
