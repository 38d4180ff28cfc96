//! Funnel family: greedy ordered-step matching within a window, per entry day and step.

use differential_dataflow::operators::CountTotal;
use serde::{Deserialize, Serialize};

use super::series::count_rows;
use super::{Base, Coll, Rows};
use crate::facts::{Person, Step};
use crate::metric::{Dims, Metric, Value};
use crate::plan::FunnelPlan;
use crate::time::{Calendar, Day};

/// One person's entry into a funnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Entry {
    pub funnel: u16,
    pub day: Day,
    /// The last step matched (1-based).
    pub reached: u16,
    /// Last instant (epoch ms) at which a step still counts.
    pub deadline: i64,
}

/// How far one person got in each funnel entry; `events` are sorted by `(ts, id)`.
pub fn entries(funnels: &[FunnelPlan], cal: &Calendar, events: &[&Step]) -> Vec<Entry> {
    let mut out = Vec::new();
    for (fi, f) in funnels.iter().enumerate() {
        let mut last_entry_day: Option<Day> = None;
        for (start, ev) in events.iter().enumerate() {
            if ev.name != f.steps[0] {
                continue;
            }
            let day = cal.day(ev.ts);
            if last_entry_day == Some(day) {
                continue;
            }
            last_entry_day = Some(day);
            let deadline = ev.ts.saturating_add(f.window_ms);
            let mut at = start;
            let mut reached = 1u16;
            for &want in &f.steps[1..] {
                let next = events[at + 1..]
                    .iter()
                    .take_while(|e| e.ts <= deadline)
                    .position(|e| e.name == want);
                match next {
                    Some(offset) => {
                        at += 1 + offset;
                        reached += 1;
                    }
                    None => break,
                }
            }
            out.push(Entry {
                funnel: crate::plan::id(fi),
                day,
                reached,
                deadline,
            });
        }
    }
    out
}

/// All funnel rows.
pub fn rows<'s>(base: &Base<'s>, steps: Coll<'s, (Person, Step)>) -> Rows<'s> {
    let funnels = base.plan.funnels.clone();
    let cal = base.plan.config.calendar.clone();
    let reached = super::in_place::reduce(steps, "FunnelMatch", move |_p, input, out| {
        let events: Vec<&Step> = input.iter().map(|(s, _)| *s).collect();
        for e in entries(&funnels, &cal, &events) {
            out.push((e, 1));
        }
    })
    .map(|(_p, e)| e);
    let counts = reached
        .clone()
        .flat_map(|e| (1..=e.reached).map(move |s| (e.funnel, e.day, s)))
        .count_total();
    let firsts = counts
        .clone()
        .filter(|((_, _, s), _)| *s == 1)
        .map(|((f, d, _), n)| ((f, d), n));
    let conversion = counts
        .clone()
        .map(|((f, d, s), n)| ((f, d), (s, n)))
        .join_map(firsts, |&(f, d), &(s, n), &n1| {
            (
                (Metric::FunnelConversion, Dims::FunnelDayStep(f, d, s)),
                Value::Rate(n as i64, n1 as i64),
            )
        });
    count_rows(counts, |(f, d, s)| {
        (Metric::Funnel, Dims::FunnelDayStep(f, d, s))
    })
    .concat(conversion)
    .concat(open_and_dropped(base, reached))
}

const HOUR_MS: i64 = 3_600_000;

/// Entrants that have not completed a funnel, split into those whose window is still open at the
/// clock (`funnel_open`) and those whose window has closed (`funnel_dropped`).
///
/// An open entry's deadline lies within the longest window after the clock, so the clock is
/// joined only with entries whose deadline falls in those hours: a moving clock touches recent
/// entries, not the whole history.
fn open_and_dropped<'s>(base: &Base<'s>, reached: Coll<'s, Entry>) -> Rows<'s> {
    let lengths: Vec<u16> = base
        .plan
        .funnels
        .iter()
        .map(|f| u16::try_from(f.steps.len()).expect("the config allows at most 32 steps"))
        .collect();
    let longest = base
        .plan
        .funnels
        .iter()
        .map(|f| f.window_ms)
        .max()
        .unwrap_or(0);
    let incomplete = reached.filter(move |e| e.reached < lengths[e.funnel as usize]);
    // The clock's own hour, and the later hours up to the longest window: an entry whose
    // deadline falls in a later hour is open whatever the minute, so a clock moving within its
    // hour touches only the entries of that hour, and one moving to the next hour only those of
    // the hours that come in and go out.
    let clock_hour = base
        .clock
        .clone()
        .map(|now| (now.div_euclid(HOUR_MS), now));
    let later_hours = base.clock.clone().flat_map(move |now| {
        let first = now.div_euclid(HOUR_MS) + 1;
        let last = now.saturating_add(longest).div_euclid(HOUR_MS);
        (first..=last).map(|h| (h, ()))
    });
    let by_hour = incomplete
        .clone()
        .map(|e| (e.deadline.div_euclid(HOUR_MS), e))
        .arrange_by_key_named("Arrange: IncompleteByHour");
    let open_now = by_hour
        .clone()
        .join_core(clock_hour.arrange_by_key(), |_h, e, now| {
            (e.deadline >= *now).then_some((e.funnel, e.day))
        });
    let open = by_hour
        .join_core(later_hours.arrange_by_key(), |_h, e, ()| Some((e.funnel, e.day)))
        .concat(open_now);
    let dropped = incomplete
        .map(|e| (e.funnel, e.day))
        .concat(open.clone().negate())
        .count_total();
    count_rows(open.count_total(), |(f, d)| {
        (Metric::FunnelOpen, Dims::FunnelDay(f, d))
    })
    .concat(count_rows(dropped, |(f, d)| {
        (Metric::FunnelDropped, Dims::FunnelDay(f, d))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reached(f: FunnelPlan, events: &[Step]) -> Vec<(u16, Day, u16)> {
        let cal = Calendar::new("UTC").unwrap();
        let refs: Vec<&Step> = events.iter().collect();
        entries(&[f], &cal, &refs)
            .iter()
            .map(|e| (e.funnel, e.day, e.reached))
            .collect()
    }

    fn step(ts: i64, id: &str, name: u16) -> Step {
        Step {
            ts,
            id: id.into(),
            name,
        }
    }

    #[test]
    fn same_timestamp_orders_by_id_and_window_is_inclusive() {
        let f = FunnelPlan {
            name: "p".into(),
            steps: vec![0, 1, 2, 3],
            window_ms: 86_400_000,
        };
        let mut evs = [
            step(1_000, "t-1", 0),
            step(1_000, "t-2", 1),
            step(1_000, "t-0", 2),
            step(86_401_000, "t-3", 2),
            step(86_402_000, "t-4", 3),
        ];
        evs.sort();
        assert_eq!(reached(f, &evs), vec![(0, 0, 3)]);
    }

    #[test]
    fn repeated_step_needs_a_later_event() {
        let f = FunnelPlan {
            name: "d".into(),
            steps: vec![0, 0, 1],
            window_ms: 3_600_000,
        };
        let evs = [
            step(0, "a", 0),
            step(10, "b", 1),
            step(20, "c", 0),
            step(30, "d", 1),
        ];
        assert_eq!(reached(f, &evs), vec![(0, 0, 3)]);
    }
}
