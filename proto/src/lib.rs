//! Types shared by the harddrive-party node and its web UI.
//!
//! This crate is the sans-IO core of the project: plain data, validation and
//! encodings, with no tokio, no sockets and no filesystem access, so that it
//! compiles for `wasm32-unknown-unknown` and is unit-tested without a network.
//!
//! # Layout
//! - [`path`]: the one validator for paths that come from outside (browsers,
//!   CLI users and, later, peers). Everything that names a shared file goes
//!   through [`path::SharePath`].
//! - [`id`]: peer identities: the 32-byte ed25519 public key, its text
//!   encoding, and the display-only friendly name.
//!   It also defines how file names that are not UTF-8 travel.
//! - [`fmt`]: sizes, counts, dates and durations for people (CLI and UI
//!   alike), and names with their control characters shown escaped.
//! - [`range`]: HTTP `Range` headers for the browser's media players.
//! - [`wire`]: the peer protocol's messages, framing, limits and close codes.
//! - [`topic`]: topic keys (one KDF, one key per purpose) and the
//!   connection-bound membership proof of the handshake.
//! - [`discovery`] (feature `discovery`): MQTT announcements (encrypted,
//!   signed, time-bound) and mDNS recognition tokens.
//! - [`nat`]: NAT traversal without IO: STUN binding messages, punch probes,
//!   NAT classification and the plan two nodes follow to meet.
//! - [`cert`]: the bounded DER walk that finds a peer's ed25519 key in its
//!   certificate.
//! - [`contact`]: `hdp:` contact URIs (peer id and addresses), the text of
//!   the QR code a friend scans.
//! - [`api`]: the JSON bodies of the node's HTTP API (`/api/*`), used by the
//!   node, the `hdp` CLI and the web UI alike.

pub mod api;
pub mod cert;
pub mod contact;
#[cfg(feature = "discovery")]
pub mod discovery;
pub mod fmt;
pub mod id;
pub mod nat;
pub mod path;
pub mod range;
pub mod schedule;
pub mod topic;
pub mod wire;

/// The version of this software, reported by `GET /api/info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
