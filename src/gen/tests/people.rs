//! Person-level properties: identity links, orders and payments, first-event channels, sessions.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

#[test]
fn identities_link_about_a_fifth_of_persons() {
    let lines = applied(sample());
    let (_, persons, linked) = persons(&lines);
    assert_eq!(
        persons, SAMPLE_PERSONS,
        "every simulated person is exactly one component"
    );
    let share = linked as f64 / persons as f64;
    assert!((0.15..0.35).contains(&share), "{share}");
    let registers: Vec<&&Line> = lines.iter().filter(|l| l.event == "register").collect();
    assert!(registers.len() > SAMPLE_PERSONS / 10);
    for r in registers {
        let kinds: Vec<&str> = r.ids.iter().map(|(k, _)| k.as_str()).collect();
        assert!(
            kinds.contains(&"openid") && (kinds.contains(&"uid") || kinds.contains(&"user")),
            "{}",
            r.raw
        );
        for (_, phone) in r.ids.iter().filter(|(k, _)| k == "phone") {
            assert!(
                phone.len() == 11
                    && phone.starts_with('1')
                    && phone.bytes().all(|b| b.is_ascii_digit()),
                "{phone}"
            );
        }
    }
    assert!(lines
        .iter()
        .any(|l| l.ids.len() == 1 && l.ids[0].0 == "user"));
    assert!(lines
        .iter()
        .any(|l| l.ids.len() == 1 && l.ids[0].0 == "uid"));
}

#[test]
fn orders_are_mostly_paid_with_the_same_amount() {
    // Whole cents of a two-decimal amount.
    #[allow(clippy::cast_possible_truncation)]
    let cents = |a: &str| (a.trim_matches('"').parse::<f64>().unwrap() * 100.0).round() as i64;
    let lines = applied(sample());
    let mut created = BTreeMap::new();
    for l in lines.iter().filter(|l| l.event == "order_created") {
        assert!(created
            .insert(
                l.order.clone().unwrap(),
                (cents(l.amount.as_deref().unwrap()), l.ts)
            )
            .is_none());
    }
    let mut paid = 0;
    for l in lines.iter().filter(|l| l.event == "order_paid") {
        let (amount, ts) = created[l.order.as_deref().unwrap()];
        assert_eq!(amount, cents(l.amount.as_deref().unwrap()), "{}", l.raw);
        assert!(l.ts > ts);
        paid += 1;
    }
    let share = f64::from(paid) / created.len() as f64;
    assert!(
        created.len() > 500 && (0.6..0.8).contains(&share),
        "{} {share}",
        created.len()
    );
}

#[test]
fn channel_marks_first_events_and_sessions_look_real() {
    let lines = applied(sample());
    let (person, _, _) = persons(&lines);
    let mut first: BTreeMap<usize, &Line> = BTreeMap::new();
    let mut days = BTreeSet::new();
    let mut hours = [0u32; 24];
    for (l, p) in lines.iter().zip(&person) {
        let Some(p) = *p else { continue };
        if first.get(&p).is_none_or(|f| (l.ts, &l.id) < (f.ts, &f.id)) {
            first.insert(p, l);
        }
        let local_secs = l.ts / 1_000 + 8 * 3_600;
        days.insert((p, local_secs / 86_400));
        hours[(local_secs / 3_600 % 24) as usize] += 1;
    }
    let with_channel =
        first.values().filter(|l| l.channel.is_some()).count() as f64 / first.len() as f64;
    assert!((0.75..0.92).contains(&with_channel), "{with_channel}");
    let later = lines
        .iter()
        .zip(&person)
        .filter(|(l, p)| l.channel.is_some() && p.is_some_and(|p| !std::ptr::eq(**l, first[&p])))
        .count();
    assert!(later > 0, "later visits sometimes come through an ad again");
    assert!((later as f64) < 0.01 * lines.len() as f64, "{later}");
    // Short visits by default: about 4 events per active person-day.
    let per_day = person.iter().flatten().count() as f64 / days.len() as f64;
    assert!((3.5..5.5).contains(&per_day), "{per_day}");
    assert!(
        days.len() as f64 / first.len() as f64 > 1.2,
        "people come back"
    );
    assert!(hours[20] > 5 * hours[3], "{hours:?}");
}

#[test]
fn without_growth_and_with_a_lifetime_the_stream_is_steady() {
    let o = GenOptions {
        links: false,
        growth: 0,
        lifetime: Some(20),
        ..opts(3_000, 80, 5, "UTC", "2026-03-02")
    };
    let (start, _) = range(&o);
    let day = |ts: i64| usize::try_from((ts - start) / 86_400_000).unwrap();
    let mut span: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for l in parse(&run(&o)) {
        let Some((_, id)) = l.ids.first() else {
            continue;
        };
        let d = day(l.ts);
        let e = span.entry(id.clone()).or_insert((d, d));
        e.0 = e.0.min(d);
        e.1 = e.1.max(d);
    }
    // Nobody comes back after the lifetime (a session may run past midnight into one more day).
    let longest = span.values().map(|(a, b)| b - a).max().unwrap();
    assert!(
        longest <= 21,
        "a person came back {longest} days after arriving"
    );
    // As many arrivals in the last 20 days as in the first 20.
    let arrivals = |days: std::ops::Range<usize>| {
        span.values().filter(|(a, _)| days.contains(a)).count() as f64
    };
    let ratio = arrivals(60..80) / arrivals(0..20);
    assert!((0.85..1.15).contains(&ratio), "arrivals grew {ratio:.2}x");
}

