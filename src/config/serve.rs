//! The `[serve]` and `[mqtt]` sections: where the server listens, its tokens and limits, and
//! the MQTT broker it reads events from and publishes metrics to.

use serde::Deserialize;

use super::{bad_value, invalid, parse_duration, ConfigError, Problems, ValueError};

#[derive(Debug, Deserialize, Default)]
pub(super) struct RawServe {
    listen: Option<String>,
    ingest_token: Option<String>,
    read_token: Option<String>,
    max_body: Option<String>,
    subscriber_queue: Option<i64>,
    on_slow_subscriber: Option<String>,
    batch_max_events: Option<i64>,
    batch_max_delay: Option<String>,
    max_lag: Option<String>,
    data_dir: Option<String>,
    clock: Option<String>,
    public_reads: Option<bool>,
    hosts: Option<Vec<String>>,
    origins: Option<Vec<String>>,
    max_connections: Option<i64>,
    header_timeout: Option<String>,
    body_timeout: Option<String>,
    idle_timeout: Option<String>,
    ingest_memory: Option<String>,
    max_issues: Option<i64>,
    max_future: Option<String>,
    dead_letter: Option<String>,
    dead_letter_max: Option<String>,
    horizon: Option<String>,
    checkpoint_every: Option<i64>,
    wal: Option<bool>,
    wal_segment: Option<String>,
    hash_identities: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
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
    pub listen: std::net::SocketAddr,
    /// Token required for ingest (env `TIDEMARK_INGEST_TOKEN` overrides).
    pub ingest_token: Option<String>,
    /// Token required for reads and subscriptions (env `TIDEMARK_READ_TOKEN` overrides).
    pub read_token: Option<String>,
    /// Largest accepted request body in bytes.
    pub max_body: usize,
    /// Messages a subscriber's queue holds beyond its initial snapshot.
    pub subscriber_queue: usize,
    /// What happens to a subscriber whose queue overflows.
    pub on_slow_subscriber: SlowSubscriber,
    /// Accepted events per dataflow batch, at most.
    pub batch_max_events: usize,
    /// Longest an accepted event waits before its batch goes to the dataflow.
    pub batch_max_delay_ms: u64,
    /// When the engine is further behind than this (its oldest accepted event not yet in the
    /// rows, or the oldest request waiting to be taken), HTTP ingest answers 429 and MQTT
    /// ingest takes its next message later; `None` (`"off"`) never pushes back.
    pub max_lag_ms: Option<u64>,
    /// The data directory as configured (relative paths are resolved by the caller against the
    /// configuration file's directory); `None`: `tidemark-data` there.
    pub data_dir: Option<String>,
    /// What moves the rules' and alerts' clock.
    pub clock: ClockMode,
    /// With only the ingest token set: serve reads without a token on any address.
    pub public_reads: bool,
    /// Host names the server may be reached by, besides its address and `localhost`.
    pub hosts: Vec<String>,
    /// Origins (`scheme://host[:port]`) of pages elsewhere that may ingest and subscribe.
    pub origins: Vec<String>,
    /// Open connections at most; beyond it the longest-idle one is closed, or the new one
    /// refused with 503.
    pub max_connections: usize,
    /// Longest a request's head may take to arrive, from its first byte.
    pub header_timeout_ms: u64,
    /// Longest a request's body may take to arrive, from the end of its head.
    pub body_timeout_ms: u64,
    /// Longest a connection may stay open with no request under way.
    pub idle_timeout_ms: u64,
    /// Request bodies held at once (being read or ingested), in bytes; more wait.
    pub ingest_memory: usize,
    /// Issues an ingest answer lists; the rest are counted in `issues_truncated`.
    pub max_issues: usize,
    /// Events stamped further than this ahead of the wall clock are rejected.
    pub max_future_ms: i64,
    /// File that keeps rejected inputs (one JSON object per line); none = not kept.
    pub dead_letter: Option<String>,
    /// Size at which the dead-letter file moves to `FILE.1` (replacing it) and starts anew.
    pub dead_letter_max: usize,
    /// How late an event may be: one stamped before the event clock minus this is rejected
    /// as `beyond_horizon`.
    pub horizon_ms: i64,
    /// Accepted events between checkpoints of the data directory.
    pub checkpoint_every: u64,
    /// Keep accepted events in the data directory's write-ahead log and answer only once they
    /// are fsynced (false: nothing is kept and a restart starts empty; for measuring what
    /// durability costs).
    pub wal: bool,
    /// Size at which the write-ahead log starts a new segment file.
    pub wal_segment: u64,
    /// Store and show identity values only as keyed hashes (the key is in the data directory).
    pub hash_identities: bool,
}

