//! Ratio family: persons with a numerator event over persons in the denominator, per day.

use differential_dataflow::operators::{CountTotal, ThresholdTotal};
use serde::{Deserialize, Serialize};

use super::series::{count_rows, rate_rows};
use super::{Base, Coll, Rows};
use crate::facts::{NameId, Person};
use crate::metric::{Dims, Metric};
use crate::time::Day;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Side {
    Numerator,
    Denominator,
}

/// All ratio rows. `named` may repeat a `(person, (day, name))` once per identity of the
/// person: the one distinct below counts each person once per ratio, side and day.
pub fn rows<'s>(base: &Base<'s>, named: Coll<'s, (Person, (Day, NameId))>) -> Rows<'s> {
    let ratios = base.plan.ratios.clone();
    let by_event = named.flat_map(move |(p, (d, name))| {
        let mut out = Vec::new();
        for (r, plan) in ratios.iter().enumerate() {
            if plan.numerator.contains(&name) {
                out.push(((crate::plan::id(r), Side::Numerator, d), p));
            }
            if plan
                .denominator
                .as_ref()
                .is_some_and(|den| den.contains(&name))
            {
                out.push(((crate::plan::id(r), Side::Denominator, d), p));
            }
        }
        out
    });
    let active_ratios: Vec<u16> = base
        .plan
        .ratios
        .iter()
        .enumerate()
        .filter(|(_, r)| r.denominator.is_none())
        .map(|(i, _)| crate::plan::id(i))
        .collect();
    // An "active" denominator is the day's active persons: `days` holds each (person, day)
    // once already, so its counts need no distinct (and no arrangement of every person-day).
    let by_activity = base.days.clone().flat_map(move |(_p, d)| {
        active_ratios
            .clone()
            .into_iter()
            .map(move |r| (r, Side::Denominator, d))
    });
    let counts = by_event
        .distinct_total()
        .map(|(k, _p)| k)
        .concat(by_activity)
        .count_total();
    let num = counts
        .clone()
        .filter(|((_, s, _), _)| *s == Side::Numerator)
        .map(|((r, _, d), n)| ((r, d), n));
    let den = counts
        .filter(|((_, s, _), _)| *s == Side::Denominator)
        .map(|((r, _, d), n)| ((r, d), n));
    count_rows(num.clone(), |(r, d)| {
        (Metric::RatioNumerator, Dims::NameDay(r, d))
    })
    .concat(count_rows(den.clone(), |(r, d)| {
        (Metric::RatioDenominator, Dims::NameDay(r, d))
    }))
    .concat(rate_rows(num, den, 1, |&(r, d)| {
        (Metric::Ratio, Dims::NameDay(r, d))
    }))
}
