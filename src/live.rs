//! The live service: one thread owns the pipeline; HTTP, MQTT and the demo talk to it through a
//! cloneable handle of async requests.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value as Json};
use tokio::sync::oneshot;

use crate::config::SlowSubscriber;
use crate::dataflow::Time;
use crate::event::batch::Format;
use crate::event::DeadLetters;
use crate::ingest::{Counts, Outcome};
use crate::io::actions::ActionSink;
use crate::output::{Filter, Hub, HubStats};
use crate::pipeline::{Pipeline, PipelineOptions};
use crate::plan::Plan;

mod builder;
mod cluster;
mod driver;
use driver::Driver;
mod pressure;
mod rejoin;
mod upkeep;
pub use builder::EngineBuilder;
pub use cluster::Health;
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
    /// On a process other than 0 of a cluster: ingest requests it relayed to process 0 and
    /// has no answer to yet.
    pub relayed_waiting: Option<usize>,
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

/// A new pipeline for `options`. In a cluster its dataflow waits for every process, and the
/// messages other processes relay to this one go to the service thread through `tx`.
fn open_pipeline(
    plan: &Arc<Plan>,
    options: &EngineOptions,
    tx: &mpsc::Sender<Command>,
) -> std::io::Result<Pipeline> {
    let mut pipeline = match &options.cluster {
        None => Pipeline::with_plan(plan.clone(), options.pipeline.clone())?,
        Some(c) => {
            // The hook keeps the thread's channel open: a cluster's thread ends on `shutdown`,
            // not when every handle is dropped.
            let relayed = tx.clone();
            let hook: crate::engine::RelayHook = Arc::new(move |m| {
                let _ = relayed.send(Command::Relayed(m));
            });
            Pipeline::serving_in_cluster(plan.clone(), options.pipeline.clone(), c.clone(), hook)?
        }
    };
    if let Some(ms) = options.max_future_ms {
        pipeline.reject_future(ms);
    }
    if let Some(ms) = options.horizon_ms {
        pipeline.reject_beyond(ms);
    }
    // Erasure takes back the facts sent, so ingest keeps them.
    pipeline.keep_facts();
    Ok(pipeline)
}

/// Readies a new pipeline to serve: keeps the action messages when something acts on them,
/// reads the data directory back into it (the checkpoint, then the log after it), moves the
/// rules' clock on to the wall clock, and gives it a hub for subscribers.
///
/// The action messages are kept from before the data directory is read back: a firing the
/// dataflow decides while it reads (one whose events were taken, but not yet decided on, when
/// the last dataflow stopped) goes out like any other. One that went out before comes again
/// with the same id, and the delivery log sends it once.
fn bring_up(
    pipeline: &mut Pipeline,
    data: Option<&mut crate::durable::DataDir>,
    options: &EngineOptions,
    acting: bool,
    actions: bool,
) -> Result<(), EngineError> {
    if actions {
        pipeline.keep_actions();
    }
    if let Some(dir) = data {
        let r = crate::durable::recover(pipeline, dir)?;
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
    Ok(())
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
        let mut pipeline = open_pipeline(&plan, &options, &tx)?;
        let process = options.cluster.as_ref().map(|c| c.process);
        let acting = !plan.config.rules.is_empty() || !plan.config.alerts.is_empty();
        let data_path = data.as_ref().map(|d| d.path().to_path_buf());
        bring_up(&mut pipeline, data.as_mut(), &options, acting, actions.is_some())?;
        let data = data.map(crate::durable::DataDir::start).transpose()?;
        let pressure = Arc::new(Pressure::new(options.max_lag_ms));
        let noted = pressure.clone();
        let health = Arc::new(cluster::Shared::new(process.is_some()));
        let told = health.clone();
        let tx_rejoin = tx.clone();
        std::thread::Builder::new()
            .name("tidemark-live".into())
            .spawn(move || {
                let mut driver = Driver::new(pipeline, options, actions, acting, data, noted, told);
                if process.is_some() {
                    driver.may_rejoin(tx_rejoin, data_path);
                }
                driver.run(rx)
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