impl Default for Serve {
    fn default() -> Self {
        Serve::from_raw(RawServe::default()).expect("the built-in defaults are valid")
    }
}

/// Settings of the MQTT connection (off unless `url` is set or `--mqtt` is given).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mqtt {
    /// The broker, from `mqtt://host:port`; none = no MQTT.
    pub url: Option<MqttUrl>,
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
pub fn parse_size(text: &str) -> Result<usize, ValueError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| ValueError::NotSize { text: text.into() })?;
    let factor = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "KB" => 1 << 10,
        "MiB" | "M" | "MB" => 1 << 20,
        "GiB" | "G" | "GB" => 1 << 30,
        u => {
            return Err(ValueError::SizeUnit {
                text: text.into(),
                unit: u.into(),
            })
        }
    };
    n.checked_mul(factor)
        .ok_or_else(|| ValueError::SizeTooLarge { text: text.into() })
}

/// Parses `250ms` or any duration `parse_duration` takes, in milliseconds.
pub fn parse_millis(text: &str) -> Result<i64, ValueError> {
    match text.trim().strip_suffix("ms") {
        Some(n) => n
            .trim()
            .parse()
            .map_err(|_| ValueError::NotMillis { text: text.into() }),
        None => parse_duration(text),
    }
}

/// A token is at least 16 characters of the bearer-token alphabet of RFC 6750 (letters,
/// digits, `-._~+/`, trailing `=`), so it travels unchanged in a header, a query or a cookie.
fn token(key: &str, value: Option<String>) -> Result<Option<String>, ConfigError> {
    let Some(t) = value else { return Ok(None) };
    let body = t.trim_end_matches('=');
    let alphabet = |c: char| c.is_ascii_alphanumeric() || "-._~+/".contains(c);
    if t.len() < 16 || body.is_empty() || !body.chars().all(alphabet) {
        return Err(invalid(
            key,
            "a token must be at least 16 characters of letters, digits and - . _ ~ + / (= only at the end), e.g. from `openssl rand -hex 16`",
        ));
    }
    Ok(Some(t))
}

/// A duration key in milliseconds within `lo..=hi`.
fn millis(
    key: &str,
    value: Option<&str>,
    default: &str,
    lo: i64,
    hi: i64,
    allowed: &str,
) -> Result<i64, ConfigError> {
    let ms = parse_millis(value.unwrap_or(default)).map_err(|e| bad_value(key, e))?;
    if !(lo..=hi).contains(&ms) {
        return Err(invalid(key, format!("allowed: {allowed}")));
    }
    Ok(ms)
}

/// A host name for `serve.hosts`: letters, digits, `-` and `.`, no port or scheme.
fn host_name(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// An origin for `serve.origins`: `http://` or `https://`, a host, an optional port, no path.
fn origin(o: &str) -> bool {
    let Some(rest) = o
        .strip_prefix("http://")
        .or_else(|| o.strip_prefix("https://"))
    else {
        return false;
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, Some(p)),
        _ => (rest, None),
    };
    let host_ok = host_name(host)
        || (host.starts_with('[')
            && host.ends_with(']')
            && host[1..host.len() - 1]
                .parse::<std::net::Ipv6Addr>()
                .is_ok());
    host_ok && port.is_none_or(|p| p.parse::<u16>().is_ok())
}

/// An address to listen on: `IP:PORT`, or `localhost:PORT` for `127.0.0.1:PORT`.
pub fn parse_listen(text: &str) -> Result<std::net::SocketAddr, ValueError> {
    let loopback = text
        .rsplit_once(':')
        .filter(|(host, _)| host.eq_ignore_ascii_case("localhost"))
        .map(|(_, port)| format!("127.0.0.1:{port}"));
    loopback
        .as_deref()
        .unwrap_or(text)
        .parse()
        .map_err(|_| ValueError::NotAddress { text: text.into() })
}

