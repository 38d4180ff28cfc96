//! Splitting one request body or message payload into its events: JSON Lines, or one JSON
//! object or array of objects. Shared by HTTP ingest and MQTT ingest.

use std::fmt;

use bytes::Bytes;
use serde::de::{DeserializeSeed, IgnoredAny, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// How a body holds its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One event per non-blank line.
    Lines,
    /// One JSON object, or a JSON array of them.
    Json,
}

/// Why a body that starts as a JSON array cannot be split into its events. The message is
/// the one an ingest answer gives.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The body is not UTF-8.
    #[error("the body is not valid UTF-8")]
    NotUtf8(#[source] std::str::Utf8Error),
    /// The body is not a JSON array.
    #[error("the body is not a JSON array of events ({0}); send one event per line as application/x-ndjson to have each line judged on its own")]
    NotAnArray(#[source] serde_json::Error),
}

/// Splits a body into events: one per non-blank line, or the elements of a JSON array (a body
/// that is not an array is one event). Fails only for a body that starts as an array but is
/// not valid JSON; the message says so.
pub fn split(body: &Bytes, format: Format) -> Result<Vec<Bytes>, BatchError> {
    match format {
        Format::Lines => Ok(lines(body)),
        Format::Json => {
            let start = body.iter().position(|b| !b.is_ascii_whitespace());
            if start.map(|i| body[i]) != Some(b'[') {
                return Ok(vec![body.clone()]);
            }
            let text = std::str::from_utf8(body).map_err(BatchError::NotUtf8)?;
            let items: Vec<&RawValue> =
                serde_json::from_str(text).map_err(BatchError::NotAnArray)?;
            Ok(items
                .into_iter()
                .map(|raw| body.slice_ref(raw.get().as_bytes()))
                .collect())
        }
    }
}

/// Whether `split` would take `body`: the same answer, without building the list.
pub fn check(body: &[u8], format: Format) -> Result<(), BatchError> {
    if format == Format::Lines || !is_array(body) {
        return Ok(());
    }
    std::str::from_utf8(body).map_err(BatchError::NotUtf8)?;
    serde_json::from_slice::<Vec<IgnoredAny>>(body)
        .map(|_| ())
        .map_err(BatchError::NotAnArray)
}

/// Calls `each` with every event of a body that `check` took, in order, sharing its bytes:
/// the events of `split`, without holding them all at once.
pub fn for_each(body: &Bytes, format: Format, mut each: impl FnMut(Bytes)) {
    if format == Format::Lines {
        for line in body.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.iter().all(u8::is_ascii_whitespace) {
                each(body.slice_ref(line));
            }
        }
        return;
    }
    if !is_array(body) {
        each(body.clone());
        return;
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let seed = Elements {
        body,
        each: &mut each,
    };
    if let Err(e) = seed.deserialize(&mut de) {
        // `check` took the body, so this does not happen; say so if it ever does.
        tracing::error!("a checked JSON array failed to split: {e}");
    }
}

/// Visits the elements of a JSON array one at a time.
struct Elements<'b, F> {
    body: &'b Bytes,
    each: &'b mut F,
}

impl<'de, F: FnMut(Bytes)> DeserializeSeed<'de> for Elements<'_, F> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(Bytes)> Visitor<'de> for Elements<'_, F> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of events")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            (self.each)(self.body.slice_ref(raw.get().as_bytes()));
        }
        Ok(())
    }
}

fn is_array(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
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
        assert!(matches!(err, BatchError::NotAnArray(_)), "{err}");
        assert!(err.to_string().contains("x-ndjson"), "{err}");
    }

    #[test]
    fn for_each_gives_what_split_gives() {
        for (body, format) in [
            (&b"{\"a\":1}\r\n\n  \n{bad\n"[..], Format::Lines),
            (b" [ {\"a\":1}, {\"b\": [2]} , 3]", Format::Json),
            (b"[]", Format::Json),
            (b"{\"a\":1}", Format::Json),
            (b"  {oops", Format::Json),
        ] {
            let body = Bytes::copy_from_slice(body);
            assert!(check(&body, format).is_ok());
            let mut got = Vec::new();
            for_each(&body, format, |e| got.push(e));
            assert_eq!(got, split(&body, format).unwrap());
        }
        assert!(matches!(
            check(b"[\xff]", Format::Json),
            Err(BatchError::NotUtf8(_))
        ));
        for bad in [&b"[{\"a\":1},"[..], b"[1] x", b"[\xff]"] {
            assert!(check(bad, Format::Json).is_err());
            assert!(split(&Bytes::copy_from_slice(bad), Format::Json).is_err());
        }
    }
}
