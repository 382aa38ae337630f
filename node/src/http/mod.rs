//! The HTTP API (`/api/*`, bearer-token protected) and the embedded web UI.
//!
//! Handlers are thin: they validate input, call [`Shares`] or [`Index`]
//! (blocking index reads go to the blocking pool), and map errors to an
//! [`ApiError`] JSON body with a fitting status code.
//!
//! [`router`] also mounts `/media/*` ([`crate::http::media`]) and wraps everything,
//! the UI's files included, in the Host/Origin guard ([`crate::http::guard`]).

pub mod auth;
pub mod fsview;
pub mod guard;
pub mod media;
pub mod qr;
pub mod server;
pub mod settings;
pub mod ui;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use hdp_proto::api::{
    AddShare, ApiError, ConnectRequest, DownloadEvent, DownloadInfo, DownloadRequest, Entry, FileInfo, FileState,
    FilesPage, FriendInfo, FriendUpdate, Info, JoinTopic, LsPage, PeerInfo, ShareInfo, ShareUpdate, TopicInfo,
};
use hdp_proto::id::PeerId;
use hdp_proto::path::SharePath;
use hdp_proto::wire::{self, MAX_LS_ENTRIES};
use serde::Deserialize;

use crate::discovery::Discovery;
use crate::download::{ControlError, Downloads, StartDownloadError};
use crate::http::auth::check_bearer;
use crate::index::{Index, LsError, LsRequest, RecordError};
use crate::peers::{Peers, ResolveError};
use crate::remote::{self, RemoteError};
use crate::shares::{AddShareError, ShareOpError, Shares};

/// Largest request body the API accepts. Every API body is a small JSON object.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    pub id: PeerId,
    pub token: Arc<str>,
    pub index: Index,
    pub shares: Arc<Shares>,
    pub peers: Arc<Peers>,
    pub discovery: Arc<Discovery>,
    pub downloads: Arc<Downloads>,
    /// Answers peers; `GET /api/uploads` and the upload settings.
    pub server: Arc<crate::serve::Server>,
    /// `GET`/`PUT /api/settings`.
    pub settings: Arc<crate::http::settings::LiveSettings>,
    pub listen_addrs: Arc<Vec<SocketAddr>>,
    /// The NAT layer, for `GET /api/info`'s `nat`.
    pub net: Arc<crate::net::Net>,
    /// The address the HTTP server is bound to (`GET /api/info`'s `web_ui`).
    pub http_addr: SocketAddr,
    /// Ends long-lived responses (the event stream) at shutdown.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Names `Host` may carry ([`crate::http::guard`]; `--http-host`).
    pub hosts: Arc<crate::http::guard::AllowedHosts>,
}

/// An error response: a status code and a message for people.
#[derive(Debug)]
pub struct Failure {
    status: StatusCode,
    message: String,
}

impl Failure {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Failure { status, message: message.into() }
    }
    fn internal(e: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %e, "API request failed");
        Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.status, Json(ApiError { error: self.message })).into_response()
    }
}

impl From<RecordError> for Failure {
    fn from(e: RecordError) -> Self {
        Failure::internal(e)
    }
}

impl From<LsError> for Failure {
    fn from(e: LsError) -> Self {
        match e {
            LsError::Path(_) | LsError::Cursor => Failure::new(StatusCode::BAD_REQUEST, e.to_string()),
            LsError::NotFound(_) => Failure::new(StatusCode::NOT_FOUND, e.to_string()),
            LsError::Lmdb(_) => Failure::internal(e),
        }
    }
}

impl From<AddShareError> for Failure {
    fn from(e: AddShareError) -> Self {
        let status = match e {
            AddShareError::NotFound(_) => StatusCode::NOT_FOUND,
            AddShareError::NotADirectory(_) | AddShareError::Private(_) | AddShareError::Topics(_) => {
                StatusCode::BAD_REQUEST
            }
            AddShareError::Io { .. } => StatusCode::FORBIDDEN,
            AddShareError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            AddShareError::Index(_) => return Failure::internal(e),
        };
        Failure::new(status, e.to_string())
    }
}

impl From<ShareOpError> for Failure {
    fn from(e: ShareOpError) -> Self {
        match e {
            ShareOpError::Unknown(_) => Failure::new(StatusCode::NOT_FOUND, e.to_string()),
            ShareOpError::Topics(_) => Failure::new(StatusCode::BAD_REQUEST, e.to_string()),
            ShareOpError::ShuttingDown => Failure::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            ShareOpError::Index(_) => Failure::internal(e),
        }
    }
}

