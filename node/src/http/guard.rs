//! The Host/Origin guard: one middleware in front of the whole HTTP surface
//! (the UI's files, `/api/*` and `/media/*`).
//!
//! It defends against two browser attacks the bearer token alone does not
//! cover well:
//!
//! - **DNS rebinding.** A hostile web page makes its own name resolve to the
//!   node's address, so the browser believes the node is the attacker's site.
//!   Such requests still carry the attacker's name in `Host`. Only names that
//!   cannot be rebound from the internet are accepted: IP literals,
//!   `localhost`, `*.localhost`, `*.local` (mDNS, LAN only), and the names
//!   the owner lists with `--http-host` (`HDP_HTTP_HOSTS`, `http_hosts` in
//!   config.toml), e.g. for a reverse proxy.
//! - **Cross-site requests.** When a browser says where a request comes from
//!   (`Origin`), that origin must be the node itself (its host and port equal
//!   `Host`); a `Sec-Fetch-Site: cross-site` request for `/api` or `/media`
//!   is refused too. `Origin: null` (sandboxed frames, `file:` pages) is let
//!   through here: it carries no token and, the media cookie being
//!   `SameSite=Strict`, no cookie either.
//!
//! [`decide`] is a pure function of the request's headers; [`check`] is the
//! axum middleware around it.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hdp_proto::api::ApiError;

/// Longest host name accepted (the DNS limit).
pub const MAX_HOST_NAME: usize = 253;

/// The names `Host` may carry besides IP literals, `localhost`,
/// `*.localhost` and `*.local`: lowercase, without a trailing dot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    extra: Vec<String>,
}

impl AllowedHosts {
    /// `names` from `--http-host`; each must pass [`valid_host_name`]
    /// (the config checks it), anything else is ignored.
    pub fn new<S: AsRef<str>>(names: &[S]) -> Self {
        let mut extra: Vec<String> = names.iter().filter_map(|n| normalise_name(n.as_ref())).collect();
        extra.sort();
        extra.dedup();
        AllowedHosts { extra }
    }

    /// Whether `name` (lowercase, no port, no brackets, no trailing dot) is
    /// one the node answers to.
    fn allows(&self, name: &str) -> bool {
        name == "localhost"
            || has_label_before(name, ".localhost")
            || has_label_before(name, ".local")
            || name.parse::<Ipv4Addr>().is_ok()
            || self.extra.iter().any(|e| e == name)
    }
}

/// `name` ends with `suffix` and has at least one label in front of it.
fn has_label_before(name: &str, suffix: &str) -> bool {
    name.strip_suffix(suffix).is_some_and(|rest| !rest.is_empty() && !rest.ends_with('.'))
}

/// Why the guard refused a request. Every message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the request has no Host header: send an HTTP/1.1 request that names the node's address in Host")]
    NoHost,
    #[error("the Host header {0:?} is not a valid host: open the UI through the node's IP address")]
    BadHost(String),
    #[error(
        "this node does not answer to the name {0:?} (a guard against DNS rebinding): open the UI through the \
         node's IP address, localhost or a .local name, or start the node with --http-host {0}"
    )]
    UnknownHost(String),
    #[error(
        "a page from {origin} may not use this node (it is served as {host}): open the UI from the node's own \
         address, or start the node with --http-host for the name you use"
    )]
    CrossOrigin { origin: String, host: String },
    #[error("cross-site requests are refused: open the UI from the node's own address")]
    CrossSite,
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::NoHost | Refusal::BadHost(_) => StatusCode::BAD_REQUEST,
            Refusal::UnknownHost(_) | Refusal::CrossOrigin { .. } | Refusal::CrossSite => StatusCode::FORBIDDEN,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status(), Json(ApiError { error: self.to_string() })).into_response()
    }
}

/// What the guard looks at, taken from one request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Facts<'a> {
    /// The `Host` header(s); more than one is refused.
    pub hosts: &'a [&'a str],
    /// The authority of an absolute-form request target, if any.
    pub uri_authority: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub sec_fetch_site: Option<&'a str>,
    /// The request path (`/api/info`, `/media/own/…`, `/index.html`).
    pub path: &'a str,
}

