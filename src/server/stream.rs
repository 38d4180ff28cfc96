//! Subscriptions: `GET /v1/subscribe` (Server-Sent Events) and `GET /v1/ws` (WebSocket), each
//! the snapshot, a progress mark, then upserts and progress marks, as OUTPUT.md says.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};
use tokio::sync::watch;

use crate::output::Subscription;

use super::{filter_of, ApiError, AppState};
use crate::output::{Feed, WireMessage};

/// The JSON messages one feed item stands for.
pub fn messages(feed: Feed) -> Vec<Arc<str>> {
    match feed {
        Feed::Upsert(u) => vec![u.text().clone()],
        Feed::Progress(progress) => vec![WireMessage::Progress { progress }.text().into()],
        Feed::Resync(rows) => {
            let mut out = Vec::with_capacity(rows.len() + 1);
            out.push(WireMessage::Resync { resync: true }.text().into());
            out.extend(rows.iter().map(|u| u.text().clone()));
            out
        }
        Feed::Closed(reason) => vec![WireMessage::Closed {
            closed: reason.into(),
        }
        .text()
        .into()],
    }
}

/// The subscription's messages until it ends or the server shuts down.
fn feed_stream(
    feeds: Subscription,
    mut shutdown: watch::Receiver<bool>,
) -> impl Stream<Item = Arc<str>> {
    let stop = async move {
        let _ = shutdown.wait_for(|down| *down).await;
    };
    feeds
        .take_until(stop)
        .flat_map(|f| stream::iter(messages(f)))
}

/// `GET /v1/subscribe?metric=dau&day=2026-10-01`: an SSE stream, one JSON message per event.
pub async fn sse(
    State(s): State<AppState>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let rx = s.live.subscribe(filter_of(&q)?).await?;
    let events = feed_stream(rx, s.shutdown.clone())
        .map(|text| Ok::<_, Infallible>(Event::default().data(&*text)));
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// `GET /v1/ws?metric=dau`: the same messages as text frames over a WebSocket.
pub async fn websocket(
    State(s): State<AppState>,
    Query(q): Query<Vec<(String, String)>>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let rx = s.live.subscribe(filter_of(&q)?).await?;
    let shutdown = s.shutdown.clone();
    Ok(upgrade
        .on_upgrade(move |socket| pump(socket, rx, shutdown))
        .into_response())
}

/// Sends the feed as text frames until either side closes; frames from the client are ignored.
async fn pump(mut socket: WebSocket, rx: Subscription, shutdown: watch::Receiver<bool>) {
    let mut messages = Box::pin(feed_stream(rx, shutdown));
    loop {
        tokio::select! {
            next = messages.next() => match next {
                Some(text) => {
                    if socket.send(Message::Text((&*text).into())).await.is_err() {
                        return;
                    }
                }
                None => break,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
