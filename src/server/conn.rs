//! Connections: accepted up to `serve.max_connections` (beyond it the longest-idle one makes
//! room, or the newcomer gets 503), each closed when its request head is slower than
//! `serve.header_timeout` or when it sits idle longer than `serve.idle_timeout`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tracing::Instrument;

/// The connection limits of `[serve]`.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

/// Largest request head and read buffer of a connection.
const READ_BUFFER: usize = 64 * 1024;

/// Longest a connection may take to finish after shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Counts for `/metrics`.
#[derive(Debug, Default)]
pub struct ConnStats {
    pub open: AtomicUsize,
    pub evicted: AtomicU64,
    pub refused: AtomicU64,
    pub timed_out: AtomicU64,
}

/// Milliseconds since the first call, for timestamps kept in atomics.
fn clock() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    crate::time::millis(START.get_or_init(Instant::now).elapsed()).saturating_add(1)
}

/// One open connection, as the registry and its watchdog see it.
#[derive(Debug, Default)]
struct Conn {
    /// Requests under way (from head to the end of the answer).
    busy: AtomicUsize,
    /// Taken over by a WebSocket: never idle, never evicted.
    upgraded: AtomicBool,
    /// When it last became idle (`clock()`).
    idle_since: AtomicU64,
    /// When the first byte of the next request's head arrived; 0 while none has.
    head_since: AtomicU64,
    /// Evicted: its slot has gone to a newer connection.
    evicted: AtomicBool,
    kill: Notify,
}

impl Conn {
    fn idle(&self) -> bool {
        self.busy.load(Ordering::Acquire) == 0 && !self.upgraded.load(Ordering::Acquire)
    }

    /// Whether a timeout has run out, and which.
    fn expired(&self, limits: &ConnLimits) -> Option<&'static str> {
        self.expired_at(limits, clock())
    }

    fn expired_at(&self, limits: &ConnLimits, now: u64) -> Option<&'static str> {
        if !self.idle() {
            return None;
        }
        let head = self.head_since.load(Ordering::Acquire);
        if head != 0 {
            return (now.saturating_sub(head) > crate::time::millis(limits.header_timeout))
                .then_some("serve.header_timeout");
        }
        let idle = self.idle_since.load(Ordering::Acquire);
        (now.saturating_sub(idle) > crate::time::millis(limits.idle_timeout))
            .then_some("serve.idle_timeout")
    }
}

/// Open connections, by id.
struct Registry {
    max: usize,
    stats: Arc<ConnStats>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    conns: HashMap<u64, Arc<Conn>>,
}

/// A connection's place in the registry; freed when the socket closes.
struct Slot {
    id: u64,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // An evicted connection's place went to its successor already.
        if self.conn.evicted.load(Ordering::Acquire) {
            return;
        }
        let mut inner = self
            .registry
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        inner.conns.remove(&self.id);
        self.registry
            .stats
            .open
            .store(inner.conns.len(), Ordering::Relaxed);
    }
}

