//! `/media/*`: files for the browser's `<img>`, `<audio>` and `<video>`,
//! with HTTP range requests so players can seek.
//!
//! | route | what |
//! |---|---|
//! | `GET/HEAD /media/own/{share path}` | a file of our shares ([`crate::shares::Shares::resolve_file`]: indexed, inside its share, no symlink leading out) |
//! | `GET/HEAD /media/peer/{peer}/{share path}` | a connected peer's file, streamed with `read` requests, never stored |
//! | `GET/HEAD /media/download/{id}/{seq}` | a finished file of a download |
//! | `POST /api/media-session` | sets the [`MEDIA_COOKIE`] cookie (bearer token required) |
//!
//! **Authentication.** Media elements cannot send `Authorization`, so
//! `POST /api/media-session` sets an `HttpOnly`, `SameSite=Strict` cookie
//! scoped to `/media` whose value is a BLAKE3 key derived from the API
//! token ([`media_cookie_value`]): it never reveals the token and opens
//! nothing but `/media`. Either it or the bearer token is accepted,
//! compared in constant time.
//!
//! **Ranges** ([`hdp_proto::range`]): one range,
//! `bytes=a-b`, `bytes=a-` or `bytes=-n`, is answered 206 with
//! `Content-Range`; the end is clamped to the file. A `Range` asking for
//! several ranges, or one we cannot parse, is ignored: the whole file comes
//! back 200 (players ask for one range at a time). A range starting past the
//! end is 416 with `Content-Range: bytes */size`; an empty file is always
//! sent whole (200), since media elements ask for `bytes=0-`. `If-Range` is honoured
//! against our `ETag` (size and mtime) or `Last-Modified`.
//!
//! **Hostile content.** A share may hold HTML, SVG or scripts. Only names
//! [`MediaKind::of`] knows are sent inline with their type; everything else
//! is `application/octet-stream` as an attachment. Every answer carries
//! `X-Content-Type-Options: nosniff` and [`MEDIA_CSP`]. That policy only
//! applies when a response becomes a document (someone opens the URL in a
//! tab): then it is sandboxed, without scripts. When our page loads the URL
//! into `<img>`, `<audio>` or `<video>`, the response is a subresource and
//! only the page's own policy counts, so playback is unaffected.
//! `?download=1` makes any file an attachment (`filename*=UTF-8''…`).
//!
//! **Memory.** Nothing is buffered whole: local files are read in
//! [`CHUNK`]-sized pieces as the browser takes them, a peer's bytes are
//! passed on chunk by chunk as QUIC delivers them (at most [`CHUNK`] per
//! step; QUIC flow control bounds what waits in quinn's buffer). When the
//! browser goes away, hyper drops the body, which drops the QUIC stream
//! (STOP_SENDING), freeing the peer's upload slot. A peer that ends a file
//! early, stalls for [`PEER_STALL_TIMEOUT`] or breaks the stream makes the
//! body fail, so the browser sees an aborted response, never a silently
//! short one.

use std::io::SeekFrom;
use std::path::PathBuf;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use hdp_proto::api::{ApiError, MEDIA_COOKIE, MediaKind};
use hdp_proto::path::SharePath;
use hdp_proto::range::{RangeRequest, Resolved, parse_range};
use hdp_proto::wire::{ReadRequest, RequestError, StreamCode};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::http::AppState;
use crate::http::auth::{check_bearer, constant_time_eq};
use crate::identity::encode_hex;
use crate::peers::ResolveError;
use crate::remote::{self, ReadOk, RemoteError};

/// Bytes per step of a media body: one buffer per response in flight.
pub const CHUNK: usize = 64 * 1024;
/// A peer that sends nothing for this long while a browser waits fails the body.
pub const PEER_STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the media cookie lives (30 days); calling `POST /api/media-session` again renews it.
pub const COOKIE_MAX_AGE_SECS: u64 = 30 * 24 * 3600;
/// BLAKE3 `derive_key` context of the media cookie.
const COOKIE_CONTEXT: &str = "harddrive-party 2025 media cookie v1";
/// `Content-Security-Policy` of every media response; see the module docs.
pub const MEDIA_CSP: &str = "sandbox; default-src 'none'; img-src 'self'; media-src 'self'";

