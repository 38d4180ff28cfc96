//! The operator's TOML configuration: defaults, parsing and validation with errors that name the key.

mod serve;

pub use serve::{parse_millis, parse_mqtt_url, parse_size, Mqtt, Serve, SlowSubscriber};

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

use crate::time::Calendar;

/// A configuration problem: which key, and what is allowed there.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config is not valid TOML or has an unknown key or a wrong type: {0}")]
    Syntax(String),
    #[error("config key `{key}`: {problem}")]
    Invalid { key: String, problem: String },
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
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
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawActivity {
    exclude: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    blocked_values: Option<Vec<String>>,
    max_persons_per_value: Option<i64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    max_day: Option<i64>,
    sliding_windows: Option<Vec<i64>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAcquisition {
    spend_event: Option<String>,
    purchase_event: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFunnel {
    name: String,
    steps: Vec<String>,
    window: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRatio {
    name: String,
    numerator: Vec<String>,
    denominator: toml::Value,
}

/// One funnel: ordered steps and the conversion window.
#[derive(Clone, Debug, PartialEq)]
pub struct Funnel {
    pub name: String,
    pub steps: Vec<String>,
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
    pub name: String,
    pub numerator: Vec<String>,
    pub denominator: Denominator,
}

/// A validated configuration. `Config::default()` is the configuration of no file at all.
#[derive(Clone, Debug)]
pub struct Config {
    pub timezone: String,
    pub calendar: Calendar,
    pub activity_exclude: BTreeSet<String>,
    pub blocked_values: Vec<String>,
    pub max_persons_per_value: u32,
    pub retention_max_day: u16,
    pub sliding_windows: Vec<u16>,
    pub spend_event: String,
    pub purchase_event: String,
    pub funnels: Vec<Funnel>,
    pub ratios: Vec<Ratio>,
    pub serve: Serve,
    pub mqtt: Mqtt,
}

impl Default for Config {
    fn default() -> Self {
        Config::from_raw(RawConfig::default()).expect("the built-in defaults are valid")
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

impl Config {
    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        Config::from_raw(raw)
    }

    /// Reads, parses and validates a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::from_toml(&text)
    }

    fn from_raw(raw: RawConfig) -> Result<Self, ConfigError> {
        let timezone = raw.timezone.unwrap_or_else(|| "UTC".to_string());
        let calendar = Calendar::new(&timezone).map_err(|e| {
            invalid(
                "timezone",
                format!("{e}; use an IANA zone name such as \"UTC\" or \"Asia/Shanghai\""),
            )
        })?;
        let activity_exclude = raw.activity.exclude.unwrap_or_default();
        for (i, name) in activity_exclude.iter().enumerate() {
            check_event_name(&format!("activity.exclude[{i}]"), name)?;
        }
        let max_day = raw.retention.max_day.unwrap_or(30);
        if !(1..=366).contains(&max_day) {
            return Err(invalid(
                "retention.max_day",
                format!("{max_day} is out of range; allowed: 1..=366"),
            ));
        }
        let windows = raw.retention.sliding_windows.unwrap_or_else(|| vec![7]);
        let mut seen = BTreeSet::new();
        for (i, w) in windows.iter().enumerate() {
            if !(1..=366).contains(w) {
                return Err(invalid(
                    format!("retention.sliding_windows[{i}]"),
                    format!("{w} is out of range; allowed: whole days 1..=366"),
                ));
            }
            if !seen.insert(*w) {
                return Err(invalid(
                    format!("retention.sliding_windows[{i}]"),
                    format!("window {w} is listed twice"),
                ));
            }
        }
        let max_persons = raw.identity.max_persons_per_value.unwrap_or(1000);
        if !(2..=1_000_000_000).contains(&max_persons) {
            return Err(invalid(
                "identity.max_persons_per_value",
                format!("{max_persons} is out of range; allowed: 2..=1000000000"),
            ));
        }
        let spend_event = raw
            .acquisition
            .spend_event
            .unwrap_or_else(|| "ad_spend".into());
        check_event_name("acquisition.spend_event", &spend_event)?;
        let purchase_event = raw
            .acquisition
            .purchase_event
            .unwrap_or_else(|| "order_paid".into());
        check_event_name("acquisition.purchase_event", &purchase_event)?;
        let funnels = match raw.funnels {
            None => default_funnels(),
            Some(list) => validate_funnels(list)?,
        };
        let ratios = match raw.ratios {
            None => default_ratios(),
            Some(list) => validate_ratios(list)?,
        };
        Ok(Config {
            timezone,
            calendar,
            activity_exclude: activity_exclude.into_iter().collect(),
            blocked_values: raw
                .identity
                .blocked_values
                .unwrap_or_else(|| DEFAULT_BLOCKED.iter().map(|s| s.to_string()).collect()),
            max_persons_per_value: max_persons as u32,
            retention_max_day: max_day as u16,
            sliding_windows: windows.into_iter().map(|w| w as u16).collect(),
            spend_event,
            purchase_event,
            funnels,
            ratios,
            serve: Serve::from_raw(raw.serve)?,
            mqtt: Mqtt::from_raw(raw.mqtt)?,
        })
    }
}

fn check_event_name(key: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.len() > 64 {
        return Err(invalid(
            key,
            format!("event name {name:?} must be 1..=64 bytes"),
        ));
    }
    Ok(())
}

fn check_unique_name(
    key: &str,
    name: &str,
    seen: &mut BTreeSet<String>,
) -> Result<(), ConfigError> {
    if name.is_empty() {
        return Err(invalid(key, "name must not be empty"));
    }
    if !seen.insert(name.to_string()) {
        return Err(invalid(
            key,
            format!("name {name:?} is used twice; names must be unique"),
        ));
    }
    Ok(())
}

fn validate_funnels(list: Vec<RawFunnel>) -> Result<Vec<Funnel>, ConfigError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, f) in list.into_iter().enumerate() {
        check_unique_name(&format!("funnels[{i}].name"), &f.name, &mut seen)?;
        if f.steps.is_empty() || f.steps.len() > 32 {
            return Err(invalid(
                format!("funnels[{i}].steps"),
                "a funnel needs 1..=32 steps (event names)",
            ));
        }
        for (j, s) in f.steps.iter().enumerate() {
            check_event_name(&format!("funnels[{i}].steps[{j}]"), s)?;
        }
        let window_ms =
            parse_duration(&f.window).map_err(|p| invalid(format!("funnels[{i}].window"), p))?;
        out.push(Funnel {
            name: f.name,
            steps: f.steps,
            window_ms,
        });
    }
    Ok(out)
}

fn validate_ratios(list: Vec<RawRatio>) -> Result<Vec<Ratio>, ConfigError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, r) in list.into_iter().enumerate() {
        check_unique_name(&format!("ratios[{i}].name"), &r.name, &mut seen)?;
        if r.numerator.is_empty() {
            return Err(invalid(
                format!("ratios[{i}].numerator"),
                "list at least one event name",
            ));
        }
        for (j, s) in r.numerator.iter().enumerate() {
            check_event_name(&format!("ratios[{i}].numerator[{j}]"), s)?;
        }
        let key = format!("ratios[{i}].denominator");
        let denominator = match r.denominator {
            toml::Value::String(s) if s == "active" => Denominator::Active,
            toml::Value::Array(items) if !items.is_empty() => {
                let mut names = Vec::new();
                for (j, item) in items.into_iter().enumerate() {
                    match item {
                        toml::Value::String(s) => {
                            check_event_name(&format!("{key}[{j}]"), &s)?;
                            names.push(s);
                        }
                        other => {
                            return Err(invalid(
                                format!("{key}[{j}]"),
                                format!("expected an event name, got {other}"),
                            ))
                        }
                    }
                }
                Denominator::Events(names)
            }
            other => {
                return Err(invalid(
                    key,
                    format!("expected \"active\" or a non-empty list of event names, got {other}"),
                ))
            }
        };
        out.push(Ratio {
            name: r.name,
            numerator: r.numerator,
            denominator,
        });
    }
    Ok(out)
}

/// Parses a duration such as `90s`, `30m`, `2h`, `1d` (also combined: `1h30m`) into milliseconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let help = "allowed: a positive duration such as \"90s\", \"30m\", \"2h\", \"1d\" or \"1h30m\"";
    let mut total: i64 = 0;
    let mut digits = String::new();
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
            _ => return Err(format!("{text:?} has unexpected {c:?}; {help}")),
        };
        let n: i64 = digits
            .parse()
            .map_err(|_| format!("{text:?}: a number must come before {c:?}; {help}"))?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{text:?} is too long"))?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!("{text:?} lacks a unit after {digits}; {help}"));
    }
    if total <= 0 {
        return Err(format!("{text:?} is not a positive duration; {help}"));
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
    fn unknown_key_is_named() {
        let e = Config::from_toml("[retention]\nmax_days = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_days"), "{e}");
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
    }

    #[test]
    fn golden_configs_parse() {
        for name in ["edge", "linked"] {
            let path = format!("{}/tests/golden/{name}.toml", env!("CARGO_MANIFEST_DIR"));
            Config::from_file(Path::new(&path)).unwrap();
        }
    }
}
