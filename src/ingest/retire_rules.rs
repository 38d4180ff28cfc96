//! Bounded rule state in `serve`: triggers whose decisions are final leave the dataflow, and
//! what later decisions and the campaign rows still read of them stays, in smaller form.
//!
//! A trigger of rule `r` is final once its release time and goal window lie before the retired
//! days (`retire`): no event can land there any more, so no cancel, goal or trigger can change
//! it. With `B` the first day not retired, every trigger stamped before
//! `T(r) = B - wait - goal_within - RELEASE_SLACK` is final. The pipeline hands ingest the
//! firings the dataflow decided for them (the dataflow's own verdicts, read once every batch
//! before is reflected), and ingest takes back:
//!
//! - the triggers before `T(r)`, and for a `match` rule every trigger of their keys (only the
//!   key's earliest trigger ever counts; later ones of a retired key are dropped at ingest);
//! - cancels and goal marks before `T(r)` (a remaining trigger is stamped at `T(r)` or later,
//!   and only cancels and goals after a trigger concern it);
//! - active-day facts older than the 30 days before the earliest `T(r)` (`min_active_days_30`
//!   reads 30 days back from a release), and purchases before it, folded into one per identity
//!   (revenue bounds read the running total).
//!
//! What stays: each retired firing as a count per rule, day of release, group and conversion
//! (the campaign rows stay exact), and, for a rule with `cap`, the retired firings whose
//! release is within `cap.per` of `T(r)` (later triggers' caps count them; decisions are made
//! in release order, and a rule's releases follow its trigger times).
//! Taking a firing back this way is no retraction: the pipeline drops those changes.

use foldhash::{HashMap, HashSet};

use super::Ingest;
use crate::facts::{CapFiring, Ident, Mark, RuleId, Scope, SentFiring, Text};
use crate::metric::Group;

/// The longest that quiet hours can hold a firing past its deadline (a local day, around a
/// daylight-saving change), with room to spare.
pub const RELEASE_SLACK_MS: i64 = 3 * 86_400_000;

/// A firing the dataflow decided, as the pipeline reports it for retirement.
#[derive(Clone, Debug)]
pub struct Decided {
    pub trigger: Text,
    pub release: i64,
    pub group: Group,
    pub converted: bool,
}

/// What the pipeline reads the decided firings by: rule and key.
pub type DecidedFirings = HashMap<(RuleId, Text), Decided>;

impl Ingest {
    /// The start of the first day not retired, when rule facts would retire up to it and have
    /// not yet: the pipeline then reads the decided firings and calls `retire_rules`.
    pub fn rules_to_retire(&self) -> Option<i64> {
        if self.plan.config.rules.is_empty() || self.kept.is_none() {
            return None;
        }
        let upto = self.retired?;
        let bound = self.plan.config.calendar.day_end(upto - 1);
        self.rules_retired
            .is_none_or(|b| bound > b)
            .then_some(bound)
    }

    /// True when `key` of `match` rule `rule` belongs to a retired trigger.
    pub(super) fn key_retired(&self, rule: RuleId, key: &str) -> bool {
        self.retired_keys
            .get(rule as usize)
            .is_some_and(|keys| keys.contains(key))
    }

