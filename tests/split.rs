//! `tidemark compute` over a log split across the processes of a cluster, each reading its own
//! part with `--input`: the snapshot is the whole log's, however the parts interleave, and a
//! process lost mid-way stops the others with an error that says so; only process 0 writes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common;
use crate::common::cluster::{cluster_args, loopback_addresses};
use crate::common::server::{binary, compute, generated};

/// A file of the test's own, removed at the end.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tidemark-split-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn compute_process(peers: &[String], process: usize, input: Option<&Path>) -> Command {
    let mut cmd = Command::new(binary());
    cmd.arg("compute")
        .arg("--quiet")
        .args(cluster_args(peers, process));
    if let Some(i) = input {
        cmd.arg("--input").arg(i);
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    cmd
}

/// Three parts of several chunks each: runs of lines dealt round the parts (so that a person's
/// events lie in every part), and a tenth of the log repeated in another part, so that the
/// same event ids reach process 0 from two processes.
#[test]
fn a_log_split_in_interleaved_parts_gives_the_whole_logs_snapshot() {
    let lines = generated(6000, 30);
    assert!(
        lines.len() > 3 * 16_384,
        "every part takes more than one chunk"
    );
    let mut parts: Vec<Vec<String>> = vec![Vec::new(); 3];
    for (i, run) in lines.chunks(5_000).enumerate() {
        parts[i % 3].extend(run.iter().cloned());
    }
    let repeated: Vec<String> = lines.iter().step_by(10).cloned().collect();
    parts[2].extend(repeated.iter().cloned());
    let mut whole = lines.clone();
    whole.extend(repeated);
    let expected = compute(&whole, None);

    let files: Vec<PathBuf> = parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let f = scratch(&format!("interleaved-{i}.ndjson"));
            std::fs::write(&f, part.join("\n") + "\n").unwrap();
            f
        })
        .collect();
    let out = scratch("interleaved.json");
    let peers = loopback_addresses(3);
    let mut others: Vec<Child> = (1..3)
        .map(|p| compute_process(&peers, p, Some(&files[p])).spawn().unwrap())
        .collect();
    let mut zero = compute_process(&peers, 0, Some(&files[0]));
    zero.arg("--output").arg(&out);
    let done = zero.output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    for other in &mut others {
        let o = common::ended(other, Duration::from_secs(60), "a process of the cluster");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let actual: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let diffs = common::differences(&expected, &actual);
    assert!(
        diffs.is_empty(),
        "{} differences: {:?}",
        diffs.len(),
        &diffs[..diffs.len().min(10)]
    );
    assert_eq!(
        expected["events"], actual["events"],
        "the same duplicates and rejections"
    );
    assert!(actual["events"]["duplicates"].as_u64().unwrap() >= (lines.len() / 10) as u64);
    for f in files.iter().chain([&out]) {
        let _ = std::fs::remove_file(f);
    }
}

/// A process whose part is still being read (from a pipe that stays open) is SIGKILLed: the
/// other two end with an error, process 0 naming a lost process, and write nothing.
#[test]
fn a_process_lost_mid_part_stops_the_others_with_a_clear_error() {
    let lines = generated(300, 10);
    let part = scratch("lost-0.ndjson");
    std::fs::write(&part, lines.join("\n") + "\n").unwrap();
    let out = scratch("lost.json");
    let peers = loopback_addresses(3);
    let mut piped = compute_process(&peers, 1, Some(Path::new("-")));
    let mut one = piped.stdin(Stdio::piped()).spawn().unwrap();
    let mut stdin = one.stdin.take().unwrap();
    // More than a chunk, so that process 1 has sent part of its part when it is killed.
    for line in lines.iter().cycle().take(20_000) {
        writeln!(stdin, "{line}").unwrap();
    }
    stdin.flush().unwrap();
    let mut two = compute_process(&peers, 2, None).spawn().unwrap();
    let mut zero = compute_process(&peers, 0, Some(&part));
    zero.arg("--output").arg(&out);
    let mut zero = zero.spawn().unwrap();
    // Process 0 has taken process 1's first chunk and waits for the rest.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        zero.try_wait().unwrap().is_none(),
        "process 0 waits for process 1's part"
    );
    one.kill().unwrap();
    let _ = one.wait();
    drop(stdin);
    let zero = common::ended(&mut zero, Duration::from_secs(30), "process 0");
    let message = String::from_utf8_lossy(&zero.stderr);
    assert!(!zero.status.success());
    assert!(
        message.contains("a process of the cluster was lost")
            && message.contains("run every process again"),
        "{message}"
    );
    let two = common::ended(&mut two, Duration::from_secs(30), "process 2");
    assert!(
        !two.status.success(),
        "{}",
        String::from_utf8_lossy(&two.stderr)
    );
    assert!(!out.exists(), "nothing is written");
    let _ = std::fs::remove_file(part);
}

/// A process other than 0 is refused what only process 0 writes, with the flag named, before
/// it waits for anyone.
#[test]
fn a_process_other_than_0_refuses_to_write_output() {
    let peers = loopback_addresses(2);
    for flag in ["--output", "--rejects", "--firings"] {
        let out = Command::new(binary())
            .arg("compute")
            .args(cluster_args(&peers, 1))
            .args([flag, "somewhere.json"])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag}: {said}");
        assert!(
            said.contains(flag) && said.contains("process 0"),
            "{flag}: {said}"
        );
        assert!(!said.contains("waiting"), "{flag}: {said}");
    }
}
