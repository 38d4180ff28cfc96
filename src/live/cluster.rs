//! The live engine as one process of a serving cluster: ingest requests relayed to process 0
//! and answered back, and the health every process reports.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::oneshot;

use super::{IngestReport, Source};
use crate::dataflow::Time;
use crate::engine::{RelayBody, Relayed};

/// Where an ingest answer goes: to a caller of this process, or back to the process that
/// relayed the request.
pub(super) enum IngestReply {
    Here(oneshot::Sender<IngestReport>),
    There {
        to: usize,
        seq: u64,
        relay: mpsc::Sender<Relayed>,
    },
}

impl IngestReply {
    pub(super) fn send(self, report: IngestReport) {
        match self {
            IngestReply::Here(reply) => {
                let _ = reply.send(report);
            }
            IngestReply::There { to, seq, relay } => {
                let body = serde_json::to_vec(&report).expect("an ingest report serialises");
                let _ = relay.send(Relayed {
                    from: 0,
                    to,
                    seq,
                    body: RelayBody::Answer(body),
                });
            }
        }
    }
}

/// A process other than 0 of a serving cluster: its ingest requests wait for process 0's
/// answers.
pub(super) struct Follower {
    pub(super) process: usize,
    next: u64,
    /// Requests relayed and not yet answered, oldest first, with when each was relayed.
    waiting: BTreeMap<u64, (Instant, oneshot::Sender<IngestReport>)>,
    /// The latest time process 0 answered with: rows asked for here wait for it.
    pub(super) answered: Time,
    /// Process 0 said it serves (after reading its data directory back): until then this
    /// process does not either.
    pub(super) ready: bool,
}

/// The sequence number of process 0's word that it serves, with the time its rows then
/// reach (a follower's own requests are numbered from 1).
pub(super) const READY: u64 = 0;

impl Follower {
    pub(super) fn new(process: usize) -> Follower {
        Follower {
            process,
            next: 0,
            waiting: BTreeMap::new(),
            answered: 0,
            ready: false,
        }
    }

    /// The message that relays a request's events to process 0; its answer goes to `reply`.
    pub(super) fn ask(
        &mut self,
        source: Source,
        events: Vec<Vec<u8>>,
        reply: oneshot::Sender<IngestReport>,
    ) -> Relayed {
        self.next += 1;
        self.waiting.insert(self.next, (Instant::now(), reply));
        Relayed {
            from: self.process,
            to: 0,
            seq: self.next,
            body: RelayBody::Ingest {
                source: source.to_string(),
                events,
            },
        }
    }

    /// When the oldest request still waiting for process 0 was relayed: a follower's lag, so
    /// that its sources push back (`serve.max_lag`) when process 0 is behind or stuck.
    pub(super) fn oldest(&self) -> Option<Instant> {
        self.waiting.first_key_value().map(|(_, (at, _))| *at)
    }

    /// Requests relayed and not yet answered.
    pub(super) fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Starts over with a new dataflow: answers every request still waiting as not taken,
    /// saying `why` (the dataflow that relayed them stopped; the caller sends it again), and
    /// waits for process 0 to say it serves again.
    pub(super) fn start_over(&mut self, why: &str) {
        self.answered = 0;
        self.ready = false;
        for (_, (_, reply)) in std::mem::take(&mut self.waiting) {
            let _ = reply.send(IngestReport {
                failed: Some(why.to_string()),
                ..IngestReport::default()
            });
        }
    }

    /// Takes process 0's answer to request `seq` (or its word that it serves, `READY`).
    pub(super) fn answer(&mut self, seq: u64, body: &[u8]) {
        let reply = match seq {
            READY => None,
            _ => match self.waiting.remove(&seq) {
                Some((_, reply)) => Some(reply),
                None => return,
            },
        };
        match serde_json::from_slice::<IngestReport>(body) {
            Ok(report) => {
                self.answered = self.answered.max(report.time);
                match reply {
                    Some(reply) => {
                        let _ = reply.send(report);
                    }
                    None => self.ready = true,
                }
            }
            Err(e) => tracing::error!("process 0 answered request {seq} with an unreadable report: {e}"),
        }
    }
}

/// Process 0's word to process `to` that it serves, with the time its rows reach then: reads
/// there wait for that time.
pub(super) fn ready_message(to: usize, time: Time) -> Relayed {
    let report = IngestReport {
        time,
        ..IngestReport::default()
    };
    Relayed {
        from: 0,
        to,
        seq: READY,
        body: RelayBody::Answer(serde_json::to_vec(&report).expect("an ingest report serialises")),
    }
}

/// The source a relayed request names, as this process's dead letters name sources.
pub(super) fn source_named(name: &str) -> Source {
    match name {
        "http" => "http",
        "mqtt" => "mqtt",
        "demo" => "demo",
        "library" => "library",
        _ => "relay",
    }
}

/// Whether the dataflow runs, as `/healthz` and `/metrics` report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Started; in a cluster, waiting until every process is connected.
    Waiting,
    /// Running.
    Up,
    /// The dataflow stopped without being asked to, and why (in a cluster: a process was
    /// lost).
    Lost(String),
}

/// The health shared between the engine's thread and its handles.
#[derive(Debug)]
pub(super) struct Shared(Mutex<Health>);

impl Shared {
    /// A cluster's engine waits for its processes; a single process's runs at once.
    pub(super) fn new(clustered: bool) -> Shared {
        Shared(Mutex::new(match clustered {
            true => Health::Waiting,
            false => Health::Up,
        }))
    }

    pub(super) fn get(&self) -> Health {
        self.0.lock().map(|h| h.clone()).unwrap_or(Health::Waiting)
    }

    pub(super) fn set(&self, health: Health) {
        if let Ok(mut h) = self.0.lock() {
            *h = health;
        }
    }
}
