//! Shares: adding, removing and (re)scanning shared directories.
//!
//! Each share has a [`ShareState`] in memory (live scan progress, its own
//! cancellation token) and a [`ShareRecord`] in the index (what survives a
//! restart). Scans run as tracked tasks, each on a blocking thread.
//!
//! Concurrency: at most [`MAX_CONCURRENT_SCANS`] scans run at once; one share
//! never has two scans (a rescan asked for during a scan runs right after it);
//! removing a share cancels its scan and waits for it before deleting entries.
//!
//! # Who sees a share
//!
//! A share is visible to the peers of every topic we are on (the default)
//! or only to those of a chosen set of topics. [`Shares::visible`] is the one
//! place that decides, for a [`Viewer`]: the node's own user sees every
//! share; a peer sees the shares of the topics it proved on its connection.
//! Every serving path asks it: `ls` and search (hidden shares are skipped as
//! if they did not exist, [`Shares::hidden_from`]), `read`, `hash` and media
//! streaming (through [`Shares::resolve_file`]), and running uploads, which
//! ask again whenever [`Shares::visibility_changes`] moves.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use hdp_proto::api::{EntryKind, ShareInfo};
use hdp_proto::path::{SharePath, validate_component};
use hdp_proto::topic::{MAX_TOPICS, validate_topic};
use hdp_proto::wire::RequestError;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::index::scan::{ScanError, ScanProgress, scan_share, unix_now};
use crate::index::{Index, RecordError, ShareRecord};

/// Scans that may run at once. Scanning is disk-bound: on a Pi's SD card or a
/// NAS's spinning disk more parallel walks only make each other seek.
pub const MAX_CONCURRENT_SCANS: usize = 2;

/// A share's live state.
#[derive(Debug)]
pub struct ShareState {
    pub name: String,
    pub path: PathBuf,
    cancel: CancellationToken,
    progress: ScanProgress,
    /// A scan task for this share exists.
    scanning: AtomicBool,
    /// Another scan was asked for while one ran.
    again: AtomicBool,
    /// Held by the scan task while it runs; `remove` takes it to wait for the scan.
    scan_lock: tokio::sync::Mutex<()>,
    /// Topics whose peers see the share; `None`: every topic. A copy of the
    /// record's, read on every request without touching LMDB.
    topics: Mutex<Option<Vec<String>>>,
}

impl ShareState {
    fn topics(&self) -> MutexGuard<'_, Option<Vec<String>>> {
        self.topics.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The rule behind [`Shares::visible`].
    fn seen_by(&self, viewer: Viewer<'_>) -> bool {
        match viewer {
            Viewer::Owner => true,
            Viewer::Peer(proven) => match &*self.topics() {
                None => !proven.is_empty(),
                Some(only) => only.iter().any(|t| proven.contains(t)),
            },
        }
    }
}

/// Who asks to see shared files.
#[derive(Debug, Clone, Copy)]
pub enum Viewer<'a> {
    /// This node's own user (the local API, `/media/own`): every share.
    Owner,
    /// A peer, with the topics it proved on its connection.
    Peer(&'a [String]),
}

/// A share's list of topics was refused.
#[derive(Debug, thiserror::Error)]
pub enum ShareTopicsError {
    #[error("{topic:?} is not a valid topic name: {reason}")]
    Invalid { topic: String, reason: String },
    #[error("a share can be limited to at most {MAX_TOPICS} topics")]
    TooMany,
}

/// Checks a share's topic list: valid names, at most [`MAX_TOPICS`]; the
/// order is kept and repeats are dropped. The topics need not be joined yet:
/// a share can be set up for a topic before joining it.
pub fn check_topics(topics: Option<Vec<String>>) -> Result<Option<Vec<String>>, ShareTopicsError> {
    let Some(list) = topics else { return Ok(None) };
    let mut out: Vec<String> = Vec::new();
    for t in list {
        if let Err(e) = validate_topic(&t) {
            return Err(ShareTopicsError::Invalid { topic: t, reason: e.to_string() });
        }
        if !out.contains(&t) {
            if out.len() == MAX_TOPICS {
                return Err(ShareTopicsError::TooMany);
            }
            out.push(t);
        }
    }
    Ok(Some(out))
}

