//! What a replay counts while it runs (shared by the senders) and the report it ends with,
//! as JSON and as text.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Instant;

use super::WebhookReport;
use hdrhistogram::Histogram;
use serde_json::{json, Value as Json};

/// Counters the senders update.
#[derive(Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub accepted: AtomicU64,
    pub duplicates: AtomicU64,
    pub rejected: AtomicU64,
    /// Requests the server turned away with 429 (each sent again after its `Retry-After`).
    pub pushed_back: AtomicU64,
    /// When the last acknowledgement came.
    pub last_ack: Mutex<Option<Instant>>,
    failures: Mutex<BTreeMap<String, Failure>>,
}

/// Requests or messages that were not acknowledged, of one kind.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Failure {
    /// Requests or messages that failed.
    pub requests: u64,
    /// Events in them.
    pub events: u64,
    /// The first detail seen (an error message or the server's answer).
    pub detail: String,
    /// What the user can do about it, when known.
    pub advice: Option<String>,
}

impl Counters {
    /// `requests` requests holding `events` events failed; `kind` groups failures ("timeout",
    /// "HTTP 500", ...).
    pub fn failed(
        &self,
        kind: &str,
        requests: u64,
        events: u64,
        detail: String,
        advice: Option<&str>,
    ) {
        let mut f = self.failures.lock().expect("failures lock");
        let e = f.entry(kind.to_string()).or_insert_with(|| Failure {
            detail,
            advice: advice.map(String::from),
            ..Failure::default()
        });
        e.requests += requests;
        e.events += events;
    }

    pub fn failures(&self) -> BTreeMap<String, Failure> {
        self.failures.lock().expect("failures lock").clone()
    }

    /// Adds an acknowledged batch and its outcome counts.
    pub fn ack(&self, events: u64, accepted: u64, duplicates: u64, rejected: u64) {
        self.acked.fetch_add(events, Relaxed);
        self.accepted.fetch_add(accepted, Relaxed);
        self.duplicates.fetch_add(duplicates, Relaxed);
        self.rejected.fetch_add(rejected, Relaxed);
        *self.last_ack.lock().expect("last ack") = Some(Instant::now());
    }
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Latency {
    /// Events measured.
    pub events: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Latency {
    /// Percentiles of a histogram of microseconds; none when it is empty.
    pub fn of(h: &Histogram<u64>) -> Option<Latency> {
        if h.is_empty() {
            return None;
        }
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Some(Latency {
            events: h.len(),
            p50: ms(0.5),
            p90: ms(0.9),
            p99: ms(0.99),
            p999: ms(0.999),
            max: h.max() as f64 / 1000.0,
        })
    }

    /// `p50 … max` in milliseconds, as the report prints them.
    fn percentiles(&self) -> String {
        format!(
            "p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
            self.p50, self.p90, self.p99, self.p999, self.max
        )
    }
}

fn latency_json(l: &Latency) -> Json {
    json!({
        "events": l.events, "p50": l.p50, "p90": l.p90, "p99": l.p99, "p99_9": l.p999, "max": l.max,
    })
}

/// The outcome of a replay.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Where the events went.
    pub target: String,
    /// Events sent.
    pub sent: u64,
    /// Events acknowledged.
    pub acknowledged: u64,
    /// Outcome counts: from the answers (HTTP) or the server's own counters (MQTT).
    pub accepted: Option<u64>,
    /// Duplicates counted.
    pub duplicates: Option<u64>,
    /// Rejections counted.
    pub rejected: Option<u64>,
    /// Where the outcome counts came from (`answers` or the server's counters).
    pub counts_from: &'static str,
    /// Failures by kind.
    pub failures: BTreeMap<String, Failure>,
    /// Requests the server turned away with 429 because it was behind (`serve.max_lag`); each
    /// was sent again, so none of its events is missing for it.
    pub pushed_back: u64,
    /// Seconds from the first send to the last acknowledgement.
    pub seconds: f64,
    /// Acknowledged events per second, from the first send to the last acknowledgement.
    pub achieved_rate: f64,
    /// Ingest-to-progress latency of the acknowledged events.
    pub latency: Option<Latency>,
    /// Acknowledged events no progress mark covered before the replay gave up waiting.
    pub unreflected: u64,
    /// Events sent during the warm-up (their latency is not recorded).
    pub warmup_events: u64,
    /// What the latency figures mean for this transport.
    pub latency_note: &'static str,
    /// Times the progress subscription dropped and was made again.
    pub watch_reconnects: u64,
    /// Why acknowledged events may not have reached the server (MQTT: the broker acknowledges).
    pub delivery: Option<String>,
    /// What the webhook receiver saw, when the replay ran one (`--webhook`).
    pub webhook: Option<WebhookReport>,
}

impl Report {
    /// Events sent but not acknowledged.
    pub fn missing(&self) -> u64 {
        self.sent.saturating_sub(self.acknowledged)
    }

