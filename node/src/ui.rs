//! The embedded web UI: the files `build.rs` put in `$OUT_DIR/dist`.
//!
//! `build.rs` also writes a gzip copy (`NAME.gz`) of every text and wasm
//! file; a browser that accepts gzip gets that copy (about a third of the
//! bytes), so a phone on a slow link to a Pi starts the UI sooner and the
//! node spends no CPU compressing.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode, Uri, header};
use rust_embed::Embed;

#[derive(Embed)]
#[folder = "$OUT_DIR/dist"]
struct Assets;

/// Whether an `Accept-Encoding` header allows gzip: a `gzip` entry decides
/// by its weight (`q=0` refuses), else a `*` entry does.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    let items =
        headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(','));
    for item in items {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("");
        let weight = parts
            .find_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
            .map_or(1.0, |q| q.trim().parse::<f32>().unwrap_or(0.0));
        if coding.eq_ignore_ascii_case("gzip") {
            gzip = Some(weight > 0.0);
        } else if coding == "*" {
            any = Some(weight > 0.0);
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// Serves a UI file, or `index.html` for any other path (the UI's own routes).
pub async fn serve(headers: HeaderMap, uri: Uri) -> Response<Body> {
    let path = uri.path().trim_start_matches('/');
    let name = match Assets::get(path).filter(|_| !path.is_empty() && !path.ends_with(".gz")) {
        Some(_) => path,
        None if Assets::get("index.html").is_some() => "index.html",
        None => {
            return Response::builder()
                .status(StatusCode::NOT_FOUND)
                .body(Body::from("the web UI was not built into this binary"))
                .unwrap_or_default();
        }
    };
    let gzipped = accepts_gzip(&headers).then(|| Assets::get(&format!("{name}.gz"))).flatten();
    let Some(file) = Assets::get(name) else {
        return Response::builder().status(StatusCode::NOT_FOUND).body(Body::empty()).unwrap_or_default();
    };
    let mime = file.metadata.mimetype().to_owned();
    let (data, encoded) = match gzipped {
        Some(gz) => (gz.data, true),
        None => (file.data, false),
    };
    let mut resp = Response::new(Body::from(data.into_owned()));
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&mime) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if encoded {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    // Asset names are not content-hashed, so a browser must revalidate.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if name == "index.html" {
        h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn gzip_negotiation() {
        assert!(accepts_gzip(&with("gzip, deflate, br")));
        assert!(accepts_gzip(&with("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(&with("*")));
        assert!(!accepts_gzip(&with("gzip;q=0")));
        assert!(!accepts_gzip(&with("gzip; q=0.000")));
        assert!(!accepts_gzip(&with("gzip;q=0, *")));
        assert!(!accepts_gzip(&with("*;q=0")));
        assert!(!accepts_gzip(&with("br")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
