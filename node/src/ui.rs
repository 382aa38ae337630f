//! The embedded web UI: the files `build.rs` put in `$OUT_DIR/dist`.

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, Uri, header};
use rust_embed::Embed;

#[derive(Embed)]
#[folder = "$OUT_DIR/dist"]
struct Assets;

/// Serves a UI file, or `index.html` for any other path (the UI's own routes).
pub async fn serve(uri: Uri) -> Response<Body> {
    let path = uri.path().trim_start_matches('/');
    let (file, name) = match Assets::get(path).filter(|_| !path.is_empty()) {
        Some(f) => (f, path),
        None => match Assets::get("index.html") {
            Some(f) => (f, "index.html"),
            None => {
                return Response::builder()
                    .status(StatusCode::NOT_FOUND)
                    .body(Body::from("the web UI was not built into this binary"))
                    .unwrap_or_default();
            }
        },
    };
    let mime = file.metadata.mimetype().to_owned();
    let mut resp = Response::new(Body::from(file.data.into_owned()));
    if let Ok(v) = HeaderValue::from_str(&mime) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    // Asset names are not content-hashed, so a browser must revalidate.
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if name == "index.html" {
        resp.headers_mut().insert("x-frame-options", HeaderValue::from_static("DENY"));
    }
    resp
}
