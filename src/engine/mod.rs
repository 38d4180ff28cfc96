//! Runs the dataflow on timely workers: fact batches in over a channel, row changes and progress out.

use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::thread::JoinHandle;

use timely::dataflow::operators::probe::Handle as Probe;

use crate::dataflow::{at_worker_zero, build, AlertRecord, Coll, Firing, Time, Verdict};
use crate::facts::{FactBatch, First, Ident, Person};
use crate::ingest::Dictionary;
use crate::metric::{Key, Value};
use crate::plan::Plan;

mod cluster;
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
    thread: JoinHandle<Result<(), DataflowError>>,
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
        let batch_rx = Arc::new(Mutex::new(Some(batch_rx)));
        let hook = hook.filter(|_| options.cluster.is_some());
        let (relay_tx, relay_rx) = mpsc::channel::<Relayed>();
        let relay_rx = Arc::new(Mutex::new(Some(relay_rx)));
        let relay_tx = hook.is_some().then_some(relay_tx);
        let up = Arc::new(AtomicBool::new(false));
        let running = up.clone();
        let thread = std::thread::Builder::new()
            .name("tidemark-engine".into())
            .spawn(move || {
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
                let guards = timely::execute(config, move |worker| {
                    let index = worker.index();
                    let out = update_tx.clone();
                    let track = options.track_identities;
                    let everywhere = options.everywhere && options.cluster.is_some();
                    let plan = plan.clone();
                    let dict = dict.clone();
                    let probe = Probe::new();
                    if options.cluster.is_some() {
                        let mine = cluster::fingerprint(&plan, &options);
                        if !cluster::alike_everywhere(worker, mine) {
                            return Err(
                                "the processes of the cluster were not started alike: give every one the same --config, -w, --processes and --peers".to_string()
                            );
                        }
                    }
                    let profile = crate::profile::install(worker);
                    let (mut inputs, mut notes) = worker.dataflow::<Time, _, _>(|scope| {
                        let (inputs, outputs) = build(scope, plan, dict);
                        let rows = served(outputs.rows, everywhere, processes, threads);
                        report(rows, out.clone(), Update::Rows).probe_with(&probe);
                        report(at_worker_zero(outputs.guarded), out.clone(), Update::Guarded)
                            .probe_with(&probe);
                        report(at_worker_zero(outputs.firings), out.clone(), Update::Firings)
                            .probe_with(&probe);
                        let alerts = served(outputs.alerts, everywhere, processes, threads);
                        report(alerts, out.clone(), Update::Alerts).probe_with(&probe);
                        if options.track_verdicts {
                            report(at_worker_zero(outputs.verdicts), out.clone(), Update::Verdicts)
                                .probe_with(&probe);
                        }
                        if track {
                            report(at_worker_zero(outputs.persons), out.clone(), Update::Persons)
                                .probe_with(&probe);
                            report(at_worker_zero(outputs.firsts), out.clone(), Update::Firsts)
                                .probe_with(&probe);
                        }
                        let notes = everywhere
                            .then(|| cluster::notes(scope, processes, threads, out.clone(), &probe));
                        (inputs, notes)
                    });
                    let first_here = index % threads == 0;
                    let mut relay = match (&hook, first_here) {
                        (Some(h), true) => Some((
                            cluster::relay(worker, threads, h.clone()),
                            relay_rx.lock().ok().and_then(|mut r| r.take()),
                        )),
                        (Some(h), false) => {
                            drop(cluster::relay(worker, threads, h.clone()));
                            None
                        }
                        (None, _) => None,
                    };
                    if first_here {
                        running.store(true, Ordering::SeqCst);
                    }
                    let receiver = if index == 0 {
                        batch_rx.lock().ok().and_then(|mut r| r.take())
                    } else {
                        None
                    };
                    let Some(receiver) = receiver else {
                        drop(inputs);
                        drop(notes);
                        let mut reported: Time = 0;
                        let relaying = relay.is_some();
                        while !probe.done() {
                            if first_here && (everywhere || relaying) {
                                pass_on(&mut relay);
                                let through = probe.with_frontier(|f| {
                                    f.iter().next().map_or(reported, |t| t.saturating_sub(1))
                                });
                                if through > reported {
                                    reported = through;
                                    let _ = out.send(Update::Progress(reported));
                                }
                                worker.step_or_park(Some(POLL));
                            } else {
                                worker.step_or_park(None);
                            }
                        }
                        drop(relay);
                        if let Some(p) = profile {
                            p.finish(worker);
                        }
                        return Ok(());
                    };
                    // The last time fed; input is open at every later time.
                    let mut fed: Time = 0;
                    let advance = |inputs: &mut crate::dataflow::Inputs,
                                   notes: &mut Option<cluster::NotesIn>,
                                   t: Time| {
                        inputs.advance_to(t);
                        if let Some(n) = notes.as_mut() {
                            n.advance_to(t);
                        }
                    };
                    advance(&mut inputs, &mut notes, fed + 1);
                    let mut reported: Time = 0;
                    loop {
                        pass_on(&mut relay);
                        let next = match receiver.try_recv() {
                            Ok(batch) => Some(batch),
                            Err(TryRecvError::Empty) => {
                                while probe.less_than(&(fed + 1)) {
                                    pass_on(&mut relay);
                                    worker.step();
                                }
                                if fed > reported {
                                    reported = fed;
                                    let _ = out.send(Update::Progress(reported));
                                }
                                if options.cluster.is_some() {
                                    // Other processes' messages arrive while this worker
                                    // steps, so it does not wait on the channel alone.
                                    match receiver.recv_timeout(POLL) {
                                        Ok(round) => Some(round),
                                        Err(mpsc::RecvTimeoutError::Timeout) => {
                                            worker.step();
                                            continue;
                                        }
                                        Err(mpsc::RecvTimeoutError::Disconnected) => None,
                                    }
                                } else {
                                    receiver.recv().ok()
                                }
                            }
                            Err(TryRecvError::Disconnected) => None,
                        };
                        let Some(round) = next else { break };
                        let time = round.at.max(fed + 1);
                        advance(&mut inputs, &mut notes, time);
                        for mut batch in round.batches {
                            if let Some(n) = notes.as_mut() {
                                for note in std::mem::take(&mut batch.notes) {
                                    n.send(note);
                                }
                            }
                            inputs.feed(batch);
                        }
                        fed = round.through.max(time);
                        advance(&mut inputs, &mut notes, fed + 1);
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
                    drop(notes);
                    drop(relay);
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
            relay: relay_tx,
            up,
            thread,
        })
    }

    /// Whether the workers have ended (their input closed, or a process of the cluster lost).
    pub fn ended(&self) -> bool {
        self.thread.is_finished()
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

/// How long a worker of a cluster waits for its process's input before it steps again.
const POLL: Duration = Duration::from_millis(1);

/// Sends what this process relays (a first worker's input and the channel that feeds it);
/// closes the input once the channel's sender is gone.
fn pass_on(
    relay: &mut Option<(
        cluster::RelayIn,
        Option<Receiver<Relayed>>,
    )>,
) {
    let Some((input, from)) = relay.as_mut() else { return };
    let Some(rx) = from.as_ref() else { return };
    let mut sent = false;
    loop {
        match rx.try_recv() {
            Ok(m) => {
                input.send(m);
                sent = true;
            }
            Err(TryRecvError::Empty) => break,
            Err(TryRecvError::Disconnected) => {
                *relay = None;
                return;
            }
        }
    }
    if sent {
        let next = input.time() + 1;
        input.advance_to(next);
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