    /// The report as JSON, as `tidemark replay --report FILE` writes it.
    pub fn to_json(&self) -> Json {
        let latency = self.latency.as_ref().map(latency_json);
        let failures: serde_json::Map<String, Json> = self
            .failures
            .iter()
            .map(|(k, f)| {
                let v = json!({"requests": f.requests, "events": f.events, "detail": f.detail,
                               "advice": f.advice});
                (k.clone(), v)
            })
            .collect();
        json!({
            "format": "tidemark.replay.v1",
            "target": self.target,
            "sent": self.sent,
            "acknowledged": self.acknowledged,
            "missing": self.missing(),
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "counts_from": self.counts_from,
            "failures": failures,
            "pushed_back": self.pushed_back,
            "seconds": self.seconds,
            "achieved_rate": self.achieved_rate,
            "warmup_events": self.warmup_events,
            "latency_ms": latency,
            "latency_note": self.latency_note,
            "unreflected": self.unreflected,
            "watch_reconnects": self.watch_reconnects,
            "delivery_problem": self.delivery,
            "webhook": self.webhook.as_ref().map(|w| json!({
                "listen": w.listen, "firings": w.firings, "retractions": w.retractions,
                "repeats": w.repeats, "undated": w.undated,
                "release_to_receipt_ms": w.latency.as_ref().map(latency_json),
            })),
        })
    }

    /// The summary printed at the end.
    pub fn to_text(&self) -> String {
        let n = |v: Option<u64>| v.map_or("unknown".to_string(), |v| v.to_string());
        let mut out = format!(
            "target        {}\nsent          {}\nacknowledged  {}\naccepted      {}\nduplicates    {}\nrejected      {}   (counts from {})\nachieved rate {:.0} events/s over {:.1}s\n",
            self.target,
            self.sent,
            self.acknowledged,
            n(self.accepted),
            n(self.duplicates),
            n(self.rejected),
            self.counts_from,
            self.achieved_rate,
            self.seconds,
        );
        if self.pushed_back > 0 {
            out.push_str(&format!(
                "push-back     {} requests answered 429 (the server was behind serve.max_lag) and sent again after Retry-After; their latency counts from the first send\n",
                self.pushed_back
            ));
        }
        match &self.latency {
            Some(l) => out.push_str(&format!(
                "latency (ms)  {}   ({} events; {})\n",
                l.percentiles(),
                l.events,
                self.latency_note
            )),
            None => out.push_str("latency       no latency samples (no event was accepted after the warm-up: every acknowledged one was a duplicate or rejected, or none came)\n"),
        }
        if let Some(w) = &self.webhook {
            out.push_str(&format!(
                "webhook       {} firings, {} retractions, {} repeated deliveries at {}\n",
                w.firings, w.retractions, w.repeats, w.listen
            ));
            match &w.latency {
                Some(l) => out.push_str(&format!(
                    "release (ms)  {}   ({} firings released after the warm-up; from the send of the event that made each due to its receipt)\n",
                    l.percentiles(),
                    l.events
                )),
                None => out.push_str("release       no firing released after the warm-up was received\n"),
            }
            if w.undated > 0 {
                out.push_str(&format!(
                    "              {} firings were released by the wall clock, not by a sent event (set serve.clock = \"event\" to time them all)\n",
                    w.undated
                ));
            }
        }
        out
    }

    /// Why the run failed, said for the user; none when every event was acknowledged and seen.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.missing() > 0 {
            out.push(format!(
                "{} of {} events were not acknowledged",
                self.missing(),
                self.sent
            ));
            for (kind, f) in &self.failures {
                let mut line = format!(
                    "  {kind}: {} requests, {} events ({})",
                    f.requests, f.events, f.detail
                );
                if let Some(a) = &f.advice {
                    line.push_str(&format!("; {a}"));
                }
                out.push(line);
            }
        }
        out.extend(self.delivery.clone());
        if self.unreflected > 0 {
            let hint = if self.delivery.is_none() {
                "; is the server's dataflow stuck?"
            } else {
                ""
            };
            out.push(format!(
                "{} acknowledged events were not reflected in any progress mark before the replay stopped waiting{hint}",
                self.unreflected
            ));
        }
        out
    }
}
