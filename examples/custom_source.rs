//! Events from a source of your own (a Kafka consumer, a queue, a socket) into the live engine
//! that `tidemark serve` runs, in-process: each batch is answered event by event, and an offset
//! is committed only once its events are in. A task sending a generated log through a channel
//! stands in for the consumer here.
//!
//! ```sh
//! cargo run --release --example custom_source
//! ```
//!
//! It prints the answer of every 20th batch, then the new users per day.

use bytes::Bytes;
use tidemark::config::Config;
use tidemark::output::{Feed, Filter};
use tidemark::Engine;
use tokio::sync::mpsc;

/// The stand-in consumer: a generated log, one message per event, with its offset.
async fn consume(out: mpsc::Sender<(u64, Bytes)>) {
    let mut log = Vec::new();
    let options = tidemark::gen::GenOptions {
        persons: 2_000,
        days: 14,
        ..Default::default()
    };
    tidemark::gen::generate(&options, &mut log).expect("generate into memory");
    let log = Bytes::from(log);
    let lines = log.split(|b| *b == b'\n').filter(|l| !l.is_empty());
    for (offset, line) in lines.enumerate() {
        if out
            .send((offset as u64, log.slice_ref(line)))
            .await
            .is_err()
        {
            return;
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `[serve]` settings apply as in `tidemark serve` (horizon, future timestamps, batching).
    let config = Config::from_toml("")?;
    // No data directory: nothing is kept after the program ends.
    let live = Engine::builder(config).start()?;
    let mut changes = live.subscribe(Filter::metrics(["new_users"])).await?;

    let (tx, mut rx) = mpsc::channel(4_096);
    tokio::spawn(consume(tx));
    let mut batch = Vec::new();
    let mut batches = 0u64;
    let mut committed = None;
    // Up to 500 messages at a time, as they come.
    while rx.recv_many(&mut batch, 500).await > 0 {
        let last = batch.last().map(|(offset, _)| *offset);
        let events = batch.drain(..).map(|(_, line)| line).collect();
        let answer = live.ingest_from("custom", events).await?;
        if let Some(why) = &answer.failed {
            // Not stored (a data directory that cannot be written): send the batch again.
            return Err(format!("not stored: {why}").into());
        }
        // Every event is accepted, a duplicate, or rejected with a reason: commit.
        committed = last;
        batches += 1;
        if batches.is_multiple_of(20) {
            println!("offset {:?}: {}", committed, answer.to_json());
        }
    }
    println!("committed through offset {committed:?}");

    // The rows as of every event sent (the snapshot waits for them), then what the
    // subscription saw meanwhile.
    let snapshot = live.snapshot().await?;
    for row in snapshot["rows"].as_array().into_iter().flatten() {
        if row["metric"] == "new_users" {
            println!("new users {} {}", row["dims"]["day"], row["value"]);
        }
    }
    let mut upserts = 0;
    while let Some(feed) = changes.try_recv() {
        upserts += usize::from(matches!(feed, Feed::Upsert(_)));
    }
    println!("the subscription received {upserts} new_users changes");
    live.shutdown().await?;
    Ok(())
}
