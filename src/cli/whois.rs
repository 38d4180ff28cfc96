//! `tidemark whois`: all identities of the person behind one identity, from an event log.

use std::process::ExitCode;

use serde_json::json;
use tidemark::time::day_label;

use super::compute::{read_log, LogArgs};

/// Arguments of `whois`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    log: LogArgs,
    /// The identity to look up, as TYPE:VALUE (for example `openid:o_42` or `user:u_42`).
    identity: String,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Some((kind, value)) = args.identity.split_once(':') else {
        anyhow::bail!(
            "identity {:?} must be TYPE:VALUE, for example openid:o_42",
            args.identity
        );
    };
    let mut finished = read_log(&args.log, true, true, |_, _, _| Ok(()))?;
    let Some(ident) = finished.ingest.lookup(kind, value) else {
        println!(
            "{}",
            json!({"identity": {"type": kind, "value": value}, "found": false})
        );
        return Ok(ExitCode::from(1));
    };
    let index = &finished.output.identities;
    let person = index.person(ident).unwrap_or(ident);
    let members: Vec<_> = index
        .members(person)
        .into_iter()
        .filter_map(|i| finished.dict.ident(i))
        .map(|(t, v)| json!({"type": t, "value": v}))
        .collect();
    let first = index.first(person);
    let cal = &finished.plan.config.calendar;
    let out = json!({
        "identity": {"type": kind, "value": value},
        "found": true,
        "identities": members,
        "first_seen": first.map(|f| cal.format_instant(f.ts)),
        "first_seen_day": first.map(|f| day_label(cal.day(f.ts))),
        "channel": first.map(|f| finished.dict.channel(f.channel)),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}
