//! Meeting peers on the LAN with mDNS (mdns-sd).
//!
//! Goals:
//! - Advertise a `_hdp._udp.local.` service whose port is our QUIC port,
//!   with a random instance and host name (new at every start and topic
//!   change) and TXT tokens that only members of our topics can recognise
//!   (`hdp_proto::discovery::mdns_txt`): no topic names and no peer ids in
//!   clear, and nothing that links two advertisements of the same node.
//! - Browse the same service type and report the nodes that share a topic
//!   with us, with their IPv4 and IPv6 addresses; loopback and link-local
//!   addresses, which a peer cannot dial, are dropped.
//!
//! Non-goals: wide-area DNS-SD; hiding that a host runs harddrive-party.
//!
//! # Threads and channels
//! mdns-sd runs its own daemon thread and hands events over a channel of its
//! own (flume, unbounded inside the library; it holds one event per mDNS
//! record change on the LAN). Our task drains it at once. What we remember of
//! other nodes' records is capped at [`MAX_SEEN`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hdp_proto::discovery::{MAX_MDNS_TOPICS, MDNS_NONCE_LEN, MDNS_SERVICE_TYPE, mdns_recognise, mdns_txt};
use hdp_proto::id::PeerId;
use hdp_proto::topic::{TopicKeys, hex};
use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::{Discovery, Report, Source, dialable};
use crate::net::Candidate;
use crate::peers::Topics;
use hdp_proto::discovery::AddrKind;

/// Other nodes' records remembered (to re-check them when our topics change).
pub const MAX_SEEN: usize = 256;
/// mDNS sightings last until the record is withdrawn or expires in mdns-sd's
/// cache, which then reports it removed.
const SIGHTING_TTL: Duration = Duration::from_secs(24 * 3600);

/// mDNS could not be started.
#[derive(Debug, thiserror::Error)]
pub enum MdnsError {
    #[error("cannot start mDNS: {0}")]
    Daemon(#[from] mdns_sd::Error),
    #[error("no randomness for the mDNS instance name")]
    Random,
}

/// A record we saw: what recognising it needs.
#[derive(Debug, Clone)]
struct Seen {
    txt: Vec<(String, String)>,
    addrs: Vec<SocketAddr>,
    peer: Option<PeerId>,
}

/// Starts advertising and browsing. `listen` is the QUIC socket's address:
/// a specific address limits mDNS to its interface.
pub fn start(
    discovery: Arc<Discovery>,
    me: PeerId,
    listen: SocketAddr,
    topics: watch::Receiver<Topics>,
    shutdown: CancellationToken,
    tasks: &TaskTracker,
) -> Result<(), MdnsError> {
    let daemon = ServiceDaemon::new()?;
    // Never on loopback: nothing there needs finding, and tests running
    // outside a network namespace must not multicast at all.
    daemon.disable_interface(IfKind::LoopbackV4)?;
    daemon.disable_interface(IfKind::LoopbackV6)?;
    if !listen.ip().is_unspecified() {
        daemon.disable_interface(IfKind::All)?;
        daemon.enable_interface(IfKind::Addr(listen.ip()))?;
    }
    let events = daemon.browse(MDNS_SERVICE_TYPE)?;
    discovery.set_mdns(true);
    info!("meeting peers on the LAN with mDNS");
    let mut ad = Advert { daemon, me, listen, fullname: None };
    ad.register(&topics.borrow())?;
    tasks.spawn(async move { run(ad, events, discovery, topics, shutdown).await });
    Ok(())
}

struct Advert {
    daemon: ServiceDaemon,
    me: PeerId,
    listen: SocketAddr,
    fullname: Option<String>,
}

impl Advert {
    /// (Re-)registers our record for `topics`, under a new random name.
    fn register(&mut self, topics: &Topics) -> Result<(), MdnsError> {
        self.unregister();
        let keys: Vec<&TopicKeys> = topics.iter().map(|(_, k)| k).take(MAX_MDNS_TOPICS).collect();
        if keys.is_empty() {
            return Ok(());
        }
        let mut random = [0u8; 8 + MDNS_NONCE_LEN];
        getrandom::fill(&mut random).map_err(|_| MdnsError::Random)?;
        let (name, nonce) = random.split_at(8);
        let nonce: [u8; MDNS_NONCE_LEN] = nonce.try_into().map_err(|_| MdnsError::Random)?;
        let instance = hex(name);
        let txt = mdns_txt(&self.me, &nonce, &keys);
        let props: Vec<(&str, &str)> = txt.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let host = format!("{instance}.local.");
        let ips: Vec<IpAddr> = if self.listen.ip().is_unspecified() { vec![] } else { vec![self.listen.ip()] };
        let mut info = ServiceInfo::new(MDNS_SERVICE_TYPE, &instance, &host, &ips[..], self.listen.port(), &props[..])?;
        if ips.is_empty() {
            info = info.enable_addr_auto();
        }
        self.fullname = Some(info.get_fullname().to_owned());
        self.daemon.register(info)?;
        debug!(%instance, "advertising on mDNS");
        Ok(())
    }

