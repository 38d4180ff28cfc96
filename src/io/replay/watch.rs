//! The latency watcher: a WebSocket subscription to the server's changes whose progress marks
//! (which reach every subscriber, whatever its filter) are fed to the tracker; it reconnects
//! when the subscription drops.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::Instrument;

use super::latency::Tracker;
use super::{ReplayError, SubscribeError};
use crate::output::WireMessage;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long the first progress mark may take after subscribing.
const FIRST_MARK: Duration = Duration::from_secs(10);

/// A running watcher; `stop` ends it.
pub struct Watcher {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    /// Times the subscription dropped and was made again.
    pub reconnects: Arc<AtomicU64>,
}

impl Watcher {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Subscribes at `http_base` (e.g. `http://127.0.0.1:7878`) and returns once the first
/// progress mark has come, so every later acknowledgement can be matched.
pub async fn start(
    http_base: &str,
    read_token: Option<String>,
    tracker: Arc<Mutex<Tracker>>,
) -> Result<Watcher, ReplayError> {
    let url = format!(
        "{}/v1/ws?metric=dau",
        http_base.replacen("http://", "ws://", 1)
    );
    let mut socket = connect(&url, read_token.as_deref()).await?;
    let first = tokio::time::timeout(FIRST_MARK, next_mark(&mut socket, &tracker)).await;
    if !matches!(first, Ok(true)) {
        return Err(SubscribeError::NoMark {
            url,
            secs: FIRST_MARK.as_secs(),
        }
        .into());
    }
    let (stop, mut stopped) = watch::channel(false);
    let reconnects = Arc::new(AtomicU64::new(0));
    let count = reconnects.clone();
    let task = tokio::spawn(
        async move {
            loop {
                tokio::select! {
                    _ = stopped.wait_for(|s| *s) => return,
                    _ = async { while next_mark(&mut socket, &tracker).await {} } => {}
                }
                tracing::warn!("the progress subscription dropped; subscribing again");
                loop {
                    tokio::select! {
                        _ = stopped.wait_for(|s| *s) => return,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                    if let Ok(s) = connect(&url, read_token.as_deref()).await {
                        socket = s;
                        count.fetch_add(1, Relaxed);
                        break;
                    }
                }
            }
        }
        .instrument(tracing::info_span!("replay-watcher")),
    );
    Ok(Watcher {
        stop,
        task,
        reconnects,
    })
}

async fn connect(url: &str, token: Option<&str>) -> Result<Socket, ReplayError> {
    let fail = |source| SubscribeError::Connect {
        url: url.to_string(),
        source,
    };
    let mut request = url.into_client_request().map_err(fail)?;
    if let Some(t) = token {
        let value = format!("Bearer {t}")
            .parse()
            .map_err(|_| SubscribeError::Token {
                url: url.to_string(),
            })?;
        request.headers_mut().insert("authorization", value);
    }
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(fail)?;
    Ok(socket)
}

/// Reads messages until a progress mark (true) or the end of the subscription (false).
async fn next_mark(socket: &mut Socket, tracker: &Mutex<Tracker>) -> bool {
    while let Some(message) = socket.next().await {
        let text = match message {
            Ok(Message::Text(t)) => t,
            Ok(Message::Close(_)) | Err(_) => return false,
            Ok(_) => continue,
        };
        match serde_json::from_str::<WireMessage>(text.as_str()) {
            Ok(WireMessage::Progress { progress }) => {
                let at = Instant::now();
                tracker.lock().expect("tracker lock").mark(progress, at);
                return true;
            }
            Ok(WireMessage::Closed { .. }) => return false,
            // Upserts and resyncs say nothing of progress; neither does what cannot be read.
            Ok(WireMessage::Upsert(_) | WireMessage::Resync { .. }) | Err(_) => continue,
        }
    }
    false
}
