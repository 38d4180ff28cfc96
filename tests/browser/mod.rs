//! The dashboard in a real headless chromium: every number it shows equals the API's row as the
//! page formats it, new events show without a reload, and screenshots of the demo for people.
//! A page on another origin cannot ingest or subscribe (`cross_origin`).
//! The tests are ignored unless asked for (`-- --ignored browser::`), and then fail without /usr/bin/chromium.

mod cdp;
mod cross_origin;
mod format;
mod hover;
mod server;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use self::cdp::Browser;
use self::format::matches;
use self::server::{generate, Server, TIDEMARK};

const WAIT: Duration = Duration::from_secs(90);

/// One number on the page: its section, metric, dims (JSON as the page holds it), and text.
#[derive(Debug, serde::Deserialize)]
struct Shown {
    section: String,
    metric: String,
    dims: String,
    text: String,
}

async fn shown(browser: &mut Browser) -> Vec<Shown> {
    let text = browser
        .eval(
            "JSON.stringify([...document.querySelectorAll('[data-metric]')].map((e) => ({
               section: (e.closest('section') || {}).id || '', metric: e.getAttribute('data-metric'),
               dims: e.getAttribute('data-dims'), text: e.textContent })))",
        )
        .await;
    serde_json::from_str(text.as_str().expect("a JSON string")).expect("shown numbers")
}

/// The API's rows keyed by metric and dims as compact JSON in the row's key order.
fn keyed(rows: &Value) -> BTreeMap<(String, String), Value> {
    rows["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            let key = (
                r["metric"].as_str().expect("metric").to_string(),
                r["dims"].to_string(),
            );
            (key, r["value"].clone())
        })
        .collect()
}

/// Distinct rows of `metrics` shown in `section`.
fn keys_in(shown: &[Shown], section: &str, metrics: &[&str]) -> BTreeSet<(String, String)> {
    shown
        .iter()
        .filter(|s| s.section == section && metrics.contains(&s.metric.as_str()))
        .map(|s| (s.metric.clone(), s.dims.clone()))
        .collect()
}

