//! `tidemark compute`: an event log in, the snapshot of OUTPUT.md out, rejects to a dead-letter file.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use tidemark::{Finished, Outcome, Pipeline, PipelineOptions};

/// Arguments shared by commands that read a whole log.
#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// Configuration file (TOML); without it the defaults apply.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Event log as JSON Lines; `-` reads standard input; a directory is read as the data
    /// directory of `tidemark serve` (stop the server first). Required, except on the
    /// processes of a cluster other than process 0.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Dataflow worker threads (default: the cores less one for ingest, at least 1).
    #[arg(short = 'w', long, default_value_t = super::default_workers(), value_parser = super::workers)]
    pub workers: usize,
    /// Accepted events per dataflow batch, at least (a batch grows while the dataflow is busy).
    #[arg(long, default_value_t = 100_000)]
    pub batch: usize,
}

/// Arguments of `compute`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    log: LogArgs,
    /// Where to write the snapshot; `-` (the default) writes to standard output.
    #[arg(long, default_value = "-")]
    output: PathBuf,
    /// Dead-letter file: one JSON line per rejected input with its reason.
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// Write the rules' firings here as JSON Lines, in decision order (ACTIONS.md).
    #[arg(long)]
    firings: Option<PathBuf>,
    /// Print no progress or summary on standard error.
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    cluster: super::cluster::ClusterArgs,
}

/// What a read of a whole log keeps besides the rows.
#[derive(Clone, Copy, Debug, Default)]
pub struct Track {
    /// Persons of identities (for look-ups and firings).
    pub identities: bool,
    /// Every trigger's verdict (for explanations).
    pub verdicts: bool,
}