#[test]
fn with_arrival_days_a_fixed_population_keeps_coming_back() {
    let o = GenOptions {
        links: false,
        growth: 0,
        arrival_days: Some(10),
        ..opts(3_000, 60, 5, "UTC", "2026-03-02")
    };
    let (start, _) = range(&o);
    let day = |ts: i64| usize::try_from((ts - start) / 86_400_000).unwrap();
    let mut first: BTreeMap<String, usize> = BTreeMap::new();
    let mut active_late = std::collections::BTreeSet::new();
    for l in parse(&run(&o)) {
        let Some((_, id)) = l.ids.first() else {
            continue;
        };
        let d = day(l.ts);
        let f = first.entry(id.clone()).or_insert(d);
        *f = (*f).min(d);
        if d >= 40 {
            active_late.insert(id.clone());
        }
    }
    // Every person arrives in the first 10 days (a session may run past midnight).
    let latest = first.values().max().copied().unwrap();
    assert!(latest <= 10, "a person arrived on day {latest}");
    assert!(first.len() > 2_500, "{} persons", first.len());
    // Weeks later, some of them still come back.
    assert!(
        active_late.len() > 20,
        "{} persons after day 40",
        active_late.len()
    );
}

#[test]
fn the_default_shape_reads_like_a_product_people_use() {
    let o = GenOptions {
        links: false,
        ..opts(4_000, 45, 9, "UTC", "2026-03-02")
    };
    let (start, _) = range(&o);
    let day = |ts: i64| usize::try_from((ts - start) / 86_400_000).unwrap();
    let mut active: BTreeMap<usize, std::collections::BTreeSet<String>> = BTreeMap::new();
    let mut first: BTreeMap<String, usize> = BTreeMap::new();
    for l in parse(&run(&o)) {
        let Some((_, id)) = l.ids.first() else {
            continue;
        };
        let d = day(l.ts).min(44);
        active.entry(d).or_default().insert(id.clone());
        let f = first.entry(id.clone()).or_insert(d);
        *f = (*f).min(d);
    }
    // DAU/MAU on the last day, as METRICS.md counts them (30 days ending that day).
    let dau = active[&44].len() as f64;
    let mau = (15..=44)
        .flat_map(|d| active[&d].iter())
        .collect::<std::collections::BTreeSet<_>>()
        .len() as f64;
    assert!(
        (0.14..0.28).contains(&(dau / mau)),
        "DAU/MAU {:.3}",
        dau / mau
    );
    // About 30% come back the day after they arrive.
    let arrived: Vec<(&String, &usize)> = first.iter().filter(|(_, &f)| f < 40).collect();
    let back = arrived
        .iter()
        .filter(|(id, &f)| active[&(f + 1)].contains(*id))
        .count() as f64;
    let d1 = back / arrived.len() as f64;
    assert!((0.22..0.38).contains(&d1), "day-1 return {d1:.3}");
}

#[test]
fn long_sessions_and_the_sparse_shape_give_long_visits() {
    let events_per_person_day = |o: &GenOptions| {
        let (start, _) = range(o);
        let lines = parse(&run(o));
        let mut days = std::collections::BTreeSet::new();
        let mut n = 0;
        for l in &lines {
            if let Some((_, id)) = l.ids.first() {
                days.insert((id.clone(), (l.ts - start) / 86_400_000));
                n += 1;
            }
        }
        n as f64 / days.len() as f64
    };
    let short = opts(1_500, 20, 3, "UTC", "2026-03-02");
    let long = GenOptions {
        sessions: crate::gen::Sessions::LONG,
        ..short.clone()
    };
    let sparse = GenOptions {
        shape: crate::gen::Shape::SPARSE,
        ..long.clone()
    };
    let (s, l, p) = (
        events_per_person_day(&short),
        events_per_person_day(&long),
        events_per_person_day(&sparse),
    );
    assert!((3.0..6.0).contains(&s), "short {s}");
    assert!((12.0..25.0).contains(&l), "long {l}");
    assert!((12.0..25.0).contains(&p), "sparse {p}");
    // The sparse shape: fewer come back, so fewer events for as many persons.
    let (sparse, long) = (run(&sparse).lines().count(), run(&long).lines().count());
    assert!(sparse * 4 < long * 3, "sparse {sparse}, long {long}");
}