    fn unregister(&mut self) {
        if let Some(f) = self.fullname.take() {
            let _ = self.daemon.unregister(&f);
        }
    }
}

async fn run(
    mut ad: Advert,
    events: mdns_sd::Receiver<ServiceEvent>,
    discovery: Arc<Discovery>,
    mut topics: watch::Receiver<Topics>,
    shutdown: CancellationToken,
) {
    let mut seen: HashMap<String, Seen> = HashMap::new();
    loop {
        tokio::select! {
            ev = events.recv_async() => match ev {
                Ok(ServiceEvent::ServiceResolved(svc)) => {
                    if ad.fullname.as_deref() == Some(svc.get_fullname()) {
                        continue;
                    }
                    if seen.len() >= MAX_SEEN && !seen.contains_key(svc.get_fullname()) {
                        continue;
                    }
                    let port = svc.get_port();
                    let addrs: Vec<SocketAddr> = svc
                        .get_addresses()
                        .iter()
                        .map(|ip| SocketAddr::new(ip.to_ip_addr(), port))
                        .filter(|a| dialable(a, false))
                        .collect();
                    let txt: Vec<(String, String)> = svc
                        .get_properties()
                        .iter()
                        .take(2 + MAX_MDNS_TOPICS)
                        .map(|p| (p.key().to_owned(), p.val_str().to_owned()))
                        .collect();
                    let mut s = Seen { txt, addrs, peer: None };
                    recognise(&discovery, &topics.borrow(), &mut s);
                    seen.insert(svc.get_fullname().to_owned(), s);
                }
                Ok(ServiceEvent::ServiceRemoved(_, fullname)) => {
                    if let Some(peer) = seen.remove(&fullname).and_then(|s| s.peer) {
                        discovery.report(Report::Lost { peer, source: Source::Mdns });
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            },
            changed = topics.changed() => {
                if changed.is_err() {
                    break;
                }
                let now = topics.borrow_and_update().clone();
                if let Err(e) = ad.register(&now) {
                    warn!(error = %e, "cannot update our mDNS record");
                }
                for s in seen.values_mut() {
                    recognise(&discovery, &now, s);
                }
            }
            _ = shutdown.cancelled() => break,
        }
    }
    ad.unregister();
    if let Ok(done) = ad.daemon.shutdown() {
        // Give the daemon a moment to send our goodbye packet.
        let _ = tokio::time::timeout(Duration::from_secs(1), done.recv_async()).await;
    }
    debug!("mDNS stopped");
}

/// Reports `s` if it is a node on one of `topics`; withdraws it if it was
/// one and no longer is.
fn recognise(discovery: &Discovery, topics: &Topics, s: &mut Seen) {
    let keys: Vec<&TopicKeys> = topics.iter().map(|(_, k)| k).collect();
    let names: Vec<&str> = topics.iter().map(|(n, _)| n).collect();
    let get = |k: &str| s.txt.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match mdns_recognise(get, &keys) {
        Some((peer, matched)) if !s.addrs.is_empty() => {
            s.peer = Some(peer);
            discovery.report(Report::Found {
                peer,
                source: Source::Mdns,
                addrs: s.addrs.iter().map(|a| Candidate::new(AddrKind::Local, *a)).collect(),
                topics: matched.iter().filter_map(|&i| names.get(i).map(|n| (*n).to_owned())).collect(),
                ttl: SIGHTING_TTL,
            });
        }
        _ => {
            if let Some(peer) = s.peer.take() {
                discovery.report(Report::Lost { peer, source: Source::Mdns });
            }
        }
    }
}
