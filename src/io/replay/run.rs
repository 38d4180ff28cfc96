//! One replay from start to end: subscribe for progress marks, connect the senders, hand them
//! batches as they come due, wait for the last answers and marks, and build the report.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::Instrument;

use super::counts::{self, ServerCounts};
use super::firings::{Releases, Webhook};
use super::http::HttpTarget;
use super::latency::Tracker;
use super::{
    mqtt, watch, Batch, Latency, Log, Progress, Queue, ReplayError, ReplayOptions, Report, Shared,
    Target,
};
use crate::event::Limits;

/// The webhook receiver is done once no delivery came for this long.
const WEBHOOK_QUIET: Duration = Duration::from_secs(2);

/// How often `on_tick` is called.
const TICK: Duration = Duration::from_millis(200);

/// Plays `log` as `options` say; `on_tick` sees the progress a few times a second.
pub async fn run(
    log: Log,
    options: ReplayOptions,
    mut on_tick: impl FnMut(&Progress),
) -> Result<Report, ReplayError> {
    let limits = Limits::from_config(&crate::config::Config::default());
    let plan = match &options.target {
        Target::Http { .. } => log.plan(options.pace, options.batch, &limits, |_| false),
        Target::Mqtt(_) => log.plan(options.pace, options.batch, &limits, |i| {
            log.not_embeddable(i)
        }),
    };
    let connections = options.connections.max(1);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .tcp_nodelay(true)
        .build()
        .map_err(ReplayError::Client)?;
    let read_token = options.read_token.as_deref();
    let tracker = Arc::new(Mutex::new(Tracker::new(Instant::now())));
    let watcher = watch::start(&options.http, options.read_token.clone(), tracker.clone()).await?;
    let mut mqtt_clients = Vec::new();
    let mut before = None;
    if let Target::Mqtt(m) = &options.target {
        before = counts::fetch(&client, &options.http, read_token).await;
        for i in 0..connections {
            mqtt_clients.push(mqtt::connect(m, i).await?);
        }
    }

    // Read before the clock starts, so that the first batches are not sent late.
    let releases = options
        .webhook
        .is_some()
        .then(|| Arc::new(Releases::new(&log, &limits)));
    let start = Instant::now();
    let record_from = start + options.warmup;
    tracker.lock().expect("tracker lock").record_from = record_from;
    let webhook = match (&options.webhook, &releases) {
        (Some(listen), Some(r)) => Some(Webhook::start(listen, r.clone(), record_from).await?),
        _ => None,
    };
    let shared = Arc::new(Shared {
        log,
        counters: Default::default(),
        tracker: tracker.clone(),
        record_from,
        warmup_events: Default::default(),
        releases,
    });
    let (tx, rx) = mpsc::channel::<Batch>(connections);
    let queue = Queue(Arc::new(tokio::sync::Mutex::new(rx)));
    let mut senders = JoinSet::new();
    match &options.target {
        Target::Http { base } => {
            let target = HttpTarget {
                client: client.clone(),
                url: format!("{base}/v1/events"),
                token: options.ingest_token.clone(),
                timeout: options.timeout,
            };
            for i in 0..connections {
                let fut = super::http::sender(target.clone(), queue.clone(), shared.clone());
                senders.spawn(fut.instrument(tracing::info_span!("replay-http", connection = i)));
            }
        }
        Target::Mqtt(m) => {
            for (i, (c, ev)) in mqtt_clients.into_iter().enumerate() {
                let fut = mqtt::sender(c, ev, m.clone(), queue.clone(), shared.clone());
                senders.spawn(fut.instrument(tracing::info_span!("replay-mqtt", connection = i)));
            }
        }
    }
    drop(queue);
    let duration = options.duration;
    let dispatcher = tokio::spawn(
        async move {
            for batch in plan {
                let due = start + batch.due;
                let over = |t: Instant| duration.is_some_and(|d| t >= start + d);
                if over(due) || over(Instant::now()) {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                if tx.send(batch).await.is_err() {
                    break;
                }
            }
        }
        .instrument(tracing::info_span!("replay-pacing")),
    );

    let progress = |draining: bool| {
        let t = shared.tracker.lock().expect("tracker lock");
        Progress {
            sent: shared.counters.sent.load(Relaxed),
            acked: shared.counters.acked.load(Relaxed),
            elapsed: start.elapsed(),
            p99_ms: (!t.histogram.is_empty())
                .then(|| t.histogram.value_at_quantile(0.99) as f64 / 1000.0),
            draining,
        }
    };
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            next = senders.join_next() => if next.is_none() { break },
            _ = tick.tick() => on_tick(&progress(dispatcher.is_finished())),
        }
    }
    let _ = dispatcher.await;
    let last_ack = *shared.counters.last_ack.lock().expect("last ack");
    let c = &shared.counters;
    let acknowledged = c.acked.load(Relaxed);
    let mut delivery = None;
    let (counted, counts_from): (Option<ServerCounts>, _) = match &options.target {
        Target::Http { .. } => (
            Some(ServerCounts {
                received: acknowledged,
                accepted: c.accepted.load(Relaxed),
                duplicates: c.duplicates.load(Relaxed),
                rejected: c.rejected.load(Relaxed),
            }),
            "the server's answers",
        ),
        Target::Mqtt(_) => {
            // The broker acknowledged; wait until the server has the events too, then learn a
            // time by which all of them are reflected.
            let after = match &before {
                Some(b) => {
                    let (base, t) = (&options.http, options.timeout);
                    counts::wait_for(&client, base, read_token, b, acknowledged, t).await
                }
                None => None,
            };
            match after {
                Some(a) if a.received >= acknowledged => {
                    let token = options.ingest_token.as_deref();
                    let probe =
                        super::http::reflected_time(&client, &options.http, token, options.timeout);
                    if let Some(t) = probe.await {
                        tracker.lock().expect("tracker lock").reflected_by(t);
                    }
                }
                Some(a) => {
                    delivery = Some(format!(
                        "the broker acknowledged {acknowledged} events but the server received {} within {:?}; is tidemark serve reading this broker and topic (mqtt.url, mqtt.topics)?",
                        a.received, options.timeout
                    ))
                }
                None => {
                    delivery = Some(format!(
                        "cannot read the server's counters at {}/metrics, so what became of the events is unknown",
                        options.http
                    ))
                }
            }
            (after, "the server's /metrics, before and after")
        }
    };
    // Wait for the progress marks of the last acknowledged batches.
    let give_up = Instant::now() + options.timeout;
    while tracker.lock().expect("tracker lock").pending_events() > 0 && Instant::now() < give_up {
        on_tick(&progress(true));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    on_tick(&progress(true));
    let webhook = match webhook {
        Some(w) => {
            // Firings come after their releasing events; wait until they stop coming.
            w.settle(WEBHOOK_QUIET, options.timeout).await;
            Some(w.finish())
        }
        None => None,
    };
    let watch_reconnects = watcher.reconnects.load(Relaxed);
    watcher.stop().await;
    let seconds = last_ack.map_or(0.0, |t| t.duration_since(start).as_secs_f64());
    let t = tracker.lock().expect("tracker lock");
    Ok(Report {
        target: options.target.describe(),
        sent: c.sent.load(Relaxed),
        acknowledged,
        accepted: counted.map(|c| c.accepted),
        duplicates: counted.map(|c| c.duplicates),
        rejected: counted.map(|c| c.rejected),
        counts_from,
        failures: c.failures(),
        pushed_back: c.pushed_back.load(Relaxed),
        seconds,
        achieved_rate: if seconds > 0.0 { acknowledged as f64 / seconds } else { 0.0 },
        latency: Latency::of(&t.histogram),
        unreflected: t.pending_events(),
        warmup_events: shared.warmup_events.load(Relaxed),
        latency_note: match &options.target {
            Target::Http { .. } => "send to the first progress mark at or past the answer's time",
            Target::Mqtt(_) => "send to the first progress mark at or past the wall-clock ms of the broker's PUBACK (an estimate: see the replay docs)",
        },
        watch_reconnects,
        delivery,
        webhook,
    })
}
