//! Retention family: day cohorts (bounded and unbounded), month cohorts, sliding-window retention.

use differential_dataflow::operators::CountTotal;
use serde::{Deserialize, Serialize};

use super::series::{count_rows, coverage, intersect, rate_rows, spans};
use super::{Base, Coll, Rows};
use crate::metric::{Dims, Key, Metric, Value};
use crate::time::{month_of, Day};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Kind {
    Day,
    Unbounded,
    Month,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Sliding {
    Base(u16),
    Kept(u16),
}

/// All retention rows.
pub fn rows<'s>(base: &Base<'s>) -> Rows<'s> {
    let max_day = base.plan.config.retention_max_day as Day;
    let cohorts = base
        .reduce_days("Cohorts", move |_p, input, out| {
            let days: Vec<Day> = input.iter().map(|(d, _)| **d).collect();
            let first = days[0];
            let last = days[days.len() - 1];
            for &d in &days[1..] {
                if d - first <= max_day {
                    let n = u16::try_from(d - first).expect("1..=max_day: days are sorted");
                    out.push(((Kind::Day, first, n), 1));
                }
            }
            // One record per person (how many days on it was still seen, up to max_day),
            // rather than one per day `n` it counts for: `unbounded_rows` sums them up.
            let span = (last - first).min(max_day);
            if span > 0 {
                let span = u16::try_from(span).expect("1..=max_day");
                out.push(((Kind::Unbounded, first, span), 1));
            }
            let cohort_month = month_of(first);
            let mut months: Vec<i32> = days
                .iter()
                .map(|&d| month_of(d) - cohort_month)
                .filter(|n| (1..=12).contains(n))
                .collect();
            months.dedup();
            for n in months {
                let n = u16::try_from(n).expect("1..=12, as filtered");
                out.push(((Kind::Month, cohort_month, n), 1));
            }
        })
        .map(|(_p, k)| k)
        .count_total();

    let new_by_day = base.reduce_days("CohortDay", |_p, input, out| out.push((*input[0].0, 1)));
    let new_by_day = new_by_day.map(|(_p, d)| d);
    let new_by_month = new_by_day.clone().map(month_of).count_total();
    let new_by_day = new_by_day.count_total();

    let of_kind = |kind: Kind| {
        cohorts
            .clone()
            .filter(move |((k, _, _), _)| *k == kind)
            .map(|((_, c, n), v)| ((c, n), v))
    };
    let daily = of_kind(Kind::Day);
    let monthly = of_kind(Kind::Month);
    let unbounded = unbounded_rows(of_kind(Kind::Unbounded));
    let daily_rate = cohort_rates(daily.clone(), new_by_day, |c, n| {
        (Metric::RetentionRate, Dims::CohortDayN(c, n))
    });
    let monthly_rate = cohort_rates(monthly.clone(), new_by_month, |c, n| {
        (Metric::MonthlyRetentionRate, Dims::CohortMonthN(c, n))
    });

    count_rows(daily, |(c, n)| (Metric::Retention, Dims::CohortDayN(c, n)))
        .concat(count_rows(unbounded, |(c, n)| {
            (Metric::RetentionUnbounded, Dims::CohortDayN(c, n))
        }))
        .concat(count_rows(monthly, |(c, n)| {
            (Metric::MonthlyRetention, Dims::CohortMonthN(c, n))
        }))
        .concat(daily_rate)
        .concat(monthly_rate)
        .concat(sliding(base))
}

/// `retention_unbounded` counts from persons per `(cohort, span)`: the persons of a cohort seen
/// `n` or more days after their first day are those whose span is at least `n`.
fn unbounded_rows<'s>(spans: Coll<'s, ((Day, u16), isize)>) -> Coll<'s, ((Day, u16), isize)> {
    spans
        .map(|((cohort, span), persons)| (cohort, (span, persons)))
        .reduce_named("UnboundedFromSpans", |_cohort, input, out| {
            let mut by_span: Vec<(u16, isize)> =
                input.iter().map(|((s, p), r)| (*s, *p * *r)).collect();
            by_span.sort_unstable();
            let mut seen_at_least = 0;
            let mut next = by_span.len();
            let longest = by_span.last().map_or(0, |(s, _)| *s);
            for n in (1..=longest).rev() {
                while next > 0 && by_span[next - 1].0 >= n {
                    next -= 1;
                    seen_at_least += by_span[next].1;
                }
                if seen_at_least > 0 {
                    out.push(((n, seen_at_least), 1));
                }
            }
        })
        .map(|(cohort, (n, persons))| ((cohort, n), persons))
}

/// `count(cohort, n) / size(cohort)` rows.
fn cohort_rates<'s>(
    counts: Coll<'s, ((Day, u16), isize)>,
    sizes: Coll<'s, (Day, isize)>,
    key: impl Fn(Day, u16) -> Key + 'static,
) -> Rows<'s> {
    counts
        .map(|((c, n), v)| (c, (n, v)))
        .join_map(sizes, move |c, &(n, v), &size| {
            (key(*c, n), Value::Rate(v as i64, size as i64))
        })
}

/// Sliding-window retention for every configured window.
fn sliding<'s>(base: &Base<'s>) -> Rows<'s> {
    let windows = base.plan.config.sliding_windows.clone();
    let tags: Vec<Sliding> = windows
        .iter()
        .flat_map(|&w| [Sliding::Base(w), Sliding::Kept(w)])
        .collect();
    let per_person = base.reduce_days("SlidingWindows", move |_p, input, out| {
        let days: Vec<Day> = input.iter().map(|(d, _)| **d).collect();
        for &window in &windows {
            let w = Day::from(window);
            let earlier = spans(&days, w, 2 * w - 1);
            let recent = spans(&days, 0, w - 1);
            for &(s, e) in &intersect(&earlier, &recent) {
                out.push(((Sliding::Kept(window), s, e), 1));
            }
            for (s, e) in earlier {
                out.push(((Sliding::Base(window), s, e), 1));
            }
        }
    });
    let covered = coverage(per_person, base.today.clone(), tags);
    let base_counts = covered.clone().flat_map(|((tag, d), n)| match tag {
        Sliding::Base(w) => Some(((d, w), n)),
        Sliding::Kept(_) => None,
    });
    let kept_counts = covered.flat_map(|((tag, d), n)| match tag {
        Sliding::Kept(w) => Some(((d, w), n)),
        Sliding::Base(_) => None,
    });
    count_rows(base_counts.clone(), |(d, w)| {
        (Metric::SlidingRetentionBase, Dims::DayWindow(d, w))
    })
    .concat(count_rows(kept_counts.clone(), |(d, w)| {
        (Metric::SlidingRetentionKept, Dims::DayWindow(d, w))
    }))
    .concat(rate_rows(kept_counts, base_counts, 1, |(d, w)| {
        (Metric::SlidingRetention, Dims::DayWindow(*d, *w))
    }))
}
