//! The node's HTTP API, and the only place in the UI that fetches anything.
//!
//! Every call takes the API token and sends it as `Authorization: Bearer`.
//! Bodies are the shared [`hdp_proto::api`] types. A failure is an
//! [`ApiFailure`] whose message is fit to show to the user as it is.
//! Components normally go through [`crate::session::Session::call`], which
//! supplies the token and turns a 401 into the login prompt.

use std::fmt;

use hdp_proto::api::{
    AddShare, ApiError, ConnectRequest, Contact, DownloadInfo, DownloadRequest, FileInfo, FilesPage, FriendInfo,
    FriendUpdate, FsListing, Info, JoinTopic, LsPage, LsQuery, PeerInfo, Settings, SettingsUpdate, ShareInfo,
    ShareUpdate, TopicInfo, UploadsInfo,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, Request, RequestCache, RequestInit, Response};

/// Why an API call did not give us what we asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiFailure {
    /// 401: the token is missing, wrong or no longer valid. Show the login prompt.
    Unauthorized(String),
    /// Anything else: an error status from the node (`status` set, message
    /// from its `error` field) or no usable answer at all (`status` `None`).
    Failed { status: Option<u16>, message: String },
}

impl ApiFailure {
    pub fn other(message: impl Into<String>) -> Self {
        Self::Failed { status: None, message: message.into() }
    }

    /// The words to show the user.
    pub fn message(&self) -> &str {
        match self {
            Self::Unauthorized(m) => m,
            Self::Failed { message, .. } => message,
        }
    }
}

impl fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// `GET /api/info`.
pub async fn get_info(token: &str) -> Result<Info, ApiFailure> {
    request(token, "GET", "/api/info", None::<&()>).await
}

/// `GET /api/shares`.
pub async fn list_shares(token: &str) -> Result<Vec<ShareInfo>, ApiFailure> {
    request(token, "GET", "/api/shares", None::<&()>).await
}

/// `POST /api/shares`: share a directory on the node. The scan runs in the
/// background; the answer has `scanning: true`.
pub async fn add_share(token: &str, share: &AddShare) -> Result<ShareInfo, ApiFailure> {
    request(token, "POST", "/api/shares", Some(share)).await
}

/// `DELETE /api/shares/{name}`: stop sharing; answers the removed share.
pub async fn remove_share(token: &str, name: &str) -> Result<ShareInfo, ApiFailure> {
    let url = format!("/api/shares/{}", encode(name));
    request(token, "DELETE", &url, None::<&()>).await
}

/// `PATCH /api/shares/{name}`: which topics' peers see the share.
pub async fn update_share(token: &str, name: &str, update: &ShareUpdate) -> Result<ShareInfo, ApiFailure> {
    request(token, "PATCH", &format!("/api/shares/{}", encode(name)), Some(update)).await
}

/// `POST /api/shares/{name}/rescan`.
pub async fn rescan_share(token: &str, name: &str) -> Result<ShareInfo, ApiFailure> {
    let url = format!("/api/shares/{}/rescan", encode(name));
    request(token, "POST", &url, None::<&()>).await
}

/// `GET /api/ls`: one page of a listing or search.
pub async fn ls(token: &str, query: &LsQuery) -> Result<LsPage, ApiFailure> {
    request(token, "GET", &ls_url(query), None::<&()>).await
}

/// `GET /api/ls?peer=…`: one page of a connected peer's listing or search.
pub async fn ls_peer(token: &str, peer: &str, query: &LsQuery) -> Result<LsPage, ApiFailure> {
    let url = ls_url(query);
    let sep = if url.contains('?') { '&' } else { '?' };
    request(token, "GET", &format!("{url}{sep}peer={}", encode(peer)), None::<&()>).await
}

/// `GET /api/peers`.
pub async fn peers(token: &str) -> Result<Vec<PeerInfo>, ApiFailure> {
    request(token, "GET", "/api/peers", None::<&()>).await
}

/// `POST /api/connect`: dial `HOST:PORT` or an `hdp:` contact link.
pub async fn connect(token: &str, addr: String) -> Result<PeerInfo, ApiFailure> {
    request(token, "POST", "/api/connect", Some(&ConnectRequest { addr })).await
}

/// `DELETE /api/peers/{peer}`: disconnect a peer, or stop dialing an address.
pub async fn forget_peer(token: &str, peer: &str) -> Result<(), ApiFailure> {
    request_empty(token, "DELETE", &format!("/api/peers/{}", encode(peer)), None::<&()>).await
}

/// `GET /api/friends`.
pub async fn friends(token: &str) -> Result<Vec<FriendInfo>, ApiFailure> {
    request(token, "GET", "/api/friends", None::<&()>).await
}

