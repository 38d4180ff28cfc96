//! `tidemark serve` against a real Mosquitto: events in over MQTT and HTTP, deltas out over SSE,
//! WebSocket and MQTT, retained rows for late subscribers, and the persistent ingest session
//! across a restart, and a cluster's processes sharing one subscription; every result is
//! compared with `tidemark compute` on the same events.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common;
use crate::common::cluster::{
    busy_run, cluster_args, loopback_addresses, snapshot_converges, snapshot_differences,
    start_together, wait_health,
};
use crate::common::server::{compute, files_containing, get_json, post_lines};
use crate::mqtt_support::listen::{self, Rows, Shared};
use crate::mqtt_support::{eventually, mosquitto, Broker, Tidemark};
use serde_json::Value as Json;

const PREFIX: &str = "tidemark";
const TOPIC: &str = "tidemark/events/app";

/// A generated log, one event per line.
fn generate(persons: u32, days: u32, seed: u32) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["generate", "--persons", &persons.to_string()])
        .args(["--days", &days.to_string(), "--seed", &seed.to_string()])
        .output()
        .expect("tidemark generate runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect()
}

/// A config with the given ingest client id and queues big enough that no subscriber is ever
/// resynced (so every channel must see every delta).
fn config(dir: &Path, client_id: &str) -> PathBuf {
    let path = dir.join(format!("{client_id}.toml"));
    let text = format!(
        "[serve]\nsubscriber_queue = 10000000\n\n[mqtt]\nclient_id = \"{client_id}\"\ntopics = [\"tidemark/events/#\"]\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// MQTT payloads for `lines`: single events and arrays of varying length, with a malformed
/// message at `malformed_at`; also the lines in the order the server judges them, the
/// malformed message being one line (so `compute` counts it as the server does).
fn payloads(lines: &[String], malformed_at: Option<usize>) -> (Vec<String>, Vec<String>) {
    let sizes = [1, 7, 1, 1, 23, 2, 1, 60, 3];
    let (mut out, mut judged) = (Vec::new(), Vec::new());
    let mut rest = lines;
    let (mut i, mut malformed) = (0, malformed_at);
    while !rest.is_empty() {
        if malformed.is_some_and(|at| out.len() >= at) {
            malformed = None;
            let broken = r#"[{"id":"mqtt-broken-1","ts":1790812913405,"event":"page_view","#;
            out.push(broken.to_string());
            judged.push(broken.to_string());
        }
        let n = sizes[i % sizes.len()].min(rest.len());
        i += 1;
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        let parsed: Vec<Option<Json>> =
            chunk.iter().map(|l| serde_json::from_str(l).ok()).collect();
        // A line that is not JSON goes alone (it is one rejected event either way); a line
        // holding an array goes inside an array, so it stays one event.
        if n == 1 || parsed.iter().any(Option::is_none) {
            out.extend(chunk.iter().zip(&parsed).map(|(l, p)| match p {
                Some(Json::Array(_)) => format!("[{l}]"),
                _ => l.clone(),
            }));
        } else {
            out.push(format!("[{}]", chunk.join(",")));
        }
        judged.extend(chunk.iter().cloned());
    }
    (out, judged)
}

/// Events the server has judged so far (accepted, duplicates and rejected).
fn judged(snapshot: &Json) -> u64 {
    let e = &snapshot["events"];
    let rejected: u64 = e["rejected"]
        .as_object()
        .map(|m| m.values().filter_map(Json::as_u64).sum())
        .unwrap_or(0);
    e["accepted"].as_u64().unwrap() + e["duplicates"].as_u64().unwrap() + rejected
}

async fn snapshot(http: &reqwest::Client, tm: &Tidemark) -> Json {
    let r = http
        .get(tm.url("/v1/snapshot"))
        .send()
        .await
        .expect("snapshot");
    assert!(r.status().is_success(), "snapshot: {}", r.status());
    r.json().await.expect("snapshot JSON")
}

/// Waits until the server has judged `n` events; answers its snapshot then.
async fn judged_all(http: &reqwest::Client, tm: &Tidemark, n: usize) -> Json {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let s = snapshot(http, tm).await;
        let seen = judged(&s);
        if seen == n as u64 {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server judged {seen} events, not {n}, within 60 s: {}\n{}",
            s["events"],
            tm.log.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every row of a snapshot, extensions included: what subscribers hold.
fn all_rows(snapshot: &Json) -> Rows {
    let mut rows = common::rows(snapshot);
    rows.extend(common::rows(
        &serde_json::json!({"rows": snapshot["extensions"]}),
    ));
    rows
}

/// Asserts the served snapshot equals `compute`'s, rejections by reason and extensions included.
fn assert_same(expected: &Json, served: &Json, what: &str) {
    let diff = common::differences(expected, served);
    assert!(
        diff.is_empty(),
        "{what}: served snapshot differs from compute:\n{}",
        diff.join("\n")
    );
    assert_eq!(
        expected["events"]["rejected"], served["events"]["rejected"],
        "{what}: rejections"
    );
    assert_eq!(
        expected["extensions"], served["extensions"],
        "{what}: extensions"
    );
}

/// Waits until `current()` equals `rows`, showing what differs on timeout.
async fn converges(name: &str, rows: &Rows, current: impl Fn() -> Rows) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = current();
        if &now == rows {
            return;
        }
        if std::time::Instant::now() > deadline {
            let wrong: Vec<_> = rows
                .iter()
                .filter(|(k, x)| now.get(*k) != Some(x))
                .take(5)
                .collect();
            let extra: Vec<_> = now
                .keys()
                .filter(|k| !rows.contains_key(*k))
                .take(5)
                .collect();
            panic!("{name}: rows differ from the snapshot's ({} vs {}); wrong or missing e.g. {wrong:?}; extra e.g. {extra:?}", now.len(), rows.len());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until a subscriber's rows equal `rows`; it must never have been resynced.
async fn view_converges(name: &str, view: &Shared, rows: &Rows) {
    converges(name, rows, || view.lock().unwrap().rows.clone()).await;
    assert_eq!(view.lock().unwrap().resyncs, 0, "{name} was resynced");
}

/// The server's progress (from `/metrics`).
async fn progress(http: &reqwest::Client, tm: &Tidemark) -> u64 {
    let text = http
        .get(tm.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("tidemark_progress "))
        .expect("progress gauge");
    line["tidemark_progress ".len()..]
        .trim()
        .parse()
        .expect("progress is an integer")
}

/// Once the retained progress mark has caught up with the server, a new subscriber's retained
/// rows equal the snapshot's rows.
async fn retained_rows_match(broker: &Broker, tm: &Tidemark, id: &str, served: &Json) {
    let http = reqwest::Client::new();
    let target = progress(&http, tm).await;
    let marks = listen::mqtt_retained(broker.port, PREFIX, &format!("{id}-progress"));
    eventually(
        "the retained progress mark to catch up",
        Duration::from_secs(30),
        || async { (marks.lock().unwrap().progress >= Some(target)).then_some(()) },
    )
    .await;
    let rows = all_rows(served);
    let seen = listen::mqtt_retained(broker.port, PREFIX, id);
    converges("retained rows", &rows, || {
        seen.lock().unwrap().keyed(PREFIX)
    })
    .await;
    let s = seen.lock().unwrap();
    assert!(
        s.all_retained,
        "every row a new subscriber gets is a retained message"
    );
    assert!(
        s.rows.keys().any(|t| t.starts_with("tidemark/rows/dau/")),
        "dau rows are retained"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto; run with: cargo test --release --test integration -- --ignored mqtt:: replay::"]
async fn events_over_mqtt_and_http_reach_every_channel_and_match_compute() {
    let bin = mosquitto();
    let broker = Broker::start(&bin, "flow");
    let tm = Tidemark::start(&config(broker.dir(), "tidemark-flow"), &broker);
    broker.logged("Sending SUBACK to tidemark-flow").await;

    let sse = listen::sse(tm.url("/v1/subscribe"));
    let ws = listen::websocket(format!("ws://{}/v1/ws", tm.addr));
    let deltas = listen::mqtt_deltas(broker.port, PREFIX);
    for (name, view) in [("SSE", &sse), ("WebSocket", &ws), ("MQTT deltas", &deltas)] {
        let what = format!("{name} subscriber to be live");
        eventually(&what, Duration::from_secs(20), || async {
            view.lock().unwrap().live.then_some(())
        })
        .await;
    }

    let lines = generate(300, 14, 7);
    let (over_mqtt, over_http) = lines.split_at(lines.len() * 2 / 5);
    let (messages, mut sent) = payloads(over_mqtt, Some(60));
    assert!(
        messages.len() < over_mqtt.len(),
        "some messages carry arrays"
    );
    listen::publish_events(broker.port, "test-events", TOPIC, &messages).await;
    let http = reqwest::Client::new();
    let after_mqtt = judged_all(&http, &tm, sent.len()).await;
    let malformed = &after_mqtt["events"]["rejected"]["malformed_json"];
    assert!(
        malformed.as_u64() >= Some(1),
        "the malformed message is counted: {malformed}"
    );

    for chunk in over_http.chunks(700) {
        let r = http
            .post(tm.url("/v1/events"))
            .header("content-type", "application/x-ndjson")
            .body(chunk.join("\n"))
            .send()
            .await
            .expect("POST /v1/events");
        assert!(r.status().is_success(), "POST: {}", r.status());
        let answer: Json = r.json().await.unwrap();
        let n = ["accepted", "duplicates", "rejected"].map(|k| answer[k].as_u64().unwrap());
        assert_eq!(n.iter().sum::<u64>(), chunk.len() as u64, "{answer}");
        sent.extend(chunk.iter().cloned());
    }
    let served = judged_all(&http, &tm, sent.len()).await;
    assert_same(&compute(&sent, None), &served, "MQTT + HTTP");

    let rows = all_rows(&served);
    assert!(rows.keys().any(|(m, _)| m == "dau"), "the log has dau rows");
    view_converges("SSE", &sse, &rows).await;
    view_converges("WebSocket", &ws, &rows).await;
    view_converges("MQTT deltas", &deltas, &rows).await;
    retained_rows_match(&broker, &tm, "test-late", &served).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto; run with: cargo test --release --test integration -- --ignored mqtt:: replay::"]
async fn the_persistent_session_delivers_what_was_published_while_tidemark_was_down() {
    let bin = mosquitto();
    let broker = Broker::start(&bin, "session");
    let config = config(broker.dir(), "tidemark-session");
    let http = reqwest::Client::new();
    let lines = generate(120, 8, 11);
    let (before, while_down) = lines.split_at(lines.len() / 2);

    let first = Tidemark::start(&config, &broker);
    broker.logged("Sending SUBACK to tidemark-session").await;
    let (messages, sent_before) = payloads(before, None);
    listen::publish_events(broker.port, "test-before", TOPIC, &messages).await;
    let served = judged_all(&http, &first, sent_before.len()).await;
    assert_same(&compute(&sent_before, None), &served, "first run");
    let status = first.terminate();
    assert!(
        status.success(),
        "tidemark exits cleanly on SIGTERM: {status}"
    );
    broker
        .logged("Received DISCONNECT from tidemark-session")
        .await;

    let (messages, sent) = payloads(while_down, None);
    listen::publish_events(broker.port, "test-while-down", TOPIC, &messages).await;
    // The second run starts from what the first kept in its data directory, then reads what
    // the broker queued meanwhile: together, every event once.
    let second = Tidemark::start(&config, &broker);
    let all: Vec<String> = sent_before.iter().chain(&sent).cloned().collect();
    let served = judged_all(&http, &second, all.len()).await;
    assert_same(&compute(&all, None), &served, "second run");
    assert!(
        second.log.contains("MQTT ingest: connected to")
            && second.log.contains("session kept: true"),
        "the second run resumes the session:\n{}",
        second.log.text()
    );
    retained_rows_match(&broker, &second, "test-late-session", &served).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto; run with: cargo test --release --test integration -- --ignored mqtt:: replay::"]
async fn a_broker_restart_mid_stream_loses_and_doubles_nothing() {
    let bin = mosquitto();
    let mut broker = Broker::start_persistent(&bin, "restart");
    let config = config(broker.dir(), "tidemark-restart");
    let http = reqwest::Client::new();
    let lines = generate(120, 8, 12);
    let (first, second) = lines.split_at(lines.len() / 2);
    let tm = Tidemark::start(&config, &broker);
    broker.logged("Sending SUBACK to tidemark-restart").await;
    let (messages, mut sent) = payloads(first, None);
    listen::publish_events(broker.port, "test-first", TOPIC, &messages).await;
    // Taken by the broker, some not yet by tidemark: the broker stops and comes back.
    broker.restart();
    let (messages, more) = payloads(second, None);
    listen::publish_events(broker.port, "test-second", TOPIC, &messages).await;
    sent.extend(more);
    let expected = compute(&sent, None);
    let want = expected["events"]["accepted"].as_u64().unwrap();
    // Redelivered messages are answered as duplicates: wait for the accepted count.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut served = loop {
        let s = snapshot(&http, &tm).await;
        if s["events"]["accepted"].as_u64() == Some(want) {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "accepted {} of {want} within 60 s: {}\ntidemark:\n{}\nmosquitto:\n{}",
            s["events"]["accepted"],
            s["events"],
            tm.log.text(),
            broker.log.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        tm.log.contains("MQTT ingest: connected to"),
        "tidemark reconnected:\n{}",
        tm.log.text()
    );
    served["events"]["duplicates"] = expected["events"]["duplicates"].clone();
    assert_same(&expected, &served, "across a broker restart");
}

/// With `serve.hash_identities`, a phone number sent over MQTT reaches no MQTT topic (rows,
/// progress, rule actions), no line of the server's log and no file of its data directory in
/// clear; a look-up by the raw number still finds the person.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs mosquitto; run with: cargo test --release --test integration -- --ignored mqtt:: replay::"]
async fn hashed_identities_reach_no_topic_log_or_file_in_clear() {
    const PHONE: &str = "13987654321";
    let bin = mosquitto();
    let broker = Broker::start(&bin, "hashed");
    let cfg = broker.dir().join("hashed.toml");
    std::fs::write(
        &cfg,
        "[serve]\nhash_identities = true\n\n[mqtt]\nclient_id = \"tidemark-hashed\"\ntopics = [\"tidemark/events/#\"]\n\n[[rules]]\nname = \"welcome\"\nwhen = \"register\"\nwait = \"1s\"\n[[rules.actions]]\nmqtt = \"tidemark/actions/welcome\"\n",
    )
    .unwrap();
    let everything = listen::mqtt_everything(broker.port, "test-everything");
    let tm = Tidemark::start(&cfg, &broker);
    broker.logged("Sending SUBACK to tidemark-hashed").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let now = i64::try_from(now).unwrap();
    let events = [
        serde_json::json!({"id": "h1", "ts": now - 1000, "event": "register", "ids": {"phone": PHONE, "openid": "o_hashed"}}),
        serde_json::json!({"id": "h2", "ts": now, "event": "page_view", "ids": {"phone": PHONE}}),
    ]
    .map(|e| e.to_string());
    listen::publish_events(broker.port, "test-hashed", TOPIC, &events).await;
    let http = reqwest::Client::new();
    judged_all(&http, &tm, events.len()).await;
    let who = get_json(&http, &tm.url(&format!("/v1/identities/phone/{PHONE}"))).await;
    assert_eq!(who["found"], true, "{who}");
    // The rule's action goes out on MQTT (with the person's identities, hashed).
    eventually("the welcome action", Duration::from_secs(20), || async {
        let seen = everything.lock().unwrap();
        String::from_utf8_lossy(&seen)
            .contains("tidemark/actions/welcome")
            .then_some(())
    })
    .await;
    // Everything tidemark published (the input topic carries what the test itself sent).
    let seen: String = String::from_utf8_lossy(&everything.lock().unwrap())
        .lines()
        .filter(|l| !l.starts_with("tidemark/events/"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        seen.contains("tidemark/rows/"),
        "rows were published: {seen}"
    );
    assert!(
        !seen.contains(PHONE),
        "a topic carries the phone number: {seen}"
    );
    assert!(
        seen.contains("\"h:"),
        "the action names the person by hashes: {seen}"
    );
    let data = broker.dir().join("tidemark-data");
    let log = tm.log.clone();
    let status = tm.terminate();
    assert!(status.success());
    assert!(
        !log.contains(PHONE),
        "the server's log holds the number: {}",
        log.text()
    );
    let holding = files_containing(&data, PHONE);
    assert!(
        holding.is_empty(),
        "a file of the data directory holds the number: {holding:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto; run with: cargo test --release --test integration -- --ignored mqtt:: replay::"]
async fn the_mqtt_dashboard_example_prints_the_retained_rows() {
    let bin = mosquitto();
    let broker = Broker::start(&bin, "dashboard");
    let tm = Tidemark::start(&config(broker.dir(), "tidemark-dashboard"), &broker);
    broker.logged("Sending SUBACK to tidemark-dashboard").await;
    let lines = generate(300, 14, 7);
    let http = reqwest::Client::new();
    post_lines(&http, &tm.url("/v1/events"), &lines).await;
    let served = judged_all(&http, &tm, lines.len()).await;
    // Every row is retained on the broker before the example connects.
    retained_rows_match(&broker, &tm, "test-dashboard", &served).await;

    let broker_addr = format!("127.0.0.1:{}", broker.port);
    let text = tokio::task::spawn_blocking(move || {
        crate::examples::run_example("mqtt_dashboard", &[&broker_addr, "dau", "--marks", "1"])
    })
    .await
    .unwrap();
    let printed = crate::examples::printed_by_day(&text, "dau/");
    let expected = crate::examples::rows_by_day(&served, "dau");
    assert!(expected.len() >= 14, "{} days", expected.len());
    assert_eq!(printed, expected, "{text}");
}

/// The subscriptions a broker's log records, as `(client id, topic filter)`: Mosquitto logs
/// each as a line `TIME: CLIENT QOS FILTER`.
fn subscriptions(log: &str) -> Vec<(String, String)> {
    log.lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once(": ")?;
            let words: Vec<&str> = rest.split_whitespace().collect();
            let [client, qos, filter] = words[..] else {
                return None;
            };
            let qos_ok = qos.parse::<u8>().is_ok_and(|q| q <= 2);
            (qos_ok && (filter.contains('/') || filter.contains('#')))
                .then(|| (client.to_string(), filter.to_string()))
        })
        .collect()
}

/// Two processes of a cluster, both with `--mqtt` to one broker: each subscribes to the topics
/// as the shared subscription `$share/tidemark/<topic>` (none to the topic itself), so the broker
/// spreads the messages over the nodes and each event is taken once; every node then serves
/// compute's snapshot of what was published (a duplicate taken twice would show in the counts).
/// Halfway, process 1 is SIGKILLed and started again alone: the cluster takes it back, process
/// 0 goes on publishing rows, and the messages published after reach the same snapshot.
#[test]
#[ignore = "needs mosquitto; run with: cargo test --release --test integration -- --ignored mqtt:: replay::"]
fn a_cluster_shares_one_subscription_and_takes_each_event_once() {
    busy_run(a_cluster_shares_one_subscription_and_takes_each_event_once_run());
}

async fn a_cluster_shares_one_subscription_and_takes_each_event_once_run() {
    const SHARED: &str = "$share/tidemark/tidemark/events/#";
    const CLUSTER_TOPIC: &str = "tidemark/events/x";
    let bin = mosquitto();
    let broker = Broker::start(&bin, "cluster");
    let cfg = config(broker.dir(), "tidemark-cluster");
    let peers = loopback_addresses(2);
    let nodes = start_together(2, |i| {
        let data = broker.dir().join(format!("tidemark-data-{i}"));
        let mut args = vec!["--data".to_string(), data.display().to_string()];
        args.extend(cluster_args(&peers, i));
        Tidemark::start_with(&cfg, &broker, &args)
    });
    let http = reqwest::Client::new();
    let urls: Vec<String> = nodes.iter().map(|n| n.url("")).collect();
    wait_health(&http, &urls, 200, Duration::from_secs(60)).await;
    let subscribers: std::collections::BTreeSet<String> = eventually(
        "both nodes to subscribe",
        Duration::from_secs(20),
        || async {
            let text = broker.log.text();
            let shared: std::collections::BTreeSet<String> = subscriptions(&text)
                .into_iter()
                .filter(|(_, f)| f == SHARED)
                .map(|(c, _)| c)
                .collect();
            (shared.len() >= 2 && text.matches("Sending SUBACK to").count() >= 2).then_some(shared)
        },
    )
    .await;
    let all = subscriptions(&broker.log.text());
    assert_eq!(
        subscribers.len(),
        2,
        "one shared subscriber per node: {all:?}"
    );
    // (Each node's publisher also subscribes, to its own rows: those are not events.)
    assert!(
        all.iter()
            .filter(|(_, f)| f.ends_with("tidemark/events/#"))
            .all(|(_, f)| f == SHARED),
        "every subscription to the events is the group's: {all:?}"
    );

    let lines = generate(300, 14, 7);
    let (first, second) = lines.split_at(lines.len() / 2);
    let (messages, mut sent) = payloads(first, Some(60));
    listen::publish_events(broker.port, "test-cluster", CLUSTER_TOPIC, &messages).await;
    let expected = compute(&sent, None);
    for u in &urls {
        snapshot_converges(&http, u, Duration::from_secs(60), |s| {
            snapshot_differences(&expected, s)
        })
        .await;
    }

    // Process 1 SIGKILLed and started again alone: process 0 takes it back, and its publisher
    // subscribes to the new dataflow's rows and goes on publishing.
    let mut nodes = nodes;
    nodes.truncate(1);
    wait_health(&http, &urls[..1], 503, Duration::from_secs(30)).await;
    let published = |text: &str| {
        text.matches("Received PUBLISH from tidemark-cluster-0-out")
            .count()
    };
    let before = published(&broker.log.text());
    nodes.push({
        let data = broker.dir().join("tidemark-data-1");
        let mut args = vec!["--data".to_string(), data.display().to_string()];
        args.extend(cluster_args(&peers, 1));
        Tidemark::start_with(&cfg, &broker, &args)
    });
    let urls: Vec<String> = nodes.iter().map(|n| n.url("")).collect();
    wait_health(&http, &urls, 200, Duration::from_secs(60)).await;
    let (messages, more) = payloads(second, None);
    sent.extend(more);
    listen::publish_events(broker.port, "test-cluster-2", CLUSTER_TOPIC, &messages).await;
    let expected = compute(&sent, None);
    for (i, u) in urls.iter().enumerate() {
        let served = snapshot_converges(&http, u, Duration::from_secs(60), |s| {
            let mut d = snapshot_differences(&expected, s);
            if expected["events"]["rejected"] != s["events"]["rejected"] {
                d.push(format!(
                    "events.rejected: expected {}, got {}",
                    expected["events"]["rejected"], s["events"]["rejected"]
                ));
            }
            if expected["extensions"] != s["extensions"] {
                d.push("extensions differ".to_string());
            }
            d
        })
        .await;
        assert_same(&expected, &served, &format!("process {i}"));
    }
    eventually(
        "process 0 to publish rows again after process 1 rejoined",
        Duration::from_secs(20),
        || async { (published(&broker.log.text()) > before).then_some(()) },
    )
    .await;
    let text = broker.log.text();
    // The broker spread the messages: each node was sent some.
    for id in &subscribers {
        let to = format!("Sending PUBLISH to {id} (");
        let quoted = format!("'{CLUSTER_TOPIC}'");
        let n = text
            .lines()
            .filter(|l| l.contains(&to) && l.contains(&quoted))
            .count();
        assert!(
            n > 0,
            "{id} was sent none of the {} messages:\n{}",
            messages.len(),
            nodes
                .iter()
                .map(|n| n.log.text())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
