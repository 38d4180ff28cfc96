//! The operator's TOML configuration: defaults, parsing and validation with errors that name the key.

mod actions;
mod cluster;
mod serve;
pub use cluster::{is_host_port, ClusterConfig};

pub use actions::{
    dims_keys, parse_duration_or_zero, Action, Alert, Breach, Bucket, Condition, Delivery,
    QuietHours, Rule,
};
pub use serve::{
    parse_listen, parse_millis, parse_mqtt_url, parse_size, ClockMode, Mqtt, MqttUrl, Serve,
    SlowSubscriber,
};

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

use crate::time::Calendar;

/// A configuration problem: which key, and what is allowed there.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The cause is in the message and not a `source`, so that it is said once.
    #[error("cannot read config file {path}: {cause}")]
    /// The file could not be read.
    Read {
        /// The file.
        path: String,
        /// Why it could not be read.
        cause: std::io::Error,
    },
    #[error("config is not valid TOML or has a value of the wrong type: {0}")]
    /// The text is not TOML, or a value has the wrong type.
    Syntax(#[source] toml::de::Error),
    #[error("config key `{key}`: {problem}")]
    /// A key has a value that is not allowed.
    Invalid {
        /// The key, with its section (`serve.listen`).
        key: String,
        /// What is wrong and what is allowed.
        problem: String,
    },
    /// The value of `key` does not parse (a duration, a size, an address, ...).
    #[error("config key `{key}`: {source}")]
    Value {
        /// The key, as the file writes it.
        key: String,
        /// What is wrong with its value.
        #[source]
        source: ValueError,
    },
    #[error("{} problems in the config:\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    /// Several problems, each said once.
    Many(Vec<ConfigError>),
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

fn bad_value(key: impl Into<String>, source: ValueError) -> ConfigError {
    ConfigError::Value {
        key: key.into(),
        source,
    }
}

/// What a duration may look like, said after every duration that does not parse.
const DURATIONS: &str = "allowed: a duration such as \"90s\", \"30m\", \"2h\", \"1d\" or \"1h30m\"";

/// Why a single value does not parse: a duration, a byte size, an address to listen on, an
/// MQTT URL or an amount of money. Each variant holds the text as given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// A duration with a character that is neither a digit nor a unit.
    #[error("{text:?} has unexpected {found:?}; {DURATIONS}")]
    DurationChar {
        /// The value as given.
        text: String,
        /// What was found instead.
        found: char,
    },
    /// A duration unit with no number before it.
    #[error("{text:?}: a number must come before {unit:?}; {DURATIONS}")]
    DurationNumber {
        /// The value as given.
        text: String,
        /// The unit as given.
        unit: char,
    },
    /// A duration beyond what milliseconds in an `i64` hold.
    #[error("{text:?} is too long")]
    DurationTooLong {
        /// The value as given.
        text: String,
    },
    /// A duration ending in digits without a unit.
    #[error("{text:?} lacks a unit after {digits}; {DURATIONS}")]
    DurationUnit {
        /// The value as given.
        text: String,
        /// The digits before the unit.
        digits: String,
    },
    /// Not a duration at all (no unit).
    #[error("{text:?} is not a duration; {DURATIONS}")]
    NotDuration {
        /// The value as given.
        text: String,
    },
    /// A duration of zero where a positive one is needed.
    #[error("{text:?} is not a positive duration; allowed: a positive duration such as \"90s\", \"30m\", \"2h\", \"1d\" or \"1h30m\"")]
    NotPositive {
        /// The value as given.
        text: String,
    },
    /// Not a number of milliseconds (`250ms`).
    #[error("{text:?} is not a duration; write e.g. \"5ms\" or \"1s\"")]
    NotMillis {
        /// The value as given.
        text: String,
    },
    /// A byte size without a number.
    #[error("{text:?} is not a size; write e.g. 8MiB, 512KiB or 1048576")]
    NotSize {
        /// The value as given.
        text: String,
    },
    /// A byte size with a unit other than B, KiB, MiB or GiB.
    #[error("unknown unit {unit:?} in {text:?}; use B, KiB, MiB or GiB")]
    SizeUnit {
        /// The value as given.
        text: String,
        /// The unit as given.
        unit: String,
    },
    /// A byte size beyond `usize`.
    #[error("{text:?} is too large")]
    SizeTooLarge {
        /// The value as given.
        text: String,
    },
    /// Not `IP:PORT` or `localhost:PORT`.
    #[error("{text:?} is not an address; write HOST:PORT with an IP address or localhost, e.g. \"127.0.0.1:7878\" or \"0.0.0.0:7878\"")]
    NotAddress {
        /// The value as given.
        text: String,
    },
    /// An MQTT URL that does not start with `mqtt://` (or `tcp://`).
    #[error("{url:?} must start with mqtt://, e.g. mqtt://127.0.0.1:1883")]
    MqttScheme {
        /// The URL as given.
        url: String,
    },
    /// An MQTT URL whose port is not a port number.
    #[error("{url:?} has a bad port {port:?}")]
    MqttPort {
        /// The URL as given.
        url: String,
        /// The port as given.
        port: String,
    },
    /// An MQTT URL without a host.
    #[error("{url:?} has no host")]
    MqttHost {
        /// The URL as given.
        url: String,
    },
    /// A value of another TOML type where an amount belongs.
    #[error("expected an amount, got {found}")]
    NotAmount {
        /// What was found instead.
        found: &'static str,
    },
    /// A number that is not an amount of money.
    #[error(transparent)]
    Amount(#[from] crate::event::AmountError),
}

/// Problems found while validating, collected so that all of them are reported at once.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<ConfigError>);

impl Problems {
    /// Notes a problem with `key`.
    pub(crate) fn add(&mut self, key: impl Into<String>, problem: impl Into<String>) {
        self.0.push(invalid(key, problem));
    }

    /// Notes that the value of `key` does not parse.
    pub(crate) fn value(&mut self, key: impl Into<String>, e: ValueError) {
        self.0.push(bad_value(key, e));
    }

    /// Notes an error returned by a section's own validation.
    fn absorb(&mut self, e: ConfigError) {
        match e {
            ConfigError::Many(list) => self.0.extend(list),
            other => self.0.push(other),
        }
    }

    /// Problems so far.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The value when nothing was wrong, else every problem.
    fn finish<T>(self, value: T) -> Result<T, ConfigError> {
        match self.0.len() {
            0 => Ok(value),
            1 => Err(self.0.into_iter().next().expect("one problem")),
            _ => Err(ConfigError::Many(self.0)),
        }
    }
}

#[derive(Debug, Deserialize, Default)]
struct RawConfig {
    timezone: Option<String>,
    #[serde(default)]
    activity: RawActivity,
    #[serde(default)]
    identity: RawIdentity,
    #[serde(default)]
    retention: RawRetention,
    #[serde(default)]
    acquisition: RawAcquisition,
    funnels: Option<Vec<RawFunnel>>,
    ratios: Option<Vec<RawRatio>>,
    #[serde(default)]
    serve: serve::RawServe,
    #[serde(default)]
    mqtt: serve::RawMqtt,
    #[serde(default)]
    rules: Vec<actions::RawRule>,
    #[serde(default)]
    alerts: Vec<actions::RawAlert>,
    #[serde(default)]
    delivery: actions::RawDelivery,
    #[serde(default)]
    cluster: cluster::RawCluster,
}

#[derive(Debug, Deserialize, Default)]
struct RawActivity {
    exclude: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Default)]
