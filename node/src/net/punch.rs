//! Hole punching: opening a direct path to a peer behind another router.
//!
//! Goals:
//! - When both nodes are behind NATs, meet anyway: the asking side sends a
//!   signal ([`hdp_proto::discovery::Signal`]) through an authenticated
//!   channel (the topic's MQTT path today, a mutual friend's connection
//!   later: [`Signaller`] does not care), and both ends follow the same
//!   [`hdp_proto::nat::plan`], derived from the two NAT kinds.
//! - [`Plan::Punch`]: both send probes to each other's public addresses
//!   every [`PROBE_INTERVAL`]; the asker dials the address the first probe
//!   from the other side came from, which by then is open both ways.
//! - [`Plan::Birthday`]: the symmetric side opens [`BIRTHDAY_SOCKETS`]
//!   sockets and sends one probe from each to the easy side's public address
//!   (each makes a NAT mapping that lets that address in); the easy side
//!   sends probes to random ports of the symmetric side's public IP, at most
//!   [`BIRTHDAY_PROBES`] at [`BIRTHDAY_RATE`] per second. A probe that hits
//!   a mapping arrives on one of the sockets: the symmetric side closes the
//!   others at once and dials QUIC from that socket, through a client-only
//!   quinn endpoint made for it ([`crate::peers::Peers::dial_from`]); the
//!   connection keeps that endpoint (and its NAT mapping) alive.
//! - Everything is bounded: [`PUNCH_TIMEOUT`] per attempt, at most
//!   [`MAX_SESSIONS`] sessions ([`MAX_BIRTHDAY_SESSIONS`] of them birthday
//!   ones), one answering session per peer at a time.
//!
//! A signal comes from a topic member, trusted no further than being one:
//! it can name any address as its own. What it can make us send is
//! therefore capped: 100 probes to each of at most 4 addresses per session,
//! and random-port probes (3,000 per session) in at most two sessions at once.
//!
//! Non-goals: relaying (both sides symmetric ends in
//! [`PunchError::NoDirectPath`]); port prediction for sequential NATs.
//!
//! Packet budget per attempt: Punch sends at most
//! `PUNCH_TIMEOUT / PROBE_INTERVAL` (100) probes to each of the peer's
//! (at most [`MAX_PUNCH_ADDRS`]) public addresses, per side. Birthday:
//! the symmetric side sends 2 × 256 probes; the easy side at most 3,000,
//! which find one of 256 random mappings among Linux's 64,512 ports with
//! probability 1 − (1 − 256/64512)^3000 > 99.99 %; half of all attempts
//! succeed within 175 probes (0.6 s at 300/s).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdp_proto::api::PathKind;
use hdp_proto::discovery::AddrKind;
use hdp_proto::id::PeerId;
use hdp_proto::nat::{BIRTHDAY_SOCKETS, Plan, TOKEN_LEN, parse_probe, plan, probe};
use tokio::sync::mpsc;
use tracing::{debug, info};

use super::{Candidate, Net, public_ip, reach_of};
use crate::lock;
use crate::peers::{DialError, Peers};

/// Longest one punch attempt runs, on either side.
pub const PUNCH_TIMEOUT: Duration = Duration::from_secs(20);
/// Time between probes to one address in [`Plan::Punch`].
pub const PROBE_INTERVAL: Duration = Duration::from_millis(200);
/// Punch sessions at once (each asked or answered); more are refused.
pub const MAX_SESSIONS: usize = 16;
/// Birthday sessions at once. Each sends up to [`BIRTHDAY_PROBES`] probes
/// (easy side) or holds 256 sockets (hard side); a topic member could
/// otherwise have us spray a third party's ports from many sessions.
pub const MAX_BIRTHDAY_SESSIONS: usize = 2;
/// Public addresses of a peer probed at once.
pub const MAX_PUNCH_ADDRS: usize = 4;
/// Random-port probes per second the easy side sends in a birthday punch.
pub const BIRTHDAY_RATE: usize = 300;
/// Most random-port probes per birthday attempt.
pub use hdp_proto::nat::BIRTHDAY_PROBES;

