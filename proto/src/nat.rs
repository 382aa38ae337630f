//! NAT traversal, sans-IO: STUN binding messages, punch probes, the NAT
//! classification and the choice of how two nodes try to meet.
//!
//! Goals:
//! - Learn a node's public address with STUN (RFC 8489) binding requests
//!   sent from its QUIC socket, and tell an endpoint-independent mapping
//!   from an endpoint-dependent ("symmetric") one by asking two servers.
//! - Open NAT bindings between two nodes with small probe datagrams sent
//!   from the same socket, recognised (and kept away from QUIC) by their
//!   first bytes; a probe carries the random token of one punch session, so
//!   an off-path sender cannot steer a dial.
//! - Both ends derive the same plan ([`plan`]) from the two NAT kinds, so
//!   the signalling carries facts (addresses, a token), never commands.
//!
//! Non-goals: TURN (relaying through a server); STUN authentication and
//! FINGERPRINT (binding requests to public servers need neither); IPv6
//! NAT (IPv6 hosts are dialed directly, as local addresses).
//!
//! # Telling datagrams apart on one socket
//! QUIC packets always have the fixed bit (0x40) of their first byte set:
//! the node never advertises `grease_quic_bit`, so peers may not clear it.
//! STUN messages start with two zero bits and carry the magic cookie
//! `0x2112A442` at bytes 4..8 ([`is_stun`]); probes start with `00 68 64 70`
//! (`"\0hdp"`, [`parse_probe`]). Both first bytes have the fixed bit clear.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// STUN's magic cookie (RFC 8489 §5).
pub const STUN_MAGIC: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
/// STUN binding request / success response message types.
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const ATTR_MAPPED_ADDRESS: u16 = 0x0001;
const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;
/// Largest STUN response we look at; larger ones are not answers to us.
pub const MAX_STUN_LEN: usize = 548;
/// Length of a STUN transaction id.
pub const STUN_TXID_LEN: usize = 12;

/// A STUN binding request with no attributes (20 bytes).
pub fn stun_binding_request(txid: &[u8; STUN_TXID_LEN]) -> [u8; 20] {
    let mut m = [0u8; 20];
    m[0..2].copy_from_slice(&BINDING_REQUEST.to_be_bytes());
    m[4..8].copy_from_slice(&STUN_MAGIC);
    m[8..20].copy_from_slice(txid);
    m
}

/// Whether a datagram is a STUN message (RFC 8489 §5: two zero bits, the
/// magic cookie, a length that is a multiple of 4 and matches).
pub fn is_stun(d: &[u8]) -> bool {
    d.len() >= 20
        && d[0] & 0xc0 == 0
        && d[4..8] == STUN_MAGIC
        && usize::from(u16::from_be_bytes([d[2], d[3]])) == d.len() - 20
        && d.len().is_multiple_of(4)
}

/// Why a STUN datagram was not a usable binding response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StunError {
    #[error("not a STUN message")]
    NotStun,
    #[error("STUN message of {0} bytes exceeds the {MAX_STUN_LEN}-byte limit")]
    TooLong(usize),
    #[error("not a binding success response")]
    NotSuccess,
    #[error("STUN attribute overruns the message")]
    Truncated,
    #[error("binding response without a mapped address")]
    NoAddress,
}

/// The transaction id of a STUN message (call after [`is_stun`]).
pub fn stun_txid(d: &[u8]) -> Option<[u8; STUN_TXID_LEN]> {
    d.get(8..20)?.try_into().ok()
}

