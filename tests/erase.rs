//! Erasure of a person: the rows after it equal a recompute over the log without the person's
//! events, in every batching, with merged identities, funnels, cohorts and rules.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::common;
use crate::common::server::files_containing;
use crate::properties::{config_with, firings, random_log, ACTIONS};
use proptest::prelude::*;
use tidemark::ingest::Outcome;
use tidemark::pipeline::{Pipeline, PipelineOptions};
use tidemark::plan::Plan;

type Id = (String, String);

fn find(parent: &mut HashMap<Id, Id>, x: &Id) -> Id {
    let up = parent.get(x).cloned().unwrap_or_else(|| x.clone());
    if &up == x {
        return up;
    }
    let root = find(parent, &up);
    parent.insert(x.clone(), root.clone());
    root
}

/// `(id, identities)` of an event line, if it parses.
fn event(line: &str) -> Option<(String, Vec<Id>)> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let ids = v["ids"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    Some((v["id"].as_str()?.to_string(), ids))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Erasing a person after a prefix of the log gives the rows, extensions, firings and clock
    /// of the log without the person's events (and without later copies of them).
    #[test]
    fn erasing_a_person_equals_a_log_without_them(
        seed in any::<u64>(),
        events in 2usize..250,
        batch in 1usize..40,
        links in 0u64..80,
        cut in 0.0f64..1.0,
        pick in any::<usize>(),
        restart in any::<bool>(),
    ) {
        let _busy = common::busy();
        let cfg = config_with(usize::try_from(seed).unwrap(), ACTIONS);
        let lines = random_log(seed, events, links);
        #[allow(clippy::cast_possible_truncation)] // a share of the lines, rounded down
        let cut = ((lines.len() as f64 * cut) as usize).max(1);
        let workers = 1 + (seed % 2) as usize;
        let options = PipelineOptions {
            workers,
            track_identities: true,
            track_verdicts: false,
            batch_events: batch,
            wall_clock: false,
            in_flight: None,
        };
        let plan = Arc::new(Plan::new(cfg.clone()));
        let mut p = Pipeline::with_plan(plan.clone(), options.clone()).expect("engine starts");
        p.keep_facts();

        // The prefix, and the persons of its accepted events by a union-find.
        let mut parent: HashMap<Id, Id> = HashMap::new();
        let mut accepted: Vec<(String, Vec<Id>)> = Vec::new();
        for line in &lines[..cut] {
            if p.offer(line) == Outcome::Accepted {
                let (id, ids) = event(line).expect("an accepted line parses");
                for pair in ids.windows(2) {
                    let (a, b) = (find(&mut parent, &pair[0]), find(&mut parent, &pair[1]));
                    if a != b {
                        parent.insert(a, b);
                    }
                }
                accepted.push((id, ids));
            }
        }
        let named: Vec<&Id> = accepted.iter().flat_map(|(_, ids)| ids.first()).collect();
        prop_assume!(!named.is_empty());
        let target = named[pick % named.len()].clone();
        let root = find(&mut parent, &target);
        let mut person: BTreeSet<Id> = BTreeSet::new();
        let mut gone: HashSet<String> = HashSet::new();
        for (id, ids) in &accepted {
            if ids.first().is_some_and(|i| find(&mut parent, i) == root) {
                gone.insert(id.clone());
                person.extend(ids.iter().cloned());
            }
        }

        let erased = p.erase(&target.0, &target.1, Vec::new()).expect("the identity is known");
        prop_assert_eq!(usize::try_from(erased.events).unwrap(), gone.len());
        let told: BTreeSet<Id> = erased.identities.into_iter().collect();
        prop_assert_eq!(told, person);
        prop_assert!(p.erase(&target.0, &target.1, Vec::new()).is_none(), "erased twice");
        if restart {
            // A checkpoint taken after the erasure carries it on: the erased ids stay
            // duplicates and the erased identities stay unknown.
            let state = p.state().expect("a state");
            p.finish().expect("engine finishes");
            p = Pipeline::with_plan(plan, options).expect("engine starts");
            p.restore(state).expect("the state is restored");
            prop_assert!(p.erase(&target.0, &target.1, Vec::new()).is_none(), "erased again after a restart");
        }
        for line in &lines[cut..] {
            let outcome = p.offer(line);
            if event(line).is_some_and(|(id, _)| gone.contains(&id)) {
                prop_assert_eq!(outcome, Outcome::Duplicate, "a copy of an erased event: {}", line);
            }
        }
        let erasing = p.finish().expect("engine finishes");

        let without: Vec<String> = lines
            .iter()
            .filter(|l| !event(l).is_some_and(|(id, _)| gone.contains(&id)))
            .cloned()
            .collect();
        let reference = common::run(&without, &cfg, usize::MAX, 1, true);
        let (mut got, mut want) = (erasing.snapshot(), reference.snapshot());
        // Later copies of erased events count as duplicates, which the reference never saw.
        prop_assert_eq!(&want["events"]["accepted"], &got["events"]["accepted"]);
        got["events"] = serde_json::Value::Null;
        want["events"] = serde_json::Value::Null;
        let diffs = common::differences(&want, &got);
        prop_assert!(diffs.is_empty(), "{:?}", &diffs[..diffs.len().min(10)]);
        prop_assert_eq!(common::rows(&want), common::rows(&got));
        prop_assert_eq!(&want["extensions"], &got["extensions"]);
        prop_assert_eq!(&want["clock"], &got["clock"]);
        prop_assert_eq!(&want["alerts"], &got["alerts"]);
        prop_assert_eq!(firings(&reference), firings(&erasing));
    }
}

