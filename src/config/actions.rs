//! The `[[rules]]` and `[[alerts]]` sections of ACTIONS.md: parsing and validation, every error
//! naming the rule or alert and its key.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::{parse_duration, Problems, ValueError};
use crate::metric::Metric;

#[derive(Debug, Deserialize)]
pub(super) struct RawRule {
    name: Option<String>,
    when: Option<String>,
    #[serde(rename = "where")]
    where_: Option<toml::Table>,
    unless: Option<String>,
    #[serde(rename = "match")]
    match_: Option<String>,
    wait: Option<String>,
    cap: Option<RawCap>,
    quiet_hours: Option<RawQuiet>,
    holdout: Option<toml::Value>,
    goal: Option<String>,
    goal_within: Option<String>,
    #[serde(rename = "if")]
    cond: Option<RawCondition>,
    actions: Option<Vec<RawAction>>,
}

#[derive(Debug, Deserialize)]
struct RawCap {
    max: Option<i64>,
    per: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawQuiet {
    from: Option<String>,
    to: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawCondition {
    min_revenue: Option<toml::Value>,
    max_revenue: Option<toml::Value>,
    channels: Option<Vec<String>>,
    min_days_since_first: Option<i64>,
    max_days_since_first: Option<i64>,
    min_active_days_30: Option<i64>,
    max_active_days_30: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawAction {
    webhook: Option<String>,
    mqtt: Option<String>,
    stream: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RawDelivery {
    timeout: Option<String>,
    max_attempts: Option<i64>,
    backoff_max: Option<String>,
    queue: Option<i64>,
    in_flight: Option<i64>,
}

/// How actions are delivered (`[delivery]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Longest one webhook request may take.
    pub timeout_ms: i64,
    /// Attempts per delivery before it is kept as failed.
    pub max_attempts: u32,
    /// Longest wait between two attempts (the waits grow exponentially, with jitter).
    pub backoff_max_ms: i64,
    /// Deliveries a target may hold waiting; beyond, a delivery is kept as failed.
    pub queue: usize,
    /// Requests a webhook target may have in flight at once.
    pub in_flight: usize,
}

impl Default for Delivery {
    fn default() -> Self {
        let mut p = Problems::default();
        delivery(RawDelivery::default(), &mut p)
    }
}

pub(super) fn delivery(raw: RawDelivery, p: &mut Problems) -> Delivery {
    let ms = |k: &str, v: Option<String>, default: i64, p: &mut Problems| match v {
        None => default,
        Some(t) => parse_duration(&t).unwrap_or_else(|e| {
            p.value(format!("delivery.{k}"), e);
            default
        }),
    };
    let count = |k: &str, v: Option<i64>, default: u32, max: u32, p: &mut Problems| match v {
        None => default,
        Some(n) => match u32::try_from(n) {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                p.add(
                    format!("delivery.{k}"),
                    format!("{n} is out of range; allowed: 1..={max}"),
                );
                default
            }
        },
    };
    Delivery {
        timeout_ms: ms("timeout", raw.timeout, 10_000, p),
        max_attempts: count("max_attempts", raw.max_attempts, 12, 1000, p),
        backoff_max_ms: ms("backoff_max", raw.backoff_max, 60_000, p),
        queue: count("queue", raw.queue, 10_000, 10_000_000, p) as usize,
        in_flight: count("in_flight", raw.in_flight, 16, 1024, p) as usize,
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct RawAlert {
    name: Option<String>,
    metric: Option<String>,
    #[serde(rename = "where")]
    where_: Option<toml::Table>,
    drop: Option<toml::Value>,
    rise: Option<toml::Value>,
    below: Option<toml::Value>,
    above: Option<toml::Value>,
    baseline: Option<RawBaseline>,
    #[serde(rename = "for")]
    for_: Option<i64>,
    keep_firing_for: Option<i64>,
    min_baseline: Option<toml::Value>,
    grace: Option<String>,
    actions: Option<Vec<RawAction>>,
}

#[derive(Debug, Deserialize)]
struct RawBaseline {
    lag: Option<String>,
    count: Option<i64>,
}

/// Where a firing or an alert transition goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `POST` the JSON to this URL.
    Webhook(String),
    /// Publish the JSON to this MQTT topic at QoS 1.
    Mqtt(String),
    /// Send it to subscribers of `/v1/firings`.
    Stream,
}

/// Local quiet hours `[from, to)` in minutes after midnight; wraps midnight when `from > to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuietHours {
    /// Start, minutes after local midnight.
    pub from: u16,
    /// End (excluded), minutes after local midnight.
    pub to: u16,
}

/// Conditions on the person at release time (`[rules.if]`); money in cents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Condition {
    /// The person's revenue is at least this.
    pub min_revenue: Option<i64>,
    /// The person's revenue is at most this.
    pub max_revenue: Option<i64>,
    /// The person came through one of these channels.
    pub channels: Option<Vec<String>>,
    /// At least this many days since the person's first event.
    pub min_days_since_first: Option<i64>,
    /// At most this many days since the person's first event.
    pub max_days_since_first: Option<i64>,
    /// Active on at least this many of the last 30 days.
    pub min_active_days_30: Option<i64>,
    /// Active on at most this many of the last 30 days.
    pub max_active_days_30: Option<i64>,
}

impl Condition {
    /// Whether any bound reads the person's revenue.
    pub fn needs_revenue(&self) -> bool {
        self.min_revenue.is_some() || self.max_revenue.is_some()
    }

