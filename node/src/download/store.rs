//! The persistent download queue: request and file records in LMDB.
//!
//! Databases (in the index environment):
//! - `downloads`: request id (u64 big-endian) → [`RequestRecord`] (JSON);
//!   the key `n` holds the next id, so ids are never reused.
//! - `download_files`: request id ‖ file seq (both u64 big-endian) →
//!   [`FileRecord`] (JSON). A request's files are contiguous and in listing
//!   order, so a 100,000-file request is read a page at a time, never whole.
//!
//! Every change of a file's state and its request's counters is one write
//! transaction, so after a crash the counters always match the files.
//! `active` is never stored: a file being transferred is `queued` on disk,
//! which is exactly what it should be after a crash.

use hdp_proto::api::{DownloadState, FileState};
use hdp_proto::id::PeerId;
use heed::types::Bytes;
use heed::{Database, Env};
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::index::Index;

/// Key of the next request id in `downloads`.
const NEXT_ID_KEY: &[u8] = b"n";

/// A queue operation on LMDB failed (disk full, or the data dir became
/// unwritable).
#[derive(Debug, thiserror::Error)]
#[error("the download queue could not be saved: {0} (is the data dir's disk full?)")]
pub struct StoreError(#[from] pub heed::Error);

/// One download request as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub id: u64,
    pub peer: PeerId,
    /// Remote share path.
    pub path: String,
    /// Local name (below the download dir) of what was requested.
    pub local_name: String,
    /// The download dir when the request was made: its files land there
    /// even if the setting changes later. Absent in records from before
    /// the setting could change (they use the dir the node starts with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// Smaller runs first; "move to top" makes it the smallest.
    pub order: i64,
    /// `queued`, `paused`, `done` or `failed` (never `active`).
    pub state: DownloadState,
    /// The whole remote listing is in `download_files`.
    pub listed: bool,
    /// Where the listing continues (the cursor of the last stored page).
    pub cursor: Option<String>,
    /// Seq of the next file the listing adds.
    pub next_seq: u64,
    /// Counters over the request's files (cancelled files are not counted).
    pub files_total: u64,
    pub bytes_total: u64,
    pub files_done: u64,
    pub bytes_done: u64,
    pub files_failed: u64,
    pub files_paused: u64,
    /// Why the request failed (a listing that cannot go on, or its files).
    pub error: Option<String>,
    pub created_ms: u64,
}

impl RequestRecord {
    /// A new request with nothing listed yet (`id` is set by [`Store::create`]).
    pub fn new(peer: PeerId, path: String, local_name: String, order: i64, state: DownloadState) -> Self {
        RequestRecord {
            id: 0,
            peer,
            path,
            local_name,
            dir: None,
            order,
            state,
            listed: false,
            cursor: None,
            next_seq: 0,
            files_total: 0,
            bytes_total: 0,
            files_done: 0,
            bytes_done: 0,
            files_failed: 0,
            files_paused: 0,
            error: None,
            created_ms: crate::unix_ms(),
        }
    }

    /// Files neither done, failed nor paused: what is still to transfer.
    pub fn files_waiting(&self) -> u64 {
        self.files_total.saturating_sub(self.files_done + self.files_failed + self.files_paused)
    }

    /// Moves one file of `size` bytes from state `from` to `to` in the counters.
    pub fn count(&mut self, from: Option<FileState>, to: FileState, size: u64) {
        if let Some(from) = from {
            self.adjust(from, size, false);
        }
        self.adjust(to, size, true);
    }

    fn adjust(&mut self, s: FileState, size: u64, add: bool) {
        let step = |v: &mut u64, by: u64| *v = if add { v.saturating_add(by) } else { v.saturating_sub(by) };
        match s {
            FileState::Done => {
                step(&mut self.files_done, 1);
                step(&mut self.bytes_done, size);
            }
            FileState::Failed => step(&mut self.files_failed, 1),
            FileState::Paused => step(&mut self.files_paused, 1),
            FileState::Queued | FileState::Active | FileState::Cancelled => {}
        }
        if s != FileState::Cancelled {
            step(&mut self.files_total, 1);
            step(&mut self.bytes_total, size);
        }
    }
}

