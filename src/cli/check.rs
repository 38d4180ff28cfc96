//! `tidemark check`: validates a configuration file and summarises it.

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The TOML file to validate.
    #[arg(long)]
    config: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let cfg = super::load_config(Some(&args.config))?;
    tidemark::console::print(&format!(
        "ok: {} is valid (timezone {}, {} funnel(s), {} ratio(s), retention up to day {}, sliding windows {:?}, {} rule(s), {} alert(s))\n",
        args.config.display(),
        cfg.timezone,
        cfg.funnels.len(),
        cfg.ratios.len(),
        cfg.retention_max_day,
        cfg.sliding_windows,
        cfg.rules.len(),
        cfg.alerts.len()
    ))?;
    Ok(ExitCode::SUCCESS)
}
