//! The engine on its own: batches queued faster than the workers take them still get their
//! progress reported one by one.

use std::sync::Arc;

use tidemark::config::Config;
use tidemark::dataflow::Time;
use tidemark::engine::{Dataflow, DataflowOptions, Update};
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
        let ident = Ident::try_from(t).unwrap();
        let batch = FactBatch {
            idents: vec![ident],
            hours: vec![(ident, tidemark::time::Hour::try_from(t).unwrap())],
            ..Default::default()
        };
        engine.batches.send((t, batch)).unwrap();
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