impl From<ResolveError> for Failure {
    fn from(e: ResolveError) -> Self {
        Failure::new(StatusCode::NOT_FOUND, e.to_string())
    }
}

impl From<StartDownloadError> for Failure {
    fn from(e: StartDownloadError) -> Self {
        match e {
            StartDownloadError::Peer(p) => p.into(),
            StartDownloadError::Path(_) => Failure::new(StatusCode::BAD_REQUEST, e.to_string()),
            StartDownloadError::Dir { .. } => Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            StartDownloadError::TooMany => Failure::new(StatusCode::TOO_MANY_REQUESTS, e.to_string()),
            StartDownloadError::Store(_) => Failure::internal(e),
        }
    }
}

impl From<ControlError> for Failure {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::NotFound(_) | ControlError::NoFile(..) => Failure::new(StatusCode::NOT_FOUND, e.to_string()),
            ControlError::State { .. } => Failure::new(StatusCode::CONFLICT, e.to_string()),
            ControlError::Store(_) => Failure::internal(e),
        }
    }
}

impl From<RemoteError> for Failure {
    fn from(e: RemoteError) -> Self {
        let status = match &e {
            RemoteError::Refused(wire::RequestError::NotFound) => StatusCode::NOT_FOUND,
            RemoteError::Refused(wire::RequestError::Invalid(_)) => StatusCode::BAD_REQUEST,
            RemoteError::Refused(wire::RequestError::Busy) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_GATEWAY,
        };
        Failure::new(status, e.to_string())
    }
}

type ApiResult<T> = Result<T, Failure>;

/// Every `/api` route. [`router`] mounts exactly these, behind the token
/// check, and the tests walk [`api_paths`], so a new route can neither skip
/// the check nor the tests.
fn api_routes() -> Vec<(&'static str, MethodRouter<AppState>)> {
    use axum::routing::delete;
    vec![
        ("/info", get(info)),
        ("/shares", get(list_shares).post(add_share).delete(remove_share_query)),
        ("/shares/{name}", delete(remove_share).patch(update_share)),
        ("/shares/{name}/rescan", post(rescan_share)),
        ("/ls", get(ls)),
        ("/peers", get(list_peers)),
        ("/peers/{peer}", delete(remove_peer)),
        ("/connect", post(connect)),
        ("/downloads", get(list_downloads).post(start_download)),
        ("/downloads/{id}", get(get_download).delete(cancel_download)),
        ("/downloads/{id}/files", get(download_files)),
        ("/downloads/{id}/files/{seq}/{action}", post(file_action)),
        ("/downloads/{id}/{action}", post(download_action)),
        ("/events", get(events)),
        ("/topics", get(list_topics).post(join_topic)),
        ("/topics/{name}", delete(leave_topic)),
        ("/settings", get(get_settings).put(put_settings)),
        ("/uploads", get(list_uploads)),
        ("/fs", get(fs_listing)),
        ("/contact", get(contact)),
        ("/friends", get(list_friends)),
        ("/friends/{peer}", axum::routing::patch(update_friend)),
        ("/media-session", post(crate::http::media::session)),
    ]
    .into_iter()
    .map(|(path, route)| (path, route.fallback(method_not_allowed)))
    .collect()
}

/// The paths of every route, `/api/…` and `/media/…`, as the router
/// declares them (`{name}` for a segment, `{*path}` for the rest).
pub fn api_paths() -> Vec<String> {
    let api = api_routes().into_iter().map(|(p, _)| format!("/api{p}"));
    api.chain(crate::http::media::routes().into_iter().map(|(p, _)| format!("/media{p}"))).collect()
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let api = api_routes()
        .into_iter()
        .fold(Router::new(), |r, (path, route)| r.route(path, route))
        .fallback(api_not_found)
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state.clone());
    Router::new()
        .nest("/api", api)
        .nest("/media", crate::http::media::router(state.clone()))
        .fallback(crate::http::ui::serve)
        .layer(middleware::from_fn_with_state(state.hosts.clone(), crate::http::guard::check))
}

async fn require_token(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let header = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if !check_bearer(header, &st.token) {
        let mut resp = Failure::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong API token: send 'Authorization: Bearer <token>' with the token from <data-dir>/api-token",
        )
        .into_response();
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        return resp;
    }
    next.run(req).await
}

async fn method_not_allowed() -> Failure {
    Failure::new(StatusCode::METHOD_NOT_ALLOWED, "this API route does not take that method")
}

async fn api_not_found() -> Failure {
    Failure::new(StatusCode::NOT_FOUND, "no such API route")
}

