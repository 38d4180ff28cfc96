//! The engine driven on the caller's thread: lines in, batches to the dataflow, rows and
//! identities out. `tidemark compute` reads a whole log through it.

mod finished;
mod parts;
mod rounds;

pub use finished::Finished;
pub use parts::{Part, Parts, PartsError, PART_LINES};

use std::collections::VecDeque;
use std::sync::Arc;

use crate::dataflow::Time;
use crate::engine::{Dataflow, DataflowOptions};
use crate::facts::Ident;
use crate::ingest::{bad_encoding, Counts, Dictionary, Ingest, Outcome};
use crate::metric::Labeler;
use crate::output::{Filter, Hub, Output};
pub use crate::engine::DataflowError;
use crate::plan::Plan;

/// How a [`Pipeline`] runs.
#[derive(Clone, Debug)]
pub struct PipelineOptions {
    /// Dataflow worker threads (at least 1).
    pub workers: usize,
    /// Keep the person of every identity and their first event, for [`Pipeline::whois`] and
    /// for the identities that firings name.
    pub track_identities: bool,
    /// Keep every rule trigger's verdict, for [`Finished::explain`].
    pub track_verdicts: bool,
    /// Accepted events per batch sent to the dataflow, at least: while the dataflow is still
    /// busy with earlier batches, a batch keeps growing, up to 16 times this.
    pub batch_events: usize,
    /// Stamp batches with wall-clock milliseconds (live use) instead of 1, 2, 3...
    pub wall_clock: bool,
    /// Rounds the dataflow may work on at once. Batches cut while that many are open wait,
    /// and go together as one round once one completes. `None`: each batch goes when cut.
    pub in_flight: Option<usize>,
}

impl Default for PipelineOptions {
    /// One worker, nothing tracked beyond the rows, batches of 100,000 events.
    fn default() -> Self {
        PipelineOptions {
            workers: 1,
            track_identities: false,
            track_verdicts: false,
            batch_events: 100_000,
            wall_clock: false,
            in_flight: None,
        }
    }
}

/// The engine on the caller's thread: offer events one by one, then [`finish`](Self::finish)
/// for the final rows. Batches go to the dataflow workers as they fill; [`sync`](Self::sync)
/// waits until the rows reflect everything offered.
///
/// ```
/// use tidemark::{config::Config, Outcome, Pipeline, PipelineOptions};
///
/// let mut pipeline = Pipeline::new(Config::from_toml("").unwrap(), PipelineOptions::default()).unwrap();
/// let line = r#"{"id":"e1","ts":"2026-03-02T09:00:00Z","event":"page_view","ids":{"openid":"o-1"}}"#;
/// assert_eq!(pipeline.offer(line), Outcome::Accepted);
/// assert_eq!(pipeline.offer(line), Outcome::Duplicate);
/// assert!(matches!(pipeline.offer("{}"), Outcome::Rejected(_)));
///
/// let done = pipeline.finish().unwrap();
/// assert_eq!(done.counts().accepted, 1);
/// assert_eq!(done.snapshot()["rows"].as_array().map(Vec::len), Some(done.row_count()));
/// ```
pub struct Pipeline {
    #[doc(hidden)]
    pub plan: Arc<Plan>,
    #[doc(hidden)]
    pub dict: Arc<Dictionary>,
    ingest: Ingest,
    engine: Dataflow,
    batch_events: usize,
    in_batch: usize,
    /// Accepted events of the last batch sent.
    last_batch: usize,
    wall_clock: bool,
    /// Time of the last batch sent to the engine; the engine reports progress in these units.
    sent: Time,
    /// Batches sent to the engine.
    batches: u64,
    /// Time of the batch that brought the current seal (`ingest::retire`).
    sealed_at: Time,
    /// The engine refused a batch: it has stopped.
    stopped: bool,
    /// Ingest counts and clock as of the rows: what the snapshot reports beside them.
    reflected: (Counts, Option<i64>),
    /// The clock of rules and alerts as of the rows.
    reflected_now: Option<i64>,
    /// Counts, clock and rules' clock at each flush whose batch is not reflected yet, oldest
    /// first.
    awaiting: VecDeque<(Time, Counts, Option<i64>, Option<i64>)>,
    /// Keys of the firings that retiring rule facts takes back in the next batch.
    retiring: Vec<crate::output::FiringKey>,
    /// Batches that take firings back without cancelling them (an erasure, a retirement):
    /// those are no retractions to send. Kept until their changes are taken.
    quiet: Vec<(Time, TakeBack)>,
    /// The next batch is an erasure's: it goes in a round of its own.
    erasing: bool,
    /// Batches on their way to the engine.
    rounds: rounds::Rounds,
    state: Output,
    /// In a cluster serving at every process (process 0): channels already named in notes,
    /// and the counts and clocks last noted.
    notes: Option<Noted>,
    /// Another process of a serving cluster: it ingests nothing, and its counts and clocks
    /// come from process 0's notes.
    follower: bool,
}

