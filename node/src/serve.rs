//! Serving peers' requests: `ls` from the index, `read` from shared files,
//! `hash` from the hash cache or by hashing the file (BLAKE3).
//!
//! Hashes are computed lazily: on demand, and by a background task
//! ([`Server::start_hasher`]) that works through files the cache does not
//! cover, one at a time and rate-limited, so browsing and uploads keep the
//! disk. Cached hashes are keyed by (path, size, mtime): an unchanged file is
//! never hashed twice, a changed one is hashed again.
//!
//! Every request stream is hostile until proven otherwise: the request frame
//! is bounded, paths go through `SharePath::parse`, only entries present in
//! the index are served, and the file actually opened must canonicalise to a
//! place inside its share's root (no `..`, no symlink leading out).
//!
//! A peer sees only the shares of the topics it proved on its connection:
//! every request asks [`Shares::visible`] (through [`Shares::hidden_from`]
//! and [`Shares::resolve_file`]), and an upload asks again after every
//! chunk once the share's topics or the connection's topics changed; one
//! that is no longer visible is reset with [`StreamCode::NotShared`].

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hdp_proto::api::{EntryKind, UploadsInfo};
use hdp_proto::id::PeerId;
use hdp_proto::path::SharePath;
use hdp_proto::wire::{
    HashReply, HashRequest, LsFrame, LsRequest, MAX_HASH_REPLY_FRAME, MAX_HELLO_FRAME, MAX_LS_ENTRIES, MAX_LS_FRAME,
    MAX_READ_HEADER_FRAME, MAX_REQUEST_FRAME, ReadHeader, ReadRequest, Request, RequestError, StreamCode, WireEntry,
};
use quinn::VarInt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::debug;

use crate::frames::{FrameError, read_frame, write_frame};
use crate::index::scan::mtime_ns;
use crate::index::{Index, LsError, LsRequest as IndexLs};
use crate::peers::ProvenTopics;
use crate::shares::{Shares, Viewer};
use crate::uploads::Uploads;

/// Bytes read from disk per step of an upload (one buffer per upload).
pub const READ_CHUNK: usize = 256 * 1024;
/// An upload the requester does not read for this long is dropped.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an upload whose requester stopped reading keeps its slot while
/// other requests wait for one. A friend who reads keeps its stream moving
/// (QUIC returns flow-control credit every round trip); a peer that opens
/// reads and never consumes them would otherwise starve every other friend.
pub const CONTENDED_STALL: Duration = Duration::from_secs(5);
/// How often a stalled upload looks again at whether others wait.
const STALL_CHECK: Duration = Duration::from_millis(500);
/// How long a read request waits for an upload slot before answering `Busy`.
pub const BUSY_WAIT: Duration = Duration::from_secs(5);
/// Longest a peer may take to send a request frame (at most 16 KiB) on a
/// stream it opened: a stream that trickles or never sends is reset, so it
/// holds no task. A real requester sends the frame at once.
pub const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Budget of encoded bytes per `ls` frame, under [`MAX_LS_FRAME`] with margin.
const LS_FRAME_BUDGET: usize = MAX_LS_FRAME / 2;

/// Serves requests of every connected peer.
#[derive(Debug)]
pub struct Server {
    index: Index,
    shares: Arc<Shares>,
    /// Concurrent uploads (`--upload-slots`, changeable at run time).
    upload_slots: Arc<UploadSlots>,
    /// Reads in progress and recently finished, for `GET /api/uploads`.
    uploads: Arc<Uploads>,
    /// Files hashed at once: hashing reads whole files, and a Pi's disk
    /// serves one sequential reader well. The background hasher takes it too.
    hash_slots: Arc<Semaphore>,
    /// `--max-upload-rate`, shared by all uploads (changeable at run time).
    rate: RateLimit,
    /// The node's shutdown: hashing stops between chunks.
    stop: tokio_util::sync::CancellationToken,
    /// Peers whose upload we dropped for not reading while others waited,
    /// and when; see [`STALL_PENALTY`]. At most [`MAX_PENALISED`] entries.
    penalised: Mutex<HashMap<PeerId, std::time::Instant>>,
}

