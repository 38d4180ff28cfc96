//! Helpers shared by the integration tests: running logs through tidemark and comparing snapshots.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde_json::Value;
use tidemark::config::Config;
use tidemark::pipeline::{Finished, Pipeline, PipelineOptions};
use tidemark::plan::Plan;

/// The machine, as the tests share it: libtest runs any two tests of the binary side by side,
/// so a test that keeps a core busy could slow a latency bound measured beside it. A test
/// that measures latency holds [`quiet`] (alone against every [`busy`] one); a test that
/// keeps cores busy holds [`busy`] (beside others like it).
static MACHINE: RwLock<()> = RwLock::new(());

/// Held by a test that measures latency: no [`busy`] test runs meanwhile.
pub fn quiet() -> RwLockWriteGuard<'static, ()> {
    MACHINE.write().unwrap_or_else(PoisonError::into_inner)
}

/// Held by a test (or one case of it) that keeps cores busy: no [`quiet`] test runs meanwhile.
pub fn busy() -> RwLockReadGuard<'static, ()> {
    MACHINE.read().unwrap_or_else(PoisonError::into_inner)
}

/// Runs lines through a pipeline with the given batch size and worker count.
pub fn run(
    lines: &[String],
    config: &Config,
    batch: usize,
    workers: usize,
    track: bool,
) -> Finished {
    run_rounds(lines, config, batch, workers, track, None)
}

/// As [`run`], with at most `in_flight` rounds at the dataflow (later batches held and sent
/// together).
pub fn run_rounds(
    lines: &[String],
    config: &Config,
    batch: usize,
    workers: usize,
    track: bool,
    in_flight: Option<usize>,
) -> Finished {
    let plan = Arc::new(Plan::new(config.clone()));
    let options = PipelineOptions {
        workers,
        track_identities: track,
        track_verdicts: false,
        batch_events: batch,
        wall_clock: false,
        in_flight,
    };
    let mut p = Pipeline::with_plan(plan, options).expect("engine starts");
    for l in lines {
        p.offer(l);
    }
    p.finish().expect("engine finishes")
}

/// The sum of a metric's values over its rows in a snapshot (or a `/v1/rows` answer).
pub fn metric_total(snapshot: &Value, metric: &str) -> i64 {
    snapshot["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["metric"] == metric)
        .map(|r| r["value"].as_i64().expect("a count"))
        .sum()
}

/// The `rule/key` of each firing in a firings file (`compute --firings`).
pub fn firing_keys_in(path: &std::path::Path) -> BTreeSet<String> {
    std::fs::read_to_string(path)
        .expect("the firings file")
        .lines()
        .map(|l| {
            let f: Value = serde_json::from_str(l).expect("a firing line");
            format!(
                "{}/{}",
                f["rule"].as_str().expect("rule"),
                f["key"].as_str().expect("key")
            )
        })
        .collect()
}

/// A row's key: `(metric, dims as sorted JSON)`.
pub fn key(metric: &str, dims: &Value) -> (String, String) {
    let dims: BTreeMap<String, Value> = serde_json::from_value(dims.clone()).expect("dims object");
    (metric.to_string(), serde_json::to_string(&dims).unwrap())
}

/// Rows of a snapshot by [`key`].
pub fn rows(snapshot: &Value) -> BTreeMap<(String, String), Value> {
    snapshot["rows"]
        .as_array()
        .expect("rows array")
        .iter()
        .map(|r| {
            let metric = r["metric"].as_str().expect("metric");
            (key(metric, &r["dims"]), r["value"].clone())
        })
        .collect()
}

const MONEY: &[&str] = &["spend", "revenue", "revenue_by_channel"];

fn same(metric: &str, a: &Value, b: &Value) -> bool {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x == y;
    }
    let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) else {
        return false;
    };
    if MONEY.contains(&metric) {
        return (x - y).abs() <= 0.005;
    }
    (x - y).abs() <= 1e-9 * x.abs().max(y.abs()) + 1e-12
}