    /// Whether any bound reads the person's active days.
    pub fn needs_active_days(&self) -> bool {
        self.min_active_days_30.is_some() || self.max_active_days_30.is_some()
    }

    /// Whether any bound reads the person's first event (channel or cohort day).
    pub fn needs_first(&self) -> bool {
        self.channels.is_some()
            || self.min_days_since_first.is_some()
            || self.max_days_since_first.is_some()
    }

    /// Whether there is any condition at all.
    pub fn is_empty(&self) -> bool {
        *self == Condition::default()
    }
}

/// How far back an alert's baseline may reach (`lag × count`): ten years.
const MAX_BASELINE_DAYS: u32 = 3_660;

/// A trigger rule of ACTIONS.md, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The rule's name, unique among rules.
    pub name: String,
    /// The trigger event.
    pub when: String,
    /// Props the trigger must carry: key and the texts any of which it may equal.
    pub where_: Vec<(String, Vec<String>)>,
    /// The event that cancels a trigger before its release.
    pub unless: Option<String>,
    /// The prop that ties a cancel to its trigger; none: the person.
    pub match_key: Option<String>,
    /// How long after the trigger the firing is released, in milliseconds.
    pub wait_ms: i64,
    /// At most `max` firings per person in any `per_ms` period.
    pub cap: Option<(u32, i64)>,
    /// Local hours in which releases wait for the hours' end.
    pub quiet_hours: Option<QuietHours>,
    /// Share of persons held out, in basis points (0..=10000).
    pub holdout_bp: u32,
    /// The event that counts as a conversion in the campaign rows.
    pub goal: Option<String>,
    /// How long after the firing a goal counts, in milliseconds.
    pub goal_within_ms: i64,
    /// Conditions on the person at release time.
    pub cond: Condition,
    /// Where firings go.
    pub actions: Vec<Action>,
}

/// What breaches an alert's bucket.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Breach {
    /// `value < (1 - x) * baseline`.
    Drop(f64),
    /// `value > (1 + x) * baseline`.
    Rise(f64),
    /// `value < x`.
    Below(f64),
    /// `value > x`.
    Above(f64),
}

impl Breach {
    /// Whether the condition compares with a baseline.
    pub fn uses_baseline(self) -> bool {
        matches!(self, Breach::Drop(_) | Breach::Rise(_))
    }
}

/// The bucket dimension of an alert's series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    /// Hourly buckets.
    Hour,
    /// Daily buckets.
    Day,
}

