//! Live state: the node's event stream (`GET /api/events`) kept open for as
//! long as the app is logged in, and the signals every page reads from.
//!
//! The browser's `EventSource` cannot send an `Authorization` header, so the
//! stream is a `fetch` whose body is read chunk by chunk and split into
//! server-sent events here. Snapshots (`peers`, `shares`, `uploads`, `topics`)
//! arrive when the stream opens and whenever they change; the whole download
//! list (`downloads`) arrives when the stream opens and after `lagged`, and
//! single `download` / `download_removed` changes patch it, in stream order
//! (so nothing newer is overwritten by an older list). When the stream ends
//! or fails, [`Link`] says so and the stream is reopened after a growing
//! pause (1 s up to [`MAX_BACKOFF_MS`]).

use std::cell::Cell;
use std::rc::Rc;

use hdp_proto::api::{DownloadInfo, PeerInfo, ShareInfo, TopicInfo, UploadsInfo};
use leptos::prelude::*;
use leptos::task::spawn_local;
use serde::Deserialize;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, ReadableStreamDefaultReader, RequestInit, Response, TextDecodeOptions, TextDecoder};

use crate::api::{self, ApiFailure};
use crate::session::Session;

/// Longest pause between two attempts to reopen the stream.
const MAX_BACKOFF_MS: i32 = 10_000;
/// Most text kept while waiting for the end of one event: the largest event
/// (the full list of at most 1,000 downloads) is far smaller; more means a
/// broken stream.
const MAX_PENDING_BYTES: usize = 8 << 20;

/// How the page is linked to the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Opening the event stream.
    Connecting,
    /// Events are flowing.
    Live,
    /// The stream failed; it is retried. The message says why.
    Down(String),
}

/// The live state, provided as context by the app shell
/// (`expect_context::<Live>()`).
#[derive(Debug, Clone, Copy)]
pub struct Live {
    pub link: RwSignal<Link>,
    pub peers: RwSignal<Vec<PeerInfo>>,
    /// `None` until the first snapshot.
    pub shares: RwSignal<Option<Vec<ShareInfo>>>,
    pub uploads: RwSignal<UploadsInfo>,
    pub topics: RwSignal<Vec<TopicInfo>>,
    pub downloads: RwSignal<Vec<DownloadInfo>>,
    /// The download list has been fetched at least once.
    pub downloads_loaded: RwSignal<bool>,
}

#[derive(Deserialize)]
struct Removed {
    id: u64,
}

impl Live {
    /// Creates the signals and starts the stream; it stops when the calling
    /// component is cleaned up (log-out).
    pub fn start(session: Session) -> Self {
        let live = Live {
            link: RwSignal::new(Link::Connecting),
            peers: RwSignal::new(Vec::new()),
            shares: RwSignal::new(None),
            uploads: RwSignal::new(UploadsInfo::default()),
            topics: RwSignal::new(Vec::new()),
            downloads: RwSignal::new(Vec::new()),
            downloads_loaded: RwSignal::new(false),
        };
        let alive = Rc::new(Cell::new(true));
        let controller = Rc::new(Cell::new(None::<AbortController>));
        {
            // Cleanup runs on this (the only) thread; the wrapper satisfies
            // Leptos' Send bound and would panic if that ever changed.
            let handles = send_wrapper::SendWrapper::new((alive.clone(), controller.clone()));
            on_cleanup(move || {
                let (alive, controller) = &*handles;
                alive.set(false);
                if let Some(c) = controller.take() {
                    c.abort();
                }
            });
        }
        spawn_local(live.run(session, alive, controller));
        live
    }

    /// Puts a download the page just got from an action in the list.
    pub fn upsert_download(self, info: DownloadInfo) {
        self.downloads.try_update(|l| match l.iter_mut().find(|d| d.id == info.id) {
            Some(old) => *old = info,
            None => l.push(info),
        });
    }

    async fn run(self, session: Session, alive: Rc<Cell<bool>>, controller: Rc<Cell<Option<AbortController>>>) {
        let mut backoff = 1_000;
        while alive.get() {
            self.link.try_set(Link::Connecting);
            let abort = AbortController::new().ok();
            let signal = abort.as_ref().map(AbortController::signal);
            // A stream that ended with an error may still hold its connection.
            if let Some(old) = controller.replace(abort) {
                old.abort();
            }
            let outcome = self.stream_once(session, signal.as_ref(), &alive, &mut backoff).await;
            if !alive.get() {
                return;
            }
            match outcome {
                Err(ApiFailure::Unauthorized(m)) => {
                    session.log_out(Some(format!("The node did not accept the token: {m}")));
                    return;
                }
                Err(e) => self.link.try_set(Link::Down(e.to_string())),
                Ok(()) => self.link.try_set(Link::Down("The node closed the connection.".into())),
            };
            sleep_ms(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF_MS);
        }
    }

