//! A webhook receiver for tidemark's rules and alerts: prints each firing, retraction and alert
//! transition once, however often tidemark retries it (it dedupes on `Idempotency-Key`).
//!
//! Run it, then point a rule at it (`webhook = "http://127.0.0.1:9000/coupon"`):
//!
//! ```sh
//! cargo run --example webhook_receiver -- 127.0.0.1:9000
//! ```

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use axum::Router;

/// Keys already handled, with the message kind: a firing and its retraction share a key.
type Seen = Arc<Mutex<HashSet<(String, String)>>>;

async fn receive(
    State(seen): State<Seen>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let Ok(msg) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let kind = msg["kind"].as_str().unwrap_or("?").to_string();
    if !seen.lock().unwrap().insert((key.clone(), kind.clone())) {
        println!(
            "{} {key}: {kind} again (a retry); already handled",
            uri.path()
        );
        return StatusCode::OK;
    }
    match (msg.get("rule"), msg.get("alert")) {
        (Some(rule), _) => println!(
            "{} {key}: {kind} of rule {rule} for {} (group {}, release {})",
            uri.path(),
            msg["person"],
            msg["group"],
            msg["at"]
        ),
        (_, Some(alert)) => println!(
            "{} {key}: alert {alert} {kind} at {} (value {}, baseline {})",
            uri.path(),
            msg["bucket"],
            msg["value"],
            msg["baseline"]
        ),
        _ => println!("{} {key}: {msg}", uri.path()),
    }
    StatusCode::OK
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "receiving webhooks on http://{}/ (any path)",
        listener.local_addr()?
    );
    let app = Router::new()
        .fallback(post(receive))
        .with_state(Seen::default());
    axum::serve(listener, app).await
}