/// How long a peer that let an upload stall while others waited for a slot
/// is answered `Busy` at once while every slot is taken: it cannot queue for
/// slots it would only sit on.
pub const STALL_PENALTY: Duration = Duration::from_secs(30);
/// Peers remembered as penalised at once (they are connected peers, at most
/// `--max-peers`; the bound only guards the map).
const MAX_PENALISED: usize = 1024;

/// A token bucket shared by every upload: bytes may be sent once the bucket
/// has them; it holds at most [`RATE_BURST`] worth of the rate. The rate can
/// change at any time (`PUT /api/settings`); 0 means unlimited, and then a
/// chunk costs one atomic load.
#[derive(Debug)]
pub struct RateLimit {
    /// Bytes per second; 0: unlimited.
    rate: AtomicU64,
    /// Bytes available (negative: owed by senders already sleeping) and when.
    bucket: Mutex<(f64, std::time::Instant)>,
    /// Bumped by every change of the limit, so sleeping uploads notice it.
    generation: AtomicU64,
}

/// How much unused rate the upload limit lets build up.
pub const RATE_BURST: Duration = Duration::from_millis(250);
/// The lowest upload limit accepted: below it, a few 256 KiB reads sharing
/// the limit would each stall longer than a downloader waits (60 s).
pub const MIN_UPLOAD_RATE: u64 = 64 << 10;
/// Longest single sleep of a limited upload; a new limit (or none) takes
/// effect on sleeping uploads within this.
const RATE_SLICE: Duration = Duration::from_millis(500);

impl RateLimit {
    pub fn new(rate: Option<u64>) -> Self {
        RateLimit {
            rate: AtomicU64::new(rate.unwrap_or(0)),
            bucket: Mutex::new((0.0, std::time::Instant::now())),
            generation: AtomicU64::new(0),
        }
    }

    pub fn get(&self) -> Option<u64> {
        Some(self.rate.load(Ordering::Relaxed)).filter(|r| *r > 0)
    }

    pub fn set(&self, rate: Option<u64>) {
        let mut b = crate::lock(&self.bucket);
        // Debts owed under the old rate are forgiven: a lower limit must not
        // stall uploads for what they sent before it.
        *b = (0.0, std::time::Instant::now());
        self.rate.store(rate.unwrap_or(0), Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// Charges `n` bytes to the bucket; returns how long the sender must
    /// wait before they may go out.
    fn charge(&self, n: usize) -> Duration {
        let Some(rate) = self.get() else { return Duration::ZERO };
        let rate = rate as f64;
        let mut b = crate::lock(&self.bucket);
        let now = std::time::Instant::now();
        let burst = rate * RATE_BURST.as_secs_f64();
        b.0 = (b.0 + now.duration_since(b.1).as_secs_f64() * rate).min(burst) - n as f64;
        b.1 = now;
        if b.0 < 0.0 { Duration::from_secs_f64(-b.0 / rate) } else { Duration::ZERO }
    }

    /// Waits until `n` more bytes may go out, in slices of at most
    /// [`RATE_SLICE`]; a changed limit forgives the rest of the wait.
    pub async fn take(&self, n: usize) {
        let generation = self.generation.load(Ordering::Relaxed);
        let mut wait = self.charge(n);
        while !wait.is_zero() {
            let nap = wait.min(RATE_SLICE);
            tokio::time::sleep(nap).await;
            if self.generation.load(Ordering::Relaxed) != generation {
                return;
            }
            wait -= nap;
        }
    }
}

/// The upload slots: a semaphore (a Pi's disk and uplink serve a few files
/// well and many files badly), resizable while uploads hold permits.
/// Growing adds permits; shrinking forgets the free ones at once and the
/// rest as their uploads end (`excess`), so no upload is cut short.
#[derive(Debug)]
struct UploadSlots {
    sem: Arc<Semaphore>,
    /// The number of slots asked for.
    target: AtomicUsize,
    /// Permits still to forget when they come back.
    excess: Arc<AtomicUsize>,
    /// Reads waiting for a slot now.
    waiting: AtomicU32,
    /// Serialises resizes.
    resize: Mutex<()>,
}

/// A held upload slot; see [`UploadSlots`].
#[derive(Debug)]
struct SlotPermit {
    permit: Option<OwnedSemaphorePermit>,
    excess: Arc<AtomicUsize>,
}

impl Drop for SlotPermit {
    fn drop(&mut self) {
        if let Some(p) = self.permit.take()
            && self.excess.fetch_update(Ordering::AcqRel, Ordering::Acquire, |e| e.checked_sub(1)).is_ok()
        {
            p.forget();
        }
    }
}

impl UploadSlots {
    fn new(n: usize) -> Self {
        let n = n.max(1);
        UploadSlots {
            sem: Arc::new(Semaphore::new(n)),
            target: AtomicUsize::new(n),
            excess: Arc::new(AtomicUsize::new(0)),
            waiting: AtomicU32::new(0),
            resize: Mutex::new(()),
        }
    }

    /// Waits up to `wait` for a slot.
    async fn acquire(&self, wait: Duration) -> Option<SlotPermit> {
        struct Waiting<'a>(&'a AtomicU32);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _w = Waiting(&self.waiting);
        let permit = tokio::time::timeout(wait, self.sem.clone().acquire_owned()).await.ok()?.ok()?;
        Some(SlotPermit { permit: Some(permit), excess: self.excess.clone() })
    }

    /// A slot if one is free now.
    fn try_acquire(&self) -> Option<SlotPermit> {
        let permit = self.sem.clone().try_acquire_owned().ok()?;
        Some(SlotPermit { permit: Some(permit), excess: self.excess.clone() })
    }

    fn set(&self, n: usize) {
        let n = n.max(1);
        let _g = crate::lock(&self.resize);
        let cur = self.target.swap(n, Ordering::AcqRel);
        if n > cur {
            let grow = n - cur;
            // Cancel pending forgets first, then add what is still missing.
            let prev = self
                .excess
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |e| Some(e - e.min(grow)))
                .unwrap_or_default();
            self.sem.add_permits(grow - prev.min(grow));
        } else if n < cur {
            let shrink = cur - n;
            let forgotten = self.sem.forget_permits(shrink);
            self.excess.fetch_add(shrink - forgotten, Ordering::AcqRel);
        }
    }
}

