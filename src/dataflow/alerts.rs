//! Alerts (ACTIONS.md): each alert's series read off the metric rows, judged bucket by bucket
//! once complete, as `firing` and `resolved` transitions.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::{Coll, Rows};
use crate::config::{Alert, Breach, Bucket};
use crate::ingest::Dictionary;
use crate::metric::{Dims, Labeler, Value};
use crate::plan::Plan;
use crate::time::Calendar;

/// A change of an alert's state at a bucket.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Transition {
    /// The alert, by its index in the configuration.
    pub alert: u16,
    /// The bucket (an hour or a day, by the alert's series).
    pub bucket: i32,
    /// `true`: the alert started firing; `false`: it resolved.
    pub firing: bool,
    pub value: Value,
    /// The baseline's bits (`f64::to_bits`), for drop and rise.
    pub baseline: Option<u64>,
}

impl Transition {
    /// The baseline as a number.
    pub fn baseline(&self) -> Option<f64> {
        self.baseline.map(f64::from_bits)
    }
}

/// An alert's state after the last bucket judged so far (none judged: "no data").
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AlertStatus {
    pub alert: u16,
    /// The last bucket judged.
    pub judged: i32,
    pub firing: bool,
}

/// What the alerts produce: transitions, and each alert's current status.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AlertRecord {
    Transition(Transition),
    Status(AlertStatus),
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Input {
    Point(i32, Value),
    /// The last complete bucket: its end plus grace has passed on the clock.
    Upto(i32),
    /// The first bucket holding any accepted event.
    First(i32),
}

/// The bucket of an instant in an alert's series.
fn bucket_at(alert: &Alert, cal: &Calendar, t: i64) -> i32 {
    match alert.bucket {
        Bucket::Hour => cal.hour(t),
        Bucket::Day => cal.day(t),
    }
}

/// The bucket a row's dims put it in: its hour, or its day.
fn bucket_of(dims: &Dims) -> Option<i32> {
    match *dims {
        Dims::Hour(h) => Some(h),
        other => other.day(),
    }
}

/// Whether a row's other dims equal an alert's `where`.
fn matches(alert: &Alert, dims: &serde_json::Map<String, Json>) -> bool {
    alert.where_.iter().all(|(k, v)| match dims.get(k) {
        Some(Json::String(s)) => s == v,
        Some(Json::Number(n)) => n.to_string() == *v,
        _ => false,
    })
}

/// A value as the number alerts compare.
pub fn number(v: Value) -> f64 {
    match v {
        Value::Count(n) => n as f64,
        Value::Money(c) => c as f64 / 100.0,
        Value::Rate(n, d) => n as f64 / d as f64,
    }
}

/// The transitions and status of every alert, as of the clock `now`.
pub fn transitions<'s>(
    plan: Arc<Plan>,
    dict: Arc<Dictionary>,
    rows: Rows<'s>,
    now: Coll<'s, i64>,
    earliest: Coll<'s, i64>,
) -> Coll<'s, AlertRecord> {
    let alerts = plan.config.alerts.clone();
    let series_plan = plan.clone();
    // Rows are labelled where ingest's dictionary is: on worker 0.
    let series = super::at_worker_zero(rows).flat_map(move |(key, value)| {
        let labeler = Labeler {
            plan: &series_plan,
            dict: &dict,
        };
        let mut out = Vec::new();
        let mut labels = None;
        for (i, a) in series_plan.config.alerts.iter().enumerate() {
            if a.metric != key.0 {
                continue;
            }
            let Some(bucket) = bucket_of(&key.1) else {
                continue;
            };
            let labels = labels.get_or_insert_with(|| labeler.dims(&key.1));
            if matches(a, labels) {
                out.push((crate::plan::id(i), Input::Point(bucket, value)));
            }
        }
        out
    });
    // The clock enters as each alert's last complete bucket, which moves once a bucket.
    let cal = plan.config.calendar.clone();
    let (list, c) = (alerts.clone(), cal.clone());
    let nows = now.flat_map(move |t| {
        list.iter()
            .enumerate()
            .map(|(i, a)| {
                (
                    crate::plan::id(i),
                    Input::Upto(bucket_at(a, &c, t.saturating_sub(a.grace_ms)) - 1),
                )
            })
            .collect::<Vec<_>>()
    });
    let (list, c) = (alerts.clone(), cal.clone());
    let earliests = earliest.flat_map(move |t| {
        list.iter()
            .enumerate()
            .map(|(i, a)| (crate::plan::id(i), Input::First(bucket_at(a, &c, t))))
            .collect::<Vec<_>>()
    });
    let mut exists: HashMap<i32, bool> = HashMap::new();
    series
        .concat(nows)
        .concat(earliests)
        .reduce_named("AlertStates", move |a, input, out| {
            let alert = &alerts[*a as usize];
            let mut points = BTreeMap::new();
            let (mut upto, mut first) = (None, None);
            for (i, _) in input {
                match i {
                    Input::Point(b, v) => {
                        points.insert(*b, *v);
                    }
                    Input::Upto(b) => upto = Some(*b),
                    Input::First(b) => first = Some(*b),
                }
            }
            let (Some(upto), Some(first)) = (upto, first) else {
                return;
            };
            let mut hour_exists = |h: i32| *exists.entry(h).or_insert_with(|| cal.hour_exists(h));
            let (transitions, status) = judge(alert, &points, first, upto, &mut hour_exists);
            for mut t in transitions {
                t.alert = *a;
                out.push((AlertRecord::Transition(t), 1));
            }
            if let Some((judged, firing)) = status {
                out.push((
                    AlertRecord::Status(AlertStatus {
                        alert: *a,
                        judged,
                        firing,
                    }),
                    1,
                ));
            }
        })
        .map(|(_, r)| r)
}

