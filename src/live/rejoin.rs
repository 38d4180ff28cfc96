//! A serving cluster takes a lost process back: every process still running builds its
//! dataflow again and waits for the lost one to be started again with the same flags; then
//! process 0 reads its data directory back into the new dataflow and every node serves the
//! rows again.

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::cluster::{Health, IngestReply};
use super::driver::Driver;
use super::{bring_up, open_pipeline, Command, IngestReport};
use crate::engine::{DataflowError, RelayBody};

/// Dataflows are built at most this often while one stops before every process is back.
const RETRY: Duration = Duration::from_secs(1);

/// What a process of a serving cluster needs to build its dataflow again.
pub(super) struct Rejoin {
    /// The service thread's channel: each new dataflow relays other processes' messages to it.
    tx: mpsc::Sender<Command>,
    /// Process 0's data directory, read back into each new dataflow.
    data_path: Option<PathBuf>,
    /// While a new dataflow waits for every process (and process 0 has not read its data
    /// directory back yet): what `/healthz` and refused requests say.
    pending: Option<String>,
    /// When the last dataflow was built.
    built: Option<Instant>,
    /// When the dataflow that served last stopped.
    since: Option<Instant>,
    /// The data directory could not be read back: this process stays down.
    failed: bool,
}

impl Driver {
    /// Lets this process of a cluster build its dataflow again when a process is lost (the
    /// service thread's channel `tx`; process 0's data directory at `data_path`).
    pub(super) fn may_rejoin(&mut self, tx: mpsc::Sender<Command>, data_path: Option<PathBuf>) {
        self.rejoin = Some(Rejoin {
            tx,
            data_path,
            pending: None,
            built: None,
            since: None,
            failed: false,
        });
    }

    /// While a new dataflow waits for the cluster: why.
    pub(super) fn rejoining(&self) -> Option<&str> {
        self.rejoin.as_ref().and_then(|r| r.pending.as_deref())
    }

    /// After the dataflow stopped without being asked: answers what was taken (durable in the
    /// data directory, with a last checkpoint), builds a new dataflow in place of the stopped
    /// one, which waits for every process, and says so on `/healthz`. `false` when the stop
    /// stands: not a cluster, processes started unlike, or process 0 without a data
    /// directory (a new dataflow would start empty).
    pub(super) fn rebuild(&mut self, rx: &mpsc::Receiver<Command>) -> bool {
        let process = self.options.cluster.as_ref().map_or(0, |c| c.process);
        let Some(rejoin) = &self.rejoin else { return false };
        if rejoin.failed || (process == 0 && rejoin.data_path.is_none()) {
            return false;
        }
        if let Some(at) = rejoin.built {
            self.refuse_until(rx, at + RETRY);
            if self.stopping.is_some() {
                return false;
            }
        }
        if self.rejoining().is_none() {
            // As at a stop: every event taken is durable and answered, and a checkpoint holds
            // them, before the data directory is read back into the new dataflow.
            self.flush();
            self.close();
            self.data = None;
        }
        let stopped = self.pipeline.ended_with().unwrap_or(Ok(()));
        if let (Some(_), Err(e)) = (self.rejoining(), &stopped) {
            tracing::warn!(
                "the dataflow built again stopped before the cluster was whole ({e}); building it again"
            );
        }
        if let Err(DataflowError::Cluster(why)) = stopped {
            // Started unlike: waiting again would not help.
            tracing::error!("{why}");
            self.health.set(Health::Lost(why));
            return false;
        }
        let Some(rejoin) = self.rejoin.as_mut() else { return false };
        let fresh = match open_pipeline(&self.pipeline.plan, &self.options, &rejoin.tx) {
            Ok(p) => p,
            Err(e) => {
                let why = format!("a process of the cluster was lost, and this process cannot start a new dataflow ({e}): restart every process");
                tracing::error!("{why}");
                self.health.set(Health::Lost(why));
                return false;
            }
        };
        rejoin.built = Some(Instant::now());
        // Its workers have ended: this only drops what is left of it.
        let _ = std::mem::replace(&mut self.pipeline, fresh).finish();
        if rejoin.pending.is_none() {
            let why = match stopped {
                Err(e) => e.to_string(),
                Ok(_) => "its input ended".into(),
            };
            let why = format!("a process of the cluster was lost or stopped, so the dataflow stopped ({why}); this process waits for it and builds the dataflow again: restart the lost process with the same flags (or restart every process), and process 0 reads its data directory back");
            tracing::error!("{why}");
            rejoin.pending = Some(why);
            rejoin.since = Some(Instant::now());
        }
        if let Some(why) = &rejoin.pending {
            self.health.set(Health::Lost(why.clone()));
        }
        let why = rejoin.pending.clone().unwrap_or_default();
        self.start_over(&why);
        true
    }

