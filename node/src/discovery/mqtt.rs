//! Meeting peers through an MQTT broker (rumqttc).
//!
//! Goals:
//! - Friends on different networks meet with no setup: every node subscribes
//!   to `hdp/1/<hex(mqtt path)>` for each of its topics and publishes
//!   announcements there (`hdp_proto::discovery`): encrypted, signed, dated.
//!   The broker sees a hash per topic, random client ids and ciphertext.
//! - An unreachable or restarting broker is never fatal: the event loop
//!   retries with capped, jittered backoff, and on every (re)connection the
//!   node subscribes again and announces at once. The state is reported in
//!   `GET /api/info`.
//! - Hostile input is bounded: packets over [`MAX_PACKET_IN`] are refused by
//!   the client, announcements are rate-limited ([`ACCEPT_BURST`],
//!   [`ACCEPT_PER_SEC`]) before any crypto, stale and replayed ones are
//!   dropped, and the replay memory is capped ([`MAX_REPLAY_ENTRIES`]).
//!
//! Non-goals: retained messages (a stale retained address is worse than a
//! late one: nodes answer newcomers instead), authenticating to the broker.
//!
//! # Tasks and channels
//! Two tasks: the event loop (reads the broker, reports peers) and the
//! announcer (timers, topic and address changes). They share rumqttc's
//! request channel, bounded at [`REQUEST_CAPACITY`]: the announcer only
//! `try_publish`es, so a stalled broker drops announcements (which repeat)
//! instead of blocking anything.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use hdp_proto::api::{MqttState, MqttStatus};
use hdp_proto::discovery::{
    ANNOUNCE_VERSION, AddrKind, MAX_ANNOUNCE_AGE_MS, SIGNAL_VERSION, check_fresh, open_announcement, open_signal,
    seal_announcement,
};
use hdp_proto::id::PeerId;
use hdp_proto::topic::{TopicKeys, hex};

use crate::unix_ms;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use rumqttc::{TlsConfiguration, Transport};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::{Discovery, Report, Source, dialable};
use crate::net::Candidate;
use crate::peers::{Topics, jitter};

/// The broker used unless `--mqtt` says otherwise: public, TLS, no account.
pub const DEFAULT_BROKER: &str = "mqtts://broker.hivemq.com:8883";
/// Largest MQTT packet we accept. We speak MQTT 5 and declare this in
/// CONNECT, so the broker discards bigger messages instead of sending them:
/// a stranger who publishes junk on our topic cannot knock us off the broker.
pub const MAX_PACKET_IN: u32 = 4096;
/// rumqttc's request channel (publish/subscribe requests waiting for the
/// event loop); a few topics' worth, see the module docs.
pub const REQUEST_CAPACITY: usize = 32;
/// Acknowledged publishes in flight, at most. We publish at QoS 0, so none
/// ever are; but rumqttc sizes a table of pending publishes by this limit
/// (else by the broker's receive maximum, 65,535 for mosquitto) and fills
/// it up front: unset, that table alone took 14 MiB of a 26 MiB idle node.
pub const OUTGOING_INFLIGHT: u16 = 8;
/// Announcements are repeated every period, scaled by a random factor in
/// [0.5, 1) so nodes do not publish in lockstep.
pub const ANNOUNCE_PERIOD: Duration = Duration::from_secs(40);
/// Least time between two announcements on average (answers to newcomers
/// included); [`ANNOUNCE_BURST`] may go back to back, so the answer to a
/// newcomer right after our own start-up announcement is not held back.
pub const MIN_ANNOUNCE_GAP: Duration = Duration::from_secs(2);
/// Longest the first announcement waits for the first STUN round.
pub const FIRST_STUN_WAIT: Duration = Duration::from_secs(1);
/// Announcements that may go without waiting for [`MIN_ANNOUNCE_GAP`].
pub const ANNOUNCE_BURST: f64 = 2.0;
/// A peer not heard from for this long is forgotten (three missed periods).
pub const ANNOUNCE_TTL: Duration = Duration::from_secs(3 * ANNOUNCE_PERIOD.as_secs() + 10);
/// How often our own addresses are checked for changes.
const ADDR_CHECK: Duration = Duration::from_secs(10);
/// Incoming announcements accepted in a burst, and per second after it.
pub const ACCEPT_BURST: f64 = 50.0;
pub const ACCEPT_PER_SEC: f64 = 10.0;
/// Peers (per topic) whose last timestamp we remember against replays.
pub const MAX_REPLAY_ENTRIES: usize = 4096;
/// Broker reconnection backoff.
const RETRY_START: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// A broker address from `--mqtt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// `--mqtt` could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MQTT broker {0:?}: give mqtt://HOST[:PORT], mqtts://HOST[:PORT] or off")]
pub struct BrokerUrlError(pub String);

