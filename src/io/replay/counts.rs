//! The server's own event counters, read from `GET /metrics`: how replay learns what happened
//! to events sent over MQTT, whose acknowledgements carry no outcome.

use std::time::{Duration, Instant};

/// Event counters of the server at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerCounts {
    pub received: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
}

impl ServerCounts {
    /// Reads the counters from Prometheus text (rejections summed over reasons).
    pub fn parse(text: &str) -> ServerCounts {
        let mut c = ServerCounts::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(v) = value.trim().parse::<u64>() else {
                continue;
            };
            let name = name.split('{').next().unwrap_or(name);
            match name {
                "tidemark_events_in_total" => c.received += v,
                "tidemark_events_accepted_total" => c.accepted += v,
                "tidemark_events_duplicate_total" => c.duplicates += v,
                "tidemark_events_rejected_total" => c.rejected += v,
                _ => {}
            }
        }
        c
    }

    /// What changed since `before`.
    pub fn since(&self, before: &ServerCounts) -> ServerCounts {
        ServerCounts {
            received: self.received.saturating_sub(before.received),
            accepted: self.accepted.saturating_sub(before.accepted),
            duplicates: self.duplicates.saturating_sub(before.duplicates),
            rejected: self.rejected.saturating_sub(before.rejected),
        }
    }
}

/// Fetches the counters; none when the server cannot be asked.
pub async fn fetch(
    client: &reqwest::Client,
    base: &str,
    token: Option<&str>,
) -> Option<ServerCounts> {
    let mut request = client
        .get(format!("{base}/metrics"))
        .timeout(Duration::from_secs(5));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request.send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    Some(ServerCounts::parse(&response.text().await.ok()?))
}

/// Waits until the server has received `events` more than `before` said (or `timeout`
/// passes); returns the change.
pub async fn wait_for(
    client: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    before: &ServerCounts,
    events: u64,
    timeout: Duration,
) -> Option<ServerCounts> {
    let give_up = Instant::now() + timeout;
    loop {
        let now = fetch(client, base, token).await.map(|c| c.since(before));
        let enough = now.is_some_and(|c| c.received >= events);
        if enough || Instant::now() >= give_up {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_from_prometheus_text_and_reasons_summed() {
        let text = "# HELP tidemark_events_in_total Events received.\n\
            tidemark_events_in_total 10\n\
            tidemark_events_accepted_total 7\n\
            tidemark_events_duplicate_total 1\n\
            tidemark_events_rejected_total{reason=\"bad_type\"} 1\n\
            tidemark_events_rejected_total{reason=\"malformed_json\"} 1\n\
            tidemark_rows 99\n";
        let c = ServerCounts::parse(text);
        let want = ServerCounts {
            received: 10,
            accepted: 7,
            duplicates: 1,
            rejected: 2,
        };
        assert_eq!(c, want);
        assert_eq!(c.since(&ServerCounts::default()), c);
    }
}
