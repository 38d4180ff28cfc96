//! tidemark inside your own program: an engine in-process, fed an event log line by line,
//! printing DAU each time it changes, then the final DAU of every day.
//!
//! ```sh
//! cargo run --release --example embed                 # a generated 30-day log
//! cargo run --release --example embed -- events.ndjson
//! ```
//!
//! Output: `dau DAY VALUE` for each change as it happens (`-` when a day's row goes away),
//! then `final dau DAY VALUE` for every day, the same rows `tidemark compute` writes.

use std::collections::BTreeMap;
use std::sync::Arc;

use tidemark::config::Config;
use tidemark::output::{Feed, Filter, Subscription, Upsert};
use tidemark::{Outcome, Pipeline, PipelineOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The log: a file named on the command line, or a generated one.
    let log = match std::env::args_os().nth(1) {
        Some(path) => std::fs::read(path)?,
        None => {
            let mut text = Vec::new();
            let options = tidemark::gen::GenOptions {
                persons: 5_000,
                days: 30,
                ..Default::default()
            };
            tidemark::gen::generate(&options, &mut text)?;
            text
        }
    };

    // The configuration is the same TOML `tidemark compute --config` reads ("" = defaults).
    let config = Config::from_toml("")?;
    let mut engine = Pipeline::new(config, PipelineOptions::default())?;
    // Row changes of one metric: OUTPUT.md's upsert envelopes, as typed fields.
    let mut changes = engine.subscribe(Filter::metrics(["dau"]));

    let mut dau: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for (n, line) in log.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        // Each line is accepted, a duplicate, or rejected with a reason; a bad line costs
        // nothing else.
        if let Outcome::Rejected(why) = engine.offer_bytes(line) {
            eprintln!("line {}: {why}", n + 1);
        }
        if n % 20_000 == 19_999 {
            // Send what was accepted to the dataflow and wait until the rows reflect it.
            engine.sync();
            print_changes(&mut changes, &mut dau);
        }
    }
    engine.sync();
    print_changes(&mut changes, &mut dau);
    for (day, value) in &dau {
        println!("final dau {day} {value}");
    }
    Ok(())
}

/// Prints and applies every DAU change received so far.
fn print_changes(changes: &mut Subscription, dau: &mut BTreeMap<String, serde_json::Value>) {
    while let Some(feed) = changes.try_recv() {
        let upserts: Vec<Arc<Upsert>> = match feed {
            Feed::Upsert(u) => vec![u],
            // Fell behind: start again from these rows.
            Feed::Resync(rows) => {
                dau.clear();
                rows.to_vec()
            }
            Feed::Progress(_) => continue,
            Feed::Closed(why) => panic!("subscription closed: {why}"),
        };
        for u in upserts {
            let day = u.dims["day"].as_str().unwrap_or_default().to_string();
            match &u.value {
                None => {
                    println!("dau {day} -");
                    dau.remove(&day);
                }
                Some(value) => {
                    println!("dau {day} {value}");
                    dau.insert(day, value.clone());
                }
            }
        }
    }
}
