//! Fetching one file: from a peer's `read` stream into `<name>.part`,
//! verified against the sender's BLAKE3, then given its final name.
//!
//! Goals:
//! - Never lose data: bytes go to `<name>.part`, which becomes a final name
//!   only when complete and verified; a crash or kill at any moment leaves a
//!   `.part` to resume.
//! - Verified without reading the file twice: the BLAKE3 of a `.part` is
//!   computed as its bytes are written (a resumed prefix is read back once,
//!   when the transfer starts) and must equal the sender's.
//! - Resume only the same version: which remote file and version (size,
//!   mtime) a `.part` holds, and how much of it was fsynced, is kept in the
//!   index (`partials`); if the sender's file changed, start over.
//! - Bounded: two buffers of [`WRITE_CHUNK`] (one filling from the
//!   network, one being written) plus quinn's own stream window per file
//!   being fetched, whatever the file's size.
//!
//! Non-goals: scheduling, retries and bookkeeping (the queue in
//! [`super`] does those); fetching one file from several peers (later:
//! the download path already works in byte ranges).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdp_proto::id::PeerId;
use hdp_proto::wire::{ReadRequest, RequestError, StreamCode};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::names::{candidate_names, part_path, wire_name};
use super::small::{Finals, Job, Published, Publisher};
use crate::index::{Index, PartialMeta};
use crate::lock;
use crate::remote::{self, RemoteError};

/// Bytes read from the network before each write to disk.
pub const WRITE_CHUNK: usize = 512 * 1024;
/// A transfer with no data for this long is treated as interrupted.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes written between fsyncs of a `.part` (each sync advances what a
/// resume after a crash or power loss may trust).
pub const SYNC_EVERY: u64 = 32 * 1024 * 1024;
/// Longest time between fsyncs while bytes arrive, so a slow link loses at
/// most this much transfer time to a crash.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(2);
/// Files up to this size take the small-file path ([`Fetch::run_small`]):
/// received whole into memory (the scheduler lets at most
/// [`super::SLOT_KIB`] KiB of them share a slot, so at most a few MiB),
/// with the `hash` asked beside the `read`, written to an unnamed file that
/// gets its name only once complete, and no record of a `.part`. A crash
/// loses at most this much per file, fetched again from the start.
pub const SMALL_FILE: u64 = 128 * 1024;

/// One attempt at a file failed.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Worth another attempt (connection lost, peer busy, file changed).
    #[error("{0}")]
    Transient(String),
    /// Will not get better by retrying on its own (refused by the peer,
    /// disk full, download dir unwritable); the user can retry.
    #[error("{0}")]
    Permanent(String),
    /// The received file did not match the sender's hash; the `.part` was
    /// discarded, so the next attempt starts from scratch.
    #[error("{0}")]
    Mismatch(String),
    /// Paused, cancelled or shutting down; what was received is kept.
    #[error("stopped")]
    Stopped,
}

impl From<RemoteError> for FileError {
    fn from(e: RemoteError) -> Self {
        match e {
            RemoteError::Refused(RequestError::Busy | RequestError::Changed | RequestError::Io)
            | RemoteError::Connection(_)
            | RemoteError::Frame(_) => FileError::Transient(e.to_string()),
            other => FileError::Permanent(other.to_string()),
        }
    }
}

/// Characters FAT, exFAT and NTFS refuse in names, besides control characters.
const NOT_ON_WINDOWS_DISKS: &[char] = &['\\', ':', '*', '?', '"', '<', '>', '|'];

