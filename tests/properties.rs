//! Properties: batching, order and worker count never change a row; persons match a union-find reference.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::common;
use proptest::prelude::*;
use tidemark::config::Config;

/// Small deterministic generator of random logs over a small identity universe.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[usize::try_from(self.below(xs.len() as u64)).unwrap()]
    }
}

const NAMES: &[&str] = &[
    "page_view",
    "product_view",
    "add_to_cart",
    "order_created",
    "order_paid",
    "register",
    "share",
    "ad_spend",
];
const CHANNELS: &[&str] = &["search_ads", "kol", "wechat"];
const BASE_TS: i64 = 1_790_000_000_000;

fn identity(rng: &mut Rng, kinds: &[(&str, u64)]) -> (String, String) {
    let (kind, n) = kinds[usize::try_from(rng.below(kinds.len() as u64)).unwrap()];
    (kind.to_string(), format!("{}{}", &kind[..1], rng.below(n)))
}

/// A random log; duplicates are exact copies so that order cannot change which copy wins.
pub(crate) fn random_log(seed: u64, events: usize, link_pct: u64) -> Vec<String> {
    let mut rng = Rng(seed);
    let kinds = [("openid", 14), ("uid", 8), ("phone", 4)];
    let mut lines: Vec<String> = Vec::new();
    for i in 0..events {
        let r = rng.below(100);
        if r < 4 && !lines.is_empty() {
            let j = usize::try_from(rng.below(lines.len() as u64)).unwrap();
            lines.push(lines[j].clone());
            continue;
        }
        if r < 6 {
            lines.push(format!("{{\"id\":\"bad{i}\",\"ts\":"));
            continue;
        }
        let name = rng.pick(NAMES);
        // Coarse timestamps make ties in (ts, id) order common.
        let ts = BASE_TS
            + (rng.below(40 * 24 * 4) as i64) * 900_000
            + if rng.below(3) == 0 {
                0
            } else {
                rng.below(900) as i64 * 1000
            };
        let mut obj = serde_json::json!({"id": format!("e{i}"), "ts": ts, "event": name});
        if name == "ad_spend" {
            obj["channel"] = rng.pick(CHANNELS).into();
            obj["props"] =
                serde_json::json!({"amount": format!("{}.{:02}", rng.below(500), rng.below(100))});
        } else {
            let mut ids = serde_json::Map::new();
            let (k, v) = identity(&mut rng, &kinds);
            ids.insert(k, v.into());
            if rng.below(100) < link_pct {
                let (k, v) = identity(&mut rng, &kinds);
                ids.insert(k, v.into());
            }
            obj["ids"] = ids.into();
            if rng.below(3) == 0 {
                obj["channel"] = rng.pick(CHANNELS).into();
            }
            let order = || -> serde_json::Value {
                // A few orders, one of them sometimes written as a number.
                match i % 7 {
                    0 => serde_json::json!(7),
                    k => serde_json::json!(format!("{}", (k as u64 * 31 + seed) % 6)),
                }
            };
            match name {
                "order_paid" => {
                    obj["props"] = serde_json::json!({
                        "amount": rng.below(20_000) as f64 / 100.0,
                        "order_id": order(),
                    })
                }
                "order_created" => obj["props"] = serde_json::json!({"order_id": order()}),
                "product_view" => {
                    obj["props"] = serde_json::json!({"sku": rng.pick(&["sku1", "sku2", "sku9"])})
                }
                _ => {}
            }
        }
        if rng.below(5) == 0 {
            let t = jiff::Timestamp::from_millisecond(ts).unwrap();
            obj["ts"] = t
                .to_zoned(jiff::tz::TimeZone::get("Asia/Shanghai").unwrap())
                .strftime("%Y-%m-%dT%H:%M:%S%.3f%:z")
                .to_string()
                .into();
        }
        lines.push(obj.to_string());
    }
    lines
}

/// Rules and alerts that exercise every part of ACTIONS.md on the random logs.
pub(crate) const ACTIONS: &str = r#"
[[rules]]
name = "unpaid"
when = "order_created"
unless = "order_paid"
match = "order_id"
wait = "2h"
quiet_hours = { from = "22:00", to = "08:00" }
holdout = 0.3
goal = "order_paid"
goal_within = "1d"

