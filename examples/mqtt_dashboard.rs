//! The rows a `tidemark serve --mqtt` keeps retained on the broker, printed as a table: at once
//! on connecting (retained messages), then again at each progress mark that changed them.
//!
//! ```sh
//! mosquitto -p 1883 &
//! cargo run --release -- serve --demo --mqtt mqtt://127.0.0.1:1883 &
//! cargo run --release --example mqtt_dashboard -- 127.0.0.1:1883 dau
//! ```
//!
//! Arguments: the broker's `HOST:PORT`, then metric names (none: every row). `--marks N`
//! stops after N progress marks.

use std::collections::BTreeMap;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

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
    let broker = args.first().cloned().unwrap_or("127.0.0.1:1883".into());
    let (host, port) = broker.rsplit_once(':').ok_or("the broker is HOST:PORT")?;
    let metrics = &args[1.min(args.len())..];

    let id = format!("tidemark-mqtt-dashboard-{}", std::process::id());
    let mut options = MqttOptions::new(id, host, port.parse::<u16>()?);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut events) = AsyncClient::new(options, 1_024);
    // `tidemark/rows/{metric}/{dims...}`: retained, one per row; `tidemark/progress` after
    // each batch of changes.
    if metrics.is_empty() {
        client
            .subscribe("tidemark/rows/#", QoS::AtLeastOnce)
            .await?;
    }
    for m in metrics {
        client
            .subscribe(format!("tidemark/rows/{m}/#"), QoS::AtLeastOnce)
            .await?;
    }
    client
        .subscribe("tidemark/progress", QoS::AtLeastOnce)
        .await?;

    let mut table: BTreeMap<String, String> = BTreeMap::new();
    let mut changed = 0usize;
    let mut seen = 0u64;
    loop {
        let Event::Incoming(Packet::Publish(p)) = events.poll().await? else {
            continue;
        };
        if p.topic == "tidemark/progress" {
            if changed > 0 {
                let progress = String::from_utf8_lossy(&p.payload);
                println!("-- {progress}: {} rows, {changed} changed", table.len());
                for (topic, value) in &table {
                    println!("{topic} {value}");
                }
                changed = 0;
            }
            seen += 1;
            if marks.is_some_and(|n| seen >= n) {
                client.disconnect().await?;
                return Ok(());
            }
            continue;
        }
        // A row's current value, `{"metric","dims","value"}`; empty once the row is gone.
        let topic = p.topic.trim_start_matches("tidemark/rows/").to_string();
        if p.payload.is_empty() {
            table.remove(&topic);
        } else {
            let row: serde_json::Value = serde_json::from_slice(&p.payload)?;
            table.insert(topic, row["value"].to_string());
        }
        changed += 1;
    }
}
