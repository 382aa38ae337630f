//! The requesting side of `ls` and `read` on a peer connection.
//!
//! What a peer answers is untrusted: frames are bounded, the number of
//! entries per response is capped, and entry paths are checked by whoever
//! uses them (see [`crate::download::local_path_for`]).

use hdp_proto::wire::{
    LsFrame, LsRequest, MAX_LS_ENTRIES, MAX_LS_FRAME, MAX_READ_HEADER_FRAME, MAX_REQUEST_FRAME, ReadHeader,
    ReadRequest, Request, RequestError, WireEntry,
};

use crate::frames::{FrameError, read_frame, write_frame};

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
    let (mut send, mut recv) = conn.open_bi().await?;
    write_frame(&mut send, &Request::Ls(req), MAX_REQUEST_FRAME).await?;
    let _ = send.finish();
    let mut entries = Vec::new();
    loop {
        match read_frame::<LsFrame>(&mut recv, MAX_LS_FRAME).await? {
            LsFrame::Entries(batch) => {
                if entries.len() + batch.len() > MAX_LS_ENTRIES as usize {
                    return Err(RemoteError::Protocol(format!("more than {MAX_LS_ENTRIES} entries in one response")));
                }
                entries.extend(batch);
            }
            LsFrame::End { cursor } => return Ok(LsResponse { entries, cursor }),
            LsFrame::Error(e) => return Err(RemoteError::Refused(e)),
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
    match read_frame::<ReadHeader>(&mut recv, MAX_READ_HEADER_FRAME).await? {
        ReadHeader::Ok { size, mtime_ns, length } => {
            let max = size.saturating_sub(offset).min(wanted.unwrap_or(u64::MAX));
            if length > max {
                return Err(RemoteError::Protocol(format!("promised {length} bytes, at most {max} possible")));
            }
            Ok((ReadOk { size, mtime_ns, length }, recv))
        }
        ReadHeader::Err(e) => Err(RemoteError::Refused(e)),
    }
}
