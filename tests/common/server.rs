//! A `tidemark serve` child process for integration tests: started on a free port, killed on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The tidemark binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_tidemark")
}

/// A running server; dropping it kills the process.
pub struct Server {
    pub child: Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
    /// Its data directory (fresh per `start`, kept across `start_in` with the same one).
    pub data: std::path::PathBuf,
}

/// A fresh, empty directory for one server's data.
pub fn fresh_data_dir() -> std::path::PathBuf {
    static SWEEP: std::sync::Once = std::sync::Once::new();
    SWEEP.call_once(sweep_stale_data_dirs);
    static DIRS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = DIRS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tidemark-test-data-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary data directory");
    dir
}

/// Removes what earlier test runs left in the temporary directory (their process is gone): a
/// server's data directory outlives it, since tests restart servers on what they kept, and
/// other tests leave their scratch files, so each run clears its predecessors' instead of
/// letting them pile up. Each name is one of the tests' prefixes followed by the process id.
fn sweep_stale_data_dirs() {
    const PREFIXES: [&str; 9] = [
        "tidemark-test-data-",
        "tidemark-compute-",
        "tidemark-serve-",
        "tidemark-hostile-",
        "tidemark-refused-",
        "tidemark-public-",
        "tidemark-future-",
        "tidemark-embed-",
        "tidemark-browser-",
    ];
    if !cfg!(target_os = "linux") {
        return;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|n| PREFIXES.iter().find_map(|p| n.strip_prefix(p)))
        else {
            continue;
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let Ok(pid) = digits.parse::<u32>() else {
            continue;
        };
        let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
        if pid != std::process::id() && !alive {
            let path = entry.path();
            let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
        }
    }
}