/// The value of the [`MEDIA_COOKIE`] for `token`: a key derived from it,
/// hex. Knowing it does not reveal the token.
pub fn media_cookie_value(token: &str) -> String {
    encode_hex(&blake3::derive_key(COOKIE_CONTEXT, token.as_bytes()))
}

/// The `Set-Cookie` header `POST /api/media-session` sends.
pub fn media_cookie_header(token: &str) -> String {
    format!(
        "{MEDIA_COOKIE}={}; Path=/media; HttpOnly; SameSite=Strict; Max-Age={COOKIE_MAX_AGE_SECS}",
        media_cookie_value(token)
    )
}

/// Whether a `/media` request carries the bearer token or the media cookie.
pub fn media_authorized(headers: &HeaderMap, token: &str) -> bool {
    let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if check_bearer(bearer, token) {
        return true;
    }
    let want = media_cookie_value(token);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.split_once('='))
        .any(|(k, v)| k.trim() == MEDIA_COOKIE && constant_time_eq(v.trim().as_bytes(), want.as_bytes()))
}

/// A media request failed.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error(
        "missing or wrong media credentials: POST /api/media-session with the API token first (it sets the \
         {MEDIA_COOKIE} cookie), or send 'Authorization: Bearer <token>'"
    )]
    Unauthorized,
    #[error("invalid path: {0}")]
    Path(String),
    #[error("{0}")]
    NotFound(String),
    #[error("the requested range starts past the end of the file ({size} bytes); ask for a range inside it")]
    Unsatisfiable { size: u64 },
    #[error(transparent)]
    Peer(#[from] ResolveError),
    #[error("{peer} could not send {path}: {source}")]
    Remote { peer: String, path: String, source: RemoteError },
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the node is shutting down")]
    ShuttingDown,
}

impl MediaError {
    pub fn status(&self) -> StatusCode {
        match self {
            MediaError::Unauthorized => StatusCode::UNAUTHORIZED,
            MediaError::Path(_) => StatusCode::BAD_REQUEST,
            MediaError::NotFound(_) | MediaError::Peer(_) => StatusCode::NOT_FOUND,
            MediaError::Unsatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            MediaError::Remote { source, .. } => match source {
                RemoteError::Refused(RequestError::NotFound | RequestError::NotShared) => StatusCode::NOT_FOUND,
                RemoteError::Refused(RequestError::Invalid(_)) => StatusCode::BAD_REQUEST,
                RemoteError::Refused(RequestError::Busy) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_GATEWAY,
            },
            MediaError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            MediaError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for MediaError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, "media request failed");
        }
        let mut resp = (status, Json(ApiError { error: self.to_string() })).into_response();
        let h = resp.headers_mut();
        h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        match self {
            MediaError::Unauthorized => {
                h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            MediaError::Unsatisfiable { size } => {
                h.insert(header::CONTENT_RANGE, value(format!("bytes */{size}")));
                h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            }
            _ => {}
        }
        resp
    }
}

/// A header value we built from digits and ASCII.
fn value(text: String) -> HeaderValue {
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A file's version as the browser sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub size: u64,
    pub etag: String,
    pub last_modified: String,
}

impl Version {
    pub fn new(size: u64, mtime_ns: i64) -> Self {
        Version {
            size,
            etag: format!("\"{size:x}-{mtime_ns:x}\""),
            last_modified: http_date(mtime_ns.div_euclid(1_000_000_000)),
        }
    }

