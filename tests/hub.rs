//! The subscriber hub: snapshot then upserts and progress, filters, and slow subscribers cut loose.

use std::sync::Arc;

use tidemark::config::{Config, SlowSubscriber};
use tidemark::ingest::Dictionary;
use tidemark::metric::{Dims, Key, Labeler, Metric, Value};
use tidemark::output::{Feed, Filter, Hub, Upsert, Versioned, SLOW_SUBSCRIBER};
use tidemark::plan::Plan;
use tidemark::time::parse_day;

fn day(s: &str) -> i32 {
    parse_day(s).unwrap()
}

fn drain(rx: &mut tokio::sync::mpsc::Receiver<Feed>) -> Vec<Feed> {
    let mut out = Vec::new();
    while let Ok(m) = rx.try_recv() {
        out.push(m);
    }
    out
}

fn upsert(f: &Feed) -> &Upsert {
    match f {
        Feed::Upsert(u) => u,
        other => panic!("expected an upsert, got {other:?}"),
    }
}

#[test]
fn a_subscriber_gets_matching_rows_then_changes_then_progress() {
    let plan = Plan::new(Config::default());
    let dict = Dictionary::new();
    let labeler = Labeler {
        plan: &plan,
        dict: &dict,
    };
    let dau1: Key = (Metric::Dau, Dims::Day(day("2026-10-01")));
    let dau2: Key = (Metric::Dau, Dims::Day(day("2026-10-02")));
    let hau: Key = (Metric::Hau, Dims::Hour(day("2026-10-01") * 24 + 9));
    let mut table: Versioned<Key, Value> = Versioned::default();
    table.absorb(vec![
        ((dau1, Value::Count(2)), 1, 1),
        ((hau, Value::Count(2)), 1, 1),
        ((dau2, Value::Count(1)), 1, 1),
    ]);
    table.complete(1);

    let mut hub = Hub::new(16);
    let only_dau = Filter {
        metrics: vec!["dau".into()],
        dims: vec![],
    };
    let mut rx = hub.subscribe(only_dau, table.current().iter(), 1, &labeler);
    let first = drain(&mut rx);
    assert_eq!(first.len(), 3, "{first:?}");
    assert_eq!(first[2], Feed::Progress(1));
    let mut days: Vec<String> = first[..2]
        .iter()
        .map(|f| upsert(f).dims["day"].as_str().unwrap().to_string())
        .collect();
    days.sort();
    assert_eq!(days, ["2026-10-01", "2026-10-02"]);
    assert!(first[..2].iter().all(|f| upsert(f).prev.is_none()));

    let one_day = Filter {
        metrics: vec![],
        dims: vec![("day".into(), "2026-10-02".into())],
    };
    let mut rx_day = hub.subscribe(one_day, table.current().iter(), 1, &labeler);
    assert_eq!(drain(&mut rx_day).len(), 2);

    // A merge: DAU of day 1 goes 2 -> 1, hourly actives too, and day 2's row disappears.
    table.absorb(vec![
        ((dau1, Value::Count(2)), 2, -1),
        ((dau1, Value::Count(1)), 2, 1),
        ((hau, Value::Count(2)), 2, -1),
        ((hau, Value::Count(1)), 2, 1),
        ((dau2, Value::Count(1)), 2, -1),
    ]);
    let deltas = table.complete(2);
    hub.publish(&deltas, 2, || table.current().iter(), &labeler);
    let next = drain(&mut rx);
    assert_eq!(next.len(), 3, "{next:?}");
    let changed: Vec<&Upsert> = next[..2].iter().map(upsert).collect();
    let d1 = changed
        .iter()
        .find(|u| u.dims["day"] == "2026-10-01")
        .unwrap();
    assert_eq!(
        (d1.metric, &d1.prev, &d1.value, d1.time),
        (Metric::Dau, &Some(2.into()), &Some(1.into()), 2)
    );
    assert_eq!(
        &**d1.text(),
        r#"{"metric":"dau","dims":{"day":"2026-10-01"},"value":1,"prev":2,"time":2}"#
    );
    let d2 = changed
        .iter()
        .find(|u| u.dims["day"] == "2026-10-02")
        .unwrap();
    assert_eq!((&d2.value, &d2.prev), (&None, &Some(1.into())));
    assert_eq!(
        &**d2.text(),
        r#"{"metric":"dau","dims":{"day":"2026-10-02"},"value":null,"prev":1,"time":2}"#
    );
    assert_eq!(next[2], Feed::Progress(2));
    let by_day = drain(&mut rx_day);
    assert_eq!(
        by_day.len(),
        2,
        "only day 2's removal and the progress mark: {by_day:?}"
    );
    assert_eq!(hub.stats().subscribers, 2);
}

