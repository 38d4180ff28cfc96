//! What the benches share: generated event logs, the fact batches ingest makes of them, the
//! `tidemark` binary's allocator, and a clock of the benchmarking thread's CPU time.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::Criterion;

use tidemark::config::Config;
use tidemark::facts::FactBatch;
use tidemark::gen::{generate, GenOptions};
use tidemark::ingest::{Dictionary, Ingest};
use tidemark::plan::Plan;

/// Persons of the benches' log: about 53,000 events (6 MB) over `DAYS` days.
pub const PERSONS: u64 = 2_000;
/// Local days of the benches' log.
pub const DAYS: u32 = 30;

/// The generated log's lines (`tidemark generate --persons 2000 --days 30 --seed 7`, with
/// `--no-links` when `links` is false).
pub fn lines(links: bool) -> Vec<String> {
    let opts = GenOptions {
        persons: PERSONS,
        days: DAYS,
        seed: 7,
        start: jiff::civil::date(2026, 10, 1),
        timezone: jiff::tz::TimeZone::UTC,
        links,
        ..GenOptions::default()
    };
    let mut out = Vec::new();
    generate(&opts, &mut out).expect("the generator writes to memory");
    String::from_utf8(out)
        .expect("the generator writes UTF-8")
        .lines()
        .map(str::to_string)
        .collect()
}

/// The default configuration's plan (every family, the default funnel and ratios).
pub fn plan() -> Arc<Plan> {
    Arc::new(Plan::new(Config::default()))
}

/// The default metrics and the five trigger rules of the `actions` golden set (its alerts
/// left out), in UTC.
pub fn plan_with_rules() -> Arc<Plan> {
    let text = include_str!("../../tests/golden/actions.toml");
    let rules =
        &text[text.find("[[rules]]").expect("rules")..text.find("[[alerts]]").expect("alerts")];
    Arc::new(Plan::new(
        Config::from_toml(rules).expect("the golden rules are valid"),
    ))
}

/// The one fact batch ingest makes of `lines`, and the number of events it accepted.
pub fn batch(plan: &Arc<Plan>, lines: &[String]) -> (FactBatch, u64) {
    let (batch, accepted, _) = batch_with_names(plan, lines);
    (batch, accepted)
}

/// As `batch`, with the dictionary naming its identities and channels.
pub fn batch_with_names(plan: &Arc<Plan>, lines: &[String]) -> (FactBatch, u64, Arc<Dictionary>) {
    let dict = Dictionary::new();
    let mut ingest = Ingest::new(plan.clone(), dict.clone());
    for line in lines {
        ingest.offer(line);
    }
    let accepted = ingest.counts().accepted;
    (ingest.take_batch(), accepted, dict)
}

/// Total bytes of `lines`, newlines included.
pub fn bytes(lines: &[String]) -> u64 {
    lines.iter().map(|l| l.len() as u64 + 1).sum()
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// CPU time the calling thread has used.
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill in.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "the thread CPU clock is readable");
    let nanos = u32::try_from(ts.tv_nsec).expect("tv_nsec is below 10^9");
    Duration::new(ts.tv_sec as u64, nanos)
}

/// Measures the benchmarking thread's CPU time instead of wall time: every bench runs its work
/// on that one thread, and CPU time hardly moves when other processes share the cores.
pub struct ThreadCpu(WallTime);

impl Measurement for ThreadCpu {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.0.formatter()
    }
}

/// Criterion measuring thread CPU time.
pub fn criterion() -> Criterion<ThreadCpu> {
    Criterion::default().with_measurement(ThreadCpu(WallTime))
}
