//! One far-future event in `serve` is rejected as `future_timestamp`, counted and dead-lettered,
//! and leaves the clock and every row as they were; `compute` keeps the log's own clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::server::{compute, metrics_text, Server};
use serde_json::Value;

fn now_ms() -> i64 {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    i64::try_from(ms).unwrap()
}

/// Persons entering the purchase funnel over the last hours: open funnel entries at the clock.
fn recent_log() -> Vec<String> {
    let now = now_ms();
    (0..40)
        .map(|i| {
            let event = ["product_view", "add_to_cart", "page_view", "register"][i % 4];
            format!(
                r#"{{"id":"r-{i}","ts":{},"event":"{event}","ids":{{"openid":"p{}"}}}}"#,
                now - 3_600_000 + i as i64 * 60_000,
                i / 2
            )
        })
        .collect()
}

const FUTURE: &str = r#"{"id":"far-future","ts":"2100-12-31T12:00:00Z","event":"product_view","ids":{"openid":"p1"}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_far_future_event_leaves_the_clock_and_rows_untouched() {
    let dir = std::env::temp_dir().join(format!("tidemark-future-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let letters = dir.join("rejects.ndjson");
    let config = dir.join("serve.toml");
    std::fs::write(
        &config,
        format!(
            "[serve]\ndead_letter = {:?}\n",
            letters.display().to_string()
        ),
    )
    .unwrap();
    let server = Server::start(&["--config", config.to_str().unwrap()], &[]);
    let client = reqwest::Client::new();
    let post = |body: String| {
        let client = client.clone();
        let url = server.url("/v1/events");
        async move {
            let r = client
                .post(url)
                .header("content-type", "application/x-ndjson")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let snapshot = || {
        let client = client.clone();
        let url = server.url("/v1/snapshot");
        async move {
            client
                .get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let report = post(recent_log().join("\n")).await;
    assert_eq!(report["accepted"], 40, "{report}");
    let before = snapshot().await;
    let open: u64 = before["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["metric"] == "funnel_open")
        .map(|r| r["value"].as_u64().unwrap())
        .sum();
    assert!(
        open > 0,
        "funnel entries are open at the clock: {}",
        before["extensions"]
    );

    let report = post(FUTURE.to_string()).await;
    assert_eq!(report["accepted"], 0, "{report}");
    assert_eq!(
        report["issues"][0]["reason"], "future_timestamp",
        "{report}"
    );
    let after = snapshot().await;
    assert_eq!(after["clock"], before["clock"], "the clock stays");
    assert_eq!(
        after["rows"], before["rows"],
        "every row stays, today's too"
    );
    assert_eq!(
        after["extensions"], before["extensions"],
        "open funnel entries do not turn into dropped ones"
    );
    assert_eq!(after["events"]["rejected"]["future_timestamp"], 1);
    let metrics = metrics_text(&client, &server).await;
    assert!(
        metrics.contains("tidemark_events_rejected_total{reason=\"future_timestamp\"} 1"),
        "{metrics}"
    );
    // The dead-letter file keeps the input, written by its own thread.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let kept = loop {
        let text = std::fs::read_to_string(&letters).unwrap_or_default();
        if !text.is_empty() || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let record: Value = serde_json::from_str(kept.lines().next().expect("one record")).unwrap();
    assert_eq!(record["reason"], "future_timestamp");
    assert_eq!(record["source"], "http");
    assert_eq!(record["input"], FUTURE);

    // A log's clock is its own: compute takes the same event.
    let mut log = recent_log();
    log.push(FUTURE.to_string());
    let computed = compute(&log, None);
    assert_eq!(computed["events"]["accepted"], 41);
    assert!(
        computed["clock"]
            .as_str()
            .unwrap()
            .starts_with("2100-12-31"),
        "{}",
        computed["clock"]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
