//! Raw bytes as every hdp/1 frame a peer can send (docs/PROTOCOL.md §2–5):
//! each decoder returns an error or a message, and a decoded message
//! encodes back to a frame that decodes to itself.
#![no_main]

use hdp_proto::wire::{
    HashReply, Hello, LsFrame, MAX_HASH_REPLY_FRAME, MAX_HELLO_FRAME, MAX_LS_FRAME, MAX_READ_HEADER_FRAME,
    MAX_REQUEST_FRAME, ReadHeader, Request, decode_body, decode_frame, encode_frame, frame_len,
};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn check<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(data: &[u8], max: usize) {
    if let Ok(msg) = decode_body::<T>(data) {
        let frame = encode_frame(&msg, max.max(data.len())).expect("a decoded message encodes");
        assert_eq!(decode_frame::<T>(&frame, usize::MAX).expect("its frame decodes"), msg);
    }
    let _ = decode_frame::<T>(data, max);
}

fuzz_target!(|data: &[u8]| {
    if let Some(header) = data.get(..4) {
        let _ = frame_len(header.try_into().unwrap(), MAX_LS_FRAME);
    }
    check::<Hello>(data, MAX_HELLO_FRAME);
    check::<Request>(data, MAX_REQUEST_FRAME);
    check::<LsFrame>(data, MAX_LS_FRAME);
    check::<ReadHeader>(data, MAX_READ_HEADER_FRAME);
    check::<HashReply>(data, MAX_HASH_REPLY_FRAME);
});
