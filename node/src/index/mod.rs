//! The share index: every shared file and directory, in LMDB.
//!
//! # Layout
//! - [`keys`]: how entries are laid out as LMDB keys and values.
//! - [`scan`]: the streaming, incremental filesystem walk that fills the index.
//! - this file: opening the environment, share records, and listing queries.
//!
//! Databases in the environment at `<data-dir>/index/`:
//! - `entries`: one record per file or directory (see [`keys`]).
//! - `shares`: share name → [`ShareRecord`] (JSON): where it lives and what
//!   its last complete scan found.
//! - `meta`: small settings that must survive restarts (the QUIC port, the
//!   joined topics).
//! - `partials`: hash of a `.part` file's path → [`PartialMeta`]: which
//!   remote file and version its bytes belong to and how many were synced,
//!   so a resumed download never splices two versions of a file.
//! - `hashes`: share path key → (size, mtime, BLAKE3) of a shared file, so
//!   an unchanged file is never hashed twice ([`Index::hash_get`]).
//! - `friends`: peer id (32 bytes) → the friend record (JSON) of every node
//!   we completed a handshake with ([`crate::friends`]).
//!
//! Readers never wait for the scanner: LMDB gives each read transaction a
//! snapshot, and the scanner commits every few thousand entries, so a listing
//! sees what has been indexed so far.

pub mod keys;
pub mod scan;
#[cfg(test)]
mod tests;

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hdp_proto::api::{Entry, LS_DEFAULT_LIMIT, LS_MAX_LIMIT, LsPage};
use hdp_proto::path::{PathError, SharePath};
use heed::types::{Bytes, SerdeJson, Str};
use heed::{Database, Env, EnvOpenOptions};
use serde::{Deserialize, Serialize};

use keys::{EntryValue, children_prefix, deeper_prefix, path_key, prefix_end, to_entry};

/// Virtual size of the LMDB map. Only what is used takes disk space; 32-bit
/// targets get less so the map fits their address space.
#[cfg(target_pointer_width = "64")]
const MAP_SIZE: usize = 16 << 30;
#[cfg(not(target_pointer_width = "64"))]
const MAP_SIZE: usize = 1 << 30;

/// Key in the `meta` database of the joined topics (a JSON list).
const TOPICS_KEY: &str = "topics";

/// Most keys one `ls` call examines before it returns a (possibly short) page
/// with a cursor, so a search over a huge share never holds a request for long.
pub const LS_SCAN_BUDGET: usize = 50_000;

/// What the index keeps about a share between runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareRecord {
    pub name: String,
    /// Canonical directory on disk.
    pub path: PathBuf,
    pub files: u64,
    pub dirs: u64,
    pub size: u64,
    pub last_scan: Option<i64>,
    pub last_scan_ms: Option<u64>,
    pub error: Option<String>,
    /// Topics whose peers see the share; `None`: every topic. Absent in
    /// records written before shares had topics, which then stay visible
    /// to every topic as they were.
    #[serde(default)]
    pub topics: Option<Vec<String>>,
}

impl ShareRecord {
    /// The record of a share not scanned yet.
    pub fn new(name: &str, path: &Path, topics: Option<Vec<String>>) -> Self {
        ShareRecord {
            name: name.to_owned(),
            path: path.to_owned(),
            files: 0,
            dirs: 0,
            size: 0,
            last_scan: None,
            last_scan_ms: None,
            error: None,
            topics,
        }
    }
}

/// Opening the index failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create the index directory {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("cannot open the index at {path}: {source} (is the disk full or the directory read-only?)")]
    Lmdb { path: PathBuf, source: heed::Error },
}

