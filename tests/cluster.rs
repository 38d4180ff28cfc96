//! `tidemark serve` over several processes (timely's cluster mode), against the real binary on
//! loopback: events posted at any node are judged once by process 0, every node serves the
//! snapshot `compute` makes of the whole log, rules fire once per cluster, a lost process takes
//! the cluster down until it is started again alone (the others take it back) or every process
//! is restarted, and nothing acknowledged is lost either way; a node pushes back while process
//! 0 does not answer, and arguments that cannot make a cluster are refused with what to fix.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common;
use crate::common::cluster::{
    bases, busy_run, cluster_args, health, loopback_addresses, metric_at, snapshot_converges,
    snapshot_differences, start_cluster, try_post, wait_health, wait_metric,
};
use crate::common::receiver::Receiver;
use crate::common::server::{
    binary, compute, compute_with_firings, config_file, fresh_data_dir, generated, post_lines,
    unpaid_rule_config, Server,
};
use serde_json::Value;

/// How long a cluster may take to connect, and a node to show what was posted elsewhere.
const LIMIT: Duration = Duration::from_secs(60);

/// How long the others may take to notice a process lost or stopped.
const LOSS: Duration = Duration::from_secs(30);

/// A fresh data directory for each of `n` processes.
fn data_dirs(n: usize) -> Vec<PathBuf> {
    (0..n).map(|_| fresh_data_dir()).collect()
}

/// A copy of the first page view of `lines` under a new event id `id`: an event that counts,
/// whose time lies within the log's.
fn page_view_as(lines: &[String], id: &str) -> String {
    let mut event: Value = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["event"] == "page_view" && e["ids"].is_object())
        .expect("the log has a page view");
    event["id"] = Value::String(id.to_string());
    event.to_string()
}

/// An identity of the log: `(type, value)` of the first event's first identity.
fn an_identity(lines: &[String]) -> (String, String) {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|e| {
            let (t, v) = e["ids"].as_object()?.iter().next()?;
            Some((t.clone(), v.as_str()?.to_string()))
        })
        .expect("the log names a person")
}

/// Adds an ingest answer's counts to `sums`.
fn add_counts(sums: &mut BTreeMap<&'static str, u64>, answer: &Value) {
    for k in ["accepted", "duplicates"] {
        *sums.entry(k).or_default() += answer[k].as_u64().unwrap_or_else(|| panic!("{answer}"));
    }
}

/// A delivery's `rule/key` when it is a firing (not a retraction or an alert).
fn firing_of(r: &common::receiver::Received) -> Option<String> {
    (r.body["kind"] == "firing").then(|| {
        format!(
            "{}/{}",
            r.body["rule"].as_str().unwrap_or("?"),
            r.body["key"].as_str().unwrap_or("?")
        )
    })
}

/// Waits until every node of `urls` serves `expected` (compute's snapshot of the log), except
/// for the duplicates count: requests sent again after a 503 may come back in part as
/// duplicates, while each event is accepted once.
async fn converges_with_resends(client: &reqwest::Client, urls: &[String], expected: &Value) {
    let want_accepted = &expected["events"]["accepted"];
    for u in urls {
        snapshot_converges(client, u, LIMIT, |s| {
            let mut s = s.clone();
            let mut d = Vec::new();
            if &s["events"]["accepted"] != want_accepted {
                d.push(format!(
                    "events.accepted: expected {want_accepted}, got {}",
                    s["events"]["accepted"]
                ));
            }
            s["events"]["duplicates"] = expected["events"]["duplicates"].clone();
            d.extend(snapshot_differences(expected, &s));
            d
        })
        .await;
    }
}

