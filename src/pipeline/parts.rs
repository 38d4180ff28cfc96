//! A log split across the processes of a cluster: each process reads its own part, and
//! process 0 takes the parts' chunks in a fixed order, so the result does not depend on timing.

use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use super::Pipeline;
use crate::engine::{RelayBody, RelayHook, Relayed};
use crate::plan::Plan;

/// Lines in one chunk of a part. Process 0 takes its own chunk `k`, then chunk `k` of process 1,
/// of process 2, and so on: the order events are ingested in depends on the parts alone.
pub const PART_LINES: usize = 16_384;

/// Chunks a process may have sent that process 0 has not taken yet.
const WINDOW: usize = 4;

/// How long a wait for another process goes before it checks that the dataflow still runs.
const CHECK: Duration = Duration::from_millis(200);

/// One chunk of a process's part of the log.
#[derive(Clone, Debug, Default)]
pub struct Part {
    /// The part's name as its process knows it (its file), for dead letters.
    pub source: String,
    /// The line number of `lines[0]` in that file (from 1).
    pub first_line: u64,
    /// The lines, without their line ends (blank ones too, so that numbers hold).
    pub lines: Vec<Vec<u8>>,
}

/// Why a part could not be sent or taken.
#[derive(Debug, thiserror::Error)]
pub enum PartsError {
    /// A process stopped before it sent all its part (or before process 0 took it).
    #[error("a process of the cluster was lost (process {0} was being waited for); run every process again")]
    Lost(usize),
}

/// This process's end of the parts: on process 0, the chunks the others send; elsewhere, the
/// chunks it sends.
pub struct Parts {
    process: usize,
    /// Messages relayed to this process.
    from: Receiver<Relayed>,
    /// Process 0: chunks received and not yet taken, by process; and which processes ended.
    queued: Vec<VecDeque<Part>>,
    ended: Vec<bool>,
    /// Process 0: the chunks taken from each process so far (the number of the last one).
    counted: Vec<u64>,
    /// Another process: the number of its last chunk, and of the last one process 0 took.
    sent: u64,
    taken: u64,
}

impl Pipeline {
    /// Starts this process's workers of a cluster whose log is split across the processes:
    /// each reads its own part and sends it through [`Parts`]; process 0 takes the chunks, in
    /// a fixed order, with its own, and gets the rows.
    pub fn with_parts(
        config: crate::config::Config,
        options: super::PipelineOptions,
        cluster: crate::engine::Cluster,
    ) -> std::io::Result<(Pipeline, Parts)> {
        let (tx, rx) = mpsc::channel();
        let hook: RelayHook = Arc::new(move |m| {
            let _ = tx.send(m);
        });
        let (process, processes) = (cluster.process, cluster.peers.len());
        let plan = Arc::new(Plan::new(config));
        let pipeline = Pipeline::start_relaying(plan, options, Some(cluster), false, Some(hook))?;
        let parts = Parts {
            process,
            from: rx,
            queued: vec![VecDeque::new(); processes],
            ended: (0..processes).map(|p| p == 0).collect(),
            counted: vec![0; processes],
            sent: 0,
            taken: 0,
        };
        Ok((pipeline, parts))
    }
}

impl Parts {
    /// Another process: sends the next chunk of its part to process 0, first waiting while
    /// `WINDOW` chunks are not yet taken.
    pub fn send(&mut self, pipeline: &Pipeline, part: Part) -> Result<(), PartsError> {
        while self.sent >= self.taken + WINDOW as u64 {
            self.wait_for_taken(pipeline)?;
        }
        self.sent += 1;
        let message = Relayed {
            from: self.process,
            to: 0,
            seq: self.sent,
            body: RelayBody::Part {
                source: part.source,
                first_line: part.first_line,
                lines: part.lines,
            },
        };
        if pipeline.relay(message) {
            Ok(())
        } else {
            Err(PartsError::Lost(0))
        }
    }

    /// Another process: says its part has ended, and waits until process 0 took all of it.
    pub fn end(&mut self, pipeline: &Pipeline) -> Result<(), PartsError> {
        self.send(pipeline, Part::default())?;
        while self.taken < self.sent {
            self.wait_for_taken(pipeline)?;
        }
        Ok(())
    }

    fn wait_for_taken(&mut self, pipeline: &Pipeline) -> Result<(), PartsError> {
        let m = self.receive(pipeline, 0)?;
        if let RelayBody::Answer(_) = m.body {
            self.taken = self.taken.max(m.seq);
        }
        Ok(())
    }

    /// Process 0: whether every other process's part has ended.
    pub fn all_ended(&self) -> bool {
        self.ended.iter().all(|e| *e)
    }

    /// Process 0: the next chunk of each process whose part has not ended, in process order.
    pub fn next_round(&mut self, pipeline: &Pipeline) -> Result<Vec<Part>, PartsError> {
        let mut round = Vec::new();
        for p in 1..self.ended.len() {
            if self.ended[p] {
                continue;
            }
            let part = loop {
                if let Some(part) = self.queued[p].pop_front() {
                    break part;
                }
                let m = self.receive(pipeline, p)?;
                if let RelayBody::Part {
                    source,
                    first_line,
                    lines,
                } = m.body
                {
                    if let Some(q) = self.queued.get_mut(m.from) {
                        q.push_back(Part {
                            source,
                            first_line,
                            lines,
                        });
                    }
                }
            };
            // Taken: the sender may send another.
            let seq = self.taken_from(p);
            let _ = pipeline.relay(Relayed {
                from: 0,
                to: p,
                seq,
                body: RelayBody::Answer(Vec::new()),
            });
            if part.lines.is_empty() {
                self.ended[p] = true;
            } else {
                round.push(part);
            }
        }
        Ok(round)
    }

    /// Process 0: counts a chunk taken from process `p`; the count is the chunk's number there.
    fn taken_from(&mut self, p: usize) -> u64 {
        self.counted[p] += 1;
        self.counted[p]
    }

    /// The next message relayed to this process; `waiting_for` names the process waited on.
    fn receive(&mut self, pipeline: &Pipeline, waiting_for: usize) -> Result<Relayed, PartsError> {
        loop {
            match self.from.recv_timeout(CHECK) {
                Ok(m) => return Ok(m),
                Err(RecvTimeoutError::Timeout) => {
                    if pipeline.engine_ended() {
                        return Err(PartsError::Lost(waiting_for));
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return Err(PartsError::Lost(waiting_for)),
            }
        }
    }
}
