//! Webhook deliveries: `POST` JSON with `Idempotency-Key`, a bounded number in flight, retried
//! with exponential backoff and jitter until taken or out of attempts.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tokio::sync::{mpsc, Semaphore};
use tracing::Instrument;

use super::{Delivery, Done, Msg, Stats};
use crate::config;

/// Why one attempt failed, and whether another may succeed.
#[derive(Debug)]
struct Attempt {
    detail: String,
    retry: bool,
}

/// Starts the detached task that delivers to one webhook URL.
pub(super) fn start(
    url: String,
    cfg: &config::Delivery,
    client: reqwest::Client,
    mut rx: mpsc::Receiver<Delivery>,
    done: std::sync::mpsc::Sender<Msg>,
    stats: Arc<Stats>,
) {
    let slots = Arc::new(Semaphore::new(cfg.in_flight));
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_millis(cfg.backoff_max_ms as u64))
        .with_max_times(cfg.max_attempts.saturating_sub(1) as usize)
        .with_jitter();
    let timeout = Duration::from_millis(cfg.timeout_ms as u64);
    let span = tracing::info_span!("task", name = "webhook", url = %url);
    tokio::spawn(
        async move {
            while let Some(d) = rx.recv().await {
                stats.queued.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    break;
                };
                let (client, url, done, stats) =
                    (client.clone(), url.clone(), done.clone(), stats.clone());
                tokio::spawn(
                    async move {
                        let attempt = || post(&client, &url, &d, timeout);
                        let result = attempt
                            .retry(backoff)
                            .when(|e: &Attempt| e.retry)
                            .notify(|e: &Attempt, wait| {
                                stats.retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                tracing::debug!("webhook {url}: {} ({}); again in {wait:?}", e.detail, d.id);
                            })
                            .await;
                        drop(slot);
                        let ok = match result {
                            Ok(()) => true,
                            Err(e) => {
                                tracing::warn!(
                                    "webhook {url}: {} {} was not delivered: {}; it is kept as failed in the delivery log",
                                    d.kind, d.id, e.detail
                                );
                                false
                            }
                        };
                        let _ = done.send(Msg::Done(Done { delivery: d, target: url, ok }));
                    }
                    .instrument(tracing::info_span!("task", name = "webhook-delivery")),
                );
            }
        }
        .instrument(span),
    );
}

/// One attempt: 2xx is success; 408, 425, 429, 5xx and transport errors may succeed later.
async fn post(
    client: &reqwest::Client,
    url: &str,
    d: &Delivery,
    timeout: Duration,
) -> Result<(), Attempt> {
    let response = client
        .post(url)
        .timeout(timeout)
        .header("Content-Type", "application/json")
        .header("Idempotency-Key", &d.id)
        .body(d.body.to_string())
        .send()
        .await
        .map_err(|e| Attempt {
            detail: format!("request failed: {e}"),
            retry: true,
        })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry = status.is_server_error() || matches!(status.as_u16(), 408 | 425 | 429);
    Err(Attempt {
        detail: format!("answered {status}"),
        retry,
    })
}