/// API rows of `metrics` whose dims pass `keep`.
fn keys_of(
    rows: &BTreeMap<(String, String), Value>,
    metrics: &[&str],
    keep: impl Fn(&Value) -> bool,
) -> BTreeSet<(String, String)> {
    rows.keys()
        .filter(|(m, d)| {
            metrics.contains(&m.as_str()) && keep(&serde_json::from_str(d).expect("dims"))
        })
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium; run with: cargo test --release --test integration -- --ignored browser::"]
async fn every_number_on_the_dashboard_is_the_api_row_and_new_events_show_without_reload() {
    cdp::require();
    // The demo's rules and alerts, so that the campaigns and alerts sections have something.
    let config = std::env::temp_dir().join(format!("tidemark-browser-{}.toml", std::process::id()));
    std::fs::write(&config, tidemark::io::demo::DEMO_CONFIG).expect("write the config");
    let server = Server::start(&["--config", config.to_str().unwrap()]);
    let report = server
        .post_events(generate(&["--persons", "300", "--days", "14"]))
        .await;
    assert!(
        report["accepted"].as_u64().unwrap_or(0) > 1000,
        "the log is accepted: {report}"
    );
    let time = report["time"].as_i64().expect("ingest time");
    server.get("/v1/snapshot").await; // answers once everything accepted is reflected
    let rows = keyed(&server.get("/v1/rows").await);

    let mut browser = Browser::start().await;
    browser.viewport(1366, 900, 1.0, false).await;
    browser.navigate(&format!("{}/", server.base)).await;
    let reached = format!("window.tidemark && window.tidemark.progress >= {time}");
    browser
        .wait_for(&reached, WAIT, "the page shows the ingested log")
        .await;
    let badge = browser.eval("document.getElementById('demo').hidden").await;
    assert_eq!(badge, json!(true), "no demo badge without --demo");
    let shown = shown(&mut browser).await;

    let mut wrong = Vec::new();
    for s in &shown {
        match rows.get(&(s.metric.clone(), s.dims.clone())) {
            None => wrong.push(format!(
                "{} {} shows {:?} but the API has no such row",
                s.metric, s.dims, s.text
            )),
            Some(v) => {
                if let Err(e) = matches(&s.metric, &s.text, v) {
                    wrong.push(format!("{} {} in #{}: {e}", s.metric, s.dims, s.section));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} shown numbers are wrong:\n{}",
        wrong.len(),
        shown.len(),
        wrong.join("\n")
    );
    eprintln!("{} shown numbers equal their API rows", shown.len());

    // Each section shows what it should, so a section that renders nothing fails here.
    let dau_days = keys_of(&rows, &["dau"], |_| true);
    let today = dau_days
        .iter()
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .filter_map(|d| d["day"].as_str().map(String::from))
        .max()
        .expect("dau rows");
    let on_today = |d: &Value| {
        d["hour"]
            .as_str()
            .is_some_and(|h| h.starts_with(&format!("{today}T")))
    };
    let last_funnel_day = keys_of(&rows, &["funnel"], |_| true)
        .iter()
        .filter_map(|(_, d)| {
            serde_json::from_str::<Value>(d).ok()?["day"]
                .as_str()
                .map(String::from)
        })
        .max()
        .expect("funnel rows");
    let kpis: usize = ["dau", "wau", "mau", "stickiness", "new_users", "revenue"]
        .iter()
        .map(|m| keys_in(&shown, &format!("kpi-{m}"), &[m]).len())
        .sum();
    assert!(
        kpis >= 10,
        "the six KPI cards show today and yesterday: {kpis} numbers"
    );
    let activity = keys_in(&shown, "activity", &["dau", "wau", "mau", "stickiness"]);
    assert_eq!(
        activity.len(),
        28,
        "the activity table shows 7 days x 4 metrics: {activity:?}"
    );
    assert_eq!(
        keys_in(&shown, "hourly", &["hau"]),
        keys_of(&rows, &["hau"], on_today),
        "every hour of {today}"
    );
    let money = ["cac_total", "roas_total"];
    assert_eq!(
        keys_in(&shown, "acquisition", &money),
        keys_of(&rows, &money, |_| true),
        "CAC and ROAS of every channel"
    );
    let channels = keys_in(&shown, "acquisition", &["new_users_by_channel"]).len();
    assert!(channels >= 3, "new users today by channel: {channels}");
    assert_eq!(
        keys_in(&shown, "retention", &["retention_rate", "new_users"]),
        keys_of(&rows, &["retention_rate", "new_users"], |_| true),
        "the heat map shows every cohort and day offset of a 14-day log"
    );
    let funnel = ["funnel", "funnel_conversion"];
    assert_eq!(
        keys_in(&shown, "funnels", &funnel),
        keys_of(&rows, &funnel, |d| d["day"] == json!(last_funnel_day)),
        "the funnel of its latest day, every step"
    );
    let ratios = keys_in(
        &shown,
        "ratios",
        &["ratio", "ratio_numerator", "ratio_denominator"],
    );
    assert!(
        ratios.len() >= 9,
        "three ratios with value, numerator, denominator: {ratios:?}"
    );
    let campaign = ["trigger_conversion_rate", "trigger_lift", "trigger_pending"];
    let shown_campaign = keys_in(&shown, "campaigns", &campaign);
    assert!(
        shown_campaign.is_superset(&keys_of(&rows, &["trigger_lift"], |_| true)),
        "every rule's lift: {shown_campaign:?}"
    );
    assert!(
        shown_campaign
            .iter()
            .any(|(m, _)| m == "trigger_conversion_rate"),
        "conversion rates: {shown_campaign:?}"
    );
    browser
        .wait_for(
            "document.querySelectorAll('#alerts tr[data-alert]').length === 2",
            WAIT,
            "both alerts are listed with their states",
        )
        .await;

    // One new person active today: the page follows without a reload.
    let dau_key = ("dau".to_string(), json!({"day": today}).to_string());
    let before = rows[&dau_key].as_i64().expect("dau count");
    browser.eval("window.__same_page = 'yes'").await;
    let event = json!({"id": "browser-late-1", "ts": format!("{today}T12:34:56Z"), "event": "page_view",
                       "ids": {"openid": "browser-late-person"}});
    let report = server.post_events(format!("{event}\n").into_bytes()).await;
    assert_eq!(
        report["accepted"], 1,
        "the late event is accepted: {report}"
    );
    server.get("/v1/snapshot").await;
    let now = keyed(
        &server
            .get(&format!("/v1/rows?metric=dau&day={today}"))
            .await,
    );
    let after = now[&dau_key].as_i64().expect("dau count");
    assert_eq!(after, before + 1, "the API counts the new person");
    let reached = format!("window.tidemark.progress >= {}", report["time"]);
    browser
        .wait_for(&reached, WAIT, "the page shows the late event")
        .await;
    let dau_today: Vec<Shown> = shown_of(&mut browser, &dau_key).await;
    assert!(
        dau_today.len() >= 2,
        "today's DAU is shown in the KPI card and the table: {dau_today:?}"
    );
    for s in &dau_today {
        matches("dau", &s.text, &json!(after)).unwrap_or_else(|e| panic!("#{}: {e}", s.section));
    }
    assert_eq!(
        browser.eval("window.__same_page").await,
        json!("yes"),
        "no reload"
    );
    assert!(
        browser.exceptions.is_empty(),
        "page errors: {:?}",
        browser.exceptions
    );
}

async fn shown_of(browser: &mut Browser, key: &(String, String)) -> Vec<Shown> {
    shown(browser)
        .await
        .into_iter()
        .filter(|s| s.metric == key.0 && s.dims == key.1)
        .collect()
}

fn artifacts() -> PathBuf {
    let target = std::path::Path::new(TIDEMARK)
        .ancestors()
        .nth(2)
        .expect("the binary lives in target/<profile>/");
    let dir = target.join("artifacts");
    std::fs::create_dir_all(&dir).expect("create target/artifacts");
    dir
}

/// Whether the latest day of the page's rows has an active person at 14:00 or later.
const AFTERNOON: &str = "(() => {
  const rows = [...window.tidemark.rows.values()];
  const today = rows.filter((r) => r.metric === 'dau').map((r) => r.dims.day).sort().pop();
  return rows.some((r) => r.metric === 'hau' && r.dims.hour.startsWith(today + 'T')
    && Number(r.dims.hour.slice(11, 13)) >= 14);
})()";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium; run with: cargo test --release --test integration -- --ignored browser::"]
async fn the_demo_dashboard_renders_on_a_laptop_and_a_phone() {
    cdp::require();
    // A simulated day per 24 s: waiting for the afternoon shows a day with some history.
    let server = Server::start(&["--demo", "--demo-speed", "3600"]);
    let mut browser = Browser::start().await;
    let sections = [
        "activity",
        "hourly",
        "acquisition",
        "retention",
        "funnels",
        "ratios",
    ];
    for (name, width, height, scale, mobile) in [
        ("dashboard.png", 1440, 900, 1.0, false),
        ("dashboard-phone.png", 390, 844, 2.0, true),
    ] {
        browser.viewport(width, height, scale, mobile).await;
        browser.navigate(&format!("{}/", server.base)).await;
        let filled = "window.tidemark && window.tidemark.progress !== null && window.tidemark.rows.size > 500";
        browser
            .wait_for(filled, WAIT, "the demo history is shown")
            .await;
        let first = browser
            .eval("window.tidemark.progress")
            .await
            .as_i64()
            .expect("progress");
        let moved = format!("window.tidemark.progress > {first}");
        browser
            .wait_for(&moved, WAIT, "the demo moves the page on")
            .await;
        browser
            .wait_for(AFTERNOON, WAIT, "the latest day reaches 14:00")
            .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let shown = shown(&mut browser).await;
        for section in sections {
            let n = shown.iter().filter(|s| s.section == section).count();
            assert!(n >= 3, "#{section} shows {n} numbers at {width}px");
        }
        let rules = browser
            .eval("document.querySelectorAll('#campaigns tr[data-rule]').length")
            .await;
        assert_eq!(rules, json!(3), "the demo's three rules are in #campaigns");
        browser
            .wait_for(
                "document.querySelectorAll('#alerts tr[data-alert]').length === 2",
                WAIT,
                "the demo's alerts are listed",
            )
            .await;
        hover::demo_badge_shows_the_simulated_date(&mut browser).await;
        hover::hover_values_show(&mut browser, width).await;
        hover::cohort_click_highlights(&mut browser).await;
        // The screenshot without a tooltip over it.
        browser
            .call(
                "Input.dispatchMouseEvent",
                json!({"type": "mouseMoved", "x": 0, "y": 0}),
            )
            .await;
        browser
            .eval("window.scrollTo(0, 0); for (const w of document.querySelectorAll('.heatwrap')) w.scrollLeft = 0")
            .await;
        let page_width = browser.eval("document.documentElement.scrollWidth").await;
        assert!(
            page_width.as_i64() <= Some(width.into()),
            "no sideways scrolling at {width}px: {page_width}"
        );
        let png = browser.screenshot_full_page(width).await;
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 20_000,
            "a real screenshot"
        );
        let path = artifacts().join(name);
        std::fs::write(&path, png).expect("write the screenshot");
        eprintln!("screenshot: {}", path.display());
    }
    assert!(
        browser.exceptions.is_empty(),
        "page errors: {:?}",
        browser.exceptions
    );
}
