//! Properties of recovery: no input makes open, replay or repair panic, and after repair the log opens and holds a prefix of what was written.

use std::fs;
use std::path::Path;

use proptest::prelude::*;

use super::segment::file_name;
use super::test_dir::TestDir;
use super::{repair, Wal, WalOptions};

fn options() -> WalOptions {
    WalOptions {
        segment_bytes: 512,
        start_seq: 1,
    }
}

fn records(wal: &Wal) -> Vec<(u64, u8, Vec<u8>)> {
    let mut out = Vec::new();
    wal.replay(0, |seq, kind, p| {
        out.push((seq, kind, p.to_vec()));
        Ok::<(), ()>(())
    })
    .expect("replay right after open reads what open validated");
    out
}

/// Whatever is in `dir`: open and replay may fail but not panic; repair succeeds,
/// after it open succeeds with nothing left to cut, and a second repair finds nothing.
/// Returns the records the repaired log holds.
fn survive(dir: &Path) -> Vec<(u64, u8, Vec<u8>)> {
    let before = match Wal::open(dir, options()) {
        Ok((wal, _)) => Some(records(&wal)),
        Err(_) => None,
    };
    let report = repair(dir).expect("repair only fails on I/O errors");
    let (wal, rec) = Wal::open(dir, options()).expect("a repaired log opens");
    assert_eq!(rec.torn_bytes_cut, 0, "repair cut the torn tail too");
    let after = records(&wal);
    assert_eq!(after.len() as u64, report.kept_records);
    if let Some(before) = before {
        assert_eq!(
            before, after,
            "repair keeps everything a successful open kept"
        );
    }
    drop(wal);
    let again = repair(dir).unwrap();
    assert_eq!(again.damage, None);
    after
}

/// A valid log of `payloads` in small segments; returns the records written.
fn write_log(dir: &Path, payloads: &[(u8, Vec<u8>)]) -> Vec<(u64, u8, Vec<u8>)> {
    let (mut wal, _) = Wal::open(dir, options()).unwrap();
    let mut out = Vec::new();
    for (i, (kind, p)) in payloads.iter().enumerate() {
        let seq = wal.append(*kind, p).unwrap();
        out.push((seq, *kind, p.clone()));
        if i % 5 == 4 {
            wal.sync().unwrap();
        }
    }
    wal.sync().unwrap();
    out
}

fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[derive(Clone, Debug)]
enum Harm {
    Truncate { file: usize, at: usize },
    Flip { file: usize, at: usize, bit: u8 },
    Delete { file: usize },
    Append { file: usize, bytes: Vec<u8> },
}

fn harm() -> impl Strategy<Value = Harm> {
    prop_oneof![
        (any::<usize>(), any::<usize>()).prop_map(|(file, at)| Harm::Truncate { file, at }),
        (any::<usize>(), any::<usize>(), 0u8..8).prop_map(|(file, at, bit)| Harm::Flip {
            file,
            at,
            bit
        }),
        any::<usize>().prop_map(|file| Harm::Delete { file }),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..40)
        )
            .prop_map(|(file, bytes)| Harm::Append { file, bytes }),
    ]
}

fn apply(dir: &Path, harm: &Harm) {
    let files = segments(dir);
    if files.is_empty() {
        return;
    }
    let pick = |i: usize| &files[i % files.len()];
    match harm {
        Harm::Truncate { file, at } => {
            let path = pick(*file);
            let bytes = fs::read(path).unwrap();
            fs::write(path, &bytes[..at % (bytes.len() + 1)]).unwrap();
        }
        Harm::Flip { file, at, bit } => {
            let path = pick(*file);
            let mut bytes = fs::read(path).unwrap();
            if !bytes.is_empty() {
                let i = at % bytes.len();
                bytes[i] ^= 1 << bit;
                fs::write(path, &bytes).unwrap();
            }
        }
        Harm::Delete { file } => fs::remove_file(pick(*file)).unwrap(),
        Harm::Append { file, bytes } => {
            let path = pick(*file);
            let mut all = fs::read(path).unwrap();
            all.extend_from_slice(bytes);
            fs::write(path, &all).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    /// Arbitrary bytes as a segment file, under any name.
    #[test]
    fn arbitrary_segment_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        name in prop_oneof![Just(1u64), any::<u64>()],
    ) {
        let dir = TestDir::new("prop-bytes");
        fs::create_dir_all(dir.path().join("wal")).unwrap();
        fs::write(dir.path().join("wal").join(file_name(name)), &bytes).unwrap();
        let kept = survive(dir.path());
        for (i, (seq, _, _)) in kept.iter().enumerate() {
            prop_assert_eq!(*seq, name + i as u64);
        }
    }

    /// A valid log harmed by truncation, bit flips, deletion or garbage: the
    /// repaired log is always a prefix of what was written.
    #[test]
    fn a_harmed_log_repairs_to_a_prefix(
        payloads in proptest::collection::vec(
            (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..120)), 1..40),
        harms in proptest::collection::vec(harm(), 1..3),
    ) {
        let dir = TestDir::new("prop-harm");
        let written = write_log(dir.path(), &payloads);
        for h in &harms {
            apply(dir.path(), h);
        }
        // Whatever open accepts is a prefix of what was written (a harmed first
        // segment can even leave a later one to start the log).
        if let Ok((wal, _)) = Wal::open(dir.path(), options()) {
            let got = records(&wal);
            if let Some(first) = got.first() {
                let skip = usize::try_from(first.0 - 1).unwrap();
                prop_assert!(got.len() + skip <= written.len());
                prop_assert_eq!(&written[skip..skip + got.len()], &got[..]);
            }
        }
        let kept = survive(dir.path());
        if let Some(first) = kept.first() {
            let skip = usize::try_from(first.0 - 1).unwrap();
            prop_assert!(kept.len() + skip <= written.len());
            prop_assert_eq!(&written[skip..skip + kept.len()], &kept[..]);
        }
    }

    /// A single truncation of the last segment is always recovered by open alone.
    #[test]
    fn truncating_the_last_segment_anywhere_opens(
        payloads in proptest::collection::vec(
            (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..120)), 1..30),
        at in any::<usize>(),
    ) {
        let dir = TestDir::new("prop-trunc");
        let written = write_log(dir.path(), &payloads);
        let last = segments(dir.path()).pop().unwrap();
        let bytes = fs::read(&last).unwrap();
        fs::write(&last, &bytes[..at % (bytes.len() + 1)]).unwrap();
        let (wal, _) = Wal::open(dir.path(), options()).unwrap();
        let got = records(&wal);
        prop_assert_eq!(&written[..got.len()], &got[..]);
    }
}
