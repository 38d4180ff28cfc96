//! The `[serve]` and `[mqtt]` sections: where the server listens, its tokens and limits, and
//! the MQTT broker it reads events from and publishes metrics to.

use serde::Deserialize;

use super::{invalid, parse_duration, ConfigError};

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServe {
    listen: Option<String>,
    ingest_token: Option<String>,
    read_token: Option<String>,
    max_body: Option<String>,
    subscriber_queue: Option<i64>,
    on_slow_subscriber: Option<String>,
    batch_max_events: Option<i64>,
    batch_max_delay: Option<String>,
    data_dir: Option<String>,
    clock: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMqtt {
    url: Option<String>,
    client_id: Option<String>,
    topics: Option<Vec<String>>,
    publish_prefix: Option<String>,
    retain_rows: Option<bool>,
    max_payload: Option<String>,
}

/// What happens to a subscriber whose bounded queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlowSubscriber {
    /// Stop sending deltas; once its queue has room, send a fresh snapshot.
    Resync,
    /// Send the reason and close the subscription.
    Disconnect,
}

/// What the clock of rules and alerts follows in `serve`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockMode {
    /// The later of the event clock and the wall clock: deadlines fire when traffic stops.
    Wall,
    /// Event time only: for playing a historical log into `serve`.
    Event,
}

/// Settings of `tidemark serve`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Serve {
    /// Address to listen on; forced to loopback when no tokens are set.
    pub listen: String,
    /// Token required for ingest (env `TIDEMARK_INGEST_TOKEN` overrides).
    pub ingest_token: Option<String>,
    /// Token required for reads and subscriptions (env `TIDEMARK_READ_TOKEN` overrides).
    pub read_token: Option<String>,
    /// Largest accepted request body in bytes.
    pub max_body: usize,
    /// Messages a subscriber's queue holds beyond its initial snapshot.
    pub subscriber_queue: usize,
    pub on_slow_subscriber: SlowSubscriber,
    /// Accepted events per dataflow batch, at most.
    pub batch_max_events: usize,
    /// Longest an accepted event waits before its batch goes to the dataflow.
    pub batch_max_delay_ms: u64,
    /// The data directory as configured (relative paths are resolved by the caller against the
    /// configuration file's directory); `None`: `tidemark-data` there.
    pub data_dir: Option<String>,
    pub clock: ClockMode,
}

impl Default for Serve {
    fn default() -> Self {
        Serve::from_raw(RawServe::default()).expect("the built-in defaults are valid")
    }
}

/// Settings of the MQTT connection (off unless `url` is set or `--mqtt` is given).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mqtt {
    /// `mqtt://host:port`; none = no MQTT.
    pub url: Option<String>,
    /// Fixed client id, so the broker keeps the session (and queued QoS 1 messages).
    pub client_id: String,
    /// Topic filters to read events from.
    pub topics: Vec<String>,
    /// Deltas go to `{prefix}/deltas/{metric}`, current rows (retained) under `{prefix}/rows/`.
    pub publish_prefix: String,
    /// Publish each row's current value as a retained message.
    pub retain_rows: bool,
    /// Largest MQTT packet accepted or sent, in bytes.
    pub max_payload: usize,
}

impl Default for Mqtt {
    fn default() -> Self {
        Mqtt::from_raw(RawMqtt::default()).expect("the built-in defaults are valid")
    }
}

/// Parses a byte size such as `8MiB`, `512KiB` or `1000000`.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size; write e.g. 8MiB, 512KiB or 1048576"))?;
    let factor = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "KB" => 1 << 10,
        "MiB" | "M" | "MB" => 1 << 20,
        "GiB" | "G" | "GB" => 1 << 30,
        u => {
            return Err(format!(
                "unknown unit {u:?} in {text:?}; use B, KiB, MiB or GiB"
            ))
        }
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Parses `250ms` or any duration `parse_duration` takes, in milliseconds.
pub fn parse_millis(text: &str) -> Result<i64, String> {
    match text.trim().strip_suffix("ms") {
        Some(n) => n
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a duration; write e.g. \"5ms\" or \"1s\"")),
        None => parse_duration(text),
    }
}

fn token(key: &str, value: Option<String>) -> Result<Option<String>, ConfigError> {
    match value {
        Some(t) if t.len() < 16 => Err(invalid(
            key,
            "a token must be at least 16 characters (e.g. `openssl rand -hex 16`)",
        )),
        other => Ok(other),
    }
}

