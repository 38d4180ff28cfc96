//! Bounded state beyond `serve`'s horizon: live rows stay equal to a recompute, sealed rows stay
//! as they were when sealed, and neither depends on how batches are cut or on a restart. Rule
//! facts retire too, and every decision left stays what a recompute makes it.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use tidemark::config::Config;
use tidemark::dataflow::Firing;
use tidemark::gen::{generate, GenOptions};
use tidemark::ingest::{IngestState, Outcome};
use tidemark::metric::{sealed, Key, Value};
use tidemark::pipeline::{Finished, Pipeline, PipelineOptions};
use tidemark::plan::Plan;
use tidemark::time::Day;

const DAY_MS: i64 = 86_400_000;

/// A growing log of the sparse shape: most persons come once or twice, so that the days
/// before the horizon hold most of its events (the bounds on what is kept rely on it).
fn log(persons: u64, days: u32, links: bool) -> Vec<String> {
    generated(GenOptions {
        persons,
        days,
        links,
        shape: tidemark::gen::Shape::SPARSE,
        sessions: tidemark::gen::Sessions::LONG,
        ..GenOptions::default()
    })
}

/// A steady stream: as many persons arrive each day, and each stays `lifetime` days.
fn steady(persons: u64, days: u32, lifetime: u32) -> Vec<String> {
    generated(GenOptions {
        persons,
        days,
        links: false,
        growth: 0,
        lifetime: Some(lifetime),
        ..GenOptions::default()
    })
}

fn generated(opts: GenOptions) -> Vec<String> {
    let opts = GenOptions {
        seed: 23,
        start: jiff::civil::date(2026, 3, 2),
        timezone: jiff::tz::TimeZone::UTC,
        ..opts
    };
    let mut out = Vec::new();
    generate(&opts, &mut out).expect("generate");
    String::from_utf8(out)
        .expect("utf-8")
        .lines()
        .map(String::from)
        .collect()
}

/// The default metrics with the five rules of the `actions` golden set (its alerts left out).
fn with_rules() -> Config {
    let text = include_str!("golden/actions.toml");
    let rules = text.split("[[alerts]]").next().expect("the rules part");
    Config::from_toml(rules).expect("the rules parse")
}

fn pipeline_with(config: Config, batch: usize, horizon_days: Option<i64>) -> Pipeline {
    let plan = Arc::new(Plan::new(config));
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
    /// The firings held (not retired), by rule and key.
    firings: BTreeMap<(u16, String), Firing>,
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
        firings: firings_of(&done),
        sealed: done.ingest.sealed(),
        beyond,
        state,
    }
}

fn firings_of(done: &Finished) -> BTreeMap<(u16, String), Firing> {
    done.output
        .firings
        .current()
        .iter()
        .map(|((r, k), f)| ((*r, k.to_string()), f.clone()))
        .collect()
}

fn with_horizon(lines: &[String], days: i64, batch: usize) -> Run {
    with_horizon_and(Config::default(), lines, days, batch)
}

fn with_horizon_and(config: Config, lines: &[String], days: i64, batch: usize) -> Run {
    let mut p = pipeline_with(config, batch, Some(days));
    let mut beyond = HashSet::new();
    feed(&mut p, lines, 0, &mut beyond);
    finish(p, beyond, true)
}

/// The same lines without a horizon (nothing sealed or retired), less those `skip` names.
fn recompute(lines: &[String], skip: &HashSet<usize>) -> BTreeMap<Key, Value> {
    recompute_with(Config::default(), lines, skip).rows
}

/// A recompute that keeps ingest's facts, so that its state tells what a run would hold
/// without retiring anything.
fn recompute_with(config: Config, lines: &[String], skip: &HashSet<usize>) -> Run {
    let mut p = pipeline_with(config, 100_000, None);
    p.keep_facts();
    for (i, line) in lines.iter().enumerate() {
        if !skip.contains(&i) {
            p.offer(line);
        }
    }
    finish(p, skip.clone(), true)
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
fn sealed_rows_and_retired_rules_do_not_depend_on_batch_cuts_or_a_restart() {
    let lines = log(2_000, 75, true);
    let whole = with_horizon_and(with_rules(), &lines, 8, 100_000);
    let small = with_horizon_and(with_rules(), &lines, 8, 37);
    let diff = differences(&whole.rows, &small.rows, |_| true);
    assert!(diff.is_empty(), "batches of 37: {diff:#?}");
    assert_eq!(whole.firings, small.firings, "batches of 37");
    let retired = whole.state.as_ref().and_then(|s| s.rules_retired());
    assert!(retired.is_some(), "rule facts retire");

    // Half the log, a checkpoint's state, a fresh pipeline restored from it, the other half.
    let half = lines.len() / 2;
    let mut first = pipeline_with(with_rules(), 5_000, Some(8));
    let mut beyond = HashSet::new();
    feed(&mut first, &lines[..half], 0, &mut beyond);
    let state = first.state().expect("a state");
    assert!(state.sealed().is_some(), "the first half seals days");
    drop(first);
    let mut second = pipeline_with(with_rules(), 5_000, Some(8));
    second.restore(state).expect("the state restores");
    feed(&mut second, &lines[half..], half, &mut beyond);
    let restarted = finish(second, beyond, false);
    assert_eq!(
        restarted.beyond, whole.beyond,
        "the horizon holds after the restart"
    );
    let diff = differences(&whole.rows, &restarted.rows, |_| true);
    assert!(diff.is_empty(), "restarted: {diff:#?}");
    assert_eq!(whole.firings, restarted.firings, "restarted");
}

#[test]
fn rule_facts_retire_and_every_decision_left_equals_a_recompute() {
    let lines = steady(3_000, 150, 40);
    let run = with_horizon_and(with_rules(), &lines, 10, 20_000);
    let expected = recompute_with(with_rules(), &lines, &run.beyond);
    // Campaign rows (per day and the lifetime rates and lifts) keep every retired firing.
    let diff = differences(&run.rows, &expected.rows, |_| true);
    assert!(
        diff.is_empty(),
        "{} rows differ: {:#?}",
        diff.len(),
        &diff[..diff.len().min(20)]
    );
    let state = run.state.expect("a state");
    let bound = state
        .rules_retired()
        .expect("150 days under a 10-day horizon retire rule facts");
    // Every firing still held is the recompute's, and every one not held was released
    // before the retired days.
    for (key, f) in &run.firings {
        assert_eq!(expected.firings.get(key), Some(f), "firing {key:?}");
    }
    let retired: Vec<_> = expected
        .firings
        .iter()
        .filter(|(k, _)| !run.firings.contains_key(k))
        .collect();
    assert!(!retired.is_empty(), "no firing retired");
    for (key, f) in retired {
        assert!(
            f.release < bound,
            "firing {key:?} released at {} is gone",
            f.release
        );
    }
    let (kept, _) = state.kept_rule_sizes();
    let (all, _) = expected.state.expect("a state").kept_rule_sizes();
    assert!(
        kept * 3 < all,
        "{kept} triggers kept of {all}: rule facts are not retired"
    );
}