/// Two processes: the HTTP servers come up at once and answer 503 until both are connected;
/// events posted in chunks alternating between the nodes, and one event id posted to both at
/// once, are judged once across the cluster (the answers' counts add up to compute's); each
/// node serves compute's snapshot; look-ups are process 0's; SIGTERM to process 0 stops the
/// cluster.
#[test]
fn two_processes_judge_each_event_once_and_every_node_serves_compute_s_snapshot() {
    busy_run(async {
        let lines = generated(300, 20);
        let twice = page_view_as(&lines, "cluster-posted-twice");
        let mut all = lines.clone();
        all.extend([twice.clone(), twice.clone()]);
        let expected = compute(&all, None);

        let client = reqwest::Client::new();
        let peers = loopback_addresses(2);
        let data = data_dirs(2);
        let args = |i: usize| cluster_args(&peers, i);
        let first_args = args(0);
        let first = Server::start_in(
            &data[0],
            &first_args.iter().map(String::as_str).collect::<Vec<_>>(),
            &[],
        );
        // Process 0 listens at once, and says it waits for the cluster while process 1 is not there.
        let (status, body) = health(&client, &first.url("")).await;
        assert_eq!(
            status, 503,
            "/healthz before the cluster is whole: {body:?}"
        );
        assert!(
            body.to_lowercase().contains("wait"),
            "/healthz says it waits for the cluster's processes: {body:?}"
        );
        let second_args = args(1);
        let second = Server::start_in(
            &data[1],
            &second_args.iter().map(String::as_str).collect::<Vec<_>>(),
            &[],
        );
        let nodes = vec![first, second];
        let urls = bases(&nodes);
        let started = Instant::now();
        let bodies = wait_health(&client, &urls, 200, LIMIT).await;
        assert!(bodies.iter().all(|b| b.trim() == "ok"), "{bodies:?}");
        eprintln!("the cluster of 2 was whole in {:.1?}", started.elapsed());
        for u in &urls {
            wait_metric(&client, u, "tidemark_dataflow_up", 1, LIMIT).await;
        }

        // The log in chunks, alternating between the nodes; halfway, one new event id at both
        // nodes at the same moment.
        let mut sums = BTreeMap::new();
        let chunks: Vec<&[String]> = lines.chunks(250).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            if i == chunks.len() / 2 {
                let one = [twice.clone()];
                let (at_0, at_1) = (nodes[0].url("/v1/events"), nodes[1].url("/v1/events"));
                let (a, b) = tokio::join!(
                    post_lines(&client, &at_0, &one),
                    post_lines(&client, &at_1, &one),
                );
                let sum = |k: &str| a[k].as_u64().unwrap() + b[k].as_u64().unwrap();
                assert_eq!(
                    (sum("accepted"), sum("duplicates")),
                    (1, 1),
                    "one id posted at two nodes at once: accepted at one, a duplicate at the \
                     other: {a} / {b}"
                );
                add_counts(&mut sums, &a);
                add_counts(&mut sums, &b);
            }
            let answer = post_lines(&client, &nodes[i % 2].url("/v1/events"), chunk).await;
            let judged: u64 = ["accepted", "duplicates", "rejected"]
                .iter()
                .map(|k| answer[k].as_u64().unwrap_or_else(|| panic!("{answer}")))
                .sum();
            assert_eq!(judged, chunk.len() as u64, "every line judged: {answer}");
            add_counts(&mut sums, &answer);
        }
        assert_eq!(
            (sums["accepted"], sums["duplicates"]),
            (
                expected["events"]["accepted"].as_u64().unwrap(),
                expected["events"]["duplicates"].as_u64().unwrap()
            ),
            "the answers' counts add up to compute's (dedupe is exact across the cluster)"
        );

        for (i, u) in urls.iter().enumerate() {
            let started = Instant::now();
            snapshot_converges(&client, u, LIMIT, |s| snapshot_differences(&expected, s)).await;
            eprintln!(
                "process {i} served compute's snapshot after {:.1?}",
                started.elapsed()
            );
        }

        // Look-ups are answered by process 0; process 1 sends the client there.
        let (kind, value) = an_identity(&lines);
        let path = format!("/v1/identities/{kind}/{value}");
        let at_0 = client.get(nodes[0].url(&path)).send().await.unwrap();
        assert_eq!(at_0.status(), 200, "{path} at process 0");
        let at_1 = client.get(nodes[1].url(&path)).send().await.unwrap();
        assert_eq!(at_1.status(), 421, "{path} at process 1");
        let why: Value = at_1.json().await.expect("a JSON error");
        assert!(
            why["error"]
                .as_str()
                .is_some_and(|e| e.contains("process 0")),
            "the error names process 0: {why}"
        );

        // SIGTERM to process 0 stops the cluster: it exits cleanly, process 1 is no longer healthy.
        let mut nodes = nodes;
        let status = nodes[0]
            .terminate(LOSS)
            .expect("process 0 stops within 30 s of SIGTERM");
        assert!(status.success(), "process 0 exits cleanly: {status:?}");
        wait_health(&client, &urls[1..], 503, LOSS).await;
    });
}

