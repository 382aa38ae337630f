//! Downloads: a file, or a directory recursively, from a peer into the
//! download dir.
//!
//! Goals:
//! - Never lose data: bytes go to `<name>.part`, which becomes `<name>` only
//!   when complete; a crash at any moment leaves a `.part` to resume.
//! - Resume only the same version: the remote (size, mtime) a `.part` belongs
//!   to is kept in the index; if the sender's file changed, start over.
//! - A hostile peer cannot write outside the download dir: every remote path
//!   is checked component by component ([`local_path_for`]), directories are
//!   created one level at a time refusing symlinks, and files are opened with
//!   `O_NOFOLLOW`.
//! - Bounded: one listing page (≤ 2,000 entries) and one read buffer per
//!   active download; progress goes out on a bounded broadcast that never
//!   blocks a transfer.
//!
//! - Verified: a complete `.part` gets its final name only when the BLAKE3
//!   of what is on our disk equals the sender's hash of the same version
//!   ([`Downloads::verify`]); a mismatch discards it and fetches it again.
//!
//! Non-goals (yet; the download-manager issue): a persistent queue,
//! pause/cancel.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdp_proto::api::{DownloadInfo, DownloadState, EntryKind};
use hdp_proto::id::PeerId;
use hdp_proto::path::{SharePath, validate_component};
use hdp_proto::wire::{LsRequest, MAX_LS_ENTRIES, ReadRequest, RequestError, StreamCode};
use tokio::sync::{Semaphore, broadcast};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::index::keys::path_key;
use crate::index::{Index, PartialMeta};
use crate::lock;
use crate::peers::Peers;
use crate::remote::{self, RemoteError};

/// Downloads transferring at once; the rest wait their turn.
pub const DOWNLOAD_SLOTS: usize = 2;
/// Attempts per file before it counts as failed.
pub const MAX_ATTEMPTS: u32 = 30;
/// How long a download waits for its peer to come back before failing.
pub const RECONNECT_WAIT: Duration = Duration::from_secs(600);
/// Bytes read from the network before each write to disk.
pub const WRITE_CHUNK: usize = 512 * 1024;
/// Capacity of the progress broadcast: a listener that falls further behind
/// loses old updates (and sees the next ones); the sender never waits.
pub const EVENT_CAPACITY: usize = 64;
/// Finished downloads remembered for `/api/downloads`.
pub const MAX_FINISHED: usize = 200;
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// A transfer with no data for this long is treated as interrupted.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes written between fsyncs of a `.part` (each sync advances what a
/// resume after power loss may trust).
pub const SYNC_EVERY: u64 = 32 * 1024 * 1024;
/// Hash mismatches tolerated per file before it fails: a file that keeps
/// arriving different from what its sender hashed is changing under the
/// sender, or the sender is faulty.
pub const MAX_MISMATCHES: u32 = 3;
/// Downloads queued or running at most.
pub const MAX_JOBS: usize = 1_000;

/// A download could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartDownloadError {
    #[error(transparent)]
    Peer(#[from] crate::peers::ResolveError),
    #[error("invalid path: {0}")]
    Path(String),
    #[error("cannot create the download dir {path}: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
    #[error("{MAX_JOBS} downloads are already queued; wait for some to finish")]
    TooMany,
}

/// A file could not be downloaded.
#[derive(Debug, thiserror::Error)]
enum FileError {
    /// Worth another attempt (connection lost, peer busy, file changed).
    #[error("{0}")]
    Transient(String),
    /// Will not get better by retrying.
    #[error("{0}")]
    Permanent(String),
    /// The received file did not match the sender's hash: retried from
    /// scratch, at most [`MAX_MISMATCHES`] times.
    #[error("{0}")]
    Mismatch(String),
}

impl From<RemoteError> for FileError {
    fn from(e: RemoteError) -> Self {
        match e {
            RemoteError::Refused(RequestError::Busy | RequestError::Changed)
            | RemoteError::Connection(_)
            | RemoteError::Frame(_) => FileError::Transient(e.to_string()),
            other => FileError::Permanent(other.to_string()),
        }
    }
}

