//! `tidemark generate`: a realistic synthetic event log, deterministic per seed.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use tidemark::gen::{generate, GenOptions, Preset, Sessions, Shape};

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
    /// The log's shape: `real` (a mini-program: DAU/MAU about 0.2, short visits of 4-5 events a
    /// day), `sparse` (most persons come once or twice, long visits) or `dense` (DAU/MAU about
    /// 0.35, long visits).
    #[arg(long, value_enum, default_value_t = Preset::Real)]
    shape: Preset,
    /// Persons come back as to a product people use: about this DAU/MAU once a month of
    /// arrivals has passed, whatever the shape.
    #[arg(long)]
    stickiness: Option<f64>,
    /// How long each active day is, whatever the shape: `short` (about 4-5 events) or `long`
    /// (about 17).
    #[arg(long, value_enum)]
    sessions: Option<Length>,
    /// Write here instead of standard output.
    #[arg(long)]
    output: Option<PathBuf>,
}

/// How long each active day is.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Length {
    Short,
    Long,
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
        arrival_days: match args.arrival_days {
            Some(0) => anyhow::bail!("--arrival-days 0 leaves nobody to arrive; give 1 or more"),
            days => days,
        },
        shape: match args.stickiness {
            None => args.shape.shape(),
            Some(s) if s > 0.0 && s <= 0.6 => Shape::sticky(s),
            Some(s) => anyhow::bail!("--stickiness {s} must be above 0 and at most 0.6, e.g. 0.2"),
        },
        sessions: match args.sessions {
            None => args.shape.sessions(),
            Some(Length::Short) => Sessions::SHORT,
            Some(Length::Long) => Sessions::LONG,
        },
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
