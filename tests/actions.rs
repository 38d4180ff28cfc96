//! Rules and alerts live, against the real binary and a real local HTTP receiver: late cancels
//! retract, duplicates and restarts never fire twice, caps hold across merges, quiet hours hold
//! across daylight saving, holdout groups are stable, webhooks retry to exactly one delivery.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::common;
use crate::common::receiver::{Answer, Receiver};
use crate::common::server::{
    config_file, event_clock_config, get_json, metric_value, metrics_text, post_events, settled,
    unpaid_rule, Server,
};
use serde_json::{json, Value};

/// 2026-09-21T14:13:20Z.
const T0: i64 = 1_790_000_000_000;
const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;

fn ev(id: &str, ts: i64, name: &str, user: &str, props: Value) -> Value {
    json!({"id": id, "ts": ts, "event": name, "user": user, "props": props})
}

/// A config whose rules and alerts follow event time, with `body` appended.
fn event_clock(body: &str) -> std::path::PathBuf {
    zoned_event_clock("UTC", body)
}

fn zoned_event_clock(zone: &str, body: &str) -> std::path::PathBuf {
    event_clock_config(zone, "", body)
}

async fn rows(client: &reqwest::Client, s: &Server, metric: &str) -> Vec<Value> {
    get_json(client, &s.url(&format!("/v1/rows?metric={metric}"))).await["rows"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_cancel_retracts_the_firing_and_corrects_the_campaign_rows() {
    let hook = Receiver::start(&[]);
    let cfg = event_clock(&unpaid_rule(&hook.url("/coupon")));
    let s = Server::start(&["--config", cfg.to_str().unwrap()], &[]);
    let c = reqwest::Client::new();
    post_events(
        &c,
        &s,
        &[ev(
            "e1",
            T0,
            "order_created",
            "u1",
            json!({"order_id": "o1"}),
        )],
    )
    .await;
    // The clock passes the deadline: the firing goes out.
    post_events(
        &c,
        &s,
        &[ev("e2", T0 + 3 * HOUR, "page_view", "u2", json!({}))],
    )
    .await;
    hook.wait_for(Duration::from_secs(10), "the firing", |r| r.len() == 1);
    let fired = rows(&c, &s, "trigger_fired").await;
    assert_eq!(fired.len(), 1, "{fired:?}");
    // The payment was made in time, but arrives late.
    post_events(
        &c,
        &s,
        &[ev(
            "e3",
            T0 + HOUR,
            "order_paid",
            "u1",
            json!({"order_id": "o1", "amount": 5}),
        )],
    )
    .await;
    hook.wait_for(Duration::from_secs(10), "the retraction", |r| r.len() == 2);
    let got = hook.delivered();
    assert_eq!(got[0].body["kind"], "firing");
    assert_eq!(got[1].body["kind"], "retraction");
    assert_eq!(got[0].key.as_deref(), Some("unpaid/o1"));
    assert_eq!(got[0].key, got[1].key);
    assert_eq!(got[0].body["identities"], json!({"user": ["u1"]}));
    assert!(rows(&c, &s, "trigger_fired").await.is_empty());
    let why = get_json(&c, &s.url("/v1/rules/unpaid/explain?key=o1")).await;
    assert_eq!(why["decision"], "cancelled");
    assert_eq!(why["evidence"][1]["event"], "e3");
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicates_and_a_restart_never_fire_twice() {
    let hook = Receiver::start(&[]);
    let cfg = event_clock(&unpaid_rule(&hook.url("/coupon")));
    let events = [
        ev("e1", T0, "order_created", "u1", json!({"order_id": "o1"})),
        ev("e1", T0, "order_created", "u1", json!({"order_id": "o1"})),
        ev(
            "e2",
            T0 + 10 * MIN,
            "order_created",
            "u2",
            json!({"order_id": "o1"}),
        ),
        ev("e3", T0 + 3 * HOUR, "page_view", "u2", json!({})),
    ];
    let c = reqwest::Client::new();
    let mut first = Server::start(&["--config", cfg.to_str().unwrap()], &[]);
    let answer = post_events(&c, &first, &events).await;
    assert_eq!(answer["duplicates"], 1);
    hook.wait_for(Duration::from_secs(10), "the firing", |r| !r.is_empty());
    // The restart comes after the delivery is logged: a kill between the receiver's answer and
    // that record is the message "on its way", which is sent again with the same
    // Idempotency-Key (README, "Exactly once"), and is not what this test is about.
    delivery_logged(&c, &first).await;
    let data = first.data.clone();
    let _ = first.child.kill();
    let _ = first.child.wait();
    // The client sends everything again to a restarted server on the same data directory.
    let second = Server::start_in(&data, &["--config", cfg.to_str().unwrap()], &[]);
    post_events(&c, &second, &events).await;
    post_events(&c, &second, &events).await;
    settled(&c, &second).await;
    assert_eq!(rows(&c, &second, "trigger_fired").await.len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = hook.received();
    assert_eq!(got.len(), 1, "one key fires once: {got:#?}");
    assert_eq!(
        got[0].body["trigger"], "e1",
        "the earliest trigger of the key counts"
    );
}

/// Waits until the server has logged one delivery (`tidemark_action_deliveries_total`).
async fn delivery_logged(c: &reqwest::Client, s: &Server) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = metrics_text(c, s).await;
        if metric_value(&metrics, "tidemark_action_deliveries_total") >= Some(1) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no delivery logged in 10 s:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cap_holds_across_an_identity_merge() {
    let hook = Receiver::start(&[]);
    let cfg = event_clock(&format!(
        r#"[[rules]]
name = "share_once"
when = "share"
wait = "0s"
cap = {{ max = 1, per = "1d" }}
[[rules.actions]]
webhook = "{}"
"#,
        hook.url("/thanks")
    ));
    let s = Server::start(&["--config", cfg.to_str().unwrap()], &[]);
    let c = reqwest::Client::new();
    post_events(
        &c,
        &s,
        &[json!({"id": "s1", "ts": T0, "event": "share", "ids": {"openid": "oa"}})],
    )
    .await;
    hook.wait_for(Duration::from_secs(10), "the first firing", |r| {
        r.len() == 1
    });
    // The openid and the uid turn out to be one person; the uid's share is within the cap.
    post_events(&c, &s, &[json!({"id": "l1", "ts": T0 + MIN, "event": "login", "ids": {"openid": "oa", "uid": "ub"}})]).await;
    post_events(
        &c,
        &s,
        &[json!({"id": "s2", "ts": T0 + 2 * MIN, "event": "share", "ids": {"uid": "ub"}})],
    )
    .await;
    post_events(
        &c,
        &s,
        &[json!({"id": "s3", "ts": T0 + HOUR, "event": "page_view", "ids": {"uid": "zz"}})],
    )
    .await;
    settled(&c, &s).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hook.received().len(), 1, "{:#?}", hook.received());
    let why = get_json(&c, &s.url("/v1/rules/share_once/explain?key=s2")).await;
    assert_eq!(why["decision"], "capped", "{why}");
    assert_eq!(why["evidence"][1]["filled_by"], json!(["s1"]));
    assert_eq!(why["identities"], json!({"openid": ["oa"], "uid": ["ub"]}));
}

#[tokio::test(flavor = "multi_thread")]
async fn quiet_hours_hold_across_daylight_saving_on_event_time() {
    let hook = Receiver::start(&[]);
    let cfg = zoned_event_clock(
        "Europe/Berlin",
        &format!(
            r#"[[rules]]
name = "unpaid"
when = "order_created"
unless = "order_paid"
match = "order_id"
wait = "2h"
quiet_hours = {{ from = "01:00", to = "02:30" }}
[[rules.actions]]
webhook = "{}"
"#,
            hook.url("/coupon")
        ),
    );
    let s = Server::start(&["--config", cfg.to_str().unwrap()], &[]);
    let c = reqwest::Client::new();
    let at = |t: &str| json!(t);
    post_events(&c, &s, &[json!({"id": "o", "ts": at("2026-03-28T23:45:00+01:00"), "event": "order_created", "user": "u", "props": {"order_id": "G1"}})]).await;
    // 02:30 does not exist on 2026-03-29; the release is 03:30 CEST.
    post_events(&c, &s, &[json!({"id": "p1", "ts": at("2026-03-29T03:20:00+02:00"), "event": "page_view", "user": "v"})]).await;
    settled(&c, &s).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        hook.received().is_empty(),
        "held by quiet hours: {:#?}",
        hook.received()
    );
    let why = get_json(&c, &s.url("/v1/rules/unpaid/explain?key=G1")).await;
    assert_eq!(why["decision"], "pending", "{why}");
    assert_eq!(why["evidence"][1]["step"], "quiet_hours");
    post_events(&c, &s, &[json!({"id": "p2", "ts": at("2026-03-29T03:31:00+02:00"), "event": "page_view", "user": "v"})]).await;
    hook.wait_for(Duration::from_secs(10), "the release", |r| r.len() == 1);
    let got = &hook.delivered()[0].body;
    assert_eq!(got["deadline"], "2026-03-29T01:45:00.000+01:00");
    assert_eq!(got["at"], "2026-03-29T03:30:00.000+02:00");
    assert_eq!(got["late"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn holdout_groups_are_stable_across_runs_and_match_compute() {
    let hook = Receiver::start(&[]);
    let rule = format!(
        r#"[[rules]]
name = "welcome"
when = "register"
wait = "15m"
holdout = 0.5
[[rules.actions]]
webhook = "{}"
"#,
        hook.url("/gift")
    );
    let cfg = event_clock(&rule);
    let mut events: Vec<Value> = (0..40)
        .map(|i| json!({"id": format!("r{i}"), "ts": T0 + i * MIN, "event": "register", "ids": {"openid": format!("o{i}"), "phone": format!("1380000{i:04}")}}))
        .collect();
    events.push(ev("end", T0 + 5 * HOUR, "page_view", "x", json!({})));
    let lines: Vec<String> = events.iter().map(|e| e.to_string()).collect();
    // What compute decides on the same log.
    let dir = cfg.parent().unwrap();
    let log = dir.join("log.ndjson");
    std::fs::write(&log, lines.join("\n")).unwrap();
    let firings = dir.join("firings.ndjson");
    let status = std::process::Command::new(common::server::binary())
        .args(["compute", "--quiet", "--output", "/dev/null", "--config"])
        .arg(&cfg)
        .arg("--input")
        .arg(&log)
        .arg("--firings")
        .arg(&firings)
        .status()
        .unwrap();
    assert!(status.success());
    let computed: Vec<Value> = std::fs::read_to_string(&firings)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let treated: BTreeSet<String> = computed
        .iter()
        .filter(|f| f["group"] == "treatment")
        .map(|f| f["key"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !treated.is_empty() && treated.len() < 40,
        "both groups occur"
    );
    let c = reqwest::Client::new();
    let mut per_run = Vec::new();
    for run in 0..2 {
        let s = Server::start(&["--config", cfg.to_str().unwrap()], &[]);
        post_events(&c, &s, &events).await;
        let want = treated.len() * (run + 1);
        hook.wait_for(Duration::from_secs(10), "the treatment firings", |r| {
            r.len() >= want
        });
        let by_group: BTreeMap<String, i64> = rows(&c, &s, "trigger_fired")
            .await
            .iter()
            .map(|r| {
                (
                    r["dims"]["group"].as_str().unwrap().to_string(),
                    r["value"].as_i64().unwrap(),
                )
            })
            .collect();
        per_run.push(by_group);
    }
    assert_eq!(per_run[0], per_run[1]);
    let sent: Vec<String> = hook
        .delivered()
        .iter()
        .map(|r| r.body["key"].as_str().unwrap().to_string())
        .collect();
    let sent_once: BTreeSet<String> = sent.iter().cloned().collect();
    assert_eq!(
        sent_once, treated,
        "only the treatment group gets the gift, as compute says"
    );
    assert_eq!(
        sent.len(),
        2 * treated.len(),
        "each run (its own data directory) sends each once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_that_fails_then_hangs_then_succeeds_gets_one_delivery_with_one_key() {
    let hook = Receiver::start(&[
        Answer::Status(500),
        Answer::Hang(Duration::from_secs(3)),
        Answer::Status(503),
    ]);
    let cfg = event_clock(&unpaid_rule(&hook.url("/coupon")));
    let s = Server::start(&["--config", cfg.to_str().unwrap()], &[]);
    let c = reqwest::Client::new();
    post_events(
        &c,
        &s,
        &[
            ev(
                "e1",
                T0,
                "order_created",
                "u1",
                json!({"order_id": "a/b c"}),
            ),
            ev("e2", T0 + 3 * HOUR, "page_view", "u2", json!({})),
        ],
    )
    .await;
    hook.wait_for(Duration::from_secs(20), "a delivery", |r| !r.is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = hook.received();
    assert!(all.len() >= 4, "500, a hang, 503, then success: {all:#?}");
    assert!(
        all.iter()
            .all(|r| r.key.as_deref() == Some("unpaid/a%2Fb%20c")),
        "{all:#?}"
    );
    assert_eq!(hook.delivered().len(), 1);
    let metrics = metrics_text(&c, &s).await;
    let retries = metric_value(&metrics, "tidemark_action_retries_total");
    assert!(retries >= Some(3), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn retiring_final_rule_facts_never_retracts_or_fires_again_and_caps_still_count() {
    const DAY: i64 = 24 * HOUR;
    let hook = Receiver::start(&[]);
    let url = hook.url("/act");
    let cfg = config_file(&format!(
        r#"timezone = "UTC"
[serve]
clock = "event"
horizon = "1d"
checkpoint_every = 1000
[delivery]
timeout = "1s"
backoff_max = "1s"
{}
[[rules]]
name = "share_once"
when = "share"
wait = "0s"
cap = {{ max = 1, per = "20d" }}
[[rules.actions]]
webhook = "{url}"
"#,
        unpaid_rule(&url)
    ));
    // 45 days: an order a day (paid within 30 minutes on even days), a share every third day
    // by one person, and page views that move the clock past each day's release.
    let mut events = Vec::new();
    for d in 0..45 {
        let t = T0 + d * DAY;
        let order = json!({"order_id": format!("o{d}")});
        events.push(ev(
            &format!("c{d}"),
            t,
            "order_created",
            &format!("u{}", d % 5),
            order.clone(),
        ));
        if d % 2 == 0 {
            events.push(ev(
                &format!("p{d}"),
                t + 30 * MIN,
                "order_paid",
                &format!("u{}", d % 5),
                order,
            ));
        }
        if d % 3 == 0 {
            events.push(ev(&format!("s{d}"), t + MIN, "share", "sharer", json!({})));
        }
        events.push(ev(
            &format!("v{d}"),
            t + 5 * HOUR,
            "page_view",
            "clock",
            json!({}),
        ));
        // Enough other traffic that a checkpoint (every 1,000 events) falls mid-stream.
        for k in 0..24 {
            events.push(ev(
                &format!("f{d}-{k}"),
                t + 6 * HOUR + k * MIN,
                "page_view",
                &format!("x{k}"),
                json!({}),
            ));
        }
    }
    // Unpaid orders fire on odd days; shares fire on days 0, 21 and 42, the cap of 20 days
    // holding the rest (days 3 to 18 are held by day 0's firing, retired by then).
    let mut want: BTreeSet<String> = (0..45)
        .filter(|d| d % 2 == 1)
        .map(|d| format!("unpaid/o{d}"))
        .collect();
    want.extend(["share_once/s0", "share_once/s21", "share_once/s42"].map(String::from));
    let c = reqwest::Client::new();
    let mut s = Server::start(&["--config", cfg.to_str().unwrap()], &[]);
    for chunk in events.chunks(31) {
        post_events(&c, &s, chunk).await;
    }
    settled(&c, &s).await;
    // A SIGKILL and a restart on the same data directory; everything is sent again, and a new
    // trigger of a retired key (its earliest trigger decided long ago) comes in.
    let data = s.data.clone();
    let _ = s.child.kill();
    let _ = s.child.wait();
    let mut s = Server::start_in(&data, &["--config", cfg.to_str().unwrap()], &[]);
    for chunk in events.chunks(200) {
        post_events(&c, &s, chunk).await;
    }
    let late = T0 + 45 * DAY;
    post_events(
        &c,
        &s,
        &[
            ev(
                "again",
                late,
                "order_created",
                "u9",
                json!({"order_id": "o1"}),
            ),
            ev("v45", late + 5 * HOUR, "page_view", "clock", json!({})),
        ],
    )
    .await;
    settled(&c, &s).await;
    hook.wait_for(Duration::from_secs(20), "every firing", |r| {
        r.iter().filter(|r| r.body["kind"] == "firing").count() >= want.len()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = hook.received();
    let keys: Vec<String> = got
        .iter()
        .filter(|r| r.body["kind"] == "firing")
        .map(|r| {
            format!(
                "{}/{}",
                r.body["rule"].as_str().unwrap(),
                r.body["key"].as_str().unwrap()
            )
        })
        .collect();
    let unique: BTreeSet<String> = keys.iter().cloned().collect();
    assert_eq!(
        unique, want,
        "the firings are the decisions of the whole log"
    );
    assert_eq!(keys.len(), want.len(), "no firing sent twice: {keys:?}");
    assert!(
        got.iter().all(|r| r.body["kind"] == "firing"),
        "nothing retracted: {got:#?}"
    );
    let snapshot = get_json(&c, &s.url("/v1/snapshot")).await;
    assert_eq!(
        common::metric_total(&snapshot, "trigger_fired"),
        want.len() as i64,
        "campaign rows"
    );

    // What the data directory holds: the campaign rows still count every firing, while the
    // firings of days long final are no longer held one by one.
    assert!(s
        .terminate(Duration::from_secs(10))
        .is_some_and(|st| st.success()));
    // The delivery log drops retired firings once a checkpoint holds their retirement.
    let log = std::fs::read_to_string(data.join("actions.log")).unwrap();
    assert!(log.contains("\"unpaid/o43\""), "{log}");
    assert!(
        !log.contains("\"unpaid/o1\"") && !log.contains("\"share_once/s0\""),
        "{log}"
    );
    let firings = data.join("held.ndjson");
    let out = std::process::Command::new(common::server::binary())
        .args([
            "compute",
            "--quiet",
            "--config",
            cfg.to_str().unwrap(),
            "--input",
        ])
        .arg(&data)
        .arg("--firings")
        .arg(&firings)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        common::metric_total(&read, "trigger_fired"),
        want.len() as i64,
        "campaign rows read back"
    );
    let held = common::firing_keys_in(&firings);
    assert!(held.is_subset(&want), "{held:?}");
    assert!(
        !held.contains("unpaid/o1") && !held.contains("share_once/s0"),
        "old firings retired: {held:?}"
    );
}
