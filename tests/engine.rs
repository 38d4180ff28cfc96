//! The engine on its own: batches queued faster than the workers take them still get their
//! progress reported one by one, and a round of batches completes at its last time.

use std::sync::Arc;

use tidemark::config::Config;
use tidemark::dataflow::Time;
use tidemark::engine::{Dataflow, DataflowOptions, Round, Update};
use tidemark::facts::{FactBatch, Ident};
use tidemark::ingest::Dictionary;
use tidemark::plan::Plan;

/// Batches queued faster than the workers take them still get their progress reported
/// one by one, not only once the queue runs dry.
#[test]
fn progress_is_reported_while_input_keeps_coming() {
    let plan = Arc::new(Plan::new(Config::default()));
    let options = DataflowOptions {
        queue: 1000,
        ..Default::default()
    };
    let engine = Dataflow::start(plan, Dictionary::new(), options).unwrap();
    let batches = 300u64;
    for t in 1..=batches {
        engine.batches.send(Round::one(t, one_event(t))).unwrap();
    }
    let updates = engine.finish().unwrap();
    let marks: Vec<Time> = updates
        .try_iter()
        .filter_map(|u| match u {
            Update::Progress(t) => Some(t),
            _ => None,
        })
        .collect();
    assert!(marks.windows(2).all(|w| w[0] < w[1]), "{marks:?}");
    assert_eq!(marks.last(), Some(&batches));
    assert!(
        marks.len() > 10,
        "progress came in {} marks: {marks:?}",
        marks.len()
    );
}

fn one_event(t: u64) -> FactBatch {
    let ident = Ident::try_from(t).unwrap();
    FactBatch {
        idents: vec![ident],
        hours: vec![(ident, tidemark::time::Hour::try_from(t).unwrap())],
        ..Default::default()
    }
}

/// Progress marks and row changes of feeding `rounds`, as the engine reports them.
fn run(rounds: Vec<Round>) -> (Vec<Time>, Vec<(String, Time, isize)>) {
    let plan = Arc::new(Plan::new(Config::default()));
    let engine = Dataflow::start(plan, Dictionary::new(), DataflowOptions::default()).unwrap();
    for r in rounds {
        engine.batches.send(r).unwrap();
    }
    let (mut marks, mut rows) = (Vec::new(), Vec::new());
    for u in engine.finish().unwrap().try_iter() {
        match u {
            Update::Progress(t) => marks.push(t),
            Update::Rows(changes) => rows.extend(
                changes
                    .into_iter()
                    .map(|(r, t, d)| (format!("{r:?}"), t, d)),
            ),
            _ => {}
        }
    }
    (marks, rows)
}

/// Batches taken as one round are fed at its first time and complete at its last: no progress
/// mark falls inside the round, and its rows are those of the batches one by one.
#[test]
fn a_round_is_fed_at_its_first_time_and_complete_at_its_last() {
    let (marks, rows) = run(vec![
        Round {
            at: 1,
            through: 3,
            batches: (1..=3).map(one_event).collect(),
        },
        Round::one(4, one_event(4)),
    ]);
    assert!(
        marks.iter().all(|t| *t == 0 || *t >= 3),
        "a mark inside the round: {marks:?}"
    );
    assert_eq!(marks.last(), Some(&4));
    assert!(rows.iter().all(|(_, t, _)| *t == 1 || *t == 4), "{rows:?}");
    let (_, singly) = run((1..=4).map(|t| Round::one(t, one_event(t))).collect());
    let net = |rows: &[(String, Time, isize)]| {
        let mut m = std::collections::BTreeMap::<String, isize>::new();
        for (r, _, d) in rows {
            *m.entry(r.clone()).or_default() += d;
        }
        m.retain(|_, d| *d != 0);
        m
    };
    assert!(!net(&rows).is_empty());
    assert_eq!(net(&rows), net(&singly));
}
