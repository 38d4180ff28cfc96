//! A page on another origin, in real chromium, can neither ingest into tidemark nor subscribe
//! to it; the same script on tidemark's own page can.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::cdp::{self, Browser};
use super::server::Server;

/// Serves one empty HTML page at every path: the foreign origin.
async fn foreign_site() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let page = "<!doctype html><title>elsewhere</title><p>another site";
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                    page.len()
                );
                let _ = s.write_all(answer.as_bytes()).await;
            });
        }
    });
    (base, task)
}

/// What a page's script gets when it posts an event (a simple `text/plain` request, which
/// needs no preflight) and opens a WebSocket and an EventSource to `target`.
fn attempt(target: &str) -> String {
    let ws = target.replacen("http://", "ws://", 1);
    format!(
        r#"(async () => {{
  const out = {{}};
  try {{
    await fetch('{target}/v1/events', {{method: 'POST', mode: 'no-cors',
      headers: {{'content-type': 'text/plain'}},
      body: '{{"id":"from-page","ts":1790812800000,"event":"page_view","ids":{{"openid":"page"}}}}'}});
    out.post = 'sent';
  }} catch (e) {{ out.post = 'error'; }}
  out.ws = await new Promise((done) => {{
    const s = new WebSocket('{ws}/v1/ws?metric=dau');
    let got = 0;
    s.onmessage = () => {{ got += 1; }};
    s.onopen = () => setTimeout(() => {{ s.close(); done('open:' + got); }}, 1500);
    s.onerror = () => done('error:' + got);
    setTimeout(() => done('timeout:' + got), 8000);
  }});
  out.sse = await new Promise((done) => {{
    const e = new EventSource('{target}/v1/subscribe?metric=dau');
    let got = 0;
    e.onmessage = () => {{ got += 1; }};
    e.onerror = () => {{ e.close(); done('error:' + got); }};
    setTimeout(() => {{ e.close(); done('open:' + got); }}, 1500);
  }});
  return out;
}})()"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium; run with: cargo test --release --test integration -- --ignored browser::"]
async fn a_page_on_another_origin_cannot_ingest_or_subscribe() {
    cdp::require();
    let server = Server::start(&[]);
    let (elsewhere, site) = foreign_site().await;
    let mut browser = Browser::start().await;

    browser.navigate(&format!("{elsewhere}/")).await;
    browser
        .wait_for(
            "document.title === 'elsewhere'",
            Duration::from_secs(30),
            "the foreign page loads",
        )
        .await;
    let foreign: Value = browser.eval(&attempt(&server.base)).await;
    assert!(
        foreign["ws"]
            .as_str()
            .is_some_and(|s| s.starts_with("error") || s.starts_with("timeout")),
        "a foreign page's WebSocket is refused: {foreign}"
    );
    assert_eq!(
        foreign["sse"], "error:0",
        "a foreign page gets no rows: {foreign}"
    );
    // The POST left the page (its answer is opaque to it); the server must have refused it.
    let snapshot = server.get("/v1/snapshot").await;
    assert_eq!(
        snapshot["events"]["accepted"], 0,
        "nothing was ingested: {}",
        snapshot["events"]
    );
    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("tidemark_events_in_total 0"), "{metrics}");

    // The same script on tidemark's own page: ingest and both subscriptions work.
    browser.navigate(&format!("{}/", server.base)).await;
    browser
        .wait_for(
            "window.tidemark !== undefined",
            Duration::from_secs(30),
            "the dashboard loads",
        )
        .await;
    let own: Value = browser.eval(&attempt(&server.base)).await;
    let opened = |v: &Value| {
        v.as_str()
            .and_then(|s| s.strip_prefix("open:"))
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n > 0)
    };
    assert!(
        opened(&own["ws"]) && opened(&own["sse"]),
        "same origin: {own}"
    );
    let snapshot = server.get("/v1/snapshot").await;
    assert_eq!(
        snapshot["events"]["accepted"], 1,
        "the dashboard's origin ingests"
    );
    assert!(
        browser.exceptions.is_empty(),
        "page errors: {:?}",
        browser.exceptions
    );
    site.abort();
}
