//! Processes of one cluster (timely's multi-process mode) for integration tests: free loopback
//! addresses for the peers, the arguments that make a process one of them, the processes
//! started together, and polling each node's `/healthz` and `/v1/snapshot` with a time limit.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::server::Server;

/// Runs an async test on a runtime of two threads, holding [`super::busy`] throughout: the
/// processes of a cluster keep cores busy, so not beside a test that measures latency.
pub fn busy_run<F: std::future::Future>(test: F) -> F::Output {
    let _busy = super::busy();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(test)
}

/// Free loopback addresses, one per process (bound, then let go for the processes to take).
pub fn loopback_addresses(n: usize) -> Vec<String> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect()
}

/// `-w 1 --processes N --process I --peers P0,P1,...`: process `process` of the cluster `peers`.
pub fn cluster_args(peers: &[String], process: usize) -> Vec<String> {
    vec![
        "-w".into(),
        "1".into(),
        "--processes".into(),
        peers.len().to_string(),
        "--process".into(),
        process.to_string(),
        "--peers".into(),
        peers.join(","),
    ]
}

/// Runs `start(i)` for every process `i` of `n` at once, each on its own thread (a process may
/// wait for the others before it says where it listens), and answers them in process order. If
/// one start fails, those that started are dropped (their processes killed) and its panic goes on.
pub fn start_together<T: Send>(n: usize, start: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let start = &start;
    let results: Vec<std::thread::Result<T>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n).map(|i| s.spawn(move || start(i))).collect();
        handles.into_iter().map(|h| h.join()).collect()
    });
    let mut started = Vec::with_capacity(n);
    let mut failed = None;
    for r in results {
        match r {
            Ok(t) => started.push(t),
            Err(e) => failed = failed.or(Some(e)),
        }
    }
    if let Some(e) = failed {
        drop(started);
        std::panic::resume_unwind(e);
    }
    started
}

/// Starts `tidemark serve` for every address of `peers`, process `i` on the data directory
/// `data[i]` with `args` besides the cluster's, all at once; in process order.
pub fn start_cluster(data: &[PathBuf], peers: &[String], args: &[&str]) -> Vec<Server> {
    assert_eq!(data.len(), peers.len(), "a data directory per process");
    start_together(peers.len(), |i| {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(cluster_args(peers, i));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        Server::start_in(&data[i], &all, &[])
    })
}

/// The `http://host:port` of each server, to append paths to.
pub fn bases(servers: &[Server]) -> Vec<String> {
    servers.iter().map(|s| s.url("")).collect()
}

/// `GET {base}/healthz`: its status and body; status 0 (and the error) when nothing answers.
pub async fn health(client: &reqwest::Client, base: &str) -> (u16, String) {
    let sent = client
        .get(format!("{base}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    match sent {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    }
}

/// Waits until `/healthz` answers `status` at every node of `bases`; answers their bodies, in
/// the same order. Panics after `limit` with what each node answered last.
pub async fn wait_health(
    client: &reqwest::Client,
    bases: &[String],
    status: u16,
    limit: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + limit;
    loop {
        let mut answers = Vec::new();
        for b in bases {
            answers.push(health(client, b).await);
        }
        if answers.iter().all(|(s, _)| *s == status) {
            return answers.into_iter().map(|(_, body)| body).collect();
        }
        if Instant::now() > deadline {
            let shown: Vec<String> = bases
                .iter()
                .zip(&answers)
                .map(|(b, (s, body))| format!("{b}/healthz: {s} {body:?}"))
                .collect();
            panic!(
                "waited {limit:?} for /healthz to answer {status} at every node; last answers:\n{}",
                shown.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of an unlabelled sample `name` in the `/metrics` text of the node at `base`.
pub async fn metric_at(client: &reqwest::Client, base: &str, name: &str) -> Option<u64> {
    let text = client
        .get(format!("{base}/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    super::server::metric_value(&text, name)
}

/// Waits until the sample `name` of `/metrics` is `value` at the node at `base`.
pub async fn wait_metric(
    client: &reqwest::Client,
    base: &str,
    name: &str,
    value: u64,
    limit: Duration,
) {
    let deadline = Instant::now() + limit;
    loop {
        let now = metric_at(client, base, name).await;
        if now == Some(value) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{base}/metrics: {name} is {now:?}, not {value}, after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What differs between compute's snapshot and a node's: rows, event counts, alerts and the
/// clock (empty when they agree).
pub fn snapshot_differences(expected: &Value, actual: &Value) -> Vec<String> {
    let mut out = super::differences(expected, actual);
    if expected["clock"] != actual["clock"] {
        out.push(format!(
            "clock: expected {}, got {}",
            expected["clock"], actual["clock"]
        ));
    }
    out
}

/// Polls `GET {base}/v1/snapshot` until `diff` finds nothing in it (a node may lag behind the
/// events posted at another) and answers that snapshot; after `limit`, panics with the first
/// differences (or the last answer that was not a snapshot).
pub async fn snapshot_converges(
    client: &reqwest::Client,
    base: &str,
    limit: Duration,
    diff: impl Fn(&Value) -> Vec<String>,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let last = match client
            .get(format!("{base}/v1/snapshot"))
            .timeout(Duration::from_secs(30))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => match r.json::<Value>().await {
                Ok(snapshot) => {
                    let d = diff(&snapshot);
                    if d.is_empty() {
                        return snapshot;
                    }
                    format!(
                        "{} differences, first ones:\n{}",
                        d.len(),
                        d[..d.len().min(15)].join("\n")
                    )
                }
                Err(e) => format!("not a JSON snapshot: {e}"),
            },
            Ok(r) => format!(
                "answered {}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ),
            Err(e) => format!("no answer: {e}"),
        };
        if Instant::now() > deadline {
            panic!("{base}/v1/snapshot did not equal compute's within {limit:?}; {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// POSTs `lines` as NDJSON to `{base}/v1/events` once: the ingest answer if the node took them
/// (2xx with an `accepted` count), else what happened (an error status, no answer in `limit`).
pub async fn try_post(
    client: &reqwest::Client,
    base: &str,
    lines: &[String],
    limit: Duration,
) -> Result<Value, String> {
    let body: String = lines.iter().map(|l| l.clone() + "\n").collect();
    let resp = client
        .post(format!("{base}/v1/events"))
        .header("Content-Type", "application/x-ndjson")
        .body(body)
        .timeout(limit)
        .send()
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| format!("no body: {e}"))?;
    if !status.is_success() {
        return Err(format!("{status}: {text}"));
    }
    let answer: Value =
        serde_json::from_str(&text).map_err(|_| format!("{status}, not JSON: {text}"))?;
    if answer.get("accepted").is_none() {
        return Err(format!("{status}, no accepted count: {text}"));
    }
    Ok(answer)
}