/// A `Host` value split into a normalised name (IPv6 keeps its brackets)
/// and the port as written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Authority {
    name: String,
    port: Option<u16>,
}

/// Parses `host[:port]` as it appears in `Host` or an origin.
fn parse_authority(text: &str) -> Option<Authority> {
    if text.is_empty() || text.len() > MAX_HOST_NAME + 8 {
        return None;
    }
    let (name, port) = if let Some(rest) = text.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        inner.parse::<Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{}]", inner.to_ascii_lowercase()), port)
    } else {
        let (name, port) = match text.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (text, None),
        };
        (normalise_name(name)?, port)
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
    };
    Some(Authority { name, port })
}

/// A DNS name or IPv4 literal, lowercased, one trailing dot dropped; `None`
/// if it holds anything but letters, digits, `-` and `.`.
fn normalise_name(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let ok = !name.is_empty()
        && name.len() <= MAX_HOST_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !name.starts_with('.')
        && !name.contains("..");
    ok.then(|| name.to_ascii_lowercase())
}

/// Whether `name` may be given to `--http-host`: a host name without scheme,
/// port or path.
pub fn valid_host_name(name: &str) -> bool {
    normalise_name(name.trim()).is_some()
}

/// Parses an `Origin` value (`scheme://host[:port]`); a port that is the
/// scheme's default is dropped, as browsers do in `Host`.
fn parse_origin(origin: &str) -> Option<Authority> {
    let (scheme, rest) = origin.split_once("://")?;
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let mut a = parse_authority(rest)?;
    if a.port == Some(default) {
        a.port = None;
    }
    Some(a)
}

/// Whether `path` is `prefix` or lies below it.
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Decides whether a request may proceed; see the module docs.
pub fn decide(allowed: &AllowedHosts, facts: &Facts<'_>) -> Result<(), Refusal> {
    let host_text = match (facts.hosts, facts.uri_authority) {
        ([], None) => return Err(Refusal::NoHost),
        ([], Some(a)) => a,
        ([h], _) => h,
        (many, _) => return Err(Refusal::BadHost(many.join(", "))),
    };
    // An absolute-form target names a host too; both must be ours.
    for text in std::iter::once(host_text).chain(facts.uri_authority) {
        let a = parse_authority(text).ok_or_else(|| Refusal::BadHost(clip(text)))?;
        if !a.name.starts_with('[') && !allowed.allows(&a.name) {
            return Err(Refusal::UnknownHost(a.name));
        }
    }
    let host = parse_authority(host_text).ok_or_else(|| Refusal::BadHost(clip(host_text)))?;
    if let Some(origin) = facts.origin.map(str::trim).filter(|o| *o != "null")
        && parse_origin(origin).is_none_or(|o| o != host)
    {
        return Err(Refusal::CrossOrigin { origin: clip(origin), host: clip(host_text) });
    }
    let guarded = under(facts.path, "/api") || under(facts.path, "/media");
    if guarded && facts.sec_fetch_site.is_some_and(|s| s.trim().eq_ignore_ascii_case("cross-site")) {
        return Err(Refusal::CrossSite);
    }
    Ok(())
}

/// Keeps header text quoted in error messages short.
fn clip(text: &str) -> String {
    text.chars().take(100).collect()
}

/// The middleware: refuses what [`decide`] refuses, with an `ApiError` body.
pub async fn check(State(allowed): State<Arc<AllowedHosts>>, req: Request, next: Next) -> Response {
    let verdict = {
        let headers = req.headers();
        // A header that is not visible ASCII cannot be a host: refused.
        let hosts: Vec<&str> = headers.get_all(header::HOST).iter().map(|v| v.to_str().unwrap_or("\u{fffd}")).collect();
        let facts = Facts {
            hosts: &hosts,
            uri_authority: req.uri().authority().map(|a| a.as_str()),
            origin: text(headers, header::ORIGIN),
            sec_fetch_site: text(headers, "sec-fetch-site"),
            path: req.uri().path(),
        };
        decide(&allowed, &facts)
    };
    match verdict {
        Ok(()) => next.run(req).await,
        Err(refusal) => {
            tracing::debug!(%refusal, "request refused by the host guard");
            refusal.into_response()
        }
    }
}