/// Adding a share failed.
#[derive(Debug, thiserror::Error)]
pub enum AddShareError {
    #[error("{0} does not exist")]
    NotFound(PathBuf),
    #[error("{0} is not a directory: share a directory")]
    NotADirectory(PathBuf),
    #[error("cannot access {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Index(#[from] RecordError),
    #[error("the node is shutting down")]
    ShuttingDown,
    #[error("{0} is inside the node's data dir, which holds its secrets; share another directory")]
    Private(PathBuf),
    #[error(transparent)]
    Topics(#[from] ShareTopicsError),
}

/// Removing or rescanning a share failed.
#[derive(Debug, thiserror::Error)]
pub enum ShareOpError {
    #[error("there is no share named {0:?}; `hdp shares` lists them")]
    Unknown(String),
    #[error(transparent)]
    Index(#[from] RecordError),
    #[error("the node is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Topics(#[from] ShareTopicsError),
}

/// All shares of this node.
#[derive(Debug)]
pub struct Shares {
    index: Index,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// Bounds concurrent scans; see [`MAX_CONCURRENT_SCANS`].
    scan_slots: Arc<Semaphore>,
    states: Mutex<BTreeMap<String, Arc<ShareState>>>,
    /// The node's data dir (canonical): never indexed, never shared.
    private: Option<PathBuf>,
    /// Bumped whenever a share's topics change or a share goes away, so
    /// running uploads know to ask [`Shares::visible`] again.
    visibility: AtomicU64,
    /// Held while a share's topics are written to the index and memory, so
    /// two changes cannot leave the two different.
    setting_topics: Mutex<()>,
}

impl Shares {
    /// Loads the shares recorded in the index (without scanning them).
    pub fn load(
        index: Index,
        shutdown: CancellationToken,
        tasks: TaskTracker,
        private: Option<PathBuf>,
    ) -> Result<Arc<Self>, RecordError> {
        let mut states = BTreeMap::new();
        for rec in index.share_records()? {
            states.insert(rec.name.clone(), Arc::new(new_state(&rec, &shutdown)));
        }
        Ok(Arc::new(Shares {
            index,
            shutdown,
            tasks,
            scan_slots: Arc::new(Semaphore::new(MAX_CONCURRENT_SCANS)),
            states: Mutex::new(states),
            private,
            visibility: AtomicU64::new(0),
            setting_topics: Mutex::new(()),
        }))
    }

    fn states(&self) -> MutexGuard<'_, BTreeMap<String, Arc<ShareState>>> {
        // A panic while holding this lock leaves the map itself consistent.
        self.states.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn state(&self, name: &str) -> Option<Arc<ShareState>> {
        self.states().get(name).cloned()
    }

    /// Every share with its live scan state.
    pub fn list(&self) -> Result<Vec<ShareInfo>, RecordError> {
        let states: Vec<_> = self.states().values().cloned().collect();
        let records = self.index.share_records()?;
        Ok(states
            .iter()
            .filter_map(|st| records.iter().find(|r| r.name == st.name).map(|r| share_info(st, r)))
            .collect())
    }

    /// The node's data dir, which is never served.
    pub fn private_dir(&self) -> Option<&Path> {
        self.private.as_deref()
    }

    /// The canonical root directory of a share.
    pub fn root(&self, name: &str) -> Option<PathBuf> {
        self.state(name).map(|s| s.path.clone())
    }

    /// Whether `viewer` may see the share `name`: the one check behind every
    /// serving path (see the module docs). A share that does not exist is
    /// not visible; a hidden share is answered exactly as a missing one.
    pub fn visible(&self, name: &str, viewer: Viewer<'_>) -> bool {
        self.state(name).is_some_and(|st| st.seen_by(viewer))
    }

    /// The shares `viewer` may not see, for listings to skip.
    pub fn hidden_from(&self, viewer: Viewer<'_>) -> Vec<String> {
        self.states().values().filter(|st| !st.seen_by(viewer)).map(|st| st.name.clone()).collect()
    }

    /// A counter that moves whenever what any viewer may see changes.
    pub fn visibility_changes(&self) -> u64 {
        self.visibility.load(Ordering::Acquire)
    }

