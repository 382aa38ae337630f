//! Peers: dialing, accepting, the topic handshake, and the registry of live
//! connections.
//!
//! Goals:
//! - After TLS, each side proves it knows a topic the other is on, bound to
//!   this connection (see `hdp_proto::topic`). No shared topic: the listener
//!   closes with [`CloseCode::NoSharedTopic`] and the dialer says so.
//! - One connection per peer: duplicates are resolved the same way on both
//!   ends (the connection dialed by the smaller peer id survives; between two
//!   dialed by the same side, the newer).
//! - Addresses given by the user (`--peer`, `hdp connect`) are redialed with
//!   jittered, capped exponential backoff until they answer or are removed.
//!
//! Non-goals here: finding peers. Discovery ([`crate::discovery`]) watches
//! [`Peers::topics`] and dials what it finds through [`Peers::dial_any`];
//! serving requests is [`crate::serve`].

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdp_proto::api::{Direction, PathKind, PeerInfo};
use hdp_proto::id::PeerId;
use hdp_proto::topic::{EXPORTER_LABEL, MAX_TOPICS, Role, TopicKeys, proofs_equal, topic_proof};
use hdp_proto::wire::{CloseCode, Hello, MAX_HELLO_FRAME, MAX_REQUEST_FRAME};
use quinn::VarInt;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

use crate::frames::{FrameError, read_frame, write_frame};
use crate::index::scan::unix_now;
use crate::lock;
use crate::net::Net;
use crate::net::transport::{Transport, remote_peer_id};
use crate::serve::Server;

/// Longest a TLS handshake plus topic handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Incoming handshakes in progress at once; more are refused, so a flood of
/// connection attempts cannot pile up tasks.
pub const MAX_PENDING_HANDSHAKES: usize = 16;
/// Connected peers at most by default (`--max-peers`); a Pi serves a circle
/// of friends, not a swarm.
pub const MAX_PEERS: usize = 128;
/// Connection attempts one source address may start per second by default
/// (`--handshake-rate`; a burst of twice that). A household behind one NAT
/// reconnecting after an outage needs a few; a flood of identities from one
/// address is refused before it costs any TLS work.
pub const DEFAULT_HANDSHAKE_RATE: u32 = 20;
/// Source addresses whose attempt rate is remembered at once; see
/// [`AttemptRates`].
pub const TRACKED_ADDRESSES: usize = 4096;

/// Request streams all peers together may have open at once by default
/// (`--stream-budget`). Each open
/// stream costs about 12 KiB (quinn's state, our task, its buffers), so the
/// budget keeps a crowd of peers that open streams and never send to a few
/// dozen MiB. Shared out equally (`share_stream_budget`) as peers come and go;
/// QUIC cannot take back credit already given, so a share that shrinks is
/// honoured as the peer's streams close (at worst about twice the budget
/// is open for a while).
pub const STREAM_BUDGET: u32 = 2048;
/// Streams a peer may always open, however many peers share the budget.
pub const MIN_PEER_STREAMS: u32 = 64;

/// Gives every connection an equal share of `budget` ([`STREAM_BUDGET`]), between
/// [`MIN_PEER_STREAMS`] and [`crate::net::transport::MAX_STREAMS`] (a few
/// friends keep the full window small files need on long links).
fn share_stream_budget(conns: &HashMap<PeerId, PeerConn>, budget: u32) {
    let share = (budget / conns.len().max(1) as u32).clamp(MIN_PEER_STREAMS, crate::net::transport::MAX_STREAMS);
    for c in conns.values() {
        c.conn.set_max_concurrent_bi_streams(VarInt::from_u32(share));
    }
}

/// The limits a node enforces on the peers that reach it (see
/// docs/ARCHITECTURE.md, "Budgets against a hostile crowd").
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connected peers at most ([`MAX_PEERS`]).
    pub max_peers: usize,
    /// Connection attempts per source address per second ([`DEFAULT_HANDSHAKE_RATE`]).
    pub handshake_rate: u32,
    /// Request streams all peers together may open ([`STREAM_BUDGET`]).
    pub stream_budget: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_peers: MAX_PEERS, handshake_rate: DEFAULT_HANDSHAKE_RATE, stream_budget: STREAM_BUDGET }
    }
}

/// A token bucket of connection attempts per source address. At most
/// [`TRACKED_ADDRESSES`] are remembered: when full, addresses whose bucket
/// has refilled are forgotten, and if none has, all are (a flood from that
/// many addresses is what the handshake semaphore is for).
#[derive(Debug, Default)]
pub struct AttemptRates {
    buckets: HashMap<std::net::IpAddr, (f64, std::time::Instant)>,
}

impl AttemptRates {
    /// Whether `ip` may start another connection at `now`.
    pub fn allow(&mut self, ip: std::net::IpAddr, per_sec: u32, now: std::time::Instant) -> bool {
        let rate = f64::from(per_sec.max(1));
        let burst = 2.0 * rate;
        if self.buckets.len() >= TRACKED_ADDRESSES && !self.buckets.contains_key(&ip) {
            self.buckets.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * rate < burst);
            if self.buckets.len() >= TRACKED_ADDRESSES {
                self.buckets.clear();
            }
        }
        let (tokens, at) = self.buckets.entry(ip).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(burst);
        *at = now;
        if *tokens < 1.0 {
            return false;
        }
        *tokens -= 1.0;
        true
    }
}
/// First redial delay; doubled after each failure up to [`BACKOFF_MAX`].
pub const BACKOFF_START: Duration = Duration::from_millis(500);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Delay between starting attempts at a peer's addresses (a quick answer
/// on the first address wins before the others are tried).
pub const DIAL_STAGGER: Duration = Duration::from_millis(250);
/// Addresses of one peer tried at once.
pub const MAX_DIAL_ADDRS: usize = 8;

/// Why a connection could not be made.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DialError {
    #[error("cannot dial {0}")]
    Connect(String),
    #[error("no answer within {HANDSHAKE_TIMEOUT:?}")]
    Timeout,
    #[error("the peer speaks another protocol version (ALPN mismatch): upgrade the older node")]
    AlpnMismatch,
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    #[error("{}", .0.describe())]
    Closed(CloseCode),
    #[error("connection lost: {0}")]
    Lost(String),
    #[error("the peer broke the handshake: {0}")]
    Protocol(String),
    #[error("that address is this node")]
    SelfConnection,
    #[error("no shared topic: we are on no topic; join one with --topic")]
    NoTopics,
    #[error("too many peers connected (--max-peers)")]
    TooManyPeers,
    #[error("{0} is blocked: `hdp friends unblock` lets it back in")]
    Blocked(PeerId),
    #[error("the node is shutting down")]
    ShuttingDown,
    #[error("another node ({0}) answered at that address")]
    WrongPeer(PeerId),
    #[error("no address to dial")]
    NoAddress,
}

