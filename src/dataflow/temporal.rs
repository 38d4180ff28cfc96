//! The temporal filter: records whose time has come by the clock (`at <= now`), kept exact as
//! records and the clock change, touching only records whose side of the clock changed.

use std::collections::{BTreeMap, HashMap};

use differential_dataflow::{AsCollection, ExchangeData};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::Capability;

use super::{Coll, Time};

/// Updates waiting for their time to complete: records and clock values.
type Stashed<D> = (Capability<Time>, Vec<((D, i64), isize)>, Vec<(i64, isize)>);

/// The records `(d, at)` with `at <= now`, as `d`.
///
/// `now` holds one value at a time (the clock); every worker sees it. Each worker keeps its
/// own records ordered by `at`, so a moving clock releases (or, should it move back, takes
/// back) only the records between its old and new value, and a record that changes is passed
/// on or held by comparing its time with the clock alone.
pub fn due<'s, D>(records: Coll<'s, (D, i64)>, now: Coll<'s, i64>, name: &str) -> Coll<'s, D>
where
    D: ExchangeData + Ord + std::hash::Hash,
{
    let clock = now.inner.broadcast();
    records
        .inner
        .binary_frontier(clock, Pipeline, Pipeline, name, move |_cap, _info| {
            let mut stash: BTreeMap<Time, Stashed<D>> = BTreeMap::new();
            // Every record by its time, with its count.
            let mut held: BTreeMap<i64, BTreeMap<D, isize>> = BTreeMap::new();
            let mut clock_values: HashMap<i64, isize> = HashMap::new();
            let mut now: Option<i64> = None;
            move |(input1, frontier1), (input2, frontier2), output| {
                input1.for_each(|cap, data| {
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
                input2.for_each(|cap, data| {
                    let Some(cap) = cap.retain_least(0) else {
                        return;
                    };
                    for (v, t, r) in data.drain(..) {
                        stash
                            .entry(t)
                            .or_insert_with(|| (cap.delayed(&t), Vec::new(), Vec::new()))
                            .2
                            .push((v, r));
                    }
                });
                while let Some(&t) = stash.keys().next() {
                    if frontier1.frontier().less_equal(&t) || frontier2.frontier().less_equal(&t) {
                        break;
                    }
                    let (cap, changes, clocks) = stash.remove(&t).expect("the first entry");
                    let mut session = output.session(&cap);
                    for (v, r) in clocks {
                        let c = clock_values.entry(v).or_insert(0);
                        *c += r;
                        if *c == 0 {
                            clock_values.remove(&v);
                        }
                    }
                    let next = clock_values
                        .iter()
                        .filter(|(_, c)| **c > 0)
                        .map(|(v, _)| *v)
                        .max();
                    if next != now {
                        // Records between the old and the new clock change sides.
                        use std::ops::Bound::{Excluded, Included, Unbounded};
                        let (range, sign) = match (now, next) {
                            (None, Some(n)) => ((Unbounded, Included(n)), 1),
                            (Some(o), None) => ((Unbounded, Included(o)), -1),
                            (Some(o), Some(n)) if n > o => ((Excluded(o), Included(n)), 1),
                            (Some(o), Some(n)) => ((Excluded(n), Included(o)), -1),
                            (None, None) => unreachable!("the clock changed"),
                        };
                        for records in held.range(range).map(|(_, m)| m) {
                            for (d, r) in records {
                                session.give((d.clone(), t, r * sign));
                            }
                        }
                        now = next;
                    }
                    for ((d, at), r) in changes {
                        if now.is_some_and(|n| at <= n) {
                            session.give((d.clone(), t, r));
                        }
                        let at_time = held.entry(at).or_default();
                        let c = at_time.entry(d.clone()).or_insert(0);
                        *c += r;
                        if *c == 0 {
                            at_time.remove(&d);
                            if at_time.is_empty() {
                                held.remove(&at);
                            }
                        }
                    }
                }
            }
        })
        .as_collection()
}