fn local_io(what: &str, path: &Path, e: std::io::Error) -> FileError {
    FileError::Permanent(format!("{what} {}: {e}", path.display()))
}

/// A name a peer sent that we refuse to create.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsafe name from peer: {0:?}")]
pub struct UnsafeName(pub String);

struct Job {
    id: u64,
    peer: PeerId,
    path: SharePath,
    cancel: CancellationToken,
    info: Mutex<DownloadInfo>,
}

/// All downloads of this node.
#[derive(Debug)]
pub struct Downloads {
    peers: Arc<Peers>,
    index: Index,
    dir: PathBuf,
    jobs: Mutex<BTreeMap<u64, Arc<JobHandle>>>,
    /// `.part` files being written now.
    active_parts: Mutex<HashSet<PathBuf>>,
    next_id: AtomicU64,
    /// Bounds transferring downloads; see [`DOWNLOAD_SLOTS`].
    slots: Arc<Semaphore>,
    events: broadcast::Sender<DownloadInfo>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

/// Opaque handle so `Downloads` can derive Debug.
pub struct JobHandle(Job);

impl std::fmt::Debug for JobHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Job({})", self.0.id)
    }
}

impl Downloads {
    pub fn new(
        peers: Arc<Peers>,
        index: Index,
        dir: PathBuf,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Arc<Self> {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        Arc::new(Downloads {
            peers,
            index,
            dir,
            jobs: Mutex::new(BTreeMap::new()),
            active_parts: Mutex::new(HashSet::new()),
            next_id: AtomicU64::new(1),
            slots: Arc::new(Semaphore::new(DOWNLOAD_SLOTS)),
            events,
            shutdown,
            tasks,
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<DownloadInfo> {
        self.events.subscribe()
    }

    pub fn list(&self) -> Vec<DownloadInfo> {
        lock(&self.jobs).values().map(|j| lock(&j.0.info).clone()).collect()
    }

    pub fn get(&self, id: u64) -> Option<DownloadInfo> {
        lock(&self.jobs).get(&id).map(|j| lock(&j.0.info).clone())
    }

    /// Starts downloading `path` from `peer` (name or id prefix).
    pub fn start(self: &Arc<Self>, peer: &str, path: &str) -> Result<DownloadInfo, StartDownloadError> {
        let pc = self.peers.resolve(peer)?;
        let path = SharePath::parse(path).map_err(|e| StartDownloadError::Path(e.to_string()))?;
        let Some((_, name)) = path.split_last() else {
            return Err(StartDownloadError::Path("name a share, directory or file, not the root".into()));
        };
        let running = lock(&self.jobs)
            .values()
            .filter(|j| matches!(lock(&j.0.info).state, DownloadState::Queued | DownloadState::Active))
            .count();
        if running >= MAX_JOBS {
            return Err(StartDownloadError::TooMany);
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(|source| StartDownloadError::Dir { path: self.dir.clone(), source })?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let info = DownloadInfo {
            id,
            peer: pc.id,
            peer_name: pc.id.friendly_name(),
            path: path.to_string(),
            local_path: self.dir.join(name).display().to_string(),
            state: DownloadState::Queued,
            files_done: 0,
            files_total: 0,
            bytes_done: 0,
            bytes_total: 0,
            rate: 0,
            current: None,
            error: None,
        };
        let job = Arc::new(JobHandle(Job {
            id,
            peer: pc.id,
            path,
            cancel: self.shutdown.child_token(),
            info: Mutex::new(info.clone()),
        }));
        {
            let mut jobs = lock(&self.jobs);
            // Forget the oldest finished downloads beyond MAX_FINISHED.
            let finished: Vec<u64> = jobs
                .iter()
                .filter(|(_, j)| matches!(lock(&j.0.info).state, DownloadState::Done | DownloadState::Failed))
                .map(|(id, _)| *id)
                .collect();
            for old in finished.iter().take(finished.len().saturating_sub(MAX_FINISHED)) {
                jobs.remove(old);
            }
            jobs.insert(id, job.clone());
        }
        info!(id, peer = %pc.id, path = %info.path, "download queued");
        let this = self.clone();
        self.tasks.spawn(async move { this.run(job).await });
        Ok(info)
    }

    fn publish(&self, job: &Job) {
        let _ = self.events.send(lock(&job.info).clone());
    }

    fn update(&self, job: &Job, f: impl FnOnce(&mut DownloadInfo)) {
        f(&mut lock(&job.info));
        self.publish(job);
    }

    async fn run(self: Arc<Self>, job: Arc<JobHandle>) {
        let job = &job.0;
        let _permit = tokio::select! {
            p = self.slots.clone().acquire_owned() => p,
            _ = job.cancel.cancelled() => return,
        };
        self.update(job, |i| i.state = DownloadState::Active);
        let result = self.run_job(job).await;
        self.update(job, |i| {
            i.current = None;
            i.rate = 0;
            match result {
                Ok(0) => {
                    i.state = DownloadState::Done;
                    i.error = None;
                }
                Ok(n) => {
                    i.state = DownloadState::Failed;
                    i.error = Some(format!("{n} file(s) failed; {}", i.error.clone().unwrap_or_default()));
                }
                Err(e) => {
                    i.state = DownloadState::Failed;
                    i.error = Some(e);
                }
            }
        });
        let i = lock(&job.info).clone();
        info!(id = job.id, state = ?i.state, files = i.files_done, bytes = i.bytes_done, error = ?i.error, "download finished");
    }

    /// Walks the remote listing page by page; returns how many files failed.
    async fn run_job(&self, job: &Job) -> Result<u64, String> {
        let local_root = self.dir.clone();
        let mut cursor: Option<String> = None;
        let mut failed = 0u64;
        loop {
            let req = LsRequest {
                path: job.path.to_string(),
                recursive: true,
                search: None,
                cursor: cursor.clone(),
                limit: MAX_LS_ENTRIES,
            };
            let page = self.retry(job, "listing", || async {
                let conn = self
                    .peers
                    .connection(&job.peer)
                    .ok_or_else(|| FileError::Transient("peer not connected".into()))?;
                remote::ls(&conn.conn, req.clone()).await.map_err(FileError::from)
            });
            let page = page.await.map_err(|e| e.to_string())?;
            for entry in page.entries {
                let rel = match local_path_for(&job.path, &entry.path) {
                    Ok(r) => r,
                    Err(e) => {
                        warn!(id = job.id, error = %e, "skipping an entry");
                        failed += 1;
                        self.update(job, |i| i.error = Some(e.to_string()));
                        continue;
                    }
                };
                match entry.kind {
                    EntryKind::Dir => {
                        if let Err(e) = ensure_dirs(&local_root, &rel) {
                            return Err(format!("cannot create a directory in {}: {e}", local_root.display()));
                        }
                    }
                    EntryKind::File => {
                        self.update(job, |i| {
                            i.files_total += 1;
                            i.bytes_total = i.bytes_total.saturating_add(entry.size);
                            i.current = Some(entry.path.clone());
                        });
                        let (dir_parts, name) = rel.split_at(rel.len() - 1);
                        let dir = ensure_dirs(&local_root, dir_parts)
                            .map_err(|e| format!("cannot create a directory in {}: {e}", local_root.display()))?;
                        let target = dir.join(&name[0]);
                        // Progress restarts from here on every attempt at this file.
                        let base = lock(&job.info).bytes_done;
                        let res =
                            self.retry(job, &entry.path, || self.fetch_file(job, &entry.path, &target, base)).await;
                        match res {
                            Ok(()) => self.update(job, |i| i.files_done += 1),
                            Err(e) => {
                                failed += 1;
                                warn!(id = job.id, file = %entry.path, error = %e, "file failed");
                                self.update(job, |i| i.error = Some(format!("{}: {e}", entry.path)));
                            }
                        }
                    }
                }
            }
            match page.cursor {
                // A cursor must move forward (in index key order), or a lying
                // peer could keep us listing the same page for ever.
                Some(c) if cursor.as_ref().is_some_and(|prev| path_key(&c) <= path_key(prev)) => {
                    return Err(format!("the peer's listing does not advance (cursor {c:?})"));
                }
                Some(c) => cursor = Some(c),
                None => return Ok(failed),
            }
        }
    }

    /// Runs `attempt` until it succeeds, fails permanently, runs out of
    /// attempts, or the peer stays away longer than [`RECONNECT_WAIT`].
    async fn retry<T, F, Fut>(&self, job: &Job, what: &str, mut attempt: F) -> Result<T, FileError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, FileError>>,
    {
        let mut delay = Duration::from_millis(250);
        let mut mismatches = 0;
        for n in 1..=MAX_ATTEMPTS {
            if job.cancel.is_cancelled() {
                return Err(FileError::Permanent("cancelled: the node is shutting down".into()));
            }
            let failure = attempt().await;
            if matches!(failure, Err(FileError::Mismatch(_))) {
                mismatches += 1;
            }
            match failure {
                Ok(v) => return Ok(v),
                Err(FileError::Permanent(e)) => return Err(FileError::Permanent(e)),
                Err(FileError::Mismatch(e)) if mismatches >= MAX_MISMATCHES => {
                    return Err(FileError::Permanent(format!(
                        "{e}: gave up after {MAX_MISMATCHES} copies that did not match (the file may be \
                         changing on the peer)"
                    )));
                }
                Err(FileError::Transient(e) | FileError::Mismatch(e)) => {
                    warn!(id = job.id, what, attempt = n, error = %e, "will retry");
                    self.update(job, |i| {
                        i.error = Some(format!("retrying after: {e}"));
                        i.rate = 0;
                    });
                    if !self.wait_for_peer(job).await {
                        return Err(FileError::Permanent(format!("the peer did not come back: {e}")));
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = job.cancel.cancelled() => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(15));
                }
            }
        }
        Err(FileError::Permanent(format!("gave up after {MAX_ATTEMPTS} attempts")))
    }

    async fn wait_for_peer(&self, job: &Job) -> bool {
        let deadline = Instant::now() + RECONNECT_WAIT;
        while Instant::now() < deadline {
            if self.peers.connection(&job.peer).is_some() {
                return true;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = job.cancel.cancelled() => return false,
            }
        }
        false
    }

    /// Downloads one file to `target` through `target.part`, resuming when
    /// the `.part` holds synced bytes of the same remote file and version.
    ///
    /// Order of operations, so that a crash at any point leaves a state the
    /// next attempt handles: a new `.part` is recorded before it is created;
    /// an existing one is cut (and synced) to the resume point *before* the
    /// version it will hold is recorded; the record's
    /// synced length only grows after an fsync; the file gets its final name
    /// only after every promised byte and a clean end of stream arrived, the
    /// length was checked and the data synced.
    async fn fetch_file(&self, job: &Job, remote_path: &str, target: &Path, base: u64) -> Result<(), FileError> {
        let conn = self.peers.connection(&job.peer).ok_or_else(|| FileError::Transient("peer not connected".into()))?;
        let part = part_path(target);
        let _claim = PartClaim::take(&self.active_parts, &part)?;
        let source = source_id(&job.peer, remote_path);
        let known = self.index.partial_get(&part).map_err(|e| FileError::Permanent(e.to_string()))?;
        let have = match std::fs::symlink_metadata(&part) {
            Ok(m) if m.is_file() => Some(m.len()),
            Ok(_) => return Err(FileError::Permanent(format!("{} exists and is not a file", part.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(local_io("cannot inspect", &part, e)),
        };
        if have.is_some() && known.is_none() {
            return Err(FileError::Permanent(format!(
                "{} exists but this node did not start it; move it away and retry",
                part.display()
            )));
        }
        let mut offset = match (known, have) {
            (Some(k), Some(h)) if k.source == source => h.min(k.synced),
            _ => 0,
        };
        let read = |offset| ReadRequest { path: remote_path.into(), offset, length: None };
        let (mut head, mut recv) = match remote::read(&conn.conn, read(offset)).await {
            Ok(v) => v,
            Err(RemoteError::Refused(RequestError::BadRange)) if offset > 0 => {
                // Our `.part` is longer than the file is now: another version.
                offset = 0;
                remote::read(&conn.conn, read(0)).await?
            }
            Err(e) => return Err(e.into()),
        };
        let same = known.is_some_and(|k| k.source == source && k.size == head.size && k.mtime_ns == head.mtime_ns);
        if offset > 0 && !same {
            // Another version: drop what we have and start over.
            let _ = recv.stop(quinn::VarInt::from_u32(StreamCode::Cancelled as u32));
            offset = 0;
            (head, recv) = remote::read(&conn.conn, read(0)).await?;
        }

        let meta = PartialMeta { size: head.size, mtime_ns: head.mtime_ns, source, synced: offset };
        let fresh = have.is_none();
        if fresh {
            // No bytes on disk yet: record first, so a crash right after the
            // file is created leaves a `.part` this node knows as its own.
            self.index.partial_put(&part, meta).map_err(|e| FileError::Permanent(e.to_string()))?;
        }
        let open_part = part.clone();
        let opened = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
            use std::io::Seek;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(fresh)
                .truncate(false)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&open_part)?;
            f.set_len(offset)?;
            f.sync_all()?;
            f.seek(std::io::SeekFrom::Start(offset))?;
            Ok(f)
        })
        .await;
        let file = match opened {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => return Err(local_io("cannot open", &part, e)),
            Err(_) => return Err(FileError::Permanent("the node is shutting down".into())),
        };
        if !fresh {
            // Bytes of another version may have been cut off just above: only
            // now, with the file at `offset` and synced, record what it holds.
            self.index.partial_put(&part, meta).map_err(|e| FileError::Permanent(e.to_string()))?;
        }
        self.update(job, |i| i.bytes_done = base + offset);

        let (file, result) = self.receive(job, &part, file, &mut recv, head, offset, base, meta).await;
        result?;
        let file = file?;
        let synced = tokio::task::spawn_blocking(move || file.sync_all().and_then(|()| file.metadata())).await;
        match synced {
            Ok(Ok(m)) if m.len() == head.size => {}
            Ok(Ok(m)) => {
                return Err(FileError::Transient(format!(
                    "{} has {} bytes, expected {}",
                    part.display(),
                    m.len(),
                    head.size
                )));
            }
            Ok(Err(e)) => return Err(local_io("cannot sync", &part, e)),
            Err(_) => return Err(FileError::Permanent("the node is shutting down".into())),
        }
        self.verify(job, &conn.conn, remote_path, &part, &head).await?;
        let final_path = publish(&part, target).map_err(|e| local_io("cannot rename", &part, e))?;
        let path_stats = conn.conn.stats().path;
        debug!(
            file = %final_path.display(), bytes = head.length, mtu = path_stats.current_mtu,
            rtt_us = path_stats.rtt.as_micros() as u64, lost_packets = path_stats.lost_packets,
            "file complete"
        );
        let _ = self.index.partial_delete(&part);
        if let Ok(f) = std::fs::File::options().write(true).open(&final_path) {
            let _ = f.set_modified(system_time(head.mtime_ns));
        }
        Ok(())
    }

    /// Checks the complete `.part` against the sender: the BLAKE3 of what is
    /// on our disk must equal the sender's hash of the very version we
    /// received (same size and mtime). The two hashes are computed at the
    /// same time. A mismatch deletes the `.part`, so the retry starts over.
    async fn verify(
        &self,
        job: &Job,
        conn: &quinn::Connection,
        remote_path: &str,
        part: &Path,
        head: &remote::ReadOk,
    ) -> Result<(), FileError> {
        let p = part.to_path_buf();
        let local = tokio::task::spawn_blocking(move || -> std::io::Result<[u8; 32]> {
            let mut h = blake3::Hasher::new();
            h.update_reader(std::fs::File::open(&p)?)?;
            Ok(*h.finalize().as_bytes())
        });
        let (theirs, ours) = tokio::join!(remote::hash(conn, remote_path), local);
        let theirs = theirs?;
        let ours = match ours {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => return Err(local_io("cannot read back", part, e)),
            Err(_) => return Err(FileError::Permanent("the node is shutting down".into())),
        };
        if theirs.size != head.size || theirs.mtime_ns != head.mtime_ns {
            return Err(FileError::Transient("the file changed on the peer after it was sent".into()));
        }
        if ours != theirs.hash {
            warn!(id = job.id, file = remote_path, "BLAKE3 mismatch; the file will be downloaded again from scratch");
            let _ = std::fs::remove_file(part);
            let _ = self.index.partial_delete(part);
            return Err(FileError::Mismatch(
                "the received bytes do not match the sender's BLAKE3 hash; downloading the file again".into(),
            ));
        }
        debug!(id = job.id, file = remote_path, hash = %hdp_proto::topic::hex(&ours), "verified");
        Ok(())
    }

    /// Receives the promised bytes into `file` (from `offset`), overlapping
    /// network reads with disk writes, then insists on a clean end of stream.
    /// Always hands the file back with every write finished, even on error.
    #[allow(clippy::too_many_arguments)]
    async fn receive(
        &self,
        job: &Job,
        part: &Path,
        file: std::fs::File,
        recv: &mut quinn::RecvStream,
        head: remote::ReadOk,
        offset: u64,
        base: u64,
        mut meta: PartialMeta,
    ) -> (Result<std::fs::File, FileError>, Result<(), FileError>) {
        let mut idle: Option<std::fs::File> = Some(file);
        // Network reads and disk writes overlap: while one batch of chunks is
        // written on the blocking pool, the next is received. Chunks are
        // quinn's own buffers, written without copying them.
        let mut writing: Option<tokio::task::JoinHandle<std::io::Result<std::fs::File>>> = None;
        let mut got = 0u64;
        let mut unsynced = 0u64;
        let mut last = Instant::now();
        let mut since_last = 0u64;
        let mut slots: [bytes::Bytes; 32] = Default::default();
        let result: Result<(), FileError> = async {
            while got < head.length {
                let want = (head.length - got).min(WRITE_CHUNK as u64) as usize;
                let mut batch: Vec<bytes::Bytes> = Vec::new();
                let mut n = 0;
                while n < want {
                    // Many chunks per wake-up: one per packet would cost a task
                    // switch per packet.
                    let read = tokio::time::timeout(STALL_TIMEOUT, recv.read_chunks(&mut slots))
                        .await
                        .map_err(|_| FileError::Transient(format!("no data from the peer for {STALL_TIMEOUT:?}")))?;
                    match read {
                        Ok(Some(k)) => {
                            for slot in &mut slots[..k] {
                                let b = std::mem::take(slot);
                                n += b.len();
                                batch.push(b);
                            }
                        }
                        Ok(None) => return Err(FileError::Transient("the peer ended the transfer early".into())),
                        Err(e) => return Err(read_error(e)),
                    }
                }
                if got + n as u64 > head.length {
                    return Err(FileError::Transient("the peer sent more bytes than it promised".into()));
                }
                let mut f = match writing.take() {
                    Some(h) => finish_write(h, part).await?,
                    None => idle.take().ok_or_else(|| FileError::Permanent("internal: no file".into()))?,
                };
                got += n as u64;
                unsynced += n as u64;
                let sync_now = unsynced >= SYNC_EVERY;
                if sync_now {
                    // What was written before this batch is on disk once the
                    // sync inside the task returns; record it afterwards.
                    unsynced = n as u64;
                }
                let written_before = offset + got - n as u64;
                let task = tokio::task::spawn_blocking(move || {
                    if sync_now {
                        f.sync_all()?;
                    }
                    for b in &batch {
                        std::io::Write::write_all(&mut f, b)?;
                    }
                    Ok(f)
                });
                if sync_now {
                    // The sync ran before this batch's writes: everything
                    // before `written_before` is durable once the task ends.
                    idle = Some(finish_write(task, part).await?);
                    meta.synced = written_before;
                    self.index.partial_put(part, meta).map_err(|e| FileError::Permanent(e.to_string()))?;
                } else {
                    writing = Some(task);
                }
                since_last += n as u64;
                if last.elapsed() >= PROGRESS_EVERY {
                    let inst = since_last as f64 / last.elapsed().as_secs_f64();
                    self.update(job, |i| {
                        i.bytes_done = base + offset + got;
                        i.rate = if i.rate == 0 { inst as u64 } else { (0.7 * i.rate as f64 + 0.3 * inst) as u64 };
                        if i.error.as_deref().is_some_and(|e| e.starts_with("retrying")) {
                            i.error = None;
                        }
                    });
                    last = Instant::now();
                    since_last = 0;
                }
            }
            // Every promised byte is here; only a clean end of stream makes
            // them a file (a reset now means the file changed at the source).
            let end = tokio::time::timeout(STALL_TIMEOUT, recv.read_chunk(1, true))
                .await
                .map_err(|_| FileError::Transient(format!("no end of stream from the peer for {STALL_TIMEOUT:?}")))?;
            match end {
                Ok(None) => Ok(()),
                Ok(Some(_)) => Err(FileError::Transient("the peer sent more bytes than it promised".into())),
                Err(e) => Err(read_error(e)),
            }
        }
        .await;
        self.update(job, |i| i.bytes_done = base + offset + got);
        let file = match writing.take() {
            Some(h) => finish_write(h, part).await,
            None => idle.ok_or_else(|| FileError::Permanent("internal: no file".into())),
        };
        (file, result)
    }
}

fn read_error(e: quinn::ReadError) -> FileError {
    match e {
        quinn::ReadError::Reset(code) if code.into_inner() == StreamCode::FileChanged as u64 => {
            FileError::Transient("the file changed on the peer while it was sent".into())
        }
        e => FileError::Transient(format!("transfer interrupted: {e}")),
    }
}

/// Which remote file a `.part` holds bytes of.
fn source_id(peer: &PeerId, remote_path: &str) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(peer.as_bytes());
    h.update(remote_path.as_bytes());
    *h.finalize().as_bytes()
}

/// Exclusive use of a `.part` path within this process (two downloads of the
/// same name must not write into one file).
struct PartClaim<'a> {
    set: &'a Mutex<HashSet<PathBuf>>,
    path: PathBuf,
}

impl<'a> PartClaim<'a> {
    fn take(set: &'a Mutex<HashSet<PathBuf>>, path: &Path) -> Result<Self, FileError> {
        if !lock(set).insert(path.to_path_buf()) {
            return Err(FileError::Permanent(format!("{} is being downloaded by another download", path.display())));
        }
        Ok(PartClaim { set, path: path.to_path_buf() })
    }
}

impl Drop for PartClaim<'_> {
    fn drop(&mut self) {
        lock(self.set).remove(&self.path);
    }
}

/// Gives a complete `.part` its final name without replacing anything: a
/// hard link to the first free name (`name`, `name (2).ext`, …), then the
/// `.part` is removed. Filesystems without hard links (FAT, exFAT) get a
/// check-then-rename instead.
fn publish(part: &Path, target: &Path) -> std::io::Result<PathBuf> {
    for candidate in candidate_names(target).take(10_000) {
        match std::fs::hard_link(part, &candidate) {
            Ok(()) => {
                std::fs::remove_file(part)?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(_) => {
                if std::fs::symlink_metadata(&candidate).is_ok() {
                    continue;
                }
                std::fs::rename(part, &candidate)?;
                return Ok(candidate);
            }
        }
    }
    Err(std::io::Error::other("no free name"))
}

/// `target`, then `name (2).ext`, `name (3).ext`, …
fn candidate_names(target: &Path) -> impl Iterator<Item = PathBuf> + '_ {
    let stem = target.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let ext = target.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    std::iter::once(target.to_path_buf())
        .chain((2u32..).map(move |n| target.with_file_name(format!("{stem} ({n}){ext}"))))
}

/// Waits for a background write and hands the file back.
async fn finish_write(
    h: tokio::task::JoinHandle<std::io::Result<std::fs::File>>,
    part: &Path,
) -> Result<std::fs::File, FileError> {
    match h.await {
        Ok(Ok(f)) => Ok(f),
        Ok(Err(e)) => Err(local_io("cannot write", part, e)),
        Err(_) => Err(FileError::Permanent("the node is shutting down".into())),
    }
}

/// `name.part` next to `target`.
pub fn part_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".part");
    target.with_file_name(name)
}

