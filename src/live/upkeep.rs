//! The live service's data-directory upkeep: checkpoints as events accumulate, the delivery
//! log's pruning once a checkpoint holds retired firings, and the last checkpoint at the stop.

use super::driver::Driver;
use crate::output::actions::rule_prefix;

impl Driver {
    /// The data directory's upkeep: starts the next checkpoint once enough events were
    /// accepted since the last.
    pub(super) fn keep(&mut self) {
        self.prune_retired();
        let Some(journal) = self.data.as_ref() else {
            return;
        };
        let every = self.options.checkpoint_every.max(1);
        if journal.checkpointing()
            || self.pipeline.counts().accepted < self.accepted_at_checkpoint + every
            || journal.failing().is_some()
        {
            return;
        }
        self.checkpoint();
    }

    /// Sends what is pending and hands the state, as of the last logged record, to the log's
    /// writer, which writes it as the checkpoint once that record is durable.
    pub(super) fn checkpoint(&mut self) {
        self.flush();
        if self.data.is_none() {
            return;
        }
        match self.pipeline.state() {
            Ok(state) => {
                self.accepted_at_checkpoint = state.accepted();
                if let Some(journal) = self.data.as_mut() {
                    if let (Some(bound), None) = (state.rules_retired(), &self.prune_after) {
                        let plan = &self.pipeline.plan;
                        let retired = crate::ingest::rule_bounds(&plan.config.rules, bound)
                            .into_iter()
                            .enumerate()
                            .map(|(r, t)| (rule_prefix(plan, crate::plan::id(r)), t))
                            .collect();
                        self.prune_after = Some((journal.status().checkpoints, retired));
                    }
                    journal.checkpoint(state);
                }
            }
            Err(e) => tracing::error!("cannot take a checkpoint: {e}"),
        }
    }

    /// Once a checkpoint that retired rule facts is written, lets the delivery log drop the
    /// firings it retired (before, a restart reads them back and needs the log to hold them).
    fn prune_retired(&mut self) {
        let (Some(journal), Some((before, _))) = (self.data.as_ref(), &self.prune_after) else {
            return;
        };
        if journal.checkpointing() || journal.status().checkpoints <= *before {
            return;
        }
        if let (Some(sink), Some((_, retired))) = (&self.actions, self.prune_after.take()) {
            sink.prune(retired);
        }
    }

    /// At the stop: leaves a checkpoint of everything accepted, so that the next start reads
    /// little, and waits until it and every logged record are durable.
    pub(super) fn close(&mut self) {
        let Some(journal) = self.data.as_ref() else {
            return;
        };
        if journal.failing().is_none()
            && (self.pipeline.counts().accepted > self.accepted_at_checkpoint
                || journal.status().checkpoints == 0)
        {
            self.checkpoint();
        }
        if let Some(journal) = self.data.as_mut() {
            journal.close();
        }
        self.prune_retired();
    }
}
