//! The network layer: the QUIC endpoint and everything that gets packets
//! through home routers.
//!
//! # Layout
//! - [`transport`]: the quinn endpoint, TLS with ed25519 identities.
//! - [`congestion`]: Cubic that ignores random loss on a path without a
//!   queue, so lossy internet links stay full.
//! - [`socket`]: the wrapper around quinn's UDP socket that takes STUN
//!   answers and punch probes out of the QUIC stream.
//! - [`stun`]: our public address and NAT kind, from STUN servers.
//! - [`portmap`] and [`upnp`]: a port mapping from the home router, by
//!   NAT-PMP or else UPnP IGD.
//! - [`punch`]: coordinated hole punching and birthday punching, signalled
//!   through the topic's MQTT channel.
//! - this module: [`Net`], which owns the NAT state: what STUN and the
//!   router told us, the addresses we announce (typed: local, mapped,
//!   reflexive) and how we look to others ([`hdp_proto::nat::Reach`]).
//!
//! A path to a peer is an address plus the socket it runs over; a relay
//! through a friend (the next step) will be one more kind of path behind
//! the same socket wrapper, and punch signals can come from any
//! authenticated channel (`Discovery::on_signal` does not care which).
//!
//! # Tasks and channels
//! [`Net::start`] spawns three tasks on the node's tracker, all stopped by
//! the shutdown token: the receiver of the socket's side channel
//! ([`socket::SIDE_CAPACITY`]) which hands STUN answers to their waiting
//! round and probes to their punch session; the STUN rounds; and the port
//! mapping (which deletes its mapping on the way out). `changed` is a watch
//! channel (latest value only) that the announcers wait on.

pub mod congestion;
pub mod portmap;
pub mod punch;
pub mod socket;
pub mod stun;
pub mod transport;
pub mod upnp;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdp_proto::api::NatInfo;
use hdp_proto::discovery::{AddrKind, WireAddr};
use hdp_proto::nat::{NatKind, Reach, parse_probe};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

use crate::lock;
use socket::{Datagram, Demux};

/// An address a peer can be reached at, with how we learnt it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub kind: AddrKind,
    pub addr: SocketAddr,
}

impl Candidate {
    pub fn new(kind: AddrKind, addr: SocketAddr) -> Self {
        Candidate { kind, addr }
    }

    pub fn wire(&self) -> WireAddr {
        WireAddr::new(self.kind, self.addr)
    }
}

/// How a peer looks from its candidates.
pub fn reach_of(cands: &[Candidate]) -> Option<Reach> {
    let public: Vec<&Candidate> = cands.iter().filter(|c| c.kind != AddrKind::Local).collect();
    if public.is_empty() {
        return None;
    }
    let is_local = |a: &SocketAddr| cands.iter().any(|c| c.kind == AddrKind::Local && c.addr == *a);
    Some(if public.iter().any(|c| c.kind == AddrKind::Mapped || is_local(&c.addr)) {
        Reach::Open
    } else if public.iter().any(|c| c.kind == AddrKind::ReflexiveSymmetric) {
        Reach::Hard
    } else {
        Reach::Easy
    })
}

/// Whether `addr` is on a local network: private or unique-local, loopback,
/// or inside the subnet of one of our interfaces.
pub fn is_lan(addr: &SocketAddr) -> bool {
    let ip = addr.ip();
    let private = match ip {
        IpAddr::V4(v4) => v4.is_private() || v4.is_loopback() || v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00 || v6.is_unicast_link_local(),
    };
    private
        || if_addrs::get_if_addrs().unwrap_or_default().iter().any(|i| match (&i.addr, ip) {
            (if_addrs::IfAddr::V4(a), IpAddr::V4(v4)) => {
                let mask = u32::from(a.netmask);
                u32::from(a.ip) & mask == u32::from(v4) & mask
            }
            _ => false,
        })
}

/// The public IP a peer's candidates show, if any.
pub fn public_ip(cands: &[Candidate]) -> Option<IpAddr> {
    cands.iter().find(|c| c.kind != AddrKind::Local).map(|c| c.addr.ip())
}

/// How long to wait before asking the router again after it gave no mapping.
pub const PORTMAP_RETRY: Duration = Duration::from_secs(300);
/// Lease asked of a UPnP router (renewed at half).
pub const UPNP_LEASE: Duration = Duration::from_secs(3600);

