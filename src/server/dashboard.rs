//! `GET /`: the live dashboard, one HTML page built into the binary.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use super::auth::COOKIE;
use super::AppState;

const PAGE: &str = include_str!("dashboard.html");

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
    let mut response = Html(PAGE).into_response();
    if let Some(t) = token {
        if let Ok(v) = format!("{COOKIE}={t}; HttpOnly; SameSite=Strict; Path=/").parse() {
            response.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    response
}
