//! A client of a running `tidemark serve` that keeps a live table of rows from its
//! Server-Sent Events subscription, and prints it at each progress mark that changed it.
//!
//! ```sh
//! cargo run --release -- serve --demo &                          # or any running serve
//! cargo run --release --example subscribe_sse -- http://127.0.0.1:7878 dau
//! ```
//!
//! Arguments: the server's URL, then metric names (none: every row). With the read token set,
//! pass it as `TIDEMARK_READ_TOKEN`. `--marks N` stops after N progress marks.

use std::collections::BTreeMap;

use futures_util::StreamExt;
use serde_json::Value;
use tidemark::metric::Metric;
use tidemark::output::WireMessage;

/// One row: metric and dims (as the server writes them).
type RowKey = (Metric, String);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let marks = match args.iter().position(|a| a == "--marks") {
        Some(i) => {
            let n = args
                .get(i + 1)
                .ok_or("--marks takes a number")?
                .parse::<u64>()?;
            args.drain(i..i + 2);
            Some(n)
        }
        None => None,
    };
    let server = args
        .first()
        .cloned()
        .unwrap_or("http://127.0.0.1:7878".into());
    // Metric names are `[a-z0-9_]`: nothing to escape.
    let query: Vec<String> = args[1.min(args.len())..]
        .iter()
        .map(|m| format!("metric={m}"))
        .collect();
    let url = format!(
        "{}/v1/subscribe?{}",
        server.trim_end_matches('/'),
        query.join("&")
    );
    let mut request = reqwest::Client::new().get(url);
    if let Ok(token) = std::env::var("TIDEMARK_READ_TOKEN") {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?.error_for_status()?;

    let mut table: BTreeMap<RowKey, Value> = BTreeMap::new();
    let mut changed = 0usize;
    let mut seen = 0u64;
    let mut pending: Vec<u8> = Vec::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        pending.extend_from_slice(&chunk?);
        // An SSE event ends with a blank line; its `data:` lines are one JSON message.
        while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = pending.drain(..end + 2).collect();
            let data: String = std::str::from_utf8(&event)?
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            if data.is_empty() {
                continue; // a keep-alive comment
            }
            match serde_json::from_str::<WireMessage>(&data)? {
                WireMessage::Progress { progress } => {
                    if changed > 0 {
                        println!(
                            "-- progress {progress}: {} rows, {changed} changed",
                            table.len()
                        );
                        for ((metric, dims), value) in &table {
                            println!("{} {dims} {value}", Value::from(metric.name()));
                        }
                        changed = 0;
                    }
                    seen += 1;
                    if marks.is_some_and(|n| seen >= n) {
                        return Ok(());
                    }
                }
                // Fell behind: the rows that follow replace the table.
                WireMessage::Resync { .. } => table.clear(),
                WireMessage::Closed { closed } => {
                    return Err(format!("the server closed the subscription: {closed:?}").into());
                }
                WireMessage::Upsert(u) => {
                    let key = (u.metric, Value::Object(u.dims).to_string());
                    match u.value {
                        None => table.remove(&key),
                        Some(value) => table.insert(key, value),
                    };
                    changed += 1;
                }
            }
        }
    }
    Ok(())
}
