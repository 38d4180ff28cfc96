//! One timely worker's part of the engine: it builds the dataflow with its reports, then feeds
//! the rounds (worker 0) or steps along with the others (every other worker).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use timely::dataflow::operators::probe::Handle as Probe;
use timely::worker::Worker;

use super::cluster::{self, NotesIn, RelayIn};
use super::{served, report, DataflowOptions, RelayHook, Relayed, Round, Update};
use crate::dataflow::{at_worker_zero, build, Inputs, Time};
use crate::ingest::Dictionary;
use crate::plan::Plan;

/// How long a worker of a cluster waits for its process's input before it steps again.
const POLL: Duration = Duration::from_millis(1);

/// What the workers of this process share.
pub(super) struct Shared {
    pub plan: Arc<Plan>,
    pub dict: Arc<Dictionary>,
    pub options: DataflowOptions,
    pub out: Sender<Update>,
    /// In a cluster: where messages relayed to this process go.
    pub hook: Option<RelayHook>,
    /// The messages this process relays (taken by its first worker).
    pub relay_rx: Mutex<Option<Receiver<Relayed>>>,
    /// The rounds to feed (taken by worker 0).
    pub rounds: Mutex<Option<Receiver<Round>>>,
    /// Set once this process's first worker runs.
    pub up: Arc<AtomicBool>,
    /// Workers per process, and processes.
    pub threads: usize,
    pub processes: usize,
}

/// A first worker's input of messages to relay, and the channel that feeds it.
type Relay = Option<(RelayIn, Option<Receiver<Relayed>>)>;

/// Runs one worker until the input is closed and the dataflow done.
pub(super) fn run(worker: &mut Worker, shared: &Shared) -> Result<(), String> {
    let options = &shared.options;
    let everywhere = options.everywhere && options.cluster.is_some();
    if options.cluster.is_some() {
        let mine = cluster::fingerprint(&shared.plan, options);
        if !cluster::alike_everywhere(worker, mine) {
            return Err(
                "the processes of the cluster were not started alike: give every one the same --config, -w, --processes and --peers".to_string()
            );
        }
    }
    let profile = crate::profile::install(worker);
    let probe = Probe::new();
    let (inputs, notes) = worker.dataflow::<Time, _, _>(|scope| {
        let out = &shared.out;
        let (inputs, outputs) = build(scope, shared.plan.clone(), shared.dict.clone());
        let (processes, threads) = (shared.processes, shared.threads);
        let rows = served(outputs.rows, everywhere, processes, threads);
        report(rows, out.clone(), Update::Rows).probe_with(&probe);
        report(at_worker_zero(outputs.guarded), out.clone(), Update::Guarded).probe_with(&probe);
        report(at_worker_zero(outputs.firings), out.clone(), Update::Firings).probe_with(&probe);
        let alerts = served(outputs.alerts, everywhere, processes, threads);
        report(alerts, out.clone(), Update::Alerts).probe_with(&probe);
        if options.track_verdicts {
            report(at_worker_zero(outputs.verdicts), out.clone(), Update::Verdicts)
                .probe_with(&probe);
        }
        if options.track_identities {
            report(at_worker_zero(outputs.persons), out.clone(), Update::Persons)
                .probe_with(&probe);
            report(at_worker_zero(outputs.firsts), out.clone(), Update::Firsts)
                .probe_with(&probe);
        }
        let notes = everywhere
            .then(|| cluster::notes(scope, processes, threads, out.clone(), &probe));
        (inputs, notes)
    });
    let first_here = worker.index().is_multiple_of(shared.threads);
    let relay = match (&shared.hook, first_here) {
        (Some(h), true) => Some((
            cluster::relay(worker, shared.threads, h.clone()),
            shared.relay_rx.lock().ok().and_then(|mut r| r.take()),
        )),
        (Some(h), false) => {
            drop(cluster::relay(worker, shared.threads, h.clone()));
            None
        }
        (None, _) => None,
    };
    if first_here {
        shared.up.store(true, Ordering::SeqCst);
    }
    let rounds = match worker.index() {
        0 => shared.rounds.lock().ok().and_then(|mut r| r.take()),
        _ => None,
    };
    let fed = match rounds {
        Some(rounds) => Some(feed(worker, shared, &probe, inputs, notes, relay, rounds)),
        None => {
            drop(inputs);
            drop(notes);
            // A first worker of a cluster reports progress (serving everywhere) and passes on
            // what its process relays, so it steps at least every `POLL`.
            let polls = first_here && (everywhere || relay.is_some());
            follow(worker, &probe, relay, polls, everywhere, &shared.out);
            None
        }
    };
    if let Some(p) = profile {
        p.finish(worker);
    }
    if let Some(fed) = fed {
        let _ = shared.out.send(Update::Progress(fed));
    }
    Ok(())
}

/// Every worker but worker 0: steps until the dataflow is done.
fn follow(
    worker: &mut Worker,
    probe: &Probe<Time>,
    mut relay: Relay,
    polls: bool,
    reports: bool,
    out: &Sender<Update>,
) {
    let mut reported: Time = 0;
    while !probe.done() {
        if !polls {
            worker.step_or_park(None);
            continue;
        }
        pass_on(&mut relay);
        if reports {
            let through =
                probe.with_frontier(|f| f.iter().next().map_or(reported, |t| t.saturating_sub(1)));
            if through > reported {
                reported = through;
                let _ = out.send(Update::Progress(reported));
            }
        }
        worker.step_or_park(Some(POLL));
    }
}

/// Advances the inputs (and notes) to `t`.
fn advance(inputs: &mut Inputs, notes: &mut Option<NotesIn>, t: Time) {
    inputs.advance_to(t);
    if let Some(n) = notes.as_mut() {
        n.advance_to(t);
    }
}

/// Worker 0: feeds each round at its time and reports progress, until the rounds' sender is
/// gone; then lets the dataflow finish. Returns the last time fed.
fn feed(
    worker: &mut Worker,
    shared: &Shared,
    probe: &Probe<Time>,
    mut inputs: Inputs,
    mut notes: Option<NotesIn>,
    mut relay: Relay,
    rounds: Receiver<Round>,
) -> Time {
    let clustered = shared.options.cluster.is_some();
    let out = &shared.out;
    // The last time fed; input is open at every later time.
    let mut fed: Time = 0;
    advance(&mut inputs, &mut notes, fed + 1);
    let mut reported: Time = 0;
    loop {
        pass_on(&mut relay);
        let next = match rounds.try_recv() {
            Ok(round) => Some(round),
            Err(TryRecvError::Empty) => {
                while probe.less_than(&(fed + 1)) {
                    pass_on(&mut relay);
                    worker.step();
                }
                if fed > reported {
                    reported = fed;
                    let _ = out.send(Update::Progress(reported));
                }
                if clustered {
                    // Other processes' messages arrive while this worker steps, so it does
                    // not wait on the channel alone.
                    match rounds.recv_timeout(POLL) {
                        Ok(round) => Some(round),
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            worker.step();
                            continue;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => None,
                    }
                } else {
                    rounds.recv().ok()
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
        // Under sustained input the queue never empties: report each batch as soon as it is
        // complete, not only when input pauses.
        let through = probe.with_frontier(|f| f.iter().next().map_or(fed, |t| t.saturating_sub(1)));
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
    fed
}

/// Sends what this process relays (a first worker's input and the channel that feeds it);
/// closes the input once the channel's sender is gone.
fn pass_on(relay: &mut Relay) {
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