/// A listing could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LsError {
    #[error("invalid path: {0}")]
    Path(#[from] PathError),
    #[error("invalid cursor: pass back the cursor of the previous page unchanged")]
    Cursor,
    #[error("no such file or directory: {0}")]
    NotFound(String),
    #[error("index error: {0}")]
    Lmdb(#[from] heed::Error),
}

/// A share record could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("index error: {0}")]
pub struct RecordError(#[from] pub heed::Error);

/// A listing request, already validated.
#[derive(Debug, Clone, Default)]
pub struct LsRequest {
    pub path: SharePath,
    pub recursive: bool,
    /// Lowercased search term; implies `recursive`.
    pub search: Option<String>,
    pub cursor: Option<SharePath>,
    pub limit: Option<u32>,
    /// Shares the requester may not see ([`crate::shares::Shares::hidden_from`]):
    /// their entries are skipped, as if they did not exist.
    pub hidden: Vec<String>,
}

/// The LMDB environment and its databases. Cheap to clone.
#[derive(Clone)]
pub struct Index {
    env: Env,
    entries: Database<Bytes, Bytes>,
    shares: Database<Str, SerdeJson<ShareRecord>>,
    meta: Database<Str, Bytes>,
    partials: Database<Bytes, Bytes>,
    hashes: Database<Bytes, Bytes>,
    friends: Database<Bytes, Bytes>,
}

/// A row of the `friends` database: peer id and the record's JSON.
pub type FriendRow = ([u8; 32], Vec<u8>);

/// What a `.part` file holds: bytes of which remote file (source), of which
/// version (size, mtime), and how many of them are known to be on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartialMeta {
    pub size: u64,
    pub mtime_ns: i64,
    /// BLAKE3 of (peer id, remote path): a file of the same size and mtime
    /// from elsewhere is another file.
    pub source: [u8; 32],
    /// Bytes from the start that were fsynced; resuming never trusts more.
    pub synced: u64,
}

const PARTIAL_LEN: usize = 56;

impl PartialMeta {
    fn encode(&self) -> [u8; PARTIAL_LEN] {
        let mut v = [0u8; PARTIAL_LEN];
        v[..8].copy_from_slice(&self.size.to_le_bytes());
        v[8..16].copy_from_slice(&self.mtime_ns.to_le_bytes());
        v[16..48].copy_from_slice(&self.source);
        v[48..].copy_from_slice(&self.synced.to_le_bytes());
        v
    }

    fn decode(v: &[u8]) -> Option<Self> {
        if v.len() != PARTIAL_LEN {
            return None;
        }
        Some(PartialMeta {
            size: u64::from_le_bytes(v[..8].try_into().ok()?),
            mtime_ns: i64::from_le_bytes(v[8..16].try_into().ok()?),
            source: v[16..48].try_into().ok()?,
            synced: u64::from_le_bytes(v[48..].try_into().ok()?),
        })
    }
}

/// Partial records are keyed by a hash of the `.part` path: paths can be
/// longer than LMDB keys.
fn partial_key(part: &Path) -> [u8; 32] {
    *blake3::hash(part.as_os_str().as_encoded_bytes()).as_bytes()
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").field("path", &self.env.path()).finish()
    }
}

impl Index {
    /// Opens (creating if needed) the index in `dir`.
    pub fn open(dir: &Path) -> Result<Self, OpenError> {
        std::fs::create_dir_all(dir).map_err(|source| OpenError::CreateDir { path: dir.into(), source })?;
        let lmdb = |source| OpenError::Lmdb { path: dir.into(), source };
        // SAFETY-equivalent contract of heed: the environment must not be opened
        // twice in one process and its files must not be truncated while open.
        // The node holds an exclusive lock on the data dir, which guarantees both.
        #[allow(unsafe_code)]
        let env = unsafe { EnvOpenOptions::new().map_size(MAP_SIZE).max_dbs(10).open(dir) }.map_err(lmdb)?;
        let mut wtxn = env.write_txn().map_err(lmdb)?;
        let entries = env.create_database(&mut wtxn, Some("entries")).map_err(lmdb)?;
        let shares = env.create_database(&mut wtxn, Some("shares")).map_err(lmdb)?;
        let meta = env.create_database(&mut wtxn, Some("meta")).map_err(lmdb)?;
        let partials = env.create_database(&mut wtxn, Some("partials")).map_err(lmdb)?;
        let hashes = env.create_database(&mut wtxn, Some("hashes")).map_err(lmdb)?;
        let friends = env.create_database(&mut wtxn, Some("friends")).map_err(lmdb)?;
        wtxn.commit().map_err(lmdb)?;
        Ok(Index { env, entries, shares, meta, partials, hashes, friends })
    }

    pub fn env(&self) -> &Env {
        &self.env
    }

    pub(crate) fn entries_db(&self) -> Database<Bytes, Bytes> {
        self.entries
    }

    /// Flushes and closes the environment once every clone is gone; gives up
    /// after `timeout` (a leaked clone would otherwise hang shutdown).
    pub fn close(self, timeout: Duration) -> bool {
        let Index { env, .. } = self;
        let _ = env.force_sync();
        env.prepare_for_closing().wait_timeout(timeout)
    }

