//! `tidemark replay` against a real `tidemark serve`: its counts must equal the server's own,
//! every line must arrive once (the server's snapshot equals `tidemark compute` of the log),
//! missing acknowledgements must fail the run, and the same over MQTT through mosquitto.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::common;
use crate::common::server::{compute, Server};
use crate::mqtt_support::{free_port, mosquitto, Broker, Guard};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_tidemark");
/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("tidemark-replay-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Scratch(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The generated log plus a blank line and two lines the server rejects.
fn write_log(dir: &Scratch) -> PathBuf {
    let path = dir.path("log.ndjson");
    let out = Command::new(BIN)
        .args(["generate", "--persons", "300", "--days", "10", "--output"])
        .arg(&path)
        .output()
        .expect("tidemark generate runs");
    assert!(out.status.success(), "generate: {out:?}");
    let mut text = std::fs::read_to_string(&path).expect("log");
    text.push_str(
        "\n{\"id\": \"broken\n{\"id\":\"no-time\",\"event\":\"open\",\"user_id\":\"u1\"}\n",
    );
    std::fs::write(&path, text).expect("log written");
    path
}

fn non_blank_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("log");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect()
}

/// Runs `tidemark replay`, killing it if it runs past `limit`; returns status and stderr.
fn replay(args: &[&str], limit: Duration) -> (ExitStatus, String) {
    let mut child = Command::new(BIN)
        .arg("replay")
        .args(args)
        .env_remove("TIDEMARK_INGEST_TOKEN")
        .env_remove("TIDEMARK_READ_TOKEN")
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tidemark replay starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut child = Guard(child);
    let reader = std::thread::Builder::new()
        .name("replay-stderr".into())
        .spawn(move || std::io::read_to_string(stderr).unwrap_or_default())
        .expect("thread");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.0.try_wait().expect("replay status") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "tidemark replay ran past {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = reader.join().expect("stderr reader");
    eprintln!("[replay] {err}");
    (status, err)
}

fn get(addr: &str, path: &str) -> String {
    let url = format!("http://{addr}{path}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let answer = reqwest::get(&url).await.expect("server answers");
        assert!(answer.status().is_success(), "{url}: {}", answer.status());
        answer.text().await.expect("body")
    })
}

/// A counter from the server's Prometheus text, summed over its label sets.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn read_report(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report written")).expect("JSON")
}

/// The report's counts equal the server's (snapshot and /metrics), every line was sent and
/// acknowledged, the server's rows equal `tidemark compute` of the log, and the latency
/// percentiles are present and ordered.
fn check_against_server(report: &Value, log: &Path, addr: &str) {
    let log_lines = non_blank_lines(log);
    let lines = log_lines.len() as u64;
    assert_eq!(report["sent"], lines, "every non-blank line is sent once");
    assert_eq!(report["acknowledged"], lines);
    let snapshot: Value = serde_json::from_str(&get(addr, "/v1/snapshot")).expect("snapshot");
    let events = &snapshot["events"];
    let rejected: u64 = events["rejected"]
        .as_object()
        .expect("rejected by reason")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(report["accepted"], events["accepted"]);
    assert_eq!(report["duplicates"], events["duplicates"]);
    assert_eq!(report["rejected"], rejected);
    assert!(rejected >= 2, "the two broken lines are rejected: {events}");
    assert!(
        report["duplicates"].as_u64() > Some(0),
        "the log has duplicates"
    );
    let metrics = get(addr, "/metrics");
    assert_eq!(
        report["accepted"],
        metric(&metrics, "tidemark_events_accepted_total")
    );
    assert_eq!(
        report["duplicates"],
        metric(&metrics, "tidemark_events_duplicate_total")
    );
    assert_eq!(
        report["rejected"],
        metric(&metrics, "tidemark_events_rejected_total")
    );

    let expected = compute(&log_lines, None);
    let diff = common::differences(&expected, &snapshot);
    assert!(
        diff.is_empty(),
        "server differs from compute: {:?}",
        &diff[..diff.len().min(10)]
    );

    let l = &report["latency_ms"];
    assert_eq!(l["events"], lines, "every event's latency is recorded");
    let q: Vec<f64> = ["p50", "p90", "p99", "p99_9", "max"]
        .iter()
        .map(|k| {
            l[*k]
                .as_f64()
                .unwrap_or_else(|| panic!("latency {k} in {l}"))
        })
        .collect();
    assert!(
        q.windows(2).all(|w| w[0] <= w[1]),
        "percentiles ordered: {q:?}"
    );
    assert!(q[4] > 0.0, "{q:?}");
    assert_eq!(report["unreflected"], 0);
}

/// Replays the log of `dir` to `target` (at 20,000 events/s unless `extra` gives `--rate`,
/// plus `extra` options), asserts a clean exit and compares the report with the server's own
/// counts.
fn replay_and_check(dir: &Scratch, server: &Server, target: &str, extra: &[&str]) {
    let log = write_log(dir);
    let report_path = dir.path("report.json");
    let mut args = vec![
        "--input",
        log.to_str().unwrap(),
        "--target",
        target,
        "--report",
        report_path.to_str().unwrap(),
    ];
    if !extra.contains(&"--rate") {
        args.extend(["--rate", "20000"]);
    }
    args.extend_from_slice(extra);
    let (status, err) = replay(&args, Duration::from_secs(120));
    assert_eq!(status.code(), Some(0), "{err}");
    check_against_server(&read_report(&report_path), &log, &server.addr);
}

#[test]
fn http_replay_counts_equal_the_servers_and_latencies_are_ordered() {
    let dir = Scratch::new("http");
    let server = Server::start(&[], &[]);
    let target = format!("http://{}", server.addr);
    replay_and_check(&dir, &server, &target, &[]);
}

