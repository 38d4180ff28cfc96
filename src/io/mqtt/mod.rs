//! MQTT for `tidemark serve`: events in from a persistent session (`ingest`), metric changes
//! out to deltas, retained rows and progress topics (`publish`); both connections are driven by
//! one `pump` that reconnects with backoff.

mod ingest;
mod publish;
mod topics;

use std::future::Future;
use std::time::{Duration, Instant};

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, Incoming, MqttOptions, Outgoing, Publish,
    Request, StateError, Subscribe, SubscribeFilter, SubscribeReasonCode,
};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::config::Mqtt;
use crate::live::Engine;

/// Why MQTT could not start.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("mqtt.url is not set; set it (or pass --mqtt mqtt://HOST:PORT) to use MQTT")]
    NoUrl,
}

/// Keep-alive of both connections: a dead broker is noticed within about this long.
const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// First and largest wait between connection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Started MQTT tasks.
pub struct Started {
    /// End after `stop` turns true, once each has disconnected cleanly (or at once when the
    /// broker is unreachable).
    pub tasks: Vec<JoinHandle<()>>,
    /// Answers once the broker has confirmed the ingest subscriptions for the first time.
    pub subscribed: oneshot::Receiver<()>,
}

/// Starts MQTT ingest and publishing against `config.url`.
pub fn start(config: &Mqtt, live: Engine, stop: watch::Receiver<bool>) -> Result<Started, MqttError> {
    let url = config.url.as_ref().ok_or(MqttError::NoUrl)?;
    let (host, port) = (url.host.clone(), url.port);
    let broker = format!("{host}:{port}");
    let note = format!(
        "MQTT: reading events from {url} (topics {}, client id {:?}, QoS 1, persistent session); publishing to {p}/deltas/METRIC, {p}/rows/METRIC/DIMS{} and {p}/progress",
        config.topics.join(", "),
        config.client_id,
        if config.retain_rows { " (retained)" } else { " (off: mqtt.retain_rows = false)" },
        p = config.publish_prefix,
    );
    tracing::info!("{note}");
    crate::say!("tidemark: {note}");
    let (ready, subscribed) = oneshot::channel();
    let connection = |client_id: &str| options(config, client_id, &host, port);
    let ingest = connection(&config.client_id);
    let mut tasks = ingest::start(config, ingest, &broker, live.clone(), stop.clone(), ready);
    let publish = connection(&format!("{}-out", config.client_id));
    tasks.extend(publish::start(config, publish, &broker, live, stop));
    Ok(Started { tasks, subscribed })
}

/// Options shared by both connections.
fn options(config: &Mqtt, client_id: &str, host: &str, port: u16) -> MqttOptions {
    let mut o = MqttOptions::new(client_id, host, port);
    o.set_keep_alive(KEEP_ALIVE)
        .set_max_packet_size(config.max_payload, config.max_payload);
    o
}

/// Spawns `fut` as a task named `name`.
fn spawn(name: &'static str, fut: impl Future<Output = ()> + Send + 'static) -> JoinHandle<()> {
    tokio::spawn(fut.instrument(tracing::info_span!("task", name)))
}

/// One connection as the pump sees it.
struct Session {
    /// `ingest` or `publish`, for log lines.
    label: &'static str,
    broker: String,
    /// Made on the first connection and, with `again`, on every connection the broker has no
    /// session for.
    subscribe: Vec<SubscribeFilter>,
    again: bool,
    /// Counts connections made (the first is 1), for whoever republishes after a reconnect.
    connections: Option<watch::Sender<u64>>,
    /// Told at the first SUBACK.
    subscribed: Option<oneshot::Sender<()>>,
}

/// Exponential backoff between connection attempts.
struct Backoff(Duration);

impl Backoff {
    fn next(&mut self) -> Duration {
        let d = self.0;
        self.0 = (self.0 * 2).min(BACKOFF_MAX);
        d
    }
}

