//! Activity family: DAU/WAU/MAU, stickiness, hourly actives, new users, weekly growth, lifecycle.

use differential_dataflow::operators::CountTotal;
use serde::{Deserialize, Serialize};

use super::series::{count_rows, coverage, rate_rows, spans, upto_today};
use super::{Base, Coll, Rows};
use crate::metric::{Dims, Metric, State, Value};
use crate::time::{week_of, Day};

/// All activity rows.
pub fn rows<'s>(base: &Base<'s>) -> Rows<'s> {
    let cal = base.plan.config.calendar.clone();
    let dau = base.days.clone().map(|(_, d)| d).count_total();
    let hau = base.hours.clone().map(|(_, h)| h).count_total();
    let cohort_days = base.firsts.clone().map(move |(_, f)| cal.day(f.ts));
    let new_users = cohort_days.clone().count_total();
    let weekly = cohort_days.map(week_of).count_total();

    let windows = base.reduce_days("ActiveWindows", |_p, input, out| {
        let days: Vec<Day> = input.iter().map(|(d, _)| **d).collect();
        for (len, tag) in [(7, Metric::Wau), (30, Metric::Mau)] {
            for (s, e) in spans(&days, 0, len - 1) {
                out.push(((tag, s, e), 1));
            }
        }
    });
    let covered = coverage(windows, base.today.clone(), vec![Metric::Wau, Metric::Mau]);
    let mau = covered
        .clone()
        .filter(|((tag, _), _)| *tag == Metric::Mau)
        .map(|((_, d), n)| (d, n));
    let wau_mau = covered.map(|((tag, d), n)| ((tag, Dims::Day(d)), Value::Count(n as i64)));

    count_rows(dau.clone(), |d| (Metric::Dau, Dims::Day(d)))
        .concat(count_rows(hau, |h| (Metric::Hau, Dims::Hour(h))))
        .concat(count_rows(new_users, |d| (Metric::NewUsers, Dims::Day(d))))
        .concat(count_rows(weekly.clone(), |w| {
            (Metric::NewUsersWeekly, Dims::Week(w))
        }))
        .concat(wau_mau)
        .concat(rate_rows(dau, mau, 1, |d| {
            (Metric::Stickiness, Dims::Day(*d))
        }))
        .concat(growth(weekly, base.today.clone()))
        .concat(lifecycle(base))
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum WeekPoint {
    Count(Day, i64),
    Today(Day),
}

/// `(new(w) - new(w-7d)) / new(w-7d)` for weeks up to the current one.
fn growth<'s>(weekly: Coll<'s, (Day, isize)>, today: Coll<'s, Day>) -> Rows<'s> {
    weekly
        .map(|(w, n)| ((), WeekPoint::Count(w, n as i64)))
        .concat(today.map(|t| ((), WeekPoint::Today(week_of(t)))))
        .reduce_named("WeeklyGrowth", |_, input, out| {
            let mut counts = std::collections::BTreeMap::new();
            let mut this_week = None;
            for (p, _) in input {
                match p {
                    WeekPoint::Count(w, n) => {
                        counts.insert(*w, *n);
                    }
                    WeekPoint::Today(w) => this_week = Some(*w),
                }
            }
            let Some(this_week) = this_week else { return };
            for (&prev_week, &prev) in &counts {
                let week = prev_week + 7;
                let cur = counts.get(&week).copied().unwrap_or(0);
                if week <= this_week && prev > 0 && cur != prev {
                    out.push(((week, cur - prev, prev), 1));
                }
            }
        })
        .map(|((), (w, num, den))| {
            (
                (Metric::NewUserGrowthWeekly, Dims::Week(w)),
                Value::Rate(num, den),
            )
        })
}

/// Lifecycle states per day; dormant rows stop at today.
fn lifecycle<'s>(base: &Base<'s>) -> Rows<'s> {
    let states = base.reduce_days("Lifecycle", |_p, input, out| {
        let days: Vec<Day> = input.iter().map(|(d, _)| **d).collect();
        for (i, &d) in days.iter().enumerate() {
            let state = if i == 0 {
                State::New
            } else if days[i - 1] == d - 1 {
                State::Returning
            } else {
                State::Resurrecting
            };
            out.push(((d, state), 1));
            if days.get(i + 1) != Some(&(d + 1)) {
                out.push(((d + 1, State::Dormant), 1));
            }
        }
    });
    let counts = states.map(|(_p, ds)| ds).count_total();
    let active = counts.clone().filter(|((_, s), _)| *s != State::Dormant);
    let dormant = counts
        .filter(|((_, s), _)| *s == State::Dormant)
        .map(|((d, _), n)| (d, n));
    count_rows(active, |(d, s)| (Metric::Lifecycle, Dims::DayState(d, s)))
        .concat(count_rows(upto_today(dormant, base.today.clone()), |d| {
            (Metric::Lifecycle, Dims::DayState(d, State::Dormant))
        }))
}
