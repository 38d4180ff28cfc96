//! What a browser may do: the `Host` a request names must be this server (so DNS rebinding
//! finds nothing), and a page from another origin may not ingest, subscribe or read (403).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::{error, AppState};

/// The names and origins a request may come by.
#[derive(Clone, Debug)]
pub struct Access {
    /// The address the server listens on.
    listen: SocketAddr,
    /// Host names (lowercase) from `serve.hosts`.
    hosts: Vec<String>,
    /// Origins (lowercase, no trailing slash) from `serve.origins`.
    origins: Vec<String>,
}

/// The host name of a `Host` value (`name`, `name:port`, `[v6]:port`), lowercase, without a
/// trailing dot.
fn host_name(authority: &str) -> String {
    let a = authority.trim();
    let name = if let Some(rest) = a.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        a.rsplit_once(':').map_or(a, |(h, _)| h)
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Access {
    pub fn new(listen: SocketAddr, hosts: &[String], origins: &[String]) -> Self {
        Access {
            listen,
            hosts: hosts.iter().map(|h| host_name(h)).collect(),
            origins: origins.to_vec(),
        }
    }

    /// Whether a `Host` value names this server: `localhost`, the address it listens on (any
    /// address when it listens on all of them; any loopback one when on loopback), or a name
    /// from `serve.hosts`.
    pub fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host);
        if name == "localhost" || self.hosts.contains(&name) {
            return true;
        }
        let Ok(ip) = name.parse::<IpAddr>() else {
            return false;
        };
        let listen = self.listen.ip();
        listen.is_unspecified() || ip == listen || (listen.is_loopback() && ip.is_loopback())
    }

    /// Whether a page of `origin` may send this request: the same origin as the `Host` it
    /// names, or one from `serve.origins`.
    pub fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        if self.origins.contains(&origin) {
            return true;
        }
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        match (authority, host) {
            (Some(a), Some(h)) => a == h.trim().to_ascii_lowercase(),
            _ => false,
        }
    }

    /// Why a request is refused, if it is.
    fn refusal(
        &self,
        method: &Method,
        headers: &HeaderMap,
        authority: Option<&str>,
    ) -> Option<String> {
        let host = authority.or_else(|| headers.get(header::HOST)?.to_str().ok());
        if let Some(h) = host {
            if !self.host_allowed(h) {
                return Some(format!(
                    "Host {h:?} is not a name of this server; add it to serve.hosts if it is"
                ));
            }
        }
        match headers.get(header::ORIGIN).map(|o| o.to_str()) {
            Some(Ok(o)) if self.origin_allowed(o, host) => None,
            Some(o) => Some(format!(
                "requests from pages of origin {:?} are refused; add it to serve.origins to allow it",
                o.unwrap_or("?")
            )),
            // No Origin: a browser sends one with every cross-origin request that could change
            // anything; where it says the request is cross-site anyway, refuse that too.
            None if changes_state(method, headers) && cross_site(headers) => {
                Some("cross-site requests are refused".into())
            }
            None => None,
        }
    }
}

/// A request that is not a plain read: any method but GET, HEAD and OPTIONS, and every
/// WebSocket upgrade.
fn changes_state(method: &Method, headers: &HeaderMap) -> bool {
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    upgrade || !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site" || v == "same-site")
}

/// Middleware: 403 for a foreign `Host` or `Origin`, before anything else.
pub async fn guard(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let authority = req.uri().authority().map(|a| a.as_str().to_string());
    match s
        .access
        .refusal(req.method(), req.headers(), authority.as_deref())
    {
        None => next.run(req).await,
        Some(why) => error(StatusCode::FORBIDDEN, why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(listen: &str) -> Access {
        Access::new(
            listen.parse().unwrap(),
            &["metrics.example.com".into()],
            &["https://dash.example.com".into()],
        )
    }

    #[test]
    fn hosts_are_this_server_or_configured() {
        let a = access("127.0.0.1:7878");
        for ok in [
            "127.0.0.1:7878",
            "localhost:7878",
            "LOCALHOST",
            "[::1]:7878",
            "metrics.example.com",
            "metrics.example.com.:443",
        ] {
            assert!(a.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example:7878",
            "10.0.0.5:7878",
            "127.0.0.1.evil.example",
            "",
        ] {
            assert!(!a.host_allowed(bad), "{bad}");
        }
        let all = access("0.0.0.0:7878");
        assert!(all.host_allowed("10.0.0.5:7878"));
        assert!(!all.host_allowed("rebind.evil.example:7878"));
        let one = access("10.0.0.5:7878");
        assert!(one.host_allowed("10.0.0.5:7878") && !one.host_allowed("10.0.0.6:7878"));
    }

    #[test]
    fn origins_are_the_same_or_configured() {
        let a = access("127.0.0.1:7878");
        let host = Some("127.0.0.1:7878");
        assert!(a.origin_allowed("http://127.0.0.1:7878", host));
        assert!(a.origin_allowed("https://dash.example.com/", host));
        for bad in [
            "http://127.0.0.1:8000",
            "http://localhost:7878",
            "null",
            "http://evil.example",
        ] {
            assert!(!a.origin_allowed(bad, host), "{bad}");
        }
        assert!(!a.origin_allowed("http://127.0.0.1:7878", None));
    }

    #[test]
    fn refusals_cover_foreign_hosts_origins_and_cross_site_posts() {
        let a = access("127.0.0.1:7878");
        let headers = |pairs: &[(&str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(
                    header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            h
        };
        let host = ("host", "127.0.0.1:7878");
        let same = headers(&[host, ("origin", "http://127.0.0.1:7878")]);
        assert!(a.refusal(&Method::POST, &same, None).is_none());
        let foreign = headers(&[host, ("origin", "http://127.0.0.1:9999")]);
        assert!(a.refusal(&Method::POST, &foreign, None).is_some());
        assert!(a.refusal(&Method::GET, &foreign, None).is_some());
        let rebound = headers(&[("host", "evil.example:7878")]);
        assert!(a.refusal(&Method::GET, &rebound, None).is_some());
        let tool = headers(&[host]);
        assert!(
            a.refusal(&Method::POST, &tool, None).is_none(),
            "curl sends no Origin"
        );
        let no_host = HeaderMap::new();
        assert!(a.refusal(&Method::GET, &no_host, None).is_none());
        let cross = headers(&[host, ("sec-fetch-site", "cross-site")]);
        assert!(a.refusal(&Method::POST, &cross, None).is_some());
        assert!(
            a.refusal(&Method::GET, &cross, None).is_none(),
            "a link to the dashboard"
        );
        let ws = headers(&[
            host,
            ("upgrade", "websocket"),
            ("sec-fetch-site", "cross-site"),
        ]);
        assert!(a.refusal(&Method::GET, &ws, None).is_some());
        assert!(
            a.refusal(&Method::GET, &tool, Some("evil.example"))
                .is_some(),
            "an absolute URI's authority counts as the Host"
        );
    }
}
