//! Discovery: finding the peers of our topics and keeping them connected.
//!
//! Goals:
//! - Merge what MQTT ([`mqtt`]) and mDNS ([`mdns`]) find into one table of
//!   known peers, keyed by peer id (both sources authenticate the id: MQTT
//!   announcements are signed, mDNS tokens are keyed by the topic, and every
//!   dial checks the id the TLS handshake proves).
//! - Decide deterministically who dials: the smaller peer id dials at once;
//!   the larger waits [`DIAL_GRACE`] and dials only if no connection came, so
//!   a peer that can only be reached in one direction is still reached.
//! - Bound the work: at most [`MAX_CONCURRENT_DIALS`] dials at once,
//!   per-peer exponential backoff with jitter, at most
//!   [`MAX_KNOWN_PER_TOPIC`] known peers per topic.
//! - Reconnect peers that drop while they are still announced.
//!
//! - Reach peers behind other routers: a peer with public addresses is
//!   dialed directly (local, mapped, then reflexive addresses) and, when the
//!   two NAT kinds call for it, hole punching ([`crate::net::punch`]) runs
//!   alongside; the first connection wins. Punch signals travel on the
//!   topic's MQTT path ([`Discovery`] is the punch [`Signaller`]).
//!
//! Non-goals: disconnecting peers whose announcements stop (an established
//! connection lives until it closes; discovery only decides whom to dial).
//!
//! # Channels
//! - `found` ([`FOUND_CAPACITY`]): MQTT and mDNS tasks report peers to the
//!   manager with `try_send`; when it is full the report is dropped, which is
//!   harmless because announcements repeat.
//! - `announce` (a [`Notify`]): the manager asks the MQTT task to announce
//!   now when a new peer appears, so the newcomer learns of us in a round
//!   trip instead of a republish period. A `Notify` holds one permit at most.
//! - Topic changes reach the MQTT and mDNS tasks through the watch channel
//!   of [`Peers::topics`], which holds only the latest value.

pub mod mdns;
pub mod mqtt;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use hdp_proto::api::{MqttState, MqttStatus, PathKind, PeerInfo};
use hdp_proto::discovery::{AddrKind, MAX_SIGNAL_AGE_MS, Signal, seal_signal};
use hdp_proto::id::PeerId;
use hdp_proto::nat::{Plan, TOKEN_LEN};
use hdp_proto::wire::CloseCode;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

use crate::lock;
use crate::net::punch::{self, PunchError, Signaller};
use crate::net::{Candidate, Net};
use crate::peers::{DialError, Peers};

/// Reports waiting for the manager; see the module docs.
pub const FOUND_CAPACITY: usize = 256;
/// Dials in flight at once: each holds a QUIC handshake and a task.
pub const MAX_CONCURRENT_DIALS: usize = 4;
/// Peers remembered per topic; a circle of friends, not a swarm.
pub const MAX_KNOWN_PER_TOPIC: usize = 128;
/// How long the peer with the larger id waits for the smaller to dial.
pub const DIAL_GRACE: Duration = Duration::from_secs(3);
/// First redial delay after a failure; doubles up to [`REDIAL_MAX`].
pub const REDIAL_START: Duration = Duration::from_secs(1);
pub const REDIAL_MAX: Duration = Duration::from_secs(60);
/// How often the manager looks for peers to dial and entries to expire.
const TICK: Duration = Duration::from_millis(250);

/// Where a peer was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Mqtt,
    Mdns,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Mqtt => "mqtt",
            Source::Mdns => "mdns",
        }
    }
}

/// One sighting of a peer.
#[derive(Debug, Clone)]
pub enum Report {
    /// `peer` is on `topics` (ours) and can be dialed at `addrs`.
    Found { peer: PeerId, source: Source, addrs: Vec<Candidate>, topics: Vec<String>, ttl: Duration },
    /// The source says `peer` is gone.
    Lost { peer: PeerId, source: Source },
}

#[derive(Debug)]
struct Sighting {
    addrs: Vec<Candidate>,
    topics: Vec<String>,
    expires: Instant,
}

