//! Money at its limits: the largest amounts sum exactly or are refused as `bad_amount`, in
//! `compute` and `serve` alike, values print as exact decimals, and negative amounts are
//! rejected (EVENTS.md: an amount is 0 or more; a refund is its own event).

use crate::common::server::{compute, Server};
use serde_json::{json, Value};

fn purchase(id: &str, user: &str, amount: &str) -> String {
    format!(
        r#"{{"id":"{id}","ts":1790812800000,"event":"order_paid","user":"{user}","props":{{"amount":{amount}}}}}"#
    )
}

fn spend(id: &str, amount: &str) -> String {
    format!(
        r#"{{"id":"{id}","ts":1790812800000,"event":"ad_spend","channel":"search_ads","props":{{"amount":{amount}}}}}"#
    )
}

/// The log: totals that land exactly on the largest kept sums, then events that would pass
/// them, then negative amounts.
fn log() -> Vec<String> {
    vec![
        purchase("p1", "a", "69999999999999.98"),
        purchase("p2", "b", "\"0.01\""),
        // Past 70 000 000 000 000.00 in total: refused, the total stays exact.
        purchase("p3", "c", "70000000000000"),
        purchase("p4", "c", "0.02"),
        // The largest amount alone is fine as spend, which has its own total; no more fits.
        spend("s1", "70000000000000"),
        spend("s2", "0.01"),
        purchase("n1", "d", "-5"),
        spend("n2", "\"-0.01\""),
        purchase("z1", "e", "0"),
    ]
}

/// `value` as the JSON text a client reads.
fn value(snapshot: &Value, metric: &str) -> String {
    let rows = snapshot["rows"].as_array().expect("rows");
    let row = rows
        .iter()
        .find(|r| r["metric"] == metric)
        .unwrap_or_else(|| panic!("a {metric} row in {snapshot}"));
    row["value"].to_string()
}

#[test]
fn the_largest_amounts_sum_exactly_or_are_refused_and_negatives_are_rejected() {
    let snapshot = compute(&log(), None);
    assert_eq!(snapshot["events"]["accepted"], 4, "{}", snapshot["events"]);
    assert_eq!(snapshot["events"]["rejected"], json!({"bad_amount": 5}));
    assert_eq!(value(&snapshot, "revenue"), "69999999999999.99");
    assert_eq!(value(&snapshot, "spend"), "70000000000000.0");
    let by_channel = value(&snapshot, "revenue_by_channel");
    assert_eq!(
        by_channel, "69999999999999.99",
        "the (none) channel holds it all"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_says_why_and_keeps_the_same_exact_totals() {
    let server = Server::start(&[], &[]);
    let client = reqwest::Client::new();
    let answer: Value = client
        .post(server.url("/v1/events"))
        .header("content-type", "application/x-ndjson")
        .body(log().join("\n"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["accepted"], 4, "{answer}");
    let details: Vec<(u64, String)> = answer["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            assert_eq!(i["reason"], "bad_amount", "{i}");
            (
                i["index"].as_u64().unwrap(),
                i["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let indexes: Vec<u64> = details.iter().map(|d| d.0).collect();
    assert_eq!(indexes, [2, 3, 5, 6, 7]);
    assert!(details[0].1.contains("total revenue"), "{}", details[0].1);
    assert!(details[2].1.contains("total spend"), "{}", details[2].1);
    assert!(details[3].1.contains("negative"), "{}", details[3].1);
    let text = client
        .get(server.url("/v1/rows?metric=revenue&metric=spend"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains(r#""value":69999999999999.99"#), "{text}");
    assert!(text.contains(r#""value":70000000000000.0"#), "{text}");
}