#[test]
fn a_slow_subscriber_is_disconnected_with_a_reason_and_others_go_on() {
    let plan = Arc::new(Plan::new(Config::default()));
    let dict = Dictionary::new();
    let labeler = Labeler {
        plan: &plan,
        dict: &dict,
    };
    let mut hub = Hub::new(4);
    let mut slow = hub.subscribe(Filter::default(), std::iter::empty(), 0, &labeler);
    let mut fast = hub.subscribe(Filter::default(), std::iter::empty(), 0, &labeler);
    let mut table: Versioned<Key, Value> = Versioned::default();
    for t in 1..=10u64 {
        let day = i32::try_from(t).unwrap();
        table.absorb(vec![(
            ((Metric::Dau, Dims::Day(day)), Value::Count(t as i64)),
            t,
            1,
        )]);
        let deltas = table.complete(t);
        hub.publish(&deltas, t, || table.current().iter(), &labeler);
        let got = drain(&mut fast);
        assert_eq!(got.last(), Some(&Feed::Progress(t)));
    }
    let got = drain(&mut slow);
    assert_eq!(got.last(), Some(&Feed::Closed(SLOW_SUBSCRIBER)), "{got:?}");
    assert_eq!(hub.stats().subscribers, 1);
    assert_eq!(hub.stats().disconnected_slow, 1);
}

#[test]
fn a_slow_subscriber_under_resync_gets_a_fresh_snapshot_once_it_has_drained() {
    let plan = Arc::new(Plan::new(Config::default()));
    let dict = Dictionary::new();
    let labeler = Labeler {
        plan: &plan,
        dict: &dict,
    };
    let mut hub = Hub::with_policy(4, SlowSubscriber::Resync);
    let mut slow = hub.subscribe(Filter::default(), std::iter::empty(), 0, &labeler);
    let mut table: Versioned<Key, Value> = Versioned::default();
    let mut step = |hub: &mut Hub, t: u64| {
        let day = i32::try_from(t).unwrap();
        table.absorb(vec![(
            ((Metric::Dau, Dims::Day(day)), Value::Count(t as i64)),
            t,
            1,
        )]);
        let deltas = table.complete(t);
        hub.publish(&deltas, t, || table.current().iter(), &labeler);
        table.current().len()
    };
    for t in 1..=6 {
        step(&mut hub, t);
    }
    assert_eq!(hub.stats().resyncs, 1, "the overflow is counted once");
    assert_eq!(
        hub.stats().subscribers,
        1,
        "a lagging subscriber stays connected"
    );
    let missed = drain(&mut slow);
    assert!(
        !missed.iter().any(|f| matches!(f, Feed::Resync(_))),
        "no resync before the queue drains: {missed:?}"
    );
    let rows = step(&mut hub, 7);
    let got = drain(&mut slow);
    let Some(Feed::Resync(snapshot)) = got.first() else {
        panic!("expected a resync first, got {got:?}");
    };
    assert_eq!(snapshot.len(), rows, "the resync holds every current row");
    assert_eq!(got.get(1), Some(&Feed::Progress(7)));
    step(&mut hub, 8);
    let live = drain(&mut slow);
    assert!(matches!(live.first(), Some(Feed::Upsert(_))), "{live:?}");
    assert_eq!(live.last(), Some(&Feed::Progress(8)));
}