/// `PATCH /api/friends/{id}`: a nickname, blocked or not.
pub async fn update_friend(token: &str, id: &str, update: &FriendUpdate) -> Result<FriendInfo, ApiFailure> {
    request(token, "PATCH", &format!("/api/friends/{}", encode(id)), Some(update)).await
}

/// `GET /api/topics`.
pub async fn topics(token: &str) -> Result<Vec<TopicInfo>, ApiFailure> {
    request(token, "GET", "/api/topics", None::<&()>).await
}

/// `POST /api/topics`: join a topic (kept across restarts).
pub async fn join_topic(token: &str, name: String) -> Result<Vec<TopicInfo>, ApiFailure> {
    request(token, "POST", "/api/topics", Some(&JoinTopic { name })).await
}

/// `DELETE /api/topics/{name}`.
pub async fn leave_topic(token: &str, name: &str) -> Result<Vec<TopicInfo>, ApiFailure> {
    request(token, "DELETE", &format!("/api/topics/{}", encode(name)), None::<&()>).await
}

/// `GET /api/contact`: our contact link and its QR code.
pub async fn contact(token: &str) -> Result<Contact, ApiFailure> {
    request(token, "GET", "/api/contact", None::<&()>).await
}

/// `GET /api/downloads`.
pub async fn downloads(token: &str) -> Result<Vec<DownloadInfo>, ApiFailure> {
    request(token, "GET", "/api/downloads", None::<&()>).await
}

/// `POST /api/downloads`: queue a file or folder of a peer.
pub async fn start_download(token: &str, peer: String, path: String) -> Result<DownloadInfo, ApiFailure> {
    request(token, "POST", "/api/downloads", Some(&DownloadRequest { peer, path, paused: false })).await
}

/// `POST /api/downloads/{id}/{action}` with `pause`, `resume`, `retry` or
/// `top`; `cancel` answers nothing (`None`).
pub async fn download_action(token: &str, id: u64, action: &str) -> Result<Option<DownloadInfo>, ApiFailure> {
    request(token, "POST", &format!("/api/downloads/{id}/{action}"), None::<&()>).await
}

/// `GET /api/downloads/{id}/files`: a page of a download's files.
pub async fn download_files(token: &str, id: u64, cursor: u64, limit: u32) -> Result<FilesPage, ApiFailure> {
    request(token, "GET", &format!("/api/downloads/{id}/files?cursor={cursor}&limit={limit}"), None::<&()>).await
}

/// `POST /api/downloads/{id}/files/{seq}/{action}`.
pub async fn file_action(token: &str, id: u64, seq: u64, action: &str) -> Result<FileInfo, ApiFailure> {
    request(token, "POST", &format!("/api/downloads/{id}/files/{seq}/{action}"), None::<&()>).await
}

/// `GET /api/uploads`.
pub async fn uploads(token: &str) -> Result<UploadsInfo, ApiFailure> {
    request(token, "GET", "/api/uploads", None::<&()>).await
}

/// `GET /api/settings`.
pub async fn settings(token: &str) -> Result<Settings, ApiFailure> {
    request(token, "GET", "/api/settings", None::<&()>).await
}

/// `PUT /api/settings`.
pub async fn save_settings(token: &str, update: &SettingsUpdate) -> Result<Settings, ApiFailure> {
    request(token, "PUT", "/api/settings", Some(update)).await
}

/// `GET /api/fs`: sub-directories of `path` on the node (its home dir if `None`).
pub async fn fs(token: &str, path: Option<&str>, hidden: bool) -> Result<FsListing, ApiFailure> {
    let mut url = String::from("/api/fs");
    let mut sep = '?';
    if let Some(p) = path {
        url.push_str(&format!("?path={}", encode(p)));
        sep = '&';
    }
    if hidden {
        url.push_str(&format!("{sep}hidden=true"));
    }
    request(token, "GET", &url, None::<&()>).await
}

/// `POST /api/media-session`: lets `<audio>`, `<video>` and `<img>` read
/// `/media/*` (they cannot send the token; the node sets a cookie instead).
pub async fn media_session(token: &str) -> Result<(), ApiFailure> {
    request_empty(token, "POST", "/api/media-session", None::<&()>).await
}

/// The URL that plays `path` of `peer` (`None`: our own shares).
pub fn media_url(peer: Option<&str>, path: &str) -> String {
    match peer {
        Some(p) => hdp_proto::api::media_url_peer(p, path, encode),
        None => hdp_proto::api::media_url_own(path, encode),
    }
}