/// A local I/O failure, in words that say what to do about it.
pub fn local_io(what: &str, path: &Path, e: std::io::Error) -> FileError {
    let name = path.file_name().map(wire_name).unwrap_or_default();
    let windows_unsafe = name.chars().any(|c| c.is_control() || NOT_ON_WINDOWS_DISKS.contains(&c));
    let hint = match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
            " — the disk is full: free some space, then retry (the partial file is kept)"
        }
        Some(libc::EROFS) => " — the disk is read-only: make the download dir writable, then retry",
        Some(libc::ENAMETOOLONG) => {
            " — the name is too long for the filesystem of the download dir (FAT and exFAT disks allow fewer \
             bytes than Linux ones): download to a Linux filesystem such as ext4, or rename the file where it is shared"
        }
        // Kernels answer EINVAL for such a name on FAT; FUSE and SMB
        // filesystems often EPERM or EACCES.
        Some(libc::EINVAL | libc::EILSEQ | libc::EPERM | libc::EACCES) if windows_unsafe => {
            " — the filesystem of the download dir refuses this name (FAT, exFAT and NTFS disks refuse control \
             characters and \\ : * ? \" < > |): download to a Linux filesystem such as ext4, or rename the file \
             where it is shared"
        }
        Some(libc::EACCES) | Some(libc::EPERM) => {
            " — permission denied: make the download dir writable for this node, then retry"
        }
        Some(libc::EINVAL) | Some(libc::EILSEQ) => {
            " — the filesystem of the download dir refuses this name: download to a Linux filesystem such as ext4, \
             or rename the file where it is shared"
        }
        _ => "",
    };
    let shown = wire_name(path.as_os_str());
    FileError::Permanent(format!("{what} {}: {e}{hint}", hdp_proto::fmt::shown(&shown)))
}

/// Everything one attempt at one file needs.
pub struct Fetch<'a> {
    pub index: &'a Index,
    pub conn: &'a quinn::Connection,
    pub peer: PeerId,
    pub remote_path: &'a str,
    /// The preferred final path; a taken name gets ` (2)`, ` (3)`, ….
    pub target: &'a Path,
    /// Bytes of this file on disk so far; read by the progress ticker.
    pub progress: &'a AtomicU64,
    /// Pause, cancel or shutdown: stop between reads, keep the `.part`.
    pub stop: &'a CancellationToken,
    /// `.part` files being written by this process.
    pub active_parts: &'a Mutex<HashSet<PathBuf>>,
    /// `--max-download-rate`, shared by every download.
    pub rate: &'a crate::serve::RateLimit,
}

/// A file that arrived, was verified and has its final name.
#[derive(Debug)]
pub struct Fetched {
    pub final_path: PathBuf,
    pub size: u64,
}

/// A `.part` being written and the BLAKE3 of everything written to it so far.
struct Writer {
    file: std::fs::File,
    hasher: blake3::Hasher,
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
            return Err(FileError::Transient(format!("{} is being written by another download", path.display())));
        }
        Ok(PartClaim { set, path: path.to_path_buf() })
    }
}

impl Drop for PartClaim<'_> {
    fn drop(&mut self) {
        lock(self.set).remove(&self.path);
    }
}

/// Finishes a file whose final name was recorded before a crash: if the
/// `.part` is gone and the final file exists, or both are the same file
/// (linked, not yet unlinked), the file is complete. `None`: fetch it.
pub fn finish_published(target: &Path, final_name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let fin = target.with_file_name(final_name);
    let part = part_path(target);
    let fin_meta = std::fs::symlink_metadata(&fin).ok().filter(|m| m.is_file())?;
    match std::fs::symlink_metadata(&part) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(fin),
        Ok(p) if p.dev() == fin_meta.dev() && p.ino() == fin_meta.ino() => {
            std::fs::remove_file(&part).ok()?;
            Some(fin)
        }
        _ => None,
    }
}

/// Removes a file's `.part` and what the index knows about it (cancel).
pub fn discard_part(index: &Index, target: &Path) {
    let part = part_path(target);
    if let Err(e) = std::fs::remove_file(&part)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        warn!(part = %part.display(), error = %e, "cannot remove a cancelled partial file");
    }
    let _ = index.partial_delete(&part);
}

