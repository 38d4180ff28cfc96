//! Properties of generated logs: shared parsing of lines and of persons, and the tests in submodules.

mod format;
mod people;
mod stream;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use jiff::tz::TimeZone;
use serde_json::Value;

use super::{generate, GenOptions};

const BLOCKED: [&str; 7] = ["", "null", "0", "-1", "anonymous", "unknown", "undefined"];
const EVENTS: [&str; 9] = [
    "page_view",
    "product_view",
    "add_to_cart",
    "order_created",
    "order_paid",
    "register",
    "login",
    "share",
    "ad_spend",
];
const PAID: [&str; 5] = [
    "wechat_moments",
    "douyin_ads",
    "search_ads",
    "kol_live",
    "offline_qr",
];
const SAMPLE_PERSONS: usize = 3_000;

fn opts(persons: u64, days: u32, seed: u64, zone: &str, start: &str) -> GenOptions {
    GenOptions {
        persons,
        days,
        seed,
        start: start.parse().unwrap(),
        timezone: TimeZone::get(zone).unwrap(),
        links: true,
        ..GenOptions::default()
    }
}

fn run(o: &GenOptions) -> String {
    let mut buf = Vec::new();
    let n = generate(o, &mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    assert_eq!(n, text.lines().count() as u64);
    assert!(text.is_empty() || text.ends_with('\n'));
    text
}

/// `[start 00:00, start + days 00:00)` local, in epoch milliseconds.
fn range(o: &GenOptions) -> (i64, i64) {
    let at = |d: i64| {
        let date = o.start.checked_add(jiff::Span::new().days(d)).unwrap();
        date.to_zoned(o.timezone.clone())
            .unwrap()
            .timestamp()
            .as_millisecond()
    };
    (at(0), at(i64::from(o.days)))
}

/// One line, checked to be an event object as EVENTS.md describes it.
struct Line {
    raw: String,
    id: String,
    ts: i64,
    ts_text: Option<String>,
    event: String,
    ids: Vec<(String, String)>,
    channel: Option<String>,
    /// `props.amount` exactly as written.
    amount: Option<String>,
    order: Option<String>,
}

fn parse(text: &str) -> Vec<Line> {
    text.lines().map(parse_line).collect()
}

fn parse_line(raw: &str) -> Line {
    let v: Value = serde_json::from_str(raw).unwrap_or_else(|e| panic!("{e}: {raw}"));
    let o = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {raw}"));
    for key in o.keys() {
        assert!(
            ["id", "ts", "event", "ids", "user", "channel", "props"].contains(&key.as_str()),
            "{raw}"
        );
    }
    let (ts, ts_text) = match &o["ts"] {
        Value::Number(n) => (
            n.as_i64()
                .unwrap_or_else(|| panic!("ts not integer: {raw}")),
            None,
        ),
        Value::String(s) => (
            s.parse::<jiff::Timestamp>().unwrap().as_millisecond(),
            Some(s.clone()),
        ),
        other => panic!("ts {other}: {raw}"),
    };
    let mut ids: Vec<(String, String)> = match o.get("ids") {
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, x)| (k.clone(), x.as_str().unwrap().to_string()))
            .collect(),
        None => Vec::new(),
        Some(other) => panic!("ids {other}: {raw}"),
    };
    if let Some(u) = o.get("user") {
        ids.push(("user".into(), u.as_str().unwrap().to_string()));
    }
    let props = o.get("props").map(|p| p.as_object().unwrap());
    let amount = raw
        .split_once("\"amount\":")
        .map(|(_, rest)| rest[..rest.find('}').unwrap()].to_string());
    Line {
        raw: raw.to_string(),
        id: o["id"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| panic!("id: {raw}"))
            .to_string(),
        ts,
        ts_text,
        event: o["event"]
            .as_str()
            .unwrap_or_else(|| panic!("event: {raw}"))
            .to_string(),
        ids,
        channel: o.get("channel").map(|c| c.as_str().unwrap().to_string()),
        amount,
        order: props
            .and_then(|p| p.get("order_id"))
            .map(|x| x.as_str().unwrap().to_string()),
    }
}

fn sample_opts() -> GenOptions {
    opts(SAMPLE_PERSONS as u64, 21, 7, "Asia/Shanghai", "2026-10-01")
}

fn sample() -> &'static [Line] {
    static SAMPLE: OnceLock<Vec<Line>> = OnceLock::new();
    SAMPLE.get_or_init(|| parse(&run(&sample_opts())))
}

/// First occurrences of each id: the lines a deduplicating reader applies.
fn applied(lines: &[Line]) -> Vec<&Line> {
    let mut seen = BTreeSet::new();
    lines
        .iter()
        .filter(|l| seen.insert(l.id.as_str()))
        .collect()
}

/// Connected components of the identity graph: a person number for each line with identities.
fn persons(lines: &[&Line]) -> (Vec<Option<usize>>, usize, usize) {
    let mut index: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut parent: Vec<usize> = Vec::new();
    fn root(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    let mut firsts = Vec::new();
    for l in lines {
        let nodes: Vec<usize> = l
            .ids
            .iter()
            .map(|(k, v)| {
                let next = parent.len();
                *index.entry((k.as_str(), v.as_str())).or_insert_with(|| {
                    parent.push(next);
                    next
                })
            })
            .collect();
        for w in nodes.windows(2) {
            let (a, b) = (root(&mut parent, w[0]), root(&mut parent, w[1]));
            parent[a] = b;
        }
        firsts.push(nodes.first().copied());
    }
    let mut sizes = vec![0usize; parent.len()];
    for i in 0..parent.len() {
        sizes[root(&mut parent, i)] += 1;
    }
    let ids = firsts
        .into_iter()
        .map(|f| f.map(|x| root(&mut parent, x)))
        .collect();
    (
        ids,
        sizes.iter().filter(|&&s| s > 0).count(),
        sizes.iter().filter(|&&s| s > 1).count(),
    )
}
