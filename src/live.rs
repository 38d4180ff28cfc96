//! The live service: one thread owns the pipeline; HTTP, MQTT and the demo talk to it through a
//! cloneable handle of async requests.

use std::collections::BTreeMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value as Json};
use tokio::sync::oneshot;

use crate::config::SlowSubscriber;
use crate::dataflow::Time;
use crate::event::batch::{for_each, Format};
use crate::event::DeadLetters;
use crate::ingest::{Counts, Outcome};
use crate::io::actions::ActionSink;
use crate::metric::Labeler;
use crate::output::{Filter, Hub, HubStats};
use crate::pipeline::{Pipeline, PipelineOptions};
use crate::plan::Plan;

mod builder;
mod cluster;
mod pressure;
mod upkeep;
pub use builder::EngineBuilder;
pub use cluster::Health;
use cluster::{Follower, IngestReply};
pub use pressure::Pressure;

/// How the live service batches and serves subscribers.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Pipeline options; `batch_events` is the largest batch.
    pub pipeline: PipelineOptions,
    /// Longest an accepted event waits for its batch while the dataflow is busy.
    pub max_delay: Duration,
    pub subscriber_queue: usize,
    pub on_slow_subscriber: SlowSubscriber,
    /// Move the rules' clock with the wall clock (and how often), when rules or alerts exist.
    pub wall_ticks: Option<Duration>,
    /// Issues an ingest answer lists at most; the rest are only counted.
    pub max_issues: usize,
    /// Events stamped more than this many milliseconds after the wall clock are rejected.
    pub max_future_ms: Option<i64>,
    /// Where rejected inputs are kept, if anywhere.
    pub dead_letters: Option<DeadLetters>,
    /// Events stamped earlier than the event clock minus this are rejected as `beyond_horizon`.
    pub horizon_ms: Option<i64>,
    /// Accepted events between checkpoints of the data directory.
    pub checkpoint_every: u64,
    /// With `serve.hash_identities`: identity values are hashed under this key before ingest
    /// sees them, and look-ups hash the value asked for.
    pub identity_key: Option<crate::event::pseudonym::IdentityKey>,
    /// Sources push back while the engine is further behind than this (`serve.max_lag`).
    pub max_lag_ms: Option<u64>,
    /// Run as one process of a cluster that serves the rows at every process.
    pub cluster: Option<crate::engine::Cluster>,
}

impl EngineOptions {
    /// Options from the `[serve]` section of a configuration.
    pub fn from_config(serve: &crate::config::Serve, workers: usize) -> Self {
        EngineOptions {
            pipeline: PipelineOptions {
                workers,
                track_identities: true,
                track_verdicts: true,
                batch_events: serve.batch_max_events,
                wall_clock: true,
                in_flight: Some(IN_FLIGHT),
            },
            max_delay: Duration::from_millis(serve.batch_max_delay_ms),
            subscriber_queue: serve.subscriber_queue,
            on_slow_subscriber: serve.on_slow_subscriber,
            wall_ticks: (serve.clock == crate::config::ClockMode::Wall).then_some(WALL_TICK),
            max_issues: serve.max_issues,
            max_future_ms: Some(serve.max_future_ms),
            dead_letters: None,
            horizon_ms: Some(serve.horizon_ms),
            checkpoint_every: serve.checkpoint_every,
            identity_key: None,
            max_lag_ms: serve.max_lag_ms,
            cluster: None,
        }
    }
}

/// Rounds the dataflow works on at once in `serve`: batches cut meanwhile (every
/// `serve.batch_max_delay` while it is busy) wait and go together as the next round.
const IN_FLIGHT: usize = 1;

/// How often the rules' clock follows the wall clock while rules or alerts are configured.
pub const WALL_TICK: Duration = Duration::from_millis(20);

/// What happened to the events of one ingest request.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IngestReport {
    /// Events accepted.
    pub accepted: u64,
    /// Events whose id was accepted before.
    pub duplicates: u64,
    /// Events rejected (each listed in `issues`, up to `serve.max_issues`).
    pub rejected: u64,
    /// Subscribers have seen the effect of these events once they get `progress >= time`.
    pub time: Time,
    /// Index (0-based, within the request) and outcome of each event not accepted, the
    /// first `max_issues` of them.
    pub issues: Vec<(usize, Outcome)>,
    /// Events not accepted beyond those listed in `issues`.
    pub issues_truncated: u64,
    /// The events could not be made durable (the data directory cannot be written): the
    /// request must be sent again. A resend is answered once they are stored.
    pub failed: Option<String>,
}

