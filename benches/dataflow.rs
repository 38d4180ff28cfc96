//! One metric family at a time: its dataflow built alone on a timely worker, one fact batch fed
//! in and run to completion. `base` builds identity resolution and the person-level
//! collections that every family reads, with no family's rows; `all` is `tidemark compute`'s dataflow.

mod support;

use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode, Throughput};
use tidemark::dataflow::{build_families, Family, Time};
use tidemark::facts::FactBatch;
use tidemark::ingest::Dictionary;
use tidemark::plan::Plan;

use support::ThreadCpu;

/// Runs the dataflow of `families` over `batch` on an in-process worker; returns the number of
/// rows it produced (net of retractions).
fn run(plan: &Arc<Plan>, dict: &Arc<Dictionary>, families: &[Family], batch: FactBatch) -> isize {
    let rows = Arc::new(AtomicIsize::new(0));
    let (plan, dict, families, counted) =
        (plan.clone(), dict.clone(), families.to_vec(), rows.clone());
    timely::execute_directly(move |worker| {
        let mut inputs = worker.dataflow::<Time, _, _>(|scope| {
            let (inputs, outputs) = build_families(scope, plan, dict, &families);
            outputs.rows.inspect_batch(move |_t, data| {
                let net: isize = data.iter().map(|(_, _, diff)| diff).sum();
                counted.fetch_add(net, Ordering::Relaxed);
            });
            inputs
        });
        inputs.feed(batch);
        inputs.advance_to(1);
    });
    rows.load(Ordering::Relaxed)
}

fn dataflow(c: &mut Criterion<ThreadCpu>) {
    // The campaign family needs rules: the golden set's five.
    let plan = support::plan_with_rules();
    let (batch, accepted, dict) = support::batch_with_names(&plan, &support::lines(true));
    let all = run(&plan, &dict, &Family::ALL, batch.clone());
    let mut cases: Vec<(&str, Vec<Family>)> = vec![("base", vec![])];
    let mut sum = 0;
    for f in Family::ALL {
        let rows = run(&plan, &dict, &[f], batch.clone());
        assert!(rows > 0, "{} makes rows", f.name());
        sum += rows;
        cases.push((f.name(), vec![f]));
    }
    assert_eq!(
        sum, all,
        "the families' rows add up to the whole dataflow's"
    );
    cases.push(("all", Family::ALL.to_vec()));

    let mut group = c.benchmark_group("dataflow");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(accepted));
    for (name, families) in &cases {
        group.bench_function(*name, |b| {
            b.iter_batched(
                || batch.clone(),
                |batch| run(&plan, &dict, families, batch),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = support::criterion();
    targets = dataflow
}
criterion_main!(benches);
