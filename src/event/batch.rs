//! Splitting one request body or message payload into its events: JSON Lines, or one JSON
//! object or array of objects. Shared by HTTP ingest and MQTT ingest.

use bytes::Bytes;
use serde_json::value::RawValue;

/// How a body holds its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One event per non-blank line.
    Lines,
    /// One JSON object, or a JSON array of them.
    Json,
}

/// Splits a body into events: one per non-blank line, or the elements of a JSON array (a body
/// that is not an array is one event). Fails only for a body that starts as an array but is
/// not valid JSON; the message says so.
pub fn split(body: &Bytes, format: Format) -> Result<Vec<Bytes>, String> {
    match format {
        Format::Lines => Ok(lines(body)),
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

/// The non-blank lines of `body` (a trailing `\r` dropped), sharing its bytes.
pub fn lines(body: &Bytes) -> Vec<Bytes> {
    body.split(|b| *b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .map(|line| body.slice_ref(line))
        .collect()
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