/// Events of one person with values found nowhere else: copies of logged events (so their
/// times and names fit the log) under new ids and the person's identities.
fn person_events(lines: &[String]) -> Vec<String> {
    let ids = [
        serde_json::json!({"openid": "o_erase_me_7f3a", "phone": "13912345678"}),
        serde_json::json!({"uid": "u_erase_me_41"}),
        serde_json::json!({"uid": "u_erase_me_41", "openid": "o_erase_me_7f3a"}),
        serde_json::json!({"phone": "13912345678"}),
    ];
    lines
        .iter()
        .filter(|l| l.contains("\"ids\""))
        .step_by(lines.len() / 12)
        .take(12)
        .enumerate()
        .map(|(n, l)| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["id"] = format!("ev-erase-me-{n:03}").into();
            v["ids"] = ids[n % ids.len()].clone();
            v.to_string()
        })
        .collect()
}

/// The values and event ids of the person of `person_events`.
const SECRETS: &[&str] = &[
    "o_erase_me_7f3a",
    "13912345678",
    "u_erase_me_41",
    "ev-erase-me-",
];

/// Against the real binary: `DELETE /v1/persons/...` erases the whole person, the rows equal
/// `compute` over the log without them, no byte of their identities or event ids is left in
/// the data directory, and after a restart their events are duplicates and their values new.
#[test]
fn erasure_leaves_nothing_on_disk_and_survives_a_restart() {
    // Servers and `compute` keep cores busy: not beside a test that measures latency.
    let _busy = common::busy();
    runtime().block_on(erasure_leaves_nothing_on_disk_and_survives_a_restart_run());
}