/// Parses `mqtt://host[:port]`, `mqtts://host[:port]` or `off` (`None`).
pub fn parse_broker(url: &str) -> Result<Option<Broker>, BrokerUrlError> {
    let bad = || BrokerUrlError(url.to_owned());
    let url = url.trim();
    if url.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else {
        return Err(bad());
    };
    let rest = rest.trim_end_matches('/');
    let default_port = if tls { 8883 } else { 1883 };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if after.is_empty() => default_port,
            None => return Err(bad()),
        };
        (h.to_owned(), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| bad())?),
            None => (rest.to_owned(), default_port),
        }
    };
    if host.is_empty() || port == 0 || host.contains(['/', '@', '?', '#', ' ']) {
        return Err(bad());
    }
    Ok(Some(Broker { tls, host, port }))
}

/// The MQTT topic of a topic's announcements.
pub fn topic_path(keys: &TopicKeys) -> String {
    format!("hdp/1/{}", hex(&keys.mqtt_path))
}

/// Our subscription to a topic: at most once (announcements repeat), and
/// without our own messages echoed back (MQTT 5 "no local").
fn filter(keys: &TopicKeys) -> Filter {
    let mut f = Filter::new(topic_path(keys), QoS::AtMostOnce);
    f.nolocal = true;
    f
}

/// What the MQTT tasks need from the node.
#[derive(Clone)]
pub struct MqttContext {
    pub discovery: Arc<Discovery>,
    pub identity: SigningKey,
    pub topics: watch::Receiver<Topics>,
    /// Our typed addresses now (they change when interfaces do, and when
    /// STUN or the router tell us a public one).
    pub addrs: Arc<dyn Fn() -> Vec<Candidate> + Send + Sync>,
    /// Bumped when our public addresses change: announce at once.
    pub addrs_changed: watch::Receiver<u64>,
    /// Whether loopback addresses are dialable (we listen on loopback).
    pub allow_loopback: bool,
    pub shutdown: CancellationToken,
}

impl std::fmt::Debug for MqttContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MqttContext")
    }
}

/// The node's MQTT client, which can be switched to another broker (or off)
/// while the node runs: each client runs under its own child of the node's
/// shutdown token, cancelled when the broker changes.
#[derive(Debug)]
pub struct MqttHandle {
    /// The context for new clients; its `shutdown` is the node's token.
    cx: MqttContext,
    tasks: TaskTracker,
    /// The broker in use and the token its client runs under.
    current: std::sync::Mutex<Option<(Broker, CancellationToken)>>,
}

impl MqttHandle {
    /// A handle with no client running; [`MqttHandle::set`] starts one.
    pub fn new(cx: MqttContext, tasks: TaskTracker) -> Self {
        MqttHandle { cx, tasks, current: std::sync::Mutex::new(None) }
    }

    /// The broker in use, `None` when MQTT is off.
    pub fn broker(&self) -> Option<Broker> {
        crate::lock(&self.current).as_ref().map(|(b, _)| b.clone())
    }

    /// Stops the running client, if any, and starts one for `broker`
    /// (`None`: MQTT off). The same broker again changes nothing.
    pub fn set(&self, broker: Option<Broker>) -> Result<(), MqttStartError> {
        let mut current = crate::lock(&self.current);
        if current.as_ref().map(|(b, _)| b) == broker.as_ref() {
            return Ok(());
        }
        if let Some((old, run)) = current.take() {
            run.cancel();
            info!(broker = %old, "stopped meeting peers through MQTT");
        }
        let Some(broker) = broker else {
            self.cx.discovery.set_mqtt(MqttStatus::default());
            return Ok(());
        };
        let run = self.cx.shutdown.child_token();
        if let Err(e) = start(MqttContext { shutdown: run.clone(), ..self.cx.clone() }, broker.clone(), &self.tasks) {
            self.cx.discovery.set_mqtt(MqttStatus::default());
            return Err(e);
        }
        *current = Some((broker, run));
        Ok(())
    }
}