    /// Retires the rule facts that are final with facts retired up to `bound` (from
    /// `rules_to_retire`), given the firings the dataflow decided as of every batch sent.
    /// Returns the keys of the firings it took back. Call with no pending batch.
    pub fn retire_rules(&mut self, bound: i64, decided: &DecidedFirings) -> Vec<(RuleId, Text)> {
        self.rules_retired = Some(bound);
        let plan = self.plan.clone();
        let rules = &plan.config.rules;
        let cal = &plan.config.calendar;
        let until = rule_bounds(rules, bound);
        let earliest = until.iter().copied().min().unwrap_or(bound);
        let Some(kept) = self.kept.as_mut() else {
            return Vec::new();
        };
        if self.retired_keys.len() < rules.len() {
            self.retired_keys.resize_with(rules.len(), HashSet::default);
        }
        let matched = |rule: RuleId| rules[rule as usize].match_key.is_some();
        // Keys of `match` rules whose earliest trigger is final: every trigger of them goes.
        for (_, t) in &kept.triggers {
            if t.ts < until[t.rule as usize] && matched(t.rule) {
                self.retired_keys[t.rule as usize].insert(t.key.clone());
            }
        }
        let keys = &self.retired_keys;
        let gone_key = |rule: RuleId, key: &str| matched(rule) && keys[rule as usize].contains(key);
        let p = &mut self.pending;
        let mut taken = Vec::new();
        kept.triggers.retain(|(ident, t)| {
            if t.ts >= until[t.rule as usize] && !gone_key(t.rule, &t.key) {
                return true;
            }
            p.triggers_gone.push((*ident, t.clone()));
            let Some(d) = decided.get(&(t.rule, t.key.clone())) else {
                return false;
            };
            if d.trigger != t.id {
                return false;
            }
            let day_end = cal.day_end(cal.day(d.release)) - 1;
            let sent: SentFiring = (t.rule, day_end, d.group, d.converted);
            *self.sent_firings.entry(sent).or_insert(0) += 1;
            p.sent_firings.push((sent, 1));
            if rules[t.rule as usize].cap.is_some() {
                let cap: CapFiring = (t.rule, d.release, t.id.clone());
                self.cap_fired.push((*ident, cap.clone()));
                p.cap_firings.push(((*ident, cap), 1));
            }
            taken.push((t.rule, t.key.clone()));
            false
        });
        // Retired firings that no remaining trigger's cap window reaches.
        self.cap_fired.retain(|(ident, (rule, release, id))| {
            let per = rules[*rule as usize].cap.map_or(0, |(_, per)| per);
            let keep = *release > until[*rule as usize].saturating_sub(per);
            if !keep {
                p.cap_firings.push(((*ident, (*rule, *release, id.clone())), -1));
            }
            keep
        });
        kept.cancels.retain(|(_, scope, mark)| {
            let Mark::Cancel { rule, ts, .. } = mark else {
                return true;
            };
            let keep = *ts >= until[*rule as usize]
                && !matches!(scope, Scope::Key(k) if gone_key(*rule, k));
            if !keep {
                p.marks.push(((scope.clone(), mark.clone()), -1));
            }
            keep
        });
        let dirty = &self.goal_dirty;
        self.goals.retain(|key, (first, last)| {
            let (rule, scope, bucket, _) = key;
            let width = crate::facts::goal_bucket_ms(rules[*rule as usize].goal_within_ms);
            let before = bucket.saturating_add(1).saturating_mul(width) <= until[*rule as usize];
            let gone = before || matches!(scope, Scope::Key(k) if gone_key(*rule, k));
            if !gone || dirty.contains_key(key) {
                return true;
            }
            let mark = Mark::Goals {
                rule: *rule,
                bucket: *bucket,
                first: first.clone(),
                last: last.clone(),
            };
            p.marks.push(((scope.clone(), mark), -1));
            false
        });
        if plan.rules_need_paid {
            fold_paid(&mut kept.paid, earliest, p);
        }
        if plan.rules_need_days {
            // `min_active_days_30` counts the 30 days up to a release's own day.
            let oldest = cal.day(earliest) - 29;
            let dirty = &self.day_dirty;
            self.day_firsts.retain(|&(ident, day), &mut ts| {
                let keep = day >= oldest || dirty.contains_key(&(ident, day));
                if !keep {
                    p.day_firsts.push(((ident, (day, ts)), -1));
                }
                keep
            });
        }
        taken
    }
}

/// Per rule, the time before which its triggers are final (and retired), with facts retired
/// up to `bound`: less the rule's wait, its goal window and the longest quiet-hours hold.
pub fn rule_bounds(rules: &[crate::config::Rule], bound: i64) -> Vec<i64> {
    rules
        .iter()
        .map(|r| {
            bound
                .saturating_sub(r.wait_ms)
                .saturating_sub(r.goal_within_ms)
                .saturating_sub(RELEASE_SLACK_MS)
        })
        .collect()
}

/// Folds each identity's purchases before `until` into one, at the earliest of their times:
/// a revenue bound read at `until` or later sees the same running total.
fn fold_paid(paid: &mut Vec<(Ident, (i64, i64))>, until: i64, p: &mut crate::facts::FactBatch) {
    let mut old: HashMap<Ident, Vec<(i64, i64)>> = HashMap::default();
    paid.retain(|(ident, (ts, cents))| {
        let keep = *ts >= until;
        if !keep {
            old.entry(*ident).or_default().push((*ts, *cents));
        }
        keep
    });
    for (ident, records) in old {
        if records.len() == 1 {
            paid.push((ident, records[0]));
            continue;
        }
        let ts = records.iter().map(|r| r.0).min().expect("two records or more");
        let cents = records.iter().map(|r| r.1).sum();
        p.paid_gone
            .extend(records.into_iter().map(|r| (ident, r)));
        // `Kept::note` adds the folded purchase to `paid` with the batch.
        p.paid.push((ident, (ts, cents)));
    }
}
