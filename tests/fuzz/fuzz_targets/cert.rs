//! Raw bytes as a peer's certificate (DER): the bounded walk that finds its
//! ed25519 key returns a key or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = hdp_proto::cert::ed25519_key_from_cert(data);
});