impl IngestReport {
    /// The JSON answer: counts, time, and per-index outcomes of events not accepted.
    pub fn to_json(&self) -> Json {
        let issues: Vec<Json> = self
            .issues
            .iter()
            .map(|(i, o)| match o {
                Outcome::Duplicate => json!({"index": i, "outcome": "duplicate"}),
                Outcome::Rejected(r) => json!({
                    "index": i, "outcome": "rejected",
                    "reason": r.reason.as_str(), "detail": r.detail,
                }),
                Outcome::Accepted => json!({"index": i, "outcome": "accepted"}),
            })
            .collect();
        json!({
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "time": self.time,
            "issues": issues,
            "issues_truncated": self.issues_truncated,
        })
    }
}

/// A point-in-time view of the service's health.
#[derive(Clone, Debug)]
pub struct Status {
    /// What ingest counted.
    pub counts: Counts,
    /// Subscribers and the ones that fell behind.
    pub hub: HubStats,
    /// Every change up to this time has been sent to subscribers.
    pub progress: Time,
    /// Milliseconds the oldest event not yet reflected in the rows, or the oldest ingest
    /// request not yet taken, has waited (0 when caught up).
    pub lag_ms: u64,
    /// Ingest requests turned away (HTTP 429) because the lag was over `serve.max_lag`.
    pub pushed_back: u64,
    /// Milliseconds MQTT ingest took no messages because of `serve.max_lag`.
    pub held_back_ms: u64,
    /// Current rows.
    pub rows: usize,
    /// Round latency (oldest event of a batch accepted to its progress), microseconds.
    pub rounds: Histogram<u64>,
    /// Batches sent to the dataflow.
    pub batches: u64,
    /// Each alert and its state: 1 firing, 0 ok, -1 no data yet.
    pub alerts: Vec<(String, i64)>,
    /// Rejected inputs not kept because the dead-letter writer was behind or had failed.
    pub dead_letter_dropped: u64,
    /// The data directory's log and checkpoints, when events are kept.
    pub durable: Option<crate::durable::DurableStatus>,
}

/// One input event of a request, as raw bytes.
pub type EventBytes = bytes::Bytes;

/// Where events came from, as their dead-letter records say (`http`, `mqtt`, `demo`).
pub type Source = &'static str;

/// The events of one request: a list, or a whole body split as they are taken.
enum Events {
    List(Vec<EventBytes>),
    Body(bytes::Bytes, Format),
}

enum Command {
    /// Events, and when they were handed over.
    Ingest(Source, Events, Instant, oneshot::Sender<IngestReport>),
    /// A message from another process of the cluster.
    Relayed(crate::engine::Relayed),
    Subscribe(Filter, oneshot::Sender<crate::output::Subscription>),
    Snapshot(oneshot::Sender<Json>),
    Rows(Filter, oneshot::Sender<Vec<Json>>),
    Whois(String, String, oneshot::Sender<Json>),
    Status(oneshot::Sender<Status>),
    Explain(String, String, oneshot::Sender<Option<Json>>),
    Alerts(oneshot::Sender<Json>),
    Erase(String, String, oneshot::Sender<Erasure>),
    Shutdown(oneshot::Sender<()>),
}

/// The answer to an erasure: what it erased (`None`: no event named that identity), or why
/// the data directory does not hold it yet.
pub type Erasure = Result<Option<ErasedPerson>, EraseError>;

/// Why an erasure done in memory is not (yet) done in the data directory.
#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    /// The ingest state could not be taken for the checkpoint that replaces the log.
    #[error("the erasure is done in memory, but no checkpoint can be taken: {0}")]
    NoCheckpoint(#[source] crate::ingest::StateError),
    /// The log writer could not write that checkpoint; its reason is the text it answers
    /// every waiting request with (see `durable::Reply`).
    #[error("{0}")]
    NotWritten(String),
}

/// What an erasure took away, and the ids of the person's actions that were sent (the
/// delivery log forgets them: `Actions::forget`).
#[derive(Clone, Debug)]
pub struct ErasedPerson {
    /// What was erased.
    pub erased: crate::ingest::Erased,
    /// The ids of the person's actions that were sent.
    pub action_ids: Vec<String>,
}