/// An alert of ACTIONS.md, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// The alert's name, unique among alerts.
    pub name: String,
    /// The metric whose series is watched.
    pub metric: Metric,
    /// Hourly or daily buckets.
    pub bucket: Bucket,
    /// The series' other dims, all fixed: dims key and value as text.
    pub where_: Vec<(String, String)>,
    /// What breaches a bucket.
    pub breach: Breach,
    /// Baseline: buckets `lag, 2*lag, ..., count*lag` earlier (lag in buckets).
    pub lag: u32,
    /// Baseline buckets averaged.
    pub count: u32,
    /// Breached buckets in a row before the alert fires.
    pub for_: u32,
    /// Healthy buckets in a row before a firing alert resolves.
    pub keep_firing_for: u32,
    /// Baselines below this never breach (no data is not a drop).
    pub min_baseline: f64,
    /// How long after a bucket ends it is judged, in milliseconds.
    pub grace_ms: i64,
    /// Where transitions go.
    pub actions: Vec<Action>,
}

/// `[a-z0-9_]`, 1..=64 bytes.
fn check_rule_name(key: &str, name: &str, seen: &mut BTreeSet<String>, p: &mut Problems) {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        p.add(
            key,
            format!("{name:?}: a name is 1..=64 characters of a-z, 0-9 and _"),
        );
    } else if !seen.insert(name.to_string()) {
        p.add(key, format!("{name:?} is used twice; names must be unique"));
    }
}

fn event_name(key: &str, name: &str, p: &mut Problems) {
    if name.is_empty() || name.len() > 64 {
        p.add(key, format!("event name {name:?} must be 1..=64 bytes"));
    }
}

/// A duration that may be zero (`"0s"`).
pub fn parse_duration_or_zero(text: &str) -> Result<i64, ValueError> {
    super::parse_span(text)
}

/// `HH:MM` as minutes after midnight.
fn time_of_day(text: &str) -> Option<u16> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// A TOML number as f64.
fn number(v: &toml::Value) -> Option<f64> {
    match v {
        toml::Value::Integer(i) => Some(*i as f64),
        toml::Value::Float(f) if f.is_finite() => Some(*f),
        _ => None,
    }
}

/// A TOML number as exact cents (at most 2 fraction digits).
fn money(v: &toml::Value) -> Result<i64, ValueError> {
    let text = match v {
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) if f.is_finite() => f.to_string(),
        other => {
            return Err(ValueError::NotAmount {
                found: other.type_str(),
            })
        }
    };
    Ok(crate::event::parse_amount(&text)?)
}

/// A props value as the text it is compared by: a string is itself, a number its JSON text.
fn prop_text(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) if f.is_finite() => Some(f.to_string()),
        _ => None,
    }
}

fn actions(key: &str, raw: Option<Vec<RawAction>>, p: &mut Problems) -> Vec<Action> {
    let mut out = Vec::new();
    for (j, a) in raw.unwrap_or_default().into_iter().enumerate() {
        let key = format!("{key}.actions[{j}]");
        let given = [a.webhook.is_some(), a.mqtt.is_some(), a.stream.is_some()]
            .iter()
            .filter(|x| **x)
            .count();
        if given != 1 {
            p.add(
                &key,
                "give exactly one of webhook = \"http://...\", mqtt = \"topic\" or stream = true",
            );
            continue;
        }
        if let Some(url) = a.webhook {
            match reqwest::Url::parse(&url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                    out.push(Action::Webhook(url))
                }
                _ => p.add(
                    format!("{key}.webhook"),
                    format!("{url:?} is not an http:// or https:// URL"),
                ),
            }
        } else if let Some(topic) = a.mqtt {
            if topic.is_empty() || topic.contains(['#', '+']) {
                p.add(
                    format!("{key}.mqtt"),
                    format!("{topic:?}: a topic to publish to is non-empty and has no wildcards"),
                );
            } else {
                out.push(Action::Mqtt(topic));
            }
        } else if a.stream == Some(true) {
            out.push(Action::Stream);
        } else {
            p.add(
                format!("{key}.stream"),
                "stream = false does nothing; leave the action out",
            );
        }
    }
    out
}