/// Starts the MQTT client's two tasks.
pub fn start(cx: MqttContext, broker: Broker, tasks: &TaskTracker) -> Result<(), MqttStartError> {
    let mut id = [0u8; 8];
    getrandom::fill(&mut id).map_err(|_| MqttStartError::Random)?;
    // A random client id: the broker must not be able to tell a node's
    // sessions apart by it, let alone learn its peer id.
    let mut opts = MqttOptions::new(format!("hdp-{}", hex(&id)), broker.host.clone(), broker.port);
    opts.set_keep_alive(Duration::from_secs(30))
        .set_clean_start(true)
        .set_max_packet_size(Some(MAX_PACKET_IN))
        .set_connection_timeout(10)
        .set_request_channel_capacity(REQUEST_CAPACITY)
        .set_outgoing_inflight_upper_limit(OUTGOING_INFLIGHT);
    opts.set_transport(if broker.tls { Transport::tls_with_config(tls_config()?) } else { Transport::tcp() });
    let (client, eventloop) = AsyncClient::new(opts, REQUEST_CAPACITY);
    cx.discovery.set_mqtt_client(cx.shutdown.clone(), client.clone());
    cx.discovery.set_mqtt(MqttStatus { broker: Some(broker.to_string()), state: MqttState::Connecting, error: None });
    info!(broker = %broker, "meeting peers through MQTT");
    // Signals the announcer that a (re)connection needs an announcement.
    let connected = Arc::new(Notify::new());
    let (c1, c2) = (cx.clone(), cx);
    let (client1, connected1) = (client.clone(), connected.clone());
    tasks.spawn(async move { event_loop(c1, eventloop, client1, connected1).await });
    tasks.spawn(async move { announcer(c2, client, connected).await });
    Ok(())
}

/// The MQTT client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MqttStartError {
    #[error("no randomness for the MQTT client id")]
    Random,
    #[error("cannot set up TLS for the MQTT broker: {0}")]
    Tls(#[from] rustls::Error),
}

fn tls_config() -> Result<TlsConfiguration, MqttStartError> {
    let mut roots = rustls::RootCertStore::empty();
    // Built-in roots: OpenWrt and Synology may have no CA bundle.
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConfiguration::Rustls(Arc::new(cfg)))
}

/// Polls the broker connection: reconnects, subscribes, reads announcements.
async fn event_loop(cx: MqttContext, mut eventloop: EventLoop, client: AsyncClient, connected: Arc<Notify>) {
    let mut retry = RETRY_START;
    let mut inbox = Inbox::new();
    loop {
        let event = tokio::select! {
            e = eventloop.poll() => e,
            _ = cx.shutdown.cancelled() => break,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                info!("connected to the MQTT broker");
                cx.discovery.set_mqtt_state(&cx.shutdown, MqttState::Connected, None);
                retry = RETRY_START;
                let topics = cx.topics.borrow().clone();
                let _ = client.try_subscribe_many(topics.iter().map(|(_, k)| filter(k)));
                connected.notify_one();
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if let Ok(topic) = std::str::from_utf8(&p.topic) {
                    inbox.receive(&cx, topic, &p.payload);
                }
            }
            Ok(_) => {}
            Err(e) => {
                let why = e.to_string();
                warn!(error = %why, "MQTT broker unreachable; retrying in the background");
                cx.discovery.set_mqtt_state(&cx.shutdown, MqttState::Error, Some(why));
                tokio::select! {
                    _ = tokio::time::sleep(jitter(retry)) => {}
                    _ = cx.shutdown.cancelled() => break,
                }
                retry = (retry * 2).min(RETRY_MAX);
                // Still the last error's words until the next attempt says otherwise.
                let last = cx.discovery.mqtt_status().error;
                cx.discovery.set_mqtt_state(&cx.shutdown, MqttState::Connecting, last);
            }
        }
    }
    debug!("MQTT event loop stopped");
}

/// What the event loop keeps between messages: the rate limiter and the
/// last timestamp per (peer, topic, message version) against replays.
struct Inbox {
    tokens: f64,
    refilled: Instant,
    dropped: u64,
    last: HashMap<(PeerId, [u8; 32], u8), u64>,
}

impl Inbox {
    fn new() -> Self {
        Inbox { tokens: ACCEPT_BURST, refilled: Instant::now(), dropped: 0, last: HashMap::new() }
    }