impl From<quinn::ConnectionError> for DialError {
    fn from(e: quinn::ConnectionError) -> Self {
        use quinn::ConnectionError as C;
        match &e {
            C::ApplicationClosed(close) => match CloseCode::from_code(close.error_code.into_inner()) {
                Some(code) => DialError::Closed(code),
                None => DialError::Lost(e.to_string()),
            },
            C::ConnectionClosed(close) => tls_error(u64::from(close.error_code), &e),
            C::TransportError(t) => tls_error(u64::from(t.code), &e),
            C::TimedOut => DialError::Timeout,
            _ => DialError::Lost(e.to_string()),
        }
    }
}

/// QUIC carries TLS alerts as CRYPTO_ERROR 0x100 + alert.
fn tls_error(code: u64, e: &quinn::ConnectionError) -> DialError {
    const NO_APPLICATION_PROTOCOL: u64 = 0x100 + 120;
    match code {
        NO_APPLICATION_PROTOCOL => DialError::AlpnMismatch,
        0x100..=0x1ff => DialError::Tls(e.to_string()),
        _ => DialError::Lost(e.to_string()),
    }
}

impl From<FrameError> for DialError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Read(quinn::ReadExactError::ReadError(quinn::ReadError::ConnectionLost(c))) => c.into(),
            FrameError::Write(quinn::WriteError::ConnectionLost(c)) => c.into(),
            other => DialError::Protocol(other.to_string()),
        }
    }
}

/// A live, handshaken connection.
#[derive(Debug, Clone)]
pub struct PeerConn {
    pub id: PeerId,
    pub conn: quinn::Connection,
    pub direction: Direction,
    pub since: i64,
    /// Topics both ends proved, shared with every request the peer makes.
    pub topics: Arc<ProvenTopics>,
    /// Bytes per second each way, sampled by the connection's task.
    pub rates: Arc<ConnRates>,
    /// How the connection reached the peer.
    pub path: PathKind,
    /// The client-only endpoint a birthday punch dialed from, kept as long
    /// as the connection (its socket holds the NAT mapping).
    pub endpoint: Option<quinn::Endpoint>,
}

/// The topics a peer proved on its connection. One per connection, shared
/// by the peer table and every request the peer makes, so that leaving a
/// topic reaches requests already running ([`crate::serve`] asks
/// [`crate::shares::Shares::visible`] again when [`Self::changes`] moves).
/// It also holds what restating topics on the same connection takes
/// (`Request::Prove`, docs/PROTOCOL.md §5): a topic joined or left after the
/// handshake counts on both ends of live connections at once.
#[derive(Debug, Default)]
pub struct ProvenTopics {
    list: Mutex<Vec<String>>,
    changes: AtomicU64,
    binding: Option<Binding>,
}

/// What a connection has left after we leave a topic.
enum Left {
    /// The connection had not proved it.
    NotProved,
    /// Other topics.
    Others,
    /// Nothing: the connection closes.
    None,
}

/// What topic proofs on one connection are bound to.
#[derive(Debug)]
struct Binding {
    exporter: [u8; 32],
    dialer: [u8; 32],
    listener: [u8; 32],
    /// Our end of the connection.
    role: Role,
    /// Our topics and their keys, as they are now.
    ours: watch::Receiver<Topics>,
    /// Closed with `NoSharedTopic` when a restatement leaves no topic.
    conn: Option<quinn::Connection>,
}

impl Binding {
    fn their_role(&self) -> Role {
        match self.role {
            Role::Dialer => Role::Listener,
            Role::Listener => Role::Dialer,
        }
    }

    fn proof(&self, keys: &TopicKeys, role: Role) -> [u8; 32] {
        topic_proof(&keys.handshake, role, &self.exporter, &self.dialer, &self.listener)
    }
}

impl ProvenTopics {
    pub fn new(list: Vec<String>) -> Arc<Self> {
        Arc::new(ProvenTopics { list: Mutex::new(list), changes: AtomicU64::new(0), binding: None })
    }

    /// The topics proved in the handshake of `conn`, where we are `role`.
    fn bound(
        list: Vec<String>,
        conn: &quinn::Connection,
        role: Role,
        me: PeerId,
        peer: PeerId,
        ours: watch::Receiver<Topics>,
    ) -> Result<Arc<Self>, DialError> {
        let (dialer, listener) = match role {
            Role::Dialer => (me.0, peer.0),
            Role::Listener => (peer.0, me.0),
        };
        let binding = Binding { exporter: exporter(conn)?, dialer, listener, role, ours, conn: Some(conn.clone()) };
        Ok(Arc::new(ProvenTopics { list: Mutex::new(list), changes: AtomicU64::new(0), binding: Some(binding) }))
    }

    /// Our proofs of every topic we are on now, for a `Prove` request that
    /// restates them; `None` for a connection without a binding.
    fn restatement(&self) -> Option<Hello> {
        let b = self.binding.as_ref()?;
        let ours = b.ours.borrow().clone();
        Some(Hello { proofs: ours.iter().map(|(_, k)| b.proof(k, b.role)).collect() })
    }

    /// Makes the proven topics those of ours the other end proved in
    /// `hello` (made with its role): a `Prove` restates the whole set, so
    /// topics it joined are added and topics it left are dropped.
    /// A restatement that leaves no topic closes the connection.
    fn take_proofs(&self, hello: &Hello) -> Vec<(String, TopicKeys)> {
        let Some(b) = &self.binding else { return Vec::new() };
        // Under the list's lock, so a leave cannot slip between reading our
        // topics and writing the list (it would be written back).
        let mut list = lock(&self.list);
        let ours = b.ours.borrow().clone();
        let theirs = b.their_role();
        let matched: Vec<(String, TopicKeys)> = ours
            .iter()
            .filter(|(_, k)| {
                let want = b.proof(k, theirs);
                hello.proofs.iter().take(MAX_TOPICS).any(|p| proofs_equal(p, &want))
            })
            .map(|(n, k)| (n.to_owned(), k.clone()))
            .collect();
        let names: Vec<String> = matched.iter().map(|(n, _)| n.clone()).collect();
        if *list != names {
            *list = names;
            self.changes.fetch_add(1, Ordering::AcqRel);
        }
        if list.is_empty()
            && let Some(conn) = &b.conn
        {
            conn.close(VarInt::from_u32(CloseCode::NoSharedTopic as u32), b"no shared topic");
        }
        matched
    }

    /// Answers a peer's `Prove`: the topics it proved become the
    /// connection's, and we prove them back with our role.
    pub fn answer(&self, hello: &Hello) -> Hello {
        let Some(b) = &self.binding else { return Hello { proofs: Vec::new() } };
        let matched = self.take_proofs(hello);
        Hello { proofs: matched.iter().map(|(_, k)| b.proof(k, b.role)).collect() }
    }

    /// The topics proved now.
    pub fn get(&self) -> Vec<String> {
        lock(&self.list).clone()
    }

