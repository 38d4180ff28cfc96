//! The demo source: the built-in generator's log played into the live service in accelerated
//! time, most of its history at once and the rest at `speed` times real time.

use std::time::Duration;

use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::event::{parse_event, Limits};
use crate::gen::{generate, GenOptions};
use crate::live::{EventBytes, Live};

/// The configuration of `serve --demo` without `--config`: the default metrics, with trigger
/// rules and alerts over the demo shop.
pub const DEMO_CONFIG: &str = include_str!("demo.toml");

/// What the demo plays.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub persons: u64,
    pub days: u32,
    /// Days of history sent at once before the rest plays in accelerated time.
    pub history_days: u32,
    /// Simulated milliseconds per real millisecond.
    pub speed: f64,
    pub seed: u64,
    pub timezone: TimeZone,
    /// The last simulated day (the log ends on it).
    pub last_day: Date,
}

/// One line of the demo log.
pub struct DemoEvent {
    /// When it is played: the largest event time up to this line, so the log's few late
    /// events go with the on-time events around them and `due` never decreases.
    pub due: i64,
    /// Its own event time.
    pub ts: i64,
    pub line: EventBytes,
}

/// Renders the demo log: its lines and their times, in log order.
pub fn demo_log(opts: &DemoOptions, limits: &Limits) -> std::io::Result<Vec<DemoEvent>> {
    let start = opts
        .last_day
        .checked_sub(jiff::Span::new().days(i64::from(opts.days.saturating_sub(1))))
        .map_err(std::io::Error::other)?;
    let gen = GenOptions {
        persons: opts.persons,
        days: opts.days,
        seed: opts.seed,
        start,
        timezone: opts.timezone.clone(),
        links: true,
        ..GenOptions::default()
    };
    let mut text = Vec::new();
    generate(&gen, &mut text)?;
    let text = EventBytes::from(text);
    let mut out = Vec::new();
    let mut last = i64::MIN;
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        // Lines the parser rejects (the generator writes a few on purpose) keep the last time.
        let ts = std::str::from_utf8(line)
            .ok()
            .and_then(|t| parse_event(t, limits).ok())
            .map_or(last, |e| e.ts);
        last = last.max(ts);
        out.push(DemoEvent {
            due: last,
            ts,
            line: text.slice_ref(line),
        });
    }
    Ok(out)
}

/// Plays the log into `live`, then keeps playing its last part shifted forward in time (the
/// same persons, new event ids) so the dashboard never stops moving; returns when the service
/// stops.
pub async fn play(live: Live, log: Vec<DemoEvent>, opts: DemoOptions) -> u64 {
    let Some(first) = log.first().map(|e| e.due) else {
        return 0;
    };
    let history_end = first + i64::from(opts.history_days) * DAY_MS;
    let split = log.partition_point(|e| e.due < history_end);
    let mut sent = 0u64;
    for chunk in log[..split].chunks(20_000) {
        if live
            .ingest("demo", chunk.iter().map(|e| e.line.clone()).collect())
            .await
            .is_err()
        {
            return sent;
        }
        sent += chunk.len() as u64;
    }
    tracing::info!(
        events = sent,
        "demo history sent; playing the rest in accelerated time"
    );
    let tail = &log[split..];
    let span = (opts.days.saturating_sub(opts.history_days).max(1) as i64) * DAY_MS;
    for round in 0u32.. {
        let shift = i64::from(round) * span;
        let Some(n) = play_part(&live, tail, history_end + shift, shift, round, opts.speed).await
        else {
            return sent;
        };
        sent += n;
        tracing::info!(
            events = sent,
            round,
            "demo week played; playing it again a week later"
        );
    }
    sent
}

const DAY_MS: i64 = 86_400_000;

/// Plays `part` in accelerated time from simulated time `from`, each event moved `shift` ms
/// later (with a new id in later rounds); `None` when the service stopped.
async fn play_part(
    live: &Live,
    part: &[DemoEvent],
    from: i64,
    shift: i64,
    round: u32,
    speed: f64,
) -> Option<u64> {
    let started = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut next = 0;
    while next < part.len() {
        tick.tick().await;
        let simulated = from + (started.elapsed().as_secs_f64() * 1000.0 * speed) as i64;
        let end = next + part[next..].partition_point(|e| e.due + shift <= simulated);
        if end > next {
            let batch = part[next..end]
                .iter()
                .map(|e| shifted(&e.line, e.ts + shift, round))
                .collect();
            live.ingest("demo", batch).await.ok()?;
            next = end;
        }
    }
    Some(part.len() as u64)
}

/// The event moved to `ts` with its id suffixed by the round (round 0: unchanged).
fn shifted(line: &EventBytes, ts: i64, round: u32) -> EventBytes {
    if round == 0 {
        return line.clone();
    }
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(line) else {
        return line.clone();
    };
    if let Some(obj) = value.as_object_mut() {
        if let Some(id) = obj.get("id").and_then(|v| v.as_str()).map(String::from) {
            obj.insert("id".into(), format!("{id}~{round}").into());
        }
        obj.insert("ts".into(), ts.into());
    }
    EventBytes::from(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_rounds_move_events_and_give_them_new_ids() {
        let line =
            EventBytes::from_static(br#"{"id":"e-1","ts":"2026-10-01T00:00:00Z","event":"x"}"#);
        assert_eq!(shifted(&line, 5, 0), line);
        let moved: serde_json::Value = serde_json::from_slice(&shifted(&line, 5, 2)).unwrap();
        assert_eq!(moved["id"], "e-1~2");
        assert_eq!(moved["ts"], 5);
        assert_eq!(moved["event"], "x");
    }
}
