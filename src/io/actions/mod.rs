//! Runs the actions of rules and alerts: each message is written to the delivery log (synced)
//! before it goes out, then handed to its targets' bounded queues (webhook, MQTT, stream), so
//! that nothing is sent twice across restarts and a slow or dead target slows nothing else.

pub mod log;
mod webhook;

pub use log::{DeliveryLog, LogError, Record, Step};

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use rumqttc::{AsyncClient, QoS};
use tokio::sync::{broadcast, mpsc, watch};
use tracing::Instrument;

use crate::config::{Action, Config};
use crate::output::actions::ActionEvent;

/// One message on its way to one target.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub id: String,
    pub kind: &'static str,
    pub body: Arc<str>,
}

/// A target finished with a delivery.
pub(crate) struct Done {
    delivery: Delivery,
    target: String,
    ok: bool,
}

pub(crate) enum Msg {
    Events(Vec<ActionEvent>),
    Done(Done),
    /// Per rule (its id prefix), the time before which its firings are retired: the
    /// delivery log drops them (`DeliveryLog::prune`).
    Prune(Vec<(String, i64)>),
    /// An erased person's action ids: the delivery log forgets them, then the sender hears.
    Forget(
        Vec<String>,
        tokio::sync::oneshot::Sender<Result<(), ForgetError>>,
    ),
}

/// Why the delivery log could not forget an erased person's action ids.
#[derive(Debug, thiserror::Error)]
pub enum ForgetError {
    #[error("the actions runner has stopped")]
    Stopped,
    #[error(transparent)]
    Log(#[from] LogError),
}

/// A firing or alert message as `/v1/firings` streams it.
#[derive(Clone, Debug)]
pub struct StreamItem {
    /// The rule or alert.
    pub source: String,
    pub body: Arc<str>,
}

/// Counters of the actions, for `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Messages decided and sent to their targets.
    pub sent: AtomicU64,
    pub delivered: AtomicU64,
    /// Deliveries that ran out of attempts or found their target's queue full.
    pub failed: AtomicU64,
    pub queue_full: AtomicU64,
    pub retries: AtomicU64,
    /// Deliveries waiting in targets' queues.
    pub queued: AtomicI64,
}

