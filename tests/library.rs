//! The library as a user embeds it: an `Engine` built from a configuration hands every rule
//! decision to the program's own channel, and what stands at the end is what `compute`
//! decides on the same log.

use std::collections::BTreeMap;

use serde_json::Value;
use tidemark::config::Config;
use tidemark::output::ActionEvent;
use tidemark::{Engine, Pipeline, PipelineOptions};

/// The `actions` golden set: its configuration with the rules' clock on event time, and its log.
fn golden_actions() -> (Config, Vec<bytes::Bytes>) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden");
    let toml = std::fs::read_to_string(format!("{dir}/actions.toml")).unwrap();
    let config = Config::from_toml(&format!("{toml}\n[serve]\nclock = \"event\"\n")).unwrap();
    let log = std::fs::read(format!("{dir}/actions.ndjson")).unwrap();
    let lines = log
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(bytes::Bytes::copy_from_slice)
        .collect();
    (config, lines)
}

/// Firings that stand once every message is applied in order: a retraction takes its firing
/// back, keyed by the message id (`rule/key`).
fn standing(messages: &[ActionEvent], rules: &[String]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for m in messages.iter().filter(|m| rules.contains(&m.source)) {
        match m.kind {
            "firing" => {
                let mut body: Value =
                    serde_json::from_str(&m.body).expect("a firing's body is JSON");
                // What compute's lines do not say: the message's kind, and whether it was late.
                let fields = body.as_object_mut().expect("an object");
                fields.remove("kind");
                fields.remove("late");
                assert!(
                    out.insert(m.id.clone(), body).is_none(),
                    "{} fired twice without a retraction between",
                    m.id
                );
            }
            "retraction" => {
                assert!(
                    out.remove(&m.id).is_some(),
                    "{} retracted without a firing",
                    m.id
                );
            }
            other => panic!("a rule sent a {other} message"),
        }
    }
    out
}

#[test]
fn an_embedded_engine_hands_its_channel_the_firings_compute_decides() {
    let _machine = crate::common::busy();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(firings_match_compute());
}

async fn firings_match_compute() {
    let (config, lines) = golden_actions();
    let rules: Vec<String> = config.rules.iter().map(|r| r.name.clone()).collect();
    let rules_with_holdout: Vec<String> = config
        .rules
        .iter()
        .filter(|r| r.holdout_bp > 0)
        .map(|r| r.name.clone())
        .collect();

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let engine = Engine::builder(config.clone())
        .workers(2)
        .actions_to(tx)
        .start()
        .unwrap();
    for chunk in lines.chunks(1_000) {
        let answer = engine.ingest(chunk.to_vec()).await.unwrap();
        assert!(answer.failed.is_none());
    }
    // Once the snapshot answers, every batch is reflected and its decisions were handed over.
    engine.snapshot().await.unwrap();
    engine.shutdown().await.unwrap();
    let mut messages = Vec::new();
    while let Ok(m) = rx.try_recv() {
        messages.push(m);
    }
    let live = standing(&messages, &rules);

    let options = PipelineOptions {
        track_identities: true,
        ..PipelineOptions::default()
    };
    let mut pipeline = Pipeline::new(config, options).unwrap();
    for line in &lines {
        pipeline.offer_bytes(line);
    }
    // Every firing standing on the channel is one compute decides (its group may differ: a
    // merge can move a person between treatment and holdout after the message went out).
    let all: Vec<Value> = pipeline.finish().unwrap().firings();
    let key = |f: &Value| format!("{}/{}", f["rule"], f["key"]);
    let live: BTreeMap<String, Value> = live.into_values().map(|f| (key(&f), f)).collect();
    let computed: BTreeMap<String, Value> =
        all.iter().map(|f| (key(f), decision(f.clone()))).collect();
    assert!(
        computed.len() > 100,
        "the golden set fires: {}",
        computed.len()
    );
    for (k, f) in &live {
        assert_eq!(
            computed.get(k),
            Some(&decision(f.clone())),
            "{k} was sent but compute does not fire it"
        );
    }
    // Rules without a holdout contact everyone they fire for: there the channel holds exactly
    // compute's firings.
    let holdout: Vec<&String> = rules_with_holdout.iter().collect();
    let open: BTreeMap<&String, &Value> = computed
        .iter()
        .filter(|(_, f)| !holdout.iter().any(|r| f["rule"] == r.as_str()))
        .collect();
    let sent: BTreeMap<String, Value> = live
        .iter()
        .filter(|(_, f)| !holdout.iter().any(|r| f["rule"] == r.as_str()))
        .map(|(k, f)| (k.clone(), decision(f.clone())))
        .collect();
    assert!(
        open.len() > 50,
        "rules without a holdout fire: {}",
        open.len()
    );
    assert_eq!(
        sent.len(),
        open.len(),
        "firings of rules without a holdout, sent vs computed"
    );
    for (k, f) in open {
        assert_eq!(
            sent.get(k),
            Some(f),
            "compute fires {k} but it was not sent"
        );
    }
}

/// What a firing decided, without what later events may still change (whether the person
/// converted, and who the person is and which group they fall in once identities merge) or
/// what only messages say (their kind, and whether they came late).
fn decision(mut firing: Value) -> Value {
    let fields = firing.as_object_mut().expect("a firing is an object");
    for volatile in ["converted", "kind", "late", "identities", "person", "group"] {
        fields.remove(volatile);
    }
    firing
}
