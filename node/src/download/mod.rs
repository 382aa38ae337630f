//! The download manager: a persistent, verified, crash-safe queue.
//!
//! # Layout
//! - [`store`]: request and file records in LMDB (the queue itself).
//! - [`fetch`]: one attempt at one file: `.part`, resume, BLAKE3, final name.
//! - [`names`]: which local names a peer's paths may become.
//! - this file: the scheduler, the listers, retries, pause/resume/cancel,
//!   progress and events.
//!
//! Goals:
//! - Survive anything: requests and each of their files live in LMDB with a
//!   state; after a restart (or `kill -9`, or power loss) the queue resumes
//!   on its own, and `.part` files resume from their last fsync.
//! - Bounded whatever the queue: a directory is listed a page (≤ 2,000
//!   entries) at a time straight into LMDB; the scheduler looks at a
//!   bounded window of each request's files; memory holds one record per
//!   request and one per *active* file.
//! - Fair and limited: at most `download_slots` files transfer at once, and
//!   at most `peer_download_slots` from one peer; requests run in their order
//!   ("move to top" reorders).
//! - Patient: a peer that is away leaves its files queued ("waiting for the
//!   peer"), for hours if need be; when it reconnects they continue. Failures
//!   while it is connected are retried with capped, jittered backoff; a file
//!   that keeps failing ends `failed` with its reason and does not hold up
//!   the rest.
//!
//! Non-goals (yet): fetching one file from several peers at once; a
//! bandwidth limit on the receiving side (the sender has `--max-upload-rate`).
//!
//! # Tasks and channels
//! - The scheduler task wakes on `Downloads::wake` (a `Notify`, which
//!   keeps one pending wake-up, so no event is lost and none queue up), when
//!   a peer connects (a `watch` of [`Peers::connections`]), or every
//!   [`SCHEDULE_EVERY`], and starts listers and file workers.
//! - One lister task per request whose listing is incomplete and whose peer
//!   is connected; one worker task per active file. Each has a cancellation
//!   token, a child of the node's shutdown token.
//! - A worker hands its outcome to a [`group::Group`] that one blocking
//!   task drains, booking every outcome waiting in one transaction; small
//!   files are written, synced and named the same way by
//!   [`small::Publisher`]. Each active file has at most one item waiting.
//! - Progress goes out on a bounded broadcast ([`EVENT_CAPACITY`]): a
//!   listener that falls behind loses old updates and is told so; nothing
//!   here ever waits for a listener.

pub mod fetch;
pub mod group;
pub mod names;
pub mod small;
pub mod store;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdp_proto::api::{DownloadEvent, DownloadInfo, DownloadState, EntryKind, FileInfo, FileState, FilesPage};
use hdp_proto::id::PeerId;
use hdp_proto::path::SharePath;
use hdp_proto::wire::{LsRequest, MAX_LS_ENTRIES};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::index::Index;
use crate::index::keys::path_key;
use crate::peers::{Peers, jitter};
use crate::remote::{self, LsResponse};
use crate::{lock, unix_ms};
pub use fetch::FileError;
use fetch::{Fetch, Fetched, SMALL_FILE, discard_part, finish_published, local_io};
pub use names::{UnsafeName, ensure_dirs, local_path_for, on_disk, part_path, safe_component, wire_name};
use store::{FileRecord, RequestRecord, Store, StoreError};

/// Files transferring at once, from all peers, unless configured.
pub const DEFAULT_DOWNLOAD_SLOTS: usize = 4;
/// Files transferring at once from one peer, unless configured: its upload
/// slots are shared with everyone else it serves.
pub const DEFAULT_PEER_DOWNLOAD_SLOTS: usize = 2;
/// Small files ([`fetch::SMALL_FILE`] or less) share download slots: a
/// slot holds this many KiB of them (each counted as at least 4 KiB), held
/// in memory while they are fetched. A small file costs a round trip, not a
/// link's worth of bytes, so one at a time per slot would leave a long link
/// idle: with the default 2 slots per peer, 512 files of 4 KiB may be in
/// flight from one peer, at most 2 MiB. Any other file takes a whole slot.
pub const SLOT_KIB: usize = 1024;
/// Requests not yet done or failed, at most.
pub const MAX_REQUESTS: usize = 1_000;
/// Finished requests remembered; older ones are forgotten (their files stay).
pub const MAX_FINISHED: usize = 200;
/// Failed attempts at a file, while its peer was connected, before it fails.
pub const MAX_ATTEMPTS: u32 = 30;
/// Hash mismatches tolerated per file before it fails: a file that keeps
/// arriving different from what its sender hashed is changing under the
/// sender, or the sender is faulty.
pub const MAX_MISMATCHES: u32 = 3;
/// Longest wait between two attempts at a file.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);
/// Longest wait between two attempts at a listing page.
pub const MAX_LIST_DELAY: Duration = Duration::from_secs(60);
/// File records the scheduler reads per request per pass, at most.
pub const SCAN_BUDGET: usize = 1_024;
/// Files per page of `GET /api/downloads/{id}/files`, at most.
pub const MAX_FILES_PAGE: usize = 1_000;
/// Capacity of the event broadcast: a listener that falls further behind
/// loses old updates (and is told how many); the sender never waits.
pub const EVENT_CAPACITY: usize = 256;
/// How often progress (bytes, rate, ETA) of active requests is published.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// The scheduler runs at least this often (peers coming back, retry delays).
pub const SCHEDULE_EVERY: Duration = Duration::from_secs(1);
/// After a wake-up, the scheduler waits this long for more to happen
/// before its pass (each pass reads the queue from LMDB).
pub const SCHEDULE_GATHER: Duration = Duration::from_millis(5);
/// How long cancel waits for a file's transfer to stop.
const STOP_WAIT: Duration = Duration::from_secs(30);