/// A configuration under which a server counts as behind as soon as any batch is in flight
/// (`serve.max_lag = "1ms"`), written into `dir`.
fn behind_config(dir: &Scratch) -> PathBuf {
    let config = dir.path("lag.toml");
    std::fs::write(&config, "[serve]\nmax_lag = \"1ms\"\n").expect("config written");
    config
}

/// A server that is behind (here `serve.max_lag = "1ms"`: any batch still in flight) turns
/// requests away with 429 and takes nothing of them; replay sends each again after
/// `Retry-After`, reports how many were turned away, and in the end every line arrived once.
#[test]
fn pushed_back_requests_are_sent_again_and_nothing_is_lost() {
    let dir = Scratch::new("pushback");
    let config = behind_config(&dir);
    let server = Server::start(&["--config", config.to_str().unwrap()], &[]);
    let target = format!("http://{}", server.addr);
    replay_and_check(
        &dir,
        &server,
        &target,
        &["--rate", "200000", "--batch", "500", "--connections", "8"],
    );
    let report = read_report(&dir.path("report.json"));
    let pushed = report["pushed_back"]
        .as_u64()
        .expect("pushed_back in the report");
    assert!(pushed > 0, "a server 1 ms behind pushes back: {report}");
    let metrics = get(&server.addr, "/metrics");
    assert_eq!(
        pushed,
        metric(&metrics, "tidemark_ingest_pushed_back_total"),
        "the server counts each 429 it gave"
    );
}

#[test]
fn replay_fails_when_nothing_listens() {
    let dir = Scratch::new("nothing");
    let log = write_log(&dir);
    let target = format!("http://127.0.0.1:{}", free_port());
    let (status, err) = replay(
        &["--input", log.to_str().unwrap(), "--target", &target],
        Duration::from_secs(60),
    );
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("is tidemark serve running"), "{err}");
}

#[test]
fn replay_reports_missing_acknowledgements_when_the_server_dies() {
    let dir = Scratch::new("dies");
    let log = write_log(&dir);
    let mut server = Server::start(&[], &[]);
    let addr = server.addr.clone();
    let report_path = dir.path("report.json");
    let args = [
        "--input".to_string(),
        log.to_str().unwrap().to_string(),
        "--target".to_string(),
        format!("http://{addr}"),
        "--rate".to_string(),
        "2000".to_string(),
        "--timeout".to_string(),
        "3s".to_string(),
        "--report".to_string(),
        report_path.to_str().unwrap().to_string(),
    ];
    let runner = std::thread::Builder::new()
        .name("replay".into())
        .spawn(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            replay(&args, Duration::from_secs(120))
        })
        .expect("thread");
    std::thread::sleep(Duration::from_millis(1200));
    server.child.kill().expect("server killed");
    let (status, err) = runner.join().expect("replay thread");
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("were not acknowledged"), "{err}");
    let report = read_report(&report_path);
    let (sent, acked) = (
        report["sent"].as_u64().unwrap(),
        report["acknowledged"].as_u64().unwrap(),
    );
    assert!(
        acked > 0 && acked < sent,
        "some but not all acknowledged: {report}"
    );
    assert_eq!(report["missing"], sent - acked);
    let failed: u64 = report["failures"]
        .as_object()
        .expect("failures")
        .values()
        .map(|f| f["events"].as_u64().unwrap())
        .sum();
    assert_eq!(
        failed,
        sent - acked,
        "every missing event has a reason: {report}"
    );
}

/// Replays the log through a fresh Mosquitto to a server reading it (with `serve_args` besides
/// `--mqtt`), and checks the report against the server as over HTTP.
fn mqtt_replay_and_check(name: &str, serve_args: &[&str], extra: &[&str]) -> Server {
    let bin = mosquitto();
    let dir = Scratch::new(name);
    let broker = Broker::start(&bin, &format!("replay-{name}"));
    let url = broker.url();
    let mut args = vec!["--mqtt", &url];
    args.extend_from_slice(serve_args);
    let server = Server::start(&args, &[]);
    let http = format!("http://{}", server.addr);
    let mut replay_args = vec!["--http", &http];
    replay_args.extend_from_slice(extra);
    replay_and_check(&dir, &server, &url, &replay_args);
    server
}

#[test]
#[ignore = "needs mosquitto; run with: cargo test --release --test integration -- --ignored mqtt:: replay::"]
fn mqtt_replay_counts_equal_the_servers_and_latencies_are_ordered() {
    mqtt_replay_and_check("mqtt", &[], &["--timeout", "10s"]);
}

/// Over MQTT a server that is behind takes its next message later (the broker holds it and the
/// PUBACK comes later) instead of answering 429: every line still arrives exactly once, and
/// `/metrics` shows the time it waited.
#[test]
#[ignore = "needs mosquitto; run with: cargo test --release --test integration -- --ignored mqtt:: replay::"]
fn mqtt_ingest_held_back_by_max_lag_loses_nothing() {
    let dir = Scratch::new("mqtt-lag-config");
    let config = behind_config(&dir);
    let server = mqtt_replay_and_check(
        "mqtt-lag",
        &["--config", config.to_str().unwrap()],
        &["--timeout", "20s", "--rate", "100000"],
    );
    let metrics = get(&server.addr, "/metrics");
    assert!(
        metric(&metrics, "tidemark_mqtt_held_back_milliseconds_total") > 0,
        "a server 1 ms behind holds MQTT ingest back: {metrics}"
    );
    assert_eq!(metric(&metrics, "tidemark_ingest_pushed_back_total"), 0);
}
