//! Crashes and stops against the real binary: SIGKILL at random moments while a client sends a
//! log with retries, then the served snapshot equals `compute` on the log and no firing reaches
//! its webhook under two keys or goes missing; SIGTERM with clients connected and the output
//! pipe closed exits 0 quickly and loses nothing acknowledged.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common;
use crate::common::receiver::Receiver;
use crate::common::server::{
    binary, compute_with_firings, fresh_data_dir, generated, get_json, unpaid_rule_config, Server,
};
use serde_json::Value;

/// SIGKILLs in the test run (the bench variant, benches/crash.sh, does 50).
fn kills() -> usize {
    std::env::var("TIDEMARK_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

fn config(hook: &str) -> std::path::PathBuf {
    unpaid_rule_config(hook, "checkpoint_every = 1000\n")
}

/// A tiny deterministic generator for kill moments and chunk sizes.
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Posts one chunk until the server answers 200 (across kills and restarts); the address is
/// read again before every attempt.
async fn deliver(client: &reqwest::Client, addr: &Mutex<String>, body: &str) -> u64 {
    loop {
        let url = format!("http://{}/v1/events", addr.lock().unwrap());
        let sent = client
            .post(&url)
            .header("Content-Type", "application/x-ndjson")
            .body(body.to_string())
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        if let Ok(resp) = sent {
            if resp.status().is_success() {
                let answer: Value = resp.json().await.unwrap_or_default();
                if answer.get("accepted").is_some() {
                    return answer["accepted"].as_u64().unwrap();
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_doubles_nothing() {
    let hook = Receiver::start(&[]);
    let cfg = config(&hook.url("/coupon"));
    let lines = generated(400, 14);
    let (want, want_keys) = compute_with_firings(&lines, &cfg);
    assert!(
        want_keys.len() >= 5,
        "the log makes too few firings to test: {}",
        want_keys.len()
    );
    let data = fresh_data_dir();
    let cfg_arg = cfg.to_str().unwrap().to_string();
    let first = Server::start_in(&data, &["--config", &cfg_arg], &[]);
    let addr = Arc::new(Mutex::new(first.addr.clone()));
    let server = Arc::new(Mutex::new(first));
    let done = Arc::new(AtomicBool::new(false));
    let killed = Arc::new(AtomicUsize::new(0));
    let target = kills();

    // The killer: SIGKILL at a random moment, restart on the same data directory, repeat.
    let killer = {
        let (addr, server, done, killed) =
            (addr.clone(), server.clone(), done.clone(), killed.clone());
        let (data, cfg_arg) = (data.clone(), cfg_arg.clone());
        std::thread::spawn(move || {
            let mut rng = Lcg(0x5eed);
            while killed.load(Ordering::SeqCst) < target || !done.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(80 + rng.below(400)));
                let mut s = server.lock().unwrap();
                let _ = s.child.kill(); // SIGKILL
                let _ = s.child.wait();
                killed.fetch_add(1, Ordering::SeqCst);
                *s = Server::start_in(&data, &["--config", &cfg_arg], &[]);
                *addr.lock().unwrap() = s.addr.clone();
            }
        })
    };

    let client = reqwest::Client::new();
    let mut rng = Lcg(7);
    let mut i = 0;
    let mut accepted = 0;
    let started = Instant::now();
    while i < lines.len() {
        let n = 1 + usize::try_from(rng.below(60)).unwrap();
        let chunk = &lines[i..(i + n).min(lines.len())];
        accepted += deliver(&client, &addr, &(chunk.join("\n") + "\n")).await;
        i += chunk.len();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    done.store(true, Ordering::SeqCst);
    killer.join().unwrap();
    let kills = killed.load(Ordering::SeqCst);
    assert!(kills >= target, "{kills} kills");
    eprintln!(
        "sent {} events in {:.1?} across {kills} SIGKILLs ({accepted} answered as accepted)",
        lines.len(),
        started.elapsed()
    );

    let url = format!("http://{}/v1/snapshot", addr.lock().unwrap());
    let mut got = get_json(&client, &url).await;
    // Resends after a kill are answered as duplicates: only those counts may differ.
    assert_eq!(
        got["events"]["accepted"], want["events"]["accepted"],
        "every acknowledged event counted exactly once"
    );
    got["events"]["duplicates"] = want["events"]["duplicates"].clone();
    let diffs = common::differences(&want, &got);
    assert!(
        diffs.is_empty(),
        "{} differences after {kills} kills, first: {:?}",
        diffs.len(),
        &diffs[..diffs.len().min(10)]
    );

    // Every firing reaches the webhook, under its own key; a resend after a kill carries the
    // same key, so a receiver that dedupes on it runs each firing once.
    let firing_keys = || -> (BTreeSet<String>, usize) {
        let got = hook.received();
        let firings: Vec<_> = got
            .iter()
            .filter(|r| r.body["kind"] == "firing")
            .filter_map(|r| r.key.clone())
            .collect();
        let n = firings.len();
        (firings.into_iter().collect(), n)
    };
    hook.wait_for(Duration::from_secs(30), "every firing", |_| {
        firing_keys().0.len() >= want_keys.len()
    });
    let (keys, deliveries) = firing_keys();
    let decode = |k: &String| {
        percent_encoding::percent_decode_str(k)
            .decode_utf8_lossy()
            .to_string()
    };
    let keys: BTreeSet<String> = keys.iter().map(decode).collect();
    assert_eq!(keys, want_keys, "the firings delivered are compute's");
    let retractions = hook
        .received()
        .iter()
        .filter(|r| r.body["kind"] == "retraction")
        .count();
    assert_eq!(retractions, 0, "no firing was taken back");
    eprintln!(
        "{} firings delivered in {deliveries} requests ({} resent after a kill, same key)",
        keys.len(),
        deliveries - keys.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_clients_connected_and_the_pipe_closed_exits_quickly_and_keeps_everything() {
    let lines = generated(100, 7);
    let data = fresh_data_dir();
    let mut s = start_with_stderr_closed(&data);
    let client = reqwest::Client::new();
    let body = lines.join("\n") + "\n";
    let answer: Value = client
        .post(s.url("/v1/events"))
        .header("Content-Type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let accepted = answer["accepted"].as_u64().unwrap();
    assert!(accepted > 100);
    let before = get_json(&client, &s.url("/v1/snapshot")).await;
    // A subscriber and an idle keep-alive connection stay open; stderr's reader goes away.
    let stream = client
        .get(s.url("/v1/stream?metric=dau"))
        .send()
        .await
        .unwrap();
    let idle = std::net::TcpStream::connect(&s.addr).unwrap();
    let started = Instant::now();
    let status = s.terminate(Duration::from_secs(5));
    let status = status.expect("serve exits within 5 s of SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    eprintln!("stopped in {:.2?}", started.elapsed());
    drop((stream, idle));
    assert!(data.join("checkpoint").exists(), "a checkpoint at the stop");

    let s = Server::start_in(&data, &[], &[]);
    let after = get_json(&client, &s.url("/v1/snapshot")).await;
    assert_eq!(after["events"]["accepted"].as_u64(), Some(accepted));
    let diffs = common::differences(&before, &after);
    assert!(diffs.is_empty(), "{:?}", &diffs[..diffs.len().min(10)]);
}

/// Starts serve on `data` and closes the read end of its stderr pipe once it listens, as a
/// supervisor whose log pipe went away would.
fn start_with_stderr_closed(data: &std::path::Path) -> Server {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut addr = None;
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if let Some(rest) = line.strip_prefix("tidemark: listening on ") {
            addr = rest.split_whitespace().next().map(String::from);
            break;
        }
    }
    // The reader (and with it the pipe's read end) is gone here; stdout's goes too.
    drop(child.stdout.take());
    Server {
        child,
        addr: addr.expect("serve says where it listens"),
        data: data.to_path_buf(),
    }
}