/// The address a binding success response reports: XOR-MAPPED-ADDRESS,
/// or MAPPED-ADDRESS from an RFC 3489 server.
pub fn parse_binding_response(d: &[u8]) -> Result<SocketAddr, StunError> {
    if d.len() > MAX_STUN_LEN {
        return Err(StunError::TooLong(d.len()));
    }
    if !is_stun(d) {
        return Err(StunError::NotStun);
    }
    if u16::from_be_bytes([d[0], d[1]]) != BINDING_SUCCESS {
        return Err(StunError::NotSuccess);
    }
    let txid = &d[8..20];
    let mut rest = &d[20..];
    let mut plain = None;
    while rest.len() >= 4 {
        let kind = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let padded = len.div_ceil(4) * 4;
        let value = rest.get(4..4 + len).ok_or(StunError::Truncated)?;
        match kind {
            ATTR_XOR_MAPPED_ADDRESS => return decode_address(value, Some(txid)),
            ATTR_MAPPED_ADDRESS => plain = decode_address(value, None).ok(),
            _ => {}
        }
        rest = rest.get(4 + padded..).unwrap_or_default();
    }
    plain.ok_or(StunError::NoAddress)
}

fn decode_address(v: &[u8], xor_txid: Option<&[u8]>) -> Result<SocketAddr, StunError> {
    let (family, port) = match v {
        [_, family, p0, p1, ..] => (*family, u16::from_be_bytes([*p0, *p1])),
        _ => return Err(StunError::Truncated),
    };
    let mut key = [0u8; 16];
    if let Some(txid) = xor_txid {
        key[..4].copy_from_slice(&STUN_MAGIC);
        key[4..].copy_from_slice(txid);
    }
    let port = port ^ u16::from_be_bytes([key[0], key[1]]);
    let ip: IpAddr = match (family, v.len()) {
        (1, 8) => {
            let mut b = [0u8; 4];
            for (i, x) in b.iter_mut().enumerate() {
                *x = v[4 + i] ^ key[i];
            }
            Ipv4Addr::from(b).into()
        }
        (2, 20) => {
            let mut b = [0u8; 16];
            for (i, x) in b.iter_mut().enumerate() {
                *x = v[4 + i] ^ key[i];
            }
            Ipv6Addr::from(b).into()
        }
        _ => return Err(StunError::Truncated),
    };
    Ok(SocketAddr::new(ip, port))
}

/// First four bytes of every probe.
pub const PROBE_MAGIC: [u8; 4] = [0x00, b'h', b'd', b'p'];
/// Length of a punch session's token.
pub const TOKEN_LEN: usize = 16;
/// A probe: magic, version 1, the session token.
pub const PROBE_LEN: usize = 4 + 1 + TOKEN_LEN;
const PROBE_VERSION: u8 = 1;

/// A probe datagram for the punch session `token`.
pub fn probe(token: &[u8; TOKEN_LEN]) -> [u8; PROBE_LEN] {
    let mut p = [0u8; PROBE_LEN];
    p[..4].copy_from_slice(&PROBE_MAGIC);
    p[4] = PROBE_VERSION;
    p[5..].copy_from_slice(token);
    p
}

/// The token of a probe; `None` for anything else.
pub fn parse_probe(d: &[u8]) -> Option<[u8; TOKEN_LEN]> {
    if d.len() != PROBE_LEN || d[..4] != PROBE_MAGIC || d[4] != PROBE_VERSION {
        return None;
    }
    d[5..].try_into().ok()
}

/// Whether a datagram is for the node's NAT traversal rather than QUIC.
pub fn is_nat_datagram(d: &[u8]) -> bool {
    d.first().is_some_and(|b| b & 0x40 == 0) && (is_stun(d) || parse_probe(d).is_some())
}

/// How a node's router maps its socket to the outside, as far as it knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NatKind {
    /// Not known yet (STUN off or unreachable, too few answers).
    Unknown,
    /// No NAT: the public address is one of our own.
    None,
    /// Endpoint-independent mapping: one public port for every destination.
    /// (Filtering may still be strict; punching opens it.)
    EndpointIndependent,
    /// Endpoint-dependent ("symmetric"): a new public port per destination.
    Symmetric,
}

