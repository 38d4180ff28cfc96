//! Identity resolution seen from outside: late merges correct history as deltas, the merge guard, `whois`.

use std::process::Command;
use std::sync::Arc;

use crate::common;
use tidemark::config::Config;
use tidemark::metric::{Dims, Metric, Value};
use tidemark::pipeline::{Pipeline, PipelineOptions};
use tidemark::plan::Plan;
use tidemark::time::parse_day;

const DAY1: i64 = 1_790_812_800_000; // 2026-10-01T00:00:00Z

fn ev(id: &str, ts: i64, name: &str, ids: &str, extra: &str) -> String {
    format!(r#"{{"id":"{id}","ts":{ts},"event":"{name}","ids":{ids}{extra}}}"#)
}

/// Two persons on day 1: `openid:a` (channel kol) at 01:00, `uid:b` (search_ads) at 02:00.
fn offer_two_persons(p: &mut Pipeline) {
    p.offer(&ev(
        "e1",
        DAY1 + 3_600_000,
        "page_view",
        r#"{"openid":"a"}"#,
        r#","channel":"kol""#,
    ));
    p.offer(&ev(
        "e2",
        DAY1 + 7_200_000,
        "page_view",
        r#"{"uid":"b"}"#,
        r#","channel":"search_ads""#,
    ));
}

/// On day 2, one event links `openid:a` and `uid:b`.
fn offer_link(p: &mut Pipeline) {
    p.offer(&ev(
        "e3",
        DAY1 + 86_400_000,
        "register",
        r#"{"openid":"a","uid":"b"}"#,
        "",
    ));
}

#[test]
fn a_late_link_merges_persons_and_corrects_past_days_as_deltas() {
    let plan = Arc::new(Plan::new(Config::default()));
    let mut p = Pipeline::with_plan(plan, PipelineOptions::default()).unwrap();
    p.keep_deltas();
    offer_two_persons(&mut p);
    p.flush();
    offer_link(&mut p);
    let done = p.finish().unwrap();

    let day1 = parse_day("2026-10-01").unwrap();
    let dau1 = (Metric::Dau, Dims::Day(day1));
    let rows = done.output.table.current();
    assert_eq!(rows.get(&dau1), Some(&Value::Count(1)));
    assert_eq!(
        rows.get(&(Metric::NewUsers, Dims::Day(day1))),
        Some(&Value::Count(1))
    );
    // The merged person's first event is e1, so its channel is kol; search_ads has no new user.
    let kol = rows
        .iter()
        .find(|((m, _), _)| *m == Metric::NewUsersByChannel)
        .map(|(k, v)| (*k, *v))
        .unwrap();
    assert_eq!(
        done.dict.channel(match kol.0 .1 {
            Dims::DayChannel(_, c) => c,
            other => panic!("{other:?}"),
        }),
        "kol"
    );
    assert_eq!(
        rows.iter()
            .filter(|((m, _), _)| *m == Metric::NewUsersByChannel)
            .count(),
        1
    );

    let deltas: Vec<_> = done
        .output
        .deltas
        .iter()
        .filter(|d| d.key == dau1)
        .collect();
    assert_eq!(deltas.len(), 2, "{deltas:?}");
    assert_eq!(
        (deltas[0].prev, deltas[0].value),
        (None, Some(Value::Count(2)))
    );
    assert_eq!(
        (deltas[1].prev, deltas[1].value),
        (Some(Value::Count(2)), Some(Value::Count(1)))
    );
    assert!(deltas[1].time > deltas[0].time);
}

#[test]
fn a_value_shared_by_too_many_identities_stops_linking_and_is_reported() {
    let cfg = Config::from_toml("[identity]\nmax_persons_per_value = 3\n").unwrap();
    let mut lines: Vec<String> = (0..5)
        .map(|i| {
            ev(
                &format!("s{i}"),
                DAY1 + i * 60_000,
                "register",
                &format!(r#"{{"openid":"o{i}","phone":"13800000000"}}"#),
                "",
            )
        })
        .collect();
    // Two identities linked through an ordinary phone still merge.
    lines.push(ev(
        "t1",
        DAY1,
        "page_view",
        r#"{"openid":"x","phone":"13900000000"}"#,
        "",
    ));
    lines.push(ev(
        "t2",
        DAY1,
        "page_view",
        r#"{"openid":"y","phone":"13900000000"}"#,
        "",
    ));
    let done = common::run(&lines, &cfg, 2, 1, true);
    let snap = done.snapshot();
    assert_eq!(
        snap["identity"]["guarded"],
        serde_json::json!([{"type": "phone", "value": "13800000000", "links": 5}])
    );
    let dau =
        common::rows(&snap)[&("dau".to_string(), r#"{"day":"2026-10-01"}"#.to_string())].clone();
    // o0..o4 stay apart (5), x and y are one person (1): 6.
    assert_eq!(dau, 6);

    let unguarded = common::run(&lines, &Config::default(), 2, 1, true).snapshot();
    let dau = common::rows(&unguarded)[&("dau".to_string(), r#"{"day":"2026-10-01"}"#.to_string())]
        .clone();
    assert_eq!(dau, 2);
    assert_eq!(unguarded["identity"]["guarded"], serde_json::json!([]));
}

#[test]
fn whois_lists_every_identity_of_the_person() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let run = |who: &str| {
        Command::new(env!("CARGO_BIN_EXE_tidemark"))
            .arg("whois")
            .arg("--config")
            .arg(dir.join("edge.toml"))
            .arg("--input")
            .arg(dir.join("edge.ndjson"))
            .arg(who)
            .output()
            .unwrap()
    };
    let out = run("user:b");
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["identities"],
        serde_json::json!([{"type": "openid", "value": "a"}, {"type": "user", "value": "b"}])
    );
    assert_eq!(v["first_seen_day"], "2026-10-28");
    assert_eq!(v["channel"], "search_ads");
    let missing = run("user:nobody");
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn a_subscriber_sees_the_merge_as_an_upsert_then_a_progress_mark() {
    let plan = Arc::new(Plan::new(Config::default()));
    let mut p = Pipeline::with_plan(plan, PipelineOptions::default()).unwrap();
    offer_two_persons(&mut p);
    p.sync();
    let filter = tidemark::output::Filter {
        metrics: vec!["dau".into()],
        dims: vec![],
    };
    let mut rx = p.subscribe(filter);
    let mut feed = Vec::new();
    while let Some(m) = rx.try_recv() {
        feed.push(m);
    }
    assert_eq!(feed.len(), 2, "{feed:?}");
    assert_eq!(feed[1], tidemark::output::Feed::Progress(1));

    offer_link(&mut p);
    p.sync();
    let mut feed = Vec::new();
    while let Some(m) = rx.try_recv() {
        feed.push(m);
    }
    let upserts: Vec<&tidemark::output::Upsert> = feed
        .iter()
        .filter_map(|m| match m {
            tidemark::output::Feed::Upsert(u) => Some(&**u),
            _ => None,
        })
        .collect();
    let day1 = upserts
        .iter()
        .find(|u| u.dims["day"] == "2026-10-01")
        .expect("day 1 corrected");
    assert_eq!(
        (
            day1.prev.as_ref().and_then(|v| v.as_i64()),
            day1.value.as_ref().and_then(|v| v.as_i64())
        ),
        (Some(2), Some(1))
    );
    let day2 = upserts
        .iter()
        .find(|u| u.dims["day"] == "2026-10-02")
        .expect("day 2 appears");
    assert!(day2.prev.is_none());
    assert_eq!(feed.last(), Some(&tidemark::output::Feed::Progress(2)));
    p.finish().unwrap();
}