impl Fetch<'_> {
    /// Downloads the file through `target.part`, resuming when the `.part`
    /// holds synced bytes of the same remote file and version.
    ///
    /// Order of operations, so that a crash at any point leaves a state the
    /// next attempt handles: a new `.part` is recorded before it is created;
    /// an existing one is cut (and synced) to the resume point *before* the
    /// version it will hold is recorded; the record's synced length only
    /// grows after an fsync; the final name is recorded (`record_final`)
    /// before the `.part` is linked there, and only after every promised
    /// byte and a clean end of stream arrived, the length was checked, the
    /// data synced and its BLAKE3 matched the sender's.
    ///
    /// Disk and LMDB work runs on the blocking pool (`blocking`).
    pub async fn run(
        &self,
        record_final: impl FnMut(&str) -> Result<(), FileError> + Send + 'static,
    ) -> Result<Fetched, FileError> {
        let part = part_path(self.target);
        let _claim = PartClaim::take(self.active_parts, &part)?;
        let source = source_id(&self.peer, self.remote_path);
        let (index, p) = (self.index.clone(), part.clone());
        let (known, have) = blocking(move || {
            let known = index.partial_get(&p).map_err(|e| FileError::Permanent(e.to_string()))?;
            let have = match std::fs::symlink_metadata(&p) {
                Ok(m) if m.is_file() => Some(m.len()),
                Ok(_) => return Err(FileError::Permanent(format!("{} exists and is not a file", p.display()))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(local_io("cannot inspect", &p, e)),
            };
            Ok((known, have))
        })
        .await?;
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
        let read = |offset| ReadRequest { path: self.remote_path.into(), offset, length: None };
        let (mut head, mut recv) = match remote::read(self.conn, read(offset)).await {
            Ok(v) => v,
            Err(RemoteError::Refused(RequestError::BadRange)) if offset > 0 => {
                // Our `.part` is longer than the file is now: another version.
                offset = 0;
                remote::read(self.conn, read(0)).await?
            }
            Err(e) => return Err(e.into()),
        };
        let same = known.is_some_and(|k| k.source == source && k.size == head.size && k.mtime_ns == head.mtime_ns);
        if offset > 0 && !same {
            // Another version: drop what we have and start over.
            let _ = recv.stop(quinn::VarInt::from_u32(StreamCode::Cancelled as u32));
            offset = 0;
            (head, recv) = remote::read(self.conn, read(0)).await?;
        }

        let meta = PartialMeta { size: head.size, mtime_ns: head.mtime_ns, source, synced: offset };
        let fresh = have.is_none();
        if fresh {
            // No bytes on disk yet: record first, so a crash right after the
            // file is created leaves a `.part` this node knows as its own.
            self.record_partial(&part, meta).await?;
        }
        let open_part = part.clone();
        let opened = tokio::task::spawn_blocking(move || -> std::io::Result<Writer> {
            use std::io::{Read, Seek};
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(fresh)
                .truncate(false)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&open_part)?;
            f.set_len(offset)?;
            f.sync_all()?;
            // The kept prefix is hashed from disk; everything after it is
            // hashed as it is written.
            let mut hasher = blake3::Hasher::new();
            f.seek(std::io::SeekFrom::Start(0))?;
            let hashed = std::io::copy(&mut (&mut f).take(offset), &mut hasher)?;
            if hashed != offset {
                return Err(std::io::Error::other("the partial file shrank while it was read"));
            }
            Ok(Writer { file: f, hasher })
        })
        .await;
        let file = match opened {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => return Err(local_io("cannot open", &part, e)),
            Err(e) => return Err(lost_task(e)),
        };
        if !fresh {
            // Bytes of another version may have been cut off just above: only
            // now, with the file at `offset` and synced, record what it holds.
            self.record_partial(&part, meta).await?;
        }
        self.progress.store(offset, Ordering::Relaxed);

        let (file, result) = self.receive(&part, file, &mut recv, head, offset, meta).await;
        if let Err(e) = result {
            if let (FileError::Stopped, Ok(Writer { file, .. })) = (&e, file) {
                // Keep what arrived for the resume: sync it, then record it.
                let end = self.progress.load(Ordering::Relaxed);
                let (index, part) = (self.index.clone(), part.clone());
                let _ = tokio::task::spawn_blocking(move || {
                    if file.sync_data().is_ok() {
                        let _ = index.partial_put(&part, PartialMeta { synced: end, ..meta });
                    }
                })
                .await;
            } else {
                let _ = recv.stop(quinn::VarInt::from_u32(StreamCode::Cancelled as u32));
            }
            return Err(e);
        }
        let Writer { file, hasher } = file?;
        let ours = *hasher.finalize().as_bytes();
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
            Err(e) => return Err(lost_task(e)),
        }
        self.verify(&part, &head, ours).await?;
        let (index, target, mtime_ns) = (self.index.clone(), self.target.to_path_buf(), head.mtime_ns);
        let final_path = blocking(move || {
            let final_path = publish(&part, &target, record_final)?;
            let _ = index.partial_delete(&part);
            if let Ok(f) = std::fs::File::options().write(true).open(&final_path) {
                let _ = f.set_modified(system_time(mtime_ns));
            }
            Ok(final_path)
        })
        .await?;
        let path_stats = self.conn.stats().path;
        debug!(
            file = %final_path.display(), bytes = head.length, mtu = path_stats.current_mtu,
            rtt_us = path_stats.rtt.as_micros() as u64, lost_packets = path_stats.lost_packets,
            "file complete"
        );
        Ok(Fetched { final_path, size: head.size })
    }

    /// Fetches a small file (at most [`SMALL_FILE`]) in one round trip:
    /// `read` and `hash` go out together, the bytes are checked against the
    /// hash in memory, and [`super::small::Publisher`] writes, syncs and
    /// names it together with other small files (see there).
    ///
    /// `Ok(None)`: fetch it through a `.part` ([`Fetch::run`]) instead: a
    /// `.part` of an earlier attempt exists, the filesystem has no unnamed
    /// files (FAT, some network filesystems), or the file grew past
    /// [`SMALL_FILE`] at the peer. `base`, `dirs` and `name` are what
    /// `target` is made of.
    pub async fn run_small(
        &self,
        (publisher, finals): (&std::sync::Arc<Publisher>, std::sync::Arc<dyn Finals>),
        (id, seq): (u64, u64),
        (base, dirs, name): (PathBuf, Vec<String>, String),
    ) -> Result<Option<Fetched>, FileError> {
        let read = ReadRequest { path: self.remote_path.into(), offset: 0, length: None };
        let (got, theirs) = tokio::select! {
            r = async { tokio::join!(remote::read(self.conn, read), remote::hash(self.conn, self.remote_path)) } => r,
            _ = self.stop.cancelled() => return Err(FileError::Stopped),
        };
        let (head, mut recv) = got?;
        if head.size > SMALL_FILE {
            let _ = recv.stop(quinn::VarInt::from_u32(StreamCode::Cancelled as u32));
            return Ok(None);
        }
        let theirs = theirs?;
        let mut data = Vec::with_capacity(head.length as usize);
        let received = tokio::select! {
            r = tokio::time::timeout(STALL_TIMEOUT, read_exactly(&mut recv, head.length, &mut data, self.rate)) => r,
            _ = self.stop.cancelled() => {
                let _ = recv.stop(quinn::VarInt::from_u32(StreamCode::Cancelled as u32));
                return Err(FileError::Stopped);
            }
        };
        received.map_err(|_| FileError::Transient(format!("no data from the peer for {STALL_TIMEOUT:?}")))??;
        self.progress.store(head.length, Ordering::Relaxed);
        if theirs.size != head.size || theirs.mtime_ns != head.mtime_ns {
            return Err(FileError::Transient("the file changed on the peer while it was sent".into()));
        }
        if *blake3::hash(&data).as_bytes() != theirs.hash {
            warn!(file = self.remote_path, "BLAKE3 mismatch; the file will be downloaded again");
            return Err(FileError::Mismatch(
                "the received bytes do not match the sender's BLAKE3 hash; downloading the file again".into(),
            ));
        }
        let size = head.size;
        let job = |reply| Job { id, seq, base, dirs, name, data, mtime_ns: head.mtime_ns, reply };
        match publisher.publish(finals, job).await? {
            Published::Done(final_path) => Ok(Some(Fetched { final_path, size })),
            Published::UsePart => Ok(None),
        }
    }

    async fn record_partial(&self, part: &Path, meta: PartialMeta) -> Result<(), FileError> {
        let (index, part) = (self.index.clone(), part.to_path_buf());
        blocking(move || index.partial_put(&part, meta).map_err(|e| FileError::Permanent(e.to_string()))).await
    }

    /// Checks the complete `.part` against the sender: the BLAKE3 of what we
    /// wrote (`ours`: the resumed prefix as read back from disk, the rest as
    /// it was written) must equal the sender's hash of the very version we
    /// received (same size and mtime). A mismatch deletes the `.part`, so the
    /// retry starts over.
    async fn verify(&self, part: &Path, head: &remote::ReadOk, ours: [u8; 32]) -> Result<(), FileError> {
        let theirs = tokio::select! {
            r = remote::hash(self.conn, self.remote_path) => r?,
            _ = self.stop.cancelled() => return Err(FileError::Stopped),
        };
        if theirs.size != head.size || theirs.mtime_ns != head.mtime_ns {
            return Err(FileError::Transient("the file changed on the peer after it was sent".into()));
        }
        if ours != theirs.hash {
            warn!(file = self.remote_path, "BLAKE3 mismatch; the file will be downloaded again from scratch");
            let (index, part) = (self.index.clone(), part.to_path_buf());
            let _ = tokio::task::spawn_blocking(move || {
                let _ = std::fs::remove_file(&part);
                let _ = index.partial_delete(&part);
            })
            .await;
            return Err(FileError::Mismatch(
                "the received bytes do not match the sender's BLAKE3 hash; downloading the file again".into(),
            ));
        }
        debug!(file = self.remote_path, hash = %hdp_proto::topic::hex(&ours), "verified");
        Ok(())
    }

    /// Receives the promised bytes into `file` (from `offset`), overlapping
    /// network reads with disk writes, then insists on a clean end of stream.
    /// Always hands the file back with every write finished, even on error.
    async fn receive(
        &self,
        part: &Path,
        file: Writer,
        recv: &mut quinn::RecvStream,
        head: remote::ReadOk,
        offset: u64,
        meta: PartialMeta,
    ) -> (Result<Writer, FileError>, Result<(), FileError>) {
        // A second handle on the `.part` for the periodic fsync, which runs
        // beside the writes instead of between them: a sync of tens of MiB
        // takes tens of ms, and the stream would stand still meanwhile.
        let sync_handle = match file.file.try_clone() {
            Ok(h) => std::sync::Arc::new(h),
            // Usually too many open files: worth another attempt later.
            Err(e) => {
                return (Ok(file), Err(FileError::Transient(format!("cannot open {} again: {e}", part.display()))));
            }
        };
        let mut idle: Option<Writer> = Some(file);
        // Network reads and disk writes overlap: while one buffer is written
        // and hashed on the blocking pool, the next one fills from the
        // network. Whole buffers, not quinn's packet-sized chunks, go to
        // disk and to BLAKE3: one write per buffer instead of one per
        // packet, and BLAKE3 hashes many 1 KiB chunks at once (SIMD) only
        // when handed many at once.
        let mut writing: Option<WriteTask> = None;
        // At most one background sync; see `sync_handle`.
        let mut syncing: Option<SyncTask> = None;
        // A small file needs no more than its own size.
        let buf_len = head.length.min(WRITE_CHUNK as u64) as usize;
        let mut fill: Vec<u8> = vec![0; buf_len];
        let mut spare: Option<Vec<u8>> = None;
        let mut got = 0u64;
        // Where the last sync started (or the resume point): the next one is
        // due SYNC_EVERY bytes or SYNC_INTERVAL later.
        let mut sync_mark = offset;
        // Pages before this were synced and dropped from the cache (the
        // resumed prefix, read back for hashing, goes with the first sync).
        let mut dropped_to = 0;
        let mut last_sync = std::time::Instant::now();
        let result: Result<(), FileError> = async {
            while got < head.length {
                let want = (head.length - got).min(WRITE_CHUNK as u64) as usize;
                let mut n = 0;
                while n < want {
                    // Copies everything quinn has in order, up to `want`.
                    let read = tokio::select! {
                        r = tokio::time::timeout(STALL_TIMEOUT, recv.read(&mut fill[n..want])) => r,
                        _ = self.stop.cancelled() => {
                            let _ = recv.stop(quinn::VarInt::from_u32(StreamCode::Cancelled as u32));
                            return Err(FileError::Stopped);
                        }
                    };
                    let read =
                        read.map_err(|_| FileError::Transient(format!("no data from the peer for {STALL_TIMEOUT:?}")))?;
                    match read {
                        Ok(Some(k)) => {
                            n += k;
                            self.rate.take(k).await;
                        }
                        Ok(None) => return Err(FileError::Transient("the peer ended the transfer early".into())),
                        Err(e) => return Err(read_error(e)),
                    }
                }
                let mut f = match writing.take() {
                    Some(h) => {
                        let (f, buf) = finish_write(h, part).await?;
                        spare = Some(buf);
                        f
                    }
                    None => idle.take().ok_or_else(|| FileError::Permanent("internal: no file".into()))?,
                };
                // Everything before this buffer is written: that is what a
                // pause keeps, and what a sync started now makes durable.
                let written = offset + got;
                self.progress.store(written, Ordering::Relaxed);
                if syncing.as_ref().is_some_and(|t| t.is_finished())
                    && let Some(t) = syncing.take()
                    && let Err(e) = finish_sync(t).await
                {
                    idle = Some(f);
                    return Err(e);
                }
                let due =
                    written - sync_mark >= SYNC_EVERY || (written > sync_mark && last_sync.elapsed() >= SYNC_INTERVAL);
                if due && syncing.is_none() {
                    let from = dropped_to;
                    dropped_to = written;
                    sync_mark = written;
                    last_sync = std::time::Instant::now();
                    let (handle, index, part) = (sync_handle.clone(), self.index.clone(), part.to_path_buf());
                    let meta = PartialMeta { synced: written, ..meta };
                    // Only after the sync returns does the record say these
                    // bytes are safe to resume from.
                    syncing = Some(tokio::task::spawn_blocking(move || {
                        handle.sync_data().map_err(|e| local_io("cannot sync", &part, e))?;
                        drop_cached(&handle, from, written);
                        index.partial_put(&part, meta).map_err(|e| FileError::Permanent(e.to_string()))
                    }));
                }
                got += n as u64;
                let buf = std::mem::replace(&mut fill, spare.take().unwrap_or_else(|| vec![0; buf_len]));
                writing = Some(tokio::task::spawn_blocking(move || {
                    write_sparse(&mut f.file, &buf[..n])?;
                    f.hasher.update(&buf[..n]);
                    Ok((f, buf))
                }));
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
        let file = match writing.take() {
            Some(h) => finish_write(h, part).await.map(|(f, _)| f),
            None => idle.ok_or_else(|| FileError::Permanent("internal: no file".into())),
        };
        // A sync still running is waited for, so its record never lands
        // after what the caller records next (or after the record is gone).
        let synced = match syncing.take() {
            Some(t) => finish_sync(t).await,
            None => Ok(()),
        };
        // A failed sync wins over everything else, a pause included: the
        // pause's own sync could succeed on the same file after the kernel
        // reported the failed writeback once, and record bytes that are
        // not on disk.
        let result = synced.and(result);
        if file.is_ok() {
            self.progress.store(offset + got, Ordering::Relaxed);
        }
        (file, result)
    }
}

/// Gives a complete `.part` its final name without replacing anything:
/// a hard link to the first free name (`name`, `name (2).ext`, …), then
/// the `.part` is removed. The chosen name is recorded first, so a crash
/// between link and unlink is finished by [`finish_published`].
/// Filesystems without hard links (FAT, exFAT) get a check-then-rename.
fn publish(
    part: &Path,
    target: &Path,
    mut record_final: impl FnMut(&str) -> Result<(), FileError>,
) -> Result<PathBuf, FileError> {
    let err = |e| local_io("cannot give its final name to", part, e);
    if let Err(e) = std::fs::symlink_metadata(part)
        && e.kind() == std::io::ErrorKind::NotFound
    {
        // Someone removed it (or the whole download dir) meanwhile.
        return Err(FileError::Transient(format!("{} was removed; fetching the file again", part.display())));
    }
    for candidate in candidate_names(target).take(10_000) {
        if std::fs::symlink_metadata(&candidate).is_ok() {
            continue;
        }
        let name = candidate.file_name().map(wire_name).unwrap_or_default();
        record_final(&name)?;
        match std::fs::hard_link(part, &candidate) {
            Ok(()) => {
                std::fs::remove_file(part).map_err(err)?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(_) => {
                if std::fs::symlink_metadata(&candidate).is_ok() {
                    continue;
                }
                std::fs::rename(part, &candidate).map_err(err)?;
                return Ok(candidate);
            }
        }
    }
    Err(FileError::Permanent(format!("no free name for {}", target.display())))
}

/// Blocks of zeros this long (at this alignment in the buffer, which starts
/// at a multiple of it in the file) are left as holes instead of written.
const HOLE_BLOCK: usize = 4096;

/// Writes `buf` at the file's position, leaving [`HOLE_BLOCK`]s of zeros as
/// holes: a sparse disk image arrives sparse, as cheap on our disk as on the
/// sender's. Runs of data go out in one write each. The file's length is
/// always the position after the call, also when it ends in a hole. Only
/// for files whose bytes past the position are holes (a `.part` truncated
/// to its resume point).
fn write_sparse(file: &mut std::fs::File, buf: &[u8]) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let zero = |b: &[u8]| b.len() == HOLE_BLOCK && b.iter().all(|&x| x == 0);
    let mut start = 0;
    let mut ends_in_hole = false;
    while start < buf.len() {
        let run_zero = zero(&buf[start..buf.len().min(start + HOLE_BLOCK)]);
        let mut end = start;
        while end < buf.len() && zero(&buf[end..buf.len().min(end + HOLE_BLOCK)]) == run_zero {
            end = buf.len().min(end + HOLE_BLOCK);
        }
        if run_zero {
            file.seek(SeekFrom::Current((end - start) as i64))?;
        } else {
            file.write_all(&buf[start..end])?;
        }
        ends_in_hole = run_zero;
        start = end;
    }
    if ends_in_hole {
        let at = file.stream_position()?;
        if file.metadata()?.len() < at {
            file.set_len(at)?;
        }
    }
    Ok(())
}

/// Reads exactly `len` bytes and a clean end of stream into `data`.
async fn read_exactly(
    recv: &mut quinn::RecvStream,
    len: u64,
    data: &mut Vec<u8>,
    rate: &crate::serve::RateLimit,
) -> Result<(), FileError> {
    while (data.len() as u64) < len {
        let room = (len - data.len() as u64) as usize;
        match recv.read_chunk(room, true).await {
            Ok(Some(chunk)) => {
                data.extend_from_slice(&chunk.bytes);
                rate.take(chunk.bytes.len()).await;
            }
            Ok(None) => return Err(FileError::Transient("the peer ended the transfer early".into())),
            Err(e) => return Err(read_error(e)),
        }
    }
    match recv.read_chunk(1, true).await {
        Ok(None) => Ok(()),
        Ok(Some(_)) => Err(FileError::Transient("the peer sent more bytes than it promised".into())),
        Err(e) => Err(read_error(e)),
    }
}

/// Runs disk and LMDB work on the blocking pool: the node's async thread
/// carries every peer's QUIC traffic and must not wait for an fsync.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FileError> + Send + 'static,
) -> Result<T, FileError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| Err(lost_task(e)))
}

