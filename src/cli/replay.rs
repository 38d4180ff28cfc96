//! `tidemark replay`: plays an event log into a running server over HTTP or MQTT at a chosen
//! pace and reports acknowledgements, outcomes and end-to-end latency.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tidemark::replay::{Log, Pace, Progress, ReplayOptions, Target};

/// Arguments of `replay`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The event log (JSON Lines); `-` reads standard input.
    #[arg(long)]
    input: PathBuf,
    /// Where to send: http://HOST:PORT (POST /v1/events) or mqtt://HOST:PORT (a broker
    /// tidemark serve reads from).
    #[arg(long)]
    target: String,
    /// The server's HTTP address, for progress marks and counters; required with an mqtt://
    /// target (an http:// target is its own).
    #[arg(long, value_name = "http://HOST:PORT")]
    http: Option<String>,
    /// Events per second, in log order.
    #[arg(long, conflicts_with = "speed")]
    rate: Option<f64>,
    /// Keep the log's own timing (event ts), this many times faster, e.g. 3600x.
    #[arg(long, value_name = "Nx", value_parser = speed)]
    speed: Option<f64>,
    /// Parallel senders: HTTP connections or MQTT clients.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Events per request or message, at most.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Stop sending after this long, e.g. 60s or 5m (default: at the end of the log).
    #[arg(long, value_parser = duration)]
    duration: Option<Duration>,
    /// Do not record the latency of events sent in this first stretch, e.g. 5s.
    #[arg(long, default_value = "0s", value_parser = duration)]
    warmup: Duration,
    /// How long an answer, PUBACK or the last progress mark may take.
    #[arg(long, default_value = "30s", value_parser = timeout)]
    timeout: Duration,
    /// Ingest token (default: env TIDEMARK_INGEST_TOKEN).
    #[arg(long)]
    token: Option<String>,
    /// Read token for progress marks and counters (default: env TIDEMARK_READ_TOKEN).
    #[arg(long)]
    read_token: Option<String>,
    /// MQTT topic the events are published to.
    #[arg(long, default_value = "tidemark/events/replay")]
    topic: String,
    /// Listen here (HOST:PORT) for the rules' webhooks and report the latency from each
    /// firing's release to its receipt; point the rules' `webhook` actions at it and run the
    /// server with `serve.clock = "event"`.
    #[arg(long, value_name = "HOST:PORT")]
    webhook: Option<String>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    report: Option<PathBuf>,
}

/// Parses `500ms`, `5s`, `2m`, `1h30m` (and `0`, for no warmup).
fn duration(text: &str) -> anyhow::Result<Duration> {
    if matches!(text.trim(), "0" | "0s") {
        return Ok(Duration::ZERO);
    }
    let ms = tidemark::config::parse_millis(text)?;
    u64::try_from(ms)
        .map(Duration::from_millis)
        .map_err(|_| anyhow::anyhow!("{text:?} is negative; write e.g. 500ms, 5s, 2m or 1h30m"))
}

/// A duration longer than 0.
fn timeout(text: &str) -> anyhow::Result<Duration> {
    match duration(text)? {
        d if d.is_zero() => bail!("must be more than 0, e.g. 30s"),
        d => Ok(d),
    }
}

/// A positive factor such as `60x`.
fn speed(text: &str) -> anyhow::Result<f64> {
    match text.trim().trim_end_matches(['x', 'X']).parse::<f64>() {
        Ok(n) if n > 0.0 && n.is_finite() => Ok(n),
        _ => bail!("{text:?} must be a positive factor, e.g. 60x"),
    }
}

fn pace(args: &Args) -> anyhow::Result<Pace> {
    if let Some(r) = args.rate {
        if !(r > 0.0 && r.is_finite()) {
            bail!("--rate must be a positive number of events per second, e.g. 20000");
        }
        return Ok(Pace::Rate(r));
    }
    if let Some(n) = args.speed {
        return Ok(Pace::Speed(n));
    }
    Ok(Pace::Unpaced)
}

fn options(args: &Args) -> anyhow::Result<ReplayOptions> {
    let timeout = args.timeout;
    let target = Target::parse(&args.target, &args.topic, timeout)
        .map_err(|e| anyhow::anyhow!("--target {e}"))?;
    let http = match (&target, &args.http) {
        (_, Some(h)) => match Target::parse(h, "", timeout) {
            Ok(Target::Http { base }) => base,
            _ => bail!("--http {h:?} must be the server's http://HOST:PORT"),
        },
        (Target::Http { base }, None) => base.clone(),
        (Target::Mqtt(_), None) => bail!(
            "an mqtt:// target needs --http http://HOST:PORT, the server's HTTP address, to see when events are reflected"
        ),
    };
    if args.connections == 0 || args.batch == 0 {
        bail!("--connections and --batch must be at least 1");
    }
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    Ok(ReplayOptions {
        target,
        http,
        pace: pace(args)?,
        connections: args.connections,
        batch: args.batch,
        duration: args.duration,
        warmup: args.warmup,
        ingest_token: args.token.clone().or_else(|| env("TIDEMARK_INGEST_TOKEN")),
        read_token: args
            .read_token
            .clone()
            .or_else(|| env("TIDEMARK_READ_TOKEN")),
        timeout,
        webhook: args.webhook.clone(),
    })
}

fn read_input(path: &PathBuf) -> anyhow::Result<Log> {
    let mut text = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut text)
            .context("cannot read standard input")?;
    } else {
        text = std::fs::read(path)
            .with_context(|| format!("cannot read --input {}", path.display()))?;
    }
    Ok(Log::from_bytes(text.into()))
}

/// The progress bar on standard error (hidden when it is not a terminal).
fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{bar:30} {pos}/{len} sent  {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

fn show(bar: &ProgressBar, p: &Progress) {
    bar.set_position(p.sent);
    let rate = p.acked as f64 / p.elapsed.as_secs_f64().max(1e-3);
    let p99 = p.p99_ms.map_or("-".into(), |v| format!("{v:.1} ms"));
    let phase = if p.draining {
        "  (waiting for the last answers)"
    } else {
        ""
    };
    bar.set_message(format!(
        "acked {}  {rate:.0} ev/s  p99 {p99}{phase}",
        p.acked
    ));
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let options = options(&args)?;
    let log = read_input(&args.input)?;
    if log.lines.is_empty() {
        bail!("--input {} holds no events", args.input.display());
    }
    let bar = progress_bar(log.lines.len() as u64);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("tidemark-replay")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(tidemark::replay::run(log, options, |p| show(&bar, p)));
    bar.finish_and_clear();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            tidemark::say!("error: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    tidemark::console::print(&report.to_text())?;
    if let Some(path) = &args.report {
        let text = serde_json::to_string_pretty(&report.to_json())?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write --report {}", path.display()))?;
    }
    let problems = report.problems();
    for p in &problems {
        tidemark::say!("tidemark replay: {p}");
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
