//! The scanner: walks one share's directory tree and brings the index in line.
//!
//! Goals:
//! - Stream: memory holds one directory listing per level of the current path
//!   (a depth-first walk), never the whole tree.
//! - Browse early: when a directory is visited, all its children are written
//!   before anything below them, and writes are committed at least every
//!   [`COMMIT_INTERVAL`] or [`BATCH_OPS`] changes, so listings fill in while
//!   the scan runs.
//! - Incremental: each directory's listing is merged with what the index
//!   already holds; unchanged entries are not rewritten, vanished ones (and
//!   everything below a vanished directory) are deleted.
//! - Aggregates: each directory's total size and entry count are computed
//!   when the walk leaves it, and written only if they changed.
//!
//! - Every name the filesystem holds is indexed: names that are not UTF-8
//!   are stored in their escaped wire form ([`hdp_proto::path::encode_name`]).
//!
//! Non-goals: following directory symlinks (cycles, duplicates); paths
//! longer than [`MAX_KEY_LEN`] (an LMDB key limit; logged and skipped).

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdp_proto::api::EntryKind;
use hdp_proto::path::{encode_name, validate_component};
use heed::RwTxn;
use heed::types::Bytes;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::keys::{self, EntryValue};
use super::{Index, delete_subtree};

/// Longest share path the index takes: LMDB keys are bounded (about 1,980
/// bytes on 4 KiB pages with `longer-keys`); deeper paths are skipped.
pub const MAX_KEY_LEN: usize = 1_900;
/// Changes written per write transaction at most.
pub const BATCH_OPS: usize = 4096;
/// Longest a scan keeps changes uncommitted (and so invisible to listings).
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(250);

/// Counters a running scan updates, read by `/api/shares`.
#[derive(Debug, Default)]
pub struct ScanProgress {
    pub files: AtomicU64,
    pub dirs: AtomicU64,
    pub size: AtomicU64,
}

impl ScanProgress {
    pub fn reset(&self) {
        self.files.store(0, Ordering::Relaxed);
        self.dirs.store(0, Ordering::Relaxed);
        self.size.store(0, Ordering::Relaxed);
    }
}

/// What a finished scan found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanStats {
    pub files: u64,
    pub dirs: u64,
    pub size: u64,
    /// Entries written or deleted (0 on a rescan of an unchanged tree).
    pub changes: u64,
}

/// A scan could not complete.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("the shared directory {0} is missing or not a directory; reconnect the disk or remove the share")]
    RootMissing(PathBuf),
    #[error("scan cancelled")]
    Cancelled,
    #[error("index error while scanning: {0}")]
    Lmdb(#[from] heed::Error),
}

/// One child found on disk.
struct Found {
    name: String,
    value: EntryValue,
    fs_path: PathBuf,
}

/// A directory on the walk's current path.
struct Frame {
    /// Share path of this directory.
    path: String,
    /// Child directories still to visit, in reverse name order (popped from the end).
    pending: Vec<PendingDir>,
    size: u64,
    count: u64,
    /// This directory's entry as the index had it before this scan visited it.
    old: Option<EntryValue>,
    mtime_ns: i64,
}

/// What stays the same for the whole walk.
struct Walk<'a> {
    root: &'a Path,
    private: Option<&'a Path>,
    progress: &'a ScanProgress,
}

/// A child directory seen on disk, not yet visited.
struct PendingDir {
    name: String,
    fs_path: PathBuf,
    mtime_ns: i64,
    /// Its entry before this scan (`None` if new or previously a file).
    old: Option<EntryValue>,
}

/// The write side: one open write transaction, committed in batches.
struct Writer<'a> {
    index: &'a Index,
    txn: Option<RwTxn<'a>>,
    ops: usize,
    opened: Instant,
    changes: u64,
}

impl<'a> Writer<'a> {
    fn new(index: &'a Index) -> Self {
        Writer { index, txn: None, ops: 0, opened: Instant::now(), changes: 0 }
    }

