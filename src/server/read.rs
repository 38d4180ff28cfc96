//! Reads: the snapshot, rows with filters, identity look-up, and Prometheus metrics.

use std::sync::atomic::Ordering;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::metrics::{action_metrics, prometheus, resident_memory};
use super::{filter_of, ApiError, AppState};

type Pairs = Query<Vec<(String, String)>>;

/// `GET /v1/snapshot`: OUTPUT.md's snapshot, once every event accepted before is reflected.
pub async fn snapshot(State(s): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(s.live.snapshot().await?).into_response())
}

/// `GET /v1/rows?metric=dau&day=2026-10-01`: current rows passing the filter.
pub async fn rows(State(s): State<AppState>, Query(q): Pairs) -> Result<Response, ApiError> {
    let rows = s.live.rows(filter_of(&q)?).await?;
    Ok(Json(serde_json::json!({"rows": rows})).into_response())
}

/// `GET /v1/identities/{type}/{value}`: every identity of that person.
pub async fn identity(
    State(s): State<AppState>,
    Path((kind, value)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let doc = s.live.whois(kind, value).await?;
    let status = if doc["found"] == true {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    Ok((status, Json(doc)).into_response())
}

/// `GET /metrics`: engine health in Prometheus text format.
pub async fn metrics(State(s): State<AppState>) -> Result<Response, ApiError> {
    use std::fmt::Write;
    let up = s.live.health() == crate::live::Health::Up;
    // A stopped dataflow (a lost process of the cluster) still answers this much.
    let mut text = match s.live.status().await {
        Ok(status) => prometheus(&status, resident_memory()),
        Err(_) => String::new(),
    };
    let _ = writeln!(
        text,
        "# HELP tidemark_dataflow_up 1 while the dataflow runs; 0 while a cluster waits for its processes or after one was lost (see /healthz).\n# TYPE tidemark_dataflow_up gauge\ntidemark_dataflow_up {}",
        up as u8
    );
    if let Some(a) = &s.actions {
        text.push_str(&action_metrics(&a.stats));
    }
    connections(&mut text, &s.connections);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// `/healthz`: 200 `ok` while the dataflow runs, else 503 saying why (a cluster waiting for
/// its processes, or one lost).
pub async fn healthz(State(s): State<AppState>) -> Response {
    use crate::live::Health;
    match s.live.health() {
        Health::Up => "ok\n".into_response(),
        Health::Waiting => (
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for the cluster's processes: start every process listed in --peers\n",
        )
            .into_response(),
        Health::Lost(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

/// The connection counts of the HTTP server, in the same format.
fn connections(out: &mut String, c: &super::ConnStats) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "# HELP tidemark_http_connections Open HTTP connections (serve.max_connections at most).\n# TYPE tidemark_http_connections gauge\ntidemark_http_connections {}",
        c.open.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP tidemark_http_connections_closed_total HTTP connections closed by the server, by why.\n# TYPE tidemark_http_connections_closed_total counter"
    );
    for (why, n) in [
        ("evicted", &c.evicted),
        ("refused", &c.refused),
        ("timeout", &c.timed_out),
    ] {
        let _ = writeln!(
            out,
            "tidemark_http_connections_closed_total{{reason=\"{why}\"}} {}",
            n.load(Ordering::Relaxed)
        );
    }
}
