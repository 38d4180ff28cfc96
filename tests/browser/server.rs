//! A `tidemark serve` process for the browser tests (the shared test server, killed on drop)
//! and its HTTP API.

use std::process::{Command, Stdio};

use serde_json::Value;

use crate::common::server as common_server;

pub const TIDEMARK: &str = env!("CARGO_BIN_EXE_tidemark");

/// A running `tidemark serve` and a client for its API.
pub struct Server {
    _process: common_server::Server,
    pub base: String,
    http: reqwest::Client,
}

impl Server {
    /// Starts `tidemark serve --listen 127.0.0.1:0` with `extra` arguments (no tokens) and
    /// waits for its "listening on" line.
    pub fn start(extra: &[&str]) -> Server {
        let process = common_server::Server::start(extra, &[]);
        Server {
            base: format!("http://{}", process.addr),
            _process: process,
            http: reqwest::Client::new(),
        }
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
