//! MQTT ingest: a persistent QoS 1 session whose messages (one event or a JSON array of events
//! each) go to the live service in order; a message is acknowledged only once the service has
//! judged its events, so the broker redelivers whatever tidemark had not taken when it stopped.

use std::future::Future;
use std::pin::Pin;

use futures_util::stream::{FuturesOrdered, StreamExt};
use rumqttc::{AsyncClient, MqttOptions, Publish, QoS, SubscribeFilter};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::{disconnect, pump, spawn, stopped, Session};
use crate::config::Mqtt;
use crate::event::batch::{split, Format};
use crate::live::{IngestReport, Engine, Stopped};

/// Messages handed to the live service whose answer has not come yet, at most. Past it, no
/// further message is taken until the oldest is answered (the broker's own in-flight limit
/// usually stops it sooner).
const WINDOW: usize = 64;

/// Starts the event loop pump, the message processor and the acknowledger.
pub(super) fn start(
    config: &Mqtt,
    mut o: MqttOptions,
    broker: &str,
    live: Engine,
    stop: watch::Receiver<bool>,
    subscribed: oneshot::Sender<()>,
) -> Vec<JoinHandle<()>> {
    o.set_clean_session(false)
        .set_manual_acks(true)
        .set_request_channel_capacity(4 * WINDOW);
    let (client, eventloop) = AsyncClient::new(o, 4 * WINDOW);
    let (inbox_tx, inbox) = mpsc::channel::<Publish>(WINDOW);
    let (acks_tx, acks) = mpsc::unbounded_channel::<Publish>();
    let session = Session {
        label: "ingest",
        broker: broker.to_string(),
        subscribe: config
            .topics
            .iter()
            .map(|t| SubscribeFilter::new(t.clone(), QoS::AtLeastOnce))
            .collect(),
        again: true,
        connections: None,
        subscribed: Some(subscribed),
    };
    let deliver = move |p: Publish| {
        let tx = inbox_tx.clone();
        async move { tx.send(p).await.is_ok() }
    };
    vec![
        spawn(
            "mqtt-ingest-pump",
            pump(eventloop, session, stop.clone(), deliver),
        ),
        spawn("mqtt-ingest", process(live, inbox, acks_tx, stop)),
        spawn("mqtt-ingest-acks", acknowledge(client, acks)),
    ]
}

/// Sends the acknowledgements in the order given, then DISCONNECT once no more will come. A
/// task of its own so that waiting for room in the client's request queue never holds up the
/// processor (which the pump may be waiting on).
async fn acknowledge(client: AsyncClient, mut acks: mpsc::UnboundedReceiver<Publish>) {
    while let Some(p) = acks.recv().await {
        if let Err(e) = client.ack(&p).await {
            tracing::debug!("MQTT ingest: ack of {}: {e}", p.pkid);
        }
    }
    disconnect(&client, "ingest").await;
}

/// How often a source held back by `serve.max_lag` looks again.
const BUSY_RECHECK: std::time::Duration = std::time::Duration::from_millis(10);

type Answer = Pin<Box<dyn Future<Output = (Publish, Result<IngestReport, Stopped>)> + Send>>;

/// Hands messages to the live service in arrival order, keeping up to `WINDOW` answers
/// outstanding, and passes each message on to be acknowledged once its answer has come (in
/// arrival order). On `stop`, takes no more messages, waits for the outstanding answers and
/// acknowledges those; if the service has stopped, acknowledges nothing more.
async fn process(
    live: Engine,
    mut inbox: mpsc::Receiver<Publish>,
    acks: mpsc::UnboundedSender<Publish>,
    mut stop: watch::Receiver<bool>,
) {
    let mut pending: FuturesOrdered<Answer> = FuturesOrdered::new();
    let mut stopping = false;
    // Since when the source has been held back (counted in `/metrics` as it goes).
    let mut held_since: Option<std::time::Instant> = None;
    loop {
        // While the engine is behind (`serve.max_lag`), no message is taken: the broker holds
        // them, and the clients see their acknowledgements come later.
        let busy = live.pressure().busy().is_some();
        if let Some(since) = held_since.take() {
            live.pressure().held_back(since.elapsed());
        }
        if busy {
            held_since = Some(std::time::Instant::now());
        }
        tokio::select! {
            biased;
            _ = stopped(&mut stop), if !stopping => {
                stopping = true;
                // Messages not yet taken stay unacknowledged: the broker keeps them.
                inbox.close();
            }
            Some((publish, answer)) = pending.next(), if !pending.is_empty() => {
                match answer {
                    Ok(report) if report.failed.is_some() => {
                        // Not acknowledged: the broker sends it again on the next session.
                        tracing::error!(
                            "MQTT ingest: message on {} (id {}) could not be stored and is not acknowledged: {}",
                            publish.topic, publish.pkid, report.failed.as_deref().unwrap_or("")
                        );
                    }
                    Ok(report) => {
                        log_report(&publish, &report);
                        let _ = acks.send(publish);
                    }
                    Err(Stopped) => {
                        tracing::error!("MQTT ingest: the engine has stopped; unacknowledged messages stay with the broker");
                        return;
                    }
                }
            }
            next = inbox.recv(), if !stopping && !busy && pending.len() < WINDOW => match next {
                Some(publish) => pending.push_back(offer(&live, publish)),
                None => stopping = true,
            },
            _ = tokio::time::sleep(BUSY_RECHECK), if busy => {}
        }
        if stopping && pending.is_empty() {
            return;
        }
    }
}

/// Hands one message's events to the live service now (so order is kept) and returns its
/// answer. A blank payload (such as the clearing of a retained message) holds no event. A
/// payload that starts as an array but is not valid JSON is handed over whole, so the service
/// counts it as one rejected `malformed_json` event.
fn offer(live: &Engine, publish: Publish) -> Answer {
    let payload = publish.payload.clone();
    if payload.iter().all(u8::is_ascii_whitespace) {
        tracing::debug!(
            "MQTT ingest: empty message on {}; nothing to ingest",
            publish.topic
        );
        return Box::pin(async move { (publish, Ok(IngestReport::default())) });
    }
    let events = match split(&payload, Format::Json) {
        Ok(events) => events,
        Err(e) => {
            tracing::debug!(
                "MQTT ingest: message on {} is not a JSON array of events ({e}); counted as one rejected event",
                publish.topic
            );
            vec![payload]
        }
    };
    let answer = live.ingest_from("mqtt", events);
    Box::pin(async move { (publish, answer.await) })
}

fn log_report(publish: &Publish, report: &IngestReport) {
    if report.issues.is_empty() {
        return;
    }
    for (index, outcome) in &report.issues {
        tracing::debug!(
            "MQTT ingest: message on {} (id {}), event {index}: {outcome:?}",
            publish.topic,
            publish.pkid
        );
    }
}