impl NatKind {
    /// The name in the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            NatKind::Unknown => "unknown",
            NatKind::None => "none",
            NatKind::EndpointIndependent => "endpoint_independent",
            NatKind::Symmetric => "symmetric",
        }
    }

    /// Classifies from what STUN servers at *different addresses* reported
    /// for one local socket, and our own interface addresses.
    pub fn classify(mapped: &[SocketAddr], local: &[SocketAddr]) -> NatKind {
        let Some(first) = mapped.first() else { return NatKind::Unknown };
        if mapped.iter().any(|m| local.contains(m)) {
            return NatKind::None;
        }
        if mapped.iter().any(|m| m != first) {
            return NatKind::Symmetric;
        }
        if mapped.len() < 2 { NatKind::Unknown } else { NatKind::EndpointIndependent }
    }
}

/// What one side knows about how it can be reached, for [`plan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Reachable from anywhere: a router port mapping, or no NAT.
    Open,
    /// Behind an endpoint-independent NAT (or one we could not classify).
    Easy,
    /// Behind a symmetric NAT.
    Hard,
}

/// How two nodes try to open a direct path, decided alike by both ends
/// from who asked and each side's [`Reach`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The asker can dial the other's open address itself; no punching.
    Dial,
    /// The asker is open: the other side dials it back.
    Reverse,
    /// Both send probes to each other's public addresses; the asker dials
    /// the address the first probe from the other came from.
    Punch,
    /// One side is symmetric ("hard"): it opens a pool of sockets towards
    /// the easy side's public address, the easy side probes random ports of
    /// the hard side's public IP, and the hard side dials from the socket a
    /// probe reached.
    Birthday { hard_is_asker: bool },
    /// Both symmetric: no direct path (a relay through a friend may help).
    NoPath,
}

/// The plan for `asker` meeting `other`.
pub fn plan(asker: Reach, other: Reach) -> Plan {
    match (asker, other) {
        (_, Reach::Open) => Plan::Dial,
        (Reach::Open, _) => Plan::Reverse,
        (Reach::Easy, Reach::Easy) => Plan::Punch,
        (Reach::Hard, Reach::Easy) => Plan::Birthday { hard_is_asker: true },
        (Reach::Easy, Reach::Hard) => Plan::Birthday { hard_is_asker: false },
        (Reach::Hard, Reach::Hard) => Plan::NoPath,
    }
}

/// Sockets the hard side opens for a birthday punch.
pub const BIRTHDAY_SOCKETS: usize = 256;
/// Probes the easy side sends to random ports, at most, per attempt.
pub const BIRTHDAY_PROBES: usize = 3_000;
/// Ports a NAT picks from (Linux: 1024–65535).
pub const BIRTHDAY_PORT_SPACE: usize = 64_512;

