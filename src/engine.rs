//! Runs the dataflow on timely workers: fact batches in over a channel, row changes and progress out.

use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use differential_dataflow::AsCollection;
use timely::dataflow::operators::probe::Handle as Probe;
use timely::dataflow::operators::Exchange;

use crate::dataflow::{build, AlertRecord, Coll, Firing, Time, Verdict};
use crate::facts::{FactBatch, First, Ident, Person};
use crate::ingest::Dictionary;
use crate::metric::{Key, Value};
use crate::plan::Plan;

/// Changes of one kind of output, each `(record, time, diff)`.
pub type Changes<D> = Vec<(D, Time, isize)>;

/// What the engine reports.
#[derive(Debug)]
pub enum Update {
    /// Metric row changes.
    Rows(Changes<(Key, Value)>),
    /// Changes to the person of identities (only with `track_identities`).
    Persons(Changes<(Ident, Person)>),
    /// Changes to persons' first events (only with `track_identities`).
    Firsts(Changes<(Person, First)>),
    /// Changes to identities that stopped linking.
    Guarded(Changes<(Ident, u32)>),
    /// Changes to rule firings whose release time has come.
    Firings(Changes<Firing>),
    /// Changes to rule verdicts (only with `track_verdicts`).
    Verdicts(Changes<Verdict>),
    /// Changes to alert transitions and statuses.
    Alerts(Changes<AlertRecord>),
    /// Every change at times up to and including this one has been reported.
    Progress(Time),
}

/// How to run the engine.
#[derive(Clone, Debug)]
pub struct DataflowOptions {
    pub workers: usize,
    /// Report persons and first events, for identity look-ups.
    pub track_identities: bool,
    /// Report every trigger's verdict, for explanations and live retractions.
    pub track_verdicts: bool,
    /// Batches that may wait in the command queue before senders block.
    pub queue: usize,
}

impl Default for DataflowOptions {
    fn default() -> Self {
        DataflowOptions {
            workers: 1,
            track_identities: false,
            track_verdicts: false,
            queue: 64,
        }
    }
}

/// Why the dataflow workers stopped other than by a finished input.
#[derive(Debug, thiserror::Error)]
pub enum DataflowError {
    /// timely could not start or run its workers (its own errors are text).
    #[error("the dataflow workers failed: {0}")]
    Workers(String),
    /// A worker panicked; the panic's message went to standard error.
    #[error("a dataflow worker panicked (its message is above, on standard error)")]
    Panicked,
}

/// Batches the dataflow takes as one: fed at time `at`, and complete, with every time up to
/// `through`, once progress reaches `through`. Each round's `at` is later than the `through`
/// of the one before.
#[derive(Debug)]
pub struct Round {
    pub at: Time,
    pub through: Time,
    pub batches: Vec<FactBatch>,
}

impl Round {
    /// One batch at its own time.
    pub fn one(time: Time, batch: FactBatch) -> Round {
        Round {
            at: time,
            through: time,
            batches: vec![batch],
        }
    }
}

/// A running engine: send rounds of batches, each at a time larger than the one before, and
/// read updates; dropping the sender finishes it.
pub struct Dataflow {
    pub batches: SyncSender<Round>,
    pub updates: Receiver<Update>,
    thread: JoinHandle<Result<(), DataflowError>>,
}