    /// Forgets what belonged to the stopped dataflow: requests waiting for its progress are
    /// dropped (answered as stopped), and requests relayed to process 0 are answered as not
    /// taken, to be sent again.
    fn start_over(&mut self, why: &str) {
        self.forget_rounds();
        if let Some(f) = self.follower.as_mut() {
            f.start_over(why);
        }
    }

    /// Once every process of the new dataflow is connected: process 0 reads its data
    /// directory back into it, and this process serves again.
    pub(super) fn rejoin_when_up(&mut self) {
        if !self.serving() {
            return;
        }
        let Some(rejoin) = self.rejoin.as_mut() else { return };
        if rejoin.failed {
            return;
        }
        let plan = self.pipeline.plan.clone();
        let acting = !plan.config.rules.is_empty() || !plan.config.alerts.is_empty();
        let mut data = match &rejoin.data_path {
            None => None,
            Some(path) => match crate::durable::DataDir::open(path, &plan.config) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.give_up(format!("cannot read the data directory back: {e}"));
                    return;
                }
            },
        };
        let started = Instant::now();
        let actions = self.actions.is_some();
        if let Err(e) = bring_up(&mut self.pipeline, data.as_mut(), &self.options, acting, actions) {
            self.give_up(e.to_string());
            return;
        }
        match data.map(crate::durable::DataDir::start).transpose() {
            Ok(journal) => self.data = journal,
            Err(e) => {
                self.give_up(format!("cannot write the data directory: {e}"));
                return;
            }
        }
        self.accepted_at_checkpoint = self.pipeline.counts().accepted;
        if let Some(r) = self.rejoin.as_mut() {
            r.pending = None;
        }
        self.announce();
        tracing::info!(
            "the cluster is whole again; this process serves the rows again ({:.2?} to read back)",
            started.elapsed()
        );
        self.health.set(Health::Up);
    }

    /// While the dataflow is built again, the engine is behind its input since the last one
    /// stopped: past `serve.max_lag`, HTTP answers 429 with `Retry-After` and MQTT takes no
    /// message (the broker keeps them), instead of taking requests only to refuse them.
    pub(super) fn note_rejoin_lag(&self) {
        self.pressure
            .set_oldest(self.rejoin.as_ref().and_then(|r| r.since));
    }

    /// Whether this process may serve: its dataflow runs (every process is connected), and
    /// on a process other than 0, process 0 has said it serves (after reading its data
    /// directory back).
    pub(super) fn serving(&self) -> bool {
        self.pipeline.up() && self.follower.as_ref().is_none_or(|f| f.ready)
    }

    /// On process 0 of a cluster: tells every other process that it serves, and the time its
    /// rows reach, so that their reads wait for everything it read back.
    pub(super) fn announce(&self) {
        let Some(c) = self.options.cluster.as_ref().filter(|c| c.process == 0) else {
            return;
        };
        for to in 1..c.peers.len() {
            self.pipeline
                .relay(super::cluster::ready_message(to, self.pipeline.sent()));
        }
    }

    /// Process 0 cannot read its data directory back into the new dataflow: it stays down,
    /// and says why.
    fn give_up(&mut self, why: String) {
        let why = format!("the cluster is whole again, but {why}; restart every process");
        tracing::error!("{why}");
        self.health.set(Health::Lost(why.clone()));
        if let Some(r) = self.rejoin.as_mut() {
            r.failed = true;
            r.pending = Some(why);
        }
    }

    /// Answers requests as refused until `until` (or a stop is asked).
    fn refuse_until(&mut self, rx: &mpsc::Receiver<Command>, until: Instant) {
        while self.stopping.is_none() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            match rx.recv_timeout(left) {
                Ok(c) => self.handle(c),
                Err(RecvTimeoutError::Timeout) => return,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// While the dataflow is built again: events are answered as not taken (to be sent
    /// again), a stop is taken, and every other request is dropped (answered as stopped).
    pub(super) fn refuse(&mut self, command: Command, why: &str) {
        let failed = |reply: IngestReply| {
            reply.send(IngestReport {
                failed: Some(why.to_string()),
                ..IngestReport::default()
            })
        };
        match command {
            Command::Ingest(_, _, _, reply) => failed(IngestReply::Here(reply)),
            Command::Relayed(message) => match message.body {
                RelayBody::Answer(body) => {
                    // Process 0's word that it serves again (what a follower waits for), or
                    // a stale answer of the stopped dataflow, whose request was answered.
                    if let Some(f) = self.follower.as_mut() {
                        f.answer(message.seq, &body);
                    }
                }
                RelayBody::Ingest { .. } => {
                    if let Some(relay) = self.pipeline.relay_sender() {
                        failed(IngestReply::There {
                            to: message.from,
                            seq: message.seq,
                            relay,
                        });
                    }
                }
                RelayBody::Part { .. } => {}
            },
            Command::Shutdown(reply) => self.stopping = Some(reply),
            _ => {}
        }
    }
}