    /// A small persistent setting (such as the QUIC port).
    pub fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, RecordError> {
        let rtxn = self.env.read_txn()?;
        Ok(self.meta.get(&rtxn, key)?.map(<[u8]>::to_vec))
    }

    pub fn meta_put(&self, key: &str, value: &[u8]) -> Result<(), RecordError> {
        let mut wtxn = self.env.write_txn()?;
        self.meta.put(&mut wtxn, key, value)?;
        wtxn.commit()?;
        Ok(())
    }

    /// Every friend record (peer id, JSON), at most `max`.
    pub fn friends_load(&self, max: usize) -> Result<Vec<FriendRow>, RecordError> {
        let rtxn = self.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.friends.iter(&rtxn)?.take(max) {
            let (k, v) = item?;
            if let Ok(id) = <[u8; 32]>::try_from(k) {
                out.push((id, v.to_vec()));
            }
        }
        Ok(out)
    }

    pub fn friend_put(&self, id: &[u8; 32], record: &[u8]) -> Result<(), RecordError> {
        let mut wtxn = self.env.write_txn()?;
        self.friends.put(&mut wtxn, id, record)?;
        wtxn.commit()?;
        Ok(())
    }

    /// What the `.part` file at `part` holds, if this node started it.
    pub fn partial_get(&self, part: &Path) -> Result<Option<PartialMeta>, RecordError> {
        let rtxn = self.env.read_txn()?;
        Ok(self.partials.get(&rtxn, &partial_key(part))?.and_then(PartialMeta::decode))
    }

    pub fn partial_put(&self, part: &Path, m: PartialMeta) -> Result<(), RecordError> {
        let mut wtxn = self.env.write_txn()?;
        self.partials.put(&mut wtxn, &partial_key(part), &m.encode())?;
        wtxn.commit()?;
        Ok(())
    }

    pub fn partial_delete(&self, part: &Path) -> Result<(), RecordError> {
        let mut wtxn = self.env.write_txn()?;
        self.partials.delete(&mut wtxn, &partial_key(part))?;
        wtxn.commit()?;
        Ok(())
    }

    /// The cached BLAKE3 of the shared file at `path`, if it was hashed at
    /// exactly this size and mtime.
    pub fn hash_get(&self, path: &SharePath, size: u64, mtime_ns: i64) -> Result<Option<[u8; 32]>, RecordError> {
        let rtxn = self.env.read_txn()?;
        Ok(self.hashes.get(&rtxn, &path_key(path.as_str()))?.and_then(|v| cached_hash(v, size, mtime_ns)))
    }

    /// Of `paths`, the indexed files whose cached hash is missing or belongs
    /// to another size or mtime than the index holds. One read transaction,
    /// no disk access beyond LMDB.
    pub fn unhashed(&self, paths: Vec<SharePath>) -> Result<Vec<SharePath>, RecordError> {
        let rtxn = self.env.read_txn()?;
        let mut out = Vec::new();
        for p in paths {
            let key = path_key(p.as_str());
            let Some(v) = self.entries.get(&rtxn, &key)?.and_then(EntryValue::decode) else { continue };
            if v.kind == hdp_proto::api::EntryKind::File
                && self.hashes.get(&rtxn, &key)?.and_then(|h| cached_hash(h, v.size, v.mtime_ns)).is_none()
            {
                out.push(p);
            }
        }
        Ok(out)
    }

    pub fn hash_put(&self, path: &SharePath, size: u64, mtime_ns: i64, hash: &[u8; 32]) -> Result<(), RecordError> {
        let mut v = Vec::with_capacity(48);
        v.extend_from_slice(&size.to_be_bytes());
        v.extend_from_slice(&mtime_ns.to_be_bytes());
        v.extend_from_slice(hash);
        let mut wtxn = self.env.write_txn()?;
        self.hashes.put(&mut wtxn, &path_key(path.as_str()), &v)?;
        wtxn.commit()?;
        Ok(())
    }

    /// Topics we are a member of, as last saved.
    pub fn saved_topics(&self) -> Result<Vec<String>, RecordError> {
        Ok(self.meta_get(TOPICS_KEY)?.and_then(|v| serde_json::from_slice(&v).ok()).unwrap_or_default())
    }

    pub fn save_topics(&self, topics: &[String]) -> Result<(), RecordError> {
        let json = serde_json::to_vec(topics).unwrap_or_default();
        self.meta_put(TOPICS_KEY, &json)
    }

