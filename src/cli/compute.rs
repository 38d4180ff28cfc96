//! `tidemark compute`: an event log in, the snapshot of OUTPUT.md out, rejects to a dead-letter file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use tidemark::{Finished, Pipeline};

use super::log::{lost, pipeline_options, read_log_in, LogArgs, Track};

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

/// What every process of a cluster keeps: all build the same dataflow, whatever each was
/// asked to write, so process 0 may write firings (which name identities) whatever the others
/// were told.
const CLUSTER_TRACK: Track = Track {
    identities: true,
    verdicts: false,
};

/// A process of a cluster other than process 0: sends its part of the log (if it has one) to
/// process 0, and lends its workers until process 0 finishes.
fn lend_workers(args: &Args, cluster: tidemark::Cluster) -> anyhow::Result<ExitCode> {
    let (process, n) = (cluster.process, cluster.peers.len());
    let cfg = super::load_config(args.log.config.as_ref())?;
    let (pipeline, mut parts) =
        Pipeline::with_parts(cfg, pipeline_options(&args.log, CLUSTER_TRACK), cluster)
            .context("cannot start the dataflow workers")?;
    let lines = match &args.log.input {
        Some(input) => match super::log::send_part(input, &pipeline, &mut parts)? {
            Ok(lines) => lines,
            Err(e) => return Err(lost(pipeline, e)),
        },
        None => 0,
    };
    if let Err(e) = parts.end(&pipeline) {
        return Err(lost(pipeline, e));
    }
    pipeline.finish()?;
    if !args.quiet {
        tidemark::say!(
            "tidemark compute: process {process} of {n} done; it sent {lines} lines; process 0 wrote the output"
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let cluster = args.cluster.cluster(None)?;
    if let Some(c) = &cluster {
        if c.process == 0 && args.output.as_os_str() == "-" {
            anyhow::bail!("in a cluster, pass --output FILE: timely reports its connections on standard output");
        }
        let writes = [
            (args.output.as_os_str() != "-", "--output"),
            (args.rejects.is_some(), "--rejects"),
            (args.firings.is_some(), "--firings"),
        ];
        if c.process > 0 {
            if let Some((_, flag)) = writes.iter().find(|(given, _)| *given) {
                anyhow::bail!(
                    "process {} takes no {flag}: process 0 writes the snapshot, firings and rejects of the whole cluster (pass {flag} to process 0)",
                    c.process
                );
            }
            if let Some(input) = args.log.input.as_ref().filter(|i| i.is_dir()) {
                anyhow::bail!(
                    "process {} cannot read the data directory {}: only process 0 reads one",
                    c.process,
                    input.display()
                );
            }
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
    let track = match cluster {
        Some(_) => CLUSTER_TRACK,
        None => Track {
            identities: args.firings.is_some(),
            verdicts: false,
        },
    };
    let finished = read_log_in(
        &args.log,
        track,
        args.quiet,
        cluster,
        |source, index, r, text| {
            if let Some(w) = rejects.as_mut() {
                let input = String::from_utf8_lossy(text);
                serde_json::to_writer(&mut *w, &r.dead_letter(source, index, &input))?;
                w.write_all(b"\n")?;
            }
            Ok(())
        },
    )?;
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