async fn info(State(st): State<AppState>) -> ApiResult<Json<Info>> {
    Ok(Json(Info {
        id: st.id,
        name: st.id.friendly_name(),
        version: hdp_proto::VERSION.to_owned(),
        shares: st.shares.list()?,
        listen_addrs: st.listen_addrs.iter().map(|a| a.to_string()).collect(),
        topics: st.peers.topic_names(),
        mqtt: st.discovery.mqtt_status(),
        mdns: st.discovery.mdns_on(),
        web_ui: crate::node::web_ui_urls(st.http_addr),
        nat: st.net.info(),
    }))
}

async fn list_shares(State(st): State<AppState>) -> ApiResult<Json<Vec<ShareInfo>>> {
    Ok(Json(st.shares.list()?))
}

async fn add_share(
    State(st): State<AppState>,
    body: Result<Json<AddShare>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<ShareInfo>)> {
    let Json(req) = body.map_err(|e| Failure::new(e.status(), format!("bad request body: {}", e.body_text())))?;
    if req.path.is_empty() || req.path.contains('\0') {
        return Err(Failure::new(StatusCode::BAD_REQUEST, "give the directory to share as 'path'"));
    }
    let info = st.shares.add(req.path.into(), req.topics).await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// `PATCH /api/shares/{name}`: `{"topics": [...]}` limits the share to the
/// peers of those topics, `{"topics": null}` shows it to every topic.
async fn update_share(
    State(st): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<ShareUpdate>, JsonRejection>,
) -> ApiResult<Json<ShareInfo>> {
    let Json(req) = body.map_err(|e| Failure::new(e.status(), format!("bad request body: {}", e.body_text())))?;
    let Some(topics) = req.topics else {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "say what to change: {\"topics\": [\"family\"]} or {\"topics\": null} for every topic",
        ));
    };
    Ok(Json(st.shares.set_topics(&name, topics).await?))
}

#[derive(Debug, Deserialize)]
struct NameQuery {
    name: Option<String>,
}

async fn remove_share_query(
    State(st): State<AppState>,
    q: Result<Query<NameQuery>, QueryRejection>,
) -> ApiResult<Json<ShareInfo>> {
    let name = q.ok().and_then(|Query(q)| q.name).unwrap_or_default();
    if name.is_empty() {
        return Err(Failure::new(StatusCode::BAD_REQUEST, "say which share: DELETE /api/shares/{name}"));
    }
    Ok(Json(st.shares.remove(&name).await?))
}