    /// Limits the share `name` to the peers of `topics` (`None`: every
    /// topic). Takes effect at once, on live connections too: listings
    /// skip it, new requests are refused and running uploads of it stop.
    pub async fn set_topics(
        self: &Arc<Self>,
        name: &str,
        topics: Option<Vec<String>>,
    ) -> Result<ShareInfo, ShareOpError> {
        let this = self.clone();
        let name = name.to_owned();
        // An LMDB commit (an fsync): not on an async thread.
        tokio::task::spawn_blocking(move || this.set_topics_blocking(&name, topics))
            .await
            .map_err(|_| ShareOpError::ShuttingDown)?
    }

    fn set_topics_blocking(&self, name: &str, topics: Option<Vec<String>>) -> Result<ShareInfo, ShareOpError> {
        let topics = check_topics(topics)?;
        let st = self.state(name).ok_or_else(|| ShareOpError::Unknown(name.into()))?;
        let _one = self.setting_topics.lock().unwrap_or_else(|e| e.into_inner());
        let saved = topics.clone();
        self.index.update_share(name, |r| r.topics = saved)?;
        *st.topics() = topics.clone();
        self.visibility.fetch_add(1, Ordering::AcqRel);
        info!(share = %name, topics = ?topics, "share topics set (none: every topic)");
        let rec = self.index.share_record(name)?.ok_or_else(|| ShareOpError::Unknown(name.into()))?;
        Ok(share_info(&st, &rec))
    }

    /// Where the shared file `raw` (a share path from a peer or a browser)
    /// lies on disk, or why it may not be served: its share must be
    /// [`visible`](Self::visible) to `viewer`, and it must parse as a
    /// [`SharePath`], be a file in the index, and canonicalise to a place
    /// inside its share's root and outside the data dir (no `..`, no
    /// symlink leading out). Touches the disk: call it on the blocking pool.
    pub fn resolve_file(&self, raw: &str, viewer: Viewer<'_>) -> Result<PathBuf, RequestError> {
        let path = SharePath::parse(raw).map_err(|e| RequestError::Invalid(e.to_string()))?;
        let (Some(share), rest) = (path.share(), path.in_share()) else {
            return Err(RequestError::NotShared);
        };
        if !self.visible(share, viewer) {
            return Err(RequestError::NotShared);
        }
        if rest.is_empty() {
            return Err(RequestError::NotFound);
        }
        let root = self.root(share).ok_or(RequestError::NotShared)?;
        match self.index.get(&path) {
            Ok(Some(e)) if e.kind == EntryKind::File => {}
            Ok(_) => return Err(RequestError::NotFound),
            Err(_) => return Err(RequestError::Io),
        }
        let real =
            std::fs::canonicalize(root.join(crate::download::on_disk(rest))).map_err(|_| RequestError::NotFound)?;
        if !real.starts_with(&root) || self.private_dir().is_some_and(|p| real.starts_with(p)) {
            return Err(RequestError::NotShared);
        }
        Ok(real)
    }

    /// Shares `dir` with the peers of `topics` (`None`: every topic) and
    /// starts scanning it; returns at once. Sharing a directory that is
    /// already shared returns the existing share, with its topics set to
    /// `topics` when given.
    pub async fn add(self: &Arc<Self>, dir: PathBuf, topics: Option<Vec<String>>) -> Result<ShareInfo, AddShareError> {
        if self.shutdown.is_cancelled() {
            return Err(AddShareError::ShuttingDown);
        }
        let topics = check_topics(topics)?;
        let this = self.clone();
        let wanted = topics.clone();
        let (st, is_new) = tokio::task::spawn_blocking(move || this.add_blocking(&dir, wanted))
            .await
            .map_err(|_| AddShareError::ShuttingDown)??;
        if is_new {
            info!(share = %st.name, path = %st.path.display(), topics = ?topics, "sharing");
        } else if topics.is_some() {
            self.set_topics(&st.name, topics).await.map_err(|e| match e {
                ShareOpError::Index(e) => AddShareError::Index(e),
                ShareOpError::Topics(e) => AddShareError::Topics(e),
                ShareOpError::Unknown(_) | ShareOpError::ShuttingDown => AddShareError::ShuttingDown,
            })?;
        }
        self.spawn_scan(&st);
        let rec = self.index.share_record(&st.name)?.ok_or_else(|| AddShareError::NotFound(st.path.clone()))?;
        Ok(share_info(&st, &rec))
    }