struct RawIdentity {
    blocked_values: Option<Vec<String>>,
    max_persons_per_value: Option<i64>,
}

#[derive(Debug, Deserialize, Default)]
struct RawRetention {
    max_day: Option<i64>,
    sliding_windows: Option<Vec<i64>>,
}

#[derive(Debug, Deserialize, Default)]
struct RawAcquisition {
    spend_event: Option<String>,
    purchase_event: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawFunnel {
    name: String,
    steps: Vec<String>,
    window: String,
}

#[derive(Debug, Deserialize)]
struct RawRatio {
    name: String,
    numerator: Vec<String>,
    denominator: toml::Value,
}

/// One funnel: ordered steps and the conversion window.
#[derive(Clone, Debug, PartialEq)]
pub struct Funnel {
    /// The funnel's name, as its rows' `funnel` dim says.
    pub name: String,
    /// The step events, in order.
    pub steps: Vec<String>,
    /// How long after the first step the last may come, in milliseconds.
    pub window_ms: i64,
}

/// What a ratio divides by.
#[derive(Clone, Debug, PartialEq)]
pub enum Denominator {
    /// Persons active on the day.
    Active,
    /// Persons with one of these events on the day.
    Events(Vec<String>),
}

/// One ratio: persons with a numerator event over persons in the denominator, per day.
#[derive(Clone, Debug, PartialEq)]
pub struct Ratio {
    /// The ratio's name, as its rows' `ratio` dim says.
    pub name: String,
    /// Events that put a person in the numerator.
    pub numerator: Vec<String>,
    /// Who the ratio divides by.
    pub denominator: Denominator,
}

/// A validated configuration. `Config::default()` is the configuration of no file at all.
#[derive(Clone, Debug)]
pub struct Config {
    /// The IANA time zone that days and hours are counted in.
    pub timezone: String,
    /// Days and hours of `timezone`.
    pub calendar: Calendar,
    /// Events that do not make a person active.
    pub activity_exclude: BTreeSet<String>,
    /// Identity values that never link persons (placeholders such as `unknown`).
    pub blocked_values: Vec<String>,
    /// Persons one identity value may link before it stops linking.
    pub max_persons_per_value: u32,
    /// The last day N of day-N retention.
    pub retention_max_day: u16,
    /// Windows of sliding-window retention, in days.
    pub sliding_windows: Vec<u16>,
    /// The event that carries ad spend.
    pub spend_event: String,
    /// The event that carries revenue.
    pub purchase_event: String,
    /// Funnels, in the order the file lists them.
    pub funnels: Vec<Funnel>,
    /// Conversion ratios, in the order the file lists them.
    pub ratios: Vec<Ratio>,
    /// The `[serve]` section: the live server.
    pub serve: Serve,
    /// The `[mqtt]` section: the broker.
    pub mqtt: Mqtt,
    /// Trigger rules (ACTIONS.md), in the order the file lists them.
    pub rules: Vec<Rule>,
    /// Alerts (ACTIONS.md), in the order the file lists them.
    pub alerts: Vec<Alert>,
    /// How firings and alert transitions are delivered to their actions.
    pub delivery: Delivery,
    /// The `[cluster]` section: this process's place in a cluster.
    pub cluster: ClusterConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config::validate(RawConfig::default(), Problems::default())
            .expect("the built-in defaults are valid")
    }
}