fn system_time(mtime_ns: i64) -> std::time::SystemTime {
    let base = std::time::UNIX_EPOCH;
    if mtime_ns >= 0 {
        base + Duration::from_nanos(mtime_ns as u64)
    } else {
        base.checked_sub(Duration::from_nanos(mtime_ns.unsigned_abs())).unwrap_or(base)
    }
}

/// Names Windows reserves; a download may land on an exFAT/NTFS/SMB disk.
const RESERVED: [&str; 22] = [
    "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8", "com9", "lpt1", "lpt2",
    "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
];

/// Checks one name a peer sent before it becomes a local file or directory.
pub fn safe_component(name: &str) -> Result<(), UnsafeName> {
    let bad = || UnsafeName(name.to_owned());
    validate_component(name).map_err(|_| bad())?;
    let stem = name.split('.').next().unwrap_or(name).trim_end().to_ascii_lowercase();
    if RESERVED.contains(&stem.as_str()) || name.ends_with('.') || name.ends_with(' ') {
        return Err(bad());
    }
    Ok(())
}

/// The local path components (below the download dir) for a remote entry of
/// a download of `requested`: `[last(requested), rest of entry…]`. The entry
/// must be `requested` itself or lie below it, and every component must be
/// safe.
pub fn local_path_for(requested: &SharePath, entry: &str) -> Result<Vec<String>, UnsafeName> {
    let bad = || UnsafeName(entry.to_owned());
    let parsed = SharePath::parse(entry).map_err(|_| bad())?;
    let (_, base) = requested.split_last().ok_or_else(bad)?;
    let rest = if parsed == *requested {
        ""
    } else {
        parsed.as_str().strip_prefix(requested.as_str()).and_then(|r| r.strip_prefix('/')).ok_or_else(bad)?
    };
    let mut out = vec![base.to_owned()];
    out.extend(rest.split('/').filter(|c| !c.is_empty()).map(str::to_owned));
    for c in &out {
        safe_component(c)?;
    }
    Ok(out)
}