    fn add_blocking(&self, dir: &Path, topics: Option<Vec<String>>) -> Result<(Arc<ShareState>, bool), AddShareError> {
        let canonical = std::fs::canonicalize(dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => AddShareError::NotFound(dir.into()),
            _ => AddShareError::Io { path: dir.into(), source: e },
        })?;
        let meta = std::fs::metadata(&canonical).map_err(|e| AddShareError::Io { path: dir.into(), source: e })?;
        if !meta.is_dir() {
            return Err(AddShareError::NotADirectory(dir.into()));
        }
        if self.private.as_ref().is_some_and(|p| canonical.starts_with(p)) {
            return Err(AddShareError::Private(dir.into()));
        }
        let mut states = self.states();
        if let Some(existing) = states.values().find(|s| s.path == canonical) {
            return Ok((existing.clone(), false));
        }
        let base = base_name(&canonical);
        // Fewer shares than candidates: one of them is free.
        let name = (1..=states.len() + 1)
            .map(|n| if n == 1 { base.clone() } else { format!("{base}-{n}") })
            .find(|candidate| !states.contains_key(candidate))
            .unwrap_or(base);
        let rec = ShareRecord::new(&name, &canonical, topics);
        self.index.put_share(&rec)?;
        let st = Arc::new(new_state(&rec, &self.shutdown));
        states.insert(name, st.clone());
        Ok((st, true))
    }

    /// Stops sharing `name`: cancels its scan and deletes its entries.
    pub async fn remove(&self, name: &str) -> Result<ShareInfo, ShareOpError> {
        let st = self.states().remove(name).ok_or_else(|| ShareOpError::Unknown(name.into()))?;
        // Uploads of it stop at their next chunk.
        self.visibility.fetch_add(1, Ordering::AcqRel);
        st.cancel.cancel();
        let _scan_done = st.scan_lock.lock().await;
        let index = self.index.clone();
        let owned = name.to_owned();
        let rec = tokio::task::spawn_blocking(move || index.remove_share(&owned))
            .await
            .map_err(|_| ShareOpError::ShuttingDown)??;
        info!(share = %name, "stopped sharing");
        Ok(match rec {
            Some(r) => share_info(&st, &r),
            None => share_info(&st, &ShareRecord::new(name, &st.path, st.topics().clone())),
        })
    }

    /// Starts a rescan of `name` (or queues one if a scan is running).
    pub fn rescan(self: &Arc<Self>, name: &str) -> Result<ShareInfo, ShareOpError> {
        let st = self.state(name).ok_or_else(|| ShareOpError::Unknown(name.into()))?;
        self.spawn_scan(&st);
        let rec = self.index.share_record(name)?.ok_or_else(|| ShareOpError::Unknown(name.into()))?;
        Ok(share_info(&st, &rec))
    }

    /// Rescans every share (at start).
    pub fn rescan_all(self: &Arc<Self>) {
        let states: Vec<_> = self.states().values().cloned().collect();
        for st in states {
            self.spawn_scan(&st);
        }
    }

    fn spawn_scan(self: &Arc<Self>, st: &Arc<ShareState>) {
        if st.scanning.swap(true, Ordering::SeqCst) {
            st.again.store(true, Ordering::SeqCst);
            return;
        }
        let this = self.clone();
        let st = st.clone();
        self.tasks.spawn(async move {
            let _running = st.scan_lock.lock().await;
            loop {
                st.again.store(false, Ordering::SeqCst);
                this.scan_once(&st).await;
                if st.cancel.is_cancelled() {
                    break;
                }
                if st.again.load(Ordering::SeqCst) {
                    continue;
                }
                st.scanning.store(false, Ordering::SeqCst);
                // A rescan asked for between the check and the store would be lost;
                // take it over here unless another task already did.
                if st.again.load(Ordering::SeqCst) && !st.scanning.swap(true, Ordering::SeqCst) {
                    continue;
                }
                return;
            }
            st.scanning.store(false, Ordering::SeqCst);
        });
    }

