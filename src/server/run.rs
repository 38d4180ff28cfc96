//! Running the server: bind (loopback only without tokens), start the live service and its
//! sources and sinks, and shut everything down in order on a signal.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tracing::Instrument;

use super::{app, AppState, Tokens};
use crate::config::Config;
use crate::io::demo::{demo_log, play, DemoOptions};
use crate::live::{Live, LiveOptions};
use crate::plan::Plan;

/// What to run besides the HTTP interface.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    pub workers: usize,
    pub demo: Option<DemoOptions>,
    /// The data directory: the delivery log of actions lives here.
    pub data_dir: std::path::PathBuf,
}

/// A started server.
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    pub live: Live,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Sources and sinks that end on shutdown (MQTT), waited for after the server.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Longest wait at start for the broker to confirm the ingest subscriptions.
const MQTT_READY: std::time::Duration = std::time::Duration::from_secs(3);

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

/// Starts the live service, the HTTP server and the configured sources.
pub async fn start(config: Config, options: ServeOptions) -> Result<Running, StartError> {
    let serve = config.serve.clone().with_env().map_err(|e| e.to_string())?;
    let tokens = Tokens {
        ingest: serve.ingest_token.clone(),
        read: serve.read_token.clone(),
    };
    let listen: SocketAddr = serve
        .listen
        .parse()
        .map_err(|e| format!("serve.listen {:?}: {e}", serve.listen))?;
    let (addr, note) = bind_address(listen, &tokens);
    if let Some(note) = note {
        tracing::warn!("{note}");
        eprintln!("tidemark: {note}");
    } else if !tokens.any() {
        eprintln!("tidemark: no tokens are configured; listening on loopback only");
    }
    let mqtt = config.mqtt.clone();
    let (shutdown, stop) = watch::channel(false);
    let acting = config
        .rules
        .iter()
        .map(|r| &r.actions)
        .chain(config.alerts.iter().map(|a| &a.actions))
        .any(|a| !a.is_empty());
    let actions = if acting {
        let a = crate::io::actions::Actions::start(&config, &options.data_dir, stop.clone())
            .map_err(|e| e.to_string())?;
        Some(Arc::new(a))
    } else {
        None
    };
    let plan = Arc::new(Plan::new(config));
    let live = Live::start(
        plan,
        LiveOptions::from_config(&serve, options.workers.max(1)),
        actions.as_ref().map(|a| a.sink()),
    )
    .map_err(|e| format!("cannot start the dataflow workers: {e}"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}; is another server using the port? set serve.listen or --listen"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let state = AppState {
        live: live.clone(),
        tokens: Arc::new(tokens),
        shutdown: stop.clone(),
        actions: actions.clone(),
    };
    let router = app(state, serve.max_body);
    let mut stop_server = stop.clone();
    let server = tokio::spawn(
        async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stop_server.wait_for(|down| *down).await;
                })
                .await
        }
        .instrument(tracing::info_span!("http-server")),
    );
    let mut tasks = Vec::new();
    if let Some(url) = &mqtt.url {
        let started =
            crate::io::mqtt::start(&mqtt, live.clone(), stop.clone()).map_err(|e| e.to_string())?;
        tasks = started.tasks;
        // Events published once the server says it listens are not missed, when the broker
        // is up; when it is not, the server serves HTTP and reads MQTT once it connects.
        if !matches!(
            tokio::time::timeout(MQTT_READY, started.subscribed).await,
            Ok(Ok(()))
        ) {
            let note = format!("the MQTT broker at {url} has not confirmed the subscriptions within {MQTT_READY:?}; serving anyway and reading events once it does");
            tracing::warn!("{note}");
            eprintln!("tidemark: {note}");
        }
    }
    if let Some(demo) = options.demo {
        let live = live.clone();
        let limits = crate::event::Limits::from_config(&live.plan.config);
        tokio::spawn(
            async move {
                let opts = demo.clone();
                match tokio::task::spawn_blocking(move || demo_log(&opts, &limits)).await {
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
        served
    }
}

/// Why the server could not start, said for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(String);

impl From<String> for StartError {
    fn from(s: String) -> Self {
        StartError(s)
    }
}
