//! `tidemark explain`: why a rule did or did not fire for one key, from an event log.

use std::process::ExitCode;

use super::log::{read_log, LogArgs, Track};

/// Arguments of `explain`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    log: LogArgs,
    /// The rule, by name.
    #[arg(long)]
    rule: String,
    /// The key: the trigger's `match` prop, or the trigger event's id for rules without `match`.
    #[arg(long)]
    key: String,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let track = Track {
        identities: true,
        verdicts: true,
    };
    let finished = read_log(&args.log, track, true, |_, _, _, _| Ok(()))?;
    let Some(doc) = finished.explain(&args.rule, &args.key) else {
        let names: Vec<&str> = finished.rule_names().collect();
        anyhow::bail!(
            "no rule is named {:?}; the config has {}",
            args.rule,
            if names.is_empty() {
                "no [[rules]]".to_string()
            } else {
                names.join(", ")
            }
        );
    };
    tidemark::console::print(&(serde_json::to_string_pretty(&doc)? + "\n"))?;
    Ok(if doc["decision"] == "no_trigger" {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
