//! `POST /v1/events`: NDJSON or a JSON array (or one object) in, per-event outcomes out.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{error, stopped, AppState};
use crate::event::batch::{split, Format};

fn format_of(headers: &HeaderMap) -> Option<Format> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = ct.split(';').next()?.trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/x-ndjson"
        | "application/jsonl"
        | "application/json-lines"
        | "application/jsonlines"
        | "text/plain" => Some(Format::Lines),
        "application/json" => Some(Format::Json),
        _ => None,
    }
}

/// Takes a batch of events; answers with counts, the time at which subscribers see them, and
/// the index, outcome and reason of each event not accepted.
pub async fn events(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = state.tokens.check_ingest(&headers, &query) {
        return r.into_response();
    }
    let Some(format) = format_of(&headers) else {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send events as application/x-ndjson (one JSON object per line) or application/json (an object or an array of objects)",
        );
    };
    let events = match split(&body, format) {
        Ok(e) => e,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    match state.live.ingest("http", events).await {
        Ok(report) => (StatusCode::OK, Json(report.to_json())).into_response(),
        Err(_) => stopped(),
    }
}
