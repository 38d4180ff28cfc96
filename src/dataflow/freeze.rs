//! Final rows: once a day is sealed (beyond `serve`'s horizon), changes to the rows it decides
//! are dropped, so retiring its facts never moves them; checkpointed final rows come back as is.

use std::collections::{BTreeMap, HashMap};

use differential_dataflow::AsCollection;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::Capability;

use super::{Coll, Rows, Time};
use crate::metric::{sealed, Key, Value};
use crate::time::Day;

/// Row changes and seal changes of one time, waiting for it to complete.
type Stashed = (
    Capability<Time>,
    Vec<((Key, Value), isize)>,
    Vec<(Day, isize)>,
);

/// `rows` without the changes, at each time, to rows that the seal as of that time makes
/// final (`metric::sealed`). `seal` holds at most one day at a time; every worker sees it.
///
/// A change and the seal that makes its row final may come at one time: the seal applies
/// first. Ingest seals a day only in the batch after the one that moved its clock past it, so
/// no event's own change is ever dropped; what is dropped is the retiring of sealed days' facts
/// and corrections to sealed days by later identity links.
pub fn freeze<'s>(rows: Rows<'s>, seal: Coll<'s, Day>) -> Rows<'s> {
    let seal = seal.inner.broadcast();
    rows.inner
        .binary_frontier(
            seal,
            Pipeline,
            Pipeline,
            "FreezeSealedRows",
            move |_cap, _info| {
                let mut stash: BTreeMap<Time, Stashed> = BTreeMap::new();
                let mut seal_counts: HashMap<Day, isize> = HashMap::new();
                move |(rows_in, rows_frontier), (seal_in, seal_frontier), output| {
                    rows_in.for_each(|cap, data| {
                        let Some(cap) = cap.retain_least(0) else {
                            return;
                        };
                        for (d, t, r) in data.drain(..) {
                            stash
                                .entry(t)
                                .or_insert_with(|| (cap.delayed(&t), Vec::new(), Vec::new()))
                                .1
                                .push((d, r));
                        }
                    });
                    seal_in.for_each(|cap, data| {
                        let Some(cap) = cap.retain_least(0) else {
                            return;
                        };
                        for (d, t, r) in data.drain(..) {
                            stash
                                .entry(t)
                                .or_insert_with(|| (cap.delayed(&t), Vec::new(), Vec::new()))
                                .2
                                .push((d, r));
                        }
                    });
                    while let Some(&t) = stash.keys().next() {
                        if rows_frontier.frontier().less_equal(&t)
                            || seal_frontier.frontier().less_equal(&t)
                        {
                            break;
                        }
                        let (cap, changes, seals) = stash.remove(&t).expect("the first entry");
                        for (d, r) in seals {
                            let c = seal_counts.entry(d).or_insert(0);
                            *c += r;
                            if *c == 0 {
                                seal_counts.remove(&d);
                            }
                        }
                        let current = seal_counts
                            .iter()
                            .filter(|(_, c)| **c > 0)
                            .map(|(d, _)| *d)
                            .max();
                        let mut session = output.session(&cap);
                        for ((key, value), r) in changes {
                            if !current.is_some_and(|s| sealed(&key, s)) {
                                session.give(((key, value), t, r));
                            }
                        }
                    }
                }
            },
        )
        .as_collection()
}
