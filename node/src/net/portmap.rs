//! Asking the home router for a port mapping: NAT-PMP (RFC 6886).
//!
//! Goals: when the default gateway answers NAT-PMP (miniupnpd, so most
//! OpenWrt routers, Apple's and many consumer routers do; a PCP server that
//! also implements NAT-PMP answers version-0 requests, RFC 6887 §9), map
//! our QUIC port for UDP, renew the mapping
//! at half its lifetime, and delete it on shutdown. The mapped address is
//! announced as [`hdp_proto::discovery::AddrKind::Mapped`]: reachable from
//! anywhere, so peers dial it directly.
//!
//! Non-goals: PCP's own message format, IPv6 pinholes. Routers that speak
//! only UPnP IGD are asked by [`super::upnp`].
//!
//! The codec is written here (a dozen fixed-size fields) rather than taken
//! from a crate: every byte a router sends is checked by the functions
//! below, and the client shares nothing with a crate's own socket handling.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

/// The NAT-PMP server port on the gateway.
pub const NATPMP_PORT: u16 = 5351;
/// Lifetime asked for a mapping (RFC 6886 recommends 7200 s).
pub const LIFETIME: u32 = 7200;
/// Tries per request: 250 ms, doubling (RFC 6886 §3.1 allows nine; four
/// answer a live router and keep start-up cheap when there is none).
pub const TRIES: u32 = 4;
const FIRST_WAIT: Duration = Duration::from_millis(250);
const OP_EXTERNAL: u8 = 0;
const OP_MAP_UDP: u8 = 1;

/// Why no mapping was made.
#[derive(Debug, thiserror::Error)]
pub enum PortmapError {
    #[error("no default IPv4 gateway")]
    NoGateway,
    #[error("the gateway {0} does not answer NAT-PMP")]
    NoAnswer(Ipv4Addr),
    #[error("the gateway refused: {0}")]
    Refused(&'static str),
    #[error("malformed NAT-PMP answer")]
    Malformed,
    #[error("cannot talk to the gateway: {0}")]
    Io(#[from] std::io::Error),
}

/// A mapping the router granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub gateway: Ipv4Addr,
    pub external: SocketAddrV4,
    pub internal_port: u16,
    pub lifetime: Duration,
}

/// A map request: version 0, opcode 1 (UDP), reserved, ports, lifetime.
pub fn map_request(internal: u16, external: u16, lifetime: u32) -> [u8; 12] {
    let mut r = [0u8; 12];
    r[1] = OP_MAP_UDP;
    r[4..6].copy_from_slice(&internal.to_be_bytes());
    r[6..8].copy_from_slice(&external.to_be_bytes());
    r[8..12].copy_from_slice(&lifetime.to_be_bytes());
    r
}

fn result_error(code: u16) -> Result<(), PortmapError> {
    Err(PortmapError::Refused(match code {
        0 => return Ok(()),
        1 => "unsupported version",
        2 => "not authorized (mapping disabled on the router)",
        3 => "network failure (the router has no public address)",
        4 => "out of resources",
        5 => "unsupported opcode",
        _ => "unknown result code",
    }))
}

/// Parses the answer to an external-address request: the public IP.
pub fn parse_external(d: &[u8]) -> Result<Ipv4Addr, PortmapError> {
    let d: &[u8; 12] = d.try_into().map_err(|_| PortmapError::Malformed)?;
    if d[0] != 0 || d[1] != 128 + OP_EXTERNAL {
        return Err(PortmapError::Malformed);
    }
    result_error(u16::from_be_bytes([d[2], d[3]]))?;
    Ok(Ipv4Addr::new(d[8], d[9], d[10], d[11]))
}

/// Parses the answer to a UDP map request: (internal port, external port, lifetime).
pub fn parse_map(d: &[u8]) -> Result<(u16, u16, u32), PortmapError> {
    let d: &[u8; 16] = d.try_into().map_err(|_| PortmapError::Malformed)?;
    if d[0] != 0 || d[1] != 128 + OP_MAP_UDP {
        return Err(PortmapError::Malformed);
    }
    result_error(u16::from_be_bytes([d[2], d[3]]))?;
    let internal = u16::from_be_bytes([d[8], d[9]]);
    let external = u16::from_be_bytes([d[10], d[11]]);
    let lifetime = u32::from_be_bytes([d[12], d[13], d[14], d[15]]);
    Ok((internal, external, lifetime))
}

/// The default IPv4 gateway, from `/proc/net/route` (Linux).
pub fn default_gateway() -> Option<Ipv4Addr> {
    let table = std::fs::read_to_string("/proc/net/route").ok()?;
    gateway_from_route_table(&table)
}

fn gateway_from_route_table(table: &str) -> Option<Ipv4Addr> {
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // Destination 0 with the gateway flag (0x2) set.
        let flags = u16::from_str_radix(f.get(3)?, 16).ok()?;
        if *f.get(1)? != "00000000" || flags & 0x2 == 0 {
            return None;
        }
        let gw = u32::from_str_radix(f.get(2)?, 16).ok()?;
        Some(Ipv4Addr::from(gw.swap_bytes()))
    })
}