    /// Whether an `If-Range` validator (if any) still names this version;
    /// if not, the range is ignored and the whole file sent.
    pub fn if_range_holds(&self, if_range: Option<&str>) -> bool {
        match if_range.map(str::trim) {
            None => true,
            // Weak tags never match for ranges; ours are strong.
            Some(v) if v.starts_with('"') => v == self.etag,
            Some(v) if v.starts_with("W/") => false,
            Some(date) => date == self.last_modified,
        }
    }
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) for Unix seconds,
/// clamped to years 1970–9999.
pub fn http_date(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let secs = secs.clamp(0, 253_402_300_799);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (proleptic Gregorian, era-based).
    let z = days + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `Content-Disposition` for `name`: `inline` or `attachment`, with an
/// ASCII `filename` fallback and the exact name as `filename*` (RFC 6266).
pub fn disposition(attachment: bool, name: &str) -> String {
    let kind = if attachment { "attachment" } else { "inline" };
    let ascii: String = name
        .chars()
        .map(|c| if c == ' ' || (c.is_ascii_graphic() && c != '"' && c != '\\') { c } else { '_' })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// Whether `?download=1` (or `=true`, or bare `download`) was asked for.
fn wants_download(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|kv| matches!(kv, "download" | "download=1" | "download=true")))
}

/// The response for `name` in `version`, covering `part` (never
/// `Unsatisfiable`), with `body` holding exactly those bytes.
fn media_response(name: &str, version: &Version, part: Resolved, attachment: bool, body: Body) -> Response {
    let kind = MediaKind::of(name);
    let content_type = if kind.is_some() { MediaKind::content_type(name) } else { "application/octet-stream" };
    let (status, length) = match part {
        Resolved::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, end - start + 1),
        _ => (StatusCode::OK, version.size),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Resolved::Partial { start, end } = part {
        h.insert(header::CONTENT_RANGE, value(format!("bytes {start}-{end}/{}", version.size)));
    }
    h.insert(header::CONTENT_DISPOSITION, value(disposition(attachment || kind.is_none(), name)));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(MEDIA_CSP));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    h.insert(header::ETAG, value(version.etag.clone()));
    h.insert(header::LAST_MODIFIED, value(version.last_modified.clone()));
    resp
}

/// What the request asked for, from its headers and query.
#[derive(Debug, Clone)]
struct Ask {
    head: bool,
    range: RangeRequest,
    if_range: Option<String>,
    attachment: bool,
}

impl Ask {
    fn of(method: &Method, headers: &HeaderMap, query: Option<&str>) -> Ask {
        let text = |n: header::HeaderName| headers.get(n).and_then(|v| v.to_str().ok());
        Ask {
            head: method == Method::HEAD,
            range: parse_range(text(header::RANGE)),
            if_range: text(header::IF_RANGE).map(str::to_owned),
            attachment: wants_download(query),
        }
    }

    /// The part of a file in `version` to send.
    fn part(&self, version: &Version) -> Result<Resolved, MediaError> {
        let range = if version.if_range_holds(self.if_range.as_deref()) { self.range } else { RangeRequest::Whole };
        match range.resolve(version.size) {
            Resolved::Unsatisfiable => Err(MediaError::Unsatisfiable { size: version.size }),
            part => Ok(part),
        }
    }
}

/// `(offset, length)` of `part` in a file of `size` bytes.
fn span(part: Resolved, size: u64) -> (u64, u64) {
    match part {
        Resolved::Partial { start, end } => (start, end - start + 1),
        _ => (0, size),
    }
}

/// The `/media` routes, behind [`media_authorized`].
/// Every `/media` route; [`router`] mounts exactly these.
pub fn routes() -> Vec<(&'static str, axum::routing::MethodRouter<AppState>)> {
    vec![("/own/{*path}", get(own)), ("/peer/{peer}/{*path}", get(peer)), ("/download/{id}/{seq}", get(download))]
}

pub fn router(state: AppState) -> Router {
    routes()
        .into_iter()
        .fold(Router::new(), |r, (path, route)| r.route(path, route))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), require_media_auth))
        .with_state(state)
}

