//! One ingest-to-table pipeline: lines in, batches to the engine, rows and identities out.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::engine::{Engine, EngineOptions, Update};
use crate::facts::Ident;
use crate::ingest::{bad_encoding, Counts, Dictionary, Ingest, Outcome};
use crate::metric::Labeler;
use crate::output::{Delta, Feed, Filter, Hub, IdentityIndex, Table};
use crate::plan::Plan;

/// Options of a pipeline run.
#[derive(Clone, Debug)]
pub struct PipelineOptions {
    pub engine: EngineOptions,
    /// Accepted events per batch sent to the dataflow.
    pub batch_events: usize,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            engine: EngineOptions::default(),
            batch_events: 100_000,
        }
    }
}

/// Ingest, engine and output state, driven by the caller.
pub struct Pipeline {
    pub plan: Arc<Plan>,
    pub dict: Arc<Dictionary>,
    ingest: Ingest,
    engine: Engine,
    batch_events: usize,
    in_batch: usize,
    /// Batches sent to the engine; the engine reports progress in these units.
    sent: u64,
    state: Output,
}

/// What the engine has reported so far.
pub struct Output {
    pub table: Table,
    pub identities: IdentityIndex,
    pub guarded: BTreeMap<Ident, u32>,
    pub progress: u64,
    pub deltas: Vec<Delta>,
    keep_deltas: bool,
    /// Live subscribers of row changes.
    pub hub: Hub,
}

impl Default for Output {
    fn default() -> Self {
        Output {
            table: Table::default(),
            identities: IdentityIndex::default(),
            guarded: BTreeMap::new(),
            progress: 0,
            deltas: Vec::new(),
            keep_deltas: false,
            hub: Hub::new(SUBSCRIBER_QUEUE),
        }
    }
}

/// Messages a subscriber's queue holds beyond its initial snapshot.
pub const SUBSCRIBER_QUEUE: usize = 4096;

impl Output {
    fn absorb(&mut self, update: Update, labeler: &Labeler) {
        match update {
            Update::Rows(changes) => self.table.absorb(changes),
            Update::Persons(changes) => self.identities.absorb_persons(changes),
            Update::Firsts(changes) => self.identities.absorb_firsts(changes),
            Update::Guarded(changes) => {
                for ((ident, links), _, diff) in changes {
                    if diff > 0 {
                        tracing::warn!(ident, links, "identity stopped linking: too many links");
                        self.guarded.insert(ident, links);
                    } else if self.guarded.get(&ident) == Some(&links) {
                        self.guarded.remove(&ident);
                    }
                }
            }
            Update::Progress(t) => {
                self.identities.complete(t);
                let deltas = self.table.complete(t);
                self.hub.publish(&deltas, t, labeler);
                if self.keep_deltas {
                    self.deltas.extend(deltas);
                }
                self.progress = t;
            }
        }
    }
}

/// The final state of a finished pipeline.
pub struct Finished {
    pub plan: Arc<Plan>,
    pub dict: Arc<Dictionary>,
    pub counts: Counts,
    pub clock: Option<i64>,
    pub output: Output,
    pub ingest: Ingest,
}

impl Pipeline {
    pub fn new(plan: Arc<Plan>, options: PipelineOptions) -> std::io::Result<Self> {
        let dict = Dictionary::new();
        let engine = Engine::start(plan.clone(), options.engine)?;
        Ok(Pipeline {
            ingest: Ingest::new(plan.clone(), dict.clone()),
            plan,
            dict,
            engine,
            batch_events: options.batch_events.max(1),
            in_batch: 0,
            sent: 0,
            state: Output::default(),
        })
    }

    /// Keeps every delta the engine completes (for tests and subscribers).
    pub fn keep_deltas(&mut self) {
        self.state.keep_deltas = true;
    }

    /// Offers one input line (bytes, possibly not UTF-8).
    pub fn offer_bytes(&mut self, line: &[u8]) -> Outcome {
        match std::str::from_utf8(line) {
            Ok(text) => self.offer(text),
            Err(_) => self.ingest.reject(bad_encoding()),
        }
    }

    /// Offers one event's JSON text; full batches go to the engine.
    pub fn offer(&mut self, text: &str) -> Outcome {
        let outcome = self.ingest.offer(text);
        if outcome == Outcome::Accepted {
            self.in_batch += 1;
            if self.in_batch >= self.batch_events {
                self.flush();
            }
        }
        outcome
    }

    /// Sends what was accepted since the last batch, and takes in what the engine reported.
    pub fn flush(&mut self) {
        self.in_batch = 0;
        let batch = self.ingest.take_batch();
        if !batch.is_empty() {
            // A send fails only when the engine has stopped; `finish` reports why.
            if self.engine.batches.send(batch).is_ok() {
                self.sent += 1;
            }
        }
        let labeler = Labeler {
            plan: &self.plan,
            dict: &self.dict,
        };
        while let Ok(update) = self.engine.updates.try_recv() {
            self.state.absorb(update, &labeler);
        }
    }

    /// Flushes and waits until every batch sent so far is reflected in the rows.
    pub fn sync(&mut self) {
        self.flush();
        let labeler = Labeler {
            plan: &self.plan,
            dict: &self.dict,
        };
        while self.state.progress < self.sent {
            match self.engine.updates.recv() {
                Ok(update) => self.state.absorb(update, &labeler),
                Err(_) => break,
            }
        }
    }

    /// Subscribes to row changes: current rows first, then upserts and progress marks.
    pub fn subscribe(&mut self, filter: Filter) -> tokio::sync::mpsc::Receiver<Feed> {
        let labeler = Labeler {
            plan: &self.plan,
            dict: &self.dict,
        };
        let state = &mut self.state;
        state.hub.subscribe(
            filter,
            state.table.current().iter(),
            state.progress,
            &labeler,
        )
    }

    /// Ends the input, waits for the engine and returns the final state.
    pub fn finish(mut self) -> Result<Finished, String> {
        self.flush();
        let updates = self.engine.finish()?;
        let labeler = Labeler {
            plan: &self.plan,
            dict: &self.dict,
        };
        for update in updates.try_iter() {
            self.state.absorb(update, &labeler);
        }
        Ok(Finished {
            plan: self.plan,
            dict: self.dict,
            counts: self.ingest.counts().clone(),
            clock: self.ingest.clock(),
            output: self.state,
            ingest: self.ingest,
        })
    }
}

impl Finished {
    /// The snapshot document.
    pub fn snapshot(&self) -> serde_json::Value {
        let guarded: Vec<(Ident, u32)> =
            self.output.guarded.iter().map(|(a, b)| (*a, *b)).collect();
        let meta = crate::output::SnapshotMeta {
            plan: &self.plan,
            dict: &self.dict,
            counts: &self.counts,
            clock: self.clock,
            guarded: &guarded,
        };
        crate::output::snapshot_json(&meta, self.output.table.current().iter())
    }
}
