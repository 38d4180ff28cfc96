//! Line-level properties: determinism, object shape, spend, amounts, timestamps, duplicates, zones.

use std::collections::{BTreeMap, BTreeSet};

use jiff::tz::TimeZone;

use super::*;

#[test]
fn same_options_give_identical_bytes_and_seeds_differ() {
    let o = opts(300, 7, 1, "Asia/Shanghai", "2026-10-01");
    let a = run(&o);
    assert!(a.lines().count() > 1_000);
    assert_eq!(a, run(&o));
    let b = run(&GenOptions {
        seed: 2,
        ..o.clone()
    });
    assert_ne!(a, b);
    assert_ne!(
        a,
        run(&GenOptions {
            timezone: TimeZone::get("Europe/Berlin").unwrap(),
            links: true,
            ..o
        })
    );
}

#[test]
fn every_line_is_an_event_object() {
    for l in sample() {
        assert!(EVENTS.contains(&l.event.as_str()), "{}", l.raw);
        for (kind, value) in &l.ids {
            assert!(
                ["openid", "unionid", "uid", "phone", "user"].contains(&kind.as_str()),
                "{}",
                l.raw
            );
            assert!(
                !BLOCKED.iter().any(|b| b.eq_ignore_ascii_case(value)),
                "{}",
                l.raw
            );
        }
        assert_eq!(l.ids.is_empty(), l.event == "ad_spend", "{}", l.raw);
        if let Some(c) = &l.channel {
            assert!(PAID.contains(&c.as_str()) || c == "referral", "{}", l.raw);
        }
    }
}

#[test]
fn spend_events_have_paid_channel_amount_and_no_identity() {
    let o = sample_opts();
    let (start, _) = range(&o);
    let mut per_day: BTreeMap<(i64, &str), usize> = BTreeMap::new();
    for l in applied(sample())
        .into_iter()
        .filter(|l| l.event == "ad_spend")
    {
        let channel = l.channel.as_deref().unwrap_or_else(|| panic!("{}", l.raw));
        assert!(PAID.contains(&channel), "{}", l.raw);
        let amount: f64 = l
            .amount
            .as_deref()
            .unwrap()
            .trim_matches('"')
            .parse()
            .unwrap();
        assert!((100.0..20_000.0).contains(&amount), "{}", l.raw);
        *per_day
            .entry(((l.ts - start) / 86_400_000, channel))
            .or_default() += 1;
    }
    assert_eq!(per_day.len(), 21 * PAID.len());
    assert!(
        per_day.values().all(|&n| (1..=4).contains(&n)),
        "{per_day:?}"
    );
}

#[test]
fn amounts_have_at_most_two_fraction_digits() {
    let (mut numbers, mut strings) = (0, 0);
    for l in sample() {
        let Some(a) = &l.amount else { continue };
        let body = match a.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            Some(s) => {
                strings += 1;
                s
            }
            None => {
                numbers += 1;
                a.as_str()
            }
        };
        let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
        assert!(
            !whole.is_empty() && whole.bytes().all(|b| b.is_ascii_digit()),
            "{}",
            l.raw
        );
        assert!(
            frac.len() <= 2 && frac.bytes().all(|b| b.is_ascii_digit()),
            "{}",
            l.raw
        );
        assert!(body.parse::<f64>().unwrap() > 0.0, "{}", l.raw);
    }
    assert!(numbers > 1_000 && strings > 100, "{numbers} {strings}");
}

#[test]
fn some_timestamps_are_rfc3339_strings_in_the_zone_offset() {
    let lines = sample();
    let text: Vec<&String> = lines.iter().filter_map(|l| l.ts_text.as_ref()).collect();
    let share = text.len() as f64 / lines.len() as f64;
    assert!((0.15..0.25).contains(&share), "{share}");
    for s in text {
        assert!(s.len() == 29 && s.ends_with("+08:00"), "{s}");
        assert_eq!(&s[10..11], "T");
    }
}

