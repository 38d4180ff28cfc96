//! `tidemark replay`'s engine: plays an event log into a server over HTTP or MQTT at a chosen
//! pace, counts what the server acknowledged, and measures end-to-end latency from each send
//! to the progress mark that shows its effect.

mod counts;
mod firings;
mod http;
mod latency;
mod mqtt;
mod plan;
mod report;
mod run;
mod watch;

pub use firings::{ListenError, WebhookReport};
pub use mqtt::MqttTarget;
pub use plan::{Batch, Log, Pace};
pub use report::{Failure, Latency, Report};
pub use run::run;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use latency::Tracker;
use report::Counters;

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot subscribe to the server's progress marks at {0}; is tidemark serve running there (for an MQTT target, give its HTTP address with --http), and is the read token right (--read-token or TIDEMARK_READ_TOKEN)?")]
    /// The server's progress marks could not be subscribed to.
    Subscribe(#[from] SubscribeError),
    #[error("cannot connect to the MQTT broker {0}; is it running?")]
    /// The MQTT broker could not be reached.
    Broker(#[from] BrokerError),
    #[error("cannot build an HTTP client ({0}); check the system's TLS and proxy settings")]
    /// No HTTP client could be made.
    Client(#[source] reqwest::Error),
    #[error(transparent)]
    /// The webhook receiver could not listen.
    Webhook(#[from] ListenError),
}

/// Why the subscription to the server's progress marks failed; each variant names its
/// WebSocket URL.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// The request could not be made, or the connection or its handshake failed.
    #[error("{url}: {source}")]
    Connect {
        /// The URL as given.
        url: String,
        /// The cause.
        source: tokio_tungstenite::tungstenite::Error,
    },
    /// The read token cannot be sent in a header.
    #[error("{url}: the read token is not a valid header value")]
    Token {
        /// The URL as given.
        url: String,
    },
    /// The server sent no progress mark in time.
    #[error("{url} sent no progress mark within {secs}s")]
    NoMark {
        /// The URL as given.
        url: String,
        /// How long it waited, in seconds.
        secs: u64,
    },
}

/// Why an MQTT client of the replay could not connect; each variant names the broker
/// (`mqtt://HOST:PORT`).
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The broker's first packet was not a CONNACK.
    #[error("{broker} answered {event:?} instead of CONNACK")]
    Answer {
        /// The broker's address.
        broker: String,
        /// What the broker answered instead.
        event: Box<rumqttc::Event>,
    },
    /// The connection failed.
    #[error("{broker}: {source}")]
    Connect {
        /// The broker's address.
        broker: String,
        /// The cause.
        source: rumqttc::ConnectionError,
    },
    /// No CONNACK came in time.
    #[error("{broker}: no CONNACK within {secs}s")]
    NoConnack {
        /// The broker's address.
        broker: String,
        /// How long it waited, in seconds.
        secs: u64,
    },
}

/// Why a replay target is not one; each variant holds the URL as given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// An `http://` URL with a path, or without a host.
    #[error("{url:?}: give the server's address only, e.g. http://127.0.0.1:7878")]
    NotAnAddress {
        /// The URL as given.
        url: String,
    },
    /// An `https://` URL.
    #[error("{url:?}: replay speaks plain http:// only; run it next to the server or through a TLS-terminating proxy's plain side")]
    Https {
        /// The URL as given.
        url: String,
    },
    /// An `mqtt://` URL that does not parse.
    #[error(transparent)]
    Mqtt(#[from] crate::config::ValueError),
    /// Neither `http://` nor `mqtt://`.
    #[error("{url:?}: the target must be http://HOST:PORT or mqtt://HOST:PORT")]
    Scheme {
        /// The URL as given.
        url: String,
    },
}

/// Where the events go.
#[derive(Clone, Debug)]
pub enum Target {
    /// `POST {base}/v1/events`.
    Http {
        /// The server's address, `http://HOST:PORT`.
        base: String,
    },
    /// Publish to a topic of an MQTT broker.
    Mqtt(MqttTarget),
}

impl Target {
    /// Parses `http://HOST:PORT` or `mqtt://HOST:PORT` (MQTT messages go to `topic`).
    pub fn parse(url: &str, topic: &str, timeout: Duration) -> Result<Target, TargetError> {
        if let Some(rest) = url.strip_prefix("http://") {
            let host = rest.trim_end_matches('/');
            if host.is_empty() || host.contains('/') {
                return Err(TargetError::NotAnAddress { url: url.into() });
            }
            return Ok(Target::Http {
                base: format!("http://{host}"),
            });
        }
        if url.starts_with("https://") {
            return Err(TargetError::Https { url: url.into() });
        }
        if url.starts_with("mqtt://") || url.starts_with("tcp://") {
            let crate::config::MqttUrl { host, port, .. } = crate::config::parse_mqtt_url(url)?;
            return Ok(Target::Mqtt(MqttTarget {
                host,
                port,
                topic: topic.to_string(),
                timeout,
            }));
        }
        Err(TargetError::Scheme { url: url.into() })
    }

    /// How the target is shown in the report.
    pub fn describe(&self) -> String {
        match self {
            Target::Http { base } => base.clone(),
            Target::Mqtt(m) => format!("mqtt://{}:{} topic {}", m.host, m.port, m.topic),
        }
    }
}

/// What to replay and how.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// Where the events go.
    pub target: Target,
    /// The server's HTTP address (`http://HOST:PORT`) for progress marks and counters.
    pub http: String,
    /// How fast: a rate, or a speed-up of the log's own time.
    pub pace: Pace,
    /// Parallel senders (HTTP connections or MQTT clients).
    pub connections: usize,
    /// Events per request or message, at most.
    pub batch: usize,
    /// Stop sending after this long.
    pub duration: Option<Duration>,
    /// Latency of events sent in this first stretch is not recorded.
    pub warmup: Duration,
    /// The server's `serve.ingest_token`, if it has one.
    pub ingest_token: Option<String>,
    /// The server's `serve.read_token`, if it has one.
    pub read_token: Option<String>,
    /// How long an answer (or PUBACK, or the last progress mark) may take.
    pub timeout: Duration,
    /// Listen here for the rules' webhooks and measure release-to-receipt latency.
    pub webhook: Option<String>,
}

