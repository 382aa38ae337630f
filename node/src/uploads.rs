//! What peers are reading from us now, and what they read last
//! (`GET /api/uploads`).
//!
//! [`crate::serve`] registers a read once it holds an upload slot and has
//! sent the header ([`Uploads::begin`]), reports every chunk it sends to
//! the returned [`UploadGuard`], and the guard moves the read into a small
//! ring of finished ones when it is dropped. Per chunk that is a few relaxed
//! atomic operations and no lock: the guard is the only writer of its
//! counters and works out the rate itself, about once a second; readers of
//! the list only load atomics. The registry holds one entry per upload slot
//! in use and at most [`FINISHED_KEPT`] finished reads.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdp_proto::api::UploadInfo;
use hdp_proto::id::PeerId;

use crate::index::scan::unix_now;
use crate::lock;

/// Finished reads remembered for the list, newest first; older ones are dropped.
pub const FINISHED_KEPT: usize = 50;
/// How often an upload's rate is recomputed (from the bytes sent since).
pub const RATE_WINDOW: Duration = Duration::from_secs(1);
/// An upload that sent nothing for this long shows a rate of 0.
const IDLE_AFTER: Duration = Duration::from_secs(3);

/// One read in progress; shared between its guard (the writer) and the list.
#[derive(Debug)]
struct Live {
    peer: PeerId,
    path: String,
    size: u64,
    offset: u64,
    length: u64,
    started: i64,
    sent: AtomicU64,
    /// Bytes per second over the last [`RATE_WINDOW`].
    rate: AtomicU64,
    /// When bytes last went out, in ms since [`Uploads::epoch`].
    touched_ms: AtomicU64,
}

/// The registry of uploads; see the module docs.
#[derive(Debug)]
pub struct Uploads {
    epoch: Instant,
    next_id: AtomicU64,
    /// Reads in progress, by registration order. Bounded by the upload slots.
    active: Mutex<BTreeMap<u64, Arc<Live>>>,
    /// Finished reads, newest first, at most [`FINISHED_KEPT`].
    done: Mutex<VecDeque<UploadInfo>>,
}

impl Default for Uploads {
    fn default() -> Self {
        Uploads {
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            active: Mutex::new(BTreeMap::new()),
            done: Mutex::new(VecDeque::with_capacity(FINISHED_KEPT)),
        }
    }
}

impl Uploads {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Registers a read that is about to send `length` bytes of the file
    /// `path` (of `size` bytes) from `offset`.
    pub fn begin(self: &Arc<Self>, peer: PeerId, path: String, size: u64, offset: u64, length: u64) -> UploadGuard {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let live = Arc::new(Live {
            peer,
            path,
            size,
            offset,
            length,
            started: unix_now(),
            sent: AtomicU64::new(0),
            rate: AtomicU64::new(0),
            touched_ms: AtomicU64::new(self.now_ms()),
        });
        lock(&self.active).insert(id, live.clone());
        UploadGuard { uploads: self.clone(), id, live, window_start: Instant::now(), window_bytes: 0, complete: false }
    }

    /// Reads in progress (oldest first), then finished ones (newest first),
    /// and the total rate of those in progress.
    pub fn list(&self) -> (Vec<UploadInfo>, u64) {
        let now = self.now_ms();
        let active: Vec<Arc<Live>> = lock(&self.active).values().cloned().collect();
        let mut out: Vec<UploadInfo> = active
            .iter()
            .map(|l| {
                let idle = now.saturating_sub(l.touched_ms.load(Ordering::Relaxed)) > IDLE_AFTER.as_millis() as u64;
                let rate = if idle { 0 } else { l.rate.load(Ordering::Relaxed) };
                l.info(rate, None)
            })
            .collect();
        let total = out.iter().map(|u| u.rate).sum();
        out.extend(lock(&self.done).iter().cloned());
        (out, total)
    }

    fn finish(&self, id: u64, complete: bool) {
        let Some(live) = lock(&self.active).remove(&id) else { return };
        let info = live.info(0, Some(complete));
        let mut done = lock(&self.done);
        if done.len() >= FINISHED_KEPT {
            done.pop_back();
        }
        done.push_front(info);
    }
}

impl Live {
    fn info(&self, rate: u64, finished: Option<bool>) -> UploadInfo {
        UploadInfo {
            peer: self.peer,
            peer_name: self.peer.friendly_name(),
            path: self.path.clone(),
            size: self.size,
            offset: self.offset,
            length: self.length,
            sent: self.sent.load(Ordering::Relaxed),
            rate,
            started: self.started,
            finished,
        }
    }
}

/// One registered read. Dropping it files the read as finished: sent in
/// full if [`UploadGuard::complete`] was called, else ended early.
#[derive(Debug)]
pub struct UploadGuard {
    uploads: Arc<Uploads>,
    id: u64,
    live: Arc<Live>,
    window_start: Instant,
    window_bytes: u64,
    complete: bool,
}

impl UploadGuard {
    /// Records `n` more bytes sent.
    pub fn sent(&mut self, n: u64) {
        self.live.sent.fetch_add(n, Ordering::Relaxed);
        self.live.touched_ms.store(self.uploads.now_ms(), Ordering::Relaxed);
        self.window_bytes += n;
        let elapsed = self.window_start.elapsed();
        if elapsed >= RATE_WINDOW {
            let rate = (self.window_bytes as f64 / elapsed.as_secs_f64()).round() as u64;
            self.live.rate.store(rate, Ordering::Relaxed);
            self.window_start = Instant::now();
            self.window_bytes = 0;
        }
    }

    /// Marks the read as sent in full.
    pub fn complete(mut self) {
        self.complete = true;
    }
}

impl Drop for UploadGuard {
    fn drop(&mut self) {
        self.uploads.finish(self.id, self.complete);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_then_finished_and_bounded() {
        let u = Arc::new(Uploads::default());
        let peer = PeerId([1; 32]);
        let mut g = u.begin(peer, "s/a".into(), 100, 0, 100);
        g.sent(40);
        let (list, _) = u.list();
        assert_eq!(list.len(), 1);
        assert_eq!((list[0].sent, list[0].finished), (40, None));
        assert_eq!(list[0].peer_name, peer.friendly_name());
        g.sent(60);
        g.complete();
        let early = u.begin(peer, "s/b".into(), 10, 0, 10);
        drop(early);
        let (list, rate) = u.list();
        assert_eq!(rate, 0);
        assert_eq!(
            list.iter().map(|i| (i.path.as_str(), i.finished)).collect::<Vec<_>>(),
            [("s/b", Some(false)), ("s/a", Some(true))]
        );
        for i in 0..FINISHED_KEPT + 10 {
            u.begin(peer, format!("s/{i}"), 1, 0, 1).complete();
        }
        let (list, _) = u.list();
        assert_eq!(list.len(), FINISHED_KEPT);
        assert_eq!(list[0].path, format!("s/{}", FINISHED_KEPT + 9));
    }
}