const DEFAULT_BLOCKED: &[&str] = &["", "null", "undefined", "0", "-1", "anonymous", "unknown"];

fn default_funnels() -> Vec<Funnel> {
    vec![Funnel {
        name: "purchase".into(),
        steps: ["product_view", "add_to_cart", "order_created", "order_paid"]
            .map(String::from)
            .to_vec(),
        window_ms: 86_400_000,
    }]
}

fn default_ratios() -> Vec<Ratio> {
    let r = |name: &str, num: &str, den: Denominator| Ratio {
        name: name.into(),
        numerator: vec![num.into()],
        denominator: den,
    };
    vec![
        r("registration_conversion", "register", Denominator::Active),
        r(
            "purchase_conversion",
            "order_paid",
            Denominator::Events(vec!["product_view".into()]),
        ),
        r("share_rate", "share", Denominator::Active),
    ]
}

/// A key path as a config file writes it: `rules.0.when` becomes `rules[0].when` (and the `?`
/// that stands for an optional value goes).
fn key_path(dotted: &str) -> String {
    let mut out = String::new();
    for part in dotted.split('.').filter(|p| *p != "?") {
        if !out.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

impl Config {
    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let mut unknown = Vec::new();
        let de = toml::Deserializer::parse(text).map_err(ConfigError::Syntax)?;
        let raw: RawConfig =
            serde_ignored::deserialize(de, |path| unknown.push(key_path(&path.to_string())))
                .map_err(ConfigError::Syntax)?;
        let mut p = Problems::default();
        for key in unknown {
            p.add(key, "unknown key; CONFIG.md lists the keys of each table");
        }
        Config::validate(raw, p)
    }

    /// Reads, parses and validates a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.display().to_string(),
            cause,
        })?;
        Config::from_toml(&text)
    }

    /// Checks every value, adding to the problems `p` already holds; all are reported at once.
    fn validate(raw: RawConfig, mut p: Problems) -> Result<Self, ConfigError> {
        let timezone = raw.timezone.unwrap_or_else(|| "UTC".to_string());
        let calendar = Calendar::new(&timezone).unwrap_or_else(|e| {
            p.add(
                "timezone",
                format!("{e}; use an IANA zone name such as \"UTC\" or \"Asia/Shanghai\""),
            );
            Calendar::new("UTC").expect("UTC is in the bundled database")
        });
        let activity_exclude = raw.activity.exclude.unwrap_or_default();
        for (i, name) in activity_exclude.iter().enumerate() {
            check_event_name(&mut p, &format!("activity.exclude[{i}]"), name);
        }
        let max_day = raw.retention.max_day.unwrap_or(30);
        if !(1..=366).contains(&max_day) {
            p.add(
                "retention.max_day",
                format!("{max_day} is out of range; allowed: 1..=366"),
            );
        }
        let windows = raw.retention.sliding_windows.unwrap_or_else(|| vec![7]);
        let mut seen = BTreeSet::new();
        for (i, w) in windows.iter().enumerate() {
            if !(1..=366).contains(w) {
                p.add(
                    format!("retention.sliding_windows[{i}]"),
                    format!("{w} is out of range; allowed: whole days 1..=366"),
                );
            } else if !seen.insert(*w) {
                p.add(
                    format!("retention.sliding_windows[{i}]"),
                    format!("window {w} is listed twice"),
                );
            }
        }
        let max_persons = raw.identity.max_persons_per_value.unwrap_or(1000);
        if !(2..=1_000_000_000).contains(&max_persons) {
            p.add(
                "identity.max_persons_per_value",
                format!("{max_persons} is out of range; allowed: 2..=1000000000"),
            );
        }
        let spend_event = raw
            .acquisition
            .spend_event
            .unwrap_or_else(|| "ad_spend".into());
        check_event_name(&mut p, "acquisition.spend_event", &spend_event);
        let purchase_event = raw
            .acquisition
            .purchase_event
            .unwrap_or_else(|| "order_paid".into());
        check_event_name(&mut p, "acquisition.purchase_event", &purchase_event);
        let funnels = match raw.funnels {
            None => default_funnels(),
            Some(list) => validate_funnels(list, &mut p),
        };
        let ratios = match raw.ratios {
            None => default_ratios(),
            Some(list) => validate_ratios(list, &mut p),
        };
        let serve = Serve::from_raw(raw.serve)
            .map_err(|e| p.absorb(e))
            .unwrap_or_else(|()| Serve::from_raw(Default::default()).expect("defaults"));
        let mqtt = Mqtt::from_raw(raw.mqtt)
            .map_err(|e| p.absorb(e))
            .unwrap_or_else(|()| Mqtt::from_raw(Default::default()).expect("defaults"));
        let rules = actions::rules(raw.rules, &mut p);
        let alerts = actions::alerts(raw.alerts, &mut p);
        let delivery = actions::delivery(raw.delivery, &mut p);
        let cluster = cluster::cluster(raw.cluster, &mut p);
        let config = Config {
            timezone,
            calendar,
            activity_exclude: activity_exclude.into_iter().collect(),
            blocked_values: raw
                .identity
                .blocked_values
                .unwrap_or_else(|| DEFAULT_BLOCKED.iter().map(|s| s.to_string()).collect()),
            max_persons_per_value: max_persons.clamp(2, 1_000_000_000) as u32,
            retention_max_day: max_day.clamp(1, 366) as u16,
            sliding_windows: windows
                .into_iter()
                .map(|w| w.clamp(1, 366) as u16)
                .collect(),
            spend_event,
            purchase_event,
            funnels,
            ratios,
            serve,
            mqtt,
            rules,
            alerts,
            delivery,
            cluster,
        };
        check_references(&config, &mut p);
        check_counts(&config, &mut p);
        p.finish(config)
    }
}

