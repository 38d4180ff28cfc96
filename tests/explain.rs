//! `tidemark explain` agrees with the golden firings: every firing is explained as fired in its
//! group, and the triggers that did not fire name the cancel, the failed condition or the cap.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn explain(rule: &str, key: &str) -> Value {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let out = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["explain", "--config"])
        .arg(dir.join("actions-edge.toml"))
        .arg("--input")
        .arg(dir.join("actions-edge.ndjson"))
        .args(["--rule", rule, "--key", key])
        .output()
        .expect("tidemark explain runs");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn every_golden_firing_is_explained_as_fired_in_its_group() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let firings = std::fs::read_to_string(dir.join("actions-edge.firings.ndjson")).unwrap();
    for line in firings.lines() {
        let f: Value = serde_json::from_str(line).unwrap();
        let why = explain(f["rule"].as_str().unwrap(), f["key"].as_str().unwrap());
        assert_eq!(why["decision"], "fired", "{f} -> {why}");
        let group = why["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["step"] == "group")
            .expect("a group step");
        assert_eq!(group["group"], f["group"], "{why}");
        for k in ["person", "identities", "deadline", "at", "converted"] {
            assert_eq!(why[k], f[k], "{k}: {why}");
        }
    }
}

#[test]
fn triggers_that_did_not_fire_say_why() {
    let why = explain("unpaid", "A1");
    assert_eq!(why["decision"], "cancelled");
    assert_eq!(why["evidence"][1]["event"], "a3");
    // Only the earliest trigger of a key counts; its cancel came from another event.
    let why = explain("unpaid", "A4");
    assert_eq!(why["evidence"][0]["event"], "x-a4a");
    assert_eq!(why["decision"], "cancelled");
    let why = explain("vip", "a42");
    assert_eq!(why["decision"], "if_failed");
    assert_eq!(why["evidence"][1]["bound"], "min_revenue");
    assert_eq!(why["evidence"][1]["value"], "60.00");
    let why = explain("share_once", "a32");
    assert_eq!(why["decision"], "capped");
    assert_eq!(why["evidence"][1]["filled_by"], serde_json::json!(["a31"]));
    let why = explain("unpaid", "nope");
    assert_eq!(why["decision"], "no_trigger");
}
