//! MQTT publishing: every row change to `{prefix}/deltas/{metric}`, each row's current value
//! retained at `{prefix}/rows/{metric}/{dims...}` (empty retained payload when it disappears),
//! and progress marks retained at `{prefix}/progress`.
//!
//! A slow or unreachable broker never holds up ingest: the publisher reads the live service's
//! feed through the hub's bounded queue, and while the broker does not take messages the
//! client's request queue fills, the publisher stops reading, and the hub treats it as any
//! slow subscriber (`serve.on_slow_subscriber`): it is resynced (or closed and subscribed
//! again) once it catches up. Deltas of the gap are then lost to delta subscribers, but the
//! retained rows are republished whole, rows that vanished meanwhile are cleared, and the
//! retained progress mark says how current they are.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use rumqttc::{AsyncClient, ClientError, MqttOptions, Publish, QoS, SubscribeFilter};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::topics::{delta_topic, progress_topic, row_topic};
use super::{disconnect, pump, spawn, stopped, Session};
use crate::config::Mqtt;
use crate::live::Engine;
use crate::output::{Feed, Filter, Subscription, Upsert, WireMessage};

/// Requests the client queues before `publish` waits for the broker.
const QUEUE: usize = 1024;

/// Starts the publishing connection's pump and the publisher.
pub(super) fn start(
    config: &Mqtt,
    mut o: MqttOptions,
    broker: &str,
    live: Engine,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    o.set_clean_session(true)
        .set_request_channel_capacity(QUEUE);
    let (client, eventloop) = AsyncClient::new(o, QUEUE);
    let prefix = config.publish_prefix.clone();
    // Retained rows of an earlier run that this run does not hold are cleared: subscribing
    // to them shows them (retained flag set); the echo of this run's first progress mark
    // (retained flag clear) comes after the last of them.
    let sweep = [format!("{prefix}/rows/#"), progress_topic(&prefix)];
    let (connections, connected) = watch::channel(0u64);
    let session = Session {
        label: "publish",
        broker: broker.to_string(),
        subscribe: match config.retain_rows {
            true => sweep
                .iter()
                .map(|t| SubscribeFilter::new(t.clone(), QoS::AtMostOnce))
                .collect(),
            false => Vec::new(),
        },
        again: false,
        connections: Some(connections),
        subscribed: None,
    };
    let (seen_tx, seen) = mpsc::unbounded_channel::<Publish>();
    let deliver = move |p: Publish| std::future::ready(seen_tx.send(p).is_ok());
    let publisher = Publisher {
        client,
        prefix,
        retain_rows: config.retain_rows,
        known: HashSet::new(),
        rows: BTreeMap::new(),
        full: Some(HashSet::new()),
        sweeping: config.retain_rows,
        swept: 0,
    };
    vec![
        spawn(
            "mqtt-publish-pump",
            pump(eventloop, session, stop.clone(), deliver),
        ),
        spawn("mqtt-publish", publisher.run(live, seen, connected, stop)),
    ]
}

struct Publisher {
    client: AsyncClient,
    prefix: String,
    retain_rows: bool,
    /// Row topics holding a retained value published by this run.
    known: HashSet<String>,
    /// Rows (none = clear) to publish at the next progress mark; changes of one row between
    /// two marks are coalesced, so the retained rows move from one consistent time to the
    /// next.
    rows: BTreeMap<String, Option<Arc<Upsert>>>,
    /// While the feed sends a whole set of rows (first rows, resync, new subscription): the
    /// row topics in it; at its progress mark, known rows not in it are cleared.
    full: Option<HashSet<String>>,
    /// Still clearing retained rows left by an earlier run.
    sweeping: bool,
    swept: u64,
}

/// The broker connection is gone for good (the pump ended).
struct Gone;

impl From<ClientError> for Gone {
    fn from(_: ClientError) -> Self {
        Gone
    }
}

/// Subscribes to every row. In a cluster whose dataflow is being built again after a lost
/// process, the engine takes no subscription: tries again every second until it does, or
/// until the stop.
async fn subscribe(live: &Engine, stop: &mut watch::Receiver<bool>) -> Option<Subscription> {
    loop {
        match live.subscribe(Filter::default()).await {
            Ok(feed) => return Some(feed),
            Err(_) if live.process().is_some() => {
                tracing::debug!("MQTT publish: the cluster is not serving; subscribing again in a second");
                tokio::select! {
                    _ = stopped(stop) => return None,
                    _ = tokio::time::sleep(RESUBSCRIBE) => {}
                }
            }
            Err(_) => return None,
        }
    }
}

/// How often the publisher asks again for rows while its cluster is down.
const RESUBSCRIBE: std::time::Duration = std::time::Duration::from_secs(1);