impl ErasedPerson {
    /// Removes the person's action ids from the delivery log in `data_dir`, for an erasure
    /// made without the server (which does this itself).
    pub fn forget_sent_actions(&self, data_dir: &std::path::Path) -> Result<(), crate::io::actions::LogError> {
        if !data_dir.join(crate::io::actions::log::FILE).exists() {
            return Ok(());
        }
        crate::io::actions::DeliveryLog::open(data_dir)?.forget(self.action_ids.clone())
    }
}

/// The service stopped (its thread ended); requests cannot be answered.
#[derive(Debug, thiserror::Error)]
#[error("the tidemark engine has stopped")]
pub struct Stopped;

/// Why an engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The dataflow workers' threads could not be started.
    #[error("cannot start the dataflow workers: {0}")]
    Workers(#[from] std::io::Error),
    /// The data directory could not be opened or read back.
    #[error("cannot read the data directory back: {0}")]
    Data(#[from] crate::durable::DurableError),
    /// The key that hashes identities (`serve.hash_identities`) could not be read or made.
    #[error(transparent)]
    IdentityKey(#[from] crate::event::pseudonym::KeyError),
}

/// The live engine: a cloneable async handle to a thread that owns the dataflow.
///
/// Every request is answered once what it asks about reflects every event accepted before
/// it (read-your-writes). The thread ends on [`shutdown`](Self::shutdown) or when every
/// handle is dropped.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let config = tidemark::config::Config::from_toml("timezone = \"Asia/Shanghai\"").unwrap();
/// let engine = tidemark::Engine::builder(config).workers(2).start().unwrap();
/// let answer = engine.ingest(vec![b"not json".as_slice().into()]).await.unwrap();
/// assert_eq!((answer.accepted, answer.rejected), (0, 1));
/// engine.shutdown().await.unwrap();
/// # });
/// ```
#[derive(Clone)]
pub struct Engine {
    tx: mpsc::Sender<Command>,
    pub(crate) plan: Arc<Plan>,
    pressure: Arc<Pressure>,
    health: Arc<cluster::Shared>,
    /// In a cluster: this process's index.
    process: Option<usize>,
}

impl Engine {
    /// A builder of an engine for the metrics, rules and alerts of `config`.
    pub fn builder(config: crate::config::Config) -> EngineBuilder {
        EngineBuilder::new(config)
    }

    /// The configuration the engine runs.
    pub fn config(&self) -> &crate::config::Config {
        &self.plan.config
    }

    /// Starts the service thread; it ends on `shutdown` or when every handle is dropped.
    /// Firings and alert transitions go to `actions`, when given. With a data directory,
    /// first reads it back (the checkpoint, then the log after it), so that the service
    /// answers exactly as it did before it stopped, and from then on logs what it accepts.
    pub(crate) fn start(
        plan: Arc<Plan>,
        options: EngineOptions,
        actions: Option<ActionSink>,
        mut data: Option<crate::durable::DataDir>,
    ) -> Result<Engine, EngineError> {
        let (tx, rx) = mpsc::channel();
        // In a cluster, the dataflow hands messages from other processes to this thread. (Its
        // handle keeps the thread's channel open: a cluster's thread ends on `shutdown` or when
        // the dataflow stops, not when every handle is dropped.)
        let mut pipeline = match &options.cluster {
            None => Pipeline::with_plan(plan.clone(), options.pipeline.clone())?,
            Some(c) => {
                let relayed = tx.clone();
                let hook: crate::engine::RelayHook = Arc::new(move |m| {
                    let _ = relayed.send(Command::Relayed(m));
                });
                Pipeline::serving_in_cluster(plan.clone(), options.pipeline.clone(), c.clone(), hook)?
            }
        };
        let process = options.cluster.as_ref().map(|c| c.process);
        if let Some(ms) = options.max_future_ms {
            pipeline.reject_future(ms);
        }
        if let Some(ms) = options.horizon_ms {
            pipeline.reject_beyond(ms);
        }
        // Erasure takes back the facts sent, so ingest keeps them.
        pipeline.keep_facts();
        let acting = !plan.config.rules.is_empty() || !plan.config.alerts.is_empty();
        if let Some(dir) = data.as_mut() {
            let r = crate::durable::recover(&mut pipeline, dir)?;
            if options.wall_ticks.is_some() && acting {
                // The rules' clock had followed the wall clock up to the stop: it goes on from
                // here, so no firing decided before the stop is taken back for a moment.
                pipeline.advance_now(crate::pipeline::now_ms() as i64);
                pipeline.flush();
            }
            if r.checkpoint_events + r.records > 0 {
                tracing::info!(
                    "read back {}: a checkpoint of {} events and {} log records after it, in {:.2?}",
                    dir.path().display(),
                    r.checkpoint_events,
                    r.records,
                    r.took
                );
            }
        }
        pipeline.set_hub(Hub::with_policy(
            options.subscriber_queue,
            options.on_slow_subscriber,
        ));
        if actions.is_some() {
            pipeline.keep_actions();
        }
        let data = data.map(crate::durable::DataDir::start).transpose()?;
        let pressure = Arc::new(Pressure::new(options.max_lag_ms));
        let noted = pressure.clone();
        let health = Arc::new(cluster::Shared::new(process.is_some()));
        let told = health.clone();
        std::thread::Builder::new()
            .name("tidemark-live".into())
            .spawn(move || {
                Driver::new(pipeline, options, actions, acting, data, noted, told).run(rx)
            })?;
        Ok(Engine {
            tx,
            plan,
            pressure,
            health,
            process,
        })
    }

    /// Whether the dataflow runs: `/healthz` answers 503 unless it is `Up`.
    pub fn health(&self) -> Health {
        self.health.get()
    }

    /// In a cluster, this process's index (0 takes every event and answers look-ups).
    pub fn process(&self) -> Option<usize> {
        self.process
    }

    /// How far behind its input the engine is, for sources that push back: with
    /// `serve.max_lag`, `pressure().busy()` says when to turn requests away.
    pub fn pressure(&self) -> &Pressure {
        &self.pressure
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Stopped> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(make(reply)).map_err(|_| Stopped)?;
        answer.await.map_err(|_| Stopped)
    }

    /// Offers events, each one JSON object (EVENTS.md); answers once they are in a batch on its
    /// way to the dataflow, with the outcome of every event not accepted. The events are handed
    /// over on the call, not on the first poll: calls made in order are applied in order, so a
    /// source may keep several answers outstanding without reordering its events.
    pub fn ingest(
        &self,
        events: Vec<EventBytes>,
    ) -> impl std::future::Future<Output = Result<IngestReport, Stopped>> + Send + 'static {
        self.ingest_from("library", events)
    }

    /// As [`ingest`](Self::ingest), naming the source in dead-letter records (`serve.dead_letter`).
    pub fn ingest_from(
        &self,
        source: Source,
        events: Vec<EventBytes>,
    ) -> impl std::future::Future<Output = Result<IngestReport, Stopped>> + Send + 'static {
        self.hand_over(source, Events::List(events))
    }

    /// Offers the events of a request body that `event::batch::check` took, split as they are
    /// taken (a body of tiny events never becomes a list many times its size).
    pub fn ingest_body(
        &self,
        source: Source,
        body: bytes::Bytes,
        format: Format,
    ) -> impl std::future::Future<Output = Result<IngestReport, Stopped>> + Send + 'static {
        self.hand_over(source, Events::Body(body, format))
    }

    fn hand_over(
        &self,
        source: Source,
        events: Events,
    ) -> impl std::future::Future<Output = Result<IngestReport, Stopped>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let sent = self
            .tx
            .send(Command::Ingest(source, events, Instant::now(), reply))
            .map_err(|_| Stopped);
        async move {
            sent?;
            answer.await.map_err(|_| Stopped)
        }
    }

    /// Subscribes to row changes (current rows, progress, then upserts and progress).
    pub async fn subscribe(&self, filter: Filter) -> Result<crate::output::Subscription, Stopped> {
        self.ask(|r| Command::Subscribe(filter, r)).await
    }

    /// The snapshot document once every event accepted before the call is reflected.
    pub async fn snapshot(&self) -> Result<Json, Stopped> {
        self.ask(Command::Snapshot).await
    }

    /// Rows passing `filter` once every event accepted before the call is reflected.
    pub async fn rows(&self, filter: Filter) -> Result<Vec<Json>, Stopped> {
        self.ask(|r| Command::Rows(filter, r)).await
    }

    /// Every identity of the person behind `kind:value`, once every event accepted before the
    /// call is reflected (read-your-writes, like `rows`).
    pub async fn whois(&self, kind: String, value: String) -> Result<Json, Stopped> {
        self.ask(|r| Command::Whois(kind, value, r)).await
    }

    /// Counts, progress, lag and round latency, for health checks and `/metrics`.
    pub async fn status(&self) -> Result<Status, Stopped> {
        self.ask(Command::Status).await
    }

    /// A rule's decision on one key with its evidence; `None` when no rule has that name.
    pub async fn explain(&self, rule: String, key: String) -> Result<Option<Json>, Stopped> {
        self.ask(|r| Command::Explain(rule, key, r)).await
    }

    /// Every alert's state and last transition.
    pub async fn alerts(&self) -> Result<Json, Stopped> {
        self.ask(Command::Alerts).await
    }

    /// Erases the person behind `kind:value` with every linked identity: every row corrects
    /// itself as if the person had never sent an event, and with a data directory the answer
    /// waits until a checkpoint without the person replaced the log that held their events.
    pub async fn erase(&self, kind: String, value: String) -> Result<Erasure, Stopped> {
        self.ask(|r| Command::Erase(kind, value, r)).await
    }

    /// Stops the service: sends what is pending, makes the log durable, writes a checkpoint,
    /// and answers once that is done. Requests after it get `Stopped`.
    pub async fn shutdown(&self) -> Result<(), Stopped> {
        self.ask(Command::Shutdown).await
    }
}