impl Server {
    /// Starts `tidemark serve --listen 127.0.0.1:0 --data FRESH ARGS...` with extra
    /// environment variables.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_in(&fresh_data_dir(), args, env)
    }

    /// Starts a server on the data directory `data` (to restart one on what it kept).
    pub fn start_in(data: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(binary());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(args)
            .env_remove("TIDEMARK_INGEST_TOKEN")
            .env_remove("TIDEMARK_READ_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Server::spawn(cmd, data)
    }

    /// Runs `cmd` (a `tidemark serve` with stderr piped, e.g. with limits set on it) and waits
    /// until it says where it listens; its other stderr lines are echoed with `[serve]`.
    pub fn spawn(mut cmd: Command, data: &std::path::Path) -> Server {
        let mut child = cmd.spawn().expect("tidemark serve starts");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("serve-stderr".into())
            .spawn(move || {
                let mut sent = false;
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if !sent {
                        if let Some(rest) = line.strip_prefix("tidemark: listening on ") {
                            let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                            let _ = tx.send(Ok(addr));
                            sent = true;
                            continue;
                        }
                    }
                    eprintln!("[serve] {line}");
                }
                if !sent {
                    let _ = tx.send(Err("the server exited before listening".to_string()));
                }
            })
            .expect("thread starts");
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(addr)) => addr,
            Ok(Err(e)) => {
                let _ = child.kill();
                panic!("{e}");
            }
            Err(_) => {
                let _ = child.kill();
                panic!("the server did not say where it listens within 60 s");
            }
        };
        Server {
            child,
            addr,
            data: data.to_path_buf(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends SIGTERM and waits up to `limit` for the process to exit; returns its status.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A generated log (NDJSON lines), from `tidemark generate`.
pub fn generated(persons: u32, days: u32) -> Vec<String> {
    let out = Command::new(binary())
        .args([
            "generate",
            "--persons",
            &persons.to_string(),
            "--days",
            &days.to_string(),
        ])
        .output()
        .expect("tidemark generate runs");
    assert!(out.status.success(), "generate failed");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect()
}

/// The snapshot `tidemark compute` makes of `lines`.
pub fn compute(lines: &[String], config: Option<&std::path::Path>) -> serde_json::Value {
    // One file per call: tests of one binary run in parallel under one process id.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tidemark-compute-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join(format!("log-{call}.ndjson"));
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let mut cmd = Command::new(binary());
    cmd.args(["compute", "--quiet", "--input"]).arg(&input);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let out = cmd.output().expect("tidemark compute runs");
    let _ = std::fs::remove_file(&input);
    assert!(
        out.status.success(),
        "compute failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("snapshot JSON")
}

/// `compute` on `lines` with the configuration `cfg`: the snapshot and the `rule/key` of each
/// firing (`compute --firings`).
pub fn compute_with_firings(
    lines: &[String],
    cfg: &std::path::Path,
) -> (serde_json::Value, std::collections::BTreeSet<String>) {
    let dir = fresh_data_dir();
    let input = dir.join("log.ndjson");
    let firings = dir.join("firings.ndjson");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let out = Command::new(binary())
        .args(["compute", "--quiet", "--input"])
        .arg(&input)
        .arg("--config")
        .arg(cfg)
        .arg("--firings")
        .arg(&firings)
        .output()
        .expect("tidemark compute runs");
    assert!(
        out.status.success(),
        "compute failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys = super::firing_keys_in(&firings);
    (
        serde_json::from_slice(&out.stdout).expect("snapshot JSON"),
        keys,
    )
}

/// GETs a JSON document, panicking with the answer when it is not one.
pub async fn get_json(client: &reqwest::Client, url: &str) -> serde_json::Value {
    let resp = client.get(url).send().await.expect("server answers");
    let status = resp.status();
    let text = resp.text().await.expect("a body");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("{url} answered {status}: {text}"))
}

/// POSTs events as NDJSON and returns the ingest answer.
pub async fn post_events(
    client: &reqwest::Client,
    server: &Server,
    events: &[serde_json::Value],
) -> serde_json::Value {
    let lines: Vec<String> = events.iter().map(|e| e.to_string()).collect();
    post_lines(client, &server.url("/v1/events"), &lines).await
}

/// POSTs lines as one NDJSON body to `url` (a server's `/v1/events`) and returns the answer.
pub async fn post_lines(
    client: &reqwest::Client,
    url: &str,
    lines: &[String],
) -> serde_json::Value {
    let body: String = lines.iter().map(|l| l.clone() + "\n").collect();
    let resp = loop {
        let resp = client
            .post(url)
            .header("Content-Type", "application/x-ndjson")
            .body(body.clone())
            .send()
            .await
            .expect("server answers");
        // A server behind by `serve.max_lag` (a busy test host) took none of it: send again.
        if resp.status() != reqwest::StatusCode::TOO_MANY_REQUESTS {
            break resp;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(
        resp.status().is_success(),
        "ingest answered {}",
        resp.status()
    );
    resp.json().await.expect("an ingest answer")
}

/// The server's `/metrics` text.
pub async fn metrics_text(client: &reqwest::Client, server: &Server) -> String {
    client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("/metrics has a body")
}

/// The value of an unlabelled sample `name` in a `/metrics` text, if it is there.
pub fn metric_value(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits until the rows reflect everything accepted so far (`/v1/rows` is read-your-writes).
pub async fn settled(client: &reqwest::Client, server: &Server) {
    get_json(client, &server.url("/v1/rows?metric=dau")).await;
}

/// The rule `unpaid`: an order not paid within 2 h fires to the webhook `url`.
pub fn unpaid_rule(url: &str) -> String {
    format!(
        r#"[[rules]]
name = "unpaid"
when = "order_created"
unless = "order_paid"
match = "order_id"
wait = "2h"
[[rules.actions]]
webhook = "{url}"
"#
    )
}

/// A configuration in `zone` whose rules follow the event clock, with quick webhook retries:
/// `serve_extra` adds lines to `[serve]`, and `body` follows (rules, alerts).
pub fn event_clock_config(zone: &str, serve_extra: &str, body: &str) -> std::path::PathBuf {
    config_file(&format!(
        "timezone = \"{zone}\"\n[serve]\nclock = \"event\"\n{serve_extra}[delivery]\ntimeout = \"1s\"\nbackoff_max = \"1s\"\n{body}"
    ))
}

/// [`unpaid_rule`] to `hook` on event time in UTC; `serve_extra` adds lines to `[serve]`.
pub fn unpaid_rule_config(hook: &str, serve_extra: &str) -> std::path::PathBuf {
    event_clock_config("UTC", serve_extra, &unpaid_rule(hook))
}
/// Writes a configuration file into a fresh directory and returns its path.
pub fn config_file(text: &str) -> std::path::PathBuf {
    let dir = fresh_data_dir();
    let path = dir.join("tidemark.toml");
    std::fs::write(&path, text).expect("the config is written");
    path
}

/// Files under `dir` whose bytes contain `needle` (`dir` must hold some file).
pub fn files_containing(dir: &std::path::Path, needle: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut files = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                files += 1;
                let bytes = std::fs::read(&path).unwrap();
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    found.push(path);
                }
            }
        }
    }
    assert!(files > 0, "{} holds no file", dir.display());
    found
}
