//! Headless Debian chromium driven over the DevTools protocol: start it in a fresh profile, open
//! one page, evaluate JavaScript, set the viewport, take screenshots; the process dies on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Fails the test when the browser is missing: the browser tests are ignored unless asked for,
/// so one that runs must really run.
pub fn require() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} not found; apt-get install -y chromium (these tests need a real browser)"
    );
}

/// A running chromium and its throw-away profile directory; both go away on drop.
pub struct Browser {
    child: Child,
    profile: PathBuf,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
    /// Uncaught page exceptions seen so far (Runtime.exceptionThrown), as text.
    pub exceptions: Vec<String>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Browser {
    /// Starts chromium and attaches to a blank page.
    pub async fn start() -> Browser {
        static STARTED: AtomicU64 = AtomicU64::new(0);
        let profile = std::env::temp_dir().join(format!(
            "tidemark-chromium-{}-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed),
            now_nanos()
        ));
        std::fs::create_dir_all(&profile).expect("create the browser profile directory");
        let child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start /usr/bin/chromium");
        // The guard exists before anything can fail, so the process never outlives the test.
        let mut partial = Partial {
            child: Some(child),
            profile: Some(profile.clone()),
        };
        let url = devtools_url(&profile, partial.child.as_mut().expect("child")).await;
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("connect to chromium's DevTools socket");
        let mut browser = Browser {
            child: partial.child.take().expect("child"),
            profile: partial.profile.take().expect("profile"),
            ws,
            session: String::new(),
            next_id: 0,
            exceptions: Vec::new(),
        };
        let target = browser
            .send("Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let attached = browser
            .send(
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        browser.session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_string();
        browser.call("Page.enable", json!({})).await;
        browser.call("Runtime.enable", json!({})).await;
        browser
    }

    /// A browser-level command.
    async fn send(&mut self, method: &str, params: Value) -> Value {
        self.request(method, params, None).await
    }

    /// A command to the page.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.request(method, params, Some(session)).await
    }

    async fn request(&mut self, method: &str, params: Value, session: Option<String>) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(Message::Text(msg.to_string().into()))
            .await
            .expect("send to chromium");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = tokio::time::timeout(left, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("chromium did not answer {method} within 60 s"));
            let Some(Ok(Message::Text(text))) = next else {
                match next {
                    Some(Ok(_)) => continue,
                    other => panic!("chromium's DevTools socket ended during {method}: {other:?}"),
                }
            };
            let v: Value = serde_json::from_str(&text).expect("DevTools messages are JSON");
            if v["method"] == "Runtime.exceptionThrown" {
                self.exceptions
                    .push(v["params"]["exceptionDetails"].to_string());
            }
            if v["id"] == id {
                if !v["error"].is_null() {
                    panic!("{method} failed: {}", v["error"]);
                }
                return v["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression (JSON-serialisable), or a panic with its exception.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        if !r["exceptionDetails"].is_null() {
            panic!(
                "page script {expression:?} threw: {}",
                r["exceptionDetails"]
            );
        }
        r["result"]["value"].clone()
    }

    /// Evaluates `expression` until it is true; panics with `what` after `limit`.
    pub async fn wait_for(&mut self, expression: &str, limit: Duration, what: &str) {
        let deadline = Instant::now() + limit;
        while self.eval(expression).await != json!(true) {
            assert!(
                Instant::now() < deadline,
                "timed out after {limit:?} waiting until {what}; page exceptions: {:?}",
                self.exceptions
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn navigate(&mut self, url: &str) {
        let r = self.call("Page.navigate", json!({"url": url})).await;
        assert!(
            r["errorText"].is_null(),
            "navigating to {url}: {}",
            r["errorText"]
        );
    }

    /// Viewport size; `mobile` also turns on touch-style viewport handling.
    pub async fn viewport(&mut self, width: u32, height: u32, scale: f64, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile}),
        )
        .await;
    }

    /// PNG of the whole page, as wide as the viewport.
    pub async fn screenshot_full_page(&mut self, width: u32) -> Vec<u8> {
        let height = self
            .eval("document.documentElement.scrollHeight")
            .await
            .as_f64()
            .expect("page height");
        let r = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true,
                       "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}}),
            )
            .await;
        base64_decode(r["data"].as_str().expect("screenshot data"))
    }
}

/// Kills a half-started browser if setting it up panics.
struct Partial {
    child: Option<Child>,
    profile: Option<PathBuf>,
}

impl Drop for Partial {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(p) = self.profile.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

/// Chromium writes its port and browser path to DevToolsActivePort in the profile.
async fn devtools_url(profile: &Path, child: &mut Child) -> String {
    let file = profile.join("DevToolsActivePort");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(&file) {
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                return format!("ws://127.0.0.1:{port}{path}");
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("chromium exited before it listened: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "chromium did not write {} within 30 s",
            file.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Standard base64 (with padding), as DevTools sends screenshots.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {:?}", c as char),
        }
    };
    let bytes: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let data: Vec<u8> = chunk.iter().copied().filter(|&c| c != b'=').collect();
        let n = data.iter().fold(0u32, |acc, &c| (acc << 6) | value(c)) << (6 * (4 - data.len()));
        let [_, a, b, c] = n.to_be_bytes();
        let full = [a, b, c];
        out.extend_from_slice(&full[..data.len().saturating_sub(1)]);
    }
    out
}
