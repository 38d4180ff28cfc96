//! The service thread: takes requests in order, cuts batches, logs them, hands them to the
//! dataflow, and answers once progress reaches them.

use std::collections::BTreeMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::Value as Json;
use tokio::sync::oneshot;

use super::cluster::{self, Follower, Health, IngestReply};
use super::{
    Command, EngineOptions, ErasedPerson, EraseError, Erasure, EventBytes, Events, IngestReport,
    Pressure, Source, Status,
};
use crate::dataflow::Time;
use crate::event::batch::for_each;
use crate::event::DeadLetters;
use crate::ingest::Outcome;
use crate::io::actions::ActionSink;
use crate::metric::Labeler;
use crate::output::Filter;
use crate::pipeline::Pipeline;

/// The service thread's state.
pub(super) struct Driver {
    pub(super) pipeline: Pipeline,
    pub(super) options: EngineOptions,
    /// Ingest replies waiting for their batch's time.
    unsent: Vec<(IngestReport, IngestReply)>,
    /// When the oldest event of the pending batch was accepted.
    pending_since: Option<Instant>,
    /// Requests waiting for progress to reach a time.
    waiting: Vec<(Time, Waiter)>,
    /// Batches in flight: time and when they were sent.
    in_flight: std::collections::VecDeque<(Time, Instant)>,
    rounds: Histogram<u64>,
    /// Where firings and alert transitions go.
    pub(super) actions: Option<ActionSink>,
    /// The rules' clock as of the last action messages taken.
    actions_clock: Option<i64>,
    /// When the rules' clock next follows the wall clock (rules or alerts configured).
    next_tick: Option<Instant>,
    /// The data directory, when accepted events are kept.
    pub(super) data: Option<crate::durable::Journal>,
    /// Events accepted as of the last checkpoint.
    pub(super) accepted_at_checkpoint: u64,
    /// Once the checkpoint count passes this, the checkpoint that retired these firings (per
    /// rule id prefix, released before the time) is written: the delivery log may drop them.
    pub(super) prune_after: Option<(u64, Vec<(String, i64)>)>,
    /// Who asked the service to stop.
    pub(super) stopping: Option<oneshot::Sender<()>>,
    /// Duplicates and rejections by reason since the last batch handed to the log.
    outcomes: BTreeMap<&'static str, u64>,
    /// Where the lag is noted for the sources.
    pub(super) pressure: Arc<Pressure>,
    /// Where the dataflow's health is noted for `/healthz`.
    pub(super) health: Arc<cluster::Shared>,
    /// On a process other than 0 of a cluster: its requests relayed to process 0.
    pub(super) follower: Option<Follower>,
    /// In a cluster: how to build the dataflow again when a process is lost.
    pub(super) rejoin: Option<super::rejoin::Rejoin>,
}

enum Waiter {
    Snapshot(oneshot::Sender<Json>),
    Rows(Filter, oneshot::Sender<Vec<Json>>),
    Whois(String, String, oneshot::Sender<Json>),
}

impl Driver {
    pub(super) fn new(
        pipeline: Pipeline,
        options: EngineOptions,
        actions: Option<ActionSink>,
        acting: bool,
        data: Option<crate::durable::Journal>,
        pressure: Arc<Pressure>,
        health: Arc<cluster::Shared>,
    ) -> Self {
        let follower = options
            .cluster
            .as_ref()
            .filter(|c| c.process != 0)
            .map(|c| Follower::new(c.process));
        // Only process 0 moves the rules' clock.
        let next_tick = options
            .wall_ticks
            .filter(|_| acting && follower.is_none())
            .map(|_| Instant::now());
        Driver {
            pressure,
            health,
            follower,
            rejoin: None,
            accepted_at_checkpoint: pipeline.counts().accepted,
            prune_after: None,
            data,
            stopping: None,
            outcomes: BTreeMap::new(),
            actions,
            actions_clock: None,
            next_tick,
            pipeline,
            options,
            unsent: Vec::new(),
            pending_since: None,
            waiting: Vec::new(),
            in_flight: Default::default(),
            rounds: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
        }
    }