    fn allow(&mut self) -> bool {
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * ACCEPT_PER_SEC).min(ACCEPT_BURST);
        if self.tokens < 1.0 {
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                debug!(dropped = self.dropped, "MQTT announcements arrive too fast; dropping some");
            }
            return false;
        }
        self.tokens -= 1.0;
        true
    }

    fn receive(&mut self, cx: &MqttContext, path: &str, payload: &[u8]) {
        if !self.allow() {
            return;
        }
        let Some((name, keys)) =
            cx.topics.borrow().iter().find(|(_, k)| topic_path(k) == path).map(|(n, k)| (n.to_owned(), k.clone()))
        else {
            return;
        };
        if payload.first() == Some(&SIGNAL_VERSION) {
            self.receive_signal(cx, &keys, payload);
            return;
        }
        let a = match open_announcement(&keys, payload) {
            Ok(a) => a,
            Err(e) => {
                debug!(error = %e, "ignored an MQTT announcement");
                return;
            }
        };
        if a.peer.0 == cx.identity.verifying_key().to_bytes() {
            return;
        }
        let now = unix_ms();
        if let Err(e) = check_fresh(a.timestamp_ms, now) {
            debug!(peer = %a.peer, error = %e, "ignored an MQTT announcement");
            return;
        }
        if !self.newer((a.peer, keys.mqtt_path, ANNOUNCE_VERSION), a.timestamp_ms, now) {
            debug!(peer = %a.peer, "ignored a replayed MQTT announcement");
            return;
        }
        let addrs: Vec<Candidate> = a
            .addrs
            .iter()
            .filter_map(|w| AddrKind::from_u8(w.kind).map(|k| Candidate::new(k, w.socket_addr())))
            .filter(|c| dialable(&c.addr, cx.allow_loopback))
            .collect();
        cx.discovery.report(Report::Found {
            peer: a.peer,
            source: Source::Mqtt,
            addrs,
            topics: vec![name],
            ttl: ANNOUNCE_TTL,
        });
    }
}

impl Inbox {
    /// A punch signal: acted on only when addressed to us, fresh
    /// ([`hdp_proto::discovery::MAX_SIGNAL_AGE_MS`]) and newer than the
    /// last one from its sender (replays are refused like announcements').
    fn receive_signal(&mut self, cx: &MqttContext, keys: &TopicKeys, payload: &[u8]) {
        let s = match open_signal(keys, payload) {
            Ok(s) => s,
            Err(e) => {
                debug!(error = %e, "ignored an MQTT punch signal");
                return;
            }
        };
        if s.to.0 != cx.identity.verifying_key().to_bytes() {
            return;
        }
        let now = unix_ms();
        if let Err(e) = check_fresh(s.timestamp_ms, now) {
            debug!(peer = %s.from, error = %e, "ignored a punch signal");
            return;
        }
        if !self.newer((s.from, keys.mqtt_path, SIGNAL_VERSION), s.timestamp_ms, now) {
            debug!(peer = %s.from, "ignored a replayed punch signal");
            return;
        }
        cx.discovery.on_signal(s);
    }

    /// Whether `timestamp_ms` is newer than the last one accepted for `key`
    /// (then it is remembered). The memory holds at most
    /// [`MAX_REPLAY_ENTRIES`]; when full, entries older than the freshness
    /// window go (a replay of them would be refused as stale anyway), and a
    /// new key that still finds no room is refused.
    fn newer(&mut self, key: (PeerId, [u8; 32], u8), timestamp_ms: u64, now: u64) -> bool {
        if self.last.get(&key).is_some_and(|&t| t >= timestamp_ms) {
            return false;
        }
        if self.last.len() >= MAX_REPLAY_ENTRIES && !self.last.contains_key(&key) {
            let horizon = now.saturating_sub(MAX_ANNOUNCE_AGE_MS);
            self.last.retain(|_, t| *t >= horizon);
            if self.last.len() >= MAX_REPLAY_ENTRIES {
                return false;
            }
        }
        self.last.insert(key, timestamp_ms);
        true
    }
}

