//! Inputs shared by the benches: generated event logs and the fact batches ingest makes of them.
#![allow(dead_code)]

use std::sync::Arc;

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

/// The one fact batch ingest makes of `lines`, and the number of events it accepted.
pub fn batch(plan: &Arc<Plan>, lines: &[String]) -> (FactBatch, u64) {
    let mut ingest = Ingest::new(plan.clone(), Dictionary::new());
    for line in lines {
        ingest.offer(line);
    }
    let accepted = ingest.counts().accepted;
    (ingest.take_batch(), accepted)
}

/// Total bytes of `lines`, newlines included.
pub fn bytes(lines: &[String]) -> u64 {
    lines.iter().map(|l| l.len() as u64 + 1).sum()
}
