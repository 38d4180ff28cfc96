//! Reading a whole event log for the commands that take one: lines, progress on a terminal, and
//! a cluster's parts (each process's own, taken by process 0 in a fixed order).

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::{Path, PathBuf};
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
    /// processes of a cluster other than process 0, where it is this process's part of the log.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Dataflow worker threads (default: the cores less one for ingest, at least 1).
    #[arg(short = 'w', long, default_value_t = super::default_workers(), value_parser = super::workers)]
    pub workers: usize,
    /// Accepted events per dataflow batch, at least (a batch grows while the dataflow is busy).
    #[arg(long, default_value_t = 100_000)]
    pub batch: usize,
}

/// What a read of a whole log keeps besides the rows.
#[derive(Clone, Copy, Debug, Default)]
pub struct Track {
    /// Persons of identities (for look-ups and firings).
    pub identities: bool,
    /// Every trigger's verdict (for explanations).
    pub verdicts: bool,
}

/// Reads a whole log through a pipeline; calls `on_reject` with the source, line number,
/// reason and text of each rejected line.
pub fn read_log(
    log: &LogArgs,
    track: Track,
    quiet: bool,
    on_reject: impl FnMut(&str, u64, &tidemark::Rejection, &[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<Finished> {
    read_log_in(log, track, quiet, None, on_reject)
}

pub fn pipeline_options(log: &LogArgs, track: Track) -> PipelineOptions {
    PipelineOptions {
        workers: log.workers,
        track_identities: track.identities,
        track_verdicts: track.verdicts,
        batch_events: log.batch,
        wall_clock: false,
        in_flight: None,
    }
}

/// `read_log` as process 0 of `cluster`, when there is one: its own log, and the chunks of the
/// others' parts in the order [`tidemark::Parts`] gives them.
pub fn read_log_in(
    log: &LogArgs,
    track: Track,
    quiet: bool,
    cluster: Option<tidemark::Cluster>,
    mut on_reject: impl FnMut(&str, u64, &tidemark::Rejection, &[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<Finished> {
    let Some(input) = log.input.as_ref() else {
        anyhow::bail!("--input is required: the event log to read (`-` for standard input)");
    };
    let cfg = super::load_config(log.config.as_ref())?;
    let options = pipeline_options(log, track);
    let (pipeline, mut parts) = match cluster {
        None => (Pipeline::new(cfg, options), None),
        Some(c) => match Pipeline::with_parts(cfg, options, c) {
            Ok((p, parts)) => (Ok(p), Some(parts)),
            Err(e) => (Err(e), None),
        },
    };
    let mut pipeline = pipeline.context("cannot start the dataflow workers")?;
    let name = input.display().to_string();
    let mut reader = if input.is_dir() {
        // A data directory of `serve`: what it kept, read back as a restart would.
        let r = pipeline
            .read_data_dir(input)
            .with_context(|| format!("cannot read the data directory {name}"))?;
        if !quiet {
            tidemark::say!(
                "read {name}: a checkpoint of {} events and {} log records after it",
                r.checkpoint_events,
                r.records
            );
        }
        None
    } else {
        Some(open_log(input)?)
    };
    let mut progress = Progress::new(quiet);
    let mut line = Vec::with_capacity(1024);
    let mut index: u64 = 0;
    let chunk = parts.as_ref().map(|_| tidemark::PART_LINES);
    let read: Result<(), tidemark::PartsError> = loop {
        if let Some(r) = reader.as_mut() {
            let more = read_lines(r, &mut line, &mut index, chunk, &name, |i, text| {
                offer_line(&mut pipeline, &mut on_reject, &mut progress, &name, i, text)
            })?;
            if !more {
                reader = None;
            }
        }
        let Some(parts) = parts.as_mut() else {
            if reader.is_none() {
                break Ok(());
            }
            continue;
        };
        let round = match parts.next_round(&pipeline) {
            Ok(round) => round,
            Err(e) => break Err(e),
        };
        for part in round {
            for (i, text) in (part.first_line..).zip(&part.lines) {
                offer_line(
                    &mut pipeline,
                    &mut on_reject,
                    &mut progress,
                    &part.source,
                    i,
                    text,
                )?;
            }
        }
        if reader.is_none() && parts.all_ended() {
            break Ok(());
        }
    };
    if let Err(e) = read {
        return Err(lost(pipeline, e));
    }
    progress.finishing();
    Ok(pipeline.finish()?)
}

/// Offers line `i` of `source` (a blank one is skipped); a rejected one goes to `on_reject`.
fn offer_line(
    pipeline: &mut Pipeline,
    on_reject: &mut impl FnMut(&str, u64, &tidemark::Rejection, &[u8]) -> anyhow::Result<()>,
    progress: &mut Progress,
    source: &str,
    i: u64,
    text: &[u8],
) -> anyhow::Result<()> {
    if text.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(());
    }
    if let Outcome::Rejected(r) = pipeline.offer_bytes(text) {
        on_reject(source, i, &r, text)?;
    }
    progress.tick();
    Ok(())
}

/// Why parts could not be sent or taken: processes started unlike, when they were (the
/// dataflow says so), else the lost process.
pub fn lost(pipeline: Pipeline, e: tidemark::PartsError) -> anyhow::Error {
    match pipeline.finish() {
        Err(d @ tidemark::DataflowError::Cluster(_)) => d.into(),
        _ => e.into(),
    }
}

/// Opens an event log (`-`: standard input).
fn open_log(input: &Path) -> anyhow::Result<BufReader<Box<dyn Read>>> {
    let source: Box<dyn Read> = if input.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            File::open(input).with_context(|| format!("cannot open input {}", input.display()))?,
        )
    };
    Ok(BufReader::with_capacity(1 << 20, source))
}

/// Reads up to `max` lines (all of them without it), numbering them on from `index`, and calls
/// `each` with the number and text (without its line end) of each. Returns whether the log
/// goes on.
fn read_lines(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    index: &mut u64,
    max: Option<usize>,
    name: &str,
    mut each: impl FnMut(u64, &[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<bool> {
    let mut read = 0;
    while max.is_none_or(|m| read < m) {
        line.clear();
        let n = reader
            .read_until(b'\n', line)
            .with_context(|| format!("cannot read {name}"))?;
        if n == 0 {
            return Ok(false);
        }
        read += 1;
        *index += 1;
        each(*index, trim_line(line))?;
    }
    Ok(true)
}

/// Lines read so far, on a terminal.
struct Progress {
    show: bool,
    lines: u64,
    started: Instant,
    last: Instant,
}

impl Progress {
    fn new(quiet: bool) -> Progress {
        Progress {
            show: !quiet && std::io::stderr().is_terminal(),
            lines: 0,
            started: Instant::now(),
            last: Instant::now(),
        }
    }

    fn tick(&mut self) {
        self.lines += 1;
        if self.show && self.lines.is_multiple_of(65_536) && self.last.elapsed().as_millis() >= 500
        {
            self.last = Instant::now();
            let rate = self.lines as f64 / self.started.elapsed().as_secs_f64();
            let n = self.lines;
            tidemark::console::say_raw(format_args!("\rread {n} lines ({rate:.0} lines/s)   "));
        }
    }

    fn finishing(&self) {
        if self.show {
            let n = self.lines;
            tidemark::console::say_raw(format_args!(
                "\rread {n} lines; finishing the dataflow...   \r"
            ));
        }
    }
}

fn trim_line(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && (line[end - 1] == b'\n' || line[end - 1] == b'\r') {
        end -= 1;
    }
    &line[..end]
}

/// Sends the log at `input` to process 0 as this process's part, in chunks; returns the lines
/// sent, or why the cluster could not take them (a reading error is the outer one).
pub fn send_part(
    input: &Path,
    pipeline: &Pipeline,
    parts: &mut tidemark::Parts,
) -> anyhow::Result<Result<u64, tidemark::PartsError>> {
    let name = input.display().to_string();
    let mut reader = open_log(input)?;
    let mut line = Vec::with_capacity(1024);
    let mut lines = 0;
    loop {
        let mut chunk = tidemark::Part {
            source: name.clone(),
            first_line: lines + 1,
            lines: Vec::with_capacity(tidemark::PART_LINES),
        };
        // Blank lines go too, so that the line numbers hold at process 0.
        let max = Some(tidemark::PART_LINES);
        let more = read_lines(&mut reader, &mut line, &mut lines, max, &name, |_, text| {
            chunk.lines.push(text.to_vec());
            Ok(())
        })?;
        if !chunk.lines.is_empty() {
            if let Err(e) = parts.send(pipeline, chunk) {
                return Ok(Err(e));
            }
        }
        if !more {
            return Ok(Ok(lines));
        }
    }
}