    /// A counter that moves whenever the list changes.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// Keeps only the topics we are still on: a topic left while the
    /// handshake ran is not counted.
    fn keep_ours(&self, ours: &[String]) {
        let mut list = lock(&self.list);
        let before = list.len();
        list.retain(|t| ours.contains(t));
        if list.len() != before {
            self.changes.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Drops `name`, and says what is left.
    fn remove(&self, name: &str) -> Left {
        let mut list = lock(&self.list);
        if !list.iter().any(|t| t == name) {
            return Left::NotProved;
        }
        list.retain(|t| t != name);
        self.changes.fetch_add(1, Ordering::AcqRel);
        if list.is_empty() { Left::None } else { Left::Others }
    }
}

/// How often a connection's byte counters are sampled into rates.
pub const RATE_SAMPLE: Duration = Duration::from_secs(1);

/// A connection's recent transfer rates: written once per [`RATE_SAMPLE`]
/// by its `run_connection` task (from quinn's UDP byte counters), read by
/// `/api/peers`. Atomics: readers never wait for the sampler.
#[derive(Debug, Default)]
pub struct ConnRates {
    rx: AtomicU64,
    tx: AtomicU64,
}

impl ConnRates {
    /// Bytes per second received and sent over the last sample.
    pub fn get(&self) -> (u64, u64) {
        (self.rx.load(Ordering::Relaxed), self.tx.load(Ordering::Relaxed))
    }

    /// Records a new sample: `now` is (received, sent) byte totals and
    /// `before` the previous totals, `elapsed` apart.
    fn update(&self, before: (u64, u64), now: (u64, u64), elapsed: Duration) {
        let secs = elapsed.as_secs_f64().max(0.001);
        let rate = |a: u64, b: u64| (b.saturating_sub(a) as f64 / secs).round() as u64;
        self.rx.store(rate(before.0, now.0), Ordering::Relaxed);
        self.tx.store(rate(before.1, now.1), Ordering::Relaxed);
    }
}

/// A connection's UDP byte totals: (received, sent).
fn byte_totals(conn: &quinn::Connection) -> (u64, u64) {
    let s = conn.stats();
    (s.udp_rx.bytes, s.udp_tx.bytes)
}

/// An address we keep dialing.
#[derive(Debug)]
struct Target {
    addr: SocketAddr,
    cancel: CancellationToken,
    state: Mutex<TargetState>,
}

#[derive(Debug, Default)]
struct TargetState {
    peer: Option<PeerId>,
    error: Option<String>,
}

/// Topic names and their keys.
#[derive(Debug, Clone, Default)]
pub struct Topics(Vec<(String, TopicKeys)>);

impl Topics {
    pub fn new(names: &[String]) -> Self {
        let mut t = Topics::default();
        for n in names {
            t.insert(n);
        }
        t
    }

    /// Adds a topic, deriving its keys (slow on purpose: tens of milliseconds).
    pub fn insert(&mut self, name: &str) -> bool {
        self.insert_keys(name, || TopicKeys::derive(name))
    }

    fn insert_keys(&mut self, name: &str, keys: impl FnOnce() -> TopicKeys) -> bool {
        if self.0.iter().any(|(n, _)| n == name) || self.0.len() >= MAX_TOPICS {
            return false;
        }
        self.0.push((name.to_owned(), keys()));
        true
    }

    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.0.len();
        self.0.retain(|(n, _)| n != name);
        self.0.len() != before
    }

    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Each topic's name and keys, in the order they were joined.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &TopicKeys)> {
        self.0.iter().map(|(n, k)| (n.as_str(), k))
    }
}