/// A blocking task that did not return: cancelled means the runtime is
/// shutting down (stop, keep the `.part`); a panic is a bug that retrying
/// would only repeat, so the file fails and says so.
pub fn lost_task(e: tokio::task::JoinError) -> FileError {
    if e.is_panic() {
        FileError::Permanent("internal error while handling the file (a bug: please report it)".into())
    } else {
        FileError::Stopped
    }
}

fn read_error(e: quinn::ReadError) -> FileError {
    match e {
        quinn::ReadError::Reset(code) if code.into_inner() == StreamCode::FileChanged as u64 => {
            FileError::Transient("the file changed on the peer while it was sent".into())
        }
        quinn::ReadError::Reset(code) if code.into_inner() == StreamCode::NotShared as u64 => FileError::Permanent(
            "the peer no longer shares this file with us (its owner changed who sees the share, or left the topic \
             we shared): ask them to share it with one of our topics, then retry"
                .into(),
        ),
        e => FileError::Transient(format!("transfer interrupted: {e}")),
    }
}

/// Tells the kernel the bytes `from..to` of `file`, just synced, will not
/// be read again soon: a download of many GiB then reuses the same few
/// pages of cache instead of pushing everything else (the index, other
/// programs' files) out of a small machine's memory. It also kept loopback
/// throughput steadier in `scripts/bench-transfer.sh`. Advice only: errors
/// are ignored.
fn drop_cached(file: &std::fs::File, from: u64, to: u64) {
    use std::os::fd::AsRawFd;
    // The 64-bit call: `off_t` is 32 bits on armv7, and these files are not.
    let (Ok(start), Ok(len)) = (libc::off64_t::try_from(from), libc::off64_t::try_from(to.saturating_sub(from))) else {
        return;
    };
    if len == 0 {
        return;
    }
    // SAFETY: posix_fadvise64 only reads its integer arguments; the fd is
    // open for as long as `file` is borrowed.
    #[allow(unsafe_code)]
    unsafe {
        libc::posix_fadvise64(file.as_raw_fd(), start, len, libc::POSIX_FADV_DONTNEED);
    }
}

