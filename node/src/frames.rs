//! Reading and writing `hdp/1` frames on QUIC streams.
//!
//! The length is read and checked against the message's limit first; only
//! then is the body buffer allocated (so an announced 4 GiB frame costs
//! nothing).

use hdp_proto::wire::{WireError, decode_body, encode_frame, frame_len};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("stream ended inside a frame")]
    Truncated,
    #[error("stream ended")]
    Finished,
    #[error("connection lost: {0}")]
    Read(#[from] quinn::ReadExactError),
    #[error("connection lost: {0}")]
    Write(#[from] quinn::WriteError),
    #[error("no complete frame within {0:?}")]
    TimedOut(std::time::Duration),
}

/// Reads one frame of at most `max` body bytes.
pub async fn read_frame<T: DeserializeOwned>(recv: &mut quinn::RecvStream, max: usize) -> Result<T, FrameError> {
    let mut header = [0u8; 4];
    match recv.read_exact(&mut header).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Err(FrameError::Finished),
        Err(quinn::ReadExactError::FinishedEarly(_)) => return Err(FrameError::Truncated),
        Err(e) => return Err(e.into()),
    }
    let len = frame_len(header, max)?;
    let mut body = vec![0u8; len];
    match recv.read_exact(&mut body).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(_)) => return Err(FrameError::Truncated),
        Err(e) => return Err(e.into()),
    }
    Ok(decode_body(&body)?)
}

/// Writes one frame of at most `max` body bytes.
pub async fn write_frame<T: Serialize>(send: &mut quinn::SendStream, msg: &T, max: usize) -> Result<(), FrameError> {
    let frame = encode_frame(msg, max)?;
    send.write_all(&frame).await?;
    Ok(())
}