    fn txn(&mut self) -> Result<&mut RwTxn<'a>, heed::Error> {
        if self.txn.is_none() {
            self.txn = Some(self.index.env().write_txn()?);
            self.opened = Instant::now();
            self.ops = 0;
        }
        // Just opened above if it was missing.
        self.txn.as_mut().ok_or(heed::Error::Mdb(heed::MdbError::BadTxn))
    }

    fn put(&mut self, key: &[u8], value: &EntryValue) -> Result<(), heed::Error> {
        let db = self.index.entries_db();
        db.put(self.txn()?, key, &value.encode())?;
        self.ops += 1;
        self.changes += 1;
        Ok(())
    }

    fn delete_entry(&mut self, parent: &str, name: &str, was_dir: bool) -> Result<(), heed::Error> {
        let db = self.index.entries_db();
        let txn = self.txn()?;
        db.delete(txn, &keys::entry_key(parent, name))?;
        if was_dir {
            delete_subtree(db, txn, &keys::join(parent, name))?;
        }
        self.ops += 1;
        self.changes += 1;
        Ok(())
    }

    /// The children of `dir` as the index holds them now, sorted by name.
    fn existing_children(&mut self, dir: &str) -> Result<Vec<(String, EntryValue)>, heed::Error> {
        let db = self.index.entries_db().remap_types::<Bytes, Bytes>();
        let prefix = keys::children_prefix(dir);
        let txn = self.txn()?;
        let mut out = Vec::new();
        for item in db.prefix_iter(txn, &prefix)? {
            let (k, v) = item?;
            if let (Some((_, name)), Some(v)) = (keys::split_key(k), EntryValue::decode(v)) {
                out.push((name.to_owned(), v));
            }
        }
        Ok(out)
    }

    fn get(&mut self, key: &[u8]) -> Result<Option<EntryValue>, heed::Error> {
        let db = self.index.entries_db();
        let txn = self.txn()?;
        Ok(db.get(txn, key)?.and_then(EntryValue::decode))
    }

    /// Commits if the batch is full or old enough.
    fn maybe_commit(&mut self) -> Result<(), heed::Error> {
        if self.txn.is_some() && (self.ops >= BATCH_OPS || self.opened.elapsed() >= COMMIT_INTERVAL) {
            self.commit()?;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), heed::Error> {
        if let Some(txn) = self.txn.take() {
            txn.commit()?;
        }
        Ok(())
    }
}

