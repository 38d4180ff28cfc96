//! `POST /v1/events`: NDJSON or a JSON array (or one object) in, per-event outcomes out. The
//! token was checked from the head; the body is read under the limits of `body`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{error, retry_later, ApiError, AppState};
use crate::event::batch::{check, Format};

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

/// Whether a JSON body starts as an object or an array: a bare `42`, `"x"`, `null` or `true`
/// (or nothing) is not a body of events. A body that starts as an object but is broken is
/// judged as one malformed event.
fn object_or_array(body: &[u8]) -> bool {
    matches!(
        body.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[')
    )
}

/// Takes a batch of events; answers with counts, the time at which subscribers see them, and
/// the index, outcome and reason of each event not accepted.
pub async fn events(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let Some(format) = format_of(&headers) else {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send events as application/x-ndjson (one JSON object per line) or application/json (an object or an array of objects)",
        );
    };
    let pressure = state.live.pressure();
    if let Some(lag) = pressure.busy() {
        // Turned away: nothing of it is taken, and the client sends it again after
        // `Retry-After`. The body is read and dropped first, so that a client still sending it
        // gets this answer rather than a broken connection.
        pressure.pushed_back();
        let answer = retry_later(
            StatusCode::TOO_MANY_REQUESTS,
            format!("tidemark is {lag} ms behind its input (serve.max_lag); none of this request was taken: send it again after the Retry-After seconds"),
        );
        return if state.bodies.discard(body).await {
            answer
        } else {
            super::body::closing(answer)
        };
    }
    let held = match state.bodies.read(&headers, body).await {
        Ok(held) => held,
        Err(refused) => return refused,
    };
    if format == Format::Json && !object_or_array(&held.bytes) {
        return error(
            StatusCode::BAD_REQUEST,
            "an application/json body must be one event (a JSON object) or an array of events; send one event per line as application/x-ndjson to have each line judged on its own",
        );
    }
    if let Err(why) = check(&held.bytes, format) {
        return error(StatusCode::BAD_REQUEST, why.to_string());
    }
    // The body keeps its room in `serve.ingest_memory` until the live service has taken it.
    let answer = state
        .live
        .ingest_body("http", held.bytes.clone(), format)
        .await;
    drop(held);
    match answer {
        Ok(report) => match &report.failed {
            Some(why) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the events could not be stored, so none of this request is taken yet; send it again (events stored in the meantime are answered as duplicates): {why}"),
            ),
            None => (StatusCode::OK, Json(report.to_json())).into_response(),
        },
        Err(stopped) => ApiError::from(stopped).into_response(),
    }
}
