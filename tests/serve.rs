//! `tidemark serve` over real HTTP: ingest answers, SSE and WebSocket feeds, the snapshot equal
//! to `tidemark compute`, status codes for bad requests and tokens, and graceful shutdown.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common;
use crate::common::server::{compute, generated, Server};
use futures_util::StreamExt;
use serde_json::{json, Value};

type State = BTreeMap<(String, String), Value>;

fn key(m: &Value) -> (String, String) {
    let dims: BTreeMap<String, Value> = serde_json::from_value(m["dims"].clone()).unwrap();
    (
        m["metric"].as_str().unwrap().to_string(),
        serde_json::to_string(&dims).unwrap(),
    )
}

/// Applies one subscription message; returns its progress mark, if it is one.
fn apply(state: &mut State, m: &Value) -> Option<u64> {
    if let Some(p) = m.get("progress") {
        return p.as_u64();
    }
    if m.get("resync").is_some() {
        state.clear();
    } else if m.get("metric").is_some() {
        if m["value"].is_null() {
            state.remove(&key(m));
        } else {
            state.insert(key(m), m["value"].clone());
        }
    } else {
        panic!("unexpected message {m}");
    }
    None
}

/// Every row and extension row of a snapshot, keyed like subscription state.
fn all_rows(snapshot: &Value) -> State {
    let mut out = State::new();
    for section in ["rows", "extensions"] {
        for r in snapshot[section].as_array().into_iter().flatten() {
            out.insert(key(r), r["value"].clone());
        }
    }
    out
}

/// `GET url` as JSON.
async fn get_json(client: &reqwest::Client, url: String) -> Value {
    let r = client
        .get(url)
        .send()
        .await
        .expect("GET reaches the server");
    r.json().await.expect("a JSON answer")
}

async fn post(client: &reqwest::Client, url: &str, ctype: &str, body: String) -> reqwest::Response {
    client
        .post(url)
        .header("content-type", ctype)
        .body(body)
        .send()
        .await
        .expect("POST reaches the server")
}

