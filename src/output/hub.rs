//! Fan-out of row changes to subscribers: current rows first, then upserts and progress marks,
//! through bounded queues that never block the publisher.

use std::sync::Arc;

use serde_json::{json, Value as Json};
use tokio::sync::mpsc;

use crate::config::SlowSubscriber;
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
    /// True when rows of `metric` can pass (the dims are not looked at).
    pub fn wants(&self, metric: &str) -> bool {
        self.metrics.is_empty() || self.metrics.iter().any(|m| m == metric)
    }

    /// Whether a row of `metric` with `dims` passes.
    pub fn matches(&self, metric: &str, dims: &Json) -> bool {
        self.wants(metric)
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
    /// The subscriber fell behind and missed changes: drop every row and start again from
    /// these (upserts with `prev` null); a progress mark follows.
    Resync(Arc<[Arc<str>]>),
    /// The subscriber fell behind and is disconnected; the text says why.
    Closed(&'static str),
}

/// Counters of the hub's own health.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HubStats {
    pub subscribers: usize,
    pub disconnected_slow: u64,
    pub resyncs: u64,
}

struct Subscriber {
    filter: Filter,
    tx: mpsc::Sender<Feed>,
    /// Missed changes: waits for its queue to drain, then gets a fresh snapshot.
    lagging: bool,
}

/// The subscribers and their queues.
pub struct Hub {
    subscribers: Vec<Subscriber>,
    capacity: usize,
    policy: SlowSubscriber,
    disconnected_slow: u64,
    resyncs: u64,
}

/// Reason sent to a subscriber whose queue overflowed.
pub const SLOW_SUBSCRIBER: &str =
    "subscriber too slow: its queue is full; reconnect to start from a fresh snapshot";

impl Hub {
    /// A hub whose subscriber queues hold `capacity` messages (at least 2); a subscriber that
    /// overflows it is disconnected.
    pub fn new(capacity: usize) -> Self {
        Hub::with_policy(capacity, SlowSubscriber::Disconnect)
    }

    /// A hub that treats subscribers that overflow their queue by `policy`.
    pub fn with_policy(capacity: usize, policy: SlowSubscriber) -> Self {
        Hub {
            subscribers: Vec::new(),
            capacity: capacity.max(2),
            policy,
            disconnected_slow: 0,
            resyncs: 0,
        }
    }

    pub fn stats(&self) -> HubStats {
        HubStats {
            subscribers: self.subscribers.len(),
            disconnected_slow: self.disconnected_slow,
            resyncs: self.resyncs,
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
        let initial = matching(&filter, rows, time, labeler);
        let (tx, rx) = mpsc::channel(self.capacity + initial.len() + 1);
        for message in initial {
            let _ = tx.try_send(Feed::Upsert(message));
        }
        let _ = tx.try_send(Feed::Progress(time));
        self.subscribers.push(Subscriber {
            filter,
            tx,
            lagging: false,
        });
        rx
    }

    /// Sends the deltas of completed times and a progress mark to every subscriber, never
    /// waiting: a subscriber whose queue is full is resynced from `current` once its queue
    /// has drained, or told why and dropped, as the policy says.
    pub fn publish<'a, I>(
        &mut self,
        deltas: &[Delta],
        progress: Time,
        current: impl Fn() -> I,
        labeler: &Labeler,
    ) where
        I: Iterator<Item = (&'a Key, &'a Value)>,
    {
        if self.subscribers.is_empty() {
            return;
        }
        let rendered: Vec<(&'static str, Json, Feed)> = deltas
            .iter()
            .map(|d| {
                let dims = Json::Object(labeler.dims(&d.key.1));
                let value = d.value.map_or(Json::Null, Value::to_json);
                let prev = d.prev.map_or(Json::Null, Value::to_json);
                let text = upsert(&d.key, dims.clone(), value, prev, d.time);
                (d.key.0.name(), dims, Feed::Upsert(text))
            })
            .collect();
        let (mut slow, mut resyncs) = (0, 0);
        let policy = self.policy;
        self.subscribers.retain_mut(|s| {
            if s.tx.is_closed() {
                return false;
            }
            if s.lagging {
                if s.tx.capacity() == s.tx.max_capacity() {
                    let rows = matching(&s.filter, current(), progress, labeler);
                    let _ = s.tx.try_send(Feed::Resync(rows.into()));
                    let _ = s.tx.try_send(Feed::Progress(progress));
                    s.lagging = false;
                }
                return true;
            }
            let mut messages: Vec<&Feed> = rendered
                .iter()
                .filter(|(m, dims, _)| s.filter.matches(m, dims))
                .map(|(_, _, f)| f)
                .collect();
            let mark = Feed::Progress(progress);
            messages.push(&mark);
            if s.tx.capacity() <= messages.len() {
                return match policy {
                    SlowSubscriber::Disconnect => {
                        let _ = s.tx.try_send(Feed::Closed(SLOW_SUBSCRIBER));
                        slow += 1;
                        false
                    }
                    SlowSubscriber::Resync => {
                        s.lagging = true;
                        resyncs += 1;
                        true
                    }
                };
            }
            for m in messages {
                if s.tx.try_send(m.clone()).is_err() {
                    return false;
                }
            }
            true
        });
        self.disconnected_slow += slow;
        self.resyncs += resyncs;
    }
}

/// The rows that pass `filter`, as upserts with `prev` null.
fn matching<'a>(
    filter: &Filter,
    rows: impl Iterator<Item = (&'a Key, &'a Value)>,
    time: Time,
    labeler: &Labeler,
) -> Vec<Arc<str>> {
    rows.filter(|(k, _)| filter.wants(k.0.name()))
        .filter_map(|(k, v)| {
            let dims = Json::Object(labeler.dims(&k.1));
            filter
                .matches(k.0.name(), &dims)
                .then(|| upsert(k, dims, v.to_json(), Json::Null, time))
        })
        .collect()
}

fn upsert(key: &Key, dims: Json, value: Json, prev: Json, time: Time) -> Arc<str> {
    let envelope =
        json!({"metric": key.0.name(), "dims": dims, "value": value, "prev": prev, "time": time});
    envelope.to_string().into()
}