async fn remove_share(State(st): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<ShareInfo>> {
    Ok(Json(st.shares.remove(&name).await?))
}

async fn rescan_share(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<(StatusCode, Json<ShareInfo>)> {
    Ok((StatusCode::ACCEPTED, Json(st.shares.rescan(&name)?)))
}

/// Decodes and validates `query` as the query string of every API route
/// that takes one, the way their handlers do. For the fuzz targets
/// (tests/fuzz): whatever the bytes, this returns.
#[doc(hidden)]
pub fn check_query_strings(query: &[u8]) {
    if let Ok(p) = serde_urlencoded::from_bytes::<LsParams>(query) {
        let _ = p.validate();
    }
    let _ = serde_urlencoded::from_bytes::<NameQuery>(query);
    let _ = serde_urlencoded::from_bytes::<FilesQuery>(query);
    let _ = serde_urlencoded::from_bytes::<FsParams>(query);
}

/// `/api/ls` parameters as sent: every one optional, empty means absent.
#[derive(Debug, Deserialize)]
struct LsParams {
    peer: Option<String>,
    path: Option<String>,
    recursive: Option<String>,
    search: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

impl LsParams {
    fn validate(self) -> ApiResult<LsRequest> {
        let bad = |m: String| Failure::new(StatusCode::BAD_REQUEST, m);
        let path =
            SharePath::parse(self.path.as_deref().unwrap_or("")).map_err(|e| bad(format!("invalid path: {e}")))?;
        let recursive = match non_empty(self.recursive).as_deref() {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => {
                return Err(bad(format!("recursive must be true or false, not {other:?}")));
            }
        };
        let search = non_empty(self.search).map(|s| s.to_lowercase());
        if search.as_ref().is_some_and(|s| s.len() > 1024) {
            return Err(bad("search term is longer than 1024 bytes".into()));
        }
        let cursor = non_empty(self.cursor)
            .map(|c| SharePath::parse(&c))
            .transpose()
            .map_err(|_| bad("invalid cursor: pass back the cursor of the previous page unchanged".into()))?;
        let limit = non_empty(self.limit)
            .map(|l| l.parse::<u32>())
            .transpose()
            .map_err(|_| bad("limit must be a positive number".into()))?;
        Ok(LsRequest { path, recursive, search, cursor, limit, hidden: Vec::new() })
    }
}

async fn ls(State(st): State<AppState>, q: Result<Query<LsParams>, QueryRejection>) -> ApiResult<Json<LsPage>> {
    let Query(mut params) = q.map_err(|e| Failure::new(StatusCode::BAD_REQUEST, format!("bad query: {e}")))?;
    if let Some(peer) = non_empty(params.peer.take()) {
        return remote_ls(&st, &peer, params.validate()?).await.map(Json);
    }
    let req = params.validate()?;
    let index = st.index.clone();
    let page = tokio::task::spawn_blocking(move || index.ls(&req))
        .await
        .map_err(|_| Failure::new(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down"))??;
    Ok(Json(page))
}

/// `GET /api/ls?peer=…`: one page of a peer's listing.
async fn remote_ls(st: &AppState, peer: &str, req: LsRequest) -> ApiResult<LsPage> {
    let pc = st.peers.resolve(peer)?;
    let wire_req = wire::LsRequest {
        path: req.path.to_string(),
        recursive: req.recursive,
        search: req.search,
        cursor: req.cursor.map(|c| c.to_string()),
        limit: req.limit.unwrap_or(hdp_proto::api::LS_DEFAULT_LIMIT).min(MAX_LS_ENTRIES),
    };
    let resp = remote::ls(&pc.conn, wire_req).await?;
    // Entries come from a peer: only well-formed paths are passed on.
    let entries = resp
        .entries
        .into_iter()
        .filter_map(|e| {
            let path = SharePath::parse(&e.path).ok()?;
            let (_, name) = path.split_last()?;
            Some(Entry {
                name: name.to_owned(),
                path: path.to_string(),
                kind: e.kind,
                size: e.size,
                mtime: e.mtime_ns.div_euclid(1_000_000_000),
                mtime_ns: e.mtime_ns,
                entries: (e.kind == hdp_proto::api::EntryKind::Dir).then_some(e.count),
            })
        })
        .collect();
    let cursor = resp.cursor.filter(|c| SharePath::parse(c).is_ok());
    Ok(LsPage { entries, cursor })
}

/// `GET /api/friends`: everyone we completed a handshake with.
async fn list_friends(State(st): State<AppState>) -> Json<Vec<FriendInfo>> {
    let peers = st.peers.clone();
    Json(st.peers.friends().list(|id| peers.connection(id).is_some()))
}

/// `PATCH /api/friends/{peer}`: a nickname, blocked or not. Blocking closes
/// a live connection at once (close code `Blocked`).
async fn update_friend(
    State(st): State<AppState>,
    Path(peer): Path<String>,
    body: Result<Json<FriendUpdate>, JsonRejection>,
) -> ApiResult<Json<FriendInfo>> {
    use crate::friends::FriendError;
    let Json(update) = body.map_err(|e| Failure::new(e.status(), format!("bad request body: {}", e.body_text())))?;
    let friends = st.peers.friends().clone();
    let id = friends.resolve(&peer).map_err(|e| match e {
        FriendError::NotFound(_) => Failure::new(StatusCode::NOT_FOUND, e.to_string()),
        _ => Failure::new(StatusCode::BAD_REQUEST, e.to_string()),
    })?;
    let f = friends.clone();
    let u = update.clone();
    tokio::task::spawn_blocking(move || f.update(id, &u)).await.map_err(Failure::internal)?.map_err(|e| match e {
        FriendError::Nickname => Failure::new(StatusCode::BAD_REQUEST, e.to_string()),
        _ => Failure::internal(e),
    })?;
    if update.blocked == Some(true) {
        st.peers.drop_blocked(&id);
    }
    let peers = st.peers.clone();
    let info = friends.list(|p| peers.connection(p).is_some()).into_iter().find(|f| f.id == id);
    info.map(Json).ok_or_else(|| Failure::new(StatusCode::NOT_FOUND, "the friend vanished"))
}

async fn list_peers(State(st): State<AppState>) -> Json<Vec<PeerInfo>> {
    Json(peer_infos(&st))
}

/// Connected peers and the ones we keep dialing, with what discovery knows.
fn peer_infos(st: &AppState) -> Vec<PeerInfo> {
    let mut list = st.peers.list();
    st.discovery.annotate(&mut list);
    list
}

/// What the peer list says about a connection just made, or, if the list
/// has not caught up yet, what the connection itself tells.
fn connected_info(st: &AppState, pc: &crate::peers::PeerConn) -> PeerInfo {
    peer_infos(st).into_iter().find(|p| p.id == Some(pc.id)).unwrap_or_else(|| PeerInfo {
        id: Some(pc.id),
        name: Some(pc.id.friendly_name()),
        addr: Some(pc.conn.remote_address().to_string()),
        connected: true,
        direction: Some(pc.direction),
        since: Some(pc.since),
        topics: pc.topics.get(),
        rtt_ms: None,
        path: None,
        source: "manual".into(),
        error: None,
        rx_rate: 0,
        tx_rate: 0,
        rx_bytes: 0,
        tx_bytes: 0,
    })
}

async fn connect(
    State(st): State<AppState>,
    body: Result<Json<ConnectRequest>, JsonRejection>,
) -> ApiResult<Json<PeerInfo>> {
    let Json(req) = body.map_err(|e| Failure::new(e.status(), format!("bad request body: {}", e.body_text())))?;
    if hdp_proto::contact::Contact::is_contact(&req.addr) {
        return connect_contact(&st, &req.addr).await.map(Json);
    }
    let bad = || {
        Failure::new(
            StatusCode::BAD_REQUEST,
            format!("cannot resolve {:?}: give HOST:PORT or an hdp: contact link", req.addr),
        )
    };
    let addr = tokio::net::lookup_host(req.addr.as_str()).await.map_err(|_| bad())?.next().ok_or_else(bad)?;
    match st.peers.add_target(addr).await {
        Ok(pc) => Ok(Json(connected_info(&st, &pc))),
        Err(e) => Err(Failure::new(
            StatusCode::BAD_GATEWAY,
            format!(
                "cannot connect to {addr}: {e}. It stays on the list and is retried; DELETE /api/peers/{addr} removes it"
            ),
        )),
    }
}

async fn remove_peer(State(st): State<AppState>, Path(peer): Path<String>) -> ApiResult<StatusCode> {
    if let Ok(addr) = peer.parse::<SocketAddr>()
        && st.peers.remove_target(&addr)
    {
        return Ok(StatusCode::NO_CONTENT);
    }
    let pc = st.peers.resolve(&peer)?;
    st.peers.disconnect(&pc.id);
    Ok(StatusCode::NO_CONTENT)
}

async fn start_download(
    State(st): State<AppState>,
    body: Result<Json<DownloadRequest>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<DownloadInfo>)> {
    let Json(req) = body.map_err(|e| Failure::new(e.status(), format!("bad request body: {}", e.body_text())))?;
    // Makes the download dir and commits to LMDB: not on the async thread.
    let downloads = st.downloads.clone();
    let queued = tokio::task::spawn_blocking(move || downloads.queue(&req.peer, &req.path, req.paused)).await;
    let info = queued.map_err(|e| {
        if e.is_panic() {
            Failure::internal("queueing the download failed (a bug: please report it)")
        } else {
            Failure::new(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down")
        }
    })??;
    Ok((StatusCode::CREATED, Json(info)))
}

async fn list_downloads(State(st): State<AppState>) -> Json<Vec<DownloadInfo>> {
    Json(st.downloads.list())
}

async fn get_download(State(st): State<AppState>, Path(id): Path<u64>) -> ApiResult<Json<DownloadInfo>> {
    st.downloads.get(id).map(Json).ok_or_else(|| Failure::new(StatusCode::NOT_FOUND, format!("no download {id}")))
}

/// `POST /api/downloads/{id}/pause|resume|cancel|retry|top`.
async fn download_action(State(st): State<AppState>, Path((id, action)): Path<(u64, String)>) -> ApiResult<Response> {
    let d = &st.downloads;
    let info = match action.as_str() {
        "pause" => d.pause(id)?,
        "resume" => d.resume(id)?,
        "retry" => d.retry(id)?,
        "top" => d.top(id)?,
        "cancel" => {
            d.cancel(id).await?;
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        other => return Err(unknown_action(other)),
    };
    Ok(Json(info).into_response())
}

fn unknown_action(action: &str) -> Failure {
    Failure::new(
        StatusCode::NOT_FOUND,
        format!("unknown action {action:?}: use pause, resume, cancel, retry (or top, for a whole download)"),
    )
}

/// `DELETE /api/downloads/{id}`: the same as `cancel`.
async fn cancel_download(State(st): State<AppState>, Path(id): Path<u64>) -> ApiResult<StatusCode> {
    st.downloads.cancel(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct FilesQuery {
    #[serde(default)]
    cursor: u64,
    limit: Option<usize>,
}

/// `GET /api/downloads/{id}/files?cursor=&limit=`: a page of a download's files.
async fn download_files(
    State(st): State<AppState>,
    Path(id): Path<u64>,
    q: Result<Query<FilesQuery>, QueryRejection>,
) -> ApiResult<Json<FilesPage>> {
    let Query(q) = q.map_err(|e| Failure::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let d = st.downloads.clone();
    let page = tokio::task::spawn_blocking(move || d.files(id, q.cursor, q.limit.unwrap_or(200)))
        .await
        .map_err(Failure::internal)??;
    Ok(Json(page))
}

/// `POST /api/downloads/{id}/files/{seq}/pause|resume|cancel|retry`.
async fn file_action(
    State(st): State<AppState>,
    Path((id, seq, action)): Path<(u64, u64, String)>,
) -> ApiResult<Json<FileInfo>> {
    let d = &st.downloads;
    let info = match action.as_str() {
        "pause" => d.set_file(id, seq, FileState::Paused)?,
        "resume" | "retry" => d.set_file(id, seq, FileState::Queued)?,
        "cancel" => d.cancel_file(id, seq).await?,
        other => return Err(unknown_action(other)),
    };
    Ok(Json(info))
}

/// `GET /api/events`: server-sent events. `event: download` carries a
/// [`DownloadInfo`] as JSON on every change and every
/// [`crate::download::PROGRESS_EVERY`] while files move; `event:
/// download_removed` carries `{"id": N}` when a download is cancelled or
/// forgotten. A listener that reads too slowly gets `event: lagged` (the
/// count of events it missed; fetch `/api/downloads` again); transfers never
/// wait for it.
///
/// Besides, every [`SNAPSHOT_EVERY`] the stream takes a snapshot of the
/// peers, shares, uploads and topics (`event: peers`, `shares`, `uploads`,
/// `topics`, each the JSON its `GET` route answers) and sends those whose
/// JSON differs from what it last sent on this stream; the first tick sends
/// all four. Per stream it remembers one BLAKE3 of each (not the JSON), and
/// holds at most four snapshot events waiting to go out.
async fn events(
    State(st): State<AppState>,
) -> axum::response::sse::Sse<
    impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use tokio::sync::broadcast::error::RecvError;
    // Subscribe first, then list: every change after the list is in the
    // receiver, so a client that applies both in order ends up current.
    let rx = st.downloads.subscribe();
    let mut tick = tokio::time::interval(SNAPSHOT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let pending = vec![downloads_event(&st)];
    let state = EventStream { rx, tick, sent: Default::default(), pending, st };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(e) = s.pending.pop() {
                return Some((Ok(e), s));
            }
            let event = tokio::select! {
                _ = s.st.shutdown.cancelled() => return None,
                r = s.rx.recv() => match r {
                    Ok(DownloadEvent::Update(info)) => {
                        Event::default().event("download").json_data(&info).unwrap_or_default()
                    }
                    Ok(DownloadEvent::Removed { id }) => {
                        Event::default().event("download_removed").json_data(serde_json::json!({ "id": id })).unwrap_or_default()
                    }
                    Err(RecvError::Lagged(n)) => {
                        // Missed updates: the whole list follows the notice.
                        s.pending.push(downloads_event(&s.st));
                        Event::default().event("lagged").data(n.to_string())
                    }
                    Err(RecvError::Closed) => return None,
                },
                _ = s.tick.tick() => {
                    s.snapshot();
                    continue;
                }
            };
            return Some((Ok(event), s));
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// `event: downloads`: every download request, as `GET /api/downloads` lists them.
fn downloads_event(st: &AppState) -> axum::response::sse::Event {
    axum::response::sse::Event::default().event("downloads").json_data(st.downloads.list()).unwrap_or_default()
}

/// How often an event stream checks peers, shares, uploads and topics for changes.
pub const SNAPSHOT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The snapshot kinds of the event stream, in the order they are sent.
const SNAPSHOT_KINDS: [&str; 4] = ["peers", "shares", "uploads", "topics"];

/// One `GET /api/events` stream's state.
struct EventStream {
    rx: tokio::sync::broadcast::Receiver<DownloadEvent>,
    tick: tokio::time::Interval,
    /// BLAKE3 of the JSON last sent for each of [`SNAPSHOT_KINDS`].
    sent: [Option<[u8; 32]>; 4],
    /// Snapshot events not yet sent, last one first; at most six (four
    /// snapshots, the download list and the `lagged` notice's list).
    pending: Vec<axum::response::sse::Event>,
    st: AppState,
}

impl EventStream {
    /// Queues the snapshots whose JSON changed since this stream sent them.
    fn snapshot(&mut self) {
        let st = &self.st;
        let jsons = [
            serde_json::to_string(&peer_infos(st)),
            match st.shares.list() {
                Ok(list) => serde_json::to_string(&list),
                // Unreadable now: try again at the next tick.
                Err(_) => return,
            },
            serde_json::to_string(&st.server.uploads_info()),
            serde_json::to_string(&topic_infos(st)),
        ];
        for (i, json) in jsons.into_iter().enumerate().rev() {
            let Ok(json) = json else { continue };
            let hash = *blake3::hash(json.as_bytes()).as_bytes();
            if self.sent[i] != Some(hash) {
                self.sent[i] = Some(hash);
                self.pending.push(axum::response::sse::Event::default().event(SNAPSHOT_KINDS[i]).data(json));
            }
        }
    }
}

async fn list_topics(State(st): State<AppState>) -> Json<Vec<TopicInfo>> {
    Json(topic_infos(&st))
}

fn topic_infos(st: &AppState) -> Vec<TopicInfo> {
    st.peers
        .topic_names()
        .into_iter()
        .map(|name| TopicInfo { peers: st.peers.peers_per_topic(&name) as u64, name })
        .collect()
}

/// `POST /api/topics {name}`: join a topic; it is saved and kept across restarts.
async fn join_topic(
    State(st): State<AppState>,
    body: Result<Json<JoinTopic>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Vec<TopicInfo>>)> {
    let Json(req) = body.map_err(|e| Failure::new(e.status(), format!("bad request body: {}", e.body_text())))?;
    let name = hdp_proto::topic::validate_topic(&req.name)
        .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, format!("invalid topic: {e}")))?;
    if !st.peers.join_topic(name).await && !st.peers.topic_names().iter().any(|t| t == name) {
        return Err(Failure::new(
            StatusCode::CONFLICT,
            format!("already on {} topics, the most a node can be on", hdp_proto::topic::MAX_TOPICS),
        ));
    }
    st.index.save_topics(&st.peers.topic_names())?;
    Ok((StatusCode::CREATED, Json(topic_infos(&st))))
}

/// `DELETE /api/topics/{name}`: leave a topic; peers that share no other
/// topic with us are disconnected.
async fn leave_topic(State(st): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Vec<TopicInfo>>> {
    if !st.peers.leave_topic(name.trim()) {
        return Err(Failure::new(
            StatusCode::NOT_FOUND,
            format!("not on a topic named {name:?}; `hdp topics` lists them"),
        ));
    }
    st.index.save_topics(&st.peers.topic_names())?;
    Ok(Json(topic_infos(&st)))
}

/// `POST /api/connect` with an `hdp:` contact link: dials its addresses in
/// order (staggered, the first to answer wins), accepts only the node that
/// proves the link's peer id, and keeps redialing the address that worked.
async fn connect_contact(st: &AppState, text: &str) -> ApiResult<PeerInfo> {
    use hdp_proto::contact::Contact;
    let contact: Contact =
        text.parse().map_err(|e| Failure::new(StatusCode::BAD_REQUEST, format!("invalid contact link: {e}")))?;
    let mut addrs = Vec::new();
    for a in &contact.addrs {
        // Names resolve like HOST:PORT; one address per entry keeps the order.
        if let Ok(Some(addr)) = tokio::net::lookup_host(a.as_str()).await.map(|mut it| it.next())
            && !addrs.contains(&addr)
        {
            addrs.push(addr);
        }
    }
    if addrs.is_empty() {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            format!("none of the contact link's addresses resolves: {}", contact.addrs.join(", ")),
        ));
    }
    let name = contact.id.friendly_name();
    let pc = match st.peers.dial_any(&addrs, contact.id).await {
        Ok(pc) => pc,
        Err(crate::peers::DialError::WrongPeer(got)) => {
            return Err(Failure::new(
                StatusCode::BAD_GATEWAY,
                format!(
                    "the node that answered is {} ({got}), not {name} ({}) named by the contact link; \
                     ask your friend for a fresh link",
                    got.friendly_name(),
                    contact.id
                ),
            ));
        }
        Err(e) => {
            return Err(Failure::new(
                StatusCode::BAD_GATEWAY,
                format!("cannot connect to {name} at {}: {e}", contact.addrs.join(", ")),
            ));
        }
    };
    if pc.direction == hdp_proto::api::Direction::Out {
        st.peers.keep_target(pc.conn.remote_address(), &pc);
    }
    Ok(connected_info(st, &pc))
}

impl From<crate::http::settings::SettingsError> for Failure {
    fn from(e: crate::http::settings::SettingsError) -> Self {
        use crate::http::settings::SettingsError as E;
        match e {
            E::Pinned { .. } => Failure::new(StatusCode::CONFLICT, e.to_string()),
            E::Invalid(_) | E::Dir { .. } => Failure::new(StatusCode::BAD_REQUEST, e.to_string()),
            E::Save(_) | E::Mqtt(_) => Failure::internal(e),
        }
    }
}

/// `GET /api/settings`.
async fn get_settings(State(st): State<AppState>) -> Json<hdp_proto::api::Settings> {
    Json(st.settings.get())
}

/// `PUT /api/settings`: changes, saves and applies the settings given.
async fn put_settings(
    State(st): State<AppState>,
    body: Result<Json<hdp_proto::api::SettingsUpdate>, JsonRejection>,
) -> ApiResult<Json<hdp_proto::api::Settings>> {
    let Json(update) = body.map_err(|e| Failure::new(e.status(), format!("bad request body: {}", e.body_text())))?;
    Ok(Json(st.settings.update(update).await?))
}

/// `GET /api/uploads`.
async fn list_uploads(State(st): State<AppState>) -> Json<hdp_proto::api::UploadsInfo> {
    Json(st.server.uploads_info())
}

/// `/api/fs` parameters as sent.
#[derive(Debug, Deserialize)]
struct FsParams {
    path: Option<String>,
    hidden: Option<String>,
}

impl From<crate::http::fsview::FsError> for Failure {
    fn from(e: crate::http::fsview::FsError) -> Self {
        use crate::http::fsview::FsError as E;
        let status = match e {
            E::NotFound(_) => StatusCode::NOT_FOUND,
            E::NotADirectory(_) | E::Relative(_) => StatusCode::BAD_REQUEST,
            E::PermissionDenied(_) => StatusCode::FORBIDDEN,
            E::Io { .. } => return Failure::internal(e),
        };
        Failure::new(status, e.to_string())
    }
}

/// `GET /api/fs?path=&hidden=`: the sub-directories of a directory of this
/// node's filesystem (names only), for picking a share or download dir.
async fn fs_listing(
    State(st): State<AppState>,
    q: Result<Query<FsParams>, QueryRejection>,
) -> ApiResult<Json<hdp_proto::api::FsListing>> {
    let Query(q) = q.map_err(|e| Failure::new(StatusCode::BAD_REQUEST, format!("bad query: {e}")))?;
    let hidden = match non_empty(q.hidden).as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(other) => {
            return Err(Failure::new(StatusCode::BAD_REQUEST, format!("hidden must be true or false, not {other:?}")));
        }
    };
    if q.path.as_ref().is_some_and(|p| p.len() > 4096) {
        return Err(Failure::new(StatusCode::BAD_REQUEST, "the path is longer than 4096 bytes"));
    }
    let roots: Vec<std::path::PathBuf> = st.shares.list()?.into_iter().map(|s| s.path.into()).collect();
    let listing =
        tokio::task::spawn_blocking(move || crate::http::fsview::list_dirs(q.path.as_deref(), hidden, &roots))
            .await
            .map_err(|_| Failure::new(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down"))??;
    Ok(Json(listing))
}

/// The addresses a contact link carries: the QUIC addresses peers can dial,
/// loopback ones only when there is nothing else.
pub fn contact_addrs(listen: &[SocketAddr]) -> Vec<String> {
    let outside: Vec<&SocketAddr> = listen.iter().filter(|a| !a.ip().is_loopback()).collect();
    let chosen = if outside.is_empty() { listen.iter().collect() } else { outside };
    chosen.into_iter().take(hdp_proto::contact::MAX_CONTACT_ADDRS).map(ToString::to_string).collect()
}

/// `GET /api/contact`: this node's contact link and its QR code.
async fn contact(State(st): State<AppState>) -> ApiResult<Json<hdp_proto::api::Contact>> {
    let uri = hdp_proto::contact::Contact { id: st.id, addrs: contact_addrs(&st.listen_addrs) }.to_string();
    let label = format!("QR code of the contact link of {}", st.id.friendly_name());
    let qr_svg = crate::http::qr::svg(&uri, &label).map_err(Failure::internal)?;
    Ok(Json(hdp_proto::api::Contact { uri, qr_svg }))
}
