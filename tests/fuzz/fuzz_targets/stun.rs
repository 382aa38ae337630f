//! Datagrams on the QUIC socket that might be STUN answers or punch probes:
//! classified, parsed or refused.
#![no_main]

use hdp_proto::nat::{is_nat_datagram, is_stun, parse_binding_response, parse_probe, stun_txid};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = is_nat_datagram(data);
    if is_stun(data) {
        let _ = stun_txid(data);
    }
    let _ = parse_binding_response(data);
    let _ = parse_probe(data);
});