    async fn scan_once(&self, st: &Arc<ShareState>) {
        let permit = tokio::select! {
            p = self.scan_slots.clone().acquire_owned() => p,
            _ = st.cancel.cancelled() => return,
        };
        let started = Instant::now();
        let index = self.index.clone();
        let st2 = st.clone();
        let private = self.private.clone();
        let result = tokio::task::spawn_blocking(move || {
            scan_share(&index, &st2.name, &st2.path, private.as_deref(), &st2.cancel, &st2.progress)
        })
        .await;
        drop(permit);
        let elapsed = started.elapsed();
        let update = match result {
            Ok(Ok(stats)) => {
                info!(
                    share = %st.name, files = stats.files, dirs = stats.dirs, bytes = stats.size,
                    changes = stats.changes, ms = elapsed.as_millis() as u64, "scan complete"
                );
                self.index.update_share(&st.name, |r| {
                    r.files = stats.files;
                    r.dirs = stats.dirs;
                    r.size = stats.size;
                    r.last_scan = Some(unix_now());
                    r.last_scan_ms = Some(elapsed.as_millis() as u64);
                    r.error = None;
                })
            }
            Ok(Err(ScanError::Cancelled)) => return,
            Ok(Err(e)) => {
                warn!(share = %st.name, error = %e, "scan failed");
                let msg = e.to_string();
                self.index.update_share(&st.name, |r| r.error = Some(msg))
            }
            Err(e) => {
                warn!(share = %st.name, error = %e, "scan task failed");
                return;
            }
        };
        if let Err(e) = update {
            warn!(share = %st.name, error = %e, "could not record the scan result");
        }
    }
}

fn new_state(rec: &ShareRecord, shutdown: &CancellationToken) -> ShareState {
    ShareState {
        name: rec.name.clone(),
        path: rec.path.clone(),
        topics: Mutex::new(rec.topics.clone()),
        cancel: shutdown.child_token(),
        progress: ScanProgress::default(),
        scanning: AtomicBool::new(false),
        again: AtomicBool::new(false),
        scan_lock: tokio::sync::Mutex::new(()),
    }
}

fn share_info(st: &ShareState, rec: &ShareRecord) -> ShareInfo {
    let scanning = st.scanning.load(Ordering::SeqCst);
    let (files, dirs, size) = if scanning {
        (
            st.progress.files.load(Ordering::Relaxed),
            st.progress.dirs.load(Ordering::Relaxed),
            st.progress.size.load(Ordering::Relaxed),
        )
    } else {
        (rec.files, rec.dirs, rec.size)
    };
    ShareInfo {
        name: rec.name.clone(),
        path: rec.path.display().to_string(),
        scanning,
        files,
        dirs,
        size,
        last_scan: rec.last_scan,
        last_scan_ms: rec.last_scan_ms,
        error: rec.error.clone(),
        topics: rec.topics.clone(),
    }
}

/// A share name from a directory's last component, made a valid path component.
fn base_name(dir: &Path) -> String {
    let raw = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let cleaned: String = raw.chars().map(|c| if c.is_control() || c == '\\' { '_' } else { c }).collect();
    let cleaned: String = cleaned.chars().take(100).collect();
    if cleaned.is_empty() {
        return "root".into();
    }
    if validate_component(&cleaned).is_err() { "share".into() } else { cleaned }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_names_are_valid_components() {
        assert_eq!(base_name(Path::new("/srv/Music")), "Music");
        assert_eq!(base_name(Path::new("/")), "root");
        assert_eq!(base_name(Path::new("/srv/a\\b")), "a_b");
        assert_eq!(base_name(Path::new("/srv/x\ny")), "x_y");
    }
}

#[cfg(test)]
mod share_tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn same_directory_names_get_distinct_share_names() {
        let tmp = tempfile::tempdir().unwrap();
        for d in ["one/music", "two/music", "three/music"] {
            std::fs::create_dir_all(tmp.path().join(d)).unwrap();
        }
        std::fs::write(tmp.path().join("one/music/a"), "a").unwrap();
        let index = Index::open(&tmp.path().join("index")).unwrap();
        let tasks = TaskTracker::new();
        let shares = Shares::load(index.clone(), CancellationToken::new(), tasks.clone(), None).unwrap();
        let a = shares.add(tmp.path().join("one/music"), None).await.unwrap();
        let b = shares.add(tmp.path().join("two/music"), None).await.unwrap();
        let c = shares.add(tmp.path().join("three/music"), None).await.unwrap();
        assert_eq!((a.name.as_str(), b.name.as_str(), c.name.as_str()), ("music", "music-2", "music-3"));
        // Sharing the same directory again (even by another spelling) returns the share.
        let again = shares.add(tmp.path().join("one/../one/music"), None).await.unwrap();
        assert_eq!(again.name, "music");
        assert!(matches!(shares.add(tmp.path().join("one/music/a"), None).await, Err(AddShareError::NotADirectory(_))));
        assert!(matches!(shares.add(tmp.path().join("nope"), None).await, Err(AddShareError::NotFound(_))));
        shares.remove("music-2").await.unwrap();
        assert!(matches!(shares.remove("music-2").await, Err(ShareOpError::Unknown(_))));
        tasks.close();
        tasks.wait().await;
        let names: Vec<_> = shares.list().unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(names, vec!["music", "music-3"]);
        let rec = index.share_record("music").unwrap().unwrap();
        assert_eq!(rec.files, 1);
        assert!(rec.last_scan.is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_share_is_seen_by_its_topics_only_and_that_survives_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        for d in ["Photos", "Music"] {
            std::fs::create_dir_all(tmp.path().join(d)).unwrap();
            std::fs::write(tmp.path().join(d).join("f"), d).unwrap();
        }
        let index = Index::open(&tmp.path().join("index")).unwrap();
        let tasks = TaskTracker::new();
        let shares = Shares::load(index.clone(), CancellationToken::new(), tasks.clone(), None).unwrap();
        let family = || Some(vec!["family".to_owned()]);
        shares.add(tmp.path().join("Photos"), family()).await.unwrap();
        let music =
            shares.add(tmp.path().join("Music"), Some(vec!["music-club".into(), "music-club".into()])).await.unwrap();
        assert_eq!(music.topics, Some(vec!["music-club".to_owned()]), "repeats are dropped");
        let b = ["family".to_owned()];
        let c = ["family".to_owned(), "music-club".to_owned()];
        assert!(shares.visible("Photos", Viewer::Peer(&b)));
        assert!(!shares.visible("Music", Viewer::Peer(&b)));
        assert!(shares.visible("Music", Viewer::Peer(&c)));
        assert!(shares.visible("Music", Viewer::Owner));
        assert!(!shares.visible("nope", Viewer::Owner));
        assert_eq!(shares.hidden_from(Viewer::Peer(&b)), vec!["Music".to_owned()]);
        tasks.close();
        tasks.wait().await;
        assert!(matches!(shares.resolve_file("Music/f", Viewer::Peer(&b)), Err(RequestError::NotShared)));
        assert!(shares.resolve_file("Music/f", Viewer::Peer(&c)).is_ok());
        assert!(shares.resolve_file("Music/f", Viewer::Owner).is_ok());

        let before = shares.visibility_changes();
        shares.set_topics("Music", None).await.unwrap();
        assert!(shares.visibility_changes() > before);
        assert!(shares.visible("Music", Viewer::Peer(&b)));
        shares.set_topics("Photos", Some(vec![])).await.unwrap();
        assert!(!shares.visible("Photos", Viewer::Peer(&c)), "an empty list hides the share from every peer");
        assert!(matches!(shares.set_topics("Photos", Some(vec!["".into()])).await, Err(ShareOpError::Topics(_))));
        assert!(matches!(shares.set_topics("nope", None).await, Err(ShareOpError::Unknown(_))));
        // Adding the same directory with topics sets them.
        shares.add(tmp.path().join("Photos"), family()).await.unwrap();

        let again = Shares::load(index, CancellationToken::new(), TaskTracker::new(), None).unwrap();
        let listed: Vec<_> = again.list().unwrap().into_iter().map(|s| (s.name, s.topics)).collect();
        assert_eq!(listed, vec![("Music".to_owned(), None), ("Photos".to_owned(), family())]);
        assert!(!again.visible("Photos", Viewer::Peer(&["music-club".to_owned()])));
    }
}
