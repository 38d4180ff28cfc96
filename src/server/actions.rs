//! Rules and alerts over HTTP: the `stream` action at `/v1/firings` (SSE, or WebSocket when
//! upgraded), `/v1/rules/{rule}/explain?key=K` and `/v1/alerts`.

use std::convert::Infallible;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, Stream, StreamExt};
use tokio::sync::{broadcast, watch};

use super::{error, ApiError, AppState};
use crate::io::actions::StreamItem;

type Pairs = Query<Vec<(String, String)>>;

/// The messages of the `stream` actions whose rule or alert is among `sources` (none: all);
/// a subscriber that falls behind gets `{"lagged": N}` with how many it missed.
fn messages(
    rx: broadcast::Receiver<StreamItem>,
    sources: Vec<String>,
    mut shutdown: watch::Receiver<bool>,
) -> impl Stream<Item = String> {
    let items = stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(item) => Some((Ok(item), rx)),
            Err(broadcast::error::RecvError::Lagged(n)) => Some((Err(n), rx)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    });
    let stop = async move {
        let _ = shutdown.wait_for(|down| *down).await;
    };
    items.take_until(stop).filter_map(move |item| {
        let text = match item {
            Ok(i) if sources.is_empty() || sources.contains(&i.source) => Some(i.body.to_string()),
            Ok(_) => None,
            Err(n) => Some(serde_json::json!({ "lagged": n }).to_string()),
        };
        std::future::ready(text)
    })
}

/// `GET /v1/firings?rule=NAME` (repeatable; `alert=NAME` too): firings, retractions and alert
/// transitions of rules and alerts with `stream = true`, as SSE or, upgraded, a WebSocket.
pub async fn firings(
    State(s): State<AppState>,
    Query(q): Pairs,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let mut sources = Vec::new();
    for (k, v) in &q {
        match k.as_str() {
            "rule" | "alert" => sources.push(v.clone()),
            "token" => {}
            other => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("unknown parameter {other:?}; filter with rule=NAME or alert=NAME"),
                )
            }
        }
    }
    let plan = &s.live.plan.config;
    if let Some(unknown) = sources.iter().find(|n| {
        !plan.rules.iter().any(|r| &r.name == *n) && !plan.alerts.iter().any(|a| &a.name == *n)
    }) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("no rule or alert is named {unknown:?}"),
        );
    }
    let Some(actions) = &s.actions else {
        return error(
            StatusCode::NOT_FOUND,
            "no rule or alert has a stream action; add [[rules.actions]] stream = true",
        );
    };
    let stream = messages(actions.subscribe(), sources, s.shutdown.clone());
    match upgrade {
        Ok(ws) => ws
            .on_upgrade(move |socket| pump(socket, stream))
            .into_response(),
        Err(_) => Sse::new(stream.map(|text| Ok::<_, Infallible>(Event::default().data(text))))
            .keep_alive(KeepAlive::default())
            .into_response(),
    }
}

async fn pump(mut socket: WebSocket, stream: impl Stream<Item = String>) {
    let mut stream = Box::pin(stream);
    loop {
        tokio::select! {
            next = stream.next() => match next {
                Some(text) => {
                    if socket.send(Message::Text(text.into())).await.is_err() {
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

/// `GET /v1/rules/{rule}/explain?key=K`: the rule's decision on that key, with its evidence.
pub async fn explain(
    State(s): State<AppState>,
    Path(rule): Path<String>,
    Query(q): Pairs,
) -> Result<Response, ApiError> {
    let Some(key) = q.iter().find(|(k, _)| k == "key").map(|(_, v)| v.clone()) else {
        return Ok(error(
            StatusCode::BAD_REQUEST,
            "say which key: ?key=K (the trigger's match prop, or its event id without match)",
        ));
    };
    Ok(match s.live.explain(rule.clone(), key).await? {
        Some(doc) => Json(doc).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no rule is named {rule:?}")),
    })
}

/// `GET /v1/alerts`: every alert's state, last judged bucket and last transition.
pub async fn alerts(State(s): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(s.live.alerts().await?).into_response())
}