/// The transitions of one alert over its judged buckets (ACTIONS.md, "Alerts"), from the
/// series' first bucket holding an event through the last complete one `last`; and the last
/// bucket judged with the state after it, if any was.
pub fn judge(
    alert: &Alert,
    points: &BTreeMap<i32, Value>,
    first: i32,
    last: i32,
    hour_exists: &mut dyn FnMut(i32) -> bool,
) -> (Vec<Transition>, Option<(i32, bool)>) {
    let mut exists = |b: i32| alert.bucket == Bucket::Day || hour_exists(b);
    let value = |b: i32| points.get(&b).copied().unwrap_or(Value::Count(0));
    // A lag of whole days shifts by days and keeps the local time of day (a label that does
    // not exist is left out of the mean); any other hour lag counts hours as they happened,
    // stepping over labels that do not exist.
    let by_days = alert.bucket == Bucket::Day || alert.lag.is_multiple_of(24);
    let shift = |b: i32, steps: i32, exists: &mut dyn FnMut(i32) -> bool| -> i32 {
        if by_days {
            return b + steps;
        }
        let (mut at, mut left, dir) = (b, steps.abs(), steps.signum());
        while left > 0 {
            at += dir;
            if exists(at) {
                left -= 1;
            }
        }
        at
    };
    let uses_baseline = alert.breach.uses_baseline();
    // The configuration bounds `lag × count` to ten years of buckets.
    let span = i32::try_from(alert.lag.saturating_mul(alert.count)).unwrap_or(i32::MAX);
    let start = if uses_baseline {
        shift(first, span, &mut exists)
    } else {
        first
    };
    let (mut firing, mut run) = (false, 0u32);
    let mut out = Vec::new();
    let mut judged = None;
    for b in start..=last {
        if !exists(b) {
            continue;
        }
        let v = value(b);
        let x = number(v);
        let baseline = if uses_baseline {
            let mut sum = 0.0;
            let mut n = 0;
            for k in 1..=alert.count as i32 {
                let earlier = shift(b, -k * alert.lag as i32, &mut exists);
                if exists(earlier) {
                    sum += number(value(earlier));
                    n += 1;
                }
            }
            if n == 0 {
                continue;
            }
            let mean = sum / n as f64;
            if mean < alert.min_baseline {
                continue;
            }
            Some(mean)
        } else {
            None
        };
        let breach = match (alert.breach, baseline) {
            (Breach::Drop(d), Some(base)) => x < (1.0 - d) * base,
            (Breach::Rise(r), Some(base)) => x > (1.0 + r) * base,
            (Breach::Below(y), _) => x < y,
            (Breach::Above(y), _) => x > y,
            _ => false,
        };
        judged = Some(b);
        if breach != firing {
            run += 1;
            let needed = if firing {
                alert.keep_firing_for
            } else {
                alert.for_
            };
            if run >= needed {
                firing = !firing;
                run = 0;
                out.push(Transition {
                    alert: 0,
                    bucket: b,
                    firing,
                    value: v,
                    baseline: baseline.map(f64::to_bits),
                });
            }
        } else {
            run = 0;
        }
    }
    (out, judged.map(|b| (b, firing)))
}
