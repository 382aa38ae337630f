//! The embedded web UI: the files `build.rs` put in `$OUT_DIR/dist`.
//!
//! `build.rs` keeps every text and wasm file only as a gzip copy
//! (`NAME.gz`): a browser that accepts gzip gets it as it is (about a third
//! of the bytes), so a phone on a slow link to a Pi starts the UI sooner and
//! the node spends no CPU compressing; the binary is 1.2 MB smaller than
//! with both copies. The rare client that refuses gzip gets the file
//! unpacked on the fly.

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

/// A UI file's bytes, and whether they are gzip-compressed.
fn asset(name: &str) -> Option<(std::borrow::Cow<'static, [u8]>, bool)> {
    if name.is_empty() || name.ends_with(".gz") {
        return None;
    }
    match Assets::get(&format!("{name}.gz")) {
        Some(gz) => Some((gz.data, true)),
        None => Assets::get(name).map(|f| (f.data, false)),
    }
}

/// Unpacks one of our own gzip assets (they are a few MB at most).
fn gunzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::with_capacity(data.len() * 3);
    flate2::read::GzDecoder::new(data).read_to_end(&mut out)?;
    Ok(out)
}

/// Serves a UI file, or `index.html` for any other path (the UI's own routes).
pub async fn serve(headers: HeaderMap, uri: Uri) -> Response<Body> {
    let path = uri.path().trim_start_matches('/');
    let (name, (data, packed)) = match asset(path) {
        Some(found) => (path, found),
        None => match asset("index.html") {
            Some(found) => ("index.html", found),
            None => {
                return Response::builder()
                    .status(StatusCode::NOT_FOUND)
                    .body(Body::from("the web UI was not built into this binary"))
                    .unwrap_or_default();
            }
        },
    };
    let mime = mime_guess::from_path(name).first_or_octet_stream();
    let encoded = packed && accepts_gzip(&headers);
    let body = if packed && !encoded {
        // Unpacking the 1.2 MB wasm module takes milliseconds: not on the async thread.
        match tokio::task::spawn_blocking(move || gunzip(&data)).await {
            Ok(Ok(plain)) => plain,
            Ok(Err(e)) => {
                tracing::warn!(file = name, error = %e, "cannot unpack an embedded UI file");
                return Response::builder()
                    .status(StatusCode::INTERNAL_SERVER_ERROR)
                    .body(Body::from("the web UI in this binary is damaged: reinstall it"))
                    .unwrap_or_default();
            }
            Err(e) => {
                tracing::warn!(file = name, error = %e, "unpacking an embedded UI file failed");
                return Response::builder()
                    .status(StatusCode::INTERNAL_SERVER_ERROR)
                    .body(Body::from("could not unpack the web UI file: try again"))
                    .unwrap_or_default();
            }
        }
    } else {
        data.into_owned()
    };
    let mut resp = Response::new(Body::from(body));
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime.essence_str()) {
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
    fn every_asset_is_packed_once_and_unpacks() {
        let names: Vec<_> = Assets::iter().collect();
        assert!(names.iter().any(|n| n == "index.html.gz"), "{names:?}");
        for n in &names {
            if let Some(plain) = n.strip_suffix(".gz") {
                assert!(Assets::get(plain).is_none(), "{plain} is embedded twice");
                let (data, packed) = asset(plain).unwrap();
                assert!(packed);
                assert!(!gunzip(&data).unwrap().is_empty(), "{n}");
            }
        }
        assert!(asset("index.html.gz").is_none() && asset("").is_none());
        assert_eq!(mime_guess::from_path("x_bg.wasm").first_or_octet_stream().essence_str(), "application/wasm");
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