/// Three processes with a rule: the log posted in chunks across the nodes; every firing reaches
/// the webhook exactly once (only process 0 sends actions), they are compute's firings, and
/// every node serves compute's snapshot.
#[test]
fn three_processes_fire_each_rule_once_per_cluster() {
    busy_run(async {
        let hook = Receiver::start(&[]);
        let cfg = unpaid_rule_config(&hook.url("/coupon"), "");
        let lines = generated(300, 14);
        let (expected, want) = compute_with_firings(&lines, &cfg);
        assert!(
            want.len() >= 5,
            "the log makes too few firings to test: {}",
            want.len()
        );

        let client = reqwest::Client::new();
        let peers = loopback_addresses(3);
        let started = Instant::now();
        let nodes = start_cluster(&data_dirs(3), &peers, &["--config", cfg.to_str().unwrap()]);
        let urls = bases(&nodes);
        wait_health(&client, &urls, 200, LIMIT).await;
        eprintln!("the cluster of 3 was whole in {:.1?}", started.elapsed());

        for (i, chunk) in lines.chunks(200).enumerate() {
            post_lines(&client, &format!("{}/v1/events", urls[i % 3]), chunk).await;
        }
        for u in &urls {
            snapshot_converges(&client, u, LIMIT, |s| snapshot_differences(&expected, s)).await;
        }

        let firings = |got: &[common::receiver::Received]| -> Vec<String> {
            got.iter().filter_map(firing_of).collect()
        };
        hook.wait_for(LIMIT, "every firing of compute's", |got| {
            firings(got).iter().collect::<BTreeSet<_>>().len() >= want.len()
        });
        // Process 0 has logged every delivery; the others deliver nothing.
        wait_metric(
            &client,
            &urls[0],
            "tidemark_action_deliveries_total",
            want.len() as u64,
            LIMIT,
        )
        .await;
        for u in &urls[1..] {
            let sent = metric_at(&client, u, "tidemark_action_deliveries_total").await;
            assert!(
                sent.unwrap_or(0) == 0,
                "{u} delivered {sent:?} actions: only process 0 sends them"
            );
        }
        // A second copy from another node would come about when the first did.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let received = hook.received();
        let sent = firings(&received);
        let once: BTreeSet<String> = sent.iter().cloned().collect();
        assert_eq!(once, want, "the firings delivered are compute's");
        assert_eq!(
            sent.len(),
            want.len(),
            "each firing is delivered once per cluster: {sent:?}"
        );
        let keys: Vec<&String> = received.iter().filter_map(|r| r.key.as_ref()).collect();
        let unique_keys: BTreeSet<&&String> = keys.iter().collect();
        assert_eq!(
            keys.len(),
            unique_keys.len(),
            "no Idempotency-Key twice: {keys:?}"
        );
        assert!(
            received.iter().all(|r| r.body["kind"] == "firing"),
            "nothing retracted: {received:#?}"
        );

        // Explanations are process 0's; another node sends the client there.
        let key = want.iter().next().unwrap().strip_prefix("unpaid/").unwrap();
        let key = percent_encoding::utf8_percent_encode(key, percent_encoding::NON_ALPHANUMERIC);
        let path = format!("/v1/rules/unpaid/explain?key={key}");
        let at_0 = client
            .get(format!("{}{path}", urls[0]))
            .send()
            .await
            .unwrap();
        assert_eq!(at_0.status(), 200, "{path} at process 0");
        let at_2 = client
            .get(format!("{}{path}", urls[2]))
            .send()
            .await
            .unwrap();
        assert_eq!(at_2.status(), 421, "{path} at process 2");
        let why: Value = at_2.json().await.expect("a JSON error");
        assert!(
            why["error"]
                .as_str()
                .is_some_and(|e| e.contains("process 0")),
            "the error names process 0: {why}"
        );
    });
}