/// A mapping held from the router, by either protocol.
#[derive(Debug)]
enum Held {
    Pmp(portmap::Mapping),
    Upnp(upnp::Mapping),
}

impl Held {
    fn external(&self) -> std::net::SocketAddrV4 {
        match self {
            Held::Pmp(m) => m.external,
            Held::Upnp(m) => m.external,
        }
    }

    fn protocol(&self) -> &'static str {
        match self {
            Held::Pmp(_) => "NAT-PMP",
            Held::Upnp(_) => "UPnP",
        }
    }

    /// Renew at half the lifetime, at least a minute apart; a permanent
    /// UPnP mapping is checked hourly (the router may have rebooted).
    fn renew_after(&self) -> Duration {
        let life = match self {
            Held::Pmp(m) => m.lifetime,
            Held::Upnp(m) if m.lease.is_zero() => 2 * UPNP_LEASE,
            Held::Upnp(m) => m.lease,
        };
        (life / 2).max(Duration::from_secs(60))
    }

    async fn remove(&self) {
        match self {
            Held::Pmp(m) => portmap::unmap(m).await,
            Held::Upnp(m) => upnp::unmap(m).await,
        }
    }
}

/// NAT-PMP first (one round trip to the gateway), then UPnP IGD (the
/// gateway found once is remembered).
async fn obtain(port: u16, gateway: &mut Option<upnp::Gateway>) -> Result<Held, String> {
    let pmp = match portmap::map(port).await {
        Ok(m) => return Ok(Held::Pmp(m)),
        Err(e) => e,
    };
    let gw = match gateway.clone() {
        Some(g) => g,
        None => upnp::discover().await.map_err(|e| format!("{pmp}; {e}"))?,
    };
    match upnp::map(&gw, port, UPNP_LEASE).await {
        Ok(m) => {
            *gateway = Some(gw);
            Ok(Held::Upnp(m))
        }
        Err(e) => {
            *gateway = None;
            Err(format!("{pmp}; UPnP: {e}"))
        }
    }
}

/// What the NAT layer knows now.
#[derive(Debug, Clone, Default)]
struct State {
    kind: Option<NatKind>,
    /// What each STUN server saw, from the last round with answers.
    reflexive: Vec<SocketAddr>,
    mapped: Option<std::net::SocketAddrV4>,
    stun: String,
    portmap: String,
}

/// Settings of the NAT layer.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// STUN servers (`HOST:PORT`); empty: STUN off.
    pub stun: Vec<String>,
    /// Ask the router for a port mapping.
    pub portmap: bool,
}

/// The NAT state and the socket's side channel; see the module docs.
#[derive(Debug)]
pub struct Net {
    socket: Arc<Demux>,
    bound: SocketAddr,
    config: NetConfig,
    state: Mutex<State>,
    /// Bumped whenever the addresses we announce change (watch: latest only).
    changed: watch::Sender<u64>,
    pending: Arc<stun::Pending>,
    pub(crate) punches: punch::Sessions,
    /// Asks for a STUN round now (a `Notify` holds one permit at most).
    recheck: tokio::sync::Notify,
    /// Becomes true once the first STUN round ended, answered or not
    /// (watch: latest value only).
    first_round: watch::Sender<bool>,
}

impl Net {
    /// Starts the NAT tasks for the endpoint's socket.
    pub fn start(
        socket: Arc<Demux>,
        side: mpsc::Receiver<Datagram>,
        bound: SocketAddr,
        config: NetConfig,
        shutdown: CancellationToken,
        tasks: &TaskTracker,
    ) -> Arc<Self> {
        let stun_state = if config.stun.is_empty() { "off" } else { "asking" };
        let portmap_state = if config.portmap { "asking" } else { "off" };
        let net = Arc::new(Net {
            socket,
            bound,
            state: Mutex::new(State { stun: stun_state.into(), portmap: portmap_state.into(), ..State::default() }),
            config,
            changed: watch::Sender::new(0),
            pending: Arc::default(),
            punches: punch::Sessions::default(),
            recheck: tokio::sync::Notify::new(),
            first_round: watch::Sender::new(false),
        });
        let (n, stop) = (net.clone(), shutdown.clone());
        tasks.spawn(async move { n.receive(side, stop).await });
        if !net.config.stun.is_empty() && !bound.ip().is_loopback() {
            let (n, stop) = (net.clone(), shutdown.clone());
            tasks.spawn(async move { n.stun_loop(stop).await });
        }
        if net.config.portmap && !bound.ip().is_loopback() && bound.is_ipv4() {
            let n = net.clone();
            tasks.spawn(async move { n.portmap_loop(shutdown).await });
        }
        net
    }

