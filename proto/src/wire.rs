//! The peer wire protocol's messages and framing (`hdp/1`), sans-IO.
//!
//! Goals: a second implementation can be written from `docs/PROTOCOL.md` and
//! the test vectors here; every frame a peer sends is bounded by a named
//! limit checked *before* anything is allocated; decoding never panics.
//!
//! Non-goals: multiplexing several requests on one stream (QUIC streams are
//! cheap: one bidirectional stream per request), compression.
//!
//! # Framing
//! A frame is a 4-byte big-endian length `N` followed by `N` bytes of a
//! postcard-encoded message. Each message kind has its own maximum `N`; a
//! larger announced length is an error and is never allocated. Raw file bytes
//! after a [`ReadHeader::Ok`] are not framed.
//!
//! # Streams
//! - The dialer's first bidirectional stream carries the handshake: it sends
//!   [`Hello`], the listener answers [`Hello`] (or closes the connection with
//!   [`CloseCode::NoSharedTopic`]), then both finish the stream.
//! - Every later bidirectional stream, opened by either side, is one request:
//!   a [`Request`] frame, then the response — [`LsFrame`]s ending in
//!   [`LsFrame::End`] or [`LsFrame::Error`], or one [`ReadHeader`] followed by
//!   exactly `length` raw bytes and the end of the stream.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::api::EntryKind;

/// ALPN protocol id; the version lives here, a mismatch fails the TLS handshake.
pub const ALPN: &[u8] = b"hdp/1";

/// Largest [`Hello`] frame: [`crate::topic::MAX_TOPICS`] proofs and a little more.
pub const MAX_HELLO_FRAME: usize = 4 * 1024;
/// Largest [`Request`] frame (a path, a search term and a cursor fit).
pub const MAX_REQUEST_FRAME: usize = 16 * 1024;
/// Largest [`LsFrame`].
pub const MAX_LS_FRAME: usize = 256 * 1024;
/// Largest [`ReadHeader`] frame.
pub const MAX_READ_HEADER_FRAME: usize = 1024;
/// Largest [`HashReply`] frame.
pub const MAX_HASH_REPLY_FRAME: usize = 1024;
/// Most entries a server puts in one `ls` response (then it ends with a cursor).
pub const MAX_LS_ENTRIES: u32 = 2_000;
/// Longest error message a peer may send, in bytes.
pub const MAX_MESSAGE_LEN: usize = 512;

/// Connection close codes (QUIC application error codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum CloseCode {
    /// Orderly close: shutting down, or the peer was removed.
    Normal = 0,
    /// The handshake found no topic both ends are members of.
    NoSharedTopic = 1,
    /// The handshake was malformed, incomplete or too slow.
    HandshakeFailed = 2,
    /// Another connection between the same two nodes was kept.
    Duplicate = 3,
    /// A peer broke the framing rules (oversized or undecodable frame).
    ProtocolError = 4,
    /// The listener is at its peer limit.
    TooManyPeers = 5,
    /// The dialer reached another node than the one it meant to.
    WrongPeer = 6,
    /// The node dialed itself.
    SelfConnection = 7,
    /// The other node blocked this one.
    Blocked = 8,
}

impl CloseCode {
    pub fn from_code(code: u64) -> Option<Self> {
        Some(match code {
            0 => CloseCode::Normal,
            1 => CloseCode::NoSharedTopic,
            2 => CloseCode::HandshakeFailed,
            3 => CloseCode::Duplicate,
            4 => CloseCode::ProtocolError,
            5 => CloseCode::TooManyPeers,
            6 => CloseCode::WrongPeer,
            7 => CloseCode::SelfConnection,
            8 => CloseCode::Blocked,
            _ => return None,
        })
    }

