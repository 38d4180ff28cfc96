//! `POST /v1/events`: NDJSON or a JSON array (or one object) in, per-event outcomes out.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::value::RawValue;

use super::{error, stopped, AppState};

/// How a body holds its events.
#[derive(Debug, PartialEq, Eq)]
enum Format {
    Lines,
    Json,
}

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

/// Splits a body into events: one per non-blank line, or the elements of a JSON array.
fn split(body: &Bytes, format: Format) -> Result<Vec<Bytes>, String> {
    match format {
        Format::Lines => Ok(body
            .split(|b| *b == b'\n')
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
            .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
            .map(|line| body.slice_ref(line))
            .collect()),
        Format::Json => {
            let start = body.iter().position(|b| !b.is_ascii_whitespace());
            if start.map(|i| body[i]) != Some(b'[') {
                return Ok(vec![body.clone()]);
            }
            let text =
                std::str::from_utf8(body).map_err(|_| "the body is not valid UTF-8".to_string())?;
            let items: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| {
                format!("the body is not a JSON array of events ({e}); send one event per line as application/x-ndjson to have each line judged on its own")
            })?;
            Ok(items
                .into_iter()
                .map(|raw| body.slice_ref(raw.get().as_bytes()))
                .collect())
        }
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
    match state.live.ingest(events).await {
        Ok(report) => (StatusCode::OK, Json(report.to_json())).into_response(),
        Err(_) => stopped(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_split_into_events_by_line_or_array_element() {
        let body = Bytes::from_static(b"{\"a\":1}\r\n\n  \n{bad\n");
        let got = split(&body, Format::Lines).unwrap();
        assert_eq!(
            got,
            vec![
                Bytes::from_static(b"{\"a\":1}"),
                Bytes::from_static(b"{bad")
            ]
        );
        let body = Bytes::from_static(b" [ {\"a\":1}, {\"b\": [2]} , 3]");
        let got = split(&body, Format::Json).unwrap();
        assert_eq!(
            got,
            vec![
                Bytes::from_static(b"{\"a\":1}"),
                Bytes::from_static(b"{\"b\": [2]}"),
                Bytes::from_static(b"3")
            ]
        );
        let body = Bytes::from_static(b"{\"a\":1}");
        assert_eq!(split(&body, Format::Json).unwrap().len(), 1);
        let err = split(&Bytes::from_static(b"[{\"a\":1},"), Format::Json).unwrap_err();
        assert!(err.contains("x-ndjson"), "{err}");
    }
}