pub(super) fn rules(raw: Vec<RawRule>, p: &mut Problems) -> Vec<Rule> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let errors_before = p.len();
        let at = |k: &str| match &r.name {
            Some(n) => format!("rules[{i}].{k} (rule {n:?})"),
            None => format!("rules[{i}].{k}"),
        };
        let name = r.name.clone().unwrap_or_default();
        match &r.name {
            None => p.add(
                format!("rules[{i}].name"),
                "required: a unique name, e.g. \"unpaid_order\"",
            ),
            Some(n) => check_rule_name(&at("name"), n, &mut seen, p),
        }
        let when = match &r.when {
            None => {
                p.add(at("when"), "required: the name of the triggering event");
                String::new()
            }
            Some(w) => {
                event_name(&at("when"), w, p);
                w.clone()
            }
        };
        let mut where_ = Vec::new();
        for (k, v) in r.where_.iter().flatten() {
            let texts = match v {
                toml::Value::Array(items) if !items.is_empty() => {
                    items.iter().map(prop_text).collect::<Option<Vec<_>>>()
                }
                toml::Value::Array(_) => None,
                v => prop_text(v).map(|t| vec![t]),
            };
            match texts {
                Some(t) => where_.push((k.clone(), t)),
                None => p.add(
                    at(&format!("where.{k}")),
                    "expected a string, a number, or a non-empty list of them",
                ),
            }
        }
        if let Some(u) = &r.unless {
            event_name(&at("unless"), u, p);
        }
        if let Some(m) = &r.match_ {
            if m.is_empty() {
                p.add(at("match"), "a props key such as \"order_id\"");
            }
        }
        let wait_ms = match &r.wait {
            None => {
                p.add(
                    at("wait"),
                    "required: how long after the trigger, e.g. \"2h\" or \"0s\"",
                );
                0
            }
            Some(w) => parse_duration_or_zero(w).unwrap_or_else(|e| {
                p.value(at("wait"), e);
                0
            }),
        };
        let cap = r.cap.as_ref().and_then(|c| {
            let max = match c.max {
                // In range, so it fits: never `None`.
                Some(m) if (1..=1_000_000).contains(&m) => u32::try_from(m).ok(),
                Some(m) => {
                    p.add(
                        at("cap.max"),
                        format!("{m} is out of range; allowed: 1..=1000000"),
                    );
                    None
                }
                None => {
                    p.add(at("cap.max"), "required: firings allowed per period");
                    None
                }
            };
            let per = match &c.per {
                Some(t) => parse_duration(t)
                    .map_err(|e| p.value(at("cap.per"), e))
                    .ok(),
                None => {
                    p.add(at("cap.per"), "required: the rolling period, e.g. \"7d\"");
                    None
                }
            };
            Some((max?, per?))
        });
        let quiet_hours = r.quiet_hours.as_ref().and_then(|q| {
            let mut end = |k: &str, v: &Option<String>| match v {
                None => {
                    p.add(
                        at(&format!("quiet_hours.{k}")),
                        "required: a time of day (HH:MM)",
                    );
                    None
                }
                Some(t) => time_of_day(t).or_else(|| {
                    p.add(
                        at(&format!("quiet_hours.{k}")),
                        format!("{t:?} is not a time of day (HH:MM)"),
                    );
                    None
                }),
            };
            let (from, to) = (end("from", &q.from), end("to", &q.to));
            let (from, to) = (from?, to?);
            if from == to {
                p.add(
                    at("quiet_hours"),
                    "from and to are equal: the quiet hours would be empty",
                );
                return None;
            }
            Some(QuietHours { from, to })
        });
        let holdout_bp = match &r.holdout {
            None => 0,
            Some(v) => match number(v) {
                // A whole number in 0..=10_000 (h is in 0..=1).
                #[allow(clippy::cast_possible_truncation)]
                Some(h)
                    if (0.0..=1.0).contains(&h)
                        && ((h * 10_000.0).round() - h * 10_000.0).abs() < 1e-6 =>
                {
                    (h * 10_000.0).round() as u32
                }
                _ => {
                    p.add(
                        at("holdout"),
                        format!("{v} must be a share 0..=1 with at most 4 decimals"),
                    );
                    0
                }
            },
        };
        if let Some(g) = &r.goal {
            event_name(&at("goal"), g, p);
        }
        let goal_within_ms = match (&r.goal, &r.goal_within) {
            (Some(_), Some(w)) => parse_duration(w).unwrap_or_else(|e| {
                p.value(at("goal_within"), e);
                0
            }),
            (Some(_), None) => {
                p.add(at("goal_within"), "required with goal: how long after the release a goal event counts, e.g. \"24h\"");
                0
            }
            (None, Some(_)) => {
                p.add(
                    at("goal"),
                    "goal_within is set but goal is not: name the goal event",
                );
                0
            }
            (None, None) => 0,
        };
        let cond = condition(&at, r.cond.unwrap_or_default(), p);
        let actions = actions(&format!("rules[{i}]"), r.actions, p);
        if p.len() == errors_before {
            out.push(Rule {
                name,
                when,
                where_,
                unless: r.unless,
                match_key: r.match_,
                wait_ms,
                cap,
                quiet_hours,
                holdout_bp,
                goal: r.goal,
                goal_within_ms,
                cond,
                actions,
            });
        }
    }
    out
}