/// What process 0 of a serving cluster has sent every process so far.
#[derive(Default)]
struct Noted {
    channels: usize,
    last: Option<(Counts, Option<i64>, Option<i64>)>,
}

/// How many times `batch_events` a batch may grow to while the dataflow is behind.
const BATCH_GROWTH: usize = 16;

/// Which firings a batch takes back without cancelling them.
enum TakeBack {
    /// Every one (an erasure: nothing else is in its batch).
    All,
    /// These (a retirement, in a batch that may hold other changes).
    Keys(foldhash::HashSet<crate::output::FiringKey>),
}

impl Pipeline {
    /// Starts the dataflow workers for the metrics, rules and alerts of `config`.
    pub fn new(config: crate::config::Config, options: PipelineOptions) -> std::io::Result<Self> {
        Pipeline::with_plan(Arc::new(Plan::new(config)), options)
    }

    /// Starts the dataflow workers for a plan already made.
    #[doc(hidden)]
    pub fn with_plan(plan: Arc<Plan>, options: PipelineOptions) -> std::io::Result<Self> {
        Pipeline::start_relaying(plan, options, None, false, None)
    }

    /// Starts this process's workers of a cluster that serves the rows at every process:
    /// process 0 takes every event (the others relay theirs to it through `hook`'s dataflow)
    /// and sends every process the notes that its rows stand beside.
    pub(crate) fn serving_in_cluster(
        plan: Arc<Plan>,
        options: PipelineOptions,
        cluster: crate::engine::Cluster,
        hook: crate::engine::RelayHook,
    ) -> std::io::Result<Self> {
        Pipeline::start_relaying(plan, options, Some(cluster), true, Some(hook))
    }

    fn start_relaying(
        plan: Arc<Plan>,
        options: PipelineOptions,
        cluster: Option<crate::engine::Cluster>,
        everywhere: bool,
        hook: Option<crate::engine::RelayHook>,
    ) -> std::io::Result<Self> {
        let dict = Dictionary::new();
        let process = cluster.as_ref().map(|c| c.process);
        let notes = (everywhere && process == Some(0)).then(Noted::default);
        let follower = everywhere && process.is_some_and(|p| p != 0);
        let dataflow = DataflowOptions {
            workers: options.workers.max(1),
            track_identities: options.track_identities || options.track_verdicts,
            track_verdicts: options.track_verdicts,
            cluster,
            everywhere,
            ..DataflowOptions::default()
        };
        let engine = Dataflow::start_relaying(plan.clone(), dict.clone(), dataflow, hook)?;
        Ok(Pipeline {
            notes,
            follower,
            ingest: Ingest::new(plan.clone(), dict.clone()),
            plan,
            dict,
            engine,
            batch_events: options.batch_events.max(1),
            wall_clock: options.wall_clock,
            in_batch: 0,
            last_batch: 0,
            sent: 0,
            batches: 0,
            sealed_at: 0,
            stopped: false,
            reflected: Default::default(),
            reflected_now: None,
            awaiting: VecDeque::new(),
            retiring: Vec::new(),
            quiet: Vec::new(),
            erasing: false,
            rounds: rounds::Rounds::new(options.in_flight),
            state: Output::default(),
        })
    }

