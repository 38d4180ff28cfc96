//! Release-to-receipt latency of rule firings: a webhook receiver run beside the replay, which
//! dates each firing's release by the send of the event that made it due.
//!
//! With `serve.clock = "event"` a firing becomes due when the server learns that its release
//! time `at` has passed: at the first event (in send order) whose time reaches `at`, or at its
//! trigger when that came later (a late trigger fires on arrival). The replay knows when it
//! sent each event, so the latency of a firing is its receipt minus that send.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use foldhash::HashMap;
use hdrhistogram::Histogram;
use tracing::Instrument;

use super::{Latency, Log};
use crate::event::{parse_event, Limits};

/// When each event of the log was sent, and what it tells the server's clock.
pub struct Releases {
    /// Per event: the largest `ts` of the log up to and including it (ms).
    clock: Vec<i64>,
    /// Event id to its first index, to find a firing's trigger.
    index: HashMap<Box<str>, usize>,
    /// Per event: nanoseconds from `origin` to its send, plus one; 0 while unsent.
    sent: Vec<AtomicU64>,
    /// Any instant before the first send: the zero of `sent`.
    origin: Instant,
}

impl Releases {
    /// Reads every event's time and id (before the replay starts: it takes a while).
    pub fn new(log: &Log, limits: &Limits) -> Releases {
        let mut latest = i64::MIN;
        let mut index = HashMap::default();
        let mut clock = Vec::with_capacity(log.lines.len());
        for (i, line) in log.lines.iter().enumerate() {
            if let Some(e) = std::str::from_utf8(line)
                .ok()
                .and_then(|t| parse_event(t, limits).ok())
            {
                latest = latest.max(e.ts);
                index.entry(Box::from(e.id.as_ref())).or_insert(i);
            }
            clock.push(latest);
        }
        let sent = (0..clock.len()).map(|_| AtomicU64::new(0)).collect();
        Releases {
            clock,
            index,
            sent,
            origin: Instant::now(),
        }
    }

    /// Notes that `events` went out at `at`.
    pub fn note_sent(&self, events: Range<usize>, at: Instant) {
        let nanos = crate::time::nanos(at.saturating_duration_since(self.origin)).saturating_add(1);
        for s in &self.sent[events] {
            s.store(nanos, Relaxed);
        }
    }

    fn sent_at(&self, i: usize) -> Option<Instant> {
        match self.sent[i].load(Relaxed) {
            0 => None,
            n => Some(self.origin + Duration::from_nanos(n - 1)),
        }
    }

    /// When the server could first know the firing `(at, trigger)` was due; none when the
    /// events that make it due were not sent (then the wall clock released it).
    fn released(&self, at_ms: i64, trigger: &str) -> Option<Instant> {
        let first = self.clock.partition_point(|&ts| ts < at_ms);
        let by_clock = (first < self.clock.len()).then(|| self.sent_at(first))??;
        let by_trigger = match self.index.get(trigger) {
            Some(&i) => self.sent_at(i)?,
            None => by_clock,
        };
        Some(by_clock.max(by_trigger))
    }
}

/// What the receiver saw.
struct Receipts {
    /// `(key, kind)` pairs handled: a retry repeats one.
    seen: HashSet<(String, String)>,
    firings: u64,
    retractions: u64,
    repeats: u64,
    /// Firings whose release could not be dated by a sent event (see [`Releases::released`]).
    undated: u64,
    /// Release to receipt, microseconds, for firings released after the warm-up.
    latency: Histogram<u64>,
    last: Instant,
}

/// The receiver's findings, for the report.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookReport {
    /// Where the receiver listened.
    pub listen: String,
    /// Firings received.
    pub firings: u64,
    /// Retractions received.
    pub retractions: u64,
    /// Deliveries of a `(key, kind)` already received (retries).
    pub repeats: u64,
    /// Deliveries without a release time to measure from.
    pub undated: u64,
    /// Release-to-receipt latency of the firings.
    pub latency: Option<Latency>,
}

#[derive(Clone)]
struct Receiver {
    releases: Arc<Releases>,
    receipts: Arc<Mutex<Receipts>>,
    record_from: Instant,
}

/// A running webhook receiver.
pub struct Webhook {
    listen: String,
    receipts: Arc<Mutex<Receipts>>,
    task: tokio::task::JoinHandle<()>,
}