#[derive(Debug)]
struct Known {
    seen: HashMap<Source, Sighting>,
    /// When to dial next if not connected; `None` while connected.
    next_dial: Option<Instant>,
    backoff: Duration,
    dialing: bool,
    error: Option<String>,
}

impl Known {
    fn addrs(&self) -> Vec<Candidate> {
        let mut out: Vec<Candidate> = Vec::new();
        // mDNS addresses first: on the same LAN they are the quickest path.
        for src in [Source::Mdns, Source::Mqtt] {
            for a in self.seen.get(&src).map(|s| s.addrs.as_slice()).unwrap_or_default() {
                if !out.contains(a) {
                    out.push(*a);
                }
            }
        }
        out
    }

    fn topics(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in self.seen.values() {
            for t in &s.topics {
                if !out.contains(t) {
                    out.push(t.clone());
                }
            }
        }
        out
    }

    fn source(&self) -> String {
        let names: Vec<&str> =
            [Source::Mqtt, Source::Mdns].into_iter().filter(|s| self.seen.contains_key(s)).map(Source::name).collect();
        names.join("+")
    }
}

/// The discovery manager; see the module docs.
pub struct Discovery {
    me: PeerId,
    peers: Arc<Peers>,
    net: Arc<Net>,
    /// Signs punch signals.
    signer: SigningKey,
    /// Our local addresses now (they change when interfaces do).
    local: Arc<dyn Fn() -> Vec<SocketAddr> + Send + Sync>,
    /// The running MQTT client and the token it runs under, for punch signals.
    mqtt_client: Mutex<Option<(CancellationToken, rumqttc::v5::AsyncClient)>>,
    known: Mutex<HashMap<PeerId, Known>>,
    found: mpsc::Sender<Report>,
    /// Bounds dials in flight; see [`MAX_CONCURRENT_DIALS`].
    dials: Arc<Semaphore>,
    announce: Notify,
    mqtt: Mutex<MqttStatus>,
    mdns: std::sync::atomic::AtomicBool,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery").field("me", &self.me).finish_non_exhaustive()
    }
}