async fn require_media_auth(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if !media_authorized(req.headers(), &st.token) {
        return MediaError::Unauthorized.into_response();
    }
    next.run(req).await
}

async fn not_found() -> MediaError {
    MediaError::NotFound(
        "no such media route: use /media/own/{path}, /media/peer/{peer}/{path} or /media/download/{id}/{seq}".into(),
    )
}

/// `POST /api/media-session`: 204 with the media cookie (the bearer token
/// was checked by the API's middleware).
pub async fn session(State(st): State<AppState>) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(header::SET_COOKIE, value(media_cookie_header(&st.token)));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn path_param<T>(p: Result<Path<T>, PathRejection>) -> Result<T, MediaError> {
    p.map(|Path(v)| v).map_err(|e| MediaError::Path(e.body_text()))
}

/// `/media/own/{share path}`.
async fn own(
    State(st): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, MediaError> {
    let raw = path_param(path)?;
    let parsed = SharePath::parse(&raw).map_err(|e| MediaError::Path(e.to_string()))?;
    let name = parsed.split_last().map(|(_, n)| n.to_owned()).unwrap_or_default();
    let shares = st.shares.clone();
    let p = parsed.to_string();
    let real = tokio::task::spawn_blocking(move || shares.resolve_file(&p, crate::shares::Viewer::Owner))
        .await
        .map_err(|_| MediaError::ShuttingDown)?
        .map_err(|e| match e {
            RequestError::Invalid(m) => MediaError::Path(m),
            RequestError::Io => {
                MediaError::Io { path: PathBuf::from(parsed.as_str()), source: std::io::Error::other(e) }
            }
            _ => MediaError::NotFound(format!("{parsed} is not a file in our shares: `hdp ls` lists them")),
        })?;
    serve_local(real, &name, &Ask::of(&method, &headers, query.as_deref())).await
}

/// `/media/download/{id}/{seq}`.
async fn download(
    State(st): State<AppState>,
    ids: Result<Path<(u64, u64)>, PathRejection>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, MediaError> {
    let (id, seq) = path_param(ids)?;
    let downloads = st.downloads.clone();
    let found = tokio::task::spawn_blocking(move || downloads.finished_path(id, seq))
        .await
        .map_err(|_| MediaError::ShuttingDown)?
        .map_err(|e| MediaError::Io {
            path: PathBuf::from(format!("download {id}")),
            source: std::io::Error::other(e),
        })?;
    let Some(local) = found else {
        return Err(MediaError::NotFound(format!(
            "download {id} has no finished file {seq}: `hdp downloads {id}` shows its files and their states"
        )));
    };
    let name = local.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    serve_local(local, &name, &Ask::of(&method, &headers, query.as_deref())).await
}

/// Serves the local file `path` (already checked by the caller).
async fn serve_local(path: PathBuf, name: &str, ask: &Ask) -> Result<Response, MediaError> {
    let p = path.clone();
    let opened = tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::OpenOptionsExt;
        // No symlink in the last place; a FIFO must not block the open.
        let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(&p)?;
        let meta = f.metadata()?;
        if !meta.is_file() {
            return Err(std::io::Error::new(std::io::ErrorKind::NotFound, "not a regular file"));
        }
        Ok((f, Version::new(meta.len(), crate::index::scan::mtime_ns(&meta))))
    })
    .await
    .map_err(|_| MediaError::ShuttingDown)?;
    let (file, version) = match opened {
        Ok(v) => v,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound) || e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(MediaError::NotFound(format!("{name} is gone from the disk")));
        }
        Err(source) => return Err(MediaError::Io { path, source }),
    };
    let part = ask.part(&version)?;
    if ask.head {
        return Ok(media_response(name, &version, part, ask.attachment, Body::empty()));
    }
    let (offset, length) = span(part, version.size);
    let mut file = tokio::fs::File::from_std(file);
    file.seek(SeekFrom::Start(offset)).await.map_err(|source| MediaError::Io { path: path.clone(), source })?;
    Ok(media_response(name, &version, part, ask.attachment, Body::from_stream(file_stream(file, length))))
}

