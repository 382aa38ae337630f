//! harddrive-party node: share directories with friends, peer to peer.
//!
//! # Layout
//! One file per layer, a folder where a layer grew past a few files, from
//! the edge inwards:
//! - [`cli`]: the `hdp` command line (clap); [`config`] merges flags, `HDP_*`
//!   environment variables and `<data-dir>/config.toml`.
//! - [`client`]: the client commands (`hdp info`, `hdp shares`, `hdp ls`),
//!   which talk to a running node over HTTP.
//! - [`node`]: start-up and the one graceful-shutdown path.
//! - [`http`]: the HTTP layer. The bearer-token protected JSON API
//!   ([`http::auth`]), served by our own accept loop ([`http::server`]:
//!   connection cap, head and body deadlines); [`http::ui`], the embedded
//!   web UI built by `build.rs`; [`http::media`] streams files to the
//!   browser's players with range requests; [`http::guard`] checks `Host`
//!   and `Origin` in front of all of it; [`http::settings`] (the settings
//!   the web UI changes at run time, saved in the index; flags pin them),
//!   [`http::fsview`] (the directory picker) and [`http::qr`] (QR codes of
//!   links).
//! - [`peers`]: dialing, accepting, the topic handshake, the connection
//!   registry; [`friends`] remembers every node we met (nicknames, last
//!   addresses, blocked ids) so friends are redialed without discovery;
//!   [`frames`] reads and writes bounded frames on streams.
//! - [`net`]: the network layer: [`net::transport`] is the QUIC endpoint and
//!   TLS with ed25519 identities, on one UDP socket whose wrapper
//!   ([`net::socket`]) takes STUN answers and punch probes out for the NAT
//!   traversal ([`net::stun`], [`net::portmap`], [`net::punch`]).
//! - [`discovery`]: finding peers on our topics through an MQTT broker
//!   ([`discovery::mqtt`]) and mDNS ([`discovery::mdns`]), and deciding whom
//!   to dial.
//! - [`serve`]: answering peers' `ls`, `read`, `hash` and `Prove` requests;
//!   [`remote`] is the asking side; [`download`] turns remote files into
//!   local ones; [`schedule`] sets the upload and download limits in force
//!   (the usual ones or a bandwidth schedule's).
//! - [`shares`]: adding, removing and scheduling scans of shares, and who
//!   sees each ([`shares::Shares::visible`], asked by every serving path).
//! - [`uploads`]: what peers read from us now.
//! - [`index`]: the LMDB share index and its streaming scanner.
//! - [`identity`]: the ed25519 identity.
//!
//! Wire and API types live in the `hdp-proto` crate, shared with the web UI.
//!
//! # Data flow
//! A share added (CLI/UI → `POST /api/shares` → [`shares::Shares::add`]) is
//! recorded in the index and a scan task starts; the scanner walks the tree
//! depth-first and commits entries in batches. `GET /api/ls` reads a snapshot
//! of the index on the blocking pool and returns one page with a cursor.
//!
//! A download (`POST /api/downloads` → [`download::Downloads`]) lists the
//! peer's tree page by page over QUIC ([`remote`]), maps each entry to a safe
//! local path, and streams each file into a `.part` file that is renamed when
//! complete; the peer's [`serve::Server`] answers from its own index and disk.
//!
//! # Channels and bounds
//! Channels: the download progress broadcast (capacity
//! [`download::EVENT_CAPACITY`]; lagging listeners lose updates, senders never
//! wait); discovery reports ([`discovery::FOUND_CAPACITY`], `try_send`,
//! dropped when full because announcements repeat); the QUIC socket's side
//! channel ([`net::socket::SIDE_CAPACITY`], `try_send`, dropped when full);
//! punch probe notifications (capacity 1, only the first probe matters);
//! at most [`net::punch::MAX_SESSIONS`] punch sessions; rumqttc's request queue
//! ([`discovery::mqtt::REQUEST_CAPACITY`], only `try_publish`); the topics
//! watch channel (latest value only; each connection's `ProvenTopics`
//! holds a receiver to prove topics joined later). The schedule's wake-up is
//! a `Notify` (no queue). Dials of discovered peers are bounded
//! by [`discovery::MAX_CONCURRENT_DIALS`]. Semaphores bound scans ([`shares::MAX_CONCURRENT_SCANS`]), uploads
//! (`--upload-slots`), downloads (`--download-slots`, `--peer-download-slots`: a count checked by the
//! scheduler, not a semaphore) and incoming
//! handshakes ([`peers::MAX_PENDING_HANDSHAKES`]); quinn bounds request
//! streams of all peers together ([`peers::STREAM_BUDGET`], shared out,
//! at most [`net::transport::MAX_STREAMS`] per peer) and buffers
//! ([`net::transport::CONNECTION_WINDOW`], [`net::transport::SEND_WINDOW`]). Request
//! bodies are bounded by [`http::MAX_BODY_BYTES`], open HTTP connections by
//! [`http::server::MAX_CONNECTIONS`], frames by the limits in
//! `hdp_proto::wire`, listing pages by `hdp_proto::api::LS_MAX_LIMIT` and
//! [`index::LS_SCAN_BUDGET`]. Graceful shutdown is described in [`node`].

pub mod cli;
pub mod client;
pub mod config;
pub mod discovery;
pub mod download;
pub mod frames;
pub mod friends;
pub mod http;
pub mod identity;
pub mod index;
pub mod net;
pub mod node;
pub mod peers;
pub mod remote;
pub mod schedule;
pub mod serve;
pub mod shares;
pub mod uploads;

/// Locks a mutex whose guarded maps stay consistent even if a holder
/// panicked (every critical section is a few map operations).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