    /// What to tell a person.
    pub fn describe(self) -> &'static str {
        match self {
            CloseCode::Normal => "the peer closed the connection",
            CloseCode::NoSharedTopic => "the peer is not on any of our topics (check the topic names)",
            CloseCode::HandshakeFailed => "the topic handshake failed",
            CloseCode::Duplicate => "replaced by another connection to the same peer",
            CloseCode::ProtocolError => "the peer broke the protocol",
            CloseCode::TooManyPeers => "the peer is connected to as many peers as it allows; it will take us later",
            CloseCode::WrongPeer => "the address now belongs to another node",
            CloseCode::SelfConnection => "that address is this node itself",
            CloseCode::Blocked => "the peer has blocked this node",
        }
    }
}

/// Stream reset codes (QUIC stream error codes) on a request stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum StreamCode {
    /// The requester no longer wants the response.
    Cancelled = 0,
    /// The file changed on the server while it was being sent.
    FileChanged = 1,
    /// The server could not read the file any more.
    IoError = 2,
    /// The request frame was oversized or undecodable.
    BadRequest = 3,
    /// The file is no longer shared with the requester: the server's user
    /// changed the share's topics, or a topic the requester proved was left.
    NotShared = 4,
}

/// The handshake message: one proof per topic (see [`crate::topic::topic_proof`]).
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub proofs: Vec<[u8; 32]>,
}

/// A request: the first frame on a request stream.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    Ls(LsRequest),
    Read(ReadRequest),
    Hash(HashRequest),
    /// The sender's topics now, restated after it joined or left one: one
    /// proof per topic, made with its role on this connection. The topics
    /// that match become the connection's; the answer is a [`Hello`] with
    /// the receiver's proofs of those (possibly none).
    Prove(Hello),
}

/// Ask for the BLAKE3 hash of a whole file, with the version it belongs to.
/// The server answers from its cache or hashes the file first, which can
/// take minutes for a large file on a slow disk.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashRequest {
    pub path: String,
}

/// The answer to a [`HashRequest`].
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HashReply {
    /// BLAKE3 (32 bytes) of the file's content at exactly this size and mtime.
    Ok {
        size: u64,
        mtime_ns: i64,
        hash: [u8; 32],
    },
    Err(RequestError),
}

/// List a directory (its children, or everything below it), or search names below it.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LsRequest {
    /// Share path; `""` lists the shares.
    pub path: String,
    pub recursive: bool,
    /// Case-insensitive substring of names; implies `recursive`.
    pub search: Option<String>,
    /// Continue after the response that ended with this cursor.
    pub cursor: Option<String>,
    /// Most entries wanted (the server caps it at [`MAX_LS_ENTRIES`]).
    pub limit: u32,
}

/// Read a file, or a range of it.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadRequest {
    pub path: String,
    pub offset: u64,
    /// Bytes wanted from `offset`; `None` to the end of the file.
    pub length: Option<u64>,
}

/// One entry of a listing.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireEntry {
    /// Full share path. Untrusted: a downloader validates it before use.
    pub path: String,
    pub kind: EntryKind,
    /// Bytes; for a directory, the total below it.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// For a directory, the number of entries below it; 0 for a file.
    pub count: u64,
}

/// A frame of an `ls` response.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LsFrame {
    Entries(Vec<WireEntry>),
    /// The response is complete; `cursor` continues the listing, if any is left.
    End {
        cursor: Option<String>,
    },
    Error(RequestError),
}

/// The answer to a [`ReadRequest`]: `Ok` is followed by `length` raw bytes.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadHeader {
    Ok {
        /// Size of the whole file.
        size: u64,
        /// Modification time of the file, nanoseconds since the Unix epoch.
        mtime_ns: i64,
        /// Bytes that follow this header.
        length: u64,
    },
    Err(RequestError),
}

/// Why a request failed.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RequestError {
    #[error("no such file or directory on the peer")]
    NotFound,
    #[error("the path is not in any share the peer shows us (it may be shared with other topics only)")]
    NotShared,
    #[error("the peer is busy (all upload slots taken); try again later")]
    Busy,
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("the peer could not read the file")]
    Io,
    #[error("the range starts past the end of the file")]
    BadRange,
    #[error("the file changed on the peer while it was being hashed; try again")]
    Changed,
}