/// The registry of peers.
#[derive(Debug)]
pub struct Peers {
    me: PeerId,
    transport: Transport,
    /// Our topics. A watch channel holds only the latest value, so it is
    /// bounded by nature; discovery waits on it to re-announce.
    topics: watch::Sender<Topics>,
    conns: Mutex<HashMap<PeerId, PeerConn>>,
    /// Counts connections made; the download queue waits on it to start a
    /// returning peer's files at once. A watch holds only the latest value.
    connected_gen: watch::Sender<u64>,
    targets: Mutex<BTreeMap<SocketAddr, Arc<Target>>>,
    /// Bounds incoming handshakes in progress; see [`MAX_PENDING_HANDSHAKES`].
    handshakes: Arc<Semaphore>,
    limits: Limits,
    /// Everyone we completed a handshake with; who is blocked.
    friends: Arc<crate::friends::Friends>,
    /// Connection attempts per source address (see [`Limits::handshake_rate`]).
    attempts: Mutex<AttemptRates>,
    server: Arc<Server>,
    /// The NAT layer: names the path of incoming connections.
    net: Arc<Net>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Peers {
    // Each argument is one of the node's parts, built in node.rs.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        me: PeerId,
        transport: Transport,
        net: Arc<Net>,
        topics: Topics,
        server: Arc<Server>,
        limits: Limits,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Arc<Self> {
        Arc::new(Peers {
            me,
            transport,
            net,
            topics: watch::Sender::new(topics),
            conns: Mutex::new(HashMap::new()),
            connected_gen: watch::Sender::new(0),
            targets: Mutex::new(BTreeMap::new()),
            handshakes: Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES)),
            limits,
            friends: Arc::new(crate::friends::Friends::load(server.index().clone())),
            attempts: Mutex::new(AttemptRates::default()),
            server,
            shutdown,
            tasks,
        })
    }

    pub fn topic_names(&self) -> Vec<String> {
        self.topics.borrow().names()
    }

    /// Changes whenever a peer connects.
    /// Cancelled when the node shuts down.
    pub fn stopping(&self) -> &CancellationToken {
        &self.shutdown
    }

    pub fn connections(&self) -> watch::Receiver<u64> {
        self.connected_gen.subscribe()
    }

    /// Our topics now and whenever they change.
    pub fn topics(&self) -> watch::Receiver<Topics> {
        self.topics.subscribe()
    }

    /// Joins a topic: new connections may prove it. `false` if already a
    /// member (or at [`MAX_TOPICS`]).
    pub async fn join_topic(self: &Arc<Self>, name: &str) -> bool {
        if self.topic_names().iter().any(|t| t == name) {
            return false;
        }
        // The topic KDF is slow by design: not on an async thread, not under the lock.
        let owned = name.to_owned();
        let Ok(keys) = tokio::task::spawn_blocking(move || TopicKeys::derive(&owned)).await else { return false };
        if !self.topics.send_if_modified(|t| t.insert_keys(name, || keys)) {
            return false;
        }
        // Peers already connected that are on it too see it at once.
        for pc in self.connected() {
            let this = self.clone();
            self.tasks.spawn(async move { this.restate_topics(pc).await });
        }
        true
    }

    /// Restates our topics to `pc`'s peer (`Request::Prove`) after we joined
    /// or left one: it adds the topics it is on too and drops the ones we
    /// left, and proves its side back. A peer too old to know the request
    /// resets the stream; nothing changes then.
    async fn restate_topics(&self, pc: PeerConn) {
        let Some(hello) = pc.topics.restatement() else { return };
        let exchange = async {
            let (mut send, mut recv) = pc.conn.open_bi().await.map_err(|e| e.to_string())?;
            let request = hdp_proto::wire::Request::Prove(hello);
            write_frame(&mut send, &request, MAX_REQUEST_FRAME).await.map_err(|e| e.to_string())?;
            let _ = send.finish();
            read_frame::<Hello>(&mut recv, MAX_HELLO_FRAME).await.map_err(|e| e.to_string())
        };
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, exchange).await {
            Ok(Ok(reply)) => {
                let before = pc.topics.get();
                pc.topics.take_proofs(&reply);
                let now = pc.topics.get();
                if now != before {
                    info!(peer = %pc.id, topics = ?now, "topics with this peer, restated");
                    self.friends.seen(pc.id, &now, pc.conn.remote_address(), pc.path);
                    self.connected_gen.send_modify(|g| *g += 1);
                }
            }
            Ok(Err(e)) => debug!(peer = %pc.id, error = %e, "restating our topics failed"),
            Err(_) => debug!(peer = %pc.id, "restating our topics timed out"),
        }
    }

    /// Leaves a topic, and closes connections to peers that share no other
    /// topic with us. `false` if we were not a member.
    pub fn leave_topic(self: &Arc<Self>, name: &str) -> bool {
        if !self.topics.send_if_modified(|t| t.remove(name)) {
            return false;
        }
        let conns: Vec<PeerConn> = lock(&self.conns).values().cloned().collect();
        for c in conns {
            match c.topics.remove(name) {
                Left::NotProved => {}
                Left::Others => {
                    // The peer stops counting the topic for us too.
                    let this = self.clone();
                    self.tasks.spawn(async move { this.restate_topics(c).await });
                }
                Left::None => {
                    info!(peer = %c.id, topic = %name, "left the last topic we shared with this peer; disconnecting");
                    c.conn.close(VarInt::from_u32(CloseCode::NoSharedTopic as u32), b"no shared topic");
                }
            }
        }
        true
    }

    /// How many connected peers share each topic.
    pub fn peers_per_topic(&self, name: &str) -> usize {
        self.connected().iter().filter(|c| c.topics.get().iter().any(|t| t == name)).count()
    }

    fn topic_keys(&self) -> Topics {
        self.topics.borrow().clone()
    }

    /// Starts accepting connections.
    pub fn start(self: &Arc<Self>) {
        let this = self.clone();
        self.tasks.spawn(async move { this.accept_loop().await });
        // Friends are redialed at their last addresses, whatever discovery
        // finds (bounded: at most friends::REDIAL_FRIENDS tasks).
        for (id, addrs) in self.friends.redial_list() {
            let this = self.clone();
            self.tasks.spawn(async move { this.keep_friend(id, addrs).await });
        }
    }

    /// The friend list.
    pub fn friends(&self) -> &Arc<crate::friends::Friends> {
        &self.friends
    }

    /// Closes the live connection to a peer that was just blocked, with
    /// close code `Blocked`, and stops dialing its addresses.
    pub fn drop_blocked(&self, id: &PeerId) {
        self.close_peer(id, CloseCode::Blocked, b"blocked");
    }

    /// Keeps a friend connected: while it is not, dials its last addresses
    /// with backoff; stops when it is blocked or the node shuts down.
    async fn keep_friend(self: Arc<Self>, id: PeerId, addrs: Vec<SocketAddr>) {
        let mut delay = BACKOFF_START;
        loop {
            if self.friends.is_blocked(&id) {
                return;
            }
            if let Some(c) = self.connection(&id) {
                tokio::select! {
                    _ = c.conn.closed() => delay = BACKOFF_START,
                    _ = self.shutdown.cancelled() => return,
                }
            } else {
                match self.dial_any(&addrs, id).await {
                    Ok(_) => delay = BACKOFF_START,
                    Err(DialError::ShuttingDown) => return,
                    Err(e) => {
                        debug!(peer = %id, error = %e, "redialing a friend failed");
                        delay = (delay * 2).min(BACKOFF_MAX);
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(jitter(delay)) => {}
                _ = self.shutdown.cancelled() => return,
            }
        }
    }

    /// The live connection to `id`, if any.
    pub fn connection(&self, id: &PeerId) -> Option<PeerConn> {
        lock(&self.conns).get(id).filter(|c| c.conn.close_reason().is_none()).cloned()
    }

    /// Connected peers.
    pub fn connected(&self) -> Vec<PeerConn> {
        lock(&self.conns).values().filter(|c| c.conn.close_reason().is_none()).cloned().collect()
    }

    /// Finds a connected peer by friendly name or unambiguous id prefix.
    pub fn resolve(&self, name: &str) -> Result<PeerConn, ResolveError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(ResolveError::Unknown(name.into()));
        }
        let lower = name.to_ascii_lowercase();
        let matches: Vec<PeerConn> = self
            .connected()
            .into_iter()
            .filter(|c| c.id.friendly_name() == name || c.id.to_string().starts_with(&lower))
            .collect();
        match matches.len() {
            0 => Err(ResolveError::Unknown(name.into())),
            1 => matches.into_iter().next().ok_or_else(|| ResolveError::Unknown(name.into())),
            n => Err(ResolveError::Ambiguous(name.into(), n)),
        }
    }

    /// Everything we know about peers, for `/api/peers`.
    pub fn list(&self) -> Vec<PeerInfo> {
        let conns = self.connected();
        let targets: Vec<Arc<Target>> = lock(&self.targets).values().cloned().collect();
        let mut out = Vec::new();
        for t in &targets {
            let st = lock(&t.state);
            let live = st.peer.and_then(|p| conns.iter().find(|c| c.id == p));
            out.push(match live {
                Some(c) => info_of(c, "manual", Some(t.addr)),
                None => PeerInfo {
                    id: st.peer,
                    name: st.peer.map(|p| p.friendly_name()),
                    addr: Some(t.addr.to_string()),
                    connected: false,
                    direction: None,
                    since: None,
                    topics: Vec::new(),
                    rtt_ms: None,
                    path: None,
                    source: "manual".into(),
                    error: st.error.clone(),
                    rx_rate: 0,
                    tx_rate: 0,
                    rx_bytes: 0,
                    tx_bytes: 0,
                },
            });
        }
        for c in &conns {
            if !out.iter().any(|p| p.id == Some(c.id)) {
                out.push(info_of(c, "incoming", None));
            }
        }
        out
    }

    /// Dials `addr` now and keeps redialing it whenever it drops. Returns the
    /// result of the first attempt.
    pub async fn add_target(self: &Arc<Self>, addr: SocketAddr) -> Result<PeerConn, DialError> {
        let existing = lock(&self.targets).get(&addr).cloned();
        if let Some(t) = existing {
            let peer = lock(&t.state).peer;
            if let Some(c) = peer.and_then(|p| self.connection(&p)) {
                return Ok(c);
            }
            return self.dial(addr).await.inspect(|c| lock(&t.state).peer = Some(c.id));
        }
        let target = Arc::new(Target { addr, cancel: self.shutdown.child_token(), state: Mutex::default() });
        let inserted = {
            let mut targets = lock(&self.targets);
            let fresh = !targets.contains_key(&addr);
            if fresh {
                targets.insert(addr, target.clone());
            }
            fresh
        };
        if !inserted {
            return self.dial(addr).await;
        }
        let first = self.dial(addr).await;
        {
            let mut st = lock(&target.state);
            match &first {
                Ok(c) => {
                    st.peer = Some(c.id);
                    st.error = None;
                }
                Err(e) => st.error = Some(e.to_string()),
            }
        }
        let this = self.clone();
        self.tasks.spawn(async move { this.keep_dialing(target).await });
        first
    }

    /// Keeps redialing `addr`, where `pc` (a live connection) was reached,
    /// as [`Peers::add_target`] does, without dialing it again now. Nothing
    /// changes if `addr` is already a target.
    pub fn keep_target(self: &Arc<Self>, addr: SocketAddr, pc: &PeerConn) {
        let target = Arc::new(Target {
            addr,
            cancel: self.shutdown.child_token(),
            state: Mutex::new(TargetState { peer: Some(pc.id), error: None }),
        });
        {
            let mut targets = lock(&self.targets);
            if targets.contains_key(&addr) {
                return;
            }
            targets.insert(addr, target.clone());
        }
        let this = self.clone();
        self.tasks.spawn(async move { this.keep_dialing(target).await });
    }

    /// Stops dialing `addr` and closes the connection to its peer.
    pub fn remove_target(&self, addr: &SocketAddr) -> bool {
        let Some(t) = lock(&self.targets).remove(addr) else {
            return false;
        };
        t.cancel.cancel();
        if let Some(c) = lock(&t.state).peer.and_then(|p| self.connection(&p)) {
            c.conn.close(VarInt::from_u32(CloseCode::Normal as u32), b"removed");
        }
        true
    }

    /// Closes the connection to a peer and stops dialing it.
    pub fn disconnect(&self, id: &PeerId) {
        self.close_peer(id, CloseCode::Normal, b"removed");
    }

    /// Closes the connection to `id` with `code` and stops dialing its
    /// addresses (the close `remove_target` sends after ours changes nothing).
    fn close_peer(&self, id: &PeerId, code: CloseCode, reason: &'static [u8]) {
        if let Some(c) = self.connection(id) {
            c.conn.close(VarInt::from_u32(code as u32), reason);
        }
        let addrs: Vec<SocketAddr> =
            lock(&self.targets).values().filter(|t| lock(&t.state).peer == Some(*id)).map(|t| t.addr).collect();
        for a in addrs {
            self.remove_target(&a);
        }
    }

    async fn keep_dialing(self: Arc<Self>, t: Arc<Target>) {
        let mut delay = BACKOFF_START;
        loop {
            // While its peer is connected (either direction), wait for that to end.
            let peer = lock(&t.state).peer;
            if let Some(c) = peer.and_then(|p| self.connection(&p)) {
                tokio::select! {
                    reason = c.conn.closed() => {
                        debug!(peer = %c.id, %reason, "connection ended; will redial");
                        lock(&t.state).error = Some(DialError::from(reason).to_string());
                        delay = BACKOFF_START;
                    }
                    _ = t.cancel.cancelled() => return,
                }
            }
            let wait = jitter(delay);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = t.cancel.cancelled() => return,
            }
            // It may have come back on its own (it dialed us) while we waited.
            if peer.and_then(|p| self.connection(&p)).is_some() {
                continue;
            }
            match self.dial(t.addr).await {
                Ok(c) => {
                    let mut st = lock(&t.state);
                    st.peer = Some(c.id);
                    st.error = None;
                    delay = BACKOFF_START;
                }
                Err(DialError::ShuttingDown) => return,
                Err(e) => {
                    debug!(addr = %t.addr, error = %e, "redial failed");
                    lock(&t.state).error = Some(e.to_string());
                    delay = (delay * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// Dials a peer known by id at any of `addrs`: the attempts start
    /// [`DIAL_STAGGER`] apart and the first to finish the handshake wins; the
    /// rest are dropped (which closes them).
    pub async fn dial_any(self: &Arc<Self>, addrs: &[SocketAddr], peer: PeerId) -> Result<PeerConn, DialError> {
        let paths: Vec<(SocketAddr, PathKind)> = addrs.iter().map(|a| (*a, self.path_to(a))).collect();
        self.dial_paths(&paths, peer).await
    }

    /// [`Peers::dial_any`] with each address's path named by the caller.
    pub async fn dial_paths(
        self: &Arc<Self>,
        addrs: &[(SocketAddr, PathKind)],
        peer: PeerId,
    ) -> Result<PeerConn, DialError> {
        if let Some(c) = self.connection(&peer) {
            return Ok(c);
        }
        if self.friends.is_blocked(&peer) {
            return Err(DialError::Blocked(peer));
        }
        let mut attempts = tokio::task::JoinSet::new();
        for (i, (addr, path)) in addrs.iter().copied().take(MAX_DIAL_ADDRS).enumerate() {
            let this = self.clone();
            attempts.spawn(async move {
                tokio::time::sleep(DIAL_STAGGER * i as u32).await;
                this.dial_via(None, addr, Some(peer), path).await
            });
        }
        let mut last = DialError::NoAddress;
        while let Some(done) = attempts.join_next().await {
            match done {
                Ok(Ok(c)) => return Ok(self.connection(&peer).unwrap_or(c)),
                Ok(Err(e)) => last = e,
                Err(_) => {}
            }
        }
        Err(last)
    }

    /// Dials `addr` and runs both handshakes.
    pub async fn dial(self: &Arc<Self>, addr: SocketAddr) -> Result<PeerConn, DialError> {
        self.dial_via(None, addr, None, self.path_to(&addr)).await
    }

    /// Dials `peer` at `addr`, naming the connection's path.
    pub async fn dial_path(
        self: &Arc<Self>,
        addr: SocketAddr,
        peer: PeerId,
        path: PathKind,
    ) -> Result<PeerConn, DialError> {
        self.dial_via(None, addr, Some(peer), path).await
    }

    /// Dials `peer` at `addr` from `socket` (a birthday punch's winner),
    /// through a client-only endpoint that lives as long as the connection.
    pub async fn dial_from(
        self: &Arc<Self>,
        socket: std::net::UdpSocket,
        addr: SocketAddr,
        peer: PeerId,
        path: PathKind,
    ) -> Result<PeerConn, DialError> {
        let endpoint = self.transport.client_on(socket).map_err(|e| DialError::Connect(e.to_string()))?;
        self.dial_via(Some(endpoint), addr, Some(peer), path).await
    }

    /// What a direct dial to `addr` is: `lan` for an address on one of our
    /// own networks or a private one, `direct` otherwise.
    pub fn path_to(&self, addr: &SocketAddr) -> PathKind {
        if crate::net::is_lan(addr) { PathKind::Lan } else { PathKind::Direct }
    }

    async fn dial_via(
        self: &Arc<Self>,
        endpoint: Option<quinn::Endpoint>,
        addr: SocketAddr,
        expect: Option<PeerId>,
        path: PathKind,
    ) -> Result<PeerConn, DialError> {
        if self.shutdown.is_cancelled() {
            return Err(DialError::ShuttingDown);
        }
        let topics = self.topic_keys();
        if topics.0.is_empty() {
            return Err(DialError::NoTopics);
        }
        let connecting = match &endpoint {
            Some(e) => self.transport.connect_from(e, addr),
            None => self.transport.connect(addr),
        }
        .map_err(|e| DialError::Connect(e.to_string()))?;
        let conn = tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await.map_err(|_| DialError::Timeout)??;
        if let Some(id) = remote_peer_id(&conn).filter(|id| self.friends.is_blocked(id)) {
            conn.close(VarInt::from_u32(CloseCode::Blocked as u32), b"blocked");
            return Err(DialError::Blocked(id));
        }
        if let Some(want) = expect {
            match remote_peer_id(&conn) {
                Some(got) if got != want => {
                    conn.close(VarInt::from_u32(CloseCode::WrongPeer as u32), b"not the peer we dialed");
                    return Err(DialError::WrongPeer(got));
                }
                _ => {}
            }
        }
        // Already connected to this peer (perhaps it dialed us, or through
        // another of its addresses): keep that connection, drop this one.
        if let Some(existing) = remote_peer_id(&conn).and_then(|p| self.connection(&p)) {
            conn.close(VarInt::from_u32(CloseCode::Duplicate as u32), b"already connected");
            return Ok(existing);
        }
        let outcome = tokio::time::timeout(HANDSHAKE_TIMEOUT, dialer_handshake(&conn, self.me, &topics)).await;
        let (peer, shared) = match outcome {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                if !matches!(e, DialError::Closed(_)) {
                    conn.close(VarInt::from_u32(CloseCode::HandshakeFailed as u32), b"handshake failed");
                }
                return Err(e);
            }
            Err(_) => {
                conn.close(VarInt::from_u32(CloseCode::HandshakeFailed as u32), b"handshake timeout");
                return Err(DialError::Timeout);
            }
        };
        // A plain dial that a punch session's probes came from went through
        // the hole the punch opened.
        let path = match path {
            PathKind::Direct => self.net.punches.path_for(&peer, &addr).unwrap_or(path),
            p => p,
        };
        let topics = ProvenTopics::bound(shared, &conn, Role::Dialer, self.me, peer, self.topics.subscribe())?;
        let pc = PeerConn {
            id: peer,
            conn,
            direction: Direction::Out,
            since: unix_now(),
            topics,
            rates: Arc::default(),
            path,
            endpoint,
        };
        Ok(self.register(pc))
    }

    async fn accept_loop(self: Arc<Self>) {
        loop {
            let incoming = tokio::select! {
                i = self.transport.endpoint.accept() => i,
                _ = self.shutdown.cancelled() => break,
            };
            let Some(incoming) = incoming else { break };
            // Make the dialer prove it receives at its address (one round trip)
            // before it may hold a handshake slot: spoofed packets cannot.
            if !incoming.remote_address_validated() {
                let _ = incoming.retry();
                continue;
            }
            // Validated, so the address is the sender's: its budget.
            let ip = incoming.remote_address().ip();
            if !lock(&self.attempts).allow(ip, self.limits.handshake_rate, std::time::Instant::now()) {
                debug!(%ip, "too many connection attempts from one address; refusing one");
                incoming.refuse();
                continue;
            }
            let Ok(permit) = self.handshakes.clone().try_acquire_owned() else {
                debug!("too many handshakes in progress; refusing a connection");
                incoming.refuse();
                continue;
            };
            let this = self.clone();
            self.tasks.spawn(async move {
                let remote = incoming.remote_address();
                match this.accept_one(incoming).await {
                    Ok(pc) => debug!(peer = %pc.id, %remote, "accepted"),
                    Err(e) => debug!(%remote, error = %e, "incoming connection failed"),
                }
                drop(permit);
            });
        }
    }

    /// Accepts one connection: TLS, then the topic handshake, both within
    /// [`HANDSHAKE_TIMEOUT`] of its first packet. A peer too slow for that is
    /// closed with `HandshakeFailed` (docs/PROTOCOL.md §4).
    async fn accept_one(self: &Arc<Self>, incoming: quinn::Incoming) -> Result<PeerConn, DialError> {
        let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
        // Before TLS completes there is no connection to send a code on:
        // dropping the attempt makes quinn refuse it.
        let conn = tokio::time::timeout_at(deadline, incoming).await.map_err(|_| DialError::Timeout)??;
        let fail = |code: CloseCode, why: &'static [u8]| conn.close(VarInt::from_u32(code as u32), why);
        let Some(peer) = remote_peer_id(&conn) else {
            fail(CloseCode::HandshakeFailed, b"no ed25519 certificate");
            return Err(DialError::Protocol("no ed25519 certificate".into()));
        };
        if self.friends.is_blocked(&peer) {
            fail(CloseCode::Blocked, b"blocked");
            return Err(DialError::Blocked(peer));
        }
        if lock(&self.conns).len() >= self.limits.max_peers && self.connection(&peer).is_none() {
            fail(CloseCode::TooManyPeers, b"too many peers");
            return Err(DialError::TooManyPeers);
        }
        let shared =
            match tokio::time::timeout_at(deadline, listener_handshake(&conn, self.me, peer, &self.topic_keys())).await
            {
                Ok(shared) => shared?,
                Err(_) => {
                    fail(CloseCode::HandshakeFailed, b"handshake timeout");
                    return Err(DialError::Timeout);
                }
            };
        let remote = conn.remote_address();
        // A punch session that saw a probe from this address names its
        // path; else the address tells LAN from internet, and from the
        // internet, past a router that mapped our port, the mapping is what
        // let the peer in.
        let path = self.net.punches.path_for(&peer, &remote).unwrap_or_else(|| match self.path_to(&remote) {
            PathKind::Direct if self.net.has_mapping() => PathKind::Mapped,
            p => p,
        });
        let topics = ProvenTopics::bound(shared, &conn, Role::Listener, self.me, peer, self.topics.subscribe())?;
        let pc = PeerConn {
            id: peer,
            conn,
            direction: Direction::In,
            since: unix_now(),
            topics,
            rates: Arc::default(),
            path,
            endpoint: None,
        };
        Ok(self.register(pc))
    }

    /// Adds a handshaken connection, resolving duplicates; returns the one kept.
    fn register(self: &Arc<Self>, pc: PeerConn) -> PeerConn {
        pc.topics.keep_ours(&self.topic_names());
        if pc.topics.get().is_empty() {
            pc.conn.close(VarInt::from_u32(CloseCode::NoSharedTopic as u32), b"no shared topic");
            return pc;
        }
        let mut conns = lock(&self.conns);
        if let Some(old) = conns.get(&pc.id).filter(|c| c.conn.close_reason().is_none()) {
            if !self.prefer_new(&pc, old) {
                pc.conn.close(VarInt::from_u32(CloseCode::Duplicate as u32), b"duplicate");
                return old.clone();
            }
            old.conn.close(VarInt::from_u32(CloseCode::Duplicate as u32), b"duplicate");
        }
        conns.insert(pc.id, pc.clone());
        share_stream_budget(&conns, self.limits.stream_budget);
        drop(conns);
        self.friends.seen(pc.id, &pc.topics.get(), pc.conn.remote_address(), pc.path);
        self.connected_gen.send_modify(|g| *g += 1);
        info!(peer = %pc.id, name = %pc.id.friendly_name(), remote = %pc.conn.remote_address(),
              direction = ?pc.direction, path = ?pc.path, topics = ?pc.topics.get(), "peer connected");
        let this = self.clone();
        let run = pc.clone();
        self.tasks.spawn(async move { this.run_connection(run).await });
        pc
    }

    /// Both ends pick the same survivor: the connection dialed by the smaller
    /// peer id; if both were dialed by the same side, the newer one.
    fn prefer_new(&self, new: &PeerConn, old: &PeerConn) -> bool {
        let dialer = |c: &PeerConn| {
            if c.direction == Direction::Out { self.me } else { c.id }
        };
        let (dn, d_old) = (dialer(new), dialer(old));
        dn <= d_old
    }

    /// Serves the peer's requests until the connection ends, and samples
    /// its transfer rates every [`RATE_SAMPLE`].
    async fn run_connection(self: Arc<Self>, pc: PeerConn) {
        let mut sample = tokio::time::interval_at(tokio::time::Instant::now() + RATE_SAMPLE, RATE_SAMPLE);
        sample.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = (std::time::Instant::now(), byte_totals(&pc.conn));
        loop {
            let stream = tokio::select! {
                s = pc.conn.accept_bi() => s,
                _ = sample.tick() => {
                    let now = (std::time::Instant::now(), byte_totals(&pc.conn));
                    pc.rates.update(last.1, now.1, now.0.duration_since(last.0));
                    last = now;
                    continue;
                }
                _ = self.shutdown.cancelled() => {
                    pc.conn.close(VarInt::from_u32(CloseCode::Normal as u32), b"shutting down");
                    break;
                }
            };
            match stream {
                Ok((send, recv)) => {
                    let server = self.server.clone();
                    let (peer, topics) = (pc.id, pc.topics.clone());
                    // Bounded: quinn lets a peer open at most MAX_STREAMS at once.
                    self.tasks.spawn(async move { server.handle(peer, &topics, send, recv).await });
                }
                Err(e) => {
                    debug!(peer = %pc.id, error = %e, "connection closed");
                    break;
                }
            }
        }
        let mut conns = lock(&self.conns);
        if conns.get(&pc.id).is_some_and(|c| c.conn.stable_id() == pc.conn.stable_id()) {
            conns.remove(&pc.id);
            share_stream_budget(&conns, self.limits.stream_budget);
            info!(peer = %pc.id, "peer disconnected");
            // A path that died may mean our router changed our public port.
            if !self.shutdown.is_cancelled() && pc.path != PathKind::Lan {
                self.net.recheck();
            }
        }
    }

    /// Closes every connection and waits (briefly) for the close to be sent.
    pub async fn close(&self) {
        self.transport.endpoint.close(VarInt::from_u32(CloseCode::Normal as u32), b"shutting down");
        let _ = tokio::time::timeout(Duration::from_secs(2), self.transport.endpoint.wait_idle()).await;
    }
}

/// The dialer's side of the topic handshake: prove every topic we are on,
/// check the listener's proofs. Returns the peer and the topics we share.
pub async fn dialer_handshake(
    conn: &quinn::Connection,
    me: PeerId,
    topics: &Topics,
) -> Result<(PeerId, Vec<String>), DialError> {
    let peer = remote_peer_id(conn).ok_or_else(|| DialError::Protocol("no ed25519 certificate".into()))?;
    if peer == me {
        conn.close(VarInt::from_u32(CloseCode::SelfConnection as u32), b"self");
        return Err(DialError::SelfConnection);
    }
    let exporter = exporter(conn)?;
    let (me, them) = (me.0, peer.0);
    let proofs: Vec<[u8; 32]> =
        topics.0.iter().map(|(_, k)| topic_proof(&k.handshake, Role::Dialer, &exporter, &me, &them)).collect();
    let (mut send, mut recv) = conn.open_bi().await?;
    write_frame(&mut send, &Hello { proofs }, MAX_HELLO_FRAME).await?;
    let _ = send.finish();
    let reply: Hello = read_frame(&mut recv, MAX_HELLO_FRAME).await?;
    let shared: Vec<String> = topics
        .0
        .iter()
        .filter(|(_, k)| {
            let want = topic_proof(&k.handshake, Role::Listener, &exporter, &me, &them);
            reply.proofs.iter().any(|p| proofs_equal(p, &want))
        })
        .map(|(n, _)| n.clone())
        .collect();
    if shared.is_empty() {
        return Err(DialError::Protocol("the listener proved no topic".into()));
    }
    Ok((peer, shared))
}

/// The listener's side of the topic handshake: check the dialer's proofs,
/// close with [`CloseCode::NoSharedTopic`] if none is for a topic of ours,
/// else prove the shared topics back. Returns the shared topics.
pub async fn listener_handshake(
    conn: &quinn::Connection,
    me: PeerId,
    peer: PeerId,
    topics: &Topics,
) -> Result<Vec<String>, DialError> {
    let fail = |code: CloseCode, why: &'static [u8]| conn.close(VarInt::from_u32(code as u32), why);
    let (mut send, mut recv) = conn.accept_bi().await?;
    let hello: Hello = match read_frame(&mut recv, MAX_HELLO_FRAME).await {
        Ok(h) => h,
        Err(e) => {
            fail(CloseCode::ProtocolError, b"bad hello");
            return Err(e.into());
        }
    };
    let exporter = exporter(conn)?;
    let (them, me) = (peer.0, me.0);
    let shared: Vec<&(String, TopicKeys)> = topics
        .0
        .iter()
        .filter(|(_, k)| {
            let want = topic_proof(&k.handshake, Role::Dialer, &exporter, &them, &me);
            hello.proofs.iter().take(MAX_TOPICS).any(|p| proofs_equal(p, &want))
        })
        .collect();
    if shared.is_empty() {
        info!(peer = %peer, "refused a peer that shares no topic with us");
        fail(CloseCode::NoSharedTopic, b"no shared topic");
        return Err(DialError::Closed(CloseCode::NoSharedTopic));
    }
    let proofs = shared.iter().map(|(_, k)| topic_proof(&k.handshake, Role::Listener, &exporter, &them, &me)).collect();
    write_frame(&mut send, &Hello { proofs }, MAX_HELLO_FRAME).await?;
    let _ = send.finish();
    Ok(shared.iter().map(|(n, _)| n.clone()).collect())
}

/// Looking a peer up by name failed.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("no connected peer is called {0:?}; `hdp peers` lists them")]
    Unknown(String),
    #[error("{0:?} matches {1} peers; give more of the id")]
    Ambiguous(String, usize),
}

fn info_of(c: &PeerConn, source: &str, addr: Option<SocketAddr>) -> PeerInfo {
    let (rx_rate, tx_rate) = c.rates.get();
    let (rx_bytes, tx_bytes) = byte_totals(&c.conn);
    PeerInfo {
        id: Some(c.id),
        name: Some(c.id.friendly_name()),
        addr: Some(addr.unwrap_or_else(|| c.conn.remote_address()).to_string()),
        connected: true,
        direction: Some(c.direction),
        since: Some(c.since),
        topics: c.topics.get(),
        rtt_ms: Some(c.conn.rtt().as_millis() as u64),
        path: Some(c.path),
        source: source.into(),
        error: None,
        rx_rate,
        tx_rate,
        rx_bytes,
        tx_bytes,
    }
}

fn exporter(conn: &quinn::Connection) -> Result<[u8; 32], DialError> {
    let mut out = [0u8; 32];
    conn.export_keying_material(&mut out, EXPORTER_LABEL, b"")
        .map_err(|_| DialError::Protocol("TLS exporter unavailable".into()))?;
    Ok(out)
}

/// `d` scaled by a random factor in [0.5, 1.0), so peers that dropped together
/// do not all redial in the same instant.
pub(crate) fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    let r = if getrandom::fill(&mut b).is_ok() { u16::from_le_bytes(b) } else { 0 };
    d.mul_f64(0.5 + f64::from(r) / f64::from(u16::MAX) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both ends of one connection, without the connection: the same
    /// exporter and ids, each end with its own topics.
    fn ends(
        a: &[&str],
        b: &[&str],
    ) -> (Arc<ProvenTopics>, watch::Sender<Topics>, Arc<ProvenTopics>, watch::Sender<Topics>) {
        let end = |role, topics: &[&str]| {
            let names: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
            let ours = watch::Sender::new(Topics::new(&names));
            let binding = Binding {
                exporter: [1; 32],
                dialer: [2; 32],
                listener: [3; 32],
                role,
                ours: ours.subscribe(),
                conn: None,
            };
            (
                Arc::new(ProvenTopics {
                    list: Mutex::new(vec!["t".into()]),
                    changes: AtomicU64::new(0),
                    binding: Some(binding),
                }),
                ours,
            )
        };
        let (pa, ta) = end(Role::Dialer, a);
        let (pb, tb) = end(Role::Listener, b);
        (pa, ta, pb, tb)
    }

    #[test]
    fn a_restatement_adds_joined_topics_and_drops_left_ones_on_both_ends() {
        let (a, a_topics, b, _b_topics) = ends(&["t"], &["t", "music"]);
        // a joins music and restates: both ends count it.
        a_topics.send_modify(|t| {
            t.insert("music");
        });
        let reply = b.answer(&a.restatement().unwrap());
        a.take_proofs(&reply);
        assert_eq!((a.get(), b.get()), (vec!["t".to_owned(), "music".into()], vec!["t".to_owned(), "music".into()]));
        // a leaves music: it drops it at once, and b when a restates.
        let before = b.changes();
        a_topics.send_modify(|t| {
            t.remove("music");
        });
        assert!(matches!(a.remove("music"), Left::Others));
        let reply = b.answer(&a.restatement().unwrap());
        a.take_proofs(&reply);
        assert_eq!((a.get(), b.get()), (vec!["t".to_owned()], vec!["t".to_owned()]));
        assert!(b.changes() > before, "running uploads on b look again");
        // Proofs made with the wrong role, or for another connection (another
        // exporter, or other ids), prove nothing.
        let key = TopicKeys::derive("t").handshake;
        for forged in [
            topic_proof(&key, Role::Listener, &[1; 32], &[2; 32], &[3; 32]),
            topic_proof(&key, Role::Dialer, &[9; 32], &[2; 32], &[3; 32]),
            topic_proof(&key, Role::Dialer, &[1; 32], &[2; 32], &[4; 32]),
        ] {
            let (_, _, b, _) = ends(&["t"], &["t"]);
            assert!(b.answer(&Hello { proofs: vec![forged] }).proofs.is_empty());
            assert!(b.get().is_empty(), "the connection (closed in real life) counts no topic");
        }
        // The genuine proof does.
        let (a, _, b, _) = ends(&["t"], &["t"]);
        assert_eq!(b.answer(&a.restatement().unwrap()).proofs.len(), 1);
        assert_eq!(b.get(), vec!["t".to_owned()]);
    }

    #[test]
    fn attempts_per_address_are_a_token_bucket_with_bounded_memory() {
        let mut r = AttemptRates::default();
        let t = std::time::Instant::now();
        let a: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let b: std::net::IpAddr = "10.0.0.2".parse().unwrap();
        // A burst of twice the rate, then nothing until tokens come back.
        assert_eq!((0..100).filter(|_| r.allow(a, 10, t)).count(), 20);
        assert!(r.allow(b, 10, t), "another address has its own budget");
        assert!(!r.allow(a, 10, t + Duration::from_millis(50)));
        assert!(r.allow(a, 10, t + Duration::from_millis(150)));
        // Many addresses: memory stays bounded.
        for i in 0..3 * TRACKED_ADDRESSES as u32 {
            r.allow(std::net::IpAddr::from(i.to_be_bytes()), 10, t);
            assert!(r.buckets.len() <= TRACKED_ADDRESSES);
        }
    }

    #[test]
    fn rates_from_samples() {
        let r = ConnRates::default();
        r.update((1_000, 500), (3_000, 500), Duration::from_millis(500));
        assert_eq!(r.get(), (4_000, 0));
        // Counters never go back; if they seem to, the rate is 0, not huge.
        r.update((3_000, 500), (2_000, 600), Duration::from_secs(1));
        assert_eq!(r.get(), (0, 100));
    }

    #[test]
    fn jitter_stays_in_range() {
        for _ in 0..100 {
            let j = jitter(Duration::from_secs(10));
            assert!(j >= Duration::from_secs(5) && j <= Duration::from_secs(10));
        }
    }
}
