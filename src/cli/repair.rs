//! `tidemark repair`: keeps every log record before the first damage in a data directory and
//! drops the rest, saying what it dropped.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tidemark::{repair, DirLock};

#[derive(Debug, Parser)]
pub struct Args {
    /// The data directory of `tidemark serve` (stop the server first).
    #[arg(long)]
    data: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !args.data.is_dir() {
        anyhow::bail!(
            "{} is not a directory; give the data directory of tidemark serve (serve.data_dir or --data)",
            args.data.display()
        );
    }
    let _lock = DirLock::acquire(&args.data)?;
    let report = repair(&args.data)
        .with_context(|| format!("cannot repair the log in {}", args.data.display()))?;
    let mut out = String::new();
    match &report.damage {
        None => out.push_str(&format!(
            "the log in {} is healthy: {} records; nothing to repair\n",
            args.data.display(),
            report.kept_records
        )),
        Some(damage) => {
            out.push_str(&format!("damage found: {damage}\n"));
            out.push_str(&format!(
                "kept {} records before it; dropped {} bytes",
                report.kept_records, report.dropped_bytes
            ));
            if report.dropped_segments.is_empty() {
                out.push('\n');
            } else {
                out.push_str(&format!(
                    ", deleting {} segment files:\n",
                    report.dropped_segments.len()
                ));
                for p in &report.dropped_segments {
                    out.push_str(&format!("  {}\n", p.display()));
                }
            }
            out.push_str("events in the dropped records are gone from this server; send them again if you still have them (the ones kept are answered as duplicates)\n");
        }
    }
    use std::io::Write;
    let _ = std::io::stdout().write_all(out.as_bytes());
    Ok(ExitCode::SUCCESS)
}
