//! The library examples of `examples/`, run as a user runs them: what they print equals
//! `tidemark compute` on the same log.

use std::collections::BTreeMap;
use std::process::Command;

use crate::common::server::{binary, compute, generated, get_json, post_lines};

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

/// Runs an example with `args` and returns its standard output, once it succeeded.
pub(crate) fn run_example(name: &str, args: &[&str]) -> String {
    let out = Command::new(example(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("the {name} example runs: {e}"));
    assert!(
        out.status.success(),
        "{name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The `PREFIX DAY VALUE` lines of an example's output, by day (a day may be quoted).
pub(crate) fn printed_by_day(text: &str, prefix: &str) -> BTreeMap<String, i64> {
    text.lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(|l| {
            let (day, value) = l.split_once(' ').expect("DAY VALUE");
            (
                day.trim_matches('"').to_string(),
                value.parse().expect("a count"),
            )
        })
        .collect()
}

/// A metric's rows of a snapshot, by day.
pub(crate) fn rows_by_day(snapshot: &serde_json::Value, metric: &str) -> BTreeMap<String, i64> {
    snapshot["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["metric"] == metric)
        .map(|r| {
            let day = r["dims"]["day"].as_str().unwrap().to_string();
            (day, r["value"].as_i64().unwrap())
        })
        .collect()
}

#[test]
fn embed_prints_the_dau_that_compute_computes() {
    let _busy = crate::common::busy();
    let lines = generated(3_000, 20);
    let dir = std::env::temp_dir().join(format!("tidemark-embed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("log.ndjson");
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let text = run_example("embed", &[log.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    let printed = printed_by_day(&text, "final dau ");
    // Changes were printed as they came, before the final rows.
    let changes = text.lines().filter(|l| l.starts_with("dau ")).count();
    assert!(changes >= printed.len(), "{changes} changes printed");
    let expected = rows_by_day(&compute(&lines, None), "dau");
    assert!(expected.len() >= 20, "{} days of dau", expected.len());
    assert_eq!(printed, expected);
}

#[test]
fn custom_source_counts_the_new_users_that_compute_counts() {
    let _busy = crate::common::busy();
    let text = run_example("custom_source", &[]);
    assert!(
        text.contains("committed through offset Some("),
        "every batch was answered: {text}"
    );
    // The example consumes the log `tidemark generate` writes with these options.
    let expected = rows_by_day(&compute(&generated(2_000, 14), None), "new_users");
    assert_eq!(expected.len(), 14);
    assert_eq!(printed_by_day(&text, "new users "), expected);
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
        post_lines(&client, &server.url("/v1/events"), &lines).await;
        get_json(&client, &server.url("/v1/rows?metric=dau&metric=new_users")).await
    });
    // The first progress mark follows the rows as of subscribing: every event posted above.
    let url = server.url("");
    let text = run_example("subscribe_sse", &[&url, "dau", "new_users", "--marks", "1"]);
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
    let expected: BTreeMap<(String, String), String> = rows["rows"]
        .as_array()
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
