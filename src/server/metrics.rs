//! The Prometheus text of `/metrics`: the engine's status, the data directory and the
//! actions' counters.

use std::collections::BTreeMap;

use crate::live::Status;

/// Appends one metric in the Prometheus text format: its help, its type and its samples
/// (`labels` as written between the name and the value, `""` for none).
fn write_metric(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: &[(String, String)],
) {
    use std::fmt::Write;
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

/// Appends a metric with one unlabelled sample.
fn write_one(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    write_metric(out, name, kind, help, &[(String::new(), value.to_string())]);
}

/// Prometheus text exposition of a status.
pub(crate) fn prometheus(status: &Status, memory_bytes: Option<u64>) -> String {
    let c = &status.counts;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
        write_metric(&mut out, name, kind, help, samples)
    };
    let one = |v: u64| vec![(String::new(), v.to_string())];
    let total = c.accepted + c.duplicates + c.rejected_total();
    metric(
        "tidemark_events_in_total",
        "counter",
        "Events received.",
        &one(total),
    );
    metric(
        "tidemark_events_accepted_total",
        "counter",
        "Events accepted.",
        &one(c.accepted),
    );
    metric(
        "tidemark_events_duplicate_total",
        "counter",
        "Events dropped as duplicates of an earlier id.",
        &one(c.duplicates),
    );
    let reasons: BTreeMap<&str, u64> = crate::event::Reason::ALL
        .iter()
        .map(|r| (r.as_str(), c.rejected.get(r.as_str()).copied().unwrap_or(0)))
        .collect();
    let by_reason: Vec<(String, String)> = reasons
        .iter()
        .map(|(r, n)| (format!("{{reason=\"{r}\"}}"), n.to_string()))
        .collect();
    metric(
        "tidemark_events_rejected_total",
        "counter",
        "Events rejected, by reason.",
        &by_reason,
    );
    metric(
        "tidemark_ingest_lag_milliseconds",
        "gauge",
        "Age of the oldest accepted event not yet reflected in the rows, or of the oldest ingest request not yet taken.",
        &one(status.lag_ms),
    );
    metric(
        "tidemark_ingest_pushed_back_total",
        "counter",
        "Ingest requests answered 429 because the lag was over serve.max_lag.",
        &one(status.pushed_back),
    );
    if let Some(waiting) = status.relayed_waiting {
        metric(
            "tidemark_cluster_relayed_waiting",
            "gauge",
            "Ingest requests this process relayed to process 0 of its cluster and has no answer to yet.",
            &one(waiting as u64),
        );
    }
    metric(
        "tidemark_mqtt_held_back_milliseconds_total",
        "counter",
        "Time MQTT ingest took no messages because the lag was over serve.max_lag (the broker kept them).",
        &one(status.held_back_ms),
    );
    let h = &status.rounds;
    let mut quantiles: Vec<(String, String)> = [0.5, 0.9, 0.99, 0.999, 1.0]
        .iter()
        .map(|q| {
            (
                format!("{{quantile=\"{q}\"}}"),
                format!("{}", h.value_at_quantile(*q) as f64 / 1e6),
            )
        })
        .collect();
    // A summary's `_sum` and `_count` samples carry the suffix where labels would go.
    let sum = h.mean() * h.len() as f64 / 1e6;
    quantiles.push(("_sum".into(), format!("{sum}")));
    quantiles.push(("_count".into(), h.len().to_string()));
    metric(
        "tidemark_dataflow_round_seconds",
        "summary",
        "Time from the oldest event of a batch being accepted to the batch's rows being complete.",
        &quantiles,
    );
    metric(
        "tidemark_batches_total",
        "counter",
        "Batches sent to the dataflow.",
        &one(status.batches),
    );
    metric(
        "tidemark_progress",
        "gauge",
        "Time up to which every change has been published.",
        &one(status.progress),
    );
    metric(
        "tidemark_rows",
        "gauge",
        "Metric rows currently held.",
        &one(status.rows as u64),
    );
    metric(
        "tidemark_subscribers",
        "gauge",
        "Connected subscribers.",
        &one(status.hub.subscribers as u64),
    );
    let drops = vec![
        (
            "{action=\"resync\"}".to_string(),
            status.hub.resyncs.to_string(),
        ),
        (
            "{action=\"disconnect\"}".to_string(),
            status.hub.disconnected_slow.to_string(),
        ),
    ];
    metric(
        "tidemark_subscriber_queue_overflows_total",
        "counter",
        "Subscribers whose queue overflowed, by what was done.",
        &drops,
    );
    if !status.alerts.is_empty() {
        let states: Vec<(String, String)> = status
            .alerts
            .iter()
            .map(|(a, v)| (format!("{{alert=\"{a}\"}}"), v.to_string()))
            .collect();
        metric(
            "tidemark_alert_state",
            "gauge",
            "Each alert's state: 1 firing, 0 ok, -1 no data yet (no bucket judged).",
            &states,
        );
    }
    metric(
        "tidemark_dead_letter_dropped_total",
        "counter",
        "Rejected inputs not kept in serve.dead_letter because its writer was behind or had failed.",
        &one(status.dead_letter_dropped),
    );
    if let Some(bytes) = memory_bytes {
        metric(
            "tidemark_resident_memory_bytes",
            "gauge",
            "Resident memory of the process.",
            &one(bytes),
        );
    }
    if let Some(d) = &status.durable {
        durable_metrics(&mut out, d);
    }
    out
}

