//! Runs the dataflow on timely workers: fact batches in over a channel, row changes and progress out.

use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::dataflow::{at_worker_zero, AlertRecord, Coll, Firing, Time, Verdict};
use crate::facts::{FactBatch, First, Ident, Person};
use crate::ingest::Dictionary;
use crate::metric::{Key, Value};
use crate::plan::Plan;

mod cluster;
mod worker;
pub use cluster::{counts_of, Cluster, Note, RelayBody, RelayHook, Relayed};

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
    /// What process 0 sent beside the rows (on the other processes of a cluster, with
    /// `everywhere`).
    Notes(Vec<Note>),
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
    /// In a cluster: report rows, alerts and progress at every process (with the notes that
    /// label them), not only at process 0.
    pub everywhere: bool,
}

impl Default for DataflowOptions {
    fn default() -> Self {
        DataflowOptions {
            workers: 1,
            track_identities: false,
            track_verdicts: false,
            queue: 64,
            cluster: None,
            everywhere: false,
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
    /// In a cluster with a relay hook: messages for other processes.
    pub relay: Option<Sender<Relayed>>,
    /// Set once this process's workers run (in a cluster: once every process is connected and
    /// started alike).
    pub up: Arc<AtomicBool>,
    /// The workers' thread, until joined.
    thread: Option<JoinHandle<Result<(), DataflowError>>>,
}

impl Dataflow {
    /// Starts the workers on their own threads.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    pub fn start(
        plan: Arc<Plan>,
        dict: Arc<Dictionary>,
        options: DataflowOptions,
    ) -> std::io::Result<Dataflow> {
        Dataflow::start_relaying(plan, dict, options, None)
    }

    /// Starts the workers; in a cluster, messages relayed to this process go to `hook` and
    /// [`Dataflow::relay`] takes the ones it sends.
    pub fn start_relaying(
        plan: Arc<Plan>,
        dict: Arc<Dictionary>,
        options: DataflowOptions,
        hook: Option<RelayHook>,
    ) -> std::io::Result<Dataflow> {
        let (batch_tx, batch_rx) = mpsc::sync_channel::<Round>(options.queue.max(1));
        let (update_tx, update_rx) = mpsc::channel::<Update>();
        let hook = hook.filter(|_| options.cluster.is_some());
        let (relay_tx, relay_rx) = mpsc::channel::<Relayed>();
        let relay_tx = hook.is_some().then_some(relay_tx);
        let up = Arc::new(AtomicBool::new(false));
        let threads = options.workers.max(1);
        let (config, processes) = match options.cluster.clone() {
            None => (timely::Config::process(threads), 1),
            Some(c) => {
                let processes = c.peers.len();
                let config = timely::Config {
                    communication: timely::CommunicationConfig::Cluster {
                        threads,
                        process: c.process,
                        addresses: c.peers,
                        report: false,
                        zerocopy: false,
                    },
                    worker: timely::WorkerConfig::default(),
                };
                (config, processes)
            }
        };
        let shared = worker::Shared {
            plan,
            dict,
            options,
            out: update_tx,
            hook,
            relay_rx: Mutex::new(Some(relay_rx)),
            rounds: Mutex::new(Some(batch_rx)),
            up: up.clone(),
            threads,
            processes,
        };
        let thread = std::thread::Builder::new()
            .name("tidemark-engine".into())
            .spawn(move || {
                let guards = timely::execute(config, move |w| worker::run(w, &shared))
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
            relay: relay_tx,
            up,
            thread: Some(thread),
        })
    }

    /// Whether the workers have ended (their input closed, or a process of the cluster lost).
    pub fn ended(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Why the workers ended, for workers that stopped without being asked (waits for their
    /// thread, which is ending): `None` when asked before. `finish` then returns at once.
    pub fn ended_with(&mut self) -> Option<Result<(), DataflowError>> {
        self.thread.take().map(join)
    }

    /// Closes the input and waits for the workers to finish; returns the update stream's rest.
    pub fn finish(mut self) -> Result<Receiver<Update>, DataflowError> {
        drop(self.batches);
        match self.thread.take().map(join) {
            None | Some(Ok(())) => Ok(self.updates),
            Some(Err(e)) => Err(e),
        }
    }
}

/// The workers' result, from their thread.
fn join(thread: JoinHandle<Result<(), DataflowError>>) -> Result<(), DataflowError> {
    match thread.join() {
        Ok(r) => r,
        Err(_) => Err(DataflowError::Panicked),
    }
}

/// Where rows and alerts are reported: at every process that serves them (`everywhere`),
/// else at worker 0. Firings, verdicts and identities are reported at worker 0 only: process
/// 0 acts and answers on them.
fn served<'s, D: differential_dataflow::ExchangeData>(
    c: Coll<'s, D>,
    everywhere: bool,
    processes: usize,
    threads: usize,
) -> Coll<'s, D> {
    if everywhere {
        cluster::at_every_process(c, processes, threads)
    } else {
        at_worker_zero(c)
    }
}

/// Sends a collection's changes (already where they are reported) as updates.
fn report<'s, D>(c: Coll<'s, D>, out: Sender<Update>, wrap: fn(Changes<D>) -> Update) -> Coll<'s, D>
where
    D: differential_dataflow::ExchangeData,
{
    c.inspect_batch(move |_stamp, data| {
            if !data.is_empty() {
                let _ = out.send(wrap(data.to_vec()));
            }
        })
}
