//! Bounded state in `serve`: sealing days beyond the horizon and retiring their facts down to
//! what later rows still need.
//!
//! With a horizon, no event stamped before `day(clock - horizon)` is accepted, so every row of
//! an earlier day can only change through a later identity link: those days are *sealed* and
//! their rows kept final (`dataflow::freeze`). The facts of days more than [`LOOK_BACK`] (or
//! twice the longest sliding window) before the sealed day no longer reach any live row, so
//! ingest takes them back from the dataflow:
//!
//! - per identity and month, only the first and last active hour stay: first and last active
//!   day (cohorts, `retention_unbounded`) and active months (month cohorts) are unchanged;
//! - ratio events and funnel steps go;
//! - purchases fold into one amount per identity and month (lifetime totals unchanged);
//! - event ids leave the dedupe set once their day is sealed (a repeat is beyond the horizon).
//!
//! Facts retire a day of event time at a time; the dedupe set is pruned a week at a time.
//!
//! A batch holds events of one seal only: the seal moves at the first event after the batch
//! that moved the clock (`Ingest::wants_cut` asks the caller to end the batch there), so the
//! rows frozen are the same however else batches are cut (live, read back, or restored).

use foldhash::HashMap;

use super::Ingest;
use crate::facts::Ident;
use crate::time::{hour_day, month_of, Day, Hour, Month};

/// Days of activity before a row's own day that the longest-looking live row reads (`mau`:
/// 30 days).
pub const LOOK_BACK: Day = 30;

/// Days of event time between two prunings of the dedupe set.
const PRUNE_STEP: Day = 7;

/// Per identity and month of retired days: the first and last active hour kept.
pub type Reps = HashMap<(Ident, Month), (Hour, Hour)>;
/// Per identity and month of retired days: the day its purchases are folded into.
pub type Anchors = HashMap<(Ident, Month), Day>;

impl Ingest {
    /// The first day an event may still land on, by the horizon (live use only).
    fn horizon_day(&self) -> Option<Day> {
        self.edge
    }

    /// Keeps `horizon_day` current: called whenever the clock moves (once per new largest
    /// event time, not per event).
    pub(super) fn clock_moved(&mut self) {
        if let (Some(h), Some(c)) = (self.horizon_ms, self.clock) {
            self.edge = Some(self.plan.config.calendar.day(c.saturating_sub(h)));
        }
    }

    /// The sealed day: rows of earlier days are final.
    pub fn sealed(&self) -> Option<Day> {
        self.sealed
    }

    /// True when the last accepted event moved the horizon past the pending batch's seal: the
    /// batch should end after it, so that every batch holds events of one seal.
    pub fn wants_cut(&self) -> bool {
        self.horizon_day() > self.sealed
    }

    /// Days of facts a live row may still read before the sealed day.
    fn look_back(&self) -> Day {
        let widest = self.plan.config.sliding_windows.iter().max().copied();
        LOOK_BACK.max(2 * widest.unwrap_or(0) as Day)
    }

    /// Moves the seal to the horizon's day, if the clock has moved it since the last batch,
    /// and retires what the new seal allows. Called before each event, so the change opens the
    /// batch after the one that moved the clock.
    pub(crate) fn roll_seal(&mut self) {
        let Some(next) = self.horizon_day() else {
            return;
        };
        if self.sealed.is_some_and(|s| s >= next) {
            return;
        }
        let before = self.sealed.replace(next);
        self.pending.seal = Some((self.pending.seal.map_or(before, |(b, _)| b), next));
        // Facts retire a day at a time (each day's retractions are one small batch); the
        // dedupe set, which is walked whole, a week at a time.
        if self.pruned.is_none_or(|p| next >= p + PRUNE_STEP) {
            self.pruned = Some(next);
            self.seen.keep_from(next);
        }
        self.retire_before(next - self.look_back());
    }

    /// Takes back from the dataflow the facts of days before `upto` that no live row reads.
    fn retire_before(&mut self, upto: Day) {
        if self.retired.is_some_and(|r| r >= upto) {
            return;
        }
        self.retired = Some(upto);
        self.retire_hours(upto);
        let named = &mut self.pending.named_gone;
        self.named_sent.retain(|&(i, d, n)| {
            let keep = d >= upto;
            if !keep {
                named.push((i, (d, n)));
            }
            keep
        });
        self.entry_steps.retain(|&(_, d, _), _| d >= upto);
        let Some(kept) = self.kept.as_mut() else {
            return;
        };
        let later = kept.steps.split_off(&upto);
        for (_, steps) in std::mem::replace(&mut kept.steps, later) {
            self.pending.steps_gone.extend(steps);
        }
        let mut old: Vec<((Ident, Day), i64)> = kept
            .purchases
            .iter()
            .filter(|((_, d), _)| *d < upto)
            .map(|(k, c)| (*k, *c))
            .collect();
        old.sort_unstable();
        for ((ident, day), cents) in old {
            let anchor = *self.anchors.entry((ident, month_of(day))).or_insert(day);
            if anchor == day {
                continue;
            }
            // `Kept::note` applies the move to the kept totals with the batch.
            self.pending.purchases.push(((ident, day), -cents));
            self.pending.purchases.push(((ident, anchor), cents));
        }
    }

    /// Keeps, per identity and month, the first and last active hour of retired days.
    fn retire_hours(&mut self, upto: Day) {
        let mut gone: HashMap<(Ident, Month), Vec<Hour>> = HashMap::default();
        self.hours_sent.retain(|&(i, h)| {
            let day = hour_day(h);
            let keep = day >= upto;
            if !keep {
                gone.entry((i, month_of(day))).or_default().push(h);
            }
            keep
        });
        for ((ident, month), mut hours) in gone {
            if let Some((lo, hi)) = self.reps.get(&(ident, month)) {
                hours.push(*lo);
                if hi != lo {
                    hours.push(*hi);
                }
            }
            hours.sort_unstable();
            hours.dedup();
            let (lo, hi) = (hours[0], hours[hours.len() - 1]);
            for h in hours {
                if h != lo && h != hi {
                    self.pending.hours_gone.push((ident, h));
                }
            }
            self.reps.insert((ident, month), (lo, hi));
        }
    }
}