/// One file of a request as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Remote share path.
    pub path: String,
    /// Local path components below the download dir (empty for a name we
    /// refused to create).
    pub rel: Vec<String>,
    /// Size from the listing; replaced by the sender's size once known.
    pub size: u64,
    /// `queued`, `paused`, `done`, `failed` or `cancelled`.
    pub state: FileState,
    pub error: Option<String>,
    /// Failed attempts while the peer was connected.
    pub attempts: u32,
    /// Copies that did not match the sender's hash.
    pub mismatches: u32,
    /// Not retried before this time (ms since the epoch).
    pub not_before_ms: u64,
    /// The final name chosen for it; set before the `.part` is linked
    /// there, so a crash in between is finished on restart, not repeated.
    pub final_name: Option<String>,
}

impl FileRecord {
    pub fn queued(path: String, rel: Vec<String>, size: u64) -> Self {
        FileRecord {
            path,
            rel,
            size,
            state: FileState::Queued,
            error: None,
            attempts: 0,
            mismatches: 0,
            not_before_ms: 0,
            final_name: None,
        }
    }
}

/// What [`Store::next_runnable`] found.
#[derive(Debug)]
pub struct Scan {
    /// The first seq that is not finished: later scans start here.
    pub low_water: u64,
    /// Runnable files, in seq order.
    pub files: Vec<(u64, FileRecord)>,
    /// The earliest `not_before_ms` of a queued file that had to wait.
    pub next_wake_ms: Option<u64>,
}

/// The queue's databases. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    env: Env,
    requests: Database<Bytes, Bytes>,
    files: Database<Bytes, Bytes>,
}

