//! The HTTP API (`/api/*`, bearer-token protected) and the embedded web UI.
//!
//! Handlers are thin: they validate input, call [`Shares`] or [`Index`]
//! (blocking index reads go to the blocking pool), and map errors to an
//! [`ApiError`] JSON body with a fitting status code.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hdp_proto::api::{AddShare, ApiError, Info, LsPage, ShareInfo};
use hdp_proto::id::PeerId;
use hdp_proto::path::SharePath;
use serde::Deserialize;

use crate::auth::check_bearer;
use crate::index::{Index, LsError, LsRequest, RecordError};
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
    pub listen_addrs: Arc<Vec<SocketAddr>>,
}

/// An error response: a status code and a message for people.
#[derive(Debug)]
pub struct Failure {
    status: StatusCode,
    message: String,
}

impl Failure {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
        }
    }
    fn internal(e: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %e, "API request failed");
        Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ApiError {
                error: self.message,
            }),
        )
            .into_response()
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
            LsError::Path(_) | LsError::Cursor => {
                Failure::new(StatusCode::BAD_REQUEST, e.to_string())
            }
            LsError::NotFound(_) => Failure::new(StatusCode::NOT_FOUND, e.to_string()),
            LsError::Lmdb(_) => Failure::internal(e),
        }
    }
}

impl From<AddShareError> for Failure {
    fn from(e: AddShareError) -> Self {
        let status = match e {
            AddShareError::NotFound(_) => StatusCode::NOT_FOUND,
            AddShareError::NotADirectory(_) => StatusCode::BAD_REQUEST,
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
            ShareOpError::ShuttingDown => {
                Failure::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            ShareOpError::Index(_) => Failure::internal(e),
        }
    }
}

type ApiResult<T> = Result<T, Failure>;

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/info", get(info))
        .route(
            "/shares",
            get(list_shares).post(add_share).delete(remove_share_query),
        )
        .route("/shares/{name}", axum::routing::delete(remove_share))
        .route("/shares/{name}/rescan", post(rescan_share))
        .route("/ls", get(ls))
        .fallback(api_not_found)
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);
    Router::new().nest("/api", api).fallback(crate::ui::serve)
}

async fn require_token(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !check_bearer(header, &st.token) {
        let mut resp = Failure::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong API token: send 'Authorization: Bearer <token>' with the token from <data-dir>/api-token",
        )
        .into_response();
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return resp;
    }
    next.run(req).await
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
        topics: Vec::new(),
    }))
}

async fn list_shares(State(st): State<AppState>) -> ApiResult<Json<Vec<ShareInfo>>> {
    Ok(Json(st.shares.list()?))
}

async fn add_share(
    State(st): State<AppState>,
    body: Result<Json<AddShare>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<ShareInfo>)> {
    let Json(req) =
        body.map_err(|e| Failure::new(e.status(), format!("bad request body: {}", e.body_text())))?;
    if req.path.is_empty() || req.path.contains('\0') {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "give the directory to share as 'path'",
        ));
    }
    let info = st.shares.add(req.path.into()).await?;
    Ok((StatusCode::CREATED, Json(info)))
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
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "say which share: DELETE /api/shares/{name}",
        ));
    }
    Ok(Json(st.shares.remove(&name).await?))
}

async fn remove_share(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<ShareInfo>> {
    Ok(Json(st.shares.remove(&name).await?))
}

async fn rescan_share(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<(StatusCode, Json<ShareInfo>)> {
    Ok((StatusCode::ACCEPTED, Json(st.shares.rescan(&name)?)))
}

/// `/api/ls` parameters as sent: every one optional, empty means absent.
#[derive(Debug, Deserialize)]
struct LsParams {
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
        let path = SharePath::parse(self.path.as_deref().unwrap_or(""))
            .map_err(|e| bad(format!("invalid path: {e}")))?;
        let recursive = match non_empty(self.recursive).as_deref() {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => {
                return Err(bad(format!(
                    "recursive must be true or false, not {other:?}"
                )));
            }
        };
        let search = non_empty(self.search).map(|s| s.to_lowercase());
        if search.as_ref().is_some_and(|s| s.len() > 1024) {
            return Err(bad("search term is longer than 1024 bytes".into()));
        }
        let cursor = non_empty(self.cursor)
            .map(|c| SharePath::parse(&c))
            .transpose()
            .map_err(|_| {
                bad("invalid cursor: pass back the cursor of the previous page unchanged".into())
            })?;
        let limit = non_empty(self.limit)
            .map(|l| l.parse::<u32>())
            .transpose()
            .map_err(|_| bad("limit must be a positive number".into()))?;
        Ok(LsRequest {
            path,
            recursive,
            search,
            cursor,
            limit,
        })
    }
}

async fn ls(
    State(st): State<AppState>,
    q: Result<Query<LsParams>, QueryRejection>,
) -> ApiResult<Json<LsPage>> {
    let Query(params) =
        q.map_err(|e| Failure::new(StatusCode::BAD_REQUEST, format!("bad query: {e}")))?;
    let req = params.validate()?;
    let index = st.index.clone();
    let page = tokio::task::spawn_blocking(move || index.ls(&req))
        .await
        .map_err(|_| {
            Failure::new(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down")
        })??;
    Ok(Json(page))
}