    pub(super) fn run(mut self, rx: mpsc::Receiver<Command>) {
        loop {
            if !self.serve(&rx) {
                break;
            }
            // The dataflow stopped without being asked: a process of the cluster was lost.
            // This process builds it again and waits for that one to start again, when it can.
            if self.stopping.is_some() || !self.rebuild(&rx) {
                break;
            }
        }
        self.flush();
        self.close();
        // The stop is answered at once, unless the dataflow's profile is to be printed: that
        // comes as its workers end, so the process waits for them.
        let asked = self.stopping.is_some();
        let mut reply = self.stopping.take();
        if std::env::var_os("TIDEMARK_PROFILE").is_none() {
            if let Some(r) = reply.take() {
                let _ = r.send(());
            }
        }
        // A stop that stands after a lost process has said why already.
        let said = matches!(self.health.get(), Health::Lost(_));
        let result = self.pipeline.finish();
        if !asked && !said {
            self.health.set(Health::Lost(lost(&self.options, result.err())));
        }
        if let Some(r) = reply {
            let _ = r.send(());
        }
    }

    /// Serves requests until the dataflow stops (`true`), or until asked to stop or every
    /// handle is dropped (`false`).
    fn serve(&mut self, rx: &mpsc::Receiver<Command>) -> bool {
        loop {
            let mut timeout = if !self.in_flight.is_empty() {
                Duration::from_micros(250)
            } else if let Some(since) = self.pending_since {
                self.options.max_delay.saturating_sub(since.elapsed())
            } else {
                Duration::from_millis(100)
            };
            if let Some(at) = self.next_tick {
                timeout = timeout.min(at.saturating_duration_since(Instant::now()));
            }
            match rx.recv_timeout(timeout) {
                Ok(c) => {
                    self.handle(c);
                    // Take what else is queued, up to a bound, before deciding to flush.
                    for _ in 0..1024 {
                        match rx.try_recv() {
                            Ok(c) => self.handle(c),
                            Err(_) => {
                                self.pressure.set_queued(Duration::ZERO);
                                break;
                            }
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.pressure.set_queued(Duration::ZERO),
                Err(RecvTimeoutError::Disconnected) => return false,
            }
            if self.rejoining().is_some() {
                self.note_rejoin_lag();
                self.rejoin_when_up();
                if self.stopping.is_some() {
                    return false;
                }
                if self.pipeline.engine_ended() {
                    return true;
                }
                continue;
            }
            self.pipeline.poll();
            self.settle();
            self.tick();
            let idle = self.in_flight.is_empty();
            let overdue = self
                .pending_since
                .is_some_and(|t| t.elapsed() >= self.options.max_delay);
            if self.pending_since.is_some() && (idle || overdue) {
                self.flush();
            }
            self.keep();
            self.note_lag();
            if self.health.get() == Health::Waiting && self.serving() {
                self.announce();
                self.health.set(Health::Up);
            }
            if self.stopping.is_some() {
                return false;
            }
            if self.pipeline.stopped() {
                // Requests get `Stopped` from here on rather than answers that never change.
                return true;
            }
        }
    }

    /// Notes for the sources when the oldest event not yet in the rows was accepted: the
    /// oldest batch in flight, else the pending batch; on a follower, the oldest request
    /// relayed to process 0 and not yet answered.
    fn note_lag(&self) {
        let oldest = self.in_flight.front().map(|(_, at)| *at);
        let relayed = self.follower.as_ref().and_then(|f| f.oldest());
        let oldest = [oldest.or(self.pending_since), relayed].into_iter().flatten().min();
        self.pressure.set_oldest(oldest);
    }

    pub(super) fn handle(&mut self, command: Command) {
        if let Some(why) = self.rejoining() {
            let why = why.to_string();
            return self.refuse(command, &why);
        }
        match command {
            Command::Ingest(source, events, handed, reply) => {
                self.pressure.set_queued(handed.elapsed());
                if let Some(follower) = self.follower.as_mut() {
                    let events = match events {
                        Events::List(list) => list.into_iter().map(|e| e.to_vec()).collect(),
                        Events::Body(body, format) => {
                            let mut list = Vec::new();
                            for_each(&body, format, |e: EventBytes| list.push(e.to_vec()));
                            list
                        }
                    };
                    // Unsent (the dataflow stopped): the reply is dropped, the caller told so.
                    let _ = self.pipeline.relay(follower.ask(source, events, reply));
                    return;
                }
                self.ingest(source, events, IngestReply::Here(reply));
            }
            Command::Relayed(message) => match message.body {
                crate::engine::RelayBody::Answer(body) => {
                    if let Some(f) = self.follower.as_mut() {
                        f.answer(message.seq, &body);
                    }
                }
                crate::engine::RelayBody::Ingest { source, events } => {
                    let Some(relay) = self.pipeline.relay_sender() else { return };
                    let reply = IngestReply::There {
                        to: message.from,
                        seq: message.seq,
                        relay,
                    };
                    let events = events.into_iter().map(EventBytes::from).collect();
                    self.ingest(cluster::source_named(&source), Events::List(events), reply);
                }
                crate::engine::RelayBody::Part { .. } => {
                    tracing::warn!(
                        "process {} sent a part of a log, as `compute` does: every process of a cluster must run `serve`",
                        message.from
                    );
                }
            },
            Command::Subscribe(filter, reply) => {
                let _ = reply.send(self.pipeline.subscribe(filter));
            }
            Command::Snapshot(reply) => {
                let t = self.reflect_point();
                self.waiting.push((t, Waiter::Snapshot(reply)));
            }
            Command::Rows(filter, reply) => {
                let t = self.reflect_point();
                self.waiting.push((t, Waiter::Rows(filter, reply)));
            }
            Command::Whois(kind, value, reply) => {
                let value = self.stored(&kind, value);
                let t = self.flush();
                self.waiting.push((t, Waiter::Whois(kind, value, reply)));
            }
            Command::Explain(rule, key, reply) => {
                let p = &self.pipeline;
                let _ = reply.send(crate::output::explain::explain_json(
                    &p.plan,
                    &p.dict,
                    p.output(),
                    p.reflected_now(),
                    &rule,
                    &key,
                ));
            }
            Command::Alerts(reply) => {
                let p = &self.pipeline;
                let _ = reply.send(crate::output::actions::alert_states_json(
                    &p.plan,
                    p.output(),
                ));
            }
            Command::Shutdown(reply) => {
                self.stopping = Some(reply);
            }
            Command::Erase(kind, value, reply) => {
                let value = self.stored(&kind, value);
                self.erase(&kind, &value, reply)
            }
            Command::Status(reply) => {
                let out = self.pipeline.output();
                self.note_lag();
                let lag_ms = self.pressure.lag_ms();
                let _ = reply.send(Status {
                    pushed_back: self.pressure.pushed_back_total(),
                    held_back_ms: self.pressure.held_back_ms_total(),
                    relayed_waiting: self.follower.as_ref().map(|f| f.waiting()),
                    counts: match self.follower {
                        None => self.pipeline.counts().clone(),
                        Some(_) => self.pipeline.reflected_counts().clone(),
                    },
                    hub: out.hub.stats(),
                    progress: self.pipeline.progress(),
                    lag_ms,
                    rows: out.table.current().len(),
                    rounds: self.rounds.clone(),
                    batches: self.pipeline.batches(),
                    alerts: self
                        .pipeline
                        .plan
                        .config
                        .alerts
                        .iter()
                        .enumerate()
                        .map(|(i, a)| {
                            let state = match out.alert_status.current().get(&crate::plan::id(i)) {
                                None => -1,
                                Some(s) => s.firing as i64,
                            };
                            (a.name.clone(), state)
                        })
                        .collect(),
                    dead_letter_dropped: self
                        .options
                        .dead_letters
                        .as_ref()
                        .map_or(0, DeadLetters::dropped),
                    durable: self.data.as_ref().map(|d| d.status()),
                });
            }
        }
    }

    /// Offers the events of one request (this process's, or one relayed to process 0) and
    /// answers it once they are in a batch (and, with a data directory, durable).
    fn ingest(&mut self, source: Source, events: Events, reply: IngestReply) {
        let mut report = IngestReport::default();
        if let Some(why) = self.data.as_ref().and_then(|d| d.failing()) {
            report.failed = Some(why);
            reply.send(report);
            return;
        }
        let mut index = 0;
        let mut offer = |e: EventBytes| {
            self.offer(source, index, &e, &mut report);
            index += 1;
        };
        match events {
            Events::List(list) => list.into_iter().for_each(&mut offer),
            Events::Body(body, format) => for_each(&body, format, offer),
        }
        if self.options.cluster.is_some() && report.duplicates + report.rejected > 0 {
            // The other processes learn the counts of duplicates and rejections with a batch.
            self.pending_since.get_or_insert_with(Instant::now);
        }
        if self.pending_since.is_none() {
            // Nothing waits for a batch: the rows already reflect what these events
            // changed (nothing, or batches already sent).
            report.time = self.pipeline.sent();
            match self.data.as_mut() {
                // Duplicates and rejections are logged too, so that their counts
                // survive; the answer waits for them and for every earlier record.
                Some(journal) => {
                    log_outcomes(journal, &mut self.outcomes);
                    journal.commit(vec![answer(report, reply)]);
                }
                None => reply.send(report),
            }
        } else {
            self.unsent.push((report, reply));
        }
    }

    /// An identity value as ingest keeps it: hashed with `serve.hash_identities`.
    fn stored(&self, kind: &str, value: String) -> String {
        match &self.options.identity_key {
            Some(key) => key.hash(kind, &value),
            None => value,
        }
    }

    /// Offers one event of a request: counts its outcome in `report`, lists it there while
    /// there is room, and keeps it in the dead-letter file when it is rejected. With
    /// `serve.hash_identities` the event's identity values are hashed first, so that only the
    /// hashes are logged, kept and shown (an input that is not JSON is kept as its reason only).
    fn offer(&mut self, source: Source, i: usize, e: &[u8], report: &mut IngestReport) {
        let hashed;
        let e = match &self.options.identity_key {
            None => e,
            Some(key) => {
                hashed = key.rewrite(e);
                hashed
                    .as_deref()
                    .unwrap_or(b"(withheld: serve.hash_identities)")
            }
        };
        let before = self.pipeline.sent();
        let outcome = self.pipeline.offer_bytes(e);
        if let Some(data) = self.data.as_mut() {
            use crate::durable::kind;
            match &outcome {
                Outcome::Accepted => data.append(kind::EVENT, e),
                // Counted here and logged as one record per reason with the batch: a flood of
                // bad or repeated events costs the log a few bytes, not a record each.
                Outcome::Duplicate => *self.outcomes.entry("duplicate").or_insert(0) += 1,
                Outcome::Rejected(r) => *self.outcomes.entry(r.reason.as_str()).or_insert(0) += 1,
            }
        }
        match &outcome {
            Outcome::Accepted => {
                report.accepted += 1;
                self.pending_since.get_or_insert_with(Instant::now);
            }
            Outcome::Duplicate => report.duplicates += 1,
            Outcome::Rejected(r) => {
                report.rejected += 1;
                if let Some(letters) = &self.options.dead_letters {
                    letters.keep(source, i as u64, r, e, crate::pipeline::now_ms());
                }
            }
        }
        if outcome != Outcome::Accepted {
            if report.issues.len() < self.options.max_issues {
                report.issues.push((i, outcome));
            } else {
                report.issues_truncated += 1;
            }
        }
        // A full batch goes to the dataflow from within `offer`.
        if self.pipeline.sent() != before {
            self.taken(before);
        }
    }

    /// Erases a person (see `Engine::erase`): the retractions go out as one batch; with a data
    /// directory, the erasure is logged and a checkpoint replaces the whole log at once.
    fn erase(&mut self, kind: &str, value: &str, reply: oneshot::Sender<Erasure>) {
        let before = self.pipeline.sent();
        // Firings already sent stay in the campaign rows; the delivery log forgets their ids.
        let firings = self.pipeline.firings_of(kind, value);
        let sent: Vec<_> = firings
            .iter()
            .map(|f| (f.rule, f.release, f.group, f.converted))
            .collect();
        let action_ids = firings
            .iter()
            .map(|f| crate::output::actions::firing_id(&self.pipeline.plan, f))
            .collect();
        let erased = self
            .pipeline
            .erase(kind, value, sent.clone())
            .map(|erased| ErasedPerson { erased, action_ids });
        self.taken(before);
        self.settle();
        let (Some(erased), Some(journal)) = (erased.clone(), self.data.as_mut()) else {
            let _ = reply.send(Ok(erased));
            return;
        };
        let record = crate::durable::ErasureRecord {
            kind: kind.to_string(),
            value: value.to_string(),
            sent,
        };
        let record = serde_json::to_vec(&record).expect("an erasure record serialises");
        journal.append(crate::durable::kind::ERASE, &record);
        match self.pipeline.state() {
            Ok(state) => {
                self.accepted_at_checkpoint = state.accepted();
                if let Some(journal) = self.data.as_mut() {
                    journal.scrub(
                        state,
                        Box::new(move |why: Option<&str>| {
                            let _ = reply.send(match why {
                                None => Ok(Some(erased)),
                                Some(why) => Err(EraseError::NotWritten(why.to_string())),
                            });
                        }),
                    );
                }
            }
            Err(e) => {
                let _ = reply.send(Err(EraseError::NoCheckpoint(e)));
            }
        }
    }

    /// Current rows passing `filter`, as OUTPUT.md rows, in the snapshot's order.
    fn rows(&self, filter: &Filter) -> Vec<Json> {
        let labeler = Labeler {
            plan: &self.pipeline.plan,
            dict: &self.pipeline.dict,
        };
        let current = self.pipeline.output().table.current();
        let wanted = current.iter().filter(|(k, _)| filter.wants(k.0.name()));
        crate::output::sorted_rows(&labeler, wanted)
            .into_iter()
            .filter(|row| filter.matches(row["metric"].as_str().unwrap_or(""), &row["dims"]))
            .collect()
    }

    /// The time at which everything accepted so far is reflected; on a follower, everything
    /// process 0 answered this process's requests for.
    fn reflect_point(&mut self) -> Time {
        let t = self.flush();
        t.max(self.follower.as_ref().map_or(0, |f| f.answered))
    }

    /// Sends the pending batch, answers the ingest requests in it; returns the time at which
    /// everything accepted so far is reflected.
    pub(super) fn flush(&mut self) -> Time {
        let before = self.pipeline.sent();
        let t = self.pipeline.flush();
        self.taken(before);
        self.settle();
        t
    }

    /// Everything accepted so far has left the pipeline (by `flush`, or because a batch filled
    /// up): notes the batch sent since time `before`, if any (a batch whose events changed no
    /// fact is not sent), as in flight since its oldest event was accepted, and answers the
    /// waiting ingest requests.
    fn taken(&mut self, before: Time) {
        let t = self.pipeline.sent();
        if t != before {
            let since = self.pending_since.unwrap_or_else(Instant::now);
            self.in_flight.push_back((t, since));
        }
        self.pending_since = None;
        // With a data directory, answers go out once their events are durable (one fsync for
        // all of them, on the log's writer thread).
        if let Some(journal) = self.data.as_mut() {
            let replies = self
                .unsent
                .drain(..)
                .map(|(mut report, reply)| {
                    report.time = t;
                    answer(report, reply)
                })
                .collect();
            log_outcomes(journal, &mut self.outcomes);
            journal.commit(replies);
            return;
        }
        for (mut report, reply) in self.unsent.drain(..) {
            report.time = t;
            reply.send(report);
        }
    }

    /// Moves the rules' clock to the wall clock when it is time, so that deadlines fire and
    /// alert buckets complete while no events arrive.
    fn tick(&mut self) {
        let (Some(at), Some(every)) = (self.next_tick, self.options.wall_ticks) else {
            return;
        };
        if Instant::now() < at {
            return;
        }
        self.next_tick = Some(Instant::now() + every);
        let wall = crate::pipeline::now_ms() as i64;
        if self.pipeline.advance_now(wall) && self.pending_since.is_none() {
            self.flush();
        }
    }

    /// Forgets the batches and requests of a dataflow that stopped: requests waiting for its
    /// progress are dropped (answered as stopped), and its action messages are done with.
    pub(super) fn forget_rounds(&mut self) {
        self.waiting.clear();
        self.in_flight.clear();
        self.pending_since = None;
        self.actions_clock = None;
        self.prune_after = None;
    }

    /// Hands the firing and alert changes of completed times to the actions.
    fn forward_actions(&mut self) {
        let Some(sink) = &self.actions else { return };
        let events = self
            .pipeline
            .take_actions(self.actions_clock, sink.wants_untargeted());
        self.actions_clock = self.pipeline.reflected_now();
        sink.send(events);
    }

    /// Records finished rounds and answers requests whose time has come.
    fn settle(&mut self) {
        self.forward_actions();
        let progress = self.pipeline.progress();
        while let Some(&(t, at)) = self.in_flight.front() {
            if t > progress {
                break;
            }
            let _ = self.rounds.record(crate::time::micros(at.elapsed()).max(1));
            self.in_flight.pop_front();
        }
        if self.waiting.iter().all(|(t, _)| *t > progress) {
            return;
        }
        let (ready, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|(t, _)| *t <= progress);
        self.waiting = rest;
        for (_, w) in ready {
            match w {
                Waiter::Snapshot(reply) => {
                    let _ = reply.send(self.pipeline.snapshot());
                }
                Waiter::Rows(filter, reply) => {
                    let _ = reply.send(self.rows(&filter));
                }
                Waiter::Whois(kind, value, reply) => {
                    let _ = reply.send(self.pipeline.whois(&kind, &value));
                }
            }
        }
    }
}

/// Why the dataflow stopped without being asked, as `/healthz` says it (and the log).
pub(super) fn lost(options: &EngineOptions, error: Option<crate::engine::DataflowError>) -> String {
    use crate::engine::DataflowError;
    let why = match error {
        Some(DataflowError::Cluster(why)) => {
            tracing::error!("{why}");
            return why;
        }
        Some(e) => e.to_string(),
        None => "its input ended".to_string(),
    };
    let why = match options.cluster.is_some() {
        // Every other process of a cluster builds its dataflow again (`rebuild`); process 0
        // cannot without a data directory to read back.
        true => format!("a process of the cluster was lost or stopped, so the dataflow stopped ({why}); process 0 keeps no data directory (serve.wal = false), so it cannot build the dataflow again with what it had: restart every process (the cluster starts empty)"),
        false => format!("the dataflow stopped: {why}"),
    };
    tracing::error!("{why}");
    why
}

/// Appends the counted duplicates and rejections to the log, one record per reason
/// (`reason<TAB>count`).
fn log_outcomes(journal: &mut crate::durable::Journal, outcomes: &mut BTreeMap<&'static str, u64>) {
    for (reason, n) in std::mem::take(outcomes) {
        journal.append(
            crate::durable::kind::OUTCOME,
            format!("{reason}\t{n}").as_bytes(),
        );
    }
}

/// An ingest answer that waits for the log: sent with `failed` set when its events could not
/// be made durable.
fn answer(mut report: IngestReport, reply: IngestReply) -> crate::durable::Reply {
    Box::new(move |why: Option<&str>| {
        report.failed = why.map(String::from);
        reply.send(report);
    })
}