/// Prometheus text of the data directory: log size, fsync latency, checkpoints, recovery.
fn durable_metrics(out: &mut String, d: &crate::durable::DurableStatus) {
    use std::fmt::Write;
    let mut one =
        |name: &str, kind: &str, help: &str, value: String| write_one(out, name, kind, help, value);
    one(
        "tidemark_wal_bytes",
        "gauge",
        "Bytes of the write-ahead log on disk (records after the last checkpoint, and the segment being written).",
        d.wal_bytes.to_string(),
    );
    one(
        "tidemark_wal_segments",
        "gauge",
        "Segment files of the write-ahead log.",
        d.wal_segments.to_string(),
    );
    one(
        "tidemark_wal_sync_failures_total",
        "counter",
        "Syncs of the write-ahead log that failed (ingest is refused while they do).",
        d.sync_failures.to_string(),
    );
    one(
        "tidemark_wal_failing",
        "gauge",
        "1 while the write-ahead log cannot be written and ingest is refused.",
        (d.failing as u8).to_string(),
    );
    one(
        "tidemark_checkpoints_total",
        "counter",
        "Checkpoints written since start.",
        d.checkpoints.to_string(),
    );
    one(
        "tidemark_checkpoint_bytes",
        "gauge",
        "Size of the last checkpoint.",
        d.checkpoint_bytes.to_string(),
    );
    if let Some(at) = d.checkpoint_at_ms {
        let age = crate::pipeline::now_ms().saturating_sub(at) as f64 / 1e3;
        one(
            "tidemark_checkpoint_age_seconds",
            "gauge",
            "Time since the last checkpoint was written.",
            format!("{age}"),
        );
    }
    one(
        "tidemark_recovery_seconds",
        "gauge",
        "Time the data directory took to read back at start.",
        format!("{}", d.recovery.as_secs_f64()),
    );
    one(
        "tidemark_recovered_events",
        "gauge",
        "Events read back from the write-ahead log at start (after the checkpoint's).",
        d.recovered_events.to_string(),
    );
    let name = "tidemark_wal_fsync_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time spent in fsync per sync of the write-ahead log.\n# TYPE {name} histogram"
    );
    let h = &d.fsync_us;
    for le_us in [
        100u64, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
    ] {
        let n = h.count_between(0, le_us);
        let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {n}", le_us as f64 / 1e6);
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.len());
    let sum = h.mean() * h.len() as f64 / 1e6;
    let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {}", h.len());
}

/// Prometheus text of the actions' counters.
pub(crate) fn action_metrics(stats: &crate::io::actions::Stats) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let mut out = String::new();
    let mut counter =
        |name: &str, help: &str, v: u64| write_one(&mut out, name, "counter", help, v);
    counter(
        "tidemark_actions_sent_total",
        "Firings, retractions and alert transitions handed to their targets.",
        stats.sent.load(Relaxed),
    );
    counter(
        "tidemark_action_deliveries_total",
        "Deliveries a target took.",
        stats.delivered.load(Relaxed),
    );
    counter(
        "tidemark_action_failures_total",
        "Deliveries kept as failed: out of attempts, or the target's queue was full.",
        stats.failed.load(Relaxed),
    );
    counter(
        "tidemark_action_queue_full_total",
        "Deliveries refused because the target's queue was full (also counted as failures).",
        stats.queue_full.load(Relaxed),
    );
    counter(
        "tidemark_action_retries_total",
        "Webhook attempts that failed and were tried again.",
        stats.retries.load(Relaxed),
    );
    write_one(
        &mut out,
        "tidemark_action_queued",
        "gauge",
        "Deliveries waiting in targets' queues.",
        stats.queued.load(Relaxed).max(0),
    );
    out
}

/// Resident memory of this process in bytes, where the system reports it.
pub(crate) fn resident_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