fn text(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    // A non-ASCII Origin is never ours: compare it as an impossible value.
    headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(hosts: &'a [&'a str], origin: Option<&'a str>, site: Option<&'a str>, path: &'a str) -> Facts<'a> {
        Facts { hosts, uri_authority: None, origin, sec_fetch_site: site, path }
    }

    fn host_ok(allowed: &AllowedHosts, host: &str) -> Result<(), Refusal> {
        decide(allowed, &facts(&[host], None, None, "/api/info"))
    }

    #[test]
    fn hosts_that_cannot_be_rebound_are_allowed() {
        let a = AllowedHosts::default();
        for h in [
            "127.0.0.1:3030",
            "192.168.1.20",
            "192.168.1.20:80",
            "[::1]:3030",
            "[fe80::1]",
            "[FE80::AB]:1",
            "localhost",
            "LOCALHOST:3030",
            "app.localhost:9",
            "nas.local",
            "Nas.Local:3030",
            "nas.local.",
            "my-pi.local.:3030",
        ] {
            assert_eq!(host_ok(&a, h), Ok(()), "{h}");
        }
    }

    #[test]
    fn other_names_are_refused_with_the_fix() {
        let a = AllowedHosts::default();
        for h in ["evil.example", "evil.example:3030", "localhost.evil.example", "local", ".local", "x..local"] {
            let r = host_ok(&a, h);
            assert!(matches!(r, Err(Refusal::UnknownHost(_)) | Err(Refusal::BadHost(_))), "{h}: {r:?}");
        }
        let e = host_ok(&a, "evil.example:3030").unwrap_err();
        assert_eq!(e, Refusal::UnknownHost("evil.example".into()));
        assert_eq!(e.status(), StatusCode::FORBIDDEN);
        let msg = e.to_string();
        assert!(msg.contains("--http-host evil.example") && msg.contains("IP address"), "{msg}");
        // Numbers that only look like addresses to lenient parsers are names.
        for h in ["0x7f.1", "127.1", "2130706433"] {
            assert_eq!(host_ok(&a, h), Err(Refusal::UnknownHost(h.into())), "{h}");
        }
    }

    #[test]
    fn malformed_hosts_are_bad_requests() {
        let a = AllowedHosts::new(&["nas.example"]);
        for h in [
            "",
            "::1",
            "[::1",
            "[::1]x",
            "[::1]:",
            "[nothex]:1",
            "nas.example:",
            "nas.example:port",
            "nas.example:123456",
            "nas.example:65536",
            "nas.example:80:80",
            "nas.example/x",
            "nas example",
            "nas_example",
            "user@nas.example",
            "\u{fffd}",
        ] {
            let r = host_ok(&a, h);
            assert!(matches!(r, Err(Refusal::BadHost(_))), "{h:?}: {r:?}");
            assert_eq!(r.unwrap_err().status(), StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn configured_names_are_allowed_exactly() {
        let a = AllowedHosts::new(&["NAS.example.org.", "pi"]);
        assert_eq!(host_ok(&a, "nas.example.org:443"), Ok(()));
        assert_eq!(host_ok(&a, "nas.example.org."), Ok(()));
        assert_eq!(host_ok(&a, "pi:3030"), Ok(()));
        assert!(host_ok(&a, "x.nas.example.org").is_err());
        assert!(host_ok(&a, "example.org").is_err());
        assert!(host_ok(&a, "pi2").is_err());
        assert!(valid_host_name("nas.example.org") && valid_host_name(" pi "));
        for bad in ["", "http://nas", "nas:3030", "nas/x", "[::1]", "a..b"] {
            assert!(!valid_host_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_missing_or_repeated_host_is_refused() {
        let a = AllowedHosts::default();
        assert_eq!(decide(&a, &facts(&[], None, None, "/")), Err(Refusal::NoHost));
        let two = ["127.0.0.1", "127.0.0.1"];
        assert!(matches!(decide(&a, &facts(&two, None, None, "/")), Err(Refusal::BadHost(_))));
        // HTTP/2 style: the authority stands in for Host.
        let f = Facts { uri_authority: Some("127.0.0.1:3030"), path: "/", ..Facts::default() };
        assert_eq!(decide(&a, &f), Ok(()));
        // An absolute-form target must name us as well as Host.
        let hosts = ["127.0.0.1:3030"];
        let f = Facts { hosts: &hosts, uri_authority: Some("evil.example"), path: "/", ..Facts::default() };
        assert_eq!(decide(&a, &f), Err(Refusal::UnknownHost("evil.example".into())));
    }

    #[test]
    fn origin_must_be_the_node_itself() {
        let a = AllowedHosts::new(&["nas.example.org"]);
        let ok = |host: &str, origin: &str| decide(&a, &facts(&[host], Some(origin), None, "/api/shares"));
        assert_eq!(ok("192.168.1.20:3030", "http://192.168.1.20:3030"), Ok(()));
        assert_eq!(ok("[::1]:3030", "http://[::1]:3030"), Ok(()));
        assert_eq!(ok("Nas.Local:3030", "http://nas.local:3030"), Ok(()));
        assert_eq!(ok("nas.example.org", "https://nas.example.org"), Ok(()));
        assert_eq!(ok("nas.example.org", "https://nas.example.org:443"), Ok(()));
        assert_eq!(ok("nas.local", "http://nas.local:80"), Ok(()));
        assert_eq!(ok("127.0.0.1:3030", "null"), Ok(()));
        for (host, origin) in [
            ("192.168.1.20:3030", "http://evil.example"),
            ("192.168.1.20:3030", "http://192.168.1.20:3031"),
            ("192.168.1.20:3030", "http://192.168.1.20"),
            ("192.168.1.20", "http://192.168.1.20:3030"),
            ("192.168.1.20:3030", "http://192.168.1.21:3030"),
            ("192.168.1.20:3030", "ftp://192.168.1.20:3030"),
            ("192.168.1.20:3030", "http://192.168.1.20:3030/path"),
            ("192.168.1.20:3030", "192.168.1.20:3030"),
            ("192.168.1.20:3030", ""),
            ("192.168.1.20:3030", "\u{fffd}"),
        ] {
            let r = ok(host, origin);
            assert!(matches!(r, Err(Refusal::CrossOrigin { .. })), "{host} {origin}: {r:?}");
            assert_eq!(r.unwrap_err().status(), StatusCode::FORBIDDEN);
        }
        // The UI's own files are guarded by Origin too.
        assert!(decide(&a, &facts(&["127.0.0.1"], Some("http://evil.example"), None, "/")).is_err());
    }

    #[test]
    fn cross_site_fetches_of_api_and_media_are_refused() {
        let a = AllowedHosts::default();
        let h = ["127.0.0.1:3030"];
        for path in ["/api", "/api/info", "/media/own/Music/a.mp3", "/media"] {
            assert_eq!(decide(&a, &facts(&h, None, Some("cross-site"), path)), Err(Refusal::CrossSite), "{path}");
            assert_eq!(decide(&a, &facts(&h, None, Some("Cross-Site"), path)), Err(Refusal::CrossSite), "{path}");
            for site in ["same-origin", "same-site", "none"] {
                assert_eq!(decide(&a, &facts(&h, None, Some(site), path)), Ok(()), "{path} {site}");
            }
        }
        // A link from elsewhere may still open the UI (which then asks for the token).
        for path in ["/", "/index.html", "/apix", "/mediathek"] {
            assert_eq!(decide(&a, &facts(&h, None, Some("cross-site"), path)), Ok(()), "{path}");
        }
    }
}