/// Why the actions could not start.
#[derive(Debug, thiserror::Error)]
pub enum ActionsError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("an action publishes to MQTT, but MQTT is off: {0}")]
    Mqtt(#[from] crate::io::mqtt::MqttError),
    #[error("cannot make the webhook client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("cannot start the actions thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// A running actions runner.
pub struct Actions {
    tx: std::sync::mpsc::Sender<Msg>,
    pub stats: Arc<Stats>,
    stream: broadcast::Sender<StreamItem>,
}

/// Where the live service hands its action messages: the server's actions runner, or a
/// library user's channel.
#[derive(Clone)]
pub struct ActionSink(SinkTo);

#[derive(Clone)]
enum SinkTo {
    /// The runner that delivers to webhooks, MQTT and streams, once each.
    Runner(std::sync::mpsc::Sender<Msg>),
    /// A channel of the program that embeds the engine.
    Channel(tokio::sync::mpsc::UnboundedSender<ActionEvent>),
}

impl ActionSink {
    /// A sink that hands every message to `tx`.
    pub fn channel(tx: tokio::sync::mpsc::UnboundedSender<ActionEvent>) -> Self {
        ActionSink(SinkTo::Channel(tx))
    }

    /// Whether messages of rules and alerts without actions are wanted too (a program's own
    /// channel wants every decision; the runner delivers only to configured targets).
    pub fn wants_untargeted(&self) -> bool {
        matches!(self.0, SinkTo::Channel(_))
    }

    /// Lets the delivery log drop retired firings: per rule (its id prefix `rule/`), those
    /// released before the time given. A program's own channel keeps no log.
    pub(crate) fn prune(&self, retired: Vec<(String, i64)>) {
        if let SinkTo::Runner(tx) = &self.0 {
            let _ = tx.send(Msg::Prune(retired));
        }
    }

    /// Hands messages over; never waits.
    pub fn send(&self, events: Vec<ActionEvent>) {
        if events.is_empty() {
            return;
        }
        match &self.0 {
            SinkTo::Runner(tx) => {
                let _ = tx.send(Msg::Events(events));
            }
            SinkTo::Channel(tx) => {
                for e in events {
                    let _ = tx.send(e);
                }
            }
        }
    }
}

/// What a target is called in the delivery log and in messages.
fn target_name(a: &Action) -> String {
    match a {
        Action::Webhook(url) => url.clone(),
        Action::Mqtt(topic) => format!("mqtt:{topic}"),
        Action::Stream => "stream".into(),
    }
}

impl Actions {
    /// Opens the delivery log in `data_dir` and starts a queue and task per target.
    pub fn start(
        config: &Config,
        data_dir: &Path,
        stop: watch::Receiver<bool>,
    ) -> Result<Actions, ActionsError> {
        let log = DeliveryLog::open(data_dir)?;
        let (tx, rx) = std::sync::mpsc::channel::<Msg>();
        let stats = Arc::new(Stats::default());
        let (stream, _) = broadcast::channel(4096);
        let delivery = &config.delivery;
        let actions: Vec<&Action> = config
            .rules
            .iter()
            .flat_map(|r| &r.actions)
            .chain(config.alerts.iter().flat_map(|a| &a.actions))
            .collect();
        let mut queues: HashMap<String, mpsc::Sender<Delivery>> = HashMap::new();
        let client = reqwest::Client::builder().build()?;
        let mut mqtt: Option<AsyncClient> = None;
        for a in actions {
            let name = target_name(a);
            if queues.contains_key(&name) || matches!(a, Action::Stream) {
                continue;
            }
            let (q, qrx) = mpsc::channel(delivery.queue);
            match a {
                Action::Webhook(url) => webhook::start(
                    url.clone(),
                    delivery,
                    client.clone(),
                    qrx,
                    tx.clone(),
                    stats.clone(),
                ),
                Action::Mqtt(topic) => {
                    let client = match &mqtt {
                        Some(c) => c.clone(),
                        None => {
                            // The pump runs detached and ends on `stop`.
                            let (c, _pump) =
                                crate::io::mqtt::action_client(&config.mqtt, stop.clone())?;
                            mqtt = Some(c.clone());
                            c
                        }
                    };
                    mqtt_target(topic.clone(), client, qrx, tx.clone(), stats.clone());
                }
                Action::Stream => unreachable!("streams have no queue"),
            }
            queues.insert(name, q);
        }
        if let Some(client) = mqtt {
            tokio::spawn(
                async move {
                    let mut stop = stop;
                    let _ = stop.wait_for(|s| *s).await;
                    let _ = client.disconnect().await;
                }
                .instrument(tracing::info_span!("task", name = "mqtt-actions-stop")),
            );
        }
        // The targets' tasks run detached: webhook targets end with the runner, the MQTT client
        // on `stop`; the delivery log, not a wait here, is what keeps an unsent firing across a
        // stop.
        let runner = Runner {
            log,
            queues,
            stats: stats.clone(),
            stream: stream.clone(),
        };
        std::thread::Builder::new()
            .name("tidemark-actions".into())
            .spawn(move || runner.run(rx))?;
        Ok(Actions {
            tx,
            stats,
            stream,
        })
    }

    /// The sink the live service hands messages to.
    pub fn sink(&self) -> ActionSink {
        ActionSink(SinkTo::Runner(self.tx.clone()))
    }

    /// Makes the delivery log forget the ids of an erased person's actions (rewriting it), and
    /// returns once it has, or with why not.
    pub async fn forget(&self, ids: Vec<String>) -> Result<(), ForgetError> {
        if ids.is_empty() {
            return Ok(());
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Msg::Forget(ids, tx))
            .map_err(|_| ForgetError::Stopped)?;
        rx.await.map_err(|_| ForgetError::Stopped)?
    }

    /// A new subscription to the `stream` actions.
    pub fn subscribe(&self) -> broadcast::Receiver<StreamItem> {
        self.stream.subscribe()
    }
}

/// Starts the detached task that publishes to one MQTT topic at QoS 1.
fn mqtt_target(
    topic: String,
    client: AsyncClient,
    mut rx: mpsc::Receiver<Delivery>,
    done: std::sync::mpsc::Sender<Msg>,
    stats: Arc<Stats>,
) {
    tokio::spawn(
        async move {
            while let Some(d) = rx.recv().await {
                stats.queued.fetch_sub(1, Ordering::Relaxed);
                let ok = client
                    .publish(
                        topic.clone(),
                        QoS::AtLeastOnce,
                        false,
                        d.body.as_bytes().to_vec(),
                    )
                    .await
                    .is_ok();
                let target = format!("mqtt:{topic}");
                let _ = done.send(Msg::Done(Done {
                    delivery: d,
                    target,
                    ok,
                }));
            }
        }
        .instrument(tracing::info_span!("task", name = "mqtt-action")),
    );
}

/// The thread that owns the delivery log.
struct Runner {
    log: DeliveryLog,
    queues: HashMap<String, mpsc::Sender<Delivery>>,
    stats: Arc<Stats>,
    stream: broadcast::Sender<StreamItem>,
}

impl Runner {
    fn run(mut self, rx: std::sync::mpsc::Receiver<Msg>) {
        for msg in rx {
            let result = match msg {
                Msg::Events(events) => self.events(events),
                Msg::Done(d) => self.done(d),
                Msg::Prune(retired) => self.log.prune(&retired).map(|n| {
                    if n > 0 {
                        tracing::debug!("the delivery log dropped {n} retired firings");
                    }
                }),
                Msg::Forget(ids, reply) => {
                    let result = self.log.forget(ids);
                    if let Err(e) = &result {
                        tracing::error!(
                            "the delivery log cannot forget an erased person's actions: {e}"
                        );
                    }
                    // The erasure's caller hears why too.
                    let _ = reply.send(result.map_err(ForgetError::Log));
                    Ok(())
                }
            };
            if let Err(e) = result {
                tracing::error!("{e}; actions are held until the log can be written");
            }
        }
    }

    fn events(&mut self, events: Vec<ActionEvent>) -> Result<(), LogError> {
        let mut records = Vec::new();
        let mut out: Vec<(ActionEvent, Vec<String>)> = Vec::new();
        for ev in events {
            if let Some(original) = ev.retracts {
                if !self.log.was_sent(&ev.id, original) {
                    continue;
                }
            }
            let targets: Vec<String> = ev
                .targets
                .iter()
                .map(target_name)
                .filter(|t| !self.log.was_settled(&ev.id, ev.kind, t))
                .collect();
            if !self.log.was_sent(&ev.id, ev.kind) {
                records.push(Record {
                    id: ev.id.clone(),
                    kind: ev.kind.into(),
                    step: Step::Sent,
                    target: None,
                    release: ev.release,
                });
            } else if targets.is_empty() {
                continue;
            }
            out.push((ev, targets));
        }
        self.log.append(&records)?;
        let mut settled = Vec::new();
        for (ev, targets) in out {
            self.stats.sent.fetch_add(1, Ordering::Relaxed);
            let d = Delivery {
                id: ev.id.clone(),
                kind: ev.kind,
                body: ev.body.clone(),
            };
            for t in targets {
                if t == "stream" {
                    let _ = self.stream.send(StreamItem {
                        source: ev.source.clone(),
                        body: ev.body.clone(),
                    });
                    self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                    settled.push(settle(&d, t, Step::Delivered));
                    continue;
                }
                let Some(q) = self.queues.get(&t) else {
                    continue;
                };
                match q.try_send(d.clone()) {
                    Ok(()) => {
                        self.stats.queued.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        tracing::warn!("the queue of {t} is full; {} {} is kept as failed (raise delivery.queue, or see why {t} is slow)", d.kind, d.id);
                        self.stats.queue_full.fetch_add(1, Ordering::Relaxed);
                        self.stats.failed.fetch_add(1, Ordering::Relaxed);
                        settled.push(settle(&d, t, Step::Failed));
                    }
                }
            }
        }
        self.log.append(&settled)
    }

    /// Logs a delivery's end, then counts it: a delivery counted in `/metrics` is in the log,
    /// and a restart does not send it again.
    fn done(&mut self, d: Done) -> Result<(), LogError> {
        let (step, count) = if d.ok {
            (Step::Delivered, &self.stats.delivered)
        } else {
            (Step::Failed, &self.stats.failed)
        };
        let logged = self.log.append(&[settle(&d.delivery, d.target, step)]);
        count.fetch_add(1, Ordering::Relaxed);
        logged
    }
}

fn settle(d: &Delivery, target: String, step: Step) -> Record {
    Record {
        id: d.id.clone(),
        kind: d.kind.into(),
        step,
        target: Some(target),
        release: None,
    }
}
