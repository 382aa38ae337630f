//! A running node: start-up and graceful shutdown, in one place.
//!
//! # Start-up
//! data dir (created 0700) → exclusive lock on `<data-dir>/lock` → identity →
//! API token → index → shares (recorded ones rescanned, configured ones
//! added) → QUIC endpoint (port reused from the last run) → the NAT layer
//! (STUN and port mapping start in the background) and peer registry
//! → configured peers dialed → discovery (manager, MQTT client, mDNS) →
//! downloads → HTTP listener.
//!
//! # Shutdown
//! One [`CancellationToken`] is the only way to stop the node. Every task is
//! spawned on one [`TaskTracker`]; every long-running piece watches the token
//! (scans check it between directories, connections close with
//! `CloseCode::Normal`, downloads stop between reads and keep their `.part`
//! files, the MQTT client disconnects, mDNS withdraws our record, punch
//! attempts stop, the router's port mapping is deleted, the HTTP server
//! drains its connections). [`RunningNode::shutdown`]
//! cancels the token, closes the QUIC endpoint (waiting briefly so peers hear
//! the close), waits for the tracker to empty (bounded by [`SHUTDOWN_GRACE`]),
//! then syncs and closes LMDB. The binary calls it on SIGINT or SIGTERM.

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hdp_proto::id::PeerId;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::Config;
use crate::discovery::mdns;
use crate::discovery::mqtt::{MqttContext, MqttHandle, MqttStartError};
use crate::discovery::{Discovery, dialable};
use crate::download::Downloads;
use crate::http::auth::{TokenError, load_token};
use crate::http::settings::LiveSettings;
use crate::http::{AppState, router};
use crate::identity::{Identity, IdentityError};
use crate::index::{Index, OpenError, RecordError};
use crate::net::transport::{Transport, TransportError};
use crate::net::{Net, NetConfig};
use crate::peers::{Peers, Topics};
use crate::serve::Server;
use crate::shares::Shares;

/// Key in the index's `meta` database of the QUIC port to reuse.
const QUIC_PORT_KEY: &str = "quic_port";

/// How long shutdown waits for tasks before closing anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
pub const LOCK_FILE: &str = "lock";