/// Three processes, process 1 SIGKILLed after half the log was acknowledged: the others answer
/// 503 on `/healthz` (saying to restart every process) and show `tidemark_dataflow_up 0`; every
/// process restarted (on new ports, process 0 on its data directory) makes a cluster again
/// that, once the client has sent the rest and whatever was not acknowledged, serves compute's
/// snapshot of the whole log at every node.
#[test]
fn a_lost_process_stops_the_cluster_and_a_restart_of_every_process_loses_nothing() {
    busy_run(async {
        let lines = generated(300, 14);
        let expected = compute(&lines, None);
        let chunks: Vec<Vec<String>> = lines.chunks(150).map(<[String]>::to_vec).collect();
        let half = chunks.len() / 2;

        let client = reqwest::Client::new();
        let data = data_dirs(3);
        let mut nodes = start_cluster(&data, &loopback_addresses(3), &[]);
        let urls = bases(&nodes);
        wait_health(&client, &urls, 200, LIMIT).await;
        for u in &urls {
            wait_metric(&client, u, "tidemark_dataflow_up", 1, LIMIT).await;
        }
        let mut accepted = 0;
        for (i, chunk) in chunks[..half].iter().enumerate() {
            accepted += post_lines(&client, &format!("{}/v1/events", urls[i % 3]), chunk).await
                ["accepted"]
                .as_u64()
                .unwrap();
        }

        // Process 1 dies at once after the last acknowledgement.
        let _ = nodes[1].child.kill(); // SIGKILL
        let _ = nodes[1].child.wait();
        let survivors = [urls[0].clone(), urls[2].clone()];
        let started = Instant::now();
        let bodies = wait_health(&client, &survivors, 503, LOSS).await;
        eprintln!(
            "the others answered 503 {:.1?} after the kill",
            started.elapsed()
        );
        for body in &bodies {
            assert!(
                body.to_lowercase().contains("restart"),
                "/healthz says to restart every process: {body:?}"
            );
        }
        for u in &survivors {
            wait_metric(&client, u, "tidemark_dataflow_up", 0, LOSS).await;
        }
        // A client that sends meanwhile gets no acknowledgement, or one that holds.
        let mut unsent: Vec<Vec<String>> = Vec::new();
        match try_post(&client, &urls[2], &chunks[half], Duration::from_secs(10)).await {
            Ok(answer) => {
                eprintln!("process 2 acknowledged a chunk with the cluster down: {answer}");
                accepted += answer["accepted"].as_u64().unwrap();
            }
            Err(e) => {
                eprintln!("process 2 with the cluster down: {e}");
                unsent.push(chunks[half].clone());
            }
        }
        unsent.extend(chunks[half + 1..].iter().cloned());
        for i in [0, 2] {
            assert!(
                nodes[i].terminate(LOSS).is_some(),
                "process {i} of a lost cluster stops within 30 s of SIGTERM"
            );
        }
        drop(nodes);
        eprintln!("{accepted} events acknowledged before the restart");

        // Every process again, on new ports; process 0 on the data directory it had.
        let started = Instant::now();
        let nodes = start_cluster(&data, &loopback_addresses(3), &[]);
        let urls = bases(&nodes);
        wait_health(&client, &urls, 200, LIMIT).await;
        eprintln!(
            "the restarted cluster was whole in {:.1?}",
            started.elapsed()
        );
        for u in &urls {
            wait_metric(&client, u, "tidemark_dataflow_up", 1, LIMIT).await;
        }
        for (i, chunk) in unsent.iter().enumerate() {
            post_lines(&client, &format!("{}/v1/events", urls[i % 3]), chunk).await;
        }
        // A request the cluster took in part before it answered is taken again as duplicates; the
        // accepted events are the log's, each once.
        converges_with_resends(&client, &urls, &expected).await;
    });
}

