//! Running the server: bind (loopback only without tokens; both tokens, or an explicit
//! `serve.public_reads`, elsewhere), start the live service and its sources and sinks, and
//! shut everything down in order on a signal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::Instrument;

use super::conn::{self, ConnLimits, ConnStats};
use super::{app, Access, AppState, BodyLimits, Tokens};
use crate::config::{Config, ConfigError};
use crate::event::pseudonym::{IdentityKey, KeyError};
use crate::event::DeadLetters;
#[cfg(feature = "cli")]
use crate::io::demo::{play, DemoLog, DemoOptions};
use crate::live::{Engine, EngineOptions};

/// What to run besides the HTTP interface.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// Dataflow worker threads.
    pub workers: usize,
    /// Play the demo's generated shop into the server (`serve --demo`).
    #[cfg(feature = "cli")]
    pub demo: Option<DemoOptions>,
    /// The data directory: the delivery log of actions lives here.
    pub data_dir: std::path::PathBuf,
    /// Serve as one process of a cluster: process 0 takes every event (the others relay what
    /// they receive to it), keeps the data directory and sends the actions; every process
    /// serves the rows.
    pub cluster: Option<crate::engine::Cluster>,
}

/// A started server.
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The engine behind it.
    pub live: Engine,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Sources and sinks that end on shutdown (MQTT), waited for after the server.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Longest wait at start for the broker to confirm the ingest subscriptions.
const MQTT_READY: std::time::Duration = std::time::Duration::from_secs(3);

/// Longest wait at the stop for the last checkpoint.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Longest wait for the MQTT connections to hand back what they hold and disconnect.
const TASKS_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// The address to bind: as configured when tokens are set, else the same port on loopback.
pub fn bind_address(listen: SocketAddr, tokens: &Tokens) -> (SocketAddr, Option<String>) {
    if tokens.any() || listen.ip().is_loopback() {
        return (listen, None);
    }
    let forced = SocketAddr::from(([127, 0, 0, 1], listen.port()));
    let note = format!(
        "no tokens are configured, so tidemark listens on {forced} (loopback) instead of {listen}; set serve.ingest_token and serve.read_token (or TIDEMARK_INGEST_TOKEN / TIDEMARK_READ_TOKEN) to listen on other addresses"
    );
    (forced, Some(note))
}

/// Why the tokens leave a listener more open than the operator may mean.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExposureError {
    /// `serve.public_reads` and a read token contradict each other.
    #[error("serve.public_reads = true but serve.read_token (or TIDEMARK_READ_TOKEN) is set; remove one of them")]
    PublicReadsWithReadToken,
    /// Off loopback, only the ingest token is set: anyone could read.
    #[error("serve.read_token (or TIDEMARK_READ_TOKEN) is missing: on {addr} anyone could read rows, snapshots and identities (phone numbers included); set it, or set serve.public_reads = true to serve reads to everyone on purpose")]
    NoReadToken {
        /// The address.
        addr: SocketAddr,
    },
    /// Off loopback, only the read token is set: anyone could post events.
    #[error("serve.ingest_token (or TIDEMARK_INGEST_TOKEN) is missing: on {addr} anyone could post events; set it")]
    NoIngestToken {
        /// The address.
        addr: SocketAddr,
    },
}

/// What a listener on `addr` with these tokens exposes: refused when one token alone would
/// leave the other half open to the network; otherwise a warning to print, if any.
pub fn exposure(
    addr: SocketAddr,
    tokens: &Tokens,
    public_reads: bool,
) -> Result<Option<String>, ExposureError> {
    if public_reads && tokens.read.is_some() {
        return Err(ExposureError::PublicReadsWithReadToken);
    }
    let loopback = addr.ip().is_loopback();
    match (&tokens.ingest, &tokens.read) {
        (Some(_), Some(_)) | (None, None) => Ok(None),
        (Some(_), None) if public_reads => Ok(Some(format!(
            "serve.public_reads = true: rows, snapshots, identities (phone numbers included), subscriptions and /metrics on {addr} need no token"
        ))),
        (Some(_), None) if loopback => Ok(Some(format!(
            "only serve.ingest_token is set: reads on {addr} (loopback) need no token"
        ))),
        (Some(_), None) => Err(ExposureError::NoReadToken { addr }),
        (None, Some(_)) if loopback => Ok(Some(format!(
            "only serve.read_token is set: anyone on this machine can post events to {addr}"
        ))),
        (None, Some(_)) => Err(ExposureError::NoIngestToken { addr }),
    }
}