/// Files up to this size are hashed on request without a hash slot and
/// without caching the result (a commit would cost more than the hash);
/// the receiver's small-file path asks for them beside the `read`.
pub const SMALL_HASH: u64 = crate::download::fetch::SMALL_FILE;
/// Bytes read per step while hashing.
pub const HASH_CHUNK: usize = 1024 * 1024;
/// Read rate of the background hasher (bytes per second); on-demand hashes
/// are not limited.
pub const BACKGROUND_HASH_RATE: u64 = 32 * 1024 * 1024;
/// How long the background hasher waits between passes over the shares.
pub const HASHER_IDLE: Duration = Duration::from_secs(600);

impl Server {
    pub fn new(
        index: Index,
        shares: Arc<Shares>,
        upload_slots: usize,
        max_upload_rate: Option<u64>,
        stop: tokio_util::sync::CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Server {
            index,
            shares,
            upload_slots: Arc::new(UploadSlots::new(upload_slots)),
            uploads: Arc::new(Uploads::default()),
            hash_slots: Arc::new(Semaphore::new(1)),
            rate: RateLimit::new(max_upload_rate),
            stop,
            penalised: Mutex::new(HashMap::new()),
        })
    }

    /// The index this server answers from.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Changes the number of upload slots; uploads beyond a lowered count
    /// finish, and no new one starts until fewer than the new count run.
    pub fn set_upload_slots(&self, n: usize) {
        self.upload_slots.set(n);
    }

    pub fn upload_slots(&self) -> usize {
        self.upload_slots.target.load(Ordering::Relaxed)
    }

    /// Changes the limit of all uploads together (`None`: unlimited); takes
    /// effect at the next chunk.
    pub fn set_max_upload_rate(&self, rate: Option<u64>) {
        self.rate.set(rate);
    }

    /// `GET /api/uploads`.
    pub fn uploads_info(&self) -> UploadsInfo {
        let (uploads, rate) = self.uploads.list();
        UploadsInfo {
            uploads,
            rate,
            waiting: self.upload_slots.waiting.load(Ordering::Relaxed),
            slots: self.upload_slots() as u32,
        }
    }

    /// Handles one request stream of `peer`, which proved `topics`.
    pub async fn handle(
        self: &Arc<Self>,
        peer: PeerId,
        topics: &Arc<ProvenTopics>,
        mut send: quinn::SendStream,
        mut recv: quinn::RecvStream,
    ) {
        let read = tokio::time::timeout(REQUEST_READ_TIMEOUT, read_frame(&mut recv, MAX_REQUEST_FRAME)).await;
        let req: Request = match read.unwrap_or_else(|_| Err(FrameError::TimedOut(REQUEST_READ_TIMEOUT))) {
            Ok(r) => r,
            Err(e) => {
                debug!(%peer, error = %e, "bad request frame");
                let _ = send.reset(VarInt::from_u32(StreamCode::BadRequest as u32));
                let _ = recv.stop(VarInt::from_u32(StreamCode::BadRequest as u32));
                return;
            }
        };
        // Nothing more is expected from the requester.
        let _ = recv.stop(VarInt::from_u32(0));
        let result = match req {
            Request::Ls(r) => self.serve_ls(&topics.get(), &mut send, r).await,
            Request::Read(r) => self.serve_read(peer, topics, &mut send, r).await,
            Request::Hash(r) => self.serve_hash(topics.get(), &mut send, r).await,
            Request::Prove(hello) => write_frame(&mut send, &topics.answer(&hello), MAX_HELLO_FRAME).await,
        };
        match result {
            Ok(()) => {
                let _ = send.finish();
            }
            Err(e) => debug!(%peer, error = %e, "request ended early"),
        }
    }

    async fn serve_ls(&self, proven: &[String], send: &mut quinn::SendStream, r: LsRequest) -> Result<(), FrameError> {
        let viewer = Viewer::Peer(proven);
        let parsed = (|| {
            let path = SharePath::parse(&r.path).map_err(|e| RequestError::Invalid(e.to_string()))?;
            // A hidden share is answered as a missing one: `NotFound`.
            if path.share().is_some_and(|share| !self.shares.visible(share, viewer)) {
                return Err(RequestError::NotFound);
            }
            let hidden = if path.is_root() { self.shares.hidden_from(viewer) } else { Vec::new() };
            let cursor = r
                .cursor
                .as_deref()
                .map(SharePath::parse)
                .transpose()
                .map_err(|_| RequestError::Invalid("bad cursor".into()))?;
            let search = r.search.map(|s| s.to_lowercase());
            if search.as_ref().is_some_and(|s| s.len() > 1024) {
                return Err(RequestError::Invalid("search term too long".into()));
            }
            Ok(IndexLs {
                path,
                recursive: r.recursive,
                search,
                cursor,
                limit: Some(r.limit.clamp(1, MAX_LS_ENTRIES)),
                hidden,
            })
        })();
        let req = match parsed {
            Ok(q) => q,
            Err(e) => return write_frame(send, &LsFrame::Error(e), MAX_LS_FRAME).await,
        };
        let index = self.index.clone();
        let page = tokio::task::spawn_blocking(move || index.ls(&req)).await;
        let page = match page {
            Ok(Ok(p)) => p,
            Ok(Err(LsError::NotFound(_))) => {
                return write_frame(send, &LsFrame::Error(RequestError::NotFound), MAX_LS_FRAME).await;
            }
            Ok(Err(LsError::Path(e))) => {
                return write_frame(send, &LsFrame::Error(RequestError::Invalid(e.to_string())), MAX_LS_FRAME).await;
            }
            Ok(Err(LsError::Cursor)) => {
                return write_frame(send, &LsFrame::Error(RequestError::Invalid("bad cursor".into())), MAX_LS_FRAME)
                    .await;
            }
            Ok(Err(_)) | Err(_) => {
                return write_frame(send, &LsFrame::Error(RequestError::Io), MAX_LS_FRAME).await;
            }
        };
        let mut batch = Vec::new();
        let mut budget = 0usize;
        for e in page.entries {
            let entry = WireEntry {
                mtime_ns: e.mtime_ns,
                path: e.path,
                kind: e.kind,
                size: e.size,
                count: e.entries.unwrap_or(0),
            };
            let cost = entry.path.len() + 40;
            if budget + cost > LS_FRAME_BUDGET && !batch.is_empty() {
                write_frame(send, &LsFrame::Entries(std::mem::take(&mut batch)), MAX_LS_FRAME).await?;
                budget = 0;
            }
            budget += cost;
            batch.push(entry);
        }
        if !batch.is_empty() {
            write_frame(send, &LsFrame::Entries(batch), MAX_LS_FRAME).await?;
        }
        write_frame(send, &LsFrame::End { cursor: page.cursor }, MAX_LS_FRAME).await
    }

    async fn serve_hash(
        self: &Arc<Self>,
        proven: Vec<String>,
        send: &mut quinn::SendStream,
        r: HashRequest,
    ) -> Result<(), FrameError> {
        let reply = match self.hash_of(&r.path, None, Some(proven)).await {
            Ok((size, mtime_ns, hash)) => HashReply::Ok { size, mtime_ns, hash },
            Err(e) => HashReply::Err(e),
        };
        write_frame(send, &reply, MAX_HASH_REPLY_FRAME).await
    }

    /// The BLAKE3 of the shared file `raw`: from the cache, else computed
    /// (at most `rate` bytes per second when given) and cached. `proven`:
    /// the requester's proven topics, or `None` for the node itself (the
    /// background hasher).
    async fn hash_of(
        self: &Arc<Self>,
        raw: &str,
        rate: Option<u64>,
        proven: Option<Vec<String>>,
    ) -> Result<(u64, i64, [u8; 32]), RequestError> {
        let path = SharePath::parse(raw).map_err(|e| RequestError::Invalid(e.to_string()))?;
        let this = self.clone();
        let p = path.clone();
        let cached = tokio::task::spawn_blocking(move || {
            let viewer = proven.as_deref().map_or(Viewer::Owner, Viewer::Peer);
            let file = this.shares.resolve_file(p.as_str(), viewer)?;
            let meta = std::fs::metadata(&file).map_err(|_| RequestError::NotFound)?;
            let (size, mtime) = (meta.len(), mtime_ns(&meta));
            let hit = this.index.hash_get(&p, size, mtime).map_err(|_| RequestError::Io)?;
            Ok::<_, RequestError>((file, size, mtime, hit))
        })
        .await
        .map_err(|_| RequestError::Io)??;
        let (file, size, mtime, hit) = cached;
        if let Some(h) = hit {
            return Ok((size, mtime, h));
        }
        if size <= SMALL_HASH {
            // Cheaper to hash again than to queue for the slot and commit
            // the result: a folder of small files would pay a commit each.
            let stop = self.stop.clone();
            return tokio::task::spawn_blocking(move || Ok((size, mtime, hash_file(&file, size, mtime, rate, &stop)?)))
                .await
                .map_err(|_| RequestError::Io)?;
        }
        let _slot = self.hash_slots.clone().acquire_owned().await.map_err(|_| RequestError::Io)?;
        let index = self.index.clone();
        let stop = self.stop.clone();
        tokio::task::spawn_blocking(move || {
            // Another request may have hashed it while we waited for the slot.
            if let Ok(Some(h)) = index.hash_get(&path, size, mtime) {
                return Ok((size, mtime, h));
            }
            let hash = hash_file(&file, size, mtime, rate, &stop)?;
            let _ = index.hash_put(&path, size, mtime, &hash);
            debug!(path = %path, size, "hashed");
            Ok((size, mtime, hash))
        })
        .await
        .map_err(|_| RequestError::Io)?
    }

    /// Starts the background hasher; see the module docs.
    pub fn start_hasher(
        self: &Arc<Self>,
        shutdown: tokio_util::sync::CancellationToken,
        tasks: &tokio_util::task::TaskTracker,
    ) {
        let this = self.clone();
        tasks.spawn(async move {
            // Let start-up scans get ahead first.
            let mut wait = Duration::from_secs(5);
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => return,
                }
                this.hash_pass(&shutdown).await;
                wait = HASHER_IDLE;
            }
        });
    }

    /// One pass over every share, hashing files the cache does not cover.
    async fn hash_pass(self: &Arc<Self>, shutdown: &tokio_util::sync::CancellationToken) {
        let Ok(shares) = self.shares.list() else { return };
        for share in shares {
            let Ok(root) = SharePath::parse(&share.name) else { continue };
            let mut cursor = None;
            loop {
                let index = self.index.clone();
                let req = IndexLs {
                    path: root.clone(),
                    recursive: true,
                    search: None,
                    cursor,
                    limit: Some(500),
                    hidden: Vec::new(),
                };
                let Ok(Ok(page)) = tokio::task::spawn_blocking(move || index.ls(&req)).await else { break };
                // Which files lack a current hash is answered from LMDB alone.
                // Small files are hashed on request and never cached.
                let files: Vec<SharePath> = page
                    .entries
                    .iter()
                    .filter(|e| e.kind == EntryKind::File && e.size > SMALL_HASH)
                    .filter_map(|e| SharePath::parse(&e.path).ok())
                    .collect();
                let index = self.index.clone();
                let Ok(Ok(todo)) = tokio::task::spawn_blocking(move || index.unhashed(files)).await else { break };
                for p in todo {
                    if shutdown.is_cancelled() {
                        return;
                    }
                    let _ = self.hash_of(p.as_str(), Some(BACKGROUND_HASH_RATE), None).await;
                }
                match page.cursor {
                    Some(c) => cursor = SharePath::parse(&c).ok(),
                    None => break,
                }
                if cursor.is_none() {
                    break;
                }
            }
        }
    }

    async fn serve_read(
        self: &Arc<Self>,
        peer: PeerId,
        topics: &ProvenTopics,
        send: &mut quinn::SendStream,
        r: ReadRequest,
    ) -> Result<(), FrameError> {
        // What the requester may see, and the counters that say it changed.
        let mut seen = (self.shares.visibility_changes(), topics.changes());
        let proven = topics.get();
        // Index lookups and canonicalize touch the disk: not on the async threads.
        let this = self.clone();
        let path = r.path.clone();
        let resolved =
            tokio::task::spawn_blocking(move || this.shares.resolve_file(&path, Viewer::Peer(&proven))).await;
        let file = match resolved {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => return write_frame(send, &ReadHeader::Err(e), MAX_READ_HEADER_FRAME).await,
            Err(_) => return write_frame(send, &ReadHeader::Err(RequestError::Io), MAX_READ_HEADER_FRAME).await,
        };
        let penalised = crate::lock(&self.penalised).get(&peer).is_some_and(|t| t.elapsed() < STALL_PENALTY);
        let permit =
            if penalised { self.upload_slots.try_acquire() } else { self.upload_slots.acquire(BUSY_WAIT).await };
        let Some(permit) = permit else {
            return write_frame(send, &ReadHeader::Err(RequestError::Busy), MAX_READ_HEADER_FRAME).await;
        };
        let opened = tokio::task::spawn_blocking(move || {
            let mut f = std::fs::File::open(&file)?;
            let meta = f.metadata()?;
            if !meta.is_file() {
                return Err(std::io::Error::other("not a file"));
            }
            if r.offset <= meta.len() {
                f.seek(SeekFrom::Start(r.offset))?;
            }
            Ok((f, meta.len(), mtime_ns(&meta)))
        })
        .await;
        let (mut f, size, mtime) = match opened {
            Ok(Ok(v)) => v,
            _ => {
                return write_frame(send, &ReadHeader::Err(RequestError::Io), MAX_READ_HEADER_FRAME).await;
            }
        };
        if r.offset > size {
            return write_frame(send, &ReadHeader::Err(RequestError::BadRange), MAX_READ_HEADER_FRAME).await;
        }
        let length = r.length.unwrap_or(u64::MAX).min(size - r.offset);
        write_frame(send, &ReadHeader::Ok { size, mtime_ns: mtime, length }, MAX_READ_HEADER_FRAME).await?;
        let share_path = SharePath::parse(&r.path).ok();
        let shown = share_path.as_ref().map_or_else(|| r.path.clone(), |p| p.to_string());
        // Filed as finished (in full or not) when dropped, on every way out.
        let mut upload = self.uploads.begin(peer, shown, size, r.offset, length);
        // A whole-file read is hashed as it is read, so the `hash` request a
        // downloader sends next finds the answer cached, without a second
        // read of the file. Skipped when the cache already has it, and for
        // small files, which are hashed on request and never cached.
        let mut hasher = match &share_path {
            Some(p) if r.offset == 0 && length == size && size > SMALL_HASH => {
                let (index, p) = (self.index.clone(), p.clone());
                let cached = tokio::task::spawn_blocking(move || index.hash_get(&p, size, mtime)).await;
                matches!(cached, Ok(Ok(None))).then(blake3::Hasher::new)
            }
            _ => None,
        };

        let share = share_path.as_ref().and_then(|p| p.share().map(str::to_owned)).unwrap_or_default();
        let mut left = length;
        while left > 0 {
            let now = (self.shares.visibility_changes(), topics.changes());
            if now != seen {
                seen = now;
                if !self.shares.visible(&share, Viewer::Peer(&topics.get())) {
                    let _ = send.reset(VarInt::from_u32(StreamCode::NotShared as u32));
                    debug!(%peer, share = %share, "share no longer visible to the peer; upload stopped");
                    return Ok(());
                }
            }
            let want = left.min(READ_CHUNK as u64) as usize;
            let mut h = hasher.take();
            let step = tokio::task::spawn_blocking(move || {
                // read_to_end fills spare capacity without zeroing it first.
                let mut buf = Vec::with_capacity(want);
                (&mut f).take(want as u64).read_to_end(&mut buf)?;
                if let Some(h) = &mut h {
                    h.update(&buf);
                }
                Ok::<_, std::io::Error>((f, buf, h))
            })
            .await;
            let (back, buf) = match step {
                Ok(Ok((f, buf, h))) => {
                    hasher = h;
                    (f, buf)
                }
                _ => {
                    let _ = send.reset(VarInt::from_u32(StreamCode::IoError as u32));
                    return Ok(());
                }
            };
            f = back;
            if buf.len() < want {
                // The file shrank under us: what we promised cannot be sent.
                let _ = send.reset(VarInt::from_u32(StreamCode::FileChanged as u32));
                return Ok(());
            }
            left -= buf.len() as u64;
            let n = buf.len() as u64;
            self.rate.take(buf.len()).await;
            // A requester that stops reading must not hold an upload slot:
            // never longer than STALL_TIMEOUT, and no longer than
            // CONTENDED_STALL while other requests wait for a slot.
            let written = {
                let write = send.write_chunk(Bytes::from(buf));
                tokio::pin!(write);
                let stalled_since = tokio::time::Instant::now();
                loop {
                    match tokio::time::timeout(STALL_CHECK, &mut write).await {
                        Ok(r) => break Some(r),
                        Err(_) => {
                            let stalled = stalled_since.elapsed();
                            let contended = self.upload_slots.waiting.load(Ordering::Relaxed) > 0;
                            if stalled >= STALL_TIMEOUT || (contended && stalled >= CONTENDED_STALL) {
                                break None;
                            }
                        }
                    }
                }
            };
            match written {
                Some(r) => {
                    r?;
                    upload.sent(n);
                }
                None => {
                    let _ = send.reset(VarInt::from_u32(StreamCode::Cancelled as u32));
                    debug!(%peer, "upload stalled; dropped");
                    let mut p = crate::lock(&self.penalised);
                    p.retain(|_, t| t.elapsed() < STALL_PENALTY);
                    if p.len() < MAX_PENALISED {
                        p.insert(peer, std::time::Instant::now());
                    }
                    return Ok(());
                }
            }
        }
        // A file modified while it was sent would splice two versions: refuse.
        let changed = match f.metadata() {
            Ok(m) => m.len() != size || mtime_ns(&m) != mtime,
            Err(_) => true,
        };
        if changed {
            let _ = send.reset(VarInt::from_u32(StreamCode::FileChanged as u32));
        } else {
            upload.complete();
            if let (Some(h), Some(p)) = (hasher, share_path) {
                let (index, hash) = (self.index.clone(), *h.finalize().as_bytes());
                let _ = tokio::task::spawn_blocking(move || index.hash_put(&p, size, mtime, &hash)).await;
            }
        }
        drop(permit);
        debug!(%peer, bytes = length, "upload done");
        Ok(())
    }
}

