//! Structured: any message the types allow, encoded as a frame, decodes to
//! itself, or is refused for its size, never anything else.
#![no_main]

use arbitrary::Arbitrary;
use hdp_proto::wire::{
    HashReply, Hello, LsFrame, MAX_LS_FRAME, ReadHeader, Request, WireError, decode_frame, encode_frame,
};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Message {
    Hello(Hello),
    Request(Request),
    Ls(LsFrame),
    Read(ReadHeader),
    Hash(HashReply),
}

fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(msg: &T) {
    match encode_frame(msg, MAX_LS_FRAME) {
        Ok(frame) => assert_eq!(&decode_frame::<T>(&frame, MAX_LS_FRAME).expect("decodes"), msg),
        Err(WireError::TooLarge { .. }) => {}
        Err(e) => panic!("encoding failed: {e}"),
    }
}

fuzz_target!(|msg: Message| {
    match &msg {
        Message::Hello(m) => round_trip(m),
        Message::Request(m) => round_trip(m),
        Message::Ls(m) => round_trip(m),
        Message::Read(m) => round_trip(m),
        Message::Hash(m) => round_trip(m),
    }
});