/// Reads a whole log through a pipeline; calls `on_reject` for each rejected line.
pub fn read_log(
    log: &LogArgs,
    track: Track,
    quiet: bool,
    on_reject: impl FnMut(u64, &tidemark::Rejection, &[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<Finished> {
    read_log_in(log, track, quiet, None, on_reject)
}

fn pipeline_options(log: &LogArgs, track: Track) -> PipelineOptions {
    PipelineOptions {
        workers: log.workers,
        track_identities: track.identities,
        track_verdicts: track.verdicts,
        batch_events: log.batch,
        wall_clock: false,
        in_flight: None,
    }
}

/// `read_log` as process 0 of `cluster`, when there is one.
fn read_log_in(
    log: &LogArgs,
    track: Track,
    quiet: bool,
    cluster: Option<tidemark::Cluster>,
    mut on_reject: impl FnMut(u64, &tidemark::Rejection, &[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<Finished> {
    let Some(input) = log.input.as_ref() else {
        anyhow::bail!("--input is required: the event log to read (`-` for standard input)");
    };
    let cfg = super::load_config(log.config.as_ref())?;
    let options = pipeline_options(log, track);
    let mut pipeline = match cluster {
        None => Pipeline::new(cfg, options),
        Some(c) => Pipeline::in_cluster(cfg, options, c),
    }
    .context("cannot start the dataflow workers")?;
    if input.is_dir() {
        // A data directory of `serve`: what it kept, read back as a restart would.
        let r = pipeline
            .read_data_dir(input)
            .with_context(|| format!("cannot read the data directory {}", input.display()))?;
        if !quiet {
            tidemark::say!(
                "read {}: a checkpoint of {} events and {} log records after it",
                input.display(),
                r.checkpoint_events,
                r.records
            );
        }
        return Ok(pipeline.finish()?);
    }
    let source: Box<dyn Read> = if input.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            File::open(input).with_context(|| format!("cannot open input {}", input.display()))?,
        )
    };
    let mut reader = BufReader::with_capacity(1 << 20, source);
    let show_progress = !quiet && std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut line = Vec::with_capacity(1024);
    let mut index: u64 = 0;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("cannot read {}", input.display()))?;
        if n == 0 {
            break;
        }
        index += 1;
        let text = trim_line(&line);
        if text.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        if let Outcome::Rejected(r) = pipeline.offer_bytes(text) {
            on_reject(index, &r, text)?;
        }
        if show_progress && index.is_multiple_of(65_536) && last_report.elapsed().as_millis() >= 500
        {
            last_report = Instant::now();
            let rate = index as f64 / started.elapsed().as_secs_f64();
            tidemark::console::say_raw(format_args!("\rread {index} lines ({rate:.0} lines/s)   "));
        }
    }
    if show_progress {
        tidemark::console::say_raw(format_args!(
            "\rread {index} lines; finishing the dataflow...   \r"
        ));
    }
    Ok(pipeline.finish()?)
}

fn trim_line(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && (line[end - 1] == b'\n' || line[end - 1] == b'\r') {
        end -= 1;
    }
    &line[..end]
}

/// What every process of a cluster keeps: all build the same dataflow, whatever each was
/// asked to write, so process 0 may write firings (which name identities) whatever the others
/// were told.
const CLUSTER_TRACK: Track = Track {
    identities: true,
    verdicts: false,
};

/// A process of a cluster other than process 0: lends its workers until process 0 finishes.
fn lend_workers(args: &Args, cluster: tidemark::Cluster) -> anyhow::Result<ExitCode> {
    let (process, n) = (cluster.process, cluster.peers.len());
    let cfg = super::load_config(args.log.config.as_ref())?;
    let pipeline = Pipeline::in_cluster(cfg, pipeline_options(&args.log, CLUSTER_TRACK), cluster)
        .context("cannot start the dataflow workers")?;
    pipeline.finish()?;
    if !args.quiet {
        tidemark::say!(
            "tidemark compute: process {process} of {n} done; process 0 wrote the output"
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let cluster = args.cluster.cluster(None)?;
    if let Some(c) = &cluster {
        if c.process > 0 && args.log.input.is_some() {
            anyhow::bail!(
                "process {} takes no --input: process 0 reads the log and sends every batch to the whole cluster",
                c.process
            );
        }
        if c.process == 0 && args.output.as_os_str() == "-" {
            anyhow::bail!("in a cluster, pass --output FILE: timely reports its connections on standard output");
        }
        if !args.quiet {
            tidemark::say!(
                "tidemark compute: process {} of {}: waiting for every process at {}",
                c.process,
                c.peers.len(),
                c.peers.join(",")
            );
        }
    }
    if let Some(c) = cluster.clone().filter(|c| c.process > 0) {
        return lend_workers(&args, c);
    }
    let mut rejects: Option<BufWriter<File>> = match &args.rejects {
        None => None,
        Some(p) => Some(BufWriter::new(
            File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
    };
    let source = args
        .log
        .input
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let track = match cluster {
        Some(_) => CLUSTER_TRACK,
        None => Track {
            identities: args.firings.is_some(),
            verdicts: false,
        },
    };
    let finished = read_log_in(&args.log, track, args.quiet, cluster, |index, r, text| {
        if let Some(w) = rejects.as_mut() {
            let input = String::from_utf8_lossy(text);
            serde_json::to_writer(&mut *w, &r.dead_letter(&source, index, &input))?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })?;
    if let Some(mut w) = rejects {
        w.flush().context("cannot write the rejects file")?;
    }
    if let Some(path) = &args.firings {
        write_firings(&finished, path)?;
    }
    let snapshot = finished.snapshot();
    let text = serde_json::to_string(&snapshot)?;
    if args.output.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.write_all(b"\n")?;
    } else {
        std::fs::write(&args.output, text + "\n")
            .with_context(|| format!("cannot write {}", args.output.display()))?;
    }
    if !args.quiet {
        let c = finished.counts();
        let secs = started.elapsed().as_secs_f64();
        let total = c.accepted + c.duplicates + c.rejected_total();
        tidemark::say!(
            "tidemark compute: {} accepted, {} duplicates, {} rejected {:?}; {} rows; {:.2}s ({:.0} events/s){}",
            c.accepted,
            c.duplicates,
            c.rejected_total(),
            c.rejected,
            finished.row_count(),
            secs,
            total as f64 / secs.max(1e-9),
            peak_memory().map(|kb| format!("; peak memory {} MiB", kb / 1024)).unwrap_or_default()
        );
        if c.rejected_total() > 0 && args.rejects.is_none() {
            tidemark::say!("tidemark compute: pass --rejects FILE to keep the rejected lines with their reasons");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the firings as JSON Lines in decision order.
fn write_firings(finished: &Finished, path: &PathBuf) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = BufWriter::new(file);
    for line in finished.firings() {
        serde_json::to_writer(&mut w, &line)?;
        w.write_all(b"\n")?;
    }
    w.flush()
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Peak resident memory of this process in KiB, where the system reports it.
fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