/// How long the scanner pauses after each directory: `HDP_SCAN_PAUSE_MS`
/// (default 0). Leaves a slow disk to other work; tests use it to watch a
/// scan in progress on a machine fast enough to finish it in a blink.
fn dir_pause() -> std::time::Duration {
    static PAUSE: std::sync::OnceLock<std::time::Duration> = std::sync::OnceLock::new();
    *PAUSE.get_or_init(|| {
        let ms = std::env::var("HDP_SCAN_PAUSE_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(0u64);
        std::time::Duration::from_millis(ms.min(10_000))
    })
}

/// Scans the share `name` rooted at `root` (canonical), updating the index.
/// Blocking: run it on a blocking thread.
pub fn scan_share(
    index: &Index,
    name: &str,
    root: &Path,
    private: Option<&Path>,
    cancel: &CancellationToken,
    progress: &ScanProgress,
) -> Result<ScanStats, ScanError> {
    progress.reset();
    let root_meta = fs::metadata(root).map_err(|_| ScanError::RootMissing(root.into()))?;
    if !root_meta.is_dir() {
        return Err(ScanError::RootMissing(root.into()));
    }
    let mut w = Writer::new(index);
    let walk = Walk { root, private, progress };
    let root_key = keys::entry_key("", name);
    let old_root = w.get(&root_key)?;
    let mut stack = vec![visit(&mut w, name.to_owned(), root, old_root, mtime_ns(&root_meta), &walk)?];

    loop {
        if cancel.is_cancelled() {
            w.commit()?;
            return Err(ScanError::Cancelled);
        }
        w.maybe_commit()?;
        let Some(top) = stack.last_mut() else { break };
        if let Some(child) = top.pending.pop() {
            let path = keys::join(&top.path, &child.name);
            let frame = visit(&mut w, path, &child.fs_path, child.old, child.mtime_ns, &walk)?;
            stack.push(frame);
            let pause = dir_pause();
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
            continue;
        }
        // All children done: settle this directory's aggregate.
        let Some(done) = stack.pop() else { break };
        let value = EntryValue { kind: EntryKind::Dir, size: done.size, mtime_ns: done.mtime_ns, count: done.count };
        if done.old != Some(value) {
            w.put(&keys::path_key(&done.path), &value)?;
        }
        match stack.last_mut() {
            Some(parent) => {
                parent.size = parent.size.saturating_add(done.size);
                parent.count = parent.count.saturating_add(done.count);
            }
            None => {
                w.commit()?;
                return Ok(ScanStats {
                    files: progress.files.load(Ordering::Relaxed),
                    dirs: progress.dirs.load(Ordering::Relaxed),
                    size: progress.size.load(Ordering::Relaxed),
                    changes: w.changes,
                });
            }
        }
    }
    w.commit()?;
    Err(ScanError::Cancelled)
}

/// Reads directory `fs_dir` (share path `path`), merges its children into the
/// index, and returns its frame with the child directories still to visit.
fn visit(
    w: &mut Writer<'_>,
    path: String,
    fs_dir: &Path,
    old: Option<EntryValue>,
    mtime_ns: i64,
    walk: &Walk<'_>,
) -> Result<Frame, heed::Error> {
    let progress = walk.progress;
    let mut found = read_children(fs_dir, walk.root, walk.private);
    found.retain(|f| {
        let fits = path.len() + 1 + f.name.len() <= MAX_KEY_LEN;
        if !fits {
            warn!(path = %f.fs_path.display(), "path too long to index (over {MAX_KEY_LEN} bytes); skipping it");
        }
        fits
    });
    found.sort_unstable_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let existing = w.existing_children(&path)?;

    let mut frame = Frame { path, pending: Vec::new(), size: 0, count: 0, old, mtime_ns };
    // Merge two sorted lists: what is on disk and what the index holds.
    let mut ex = existing.into_iter().peekable();
    for f in found {
        while let Some((name, v)) = ex.next_if(|(n, _)| n.as_bytes() < f.name.as_bytes()) {
            w.delete_entry(&frame.path, &name, v.kind == EntryKind::Dir)?;
        }
        let prev = ex.next_if(|(n, _)| *n == f.name).map(|(_, v)| v);
        match f.value.kind {
            EntryKind::File => {
                if prev.is_some_and(|p| p.kind == EntryKind::Dir) {
                    delete_subtree(w.index.entries_db(), w.txn()?, &keys::join(&frame.path, &f.name))?;
                }
                if prev != Some(f.value) {
                    w.put(&keys::entry_key(&frame.path, &f.name), &f.value)?;
                }
                frame.size = frame.size.saturating_add(f.value.size);
                frame.count += 1;
                progress.files.fetch_add(1, Ordering::Relaxed);
                progress.size.fetch_add(f.value.size, Ordering::Relaxed);
            }
            EntryKind::Dir => {
                let old = prev.filter(|p| p.kind == EntryKind::Dir);
                if old.is_none() {
                    // New (or was a file): a placeholder until the walk leaves it.
                    w.put(&keys::entry_key(&frame.path, &f.name), &f.value)?;
                }
                frame.count += 1;
                progress.dirs.fetch_add(1, Ordering::Relaxed);
                frame.pending.push(PendingDir { name: f.name, fs_path: f.fs_path, mtime_ns: f.value.mtime_ns, old });
            }
        }
    }
    for (name, v) in ex {
        w.delete_entry(&frame.path, &name, v.kind == EntryKind::Dir)?;
    }
    frame.pending.reverse();
    Ok(frame)
}

/// The indexable children of a directory. Unreadable directories, broken
/// symlinks, symlinks leaving the share, directory symlinks and names that
/// cannot be expressed as share paths are logged and skipped.
fn read_children(dir: &Path, root: &Path, private: Option<&Path>) -> Vec<Found> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            warn!(dir = %dir.display(), error = %e, "cannot read directory; skipping it");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for item in rd {
        let item = match item {
            Ok(i) => i,
            Err(e) => {
                warn!(dir = %dir.display(), error = %e, "error reading directory entry; skipping it");
                continue;
            }
        };
        let fs_path = item.path();
        if private.is_some_and(|p| fs_path == p) {
            debug!(path = %fs_path.display(), "the node's own data dir is never shared; skipping it");
            continue;
        }
        let name = encode_name(item.file_name().as_bytes()).into_owned();
        if let Err(e) = validate_component(&name) {
            warn!(path = %fs_path.display(), error = %e, "name cannot be shared; skipping it");
            continue;
        }
        let meta = match item.file_type() {
            Ok(t) if t.is_symlink() => match symlink_target(&fs_path, root) {
                Some(m) => m,
                None => continue,
            },
            Ok(_) => match item.metadata() {
                Ok(m) => m,
                Err(e) => {
                    warn!(path = %fs_path.display(), error = %e, "cannot stat; skipping it");
                    continue;
                }
            },
            Err(e) => {
                warn!(path = %fs_path.display(), error = %e, "cannot stat; skipping it");
                continue;
            }
        };
        let value = if meta.is_dir() {
            EntryValue { kind: EntryKind::Dir, size: 0, mtime_ns: mtime_ns(&meta), count: 0 }
        } else if meta.is_file() {
            EntryValue { kind: EntryKind::File, size: meta.len(), mtime_ns: mtime_ns(&meta), count: 0 }
        } else {
            debug!(path = %fs_path.display(), "not a regular file or directory; skipping it");
            continue;
        };
        out.push(Found { name, value, fs_path });
    }
    out
}

/// The metadata of a symlink's target if it is a regular file inside the share.
fn symlink_target(link: &Path, root: &Path) -> Option<fs::Metadata> {
    let target = match fs::canonicalize(link) {
        Ok(t) => t,
        Err(e) => {
            warn!(path = %link.display(), error = %e, "broken symlink; skipping it");
            return None;
        }
    };
    if !target.starts_with(root) {
        debug!(path = %link.display(), target = %target.display(), "symlink points outside the share; not following it");
        return None;
    }
    let meta = fs::metadata(&target).ok()?;
    if meta.is_dir() {
        debug!(path = %link.display(), "directory symlink; not following it");
        return None;
    }
    Some(meta)
}

/// Modification time in nanoseconds since the Unix epoch (negative before it).
pub fn mtime_ns(meta: &fs::Metadata) -> i64 {
    match meta.modified() {
        Ok(t) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
        },
        Err(_) => 0,
    }
}

/// Now, in Unix seconds.
pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