/// The node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data dir {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("another hdp node is already running with data dir {0}; stop it or pass another --data-dir")]
    AlreadyRunning(PathBuf),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Index(#[from] OpenError),
    #[error(transparent)]
    Shares(#[from] RecordError),
    #[error("cannot listen for HTTP on {addr}: {source}. Is another node using it? Choose another with --http")]
    BindHttp { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Mqtt(#[from] MqttStartError),
    #[error(transparent)]
    Downloads(#[from] crate::download::store::StoreError),
    #[error(transparent)]
    Schedule(#[from] crate::schedule::ScheduleError),
}

/// A started node. Drop it only through [`RunningNode::shutdown`].
#[derive(Debug)]
pub struct RunningNode {
    pub id: PeerId,
    pub http_addr: SocketAddr,
    pub token: String,
    pub config: Config,
    pub quic_addr: SocketAddr,
    /// Topics at start (flags, config and those joined earlier).
    pub topics: Vec<String>,
    /// The NAT layer: public addresses once STUN or the router answer.
    pub net: Arc<Net>,
    shares: Arc<Shares>,
    peers: Arc<Peers>,
    index: Index,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    _lock: File,
}

impl RunningNode {
    pub async fn start(mut config: Config) -> Result<Self, StartError> {
        let data_dir = config.data_dir.clone();
        create_private_dir(&data_dir).map_err(|source| StartError::DataDir { path: data_dir.clone(), source })?;
        let lock = File::create(data_dir.join(LOCK_FILE))
            .map_err(|source| StartError::DataDir { path: data_dir.clone(), source })?;
        if lock.try_lock().is_err() {
            return Err(StartError::AlreadyRunning(data_dir));
        }
        let identity = Identity::load_or_create(&data_dir)?;
        let token = load_token(&data_dir, true)?;
        let index = Index::open(&data_dir.join("index"))?;
        // Settings saved from the UI win over config.toml, not over flags.
        crate::http::settings::apply_saved(&mut config, &crate::http::settings::load_saved(&index)?);

        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let private = std::fs::canonicalize(&data_dir).ok();
        let shares = Shares::load(index.clone(), shutdown.clone(), tasks.clone(), private)?;
        shares.rescan_all();
        for dir in &config.shares {
            if let Err(e) = shares.add(dir.clone(), None).await {
                warn!(dir = %dir.display(), error = %e, "cannot share this directory");
            }
        }

        let (transport, side) = bind_quic(&identity, &index, config.listen)?;
        let quic_addr = transport
            .local_addr()
            .map_err(|source| StartError::Transport(TransportError::Bind { addr: config.listen, source }))?;
        if config.listen.port() == 0 {
            let _ = index.meta_put(QUIC_PORT_KEY, &quic_addr.port().to_be_bytes());
        }
        let server =
            Server::new(index.clone(), shares.clone(), config.upload_slots, config.max_upload_rate, shutdown.clone());
        server.start_hasher(shutdown.clone(), &tasks);
        // Topics joined at runtime persist; --topic adds to them.
        let mut topics = index.saved_topics()?;
        for t in &config.topics {
            if !topics.contains(t) {
                topics.push(t.clone());
            }
        }
        index.save_topics(&topics)?;
        let net = Net::start(
            transport.socket.clone(),
            side,
            quic_addr,
            NetConfig { stun: config.stun.clone(), portmap: config.portmap },
            shutdown.clone(),
            &tasks,
        );
        let peers = Peers::new(
            identity.peer_id(),
            transport,
            net.clone(),
            Topics::new(&topics),
            server.clone(),
            crate::peers::Limits {
                max_peers: config.max_peers,
                handshake_rate: config.handshake_rate,
                stream_budget: config.stream_budget,
            },
            shutdown.clone(),
            tasks.clone(),
        );
        peers.start();
        for peer in &config.peers {
            let peers = peers.clone();
            let peer = peer.clone();
            tasks.spawn(async move {
                match tokio::net::lookup_host(peer.as_str()).await.map(|mut a| a.next()) {
                    Ok(Some(addr)) => {
                        if let Err(e) = peers.add_target(addr).await {
                            warn!(%peer, error = %e, "cannot reach peer yet; will keep trying");
                        }
                    }
                    _ => warn!(%peer, "cannot resolve peer address (want HOST:PORT)"),
                }
            });
        }
        let allow_loopback = quic_addr.ip().is_loopback();
        let local: Arc<dyn Fn() -> Vec<SocketAddr> + Send + Sync> =
            Arc::new(move || listen_addrs(quic_addr).into_iter().filter(|a| dialable(a, allow_loopback)).collect());
        let discovery = Discovery::start(
            peers.clone(),
            net.clone(),
            identity.signing_key().clone(),
            local,
            shutdown.clone(),
            tasks.clone(),
        );
        let announced = discovery.clone();
        let cx = MqttContext {
            discovery: discovery.clone(),
            identity: identity.signing_key().clone(),
            topics: peers.topics(),
            addrs: Arc::new(move || announced.candidates()),
            addrs_changed: net.subscribe(),
            allow_loopback,
            shutdown: shutdown.clone(),
        };
        // The MQTT client can be switched to another broker at run time (settings).
        let mqtt = Arc::new(MqttHandle::new(cx, tasks.clone()));
        mqtt.set(config.mqtt.clone())?;
        if config.mdns && quic_addr.ip().is_loopback() {
            info!("mDNS is off: the QUIC endpoint listens on loopback only");
        } else if config.mdns
            && let Err(e) =
                mdns::start(discovery.clone(), identity.peer_id(), quic_addr, peers.topics(), shutdown.clone(), &tasks)
        {
            warn!(error = %e, "mDNS is unavailable; peers on the LAN are found through MQTT or --peer only");
        }
        let downloads = Downloads::start(
            peers.clone(),
            index.clone(),
            config.download_dir.clone(),
            config.download_slots,
            config.peer_download_slots,
            shutdown.clone(),
            tasks.clone(),
        )?;
        // The usual limits, or a schedule rule's, applied now and at every
        // minute; Server and Downloads hold the limits in force.
        let (limit_up, limit_down) = (server.clone(), downloads.clone());
        let schedule = crate::schedule::RateSchedule::new(
            (config.max_upload_rate, config.max_download_rate),
            config.schedule.clone(),
            crate::schedule::Zone::load(config.timezone.as_deref()),
            crate::schedule::system_clock(),
            Box::new(move |r| limit_up.set_max_upload_rate(r)),
            Box::new(move |r| limit_down.set_max_download_rate(r)),
        )?;
        schedule.start(shutdown.clone(), &tasks);

        let listener = tokio::net::TcpListener::bind(config.http)
            .await
            .map_err(|source| StartError::BindHttp { addr: config.http, source })?;
        let http_addr = listener.local_addr().map_err(|source| StartError::BindHttp { addr: config.http, source })?;
        let state = AppState {
            id: identity.peer_id(),
            token: token.clone().into(),
            index: index.clone(),
            shares: shares.clone(),
            peers: peers.clone(),
            discovery,
            settings: Arc::new(LiveSettings::new(
                index.clone(),
                downloads.clone(),
                server.clone(),
                schedule,
                mqtt,
                config.pinned.clone(),
            )),
            server,
            downloads,
            listen_addrs: Arc::new(listen_addrs(quic_addr)),
            net: net.clone(),
            http_addr,
            shutdown: shutdown.clone(),
            hosts: Arc::new(crate::http::guard::AllowedHosts::new(&config.http_hosts)),
        };
        let app = router(state);
        let stop = shutdown.clone();
        tasks.spawn(async move {
            crate::http::server::serve(listener, app, stop).await;
        });
        info!(%http_addr, %quic_addr, id = %identity.peer_id(), "node started");
        Ok(RunningNode {
            id: identity.peer_id(),
            http_addr,
            token,
            config,
            quic_addr,
            topics: peers.topic_names(),
            net,
            shares,
            peers,
            index,
            shutdown,
            tasks,
            _lock: lock,
        })
    }

    /// The link that logs a browser in: the token rides in the fragment,
    /// which browsers never send to the server.
    pub fn login_url(&self) -> String {
        let local = web_ui_urls(self.http_addr).into_iter().next().unwrap_or_default();
        login_link(&local, &self.token)
    }

    /// Login links for the machine's LAN addresses, when the HTTP listener
    /// is on an unspecified address (`0.0.0.0` or `[::]`): what a phone on
    /// the same network opens.
    pub fn lan_login_urls(&self) -> Vec<String> {
        web_ui_urls(self.http_addr).iter().skip(1).map(|u| login_link(u, &self.token)).collect()
    }

    pub fn shares(&self) -> &Arc<Shares> {
        &self.shares
    }

    /// A token that stops the node when cancelled (for a fatal error inside).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops every task and closes the index. Returns whether everything
    /// stopped within the grace period.
    pub async fn shutdown(self) -> bool {
        info!("shutting down");
        self.shutdown.cancel();
        self.peers.close().await;
        self.tasks.close();
        let clean = tokio::time::timeout(SHUTDOWN_GRACE, self.tasks.wait()).await.is_ok();
        if !clean {
            warn!("some tasks did not stop within {SHUTDOWN_GRACE:?}");
        }
        let RunningNode { shares, peers, index, .. } = self;
        drop(shares);
        drop(peers);
        let closed = tokio::task::spawn_blocking(move || index.close(Duration::from_secs(5))).await.unwrap_or(false);
        if !closed {
            warn!("the index was still in use at shutdown; LMDB will recover it on next start");
        }
        info!("stopped");
        clean && closed
    }
}

/// Binds the QUIC socket. With port 0, the port of the last run is tried
/// first, so peers that remember our address find us again.
fn bind_quic(
    identity: &Identity,
    index: &Index,
    listen: SocketAddr,
) -> Result<(Transport, tokio::sync::mpsc::Receiver<crate::net::socket::Datagram>), TransportError> {
    if listen.port() == 0 {
        let saved =
            index.meta_get(QUIC_PORT_KEY).ok().flatten().and_then(|v| v.try_into().ok()).map(u16::from_be_bytes);
        if let Some(port) = saved.filter(|p| *p != 0) {
            match Transport::bind(identity, SocketAddr::new(listen.ip(), port)) {
                Ok(t) => return Ok(t),
                Err(e) => {
                    warn!(port, error = %e, "the QUIC port of the last run is taken; using another")
                }
            }
        }
    }
    Transport::bind(identity, listen)
}

/// The addresses peers can dial: the bound address, or for an unspecified
/// one every interface address (link-local ones cannot be dialed).
pub fn listen_addrs(bound: SocketAddr) -> Vec<SocketAddr> {
    if !bound.ip().is_unspecified() {
        return vec![bound];
    }
    let mut out: Vec<SocketAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| ip.is_ipv4() == bound.is_ipv4() || bound.is_ipv6())
        .filter(|ip| match ip {
            std::net::IpAddr::V4(v4) => !v4.is_link_local(),
            std::net::IpAddr::V6(v6) => !v6.is_unicast_link_local(),
        })
        .map(|ip| SocketAddr::new(ip, bound.port()))
        .collect();
    out.sort_by_key(|a| a.ip().is_loopback());
    out
}

fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Where the web UI answers for an HTTP listener bound to `http_addr`: on
/// this machine first (loopback for an unspecified address), then, when the
/// listener is on an unspecified address (`0.0.0.0` or `[::]`), on each LAN
/// address, which is what a phone on the same network opens. IPv4 first;
/// loopback and link-local addresses are left out of the LAN ones.
pub fn web_ui_urls(http_addr: SocketAddr) -> Vec<String> {
    if !http_addr.ip().is_unspecified() {
        return vec![format!("http://{http_addr}/")];
    }
    let port = http_addr.port();
    let mut urls = vec![format!("http://{}/", SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), port))];
    let mut ips: Vec<std::net::IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| !ip.is_loopback() && (http_addr.is_ipv6() || ip.is_ipv4()))
        .filter(|ip| match ip {
            std::net::IpAddr::V4(v4) => !v4.is_link_local(),
            std::net::IpAddr::V6(v6) => !v6.is_unicast_link_local(),
        })
        .collect();
    ips.sort_by_key(|ip| ip.is_ipv6());
    ips.dedup();
    urls.extend(ips.into_iter().map(|ip| format!("http://{}/", SocketAddr::new(ip, port))));
    urls
}

/// A web UI address with the API token in its fragment: opening it logs a
/// browser in (browsers never send the fragment to the server).
pub fn login_link(web_ui: &str, token: &str) -> String {
    format!("{web_ui}#token={token}")
}