/// BLAKE3 of `file`, which must still have `size` and `mtime` when done;
/// reads at most `rate` bytes per second when given.
/// Hashes `file` (expected at `size` and `mtime`); gives up with `Io` when
/// `stop` is cancelled, so a node shutting down never waits for a big file.
pub fn hash_file(
    file: &std::path::Path,
    size: u64,
    mtime: i64,
    rate: Option<u64>,
    stop: &tokio_util::sync::CancellationToken,
) -> Result<[u8; 32], RequestError> {
    let mut f = std::fs::File::open(file).map_err(|_| RequestError::NotFound)?;
    let mut hasher = blake3::Hasher::new();
    // A small file needs no more than its own size (and one byte to see it
    // grew): hundreds of them are hashed at once for a folder of small files.
    let mut buf = vec![0u8; usize::try_from(size).unwrap_or(usize::MAX).saturating_add(1).clamp(4096, HASH_CHUNK)];
    let started = std::time::Instant::now();
    let mut total = 0u64;
    loop {
        if stop.is_cancelled() {
            return Err(RequestError::Io);
        }
        let n = f.read(&mut buf).map_err(|_| RequestError::Io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
        if let Some(rate) = rate.filter(|r| *r > 0) {
            let due = Duration::from_secs_f64(total as f64 / rate as f64);
            if let Some(ahead) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(ahead);
            }
        }
    }
    let after = f.metadata().map_err(|_| RequestError::Io)?;
    if total != size || after.len() != size || mtime_ns(&after) != mtime {
        return Err(RequestError::Changed);
    }
    Ok(*hasher.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn upload_slots_resize_without_cutting_uploads() {
        let slots = UploadSlots::new(2);
        let a = slots.acquire(Duration::ZERO).await.expect("first slot");
        let b = slots.acquire(Duration::ZERO).await.expect("second slot");
        assert!(slots.acquire(Duration::from_millis(10)).await.is_none(), "only two slots");
        // Shrinking to 1 while both are held: both keep going, nothing new starts.
        slots.set(1);
        drop(a);
        assert!(slots.acquire(Duration::from_millis(10)).await.is_none(), "the freed slot was forgotten");
        drop(b);
        let c = slots.acquire(Duration::ZERO).await.expect("one slot left");
        assert!(slots.acquire(Duration::from_millis(10)).await.is_none());
        // Growing adds slots at once.
        slots.set(3);
        let d = slots.acquire(Duration::ZERO).await.expect("grown");
        let e = slots.acquire(Duration::ZERO).await.expect("grown");
        assert!(slots.acquire(Duration::from_millis(10)).await.is_none());
        // Shrink then grow again before permits come back: the count stays right.
        slots.set(1);
        slots.set(2);
        drop((c, d, e));
        let f = slots.acquire(Duration::ZERO).await.expect("two slots");
        let g = slots.acquire(Duration::ZERO).await.expect("two slots");
        assert!(slots.acquire(Duration::from_millis(10)).await.is_none());
        assert_eq!(slots.target.load(Ordering::Relaxed), 2);
        assert_eq!(slots.waiting.load(Ordering::Relaxed), 0);
        drop((f, g));
    }

    #[test]
    fn rate_limit_charges_and_can_change() {
        let limit = RateLimit::new(None);
        assert_eq!(limit.charge(100 << 20), Duration::ZERO, "unlimited never waits");
        limit.set(Some(4 << 20));
        assert_eq!(limit.get(), Some(4 << 20));
        // 1 MiB at 4 MiB/s from an empty bucket owes about a quarter second.
        let owed = limit.charge(1 << 20);
        assert!(owed > Duration::from_millis(200) && owed <= Duration::from_millis(250), "{owed:?}");
        limit.set(None);
        assert_eq!(limit.charge(100 << 20), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_limit_wakes_sleeping_uploads() {
        let limit = Arc::new(RateLimit::new(Some(MIN_UPLOAD_RATE)));
        // 64 MiB at 64 KiB/s would owe over 15 minutes of (paused) time.
        let sleeper = tokio::spawn({
            let limit = limit.clone();
            async move { limit.take(64 << 20).await }
        });
        tokio::time::sleep(RATE_SLICE * 3).await;
        assert!(!sleeper.is_finished());
        limit.set(None);
        tokio::time::timeout(RATE_SLICE * 2, sleeper).await.expect("woken within a slice").unwrap();
    }
}
