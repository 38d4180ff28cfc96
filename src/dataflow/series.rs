//! Shared shapes: counts to rows, rates from two counts, clipping at today, windowed coverage.

use differential_dataflow::hashable::Hashable;
use differential_dataflow::operators::CountTotal;
use differential_dataflow::ExchangeData;
use serde::{Deserialize, Serialize};

use super::{Coll, Rows};
use crate::facts::Person;
use crate::metric::{Key, Value};
use crate::time::Day;

/// Turns counts into rows of `Value::Count`.
pub fn count_rows<'s, K: ExchangeData>(
    counts: Coll<'s, (K, isize)>,
    key: impl Fn(K) -> Key + 'static,
) -> Rows<'s> {
    counts.map(move |(k, n)| (key(k), Value::Count(n as i64)))
}

/// Turns cent totals into rows of `Value::Money`.
pub fn money_rows<'s, K: ExchangeData>(
    cents: Coll<'s, (K, isize)>,
    key: impl Fn(K) -> Key + 'static,
) -> Rows<'s> {
    cents.map(move |(k, c)| (key(k), Value::Money(c as i64)))
}

/// Rows `num / (den * den_scale)` where both sides exist and are non-zero.
pub fn rate_rows<'s, K: ExchangeData + Hashable>(
    num: Coll<'s, (K, isize)>,
    den: Coll<'s, (K, isize)>,
    den_scale: i64,
    key: impl Fn(&K) -> Key + 'static,
) -> Rows<'s> {
    num.join_map(den, move |k, n, d| {
        (key(k), Value::Rate(*n as i64, *d as i64 * den_scale))
    })
    .filter(|(_, v)| !matches!(v, Value::Rate(0, _) | Value::Rate(_, 0)))
}

/// Keeps the records whose day is at most today.
pub fn upto_today<'s, X: ExchangeData>(
    c: Coll<'s, (Day, X)>,
    today: Coll<'s, Day>,
) -> Coll<'s, (Day, X)> {
    c.map(|r| ((), r))
        .join_map(today.map(|t| ((), t)), |_, r, t| (r.clone(), *t))
        .filter(|((d, _), t)| d <= t)
        .map(|(r, _)| r)
}

/// Merged intervals of the union over `days` of `[a + lo, a + hi]`; `days` is sorted.
pub fn spans(days: &[Day], lo: Day, hi: Day) -> Vec<(Day, Day)> {
    let mut out: Vec<(Day, Day)> = Vec::new();
    for &a in days {
        let (s, e) = (a + lo, a + hi);
        match out.last_mut() {
            Some(last) if s <= last.1 + 1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// Intersection of two sorted lists of disjoint intervals.
pub fn intersect(a: &[(Day, Day)], b: &[(Day, Day)]) -> Vec<(Day, Day)> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        let s = a[i].0.max(b[j].0);
        let e = a[i].1.min(b[j].1);
        if s <= e {
            out.push((s, e));
        }
        if a[i].1 < b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Point {
    Delta(Day, i64),
    Today(Day),
}

/// For per-person day intervals tagged by series, the number of persons covering each day,
/// for days up to today where that number is positive.
pub fn coverage<'s, Tag>(
    spans: Coll<'s, (Person, (Tag, Day, Day))>,
    today: Coll<'s, Day>,
    tags: Vec<Tag>,
) -> Coll<'s, ((Tag, Day), isize)>
where
    Tag: ExchangeData + Hashable + std::hash::Hash + Copy,
{
    let deltas = spans
        .explode(|(_p, (tag, s, e))| [((tag, s), 1isize), ((tag, e + 1), -1isize)])
        .count_total()
        .map(|((tag, day), delta)| (tag, Point::Delta(day, delta as i64)));
    let todays = today.flat_map(move |t| {
        tags.clone()
            .into_iter()
            .map(move |tag| (tag, Point::Today(t)))
    });
    deltas
        .concat(todays)
        .reduce_named("Coverage", |_tag, input, out| {
            let today = input.iter().find_map(|(p, _)| match *p {
                Point::Today(t) => Some(*t),
                Point::Delta(..) => None,
            });
            let Some(today) = today else { return };
            let mut running = 0i64;
            let mut points = input
                .iter()
                .filter_map(|(p, _)| match *p {
                    Point::Delta(d, n) => Some((*d, *n)),
                    Point::Today(_) => None,
                })
                .peekable();
            let Some(&(mut day, _)) = points.peek() else {
                return;
            };
            while day <= today {
                while let Some(&(d, n)) = points.peek() {
                    if d > day {
                        break;
                    }
                    running += n;
                    points.next();
                }
                if running > 0 {
                    out.push(((day, isize::try_from(running).unwrap_or(isize::MAX)), 1));
                }
                day += 1;
            }
        })
        .map(|(tag, (day, n))| ((tag, day), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_merge_touching_windows() {
        assert_eq!(spans(&[0, 3, 10], 0, 2), vec![(0, 5), (10, 12)]);
        assert_eq!(spans(&[0, 1], 3, 4), vec![(3, 5)]);
        assert_eq!(spans(&[], 0, 6), vec![]);
    }

    #[test]
    fn intersections() {
        assert_eq!(
            intersect(&[(0, 5), (8, 9)], &[(3, 8)]),
            vec![(3, 5), (8, 8)]
        );
        assert_eq!(intersect(&[(0, 1)], &[(2, 3)]), vec![]);
    }
}
