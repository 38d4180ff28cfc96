//! Fan-out of one batch's row changes (`output::Hub::publish`) to 1, 10 and 100 subscribers,
//! alone and with every subscriber then writing what it got as JSON text, as the server does.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use tidemark::metric::Labeler;
use tidemark::output::{Delta, Feed, Filter, Hub};
use tidemark::pipeline::{Finished, Pipeline, PipelineOptions};

use support::ThreadCpu;

/// Accepted events per batch, as a busy `serve` batches them.
const BATCH_EVENTS: usize = 5_000;
/// Messages each subscriber's queue holds (`serve.subscriber_queue`'s default).
const QUEUE: usize = 4_096;

/// The pipeline's final state and the deltas of its median batch (by number of deltas).
fn realistic_deltas() -> (Finished, Vec<Delta>) {
    let options = PipelineOptions {
        batch_events: BATCH_EVENTS,
        ..PipelineOptions::default()
    };
    let mut pipeline = Pipeline::with_plan(support::plan(), options).expect("the engine starts");
    pipeline.keep_deltas();
    for line in support::lines(true) {
        pipeline.offer(&line);
    }
    let mut finished = pipeline.finish().expect("the dataflow finishes");
    let mut by_time: BTreeMap<u64, Vec<Delta>> = BTreeMap::new();
    for d in std::mem::take(&mut finished.output.deltas) {
        by_time.entry(d.time).or_default().push(d);
    }
    let mut batches: Vec<Vec<Delta>> = by_time.into_values().collect();
    batches.sort_by_key(Vec::len);
    let median = batches.swap_remove(batches.len() / 2);
    (finished, median)
}

/// Subscriber `i`'s filter: even ones take every row (as the dashboard does), odd ones one metric.
fn filter(i: usize) -> Filter {
    let metrics = ["dau", "retention", "funnel", "revenue_by_channel", "ratio"];
    Filter {
        metrics: match i % 2 {
            0 => vec![],
            _ => vec![metrics[(i / 2) % metrics.len()].to_string()],
        },
        dims: vec![],
    }
}

fn hub(c: &mut Criterion<ThreadCpu>) {
    let (finished, deltas) = realistic_deltas();
    let labeler = Labeler {
        plan: &finished.plan,
        dict: &finished.dict,
    };
    let table = finished.output.table.current();
    let progress = finished.output.progress;
    let mut group = c.benchmark_group("hub");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(deltas.len() as u64));
    for subscribers in [1usize, 10, 100] {
        let mut hub = Hub::new(QUEUE);
        let mut queues: Vec<_> = (0..subscribers)
            .map(|i| hub.subscribe(filter(i), table.iter(), progress, &labeler))
            .collect();
        // Empties every queue; each must hold at least the progress mark and no `Closed`.
        let drain = |queues: &mut Vec<tokio::sync::mpsc::Receiver<Feed>>| {
            for (i, q) in queues.iter_mut().enumerate() {
                let mut progress = false;
                while let Ok(feed) = q.try_recv() {
                    assert!(!matches!(feed, Feed::Closed(_)), "subscriber {i} kept up");
                    progress |= matches!(feed, Feed::Progress(_));
                }
                assert!(progress, "subscriber {i} got the progress mark");
            }
        };
        drain(&mut queues);
        // Reads every upsert's text, as the subscribers' connections would.
        let write = |queues: &mut Vec<tokio::sync::mpsc::Receiver<Feed>>| {
            let mut bytes = 0;
            for q in queues.iter_mut() {
                while let Ok(feed) = q.try_recv() {
                    if let Feed::Upsert(u) = feed {
                        bytes += u.text().len();
                    }
                }
            }
            assert!(bytes > 0, "the subscribers got upserts");
        };
        // Publishing alone, then (timed too) the subscribers writing the upserts: the first to
        // send one writes its text, the others share it.
        for (name, after, timed) in [
            ("publish", &drain as &dyn Fn(&mut _), false),
            ("publish_and_write", &write, true),
        ] {
            group.bench_with_input(BenchmarkId::new(name, subscribers), &subscribers, |b, _| {
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        let start = support::thread_cpu();
                        hub.publish(&deltas, progress, || table.iter(), &labeler);
                        if timed {
                            after(&mut queues);
                        }
                        spent += support::thread_cpu() - start;
                        if !timed {
                            after(&mut queues);
                        }
                    }
                    spent
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = support::criterion();
    targets = hub
}
criterion_main!(benches);