/// A download could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum StartDownloadError {
    #[error(transparent)]
    Peer(#[from] crate::peers::ResolveError),
    #[error("invalid path: {0}")]
    Path(String),
    #[error("cannot create the download dir {path}: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
    #[error("{MAX_REQUESTS} downloads are already queued; wait for some to finish or cancel some")]
    TooMany,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Pause, resume, cancel, retry or reorder could not be done.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no download {0}: `hdp downloads` lists them")]
    NotFound(u64),
    #[error("download {0} has no file {1}")]
    NoFile(u64, u64),
    #[error("download {id} is {state}: {hint}")]
    State { id: u64, state: &'static str, hint: &'static str },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A file transferring now.
struct Active {
    path: String,
    local: PathBuf,
    size: u64,
    /// Bytes on disk; written by the worker, read by the progress ticker.
    progress: Arc<AtomicU64>,
    stop: CancellationToken,
    handle: Option<tokio::task::JoinHandle<()>>,
    last: Option<u64>,
    rate: f64,
}

/// A request as the running node sees it.
struct Req {
    rec: RequestRecord,
    active: BTreeMap<u64, Active>,
    /// Set while a lister task runs.
    lister: Option<CancellationToken>,
    /// Files before this seq are finished; the scheduler starts looking here.
    low_water: u64,
    /// Why nothing moves (peer away).
    waiting: Option<String>,
    /// The last transient error, until something succeeds.
    note: Option<String>,
}

#[derive(Default)]
struct State {
    reqs: BTreeMap<u64, Req>,
}

impl small::Finals for Downloads {
    fn record_finals(&self, names: &[(u64, u64, String)]) -> Vec<Result<(), FileError>> {
        self.finals(names)
    }
}

/// The outcome of one attempt at a file, waiting to be booked.
struct Outcome {
    id: u64,
    seq: u64,
    file: FileRecord,
    outcome: Result<Fetched, FileError>,
    stopped: bool,
}

/// All downloads of this node.
pub struct Downloads {
    peers: Arc<Peers>,
    index: Index,
    store: Store,
    /// Where new requests land (`PUT /api/settings` changes it); each
    /// request keeps the dir it was made with ([`RequestRecord::dir`]).
    dir: Mutex<PathBuf>,
    /// The dir at start, for records that do not name one.
    start_dir: PathBuf,
    global_slots: AtomicUsize,
    peer_slots: AtomicUsize,
    state: Mutex<State>,
    /// `.part` files being written now.
    active_parts: Mutex<HashSet<PathBuf>>,
    /// `--max-download-rate`: every received byte is taken from it.
    rate: crate::serve::RateLimit,
    /// Outcomes waiting for the booking job ([`Downloads::submit`]), one
    /// job at a time: at most one per active file.
    pending: group::Group<Outcome>,
    /// Writes, syncs and names small files in groups.
    publisher: Arc<small::Publisher>,
    events: broadcast::Sender<DownloadEvent>,
    /// Wakes the scheduler: something finished, was queued or resumed.
    wake: Notify,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl std::fmt::Debug for Downloads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downloads").field("dir", &*lock(&self.dir)).finish_non_exhaustive()
    }
}

/// Slot units (KiB, see [`SLOT_KIB`]) a file of `size` bytes takes while
/// it transfers.
fn slot_cost(size: u64) -> usize {
    if size <= SMALL_FILE { (size.div_ceil(1024) as usize).max(4) } else { SLOT_KIB }
}

/// Delay before attempt `n + 1` at a file: 1 s doubling to [`MAX_RETRY_DELAY`], jittered.
fn retry_delay(attempts: u32) -> Duration {
    let d = Duration::from_secs(1u64 << attempts.saturating_sub(1).min(10));
    jitter(d.min(MAX_RETRY_DELAY) * 2)
}

