//! The replay plan: the input log's events, cut into batches, each due at an offset from the
//! start as the pacing says (a fixed rate, the log's own timing scaled, or as fast as acked).

use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;

use crate::event::{parse_event, Limits};

/// How batches are spaced in time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// Events per second, in log order.
    Rate(f64),
    /// The log's own timing (event `ts`), this many times faster.
    Speed(f64),
    /// Every batch is due at once: senders go as fast as acknowledgements come.
    Unpaced,
}

/// Longest stretch of schedule one batch covers: a batch is never held back longer than this
/// for events that are due later.
pub const MAX_BATCH_SPAN: Duration = Duration::from_millis(50);

/// A run of consecutive events sent in one request or message.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// The events' places in the log.
    pub events: Range<usize>,
    /// When the batch is due, from the start of the replay.
    pub due: Duration,
}

/// The input: its non-blank lines, in order.
pub struct Log {
    /// The lines, without their line ends.
    pub lines: Vec<Bytes>,
}

impl Log {
    /// Splits a log into its non-blank lines (a trailing `\r` is dropped), as the server does.
    pub fn from_bytes(text: Bytes) -> Log {
        Log {
            lines: crate::event::batch::lines(&text),
        }
    }

    /// Each event's due offset in milliseconds: the largest `ts` so far (lines without a valid
    /// time keep the one before), less the first, divided by `speed`.
    fn log_offsets(&self, speed: f64, limits: &Limits) -> Vec<f64> {
        let mut first = None;
        let mut latest = i64::MIN;
        self.lines
            .iter()
            .map(|line| {
                let ts = std::str::from_utf8(line)
                    .ok()
                    .and_then(|t| parse_event(t, limits).ok())
                    .map(|e| e.ts);
                if let Some(ts) = ts {
                    first.get_or_insert(ts);
                    latest = latest.max(ts);
                }
                first.map_or(0.0, |f| (latest - f) as f64 / speed)
            })
            .collect()
    }

    /// Cuts the log into batches of at most `size` events, each spanning at most
    /// `MAX_BATCH_SPAN` of schedule; `alone(i)` true puts event `i` in a batch of its own.
    pub fn plan(
        &self,
        pace: Pace,
        size: usize,
        limits: &Limits,
        alone: impl Fn(usize) -> bool,
    ) -> Vec<Batch> {
        let offsets_ms: Vec<f64> = match pace {
            Pace::Rate(rate) => (0..self.lines.len())
                .map(|i| i as f64 * 1000.0 / rate)
                .collect(),
            Pace::Speed(speed) => self.log_offsets(speed, limits),
            Pace::Unpaced => vec![0.0; self.lines.len()],
        };
        let span_ms = MAX_BATCH_SPAN.as_secs_f64() * 1000.0;
        let mut out = Vec::new();
        let mut start = 0;
        for i in 0..=self.lines.len() {
            let cut = i == self.lines.len()
                || i - start >= size.max(1)
                || offsets_ms[i] - offsets_ms[start] > span_ms
                || alone(i)
                || (i > start && alone(start));
            if cut && i > start {
                out.push(Batch {
                    events: start..i,
                    due: Duration::from_secs_f64(offsets_ms[start] / 1000.0),
                });
                start = i;
            }
        }
        out
    }

    /// The events of a batch as an NDJSON body.
    pub fn ndjson(&self, events: Range<usize>) -> Bytes {
        self.join(events, b"", b"\n", b"\n")
    }

    /// The events of a batch as a JSON array (one event alone is sent as itself).
    pub fn json_array(&self, events: Range<usize>) -> Bytes {
        if events.len() == 1 {
            return self.lines[events.start].clone();
        }
        self.join(events, b"[", b",", b"]")
    }

    fn join(&self, events: Range<usize>, open: &[u8], sep: &[u8], close: &[u8]) -> Bytes {
        let lines = &self.lines[events];
        let size = lines.iter().map(|l| l.len() + sep.len()).sum::<usize>() + open.len();
        let mut out = Vec::with_capacity(size + close.len());
        out.extend_from_slice(open);
        for (i, l) in lines.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(sep);
            }
            out.extend_from_slice(l);
        }
        out.extend_from_slice(close);
        Bytes::from(out)
    }

    /// Whether line `i` must travel alone inside a JSON array message: it is not one JSON
    /// value, or it is an array itself (which a receiver would take for a batch).
    pub fn not_embeddable(&self, i: usize) -> bool {
        let line = &self.lines[i];
        let first = line.iter().find(|b| !b.is_ascii_whitespace());
        first == Some(&b'[') || serde_json::from_slice::<serde::de::IgnoredAny>(line).is_err()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::from_config(&crate::config::Config::default())
    }

    fn log(lines: &[&str]) -> Log {
        Log::from_bytes(Bytes::from(lines.join("\n")))
    }

    #[test]
    fn blank_lines_are_not_events_and_cr_is_dropped() {
        let l = Log::from_bytes(Bytes::from_static(b"{\"a\":1}\r\n\n  \n{bad\n"));
        assert_eq!(l.lines, vec![&b"{\"a\":1}"[..], &b"{bad"[..]]);
    }

    #[test]
    fn rate_batches_are_full_and_spaced_by_their_size() {
        let l = log(&["{}"; 10]);
        let plan = l.plan(Pace::Rate(1000.0), 4, &limits(), |_| false);
        let got: Vec<_> = plan.iter().map(|b| (b.events.clone(), b.due)).collect();
        let ms = Duration::from_millis;
        assert_eq!(got, vec![(0..4, ms(0)), (4..8, ms(4)), (8..10, ms(8))]);
        // At 50/s events are 20 ms apart: a batch holds no event due more than the span
        // (50 ms) after its first, so three (0, 20, 40 ms) and not four.
        let plan = l.plan(Pace::Rate(50.0), 4, &limits(), |_| false);
        let sizes: Vec<usize> = plan.iter().map(|b| b.events.len()).collect();
        assert_eq!(sizes, vec![3, 3, 3, 1], "{plan:?}");
    }

    #[test]
    fn speed_follows_the_largest_time_so_far_and_lone_events_stay_alone() {
        let ev = |id: u32, ts: &str| {
            format!(r#"{{"id":"{id}","ts":"{ts}","event":"open","ids":{{"openid":"o_1"}}}}"#)
        };
        let lines = [
            ev(1, "2026-10-01T00:00:00Z"),
            ev(2, "2026-10-01T00:00:10Z"),
            "{bad".to_string(),
            ev(3, "2026-10-01T00:00:05Z"),
            ev(4, "2026-10-01T00:00:20Z"),
        ];
        let l = log(&lines.iter().map(String::as_str).collect::<Vec<_>>());
        let plan = l.plan(Pace::Speed(10.0), 100, &limits(), |i| l.not_embeddable(i));
        let got: Vec<_> = plan.iter().map(|b| (b.events.clone(), b.due)).collect();
        let ms = Duration::from_millis;
        assert_eq!(
            got,
            vec![
                (0..1, ms(0)),
                (1..2, ms(1000)),
                (2..3, ms(1000)),
                (3..4, ms(1000)),
                (4..5, ms(2000))
            ]
        );
        assert_eq!(&l.json_array(0..2)[..1], b"[");
        assert_eq!(l.json_array(2..3), l.lines[2]);
    }
}
