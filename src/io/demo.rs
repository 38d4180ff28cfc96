//! The demo source: the built-in generator's shop played into the live service in accelerated
//! time, its first weeks at once and then day after day without end: new persons keep
//! arriving and earlier ones keep coming back.

use std::time::Duration;

use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::event::{parse_event, Limits};
use crate::gen::{DayStream, GenOptions};
use crate::live::{EventBytes, Engine};

/// The configuration of `serve --demo` without `--config`: the default metrics, with trigger
/// rules and alerts over the demo shop.
pub const DEMO_CONFIG: &str = include_str!("demo.toml");

/// What the demo plays.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Persons arriving over the first `days` days (and as many a day after them).
    pub persons: u64,
    /// The period the generator's arrivals are spread over; the stream goes on after it.
    pub days: u32,
    /// Days of history sent at once before the rest plays in accelerated time.
    pub history_days: u32,
    /// Simulated milliseconds per real millisecond.
    pub speed: f64,
    /// Seed of the generated log.
    pub seed: u64,
    /// The time zone whose days the log follows (the configuration's).
    pub timezone: TimeZone,
    /// The last day of the period (the first `days` days end on it).
    pub last_day: Date,
}

/// One line of the demo log.
pub struct DemoEvent {
    /// When it is played: the largest event time up to this line, so the log's few late
    /// events go with the on-time events around them and `due` never decreases.
    pub due: i64,
    /// The event, as JSON text.
    pub line: EventBytes,
}

/// The demo's events, a local day at a time.
pub struct DemoLog {
    days: DayStream,
    limits: Limits,
    /// The largest event time so far.
    last: i64,
}

impl DemoLog {
    /// The log for `opts`, with events stamped as `limits` accepts them.
    pub fn new(opts: &DemoOptions, limits: &Limits) -> std::io::Result<DemoLog> {
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
            // The generator's real shape: persons come back as to a product people use (DAU/MAU
            // near 0.2), in short visits.
            ..GenOptions::default()
        };
        Ok(DemoLog {
            days: DayStream::new(&gen)?,
            limits: limits.clone(),
            last: i64::MIN,
        })
    }

    /// The lines of the next day, in log order, and the time the day ends.
    pub fn next_day(&mut self) -> std::io::Result<(Vec<DemoEvent>, i64)> {
        let (text, end) = self.days.next_day()?;
        let text = EventBytes::from(text);
        let mut out = Vec::new();
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            // Lines the parser rejects (the generator writes a few on purpose) keep the last
            // time.
            let ts = std::str::from_utf8(line)
                .ok()
                .and_then(|t| parse_event(t, &self.limits).ok())
                .map_or(self.last, |e| e.ts);
            self.last = self.last.max(ts);
            out.push(DemoEvent {
                due: self.last,
                line: text.slice_ref(line),
            });
        }
        Ok((out, end))
    }
}

/// Plays the history into `live` at once, then every later day in accelerated time, without
/// end; returns the events sent when the service stops (or the log fails).
pub async fn play(live: Engine, mut log: DemoLog, opts: DemoOptions) -> u64 {
    let mut sent = 0u64;
    let mut from = None;
    for _ in 0..opts.history_days {
        let Some((day, end)) = next_day(&mut log) else {
            return sent;
        };
        for chunk in day.chunks(20_000) {
            let lines = chunk.iter().map(|e| e.line.clone()).collect();
            if live.ingest_from("demo", lines).await.is_err() {
                return sent;
            }
            sent += chunk.len() as u64;
        }
        from = Some(end);
    }
    tracing::info!(
        events = sent,
        "demo history sent; playing the days after it in accelerated time"
    );
    let Some(from) = from else {
        return sent;
    };
    let started = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for day in 0u64.. {
        let Some((part, _)) = next_day(&mut log) else {
            return sent;
        };
        let mut next = 0;
        while next < part.len() {
            tick.tick().await;
            // Whole milliseconds: `as` drops the fraction (and saturates, far beyond any run).
            #[allow(clippy::cast_possible_truncation)]
            let simulated = from + (started.elapsed().as_secs_f64() * 1000.0 * opts.speed) as i64;
            let end = next + part[next..].partition_point(|e| e.due <= simulated);
            if end > next {
                let batch = part[next..end].iter().map(|e| e.line.clone()).collect();
                if live.ingest_from("demo", batch).await.is_err() {
                    return sent;
                }
                sent += (end - next) as u64;
                next = end;
            }
        }
        tracing::debug!(events = sent, day, "demo day played");
    }
    sent
}

/// The next day of the log; `None`, said on the log, when the generator fails.
fn next_day(log: &mut DemoLog) -> Option<(Vec<DemoEvent>, i64)> {
    log.next_day()
        .map_err(|e| tracing::error!("the demo stops: its generator failed: {e}"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_log_goes_on_past_its_period_with_dues_that_never_decrease() {
        let opts = DemoOptions {
            persons: 300,
            days: 3,
            history_days: 2,
            speed: 1.0,
            seed: 1,
            timezone: TimeZone::UTC,
            last_day: jiff::civil::date(2026, 10, 3),
        };
        let config = crate::config::Config::default();
        let limits = Limits::from_config(&config);
        let mut log = DemoLog::new(&opts, &limits).unwrap();
        let mut due = i64::MIN;
        let mut last_end = i64::MIN;
        for day in 0..6 {
            let (events, end) = log.next_day().unwrap();
            assert!(events.len() > 50, "day {day}: {} events", events.len());
            assert!(end > last_end);
            for e in &events {
                // Played no earlier than its own time.
                let own = std::str::from_utf8(&e.line)
                    .ok()
                    .and_then(|t| parse_event(t, &limits).ok())
                    .map_or(i64::MIN, |ev| ev.ts);
                assert!(e.due >= due && e.due >= own);
                due = e.due;
            }
            last_end = end;
        }
        // The sixth day ends three days after the period's last one.
        assert_eq!(
            last_end,
            jiff::civil::date(2026, 10, 7)
                .to_zoned(TimeZone::UTC)
                .unwrap()
                .timestamp()
                .as_millisecond()
        );
    }
}