impl Downloads {
    /// Loads the queue and starts its scheduler and progress ticker.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        peers: Arc<Peers>,
        index: Index,
        dir: PathBuf,
        global_slots: usize,
        peer_slots: usize,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Result<Arc<Self>, StoreError> {
        let store = Store::open(&index)?;
        let mut state = State::default();
        for mut rec in store.load()? {
            // Records from before the dir was stored get the dir they were
            // made with (the only one there was), so changing the setting
            // later does not move them.
            if rec.dir.is_none()
                && let Some(d) = dir.to_str()
            {
                rec.dir = Some(d.to_owned());
                if let Err(e) = store.put_request(&rec) {
                    warn!(id = rec.id, error = %e, "cannot record a download's dir");
                }
            }
            state.reqs.insert(
                rec.id,
                Req { rec, active: BTreeMap::new(), lister: None, low_water: 0, waiting: None, note: None },
            );
        }
        let unfinished = state.reqs.values().filter(|r| !r.rec.state.is_finished()).count();
        if unfinished > 0 {
            info!(requests = unfinished, "resuming the download queue");
        }
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let this = Arc::new(Downloads {
            peers,
            index,
            store,
            dir: Mutex::new(dir.clone()),
            start_dir: dir,
            global_slots: AtomicUsize::new(global_slots.max(1)),
            peer_slots: AtomicUsize::new(peer_slots.max(1)),
            state: Mutex::new(state),
            active_parts: Mutex::new(HashSet::new()),
            rate: crate::serve::RateLimit::new(None),
            pending: group::Group::new(1, usize::MAX),
            publisher: Arc::new(small::Publisher::default()),
            events,
            wake: Notify::new(),
            shutdown,
            tasks,
        });
        let s = this.clone();
        this.tasks.spawn(async move { s.schedule_loop().await });
        let s = this.clone();
        this.tasks.spawn(async move { s.progress_loop().await });
        Ok(this)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<DownloadEvent> {
        self.events.subscribe()
    }

    /// Changes the limits on active files; takes effect at the next file.
    pub fn set_limits(&self, global: usize, per_peer: usize) {
        self.global_slots.store(global.max(1), Ordering::Relaxed);
        self.peer_slots.store(per_peer.max(1), Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// The limits on active files: (in all, per peer).
    pub fn limits(&self) -> (usize, usize) {
        (self.global_slots.load(Ordering::Relaxed), self.peer_slots.load(Ordering::Relaxed))
    }

    /// The dir new downloads land in.
    pub fn dir(&self) -> PathBuf {
        lock(&self.dir).clone()
    }

    /// Changes where new downloads land; queued and running ones keep theirs.
    pub fn set_dir(&self, dir: PathBuf) {
        *lock(&self.dir) = dir;
    }

    /// The dir a request's files land in.
    fn dir_of(&self, rec: &RequestRecord) -> PathBuf {
        rec.dir.as_ref().map_or_else(|| self.start_dir.clone(), PathBuf::from)
    }

    /// Changes the download limit; running downloads slow down or speed up
    /// within a second.
    pub fn set_max_download_rate(&self, rate: Option<u64>) {
        self.rate.set(rate);
    }

    pub fn list(&self) -> Vec<DownloadInfo> {
        let st = lock(&self.state);
        st.reqs.values().map(|r| self.info(r)).collect()
    }

    pub fn get(&self, id: u64) -> Option<DownloadInfo> {
        lock(&self.state).reqs.get(&id).map(|r| self.info(r))
    }

    fn local_of(&self, rec: &RequestRecord, rel: &[String]) -> PathBuf {
        let mut p = self.dir_of(rec);
        p.extend(rel.iter().map(|c| on_disk(c)));
        p
    }

    fn info(&self, r: &Req) -> DownloadInfo {
        let rec = &r.rec;
        let live: u64 = r.active.values().map(|a| a.progress.load(Ordering::Relaxed)).sum();
        let rate = r.active.values().map(|a| a.rate).sum::<f64>() as u64;
        let bytes_done = rec.bytes_done.saturating_add(live);
        let active: Vec<FileInfo> = r
            .active
            .iter()
            .map(|(seq, a)| FileInfo {
                seq: *seq,
                path: a.path.clone(),
                local_path: wire_name(a.local.as_os_str()),
                state: FileState::Active,
                size: a.size,
                bytes_done: a.progress.load(Ordering::Relaxed),
                rate: a.rate as u64,
                error: None,
                attempts: 0,
            })
            .collect();
        DownloadInfo {
            id: rec.id,
            peer: rec.peer,
            peer_name: rec.peer.friendly_name(),
            path: rec.path.clone(),
            local_path: wire_name(self.dir_of(rec).join(on_disk(&rec.local_name)).as_os_str()),
            state: if rec.state == DownloadState::Queued && !r.active.is_empty() {
                DownloadState::Active
            } else {
                rec.state
            },
            files_done: rec.files_done,
            files_total: rec.files_total,
            files_failed: rec.files_failed,
            bytes_done,
            bytes_total: rec.bytes_total,
            rate,
            eta_secs: (rate > 0 && rec.listed).then(|| rec.bytes_total.saturating_sub(bytes_done) / rate),
            listing: !rec.listed && !rec.state.is_finished(),
            waiting: r.waiting.clone(),
            current: active.first().map(|f| f.path.clone()),
            active,
            error: rec.error.clone().or_else(|| r.note.clone()),
        }
    }

    fn send(&self, infos: Vec<DownloadInfo>) {
        for i in infos {
            let _ = self.events.send(DownloadEvent::Update(Box::new(i)));
        }
    }

    /// Queues `path` from `peer` (name or id prefix of a connected peer).
    pub fn queue(&self, peer: &str, path: &str, paused: bool) -> Result<DownloadInfo, StartDownloadError> {
        let pc = self.peers.resolve(peer)?;
        let path = SharePath::parse(path).map_err(|e| StartDownloadError::Path(e.to_string()))?;
        let Some((_, name)) = path.split_last() else {
            return Err(StartDownloadError::Path("name a share, directory or file, not the root".into()));
        };
        safe_component(name).map_err(|e| StartDownloadError::Path(e.to_string()))?;
        let dir = self.dir();
        std::fs::create_dir_all(&dir).map_err(|source| StartDownloadError::Dir { path: dir.clone(), source })?;
        let mut st = lock(&self.state);
        if st.reqs.values().filter(|r| !r.rec.state.is_finished()).count() >= MAX_REQUESTS {
            return Err(StartDownloadError::TooMany);
        }
        let order = st.reqs.values().map(|r| r.rec.order).max().unwrap_or(0).saturating_add(1);
        let state = if paused { DownloadState::Paused } else { DownloadState::Queued };
        let mut rec = RequestRecord::new(pc.id, path.to_string(), name.to_owned(), order, state);
        // A dir that is not UTF-8 cannot be stored (JSON); records without
        // a dir use the start dir.
        rec.dir = dir.to_str().map(str::to_owned);
        self.store.create(&mut rec)?;
        info!(id = rec.id, peer = %pc.id, path = %rec.path, "download queued");
        let req = Req { rec, active: BTreeMap::new(), lister: None, low_water: 0, waiting: None, note: None };
        let info = self.info(&req);
        st.reqs.insert(req.rec.id, req);
        drop(st);
        self.send(vec![info.clone()]);
        self.wake.notify_one();
        Ok(info)
    }

    async fn schedule_loop(self: Arc<Self>) {
        let mut connections = self.peers.connections();
        loop {
            self.schedule();
            tokio::select! {
                _ = self.wake.notified() => {
                    // Files finishing together are scheduled in one pass: a
                    // folder of small files finishes hundreds a second.
                    tokio::time::sleep(SCHEDULE_GATHER).await;
                }
                _ = connections.changed() => {}
                _ = tokio::time::sleep(SCHEDULE_EVERY) => {}
                _ = self.shutdown.cancelled() => return,
            }
        }
    }

    /// One pass over the queue in order: starts listers for incomplete
    /// listings and workers for runnable files within the limits, and
    /// finishes requests with nothing left to do.
    fn schedule(self: &Arc<Self>) {
        if self.shutdown.is_cancelled() {
            return;
        }
        let now = unix_ms();
        // Slots are counted in KiB of small files (see `slot_cost`).
        let global = self.global_slots.load(Ordering::Relaxed) * SLOT_KIB;
        let per_peer = self.peer_slots.load(Ordering::Relaxed) * SLOT_KIB;
        let mut changed = Vec::new();
        let mut finished_any = false;
        let mut st = lock(&self.state);
        let units = |r: &Req| r.active.values().map(|a| slot_cost(a.size)).sum::<usize>();
        let mut running: usize = st.reqs.values().map(units).sum();
        let mut per: HashMap<PeerId, usize> = HashMap::new();
        for r in st.reqs.values() {
            *per.entry(r.rec.peer).or_default() += units(r);
        }
        let mut order: Vec<(i64, u64)> =
            st.reqs.values().filter(|r| !r.rec.state.is_finished()).map(|r| (r.rec.order, r.rec.id)).collect();
        order.sort_unstable();
        for (_, id) in order {
            let Some(req) = st.reqs.get_mut(&id) else { continue };
            let conn = self.peers.connection(&req.rec.peer);
            let waiting = conn.is_none().then(|| format!("waiting for {} to reconnect", req.rec.peer.friendly_name()));
            if waiting != req.waiting {
                req.waiting = waiting;
                changed.push(id);
            }
            let Some(conn) = conn else { continue };
            if !req.rec.listed && req.lister.is_none() {
                let stop = self.shutdown.child_token();
                req.lister = Some(stop.clone());
                let this = self.clone();
                self.tasks.spawn(async move { this.run_lister(id, stop).await });
            }
            if req.rec.state != DownloadState::Queued {
                continue;
            }
            let peer_running = per.entry(req.rec.peer).or_default();
            let room = global.saturating_sub(running).min(per_peer.saturating_sub(*peer_running));
            if room > 0 {
                let active = &req.active;
                match self.store.next_runnable(id, req.low_water, room, SCAN_BUDGET, now, |s| active.contains_key(&s)) {
                    Ok(scan) => {
                        req.low_water = scan.low_water;
                        let mut room = room;
                        for (seq, file) in scan.files {
                            // In queue order: a big file waits for a whole
                            // slot rather than being overtaken forever.
                            let cost = slot_cost(file.size);
                            if cost > room {
                                break;
                            }
                            room -= cost;
                            self.spawn_file(req, seq, file, conn.conn.clone());
                            running += cost;
                            *peer_running += cost;
                            changed.push(id);
                        }
                    }
                    Err(e) => warn!(id, error = %e, "cannot read the download queue"),
                }
            }
            let rec = &req.rec;
            if rec.listed && req.active.is_empty() && rec.files_waiting() == 0 && rec.files_paused == 0 {
                let mut done = rec.clone();
                if rec.files_failed == 0 {
                    done.state = DownloadState::Done;
                    done.error = None;
                } else {
                    done.state = DownloadState::Failed;
                    done.error = Some(format!(
                        "{} of {} file(s) failed; `hdp downloads {id}` shows why, `hdp retry {id}` tries them again",
                        rec.files_failed, rec.files_total
                    ));
                }
                match self.store.put_request(&done) {
                    Ok(()) => {
                        info!(
                            id,
                            state = done.state.as_str(),
                            files = done.files_done,
                            bytes = done.bytes_done,
                            failed = done.files_failed,
                            "download finished"
                        );
                        req.rec = done;
                        req.note = None;
                        changed.push(id);
                        finished_any = true;
                    }
                    Err(e) => warn!(id, error = %e, "cannot record a finished download"),
                }
            }
        }
        changed.dedup();
        let infos: Vec<DownloadInfo> = changed.iter().filter_map(|id| st.reqs.get(id)).map(|r| self.info(r)).collect();
        let forgotten = if finished_any { Self::forget_old(&mut st) } else { Vec::new() };
        drop(st);
        self.send(infos);
        for id in forgotten {
            if let Err(e) = self.store.delete(id) {
                warn!(id, error = %e, "cannot forget a finished download");
            }
            let _ = self.events.send(DownloadEvent::Removed { id });
        }
    }

    /// Drops the oldest finished requests beyond [`MAX_FINISHED`] from memory.
    fn forget_old(st: &mut State) -> Vec<u64> {
        let finished: Vec<u64> = st.reqs.values().filter(|r| r.rec.state.is_finished()).map(|r| r.rec.id).collect();
        let old: Vec<u64> = finished.iter().take(finished.len().saturating_sub(MAX_FINISHED)).copied().collect();
        for id in &old {
            st.reqs.remove(id);
        }
        old
    }

    fn spawn_file(self: &Arc<Self>, req: &mut Req, seq: u64, file: FileRecord, conn: quinn::Connection) {
        let id = req.rec.id;
        let peer = req.rec.peer;
        let stop = self.shutdown.child_token();
        let progress = Arc::new(AtomicU64::new(0));
        let active = Active {
            path: file.path.clone(),
            local: self.local_of(&req.rec, &file.rel),
            size: file.size,
            progress: progress.clone(),
            stop: stop.clone(),
            handle: None,
            last: None,
            rate: 0.0,
        };
        let this = self.clone();
        let dir = self.dir_of(&req.rec);
        // The worker reports back under the state lock, which the caller
        // holds until `handle` is stored.
        let handle = self.tasks.spawn(async move {
            let outcome = this.fetch_one(id, seq, &file, peer, &conn, &dir, &progress, &stop).await;
            let stopped = stop.is_cancelled();
            this.submit(Outcome { id, seq, file, outcome, stopped });
        });
        req.active.insert(seq, Active { handle: Some(handle), ..active });
    }

    #[allow(clippy::too_many_arguments)]
    async fn fetch_one(
        self: &Arc<Self>,
        id: u64,
        seq: u64,
        file: &FileRecord,
        peer: PeerId,
        conn: &quinn::Connection,
        base: &std::path::Path,
        progress: &AtomicU64,
        stop: &CancellationToken,
    ) -> Result<Fetched, FileError> {
        let Some((name, dirs)) = file.rel.split_last() else {
            return Err(FileError::Permanent(file.error.clone().unwrap_or_else(|| "unsafe name from peer".into())));
        };
        // Where a small file goes (it makes its directories itself, with
        // the file, on the blocking pool).
        let mut small_target = base.to_path_buf();
        small_target.extend(dirs);
        small_target.push(name);
        let fetch_at = |target| Fetch {
            index: &self.index,
            conn,
            peer,
            remote_path: &file.path,
            target,
            progress,
            stop,
            active_parts: &self.active_parts,
            rate: &self.rate,
        };
        if file.size <= SMALL_FILE && file.final_name.is_none() {
            let parts = (base.to_path_buf(), dirs.to_vec(), name.clone());
            let finals: Arc<dyn small::Finals> = self.clone();
            if let Some(done) = fetch_at(&small_target).run_small((&self.publisher, finals), (id, seq), parts).await? {
                return Ok(done);
            }
        }
        let (base, dirs, name, final_name) = (base.to_path_buf(), dirs.to_vec(), name.clone(), file.final_name.clone());
        let prepared = tokio::task::spawn_blocking(move || {
            // The download dir may have been removed since: make it again.
            std::fs::create_dir_all(&base).map_err(|e| local_io("cannot create the download dir", &base, e))?;
            let dir = ensure_dirs(&base, &dirs).map_err(|e| local_io("cannot create a directory in", &base, e))?;
            let target = dir.join(on_disk(&name));
            let published = final_name.as_deref().and_then(|n| finish_published(&target, n));
            Ok::<_, FileError>((target, published))
        })
        .await;
        let (target, published) = prepared.unwrap_or_else(|e| Err(fetch::lost_task(e)))?;
        if let Some(final_path) = published {
            return Ok(Fetched { final_path, size: file.size });
        }
        let this = self.clone();
        fetch_at(&target).run(move |name| this.record_final(id, seq, name)).await
    }

    /// Records the final names complete small files are about to get, in
    /// one transaction ([`small::Finals`]).
    fn finals(&self, names: &[(u64, u64, String)]) -> Vec<Result<(), FileError>> {
        let st = lock(&self.state);
        let store_err = |e: &StoreError| FileError::Permanent(e.to_string());
        let mut results: Vec<Result<(), FileError>> = Vec::with_capacity(names.len());
        let mut files: Vec<(u64, u64, FileRecord)> = Vec::with_capacity(names.len());
        for (id, seq, name) in names {
            let found = match (st.reqs.get(id), self.store.file(*id, *seq)) {
                (Some(_), Ok(Some(f))) => Ok(f),
                (None, _) | (_, Ok(None)) => Err(FileError::Stopped),
                (_, Err(e)) => Err(store_err(&e)),
            };
            results.push(found.map(|mut f| {
                f.final_name = Some(name.clone());
                files.push((*id, *seq, f));
            }));
        }
        let written: Vec<(&RequestRecord, u64, &FileRecord)> =
            files.iter().filter_map(|(id, seq, f)| st.reqs.get(id).map(|r| (&r.rec, *seq, f))).collect();
        if let Err(e) = self.store.put_files(&written) {
            for r in results.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(store_err(&e));
            }
        }
        results
    }

    /// Records the final name a complete file is about to get.
    fn record_final(&self, id: u64, seq: u64, name: &str) -> Result<(), FileError> {
        let st = lock(&self.state);
        let req = st.reqs.get(&id).ok_or(FileError::Stopped)?;
        let store_err = |e: StoreError| FileError::Permanent(e.to_string());
        let mut f = self.store.file(id, seq).map_err(store_err)?.ok_or(FileError::Stopped)?;
        f.final_name = Some(name.to_owned());
        self.store.put_file(&req.rec, seq, &f).map_err(store_err)
    }

    /// Hands the outcome of one attempt at a file to the booking job, which
    /// commits the outcomes that arrived meanwhile in one LMDB transaction
    /// (group commit: thousands of small files must not cost a commit each).
    /// The pending list is bounded by the active files: each has at most one
    /// outcome waiting, and its slot is only freed once it is booked.
    fn submit(self: &Arc<Self>, done: Outcome) {
        if self.pending.push(done) {
            let this = self.clone();
            // Booking commits to LMDB: not on the async thread.
            self.tasks.spawn_blocking(move || {
                while let Some(batch) = this.pending.next() {
                    this.book(batch);
                }
            });
        }
    }

    /// Books the outcomes of attempts at files, in one transaction.
    fn book(&self, batch: Vec<Outcome>) {
        let mut st = lock(&self.state);
        // Request records as they will be once the batch is committed.
        let mut recs: BTreeMap<u64, RequestRecord> = BTreeMap::new();
        let mut files: Vec<(u64, u64, FileRecord)> = Vec::new();
        let mut touched: Vec<u64> = Vec::new();
        for Outcome { id, seq, file, outcome, stopped } in batch {
            let Some(req) = st.reqs.get_mut(&id) else { continue };
            req.active.remove(&seq);
            touched.push(id);
            if stopped || matches!(outcome, Err(FileError::Stopped)) {
                // Paused, cancelled or shutting down: whoever stopped it set
                // the state; the `.part` is kept.
                continue;
            }
            let mut f = match self.store.file(id, seq) {
                Ok(Some(f)) => f,
                _ => file,
            };
            let rec = recs.entry(id).or_insert_with(|| req.rec.clone());
            let connected = self.peers.connection(&rec.peer).is_some();
            let from = f.state;
            match outcome {
                Ok(done) => {
                    rec.count(Some(from), FileState::Cancelled, f.size);
                    rec.count(None, FileState::Done, done.size);
                    f.state = FileState::Done;
                    f.size = done.size;
                    f.error = None;
                    f.final_name = done.final_path.file_name().map(wire_name);
                    req.note = None;
                }
                Err(FileError::Stopped) => {}
                Err(FileError::Transient(e)) => {
                    if connected {
                        f.attempts += 1;
                    }
                    if f.attempts >= MAX_ATTEMPTS {
                        let e = format!("gave up after {MAX_ATTEMPTS} attempts: {e}");
                        warn!(id, file = %f.path, error = %e, "file failed");
                        rec.count(Some(from), FileState::Failed, f.size);
                        f.state = FileState::Failed;
                        f.error = Some(e);
                    } else {
                        let delay = retry_delay(f.attempts.max(1));
                        warn!(id, file = %f.path, attempt = f.attempts, error = %e, retry_in = ?delay, "will retry");
                        f.not_before_ms = unix_ms() + delay.as_millis() as u64;
                        req.note = Some(format!("retrying {} after: {e}", f.path));
                        f.error = Some(e);
                    }
                }
                Err(FileError::Mismatch(e)) => {
                    f.mismatches += 1;
                    if f.mismatches >= MAX_MISMATCHES {
                        let e = format!(
                            "{e}: gave up after {MAX_MISMATCHES} copies that did not match (the file may be \
                             changing on the peer)"
                        );
                        warn!(id, file = %f.path, error = %e, "file failed");
                        rec.count(Some(from), FileState::Failed, f.size);
                        f.state = FileState::Failed;
                        f.error = Some(e);
                    } else {
                        req.note = Some(format!("{}: {e}", f.path));
                        f.error = Some(e);
                    }
                }
                Err(FileError::Permanent(e)) => {
                    warn!(id, file = %f.path, error = %e, "file failed");
                    rec.count(Some(from), FileState::Failed, f.size);
                    f.state = FileState::Failed;
                    f.error = Some(e);
                }
            }
            files.push((id, seq, f));
        }
        if !files.is_empty() {
            let written: Vec<(&RequestRecord, u64, &FileRecord)> =
                files.iter().filter_map(|(id, seq, f)| recs.get(id).map(|r| (r, *seq, f))).collect();
            match self.store.put_files(&written) {
                Ok(()) => {
                    for (id, rec) in recs {
                        if let Some(req) = st.reqs.get_mut(&id) {
                            req.rec = rec;
                        }
                    }
                }
                Err(e) => {
                    warn!(files = files.len(), error = %e, "cannot record files' states; they will be fetched again")
                }
            }
        }
        touched.sort_unstable();
        touched.dedup();
        let infos: Vec<DownloadInfo> = touched.iter().filter_map(|id| st.reqs.get(id)).map(|r| self.info(r)).collect();
        drop(st);
        self.send(infos);
        self.wake.notify_one();
    }

    /// Lists the requested path page by page into the queue; ends when the
    /// listing is complete, the peer is away (the scheduler starts a new
    /// lister when it is back), or the request is cancelled.
    async fn run_lister(self: Arc<Self>, id: u64, stop: CancellationToken) {
        let mut delay = Duration::from_secs(1);
        loop {
            let Some((peer, path, cursor)) = lock(&self.state)
                .reqs
                .get(&id)
                .filter(|r| !r.rec.listed && !r.rec.state.is_finished())
                .map(|r| (r.rec.peer, r.rec.path.clone(), r.rec.cursor.clone()))
            else {
                break;
            };
            let Some(conn) = self.peers.connection(&peer) else { break };
            let req = LsRequest { path: path.clone(), recursive: true, search: None, cursor, limit: MAX_LS_ENTRIES };
            let res = tokio::select! {
                r = remote::ls(&conn.conn, req) => r,
                _ = stop.cancelled() => break,
            };
            // Adding a page makes directories and commits to LMDB: not on the
            // async thread. (A lost blocking task means the node is stopping.)
            let res = match res {
                Ok(page) => {
                    let this = self.clone();
                    let Ok(added) = tokio::task::spawn_blocking(move || this.add_page(id, page)).await else { break };
                    Ok(added)
                }
                Err(e) => Err(e),
            };
            let failure = match res {
                Ok(added) => match added {
                    Ok(true) => break,
                    Ok(false) => {
                        delay = Duration::from_secs(1);
                        continue;
                    }
                    Err(e) => FileError::Permanent(e),
                },
                Err(e) => FileError::from(e),
            };
            match failure {
                FileError::Transient(e) => {
                    warn!(id, path, error = %e, "listing failed; will retry");
                    if let Some(r) = lock(&self.state).reqs.get_mut(&id) {
                        r.note = Some(format!("listing: {e}"));
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(jitter(delay)) => {}
                        _ = stop.cancelled() => break,
                    }
                    delay = (delay * 2).min(MAX_LIST_DELAY);
                }
                e => {
                    warn!(id, path, error = %e, "listing failed");
                    let mut st = lock(&self.state);
                    if let Some(r) = st.reqs.get_mut(&id) {
                        let mut rec = r.rec.clone();
                        rec.state = DownloadState::Failed;
                        rec.error = Some(format!("cannot list {path} on the peer: {e}"));
                        if let Err(e) = self.store.put_request(&rec) {
                            warn!(id, error = %e, "cannot record a failed listing");
                        }
                        r.rec = rec;
                        for a in r.active.values() {
                            a.stop.cancel();
                        }
                        let info = self.info(r);
                        drop(st);
                        self.send(vec![info]);
                    }
                    break;
                }
            }
        }
        if let Some(r) = lock(&self.state).reqs.get_mut(&id) {
            r.lister = None;
        }
        self.wake.notify_one();
    }

    /// Stores one listing page; `Ok(true)` when the listing is complete.
    fn add_page(&self, id: u64, page: LsResponse) -> Result<bool, String> {
        let (requested, prev, base) = match lock(&self.state).reqs.get(&id) {
            Some(r) => (r.rec.path.clone(), r.rec.cursor.clone(), self.dir_of(&r.rec)),
            None => return Ok(true),
        };
        let requested = SharePath::parse(&requested).map_err(|e| e.to_string())?;
        if let (Some(c), Some(p)) = (&page.cursor, &prev)
            && path_key(c) <= path_key(p)
        {
            // A lying peer could keep us listing the same page for ever.
            return Err(format!("the peer's listing does not advance (cursor {c:?})"));
        }
        let mut files = Vec::new();
        for entry in page.entries {
            match (local_path_for(&requested, &entry.path), entry.kind) {
                (Err(e), _) => {
                    warn!(id, error = %e, "refusing an entry");
                    let mut f = FileRecord::queued(entry.path.clone(), Vec::new(), 0);
                    f.state = FileState::Failed;
                    f.error = Some(e.to_string());
                    files.push(f);
                }
                (Ok(rel), EntryKind::Dir) => {
                    std::fs::create_dir_all(&base)
                        .and_then(|()| ensure_dirs(&base, &rel))
                        .map_err(|e| format!("cannot create a directory in {}: {e}", base.display()))?;
                }
                (Ok(rel), EntryKind::File) => files.push(FileRecord::queued(entry.path.clone(), rel, entry.size)),
            }
        }
        let mut st = lock(&self.state);
        let Some(r) = st.reqs.get_mut(&id) else { return Ok(true) };
        let mut rec = r.rec.clone();
        let first = rec.next_seq;
        for f in &files {
            rec.count(None, f.state, f.size);
        }
        rec.next_seq += files.len() as u64;
        rec.listed = page.cursor.is_none();
        rec.cursor = page.cursor;
        self.store.add_page(&rec, first, &files).map_err(|e| e.to_string())?;
        r.rec = rec;
        r.note = None;
        let listed = r.rec.listed;
        let info = self.info(r);
        drop(st);
        self.send(vec![info]);
        self.wake.notify_one();
        Ok(listed)
    }

    async fn progress_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let secs = PROGRESS_EVERY.as_secs_f64();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.shutdown.cancelled() => return,
            }
            let mut st = lock(&self.state);
            let mut infos = Vec::new();
            for r in st.reqs.values_mut().filter(|r| !r.active.is_empty()) {
                for a in r.active.values_mut() {
                    let now = a.progress.load(Ordering::Relaxed);
                    if let Some(last) = a.last {
                        let inst = now.saturating_sub(last) as f64 / secs;
                        a.rate = if a.rate == 0.0 { inst } else { 0.7 * a.rate + 0.3 * inst };
                    }
                    // The first reading is the resume offset, not a rate.
                    a.last = Some(now);
                }
                infos.push(self.info(r));
            }
            drop(st);
            self.send(infos);
        }
    }

    fn with_req<T>(
        &self,
        id: u64,
        f: impl FnOnce(&mut Req) -> Result<T, ControlError>,
    ) -> Result<(T, DownloadInfo), ControlError> {
        let mut st = lock(&self.state);
        let req = st.reqs.get_mut(&id).ok_or(ControlError::NotFound(id))?;
        let out = f(req)?;
        let info = self.info(req);
        drop(st);
        self.send(vec![info.clone()]);
        self.wake.notify_one();
        Ok((out, info))
    }

    /// Stops a request's transfers (their `.part` files are kept) until resumed.
    pub fn pause(&self, id: u64) -> Result<DownloadInfo, ControlError> {
        self.with_req(id, |req| {
            match req.rec.state {
                DownloadState::Paused => return Ok(()),
                DownloadState::Queued | DownloadState::Active => {}
                s => {
                    return Err(ControlError::State {
                        id,
                        state: s.as_str(),
                        hint: "`hdp retry` queues failed files again",
                    });
                }
            }
            let mut rec = req.rec.clone();
            rec.state = DownloadState::Paused;
            self.store.put_request(&rec)?;
            req.rec = rec;
            for a in req.active.values() {
                a.stop.cancel();
            }
            info!(id, "download paused");
            Ok(())
        })
        .map(|(_, i)| i)
    }

    /// Lets a paused request continue where its files stopped.
    pub fn resume(&self, id: u64) -> Result<DownloadInfo, ControlError> {
        self.with_req(id, |req| {
            if req.rec.state != DownloadState::Paused {
                return Ok(());
            }
            let mut rec = req.rec.clone();
            rec.state = DownloadState::Queued;
            self.store.put_request(&rec)?;
            req.rec = rec;
            req.low_water = 0;
            info!(id, "download resumed");
            Ok(())
        })
        .map(|(_, i)| i)
    }

    /// Moves a request to the front of the queue.
    pub fn top(&self, id: u64) -> Result<DownloadInfo, ControlError> {
        let first = lock(&self.state).reqs.values().map(|r| r.rec.order).min().unwrap_or(0);
        self.with_req(id, |req| {
            if req.rec.order > first || first == i64::MIN {
                let mut rec = req.rec.clone();
                rec.order = first.saturating_sub(1);
                self.store.put_request(&rec)?;
                req.rec = rec;
            }
            Ok(())
        })
        .map(|(_, i)| i)
    }

    /// Queues a request's failed files (and a failed listing) again.
    pub fn retry(&self, id: u64) -> Result<DownloadInfo, ControlError> {
        let mut from = 0;
        loop {
            let page = self.store.files_page(id, from, MAX_FILES_PAGE)?;
            let Some(last) = page.last().map(|(s, _)| *s) else { break };
            for (seq, f) in page {
                if f.state == FileState::Failed && !f.rel.is_empty() {
                    self.set_file(id, seq, FileState::Queued)?;
                }
            }
            from = last + 1;
        }
        self.with_req(id, |req| {
            if req.rec.state == DownloadState::Failed {
                let mut rec = req.rec.clone();
                rec.state = DownloadState::Queued;
                rec.error = None;
                self.store.put_request(&rec)?;
                req.rec = rec;
            }
            req.low_water = 0;
            req.note = None;
            Ok(())
        })
        .map(|(_, i)| i)
    }

    /// Cancels a request: stops its transfers, deletes its `.part` files
    /// and forgets it. Files already complete stay.
    pub async fn cancel(&self, id: u64) -> Result<(), ControlError> {
        let req = lock(&self.state).reqs.remove(&id).ok_or(ControlError::NotFound(id))?;
        if let Some(l) = &req.lister {
            l.cancel();
        }
        for a in req.active.values() {
            a.stop.cancel();
        }
        for a in req.active.into_values() {
            if let Some(h) = a.handle {
                let _ = tokio::time::timeout(STOP_WAIT, h).await;
            }
        }
        let (store, index, dir) = (self.store.clone(), self.index.clone(), self.dir_of(&req.rec));
        let cleaned = tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            let mut from = 0;
            loop {
                let page = store.files_page(id, from, MAX_FILES_PAGE)?;
                let Some(last) = page.last().map(|(s, _)| *s) else { break };
                for (_, f) in page {
                    if f.state != FileState::Done && !f.rel.is_empty() {
                        let mut target = dir.clone();
                        target.extend(&f.rel);
                        discard_part(&index, &target);
                    }
                }
                from = last + 1;
            }
            store.delete(id)
        })
        .await;
        match cleaned {
            Ok(r) => r?,
            Err(_) => return Ok(()),
        }
        info!(id, "download cancelled");
        let _ = self.events.send(DownloadEvent::Removed { id });
        self.wake.notify_one();
        Ok(())
    }

    /// A page of a request's files, from seq `cursor` on.
    pub fn files(&self, id: u64, cursor: u64, limit: usize) -> Result<FilesPage, ControlError> {
        let limit = limit.clamp(1, MAX_FILES_PAGE);
        let st = lock(&self.state);
        let req = st.reqs.get(&id).ok_or(ControlError::NotFound(id))?;
        let page = self.store.files_page(id, cursor, limit + 1)?;
        let next = (page.len() > limit).then(|| page[limit].0);
        let files = page.into_iter().take(limit).map(|(seq, f)| self.file_info(req, seq, f)).collect();
        Ok(FilesPage { files, cursor: next })
    }

    /// Where file `seq` of download `id` lies on disk, only once it is
    /// `done` (its final name recorded); `None` otherwise. Reads LMDB: call it
    /// on the blocking pool.
    pub fn finished_path(&self, id: u64, seq: u64) -> Result<Option<PathBuf>, ControlError> {
        let Some(rec) = lock(&self.state).reqs.get(&id).map(|r| r.rec.clone()) else { return Ok(None) };
        let Some(f) = self.store.file(id, seq)? else { return Ok(None) };
        match (f.state, f.final_name) {
            (FileState::Done, Some(name)) if !f.rel.is_empty() && safe_component(&name).is_ok() => {
                let mut local = self.local_of(&rec, &f.rel);
                local.set_file_name(on_disk(&name));
                Ok(Some(local))
            }
            _ => Ok(None),
        }
    }

    fn file_info(&self, req: &Req, seq: u64, f: FileRecord) -> FileInfo {
        let mut local = self.local_of(&req.rec, &f.rel);
        if let (FileState::Done, Some(n)) = (f.state, &f.final_name) {
            local.set_file_name(on_disk(n));
        }
        let active = req.active.get(&seq);
        FileInfo {
            seq,
            local_path: if f.rel.is_empty() { String::new() } else { wire_name(local.as_os_str()) },
            state: if active.is_some() { FileState::Active } else { f.state },
            size: f.size,
            bytes_done: match (f.state, active) {
                (FileState::Done, _) => f.size,
                (_, Some(a)) => a.progress.load(Ordering::Relaxed),
                _ => 0,
            },
            rate: active.map_or(0, |a| a.rate as u64),
            error: f.error,
            attempts: f.attempts,
            path: f.path,
        }
    }

    /// Pauses (`Paused`) or queues again (`Queued`: resume or retry) one file.
    pub fn set_file(&self, id: u64, seq: u64, to: FileState) -> Result<FileInfo, ControlError> {
        self.change_file(id, seq, to).map(|(info, _)| info)
    }

    /// Cancels one file: stops its transfer and deletes its `.part`.
    pub async fn cancel_file(&self, id: u64, seq: u64) -> Result<FileInfo, ControlError> {
        let (info, handle) = self.change_file(id, seq, FileState::Cancelled)?;
        if let Some(h) = handle {
            let _ = tokio::time::timeout(STOP_WAIT, h).await;
        }
        if !info.local_path.is_empty() {
            let (index, target) = (self.index.clone(), PathBuf::from(&info.local_path));
            let _ = tokio::task::spawn_blocking(move || discard_part(&index, &target)).await;
        }
        Ok(info)
    }

    fn change_file(
        &self,
        id: u64,
        seq: u64,
        to: FileState,
    ) -> Result<(FileInfo, Option<tokio::task::JoinHandle<()>>), ControlError> {
        let mut st = lock(&self.state);
        let req = st.reqs.get_mut(&id).ok_or(ControlError::NotFound(id))?;
        let mut f = self.store.file(id, seq)?.ok_or(ControlError::NoFile(id, seq))?;
        let hint = match (f.state, to) {
            (FileState::Done, _) => Some("the file is complete; delete it yourself if you do not want it"),
            (FileState::Cancelled, _) => Some("queue the download again to fetch it"),
            (_, FileState::Queued) if f.rel.is_empty() => Some("its name is unsafe; it cannot be downloaded"),
            _ => None,
        };
        if let Some(hint) = hint {
            return Err(ControlError::State { id, state: f.state.as_str(), hint });
        }
        if f.state != to {
            if let Some(a) = req.active.get(&seq) {
                a.stop.cancel();
            }
            let mut rec = req.rec.clone();
            rec.count(Some(f.state), to, f.size);
            f.state = to;
            if to == FileState::Queued {
                f.attempts = 0;
                f.mismatches = 0;
                f.not_before_ms = 0;
                f.error = None;
                if rec.state == DownloadState::Failed {
                    rec.state = DownloadState::Queued;
                    rec.error = None;
                }
                req.low_water = req.low_water.min(seq);
            }
            self.store.put_file(&rec, seq, &f)?;
            req.rec = rec;
        }
        let handle =
            if to == FileState::Cancelled { req.active.get_mut(&seq).and_then(|a| a.handle.take()) } else { None };
        let info = self.file_info(req, seq, f);
        let req_info = self.info(req);
        drop(st);
        self.send(vec![req_info]);
        self.wake.notify_one();
        Ok((info, handle))
    }
}