fn condition(at: &dyn Fn(&str) -> String, c: RawCondition, p: &mut Problems) -> Condition {
    let mut cents = |k: &str, v: &Option<toml::Value>| {
        v.as_ref().and_then(|v| {
            money(v)
                .map_err(|e| p.value(at(&format!("if.{k}")), e))
                .ok()
        })
    };
    let min_revenue = cents("min_revenue", &c.min_revenue);
    let max_revenue = cents("max_revenue", &c.max_revenue);
    let mut days = |k: &str, v: Option<i64>, max: i64| {
        v.and_then(|d| {
            if (0..=max).contains(&d) {
                Some(d)
            } else {
                p.add(
                    at(&format!("if.{k}")),
                    format!("{d} is out of range; allowed: 0..={max}"),
                );
                None
            }
        })
    };
    let cond = Condition {
        min_revenue,
        max_revenue,
        channels: c.channels.clone(),
        min_days_since_first: days("min_days_since_first", c.min_days_since_first, 100_000),
        max_days_since_first: days("max_days_since_first", c.max_days_since_first, 100_000),
        min_active_days_30: days("min_active_days_30", c.min_active_days_30, 30),
        max_active_days_30: days("max_active_days_30", c.max_active_days_30, 30),
    };
    if let Some(list) = &c.channels {
        if list.is_empty() {
            p.add(
                at("if.channels"),
                "list at least one channel (\"(none)\" stands for no channel)",
            );
        }
    }
    let pairs = [
        ("revenue", cond.min_revenue, cond.max_revenue),
        (
            "days_since_first",
            cond.min_days_since_first,
            cond.max_days_since_first,
        ),
        (
            "active_days_30",
            cond.min_active_days_30,
            cond.max_active_days_30,
        ),
    ];
    for (k, lo, hi) in pairs {
        if let (Some(lo), Some(hi)) = (lo, hi) {
            if lo > hi {
                p.add(
                    at(&format!("if.min_{k}")),
                    format!("min_{k} is above max_{k}: no person could pass"),
                );
            }
        }
    }
    cond
}

/// The dims keys of a metric's rows, in the order rows write them.
pub fn dims_keys(metric: Metric) -> &'static [&'static str] {
    use Metric::*;
    match metric {
        Dau | Wau | Mau | Stickiness | NewUsers | Revenue => &["day"],
        Hau => &["hour"],
        NewUsersWeekly | NewUserGrowthWeekly => &["week"],
        Lifecycle => &["day", "state"],
        Retention | RetentionRate | RetentionUnbounded => &["cohort_day", "n"],
        MonthlyRetention | MonthlyRetentionRate => &["cohort_month", "n"],
        SlidingRetentionBase | SlidingRetentionKept | SlidingRetention => &["day", "window"],
        Funnel | FunnelConversion => &["funnel", "day", "step"],
        FunnelOpen | FunnelDropped => &["funnel", "day"],
        NewUsersByChannel | Spend | Cac | RevenueByChannel => &["day", "channel"],
        CacTotal | RoasTotal => &["channel"],
        Ratio | RatioNumerator | RatioDenominator => &["name", "day"],
        TriggerFired | TriggerConverted => &["rule", "day", "group"],
        TriggerConversionRate => &["rule", "group"],
        TriggerLift | TriggerPending => &["rule"],
    }
}

