//! Clients of the MQTT integration tests: views that apply the upserts seen on SSE, WebSocket
//! and MQTT deltas, the retained rows of a late MQTT subscriber, and a QoS 1 event publisher.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use rumqttc::{AsyncClient, Event, EventLoop, Incoming, MqttOptions, QoS};
use serde_json::Value as Json;

use crate::common::key;

/// Rows by [`key`], as `common::rows` keys a snapshot's.
pub type Rows = BTreeMap<(String, String), Json>;

/// What one subscriber has seen: rows after applying every upsert, and its last progress.
#[derive(Debug, Default)]
pub struct View {
    pub rows: Rows,
    /// Set by the first progress mark (SSE, WebSocket) or the SUBACK (MQTT).
    pub live: bool,
    pub progress: u64,
    pub upserts: u64,
    pub resyncs: u64,
}

pub type Shared = Arc<Mutex<View>>;

impl View {
    /// Applies one message: an upsert, a progress mark or a resync.
    pub fn apply(&mut self, text: &str) {
        let m: Json = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
        if let Some(p) = m.get("progress") {
            self.progress = p.as_u64().expect("progress is an integer");
            self.live = true;
        } else if m.get("resync").is_some() {
            self.rows.clear();
            self.resyncs += 1;
        } else if let Some(metric) = m["metric"].as_str() {
            self.upserts += 1;
            let k = key(metric, &m["dims"]);
            match &m["value"] {
                Json::Null => self.rows.remove(&k),
                v => self.rows.insert(k, v.clone()),
            };
        } else {
            panic!("unexpected message {text}");
        }
    }
}

/// Follows `GET /v1/subscribe` (SSE), applying every `data:` line.
pub fn sse(url: String) -> Shared {
    let view = Shared::default();
    let v = view.clone();
    tokio::spawn(async move {
        let response = reqwest::Client::new()
            .get(&url)
            .send()
            .await
            .expect("SSE connects");
        assert!(
            response.status().is_success(),
            "{url}: {}",
            response.status()
        );
        let mut body = response.bytes_stream();
        let mut buffer = Vec::new();
        while let Some(Ok(chunk)) = body.next().await {
            buffer.extend_from_slice(&chunk);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let line = String::from_utf8(line).expect("UTF-8");
                if let Some(data) = line.trim_end().strip_prefix("data:") {
                    v.lock().unwrap().apply(data.trim_start());
                }
            }
        }
    });
    view
}

/// Follows `GET /v1/ws`, applying every text frame.
pub fn websocket(url: String) -> Shared {
    let view = Shared::default();
    let v = view.clone();
    tokio::spawn(async move {
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("WebSocket connects");
        while let Some(Ok(message)) = ws.next().await {
            if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
                v.lock().unwrap().apply(text.as_str());
            }
        }
    });
    view
}

fn client(port: u16, id: &str) -> (AsyncClient, EventLoop) {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(1 << 20, 1 << 20);
    AsyncClient::new(o, 1024)
}

/// Subscribes to `{prefix}/deltas/#` with QoS 1, applying every upsert published there.
pub fn mqtt_deltas(port: u16, prefix: &str) -> Shared {
    let view = Shared::default();
    let v = view.clone();
    let (client, mut events) = client(port, "test-deltas");
    let filter = format!("{prefix}/deltas/#");
    tokio::spawn(async move {
        client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
        while let Ok(event) = events.poll().await {
            match event {
                Event::Incoming(Incoming::SubAck(_)) => v.lock().unwrap().live = true,
                Event::Incoming(Incoming::Publish(p)) => v
                    .lock()
                    .unwrap()
                    .apply(std::str::from_utf8(&p.payload).unwrap()),
                _ => {}
            }
        }
    });
    view
}

/// What a late subscriber to the retained rows sees: payload by topic, whether every row
/// message carried the retained flag, and the last progress mark.
#[derive(Debug, Default)]
pub struct Retained {
    pub rows: BTreeMap<String, Json>,
    pub all_retained: bool,
    pub progress: Option<u64>,
}