/// The service thread's state.
struct Driver {
    pipeline: Pipeline,
    options: EngineOptions,
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
    actions: Option<ActionSink>,
    /// The rules' clock as of the last action messages taken.
    actions_clock: Option<i64>,
    /// When the rules' clock next follows the wall clock (rules or alerts configured).
    next_tick: Option<Instant>,
    /// The data directory, when accepted events are kept.
    data: Option<crate::durable::Journal>,
    /// Events accepted as of the last checkpoint.
    accepted_at_checkpoint: u64,
    /// Once the checkpoint count passes this, the checkpoint that retired these firings (per
    /// rule id prefix, released before the time) is written: the delivery log may drop them.
    prune_after: Option<(u64, Vec<(String, i64)>)>,
    /// Who asked the service to stop.
    stopping: Option<oneshot::Sender<()>>,
    /// Duplicates and rejections by reason since the last batch handed to the log.
    outcomes: BTreeMap<&'static str, u64>,
    /// Where the lag is noted for the sources.
    pressure: Arc<Pressure>,
    /// Where the dataflow's health is noted for `/healthz`.
    health: Arc<cluster::Shared>,
    /// On a process other than 0 of a cluster: its requests relayed to process 0.
    follower: Option<Follower>,
}

enum Waiter {
    Snapshot(oneshot::Sender<Json>),
    Rows(Filter, oneshot::Sender<Vec<Json>>),
    Whois(String, String, oneshot::Sender<Json>),
}