pub(super) fn alerts(raw: Vec<RawAlert>, p: &mut Problems) -> Vec<Alert> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, a) in raw.into_iter().enumerate() {
        let errors_before = p.len();
        let at = |k: &str| match &a.name {
            Some(n) => format!("alerts[{i}].{k} (alert {n:?})"),
            None => format!("alerts[{i}].{k}"),
        };
        let name = a.name.clone().unwrap_or_default();
        match &a.name {
            None => p.add(
                format!("alerts[{i}].name"),
                "required: a unique name, e.g. \"hourly_actives_drop\"",
            ),
            Some(n) => check_rule_name(&at("name"), n, &mut seen, p),
        }
        let metric = match a.metric.as_deref() {
            None => {
                p.add(
                    at("metric"),
                    "required: a metric with a day or hour dim, e.g. \"hau\" or \"dau\"",
                );
                None
            }
            Some(m) => {
                match Metric::from_name(m) {
                    None => {
                        p.add(at("metric"), format!("{m:?} is not a metric (see METRICS.md: dau, hau, ratio, funnel, ...)"));
                        None
                    }
                    Some(metric) => Some(metric),
                }
            }
        };
        let bucket = metric.and_then(|m| {
            let keys = dims_keys(m);
            if keys.contains(&"hour") {
                Some(Bucket::Hour)
            } else if keys.contains(&"day") {
                Some(Bucket::Day)
            } else {
                p.add(
                    at("metric"),
                    format!("{:?} has no day or hour dim (its dims: {}); an alert needs a series of buckets", m.name(), keys.join(", ")),
                );
                None
            }
        });
        let mut where_ = Vec::new();
        for (k, v) in a.where_.iter().flatten() {
            match prop_text(v) {
                Some(t) => where_.push((k.clone(), t)),
                None => p.add(at(&format!("where.{k}")), "expected a string or a number"),
            }
        }
        if let (Some(m), Some(_)) = (metric, bucket) {
            let keys = dims_keys(m);
            for (k, _) in &where_ {
                if matches!(k.as_str(), "day" | "hour") {
                    p.add(
                        at(&format!("where.{k}")),
                        format!("{k} is the bucket of the series; it cannot be fixed"),
                    );
                } else if !keys.contains(&k.as_str()) {
                    p.add(
                        at(&format!("where.{k}")),
                        format!(
                            "{:?} has no dim {k:?} (its dims: {})",
                            m.name(),
                            keys.join(", ")
                        ),
                    );
                }
            }
            for k in keys.iter().filter(|k| !matches!(**k, "day" | "hour")) {
                if !where_.iter().any(|(w, _)| w == k) {
                    p.add(
                        at("where"),
                        format!(
                            "dim {k:?} of {:?} is left open; fix it, e.g. where = {{ {k} = ... }}",
                            m.name()
                        ),
                    );
                }
            }
        }
        let conditions: Vec<(&str, &Option<toml::Value>)> = vec![
            ("drop", &a.drop),
            ("rise", &a.rise),
            ("below", &a.below),
            ("above", &a.above),
        ];
        let given: Vec<_> = conditions.iter().filter(|(_, v)| v.is_some()).collect();
        let breach = match given.as_slice() {
            [(k, Some(v))] => match (number(v), *k) {
                (Some(x), "drop") if x > 0.0 && x <= 1.0 => Some(Breach::Drop(x)),
                (Some(x), "rise") if x > 0.0 => Some(Breach::Rise(x)),
                (Some(x), "below") => Some(Breach::Below(x)),
                (Some(x), "above") => Some(Breach::Above(x)),
                _ => {
                    let allowed = match *k {
                        "drop" => "a share in (0, 1], e.g. 0.4 for a 40% drop",
                        "rise" => "a positive share, e.g. 0.5 for a 50% rise",
                        _ => "a number",
                    };
                    p.add(at(k), format!("{v}: allowed: {allowed}"));
                    None
                }
            },
            [] => {
                p.add(
                    at("drop"),
                    "give exactly one condition: drop, rise, below or above",
                );
                None
            }
            _ => {
                let names: Vec<&str> = given.iter().map(|(k, _)| *k).collect();
                p.add(
                    at(names[1]),
                    format!(
                        "{} are set at once; give exactly one condition",
                        names.join(" and ")
                    ),
                );
                None
            }
        };
        let bucket_ms = match bucket {
            Some(Bucket::Hour) => 3_600_000,
            _ => 86_400_000,
        };
        let (mut lag, mut count) = (0, 0);
        match (&a.baseline, breach) {
            (Some(b), Some(br)) if br.uses_baseline() => {
                match &b.lag {
                    None => p.add(at("baseline.lag"), "required: e.g. \"1d\" or \"7d\""),
                    Some(t) => match parse_duration(t) {
                        Ok(ms) if ms % bucket_ms == 0 => match u32::try_from(ms / bucket_ms) {
                            Ok(buckets) => lag = buckets,
                            Err(_) => p.add(
                                at("baseline.lag"),
                                format!("{t:?} is too long; allowed: up to {} buckets", u32::MAX),
                            ),
                        },
                        Ok(_) => p.add(
                            at("baseline.lag"),
                            format!(
                                "{t:?} is not a whole number of {} buckets",
                                if bucket_ms == 3_600_000 {
                                    "hour"
                                } else {
                                    "day"
                                }
                            ),
                        ),
                        Err(e) => p.value(at("baseline.lag"), e),
                    },
                }
                match b.count {
                    // In range, so it fits: never the 0 of an unset count.
                    Some(c) if (1..=1000).contains(&c) => count = u32::try_from(c).unwrap_or(0),
                    Some(c) => p.add(
                        at("baseline.count"),
                        format!("{c} is out of range; allowed: 1..=1000"),
                    ),
                    None => p.add(
                        at("baseline.count"),
                        "required: how many earlier buckets to average",
                    ),
                }
                let reach_ms =
                    u128::from(lag) * u128::from(count) * u128::from(bucket_ms.unsigned_abs());
                if reach_ms > u128::from(MAX_BASELINE_DAYS) * 86_400_000 {
                    p.add(
                        at("baseline"),
                        format!(
                            "lag × count reaches back {} days; allowed: up to {MAX_BASELINE_DAYS} days",
                            reach_ms / 86_400_000
                        ),
                    );
                }
            }
            (None, Some(br)) if br.uses_baseline() => p.add(
                at("baseline"),
                "required with drop and rise, e.g. baseline = { lag = \"1d\", count = 7 }",
            ),
            (Some(_), Some(_)) => p.add(
                at("baseline"),
                "only drop and rise compare with a baseline; remove it",
            ),
            _ => {}
        }
        let mut runs = |k: &str, v: Option<i64>| match v {
            None => 1,
            // In range, so it fits: never the fallback.
            Some(n) if (1..=10_000).contains(&n) => u32::try_from(n).unwrap_or(1),
            Some(n) => {
                p.add(
                    at(k),
                    format!("{n} is out of range; allowed: 1..=10000 buckets"),
                );
                1
            }
        };
        let for_ = runs("for", a.for_);
        let keep_firing_for = runs("keep_firing_for", a.keep_firing_for);
        let min_baseline = match &a.min_baseline {
            None => 0.0,
            Some(v) => match number(v) {
                Some(x) if x >= 0.0 => x,
                _ => {
                    p.add(at("min_baseline"), format!("{v}: allowed: a number >= 0"));
                    0.0
                }
            },
        };
        let grace_ms =
            parse_duration_or_zero(a.grace.as_deref().unwrap_or("5m")).unwrap_or_else(|e| {
                p.value(at("grace"), e);
                0
            });
        let actions = actions(&format!("alerts[{i}]"), a.actions, p);
        if p.len() == errors_before {
            if let (Some(metric), Some(bucket), Some(breach)) = (metric, bucket, breach) {
                out.push(Alert {
                    name,
                    metric,
                    bucket,
                    where_,
                    breach,
                    lag,
                    count,
                    for_,
                    keep_firing_for,
                    min_baseline,
                    grace_ms,
                    actions,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn error(text: &str) -> String {
        Config::from_toml(text).unwrap_err().to_string()
    }

    const RULE: &str = "[[rules]]\nname = \"r\"\nwhen = \"order_created\"\nwait = \"2h\"\n";

    #[test]
    fn rule_errors_name_the_rule_and_key() {
        let e = error(&format!(
            "{RULE}quiet_hours = {{ from = \"22:00\", to = \"25:00\" }}\n"
        ));
        assert!(e.contains("rules[0].quiet_hours.to"), "{e}");
        assert!(e.contains("\"25:00\" is not a time of day (HH:MM)"), "{e}");
        assert!(error(&format!("{RULE}goal = \"order_paid\"\n")).contains("rules[0].goal_within"));
        assert!(error(&format!("{RULE}holdout = 1.5\n")).contains("rules[0].holdout"));
        assert!(error(&format!("{RULE}holdout = 0.12345\n")).contains("at most 4 decimals"));
        assert!(error(&format!("{RULE}{RULE}")).contains("used twice"));
        assert!(error(&format!("{RULE}colour = 1\n")).contains("colour"));
        assert!(error(&format!("{RULE}[rules.if]\nmin_revnue = 3\n")).contains("min_revnue"));
        assert!(
            error("[[rules]]\nname = \"Bad Name\"\nwhen = \"x\"\nwait = \"1h\"\n")
                .contains("a-z, 0-9")
        );
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let e = error(&format!(
            "{RULE}holdout = 2\ncap = {{ max = 0, per = \"1d\" }}\n[[alerts]]\nname = \"a\"\nmetric = \"nope\"\ndrop = 0.5\n"
        ));
        for key in ["rules[0].holdout", "rules[0].cap.max", "alerts[0].metric"] {
            assert!(e.contains(key), "{key} missing from: {e}");
        }
    }

    #[test]
    fn alert_errors_name_the_alert_and_key() {
        let alert = |body: &str| error(&format!("[[alerts]]\nname = \"a\"\n{body}"));
        assert!(alert("metric = \"new_users_weekly\"\nabove = 1\n").contains("no day or hour dim"));
        assert!(alert("metric = \"ratio\"\nbelow = 0.1\n").contains("left open"));
        assert!(
            alert("metric = \"hau\"\ndrop = 0.5\nbaseline = { lag = \"90m\", count = 2 }\n")
                .contains("whole number of hour buckets")
        );
        assert!(alert(
            "metric = \"hau\"\ndrop = 0.5\nbaseline = { lag = \"5000000000h\", count = 2 }\n"
        )
        .contains("is too long"));
        let far = alert(
            "metric = \"hau\"\ndrop = 0.5\nbaseline = { lag = \"10000000h\", count = 1000 }\n",
        );
        assert!(
            far.contains("reaches back") && far.contains("alerts[0].baseline"),
            "{far}"
        );
        assert!(Config::from_toml("[[alerts]]\nname = \"a\"\nmetric = \"dau\"\ndrop = 0.5\nbaseline = { lag = \"7d\", count = 520 }\n").is_ok());
        assert!(
            alert("metric = \"dau\"\ndrop = 0.5\nabove = 3\n").contains("exactly one condition")
        );
        assert!(alert("metric = \"dau\"\ndrop = 0.5\n").contains("alerts[0].baseline"));
    }

    #[test]
    fn zero_durations() {
        assert_eq!(super::parse_duration_or_zero("0s"), Ok(0));
        assert_eq!(super::parse_duration_or_zero("0m"), Ok(0));
        assert_eq!(super::parse_duration_or_zero("15m"), Ok(900_000));
        assert!(super::parse_duration_or_zero("0").is_err());
    }
}