/// The dataflow numbers funnels, ratios, rules, alerts and the event names funnels and ratios
/// count by a `u16` (`crate::plan::id`): at most 65536 of each.
fn check_counts(c: &Config, p: &mut Problems) {
    const MAX: usize = 1 << 16;
    let names: BTreeSet<&String> = c
        .funnels
        .iter()
        .flat_map(|f| &f.steps)
        .chain(c.ratios.iter().flat_map(|r| {
            let dens = match &r.denominator {
                Denominator::Active => &[][..],
                Denominator::Events(list) => &list[..],
            };
            r.numerator.iter().chain(dens)
        }))
        .collect();
    for (key, n, what) in [
        ("funnels", c.funnels.len(), "funnels"),
        ("ratios", c.ratios.len(), "ratios"),
        ("rules", c.rules.len(), "rules"),
        ("alerts", c.alerts.len(), "alerts"),
        ("funnels", names.len(), "event names in funnels and ratios"),
    ] {
        if n > MAX {
            p.add(key, format!("{n} {what}; allowed: at most {MAX}"));
        }
    }
}

/// Names that rules and alerts refer to exist: funnels, ratios, rules, steps, states, groups.
fn check_references(c: &Config, p: &mut Problems) {
    for (i, a) in c.alerts.iter().enumerate() {
        for (k, v) in &a.where_ {
            let key = format!("alerts[{i}].where.{k} (alert {:?})", a.name);
            let known = match k.as_str() {
                "funnel" => c.funnels.iter().any(|f| &f.name == v),
                "name" => c.ratios.iter().any(|r| &r.name == v),
                "rule" => c.rules.iter().any(|r| &r.name == v),
                "group" => matches!(v.as_str(), "treatment" | "holdout"),
                "state" => matches!(v.as_str(), "new" | "returning" | "resurrecting" | "dormant"),
                "step" => {
                    let funnel = a.where_.iter().find(|(k, _)| k == "funnel").map(|(_, f)| f);
                    let steps = c
                        .funnels
                        .iter()
                        .find(|f| Some(&f.name) == funnel)
                        .map_or(0, |f| f.steps.len());
                    v.parse::<usize>().is_ok_and(|s| (1..=steps).contains(&s))
                }
                "window" => v
                    .parse::<u16>()
                    .is_ok_and(|w| c.sliding_windows.contains(&w)),
                _ => true,
            };
            if !known {
                p.add(key, format!("{v:?} names no configured {k}"));
            }
        }
    }
}