/// Reads SSE messages into a state until a progress mark reaches `until`.
async fn sse_until(resp: reqwest::Response, until: u64) -> (State, usize) {
    let mut state = State::new();
    let mut buf = String::new();
    let mut count = 0;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        buf.push_str(std::str::from_utf8(&chunk.expect("stream chunk")).unwrap());
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            for line in event.lines() {
                if let Some(data) = line.strip_prefix("data:") {
                    count += 1;
                    let m: Value = serde_json::from_str(data.trim()).unwrap();
                    if apply(&mut state, &m).is_some_and(|p| p >= until) {
                        return (state, count);
                    }
                }
            }
        }
    }
    panic!("the SSE stream ended before progress {until}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_over_http_reach_sse_and_websocket_and_the_snapshot_equals_compute() {
    let lines = generated(250, 10);
    let server = Server::start(&[], &[]);
    let client = reqwest::Client::new();
    let sse = client
        .get(server.url("/v1/subscribe"))
        .send()
        .await
        .expect("SSE subscription");
    assert_eq!(sse.status(), 200);
    let ws_url = format!("ws://{}/v1/ws", server.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url)
        .await
        .expect("WebSocket subscription");
    let dau_only = client
        .get(server.url("/v1/subscribe?metric=dau"))
        .send()
        .await
        .expect("filtered subscription");

    // Half as NDJSON chunks, half as JSON arrays; a bad line in the middle loses nothing else.
    let (first, second) = lines.split_at(lines.len() / 2);
    let mut last_time = 0;
    let mut sent = Vec::new();
    for chunk in first.chunks(700) {
        let mut body = chunk.join("\n");
        body.push_str("\n{this is not json\n");
        let answer: Value = post(
            &client,
            &server.url("/v1/events"),
            "application/x-ndjson",
            body,
        )
        .await
        .json()
        .await
        .unwrap();
        let issues = answer["issues"].as_array().unwrap();
        let bad = issues
            .iter()
            .find(|i| i["index"] == chunk.len())
            .expect("the bad line is reported by index");
        assert_eq!(bad["reason"], "malformed_json", "{bad}");
        last_time = last_time.max(answer["time"].as_u64().unwrap());
        sent.extend(chunk.iter().cloned());
        sent.push("{this is not json".to_string());
    }
    for chunk in second.chunks(700) {
        let body = format!("[{}]", chunk.join(","));
        let answer: Value = post(&client, &server.url("/v1/events"), "application/json", body)
            .await
            .json()
            .await
            .unwrap();
        let total = ["accepted", "duplicates", "rejected"]
            .iter()
            .map(|k| answer[k].as_u64().unwrap())
            .sum::<u64>();
        assert_eq!(usize::try_from(total).unwrap(), chunk.len(), "{answer}");
        last_time = last_time.max(answer["time"].as_u64().unwrap());
        sent.extend(chunk.iter().cloned());
    }
    let snapshot: Value = get_json(&client, server.url("/v1/snapshot")).await;
    let expected = compute(&sent, None);
    let diff = common::differences(&expected, &snapshot);
    assert!(
        diff.is_empty(),
        "served snapshot differs from compute: {diff:#?}"
    );
    assert_eq!(snapshot["events"], expected["events"]);
    assert_eq!(snapshot["clock"], expected["clock"]);

    let want = all_rows(&snapshot);
    let (via_sse, messages) =
        tokio::time::timeout(Duration::from_secs(60), sse_until(sse, last_time))
            .await
            .expect("SSE reaches the last batch's progress");
    assert!(
        messages > want.len(),
        "the feed carried changes, not only a snapshot"
    );
    assert_eq!(
        via_sse, want,
        "rows built from SSE deltas equal the snapshot"
    );

    let mut via_ws = State::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("WebSocket reaches the last batch's progress")
            .expect("WebSocket open")
            .expect("WebSocket frame");
        if let tokio_tungstenite::tungstenite::Message::Text(text) = msg {
            let m: Value = serde_json::from_str(&text).unwrap();
            if apply(&mut via_ws, &m).is_some_and(|p| p >= last_time) {
                break;
            }
        }
    }
    assert_eq!(
        via_ws, want,
        "rows built from WebSocket deltas equal the snapshot"
    );

    let (dau, _) = sse_until(dau_only, last_time).await;
    let want_dau: State = want.into_iter().filter(|(k, _)| k.0 == "dau").collect();
    assert!(!want_dau.is_empty());
    assert_eq!(
        dau, want_dau,
        "a metric filter gets that metric's rows only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_statuses_that_say_what_to_do() {
    let dir = std::env::temp_dir().join(format!("tidemark-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("small.toml");
    std::fs::write(&config, "[serve]\nmax_body = \"2KiB\"\n").unwrap();
    let server = Server::start(&["--config", config.to_str().unwrap()], &[]);
    let client = reqwest::Client::new();
    let url = server.url("/v1/events");
    let event = r#"{"id":"a1","ts":1790812800000,"event":"page_view","ids":{"openid":"o1"}}"#;

    let r = post(&client, &url, "text/csv", event.into()).await;
    assert_eq!(r.status(), 415);
    let r = post(
        &client,
        &url,
        "application/x-ndjson",
        format!("{event}\n").repeat(40),
    )
    .await;
    assert_eq!(r.status(), 413, "a body over serve.max_body");
    let r = post(&client, &url, "application/json", format!("[{event},")).await;
    assert_eq!(r.status(), 400);
    assert!(
        r.text().await.unwrap().contains("x-ndjson"),
        "says how to send lines instead"
    );
    for bare in ["42", "\"x\"", "null", "true", " ", ""] {
        let r = post(&client, &url, "application/json", bare.into()).await;
        assert_eq!(
            r.status(),
            400,
            "a JSON body {bare:?} is not an object or array"
        );
    }
    let r = post(&client, &url, "application/json", "{oops".into()).await;
    assert_eq!(r.status(), 200, "a broken object is one malformed event");
    let r = post(&client, &url, "application/json", event.into()).await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["accepted"], 1);
    let icon = client.get(server.url("/favicon.ico")).send().await.unwrap();
    assert_eq!(icon.status(), 200);
    assert_eq!(icon.headers()["content-type"], "image/svg+xml");
    assert!(icon.text().await.unwrap().starts_with("<svg"));
    let r = client
        .get(server.url("/v1/rows?metric=no_such_metric"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let rows: Value = get_json(&client, server.url("/v1/rows?metric=dau&day=2026-10-01")).await;
    assert_eq!(
        rows,
        json!({"rows": [{"metric": "dau", "dims": {"day": "2026-10-01"}, "value": 1}]})
    );
    let who: Value = get_json(&client, server.url("/v1/identities/openid/o1")).await;
    assert_eq!(
        who["identities"],
        json!([{"type": "openid", "value": "o1"}])
    );
    let r = client
        .get(server.url("/v1/identities/openid/nobody"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_guard_ingest_and_reads_and_the_server_stops_on_sigterm() {
    let ingest = "ingest-0123456789abcdef";
    let read = "read-0123456789abcdef";
    let mut server = Server::start(
        &[],
        &[
            ("TIDEMARK_INGEST_TOKEN", ingest),
            ("TIDEMARK_READ_TOKEN", read),
        ],
    );
    let client = reqwest::Client::new();
    let event = r#"{"id":"a1","ts":1790812800000,"event":"page_view","ids":{"openid":"o1"}}"#;
    let url = server.url("/v1/events");
    let r = post(&client, &url, "application/json", event.into()).await;
    assert_eq!(r.status(), 401, "ingest without a token");
    let r = client
        .post(&url)
        .bearer_auth(read)
        .header("content-type", "application/json")
        .body(event)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the read token does not ingest");
    let r = client
        .post(&url)
        .bearer_auth(ingest)
        .header("content-type", "application/json")
        .body(event)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for path in ["/v1/snapshot", "/v1/rows", "/metrics", "/v1/subscribe", "/"] {
        let r = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} without a token");
    }
    let r = client
        .get(server.url(&format!("/metrics?token={read}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("tidemark_events_accepted_total 1"), "{text}");
    let page = client
        .get(server.url(&format!("/?token={read}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let cookie = page.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("tidemark_token=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let r = client
        .get(server.url("/v1/rows"))
        .header("cookie", cookie.split(';').next().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the cookie the page got reads");

    // An open subscription does not keep the server from stopping.
    let _sse = client
        .get(server.url(&format!("/v1/subscribe?token={read}")))
        .send()
        .await
        .unwrap();
    let status = server
        .terminate(Duration::from_secs(10))
        .expect("stops within 10 s of SIGTERM");
    assert!(status.success(), "{status:?}");
}
