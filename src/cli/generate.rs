//! `tidemark generate`: a realistic synthetic event log, deterministic per seed.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use tidemark::gen::{generate, GenOptions};

/// Arguments of `generate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Persons arriving over the period.
    #[arg(long, default_value_t = 1000)]
    persons: u64,
    /// Number of local days.
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// Seed: the same options give the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// First local day, YYYY-MM-DD.
    #[arg(long, default_value = "2026-10-01")]
    start: String,
    /// IANA zone whose local days the log follows.
    #[arg(long, default_value = "UTC")]
    timezone: String,
    /// Give every person one identity only (no event links two identities).
    #[arg(long)]
    no_links: bool,
    /// Percent more persons arriving on the last day than on the first (0: a flat arrival rate).
    #[arg(long, default_value_t = 150)]
    growth: u32,
    /// Nobody comes back later than this many days after arriving (default: loyal persons keep
    /// coming). With `--growth 0` this makes a steady stream, as a soak test wants.
    #[arg(long)]
    lifetime: Option<u32>,
    /// Persons arrive over the first this many days only (default: every day). The days after
    /// are a stream of a fixed population: only loyal persons coming back.
    #[arg(long)]
    arrival_days: Option<u32>,
    /// Write here instead of standard output.
    #[arg(long)]
    output: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let start: jiff::civil::Date = args
        .start
        .parse()
        .with_context(|| format!("--start {:?} must be a date YYYY-MM-DD", args.start))?;
    let timezone = jiff::tz::TimeZone::get(&args.timezone).with_context(|| {
        format!(
            "--timezone {:?} is not an IANA zone name such as Asia/Shanghai",
            args.timezone
        )
    })?;
    let options = GenOptions {
        persons: args.persons,
        days: args.days,
        seed: args.seed,
        start,
        timezone,
        links: !args.no_links,
        growth: args.growth,
        lifetime: args.lifetime,
        arrival_days: args.arrival_days,
    };
    let lines = match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let mut w = BufWriter::with_capacity(1 << 20, file);
            let n = generate(&options, &mut w)?;
            w.flush()?;
            n
        }
        None => {
            let mut w = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            let n = match generate(&options, &mut w) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    return Ok(ExitCode::SUCCESS)
                }
                r => r?,
            };
            match w.flush() {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    return Ok(ExitCode::SUCCESS)
                }
                r => r?,
            }
            n
        }
    };
    tidemark::say!(
        "tidemark generate: {lines} events, {} persons over {} days from {}",
        args.persons,
        args.days,
        args.start
    );
    Ok(ExitCode::SUCCESS)
}