/// Drives a connection: polls the event loop (never cancelling a poll), hands each incoming
/// PUBLISH to `deliver` (which answers false once nobody takes them any more), subscribes on
/// connection, and reconnects after errors with backoff, logging one warning per outage and
/// one line on recovery. Ends when the client's DISCONNECT has gone out, or when `stop` is set
/// while the broker is unreachable.
async fn pump<F, Fut>(
    mut eventloop: EventLoop,
    mut session: Session,
    mut stop: watch::Receiver<bool>,
    mut deliver: F,
) where
    F: FnMut(Publish) -> Fut,
    Fut: Future<Output = bool>,
{
    let label = session.label;
    let broker = &session.broker;
    let mut backoff = Backoff(BACKOFF_MIN);
    let mut outage: Option<Instant> = None;
    let mut first = true;
    let mut open = true;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                let subscribe = first || (session.again && !ack.session_present);
                if subscribe && !session.subscribe.is_empty() {
                    let s = Subscribe::new_many(session.subscribe.clone());
                    eventloop.pending.push_back(Request::Subscribe(s));
                }
                match outage.take() {
                    Some(since) => tracing::info!(
                        "MQTT {label}: connected to {broker} again after {:.1}s (session kept: {})",
                        since.elapsed().as_secs_f64(),
                        ack.session_present
                    ),
                    None if first => tracing::info!(
                        "MQTT {label}: connected to {broker} (session kept: {})",
                        ack.session_present
                    ),
                    None => {}
                }
                first = false;
                backoff = Backoff(BACKOFF_MIN);
                if let Some(count) = &session.connections {
                    count.send_modify(|n| *n += 1);
                }
            }
            Ok(Event::Incoming(Incoming::Publish(p))) => {
                if open {
                    open = deliver(p).await;
                }
            }
            Ok(Event::Incoming(Incoming::SubAck(ack))) => {
                if let Some(tell) = session.subscribed.take() {
                    let _ = tell.send(());
                }
                if ack.return_codes.contains(&SubscribeReasonCode::Failure) {
                    tracing::error!(
                        "MQTT {label}: {broker} refused a subscription (codes {:?} for {:?}); check the broker's ACL for this client",
                        ack.return_codes,
                        session.subscribe.iter().map(|f| &f.path).collect::<Vec<_>>()
                    );
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
            Ok(_) => {}
            Err(e) => {
                if *stop.borrow() {
                    break;
                }
                if outage.is_none() {
                    outage = Some(Instant::now());
                    tracing::warn!(
                        "MQTT {label}: no connection to {broker}: {e}{}; retrying, waiting from {:?} up to {:?} between attempts",
                        hint(&e),
                        BACKOFF_MIN,
                        BACKOFF_MAX
                    );
                } else {
                    tracing::debug!("MQTT {label}: still no connection to {broker}: {e}");
                }
                let delay = backoff.next();
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stopped(&mut stop) => break,
                }
            }
        }
    }
}

/// What to do about an error, where the error alone does not say.
fn hint(e: &ConnectionError) -> &'static str {
    match e {
        ConnectionError::MqttState(StateError::Deserialization(
            rumqttc::Error::PayloadSizeLimitExceeded(_),
        )) => " (a message is larger than mqtt.max_payload; raise mqtt.max_payload, or set the broker's message_size_limit no higher, or the broker redelivers it after every reconnect)",
        ConnectionError::ConnectionRefused(_) => {
            " (check the broker's authentication and the client id)"
        }
        ConnectionError::Io(_)
        | ConnectionError::MqttState(StateError::Io(_))
        | ConnectionError::NetworkTimeout => {
            " (is the broker running and reachable at mqtt.url?)"
        }
        _ => "",
    }
}

/// Resolves once `stop` is set (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|down| *down).await;
}

/// Sends DISCONNECT; the pump ends once it has gone out.
async fn disconnect(client: &AsyncClient, label: &str) {
    if let Err(e) = client.disconnect().await {
        tracing::debug!("MQTT {label}: disconnect: {e}");
    }
}

/// A connection for publishing rule and alert actions (client id `{client_id}-actions`, a
/// persistent session so QoS 1 messages in flight survive a reconnect), and its pump.
pub fn action_client(
    config: &Mqtt,
    stop: watch::Receiver<bool>,
) -> Result<(AsyncClient, JoinHandle<()>), MqttError> {
    let url = config.url.as_ref().ok_or(MqttError::NoUrl)?;
    let (host, port) = (url.host.clone(), url.port);
    let mut o = options(
        config,
        &format!("{}-actions", config.client_id),
        &host,
        port,
    );
    o.set_clean_session(false)
        .set_request_channel_capacity(1024);
    let (client, eventloop) = AsyncClient::new(o, 1024);
    let session = Session {
        label: "actions",
        broker: format!("{host}:{port}"),
        subscribe: Vec::new(),
        again: false,
        connections: None,
        subscribed: None,
    };
    let pump = spawn(
        "mqtt-actions-pump",
        pump(eventloop, session, stop, |_| std::future::ready(true)),
    );
    Ok((client, pump))
}