/// Posts `lines` to `{base}/v1/events` until a node takes them (a cluster that lost a process
/// answers 503 until it is whole again); the answer that took them.
async fn post_until_taken(client: &reqwest::Client, base: &str, lines: &[String]) -> Value {
    let deadline = Instant::now() + LIMIT;
    loop {
        match try_post(client, base, lines, Duration::from_secs(10)).await {
            Ok(answer) => return answer,
            Err(e) if Instant::now() < deadline => {
                eprintln!("{base} did not take a chunk yet: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("{base} took no chunk within {LIMIT:?}: {e}"),
        }
    }
}

/// Three processes with a rule: process 1, then process 0, SIGKILLed mid-stream and each
/// started again alone, on the same peer address (and process 0 on its data directory). The
/// others say on `/healthz` that they wait for it, then take it back; once the client has sent
/// the rest (and whatever a node did not take meanwhile), every node serves compute's snapshot
/// of the whole log, and each of compute's firings reached the webhook: once, or, for a firing
/// delivered just before process 0 was killed, sent again after its restart under the same
/// Idempotency-Key (its delivery was not logged yet).
#[test]
fn a_lost_process_started_again_alone_rejoins_and_nothing_is_lost_or_sent_twice() {
    busy_run(async {
        let hook = Receiver::start(&[]);
        let cfg = unpaid_rule_config(&hook.url("/coupon"), "");
        let cfg_arg = cfg.display().to_string();
        let lines = generated(300, 14);
        let (expected, want) = compute_with_firings(&lines, &cfg);
        assert!(want.len() >= 5, "too few firings to test: {}", want.len());
        let thirds: Vec<Vec<String>> = lines
            .chunks(lines.len().div_ceil(3))
            .map(<[String]>::to_vec)
            .collect();

        let client = reqwest::Client::new();
        let data = data_dirs(3);
        let peers = loopback_addresses(3);
        let args = ["--config", cfg_arg.as_str()];
        let mut nodes = start_cluster(&data, &peers, &args);
        wait_health(&client, &bases(&nodes), 200, LIMIT).await;

        // Deliveries received before process 0 was started again (it was dead, and the others
        // had noticed, so every delivery it made before the kill had arrived).
        let mut before_0_again = 0;
        for (round, lost) in [1usize, 0].into_iter().enumerate() {
            let urls = bases(&nodes);
            for (i, chunk) in thirds[round].chunks(150).enumerate() {
                post_until_taken(&client, &urls[i % 3], chunk).await;
            }
            let _ = nodes[lost].child.kill(); // SIGKILL
            let _ = nodes[lost].child.wait();
            let survivors: Vec<String> = (0..3)
                .filter(|i| *i != lost)
                .map(|i| urls[i].clone())
                .collect();
            let bodies = wait_health(&client, &survivors, 503, LOSS).await;
            for body in &bodies {
                assert!(
                    body.contains("restart the lost process"),
                    "/healthz says the others wait for the lost process: {body:?}"
                );
            }
            // Started again alone, with the same flags and peer address.
            let mut again: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            again.extend(cluster_args(&peers, lost));
            let again: Vec<&str> = again.iter().map(String::as_str).collect();
            if lost == 0 {
                before_0_again = hook.received().len();
            }
            let started = Instant::now();
            nodes[lost] = common::server::Server::start_in(&data[lost], &again, &[]);
            wait_health(&client, &bases(&nodes), 200, LIMIT).await;
            eprintln!(
                "process {lost} started again; the cluster was whole in {:.1?}",
                started.elapsed()
            );
        }
        let urls = bases(&nodes);
        for (i, chunk) in thirds[2].chunks(150).enumerate() {
            post_until_taken(&client, &urls[i % 3], chunk).await;
        }

        converges_with_resends(&client, &urls, &expected).await;
        let firing = firing_of;
        hook.wait_for(LIMIT, "every firing of compute's", |got| {
            got.iter().filter_map(firing).collect::<BTreeSet<_>>().len() >= want.len()
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        let received = hook.received();
        let once: BTreeSet<String> = received.iter().filter_map(firing).collect();
        assert_eq!(once, want, "the firings delivered are compute's");
        // Each firing under one Idempotency-Key; a second delivery only by process 0 started
        // again, of a firing delivered before its kill.
        let mut first: BTreeMap<String, (usize, Option<String>)> = BTreeMap::new();
        for (i, r) in received.iter().enumerate() {
            let Some(f) = firing(r) else { continue };
            match first.get(&f) {
                None => {
                    first.insert(f, (i, r.key.clone()));
                }
                Some((j, key)) => {
                    assert_eq!(&r.key, key, "{f} sent again under another key");
                    assert!(
                        *j < before_0_again && i >= before_0_again,
                        "{f} delivered twice (deliveries {j} and {i}; process 0 was started again after {before_0_again})"
                    );
                }
            }
        }
        let again = received.iter().filter_map(firing).count() - once.len();
        eprintln!("{again} firings sent again after process 0's restart, under the same key");
    });
}

/// Process 0 without a data directory (`serve.wal = false`) cannot rebuild what it had: when
/// process 1 is lost, its `/healthz` says so and to restart every process, instead of waiting.
#[test]
fn process_0_without_a_data_directory_asks_for_every_process_to_restart() {
    busy_run(async {
        let client = reqwest::Client::new();
        let peers = loopback_addresses(2);
        let cfg = config_file("[serve]\nwal = false\n");
        let cfg = cfg.display().to_string();
        let mut nodes = start_cluster(&data_dirs(2), &peers, &["--config", &cfg]);
        wait_health(&client, &bases(&nodes), 200, LIMIT).await;
        let _ = nodes[1].child.kill(); // SIGKILL
        let _ = nodes[1].child.wait();
        let bodies = wait_health(&client, &bases(&nodes)[..1], 503, LOSS).await;
        assert!(
            bodies[0].contains("serve.wal = false") && bodies[0].contains("restart every process"),
            "/healthz at process 0 says it cannot rebuild and to restart every process: {:?}",
            bodies[0]
        );
    });
}

/// Sends `signal` (`STOP`, `CONT`) to process `pid`.
fn signal(pid: u32, signal: &str) {
    let sent = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status();
    assert!(
        sent.is_ok_and(|s| s.success()),
        "kill -{signal} {pid} failed"
    );
}

/// A follower pushes back while process 0 does not answer: with process 0 stopped (SIGSTOP),
/// the request it relayed waits; once that has waited longer than `serve.max_lag`, the next
/// requests get 429 with `Retry-After` and are not taken, and `/metrics` counts them. After
/// SIGCONT the waiting request is answered, the rest is taken, and both nodes serve compute's
/// snapshot: nothing was lost or taken twice.
#[test]
fn a_follower_pushes_back_while_process_0_does_not_answer() {
    busy_run(async {
        let lines = generated(300, 14);
        let expected = compute(&lines, None);
        let client = reqwest::Client::new();
        let peers = loopback_addresses(2);
        let cfg = config_file("[serve]\nmax_lag = \"300ms\"\n");
        let cfg = cfg.display().to_string();
        let nodes = start_cluster(&data_dirs(2), &peers, &["--config", &cfg]);
        let urls = bases(&nodes);
        wait_health(&client, &urls, 200, LIMIT).await;
        let (first, rest) = lines.split_at(lines.len() / 2);

        signal(nodes[0].child.id(), "STOP");
        let waiting = {
            let (client, base, first) = (client.clone(), urls[1].clone(), first.to_vec());
            tokio::spawn(async move { try_post(&client, &base, &first, LIMIT).await })
        };
        // Past max_lag (300 ms) for the relayed request, the next one is turned away at once.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let pushed_back = client
            .post(format!("{}/v1/events", urls[1]))
            .header("Content-Type", "application/x-ndjson")
            .body(rest[0].clone() + "\n")
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("process 1 answers at once");
        assert_eq!(pushed_back.status(), 429);
        assert!(pushed_back.headers().contains_key("retry-after"));
        let said = pushed_back.text().await.unwrap();
        assert!(said.contains("max_lag"), "{said}");
        let counted = metric_at(&client, &urls[1], "tidemark_ingest_pushed_back_total").await;
        assert!(counted.is_some_and(|n| n >= 1), "{counted:?}");
        let relayed = metric_at(&client, &urls[1], "tidemark_cluster_relayed_waiting").await;
        assert_eq!(
            relayed,
            Some(1),
            "the one relayed request waits for process 0"
        );
        assert!(
            !waiting.is_finished(),
            "the relayed request waits for process 0"
        );

        signal(nodes[0].child.id(), "CONT");
        let answer = waiting
            .await
            .unwrap()
            .expect("the relayed request is answered");
        let relayed = metric_at(&client, &urls[1], "tidemark_cluster_relayed_waiting").await;
        assert_eq!(relayed, Some(0), "answered, nothing waits");
        let at_0 = metric_at(&client, &urls[0], "tidemark_cluster_relayed_waiting").await;
        assert_eq!(at_0, None, "process 0 relays nothing");
        let judged = answer["accepted"].as_u64().unwrap() + answer["duplicates"].as_u64().unwrap();
        assert_eq!(judged, first.len() as u64, "{answer}");
        // The rest, sent again on 429 as a client would.
        for chunk in rest.chunks(200) {
            let deadline = Instant::now() + LIMIT;
            while let Err(e) = try_post(&client, &urls[1], chunk, LIMIT).await {
                assert!(Instant::now() < deadline, "{e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        for u in &urls {
            snapshot_converges(&client, u, LIMIT, |s| {
                let mut d = snapshot_differences(&expected, s);
                if s["events"] != expected["events"] {
                    d.push(format!(
                        "events: {} against {}",
                        s["events"], expected["events"]
                    ));
                }
                d
            })
            .await;
        }
    })
}

/// Runs `tidemark serve` with `args` and no cluster to join; answers its exit status and
/// standard error. Panics if it still runs after 30 s (it would be serving).
fn serve_refused(args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(fresh_data_dir())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tidemark runs");
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut { stderr }, &mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve {args:?} still runs after 30 s instead of refusing its arguments");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, reader.join().unwrap())
}

/// Arguments that cannot make a cluster are refused at once, with the flag to fix, before any
/// server starts.
#[test]
fn arguments_that_make_no_cluster_are_refused_with_what_to_fix() {
    let peers = loopback_addresses(3).join(",");
    let cases: [(&[&str], &[&str]); 2] = [
        (
            &[
                "-w",
                "1",
                "--processes",
                "3",
                "--process",
                "3",
                "--peers",
                &peers,
            ],
            &["--process"],
        ),
        (
            &[
                "-w",
                "1",
                "--processes",
                "2",
                "--process",
                "0",
                "--peers",
                &peers,
            ],
            &["--peers", "--processes"],
        ),
    ];
    for (args, names) in cases {
        let (status, stderr) = serve_refused(args);
        assert!(!status.success(), "serve {args:?} exited {status:?}");
        assert!(
            names.iter().any(|n| stderr.contains(n)),
            "serve {args:?}: the error names {names:?}: {stderr}"
        );
        assert!(
            !stderr.contains("listening on"),
            "serve {args:?} started a server: {stderr}"
        );
    }
    // The same through the configuration: three peers there, two processes on the command line.
    let quoted: Vec<String> = peers.split(',').map(|p| format!("\"{p}\"")).collect();
    let cfg = config_file(&format!(
        "[cluster]\nprocess = 0\npeers = [{}]\n",
        quoted.join(", ")
    ));
    let args = [
        "--config",
        cfg.to_str().unwrap(),
        "-w",
        "1",
        "--processes",
        "2",
        "--process",
        "0",
    ];
    let (status, stderr) = serve_refused(&args);
    assert!(!status.success(), "serve {args:?} exited {status:?}");
    assert!(
        stderr.contains("--processes") || stderr.contains("peers"),
        "serve {args:?}: the error says --processes and the peers disagree: {stderr}"
    );
    assert!(
        !stderr.contains("listening on"),
        "serve {args:?} started a server: {stderr}"
    );
}

/// The cluster given by each process's `[cluster]` section instead of flags: the processes
/// connect, and every node serves compute's snapshot of events posted at process 1.
#[test]
fn the_cluster_section_of_the_configuration_makes_a_cluster_too() {
    busy_run(async {
        let lines = generated(80, 5);
        let expected = compute(&lines, None);
        let peers = loopback_addresses(2);
        let quoted: Vec<String> = peers.iter().map(|p| format!("\"{p}\"")).collect();
        let configs: Vec<PathBuf> = (0..2)
            .map(|i| {
                config_file(&format!(
                    "[cluster]\nprocess = {i}\npeers = [{}]\n",
                    quoted.join(", ")
                ))
            })
            .collect();
        let data = data_dirs(2);
        let nodes = common::cluster::start_together(2, |i| {
            Server::start_in(
                &data[i],
                &["--config", configs[i].to_str().unwrap(), "-w", "1"],
                &[],
            )
        });
        let client = reqwest::Client::new();
        let urls = bases(&nodes);
        wait_health(&client, &urls, 200, LIMIT).await;
        for chunk in lines.chunks(300) {
            post_lines(&client, &format!("{}/v1/events", urls[1]), chunk).await;
        }
        for u in &urls {
            snapshot_converges(&client, u, LIMIT, |s| snapshot_differences(&expected, s)).await;
        }
    });
}