/// Binds `addr` with a long accept backlog: a burst of connections waits in the kernel's queue
/// instead of having its handshakes dropped and retried a second later.
fn listen_on(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Starts the live service, the HTTP server and the configured sources.
pub async fn start(config: Config, options: ServeOptions) -> Result<Running, StartError> {
    let serve = config.serve.clone().with_env()?;
    let tokens = Tokens {
        ingest: serve.ingest_token.clone(),
        read: serve.read_token.clone(),
    };
    let listen = serve.listen;
    let (addr, note) = bind_address(listen, &tokens);
    if let Some(note) = note {
        crate::say!("tidemark: {note}");
    } else if !tokens.any() {
        crate::say!("tidemark: no tokens are configured; listening on loopback only");
    }
    if let Some(warning) = exposure(addr, &tokens, serve.public_reads)? {
        crate::say!("tidemark: {warning}");
    }
    // Room beside the connections for the engine, MQTT, the dead-letter file and sockets
    // being refused: running out of descriptors would stop accepting altogether.
    let mut max_connections = serve.max_connections;
    if let Some(files) = conn::raise_open_files().filter(|f| *f < max_connections as u64 + 64) {
        // `files - 64 < max_connections` (filtered above), so it fits.
        max_connections = usize::try_from(files.saturating_sub(64))
            .unwrap_or(max_connections)
            .max(16);
        let note = format!("serve.max_connections is {} but the process may open only {files} files, so at most {max_connections} connections are kept open; raise the limit (ulimit -n) or lower serve.max_connections", serve.max_connections);
        crate::say!("tidemark: {note}");
    }
    let dead_letters = match &serve.dead_letter {
        Some(path) => Some(
            DeadLetters::open(path.as_ref(), serve.dead_letter_max).map_err(|source| {
                StartError::DeadLetter {
                    path: path.clone(),
                    source,
                }
            })?,
        ),
        None => {
            crate::say!("tidemark: rejected events are counted but not kept; set serve.dead_letter to keep them");
            None
        }
    };
    let mut mqtt = config.mqtt.clone();
    let follower = options
        .cluster
        .as_ref()
        .map(|c| c.process)
        .filter(|p| *p != 0);
    if let Some(c) = &options.cluster {
        // The broker hands each event to one process of the group; each process has its own
        // client id.
        let group = &config.cluster.mqtt_group;
        mqtt.topics = mqtt
            .topics
            .iter()
            .map(|t| format!("$share/{group}/{t}"))
            .collect();
        mqtt.client_id = format!("{}-{}", mqtt.client_id, c.process);
        crate::say!(
            "tidemark: process {} of a cluster of {}; waiting until every process of --peers ({}) is up",
            c.process,
            c.peers.len(),
            c.peers.join(", ")
        );
    }
    if let Some(p) = follower {
        crate::say!("tidemark: process {p} relays the events it receives to process 0, which keeps the data directory and sends the actions; this process keeps nothing");
    }
    // The data directory first: its lock keeps a second server off it before anything starts.
    let data = if follower.is_some() {
        None
    } else if serve.wal {
        Some(crate::durable::DataDir::open(&options.data_dir, &config)?)
    } else {
        crate::say!(
            "tidemark: serve.wal = false: accepted events are not kept, and a restart starts empty"
        );
        None
    };
    let (shutdown, stop) = watch::channel(false);
    let acting = config
        .rules
        .iter()
        .map(|r| &r.actions)
        .chain(config.alerts.iter().map(|a| &a.actions))
        .any(|a| !a.is_empty());
    let actions = if acting && follower.is_none() {
        let a = crate::io::actions::Actions::start(&config, &options.data_dir, stop.clone())?;
        Some(Arc::new(a))
    } else {
        None
    };
    let mut live_options = EngineOptions::from_config(&serve, options.workers.max(1));
    live_options.dead_letters = dead_letters;
    if follower.is_none() {
        live_options.identity_key = identity_key(&serve, &options.data_dir)?;
    }
    live_options.cluster = options.cluster.clone();
    #[cfg(feature = "cli")]
    if options.demo.is_some() {
        // The demo plays simulated days past today (its badge says so): they are not a wrong
        // clock to guard against.
        live_options.max_future_ms = None;
    }
    let live = Engine::builder(config)
        .options(live_options)
        .actions(actions.as_ref().map(|a| a.sink()))
        .data(data)
        .start()?;
    let listener = listen_on(addr).map_err(|source| StartError::Bind { addr, source })?;
    let addr = listener.local_addr().map_err(StartError::Address)?;
    let connections = Arc::new(ConnStats::default());
    let state = AppState {
        live: live.clone(),
        tokens: Arc::new(tokens),
        shutdown: stop.clone(),
        actions: actions.clone(),
        access: Arc::new(Access::new(addr, &serve.hosts, &serve.origins)),
        bodies: Arc::new(BodyLimits::new(
            serve.max_body,
            Duration::from_millis(serve.body_timeout_ms),
            serve.ingest_memory,
        )),
        connections: connections.clone(),
        #[cfg(feature = "cli")]
        demo: options.demo.is_some(),
        #[cfg(not(feature = "cli"))]
        demo: false,
    };
    let router = app(state);
    let limits = ConnLimits {
        max_connections,
        header_timeout: Duration::from_millis(serve.header_timeout_ms),
        idle_timeout: Duration::from_millis(serve.idle_timeout_ms),
    };
    let server = tokio::spawn(
        conn::serve(listener, router, limits, connections, stop.clone())
            .instrument(tracing::info_span!("http-server")),
    );
    let mut tasks = Vec::new();
    if let Some(url) = &mqtt.url {
        let started = crate::io::mqtt::start(&mqtt, live.clone(), stop.clone())?;
        tasks = started.tasks;
        // Events published once the server says it listens are not missed, when the broker
        // is up; when it is not, the server serves HTTP and reads MQTT once it connects.
        if !matches!(
            tokio::time::timeout(MQTT_READY, started.subscribed).await,
            Ok(Ok(()))
        ) {
            let note = format!("the MQTT broker at {url} has not confirmed the subscriptions within {MQTT_READY:?}; serving anyway and reading events once it does");
            crate::say!("tidemark: {note}");
        }
    }
    #[cfg(feature = "cli")]
    if let Some(demo) = options.demo {
        let live = live.clone();
        let limits = crate::event::Limits::from_config(&live.plan.config);
        tokio::spawn(
            async move {
                let opts = demo.clone();
                match tokio::task::spawn_blocking(move || DemoLog::new(&opts, &limits)).await {
                    Ok(Ok(log)) => {
                        play(live, log, demo).await;
                    }
                    Ok(Err(e)) => tracing::error!("demo log: {e}"),
                    Err(e) => tracing::error!("demo log: {e}"),
                }
            }
            .instrument(tracing::info_span!("demo-source")),
        );
    }
    Ok(Running {
        addr,
        live,
        shutdown,
        server,
        tasks,
    })
}

impl Running {
    /// A handle that stops the server when `stop` is called on it.
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }

    /// Waits until the server stops (after `stop`, or on a serving error), then for the MQTT
    /// connections to finish (at most a few seconds).
    pub async fn wait(self) -> std::io::Result<()> {
        let served = match self.server.await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        };
        let _ = self.shutdown.send(true);
        let tasks = futures_util::future::join_all(self.tasks);
        if tokio::time::timeout(TASKS_GRACE, tasks).await.is_err() {
            tracing::warn!("MQTT did not disconnect within {TASKS_GRACE:?}; stopping anyway");
        }
        // Intake has stopped: make what was accepted durable and leave a checkpoint.
        match tokio::time::timeout(CLOSE_GRACE, self.live.shutdown()).await {
            Ok(_) => {}
            Err(_) => tracing::warn!(
                "the engine did not finish its checkpoint within {CLOSE_GRACE:?}; stopping anyway (the log holds every answered event)"
            ),
        }
        served
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_token_alone_is_refused_off_loopback_and_says_which_is_missing() {
        let t = |i: bool, r: bool| Tokens {
            ingest: i.then(|| "i".repeat(16)),
            read: r.then(|| "r".repeat(16)),
        };
        let public: SocketAddr = "0.0.0.0:7878".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:7878".parse().unwrap();
        let e = exposure(public, &t(true, false), false).unwrap_err();
        assert_eq!(e, ExposureError::NoReadToken { addr: public });
        let e = e.to_string();
        assert!(
            e.contains("serve.read_token") && e.contains("public_reads"),
            "{e}"
        );
        let e = exposure(public, &t(false, true), false).unwrap_err();
        assert!(e.to_string().contains("serve.ingest_token"), "{e}");
        assert!(
            exposure(public, &t(false, true), true).is_err(),
            "public_reads is for reads"
        );
        let w = exposure(public, &t(true, false), true).unwrap().unwrap();
        assert!(w.contains("need no token"), "{w}");
        assert!(
            exposure(local, &t(true, false), false).unwrap().is_some(),
            "a warning"
        );
        assert!(
            exposure(local, &t(false, true), false).unwrap().is_some(),
            "a warning"
        );
        assert_eq!(exposure(public, &t(true, true), false), Ok(None));
        assert_eq!(
            exposure(public, &t(true, true), true),
            Err(ExposureError::PublicReadsWithReadToken),
            "contradiction"
        );
    }
}