[[rules]]
name = "nudge"
when = "product_view"
where = { sku = ["sku1", "sku2"] }
unless = "add_to_cart"
wait = "30m"
cap = { max = 1, per = "1d" }
[rules.if]
max_days_since_first = 3
min_active_days_30 = 1

[[rules]]
name = "winback"
when = "order_paid"
unless = "order_paid"
wait = "3h"
cap = { max = 2, per = "5d" }
holdout = 0.5
goal = "page_view"
goal_within = "3d"
[rules.if]
min_revenue = 50
channels = ["kol", "(none)"]

[[alerts]]
name = "dau_drop"
metric = "dau"
drop = 0.1
baseline = { lag = "1d", count = 3 }

[[alerts]]
name = "hau_low"
metric = "hau"
below = 2
for = 3
keep_firing_for = 2
grace = "0s"

[[alerts]]
name = "hau_3h"
metric = "hau"
drop = 0.5
baseline = { lag = "3h", count = 2 }

[[alerts]]
name = "shares"
metric = "ratio"
where = { name = "share_rate" }
above = 0.4

[[alerts]]
name = "paid_spike"
metric = "funnel"
where = { funnel = "purchase", step = 4 }
rise = 0.5
baseline = { lag = "2d", count = 2 }
min_baseline = 1
"#;

fn test_config(zone: usize) -> Config {
    config_with(zone, ACTIONS)
}

pub(crate) fn config_with(zone: usize, actions: &str) -> Config {
    let tz = ["UTC", "America/New_York", "Asia/Shanghai"][zone % 3];
    Config::from_toml(&format!(
        r#"timezone = "{tz}"
[retention]
max_day = 5
sliding_windows = [2, 3]
[[funnels]]
name = "purchase"
steps = ["product_view", "add_to_cart", "order_created", "order_paid"]
window = "2d"
[[funnels]]
name = "double"
steps = ["page_view", "page_view", "share"]
window = "6h"
[[ratios]]
name = "share_rate"
numerator = ["share"]
denominator = "active"
[[ratios]]
name = "buyers"
numerator = ["order_paid"]
denominator = ["product_view", "page_view"]
{actions}"#
    ))
    .unwrap()
}

/// The firing lines of a finished run, in decision order.
pub(crate) fn firings(finished: &tidemark::pipeline::Finished) -> Vec<serde_json::Value> {
    use tidemark::output::actions::{decision_order, firing_json};
    let out = &finished.output;
    decision_order(&finished.plan, out.firings.current().values())
        .into_iter()
        .map(|f| firing_json(&finished.plan, &finished.dict, &out.identities, f))
        .collect()
}

/// `funnel_open` counts the incomplete entries whose deadline is at or after the clock, to the
/// millisecond, in the clock's own hour and in later ones; the rest are `funnel_dropped`.
/// Fed whole and one event at a time (the clock moving through the hours in between).
#[test]
fn funnel_open_is_judged_at_the_clock_to_the_millisecond() {
    const DAY: i64 = 86_400_000;
    const MIN: i64 = 60_000;
    // 2026-03-10T12:30:00Z, the clock at the end.
    let clock: i64 = 1_773_145_800_000;
    // Entry deadlines against the clock: open, open, open (equal), dropped, dropped.
    let deadlines = [
        clock + 120 * MIN,
        clock + 10 * MIN,
        clock,
        clock - 1,
        clock - 120 * MIN,
    ];
    let mut events: Vec<(i64, String)> = deadlines
        .iter()
        .enumerate()
        .map(|(i, d)| (d - DAY, format!("p{i}")))
        .collect();
    events.sort();
    let mut lines: Vec<String> = events
        .iter()
        .map(|(ts, who)| {
            format!(
                r#"{{"id":"v-{who}","ts":{ts},"event":"product_view","ids":{{"openid":"{who}"}}}}"#
            )
        })
        .collect();
    lines.push(format!(
        r#"{{"id":"clock","ts":{clock},"event":"page_view","ids":{{"openid":"z"}}}}"#
    ));
    let cfg = Config::from_toml("timezone = \"UTC\"\n").unwrap();
    for batch in [usize::MAX, 1] {
        let snapshot = common::run(&lines, &cfg, batch, 1, false).snapshot();
        let value = |metric: &str| {
            snapshot["extensions"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["metric"] == metric && r["dims"]["day"] == "2026-03-09")
                .map(|r| r["value"].as_i64().unwrap())
                .sum::<i64>()
        };
        assert_eq!(
            value("funnel_open"),
            3,
            "batch {batch}: {}",
            snapshot["extensions"]
        );
        assert_eq!(
            value("funnel_dropped"),
            2,
            "batch {batch}: {}",
            snapshot["extensions"]
        );
    }
}

