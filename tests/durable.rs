//! Storage faults against the real binary: a torn tail is cut and start-up goes on; a flipped
//! bit or a missing segment stops start-up with the file, the offset and `tidemark repair`, which
//! keeps what precedes the damage; a full disk answers 503 and loses nothing answered 200; events
//! beyond the horizon are rejected and counted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common;
use crate::common::server::{
    binary, config_file, fresh_data_dir, generated, get_json, metrics_text, Server,
};
use serde_json::Value;

/// A config with small log segments, so that a few requests make several.
fn small_segments() -> PathBuf {
    config_file("[serve]\nwal_segment = \"4KiB\"\ncheckpoint_every = 1000000\n")
}

fn segments(data: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// Posts `lines` in requests of `per` events; returns the events answered as accepted.
async fn send(client: &reqwest::Client, s: &Server, lines: &[String], per: usize) -> u64 {
    let mut accepted = 0;
    for chunk in lines.chunks(per) {
        let lines: Vec<String> = chunk.to_vec();
        let answer = crate::common::server::post_lines(client, &s.url("/v1/events"), &lines).await;
        accepted += answer["accepted"].as_u64().unwrap();
    }
    accepted
}

/// Starts serve on `data` expecting it to refuse: returns what it printed.
fn start_fails(data: &Path, cfg: &Path) -> String {
    let out = Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .arg("--config")
        .arg(cfg)
        .output()
        .unwrap();
    assert!(!out.status.success(), "serve started on a damaged log");
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn repair(data: &Path) -> String {
    let out = Command::new(binary())
        .args(["repair", "--data"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A data directory filled with a generated log by a server that was then SIGKILLed: the
/// directory, the log and the events answered as accepted.
async fn filled_then_killed(cfg_arg: &str) -> (PathBuf, Vec<String>, u64) {
    let lines = generated(50, 7);
    let data = fresh_data_dir();
    let mut s = Server::start_in(&data, &["--config", cfg_arg], &[]);
    let n = send(&reqwest::Client::new(), &s, &lines, 40).await;
    let _ = s.child.kill();
    let _ = s.child.wait();
    (data, lines, n)
}

async fn accepted(client: &reqwest::Client, s: &Server) -> u64 {
    get_json(client, &s.url("/v1/snapshot")).await["events"]["accepted"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_torn_last_record_is_cut_and_everything_before_it_comes_back() {
    let cfg = small_segments();
    let cfg_arg = cfg.to_str().unwrap();
    let (data, _, n) = filled_then_killed(cfg_arg).await;
    let c = reqwest::Client::new();
    // Half a record's header at the end: what a crash in the middle of a write leaves.
    let last = segments(&data).pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    bytes.extend_from_slice(&[0x5a, 0, 0, 9, 0, 0, 0]);
    std::fs::write(&last, bytes).unwrap();
    let s = Server::start_in(&data, &["--config", cfg_arg], &[]);
    assert_eq!(accepted(&c, &s).await, n);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flipped_bit_stops_start_up_until_repair_keeps_what_precedes_it() {
    let cfg = small_segments();
    let cfg_arg = cfg.to_str().unwrap();
    let (data, lines, n) = filled_then_killed(cfg_arg).await;
    let c = reqwest::Client::new();
    let segs = segments(&data);
    assert!(segs.len() >= 3, "{} segments", segs.len());
    let victim = &segs[1];
    let mut bytes = std::fs::read(victim).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    std::fs::write(victim, bytes).unwrap();

    let said = start_fails(&data, &cfg);
    let name = victim.file_name().unwrap().to_str().unwrap();
    assert!(
        said.contains(name) && said.contains("byte") && said.contains("tidemark repair --data"),
        "{said}"
    );
    let report = repair(&data);
    assert!(report.contains("kept") && report.contains(name), "{report}");
    let s = Server::start_in(&data, &["--config", cfg_arg], &[]);
    let kept = accepted(&c, &s).await;
    assert!(kept > 0 && kept < n, "kept {kept} of {n}");
    // What was dropped can be sent again: it is new to the server, the rest are duplicates.
    let again = send(&c, &s, &lines, 200).await;
    assert_eq!(kept + again, n);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_segment_stops_start_up_until_repair_keeps_what_precedes_it() {
    let cfg = small_segments();
    let cfg_arg = cfg.to_str().unwrap();
    let (data, _, n) = filled_then_killed(cfg_arg).await;
    let c = reqwest::Client::new();
    let segs = segments(&data);
    assert!(segs.len() >= 3, "{} segments", segs.len());
    std::fs::remove_file(&segs[1]).unwrap();
    let said = start_fails(&data, &cfg);
    assert!(
        said.contains("missing") && said.contains("tidemark repair --data"),
        "{said}"
    );
    let report = repair(&data);
    assert!(report.contains("dropped"), "{report}");
    let s = Server::start_in(&data, &["--config", cfg_arg], &[]);
    let kept = accepted(&c, &s).await;
    assert!(kept > 0 && kept < n, "kept {kept} of {n}");
}

/// Starts serve with a file size limit of `limit` bytes (a full disk, as a file sees it).
fn start_limited(data: &Path, cfg: &Path, limit: u64) -> Server {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(binary());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .arg("--config")
        .arg(cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let l = libc::rlimit {
                rlim_cur: limit,
                rlim_max: libc::RLIM_INFINITY,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &l) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Server::spawn(cmd, data)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_answers_503_and_loses_nothing_answered_200() {
    let cfg = config_file("[serve]\ncheckpoint_every = 1000000\n");
    let lines = generated(100, 7);
    let data = fresh_data_dir();
    let c = reqwest::Client::new();
    let mut s = start_limited(&data, &cfg, 64 << 10);
    let mut ok = 0u64;
    let mut refused = None;
    for chunk in lines.chunks(25) {
        let resp = c
            .post(s.url("/v1/events"))
            .header("Content-Type", "application/x-ndjson")
            .body(chunk.join("\n") + "\n")
            .send()
            .await
            .unwrap();
        if resp.status() == 503 {
            refused = Some(resp.text().await.unwrap());
            break;
        }
        assert_eq!(resp.status(), 200);
        ok += resp.json::<Value>().await.unwrap()["accepted"]
            .as_u64()
            .unwrap();
    }
    let refused = refused.expect("the log fills its 64 KiB and ingest is refused");
    assert!(
        refused.contains("could not be stored") && refused.contains("full"),
        "{refused}"
    );
    assert!(ok > 0);
    let metrics = metrics_text(&c, &s).await;
    assert!(metrics.contains("tidemark_wal_failing 1"), "{metrics}");
    // Reads go on while ingest is refused.
    assert!(accepted(&c, &s).await >= ok);

    // Space again: the kept records are written by the next retry and ingest reopens.
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: prlimit on a child process of this test with a valid limit.
    let r = unsafe {
        libc::prlimit(
            s.child.id() as i32,
            libc::RLIMIT_FSIZE,
            &unlimited,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(r, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let total = loop {
        let resp = c
            .post(s.url("/v1/events"))
            .header("Content-Type", "application/x-ndjson")
            .body(lines.join("\n") + "\n")
            .send()
            .await
            .unwrap();
        if resp.status() == 200 {
            let a: Value = resp.json().await.unwrap();
            break a["accepted"].as_u64().unwrap() + a["duplicates"].as_u64().unwrap();
        }
        assert!(Instant::now() < deadline, "ingest did not reopen");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(total, lines.len() as u64);
    let want = accepted(&c, &s).await;
    let _ = s.child.kill();
    let _ = s.child.wait();
    let s = Server::start_in(&data, &["--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(
        accepted(&c, &s).await,
        want,
        "everything answered 200 is back"
    );
    let expected = common::server::compute(&lines, None);
    assert_eq!(want, expected["events"]["accepted"].as_u64().unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn events_beyond_the_horizon_are_rejected_counted_and_kept_out() {
    let cfg = config_file("[serve]\nhorizon = \"2d\"\n");
    let s = Server::start(&["--config", cfg.to_str().unwrap()], &[]);
    let c = reqwest::Client::new();
    let ev = |id: &str, day: u32| {
        format!(
            r#"{{"id":"{id}","ts":"2026-10-{day:02}T12:00:00Z","event":"page_view","user":"u{id}"}}"#
        )
    };
    let body = [ev("a", 10), ev("b", 8), ev("c", 7), ev("d", 9)].join("\n") + "\n";
    let answer: Value = c
        .post(s.url("/v1/events"))
        .header("Content-Type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["accepted"], 3, "{answer}");
    assert_eq!(answer["issues"][0]["index"], 2);
    assert_eq!(answer["issues"][0]["reason"], "beyond_horizon");
    let snap = get_json(&c, &s.url("/v1/snapshot")).await;
    assert_eq!(snap["events"]["rejected"]["beyond_horizon"], 1);
    let days: Vec<&str> = snap["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["metric"] == "dau")
        .map(|r| r["dims"]["day"].as_str().unwrap())
        .collect();
    assert_eq!(days, ["2026-10-08", "2026-10-09", "2026-10-10"]);
}
