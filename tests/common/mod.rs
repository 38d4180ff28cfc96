//! Helpers shared by the integration tests: running logs through tidemark and comparing snapshots.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use tidemark::config::Config;
use tidemark::engine::EngineOptions;
use tidemark::pipeline::{Finished, Pipeline, PipelineOptions};
use tidemark::plan::Plan;

/// Runs lines through a pipeline with the given batch size and worker count.
pub fn run(
    lines: &[String],
    config: &Config,
    batch: usize,
    workers: usize,
    track: bool,
) -> Finished {
    let plan = Arc::new(Plan::new(config.clone()));
    let options = PipelineOptions {
        engine: EngineOptions {
            workers,
            track_identities: track,
            ..EngineOptions::default()
        },
        batch_events: batch,
        wall_clock: false,
    };
    let mut p = Pipeline::new(plan, options).expect("engine starts");
    for l in lines {
        p.offer(l);
    }
    p.finish().expect("engine finishes")
}

/// Rows of a snapshot keyed by `(metric, dims as sorted JSON)`.
pub fn rows(snapshot: &Value) -> BTreeMap<(String, String), Value> {
    snapshot["rows"]
        .as_array()
        .expect("rows array")
        .iter()
        .map(|r| {
            let dims: BTreeMap<String, Value> =
                serde_json::from_value(r["dims"].clone()).expect("dims object");
            (
                (
                    r["metric"].as_str().expect("metric").to_string(),
                    serde_json::to_string(&dims).unwrap(),
                ),
                r["value"].clone(),
            )
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
    out
}
pub mod server;