impl Dataflow {
    /// Starts the workers on their own threads.
    pub fn start(
        plan: Arc<Plan>,
        dict: Arc<Dictionary>,
        options: DataflowOptions,
    ) -> std::io::Result<Dataflow> {
        let (batch_tx, batch_rx) = mpsc::sync_channel::<Round>(options.queue.max(1));
        let (update_tx, update_rx) = mpsc::channel::<Update>();
        let batch_rx = Arc::new(Mutex::new(Some(batch_rx)));
        let thread = std::thread::Builder::new()
            .name("tidemark-engine".into())
            .spawn(move || {
                let config = timely::Config::process(options.workers.max(1));
                let guards = timely::execute(config, move |worker| {
                    let index = worker.index();
                    let out = update_tx.clone();
                    let track = options.track_identities;
                    let plan = plan.clone();
                    let dict = dict.clone();
                    let probe = Probe::new();
                    let profile = crate::profile::install(worker);
                    let mut inputs = worker.dataflow::<Time, _, _>(|scope| {
                        let (inputs, outputs) = build(scope, plan, dict);
                        let rows = report(outputs.rows, out.clone(), Update::Rows);
                        rows.probe_with(&probe);
                        report(outputs.guarded, out.clone(), Update::Guarded).probe_with(&probe);
                        report(outputs.firings, out.clone(), Update::Firings).probe_with(&probe);
                        report(outputs.alerts, out.clone(), Update::Alerts).probe_with(&probe);
                        if options.track_verdicts {
                            report(outputs.verdicts, out.clone(), Update::Verdicts)
                                .probe_with(&probe);
                        }
                        if track {
                            report(outputs.persons, out.clone(), Update::Persons)
                                .probe_with(&probe);
                            report(outputs.firsts, out.clone(), Update::Firsts).probe_with(&probe);
                        }
                        inputs
                    });
                    let receiver = if index == 0 {
                        batch_rx.lock().ok().and_then(|mut r| r.take())
                    } else {
                        None
                    };
                    let Some(receiver) = receiver else {
                        drop(inputs);
                        while !probe.done() {
                            worker.step_or_park(None);
                        }
                        if let Some(p) = profile {
                            p.finish(worker);
                        }
                        return;
                    };
                    // The last time fed; input is open at every later time.
                    let mut fed: Time = 0;
                    inputs.advance_to(fed + 1);
                    let mut reported: Time = 0;
                    loop {
                        let next = match receiver.try_recv() {
                            Ok(batch) => Some(batch),
                            Err(TryRecvError::Empty) => {
                                while probe.less_than(&(fed + 1)) {
                                    worker.step();
                                }
                                if fed > reported {
                                    reported = fed;
                                    let _ = out.send(Update::Progress(reported));
                                }
                                receiver.recv().ok()
                            }
                            Err(TryRecvError::Disconnected) => None,
                        };
                        let Some(round) = next else { break };
                        let time = round.at.max(fed + 1);
                        inputs.advance_to(time);
                        for batch in round.batches {
                            inputs.feed(batch);
                        }
                        fed = round.through.max(time);
                        inputs.advance_to(fed + 1);
                        worker.step();
                        // Under sustained input the queue never empties: report each batch as
                        // soon as it is complete, not only when input pauses.
                        let through = probe.with_frontier(|f| {
                            f.iter().next().map_or(fed, |t| t.saturating_sub(1))
                        });
                        if through > reported {
                            reported = through;
                            let _ = out.send(Update::Progress(reported));
                        }
                    }
                    drop(inputs);
                    while !probe.done() {
                        worker.step();
                    }
                    if let Some(p) = profile {
                        p.finish(worker);
                    }
                    let _ = out.send(Update::Progress(fed));
                })
                .map_err(DataflowError::Workers)?;
                for r in guards.join() {
                    r.map_err(DataflowError::Workers)?;
                }
                Ok(())
            })?;
        Ok(Dataflow {
            batches: batch_tx,
            updates: update_rx,
            thread,
        })
    }

    /// Closes the input and waits for the workers to finish; returns the update stream's rest.
    pub fn finish(self) -> Result<Receiver<Update>, DataflowError> {
        drop(self.batches);
        match self.thread.join() {
            Ok(r) => r.map(|_| self.updates),
            Err(_) => Err(DataflowError::Panicked),
        }
    }
}

/// Routes a collection's changes to worker 0 and sends them as updates.
fn report<'s, D>(c: Coll<'s, D>, out: Sender<Update>, wrap: fn(Changes<D>) -> Update) -> Coll<'s, D>
where
    D: differential_dataflow::ExchangeData,
{
    c.inner
        .exchange(|_| 0)
        .as_collection()
        .inspect_batch(move |_stamp, data| {
            if !data.is_empty() {
                let _ = out.send(wrap(data.to_vec()));
            }
        })
}