impl Driver {
    fn new(
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

    fn run(mut self, rx: mpsc::Receiver<Command>) {
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
                Err(RecvTimeoutError::Disconnected) => break,
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
            if self.health.get() == Health::Waiting && self.pipeline.up() {
                self.health.set(Health::Up);
            }
            if self.pipeline.stopped() || self.stopping.is_some() {
                // Requests get `Stopped` from here on rather than answers that never change.
                break;
            }
        }
        self.flush();
        self.close();
        // The stop is answered at once, unless the dataflow's profile is to be printed: that
        // comes as its workers end, so the process waits for them.
        let mut reply = self.stopping.take();
        if std::env::var_os("TIDEMARK_PROFILE").is_none() {
            if let Some(r) = reply.take() {
                let _ = r.send(());
            }
        }
        let asked = self.stopping.is_some();
        let lost = |why: String| {
            let why = match self.options.cluster.is_some() {
                true => format!("a process of the cluster was lost or stopped, so the dataflow stopped ({why}): restart every process; process 0 reads its data directory back"),
                false => format!("the dataflow stopped: {why}"),
            };
            tracing::error!("{why}");
            why
        };
        match self.pipeline.finish() {
            Err(crate::engine::DataflowError::Cluster(why)) => {
                tracing::error!("{why}");
                self.health.set(Health::Lost(why));
            }
            Err(e) => self.health.set(Health::Lost(lost(e.to_string()))),
            Ok(_) if !asked => self.health.set(Health::Lost(lost("its input ended".into()))),
            Ok(_) => {}
        }
        if let Some(r) = reply {
            let _ = r.send(());
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

    fn handle(&mut self, command: Command) {
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
    fn flush(&mut self) -> Time {
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
