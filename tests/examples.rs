//! The library examples of `examples/`, run as a user runs them: what they print equals
//! `tidemark compute` on the same log.

use std::collections::BTreeMap;
use std::process::Command;

use crate::common::server::{binary, compute, generated};

/// The path of an example built beside the `tidemark` binary (`cargo test` builds them).
pub(crate) fn example(name: &str) -> std::path::PathBuf {
    let release = std::path::Path::new(binary())
        .parent()
        .expect("the binary lives in target/<profile>/");
    let path = release.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: cargo test builds the examples, `cargo build --examples` does too",
        path.display()
    );
    path
}

#[test]
fn embed_prints_the_dau_that_compute_computes() {
    let _busy = crate::common::busy();
    let lines = generated(3_000, 20);
    let dir = std::env::temp_dir().join(format!("tidemark-embed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("log.ndjson");
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let out = Command::new(example("embed"))
        .arg(&log)
        .output()
        .expect("the embed example runs");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "embed failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let printed: BTreeMap<String, i64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("final dau "))
        .map(|l| {
            let (day, value) = l.split_once(' ').expect("DAY VALUE");
            (day.to_string(), value.parse().expect("a count"))
        })
        .collect();
    // Changes were printed as they came, before the final rows.
    let changes = text.lines().filter(|l| l.starts_with("dau ")).count();
    assert!(changes >= printed.len(), "{changes} changes printed");
    let snapshot = compute(&lines, None);
    let expected: BTreeMap<String, i64> = snapshot["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["metric"] == "dau")
        .map(|r| {
            let day = r["dims"]["day"].as_str().unwrap().to_string();
            (day, r["value"].as_i64().unwrap())
        })
        .collect();
    assert!(expected.len() >= 20, "{} days of dau", expected.len());
    assert_eq!(printed, expected);
}

#[test]
fn custom_source_counts_the_new_users_that_compute_counts() {
    let _busy = crate::common::busy();
    let out = Command::new(example("custom_source"))
        .output()
        .expect("the custom_source example runs");
    assert!(
        out.status.success(),
        "custom_source failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let printed: BTreeMap<String, i64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("new users "))
        .map(|l| {
            let (day, value) = l.split_once(' ').expect("DAY VALUE");
            (
                day.trim_matches('"').to_string(),
                value.parse().expect("a count"),
            )
        })
        .collect();
    assert!(
        text.contains("committed through offset Some("),
        "every batch was answered: {text}"
    );
    // The example consumes the log `tidemark generate` writes with these options.
    let snapshot = compute(&generated(2_000, 14), None);
    let expected: BTreeMap<String, i64> = snapshot["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["metric"] == "new_users")
        .map(|r| {
            let day = r["dims"]["day"].as_str().unwrap().to_string();
            (day, r["value"].as_i64().unwrap())
        })
        .collect();
    assert_eq!(expected.len(), 14);
    assert_eq!(printed, expected);
}

#[test]
fn subscribe_sse_keeps_the_rows_the_server_holds() {
    let _busy = crate::common::busy();
    let server = crate::common::server::Server::start(&[], &[]);
    let lines = generated(1_500, 10);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rows = rt.block_on(async {
        let client = reqwest::Client::new();
        let body = lines.join("\n") + "\n";
        let resp = client
            .post(server.url("/v1/events"))
            .header("Content-Type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .expect("server answers");
        assert!(
            resp.status().is_success(),
            "ingest answered {}",
            resp.status()
        );
        crate::common::server::get_json(
            &client,
            &server.url("/v1/rows?metric=dau&metric=new_users"),
        )
        .await
    });
    // The first progress mark follows the rows as of subscribing: every event posted above.
    let out = Command::new(example("subscribe_sse"))
        .args([&server.url(""), "dau", "new_users", "--marks", "1"])
        .output()
        .expect("the subscribe_sse example runs");
    assert!(
        out.status.success(),
        "subscribe_sse failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let printed: BTreeMap<(String, String), String> = text
        .lines()
        .filter(|l| !l.starts_with("-- "))
        .map(|l| {
            let (metric, rest) = l.split_once(' ').expect("METRIC DIMS VALUE");
            let (dims, value) = rest.rsplit_once(' ').expect("DIMS VALUE");
            let metric: String = serde_json::from_str(metric).unwrap();
            let dims: serde_json::Value = serde_json::from_str(dims).unwrap();
            ((metric, dims.to_string()), value.to_string())
        })
        .collect();
    let expected: BTreeMap<(String, String), String> = rows
        .as_array()
        .or_else(|| rows["rows"].as_array())
        .expect("rows")
        .iter()
        .map(|r| {
            let metric = r["metric"].as_str().unwrap().to_string();
            ((metric, r["dims"].to_string()), r["value"].to_string())
        })
        .collect();
    assert!(expected.len() >= 20, "{} rows", expected.len());
    assert_eq!(printed, expected);
}