/// Differences between an expected and an actual snapshot, as readable lines (empty when equal).
pub fn differences(expected: &Value, actual: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if actual["format"] != "tidemark.snapshot.v1" {
        out.push(format!("format: {}", actual["format"]));
    }
    for k in ["accepted", "duplicates"] {
        if expected["events"][k] != actual["events"][k] {
            out.push(format!(
                "events.{k}: expected {}, got {}",
                expected["events"][k], actual["events"][k]
            ));
        }
    }
    let total = |v: &Value| {
        v["events"]["rejected"]
            .as_object()
            .map(|m| m.values().filter_map(Value::as_u64).sum::<u64>())
            .unwrap_or(0)
    };
    if total(expected) != total(actual) {
        out.push(format!(
            "events.rejected: expected {}, got {}",
            total(expected),
            total(actual)
        ));
    }
    let e = rows(expected);
    let a = rows(actual);
    for (k, v) in &e {
        match a.get(k) {
            None => out.push(format!("missing {k:?}: expected {v}")),
            Some(w) if !same(&k.0, v, w) => out.push(format!("wrong {k:?}: expected {v}, got {w}")),
            Some(_) => {}
        }
    }
    for (k, v) in &a {
        if !e.contains_key(k) {
            out.push(format!("extra {k:?}: got {v}"));
        }
    }
    out.extend(alert_differences(expected, actual));
    out
}

/// Differences between the alert transitions of two snapshots, which must agree in order.
pub fn alert_differences(expected: &Value, actual: &Value) -> Vec<String> {
    let (Some(e), a) = (expected.get("alerts"), actual.get("alerts")) else {
        return match actual.get("alerts") {
            Some(a) if a.as_array().is_some_and(|l| !l.is_empty()) => {
                vec![format!("alerts: none expected, got {a}")]
            }
            _ => Vec::new(),
        };
    };
    let Some(a) = a else {
        return vec!["alerts: the snapshot has no \"alerts\"".into()];
    };
    let (e, a) = (e.as_array().unwrap(), a.as_array().expect("alerts array"));
    let mut out = Vec::new();
    if e.len() != a.len() {
        out.push(format!(
            "alerts: {} transitions expected, {} given",
            e.len(),
            a.len()
        ));
    }
    for (i, (x, y)) in e.iter().zip(a).enumerate() {
        let same_keys = ["alert", "state", "bucket"].iter().all(|k| x[k] == y[k]);
        let same_numbers = ["value", "baseline"].iter().all(|k| {
            (x[k].is_null() && y[k].is_null()) || (!x[k].is_null() && same("", &x[k], &y[k]))
        });
        if !(same_keys && same_numbers) {
            out.push(format!("alerts #{i}: expected {x}, got {y}"));
        }
    }
    out
}

/// Differences between two firing logs (JSON Lines), which must agree line by line.
pub fn firing_differences(expected: &str, actual: &str) -> Vec<String> {
    let parse = |text: &str| -> Vec<Value> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("a firing is JSON"))
            .collect()
    };
    let (e, a) = (parse(expected), parse(actual));
    let mut out = Vec::new();
    if e.len() != a.len() {
        out.push(format!("{} firings expected, {} given", e.len(), a.len()));
    }
    for (i, (x, y)) in e.iter().zip(&a).enumerate() {
        if x != y {
            out.push(format!("firing #{i}: expected {x}, got {y}"));
        }
    }
    out
}
pub mod cluster;
pub mod receiver;
pub mod server;

/// Waits for `child` to end, at most `limit` (after which it is killed, and the test fails
/// naming `what`); answers its exit status and standard error (when that was piped).
pub fn ended(
    child: &mut std::process::Child,
    limit: std::time::Duration,
    what: &str,
) -> std::process::Output {
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("the process ran") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not end in {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stderr = Vec::new();
    if let Some(mut e) = child.stderr.take() {
        std::io::Read::read_to_end(&mut e, &mut stderr).unwrap();
    }
    std::process::Output {
        status,
        stdout: Vec::new(),
        stderr,
    }
}
