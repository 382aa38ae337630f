//! Command-line interface of the `hdp` binary (clap).
//!
//! `hdp start` runs the node; every other command is a client of a running
//! node's HTTP API. Each option can also come from an `HDP_*` environment
//! variable; for `start`, then from `<data-dir>/config.toml` (see
//! [`crate::config`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Where clients look for the node by default (and where it listens).
pub const DEFAULT_HTTP: &str = "127.0.0.1:3030";

#[derive(Debug, Parser)]
#[command(name = "hdp", version, about = "harddrive-party: share directories with friends, peer to peer")]
pub struct Cli {
    /// More log output (-v debug, -vv trace); RUST_LOG overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of `start`'s arguments costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the node in the foreground.
    Start(StartArgs),
    /// Show the running node's identity, shares and addresses.
    Info(ClientArgs),
    /// Print the web UI's login links (they carry the API token): on this
    /// machine, and on each LAN address when the node listens on all of them.
    Link(LinkArgs),
    /// List, add, remove or rescan shared directories.
    Shares {
        #[command(subcommand)]
        action: Option<SharesAction>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List or search files: our shares, or a peer's (`PEER/PATH`).
    Ls(LsArgs),
    /// Show connected peers and the addresses we keep dialing.
    Peers(ClientArgs),
    /// Dial a peer's QUIC address (`HOST:PORT`) or a friend's contact link
    /// (`hdp:…`, from the web UI; quote it for the shell) and keep redialing it.
    Connect {
        /// `HOST:PORT`, or an `hdp:` contact link.
        addr: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Download a file or a directory from a peer: `PEER/SHARE/PATH`.
    Download(DownloadArgs),
    /// Show downloads and their progress; with an ID, that download's files.
    Downloads(DownloadsArgs),
    /// Pause a download, or one of its files (`--file SEQ`); partial files are kept.
    Pause(ControlArgs),
    /// Resume a paused download or file.
    Resume(ControlArgs),
    /// Cancel a download, or one of its files; their partial files are deleted.
    Cancel(ControlArgs),
    /// Queue the failed files of a download (or one file) again.
    Retry(ControlArgs),
    /// Move a download to the front of the queue.
    Top(ControlArgs),
    /// List, join or leave topics (kept across restarts).
    Topics {
        #[command(subcommand)]
        action: Option<TopicsAction>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Everyone we completed a handshake with; name, block or unblock them.
    Friends {
        #[command(subcommand)]
        action: Option<FriendsAction>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum FriendsAction {
    /// List friends, the most recently seen first (the default).
    List,
    /// Give a friend a nickname (`""` removes it).
    Name {
        /// Nickname, friendly name or id prefix.
        peer: String,
        nickname: String,
    },
    /// Refuse a friend right after TLS, never dial it, ignore its announcements.
    Block { peer: String },
    /// Let a blocked friend back in.
    Unblock { peer: String },
}

#[derive(Debug, Subcommand)]
pub enum TopicsAction {
    /// List topics with how many connected peers share each (the default).
    List,
    /// Join a topic.
    Join { name: String },
    /// Leave a topic; peers sharing no other topic with us are disconnected.
    Leave { name: String },
}

#[derive(Debug, Args)]
pub struct DownloadsArgs {
    /// A download's id: list its files.
    pub id: Option<u64>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ControlArgs {
    /// The download's id (from `hdp downloads`).
    pub id: u64,
    /// Act on this file of the download (its SEQ from `hdp downloads ID`).
    #[arg(long, value_name = "SEQ")]
    pub file: Option<u64>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// `PEER/SHARE/PATH`: the peer's friendly name or id prefix, then the path.
    pub target: String,
    /// Wait until the download is done (exit non-zero if it fails).
    #[arg(long)]
    pub wait: bool,
    /// Queue it paused (the listing still runs); `hdp resume ID` starts it.
    #[arg(long, conflicts_with = "wait")]
    pub paused: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Where the identity, API token, index and config.toml live.
    #[arg(long, env = "HDP_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Read the configuration from this file [default: <data-dir>/config.toml].
    /// It must exist when given; relative paths in it stay relative to the
    /// data dir. Packages point it at /etc/harddrive-party/config.toml.
    #[arg(long, value_name = "FILE", env = "HDP_CONFIG")]
    pub config: Option<PathBuf>,
    /// Share this directory (repeatable; shares persist across restarts).
    #[arg(long = "share", value_name = "DIR", env = "HDP_SHARE", value_delimiter = ':')]
    pub shares: Vec<PathBuf>,
    /// Address for the HTTP API and web UI [default: 127.0.0.1:3030].
    #[arg(long, value_name = "ADDR", env = "HDP_HTTP")]
    pub http: Option<SocketAddr>,
    /// Where downloads go [default: ~/Downloads].
    #[arg(long, value_name = "DIR", env = "HDP_DOWNLOAD_DIR")]
    pub download_dir: Option<PathBuf>,
    /// UDP address of the QUIC endpoint [default: 0.0.0.0:0; the port chosen
    /// first is kept across restarts].
    #[arg(long, value_name = "ADDR", env = "HDP_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Meet peers on this topic (repeatable).
    #[arg(long = "topic", value_name = "NAME", env = "HDP_TOPIC", value_delimiter = ',')]
    pub topics: Vec<String>,
    /// Dial this peer (`HOST:PORT`, repeatable) and keep redialing it.
    #[arg(long = "peer", value_name = "HOST:PORT", env = "HDP_PEER", value_delimiter = ',')]
    pub peers: Vec<String>,
    /// Peers connected at once at most; more are refused with close code
    /// `TooManyPeers` [default: 128].
    #[arg(long, value_name = "N", env = "HDP_MAX_PEERS")]
    pub max_peers: Option<usize>,
    /// Connection attempts one source address may start per second (twice
    /// that in a burst); more are refused before any TLS work [default: 20].
    #[arg(long, value_name = "N", env = "HDP_HANDSHAKE_RATE")]
    pub handshake_rate: Option<u32>,
    /// Request streams all peers together may have open; each peer gets an
    /// equal share, 64 to 1,024 [default: 2048].
    #[arg(long, value_name = "N", env = "HDP_STREAM_BUDGET")]
    pub stream_budget: Option<u32>,
    /// Files served to peers at once [default: 4].
    #[arg(long, value_name = "N", env = "HDP_UPLOAD_SLOTS")]
    pub upload_slots: Option<usize>,
    /// Limit all uploads together to this many bytes per second
    /// (e.g. 500K, 8M; K = 1024) [default: unlimited].
    #[arg(long, value_name = "RATE", env = "HDP_MAX_UPLOAD_RATE")]
    pub max_upload_rate: Option<String>,
    /// Limit all downloads together to this many bytes per second
    /// (e.g. 1M; K = 1024) [default: unlimited].
    #[arg(long, value_name = "RATE", env = "HDP_MAX_DOWNLOAD_RATE")]
    pub max_download_rate: Option<String>,
    /// Files downloaded at once, from all peers together [default: 4].
    #[arg(long, value_name = "N", env = "HDP_DOWNLOAD_SLOTS")]
    pub download_slots: Option<usize>,
    /// Files downloaded at once from any one peer [default: 2].
    #[arg(long, value_name = "N", env = "HDP_PEER_DOWNLOAD_SLOTS")]
    pub peer_download_slots: Option<usize>,
    /// Async worker threads, which run QUIC, the peers and the web UI
    /// [default: 1]. Disk, index and hashing work has its own pool either
    /// way. One thread moves the most bytes per CPU second; more help a big
    /// machine serving many peers at once.
    #[arg(long, value_name = "N", env = "HDP_THREADS")]
    pub threads: Option<usize>,
    /// MQTT broker to meet peers through: `mqtt://HOST[:PORT]`,
    /// `mqtts://HOST[:PORT]`, or `off` [default: mqtts://broker.hivemq.com:8883].
    #[arg(long, value_name = "URL", env = "HDP_MQTT")]
    pub mqtt: Option<String>,
    /// Do not advertise or look for peers on the LAN with mDNS.
    #[arg(long, env = "HDP_NO_MDNS")]
    pub no_mdns: bool,
    /// STUN server to learn our public address from, `HOST:PORT`
    /// (repeatable), or `off` [default: two public servers of Google and
    /// one of Cloudflare].
    #[arg(long = "stun", value_name = "HOST:PORT", env = "HDP_STUN", value_delimiter = ',')]
    pub stun: Vec<String>,
    /// Do not ask the home router to map our port (NAT-PMP).
    #[arg(long, env = "HDP_NO_PORTMAP")]
    pub no_portmap: bool,
    /// Also answer the web UI and API under this host name (repeatable), e.g.
    /// a reverse proxy's. IP addresses, localhost and *.local names always
    /// work; other names are refused (a guard against DNS rebinding).
    #[arg(long = "http-host", value_name = "NAME", env = "HDP_HTTP_HOSTS", value_delimiter = ',')]
    pub http_hosts: Vec<String>,
    /// Print the web UI link as a QR code even when stdout is not a terminal.
    #[arg(long, env = "HDP_QR", conflicts_with = "no_qr")]
    pub qr: bool,
    /// Do not print the web UI link as a QR code.
    #[arg(long, env = "HDP_NO_QR")]
    pub no_qr: bool,
}

#[derive(Debug, Args)]
pub struct LinkArgs {
    /// Also print the first LAN link as a QR code (the default on a terminal).
    #[arg(long, conflicts_with = "no_qr")]
    pub qr: bool,
    /// Do not print a QR code.
    #[arg(long)]
    pub no_qr: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// How a client command reaches the node.
#[derive(Debug, Args, Clone)]
pub struct ClientArgs {
    /// The node's HTTP address.
    #[arg(long, value_name = "ADDR", env = "HDP_HTTP", default_value = DEFAULT_HTTP, global = true)]
    pub http: String,
    /// The node's data dir, to read its API token from.
    #[arg(long, env = "HDP_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// The API token (instead of reading it from the data dir).
    #[arg(long, env = "HDP_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum SharesAction {
    /// List shares (the default).
    List,
    /// Share a directory; it is indexed in the background.
    Add {
        dir: PathBuf,
        /// Only peers of this topic see the share (repeatable); without it,
        /// the peers of every topic we are on do.
        #[arg(long = "topic", value_name = "NAME")]
        topics: Vec<String>,
    },
    /// Choose which topics' peers see a share: `--topic NAME…` or `--all`.
    /// Takes effect at once, on live connections too.
    Set {
        /// The share's name (`hdp shares` lists them).
        name: String,
        /// Only peers of this topic see the share (repeatable).
        #[arg(long = "topic", value_name = "NAME", required_unless_present = "all", conflicts_with = "all")]
        topics: Vec<String>,
        /// The peers of every topic we are on see the share.
        #[arg(long)]
        all: bool,
    },
    /// Stop sharing a share (by name).
    Rm { name: String },
    /// Rescan one share, or all of them.
    Rescan { name: Option<String> },
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Directory to list (`share/dir`); empty lists the shares.
    #[arg(default_value = "")]
    pub path: String,
    /// List everything below PATH.
    #[arg(short, long)]
    pub recursive: bool,
    /// Only names containing TERM (case-insensitive, recursive).
    #[arg(short, long, value_name = "TERM")]
    pub search: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}
