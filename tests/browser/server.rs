//! A `tidemark serve` process for the browser tests (killed on drop) and its HTTP API.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

pub const TIDEMARK: &str = env!("CARGO_BIN_EXE_tidemark");

/// A running `tidemark serve`; killed when dropped.
pub struct Server {
    child: Child,
    pub base: String,
    http: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `tidemark serve --listen 127.0.0.1:0` with `extra` arguments and waits for its
    /// "listening on" line.
    pub fn start(extra: &[&str]) -> Server {
        let mut child = Command::new(TIDEMARK)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tidemark serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let mut server = Server {
            child,
            base: String::new(),
            http: reqwest::Client::new(),
        };
        // The reader keeps draining stderr after the address is known, so the pipe never fills.
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::Builder::new()
            .name("tidemark-stderr".into())
            .spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            })
            .expect("spawn the stderr reader");
        let mut seen = Vec::new();
        let addr = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| {
                    panic!("tidemark serve did not say where it listens; stderr so far: {seen:#?}")
                });
            if let Some(rest) = line.strip_prefix("tidemark: listening on ") {
                if let Some(addr) = rest.split_whitespace().next() {
                    break addr.to_string();
                }
            }
            seen.push(line);
        };
        server.base = format!("http://{addr}");
        server
    }

    pub async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// POSTs NDJSON to /v1/events; returns the ingest report.
    pub async fn post_events(&self, ndjson: Vec<u8>) -> Value {
        let r = self
            .http
            .post(format!("{}/v1/events", self.base))
            .header("content-type", "application/x-ndjson")
            .body(ndjson)
            .send()
            .await
            .expect("POST /v1/events");
        assert!(r.status().is_success(), "POST /v1/events: {}", r.status());
        r.json().await.expect("ingest report JSON")
    }
}

/// `tidemark generate` output.
pub fn generate(args: &[&str]) -> Vec<u8> {
    let out = Command::new(TIDEMARK)
        .arg("generate")
        .args(args)
        .stderr(Stdio::null())
        .output()
        .expect("run tidemark generate");
    assert!(
        out.status.success(),
        "tidemark generate failed: {}",
        out.status
    );
    out.stdout
}
