//! Alerts live, against the real binary and a real local HTTP receiver: an outage cut into a
//! generated log, replayed at the log's own timing, fires and resolves as `compute` says; a
//! bucket is judged only once its grace has passed, so events within grace are never too late.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use crate::common;
use crate::common::receiver::Receiver;
use crate::common::server::{binary, config_file, get_json, post_events, settled, Server};
use serde_json::{json, Value};

fn ts_of(line: &Value) -> i64 {
    match &line["ts"] {
        Value::Number(n) => n.as_i64().unwrap(),
        s => s
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond(),
    }
}

/// Runs `compute` on `lines` with `config`; the snapshot.
fn compute(config: &std::path::Path, lines: &[String]) -> Value {
    common::server::compute(lines, Some(config))
}

/// The (state, bucket) transitions that a receiver holds, retractions taken out.
fn net_transitions(received: &[common::receiver::Received]) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for r in received {
        let t = (
            r.body["state"].as_str().unwrap().to_string(),
            r.body["bucket"].as_str().unwrap().to_string(),
        );
        if r.body["kind"] == "retraction" {
            out.remove(&t);
        } else {
            out.insert(t);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_fires_and_resolves_as_compute_says_when_replayed_at_log_timing() {
    let hook = Receiver::start(&[]);
    let cfg = config_file(&format!(
        r#"[serve]
clock = "event"
[[alerts]]
name = "hau_drop"
metric = "hau"
drop = 0.7
baseline = {{ lag = "1d", count = 1 }}
min_baseline = 5
grace = "10m"
[[alerts.actions]]
webhook = "{}"
"#,
        hook.url("/oncall")
    ));
    let generated = common::server::generated(600, 3);
    // An outage: nothing arrives from 10:00 to 14:00 on the second day.
    let start = "2026-10-02T10:00:00Z"
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond();
    let lines: Vec<String> = generated
        .into_iter()
        .filter(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            !(start..start + 4 * 3_600_000).contains(&ts_of(&v))
        })
        .collect();
    let expected = compute(&cfg, &lines);
    let expected: BTreeSet<(String, String)> = expected["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["state"].as_str().unwrap().into(),
                t["bucket"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        expected.contains(&("firing".into(), "2026-10-02T10".into())),
        "the outage breaches: {expected:?}"
    );
    assert!(
        expected.iter().any(|(s, _)| s == "resolved"),
        "{expected:?}"
    );

    let s = Server::start(&["--config", cfg.to_str().unwrap()], &[]);
    let log = cfg.with_file_name("outage.ndjson");
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let status = Command::new(binary())
        .args(["replay", "--speed", "40000x", "--target"])
        .arg(format!("http://{}", s.addr))
        .arg("--input")
        .arg(&log)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the replay runs");
    let c = reqwest::Client::new();
    settled(&c, &s).await;
    hook.wait_for(
        Duration::from_secs(20),
        "the transitions compute has",
        |r| net_transitions(r) == expected,
    );
    let first = hook
        .delivered()
        .into_iter()
        .find(|r| r.body["bucket"] == "2026-10-02T10")
        .unwrap();
    assert_eq!(first.body["kind"], "firing");
    assert_eq!(first.key.as_deref(), Some("hau_drop/2026-10-02T10/firing"));
}

#[tokio::test(flavor = "multi_thread")]
async fn events_within_grace_are_counted_before_the_bucket_is_judged() {
    let hook = Receiver::start(&[]);
    let cfg = config_file(&format!(
        r#"[serve]
clock = "event"
[[alerts]]
name = "quiet_hour"
metric = "hau"
below = 3
grace = "10m"
[[alerts.actions]]
webhook = "{}"
"#,
        hook.url("/oncall")
    ));
    // Hour H is 2026-10-01T08: three persons are active in it, one of them reported late.
    let h = "2026-10-01T08:00:00Z"
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond();
    let min = 60_000;
    let ev = |id: &str, ts: i64, user: &str| json!({"id": id, "ts": ts, "event": "page_view", "user": user});
    let on_time = [ev("a", h + 10 * min, "ua"), ev("b", h + 20 * min, "ub")];
    let held_back = ev("c", h + 50 * min, "uc");
    let mover = |id: &str, ts: i64| ev(id, ts, "clock");

    // Without the late event the hour breaches: compute says so.
    let without: Vec<String> = on_time
        .iter()
        .chain([&mover("m1", h + 65 * min), &mover("m2", h + 71 * min)])
        .map(|e| e.to_string())
        .collect();
    let breached = compute(&cfg, &without);
    assert_eq!(
        breached["alerts"][0]["bucket"], "2026-10-01T08",
        "{breached}"
    );

    let s = Server::start(&["--config", cfg.to_str().unwrap()], &[]);
    let c = reqwest::Client::new();
    post_events(&c, &s, &on_time).await;
    // The hour has ended, but its grace has not: it is not judged yet.
    post_events(&c, &s, &[mover("m1", h + 65 * min)]).await;
    settled(&c, &s).await;
    let alerts = get_json(&c, &s.url("/v1/alerts")).await;
    assert_eq!(alerts["alerts"][0]["state"], "no_data", "{alerts}");
    post_events(&c, &s, &[held_back]).await;
    post_events(&c, &s, &[mover("m2", h + 71 * min)]).await;
    settled(&c, &s).await;
    let alerts = get_json(&c, &s.url("/v1/alerts")).await;
    assert_eq!(alerts["alerts"][0]["state"], "ok", "{alerts}");
    assert_eq!(alerts["alerts"][0]["judged_through"], "2026-10-01T08");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        hook.received().is_empty(),
        "no firing for the hour: {:#?}",
        hook.received()
    );
}
