//! The HTTP server: accepts connections and runs the router on each, with a
//! bound on everything a browser, or anything else that can reach the port,
//! can hold open.
//!
//! Goals:
//! - A flood of idle or slow sockets cannot stop the UI from answering. At
//!   most [`MAX_CONNECTIONS`] are open; when all are taken, a new connection
//!   evicts the oldest one that is not serving a request (an idle keep-alive
//!   socket, or one still sending its head). Only when every connection is
//!   busy is the new one closed.
//! - Slow clients are timed out: a request's head must arrive within
//!   [`HEAD_TIMEOUT`] (which is also how long an idle keep-alive connection
//!   is kept), its body within [`BODY_TIMEOUT`].
//! - A head holds at most [`MAX_HEADERS`] headers and [`MAX_HEAD_BYTES`]
//!   bytes, request line and query string included; bodies are capped by
//!   the router ([`super::MAX_BODY_BYTES`]).
//!
//! Non-goals: timing responses. Media streams and the event stream are long
//! by nature, and a paused player stops reading for minutes.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, warn};

/// Open HTTP connections at most. A phone needs a handful (the page, the
/// event stream, a player's range requests); a few people at once, a few
/// dozen. Each costs a task and up to [`MAX_HEAD_BYTES`] of buffer.
pub const MAX_CONNECTIONS: usize = 128;
/// Longest a client may take to send a request's head, and longest an idle
/// keep-alive connection is kept.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a client may take to send a request's body: API bodies are at
/// most 64 KiB, so even a slow phone link (50 kbit/s) sends one in time.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Headers per request at most (browsers send 10–20).
pub const MAX_HEADERS: usize = 64;
/// Bytes of a request's head at most: request line, query and headers.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Longest shutdown waits for open connections to finish their responses.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);

/// The open connections, oldest first, and what each is doing.
#[derive(Default)]
struct Registry {
    conns: Mutex<BTreeMap<u64, Slot>>,
}

struct Slot {
    /// Requests being served (until their response body is dropped).
    busy: Arc<AtomicUsize>,
    /// Cancelled to evict the connection.
    evict: CancellationToken,
}

impl Registry {
    /// Makes room for connection `id`; `None` when every open connection is
    /// serving a request.
    fn admit(&self, id: u64) -> Option<(Arc<AtomicUsize>, CancellationToken)> {
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        if conns.len() >= MAX_CONNECTIONS {
            let idle = conns.iter().find(|(_, s)| s.busy.load(Ordering::Acquire) == 0).map(|(k, _)| *k)?;
            if let Some(slot) = conns.remove(&idle) {
                slot.evict.cancel();
            }
        }
        let slot = Slot { busy: Arc::new(AtomicUsize::new(0)), evict: CancellationToken::new() };
        let handles = (slot.busy.clone(), slot.evict.clone());
        conns.insert(id, slot);
        Some(handles)
    }

    fn remove(&self, id: u64) {
        self.conns.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }

    fn len(&self) -> usize {
        self.conns.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// Serves `app` on `listener` until `shutdown`; then stops accepting, lets
/// open responses finish for up to [`SHUTDOWN_WAIT`], and returns.
pub async fn serve(listener: TcpListener, app: Router, shutdown: CancellationToken) {
    let registry = Arc::new(Registry::default());
    let tasks = tokio_util::task::TaskTracker::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_headers(MAX_HEADERS)
        .max_buf_size(MAX_HEAD_BYTES.max(8192));
    let mut next_id = 0u64;
    loop {
        let (stream, remote) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Usually out of file descriptors: wait instead of spinning.
                    warn!(error = %e, "cannot accept an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        next_id += 1;
        let id = next_id;
        let Some((busy, evict)) = registry.admit(id) else {
            debug!(%remote, "all {MAX_CONNECTIONS} HTTP connections are busy; closing a new one");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let guard = Busy::enter(&busy);
            let req = req.map(|b| Body::new(Deadline::new(b, BODY_TIMEOUT)));
            let app = app.clone();
            async move {
                let resp = app.oneshot(req).await.unwrap_or_else(|e: Infallible| match e {});
                Ok::<_, Infallible>(resp.map(|b| Tracked { inner: b, _busy: guard }))
            }
        });
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let (registry, shutdown) = (registry.clone(), shutdown.clone());
        tasks.spawn(async move {
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        debug!(%remote, error = %e, "HTTP connection ended");
                    }
                }
                _ = evict.cancelled() => debug!(%remote, "evicted an idle HTTP connection to make room"),
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(SHUTDOWN_WAIT, conn.as_mut()).await;
                }
            }
            registry.remove(id);
        });
    }
    tasks.close();
    if tokio::time::timeout(SHUTDOWN_WAIT + Duration::from_millis(500), tasks.wait()).await.is_err() {
        debug!(open = registry.len(), "HTTP connections still open at shutdown");
    }
}

/// One request in service on a connection, until its response is sent.
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn enter(count: &Arc<AtomicUsize>) -> Busy {
        count.fetch_add(1, Ordering::AcqRel);
        Busy(count.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its connection counted as busy until it is
/// sent (or dropped).
struct Tracked {
    inner: Body,
    _busy: Busy,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The request body took longer than [`BODY_TIMEOUT`] to arrive.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {BODY_TIMEOUT:?}")]
pub struct BodyTimeout;

/// A request body that fails once its deadline passes.
struct Deadline {
    inner: Incoming,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Deadline {
    fn new(inner: Incoming, limit: Duration) -> Deadline {
        Deadline { inner, sleep: Box::pin(tokio::time::sleep(limit)) }
    }
}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.inner.is_end_stream() {
            return Poll::Ready(None);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTimeout))));
        }
        Pin::new(&mut self.inner).poll_frame(cx).map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_house_evicts_the_oldest_idle_connection_and_never_a_busy_one() {
        let r = Registry::default();
        let mut slots: Vec<_> = (0..MAX_CONNECTIONS as u64).map(|i| r.admit(i).unwrap()).collect();
        // The two oldest are serving requests.
        let _b0 = Busy::enter(&slots[0].0);
        let _b1 = Busy::enter(&slots[1].0);
        let extra = r.admit(1000).unwrap();
        assert!(slots[2].1.is_cancelled(), "the oldest idle one goes");
        assert!(!slots[0].1.is_cancelled() && !slots[1].1.is_cancelled());
        assert_eq!(r.len(), MAX_CONNECTIONS);
        // When every connection is busy, the newcomer is refused.
        let guards: Vec<_> = slots.iter().skip(3).map(|s| Busy::enter(&s.0)).collect();
        let _e = Busy::enter(&extra.0);
        assert!(r.admit(1001).is_none());
        drop(guards);
        assert!(r.admit(1002).is_some());
        assert!(slots[3].1.is_cancelled());
        slots.clear();
    }
}