#[test]
fn duplicates_repeat_ids_mostly_verbatim() {
    let lines = sample();
    let mut first: BTreeMap<&str, &str> = BTreeMap::new();
    let (mut exact, mut changed) = (0, 0);
    for l in lines {
        match first.get(l.id.as_str()) {
            Some(&raw) if raw == l.raw => exact += 1,
            Some(_) => changed += 1,
            None => {
                first.insert(&l.id, &l.raw);
            }
        }
    }
    let share = f64::from(exact + changed) / lines.len() as f64;
    assert!((0.001..0.006).contains(&share), "{share}");
    assert!(exact > changed && changed > 0, "{exact} {changed}");
}

#[test]
fn timestamps_stay_in_range_and_file_is_mostly_sorted() {
    let (start, end) = range(&sample_opts());
    assert!(sample().iter().all(|l| (start..end).contains(&l.ts)));
    // Late lines, not repeated ones: count first occurrences written after a later instant.
    let lines = applied(sample());
    let mut latest = i64::MIN;
    let mut behind = 0;
    for l in &lines {
        if l.ts < latest {
            behind += 1;
        }
        latest = latest.max(l.ts);
    }
    let share = f64::from(behind) / lines.len() as f64;
    assert!((0.002..0.01).contains(&share), "{share}");
}

#[test]
fn local_days_hold_across_daylight_saving_changes() {
    let o = opts(300, 5, 3, "America/New_York", "2026-03-06");
    let (start, end) = range(&o);
    assert_eq!(end - start, (5 * 24 - 1) * 3_600_000);
    let lines = parse(&run(&o));
    for l in &lines {
        assert!((start..end).contains(&l.ts), "{}", l.raw);
        if let Some(s) = &l.ts_text {
            let t: jiff::Timestamp = s.parse().unwrap();
            let off = o.timezone.to_offset(t).seconds();
            assert!(
                s.ends_with(if off == -5 * 3_600 {
                    "-05:00"
                } else {
                    "-04:00"
                }),
                "{s}"
            );
        }
    }
    let offsets: BTreeSet<&str> = lines
        .iter()
        .filter_map(|l| l.ts_text.as_deref())
        .map(|s| &s[23..])
        .collect();
    assert_eq!(offsets, BTreeSet::from(["-04:00", "-05:00"]));
}

#[test]
fn empty_periods_and_populations() {
    assert_eq!(run(&opts(100, 0, 1, "UTC", "2026-01-01")), "");
    let spend_only = parse(&run(&opts(0, 3, 1, "UTC", "2026-01-01")));
    assert!(!spend_only.is_empty() && spend_only.iter().all(|l| l.event == "ad_spend"));
}

#[test]
fn without_links_every_event_has_one_identity_and_the_rest_is_unchanged() {
    let o = opts(300, 7, 3, "Asia/Shanghai", "2026-10-01");
    let linked = run(&o);
    let unlinked = run(&GenOptions { links: false, ..o });
    assert_eq!(linked.lines().count(), unlinked.lines().count());
    let mut multi = 0;
    for (a, b) in linked.lines().zip(unlinked.lines()) {
        let (a, b): (serde_json::Value, serde_json::Value) = (
            serde_json::from_str(a).unwrap(),
            serde_json::from_str(b).unwrap(),
        );
        assert_eq!(
            (&a["id"], &a["ts"], &a["event"]),
            (&b["id"], &b["ts"], &b["event"])
        );
        let count = |v: &serde_json::Value| {
            v["ids"].as_object().map_or(0, |m| m.len()) + usize::from(v["user"].is_string())
        };
        // One identity where the linked event has any; none on spend.
        assert_eq!(count(&b), usize::from(count(&a) > 0), "{a} / {b}");
        multi += usize::from(count(&a) > 1);
    }
    assert!(multi > 0, "the linked log links identities");
}