impl Serve {
    pub(super) fn from_raw(raw: RawServe) -> Result<Self, ConfigError> {
        let listen = raw.listen.unwrap_or_else(|| "127.0.0.1:7878".into());
        if listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "serve.listen",
                format!("{listen:?} is not an address; write HOST:PORT, e.g. \"0.0.0.0:7878\""),
            ));
        }
        let max_body = parse_size(raw.max_body.as_deref().unwrap_or("8MiB"))
            .map_err(|e| invalid("serve.max_body", e))?;
        if !(1024..=(1 << 30)).contains(&max_body) {
            return Err(invalid("serve.max_body", "allowed: 1KiB..=1GiB"));
        }
        let queue = raw.subscriber_queue.unwrap_or(4096);
        if !(16..=10_000_000).contains(&queue) {
            return Err(invalid("serve.subscriber_queue", "allowed: 16..=10000000"));
        }
        let on_slow = match raw.on_slow_subscriber.as_deref().unwrap_or("resync") {
            "resync" => SlowSubscriber::Resync,
            "disconnect" => SlowSubscriber::Disconnect,
            other => {
                return Err(invalid(
                    "serve.on_slow_subscriber",
                    format!("{other:?}; allowed: \"resync\" or \"disconnect\""),
                ))
            }
        };
        let batch = raw.batch_max_events.unwrap_or(20_000);
        if !(1..=10_000_000).contains(&batch) {
            return Err(invalid("serve.batch_max_events", "allowed: 1..=10000000"));
        }
        let delay = parse_millis(raw.batch_max_delay.as_deref().unwrap_or("5ms"))
            .map_err(|e| invalid("serve.batch_max_delay", e))?;
        if !(0..=10_000).contains(&delay) {
            return Err(invalid("serve.batch_max_delay", "allowed: 0ms..=10s"));
        }
        let clock = match raw.clock.as_deref().unwrap_or("wall") {
            "wall" => ClockMode::Wall,
            "event" => ClockMode::Event,
            other => {
                return Err(invalid(
                    "serve.clock",
                    format!("{other:?}; allowed: \"wall\" (later of event and wall clock) or \"event\" (event time only)"),
                ))
            }
        };
        if raw.data_dir.as_deref() == Some("") {
            return Err(invalid(
                "serve.data_dir",
                "must not be empty; leave it out for tidemark-data beside the config",
            ));
        }
        Ok(Serve {
            data_dir: raw.data_dir,
            clock,
            listen,
            ingest_token: token("serve.ingest_token", raw.ingest_token)?,
            read_token: token("serve.read_token", raw.read_token)?,
            max_body,
            subscriber_queue: queue as usize,
            on_slow_subscriber: on_slow,
            batch_max_events: batch as usize,
            batch_max_delay_ms: delay as u64,
        })
    }

    /// Applies `TIDEMARK_INGEST_TOKEN` / `TIDEMARK_READ_TOKEN` from the environment.
    pub fn with_env(mut self) -> Result<Self, ConfigError> {
        if let Ok(t) = std::env::var("TIDEMARK_INGEST_TOKEN") {
            self.ingest_token = token("TIDEMARK_INGEST_TOKEN", Some(t))?;
        }
        if let Ok(t) = std::env::var("TIDEMARK_READ_TOKEN") {
            self.read_token = token("TIDEMARK_READ_TOKEN", Some(t))?;
        }
        Ok(self)
    }
}

impl Mqtt {
    pub(super) fn from_raw(raw: RawMqtt) -> Result<Self, ConfigError> {
        if let Some(url) = &raw.url {
            parse_mqtt_url(url).map_err(|e| invalid("mqtt.url", e))?;
        }
        let topics = raw
            .topics
            .unwrap_or_else(|| vec!["tidemark/events/#".into()]);
        if topics.is_empty() || topics.iter().any(|t| t.is_empty()) {
            return Err(invalid(
                "mqtt.topics",
                "list one or more non-empty topic filters",
            ));
        }
        let prefix = raw.publish_prefix.unwrap_or_else(|| "tidemark".into());
        if prefix.is_empty() || prefix.contains(['#', '+']) {
            return Err(invalid(
                "mqtt.publish_prefix",
                "must be a non-empty topic without wildcards",
            ));
        }
        let max_payload = parse_size(raw.max_payload.as_deref().unwrap_or("1MiB"))
            .map_err(|e| invalid("mqtt.max_payload", e))?;
        if !(1024..=(256 << 20)).contains(&max_payload) {
            return Err(invalid("mqtt.max_payload", "allowed: 1KiB..=256MiB"));
        }
        let client_id = raw.client_id.unwrap_or_else(|| "tidemark".into());
        if client_id.is_empty() {
            return Err(invalid(
                "mqtt.client_id",
                "must not be empty: the broker keeps the ingest session under it (default \"tidemark\")",
            ));
        }
        Ok(Mqtt {
            url: raw.url,
            client_id,
            topics,
            publish_prefix: prefix,
            retain_rows: raw.retain_rows.unwrap_or(true),
            max_payload,
        })
    }
}

/// Splits `mqtt://host:port` (port defaults to 1883) into host and port.
pub fn parse_mqtt_url(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .ok_or_else(|| format!("{url:?} must start with mqtt://, e.g. mqtt://127.0.0.1:1883"))?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("{url:?} has a bad port {p:?}"))?,
        ),
        None => (rest, 1883),
    };
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_urls_parse_or_say_what_is_allowed() {
        assert_eq!(parse_size("8MiB").unwrap(), 8 << 20);
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert!(parse_size("8 parsecs")
            .unwrap_err()
            .contains("unknown unit"));
        assert_eq!(
            parse_mqtt_url("mqtt://localhost:1884").unwrap(),
            ("localhost".into(), 1884)
        );
        assert_eq!(parse_mqtt_url("mqtt://broker").unwrap().1, 1883);
        assert!(parse_mqtt_url("http://x").is_err());
    }
}