async fn erasure_leaves_nothing_on_disk_and_survives_a_restart_run() {
    use crate::common::server::{
        config_file, fresh_data_dir, generated, get_json, post_events, Server,
    };
    let cfg = config_file("[serve]\nwal_segment = \"4KiB\"\ncheckpoint_every = 1000000\n");
    let cfg_arg = cfg.to_str().unwrap();
    let lines = generated(40, 7);
    let mine = person_events(&lines);
    let data = fresh_data_dir();
    let client = reqwest::Client::new();
    let mut all = lines.clone();
    all.extend(mine.iter().cloned());
    let events: Vec<serde_json::Value> = all
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    let mut s = Server::start_in(&data, &["--config", cfg_arg], &[]);
    for chunk in events.chunks(500) {
        post_events(&client, &s, chunk).await;
    }
    for secret in SECRETS {
        assert!(
            !files_containing(&data, secret).is_empty(),
            "{secret} was never written"
        );
    }
    let answer = client
        .delete(s.url("/v1/persons/phone/13912345678"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let answer: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(answer["events"], mine.len());
    let mut told: Vec<String> = answer["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{}:{}",
                i["type"].as_str().unwrap(),
                i["value"].as_str().unwrap()
            )
        })
        .collect();
    told.sort();
    assert_eq!(
        told,
        [
            "openid:o_erase_me_7f3a",
            "phone:13912345678",
            "uid:u_erase_me_41"
        ]
    );
    let again = client
        .delete(s.url("/v1/persons/uid/u_erase_me_41"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404, "an erased identity is unknown");

    let expected = common::rows(&common::server::compute(&lines, Some(&cfg)));
    let live = get_json(&client, &s.url("/v1/snapshot")).await;
    assert_eq!(common::rows(&live), expected, "rows after the erasure");
    for secret in SECRETS {
        let left = files_containing(&data, secret);
        assert!(left.is_empty(), "{secret} is still in {left:?}");
    }

    // After a restart: the same rows, the erased events are duplicates, and the erased
    // values seen again belong to a new person.
    s.terminate(std::time::Duration::from_secs(20))
        .expect("serve stops");
    let s = Server::start_in(&data, &["--config", cfg_arg], &[]);
    let live = get_json(&client, &s.url("/v1/snapshot")).await;
    assert_eq!(common::rows(&live), expected, "rows after a restart");
    let mine_json: Vec<serde_json::Value> = mine
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let resent = post_events(&client, &s, &mine_json).await;
    assert_eq!(resent["accepted"], 0, "{resent}");
    assert_eq!(resent["duplicates"], mine.len());
    let fresh = serde_json::json!({"id": "after-erasure", "ts": mine_json[0]["ts"], "event": "page_view", "ids": {"uid": "u_erase_me_41"}});
    post_events(&client, &s, &[fresh]).await;
    let who = get_json(&client, &s.url("/v1/identities/uid/u_erase_me_41")).await;
    assert_eq!(who["identities"].as_array().map(Vec::len), Some(1), "{who}");
    drop(s);

    // `tidemark erase` on the stopped server's directory does the same.
    let out = std::process::Command::new(common::server::binary())
        .args(["erase", "--config", cfg_arg, "--data"])
        .arg(&data)
        .arg("uid:u_erase_me_41")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["events"], 1, "{doc}");
    for secret in SECRETS {
        let left = files_containing(&data, secret);
        assert!(left.is_empty(), "{secret} is still in {left:?}");
    }
    let s = Server::start_in(&data, &["--config", cfg_arg], &[]);
    let live = get_json(&client, &s.url("/v1/snapshot")).await;
    assert_eq!(common::rows(&live), expected, "rows after `tidemark erase`");
}

/// With `serve.hash_identities`, identity values reach the data directory (log, checkpoint,
/// dead letters) only as keyed hashes; look-ups and erasure by the raw value still work, and
/// the key survives a restart.
#[test]
fn hashed_identities_never_reach_disk_in_clear() {
    // Servers and `compute` keep cores busy: not beside a test that measures latency.
    let _busy = common::busy();
    runtime().block_on(hashed_identities_never_reach_disk_in_clear_run());
}

