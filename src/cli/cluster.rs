//! The flags that place a process in a cluster (`--processes/--process/--peers`), shared by
//! `compute` and `serve`, checked against each other and against `[cluster]`.

use tidemark::config::{is_host_port, ClusterConfig};

/// Running one dataflow over several processes (timely's multi-process mode).
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// Processes in the cluster, each started with the same --processes and --peers and its
    /// own --process; -w is then workers per process.
    #[arg(long)]
    processes: Option<usize>,
    /// This process's index, 0 to N-1 (overrides cluster.process). Process 0 takes every
    /// event; the others lend their workers (and in serve, relay the events they receive).
    #[arg(long)]
    process: Option<usize>,
    /// host:port where each process's dataflow listens, in process order, comma-separated
    /// (overrides cluster.peers).
    #[arg(long, value_delimiter = ',')]
    peers: Vec<String>,
}

impl ClusterArgs {
    /// The cluster from the flags, else from `[cluster]`, checked; none when neither names
    /// a process.
    pub fn cluster(
        &self,
        config: Option<&ClusterConfig>,
    ) -> anyhow::Result<Option<tidemark::Cluster>> {
        let process = self.process.or(config.and_then(|c| c.process));
        let peers = match (self.peers.is_empty(), config) {
            (true, Some(c)) => c.peers.clone(),
            _ => self.peers.clone(),
        };
        let Some(process) = process else {
            if self.processes.is_some() || !self.peers.is_empty() {
                anyhow::bail!(
                    "--process is missing: give each process of the cluster its index, 0 to N-1"
                );
            }
            return Ok(None);
        };
        if peers.is_empty() {
            anyhow::bail!("--peers is missing: give every process's host:port, in process order");
        }
        let n = self.processes.unwrap_or(peers.len());
        if n == 0 {
            anyhow::bail!("--processes must be at least 1");
        }
        if peers.len() != n {
            anyhow::bail!(
                "--peers names {} addresses for {n} processes: give every process's host:port, in process order",
                peers.len()
            );
        }
        if process >= n {
            anyhow::bail!(
                "--process {process} is not one of the {n} processes (0 to {})",
                n - 1
            );
        }
        if let Some(bad) = peers.iter().find(|p| !is_host_port(p)) {
            anyhow::bail!("--peers: {bad:?} is not host:port");
        }
        Ok(Some(tidemark::Cluster { process, peers }))
    }
}