/// Why a punch did not give a connection.
#[derive(Debug, thiserror::Error)]
pub enum PunchError {
    #[error(
        "no direct path: both routers are strict (symmetric NAT), so neither side can reach the other; \
         a port forward or UPnP/NAT-PMP on either router would help"
    )]
    NoDirectPath,
    #[error("we do not know our public address yet (STUN has not answered)")]
    NoPublicAddress,
    #[error("cannot signal the peer: {0}")]
    Signal(&'static str),
    #[error("hole punching found no path within {PUNCH_TIMEOUT:?}")]
    Timeout,
    #[error("too many punch attempts at once")]
    Busy,
    #[error("cannot open sockets for birthday punching: {0}")]
    Sockets(std::io::Error),
    #[error(transparent)]
    Dial(#[from] DialError),
}

/// Sends a punch signal to a peer over some authenticated channel.
pub trait Signaller: Send + Sync {
    /// Asks `to` to punch with us under `token`; `ours` are our candidates.
    fn signal(&self, to: PeerId, token: [u8; TOKEN_LEN], ours: &[Candidate]) -> Result<(), &'static str>;
}

/// One punch session: its peer, its kind, and where probes for it go.
#[derive(Debug)]
struct Session {
    peer: PeerId,
    path: PathKind,
    /// First probe sources, for the side that dials on a probe (capacity 1:
    /// only the first matters; later ones are dropped).
    probes: Option<mpsc::Sender<SocketAddr>>,
    asker: bool,
    /// Where the last [`SEEN_SOURCES`] probes came from: a connection from
    /// one of them is the punched path; from elsewhere, another one.
    seen: std::collections::VecDeque<SocketAddr>,
    /// The addresses this side probes (at most [`MAX_PUNCH_ADDRS`]): our
    /// probes opened our router for them, so a connection from one of them
    /// came through the punched hole too.
    targets: Vec<SocketAddr>,
}

/// Probe sources remembered per session: the winning birthday socket's
/// probe comes just before its dial, though a burst of the other sockets'
/// probes may arrive around it.
pub const SEEN_SOURCES: usize = 16;

/// The punch sessions in progress, by token.
#[derive(Debug, Default)]
pub struct Sessions(Mutex<HashMap<[u8; TOKEN_LEN], Session>>);

impl Sessions {
    fn open(
        &self,
        token: [u8; TOKEN_LEN],
        peer: PeerId,
        path: PathKind,
        asker: bool,
        want_probes: bool,
    ) -> Result<Option<mpsc::Receiver<SocketAddr>>, PunchError> {
        let mut s = lock(&self.0);
        // One answering session per peer: repeated signals do not multiply work.
        let birthdays = s.values().filter(|x| x.path == PathKind::Birthday).count();
        if s.len() >= MAX_SESSIONS
            || (path == PathKind::Birthday && birthdays >= MAX_BIRTHDAY_SESSIONS)
            || (!asker && s.values().any(|x| x.peer == peer && !x.asker))
        {
            return Err(PunchError::Busy);
        }
        let (tx, rx) = if want_probes {
            let (tx, rx) = mpsc::channel(1);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        s.insert(token, Session { peer, path, probes: tx, asker, seen: Default::default(), targets: Vec::new() });
        Ok(rx)
    }

    fn close(&self, token: &[u8; TOKEN_LEN]) {
        lock(&self.0).remove(token);
    }

    /// A probe arrived on the QUIC socket.
    pub fn probe_arrived(&self, token: [u8; TOKEN_LEN], from: SocketAddr) {
        let mut sessions = lock(&self.0);
        let Some(s) = sessions.get_mut(&token) else { return };
        if let Some(tx) = &s.probes {
            let _ = tx.try_send(from);
        }
        if !s.seen.contains(&from) {
            if s.seen.len() == SEEN_SOURCES {
                s.seen.pop_front();
            }
            s.seen.push_back(from);
        }
    }

    fn set_targets(&self, token: &[u8; TOKEN_LEN], targets: &[SocketAddr]) {
        if let Some(s) = lock(&self.0).get_mut(token) {
            s.targets = targets.iter().copied().take(MAX_PUNCH_ADDRS).collect();
        }
    }

    /// The path of a connection with `peer` at `remote` that a punch
    /// brought: one of its sessions probed that address or saw a probe from it.
    pub fn path_for(&self, peer: &PeerId, remote: &SocketAddr) -> Option<PathKind> {
        lock(&self.0)
            .values()
            .find(|s| s.peer == *peer && (s.seen.contains(remote) || s.targets.contains(remote)))
            .map(|s| s.path)
    }
}

/// Removes its session when the attempt ends, however it ends.
struct Guard<'a> {
    net: &'a Net,
    token: [u8; TOKEN_LEN],
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.net.punches.close(&self.token);
    }
}