    pub fn share_records(&self) -> Result<Vec<ShareRecord>, RecordError> {
        let rtxn = self.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.shares.iter(&rtxn)? {
            let (_, rec) = item?;
            out.push(rec);
        }
        Ok(out)
    }

    pub fn share_record(&self, name: &str) -> Result<Option<ShareRecord>, RecordError> {
        let rtxn = self.env.read_txn()?;
        Ok(self.shares.get(&rtxn, name)?)
    }

    /// Stores a share's record and makes sure its root entry exists.
    pub fn put_share(&self, rec: &ShareRecord) -> Result<(), RecordError> {
        let mut wtxn = self.env.write_txn()?;
        self.shares.put(&mut wtxn, &rec.name, rec)?;
        let key = keys::entry_key("", &rec.name);
        if self.entries.get(&wtxn, &key)?.is_none() {
            let root = EntryValue { kind: hdp_proto::api::EntryKind::Dir, size: 0, mtime_ns: 0, count: 0 };
            self.entries.put(&mut wtxn, &key, &root.encode())?;
        }
        wtxn.commit()?;
        Ok(())
    }

    /// Updates a share's record if the share still exists.
    pub fn update_share(&self, name: &str, f: impl FnOnce(&mut ShareRecord)) -> Result<(), RecordError> {
        let mut wtxn = self.env.write_txn()?;
        if let Some(mut rec) = self.shares.get(&wtxn, name)? {
            f(&mut rec);
            self.shares.put(&mut wtxn, name, &rec)?;
        }
        wtxn.commit()?;
        Ok(())
    }

    /// Removes a share's record and every entry of it.
    pub fn remove_share(&self, name: &str) -> Result<Option<ShareRecord>, RecordError> {
        let mut wtxn = self.env.write_txn()?;
        let rec = self.shares.get(&wtxn, name)?;
        self.shares.delete(&mut wtxn, name)?;
        self.entries.delete(&mut wtxn, &keys::entry_key("", name))?;
        delete_subtree(self.entries, &mut wtxn, name)?;
        wtxn.commit()?;
        Ok(rec)
    }

    /// One entry by path.
    pub fn get(&self, path: &SharePath) -> Result<Option<Entry>, LsError> {
        if path.is_root() {
            return Ok(None);
        }
        let rtxn = self.env.read_txn()?;
        let key = path_key(path.as_str());
        Ok(self.entries.get(&rtxn, &key)?.and_then(|v| to_entry(&key, v)))
    }