    /// From now on ingest keeps a copy of the facts it sends, so that `state` can be taken
    /// (for checkpoints). Call before the first event.
    #[doc(hidden)]
    pub fn keep_facts(&mut self) {
        self.ingest.keep_facts();
    }

    /// Everything ingest holds, once what was accepted so far is sent to the dataflow, and the
    /// final rows of sealed days (it waits for the rows to reflect every batch sent).
    #[doc(hidden)]
    pub fn state(&mut self) -> Result<crate::ingest::IngestState, crate::ingest::StateError> {
        self.flush();
        // Rows sealed by the current seal are final as of the batch before the one that
        // brought it: wait for that one only (usually long done), not for every batch sent.
        self.wait_for(self.sealed_at.saturating_sub(1));
        let mut state = self.ingest.state()?;
        if let Some(seal) = state.sealed() {
            let frozen = self
                .state
                .table
                .current()
                .iter()
                .filter(|(k, _)| crate::metric::sealed(k, seal))
                .map(|(k, v)| (*k, *v))
                .collect();
            state.set_frozen(frozen);
        }
        Ok(state)
    }

    /// Carries on from a state that `state` took: ingest as it was, and the dataflow given
    /// the whole input that state stands for, as one batch. Call on a fresh pipeline.
    #[doc(hidden)]
    pub fn restore(
        &mut self,
        state: crate::ingest::IngestState,
    ) -> Result<(), crate::ingest::StateError> {
        // The pipeline's own ingest, so that its limits (future, horizon) carry on.
        let fresh = Ingest::new(self.plan.clone(), self.dict.clone());
        let (ingest, batch) = std::mem::replace(&mut self.ingest, fresh).restore(state)?;
        self.ingest = ingest;
        self.send(batch);
        self.note_sent();
        Ok(())
    }

    /// Erases the person that identity `(kind, value)` belongs to (see `ingest::erase`): sends
    /// what was pending, then the retraction of every fact of the person, as one batch, with
    /// `sent`: their firings that had been sent, which stay in the campaign rows (`serve` keeps
    /// those of `sent_firings`; a log computed whole sends none). `None` if no event named that
    /// identity. Needs `keep_facts`.
    #[doc(hidden)]
    pub fn erase(
        &mut self,
        kind: &str,
        value: &str,
        sent: Vec<crate::facts::SentFiring>,
    ) -> Option<crate::ingest::Erased> {
        self.flush();
        let erased = self.ingest.erase(kind, value)?;
        self.ingest.keep_sent(sent);
        let before = self.sent;
        self.erasing = true;
        self.flush();
        self.erasing = false;
        if self.sent != before {
            self.quiet.push((self.sent, TakeBack::All));
        }
        Some(erased)
    }

    /// The firings of the person behind `(kind, value)` whose time has come (in `serve`, those
    /// handed to their targets and shown), once the rows reflect every batch sent.
    pub(crate) fn firings_of(&mut self, kind: &str, value: &str) -> Vec<crate::dataflow::Firing> {
        self.flush();
        let Some(person) = self.ingest.person(kind, value) else {
            return Vec::new();
        };
        self.wait_for(self.sent);
        let mut firings: Vec<_> = self
            .state
            .firings
            .current()
            .values()
            .filter(|f| person.contains(&f.person))
            .cloned()
            .collect();
        firings.sort_unstable_by_key(|f| (f.rule, f.release, f.key.clone()));
        firings
    }

    /// Live use: rejects events stamped more than `max_future_ms` after the wall clock as
    /// `future_timestamp`, so one bad clock cannot move `now` (compute keeps the log's clock).
    pub(crate) fn reject_future(&mut self, max_future_ms: i64) {
        self.ingest.reject_future(max_future_ms);
    }

    /// Live use: rejects events stamped earlier than the event clock minus `horizon_ms` as
    /// `beyond_horizon`.
    #[doc(hidden)]
    pub fn reject_beyond(&mut self, horizon_ms: i64) {
        self.ingest.reject_beyond(horizon_ms);
    }

    /// Counts a duplicate or rejection read back from the data directory's log.
    pub(crate) fn recount(&mut self, reason: &str, n: u64) {
        self.ingest.recount(reason, n);
    }