/// The plan for us meeting `peer`, and both sides' reach; `None` when
/// punching cannot help or is not needed (no public addresses, or both
/// behind the same public IP: the local addresses work).
pub fn plan_for(net: &Net, theirs: &[Candidate], asker_is_us: bool) -> Option<Plan> {
    let ours = net.reach()?;
    let their = reach_of(theirs)?;
    if net.public_ip() == public_ip(theirs) {
        return None;
    }
    Some(if asker_is_us { plan(ours, their) } else { plan(their, ours) })
}

fn token() -> Result<[u8; TOKEN_LEN], PunchError> {
    let mut t = [0u8; TOKEN_LEN];
    getrandom::fill(&mut t).map_err(|_| PunchError::Signal("no randomness"))?;
    Ok(t)
}

/// The peer's public addresses worth probing.
fn targets(theirs: &[Candidate]) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::new();
    for kind in [AddrKind::Mapped, AddrKind::Reflexive] {
        for c in theirs.iter().filter(|c| c.kind == kind) {
            if !out.contains(&c.addr) {
                out.push(c.addr);
            }
        }
    }
    out.truncate(MAX_PUNCH_ADDRS);
    out
}

fn hard_ip(theirs: &[Candidate]) -> Option<IpAddr> {
    theirs.iter().find(|c| c.kind == AddrKind::ReflexiveSymmetric).map(|c| c.addr.ip())
}

fn easy_addr(theirs: &[Candidate]) -> Option<SocketAddr> {
    targets(theirs).into_iter().next()
}

/// Asks `peer` to punch with us and does our part; returns once connected
/// (by either side) or when the attempt gives up.
pub async fn ask(
    net: &Arc<Net>,
    peers: &Arc<Peers>,
    signaller: &dyn Signaller,
    local: &[SocketAddr],
    peer: PeerId,
    theirs: &[Candidate],
) -> Result<(), PunchError> {
    let Some(p) = plan_for(net, theirs, true) else { return Err(PunchError::NoPublicAddress) };
    if peers.connection(&peer).is_some() {
        return Ok(());
    }
    if matches!(p, Plan::NoPath) {
        return Err(PunchError::NoDirectPath);
    }
    if matches!(p, Plan::Dial) {
        // Their open address is dialed directly; nothing to punch.
        return Err(PunchError::Timeout);
    }
    let token = token()?;
    let probes = net.punches.open(token, peer, session_path(net, p), true, matches!(p, Plan::Punch))?;
    let _guard = Guard { net, token };
    signaller.signal(peer, token, &net.candidates(local)).map_err(PunchError::Signal)?;
    info!(%peer, plan = ?p, "punching a path to a peer behind another router");
    Attempt { net, peers, peer, token, asker: true }.run(p, theirs, probes).await
}