    /// One page of a listing: children of a directory, everything below it,
    /// or the entries below it whose name contains a search term.
    pub fn ls(&self, req: &LsRequest) -> Result<LsPage, LsError> {
        let limit = req.limit.unwrap_or(LS_DEFAULT_LIMIT).clamp(1, LS_MAX_LIMIT) as usize;
        let dir = req.path.as_str();
        let rtxn = self.env.read_txn()?;
        if !req.path.is_root() {
            let key = path_key(dir);
            let raw = self.entries.get(&rtxn, &key)?;
            match raw.and_then(EntryValue::decode) {
                Some(v) if v.kind == hdp_proto::api::EntryKind::Dir => {}
                Some(_) => {
                    // Listing a file lists just that file.
                    let entry = raw.and_then(|v| to_entry(&key, v));
                    let matches =
                        entry.iter().all(|e| req.search.as_ref().is_none_or(|t| e.name.to_lowercase().contains(t)));
                    let entries = if matches && req.cursor.is_none() { entry.into_iter().collect() } else { vec![] };
                    return Ok(LsPage { entries, cursor: None });
                }
                None => return Err(LsError::NotFound(dir.to_owned())),
            }
        }
        let recursive = req.recursive || req.search.is_some();
        // The key ranges to walk, in key order.
        let ranges: Vec<(Vec<u8>, Option<Vec<u8>>)> = if !recursive {
            let p = children_prefix(dir);
            let end = prefix_end(&p);
            vec![(p, Some(end))]
        } else if req.path.is_root() {
            vec![(Vec::new(), None)]
        } else {
            let c = children_prefix(dir);
            let d = deeper_prefix(dir);
            let (ce, de) = (prefix_end(&c), prefix_end(&d));
            vec![(c, Some(ce)), (d, Some(de))]
        };
        // Hidden shares are cut out of the key ranges, not just filtered:
        // their keys are never examined, so no cursor can name one.
        let ranges = if req.path.is_root() && !req.hidden.is_empty() { without(ranges, &req.hidden) } else { ranges };
        let after = match &req.cursor {
            Some(c) => {
                let key = path_key(c.as_str());
                if !ranges.iter().any(|(lo, hi)| key >= *lo && hi.as_ref().is_none_or(|h| key < *h)) {
                    return Err(LsError::Cursor);
                }
                Some(key)
            }
            None => None,
        };

        let mut entries = Vec::new();
        let mut examined = 0usize;
        let mut last_key: Option<Vec<u8>> = None;
        for (lo, hi) in &ranges {
            let lower = match &after {
                Some(a) if a >= lo => Bound::Excluded(a.as_slice()),
                // LMDB has no empty keys: an empty lower bound means "from the start".
                _ if lo.is_empty() => Bound::Unbounded,
                _ => Bound::Included(lo.as_slice()),
            };
            let upper = match hi {
                Some(h) => Bound::Excluded(h.as_slice()),
                None => Bound::Unbounded,
            };
            if let (Bound::Excluded(a), Some(h)) = (lower, hi)
                && a >= h.as_slice()
            {
                continue;
            }
            for item in self.entries.range(&rtxn, &(lower, upper))? {
                let (key, value) = item?;
                if entries.len() == limit || examined == LS_SCAN_BUDGET {
                    // There is more: the cursor is the last key we dealt with.
                    let cursor = last_key.as_deref().and_then(|k| keys::split_key(k)).map(|(p, n)| keys::join(p, n));
                    return Ok(LsPage { entries, cursor });
                }
                examined += 1;
                last_key = Some(key.to_vec());
                let Some(entry) = to_entry(key, value) else {
                    continue;
                };
                if !req.hidden.is_empty() {
                    let share = entry.path.split('/').next().unwrap_or_default();
                    if req.hidden.iter().any(|h| h == share) {
                        continue;
                    }
                }
                if let Some(term) = &req.search
                    && !entry.name.to_lowercase().contains(term.as_str())
                {
                    continue;
                }
                entries.push(entry);
            }
        }
        Ok(LsPage { entries, cursor: None })
    }
}

/// `ranges` (sorted, disjoint key ranges; `None`: no end) without the keys
/// of the shares `hidden`: each share's own entry at the root (`\0name`)
/// and everything below it (`name\0…`, `name/…`). Share names hold no `/`
/// or NUL, so these holes are disjoint from each other.
fn without(ranges: Vec<(Vec<u8>, Option<Vec<u8>>)>, hidden: &[String]) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let mut holes: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(hidden.len() * 3);
    for name in hidden {
        let own = keys::entry_key("", name);
        let mut own_end = own.clone();
        own_end.push(0);
        holes.push((own, own_end));
        for prefix in [children_prefix(name), deeper_prefix(name)] {
            let end = prefix_end(&prefix);
            holes.push((prefix, end));
        }
    }
    holes.sort();
    let mut out = Vec::new();
    for (lo, hi) in ranges {
        let mut cur = lo;
        for (a, b) in &holes {
            if hi.as_ref().is_some_and(|h| a >= h) {
                break;
            }
            if *b <= cur {
                continue;
            }
            if *a > cur {
                out.push((cur.clone(), Some(a.clone())));
            }
            cur = cur.max(b.clone());
        }
        if hi.as_ref().is_none_or(|h| cur < *h) {
            out.push((cur, hi));
        }
    }
    out
}

/// Deletes every entry strictly below the directory at share path `dir`.
pub(crate) fn delete_subtree(
    db: Database<Bytes, Bytes>,
    wtxn: &mut heed::RwTxn<'_>,
    dir: &str,
) -> Result<(), heed::Error> {
    for prefix in [children_prefix(dir), deeper_prefix(dir)] {
        let end = prefix_end(&prefix);
        let range = (Bound::Included(prefix.as_slice()), Bound::Excluded(end.as_slice()));
        db.delete_range(wtxn, &range)?;
    }
    Ok(())
}

/// A `hashes` value: size (8, BE) ‖ mtime_ns (8, BE) ‖ BLAKE3 (32); the
/// hash if it was taken at exactly `size` and `mtime_ns`.
fn cached_hash(v: &[u8], size: u64, mtime_ns: i64) -> Option<[u8; 32]> {
    if v.len() != 48 || v[..8] != size.to_be_bytes() || v[8..16] != mtime_ns.to_be_bytes() {
        return None;
    }
    v[16..].try_into().ok()
}
