//! The HTTP interface: `app(state)` builds the router (ingest, reads, SSE, WebSocket, metrics,
//! dashboard) so tests can call it without a socket. Every request passes the browser guard
//! (`Host`, `Origin`), then its token check, before a handler reads anything of its body.

mod actions;
mod auth;
mod body;
mod browser;
mod conn;
mod dashboard;
mod erase;
mod ingest;
mod metrics;
mod read;
mod run;
mod stream;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use tokio::sync::watch;

use crate::live::Engine;

pub(crate) use auth::Tokens;
pub(crate) use body::BodyLimits;
pub(crate) use browser::Access;
pub(crate) use conn::ConnStats;
pub(crate) use run::identity_key;
pub use run::{start, ExposureError, Running, ServeOptions, StartError};

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub live: Engine,
    pub tokens: Arc<Tokens>,
    /// Turns true when the server shuts down; long-lived streams end then.
    pub shutdown: watch::Receiver<bool>,
    /// The rules' and alerts' actions, when any are configured.
    pub actions: Option<Arc<crate::io::actions::Actions>>,
    /// The names and origins requests may come by.
    pub access: Arc<Access>,
    /// The limits request bodies are read under.
    pub bodies: Arc<BodyLimits>,
    /// Connection counts, for `/metrics`.
    pub connections: Arc<ConnStats>,
    /// Whether `--demo` plays into this server (the dashboard shows a badge).
    pub demo: bool,
}

/// The router of every endpoint.
pub(crate) fn app(state: AppState) -> Router {
    // Look-ups, explanations, firings and erasures need process 0's ingest state.
    let zero = from_fn_with_state(state.clone(), at_process_zero);
    let ingest = Router::new()
        .route("/v1/events", post(ingest::events))
        .route(
            "/v1/persons/{kind}/{value}",
            delete(erase::person).route_layer(zero.clone()),
        )
        .route_layer(from_fn_with_state(state.clone(), auth::require_ingest));
    let reads = Router::new()
        .route("/metrics", get(read::metrics))
        .route("/v1/snapshot", get(read::snapshot))
        .route("/v1/rows", get(read::rows))
        .route(
            "/v1/identities/{kind}/{value}",
            get(read::identity).route_layer(zero.clone()),
        )
        .route("/v1/subscribe", get(stream::sse))
        .route("/v1/ws", get(stream::websocket))
        .route(
            "/v1/firings",
            get(actions::firings).route_layer(zero.clone()),
        )
        .route(
            "/v1/rules/{rule}/explain",
            get(actions::explain).route_layer(zero.clone()),
        )
        .route("/v1/alerts", get(actions::alerts))
        .route_layer(from_fn_with_state(state.clone(), auth::require_read));
    Router::new()
        // The dashboard checks the read token itself, to answer a browser with a page.
        .route("/", get(dashboard::page))
        .route("/healthz", get(read::healthz))
        .route("/favicon.ico", get(dashboard::favicon))
        .merge(ingest)
        .merge(reads)
        .layer(from_fn_with_state(state.clone(), browser::guard))
        .layer(DefaultBodyLimit::max(state.bodies.max))
        .with_state(state)
}

/// Turns a request away from a process other than 0 of a cluster with 421, saying where to
/// ask instead.
async fn at_process_zero(
    axum::extract::State(s): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match s.live.process() {
        Some(p) if p != 0 => error(
            StatusCode::MISDIRECTED_REQUEST,
            format!("this is process {p} of the cluster; identity look-ups, explanations, firings and erasures are answered by process 0: send this request to its HTTP address"),
        ),
        _ => next.run(request).await,
    }
}

/// An error answer: status and a JSON body `{"error": ...}` that says what to do.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({"error": message.into()}))).into_response()
}

/// An error answer that tells the client to send the request again in a second
/// (`Retry-After: 1`).
pub(crate) fn retry_later(status: StatusCode, message: impl Into<String>) -> Response {
    let mut r = error(status, message);
    r.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    r
}

/// Why a request could not be answered, as the HTTP answer that says so: handlers return
/// `Result<Response, ApiError>` and use `?`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// The engine thread is gone (the server is shutting down), or it drops requests while
    /// its cluster waits for a lost process.
    #[error(transparent)]
    Stopped(#[from] crate::live::Stopped),
    #[error("{0}")]
    BadFilter(#[from] BadFilter),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Stopped(_) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the engine is not answering: the server is shutting down, or its cluster lost a process and waits for it (see /healthz)",
            ),
            ApiError::BadFilter(b) => error(StatusCode::BAD_REQUEST, b.0),
        }
    }
}

/// Parses query pairs into a filter: `metric` (repeatable, or comma-separated) and any other
/// key except `token` as a dims filter. An unknown metric name is a 400 that says so.
pub(crate) fn filter_of(pairs: &[(String, String)]) -> Result<crate::output::Filter, BadFilter> {
    let mut filter = crate::output::Filter::default();
    for (k, v) in pairs {
        match k.as_str() {
            "metric" => filter
                .metrics
                .extend(v.split(',').filter(|s| !s.is_empty()).map(String::from)),
            "token" => {}
            _ => filter.dims.push((k.clone(), v.clone())),
        }
    }
    let unknown = filter
        .metrics
        .iter()
        .find(|m| crate::metric::Metric::from_name(m).is_none());
    match unknown {
        Some(m) => Err(BadFilter(format!(
            "unknown metric {m:?}; see the snapshot's rows for the metric names"
        ))),
        None => Ok(filter),
    }
}

/// A query whose filter cannot match anything tidemark has: a 400 saying why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct BadFilter(String);