/// Why the server could not start, said for the operator; each variant keeps its cause.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A token from the environment is not a token.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The tokens would leave the server open to the network.
    #[error(transparent)]
    Exposure(#[from] ExposureError),
    /// `serve.dead_letter` cannot be opened.
    #[error("serve.dead_letter {path:?}: cannot open it: {source}")]
    DeadLetter {
        /// The file as configured.
        path: String,
        /// Why it cannot be opened.
        source: std::io::Error,
    },
    /// The data directory cannot be opened or locked.
    #[error(transparent)]
    Data(#[from] crate::durable::DurableError),
    /// The actions of the rules and alerts cannot start.
    #[error(transparent)]
    Actions(#[from] crate::io::actions::ActionsError),
    /// The key of `serve.hash_identities` cannot be read or made.
    #[error(transparent)]
    IdentityKey(#[from] KeyError),
    /// The engine cannot start.
    #[error(transparent)]
    Live(#[from] crate::live::EngineError),
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}; is another server using the port? set serve.listen or --listen")]
    Bind {
        /// The address, after `bind_address`.
        addr: SocketAddr,
        /// Why the system refused it.
        source: std::io::Error,
    },
    /// The bound listener cannot say its address.
    #[error(transparent)]
    Address(std::io::Error),
    /// MQTT cannot start.
    #[error(transparent)]
    Mqtt(#[from] crate::io::mqtt::MqttError),
}

/// The key of `serve.hash_identities`: kept in the data directory (made at the first start),
/// or a fresh one per run when nothing is kept.
pub fn identity_key(
    serve: &crate::config::Serve,
    data_dir: &std::path::Path,
) -> Result<Option<IdentityKey>, KeyError> {
    if !serve.hash_identities {
        return Ok(None);
    }
    let key = if serve.wal {
        IdentityKey::in_dir(data_dir)
    } else {
        IdentityKey::random()
    };
    key.map(Some)
}
