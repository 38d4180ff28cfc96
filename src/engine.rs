//! Runs the dataflow on timely workers: fact batches in over a channel, row changes and progress out.

use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use timely::dataflow::operators::probe::Handle as Probe;

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
    /// Run the workers as one process of a cluster (`workers` is then per process).
    pub cluster: Option<Cluster>,
}

/// This process's place in a cluster of processes that run one dataflow together (timely's
/// own multi-process mode). Process 0 feeds every batch; every update is reported there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    /// This process's index in `peers`.
    pub process: usize,
    /// `host:port` of every process, in order; each listens at its own.
    pub peers: Vec<String>,
}

impl Default for DataflowOptions {
    fn default() -> Self {
        DataflowOptions {
            workers: 1,
            track_identities: false,
            track_verdicts: false,
            queue: 64,
            cluster: None,
        }
    }
}

/// Why the dataflow workers stopped other than by a finished input.
#[derive(Debug, thiserror::Error)]
pub enum DataflowError {
    /// timely could not start or run its workers (its own errors are text).
    #[error("the dataflow workers failed: {0}")]
    Workers(String),
    /// The processes of a cluster cannot run one dataflow together.
    #[error("{0}")]
    Cluster(String),
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
                let config = match options.cluster.clone() {
                    None => timely::Config::process(options.workers.max(1)),
                    Some(c) => timely::Config {
                        communication: timely::CommunicationConfig::Cluster {
                            threads: options.workers.max(1),
                            process: c.process,
                            addresses: c.peers,
                            report: false,
                            zerocopy: false,
                        },
                        worker: timely::WorkerConfig::default(),
                    },
                };
                let guards = timely::execute(config, move |worker| {
                    let index = worker.index();
                    let out = update_tx.clone();
                    let track = options.track_identities;
                    let plan = plan.clone();
                    let dict = dict.clone();
                    let probe = Probe::new();
                    if options.cluster.is_some() {
                        let mine = fingerprint(&plan, &options);
                        if !alike_everywhere(worker, mine) {
                            return Err(
                                "the processes of the cluster were not started alike: give every one the same --config, -w, --processes and --peers".to_string()
                            );
                        }
                    }
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
                        return Ok(());
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
                    Ok(())
                })
                .map_err(DataflowError::Workers)?;
                for r in guards.join() {
                    r.map_err(DataflowError::Workers)?
                        .map_err(DataflowError::Cluster)?;
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

/// What every process of a cluster must agree on to build the same dataflow.
fn fingerprint(plan: &Plan, options: &DataflowOptions) -> u64 {
    use std::hash::{Hash, Hasher};
    // The configuration holds no hash maps, so its debug text is the same in every process.
    let mut h = std::hash::DefaultHasher::new();
    format!("{:?}", plan.config).hash(&mut h);
    (options.workers, options.track_identities, options.track_verdicts).hash(&mut h);
    h.finish()
}

/// Whether every worker of the cluster has the fingerprint `mine`: each sends its own to all,
/// in a small dataflow run to its end before the real one is built.
fn alike_everywhere(worker: &mut timely::worker::Worker, mine: u64) -> bool {
    use std::cell::RefCell;
    use std::rc::Rc;
    use timely::dataflow::operators::vec::Broadcast;
    use timely::dataflow::operators::{Input, Inspect, Probe as _};
    let seen = Rc::new(RefCell::new(Vec::new()));
    let mut input = timely::dataflow::InputHandle::new();
    let probe = Probe::new();
    let into = seen.clone();
    worker.dataflow::<u64, _, _>(|scope| {
        scope
            .input_from(&mut input)
            .container::<Vec<u64>>()
            .broadcast()
            .inspect(move |f: &u64| into.borrow_mut().push(*f))
            .probe_with(&probe);
    });
    input.send(mine);
    drop(input);
    while !probe.done() {
        worker.step();
    }
    let alike = seen.borrow().iter().all(|f| *f == mine);
    alike
}

/// Routes a collection's changes to worker 0 and sends them as updates.
fn report<'s, D>(c: Coll<'s, D>, out: Sender<Update>, wrap: fn(Changes<D>) -> Update) -> Coll<'s, D>
where
    D: differential_dataflow::ExchangeData,
{
    crate::dataflow::at_worker_zero(c).inspect_batch(move |_stamp, data| {
            if !data.is_empty() {
                let _ = out.send(wrap(data.to_vec()));
            }
        })
}