    /// Keeps every delta the engine completes (for tests and subscribers).
    #[doc(hidden)]
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
            // A batch holds events of one seal (`ingest::retire`).
            let cut = self.ingest.wants_cut();
            if cut || self.in_batch >= self.batch_events && self.batch_ready() {
                self.flush();
            }
            if cut {
                self.roll_seal();
            }
        }
        outcome
    }

    /// Sends what was accepted since the last batch, and takes in what the engine reported.
    /// Returns the time at which everything accepted so far will be reflected in the rows.
    #[doc(hidden)]
    pub fn flush(&mut self) -> Time {
        self.last_batch = std::mem::take(&mut self.in_batch);
        let batch = self.ingest.take_batch();
        self.send(batch);
        self.note_sent();
        self.poll();
        self.sent
    }

    /// Whether a full batch goes now: at once when the dataflow has finished every batch sent,
    /// else once it is twice the last one (up to [`BATCH_GROWTH`] times `batch_events`). Each
    /// batch rereads the whole history of every person it touches, so while the dataflow lags,
    /// fewer and larger batches cost less (on a 4M-event log, 10 batches instead of 39 take
    /// the dataflow's time from 13.6 s to 7-9 s); while it keeps up, it never waits for input.
    fn batch_ready(&mut self) -> bool {
        let over = self.in_batch - self.batch_events;
        if self.in_batch >= self.batch_events.saturating_mul(BATCH_GROWTH) {
            return true;
        }
        if !over.is_multiple_of(4096) {
            return false;
        }
        self.poll();
        self.awaiting.is_empty() || self.in_batch >= 2 * self.last_batch
    }

    /// Moves the seal after the batch that moved the clock past it (its retirements open the
    /// next batch) and, with rules, retires the rule facts it makes final: those read the
    /// firings decided so far, so this waits until the rows reflect every batch sent (once
    /// per day of event time).
    fn roll_seal(&mut self) {
        self.ingest.roll_seal();
        let Some(bound) = self.ingest.rules_to_retire() else {
            return;
        };
        self.wait_for(self.sent);
        let decided: crate::ingest::DecidedFirings = self
            .state
            .firings
            .current()
            .iter()
            .filter(|(_, f)| f.release < bound)
            .map(|(k, f)| {
                let d = crate::ingest::Decided {
                    trigger: f.trigger.clone(),
                    release: f.release,
                    group: f.group,
                    converted: f.converted,
                };
                (k.clone(), d)
            })
            .collect();
        let taken = self.ingest.retire_rules(bound, &decided);
        self.retiring.extend(taken);
    }

    /// Sends a batch to the engine at the next time, unless it changes nothing.
    fn send(&mut self, mut batch: crate::facts::FactBatch) {
        let time = if self.wall_clock {
            now_ms().max(self.sent + 1)
        } else {
            self.sent + 1
        };
        self.note(&mut batch, time);
        if batch.is_empty() && batch.notes.is_empty() {
            return;
        }
        let seals = batch.seal.is_some();
        // Changes told apart by their batch's time come in a round of their own.
        let alone = seals || self.erasing || !self.retiring.is_empty();
        let progress = self.state.progress;
        // A send fails only when the engine has stopped; `finish` reports why.
        match self
            .rounds
            .push(&self.engine.batches, time, batch, alone, progress)
        {
            Ok(()) => {
                self.sent = time;
                self.batches += 1;
                if seals {
                    self.sealed_at = time;
                }
                if !self.retiring.is_empty() {
                    let keys = std::mem::take(&mut self.retiring).into_iter().collect();
                    self.quiet.push((time, TakeBack::Keys(keys)));
                }
            }
            Err(rounds::Stopped) => self.stopped = true,
        }
    }

    /// In a cluster serving at every process: adds to a batch at `time` the channels named
    /// since the last batch and ingest's counts and clocks, when they changed.
    fn note(&mut self, batch: &mut crate::facts::FactBatch, time: Time) {
        use crate::engine::Note;
        let Some(noted) = self.notes.as_mut() else { return };
        let named = self.dict.channel_count();
        let ids = (noted.channels.max(1)..named).filter_map(|id| u32::try_from(id).ok());
        for id in ids {
            batch.notes.push(Note::Channel(id, self.dict.channel(id)));
        }
        noted.channels = named;
        let now = (
            self.ingest.counts().clone(),
            self.ingest.clock(),
            self.ingest.now(),
        );
        if noted.last.as_ref() != Some(&now) {
            batch.notes.push(Note::reflect(time, &now.0, now.1, now.2));
            noted.last = Some(now);
        }
    }

    /// Sends the batches held for a round: when a round has completed, or with `force`
    /// when someone waits for them.
    fn release(&mut self, force: bool) {
        let progress = self.state.progress;
        if self
            .rounds
            .release(&self.engine.batches, progress, force)
            .is_err()
        {
            self.stopped = true;
        }
    }

    /// Notes that everything accepted so far is reflected once progress reaches `sent`.
    fn note_sent(&mut self) {
        if self.follower {
            return;
        }
        let now = (
            self.sent,
            self.ingest.counts().clone(),
            self.ingest.clock(),
            self.ingest.now(),
        );
        match self.awaiting.back_mut() {
            Some(last) if last.0 == now.0 => *last = now,
            _ => self.awaiting.push_back(now),
        }
    }

    /// Moves the counts of batches the rows now reflect to `reflected`.
    fn advance_reflected(&mut self) {
        while let Some((t, _, _, _)) = self.awaiting.front() {
            if *t > self.state.progress {
                break;
            }
            let (_, counts, clock, now) = self.awaiting.pop_front().expect("a front entry");
            self.reflected = (counts, clock);
            self.reflected_now = now;
        }
    }

    /// Takes in what the engine reported so far, without waiting.
    pub(crate) fn poll(&mut self) {
        let labeler = Labeler {
            plan: &self.plan,
            dict: &self.dict,
        };
        loop {
            match self.engine.updates.try_recv() {
                Ok(crate::engine::Update::Notes(notes)) => {
                    take_notes(notes, &self.dict, &mut self.awaiting)
                }
                Ok(update) => self.state.absorb(update, &labeler),
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                // The workers ended without being asked (in a cluster: a process was lost).
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    self.stopped = true;
                    break;
                }
            }
        }
        self.release(false);
        self.advance_reflected();
        // Only action messages tell quiet take-backs from retractions (`take_actions`);
        // without them, a batch's are done with once it is complete.
        if !self.state.keeps_actions() {
            let done = self.state.progress;
            self.quiet.retain(|(t, _)| *t > done);
        }
    }

    /// Moves the clock of rules and alerts to at least `ms` (never back); true when it moved,
    /// so that the next `flush` sends it.
    pub(crate) fn advance_now(&mut self, ms: i64) -> bool {
        let before = self.ingest.now();
        self.ingest.advance_now(ms);
        self.ingest.now() != before
    }

    /// The clock of rules and alerts as of the rows.
    pub(crate) fn reflected_now(&self) -> Option<i64> {
        self.reflected_now
    }

    /// Keeps firing and alert changes for `take_actions` from now on.
    pub(crate) fn keep_actions(&mut self) {
        self.state.keep_actions();
    }

    /// The firing and alert changes completed since the last call, as action messages.
    /// `before` is the rules' clock as of the previous call.
    pub(crate) fn take_actions(
        &mut self,
        before: Option<i64>,
        untargeted: bool,
    ) -> Vec<crate::output::actions::ActionEvent> {
        let mut changes = self.state.take_actions();
        // An erasure, or retiring final rule facts, takes firings back without cancelling
        // them: nothing to retract.
        let quiet = &self.quiet;
        changes.firings.retain(|c| {
            c.value.is_some()
                || !quiet.iter().any(|(t, b)| {
                    *t == c.time
                        && match b {
                            TakeBack::All => true,
                            TakeBack::Keys(keys) => keys.contains(&c.key),
                        }
                })
        });
        let done = self.state.progress;
        self.quiet.retain(|(t, _)| *t > done);
        if changes.firings.is_empty() && changes.transitions.is_empty() {
            return Vec::new();
        }
        crate::output::actions::action_events(
            &self.plan,
            &self.dict,
            &self.state,
            changes,
            before,
            untargeted,
        )
    }

    /// Batches sent to the dataflow so far, whoever asked for them.
    pub(crate) fn batches(&self) -> u64 {
        self.batches
    }

    /// True once the dataflow has stopped taking batches (`finish` says why).
    pub(crate) fn stopped(&self) -> bool {
        self.stopped
    }

    /// The time of the last batch sent to the dataflow (0 before any).
    pub(crate) fn sent(&self) -> Time {
        self.sent
    }


    /// The time up to which every change has been reported.
    pub(crate) fn progress(&self) -> Time {
        self.state.progress
    }

    /// Sends a message to another process of the cluster (`serving_in_cluster` only).
    pub(crate) fn relay(&self, message: crate::engine::Relayed) -> bool {
        self.engine
            .relay
            .as_ref()
            .is_some_and(|r| r.send(message).is_ok())
    }

    /// Where messages to other processes of the cluster go (`serving_in_cluster` only).
    pub(crate) fn relay_sender(&self) -> Option<std::sync::mpsc::Sender<crate::engine::Relayed>> {
        self.engine.relay.clone()
    }

    /// Whether the dataflow's workers have ended before being asked to (in a cluster: a
    /// process was lost).
    pub(crate) fn engine_ended(&self) -> bool {
        self.engine.ended()
    }

    /// Why the dataflow's workers ended without being asked (waits for their thread, which
    /// is ending once `stopped` or `engine_ended`); `None` when asked before.
    pub(crate) fn ended_with(&mut self) -> Option<Result<(), DataflowError>> {
        self.engine.ended_with()
    }

    /// Whether the dataflow's workers run (in a cluster: every process is connected).
    pub(crate) fn up(&self) -> bool {
        self.engine.up.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Ingest counts as of the rows (on another process of a serving cluster, as process 0
    /// noted them).
    pub(crate) fn reflected_counts(&self) -> &Counts {
        &self.reflected.0
    }

    /// Ingest counts so far.
    pub fn counts(&self) -> &Counts {
        self.ingest.counts()
    }

    /// The output state so far.
    pub(crate) fn output(&self) -> &Output {
        &self.state
    }

    /// Every identity of the person behind `kind:value` (needs `track_identities`).
    pub fn whois(&mut self, kind: &str, value: &str) -> serde_json::Value {
        whois_json(
            &self.plan,
            &self.dict,
            &mut self.ingest,
            &self.state,
            kind,
            value,
        )
    }

    /// Uses `hub` for subscribers from now on (its queue size and slow-subscriber policy).
    pub(crate) fn set_hub(&mut self, hub: Hub) {
        self.state.hub = hub;
    }

    /// The snapshot document of the rows so far (as of `progress()`), with the event counts
    /// and clock of the events those rows reflect (not of events accepted since).
    pub fn snapshot(&self) -> serde_json::Value {
        snapshot_of(
            &self.plan,
            &self.dict,
            &self.reflected.0,
            self.reflected.1,
            &self.state,
        )
    }

    /// Flushes and waits until every batch sent so far is reflected in the rows.
    pub fn sync(&mut self) {
        self.flush();
        self.wait_for(self.sent);
    }

    /// Waits until the rows reflect every batch up to time `t`.
    fn wait_for(&mut self, t: Time) {
        // Batches held for a round go now if someone waits for them (release is a no-op when
        // none are held).
        if self.state.progress < t {
            self.release(true);
        }
        let labeler = Labeler {
            plan: &self.plan,
            dict: &self.dict,
        };
        while self.state.progress < t.min(self.sent) {
            match self.engine.updates.recv() {
                Ok(update) => self.state.absorb(update, &labeler),
                Err(_) => break,
            }
        }
        self.advance_reflected();
    }

    /// Subscribes to row changes: current rows first, then upserts and progress marks.
    pub fn subscribe(&mut self, filter: Filter) -> crate::output::Subscription {
        let labeler = Labeler {
            plan: &self.plan,
            dict: &self.dict,
        };
        let state = &mut self.state;
        let rx = state.hub.subscribe(
            filter,
            state.table.current().iter(),
            state.progress,
            &labeler,
        );
        crate::output::Subscription::new(rx)
    }

    /// Reads back the data directory of `tidemark serve` at `dir` (stop the server first):
    /// its checkpoint, then its log after it, with `serve.horizon` as `serve` kept it. Call on
    /// a fresh pipeline, before any event.
    pub fn read_data_dir(&mut self, dir: &std::path::Path) -> Result<ReadBack, crate::durable::DurableError> {
        self.reject_beyond(self.plan.config.serve.horizon_ms);
        let mut data = crate::durable::DataDir::open(dir, &self.plan.config)?;
        let r = crate::durable::recover(self, &mut data)?;
        Ok(ReadBack {
            checkpoint_events: r.checkpoint_events,
            records: r.records,
        })
    }

    /// Ends the input, waits for the engine and returns the final state.
    pub fn finish(mut self) -> Result<Finished, crate::engine::DataflowError> {
        self.flush();
        self.release(true);
        let updates = self.engine.finish()?;
        let labeler = Labeler {
            plan: &self.plan,
            dict: &self.dict,
        };
        for update in updates.try_iter() {
            match update {
                crate::engine::Update::Notes(notes) => {
                    take_notes(notes, &self.dict, &mut self.awaiting)
                }
                update => self.state.absorb(update, &labeler),
            }
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

/// Takes in process 0's notes on another process of a serving cluster: channel names into
/// the dictionary, counts and clocks to reflect once the rows reach their time.
fn take_notes(
    notes: Vec<crate::engine::Note>,
    dict: &Dictionary,
    awaiting: &mut VecDeque<(Time, Counts, Option<i64>, Option<i64>)>,
) {
    use crate::engine::Note;
    for note in notes {
        match note {
            Note::Channel(id, name) => dict.name_channel(id, &name),
            Note::Reflect {
                at,
                accepted,
                duplicates,
                rejected,
                clock,
                now,
            } => awaiting.push_back((
                at,
                crate::engine::counts_of(accepted, duplicates, &rejected),
                clock,
                now,
            )),
        }
    }
}

/// What [`Pipeline::read_data_dir`] read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadBack {
    /// Events the checkpoint stood for.
    pub checkpoint_events: u64,
    /// Records read from the log after the checkpoint.
    pub records: u64,
}

fn snapshot_of(
    plan: &Plan,
    dict: &Dictionary,
    counts: &Counts,
    clock: Option<i64>,
    output: &Output,
) -> serde_json::Value {
    let guarded: Vec<(Ident, u32)> = output.guarded.iter().map(|(a, b)| (*a, *b)).collect();
    let meta = crate::output::SnapshotMeta {
        plan,
        dict,
        counts,
        clock,
        guarded: &guarded,
        transitions: output.transitions.current().values().collect(),
    };
    crate::output::snapshot_json(&meta, output.table.current().iter())
}

/// Every identity of the person behind `kind:value`, with first-seen time, day and channel;
/// `found: false` when ingest never saw it.
pub(crate) fn whois_json(
    plan: &Plan,
    dict: &Dictionary,
    ingest: &mut Ingest,
    output: &Output,
    kind: &str,
    value: &str,
) -> serde_json::Value {
    use serde_json::json;
    let Some(ident) = ingest.lookup(kind, value) else {
        return json!({"identity": {"type": kind, "value": value}, "found": false});
    };
    let index = &output.identities;
    let person = index.person(ident).unwrap_or(ident);
    let members: Vec<_> = index
        .members(person)
        .into_iter()
        .filter_map(|i| dict.ident(i))
        .map(|(t, v)| json!({"type": t, "value": v}))
        .collect();
    let first = index.first(person);
    let cal = &plan.config.calendar;
    json!({
        "identity": {"type": kind, "value": value},
        "found": true,
        "identities": members,
        "first_seen": first.map(|f| cal.format_instant(f.ts)),
        "first_seen_day": first.map(|f| crate::time::day_label(cal.day(f.ts))),
        "channel": first.map(|f| dict.channel(f.channel)),
    })
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> Time {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, crate::time::millis)
}