/// A frame could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// Encodes `msg` as one frame (length prefix included), refusing to exceed `max`.
pub fn encode_frame<T: Serialize>(msg: &T, max: usize) -> Result<Vec<u8>, WireError> {
    let mut out = vec![0u8; 4];
    let body = postcard::to_extend(msg, Vec::new()).map_err(|e| WireError::Malformed(e.to_string()))?;
    if body.len() > max {
        return Err(WireError::TooLarge { len: body.len(), max });
    }
    out[..4].copy_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// The body length announced by a frame header, checked against `max` before
/// the caller allocates anything.
pub fn frame_len(header: [u8; 4], max: usize) -> Result<usize, WireError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(WireError::TooLarge { len, max });
    }
    Ok(len)
}

/// Decodes a frame body; trailing bytes are an error.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, WireError> {
    let (msg, rest) = postcard::take_from_bytes(body).map_err(|e| WireError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::Malformed(format!("{} trailing bytes", rest.len())));
    }
    Ok(msg)
}

/// Decodes one whole frame (header and body) from a buffer.
pub fn decode_frame<T: DeserializeOwned>(frame: &[u8], max: usize) -> Result<T, WireError> {
    let header: [u8; 4] = frame
        .get(..4)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| WireError::Malformed("frame shorter than its header".into()))?;
    let len = frame_len(header, max)?;
    let body = frame.get(4..4 + len).ok_or_else(|| WireError::Malformed("frame shorter than announced".into()))?;
    if frame.len() != 4 + len {
        return Err(WireError::Malformed("bytes after the frame".into()));
    }
    decode_body(body)
}