    /// Opens the stream and reads it until it ends.
    async fn stream_once(
        self,
        session: Session,
        signal: Option<&web_sys::AbortSignal>,
        alive: &Rc<Cell<bool>>,
        backoff: &mut i32,
    ) -> Result<(), ApiFailure> {
        let fail = |e: JsValue| ApiFailure::other(format!("Lost the connection to the node: {}", api::js_message(&e)));
        let token = session.token().ok_or_else(|| ApiFailure::Unauthorized("Not logged in.".into()))?;
        let headers = api::auth_headers(&token)?;
        headers.set("Accept", "text/event-stream").map_err(fail)?;
        let init = RequestInit::new();
        init.set_method("GET");
        init.set_headers(&headers);
        init.set_signal(signal);
        let window = web_sys::window().ok_or_else(|| ApiFailure::other("No browser window."))?;
        let response: Response =
            JsFuture::from(window.fetch_with_str_and_init("/api/events", &init)).await.map_err(fail)?.unchecked_into();
        if response.status() == 401 {
            return Err(ApiFailure::Unauthorized("the token was refused".into()));
        }
        if !response.ok() {
            return Err(ApiFailure::other(format!(
                "The node answered the event stream with HTTP {}.",
                response.status()
            )));
        }
        let body = response.body().ok_or_else(|| ApiFailure::other("The event stream has no body."))?;
        let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
        let decoder = TextDecoder::new().map_err(fail)?;
        let opts = TextDecodeOptions::new();
        opts.set_stream(true);

        self.link.try_set(Link::Live);
        *backoff = 1_000;

        let mut pending = String::new();
        while alive.get() {
            let chunk = match JsFuture::from(reader.read()).await {
                Ok(c) => c,
                Err(e) => return Err(fail(e)),
            };
            let done = js_sys::Reflect::get(&chunk, &"done".into()).ok().and_then(|v| v.as_bool()).unwrap_or(true);
            if done {
                return Ok(());
            }
            let value = js_sys::Reflect::get(&chunk, &"value".into()).map_err(fail)?;
            let bytes: js_sys::Uint8Array = value.unchecked_into();
            let text = decoder.decode_with_buffer_source_and_options(&bytes, &opts).map_err(fail)?;
            pending.push_str(&text);
            // Line ends may be CRLF, and a CRLF may be split across chunks:
            // normalise only what is complete.
            if pending.contains('\r') && !pending.ends_with('\r') {
                pending = pending.replace("\r\n", "\n");
            }
            while let Some(end) = pending.find("\n\n") {
                let block: String = pending.drain(..end + 2).collect();
                self.dispatch(&block);
            }
            if pending.len() > MAX_PENDING_BYTES {
                let _ = reader.cancel();
                return Err(ApiFailure::other("The event stream sent an event too large to be real."));
            }
        }
        let _ = reader.cancel();
        Ok(())
    }

    /// Applies one server-sent event (`event:` and `data:` lines).
    fn dispatch(self, block: &str) {
        let mut name = "message";
        let mut data = String::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                name = v.trim();
            } else if let Some(v) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        let bad = |e: serde_json::Error| crate::browser::log_error(&format!("event {name}: {e}"));
        match name {
            "download" => match serde_json::from_str::<DownloadInfo>(&data) {
                Ok(info) => self.upsert_download(info),
                Err(e) => bad(e),
            },
            "download_removed" => match serde_json::from_str::<Removed>(&data) {
                Ok(r) => {
                    self.downloads.try_update(|l| l.retain(|d| d.id != r.id));
                }
                Err(e) => bad(e),
            },
            "downloads" => match serde_json::from_str(&data) {
                Ok(v) => {
                    self.downloads.try_set(v);
                    self.downloads_loaded.try_set(true);
                }
                Err(e) => bad(e),
            },
            // The full list follows as `downloads`.
            "lagged" => {}
            "peers" => match serde_json::from_str(&data) {
                Ok(v) => {
                    self.peers.try_set(v);
                }
                Err(e) => bad(e),
            },
            "shares" => match serde_json::from_str(&data) {
                Ok(v) => {
                    self.shares.try_set(Some(v));
                }
                Err(e) => bad(e),
            },
            "uploads" => match serde_json::from_str(&data) {
                Ok(v) => {
                    self.uploads.try_set(v);
                }
                Err(e) => bad(e),
            },
            "topics" => match serde_json::from_str(&data) {
                Ok(v) => {
                    self.topics.try_set(v);
                }
                Err(e) => bad(e),
            },
            // Keep-alive comments and unknown (newer) events.
            _ => {}
        }
    }

    /// Connected peers, in list order.
    pub fn connected_peers(&self) -> Vec<PeerInfo> {
        self.peers.with(|l| l.iter().filter(|p| p.connected && p.id.is_some()).cloned().collect())
    }
}

/// Waits `ms` milliseconds (a `setTimeout` promise).
pub async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = JsFuture::from(promise).await;
}