impl Retained {
    /// The rows by `(metric, dims)`, checking each topic names its metric and dims values.
    pub fn keyed(&self, prefix: &str) -> Rows {
        self.rows
            .iter()
            .map(|(topic, row)| {
                let metric = row["metric"].as_str().expect("metric");
                let mut expect = format!("{prefix}/rows/{metric}");
                for v in row["dims"].as_object().expect("dims").values() {
                    expect.push('/');
                    match v {
                        Json::String(s) => expect.push_str(s),
                        other => expect.push_str(&other.to_string()),
                    }
                }
                assert_eq!(topic, &expect, "row topic of {row}");
                (key(metric, &row["dims"]), row["value"].clone())
            })
            .collect()
    }
}

/// Subscribes (QoS 0) to every topic (`#`) as a new client: every topic and payload it sees,
/// retained or not, one per line.
pub fn mqtt_everything(port: u16, id: &str) -> Arc<Mutex<Vec<u8>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let (client, mut events) = client(port, id);
    tokio::spawn(async move {
        client.subscribe("#", QoS::AtMostOnce).await.unwrap();
        while let Ok(event) = events.poll().await {
            if let Event::Incoming(Incoming::Publish(p)) = event {
                let mut s = s.lock().unwrap();
                s.extend_from_slice(p.topic.as_bytes());
                s.push(b' ');
                s.extend_from_slice(&p.payload);
                s.push(b'\n');
            }
        }
    });
    seen
}

/// Subscribes (QoS 0) to `{prefix}/rows/#` and `{prefix}/progress` as a new client.
pub fn mqtt_retained(port: u16, prefix: &str, id: &str) -> Arc<Mutex<Retained>> {
    let seen = Arc::new(Mutex::new(Retained {
        all_retained: true,
        ..Default::default()
    }));
    let s = seen.clone();
    let (client, mut events) = client(port, id);
    let rows = format!("{prefix}/rows/#");
    let progress = format!("{prefix}/progress");
    tokio::spawn(async move {
        client.subscribe(rows, QoS::AtMostOnce).await.unwrap();
        client.subscribe(&progress, QoS::AtMostOnce).await.unwrap();
        while let Ok(event) = events.poll().await {
            let Event::Incoming(Incoming::Publish(p)) = event else {
                continue;
            };
            let mut s = s.lock().unwrap();
            if p.topic == progress {
                let mark: Json = serde_json::from_slice(&p.payload).expect("progress JSON");
                s.progress = mark["progress"].as_u64();
            } else if p.payload.is_empty() {
                s.all_retained &= p.retain;
                s.rows.remove(&p.topic);
            } else {
                s.all_retained &= p.retain;
                let row = serde_json::from_slice(&p.payload).expect("row JSON");
                s.rows.insert(p.topic.clone(), row);
            }
        }
    });
    seen
}

/// Publishes payloads with QoS 1 to `topic` in order; answers once the broker has acknowledged
/// every one.
pub async fn publish_events(port: u16, id: &str, topic: &str, payloads: &[String]) {
    let (client, mut events) = client(port, id);
    let acked = Arc::new(AtomicUsize::new(0));
    let a = acked.clone();
    let pump = tokio::spawn(async move {
        while let Ok(event) = events.poll().await {
            if let Event::Incoming(Incoming::PubAck(_)) = event {
                a.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    for p in payloads {
        client
            .publish(topic, QoS::AtLeastOnce, false, p.as_bytes())
            .await
            .unwrap();
    }
    let what = format!("the broker to acknowledge {} messages", payloads.len());
    super::eventually(&what, Duration::from_secs(60), || async {
        (acked.load(Ordering::SeqCst) == payloads.len()).then_some(())
    })
    .await;
    client.disconnect().await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), pump).await;
}
