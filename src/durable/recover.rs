//! Reading a data directory back into a fresh pipeline: the checkpoint, then the log after it.

use std::time::{Duration, Instant};

use super::{kind, DataDir, DurableError, RecordError};
use crate::ingest::Outcome;
use crate::pipeline::Pipeline;
use crate::store::ReplayError;

/// What recovery read back.
#[derive(Clone, Debug, Default)]
pub struct Recovered {
    /// Events the checkpoint stood for.
    pub checkpoint_events: u64,
    /// Records read from the log after the checkpoint.
    pub records: u64,
    /// Of those, events accepted again.
    pub events: u64,
    /// Logged events that the pipeline did not accept again (only a changed limit does that).
    pub changed: u64,
    pub took: Duration,
}

/// Brings a fresh `pipeline` to where the data directory says it was: the checkpoint's state,
/// then every logged record after it, in order, then one flush. The pipeline keeps facts from
/// here on, so that later checkpoints can be taken.
pub fn recover(pipeline: &mut Pipeline, data: &mut DataDir) -> Result<Recovered, DurableError> {
    let started = Instant::now();
    let mut recovered = Recovered::default();
    pipeline.keep_facts();
    let from = match data.found.take() {
        Some(c) => {
            recovered.checkpoint_events = c.state.accepted();
            let seq = c.seq;
            pipeline
                .restore(c.state)
                .map_err(|e| DurableError::Record {
                    dir: data.dir.clone(),
                    seq,
                    detail: RecordError::Checkpoint(e),
                })?;
            seq + 1
        }
        None => 1,
    };
    let replayed = data.wal.replay(from, |_, k, payload| {
        recovered.records += 1;
        match k {
            kind::EVENT => match pipeline.offer_bytes(payload) {
                Outcome::Accepted => recovered.events += 1,
                _ => recovered.changed += 1,
            },
            kind::OUTCOME => {
                let text = std::str::from_utf8(payload).map_err(RecordError::OutcomeNotText)?;
                let (reason, n) = match text.split_once('\t') {
                    Some((r, n)) => (r, n.parse::<u64>().map_err(RecordError::OutcomeCount)?),
                    None => (text, 1),
                };
                pipeline.recount(reason, n);
            }
            kind::ERASE => {
                let text = std::str::from_utf8(payload).map_err(RecordError::ErasureNotText)?;
                let record: super::ErasureRecord =
                    serde_json::from_str(text).map_err(RecordError::Erasure)?;
                pipeline.erase(&record.kind, &record.value, record.sent);
            }
            other => return Err(RecordError::UnknownKind(other)),
        }
        Ok(())
    });
    match replayed {
        Ok(_) => {}
        Err(ReplayError::Store(e)) => return Err(e.into()),
        Err(ReplayError::Apply { seq, error }) => {
            return Err(DurableError::Record {
                dir: data.dir.clone(),
                seq,
                detail: error,
            })
        }
    }
    pipeline.flush();
    if recovered.changed > 0 {
        tracing::warn!(
            "{} logged events were not accepted again at start (a limit in the configuration changed since)",
            recovered.changed
        );
    }
    recovered.took = started.elapsed();
    data.status.recovery = recovered.took;
    data.status.recovered_events = recovered.events;
    Ok(recovered)
}
