//! The golden contract: `tidemark compute` on each set of tests/golden matches its expected snapshot.

use std::path::PathBuf;
use std::process::Command;

use crate::common;

fn golden(name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let out = std::env::temp_dir().join(format!(
        "tidemark-golden-{name}-{}.json",
        std::process::id()
    ));
    let rejects = out.with_extension("rejects");
    let firings = out.with_extension("firings");
    let expected_firings = dir.join(format!("{name}.firings.ndjson"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidemark"));
    cmd.arg("compute")
        .arg("--input")
        .arg(dir.join(format!("{name}.ndjson")))
        .arg("--output")
        .arg(&out)
        .arg("--rejects")
        .arg(&rejects)
        .arg("--quiet");
    if expected_firings.exists() {
        cmd.arg("--firings").arg(&firings);
    }
    let cfg = dir.join(format!("{name}.toml"));
    if cfg.exists() {
        cmd.arg("--config").arg(cfg);
    }
    let status = cmd.status().expect("tidemark runs");
    assert!(status.success(), "tidemark compute failed on {name}");
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
    for line in rejected.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            v["reason"].as_str().is_some_and(|r| !r.is_empty()) && v["input"].is_string(),
            "{line}"
        );
    }
    let _ = std::fs::remove_file(out);
    let _ = std::fs::remove_file(rejects);
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