/// The state of a running replay, for a progress display.
#[derive(Clone, Debug)]
pub struct Progress {
    /// Events sent.
    pub sent: u64,
    /// Events acknowledged.
    pub acked: u64,
    /// Time since the first send.
    pub elapsed: Duration,
    /// p99 of the latency recorded so far, milliseconds.
    pub p99_ms: Option<f64>,
    /// Every batch was sent; waiting for the last answers and progress marks.
    pub draining: bool,
}

/// What the senders share.
struct Shared {
    log: Log,
    counters: Counters,
    tracker: Arc<Mutex<Tracker>>,
    /// Sends before this instant are warm-up.
    record_from: Instant,
    warmup_events: AtomicU64,
    /// Send times of every event, when firings are timed.
    releases: Option<Arc<firings::Releases>>,
}

impl Shared {
    /// Counts `events` as sent now; returns the instant.
    fn note_sent(&self, events: std::ops::Range<usize>) -> Instant {
        let n = events.len() as u64;
        self.counters.sent.fetch_add(n, Relaxed);
        let now = Instant::now();
        if now < self.record_from {
            self.warmup_events.fetch_add(n, Relaxed);
        }
        if let Some(r) = &self.releases {
            r.note_sent(events, now);
        }
        now
    }
}

/// The batches not yet taken by a sender; senders take the next one when free.
#[derive(Clone)]
struct Queue(Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Batch>>>);

impl Queue {
    async fn next(&self) -> Option<Batch> {
        self.0.lock().await.recv().await
    }
}