/// Answers a punch signal from `peer` (already authenticated, fresh and
/// addressed to us): does our part of the plan.
pub async fn answer(
    net: &Arc<Net>,
    peers: &Arc<Peers>,
    peer: PeerId,
    token: [u8; TOKEN_LEN],
    theirs: &[Candidate],
) -> Result<(), PunchError> {
    let Some(p) = plan_for(net, theirs, false) else { return Err(PunchError::NoPublicAddress) };
    let probes = net.punches.open(token, peer, session_path(net, p), false, false)?;
    let _guard = Guard { net, token };
    debug!(%peer, plan = ?p, "answering a punch request");
    Attempt { net, peers, peer, token, asker: false }.run(p, theirs, probes).await
}

/// What an incoming connection during a session of plan `p` is.
fn session_path(net: &Net, p: Plan) -> PathKind {
    match p {
        Plan::Birthday { .. } => PathKind::Birthday,
        Plan::Reverse | Plan::Dial if net.has_mapping() => PathKind::Mapped,
        Plan::Reverse | Plan::Dial => PathKind::Direct,
        Plan::Punch | Plan::NoPath => PathKind::Punched,
    }
}

/// One side of one punch attempt.
struct Attempt<'a> {
    net: &'a Arc<Net>,
    peers: &'a Arc<Peers>,
    peer: PeerId,
    token: [u8; TOKEN_LEN],
    asker: bool,
}

