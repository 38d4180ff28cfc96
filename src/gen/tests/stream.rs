//! The day stream: the period exactly as `generate` writes it, then days without end in which
//! new persons keep arriving and earlier ones come back.

use std::collections::{BTreeMap, BTreeSet};

use super::{opts, parse, range, run};
use crate::gen::DayStream;

#[test]
fn the_stream_writes_the_period_as_generate_does_and_then_goes_on() {
    let o = opts(600, 10, 4, "Asia/Shanghai", "2026-03-20");
    let whole = run(&o);
    let mut stream = DayStream::new(&o).unwrap();
    let mut period = Vec::new();
    let mut ends = Vec::new();
    for _ in 0..o.days {
        let (text, end) = stream.next_day().unwrap();
        period.extend_from_slice(&text);
        ends.push(end);
    }
    let period = String::from_utf8(period).unwrap();
    // `generate` writes the lines still held late at the end of the period after them.
    assert!(
        whole.starts_with(&period) && period.len() > whole.len() * 9 / 10,
        "the period's lines are those of `generate`, in its order"
    );
    let (start, end) = range(&o);
    assert_eq!(
        ends.last(),
        Some(&end),
        "the period ends where `generate`'s does"
    );
    assert!(ends.windows(2).all(|w| w[0] < w[1]));

    // Twenty days more: every later day brings new persons and some earlier ones back.
    let day_of = |ts: i64| usize::try_from((ts - start) / 86_400_000).unwrap();
    let mut first: BTreeMap<String, usize> = BTreeMap::new();
    let mut active: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    let mut ids = BTreeSet::new();
    let mut lines = parse(&period);
    for _ in 0..20 {
        let (text, _) = stream.next_day().unwrap();
        lines.extend(parse(std::str::from_utf8(&text).unwrap()));
    }
    let mut repeats = 0;
    for l in &lines {
        // The generator repeats a few lines on purpose (same id, same event).
        repeats += usize::from(!ids.insert(l.id.clone()));
        let Some((_, who)) = l.ids.iter().find(|(k, _)| k == "openid") else {
            continue;
        };
        let d = day_of(l.ts);
        let f = first.entry(who.clone()).or_insert(d);
        *f = (*f).min(d);
        active.entry(d).or_default().insert(who.clone());
    }
    assert!(repeats * 100 < lines.len(), "{repeats} repeated ids");
    for d in 12..29 {
        let new = first.values().filter(|&&f| f == d).count();
        let back = active[&d].iter().filter(|w| first[*w] < d).count();
        assert!(new > 5, "day {d}: {new} new persons");
        assert!(back > 5, "day {d}: {back} persons back");
    }
}