impl Discovery {
    /// Creates the manager and starts its task.
    pub fn start(
        peers: Arc<Peers>,
        net: Arc<Net>,
        signer: SigningKey,
        local: Arc<dyn Fn() -> Vec<SocketAddr> + Send + Sync>,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Arc<Self> {
        let (found, rx) = mpsc::channel(FOUND_CAPACITY);
        let me = PeerId(signer.verifying_key().to_bytes());
        let this = Arc::new(Discovery {
            me,
            peers,
            net,
            signer,
            local,
            mqtt_client: Mutex::new(None),
            known: Mutex::new(HashMap::new()),
            found,
            dials: Arc::new(Semaphore::new(MAX_CONCURRENT_DIALS)),
            announce: Notify::new(),
            mqtt: Mutex::new(MqttStatus::default()),
            mdns: false.into(),
            shutdown,
            tasks,
        });
        let run = this.clone();
        this.tasks.spawn(async move { run.run(rx).await });
        this
    }

    /// Reports a sighting; dropped if the manager is behind (see the module docs).
    pub fn report(&self, r: Report) {
        if self.found.try_send(r).is_err() {
            debug!("discovery is behind; dropped a report");
        }
    }

    /// The network layer.
    pub fn net(&self) -> &Arc<Net> {
        &self.net
    }

    /// Everything we announce: local addresses, then public ones.
    pub fn candidates(&self) -> Vec<Candidate> {
        self.net.candidates(&(self.local)())
    }

    /// The MQTT client now running under `run` (punch signals go through it).
    pub(crate) fn set_mqtt_client(&self, run: CancellationToken, client: rumqttc::v5::AsyncClient) {
        *lock(&self.mqtt_client) = Some((run, client));
    }

    /// A punch signal for us arrived (authenticated, fresh, not replayed).
    pub(crate) fn on_signal(self: &Arc<Self>, s: Signal) {
        if s.to != self.me || s.from == self.me || self.peers.friends().is_blocked(&s.from) {
            return;
        }
        if let Some(age) = crate::unix_ms().checked_sub(s.timestamp_ms)
            && age > MAX_SIGNAL_AGE_MS
        {
            return;
        }
        let theirs: Vec<Candidate> = s
            .addrs
            .iter()
            .filter_map(|w| AddrKind::from_u8(w.kind).map(|k| Candidate::new(k, w.socket_addr())))
            .filter(|c| dialable(&c.addr, false))
            .collect();
        if self.peers.connection(&s.from).is_some() {
            return;
        }
        let this = self.clone();
        self.tasks.spawn(async move {
            match punch::answer(&this.net, &this.peers, s.from, s.token, &theirs).await {
                Ok(()) => {}
                Err(PunchError::Busy) => debug!(peer = %s.from, "already punching with this peer"),
                Err(e) => debug!(peer = %s.from, error = %e, "answering a punch request failed"),
            }
        });
    }

    pub(crate) fn set_mqtt(&self, status: MqttStatus) {
        *lock(&self.mqtt) = status;
    }

    /// Sets the state reported by the MQTT client that runs under `run`;
    /// ignored once `run` is cancelled, so a client stopped for another
    /// broker cannot overwrite the new one's state (the broker is changed by
    /// cancelling first, then [`Discovery::set_mqtt`], under the same lock).
    pub(crate) fn set_mqtt_state(&self, run: &CancellationToken, state: MqttState, error: Option<String>) {
        let mut s = lock(&self.mqtt);
        if run.is_cancelled() {
            return;
        }
        s.state = state;
        s.error = error;
    }

    pub fn mqtt_status(&self) -> MqttStatus {
        lock(&self.mqtt).clone()
    }

    pub(crate) fn set_mdns(&self, on: bool) {
        self.mdns.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn mdns_on(&self) -> bool {
        self.mdns.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Resolves when a newly found peer should hear from us soon.
    pub(crate) async fn announce_wanted(&self) {
        self.announce.notified().await
    }

    /// Adds what discovery knows to the registry's list: how connected peers
    /// were found, and the known peers that are not connected (with the
    /// last dial error).
    pub fn annotate(&self, list: &mut Vec<PeerInfo>) {
        let known = lock(&self.known);
        for (id, k) in known.iter() {
            let source = k.source();
            if let Some(p) = list.iter_mut().find(|p| p.id == Some(*id)) {
                if p.source != "manual" {
                    p.source = source;
                }
                continue;
            }
            list.push(PeerInfo {
                id: Some(*id),
                name: Some(id.friendly_name()),
                addr: k.addrs().first().map(|c| c.addr.to_string()),
                connected: false,
                direction: None,
                since: None,
                topics: k.topics(),
                rtt_ms: None,
                path: None,
                source,
                error: k.error.clone(),
                rx_rate: 0,
                tx_rate: 0,
                rx_bytes: 0,
                tx_bytes: 0,
            });
        }
    }

    async fn run(self: Arc<Self>, mut rx: mpsc::Receiver<Report>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                r = rx.recv() => match r {
                    Some(r) => self.apply(r),
                    None => break,
                },
                _ = tick.tick() => self.sweep(),
                _ = self.shutdown.cancelled() => break,
            }
        }
    }

    fn apply(&self, r: Report) {
        let now = Instant::now();
        let mut known = lock(&self.known);
        match r {
            Report::Found { peer, source, addrs, topics, ttl } => {
                // A blocked peer's announcements are ignored.
                if peer == self.me || addrs.is_empty() || topics.is_empty() || self.peers.friends().is_blocked(&peer) {
                    return;
                }
                if !known.contains_key(&peer) {
                    let full = topics.iter().all(|t| {
                        known.values().filter(|k| k.seen.values().any(|s| s.topics.contains(t))).count()
                            >= MAX_KNOWN_PER_TOPIC
                    });
                    if full {
                        debug!(%peer, "too many known peers on its topics; ignoring it");
                        return;
                    }
                    info!(%peer, name = %peer.friendly_name(), source = source.name(), ?addrs, "found a peer");
                    // A newcomer: answer with our own announcement now.
                    self.announce.notify_one();
                }
                let k = known.entry(peer).or_insert_with(|| Known {
                    seen: HashMap::new(),
                    next_dial: None,
                    backoff: REDIAL_START,
                    dialing: false,
                    error: None,
                });
                let changed = k.seen.get(&source).is_none_or(|s| s.addrs != addrs);
                k.seen.insert(source, Sighting { addrs, topics, expires: now + ttl });
                // New addresses deserve a prompt try even while backing off.
                if changed && k.next_dial.is_some_and(|t| t > now + self.first_delay(peer)) {
                    k.next_dial = Some(now + self.first_delay(peer));
                    k.backoff = REDIAL_START;
                }
            }
            Report::Lost { peer, source } => {
                if let Some(k) = known.get_mut(&peer) {
                    k.seen.remove(&source);
                    if k.seen.is_empty() {
                        debug!(%peer, "peer no longer announced");
                        known.remove(&peer);
                    }
                }
            }
        }
    }

    fn first_delay(&self, peer: PeerId) -> Duration {
        if self.me < peer { Duration::ZERO } else { DIAL_GRACE }
    }

    /// Expires old sightings and starts the dials that are due.
    fn sweep(self: &Arc<Self>) {
        let now = Instant::now();
        let mut due = Vec::new();
        {
            let mut known = lock(&self.known);
            known.retain(|_, k| {
                k.seen.retain(|_, s| s.expires > now);
                !k.seen.is_empty() || k.dialing
            });
            for (id, k) in known.iter_mut() {
                if k.dialing || k.seen.is_empty() {
                    continue;
                }
                if self.peers.connection(id).is_some() {
                    k.next_dial = None;
                    k.backoff = REDIAL_START;
                    k.error = None;
                    continue;
                }
                let at = *k.next_dial.get_or_insert(now + self.first_delay(*id));
                if at <= now {
                    due.push((*id, k.addrs()));
                }
            }
        }
        for (peer, addrs) in due {
            let Ok(permit) = self.dials.clone().try_acquire_owned() else { break };
            if let Some(k) = lock(&self.known).get_mut(&peer) {
                k.dialing = true;
            }
            let this = self.clone();
            self.tasks.spawn(async move {
                debug!(%peer, ?addrs, "dialing a discovered peer");
                let result = this.connect(peer, &addrs).await;
                drop(permit);
                this.dialed(peer, result);
            });
        }
    }

    /// Dials `peer` directly and, when the NAT kinds call for it, punches a
    /// path at the same time; the first connection wins.
    async fn connect(self: &Arc<Self>, peer: PeerId, cands: &[Candidate]) -> Result<(), ConnectError> {
        let mut direct: Vec<(SocketAddr, PathKind)> = Vec::new();
        for kind in [AddrKind::Local, AddrKind::Mapped, AddrKind::Reflexive] {
            for c in cands.iter().filter(|c| c.kind == kind) {
                let path = match kind {
                    AddrKind::Local => self.peers.path_to(&c.addr),
                    AddrKind::Mapped => PathKind::Mapped,
                    _ => PathKind::Direct,
                };
                if !direct.iter().any(|(a, _)| *a == c.addr) {
                    direct.push((c.addr, path));
                }
            }
        }
        let plan = punch::plan_for(&self.net, cands, true);
        let dial = self.peers.dial_paths(&direct, peer);
        match plan {
            None | Some(Plan::Dial) => return dial.await.map(|_| ()).map_err(ConnectError::Dial),
            // Both symmetric, behind different public IPs (the same IP would
            // have given no plan): no dial can get through; say so at once.
            Some(Plan::NoPath) => return Err(ConnectError::Punch(PunchError::NoDirectPath)),
            Some(_) => {}
        }
        let local = (self.local)();
        let punched = punch::ask(&self.net, &self.peers, self.as_ref(), &local, peer, cands);
        tokio::pin!(dial, punched);
        let (mut dial_err, mut punch_err) = (None, None);
        while dial_err.is_none() || punch_err.is_none() {
            tokio::select! {
                r = &mut dial, if dial_err.is_none() => match r {
                    Ok(_) => return Ok(()),
                    Err(e) => dial_err = Some(e),
                },
                r = &mut punched, if punch_err.is_none() => match r {
                    Ok(()) if self.peers.connection(&peer).is_some() => return Ok(()),
                    Ok(()) => punch_err = Some(PunchError::Timeout),
                    Err(e) => punch_err = Some(e),
                },
            }
        }
        // The punch's reason says more than a dial that timed out.
        Err(ConnectError::Punch(punch_err.unwrap_or(PunchError::Timeout)))
    }

    fn dialed(&self, peer: PeerId, result: Result<(), ConnectError>) {
        let mut known = lock(&self.known);
        let Some(k) = known.get_mut(&peer) else { return };
        k.dialing = false;
        match result {
            Ok(()) => {
                k.next_dial = None;
                k.backoff = REDIAL_START;
                k.error = None;
            }
            Err(e) => {
                debug!(%peer, error = %e, "could not reach a discovered peer; will retry");
                // A peer that refused us for want of a shared topic (it left
                // ours) will not change its mind soon, nor will two strict routers.
                if matches!(
                    e,
                    ConnectError::Dial(DialError::Closed(CloseCode::NoSharedTopic))
                        | ConnectError::Punch(PunchError::NoDirectPath)
                ) {
                    k.backoff = REDIAL_MAX;
                }
                k.error = Some(e.to_string());
                k.next_dial = Some(Instant::now() + crate::peers::jitter(k.backoff));
                k.backoff = (k.backoff * 2).min(REDIAL_MAX);
            }
        }
    }
}

/// Why a discovered peer could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Dial(#[from] DialError),
    #[error(transparent)]
    Punch(#[from] PunchError),
}

impl Signaller for Discovery {
    /// Seals the signal for a topic we share with `to` and publishes it on
    /// that topic's MQTT path.
    fn signal(&self, to: PeerId, token: [u8; TOKEN_LEN], ours: &[Candidate]) -> Result<(), &'static str> {
        let client = match lock(&self.mqtt_client).as_ref() {
            Some((run, c)) if !run.is_cancelled() => c.clone(),
            _ => return Err("MQTT is off or not connected"),
        };
        let shared = lock(&self.known).get(&to).map(Known::topics).unwrap_or_default();
        let topics = self.peers.topics().borrow().clone();
        let Some((_, keys)) = topics.iter().find(|(n, _)| shared.iter().any(|s| s == n)) else {
            return Err("no topic shared with the peer");
        };
        let wire: Vec<_> = ours.iter().map(Candidate::wire).collect();
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).map_err(|_| "no randomness")?;
        let payload =
            seal_signal(keys, &self.signer, &to, crate::unix_ms(), token, &wire, nonce).map_err(|_| "too large")?;
        client
            .try_publish(mqtt::topic_path(keys), rumqttc::v5::mqttbytes::QoS::AtMostOnce, false, payload)
            .map_err(|_| "the MQTT request queue is full")
    }
}

