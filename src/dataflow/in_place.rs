//! A reduce whose per-key state lives in a hash map: for families whose output is a function
//! of a person's whole history, with no trace to search and no output arrangement to keep.
//!
//! Differential's `reduce` finds a changed key's history in each batch of its input trace and
//! its previous output in an output trace. Here each key's values are one sorted vector in a
//! hash map, and the previous output is the logic run again on the values before the change.
//! The output is the same collection: for every key and time, the logic over the key's values
//! accumulated at that time (nothing for a key without values), as changes.

use std::collections::BTreeMap;
use std::hash::Hash;

use differential_dataflow::consolidation::consolidate;
use differential_dataflow::hashable::Hashable;
use differential_dataflow::{AsCollection, ExchangeData};
use foldhash::HashMap;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;

use super::{Coll, Time};

/// Changes of one time, waiting for it to complete.
type Stashed<K, V> = (Capability<Time>, Vec<(K, V, isize)>);

/// The logic of a reduce: a key, its values with their counts (sorted, none zero), and the
/// output to fill with values and counts.
pub trait Logic<K, V, O>: FnMut(&K, &[(&V, isize)], &mut Vec<(O, isize)>) + 'static {}
impl<K, V, O, L: FnMut(&K, &[(&V, isize)], &mut Vec<(O, isize)>) + 'static> Logic<K, V, O> for L {}

/// `input` reduced per key by `logic`, with each key's values kept in place (see the module).
pub fn reduce<'s, K, V, O, L>(
    input: Coll<'s, (K, V)>,
    name: &str,
    mut logic: L,
) -> Coll<'s, (K, O)>
where
    K: ExchangeData + Hash + Eq + Ord + Hashable,
    V: ExchangeData + Ord,
    O: ExchangeData + Ord,
    L: Logic<K, V, O>,
{
    let exchange = Exchange::new(|((k, _), _, _): &((K, V), Time, isize)| k.hashed().into());
    input
        .inner
        .unary_frontier(exchange, name, move |_cap, _info| {
            // Changes waiting for their time to complete, by time.
            let mut stash: BTreeMap<Time, Stashed<K, V>> = BTreeMap::new();
            // Each key's values and counts, sorted by value.
            let mut state: HashMap<K, Vec<(V, isize)>> = HashMap::default();
            let mut out: Vec<(O, isize)> = Vec::new();
            move |(input, frontier), output| {
                input.for_each(|cap, data| {
                    let Some(cap) = cap.retain_least(0) else {
                        return;
                    };
                    for ((k, v), t, r) in data.drain(..) {
                        stash
                            .entry(t)
                            .or_insert_with(|| (cap.delayed(&t), Vec::new()))
                            .1
                            .push((k, v, r));
                    }
                });
                while let Some(&t) = stash.keys().next() {
                    if frontier.frontier().less_equal(&t) {
                        break;
                    }
                    let (cap, mut changes) = stash.remove(&t).expect("the first entry");
                    // Grouped by key; a key's values are kept sorted as they are added.
                    changes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                    let mut session = output.session(&cap);
                    let mut changes = changes.into_iter().peekable();
                    while let Some((key, v, r)) = changes.next() {
                        let values = state.entry(key.clone()).or_default();
                        out.clear();
                        run(&mut logic, &key, values, &mut out);
                        for (_, r) in out.iter_mut() {
                            *r = -*r;
                        }
                        add(values, v, r);
                        while let Some((_, v, r)) = changes.next_if(|c| c.0 == key) {
                            add(values, v, r);
                        }
                        run(&mut logic, &key, values, &mut out);
                        if values.is_empty() {
                            state.remove(&key);
                        }
                        consolidate(&mut out);
                        for (o, r) in out.drain(..) {
                            session.give(((key.clone(), o), t, r));
                        }
                    }
                }
            }
        })
        .as_collection()
}

/// Appends the logic's output over `values` (nothing when there are none).
fn run<K, V, O>(
    logic: &mut impl Logic<K, V, O>,
    key: &K,
    values: &[(V, isize)],
    out: &mut Vec<(O, isize)>,
) {
    if values.is_empty() {
        return;
    }
    let refs: Vec<(&V, isize)> = values.iter().map(|(v, r)| (v, *r)).collect();
    logic(key, &refs, out);
}

/// Adds one change to a key's values (sorted by value), dropping a value whose count is zero.
fn add<V: Ord>(values: &mut Vec<(V, isize)>, v: V, r: isize) {
    match values.binary_search_by(|(w, _)| w.cmp(&v)) {
        Ok(i) => {
            values[i].1 += r;
            if values[i].1 == 0 {
                values.remove(i);
            }
        }
        Err(i) => {
            if r != 0 {
                values.insert(i, (v, r));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use differential_dataflow::input::Input;
    use proptest::prelude::*;

    use super::*;

    /// Output of a logic that reads values, counts and their order.
    fn logic(k: &u32, input: &[(&u8, isize)], out: &mut Vec<(i64, isize)>) {
        let sum: i64 = input.iter().map(|(v, r)| i64::from(**v) * *r as i64).sum();
        out.push((sum, 1));
        out.push((i64::from(*input[0].0) + 1000, input[0].1));
        out.push((i64::from(*k) + 2000, input.len() as isize));
        // Two pushes of one value add up.
        out.push((sum, 1));
    }

    type Updates = Vec<(Time, (u32, u8), isize)>;

    /// The changes each way of reducing gives, consolidated, by worker count.
    fn changes(workers: usize, updates: Updates, in_place: bool) -> Vec<((u32, i64), Time, isize)> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let last = updates.iter().map(|u| u.0).max().unwrap_or(0);
        timely::execute(timely::Config::process(workers), move |worker| {
            let sink = sink.clone();
            let index = worker.index();
            let mut input = worker.dataflow::<Time, _, _>(|scope| {
                let (handle, coll) = scope.new_collection::<(u32, u8), isize>();
                let out = if in_place {
                    reduce(coll, "InPlace", logic)
                } else {
                    coll.reduce(logic)
                };
                out.inspect(move |x| sink.lock().unwrap().push(*x));
                handle
            });
            // Worker 0 sends every update, in the order given, each at its own time.
            if index == 0 {
                for (t, d, r) in &updates {
                    input.update_at(*d, *t, *r);
                }
            }
            input.advance_to(last + 1);
            input.close();
        })
        .expect("the computation runs");
        let mut seen = Arc::try_unwrap(seen).unwrap().into_inner().unwrap();
        differential_dataflow::consolidation::consolidate_updates(&mut seen);
        seen
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn in_place_equals_differentials_reduce_in_any_order_and_worker_count(
            updates in prop::collection::vec(
                (0..6u64, (0..4u32, 0..6u8), prop::sample::select(vec![-1isize, 1, 1, 2])),
                0..60,
            ),
        ) {
            let expected = changes(1, updates.clone(), false);
            prop_assert_eq!(&changes(1, updates.clone(), true), &expected);
            prop_assert_eq!(&changes(2, updates, true), &expected);
        }
    }
}