/// Truncates a peer-supplied message to [`MAX_MESSAGE_LEN`] on a char boundary.
pub fn clip_message(s: &str) -> String {
    let mut end = s.len().min(MAX_MESSAGE_LEN);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::hex;

    /// Test vectors for docs/PROTOCOL.md: (message, expected frame in hex).
    #[test]
    fn frame_vectors() {
        let hello = Hello { proofs: vec![[0xab; 32]] };
        let v = encode_frame(&hello, MAX_HELLO_FRAME).unwrap();
        assert_eq!(hex(&v), format!("00000021 01{}", "ab".repeat(32)).replace(' ', ""));

        let ls = Request::Ls(LsRequest {
            path: "music".into(),
            recursive: true,
            search: None,
            cursor: Some("music/a".into()),
            limit: 500,
        });
        let v = encode_frame(&ls, MAX_REQUEST_FRAME).unwrap();
        assert_eq!(
            hex(&v),
            "00000014".to_owned() + "00" + "056d75736963" + "01" + "00" + "01076d757369632f61" + "f403"
        );

        let read = Request::Read(ReadRequest { path: "m/a".into(), offset: 300, length: None });
        let v = encode_frame(&read, MAX_REQUEST_FRAME).unwrap();
        assert_eq!(hex(&v), "0000000801036d2f61ac0200");

        let hash = Request::Hash(HashRequest { path: "m/a".into() });
        assert_eq!(hex(&encode_frame(&hash, MAX_REQUEST_FRAME).unwrap()), "0000000502036d2f61");
        let prove = Request::Prove(Hello { proofs: vec![[0xab; 32]] });
        assert_eq!(
            hex(&encode_frame(&prove, MAX_REQUEST_FRAME).unwrap()),
            "000000220301".to_owned() + &"ab".repeat(32)
        );
        let reply = HashReply::Ok { size: 5, mtime_ns: -1, hash: [0xab; 32] };
        assert_eq!(
            hex(&encode_frame(&reply, MAX_HASH_REPLY_FRAME).unwrap()),
            "00000023000501".to_owned() + &"ab".repeat(32)
        );
        let reply = HashReply::Err(RequestError::NotFound);
        assert_eq!(hex(&encode_frame(&reply, MAX_HASH_REPLY_FRAME).unwrap()), "000000020100");

        let header = ReadHeader::Ok { size: 5, mtime_ns: -1, length: 5 };
        let v = encode_frame(&header, MAX_READ_HEADER_FRAME).unwrap();
        assert_eq!(hex(&v), "000000040005".to_owned() + "01" + "05");

        let err = ReadHeader::Err(RequestError::Busy);
        assert_eq!(hex(&encode_frame(&err, MAX_READ_HEADER_FRAME).unwrap()), "000000020102");

        let entries = LsFrame::Entries(vec![WireEntry {
            path: "m/a".into(),
            kind: EntryKind::File,
            size: 1,
            mtime_ns: 1_000_000_000,
            count: 0,
        }]);
        let v = encode_frame(&entries, MAX_LS_FRAME).unwrap();
        assert_eq!(hex(&v), "0000000e0001036d2f61000180a8d6b90700");
        let end = LsFrame::End { cursor: None };
        assert_eq!(hex(&encode_frame(&end, MAX_LS_FRAME).unwrap()), "000000020100");
    }

    #[test]
    fn round_trips() {
        let msgs = vec![
            Request::Ls(LsRequest {
                path: "".into(),
                recursive: false,
                search: Some("ü".into()),
                cursor: None,
                limit: 1,
            }),
            Request::Read(ReadRequest { path: "a/b".into(), offset: u64::MAX, length: Some(0) }),
            Request::Hash(HashRequest { path: "a/b".into() }),
        ];
        for m in msgs {
            let f = encode_frame(&m, MAX_REQUEST_FRAME).unwrap();
            assert_eq!(decode_frame::<Request>(&f, MAX_REQUEST_FRAME).unwrap(), m);
        }
    }

    #[test]
    fn oversized_frames_are_refused_before_allocation() {
        assert_eq!(
            frame_len(u32::MAX.to_be_bytes(), MAX_REQUEST_FRAME),
            Err(WireError::TooLarge { len: u32::MAX as usize, max: MAX_REQUEST_FRAME })
        );
        let big = Request::Read(ReadRequest { path: "x".repeat(MAX_REQUEST_FRAME), offset: 0, length: None });
        assert!(matches!(encode_frame(&big, MAX_REQUEST_FRAME), Err(WireError::TooLarge { .. })));
    }

    #[test]
    fn garbage_never_panics() {
        // Every prefix and a spread of byte patterns: decoding returns errors.
        let good = encode_frame(
            &LsFrame::Entries(vec![WireEntry {
                path: "a".into(),
                kind: EntryKind::Dir,
                size: 1,
                mtime_ns: 2,
                count: 3,
            }]),
            MAX_LS_FRAME,
        )
        .unwrap();
        for cut in 0..good.len() {
            assert!(decode_frame::<LsFrame>(&good[..cut], MAX_LS_FRAME).is_err());
        }
        let mut seed = 0x1234_5678u32;
        for _ in 0..2_000 {
            let len = (seed % 64) as usize;
            let mut body = Vec::with_capacity(len);
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                body.push(seed as u8);
            }
            let _ = decode_body::<LsFrame>(&body);
            let _ = decode_body::<Request>(&body);
            let _ = decode_body::<ReadHeader>(&body);
            let _ = decode_body::<Hello>(&body);
        }
        // A vector length far beyond the input fails instead of allocating.
        assert!(decode_body::<Hello>(&[0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
    }

    #[test]
    fn close_codes_round_trip() {
        for c in [
            CloseCode::Normal,
            CloseCode::NoSharedTopic,
            CloseCode::HandshakeFailed,
            CloseCode::Duplicate,
            CloseCode::ProtocolError,
        ] {
            assert_eq!(CloseCode::from_code(c as u64), Some(c));
        }
        assert_eq!(CloseCode::from_code(99), None);
        assert_eq!(clip_message(&"é".repeat(400)).len(), MAX_MESSAGE_LEN);
    }
}