/// Why the receiver could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for webhooks on {listen} ({source}); is the port free?")]
pub struct ListenError {
    listen: String,
    source: std::io::Error,
}

impl Webhook {
    /// Listens on `listen` for `POST`s of firings on any path.
    pub async fn start(
        listen: &str,
        releases: Arc<Releases>,
        record_from: Instant,
    ) -> Result<Webhook, ListenError> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| ListenError {
                listen: listen.to_string(),
                source,
            })?;
        let receipts = Arc::new(Mutex::new(Receipts {
            seen: HashSet::new(),
            firings: 0,
            retractions: 0,
            repeats: 0,
            undated: 0,
            // Up to ten minutes, three significant digits.
            latency: Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds"),
            last: Instant::now(),
        }));
        let state = Receiver {
            releases,
            receipts: receipts.clone(),
            record_from,
        };
        let app = axum::Router::new()
            .fallback(axum::routing::post(receive))
            .with_state(state);
        let task = tokio::spawn(
            async move {
                let _ = axum::serve(listener, app).await;
            }
            .instrument(tracing::info_span!("replay-webhook")),
        );
        Ok(Webhook {
            listen: listen.to_string(),
            receipts,
            task,
        })
    }

    /// Waits until no delivery came for `quiet`, at most `limit`.
    pub async fn settle(&self, quiet: Duration, limit: Duration) {
        let give_up = Instant::now() + limit;
        loop {
            let last = self.receipts.lock().expect("receipts").last;
            let now = Instant::now();
            if now >= give_up || now.duration_since(last) >= quiet {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops listening and says what came.
    pub fn finish(self) -> WebhookReport {
        self.task.abort();
        let r = self.receipts.lock().expect("receipts");
        WebhookReport {
            listen: self.listen,
            firings: r.firings,
            retractions: r.retractions,
            repeats: r.repeats,
            undated: r.undated,
            latency: Latency::of(&r.latency),
        }
    }
}

async fn receive(State(rx): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let now = Instant::now();
    let Ok(msg) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let kind = msg["kind"].as_str().unwrap_or_default().to_string();
    let released = match (msg["at"].as_str(), msg["trigger"].as_str()) {
        (Some(at), Some(trigger)) if kind == "firing" => at
            .parse::<jiff::Timestamp>()
            .ok()
            .and_then(|t| rx.releases.released(t.as_millisecond(), trigger)),
        _ => None,
    };
    let mut r = rx.receipts.lock().expect("receipts");
    r.last = now;
    if !r.seen.insert((key, kind.clone())) {
        r.repeats += 1;
        return StatusCode::OK;
    }
    match kind.as_str() {
        "firing" => {
            r.firings += 1;
            match released {
                Some(at) if at >= rx.record_from => {
                    let micros = crate::time::micros(now.saturating_duration_since(at));
                    r.latency.saturating_record(micros.max(1));
                }
                Some(_) => {}
                None => r.undated += 1,
            }
        }
        "retraction" => r.retractions += 1,
        _ => {}
    }
    StatusCode::OK
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(lines: &[&str]) -> Log {
        Log::from_bytes(Bytes::from(lines.join("\n")))
    }

    #[test]
    fn a_release_is_dated_by_the_first_event_reaching_it_or_by_a_later_trigger() {
        let l = log(&[
            r#"{"id":"a","ts":1790000001000,"event":"x","user":"u"}"#,
            r#"{"id":"b","ts":1790000003000,"event":"x","user":"u"}"#,
            r#"{"id":"c","ts":1790000002000,"event":"x","user":"u"}"#,
            r#"{"id":"d","ts":1790000005000,"event":"x","user":"u"}"#,
        ]);
        let r = Releases::new(&l, &Limits::from_config(&Default::default()));
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        for i in 0..4 {
            r.note_sent(i..i + 1, at(10 * (i as u64 + 1)));
        }
        let t0 = 1_790_000_000_000;
        // Release at +2.5 s: the clock reaches it at "b" (sent at 20 ms).
        assert_eq!(r.released(t0 + 2500, "a"), Some(at(20)));
        // The trigger "c" came after "b": the firing is due on its arrival.
        assert_eq!(r.released(t0 + 2500, "c"), Some(at(30)));
        // Nothing sent reaches +6 s: the wall clock would release it, undated here.
        assert_eq!(r.released(t0 + 6000, "a"), None);
    }
}
