//! Edge costs per event: JSON validation alone (`parse_event`) and full ingest (`Ingest::offer`).

mod support;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode, Throughput};
use tidemark::event::{parse_event, Limits};
use tidemark::ingest::{Dictionary, Ingest};

use support::ThreadCpu;

fn parse(c: &mut Criterion<ThreadCpu>) {
    let lines = support::lines(true);
    let plan = support::plan();
    let limits = Limits::from_config(&plan.config);
    let mut group = c.benchmark_group("parse");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::ElementsAndBytes {
            elements: lines.len() as u64,
            bytes: support::bytes(&lines),
        });
    group.bench_function("parse_event", |b| {
        b.iter(|| {
            let mut ok = 0usize;
            for line in &lines {
                ok += usize::from(parse_event(std::hint::black_box(line), &limits).is_ok());
            }
            assert_eq!(ok, lines.len(), "every generated line is valid");
            ok
        })
    });
    group.bench_function("ingest_offer", |b| {
        b.iter_batched(
            || Ingest::new(plan.clone(), Dictionary::new()),
            |mut ingest| {
                for line in &lines {
                    ingest.offer(std::hint::black_box(line));
                }
                assert_eq!(ingest.counts().rejected_total(), 0);
                ingest
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = support::criterion();
    targets = parse
}
criterion_main!(benches);
