//! The HTTP sender: one task per connection takes due batches and POSTs them as NDJSON to
//! `/v1/events`; the answer's counts and `time` feed the counters and the latency tracker.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use super::{Queue, Shared};

/// Where and how to POST.
#[derive(Clone)]
pub struct HttpTarget {
    pub client: reqwest::Client,
    /// `http://HOST:PORT/v1/events`
    pub url: String,
    pub token: Option<String>,
    pub timeout: Duration,
}

/// The answer of `POST /v1/events`.
#[derive(serde::Deserialize)]
struct Answer {
    accepted: u64,
    duplicates: u64,
    rejected: u64,
    time: u64,
}

/// Sends batches from the queue until it is closed and empty.
pub async fn sender(target: HttpTarget, queue: Queue, shared: Arc<Shared>) {
    while let Some(batch) = queue.next().await {
        let events = batch.events.len() as u64;
        let body = shared.log.ndjson(batch.events.clone());
        let sent = shared.note_sent(batch.events);
        // A 429 says the server is behind and took none of the batch: it goes again after the
        // server's `Retry-After`, with its latency still counted from the first send.
        loop {
            let request = post(
                &target.client,
                &target.url,
                target.token.as_deref(),
                target.timeout,
            );
            match request.body(body.clone()).send().await {
                Ok(response) if response.status() == StatusCode::TOO_MANY_REQUESTS => {
                    shared.counters.pushed_back.fetch_add(1, Relaxed);
                    tokio::time::sleep(retry_after(&response)).await;
                    continue;
                }
                Ok(response) => answer(response, events, sent, &target, &shared).await,
                Err(e) => failed(
                    &shared,
                    &target,
                    events,
                    &e,
                    "connection",
                    "is tidemark serve running at the target?",
                ),
            }
            break;
        }
    }
}

/// How long to wait after a 429: the server's `Retry-After` seconds (1 when absent, at most
/// 60), spread over 50-150% so that the connections that were turned away together do not
/// come back together.
fn retry_after(response: &reqwest::Response) -> Duration {
    let seconds = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(1)
        .clamp(1, 60);
    let spread = 0.5 + f64::from(getrandom::u32().unwrap_or(0) % 1000) / 1000.0;
    Duration::from_secs(seconds).mul_f64(spread)
}

/// `POST url` of NDJSON, with the timeout and the ingest token if any.
fn post(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    timeout: Duration,
) -> reqwest::RequestBuilder {
    let request = client
        .post(url)
        .header("content-type", "application/x-ndjson")
        .timeout(timeout);
    match token {
        Some(t) => request.bearer_auth(t),
        None => request,
    }
}

/// Counts a request that got no complete answer: a timeout, or a `kind` failure with `advice`.
fn failed(
    shared: &Shared,
    target: &HttpTarget,
    events: u64,
    e: &reqwest::Error,
    kind: &str,
    advice: &'static str,
) {
    if e.is_timeout() {
        shared.counters.failed(
            "timeout",
            1,
            events,
            format!("no complete answer within {:?}", target.timeout),
            Some("the server is overloaded; lower --rate or raise --timeout"),
        )
    } else {
        shared
            .counters
            .failed(kind, 1, events, error_chain(e), Some(advice))
    }
}

async fn answer(
    response: reqwest::Response,
    events: u64,
    sent: Instant,
    target: &HttpTarget,
    shared: &Shared,
) {
    let status = response.status();
    if status != StatusCode::OK {
        let body = response.text().await.unwrap_or_default();
        let detail = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(String::from))
            .unwrap_or(body);
        let advice = match status {
            StatusCode::PAYLOAD_TOO_LARGE => {
                Some("the request body is over the server's serve.max_body; lower --batch")
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Some("give the ingest token with --token or TIDEMARK_INGEST_TOKEN")
            }
            _ => None,
        };
        shared.counters.failed(
            &format!("HTTP {}", status.as_u16()),
            1,
            events,
            detail,
            advice,
        );
        return;
    }
    match response.json::<Answer>().await {
        Ok(a) => {
            shared
                .counters
                .ack(events, a.accepted, a.duplicates, a.rejected);
            // A batch with nothing accepted changes no row, so no progress mark measures it:
            // it gives no latency sample (duplicates alone would read as 0 ms).
            let measured = if a.accepted > 0 { events } else { 0 };
            shared
                .tracker
                .lock()
                .expect("tracker lock")
                .acknowledged(a.time, sent, measured);
        }
        Err(e) => failed(
            shared,
            target,
            events,
            &e,
            "bad answer",
            "is the target a tidemark server?",
        ),
    }
}

/// An error with its causes, e.g. "error sending request: connection refused".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Posts an empty batch: the answer's time is one at which everything the server has received
/// so far is reflected.
pub async fn reflected_time(
    client: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Option<u64> {
    let request = post(client, &format!("{base}/v1/events"), token, timeout).body("");
    let answer = request.send().await.ok()?.error_for_status().ok()?;
    answer.json::<Answer>().await.ok().map(|a| a.time)
}