impl Registry {
    /// A place for a new connection: a free one, or the one of the connection that has been
    /// idle longest (which is closed); none when every connection is busy.
    fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.conns.len() >= self.max {
            let victim = inner
                .conns
                .iter()
                .filter(|(_, c)| c.idle())
                .min_by_key(|(_, c)| c.idle_since.load(Ordering::Acquire))
                .map(|(id, _)| *id)?;
            if let Some(c) = inner.conns.remove(&victim) {
                c.evicted.store(true, Ordering::Release);
                c.kill.notify_one();
                self.stats.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
        inner.next += 1;
        let id = inner.next;
        let conn = Arc::new(Conn::default());
        conn.idle_since.store(clock(), Ordering::Release);
        inner.conns.insert(id, conn.clone());
        self.stats.open.store(inner.conns.len(), Ordering::Relaxed);
        Some(Slot {
            id,
            conn,
            registry: self.clone(),
        })
    }

    fn is_empty(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .conns
            .is_empty()
    }
}

/// The socket, noting when the first byte of a request head arrives; it holds the slot, so a
/// WebSocket that outlives its HTTP connection keeps its place.
struct Tracked {
    stream: TcpStream,
    slot: Slot,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            let conn = &self.slot.conn;
            if conn.busy.load(Ordering::Acquire) == 0
                && conn.head_since.load(Ordering::Acquire) == 0
            {
                conn.head_since.store(clock(), Ordering::Release);
            }
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A request under way: the connection is busy until its answer has been sent.
struct Busy(Arc<Conn>);

impl Busy {
    fn begin(conn: Arc<Conn>) -> Busy {
        conn.busy.fetch_add(1, Ordering::AcqRel);
        conn.head_since.store(0, Ordering::Release);
        Busy(conn)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.idle_since.store(clock(), Ordering::Release);
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An answer's body that keeps its request busy until it has been sent (or dropped).
struct Answer {
    inner: Body,
    _busy: Busy,
}

impl hyper::body::Body for Answer {
    type Data = bytes::Bytes;
    type Error = axum::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Accepts connections until `stop` turns true, then waits (a while) for them to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    stats: Arc<ConnStats>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let registry = Arc::new(Registry {
        max: limits.max_connections,
        stats: stats.clone(),
        inner: Mutex::default(),
    });
    let service = TowerToHyperService::new(router);
    loop {
        let (stream, peer) = tokio::select! {
            _ = stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors or similar: wait a moment instead of spinning.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        match registry.admit() {
            Some(slot) => {
                let service = service.clone();
                let stats = stats.clone();
                let stop = stop.clone();
                tokio::spawn(
                    one(stream, slot, service, limits, stats, stop)
                        .instrument(tracing::debug_span!("http-connection", %peer)),
                );
            }
            None => {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(
                    refuse(stream).instrument(tracing::debug_span!("http-refused", %peer)),
                );
            }
        }
    }
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    while !registry.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Serves one connection until it ends, is evicted, times out, or the server stops.
async fn one(
    stream: TcpStream,
    slot: Slot,
    service: TowerToHyperService<Router>,
    limits: ConnLimits,
    stats: Arc<ConnStats>,
    mut stop: watch::Receiver<bool>,
) {
    let conn = slot.conn.clone();
    let per_request = conn.clone();
    let handler = hyper::service::service_fn(move |req: Request<Incoming>| {
        let busy = Busy::begin(per_request.clone());
        let answer = hyper::service::Service::call(&service, req);
        async move {
            let response: Response<Body> = answer.await?;
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                busy.0.upgraded.store(true, Ordering::Release);
            }
            Ok::<_, Infallible>(response.map(|inner| Answer { inner, _busy: busy }))
        }
    });
    let io = TokioIo::new(Tracked { stream, slot });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // This module times heads and idleness itself (hyper's timer cannot tell them apart).
        .header_read_timeout(None)
        .max_buf_size(READ_BUFFER)
        .keep_alive(true);
    let connection = builder.serve_connection(io, handler).with_upgrades();
    tokio::pin!(connection);
    let tick = (limits.header_timeout.min(limits.idle_timeout) / 4)
        .clamp(Duration::from_millis(25), Duration::from_secs(1));
    let mut ticks = tokio::time::interval(tick);
    let mut stopping = false;
    loop {
        tokio::select! {
            done = connection.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!("connection ended: {e}");
                }
                return;
            }
            _ = conn.kill.notified() => {
                tracing::debug!("connection closed to make room for a newer one");
                return;
            }
            _ = stopped(&mut stop), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = ticks.tick() => {
                if let Some(key) = conn.expired(&limits) {
                    tracing::debug!("connection closed: {key} ran out");
                    stats.timed_out.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }
}

/// Resolves once the server stops.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|down| *down).await;
}

/// Tells a connection that found no room so, and closes it.
async fn refuse(mut stream: TcpStream) {
    let body = r#"{"error":"too many open connections (serve.max_connections); retry shortly"}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Raises the soft limit on open files to the hard one, so connections up to the limit do not
/// run out of descriptors; returns the limit in force.
pub fn raise_open_files() -> Option<u64> {
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        let mut lim = std::mem::zeroed::<libc::rlimit>();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return Some(raised.rlim_cur as u64);
            }
        }
        Some(lim.rlim_cur as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(max: usize) -> Arc<Registry> {
        Arc::new(Registry {
            max,
            stats: Arc::default(),
            inner: Mutex::default(),
        })
    }

    #[test]
    fn a_full_registry_evicts_the_longest_idle_and_never_a_busy_one() {
        let r = registry(2);
        let a = r.admit().unwrap();
        a.conn.idle_since.store(1, Ordering::Release);
        let b = r.admit().unwrap();
        let _busy = Busy::begin(b.conn.clone());
        let c = r.admit().expect("a is idle and makes room");
        assert!(a.conn.evicted.load(Ordering::Acquire));
        assert_eq!(r.stats.evicted.load(Ordering::Relaxed), 1);
        drop(a);
        assert_eq!(
            r.inner.lock().unwrap().conns.len(),
            2,
            "a's place went to c"
        );
        c.conn.upgraded.store(true, Ordering::Release);
        assert!(r.admit().is_none(), "b is busy and c a WebSocket");
        drop(c);
        assert!(r.admit().is_some());
    }

    #[test]
    fn heads_and_idleness_have_their_own_timeouts() {
        let limits = ConnLimits {
            max_connections: 16,
            header_timeout: Duration::from_millis(100),
            idle_timeout: Duration::from_millis(1000),
        };
        let c = Conn::default();
        c.idle_since.store(10_000, Ordering::Release);
        assert_eq!(c.expired_at(&limits, 10_900), None, "idle, within 1 s");
        assert_eq!(c.expired_at(&limits, 11_001), Some("serve.idle_timeout"));
        c.head_since.store(10_500, Ordering::Release);
        assert_eq!(c.expired_at(&limits, 10_590), None, "a head under way");
        assert_eq!(c.expired_at(&limits, 10_601), Some("serve.header_timeout"));
        let busy = Busy::begin(Arc::new(Conn::default()));
        assert_eq!(busy.0.head_since.load(Ordering::Acquire), 0);
        assert_eq!(
            busy.0.expired_at(&limits, u64::MAX),
            None,
            "a request under way"
        );
    }
}