impl Attempt<'_> {
    /// Runs this side of plan `p` until connected, [`PUNCH_TIMEOUT`] or shutdown.
    async fn run(
        &self,
        p: Plan,
        theirs: &[Candidate],
        probes: Option<mpsc::Receiver<SocketAddr>>,
    ) -> Result<(), PunchError> {
        let work = async {
            match p {
                Plan::NoPath => Err(PunchError::NoDirectPath),
                Plan::Dial => Ok(()),
                // The open side (the asker) waits; the other dials it.
                Plan::Reverse if self.asker => self.connected().await,
                Plan::Reverse => {
                    let addrs: Vec<(SocketAddr, PathKind)> = theirs
                        .iter()
                        .filter_map(|c| match c.kind {
                            AddrKind::Mapped => Some((c.addr, PathKind::Mapped)),
                            AddrKind::Reflexive => Some((c.addr, PathKind::Direct)),
                            _ => None,
                        })
                        .collect();
                    self.peers.dial_paths(&addrs, self.peer).await.map(|_| ()).map_err(PunchError::from)
                }
                Plan::Punch => self.punch(theirs, probes).await,
                Plan::Birthday { hard_is_asker } if hard_is_asker == self.asker => {
                    self.birthday_hard(easy_addr(theirs).ok_or(PunchError::NoPublicAddress)?).await
                }
                Plan::Birthday { .. } => self.birthday_easy(hard_ip(theirs).ok_or(PunchError::NoPublicAddress)?).await,
            }
        };
        tokio::select! {
            r = tokio::time::timeout(PUNCH_TIMEOUT, work) => r.map_err(|_| PunchError::Timeout)?,
            _ = self.peers.stopping().cancelled() => Err(PunchError::Dial(DialError::ShuttingDown)),
        }
    }

    fn is_connected(&self) -> bool {
        self.peers.connection(&self.peer).is_some()
    }

    /// Resolves once the peer is connected (by whichever side dialed).
    async fn connected(&self) -> Result<(), PunchError> {
        let mut made = self.peers.connections();
        loop {
            if self.is_connected() {
                return Ok(());
            }
            if made.changed().await.is_err() {
                return Err(PunchError::Dial(DialError::ShuttingDown));
            }
        }
    }

    /// [`Plan::Punch`]: probes to the peer's public addresses until
    /// connected; the asker dials the first probe's source.
    async fn punch(&self, theirs: &[Candidate], probes: Option<mpsc::Receiver<SocketAddr>>) -> Result<(), PunchError> {
        let targets = targets(theirs);
        if targets.is_empty() {
            return Err(PunchError::NoPublicAddress);
        }
        self.net.punches.set_targets(&self.token, &targets);
        let datagram = probe(&self.token);
        let send = async {
            let mut tick = tokio::time::interval(PROBE_INTERVAL);
            loop {
                tick.tick().await;
                if self.is_connected() {
                    return;
                }
                for t in &targets {
                    let _ = self.net.socket().send_to(&datagram, *t);
                }
            }
        };
        let finish = async {
            match probes {
                // The asker dials where the first probe came from.
                Some(mut rx) if self.asker => {
                    let from = rx.recv().await.ok_or(PunchError::Timeout)?;
                    debug!(peer = %self.peer, %from, "a probe came through; dialing");
                    self.peers.dial_path(from, self.peer, PathKind::Punched).await.map(|_| ()).map_err(PunchError::from)
                }
                _ => self.connected().await,
            }
        };
        tokio::select! {
            r = finish => r,
            _ = send => Ok(()),
        }
    }

    /// The symmetric side of [`Plan::Birthday`]: a pool of sockets, one
    /// probe from each to the easy side (twice), then QUIC from the socket a
    /// probe reached.
    async fn birthday_hard(&self, easy: SocketAddr) -> Result<(), PunchError> {
        let (datagram, token) = (probe(&self.token), self.token);
        let bind: SocketAddr =
            if easy.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
        let mut pool = tokio::task::JoinSet::new();
        for _ in 0..BIRTHDAY_SOCKETS {
            let socket = tokio::net::UdpSocket::bind(bind).await.map_err(PunchError::Sockets)?;
            pool.spawn(async move {
                let mut buf = [0u8; 64];
                let _ = socket.send_to(&datagram, easy).await;
                let resend = tokio::time::sleep(Duration::from_secs(2));
                tokio::pin!(resend);
                let mut resent = false;
                loop {
                    tokio::select! {
                        r = socket.recv_from(&mut buf) => match r {
                            Ok((n, from)) if parse_probe(&buf[..n]) == Some(token) => return Some((socket, from)),
                            Ok(_) => continue,
                            Err(_) => return None,
                        },
                        _ = &mut resend, if !resent => {
                            resent = true;
                            let _ = socket.send_to(&datagram, easy).await;
                        }
                    }
                }
            });
        }
        let (socket, from) = loop {
            match pool.join_next().await {
                Some(Ok(Some(won))) => break won,
                Some(_) => continue,
                None => return Err(PunchError::Timeout),
            }
        };
        // Close the losing sockets at once.
        pool.abort_all();
        // One probe back from the winner: the easy side learns which address is ours.
        let _ = socket.send_to(&datagram, from).await;
        debug!(peer = %self.peer, %from, local = ?socket.local_addr().ok(), "a birthday probe came through; dialing from its socket");
        let socket = socket.into_std().map_err(PunchError::Sockets)?;
        self.peers.dial_from(socket, from, self.peer, PathKind::Birthday).await.map(|_| ()).map_err(PunchError::from)
    }

    /// The easy side of [`Plan::Birthday`]: probes to random ports of the
    /// symmetric side's public IP until it dials us.
    async fn birthday_easy(&self, ip: IpAddr) -> Result<(), PunchError> {
        let datagram = probe(&self.token);
        let send = async {
            // Batches every 10 ms: BIRTHDAY_RATE per second.
            let per_batch = BIRTHDAY_RATE / 100;
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let mut sent = 0;
            let mut rand = [0u8; 2 * 64];
            while sent < BIRTHDAY_PROBES {
                tick.tick().await;
                if self.is_connected() || getrandom::fill(&mut rand).is_err() {
                    break;
                }
                for pair in rand.chunks_exact(2).take(per_batch) {
                    let port = 1024 + u16::from_le_bytes([pair[0], pair[1]]) % (65535 - 1024 + 1);
                    let _ = self.net.socket().send_to(&datagram, SocketAddr::new(ip, port));
                    sent += 1;
                }
            }
            debug!(peer = %self.peer, sent, "birthday probes sent");
            // Keep waiting for the dial after the last probe.
            std::future::pending::<()>().await;
        };
        tokio::select! {
            r = self.connected() => r,
            _ = send => Ok(()),
        }
    }
}