fn check_event_name(p: &mut Problems, key: &str, name: &str) {
    if name.is_empty() || name.len() > 64 {
        p.add(key, format!("event name {name:?} must be 1..=64 bytes"));
    }
}

fn check_unique_name(p: &mut Problems, key: &str, name: &str, seen: &mut BTreeSet<String>) {
    if name.is_empty() {
        p.add(key, "name must not be empty");
    } else if !seen.insert(name.to_string()) {
        p.add(
            key,
            format!("name {name:?} is used twice; names must be unique"),
        );
    }
}

fn validate_funnels(list: Vec<RawFunnel>, p: &mut Problems) -> Vec<Funnel> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, f) in list.into_iter().enumerate() {
        check_unique_name(p, &format!("funnels[{i}].name"), &f.name, &mut seen);
        if f.steps.is_empty() || f.steps.len() > 32 {
            p.add(
                format!("funnels[{i}].steps"),
                "a funnel needs 1..=32 steps (event names)",
            );
        }
        for (j, s) in f.steps.iter().enumerate() {
            check_event_name(p, &format!("funnels[{i}].steps[{j}]"), s);
        }
        let window_ms = parse_duration(&f.window).unwrap_or_else(|e| {
            p.value(format!("funnels[{i}].window"), e);
            1
        });
        out.push(Funnel {
            name: f.name,
            steps: f.steps,
            window_ms,
        });
    }
    out
}

fn validate_ratios(list: Vec<RawRatio>, p: &mut Problems) -> Vec<Ratio> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, r) in list.into_iter().enumerate() {
        check_unique_name(p, &format!("ratios[{i}].name"), &r.name, &mut seen);
        if r.numerator.is_empty() {
            p.add(
                format!("ratios[{i}].numerator"),
                "list at least one event name",
            );
        }
        for (j, s) in r.numerator.iter().enumerate() {
            check_event_name(p, &format!("ratios[{i}].numerator[{j}]"), s);
        }
        let key = format!("ratios[{i}].denominator");
        let denominator = match r.denominator {
            toml::Value::String(s) if s == "active" => Denominator::Active,
            toml::Value::Array(items) if !items.is_empty() => {
                let mut names = Vec::new();
                for (j, item) in items.into_iter().enumerate() {
                    match item {
                        toml::Value::String(s) => {
                            check_event_name(p, &format!("{key}[{j}]"), &s);
                            names.push(s);
                        }
                        other => p.add(
                            format!("{key}[{j}]"),
                            format!("expected an event name, got {other}"),
                        ),
                    }
                }
                Denominator::Events(names)
            }
            other => {
                p.add(
                    key,
                    format!("expected \"active\" or a non-empty list of event names, got {other}"),
                );
                Denominator::Active
            }
        };
        out.push(Ratio {
            name: r.name,
            numerator: r.numerator,
            denominator,
        });
    }
    out
}

/// Parses a duration such as `90s`, `30m`, `2h`, `1d` (also combined: `1h30m`) into milliseconds.
pub fn parse_duration(text: &str) -> Result<i64, ValueError> {
    let total = parse_span(text)?;
    if total <= 0 {
        return Err(ValueError::NotPositive { text: text.into() });
    }
    Ok(total)
}