    pub fn socket(&self) -> &Arc<Demux> {
        &self.socket
    }

    /// Resolves when the announced addresses change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    async fn receive(self: Arc<Self>, mut side: mpsc::Receiver<Datagram>, stop: CancellationToken) {
        loop {
            let d = tokio::select! {
                d = side.recv() => match d { Some(d) => d, None => break },
                _ = stop.cancelled() => break,
            };
            if let Some(token) = parse_probe(&d.data) {
                self.punches.probe_arrived(token, d.from);
            } else {
                self.pending.answer(&d.data);
            }
        }
    }

    async fn stun_loop(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let answers = tokio::select! {
                a = stun::round(&self.socket, &self.pending, &self.config.stun, self.bound.is_ipv4()) => a,
                _ = stop.cancelled() => return,
            };
            let ok = !answers.is_empty();
            self.apply_stun(&answers);
            self.first_round.send_replace(true);
            let wait = if ok { stun::STUN_PERIOD } else { stun::STUN_RETRY };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = async {
                    self.recheck.notified().await;
                    // However many connections drop together, one round.
                    tokio::time::sleep(stun::RECHECK_DELAY).await;
                } => debug!("checking our public address again"),
                _ = stop.cancelled() => return,
            }
        }
    }

    fn apply_stun(&self, answers: &[stun::Answer]) {
        let mapped: Vec<SocketAddr> = answers.iter().map(|a| a.mapped).collect();
        let locals = crate::node::listen_addrs(self.bound);
        let mut s = lock(&self.state);
        if mapped.is_empty() {
            if s.stun != "no answer" {
                info!(servers = ?self.config.stun, "no STUN server answered; peers behind other routers may not reach us");
            }
            s.stun = "no answer".into();
            return;
        }
        let kind = NatKind::classify(&mapped, &locals);
        // One answer cannot tell the mapping; keep what two told us before.
        let kind = if kind == NatKind::Unknown && s.kind.is_some() { s.kind.unwrap_or(kind) } else { kind };
        let before = (s.kind, s.reflexive.first().copied());
        s.stun =
            format!("{} of {} servers answered", answers.len(), self.config.stun.len().min(stun::MAX_STUN_SERVERS));
        s.kind = Some(kind);
        s.reflexive = mapped;
        let after = (s.kind, s.reflexive.first().copied());
        drop(s);
        if before != after {
            match before.1 {
                Some(old) if Some(old) != after.1 => {
                    info!(%old, new = ?after.1, nat = ?kind, "our public address changed; announcing it")
                }
                _ => info!(public = ?after.1, nat = ?kind, "learnt our public address"),
            }
            self.changed.send_modify(|g| *g += 1);
        }
    }

    async fn portmap_loop(self: Arc<Self>, stop: CancellationToken) {
        let port = self.bound.port();
        let mut current: Option<Held> = None;
        let mut gateway: Option<upnp::Gateway> = None;
        loop {
            let result = tokio::select! {
                r = obtain(port, &mut gateway) => r,
                _ = stop.cancelled() => break,
            };
            let wait = match result {
                Ok(m) => {
                    let external = m.external();
                    let usable = portmap::announceable(&SocketAddr::V4(external));
                    let new = current.as_ref().map(Held::external) != Some(external);
                    if new {
                        info!(%external, via = m.protocol(), usable, "the router mapped our port");
                    }
                    {
                        let mut s = lock(&self.state);
                        s.portmap = if usable {
                            format!("mapped {external} ({})", m.protocol())
                        } else {
                            format!("mapped {external} ({}), but that is not a public address", m.protocol())
                        };
                        s.mapped = usable.then_some(external);
                    }
                    if new {
                        self.changed.send_modify(|g| *g += 1);
                    }
                    let renew = m.renew_after();
                    current = Some(m);
                    renew
                }
                Err(why) => {
                    debug!(error = %why, "no port mapping");
                    let mut s = lock(&self.state);
                    let had = s.mapped.take().is_some();
                    s.portmap = format!("none: {why}");
                    drop(s);
                    if had {
                        self.changed.send_modify(|g| *g += 1);
                    }
                    current = None;
                    PORTMAP_RETRY
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => break,
            }
        }
        if let Some(m) = current {
            m.remove().await;
            info!(external = %m.external(), "removed our port mapping");
        }
    }

    /// Resolves once the first STUN round has ended (at once when STUN is
    /// off), so the first announcement can carry our public address.
    pub async fn first_round(&self) {
        if self.config.stun.is_empty() || self.bound.ip().is_loopback() {
            return;
        }
        let mut rx = self.first_round.subscribe();
        let _ = rx.wait_for(|done| *done).await;
    }

    /// Asks for a STUN round soon (a connection died: perhaps our public port changed).
    pub fn recheck(&self) {
        self.recheck.notify_one();
    }

    /// How we look to others, `None` without a public address.
    pub fn reach(&self) -> Option<Reach> {
        let s = lock(&self.state);
        if s.mapped.is_some() || s.kind == Some(NatKind::None) {
            return Some(Reach::Open);
        }
        if s.reflexive.is_empty() {
            return None;
        }
        Some(if s.kind == Some(NatKind::Symmetric) { Reach::Hard } else { Reach::Easy })
    }

    /// Our public addresses: the router's mapping, then what STUN saw.
    pub fn public_candidates(&self) -> Vec<Candidate> {
        let s = lock(&self.state);
        let mut out = Vec::new();
        if let Some(m) = s.mapped {
            out.push(Candidate::new(AddrKind::Mapped, SocketAddr::V4(m)));
        }
        let kind = if s.kind == Some(NatKind::Symmetric) { AddrKind::ReflexiveSymmetric } else { AddrKind::Reflexive };
        if let Some(r) = s.reflexive.first() {
            out.push(Candidate::new(kind, *r));
        }
        out
    }

    /// Everything we announce: local addresses, then public ones.
    pub fn candidates(&self, local: &[SocketAddr]) -> Vec<Candidate> {
        let mut out: Vec<Candidate> = local.iter().map(|a| Candidate::new(AddrKind::Local, *a)).collect();
        out.extend(self.public_candidates());
        out
    }

    /// Whether the router mapped our port.
    pub fn has_mapping(&self) -> bool {
        lock(&self.state).mapped.is_some()
    }

    /// Our public IP, if STUN or the router told us.
    pub fn public_ip(&self) -> Option<IpAddr> {
        public_ip(&self.public_candidates())
    }

    /// For `GET /api/info`.
    pub fn info(&self) -> NatInfo {
        let s = lock(&self.state);
        let mut public: Vec<String> = s.mapped.map(|m| m.to_string()).into_iter().collect();
        for r in &s.reflexive {
            let r = r.to_string();
            if !public.contains(&r) {
                public.push(r);
            }
        }
        NatInfo {
            public_addrs: public,
            nat_type: s.kind.unwrap_or(NatKind::Unknown),
            port_mapping: s.portmap.clone(),
            stun: s.stun.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(kind: AddrKind, s: &str) -> Candidate {
        Candidate::new(kind, s.parse().unwrap())
    }

    #[test]
    fn reach_from_candidates() {
        let local = c(AddrKind::Local, "198.18.1.2:4433");
        assert_eq!(reach_of(&[local]), None);
        assert_eq!(reach_of(&[local, c(AddrKind::Reflexive, "203.0.113.11:4433")]), Some(Reach::Easy));
        assert_eq!(reach_of(&[local, c(AddrKind::ReflexiveSymmetric, "203.0.113.11:4000")]), Some(Reach::Hard));
        assert_eq!(
            reach_of(&[local, c(AddrKind::Mapped, "203.0.113.11:5000"), c(AddrKind::Reflexive, "203.0.113.11:4433")]),
            Some(Reach::Open)
        );
        // No NAT: the reflexive address is one of its own.
        let public = c(AddrKind::Local, "203.0.113.5:4433");
        assert_eq!(reach_of(&[public, c(AddrKind::Reflexive, "203.0.113.5:4433")]), Some(Reach::Open));
    }
}
