//! The requesting side of `ls`, `read` and `hash` on a peer connection.
//!
//! What a peer answers is untrusted: frames are bounded, the number of
//! entries per response is capped, and entry paths are checked by whoever
//! uses them (see [`crate::download::local_path_for`]).

use hdp_proto::path::MAX_PATH_LEN;
use hdp_proto::wire::{
    HashReply, HashRequest, LsFrame, LsRequest, MAX_HASH_REPLY_FRAME, MAX_LS_ENTRIES, MAX_LS_FRAME,
    MAX_READ_HEADER_FRAME, MAX_REQUEST_FRAME, ReadHeader, ReadRequest, Request, RequestError, WireEntry,
};

use crate::frames::{FrameError, read_frame, write_frame};

/// Longest a peer may take to answer a whole `ls` or a `read` header.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// Most memory one `ls` answer may take here (2,000 entries of ordinary
/// paths need well under 1 MiB).
pub const MAX_LS_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// A request to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("the peer refused: {0}")]
    Refused(#[from] RequestError),
    #[error("connection to the peer failed: {0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error("the peer broke the protocol: {0}")]
    Protocol(String),
    #[error("transfer interrupted: {0}")]
    Frame(#[from] FrameError),
}

/// One `ls` response: entries and the cursor to continue with.
#[derive(Debug, Clone)]
pub struct LsResponse {
    pub entries: Vec<WireEntry>,
    pub cursor: Option<String>,
}

/// Sends one `ls` request and collects its response (at most
/// [`MAX_LS_ENTRIES`] entries).
pub async fn ls(conn: &quinn::Connection, req: LsRequest) -> Result<LsResponse, RemoteError> {
    tokio::time::timeout(REQUEST_TIMEOUT, ls_inner(conn, req))
        .await
        .map_err(|_| RemoteError::Protocol(format!("no complete answer within {REQUEST_TIMEOUT:?}")))?
}

async fn ls_inner(conn: &quinn::Connection, req: LsRequest) -> Result<LsResponse, RemoteError> {
    let (mut send, mut recv) = conn.open_bi().await?;
    write_frame(&mut send, &Request::Ls(req), MAX_REQUEST_FRAME).await?;
    let _ = send.finish();
    let mut entries = Vec::new();
    let mut bytes = 0usize;
    loop {
        match read_frame::<LsFrame>(&mut recv, MAX_LS_FRAME).await? {
            LsFrame::Entries(batch) => {
                if batch.is_empty() {
                    return Err(RemoteError::Protocol("an empty batch of entries".into()));
                }
                if entries.len() + batch.len() > MAX_LS_ENTRIES as usize {
                    return Err(RemoteError::Protocol(format!("more than {MAX_LS_ENTRIES} entries in one response")));
                }
                for e in &batch {
                    if e.path.len() > MAX_PATH_LEN {
                        return Err(RemoteError::Protocol("an entry path longer than a path can be".into()));
                    }
                    bytes += e.path.len() + 48;
                }
                if bytes > MAX_LS_RESPONSE_BYTES {
                    return Err(RemoteError::Protocol(format!("an ls answer over {MAX_LS_RESPONSE_BYTES} bytes")));
                }
                entries.extend(batch);
            }
            LsFrame::End { cursor } => return Ok(LsResponse { entries, cursor }),
            LsFrame::Error(e) => return Err(RemoteError::Refused(clip(e))),
        }
    }
}

/// What a peer said about a file it is about to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOk {
    pub size: u64,
    pub mtime_ns: i64,
    pub length: u64,
}

/// Sends a `read` request; returns the header and the stream the bytes follow on.
pub async fn read(conn: &quinn::Connection, req: ReadRequest) -> Result<(ReadOk, quinn::RecvStream), RemoteError> {
    let offset = req.offset;
    let wanted = req.length;
    let (mut send, mut recv) = conn.open_bi().await?;
    write_frame(&mut send, &Request::Read(req), MAX_REQUEST_FRAME).await?;
    let _ = send.finish();
    let header = tokio::time::timeout(REQUEST_TIMEOUT, read_frame::<ReadHeader>(&mut recv, MAX_READ_HEADER_FRAME))
        .await
        .map_err(|_| RemoteError::Protocol(format!("no answer within {REQUEST_TIMEOUT:?}")))?;
    match header? {
        ReadHeader::Ok { size, mtime_ns, length } => {
            let max = size.saturating_sub(offset).min(wanted.unwrap_or(u64::MAX));
            if length > max {
                return Err(RemoteError::Protocol(format!("promised {length} bytes, at most {max} possible")));
            }
            Ok((ReadOk { size, mtime_ns, length }, recv))
        }
        ReadHeader::Err(e) => Err(RemoteError::Refused(clip(e))),
    }
}

/// Longest a peer may take to hash a file: a large file on a slow disk
/// (40 GB at 50 MB/s is under 15 minutes).
pub const HASH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

/// A file's hash as the peer reports it, with the version it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashOk {
    pub size: u64,
    pub mtime_ns: i64,
    pub hash: [u8; 32],
}

/// Asks the peer for the BLAKE3 of a whole file.
pub async fn hash(conn: &quinn::Connection, path: &str) -> Result<HashOk, RemoteError> {
    let (mut send, mut recv) = conn.open_bi().await?;
    write_frame(&mut send, &Request::Hash(HashRequest { path: path.into() }), MAX_REQUEST_FRAME).await?;
    let _ = send.finish();
    let reply = tokio::time::timeout(HASH_TIMEOUT, read_frame::<HashReply>(&mut recv, MAX_HASH_REPLY_FRAME))
        .await
        .map_err(|_| RemoteError::Protocol(format!("no hash within {HASH_TIMEOUT:?}")))?;
    match reply? {
        HashReply::Ok { size, mtime_ns, hash } => Ok(HashOk { size, mtime_ns, hash }),
        HashReply::Err(e) => Err(RemoteError::Refused(clip(e))),
    }
}

/// A peer's error text is kept short before it reaches logs and the API.
fn clip(e: RequestError) -> RequestError {
    match e {
        RequestError::Invalid(m) => RequestError::Invalid(hdp_proto::wire::clip_message(&m)),
        other => other,
    }
}