impl Serve {
    /// Validates the section, naming every problem at once (each with its key).
    pub(super) fn from_raw(raw: RawServe) -> Result<Self, ConfigError> {
        let mut p = Problems::default();
        let default_listen = std::net::SocketAddr::from(([127, 0, 0, 1], 7878));
        let listen = match raw.listen.as_deref().map(parse_listen) {
            None => default_listen,
            Some(Ok(addr)) => addr,
            Some(Err(e)) => {
                p.value("serve.listen", e);
                default_listen
            }
        };
        let max_body = parse_size(raw.max_body.as_deref().unwrap_or("8MiB")).unwrap_or_else(|e| {
            p.value("serve.max_body", e);
            0
        });
        if !(1024..=(1 << 30)).contains(&max_body) {
            p.add("serve.max_body", "allowed: 1KiB..=1GiB");
        }
        let queue = raw.subscriber_queue.unwrap_or(4096);
        if !(16..=10_000_000).contains(&queue) {
            p.add("serve.subscriber_queue", "allowed: 16..=10000000");
        }
        let on_slow = match raw.on_slow_subscriber.as_deref().unwrap_or("resync") {
            "resync" => SlowSubscriber::Resync,
            "disconnect" => SlowSubscriber::Disconnect,
            other => {
                p.add(
                    "serve.on_slow_subscriber",
                    format!("{other:?}; allowed: \"resync\" or \"disconnect\""),
                );
                SlowSubscriber::Resync
            }
        };
        let batch = raw.batch_max_events.unwrap_or(20_000);
        if !(1..=10_000_000).contains(&batch) {
            p.add("serve.batch_max_events", "allowed: 1..=10000000");
        }
        let delay =
            parse_millis(raw.batch_max_delay.as_deref().unwrap_or("1ms")).unwrap_or_else(|e| {
                p.value("serve.batch_max_delay", e);
                0
            });
        if !(0..=10_000).contains(&delay) {
            p.add("serve.batch_max_delay", "allowed: 0ms..=10s");
        }
        let max_lag = match raw.max_lag.as_deref().unwrap_or("1s") {
            "off" => None,
            text => Some(
                millis(
                    "serve.max_lag",
                    Some(text),
                    "1s",
                    1,
                    3_600_000,
                    "1ms..=1h or \"off\"",
                )
                .unwrap_or_else(|e| {
                    p.absorb(e);
                    0
                }),
            ),
        };
        let clock = match raw.clock.as_deref().unwrap_or("wall") {
            "wall" => ClockMode::Wall,
            "event" => ClockMode::Event,
            other => {
                p.add(
                    "serve.clock",
                    format!("{other:?}; allowed: \"wall\" (later of event and wall clock) or \"event\" (event time only)"),
                );
                ClockMode::Wall
            }
        };
        if raw.data_dir.as_deref() == Some("") {
            p.add(
                "serve.data_dir",
                "must not be empty; leave it out for tidemark-data beside the config",
            );
        }
        let hosts = raw.hosts.unwrap_or_default();
        if let Some(bad) = hosts.iter().find(|h| !host_name(h)) {
            p.add(
                "serve.hosts",
                format!("{bad:?} is not a host name; list names only, without scheme or port, e.g. [\"metrics.example.com\"]"),
            );
        }
        let origins: Vec<String> = raw
            .origins
            .unwrap_or_default()
            .into_iter()
            .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
            .collect();
        if let Some(bad) = origins.iter().find(|o| !origin(o)) {
            p.add(
                "serve.origins",
                format!("{bad:?} is not an origin; write scheme://host[:port], e.g. \"https://dash.example.com\""),
            );
        }
        let max_connections = raw.max_connections.unwrap_or(1024);
        if !(16..=1_000_000).contains(&max_connections) {
            p.add("serve.max_connections", "allowed: 16..=1000000");
        }
        let header_timeout = millis(
            "serve.header_timeout",
            raw.header_timeout.as_deref(),
            "10s",
            100,
            600_000,
            "100ms..=10m",
        )
        .unwrap_or_else(|e| {
            p.absorb(e);
            0
        });
        let body_timeout = millis(
            "serve.body_timeout",
            raw.body_timeout.as_deref(),
            "30s",
            100,
            3_600_000,
            "100ms..=1h",
        )
        .unwrap_or_else(|e| {
            p.absorb(e);
            0
        });
        let idle_timeout = millis(
            "serve.idle_timeout",
            raw.idle_timeout.as_deref(),
            "60s",
            100,
            3_600_000,
            "100ms..=1h",
        )
        .unwrap_or_else(|e| {
            p.absorb(e);
            0
        });
        let ingest_memory = parse_size(raw.ingest_memory.as_deref().unwrap_or("256MiB"))
            .unwrap_or_else(|e| {
                p.value("serve.ingest_memory", e);
                0
            });
        // Against the smallest allowed body when max_body itself is wrong, so that one mistake
        // is reported once.
        let body_floor = if (1024..=(1 << 30)).contains(&max_body) {
            max_body
        } else {
            1024
        };
        if !(body_floor..=(64 << 30)).contains(&ingest_memory) {
            p.add(
                "serve.ingest_memory",
                "allowed: serve.max_body..=64GiB (one largest body must fit)",
            );
        }
        let max_issues = raw.max_issues.unwrap_or(100);
        if !(0..=1_000_000).contains(&max_issues) {
            p.add("serve.max_issues", "allowed: 0..=1000000");
        }
        let max_future = millis(
            "serve.max_future",
            raw.max_future.as_deref(),
            "10m",
            0,
            366 * 86_400_000,
            "0s..=366d",
        )
        .unwrap_or_else(|e| {
            p.absorb(e);
            0
        });
        let dead_letter = match raw.dead_letter {
            Some(path) if path.trim().is_empty() => {
                p.add(
                    "serve.dead_letter",
                    "must be a file path; leave the key out to keep no rejected inputs",
                );
                None
            }
            other => other,
        };
        let dead_letter_max = parse_size(raw.dead_letter_max.as_deref().unwrap_or("64MiB"))
            .unwrap_or_else(|e| {
                p.value("serve.dead_letter_max", e);
                0
            });
        if !((64 << 10)..=(64 << 30)).contains(&dead_letter_max) {
            p.add("serve.dead_letter_max", "allowed: 64KiB..=64GiB");
        }
        let horizon_ms = millis(
            "serve.horizon",
            raw.horizon.as_deref(),
            "62d",
            3_600_000,
            3650 * 86_400_000,
            "1h..=3650d",
        )
        .unwrap_or_else(|e| {
            p.absorb(e);
            0
        });
        let checkpoint_every = raw.checkpoint_every.unwrap_or(1_000_000);
        if !(1_000..=1_000_000_000).contains(&checkpoint_every) {
            p.add(
                "serve.checkpoint_every",
                "allowed: 1000..=1000000000 accepted events",
            );
        }
        let wal_segment =
            parse_size(raw.wal_segment.as_deref().unwrap_or("64MiB")).unwrap_or_else(|e| {
                p.value("serve.wal_segment", e);
                0
            });
        if !((4 << 10)..=(1 << 30)).contains(&wal_segment) {
            p.add("serve.wal_segment", "allowed: 4KiB..=1GiB");
        }
        // A count out of range was reported above, and `p.finish` then drops this value: the
        // conversions' defaults are never kept.
        let serve = Serve {
            wal_segment: wal_segment as u64,
            horizon_ms,
            checkpoint_every: checkpoint_every as u64,
            wal: raw.wal.unwrap_or(true),
            hash_identities: raw.hash_identities.unwrap_or(false),
            data_dir: raw.data_dir,
            clock,
            listen,
            ingest_token: token("serve.ingest_token", raw.ingest_token).unwrap_or_else(|e| {
                p.absorb(e);
                None
            }),
            read_token: token("serve.read_token", raw.read_token).unwrap_or_else(|e| {
                p.absorb(e);
                None
            }),
            max_body,
            subscriber_queue: usize::try_from(queue).unwrap_or_default(),
            on_slow_subscriber: on_slow,
            batch_max_events: usize::try_from(batch).unwrap_or_default(),
            batch_max_delay_ms: delay as u64,
            max_lag_ms: max_lag.map(i64::unsigned_abs),
            public_reads: raw.public_reads.unwrap_or(false),
            hosts,
            origins,
            max_connections: usize::try_from(max_connections).unwrap_or_default(),
            header_timeout_ms: header_timeout as u64,
            body_timeout_ms: body_timeout as u64,
            idle_timeout_ms: idle_timeout as u64,
            ingest_memory,
            max_issues: usize::try_from(max_issues).unwrap_or_default(),
            max_future_ms: max_future,
            dead_letter,
            dead_letter_max,
        };
        p.finish(serve)
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
        let url = match &raw.url {
            Some(url) => Some(parse_mqtt_url(url).map_err(|e| bad_value("mqtt.url", e))?),
            None => None,
        };
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
            .map_err(|e| bad_value("mqtt.max_payload", e))?;
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
            url,
            client_id,
            topics,
            publish_prefix: prefix,
            retain_rows: raw.retain_rows.unwrap_or(true),
            max_payload,
        })
    }
}