/// Creates `root/parts…` one level at a time, refusing to pass through a
/// symlink or a non-directory.
pub fn ensure_dirs(root: &Path, parts: &[String]) -> std::io::Result<PathBuf> {
    let mut p = root.to_path_buf();
    for c in parts {
        p.push(c);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(std::io::Error::other(format!("{} exists and is not a directory", p.display())));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::create_dir(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if !std::fs::symlink_metadata(&p)?.is_dir() {
                        return Err(std::io::Error::other(format!("{} is not a directory", p.display())));
                    }
                }
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(s: &str) -> SharePath {
        SharePath::parse(s).unwrap()
    }

    #[test]
    fn local_paths_stay_below_the_request() {
        assert_eq!(local_path_for(&sp("m/Album"), "m/Album/a.mp3").unwrap(), vec!["Album", "a.mp3"]);
        assert_eq!(local_path_for(&sp("m/Album/a.mp3"), "m/Album/a.mp3").unwrap(), vec!["a.mp3"]);
        assert_eq!(local_path_for(&sp("m"), "m/x/y").unwrap(), vec!["m", "x", "y"]);
        for hostile in [
            "../../etc/passwd",
            "/etc/passwd",
            "m/Album/../../../x",
            "m/Album/..",
            "m/Albums/x",
            "other/Album/x",
            "m/Album/a\\..\\b",
            "m/Album/CON",
            "m/Album/aux.txt",
            "m/Album/trailing.",
            "m/Album/x\u{0}",
            "",
        ] {
            assert!(local_path_for(&sp("m/Album"), hostile).is_err(), "{hostile:?}");
        }
    }

    #[test]
    fn directories_are_not_created_through_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let root = tmp.path().join("dl");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("evil")).unwrap();
        assert!(ensure_dirs(&root, &["evil".into(), "x".into()]).is_err());
        assert!(!outside.join("x").exists());
        let made = ensure_dirs(&root, &["a".into(), "b".into()]).unwrap();
        assert_eq!(made, root.join("a/b"));
        assert!(made.is_dir());
    }

    #[test]
    fn part_names() {
        assert_eq!(part_path(Path::new("/d/a.mp3")), PathBuf::from("/d/a.mp3.part"));
    }
}