/// A background fsync of a `.part` and the record of its new synced length.
type SyncTask = tokio::task::JoinHandle<Result<(), FileError>>;

async fn finish_sync(h: SyncTask) -> Result<(), FileError> {
    h.await.unwrap_or_else(|e| Err(lost_task(e)))
}

/// A buffer being written to a `.part` and hashed; hands both back.
type WriteTask = tokio::task::JoinHandle<std::io::Result<(Writer, Vec<u8>)>>;

/// Waits for a background write and hands the file and its buffer back.
async fn finish_write(h: WriteTask, part: &Path) -> Result<(Writer, Vec<u8>), FileError> {
    match h.await {
        Ok(Ok(f)) => Ok(f),
        Ok(Err(e)) => Err(local_io("cannot write", part, e)),
        Err(e) => Err(lost_task(e)),
    }
}

pub(super) fn system_time(mtime_ns: i64) -> std::time::SystemTime {
    let base = std::time::UNIX_EPOCH;
    if mtime_ns >= 0 {
        base + Duration::from_nanos(mtime_ns as u64)
    } else {
        base.checked_sub(Duration::from_nanos(mtime_ns.unsigned_abs())).unwrap_or(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn zeros_become_holes_and_the_bytes_are_exact() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f.part");
        let mut file = std::fs::File::options().create_new(true).read(true).write(true).open(&path).unwrap();
        let mib = 1 << 20;
        // Data, 8 MiB of zeros in two buffers, data not on a block edge,
        // then zeros to the end (the length must still come out right).
        let mut first = vec![0u8; mib];
        first[..100].fill(7);
        let mut want = first.clone();
        write_sparse(&mut file, &first).unwrap();
        for _ in 0..8 {
            write_sparse(&mut file, &vec![0; mib]).unwrap();
            want.extend(std::iter::repeat_n(0, mib));
        }
        let mut last = vec![0u8; mib + 123];
        last[5000] = 1;
        write_sparse(&mut file, &last).unwrap();
        want.extend(&last);
        drop(file);
        let got = std::fs::read(&path).unwrap();
        assert_eq!(got.len(), want.len());
        assert!(got == want);
        let meta = std::fs::metadata(&path).unwrap();
        // Two blocks of data (and filesystem overhead), not 10 MiB.
        assert!(meta.blocks() * 512 < 1 << 20, "{} bytes allocated", meta.blocks() * 512);
    }
}