/// Sends `request` to the gateway and returns the first answer with the
/// right size, retrying [`TRIES`] times.
async fn exchange(gateway: Ipv4Addr, request: &[u8], answer_len: usize) -> Result<Vec<u8>, PortmapError> {
    let socket = tokio::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?;
    socket.connect((gateway, NATPMP_PORT)).await?;
    let mut wait = FIRST_WAIT;
    let mut buf = [0u8; 64];
    for _ in 0..TRIES {
        socket.send(request).await?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
                Ok(Ok(n)) if n == answer_len => return Ok(buf[..n].to_vec()),
                // Another size: a stray datagram; keep waiting.
                Ok(Ok(_)) => continue,
                // ICMP port unreachable: nothing listens there; no use retrying.
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    return Err(PortmapError::NoAnswer(gateway));
                }
                Ok(Err(_)) | Err(_) => break,
            }
        }
        tokio::time::sleep_until(deadline).await;
        wait *= 2;
    }
    Err(PortmapError::NoAnswer(gateway))
}

/// Asks the default gateway to map UDP `port` (to the same external port if
/// it can), for [`LIFETIME`].
pub async fn map(port: u16) -> Result<Mapping, PortmapError> {
    let gateway = default_gateway().ok_or(PortmapError::NoGateway)?;
    map_via(gateway, port, LIFETIME).await
}

/// [`map`] through a given gateway.
pub async fn map_via(gateway: Ipv4Addr, port: u16, lifetime: u32) -> Result<Mapping, PortmapError> {
    let ip = parse_external(&exchange(gateway, &[0, OP_EXTERNAL], 12).await?)?;
    let (internal, external, granted) = parse_map(&exchange(gateway, &map_request(port, port, lifetime), 16).await?)?;
    if internal != port {
        return Err(PortmapError::Malformed);
    }
    Ok(Mapping {
        gateway,
        external: SocketAddrV4::new(ip, external),
        internal_port: port,
        lifetime: Duration::from_secs(u64::from(granted)),
    })
}

/// Deletes a mapping (lifetime 0); best effort, bounded by [`TRIES`].
pub async fn unmap(m: &Mapping) {
    let _ = exchange(m.gateway, &map_request(m.internal_port, 0, 0), 16).await;
}

/// Whether `addr` is worth announcing: a public IPv4 address. A router
/// behind another NAT (carrier-grade NAT, 100.64/10, or a private address)
/// maps a port nobody outside can reach.
pub fn announceable(addr: &SocketAddr) -> bool {
    match addr.ip() {
        std::net::IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_private() || v4.is_loopback() || v4.is_unspecified() || (o[0] == 100 && (o[1] & 0xc0) == 64))
        }
        std::net::IpAddr::V6(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec() {
        assert_eq!(map_request(4433, 4433, 7200), [0, 1, 0, 0, 0x11, 0x51, 0x11, 0x51, 0, 0, 0x1c, 0x20]);
        let ext = [0, 128, 0, 0, 0, 0, 1, 0, 203, 0, 113, 11];
        assert_eq!(parse_external(&ext).unwrap(), Ipv4Addr::new(203, 0, 113, 11));
        let map = [0, 129, 0, 0, 0, 0, 1, 0, 0x11, 0x51, 0x13, 0x88, 0, 0, 0x0e, 0x10];
        assert_eq!(parse_map(&map).unwrap(), (4433, 5000, 3600));
        let mut refused = map;
        refused[3] = 2;
        assert!(matches!(parse_map(&refused), Err(PortmapError::Refused(_))));
        assert!(matches!(parse_map(&map[..15]), Err(PortmapError::Malformed)));
        assert!(matches!(parse_external(&map), Err(PortmapError::Malformed)));
        for i in 0..16 {
            let mut x = map;
            x[i] ^= 0xff;
            let _ = parse_map(&x);
        }
    }

    #[test]
    fn gateway_from_proc() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n\
                     eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n\
                     eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\n";
        assert_eq!(gateway_from_route_table(table), Some(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(gateway_from_route_table("Iface\n"), None);
    }

    #[test]
    fn only_public_addresses_are_announced() {
        assert!(announceable(&"203.0.113.11:5000".parse().unwrap()));
        assert!(!announceable(&"100.64.1.1:5000".parse().unwrap()));
        assert!(!announceable(&"192.168.1.1:5000".parse().unwrap()));
    }
}
