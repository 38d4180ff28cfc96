//! Erasure of a person: the rows after it equal a recompute over the log without the person's
//! events, in every batching, with merged identities, funnels, cohorts and rules.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::common;
use crate::properties::{config_with, firings, random_log, ACTIONS};
use proptest::prelude::*;
use tidemark::engine::EngineOptions;
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
        let cfg = config_with(seed as usize, ACTIONS);
        let lines = random_log(seed, events, links);
        let cut = ((lines.len() as f64 * cut) as usize).max(1);
        let workers = 1 + (seed % 2) as usize;
        let options = PipelineOptions {
            engine: EngineOptions { workers, track_identities: true, ..EngineOptions::default() },
            batch_events: batch,
            wall_clock: false,
        };
        let plan = Arc::new(Plan::new(cfg.clone()));
        let mut p = Pipeline::new(plan.clone(), options.clone()).expect("engine starts");
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

        let erased = p.erase(&target.0, &target.1).expect("the identity is known");
        prop_assert_eq!(erased.events as usize, gone.len());
        let told: BTreeSet<Id> = erased.identities.into_iter().collect();
        prop_assert_eq!(told, person);
        prop_assert!(p.erase(&target.0, &target.1).is_none(), "erased twice");
        if restart {
            // A checkpoint taken after the erasure carries it on: the erased ids stay
            // duplicates and the erased identities stay unknown.
            let state = p.state().expect("a state");
            p.finish().expect("engine finishes");
            p = Pipeline::new(plan, options).expect("engine starts");
            p.restore(state).expect("the state is restored");
            prop_assert!(p.erase(&target.0, &target.1).is_none(), "erased again after a restart");
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
