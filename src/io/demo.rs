//! The demo source: the built-in generator's log played into the live service in accelerated
//! time, most of its history at once and the rest at `speed` times real time.

use std::time::Duration;

use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::event::{parse_event, Limits};
use crate::gen::{generate, GenOptions};
use crate::live::{EventBytes, Live};

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

/// Renders the demo log: its lines and their event times, in log order.
pub fn demo_log(opts: &DemoOptions, limits: &Limits) -> std::io::Result<Vec<(i64, EventBytes)>> {
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
        out.push((ts, text.slice_ref(line)));
    }
    Ok(out)
}

/// Plays the log into `live`; returns the number of events sent.
pub async fn play(live: Live, log: Vec<(i64, EventBytes)>, opts: DemoOptions) -> u64 {
    let Some(first) = log.first().map(|(t, _)| *t) else {
        return 0;
    };
    let history_end = first + i64::from(opts.history_days) * 86_400_000;
    let split = log.partition_point(|(t, _)| *t < history_end);
    let mut sent = 0u64;
    for chunk in log[..split].chunks(20_000) {
        if live
            .ingest(chunk.iter().map(|(_, l)| l.clone()).collect())
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
    let started = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut next = split;
    while next < log.len() {
        tick.tick().await;
        let simulated =
            history_end + (started.elapsed().as_secs_f64() * 1000.0 * opts.speed) as i64;
        let end = next + log[next..].partition_point(|(t, _)| *t <= simulated);
        if end > next {
            let batch = log[next..end].iter().map(|(_, l)| l.clone()).collect();
            if live.ingest(batch).await.is_err() {
                return sent;
            }
            sent += (end - next) as u64;
            next = end;
        }
    }
    tracing::info!(events = sent, "demo log finished");
    sent
}
