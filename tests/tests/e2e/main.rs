//! End-to-end tests: the real `hdp` binary, real LMDB, real HTTP on loopback.
//!
//! - [`cli`]: `hdp start`/`info`/`shares`/`ls` as a user runs them, text and `--json`.
//! - [`api`]: the HTTP API's authentication, errors, validation and UI fallback.
//! - [`index`]: browsing while a large scan runs; rescans and restarts.
//! - [`lifecycle`]: SIGTERM shutdown, the data-dir lock, persisted identity.
//! - [`ui`]: the embedded WASM UI rendered by real headless Chromium.

mod api;
mod cli;
mod index;
mod lifecycle;
mod ui;