/// `length` bytes of `file` from where it stands, [`CHUNK`] at a time; an
/// error if the file ends first (it shrank while being sent).
fn file_stream(
    file: tokio::fs::File,
    length: u64,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::unfold(Some((file, length)), |state| async move {
        let (mut file, left) = state?;
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; left.min(CHUNK as u64) as usize];
        match file.read(&mut buf).await {
            Ok(0) => Some((
                Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the file shrank while it was sent")),
                None,
            )),
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some((file, left - n as u64))))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

/// `/media/peer/{peer}/{share path}`: see the module docs.
async fn peer(
    State(st): State<AppState>,
    params: Result<Path<(String, String)>, PathRejection>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, MediaError> {
    let (who, raw) = path_param(params)?;
    let path = SharePath::parse(&raw).map_err(|e| MediaError::Path(e.to_string()))?;
    let Some((_, name)) = path.split_last() else {
        return Err(MediaError::Path("name a file: /media/peer/{peer}/{share}/{path}".into()));
    };
    let name = name.to_owned();
    let pc = st.peers.resolve(&who)?;
    let ask = Ask::of(&method, &headers, query.as_deref());
    let fail = |source| MediaError::Remote { peer: pc.id.friendly_name(), path: path.to_string(), source };
    let read = |offset: u64, length: Option<u64>| {
        remote::read(&pc.conn, ReadRequest { path: path.to_string(), offset, length })
    };
    // The first read: what the range asks for when no size is needed to
    // know it; a zero-length read (which tells the size) otherwise.
    let (offset, length) = match ask.range {
        _ if ask.head => (0, Some(0)),
        RangeRequest::Whole => (0, None),
        RangeRequest::From(a) => (a, None),
        RangeRequest::FromTo(a, b) => (a, Some((b - a).saturating_add(1))),
        RangeRequest::Suffix(_) => (0, Some(0)),
    };
    let (ok, recv) = match read(offset, length).await {
        Ok(v) => v,
        Err(RemoteError::Refused(RequestError::BadRange)) => {
            // Past the end: learn the size for the 416's Content-Range.
            let (ok, _) = read(0, Some(0)).await.map_err(fail)?;
            return Err(MediaError::Unsatisfiable { size: ok.size });
        }
        Err(e) => return Err(fail(e)),
    };
    check_promise(&ok, offset, length).map_err(fail)?;
    let version = Version::new(ok.size, ok.mtime_ns);
    let part = ask.part(&version)?;
    if ask.head {
        return Ok(media_response(&name, &version, part, ask.attachment, Body::empty()));
    }
    let (start, len) = span(part, version.size);
    let recv = if (offset, ok.length) == (start, len) {
        recv
    } else {
        // The first read was a probe, or If-Range asked for the whole file.
        drop(recv);
        let (again, recv) = read(start, Some(len)).await.map_err(fail)?;
        check_promise(&again, start, Some(len)).map_err(fail)?;
        if (again.size, again.mtime_ns) != (ok.size, ok.mtime_ns) {
            return Err(fail(RemoteError::Protocol("the file changed on the peer just now; try again".into())));
        }
        recv
    };
    let body = PeerBody { recv, left: len };
    Ok(media_response(&name, &version, part, ask.attachment, Body::from_stream(body.into_stream())))
}

/// The peer must promise exactly what a `read` of `length` bytes at
/// `offset` yields from a file of its stated size: fewer would make us
/// send a body shorter than its `Content-Length`.
fn check_promise(ok: &ReadOk, offset: u64, length: Option<u64>) -> Result<(), RemoteError> {
    let expected = ok.size.saturating_sub(offset).min(length.unwrap_or(u64::MAX));
    if ok.length != expected {
        return Err(RemoteError::Protocol(format!("promised {} bytes where {expected} were due", ok.length)));
    }
    Ok(())
}

/// A peer's `read` stream being passed on to a browser. Dropping it (the
/// browser went away, or the body ended) stops the QUIC stream, so the
/// peer stops sending and frees its upload slot.
struct PeerBody {
    recv: quinn::RecvStream,
    left: u64,
}

impl Drop for PeerBody {
    fn drop(&mut self) {
        if self.left > 0 {
            let _ = self.recv.stop(quinn::VarInt::from_u32(StreamCode::Cancelled as u32));
        }
    }
}

impl PeerBody {
    /// The promised bytes, at most [`CHUNK`] per item; an error if the peer
    /// ends early, stalls or resets the stream.
    fn into_stream(self) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        futures_util::stream::unfold(Some(self), |state| async move {
            let mut body = state?;
            if body.left == 0 {
                return None;
            }
            let want = body.left.min(CHUNK as u64) as usize;
            let err = match tokio::time::timeout(PEER_STALL_TIMEOUT, body.recv.read_chunk(want, true)).await {
                Ok(Ok(Some(chunk))) => {
                    let n = (chunk.bytes.len() as u64).min(body.left);
                    body.left -= n;
                    return Some((Ok(chunk.bytes), Some(body)));
                }
                Ok(Ok(None)) => format!("the peer ended the file {} bytes early", body.left),
                Ok(Err(e)) => format!("the peer's stream broke: {e}"),
                Err(_) => format!("the peer sent nothing for {PEER_STALL_TIMEOUT:?}"),
            };
            tracing::debug!(error = %err, "media stream from a peer failed");
            Some((Err(std::io::Error::other(err)), None))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_range_compares_exactly() {
        let v = Version::new(1000, 1_700_000_000_123_456_789);
        assert!(v.if_range_holds(None));
        assert!(v.if_range_holds(Some(&v.etag)));
        assert!(v.if_range_holds(Some(&v.last_modified)));
        assert!(!v.if_range_holds(Some("\"3e8-0\"")));
        assert!(!v.if_range_holds(Some(&format!("W/{}", v.etag))));
        assert!(!v.if_range_holds(Some("Mon, 01 Jan 2001 00:00:00 GMT")));
        assert_ne!(v.etag, Version::new(1001, 1_700_000_000_123_456_789).etag);
        assert_ne!(v.etag, Version::new(1000, 1_700_000_000_123_456_788).etag);
        let ask =
            Ask { head: false, range: RangeRequest::FromTo(0, 9), if_range: Some("\"old\"".into()), attachment: false };
        assert_eq!(ask.part(&v).unwrap(), Resolved::Whole);
        let ask = Ask { if_range: Some(v.etag.clone()), ..ask };
        assert_eq!(ask.part(&v).unwrap(), Resolved::Partial { start: 0, end: 9 });
        let ask = Ask { range: RangeRequest::From(1000), ..ask };
        assert!(matches!(ask.part(&v), Err(MediaError::Unsatisfiable { size: 1000 })));
    }

    #[test]
    fn http_dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(1_709_164_800), "Thu, 29 Feb 2024 00:00:00 GMT");
        assert_eq!(http_date(-5), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(i64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn dispositions_are_safe() {
        assert_eq!(disposition(false, "a b.mp4"), "inline; filename=\"a b.mp4\"; filename*=UTF-8''a%20b.mp4");
        let d = disposition(true, "\"evil\\\r\nX: y\u{e9}.html");
        assert!(d.starts_with("attachment; filename=\"_evil___X: y_.html\"; "), "{d}");
        assert!(d.ends_with("filename*=UTF-8''%22evil%5C%0D%0AX%3A%20y%C3%A9.html"), "{d}");
        assert!(HeaderValue::from_str(&d).is_ok());
        assert!(wants_download(Some("download=1")) && wants_download(Some("x=2&download=true")));
        assert!(!wants_download(None) && !wants_download(Some("download=0")) && !wants_download(Some("nodownload=1")));
    }

    #[test]
    fn only_media_is_inline() {
        let v = Version::new(4, 0);
        let resp = |name: &str, attachment: bool| media_response(name, &v, Resolved::Whole, attachment, Body::empty());
        let get = |r: &Response, h: header::HeaderName| r.headers()[h].to_str().unwrap().to_owned();
        let r = resp("clip.MP4", false);
        assert_eq!(get(&r, header::CONTENT_TYPE), "video/mp4");
        assert!(get(&r, header::CONTENT_DISPOSITION).starts_with("inline;"));
        for hostile in ["page.html", "icon.svg", "x.js", "noext", "a.xhtml"] {
            let r = resp(hostile, false);
            assert_eq!(get(&r, header::CONTENT_TYPE), "application/octet-stream", "{hostile}");
            assert!(get(&r, header::CONTENT_DISPOSITION).starts_with("attachment;"), "{hostile}");
            assert_eq!(get(&r, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
            assert_eq!(get(&r, header::CONTENT_SECURITY_POLICY), MEDIA_CSP);
        }
        let r = resp("song.flac", true);
        assert!(get(&r, header::CONTENT_DISPOSITION).starts_with("attachment;"));
        let r = media_response("a.png", &v, Resolved::Partial { start: 1, end: 2 }, false, Body::empty());
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(get(&r, header::CONTENT_RANGE), "bytes 1-2/4");
        assert_eq!(get(&r, header::CONTENT_LENGTH), "2");
    }

    #[test]
    fn cookie_is_derived_and_checked() {
        let token = "a".repeat(64);
        let v = media_cookie_value(&token);
        assert_eq!(v.len(), 64);
        assert_ne!(v, token);
        assert!(!v.contains(&token[..16]));
        assert_eq!(v, media_cookie_value(&token));
        assert_ne!(v, media_cookie_value(&"b".repeat(64)));
        let set = media_cookie_header(&token);
        for part in [&format!("{MEDIA_COOKIE}={v}"), "Path=/media", "HttpOnly", "SameSite=Strict", "Max-Age="] {
            assert!(set.contains(part), "{set}");
        }
        let with = |name: header::HeaderName, text: &str| {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_str(text).unwrap());
            media_authorized(&h, &token)
        };
        assert!(with(header::COOKIE, &format!("{MEDIA_COOKIE}={v}")));
        assert!(with(header::COOKIE, &format!("theme=dark; {MEDIA_COOKIE}={v}; other=1")));
        assert!(with(header::AUTHORIZATION, &format!("Bearer {token}")));
        assert!(!with(header::COOKIE, &format!("{MEDIA_COOKIE}={}", &v[..63])));
        assert!(!with(header::COOKIE, &format!("{MEDIA_COOKIE}={token}")));
        assert!(!with(header::COOKIE, &format!("other={v}")));
        assert!(!with(header::AUTHORIZATION, &format!("Bearer {v}")));
        assert!(!media_authorized(&HeaderMap::new(), &token));
    }

    #[test]
    fn promises_must_be_exact() {
        let ok = |size, length| ReadOk { size, mtime_ns: 0, length };
        assert!(check_promise(&ok(10, 10), 0, None).is_ok());
        assert!(check_promise(&ok(10, 4), 6, None).is_ok());
        assert!(check_promise(&ok(10, 3), 2, Some(3)).is_ok());
        assert!(check_promise(&ok(10, 8), 2, Some(100)).is_ok());
        assert!(check_promise(&ok(10, 0), 0, Some(0)).is_ok());
        assert!(check_promise(&ok(10, 0), 10, None).is_ok());
        assert!(check_promise(&ok(10, 9), 0, None).is_err());
        assert!(check_promise(&ok(10, 2), 2, Some(3)).is_err());
    }
}
