//! `GET /`: the live dashboard, one self-contained HTML page built into the binary: the markup
//! with the configuration's funnels, ratios and timezone and the two scripts spliced in.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use super::auth::COOKIE;
use super::AppState;
use crate::config::{Config, Denominator};

const PAGE: &str = include_str!("dashboard.html");
const CHARTS: &str = include_str!("dashboard_charts.js");
const SCRIPT: &str = include_str!("dashboard.js");
const ACTIONS: &str = include_str!("dashboard_actions.js");
const FAVICON: &str = include_str!("favicon.svg");

/// `GET /favicon.ico`: the tab icon, an SVG (browsers take one at this address too). It tells
/// nothing about the data, so it needs no token.
pub async fn favicon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        FAVICON,
    )
        .into_response()
}

/// The page; a valid `?token=` is kept in a cookie so the page's EventSource can use it.
pub async fn page(
    State(s): State<AppState>,
    Query(q): Query<Vec<(String, String)>>,
    h: HeaderMap,
) -> Response {
    if s.tokens.check_read(&h, &q).is_err() {
        return (
            StatusCode::UNAUTHORIZED,
            Html("<!doctype html><title>tidemark</title><p>This dashboard needs the read token: open <code>/?token=READ_TOKEN</code>.</p>"),
        )
            .into_response();
    }
    let token = q.iter().find(|(k, _)| k == "token").map(|(_, v)| v.clone());
    let mut response = Html(render(&s.live.plan.config, s.demo)).into_response();
    if let Some(t) = token {
        if let Ok(v) = format!("{COOKIE}={t}; HttpOnly; SameSite=Strict; Path=/").parse() {
            response.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    response
}

/// The page with what it cannot learn from rows: funnel step names, ratio definitions, timezone.
fn render(config: &Config, demo: bool) -> String {
    let funnels: Vec<_> = config
        .funnels
        .iter()
        .map(|f| serde_json::json!({"name": f.name, "steps": f.steps}))
        .collect();
    let ratios: Vec<_> = config
        .ratios
        .iter()
        .map(|r| {
            let denominator = match &r.denominator {
                Denominator::Active => serde_json::json!("active"),
                Denominator::Events(names) => serde_json::json!(names),
            };
            serde_json::json!({"name": r.name, "numerator": r.numerator, "denominator": denominator})
        })
        .collect();
    let rules: Vec<_> = config
        .rules
        .iter()
        .map(|r| serde_json::json!({"name": r.name, "when": r.when}))
        .collect();
    let alerts: Vec<_> = config
        .alerts
        .iter()
        .map(|a| serde_json::json!({"name": a.name, "metric": a.metric.name()}))
        .collect();
    let settings = serde_json::json!({
        "rules": rules,
        "alerts": alerts,
        "timezone": config.timezone,
        "demo": demo,
        "retention_max_day": config.retention_max_day,
        "funnels": funnels,
        "ratios": ratios,
    });
    // Inside <script>, "<" must not start a tag: JSON allows it escaped.
    let settings = settings.to_string().replace('<', "\\u003c");
    // The settings go in last, so no name in them is ever taken for a placeholder.
    PAGE.replacen("/*TIDEMARK_CHARTS*/", CHARTS, 1)
        .replacen("/*TIDEMARK_DASHBOARD*/", SCRIPT, 1)
        .replacen("/*TIDEMARK_ACTIONS*/", ACTIONS, 1)
        .replacen("/*TIDEMARK_CONFIG*/null", &settings, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_carries_its_scripts_and_a_script_safe_configuration() {
        let mut config = Config::default();
        config.funnels[0].name = "</script><b>".into();
        let page = render(&config, false);
        assert!(!page.contains("/*TIDEMARK_"), "every placeholder is filled");
        assert!(page.contains("function lineChart(") && page.contains("function renderFunnels("));
        assert_eq!(
            page.matches("</script>").count(),
            4,
            "a name cannot close the script"
        );
        assert!(page.contains("\\u003c/script>\\u003cb>"));
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "nothing is fetched from elsewhere"
        );
    }
}