/// The `/api/ls` URL for `query`, leaving out empty and default parameters.
fn ls_url(query: &LsQuery) -> String {
    let mut params: Vec<(&str, String)> = Vec::new();
    if let Some(path) = query.path.as_deref().filter(|p| !p.is_empty()) {
        params.push(("path", encode(path)));
    }
    if query.recursive {
        params.push(("recursive", "true".to_string()));
    }
    if let Some(search) = query.search.as_deref().filter(|s| !s.is_empty()) {
        params.push(("search", encode(search)));
    }
    if let Some(cursor) = query.cursor.as_deref() {
        params.push(("cursor", encode(cursor)));
    }
    if let Some(limit) = query.limit {
        params.push(("limit", limit.to_string()));
    }
    let mut url = String::from("/api/ls");
    for (i, (key, value)) in params.iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        url.push_str(key);
        url.push('=');
        url.push_str(value);
    }
    url
}

/// Percent-encodes a query value or a single path segment.
pub fn encode(s: &str) -> String {
    String::from(js_sys::encode_uri_component(s))
}

/// Words for a JavaScript exception (fetch and friends throw `TypeError`s).
pub fn js_message(err: &JsValue) -> String {
    if let Some(e) = err.dyn_ref::<js_sys::Error>() {
        return String::from(e.message());
    }
    err.as_string().unwrap_or_else(|| format!("{err:?}"))
}

/// Like [`request`] for answers without a body that matters (204).
async fn request_empty<B: Serialize + ?Sized>(
    token: &str,
    method: &str,
    url: &str,
    body: Option<&B>,
) -> Result<(), ApiFailure> {
    request::<serde_json::Value, B>(token, method, url, body).await.map(|_| ())
}

/// The headers every API call carries: the token, and JSON.
pub fn auth_headers(token: &str) -> Result<Headers, ApiFailure> {
    let unreachable = |e: JsValue| ApiFailure::other(format!("Could not reach the node: {}", js_message(&e)));
    let headers = Headers::new().map_err(unreachable)?;
    headers
        .set("Authorization", &format!("Bearer {token}"))
        .map_err(|_| ApiFailure::Unauthorized("That token contains characters a token never has.".into()))?;
    Ok(headers)
}

/// Sends one request and decodes the JSON answer (or the [`ApiError`]). An
/// empty answer (204) decodes as JSON `null`.
async fn request<T, B>(token: &str, method: &str, url: &str, body: Option<&B>) -> Result<T, ApiFailure>
where
    T: DeserializeOwned,
    B: Serialize + ?Sized,
{
    let unreachable = |e: JsValue| ApiFailure::other(format!("Could not reach the node: {}", js_message(&e)));

    let headers = auth_headers(token)?;
    headers.set("Accept", "application/json").map_err(unreachable)?;

    let init = RequestInit::new();
    init.set_method(method);
    // Polling must see fresh numbers, never a cached answer.
    init.set_cache(RequestCache::NoStore);
    if let Some(body) = body {
        let json =
            serde_json::to_string(body).map_err(|e| ApiFailure::other(format!("Could not encode the request: {e}")))?;
        headers.set("Content-Type", "application/json").map_err(unreachable)?;
        init.set_body(&JsValue::from_str(&json));
    }
    init.set_headers(&headers);

    let request = Request::new_with_str_and_init(url, &init).map_err(unreachable)?;
    let window = web_sys::window().ok_or_else(|| ApiFailure::other("No browser window."))?;
    let response: Response = JsFuture::from(window.fetch_with_request(&request))
        .await
        .map_err(unreachable)?
        .dyn_into()
        .map_err(unreachable)?;

    let status = response.status();
    let text = match response.text() {
        Ok(promise) => JsFuture::from(promise).await.map_err(unreachable)?.as_string().unwrap_or_default(),
        Err(e) => return Err(unreachable(e)),
    };

    if response.ok() {
        let text = if text.trim().is_empty() { "null" } else { text.as_str() };
        return serde_json::from_str(text).map_err(|e| {
            ApiFailure::other(format!(
                "The node sent an answer this page does not understand ({e}). Is the page out of date? Reload it."
            ))
        });
    }

    let message = match serde_json::from_str::<ApiError>(&text) {
        Ok(err) if !err.error.is_empty() => err.error,
        _ => {
            let reason = response.status_text();
            if reason.is_empty() {
                format!("The node answered with HTTP {status}.")
            } else {
                format!("The node answered with HTTP {status} {reason}.")
            }
        }
    };
    if status == 401 {
        Err(ApiFailure::Unauthorized(message))
    } else {
        Err(ApiFailure::Failed { status: Some(status), message })
    }
}
