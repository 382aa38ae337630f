//! The harddrive-party web UI: a client-side rendered [Leptos] app that the
//! node serves at `/` and that talks to the node's HTTP API (`/api/*`,
//! bearer token) on the same origin.
//!
//! The node's build (`node/build.rs`) compiles this crate for
//! `wasm32-unknown-unknown`, runs wasm-bindgen (`--target web`) and serves
//! `index.html`, `style.css`, `hdp_web_ui.js` and `hdp_web_ui_bg.wasm`.
//! `index.html` imports the JS glue and calls `init()`, which runs [`start`].
//!
//! # Layout
//!
//! - [`api`]: every HTTP call, on the shared [`hdp_proto::api`] types;
//!   failures are an [`api::ApiFailure`] (401 or a message for the user).
//! - [`session`]: the API token (URL fragment → `localStorage`), login and
//!   logout, and [`session::Session::call`], which runs an API call with the
//!   token and turns a 401 into the login prompt.
//! - [`live`]: the node's event stream (a streaming `fetch`, since
//!   `EventSource` cannot send the token), reconnecting with backoff; its
//!   signals (peers, topics, shares, uploads, downloads, link state) are
//!   what the pages read, so nothing polls.
//! - [`app`]: the shell: login gating, header with the link state, the
//!   "disconnected from the node" banner, the page chosen by the fragment
//!   (`#/peers`, `#/browse`, …; Back works) and the bottom navigation; the
//!   [`app::Nav`] context lets one page send the user to another.
//! - One module per page: [`home`] (this node, [`topics`], peers, connect,
//!   the invitation QR code), [`browse`] (every peer and our own shares,
//!   search across everyone grouped by peer, one-tap downloads),
//!   [`transfers`] (downloads with per-file progress and controls, uploads),
//!   [`shares`] (with the node-side folder [`picker`]), [`settings`] (with
//!   the bandwidth [`schedule`]).
//! - [`player`]: pictures, songs, videos and text streamed from `/media/*`
//!   with range requests (the node sets a cookie for media elements).
//! - [`login`]: the login prompt.
//! - Formatting for people (sizes, dates, breadcrumbs) is `hdp_proto::fmt`,
//!   shared with the CLI and unit-tested there; [`browser`]: clock, time
//!   zone, `confirm()`, clipboard, scrolling and console.
//! - `index.html` and `style.css` next to `Cargo.toml`: the page shell and
//!   the hand-written, mobile-first stylesheet (dark mode follows
//!   `prefers-color-scheme`; touch targets are at least 44 px).
//!
//! [Leptos]: https://leptos.dev

pub mod api;
pub mod app;
pub mod browse;
pub mod browser;
pub mod home;
pub mod live;
pub mod login;
pub mod picker;
pub mod player;
pub mod schedule;
pub mod session;
pub mod settings;
pub mod shares;
pub mod topics;
pub mod transfers;

use wasm_bindgen::prelude::wasm_bindgen;

/// Entry point, run by the wasm-bindgen glue's `init()`: mounts the app on
/// `<body>` and removes the static "Loading…" placeholder of `index.html`.
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        browser::log_error(&format!("hdp web UI panicked: {info}"));
    }));
    if let Some(boot) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.get_element_by_id("boot")) {
        boot.remove();
    }
    leptos::mount::mount_to_body(app::App);
}