/// Parses a duration that may be zero (`0s`) into milliseconds.
pub(crate) fn parse_span(text: &str) -> Result<i64, ValueError> {
    let mut total: i64 = 0;
    let mut digits = String::new();
    let mut units = 0;
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: i64 = match c {
            's' => 1_000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            _ => {
                return Err(ValueError::DurationChar {
                    text: text.into(),
                    found: c,
                })
            }
        };
        let n: i64 = digits.parse().map_err(|_| ValueError::DurationNumber {
            text: text.into(),
            unit: c,
        })?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| ValueError::DurationTooLong { text: text.into() })?;
        digits.clear();
        units += 1;
    }
    if !digits.is_empty() {
        return Err(ValueError::DurationUnit {
            text: text.into(),
            digits,
        });
    }
    if units == 0 {
        return Err(ValueError::NotDuration { text: text.into() });
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_the_defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.timezone, "UTC");
        assert_eq!(c.retention_max_day, 30);
        assert_eq!(c.sliding_windows, vec![7]);
        assert_eq!(c.funnels, default_funnels());
        assert_eq!(c.ratios.len(), 3);
        assert_eq!(c.blocked_values.len(), DEFAULT_BLOCKED.len());
    }

    #[test]
    fn more_funnels_than_u16_ids_are_refused() {
        let c = Config {
            funnels: (0..=1 << 16)
                .map(|i| Funnel {
                    name: format!("f{i}"),
                    steps: vec![format!("e{i}")],
                    window_ms: 1,
                })
                .collect(),
            ..Config::default()
        };
        let mut p = Problems::default();
        check_counts(&c, &mut p);
        assert_eq!(p.len(), 2, "the funnels and their event names");
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::from_toml("[retention]\nmax_days = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("retention.max_days"), "{e}");
    }

    /// Unknown keys in any table and bad values come in one report, each with its key.
    #[test]
    fn every_problem_comes_at_once() {
        let text = "bogus = 1\ntimezone = \"Mars/Base\"\n[serve]\nhorizn = \"5d\"\n\
                    [[rules]]\nname = \"r\"\nwhen = \"x\"\nwait = \"xyz\"\ncolour = 1\n\
                    [[rules.actions]]\nwebhok = \"http://a\"\n";
        let e = Config::from_toml(text).unwrap_err().to_string();
        for key in [
            "`bogus`",
            "`timezone`",
            "`serve.horizn`",
            "`rules[0].colour`",
            "`rules[0].actions[0].webhok`",
            "`rules[0].wait",
        ] {
            assert!(e.contains(key), "{key} missing from: {e}");
        }
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("timezone = \"Mars/Base\"", "timezone"),
            ("[retention]\nmax_day = 0", "retention.max_day"),
            (
                "[retention]\nsliding_windows = [7, 7]",
                "retention.sliding_windows[1]",
            ),
            (
                "[[funnels]]\nname = \"f\"\nsteps = [\"a\"]\nwindow = \"1w\"",
                "funnels[0].window",
            ),
            (
                "[[ratios]]\nname = \"r\"\nnumerator = [\"a\"]\ndenominator = \"everyone\"",
                "ratios[0].denominator",
            ),
        ];
        for (text, key) in cases {
            let e = Config::from_toml(text).unwrap_err().to_string();
            assert!(e.contains(&format!("`{key}`")), "{text}: {e}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m").unwrap(), 1_800_000);
        assert_eq!(parse_duration("1h30m").unwrap(), 5_400_000);
        assert_eq!(parse_duration("1d").unwrap(), 86_400_000);
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("0s").is_err());
        let e = parse_duration("1w").unwrap_err();
        assert_eq!(
            e,
            ValueError::DurationChar {
                text: "1w".into(),
                found: 'w'
            }
        );
        assert_eq!(
            e.to_string(),
            "\"1w\" has unexpected 'w'; allowed: a duration such as \"90s\", \"30m\", \"2h\", \"1d\" or \"1h30m\""
        );
    }

    #[test]
    fn golden_configs_parse() {
        for name in ["edge", "linked", "actions", "actions-edge"] {
            let path = format!("{}/tests/golden/{name}.toml", env!("CARGO_MANIFEST_DIR"));
            Config::from_file(Path::new(&path)).unwrap();
        }
    }

    #[cfg(feature = "cli")]
    #[test]
    fn the_demo_config_parses() {
        let demo = Config::from_toml(crate::io::demo::DEMO_CONFIG).unwrap();
        assert_eq!((demo.rules.len(), demo.alerts.len()), (3, 2));
    }
}
