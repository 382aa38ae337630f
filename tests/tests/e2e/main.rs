//! End-to-end tests: the real `hdp` binary, real LMDB, real HTTP on loopback.
//!
//! - [`cli`]: `hdp start`/`info`/`shares`/`ls` as a user runs them, text and `--json`.
//! - [`api`]: the HTTP API's authentication, errors, validation and UI fallback.
//! - [`index`]: browsing while a large scan runs; rescans and restarts.
//! - [`lifecycle`]: SIGTERM shutdown, the data-dir lock, persisted identity.
//! - [`peers`]: two and three nodes: remote listing, downloads, refusals, restarts.
//! - [`visibility`]: shares per topic: every serving path refuses a peer outside the share's topics; changes reach live connections and running uploads.
//! - [`friends`]: the friend list: nicknames, redial after a restart without discovery, blocking with its close code.
//! - [`queue`]: the download queue survives kill -9; pause, resume, cancel; disk full; 100,000 files.
//! - [`names`]: every name and shape a Linux filesystem holds arrives byte for byte; a FAT disk's refusals are named and counted.
//! - [`crowd`]: a hostile crowd (1,000 identities, junk handshakes, silent streams, unread reads, floods) while an honest friend downloads.
//! - [`hostile`]: ALPN and certificate refusals, traversal, oversized frames, a lying peer.
//! - [`protocol`]: what docs/PROTOCOL.md promises (handshake deadline and close codes, mtimes, `ls` limits), against a real node.
//! - [`discovery`]: meeting through a real mosquitto broker, and through mDNS across network namespaces.
//! - [`media`]: `/media` for the browser's players: ranges, a peer's files, downloads, the cookie, the Host/Origin guard.
//! - [`settings`]: settings saved, pinned by flags and applied live; uploads; the directory picker; contact links; event snapshots.
//! - [`ui`]: the embedded WASM UI rendered by real headless Chromium.
//! - [`nat`]: friends behind real NATs (namespaces, nftables, coturn, miniupnpd) connect directly; symmetric pairs give up quietly.
//! - [`cross`]: cross-built binaries (packaging/build.sh) under qemu-user beside a native node.

mod api;
mod cli;
mod cross;
mod crowd;
mod discovery;
mod friends;
mod hostile;
mod index;
mod lifecycle;
mod media;
mod names;
mod nat;
mod peers;
mod protocol;
mod queue;
mod settings;
mod ui;
mod visibility;