/// Whether an address from a peer is worth dialing: not unspecified,
/// multicast, broadcast or link-local, a non-zero port, and loopback only
/// when we listen on loopback ourselves (a node on one machine with its
/// peers); anything else could make us dial our own machine's services.
pub fn dialable(addr: &SocketAddr, allow_loopback: bool) -> bool {
    let ip = addr.ip();
    if addr.port() == 0 || ip.is_unspecified() || ip.is_multicast() {
        return false;
    }
    if ip.is_loopback() {
        return allow_loopback;
    }
    match ip {
        std::net::IpAddr::V4(v4) => !v4.is_link_local() && !v4.is_broadcast(),
        std::net::IpAddr::V6(v6) => !v6.is_unicast_link_local(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialable_addresses() {
        let ok = |s: &str, lo: bool| dialable(&s.parse().unwrap(), lo);
        assert!(ok("192.168.1.5:4433", false));
        assert!(ok("[2001:db8::1]:4433", false));
        assert!(!ok("127.0.0.1:4433", false));
        assert!(ok("127.0.0.1:4433", true));
        assert!(!ok("0.0.0.0:4433", true));
        assert!(!ok("192.168.1.5:0", true));
        assert!(!ok("224.0.0.251:5353", true));
        assert!(!ok("255.255.255.255:1", true));
        assert!(!ok("169.254.3.4:4433", true));
        assert!(!ok("[fe80::1]:4433", true));
    }
}
