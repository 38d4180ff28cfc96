//! Subcommands and their arguments.

mod check;
mod cluster;
mod compute;
mod erase;
mod explain;
mod generate;
mod log;
mod repair;
mod replay;
mod serve;
mod whois;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tidemark::config::Config;

/// Exact, live, self-correcting growth metrics.
#[derive(Debug, Parser)]
#[command(name = "tidemark", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve live metrics over HTTP, SSE, WebSocket and MQTT, with a dashboard at `/`.
    Serve(serve::Args),
    /// Compute the snapshot of an event log.
    Compute(compute::Args),
    /// Write a realistic synthetic event log (JSON Lines) to standard output.
    Generate(generate::Args),
    /// Validate a configuration file.
    Check(check::Args),
    /// Play an event log into a running server at a chosen pace; report acknowledgements and
    /// end-to-end latency.
    Replay(replay::Args),
    /// Show every identity of the person behind one identity, with first-seen day and channel.
    Whois(whois::Args),
    /// Explain why a rule did or did not fire for one key, with the events behind the decision.
    Explain(explain::Args),
    /// Repair a damaged data directory: keep the log up to the first damage, drop the rest.
    Repair(repair::Args),
    /// Erase a person (every linked identity and every event) from a stopped server's data
    /// directory; every metric is corrected as if they had never existed.
    Erase(erase::Args),
}

impl Cli {
    /// Whether the command keeps running until stopped (`serve`), rather than finishing a job.
    pub fn long_running(&self) -> bool {
        matches!(self.command, Command::Serve(_))
    }
}

/// Runs the chosen subcommand.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(a) => serve::run(a),
        Command::Compute(a) => compute::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Check(a) => check::run(a),
        Command::Replay(a) => replay::run(a),
        Command::Whois(a) => whois::run(a),
        Command::Explain(a) => explain::run(a),
        Command::Repair(a) => repair::run(a),
        Command::Erase(a) => erase::run(a),
    }
}

/// A `--workers` value that is not a number in 1..=1024.
#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not a number of workers; allowed: 1..=1024")]
struct BadWorkers {
    text: String,
}

/// The default number of dataflow workers: one per core but the one that ingest (parsing,
/// dedupe, interning) keeps busy, and at least one. On 2 cores one worker measures fastest
/// (BENCHMARKS.md, "Workers").
fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .max(1)
}

/// A number of dataflow workers: at least one.
fn workers(text: &str) -> Result<usize, BadWorkers> {
    match text.parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(BadWorkers { text: text.into() }),
    }
}

/// Loads the configuration file, or the defaults without one.
fn load_config(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    match path {
        None => Ok(Config::default()),
        Some(p) => Config::from_file(p).map_err(|e| match e {
            // Already names the file and why it cannot be read.
            tidemark::config::ConfigError::Read { .. } => anyhow::Error::new(e),
            e => anyhow::Error::new(e).context(format!("invalid configuration {}", p.display())),
        }),
    }
}
