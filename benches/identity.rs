//! Identity resolution alone (`dataflow::identity::resolve`: label propagation plus the merge
//! guard) over the identities and links of a log with linked identities and of one without.

mod support;

use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode, Throughput};
use differential_dataflow::input::Input;
use tidemark::dataflow::{identity, Time};
use tidemark::facts::Ident;

use support::ThreadCpu;

/// Labels `idents` linked by `edges` on an in-process worker; returns the number of labels
/// (net of the retractions label propagation makes on its way).
fn resolve(idents: Vec<Ident>, edges: Vec<(Ident, Ident)>, max_links: u32) -> isize {
    let labels = Arc::new(AtomicIsize::new(0));
    let counted = labels.clone();
    timely::execute_directly(move |worker| {
        let (mut idents_in, mut edges_in) = worker.dataflow::<Time, _, _>(|scope| {
            let (idents_in, idents) = scope.new_collection();
            let (edges_in, edges) = scope.new_collection();
            let (persons, _guarded) = identity::resolve(idents, edges, max_links);
            persons.inspect_batch(move |_t, data| {
                let net: isize = data.iter().map(|(_, _, diff)| diff).sum();
                counted.fetch_add(net, Ordering::Relaxed);
            });
            (idents_in, edges_in)
        });
        for i in idents {
            idents_in.insert(i);
        }
        for e in edges {
            edges_in.insert(e);
        }
    });
    labels.load(Ordering::Relaxed)
}

fn identity(c: &mut Criterion<ThreadCpu>) {
    let plan = support::plan();
    let max_links = plan.config.max_persons_per_value;
    let mut group = c.benchmark_group("identity");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (name, links) in [("linked", true), ("unlinked", false)] {
        let (batch, _) = support::batch(&plan, &support::lines(links));
        let (idents, edges) = (batch.idents, batch.edges);
        assert_eq!(links, !edges.is_empty(), "{name} log has links: {links}");
        let labels = resolve(idents.clone(), edges.clone(), max_links);
        assert_eq!(
            labels as usize,
            idents.len(),
            "every identity gets one person"
        );
        group.throughput(Throughput::Elements(idents.len() as u64));
        group.bench_function(name, |b| {
            b.iter_batched(
                || (idents.clone(), edges.clone()),
                |(i, e)| resolve(i, e, max_links),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = support::criterion();
    targets = identity
}
criterion_main!(benches);