/// Publishes announcements: periodically, on (re)connection, when a newcomer
/// appears, and when our topics or addresses change.
async fn announcer(mut cx: MqttContext, client: AsyncClient, connected: Arc<Notify>) {
    // The first announcement should carry our public address: wait (a
    // little) for the first STUN round, or peers would first dial without
    // it and learn it only after that dial timed out.
    tokio::select! {
        _ = tokio::time::timeout(FIRST_STUN_WAIT, cx.discovery.net().first_round()) => {}
        _ = cx.shutdown.cancelled() => return,
    }
    let mut subscribed: Vec<String> = cx.topics.borrow().iter().map(|(_, k)| topic_path(k)).collect();
    let mut addrs = (cx.addrs)();
    // A token bucket: ANNOUNCE_BURST at once, then one per MIN_ANNOUNCE_GAP.
    let (mut credit, mut refilled) = (ANNOUNCE_BURST, Instant::now());
    let mut check = tokio::time::interval(ADDR_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let period = tokio::time::sleep(jitter(ANNOUNCE_PERIOD));
        tokio::select! {
            _ = period => {}
            _ = connected.notified() => {}
            _ = cx.discovery.announce_wanted() => {}
            changed = cx.topics.changed() => {
                if changed.is_err() {
                    break;
                }
                let now: Vec<String> = cx.topics.borrow_and_update().iter().map(|(_, k)| topic_path(k)).collect();
                for p in subscribed.iter().filter(|p| !now.contains(p)) {
                    let _ = client.try_unsubscribe(p.clone());
                }
                let fresh = cx.topics.borrow().iter().map(|(_, k)| filter(k)).filter(|f| !subscribed.contains(&f.path)).collect::<Vec<_>>();
                if !fresh.is_empty() {
                    let _ = client.try_subscribe_many(fresh);
                }
                subscribed = now;
            }
            _ = check.tick() => {
                let fresh = (cx.addrs)();
                if fresh == addrs {
                    continue;
                }
                info!(addrs = ?fresh, "our addresses changed; announcing them");
                addrs = fresh;
            }
            changed = cx.addrs_changed.changed() => {
                if changed.is_err() {
                    break;
                }
                addrs = (cx.addrs)();
            }
            _ = cx.shutdown.cancelled() => break,
        }
        let now = Instant::now();
        let gained = now.duration_since(refilled).as_secs_f64() / MIN_ANNOUNCE_GAP.as_secs_f64();
        credit = (credit + gained).min(ANNOUNCE_BURST);
        refilled = now;
        if credit < 1.0 {
            tokio::select! {
                _ = tokio::time::sleep(MIN_ANNOUNCE_GAP.mul_f64(1.0 - credit)) => {}
                _ = cx.shutdown.cancelled() => break,
            }
            (credit, refilled) = (1.0, Instant::now());
        }
        credit -= 1.0;
        announce(&cx, &client, &addrs);
    }
    let _ = client.try_disconnect();
}

fn announce(cx: &MqttContext, client: &AsyncClient, addrs: &[Candidate]) {
    let wire: Vec<_> = addrs.iter().map(Candidate::wire).collect();
    let topics = cx.topics.borrow().clone();
    let ts = unix_ms();
    for (_, keys) in topics.iter() {
        let mut nonce = [0u8; 24];
        if getrandom::fill(&mut nonce).is_err() {
            return;
        }
        match seal_announcement(keys, &cx.identity, ts, &wire, nonce) {
            Ok(payload) => {
                if client.try_publish(topic_path(keys), QoS::AtMostOnce, false, payload).is_err() {
                    debug!("MQTT request queue full; skipped an announcement");
                }
            }
            Err(e) => warn!(error = %e, "cannot build an announcement"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let b = |tls, host: &str, port| Ok(Some(Broker { tls, host: host.into(), port }));
        assert_eq!(parse_broker("off"), Ok(None));
        assert_eq!(parse_broker("mqtt://127.0.0.1:1884"), b(false, "127.0.0.1", 1884));
        assert_eq!(parse_broker("mqtt://broker.example"), b(false, "broker.example", 1883));
        assert_eq!(parse_broker("mqtts://broker.example/"), b(true, "broker.example", 8883));
        assert_eq!(parse_broker("mqtts://[::1]:9000"), b(true, "::1", 9000));
        assert_eq!(parse_broker("mqtts://[::1]"), b(true, "::1", 8883));
        for bad in
            ["", "broker:1883", "http://x", "mqtt://", "mqtt://x:0", "mqtt://x:99999", "mqtt://u@x", "mqtt://[::1"]
        {
            assert!(parse_broker(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_broker(DEFAULT_BROKER).unwrap().unwrap().to_string(), DEFAULT_BROKER);
        assert_eq!(Broker { tls: false, host: "::1".into(), port: 1 }.to_string(), "mqtt://[::1]:1");
    }
}
