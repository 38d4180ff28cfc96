//! Fan-out of row changes to subscribers: current rows first, then upserts and progress marks,
//! through bounded queues that never block the publisher.

use std::sync::Arc;

use serde_json::{Map, Value as Json};
use tokio::sync::mpsc;

use crate::config::SlowSubscriber;
use crate::dataflow::Time;
use crate::metric::{Key, Labeler, Value};
use crate::output::{Delta, Upsert};

/// Which rows a subscriber wants: metric names (none = all) and dims that must match exactly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Metric names; none: every metric.
    pub metrics: Vec<String>,
    /// Dims a row must have, as key and text (a number's JSON text).
    pub dims: Vec<(String, String)>,
}

impl Filter {
    /// Rows of these metrics only, with any dims.
    pub fn metrics<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        Filter {
            metrics: names.into_iter().map(Into::into).collect(),
            dims: Vec::new(),
        }
    }

    /// Only rows whose dim `key` has this value (as text: a number's JSON text).
    pub fn dim(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.dims.push((key.into(), value.into()));
        self
    }

    /// True when rows of `metric` can pass (the dims are not looked at).
    pub fn wants(&self, metric: &str) -> bool {
        self.metrics.is_empty() || self.metrics.iter().any(|m| m == metric)
    }

    /// Whether a row of `metric` with `dims` passes.
    pub fn matches(&self, metric: &str, dims: &Json) -> bool {
        self.wants(metric)
            && self
                .dims
                .iter()
                .all(|(k, v)| dim_is(dims.get(k.as_str()), v))
    }

    /// Whether an upsert's row passes.
    pub fn passes(&self, upsert: &Upsert) -> bool {
        self.wants(upsert.metric.name()) && self.dims_match(&upsert.dims)
    }

    /// Whether `dims` holds every wanted dim.
    fn dims_match(&self, dims: &Map<String, Json>) -> bool {
        self.dims.iter().all(|(k, v)| dim_is(dims.get(k), v))
    }
}

/// Whether a dims value is the wanted text: a string as it is, a number as JSON writes it.
fn dim_is(value: Option<&Json>, wanted: &str) -> bool {
    match value {
        Some(Json::String(s)) => s == wanted,
        Some(Json::Number(n)) => n.to_string() == wanted,
        _ => false,
    }
}

/// What a subscriber receives, in order. Upserts are shared by every subscriber they go to;
/// each edge writes them as JSON ([`Upsert::text`], [`crate::output::WireMessage`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Feed {
    /// One upsert envelope of OUTPUT.md.
    Upsert(Arc<Upsert>),
    /// Every change up to this time has been sent.
    Progress(Time),
    /// The subscriber fell behind and missed changes: drop every row and start again from
    /// these (upserts with `prev` null); a progress mark follows.
    Resync(Arc<[Arc<Upsert>]>),
    /// The subscriber fell behind and is disconnected; the text says why.
    Closed(&'static str),
}

/// Counters of the hub's own health.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HubStats {
    /// Subscribers connected.
    pub subscribers: usize,
    /// Subscribers disconnected because their queue overflowed.
    pub disconnected_slow: u64,
    /// Subscribers that fell behind and were sent a fresh snapshot.
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
        let upserts: Vec<Arc<Upsert>> = deltas
            .iter()
            .map(|d| {
                Arc::new(Upsert::new(
                    d.key.0,
                    labeler.dims(&d.key.1),
                    d.value.map(Value::to_json),
                    d.prev.map(Value::to_json),
                    d.time,
                ))
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
            let messages: Vec<&Arc<Upsert>> =
                upserts.iter().filter(|u| s.filter.passes(u)).collect();
            if s.tx.capacity() <= messages.len() + 1 {
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
            for u in messages {
                if s.tx.try_send(Feed::Upsert(u.clone())).is_err() {
                    return false;
                }
            }
            s.tx.try_send(Feed::Progress(progress)).is_ok()
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
) -> Vec<Arc<Upsert>> {
    rows.filter(|(k, _)| filter.wants(k.0.name()))
        .filter_map(|(k, v)| {
            let dims = labeler.dims(&k.1);
            filter
                .dims_match(&dims)
                .then(|| Arc::new(Upsert::new(k.0, dims, Some(v.to_json()), None, time)))
        })
        .collect()
}
