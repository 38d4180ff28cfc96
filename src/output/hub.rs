//! Fan-out of row changes to subscribers: current rows first, then upserts and progress marks,
//! through bounded queues that never block the publisher.

use std::sync::Arc;

use serde_json::{json, Value as Json};
use tokio::sync::mpsc::{self, error::TrySendError};

use crate::dataflow::Time;
use crate::metric::{Key, Labeler, Value};
use crate::output::Delta;

/// Which rows a subscriber wants: metric names (none = all) and dims that must match exactly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub metrics: Vec<String>,
    pub dims: Vec<(String, String)>,
}

impl Filter {
    fn matches(&self, metric: &str, dims: &Json) -> bool {
        (self.metrics.is_empty() || self.metrics.iter().any(|m| m == metric))
            && self.dims.iter().all(|(k, v)| match &dims[k.as_str()] {
                Json::String(s) => s == v,
                Json::Number(n) => n.to_string() == *v,
                _ => false,
            })
    }
}

/// What a subscriber receives, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Feed {
    /// One upsert envelope of OUTPUT.md, as JSON text.
    Upsert(Arc<str>),
    /// Every change up to this time has been sent.
    Progress(Time),
    /// The subscriber fell behind and is disconnected; the text says why.
    Closed(&'static str),
}

/// Counters of the hub's own health.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HubStats {
    pub subscribers: usize,
    pub disconnected_slow: u64,
}

struct Subscriber {
    filter: Filter,
    tx: mpsc::Sender<Feed>,
}

/// The subscribers and their queues.
pub struct Hub {
    subscribers: Vec<Subscriber>,
    capacity: usize,
    disconnected_slow: u64,
}

/// Reason sent to a subscriber whose queue overflowed.
pub const SLOW_SUBSCRIBER: &str =
    "subscriber too slow: its queue is full; reconnect to start from a fresh snapshot";

impl Hub {
    /// A hub whose subscriber queues hold `capacity` messages (at least 2).
    pub fn new(capacity: usize) -> Self {
        Hub {
            subscribers: Vec::new(),
            capacity: capacity.max(2),
            disconnected_slow: 0,
        }
    }

    pub fn stats(&self) -> HubStats {
        HubStats {
            subscribers: self.subscribers.len(),
            disconnected_slow: self.disconnected_slow,
        }
    }

    /// Adds a subscriber: it first gets the matching current rows (as upserts with `prev` null)
    /// and a progress mark at `time`, then live changes. Its queue holds at least the snapshot.
    pub fn subscribe<'a>(
        &mut self,
        filter: Filter,
        rows: impl Iterator<Item = (&'a Key, &'a Value)>,
        time: Time,
        labeler: &Labeler,
    ) -> mpsc::Receiver<Feed> {
        let initial: Vec<Feed> = rows
            .filter_map(|(k, v)| {
                let dims = Json::Object(labeler.dims(&k.1));
                filter
                    .matches(k.0.name(), &dims)
                    .then(|| upsert(k, dims, v.to_json(), Json::Null, time))
            })
            .collect();
        let (tx, rx) = mpsc::channel(self.capacity + initial.len() + 1);
        for message in initial {
            let _ = tx.try_send(message);
        }
        let _ = tx.try_send(Feed::Progress(time));
        self.subscribers.push(Subscriber { filter, tx });
        rx
    }

    /// Sends the deltas of completed times and a progress mark to every subscriber; a
    /// subscriber whose queue is full is told why and dropped, never waited for.
    pub fn publish(&mut self, deltas: &[Delta], progress: Time, labeler: &Labeler) {
        if self.subscribers.is_empty() {
            return;
        }
        let rendered: Vec<(&'static str, Json, Feed)> = deltas
            .iter()
            .map(|d| {
                let dims = Json::Object(labeler.dims(&d.key.1));
                let value = d.value.map_or(Json::Null, Value::to_json);
                let prev = d.prev.map_or(Json::Null, Value::to_json);
                (
                    d.key.0.name(),
                    dims.clone(),
                    upsert(&d.key, dims, value, prev, d.time),
                )
            })
            .collect();
        let mut slow = 0;
        self.subscribers.retain(|s| {
            let mut messages: Vec<&Feed> = rendered
                .iter()
                .filter(|(m, dims, _)| s.filter.matches(m, dims))
                .map(|(_, _, f)| f)
                .collect();
            let progress = Feed::Progress(progress);
            messages.push(&progress);
            if s.tx.capacity() <= messages.len() {
                let _ = s.tx.try_send(Feed::Closed(SLOW_SUBSCRIBER));
                slow += 1;
                return false;
            }
            for m in messages {
                match s.tx.try_send(m.clone()) {
                    Ok(()) => {}
                    Err(TrySendError::Closed(_)) => return false,
                    Err(TrySendError::Full(_)) => {
                        slow += 1;
                        return false;
                    }
                }
            }
            true
        });
        self.disconnected_slow += slow;
    }
}

fn upsert(key: &Key, dims: Json, value: Json, prev: Json, time: Time) -> Feed {
    let envelope =
        json!({"metric": key.0.name(), "dims": dims, "value": value, "prev": prev, "time": time});
    Feed::Upsert(envelope.to_string().into())
}
