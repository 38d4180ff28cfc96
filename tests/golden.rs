//! The golden contract: `tidemark compute` on each set of tests/golden matches its expected snapshot.

use std::path::PathBuf;
use std::process::Command;

use crate::common;
use crate::common::cluster::loopback_addresses;

fn golden(name: &str) {
    golden_in(name, 1, false);
}

/// The golden contract, with the dataflow spread over `processes` processes on loopback.
/// Process 0 writes the output; it reads the whole log, or with `split` each process reads its
/// own part (the log cut in `processes` runs of lines, process 0 the first).
fn golden_in(name: &str, processes: usize, split: bool) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let out = std::env::temp_dir().join(format!(
        "tidemark-golden-{name}-{processes}-{}.json",
        std::process::id()
    ));
    let cfg = dir.join(format!("{name}.toml"));
    let peers = loopback_addresses(processes).join(",");
    let cluster = |cmd: &mut Command, process: usize| {
        if processes > 1 {
            cmd.args(["-w", "1", "--processes", &processes.to_string()])
                .args(["--process", &process.to_string(), "--peers", &peers]);
        }
        if cfg.exists() {
            cmd.arg("--config").arg(&cfg);
        }
    };
    let log = dir.join(format!("{name}.ndjson"));
    let parts: Vec<PathBuf> = if split {
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let per = lines.len().div_ceil(processes);
        lines
            .chunks(per)
            .enumerate()
            .map(|(i, chunk)| {
                let part = out.with_extension(format!("part{i}"));
                std::fs::write(&part, chunk.join("\n") + "\n").unwrap();
                part
            })
            .collect()
    } else {
        vec![log]
    };
    assert!(parts.len() == processes || !split, "one part per process");
    let others: Vec<std::process::Child> = (1..processes)
        .map(|process| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidemark"));
            cmd.args(["compute", "--quiet"]);
            if let Some(part) = parts.get(process) {
                cmd.arg("--input").arg(part);
            }
            cluster(&mut cmd, process);
            cmd.stdout(std::process::Stdio::null());
            cmd.spawn().expect("tidemark runs")
        })
        .collect();
    let rejects = out.with_extension("rejects");
    let firings = out.with_extension("firings");
    let expected_firings = dir.join(format!("{name}.firings.ndjson"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidemark"));
    cmd.arg("compute")
        .arg("--input")
        .arg(&parts[0])
        .arg("--output")
        .arg(&out)
        .arg("--rejects")
        .arg(&rejects)
        .arg("--quiet");
    if expected_firings.exists() {
        cmd.arg("--firings").arg(&firings);
    }
    cluster(&mut cmd, 0);
    let status = cmd.status().expect("tidemark runs");
    assert!(status.success(), "tidemark compute failed on {name}");
    for mut other in others {
        let what = format!("a process of the cluster, after process 0 on {name},");
        let status = common::ended(&mut other, std::time::Duration::from_secs(60), &what).status;
        assert!(
            status.success(),
            "a process of the cluster failed on {name}"
        );
    }
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(format!("{name}.expected.json"))).unwrap(),
    )
    .unwrap();
    let actual: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let diffs = common::differences(&expected, &actual);
    assert!(
        diffs.is_empty(),
        "{name}: {} differences, first ones:\n{}",
        diffs.len(),
        diffs
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    if expected_firings.exists() {
        let diffs = common::firing_differences(
            &std::fs::read_to_string(&expected_firings).unwrap(),
            &std::fs::read_to_string(&firings).unwrap(),
        );
        assert!(
            diffs.is_empty(),
            "{name} firings: {} differences, first ones:\n{}",
            diffs.len(),
            diffs
                .iter()
                .take(20)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
        let _ = std::fs::remove_file(&firings);
    }
    assert_eq!(expected["timezone"], actual["timezone"]);
    assert_eq!(expected["clock"], actual["clock"]);
    // Every rejected line is in the dead-letter file, with its reason.
    let rejected = std::fs::read_to_string(&rejects).unwrap();
    let total: u64 = expected["events"]["rejected"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(rejected.lines().count() as u64, total);
    let lines_in: Vec<(String, usize)> = parts
        .iter()
        .map(|p| {
            let n = std::fs::read(p).unwrap().split(|b| *b == b'\n').count() - 1;
            (p.display().to_string(), n)
        })
        .collect();
    for line in rejected.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        // Each names the file it was read from (a part, when split) and its line there.
        let (source, index) = (v["source"].as_str().unwrap(), v["index"].as_u64().unwrap());
        assert!(
            lines_in
                .iter()
                .any(|(p, n)| p == source && (1..=*n as u64).contains(&index)),
            "{source}:{index} is no line of {lines_in:?}"
        );
        assert!(
            v["reason"].as_str().is_some_and(|r| !r.is_empty()) && v["input"].is_string(),
            "{line}"
        );
    }
    let _ = std::fs::remove_file(out);
    let _ = std::fs::remove_file(rejects);
    if split {
        for part in parts {
            let _ = std::fs::remove_file(part);
        }
    }
}

#[test]
fn golden_basic() {
    golden("basic");
}

#[test]
fn golden_linked() {
    golden("linked");
}

#[test]
fn golden_edge() {
    golden("edge");
}

#[test]
fn golden_actions() {
    golden("actions");
}

#[test]
fn golden_actions_edge() {
    golden("actions-edge");
}

/// One dataflow over two processes (timely's multi-process mode) gives the rows and firings of
/// one process, on the sets with identity merges and with rules and alerts.
#[test]
fn golden_linked_over_two_processes() {
    golden_in("linked", 2, false);
}

#[test]
fn golden_actions_over_two_processes() {
    golden_in("actions", 2, false);
}

#[test]
fn golden_actions_edge_over_three_processes() {
    golden_in("actions-edge", 3, false);
}

/// A log split across the processes, each reading its own part with `--input`, gives the rows,
/// firings and dead letters of the whole log read by one.
#[test]
fn golden_actions_split_over_three_processes() {
    golden_in("actions", 3, true);
}

#[test]
fn golden_edge_split_over_two_processes() {
    golden_in("edge", 2, true);
}

/// Processes started with different configurations cannot build one dataflow: each says so
/// and fails, instead of waiting for the other.
#[test]
fn processes_started_unlike_refuse_to_run() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let peers = loopback_addresses(2).join(",");
    let out = std::env::temp_dir().join(format!("tidemark-unlike-{}.json", std::process::id()));
    let start = |process: &str, config: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidemark"));
        cmd.args([
            "compute",
            "-w",
            "1",
            "--processes",
            "2",
            "--process",
            process,
        ])
        .args(["--peers", &peers])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
        if let Some(name) = config {
            cmd.arg("--config").arg(dir.join(name));
        }
        if process == "0" {
            cmd.arg("--input")
                .arg(dir.join("actions.ndjson"))
                .arg("--output")
                .arg(&out);
        }
        cmd.spawn().expect("tidemark runs")
    };
    let first = start("0", Some("actions.toml"));
    let second = start("1", None);
    for child in [first, second] {
        let done = child.wait_with_output().expect("the process ran");
        let stderr = String::from_utf8_lossy(&done.stderr);
        assert!(
            !done.status.success(),
            "a process of an unlike cluster succeeded"
        );
        assert!(
            stderr.contains("not started alike"),
            "the error says what differs: {stderr}"
        );
    }
    assert!(!out.exists(), "nothing is written");
}

#[test]
fn edge_rejections_by_reason() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let out = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["compute", "--quiet", "--config"])
        .arg(dir.join("edge.toml"))
        .arg("--input")
        .arg(dir.join("edge.ndjson"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let actual: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("edge.expected.json")).unwrap())
            .unwrap();
    assert_eq!(actual["events"]["rejected"], expected["events"]["rejected"]);
}