fn file_key(id: u64, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&id.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Option<T> {
    match serde_json::from_slice(bytes) {
        Ok(v) => Some(v),
        Err(e) => {
            warn!(what, error = %e, "skipping an unreadable download record");
            None
        }
    }
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Serializing plain structs of strings and numbers to JSON cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

impl Store {
    pub fn open(index: &Index) -> Result<Store, StoreError> {
        let env = index.env().clone();
        let mut wtxn = env.write_txn()?;
        let requests = env.create_database(&mut wtxn, Some("downloads"))?;
        let files = env.create_database(&mut wtxn, Some("download_files"))?;
        wtxn.commit()?;
        Ok(Store { env, requests, files })
    }

    /// Every stored request, in id order.
    pub fn load(&self) -> Result<Vec<RequestRecord>, StoreError> {
        let rtxn = self.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.requests.iter(&rtxn)? {
            let (k, v) = item?;
            if k.len() == 8
                && let Some(r) = decode::<RequestRecord>("request", v)
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Stores a new request under a fresh id (written into `rec.id`).
    pub fn create(&self, rec: &mut RequestRecord) -> Result<(), StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let id = match self.requests.get(&wtxn, NEXT_ID_KEY)? {
            Some(b) if b.len() == 8 => u64::from_be_bytes(b.try_into().unwrap_or([0; 8])),
            _ => 1,
        };
        rec.id = id;
        self.requests.put(&mut wtxn, NEXT_ID_KEY, &(id + 1).to_be_bytes())?;
        self.requests.put(&mut wtxn, &id.to_be_bytes(), &encode(rec))?;
        wtxn.commit()?;
        Ok(())
    }

    pub fn put_request(&self, rec: &RequestRecord) -> Result<(), StoreError> {
        let mut wtxn = self.env.write_txn()?;
        self.requests.put(&mut wtxn, &rec.id.to_be_bytes(), &encode(rec))?;
        wtxn.commit()?;
        Ok(())
    }

    /// Appends a listing page's files and the request's new cursor and
    /// counters in one transaction: a crash repeats the page or none of it.
    pub fn add_page(&self, rec: &RequestRecord, first_seq: u64, files: &[FileRecord]) -> Result<(), StoreError> {
        let mut wtxn = self.env.write_txn()?;
        for (i, f) in files.iter().enumerate() {
            self.files.put(&mut wtxn, &file_key(rec.id, first_seq + i as u64), &encode(f))?;
        }
        self.requests.put(&mut wtxn, &rec.id.to_be_bytes(), &encode(rec))?;
        wtxn.commit()?;
        Ok(())
    }

    pub fn file(&self, id: u64, seq: u64) -> Result<Option<FileRecord>, StoreError> {
        let rtxn = self.env.read_txn()?;
        Ok(self.files.get(&rtxn, &file_key(id, seq))?.and_then(|v| decode("file", v)))
    }

    /// Writes a file and its request together.
    /// Several files' records and their requests' records, in one
    /// transaction (one fsync for a batch of finished files).
    pub fn put_files(&self, files: &[(&RequestRecord, u64, &FileRecord)]) -> Result<(), StoreError> {
        let mut wtxn = self.env.write_txn()?;
        for (rec, seq, file) in files {
            self.files.put(&mut wtxn, &file_key(rec.id, *seq), &encode(file))?;
            self.requests.put(&mut wtxn, &rec.id.to_be_bytes(), &encode(rec))?;
        }
        wtxn.commit()?;
        Ok(())
    }

    pub fn put_file(&self, rec: &RequestRecord, seq: u64, file: &FileRecord) -> Result<(), StoreError> {
        let mut wtxn = self.env.write_txn()?;
        self.files.put(&mut wtxn, &file_key(rec.id, seq), &encode(file))?;
        self.requests.put(&mut wtxn, &rec.id.to_be_bytes(), &encode(rec))?;
        wtxn.commit()?;
        Ok(())
    }

    /// Up to `limit` files of request `id` from seq `from` on.
    pub fn files_page(&self, id: u64, from: u64, limit: usize) -> Result<Vec<(u64, FileRecord)>, StoreError> {
        let rtxn = self.env.read_txn()?;
        let start = file_key(id, from);
        let end = file_key(id, u64::MAX);
        let range = (std::ops::Bound::Included(&start[..]), std::ops::Bound::Included(&end[..]));
        let mut out = Vec::new();
        for item in self.files.range(&rtxn, &range)? {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            let seq = u64::from_be_bytes(k[8..16].try_into().unwrap_or([0; 8]));
            if let Some(f) = decode("file", v) {
                out.push((seq, f));
            }
        }
        Ok(out)
    }

    /// Finds up to `want` queued files of request `id` that may run now,
    /// looking at no more than `budget` records from `from` on, skipping
    /// those `busy` says are already running.
    pub fn next_runnable(
        &self,
        id: u64,
        from: u64,
        want: usize,
        budget: usize,
        now_ms: u64,
        busy: impl Fn(u64) -> bool,
    ) -> Result<Scan, StoreError> {
        let rtxn = self.env.read_txn()?;
        let start = file_key(id, from);
        let end = file_key(id, u64::MAX);
        let range = (std::ops::Bound::Included(&start[..]), std::ops::Bound::Included(&end[..]));
        let mut scan = Scan { low_water: from, files: Vec::new(), next_wake_ms: None };
        let mut settled = true;
        for (n, item) in self.files.range(&rtxn, &range)?.enumerate() {
            if n >= budget || scan.files.len() >= want {
                break;
            }
            let (k, v) = item?;
            let seq = u64::from_be_bytes(k[8..16].try_into().unwrap_or([0; 8]));
            if busy(seq) {
                // Being fetched: neither finished nor runnable, and not
                // worth decoding (hundreds of small files may be in flight).
                settled = false;
                continue;
            }
            let Some(f) = decode::<FileRecord>("file", v) else { continue };
            let finished = matches!(f.state, FileState::Done | FileState::Failed | FileState::Cancelled);
            if settled && finished {
                scan.low_water = seq + 1;
                continue;
            }
            settled = false;
            if f.state != FileState::Queued {
                continue;
            }
            if f.not_before_ms > now_ms {
                scan.next_wake_ms = Some(scan.next_wake_ms.map_or(f.not_before_ms, |w| w.min(f.not_before_ms)));
                continue;
            }
            scan.files.push((seq, f));
        }
        Ok(scan)
    }

    /// Removes a request and all its file records.
    pub fn delete(&self, id: u64) -> Result<(), StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let start = file_key(id, 0);
        let end = file_key(id, u64::MAX);
        let range = (std::ops::Bound::Included(&start[..]), std::ops::Bound::Included(&end[..]));
        self.files.delete_range(&mut wtxn, &range)?;
        self.requests.delete(&mut wtxn, &id.to_be_bytes())?;
        wtxn.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(peer: PeerId) -> RequestRecord {
        RequestRecord::new(peer, "m/Album".into(), "Album".into(), 0, DownloadState::Queued)
    }

    #[test]
    fn requests_and_files_survive_reopening_and_pages_stay_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        let peer = PeerId([7; 32]);
        let mut r = rec(peer);
        {
            let index = Index::open(tmp.path()).unwrap();
            let store = Store::open(&index).unwrap();
            store.create(&mut r).unwrap();
            let mut second = rec(peer);
            store.create(&mut second).unwrap();
            assert_eq!((r.id, second.id), (1, 2));
            let files: Vec<FileRecord> =
                (0..2500).map(|i| FileRecord::queued(format!("m/Album/{i}"), vec![format!("{i}")], 10)).collect();
            for f in &files {
                r.count(None, f.state, f.size);
            }
            r.next_seq = files.len() as u64;
            store.add_page(&r, 0, &files).unwrap();
            // Requests of other ids are not mixed in.
            store.add_page(&second, 0, &files[..3]).unwrap();
            store.delete(second.id).unwrap();
            drop(store);
            assert!(index.close(std::time::Duration::from_secs(5)));
        }
        let index = Index::open(tmp.path()).unwrap();
        let store = Store::open(&index).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded, vec![r.clone()], "the deleted request is gone, the other intact");
        assert_eq!(loaded[0].files_total, 2500);
        assert_eq!(store.files_page(1, 0, 1000).unwrap().len(), 1000);
        assert_eq!(store.files_page(1, 2000, 1000).unwrap().len(), 500);
        assert!(store.files_page(2, 0, 10).unwrap().is_empty());

        // Mark the first 10 done and seq 10 waiting for a retry later.
        for seq in 0..10 {
            let mut f = store.file(1, seq).unwrap().unwrap();
            r.count(Some(f.state), FileState::Done, f.size);
            f.state = FileState::Done;
            store.put_file(&r, seq, &f).unwrap();
        }
        let mut f = store.file(1, 10).unwrap().unwrap();
        f.not_before_ms = 5_000;
        store.put_file(&r, 10, &f).unwrap();
        let scan = store.next_runnable(1, 0, 3, 100, 1_000, |seq| seq == 11).unwrap();
        assert_eq!(scan.low_water, 10);
        assert_eq!(scan.files.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![12, 13, 14]);
        assert_eq!(scan.next_wake_ms, Some(5_000));
        assert_eq!(r.files_done, 10);
        assert_eq!(r.bytes_done, 100);
        assert_eq!(r.files_waiting(), 2490);
        // The next id is not reused after a delete.
        let mut third = rec(peer);
        store.create(&mut third).unwrap();
        assert_eq!(third.id, 3);
    }

    #[test]
    fn counters_follow_state_changes() {
        let mut r = rec(PeerId([1; 32]));
        r.count(None, FileState::Queued, 100);
        r.count(None, FileState::Queued, 50);
        r.count(Some(FileState::Queued), FileState::Paused, 100);
        assert_eq!((r.files_total, r.files_paused, r.files_waiting()), (2, 1, 1));
        r.count(Some(FileState::Paused), FileState::Cancelled, 100);
        assert_eq!((r.files_total, r.bytes_total, r.files_paused), (1, 50, 0));
        r.count(Some(FileState::Queued), FileState::Failed, 50);
        assert_eq!((r.files_failed, r.files_waiting()), (1, 0));
    }
}
