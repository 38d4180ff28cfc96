//! What a cluster's processes agree on and exchange beside the dataflow's collections: the
//! start-up check, updates sent to every process, notes that let every process serve the
//! rows, and requests relayed to process 0 with their answers.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use timely::dataflow::operators::probe::Handle as Probe;

use super::DataflowOptions;
use crate::dataflow::{Coll, Time};
use crate::plan::Plan;

/// This process's place in a cluster of processes that run one dataflow together (timely's
/// own multi-process mode). Process 0 feeds every batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    /// This process's index in `peers`.
    pub process: usize,
    /// `host:port` of every process, in order; each listens at its own.
    pub peers: Vec<String>,
}

/// What the rows of a time stand beside, sent from process 0 to every process with the batch
/// that brings it, so that any process serves the same snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Note {
    /// A channel was interned under this id.
    Channel(u32, String),
    /// Ingest's counts and clocks once the batch of time `at` is reflected.
    Reflect {
        at: Time,
        accepted: u64,
        duplicates: u64,
        rejected: Vec<(String, u64)>,
        clock: Option<i64>,
        now: Option<i64>,
    },
}

impl Note {
    /// The note of ingest's counts and clocks as of time `at`.
    pub fn reflect(at: Time, counts: &crate::ingest::Counts, clock: Option<i64>, now: Option<i64>) -> Note {
        Note::Reflect {
            at,
            accepted: counts.accepted,
            duplicates: counts.duplicates,
            rejected: counts
                .rejected
                .iter()
                .map(|(r, n)| (r.to_string(), *n))
                .collect(),
            clock,
            now,
        }
    }
}

/// Counts from a note's rejected reasons (reasons this build does not know are left out).
pub fn counts_of(accepted: u64, duplicates: u64, rejected: &[(String, u64)]) -> crate::ingest::Counts {
    let rejected = rejected
        .iter()
        .filter_map(|(name, n)| {
            crate::event::Reason::ALL
                .iter()
                .find(|r| r.as_str() == name)
                .map(|r| (r.as_str(), *n))
        })
        .collect();
    crate::ingest::Counts {
        accepted,
        duplicates,
        rejected,
    }
}

/// A request or answer between the processes of a cluster, carried by timely's channels.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Relayed {
    /// The process that sent it.
    pub from: usize,
    /// The process it is for.
    pub to: usize,
    /// The sender's number for the request, repeated in its answer.
    pub seq: u64,
    pub body: RelayBody,
}

/// What a relayed message carries.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RelayBody {
    /// Events a process took in, for process 0's ingest; `source` as dead letters name it.
    Ingest { source: String, events: Vec<Vec<u8>> },
    /// The answer to an ingest request, as JSON of `live::IngestReport` (to a part's chunk:
    /// empty, once process 0 took it).
    Answer(Vec<u8>),
    /// A chunk of a process's part of a log split across the cluster (`compute`); no lines
    /// end the part.
    Part {
        source: String,
        first_line: u64,
        lines: Vec<Vec<u8>>,
    },
}

/// Worker 0's input of notes.
pub(super) type NotesIn =
    timely::dataflow::InputHandle<Time, timely::container::CapacityContainerBuilder<Vec<Note>>>;
/// A first worker's input of messages to relay.
pub(super) type RelayIn =
    timely::dataflow::InputHandle<u64, timely::container::CapacityContainerBuilder<Vec<Relayed>>>;

/// Called on the first worker of a process with each message relayed to it.
pub type RelayHook = Arc<dyn Fn(Relayed) + Send + Sync>;

/// What every process of a cluster must agree on to build the same dataflow.
pub(super) fn fingerprint(plan: &Plan, options: &DataflowOptions) -> u64 {
    use std::hash::{Hash, Hasher};
    // What shapes the dataflow: not the sections of each process's own service (addresses,
    // tokens, its place in the cluster). The configuration holds no hash maps, so its debug
    // text is the same in every process.
    let defaults = crate::config::Config::default();
    let shape = crate::config::Config {
        serve: defaults.serve,
        mqtt: defaults.mqtt,
        delivery: defaults.delivery,
        cluster: defaults.cluster,
        ..plan.config.clone()
    };
    let mut h = std::hash::DefaultHasher::new();
    format!("{shape:?}").hash(&mut h);
    (
        options.workers,
        options.track_identities,
        options.track_verdicts,
        options.everywhere,
    )
        .hash(&mut h);
    h.finish()
}

/// Whether every worker of the cluster has the fingerprint `mine`: each sends its own to all,
/// in a small dataflow run to its end before the real one is built.
pub(super) fn alike_everywhere(worker: &mut timely::worker::Worker, mine: u64) -> bool {
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

/// The collection's changes, sent to the first worker of each of `processes` processes of
/// `threads` workers: where each process reports its updates.
pub(super) fn at_every_process<'s, D: differential_dataflow::ExchangeData>(
    c: Coll<'s, D>,
    processes: usize,
    threads: usize,
) -> Coll<'s, D> {
    use differential_dataflow::AsCollection;
    use timely::dataflow::operators::vec::Map;
    use timely::dataflow::operators::Exchange;
    c.inner
        .flat_map(move |(d, t, r)| (0..processes).map(move |p| ((p, d.clone()), t, r)))
        .exchange(move |((p, _), _, _)| (p * threads) as u64)
        .map(|((_, d), t, r)| (d, t, r))
        .as_collection()
}

/// The notes fed at worker 0, sent to the first worker of every other process and handed to
/// `out` there; `probe` passes a time once its notes are handed over.
pub(super) fn notes<'s>(
    scope: timely::dataflow::Scope<'s, Time>,
    processes: usize,
    threads: usize,
    out: std::sync::mpsc::Sender<super::Update>,
    probe: &Probe<Time>,
) -> NotesIn {
    use timely::dataflow::operators::vec::Map;
    use timely::dataflow::operators::{Exchange, Input, Inspect, Probe as _};
    let mut input = timely::dataflow::InputHandle::new();
    scope
        .input_from(&mut input)
        .container::<Vec<Note>>()
        // Process 0 wrote them: its ingest is where they come from, so they go to the others.
        .flat_map(move |n: Note| (1..processes).map(move |p| (p, n.clone())))
        .exchange(move |(p, _)| (*p * threads) as u64)
        .inspect_core(move |event| {
            if let Ok((_, notes)) = event {
                if !notes.is_empty() {
                    let notes = notes.iter().map(|(_, n)| n.clone()).collect();
                    let _ = out.send(super::Update::Notes(notes));
                }
            }
        })
        .probe_with(probe);
    input
}

/// The relay: a dataflow of its own whose messages go to the first worker of the process they
/// are for, which hands them to `hook`. Returns this worker's input of messages to send.
pub(super) fn relay(
    worker: &mut timely::worker::Worker,
    threads: usize,
    hook: RelayHook,
) -> RelayIn {
    use timely::dataflow::operators::{Exchange, Input, Inspect};
    let mut input = timely::dataflow::InputHandle::new();
    worker.dataflow::<u64, _, _>(|scope| {
        scope
            .input_from(&mut input)
            .container::<Vec<Relayed>>()
            .exchange(move |r: &Relayed| (r.to * threads) as u64)
            .inspect(move |r: &Relayed| hook(r.clone()));
    });
    input
}
