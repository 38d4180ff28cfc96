//! A real local HTTP receiver for webhook tests: records every request, and answers each from
//! a script (status codes, or a hang longer than the sender's timeout) before answering 200.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;

/// How the receiver answers one request.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    Status(u16),
    /// Wait this long, then answer 200 (the sender has given up by then).
    Hang(Duration),
}

/// One request as received, with what it was answered.
#[derive(Clone, Debug)]
pub struct Received {
    pub key: Option<String>,
    pub body: serde_json::Value,
    /// The status answered; 0 for a hang the sender gave up on.
    pub status: u16,
}

#[derive(Default)]
struct Inner {
    script: VecDeque<Answer>,
    received: Vec<Received>,
}

/// A receiver listening on a free loopback port (on its own thread and runtime).
pub struct Receiver {
    pub addr: String,
    inner: Arc<Mutex<Inner>>,
}

async fn take(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let answer = inner
        .lock()
        .unwrap()
        .script
        .pop_front()
        .unwrap_or(Answer::Status(200));
    // Recorded on arrival (a sender that gives up drops the connection and this handler);
    // a hang is recorded as status 0: its sender gives up before the answer.
    let (status, recorded, wait) = match answer {
        Answer::Status(s) => (s, s, None),
        Answer::Hang(d) => (200, 0, Some(d)),
    };
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    inner.lock().unwrap().received.push(Received {
        key,
        body,
        status: recorded,
    });
    if let Some(d) = wait {
        tokio::time::sleep(d).await;
    }
    StatusCode::from_u16(status).unwrap()
}

impl Receiver {
    /// Starts a receiver that answers the first requests by `script`, then 200.
    pub fn start(script: &[Answer]) -> Receiver {
        let inner = Arc::new(Mutex::new(Inner {
            script: script.iter().copied().collect(),
            received: Vec::new(),
        }));
        let state = inner.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("webhook-receiver".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                    tx.send(listener.local_addr().unwrap().to_string()).unwrap();
                    let app = Router::new().fallback(post(take)).with_state(state);
                    axum::serve(listener, app).await.unwrap();
                });
            })
            .unwrap();
        Receiver {
            addr: rx.recv().unwrap(),
            inner,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    /// Requests answered 2xx so far.
    pub fn delivered(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }

    /// Waits until `done` holds for the successful deliveries, or panics after `limit`.
    pub fn wait_for(&self, limit: Duration, what: &str, done: impl Fn(&[Received]) -> bool) {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.delivered();
            if done(&got) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "waited {limit:?} for {what}; received: {:#?}",
                    self.received()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