/// A person's funnel entry is the earliest entry step of all their identities on the day, in
/// whatever order the views, the cart and the link between the identities arrive: ingest sends
/// each identity's earliest entry step only, and takes it back when an earlier one comes.
#[test]
fn a_funnel_entry_is_the_earliest_of_every_identity_in_any_arrival_order() {
    const H: i64 = 3_600_000;
    // 2026-03-10T00:00:00Z.
    let day: i64 = 1_773_100_800_000;
    let ev = |id: &str, ts: i64, name: &str, ids: &str| {
        format!(r#"{{"id":"{id}","ts":{ts},"event":"{name}","ids":{{{ids}}}}}"#)
    };
    // Only the view at 09:00 (the uid's) comes before the cart (the openid's): the person's
    // entry reaches step 2 once the two identities are linked, whichever view came first.
    let base = vec![
        ev("v3", day + 20 * H, "product_view", r#""openid":"a""#),
        ev("cart", day + 10 * H, "add_to_cart", r#""openid":"a""#),
        ev("v2", day + 12 * H, "product_view", r#""uid":"b""#),
        ev("v1", day + 9 * H, "product_view", r#""uid":"b""#),
        ev("v0", day + 9 * H, "product_view", r#""uid":"b2""#),
        ev("link", day + 21 * H, "login", r#""openid":"a","uid":"b""#),
    ];
    let cfg = Config::from_toml("timezone = \"UTC\"\n").unwrap();
    let funnel = |snapshot: &serde_json::Value, step: i64| -> i64 {
        snapshot["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["metric"] == "funnel" && r["dims"]["day"] == "2026-03-10")
            .filter(|r| r["dims"]["step"] == step)
            .map(|r| r["value"].as_i64().unwrap())
            .sum()
    };
    for seed in 0..24 {
        let mut lines = base.clone();
        shuffle(&mut lines, seed);
        for batch in [1, 2, usize::MAX] {
            let snapshot = common::run(&lines, &cfg, batch, 1, false).snapshot();
            let order: Vec<&str> = lines.iter().filter_map(|l| l.split('"').nth(3)).collect();
            // Two persons enter: {a, b} and b2.
            assert_eq!(funnel(&snapshot, 1), 2, "{order:?}, batch {batch}");
            assert_eq!(funnel(&snapshot, 2), 1, "{order:?}, batch {batch}");
        }
    }
}

/// Every funnel entrant has completed, is still inside its window, or has dropped out.
fn check_funnel_split(snapshot: &serde_json::Value) {
    let mut by_entry: BTreeMap<(String, String), [i64; 4]> = BTreeMap::new();
    let lengths: BTreeMap<&str, i64> = [("purchase", 4), ("double", 3)].into_iter().collect();
    for part in ["rows", "extensions"] {
        for r in snapshot[part].as_array().unwrap() {
            let dims = &r["dims"];
            let Some(f) = dims["funnel"].as_str() else {
                continue;
            };
            let key = (f.to_string(), dims["day"].as_str().unwrap().to_string());
            let v = r["value"].as_i64();
            let slot = by_entry.entry(key).or_default();
            match (r["metric"].as_str().unwrap(), dims["step"].as_i64()) {
                ("funnel", Some(1)) => slot[0] = v.unwrap(),
                ("funnel", Some(s)) if s == lengths[f] => slot[1] = v.unwrap(),
                ("funnel_open", _) => slot[2] = v.unwrap(),
                ("funnel_dropped", _) => slot[3] = v.unwrap(),
                _ => {}
            }
        }
    }
    for (k, [entered, done, open, dropped]) in by_entry {
        assert_eq!(entered, done + open + dropped, "{k:?}");
    }
}

fn shuffle(lines: &mut [String], seed: u64) {
    let mut rng = Rng(seed ^ 0xA5A5);
    for i in (1..lines.len()).rev() {
        let j = usize::try_from(rng.below(i as u64 + 1)).unwrap();
        lines.swap(i, j);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Many small batches in any order give the snapshot of one big batch.
    #[test]
    fn batching_and_order_do_not_change_rows(seed in any::<u64>(), events in 1usize..250, batch in 1usize..40, zone in 0usize..3) {
        let _busy = common::busy();
        let cfg = test_config(zone);
        let lines = random_log(seed, events, 25);
        let whole_run = common::run(&lines, &cfg, usize::MAX, 1, true);
        let whole = whole_run.snapshot();
        let mut shuffled = lines.clone();
        shuffle(&mut shuffled, seed);
        let pieces_run = common::run(&shuffled, &cfg, batch, 1, true);
        let pieces = pieces_run.snapshot();
        prop_assert_eq!(firings(&whole_run), firings(&pieces_run));
        prop_assert_eq!(&whole["events"], &pieces["events"]);
        prop_assert_eq!(&whole["clock"], &pieces["clock"]);
        let diffs = common::differences(&whole, &pieces);
        prop_assert!(diffs.is_empty(), "{:?}", &diffs[..diffs.len().min(10)]);
        prop_assert_eq!(common::rows(&whole), common::rows(&pieces));
        prop_assert_eq!(&whole["extensions"], &pieces["extensions"]);
        check_funnel_split(&whole);
    }

    /// Batches held while a round is open and taken together (as `serve` does under load)
    /// give the snapshot, firings and alerts of one big batch.
    #[test]
    fn held_rounds_do_not_change_rows(seed in any::<u64>(), events in 1usize..250, batch in 1usize..20, in_flight in 1usize..3) {
        let _busy = common::busy();
        let cfg = test_config(usize::try_from(seed % 3).unwrap());
        let lines = random_log(seed, events, 25);
        let whole_run = common::run(&lines, &cfg, usize::MAX, 1, true);
        let held_run = common::run_rounds(&lines, &cfg, batch, 1, true, Some(in_flight));
        prop_assert_eq!(firings(&whole_run), firings(&held_run));
        let (whole, held) = (whole_run.snapshot(), held_run.snapshot());
        let diffs = common::differences(&whole, &held);
        prop_assert!(diffs.is_empty(), "{:?}", &diffs[..diffs.len().min(10)]);
        prop_assert_eq!(common::rows(&whole), common::rows(&held));
        prop_assert_eq!(&whole["events"], &held["events"]);
        prop_assert_eq!(&whole["alerts"], &held["alerts"]);
    }

    /// Two workers give the snapshot of one.
    #[test]
    fn worker_count_does_not_change_rows(seed in any::<u64>(), events in 1usize..250, batch in 1usize..60) {
        let _busy = common::busy();
        let cfg = test_config(usize::try_from(seed).unwrap());
        let lines = random_log(seed, events, 25);
        let one_run = common::run(&lines, &cfg, batch, 1, true);
        let two_run = common::run(&lines, &cfg, batch, 2, true);
        prop_assert_eq!(firings(&one_run), firings(&two_run));
        let (one, two) = (one_run.snapshot(), two_run.snapshot());
        prop_assert_eq!(common::rows(&one), common::rows(&two));
        prop_assert_eq!(&one["events"], &two["events"]);
        prop_assert_eq!(&one["alerts"], &two["alerts"]);
    }

    /// Persons equal the components of a union-find over the links, whatever the order and
    /// batching, and DAU/new users per day equal a from-scratch count over those persons.
    #[test]
    fn persons_match_union_find(seed in any::<u64>(), events in 1usize..300, batch in 1usize..30, links in 0u64..80) {
        let _busy = common::busy();
        // Holdout groups hash the person's identities, which the resolved log below renames.
        let cfg = config_with(0, &ACTIONS.replace("holdout = ", "# holdout = "));
        let mut lines = random_log(seed, events, links);
        shuffle(&mut lines, seed);
        let finished = common::run(&lines, &cfg, batch, 1 + (seed % 2) as usize, true);

        // Reference: union-find over identities that appear in one accepted event.
        let mut parent: HashMap<(String, String), (String, String)> = HashMap::new();
        fn find(p: &mut HashMap<(String, String), (String, String)>, x: &(String, String)) -> (String, String) {
            let up = p.get(x).cloned().unwrap_or_else(|| x.clone());
            if &up == x { return up; }
            let root = find(p, &up);
            p.insert(x.clone(), root.clone());
            root
        }
        let mut accepted: BTreeMap<String, serde_json::Value> = BTreeMap::new();
        for l in &lines {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(l) else { continue };
            accepted.entry(v["id"].as_str().unwrap().to_string()).or_insert(v);
        }
        let idents_of = |v: &serde_json::Value| -> Vec<(String, String)> {
            v["ids"].as_object().map(|m| m.iter().map(|(k, x)| (k.clone(), x.as_str().unwrap().to_string())).collect()).unwrap_or_default()
        };
        for v in accepted.values() {
            let ids = idents_of(v);
            for w in ids.windows(2) {
                let (a, b) = (find(&mut parent, &w[0]), find(&mut parent, &w[1]));
                if a != b { parent.insert(a, b); }
            }
        }
        // Same partition.
        let index = &finished.output.identities;
        let mut by_person: BTreeMap<u32, BTreeSet<(String, String)>> = BTreeMap::new();
        let mut by_root: BTreeMap<(String, String), BTreeSet<(String, String)>> = BTreeMap::new();
        for v in accepted.values() {
            for id in idents_of(v) {
                by_root.entry(find(&mut parent, &id)).or_default().insert(id.clone());
            }
        }
        for i in 0..u32::try_from(finished.dict.ident_count()).unwrap() {
            let person = index.person(i).expect("every identity has a person");
            by_person.entry(person).or_default().insert(finished.dict.ident(i).unwrap());
        }
        let mut ours: Vec<_> = by_person.into_values().collect();
        let mut reference: Vec<_> = by_root.into_values().collect();
        ours.sort();
        reference.sort();
        prop_assert_eq!(ours, reference);

        // DAU and new users from the reference persons.
        let cal = &finished.plan.config.calendar;
        let mut dau: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
        let mut first: BTreeMap<(String, String), (i64, String)> = BTreeMap::new();
        for (id, v) in &accepted {
            let ids = idents_of(v);
            let Some(any) = ids.first() else { continue };
            let ts = match &v["ts"] {
                serde_json::Value::Number(n) => n.as_i64().unwrap(),
                s => s.as_str().unwrap().parse::<jiff::Timestamp>().unwrap().as_millisecond(),
            };
            let root = find(&mut parent, any);
            dau.entry(tidemark::time::day_label(cal.day(ts))).or_default().insert(root.clone());
            let f = first.entry(root).or_insert((ts, id.clone()));
            if (ts, id) < (f.0, &f.1) { *f = (ts, id.clone()); }
        }
        let rows = common::rows(&finished.snapshot());
        let ours_dau: BTreeMap<String, i64> = rows.iter().filter(|((m, _), _)| m == "dau").map(|((_, d), v)| {
            let dims: serde_json::Value = serde_json::from_str(d).unwrap();
            (dims["day"].as_str().unwrap().to_string(), v.as_i64().unwrap())
        }).collect();
        let ref_dau: BTreeMap<String, i64> = dau.into_iter().map(|(d, s)| (d, s.len() as i64)).collect();
        prop_assert_eq!(ours_dau, ref_dau);
        let ours_new: i64 = rows.iter().filter(|((m, _), _)| m == "new_users").map(|(_, v)| v.as_i64().unwrap()).sum();
        prop_assert_eq!(ours_new, first.len() as i64);

        // Every family: the log with each event's identities replaced by its person's
        // reference root (so nothing needs linking) gives the same snapshot.
        let resolved: Vec<String> = lines
            .iter()
            .map(|l| {
                let Ok(mut v) = serde_json::from_str::<serde_json::Value>(l) else { return l.clone() };
                let Some(any) = idents_of(&v).into_iter().next() else { return l.clone() };
                let (kind, value) = find(&mut parent, &any);
                v["ids"] = serde_json::json!({"person": format!("{kind}:{value}")});
                v.to_string()
            })
            .collect();
        let reference = common::run(&resolved, &cfg, usize::MAX, 1, false).snapshot();
        let ours = finished.snapshot();
        let diffs = common::differences(&reference, &ours);
        prop_assert!(diffs.is_empty(), "{:?}", &diffs[..diffs.len().min(10)]);
        prop_assert_eq!(&reference["extensions"], &ours["extensions"]);
    }
}

/// The random logs exercise the rules and alerts: the properties above are not vacuous.
#[test]
fn random_logs_fire_every_rule_and_alert() {
    let _busy = common::busy();
    let cfg = test_config(0);
    // Few links, so that the small universe of identities stays several persons.
    let lines = random_log(7, 3000, 2);
    let run = common::run(&lines, &cfg, 500, 1, true);
    let fired = firings(&run);
    for rule in ["unpaid", "nudge", "winback"] {
        assert!(
            fired.iter().any(|f| f["rule"] == rule),
            "no firing of {rule}"
        );
    }
    for group in ["treatment", "holdout"] {
        assert!(fired.iter().any(|f| f["group"] == group), "no {group}");
    }
    assert!(fired.iter().any(|f| f["converted"] == true));
    let snapshot = run.snapshot();
    let alerts = snapshot["alerts"].as_array().unwrap();
    for alert in ["dau_drop", "hau_low", "hau_3h", "shares"] {
        assert!(
            alerts.iter().any(|t| t["alert"] == alert),
            "no transition of {alert}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Ingest's state taken at any point and restored into a fresh pipeline carries on exactly:
    /// the rest of the log gives the snapshot and firings of one uninterrupted run.
    #[test]
    fn a_restored_state_carries_on_exactly(seed in any::<u64>(), events in 1usize..250, cut in 0usize..250, batch in 1usize..40) {
        let _busy = common::busy();
        let cfg = test_config(usize::try_from(seed).unwrap());
        let lines = random_log(seed, events, 25);
        let cut = cut.min(lines.len());
        let whole = common::run(&lines, &cfg, batch, 1, true);
        let plan = std::sync::Arc::new(tidemark::plan::Plan::new(cfg.clone()));
        let options = || tidemark::pipeline::PipelineOptions {
            workers: 1,
            track_identities: true,
            track_verdicts: false,
            batch_events: batch,
            wall_clock: false,
            in_flight: None,
        };
        let mut first = tidemark::pipeline::Pipeline::with_plan(plan.clone(), options()).unwrap();
        first.keep_facts();
        for l in &lines[..cut] {
            first.offer(l);
        }
        let state = first.state().unwrap();
        drop(first.finish().unwrap());
        let mut second = tidemark::pipeline::Pipeline::with_plan(plan, options()).unwrap();
        second.restore(state).unwrap();
        for l in &lines[cut..] {
            second.offer(l);
        }
        let resumed = second.finish().unwrap();
        let (a, b) = (whole.snapshot(), resumed.snapshot());
        let diffs = common::differences(&a, &b);
        prop_assert!(diffs.is_empty(), "{:?}", &diffs[..diffs.len().min(10)]);
        prop_assert_eq!(&a["extensions"], &b["extensions"]);
        prop_assert_eq!(&a["clock"], &b["clock"]);
        prop_assert_eq!(firings(&whole), firings(&resumed));
    }
}
