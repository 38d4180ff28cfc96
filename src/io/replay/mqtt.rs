//! The MQTT sender: one client per connection publishes due batches (a JSON array, or one event
//! alone) at QoS 1; a PUBACK acknowledges a batch. PUBACKs carry no time, so a batch counts as
//! reflected at the first progress mark at or past the replay's wall-clock milliseconds when
//! its PUBACK arrived.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::Notify;

use super::{BrokerError, Queue, ReplayError, Shared};

/// Where to publish.
#[derive(Clone, Debug)]
pub struct MqttTarget {
    /// The broker's host.
    pub host: String,
    /// The broker's port.
    pub port: u16,
    /// The topic events are published to.
    pub topic: String,
    /// How long a PUBACK (or a lost broker) may take before its batch counts as failed.
    pub timeout: Duration,
}

/// Publishes in flight per connection before waiting for PUBACKs.
const INFLIGHT: u16 = 64;

/// Connects client `index` and waits for the broker's CONNACK.
pub async fn connect(
    target: &MqttTarget,
    index: usize,
) -> Result<(AsyncClient, EventLoop), ReplayError> {
    let id = format!("tidemark-replay-{}-{index}", std::process::id());
    let mut options = MqttOptions::new(id, target.host.clone(), target.port);
    options
        .set_keep_alive(Duration::from_secs(10))
        .set_clean_session(true)
        .set_inflight(INFLIGHT)
        .set_max_packet_size(1 << 20, 256 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    let broker = format!("mqtt://{}:{}", target.host, target.port);
    const CONNACK: Duration = Duration::from_secs(5);
    let connack = tokio::time::timeout(CONNACK, eventloop.poll()).await;
    let failed = match connack {
        Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => return Ok((client, eventloop)),
        Ok(Ok(other)) => BrokerError::Answer {
            broker,
            event: Box::new(other),
        },
        Ok(Err(source)) => BrokerError::Connect { broker, source },
        Err(_) => BrokerError::NoConnack {
            broker,
            secs: CONNACK.as_secs(),
        },
    };
    Err(failed.into())
}

/// Publishes batches from the queue until it is closed, then waits for the last PUBACKs.
pub async fn sender(
    client: AsyncClient,
    mut eventloop: EventLoop,
    target: MqttTarget,
    queue: Queue,
    shared: Arc<Shared>,
) {
    // Batches handed to the client, in order, until the event loop writes them.
    let unwritten: Mutex<VecDeque<(Instant, u64)>> = Mutex::default();
    let finished = Notify::new();
    let done = AtomicBool::new(false);
    let publishing = async {
        while let Some(batch) = queue.next().await {
            let events = batch.events.len() as u64;
            let payload = shared.log.json_array(batch.events.clone());
            let sent = shared.note_sent(batch.events);
            unwritten
                .lock()
                .expect("unwritten")
                .push_back((sent, events));
            if let Err(e) = client
                .publish_bytes(&target.topic, QoS::AtLeastOnce, false, payload)
                .await
            {
                unwritten.lock().expect("unwritten").pop_back();
                shared
                    .counters
                    .failed("publish", 1, events, e.to_string(), None);
                break;
            }
        }
        done.store(true, Relaxed);
        finished.notify_one();
        std::future::pending::<()>().await
    };
    let acknowledging = async {
        let mut written: HashMap<u16, (Instant, u64)> = HashMap::new();
        let mut last_ok = Instant::now();
        let mut deadline: Option<Instant> = None;
        loop {
            let idle = written.is_empty() && unwritten.lock().expect("unwritten").is_empty();
            if done.load(Relaxed) {
                if idle {
                    break;
                }
                let d = *deadline.get_or_insert_with(|| Instant::now() + target.timeout);
                if Instant::now() >= d {
                    break;
                }
            }
            let event = tokio::select! {
                e = eventloop.poll() => e,
                _ = finished.notified(), if idle => continue,
                _ = tokio::time::sleep(Duration::from_secs(1)), if deadline.is_some() => continue,
            };
            match event {
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                    last_ok = Instant::now();
                    // A publish written again after a reconnection keeps its packet id.
                    if let std::collections::hash_map::Entry::Vacant(v) = written.entry(pkid) {
                        if let Some(b) = unwritten.lock().expect("unwritten").pop_front() {
                            v.insert(b);
                        }
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(ack))) => {
                    last_ok = Instant::now();
                    if let Some((sent, events)) = written.remove(&ack.pkid) {
                        shared.counters.ack(events, 0, 0, 0);
                        // The clock the server stamps its progress marks with.
                        let at = crate::pipeline::now_ms();
                        let mut tracker = shared.tracker.lock().expect("tracker lock");
                        tracker.acknowledged(at, sent, events);
                    }
                }
                Ok(_) => last_ok = Instant::now(),
                Err(e) => {
                    tracing::warn!("MQTT connection: {e}; reconnecting");
                    if last_ok.elapsed() > target.timeout {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        let lost = written.values().map(|(_, n)| *n).sum::<u64>()
            + unwritten
                .lock()
                .expect("unwritten")
                .iter()
                .map(|(_, n)| *n)
                .sum::<u64>();
        let batches = written.len() + unwritten.lock().expect("unwritten").len();
        if batches > 0 {
            shared.counters.failed(
                "no PUBACK",
                batches as u64,
                lost,
                format!("the broker did not acknowledge within {:?}", target.timeout),
                Some("is the broker reachable and not overloaded?"),
            );
        }
    };
    tokio::select! {
        _ = publishing => {}
        _ = acknowledging => {}
    }
}
