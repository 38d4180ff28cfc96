//! The ingest and read tokens: where a request may carry them, a constant-time comparison, and
//! the middleware that checks them from the head alone, before any body is read.

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;

/// Configured tokens; `None` means that kind of request needs no token.
#[derive(Clone, Default)]
pub struct Tokens {
    pub ingest: Option<String>,
    pub read: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |t: &Option<String>| if t.is_some() { "<redacted>" } else { "none" };
        f.debug_struct("Tokens")
            .field("ingest", &shown(&self.ingest))
            .field("read", &shown(&self.read))
            .finish()
    }
}

/// A refused request: 401 with what to send.
#[derive(Debug)]
pub struct Denied(String);

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        super::error(StatusCode::UNAUTHORIZED, self.0)
    }
}

/// Name of the cookie a browser may carry the read token in.
pub const COOKIE: &str = "tidemark_token";

/// Equal length and bytes, compared without an early exit.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Tokens a request offers: `Authorization: Bearer`, the `token` query parameter, the cookie.
fn offered<'a>(headers: &'a HeaderMap, query: &'a [(String, String)]) -> Vec<&'a str> {
    let mut out = Vec::new();
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        // The scheme name is case-insensitive (RFC 7235, section 2.1).
        if let Some((scheme, t)) = v.trim_start().split_once(' ') {
            if scheme.eq_ignore_ascii_case("bearer") {
                out.push(t.trim());
            }
        }
    }
    out.extend(
        query
            .iter()
            .filter(|(k, _)| k == "token")
            .map(|(_, v)| v.as_str()),
    );
    for cookies in headers.get_all(header::COOKIE) {
        if let Ok(text) = cookies.to_str() {
            for pair in text.split(';') {
                if let Some(v) = pair
                    .trim()
                    .strip_prefix(COOKIE)
                    .and_then(|r| r.strip_prefix('='))
                {
                    out.push(v);
                }
            }
        }
    }
    out
}

fn check(
    expected: &Option<String>,
    headers: &HeaderMap,
    query: &[(String, String)],
    what: &str,
) -> Result<(), Denied> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let offered = offered(headers, query);
    // Every offered token is compared, so timing does not tell which one matched.
    let ok = offered.iter().fold(false, |acc, t| {
        same(t.as_bytes(), expected.as_bytes()) | acc
    });
    if ok {
        Ok(())
    } else {
        let message = if offered.is_empty() {
            format!("missing {what} token: send `Authorization: Bearer TOKEN`, `?token=TOKEN` or the {COOKIE} cookie")
        } else {
            format!("wrong {what} token")
        };
        Err(Denied(message))
    }
}

impl Tokens {
    pub fn check_read(
        &self,
        headers: &HeaderMap,
        query: &[(String, String)],
    ) -> Result<(), Denied> {
        check(&self.read, headers, query, "read")
    }

    pub fn check_ingest(
        &self,
        headers: &HeaderMap,
        query: &[(String, String)],
    ) -> Result<(), Denied> {
        check(&self.ingest, headers, query, "ingest")
    }

    /// Whether any token is configured.
    pub fn any(&self) -> bool {
        self.ingest.is_some() || self.read.is_some()
    }
}

/// The query's pairs (none when it does not parse: then no token is offered there).
pub fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|q| q.0)
        .unwrap_or_default()
}

/// Middleware: the ingest token, checked before the handler reads the body.
pub async fn require_ingest(State(s): State<AppState>, req: Request, next: Next) -> Response {
    match s
        .tokens
        .check_ingest(req.headers(), &query_pairs(req.uri()))
    {
        Ok(()) => next.run(req).await,
        Err(denied) => denied.into_response(),
    }
}

/// Middleware: the read token.
pub async fn require_read(State(s): State<AppState>, req: Request, next: Next) -> Response {
    match s.tokens.check_read(req.headers(), &query_pairs(req.uri())) {
        Ok(()) => next.run(req).await,
        Err(denied) => denied.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_header_query_or_cookie_and_must_match_exactly() {
        let tokens = Tokens {
            ingest: None,
            read: Some("0123456789abcdef".into()),
        };
        let mut h = HeaderMap::new();
        assert!(tokens.check_read(&h, &[]).is_err());
        assert!(
            tokens.check_ingest(&h, &[]).is_ok(),
            "no ingest token configured"
        );
        let q = vec![("token".to_string(), "0123456789abcdef".to_string())];
        assert!(tokens.check_read(&h, &q).is_ok());
        let q = vec![("token".to_string(), "0123456789abcdeF".to_string())];
        assert!(tokens.check_read(&h, &q).is_err());
        h.insert(
            header::COOKIE,
            "a=b; tidemark_token=0123456789abcdef".parse().unwrap(),
        );
        assert!(tokens.check_read(&h, &[]).is_ok());
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            "Bearer 0123456789abcde".parse().unwrap(),
        );
        assert!(
            tokens.check_read(&h, &[]).is_err(),
            "a prefix is not the token"
        );
        assert!(
            !format!("{tokens:?}").contains("0123"),
            "tokens are redacted"
        );
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_nothing_else_counts() {
        let tokens = Tokens {
            ingest: Some("0123456789abcdef".into()),
            read: None,
        };
        for (value, ok) in [
            ("Bearer 0123456789abcdef", true),
            ("bearer 0123456789abcdef", true),
            ("BEARER   0123456789abcdef ", true),
            ("Basic 0123456789abcdef", false),
            ("Bearer0123456789abcdef", false),
            ("0123456789abcdef", false),
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, value.parse().unwrap());
            assert_eq!(tokens.check_ingest(&h, &[]).is_ok(), ok, "{value:?}");
        }
    }
}
