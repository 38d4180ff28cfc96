//! The `[cluster]` section: this process's place among the processes that run one dataflow.

use serde::Deserialize;

use super::Problems;

/// The `[cluster]` section (flags `--processes/--process/--peers` override it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// This process's index in `peers`.
    pub process: Option<usize>,
    /// `host:port` of every process's dataflow connections, in process order.
    pub peers: Vec<String>,
    /// In a cluster, MQTT topics are read as the shared subscription `$share/GROUP/TOPIC`, so
    /// that the broker hands each message to one process.
    pub mqtt_group: String,
}

#[derive(Debug, Deserialize, Default)]
pub(super) struct RawCluster {
    process: Option<usize>,
    peers: Option<Vec<String>>,
    mqtt_group: Option<String>,
}

/// Whether `peer` is `host:port`.
pub fn is_host_port(peer: &str) -> bool {
    peer.rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

pub(super) fn cluster(raw: RawCluster, p: &mut Problems) -> ClusterConfig {
    let peers = raw.peers.unwrap_or_default();
    for (i, peer) in peers.iter().enumerate() {
        if !is_host_port(peer) {
            p.add(
                format!("cluster.peers[{i}]"),
                format!("{peer:?} is not host:port, e.g. \"10.0.0.2:7100\""),
            );
        }
    }
    if let Some(process) = raw.process {
        if peers.is_empty() {
            p.add(
                "cluster.process",
                "cluster.peers is missing: list every process's host:port, in process order",
            );
        } else if process >= peers.len() {
            p.add(
                "cluster.process",
                format!(
                    "{process} is not one of the {} processes of cluster.peers (0 to {})",
                    peers.len(),
                    peers.len() - 1
                ),
            );
        }
    }
    let mqtt_group = raw.mqtt_group.unwrap_or_else(|| "tidemark".to_string());
    if mqtt_group.is_empty() || mqtt_group.contains(['/', '+', '#']) {
        p.add(
            "cluster.mqtt_group",
            format!("{mqtt_group:?} must be a non-empty name without '/', '+' or '#'"),
        );
    }
    ClusterConfig {
        process: raw.process,
        peers,
        mqtt_group,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn problems(toml: &str) -> String {
        match Config::from_toml(toml) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_cluster_section_is_read_and_checked() {
        let c = Config::from_toml(
            "[cluster]\nprocess = 1\npeers = [\"10.0.0.1:7101\", \"10.0.0.2:7101\"]\n",
        )
        .unwrap();
        assert_eq!(c.cluster.process, Some(1));
        assert_eq!(c.cluster.peers.len(), 2);
        assert_eq!(c.cluster.mqtt_group, "tidemark");
        let bad =
            problems("[cluster]\nprocess = 2\npeers = [\"a:1\", \"b\"]\nmqtt_group = \"a/b\"\n");
        for key in ["cluster.process", "cluster.peers[1]", "cluster.mqtt_group"] {
            assert!(bad.contains(key), "{key} not named in: {bad}");
        }
        assert!(problems("[cluster]\nprocess = 0\n").contains("cluster.peers is missing"));
        assert_eq!(Config::default().cluster.process, None);
    }
}
