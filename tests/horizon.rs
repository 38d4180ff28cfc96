//! Bounded state beyond `serve`'s horizon: live rows stay equal to a recompute, sealed rows stay
//! as they were when sealed, and neither depends on how batches are cut or on a restart.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use tidemark::config::Config;
use tidemark::gen::{generate, GenOptions};
use tidemark::ingest::{IngestState, Outcome};
use tidemark::metric::{sealed, Key, Value};
use tidemark::pipeline::{Pipeline, PipelineOptions};
use tidemark::plan::Plan;
use tidemark::time::Day;

const DAY_MS: i64 = 86_400_000;

fn log(persons: u64, days: u32, links: bool) -> Vec<String> {
    let opts = GenOptions {
        persons,
        days,
        seed: 23,
        start: jiff::civil::date(2026, 3, 2),
        timezone: jiff::tz::TimeZone::UTC,
        links,
        ..GenOptions::default()
    };
    let mut out = Vec::new();
    generate(&opts, &mut out).expect("generate");
    String::from_utf8(out)
        .expect("utf-8")
        .lines()
        .map(String::from)
        .collect()
}

fn pipeline(batch: usize, horizon_days: Option<i64>) -> Pipeline {
    let plan = Arc::new(Plan::new(Config::default()));
    let options = PipelineOptions {
        batch_events: batch,
        ..PipelineOptions::default()
    };
    let mut p = Pipeline::with_plan(plan, options).expect("the dataflow starts");
    if let Some(d) = horizon_days {
        p.reject_beyond(d * DAY_MS);
    }
    p
}

/// What a run ends with: rows, the sealed day, lines rejected as beyond the horizon, and
/// ingest's state.
struct Run {
    rows: BTreeMap<Key, Value>,
    sealed: Option<Day>,
    beyond: HashSet<usize>,
    state: Option<IngestState>,
}

fn feed(p: &mut Pipeline, lines: &[String], from: usize, beyond: &mut HashSet<usize>) {
    for (i, line) in lines.iter().enumerate() {
        if let Outcome::Rejected(r) = p.offer(line) {
            assert_eq!(r.reason.as_str(), "beyond_horizon", "line {}", from + i);
            beyond.insert(from + i);
        }
    }
}

fn finish(mut p: Pipeline, beyond: HashSet<usize>, horizon: bool) -> Run {
    let state = horizon.then(|| p.state().expect("a state"));
    let done = p.finish().expect("the dataflow finishes");
    Run {
        rows: done.output.table.current().clone().into_iter().collect(),
        sealed: done.ingest.sealed(),
        beyond,
        state,
    }
}

fn with_horizon(lines: &[String], days: i64, batch: usize) -> Run {
    let mut p = pipeline(batch, Some(days));
    let mut beyond = HashSet::new();
    feed(&mut p, lines, 0, &mut beyond);
    finish(p, beyond, true)
}

/// The same lines without a horizon (nothing sealed or retired), less those `skip` names.
fn recompute(lines: &[String], skip: &HashSet<usize>) -> BTreeMap<Key, Value> {
    let mut p = pipeline(100_000, None);
    for (i, line) in lines.iter().enumerate() {
        if !skip.contains(&i) {
            p.offer(line);
        }
    }
    let done = p.finish().expect("the dataflow finishes");
    done.output.table.current().clone().into_iter().collect()
}

/// Keys whose rows differ between two runs, with both values.
fn differences(
    a: &BTreeMap<Key, Value>,
    b: &BTreeMap<Key, Value>,
    only: impl Fn(&Key) -> bool,
) -> Vec<String> {
    let keys: std::collections::BTreeSet<&Key> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| only(k))
        .filter(|k| a.get(k) != b.get(k))
        .map(|k| format!("{k:?}: {:?} against {:?}", a.get(k), b.get(k)))
        .collect()
}

#[test]
fn without_links_every_row_equals_a_recompute_and_old_facts_are_retired() {
    let lines = log(3_000, 90, false);
    let run = with_horizon(&lines, 10, 20_000);
    let seal = run
        .sealed
        .expect("90 days under a 10-day horizon seal days");
    let expected = recompute(&lines, &run.beyond);
    // Without identity links nothing reaches a sealed day's rows after it is sealed, so every
    // row, sealed or live, is what a recompute gives.
    let diff = differences(&run.rows, &expected, |_| true);
    assert!(
        diff.is_empty(),
        "{} rows differ: {:#?}",
        diff.len(),
        &diff[..diff.len().min(20)]
    );
    assert!(run.rows.keys().any(|k| sealed(k, seal)), "no sealed rows");
    let state = run.state.expect("a state");
    let (ids, hours) = state.kept_sizes();
    let accepted = usize::try_from(state.accepted()).unwrap();
    assert!(
        ids * 4 < accepted,
        "{ids} event ids kept of {accepted}: the dedupe set is not pruned"
    );
    assert!(hours * 2 < accepted / 3, "{hours} hour facts kept in full");
}

#[test]
fn with_links_live_rows_equal_a_recompute() {
    let lines = log(3_000, 90, true);
    let run = with_horizon(&lines, 10, 20_000);
    let seal = run.sealed.expect("sealed days");
    let expected = recompute(&lines, &run.beyond);
    // A link made after a day is sealed no longer corrects that day's rows; every other row
    // (lifetime totals, cohorts, month cohorts, rows of days not sealed) stays exact.
    let diff = differences(&run.rows, &expected, |k| !sealed(k, seal));
    assert!(
        diff.is_empty(),
        "{} rows differ: {:#?}",
        diff.len(),
        &diff[..diff.len().min(20)]
    );
}

#[test]
fn sealed_rows_do_not_depend_on_batch_cuts_or_a_restart() {
    let lines = log(2_000, 75, true);
    let whole = with_horizon(&lines, 8, 100_000);
    let small = with_horizon(&lines, 8, 37);
    let diff = differences(&whole.rows, &small.rows, |_| true);
    assert!(diff.is_empty(), "batches of 37: {diff:#?}");

    // Half the log, a checkpoint's state, a fresh pipeline restored from it, the other half.
    let half = lines.len() / 2;
    let mut first = pipeline(5_000, Some(8));
    let mut beyond = HashSet::new();
    feed(&mut first, &lines[..half], 0, &mut beyond);
    let state = first.state().expect("a state");
    assert!(state.sealed().is_some(), "the first half seals days");
    drop(first);
    let mut second = pipeline(5_000, Some(8));
    second.restore(state).expect("the state restores");
    feed(&mut second, &lines[half..], half, &mut beyond);
    let restarted = finish(second, beyond, false);
    assert_eq!(
        restarted.beyond, whole.beyond,
        "the horizon holds after the restart"
    );
    let diff = differences(&whole.rows, &restarted.rows, |_| true);
    assert!(diff.is_empty(), "restarted: {diff:#?}");
}