impl Publisher {
    async fn run(
        mut self,
        live: Engine,
        mut seen: mpsc::UnboundedReceiver<Publish>,
        mut connected: watch::Receiver<u64>,
        mut stop: watch::Receiver<bool>,
    ) {
        let Some(mut feed) = subscribe(&live, &mut stop).await else {
            return disconnect(&self.client, "publish").await;
        };
        loop {
            // Whether to subscribe again and republish every row.
            let again = tokio::select! {
                biased;
                _ = stopped(&mut stop) => break,
                Some(p) = seen.recv() => match self.seen(p).await {
                    Ok(()) => false,
                    Err(Gone) => return,
                },
                // After a reconnect the broker may have lost the retained rows (a restart
                // without persistence): start again from the live rows.
                Ok(()) = connected.changed() => {
                    let again = *connected.borrow_and_update() > 1;
                    if again {
                        tracing::debug!("MQTT publish: reconnected; republishing every row");
                    }
                    again
                }
                item = feed.recv() => match item {
                    Some(Feed::Closed(reason)) => {
                        tracing::warn!("MQTT publish: {reason}; subscribing again and republishing every row");
                        true
                    }
                    Some(item) => match self.feed(item).await {
                        Ok(()) => false,
                        Err(Gone) => return,
                    },
                    None => true,
                },
            };
            if again {
                let Some(rx) = subscribe(&live, &mut stop).await else {
                    break;
                };
                feed = rx;
                self.begin_full();
            }
        }
        disconnect(&self.client, "publish").await;
    }

    /// Drops pending row changes: a whole set of rows follows.
    fn begin_full(&mut self) {
        self.rows.clear();
        self.full = Some(HashSet::new());
    }

    async fn feed(&mut self, item: Feed) -> Result<(), Gone> {
        match item {
            Feed::Upsert(u) => self.upsert(&u).await,
            Feed::Progress(progress) => {
                self.flush_rows().await?;
                let mark = WireMessage::Progress { progress }.text();
                let topic = progress_topic(&self.prefix);
                Ok(self
                    .client
                    .publish(topic, QoS::AtLeastOnce, true, mark)
                    .await?)
            }
            Feed::Resync(rows) => {
                tracing::warn!("MQTT publish: fell behind the live rows (is the broker slow?); republishing every row");
                self.begin_full();
                for u in rows.iter() {
                    self.upsert(u).await?;
                }
                Ok(())
            }
            Feed::Closed(_) => Ok(()),
        }
    }

    /// Publishes one upsert envelope as a delta and notes the row's new value.
    async fn upsert(&mut self, u: &Arc<Upsert>) -> Result<(), Gone> {
        let metric = u.metric.name();
        let topic = delta_topic(&self.prefix, metric);
        self.client
            .publish(topic, QoS::AtLeastOnce, false, u.text().as_bytes())
            .await?;
        if !self.retain_rows {
            return Ok(());
        }
        let topic = row_topic(&self.prefix, metric, &u.dims);
        let row = u.value.is_some().then(|| u.clone());
        if let (Some(full), Some(_)) = (&mut self.full, &row) {
            full.insert(topic.clone());
        }
        self.rows.insert(topic, row);
        Ok(())
    }

    /// Publishes the coalesced row changes as retained messages (an empty one clears a row);
    /// after a whole set, also clears the rows it no longer holds.
    async fn flush_rows(&mut self) -> Result<(), Gone> {
        if let Some(full) = self.full.take() {
            for gone in self.known.iter().filter(|t| !full.contains(*t)) {
                self.rows.entry(gone.clone()).or_insert(None);
            }
        }
        for (topic, row) in std::mem::take(&mut self.rows) {
            let payload = row.and_then(|u| u.row_text());
            match &payload {
                Some(_) => self.known.insert(topic.clone()),
                None => self.known.remove(&topic),
            };
            let body = payload.unwrap_or_default();
            self.client
                .publish(topic, QoS::AtLeastOnce, true, body)
                .await?;
        }
        Ok(())
    }

    /// A message from the sweep subscription: clears a retained row this run does not hold;
    /// ends the sweep at the echo of this run's own progress mark.
    async fn seen(&mut self, p: Publish) -> Result<(), Gone> {
        if !self.sweeping {
            return Ok(());
        }
        let progress = progress_topic(&self.prefix);
        if p.topic == progress {
            if !p.retain {
                self.sweeping = false;
                if self.swept > 0 {
                    tracing::info!(
                        "MQTT publish: cleared {} retained rows left by an earlier run",
                        self.swept
                    );
                }
                self.client
                    .unsubscribe(format!("{}/rows/#", self.prefix))
                    .await?;
                self.client.unsubscribe(progress).await?;
            }
            return Ok(());
        }
        let held =
            self.known.contains(&p.topic) || matches!(self.rows.get(&p.topic), Some(Some(_)));
        if !p.retain || p.payload.is_empty() || held {
            return Ok(());
        }
        self.swept += 1;
        tracing::debug!("MQTT publish: clearing stale retained row {}", p.topic);
        Ok(self
            .client
            .publish(p.topic, QoS::AtLeastOnce, true, Vec::new())
            .await?)
    }
}
