//! Reading a request body under limits: its size (`serve.max_body`), a deadline
//! (`serve.body_timeout`), and room in the memory all bodies share (`serve.ingest_memory`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{timeout_at, Instant};

use super::{error, retry_later};

/// Bodies are accounted in units of this many bytes.
const UNIT: usize = 1024;

/// The limits every request body is read under.
#[derive(Debug)]
pub struct BodyLimits {
    pub max: usize,
    pub timeout: Duration,
    /// Room for bodies held at once, in units of `UNIT` bytes.
    memory: Arc<Semaphore>,
}

/// A body read in full, holding its room in the shared memory until dropped.
pub struct Held {
    pub bytes: Bytes,
    _room: OwnedSemaphorePermit,
}

impl BodyLimits {
    pub fn new(max: usize, timeout: Duration, memory: usize) -> Self {
        let units = memory.div_ceil(UNIT).min(Semaphore::MAX_PERMITS);
        BodyLimits {
            max,
            timeout,
            memory: Arc::new(Semaphore::new(units)),
        }
    }

    /// Reads `body` whole: 413 over `max` (at once when `Content-Length` says so), 408 past the
    /// deadline, 503 when the shared room does not free up before it, 400 when the client
    /// breaks off. Room for the whole declared length (or `max`) is taken before reading, so
    /// bodies never wait on each other halfway.
    pub async fn read(&self, headers: &HeaderMap, body: Body) -> Result<Held, Response> {
        let deadline = Instant::now() + self.timeout;
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max as u64) {
            return Err(self.too_large());
        }
        // `n <= max` (above), so it fits.
        let expected = declared.map_or(self.max, |n| usize::try_from(n).unwrap_or(self.max));
        // More units than a u32 holds cannot be had anyway: the wait below times out.
        let units = u32::try_from(expected.div_ceil(UNIT).max(1)).unwrap_or(u32::MAX);
        let room = match timeout_at(deadline, self.memory.clone().acquire_many_owned(units)).await {
            Ok(Ok(permit)) => permit,
            _ => {
                return Err(closing(retry_later(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many request bodies are being ingested at once (serve.ingest_memory); retry shortly",
                )));
            }
        };
        let mut buf = BytesMut::with_capacity(expected.min(self.max));
        let mut chunks = body.into_data_stream();
        loop {
            match timeout_at(deadline, chunks.next()).await {
                Err(_) => {
                    return Err(closing(error(
                        StatusCode::REQUEST_TIMEOUT,
                        format!(
                            "the body did not arrive within {:?} (serve.body_timeout)",
                            self.timeout
                        ),
                    )))
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(closing(error(
                        StatusCode::BAD_REQUEST,
                        format!("the body could not be read: {e}"),
                    )))
                }
                Ok(Some(Ok(chunk))) => {
                    if buf.len() + chunk.len() > self.max {
                        return Err(self.too_large());
                    }
                    buf.extend_from_slice(&chunk);
                }
            }
        }
        Ok(Held {
            bytes: buf.freeze(),
            _room: room,
        })
    }

    /// Reads `body` to its end and drops it, within `max` and the deadline, taking no room:
    /// an answer given without taking a body (a 429) then reaches a client still sending it,
    /// on a connection that stays open. False when it stopped short (the answer must close).
    pub async fn discard(&self, body: Body) -> bool {
        let deadline = Instant::now() + self.timeout;
        let mut chunks = body.into_data_stream();
        let mut seen = 0usize;
        loop {
            match timeout_at(deadline, chunks.next()).await {
                Ok(None) => return true,
                Ok(Some(Ok(chunk))) => {
                    seen += chunk.len();
                    if seen > self.max {
                        return false;
                    }
                }
                Ok(Some(Err(_))) | Err(_) => return false,
            }
        }
    }

    fn too_large(&self) -> Response {
        closing(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is over {} bytes (serve.max_body); send fewer events per request",
                self.max
            ),
        ))
    }
}

/// The answer, with the connection closed after it (the rest of the body is not read).
pub(super) fn closing(r: impl IntoResponse) -> Response {
    let mut r = r.into_response();
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn length(n: usize) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, n.to_string().parse().unwrap());
        h
    }

    #[tokio::test]
    async fn a_discarded_body_is_read_to_its_end_within_the_size() {
        let limits = BodyLimits::new(4, Duration::from_millis(200), 8);
        assert!(limits.discard(Body::from("1234")).await);
        assert!(!limits.discard(Body::from("12345")).await);
    }

    #[tokio::test]
    async fn bodies_are_read_within_size_time_and_shared_room() {
        let limits = BodyLimits::new(4096, Duration::from_millis(200), 8192);
        let held = limits
            .read(&length(5), Body::from("hello"))
            .await
            .ok()
            .unwrap();
        assert_eq!(&held.bytes[..], b"hello");
        drop(held);
        let r = limits
            .read(&length(5000), Body::from("x"))
            .await
            .err()
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "by its declared length"
        );
        let r = limits
            .read(&HeaderMap::new(), Body::from(vec![b'x'; 5000]))
            .await
            .err()
            .unwrap();
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE, "by what arrives");
        let never =
            Body::from_stream(futures_util::stream::pending::<Result<Bytes, std::io::Error>>());
        let r = limits.read(&HeaderMap::new(), never).await.err().unwrap();
        assert_eq!(r.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(r.headers()[header::CONNECTION], "close");
        // Two held bodies of 4 KiB fill the 8 KiB of room: a third waits, then gives up.
        let a = limits
            .read(&length(4096), Body::from(vec![0; 4096]))
            .await
            .ok();
        let b = limits
            .read(&length(4096), Body::from(vec![0; 4096]))
            .await
            .ok();
        assert!(a.is_some() && b.is_some());
        let r = limits
            .read(&length(10), Body::from(vec![0; 10]))
            .await
            .err()
            .unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        drop(a);
        assert!(limits
            .read(&length(10), Body::from(vec![0; 10]))
            .await
            .is_ok());
    }
}