async fn hashed_identities_never_reach_disk_in_clear_run() {
    use crate::common::server::{
        config_file, fresh_data_dir, generated, get_json, post_events, Server,
    };
    let data = fresh_data_dir();
    let cfg = config_file(&format!(
        "[serve]\nhash_identities = true\ndead_letter = \"{}\"\n",
        data.join("rejects.ndjson").display()
    ));
    let cfg_arg = cfg.to_str().unwrap();
    let lines = generated(20, 3);
    let mine = person_events(&lines);
    let client = reqwest::Client::new();
    let mut s = Server::start_in(&data, &["--config", cfg_arg], &[]);
    let events: Vec<serde_json::Value> = lines
        .iter()
        .chain(&mine)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for chunk in events.chunks(500) {
        post_events(&client, &s, chunk).await;
    }
    // A malformed event that names the phone number: rejected, and not kept in clear either.
    let resp = client
        .post(s.url("/v1/events"))
        .header("Content-Type", "application/x-ndjson")
        .body("{\"id\":\"bad\",\"ids\":{\"phone\":\"13912345678\"}\n")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let who = get_json(&client, &s.url("/v1/identities/phone/13912345678")).await;
    assert_eq!(who["found"], true, "{who}");
    assert!(!who.to_string().contains("13912345678"), "{who}");
    assert_eq!(who["identities"].as_array().map(Vec::len), Some(3), "{who}");

    s.terminate(std::time::Duration::from_secs(20))
        .expect("serve stops");
    let s = Server::start_in(&data, &["--config", cfg_arg], &[]);
    let who = get_json(&client, &s.url("/v1/identities/uid/u_erase_me_41")).await;
    assert_eq!(who["found"], true, "the key survives a restart: {who}");
    assert!(data.join("rejects.ndjson").exists());
    for raw in ["13912345678", "o_erase_me_7f3a", "u_erase_me_41"] {
        let left = files_containing(&data, raw);
        assert!(left.is_empty(), "{raw} is in {left:?}");
    }
    let answer = client
        .delete(s.url("/v1/persons/phone/13912345678"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let answer: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(answer["events"], mine.len(), "{answer}");
}

/// Engine with rules: a firing already sent stays in the campaign rows and is not retracted,
/// the erased person's pending firing is never sent, and the delivery log forgets their ids.
#[test]
fn sent_firings_stay_and_pending_ones_are_cancelled() {
    // Servers and `compute` keep cores busy: not beside a test that measures latency.
    let _busy = common::busy();
    runtime().block_on(sent_firings_stay_and_pending_ones_are_cancelled_run());
}

async fn sent_firings_stay_and_pending_ones_are_cancelled_run() {
    use crate::common::receiver::Receiver;
    use crate::common::server::{config_file, fresh_data_dir, get_json, post_events, Server};
    use serde_json::json;
    use std::time::Duration;
    const T0: i64 = 1_790_000_000_000;
    const HOUR: i64 = 3_600_000;
    let hook = Receiver::start(&[]);
    let url = hook.url("/hook");
    let cfg = config_file(&format!(
        r#"[serve]
clock = "event"
[[rules]]
name = "welcome"
when = "register"
wait = "1h"
[[rules.actions]]
webhook = "{url}"
[[rules]]
name = "nudge"
when = "page_view"
wait = "10h"
[[rules.actions]]
webhook = "{url}"
"#
    ));
    let data = fresh_data_dir();
    let s = Server::start_in(&data, &["--config", cfg.to_str().unwrap()], &[]);
    let c = reqwest::Client::new();
    let ev = |id: &str, ts: i64, name: &str, user: &str| json!({"id": id, "ts": ts, "event": name, "user": user});
    post_events(
        &c,
        &s,
        &[
            ev("reg-secret-1", T0, "register", "u_secret_1"),
            ev("view-secret-2", T0 + 60_000, "page_view", "u_secret_1"),
            ev("view-other-1", T0 + 2 * HOUR, "page_view", "u_other"),
        ],
    )
    .await;
    hook.wait_for(Duration::from_secs(10), "the welcome", |r| r.len() == 1);
    let count = crate::common::metric_total;
    let before = get_json(&c, &s.url("/v1/snapshot")).await;
    assert_eq!(count(&before, "trigger_fired"), 1, "{before}");
    let answer = c
        .delete(s.url("/v1/persons/user/u_secret_1"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let after = get_json(&c, &s.url("/v1/snapshot")).await;
    assert_eq!(
        count(&after, "trigger_fired"),
        1,
        "the sent firing stays: {after}"
    );
    let pending: Vec<_> = after["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["metric"] == "trigger_pending")
        .map(|r| (r["dims"]["rule"].clone(), r["value"].clone()))
        .collect();
    assert_eq!(pending, [(json!("nudge"), json!(1))], "{after}");
    // The clock passes the nudge's deadline: only the other person's goes out.
    post_events(
        &c,
        &s,
        &[ev("view-other-2", T0 + 12 * HOUR, "page_view", "u_other")],
    )
    .await;
    hook.wait_for(Duration::from_secs(10), "the other nudge", |r| r.len() == 2);
    std::thread::sleep(Duration::from_millis(300));
    let got = hook.delivered();
    assert_eq!(
        got.len(),
        2,
        "no retraction, no nudge for the erased person"
    );
    assert_eq!(got[1].key.as_deref(), Some("nudge/view-other-1"));
    for secret in ["u_secret_1", "reg-secret-1", "view-secret-2"] {
        let left = files_containing(&data, secret);
        assert!(left.is_empty(), "{secret} is still in {left:?}");
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