/// The chance that `probes` random ports hit one of `sockets` mappings
/// spread over `space` ports: `1 − (1 − sockets/space)^probes`.
pub fn birthday_success(sockets: usize, probes: usize, space: usize) -> f64 {
    let miss = 1.0 - sockets as f64 / space as f64;
    1.0 - miss.powi(probes.min(i32::MAX as usize) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// The IPv4 sample response of RFC 5769 §2.2 (192.0.2.1:32853).
    const RFC5769_RESPONSE: &str = "0101003c 2112a442 b7e7a701 bc34d686 fa87dfae
        8022000b 74657374 20766563 746f7220
        00200008 0001a147 e112a643
        00080014 2b91f599 fd9e90c3 8c7489f9 2af9ba53 f06be7d7
        80280004 c07d4c96";

    #[test]
    fn rfc5769_sample_response() {
        let d = unhex(RFC5769_RESPONSE);
        assert!(is_stun(&d));
        assert!(is_nat_datagram(&d));
        assert_eq!(stun_txid(&d).unwrap().to_vec(), unhex("b7e7a701 bc34d686 fa87dfae"));
        assert_eq!(parse_binding_response(&d), Ok("192.0.2.1:32853".parse().unwrap()));
    }

    #[test]
    fn rfc5769_sample_ipv6_address() {
        // XOR-MAPPED-ADDRESS of RFC 5769 §2.3: [2001:db8:1234:5678:11:2233:4455:6677]:32853.
        let txid = unhex("b7e7a701 bc34d686 fa87dfae");
        let v = unhex("0002a147 0113a9fa a5d3f179 bc25f4b5 bed2b9d9");
        assert_eq!(
            decode_address(&v, Some(&txid)),
            Ok("[2001:db8:1234:5678:11:2233:4455:6677]:32853".parse().unwrap())
        );
    }

    #[test]
    fn binding_request_layout() {
        let r = stun_binding_request(&[7; 12]);
        assert_eq!(r.to_vec(), unhex("0001 0000 2112a442 070707070707070707070707"));
        assert!(is_stun(&r));
        assert_eq!(parse_binding_response(&r), Err(StunError::NotSuccess));
    }

    #[test]
    fn junk_never_panics_and_is_refused() {
        let good = unhex(RFC5769_RESPONSE);
        for cut in 0..good.len() {
            let _ = parse_binding_response(&good[..cut]);
        }
        // An attribute claiming more than the message holds.
        let mut bad = good.clone();
        bad[22] = 0xff;
        assert_eq!(parse_binding_response(&bad), Err(StunError::Truncated));
        assert_eq!(parse_binding_response(&[0u8; 600]), Err(StunError::TooLong(600)));
        for i in 0..good.len() {
            let mut x = good.clone();
            x[i] ^= 0xff;
            let _ = parse_binding_response(&x);
        }
        // A QUIC long-header packet is neither STUN nor a probe.
        let mut quic = vec![0xc0, 0, 0, 0, 1];
        quic.resize(1200, 0);
        assert!(!is_nat_datagram(&quic));
    }

    #[test]
    fn probes() {
        let p = probe(&[9; TOKEN_LEN]);
        assert_eq!(p.to_vec(), unhex("00686470 01 09090909090909090909090909090909"));
        assert_eq!(parse_probe(&p), Some([9; TOKEN_LEN]));
        assert!(is_nat_datagram(&p));
        assert!(!is_stun(&p));
        assert_eq!(parse_probe(&p[..PROBE_LEN - 1]), None);
        let mut v2 = p;
        v2[4] = 2;
        assert_eq!(parse_probe(&v2), None);
    }

    #[test]
    fn classification() {
        let a: SocketAddr = "203.0.113.11:40000".parse().unwrap();
        let b: SocketAddr = "203.0.113.11:40001".parse().unwrap();
        let local: SocketAddr = "198.18.1.2:40000".parse().unwrap();
        assert_eq!(NatKind::classify(&[], &[local]), NatKind::Unknown);
        assert_eq!(NatKind::classify(&[a], &[local]), NatKind::Unknown);
        assert_eq!(NatKind::classify(&[a, a], &[local]), NatKind::EndpointIndependent);
        assert_eq!(NatKind::classify(&[a, b], &[local]), NatKind::Symmetric);
        assert_eq!(NatKind::classify(&[local], &[local]), NatKind::None);
    }

    #[test]
    fn both_ends_agree_on_the_plan() {
        use Reach::*;
        assert_eq!(plan(Easy, Easy), Plan::Punch);
        assert_eq!(plan(Easy, Open), Plan::Dial);
        assert_eq!(plan(Open, Hard), Plan::Reverse);
        assert_eq!(plan(Hard, Easy), Plan::Birthday { hard_is_asker: true });
        assert_eq!(plan(Easy, Hard), Plan::Birthday { hard_is_asker: false });
        assert_eq!(plan(Hard, Hard), Plan::NoPath);
        assert_eq!(plan(Hard, Open), Plan::Dial);
    }

    #[test]
    fn birthday_budget() {
        // 256 sockets and 3,000 probes over Linux's 64,512 ports: > 99.99 %.
        let p = birthday_success(BIRTHDAY_SOCKETS, BIRTHDAY_PROBES, BIRTHDAY_PORT_SPACE);
        assert!(p > 0.9999, "{p}");
        // Half the probes on average find a hit after space/sockets = 252.
        let half = birthday_success(BIRTHDAY_SOCKETS, 175, BIRTHDAY_PORT_SPACE);
        assert!((0.45..0.55).contains(&half), "{half}");
    }
}