/// A broker's address, as `mqtt.url` gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttUrl {
    /// The broker's host.
    pub host: String,
    /// The broker's port (1883 when the URL gives none).
    pub port: u16,
    /// The URL as written, for messages.
    pub text: String,
}

impl std::fmt::Display for MqttUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Reads `mqtt://host:port` (port defaults to 1883; `tcp://` also works).
pub fn parse_mqtt_url(url: &str) -> Result<MqttUrl, ValueError> {
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .ok_or_else(|| ValueError::MqttScheme { url: url.into() })?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>().map_err(|_| ValueError::MqttPort {
                url: url.into(),
                port: p.into(),
            })?,
        ),
        None => (rest, 1883),
    };
    if host.is_empty() {
        return Err(ValueError::MqttHost { url: url.into() });
    }
    Ok(MqttUrl {
        host: host.to_string(),
        port,
        text: url.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_urls_parse_or_say_what_is_allowed() {
        assert_eq!(parse_size("8MiB").unwrap(), 8 << 20);
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(
            parse_size("8 parsecs"),
            Err(ValueError::SizeUnit {
                text: "8 parsecs".into(),
                unit: "parsecs".into()
            })
        );
        assert!(parse_size("8 parsecs")
            .unwrap_err()
            .to_string()
            .contains("unknown unit"));
        let url = parse_mqtt_url("mqtt://localhost:1884").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("localhost", 1884));
        assert_eq!(parse_mqtt_url("mqtt://broker").unwrap().port, 1883);
        assert!(parse_mqtt_url("http://x").is_err());
    }

    fn serve(toml: &str) -> Result<Serve, ConfigError> {
        let raw: RawServe = toml::from_str(toml).map_err(ConfigError::Syntax)?;
        Serve::from_raw(raw)
    }

    #[test]
    fn every_problem_of_the_section_is_named_at_once_with_its_key() {
        let err = serve(
            "listen = \"nowhere\"\nmax_body = \"2GiB\"\nclock = \"sundial\"\nread_token = \"short\"",
        )
        .unwrap_err()
        .to_string();
        for key in [
            "serve.listen",
            "serve.max_body",
            "serve.clock",
            "serve.read_token",
        ] {
            assert!(err.contains(&format!("`{key}`")), "{key} in {err}");
        }
        assert!(err.starts_with("4 problems"), "{err}");
        assert!(serve("listen = \"localhost:7878\"").is_ok());
        assert_eq!(
            parse_listen("localhost:0").unwrap(),
            "127.0.0.1:0".parse().unwrap()
        );
    }

    #[test]
    fn tokens_are_long_and_not_blank() {
        assert!(serve("ingest_token = \"0123456789abcdef\"").is_ok());
        assert!(serve("ingest_token = \"c2VjcmV0LXNlY3JldC1zZWNyZXQ=\"").is_ok());
        for bad in [
            "                ",
            "0123456789abcde",
            "0123456789abcdef ",
            "0123456789;abcdef",
            "================",
        ] {
            let e = serve(&format!("read_token = {bad:?}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("serve.read_token"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn limits_have_defaults_and_errors_name_their_key() {
        let s = serve("").unwrap();
        assert_eq!(
            (
                s.max_connections,
                s.header_timeout_ms,
                s.body_timeout_ms,
                s.idle_timeout_ms
            ),
            (1024, 10_000, 30_000, 60_000)
        );
        assert_eq!(
            (s.ingest_memory, s.max_issues, s.max_future_ms),
            (256 << 20, 100, 600_000)
        );
        assert!(!s.public_reads && s.dead_letter.is_none() && s.hosts.is_empty());
        assert_eq!(s.max_lag_ms, Some(1_000));
        assert_eq!(serve("max_lag = \"off\"").unwrap().max_lag_ms, None);
        assert_eq!(serve("max_lag = \"250ms\"").unwrap().max_lag_ms, Some(250));
        for (toml, key) in [
            ("max_lag = \"0s\"", "serve.max_lag"),
            ("max_lag = \"never\"", "serve.max_lag"),
            ("max_connections = 2", "serve.max_connections"),
            ("header_timeout = \"0s\"", "serve.header_timeout"),
            ("body_timeout = \"soon\"", "serve.body_timeout"),
            ("idle_timeout = \"2h\"", "serve.idle_timeout"),
            ("ingest_memory = \"1MiB\"", "serve.ingest_memory"),
            ("max_issues = -1", "serve.max_issues"),
            ("max_future = \"400d\"", "serve.max_future"),
            ("dead_letter = \" \"", "serve.dead_letter"),
            ("dead_letter_max = \"1KiB\"", "serve.dead_letter_max"),
            ("hosts = [\"http://x\"]", "serve.hosts"),
            ("origins = [\"example.com\"]", "serve.origins"),
        ] {
            let e = serve(toml).unwrap_err().to_string();
            assert!(e.contains(key), "{toml}: {e}");
        }
        let s = serve("hosts = [\"metrics.example.com\"]\norigins = [\"https://Dash.example.com/\", \"http://[::1]:8080\"]").unwrap();
        assert_eq!(s.origins, ["https://dash.example.com", "http://[::1]:8080"]);
    }
}
