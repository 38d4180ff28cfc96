//! What a finished pipeline leaves: its rows, counts, firings, explanations and identities.

use std::sync::Arc;

use super::{snapshot_of, whois_json};
use crate::ingest::{Counts, Dictionary, Ingest};
use crate::output::Output;
use crate::plan::Plan;

/// The final state of a finished pipeline: its rows, counts and identities.
pub struct Finished {
    #[doc(hidden)]
    pub plan: Arc<Plan>,
    #[doc(hidden)]
    pub dict: Arc<Dictionary>,
    #[doc(hidden)]
    pub counts: Counts,
    #[doc(hidden)]
    pub clock: Option<i64>,
    #[doc(hidden)]
    pub output: Output,
    #[doc(hidden)]
    pub ingest: Ingest,
}

impl Finished {
    /// What ingest counted: accepted events, duplicates and rejections by reason.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// How many rows the snapshot holds.
    pub fn row_count(&self) -> usize {
        self.output.table.current().len()
    }

    /// The rules' firings as ACTIONS.md's JSON lines, in decision order (the identities they
    /// name need `track_identities`).
    pub fn firings(&self) -> Vec<serde_json::Value> {
        use crate::output::actions::{decision_order, firing_json};
        let out = &self.output;
        decision_order(&self.plan, out.firings.current().values())
            .into_iter()
            .map(|f| firing_json(&self.plan, &self.dict, &out.identities, f))
            .collect()
    }

    /// A rule's decision on one key with its evidence (needs `track_verdicts`); `None` when no
    /// rule is named `rule`.
    pub fn explain(&self, rule: &str, key: &str) -> Option<serde_json::Value> {
        crate::output::explain::explain_json(&self.plan, &self.dict, &self.output, self.clock, rule, key)
    }

    /// The names of the configured rules, in order.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.plan.config.rules.iter().map(|r| r.name.as_str())
    }

    /// Every identity of the person behind `kind:value` (needs `track_identities`).
    pub fn whois(&mut self, kind: &str, value: &str) -> serde_json::Value {
        whois_json(
            &self.plan,
            &self.dict,
            &mut self.ingest,
            &self.output,
            kind,
            value,
        )
    }

    /// The snapshot document.
    pub fn snapshot(&self) -> serde_json::Value {
        snapshot_of(
            &self.plan,
            &self.dict,
            &self.counts,
            self.clock,
            &self.output,
        )
    }
}

