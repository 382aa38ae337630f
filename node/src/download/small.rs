//! Publishing small files in groups: one filesystem sync for many files.
//!
//! Goals:
//! - A folder of thousands of small files moves at the speed of the disk,
//!   not of one fsync (and one journal commit) per file.
//! - Never lose data, as for big files: a file gets its name only once its
//!   bytes are verified and on disk. Each small file is written to an
//!   unnamed file (`O_TMPFILE`) in its target directory; when the group is
//!   written, one `syncfs` per filesystem makes all of them durable, the
//!   final names of the whole group are recorded in one transaction
//!   ([`Finals`]), and only then is each linked to its name. A crash before
//!   the link leaves nothing behind (unnamed files vanish), so no `.part` is
//!   recorded; a crash after it is finished on restart from the recorded
//!   name, as for big files (`fetch::finish_published`).
//!
//! Non-goals: big files (they resume from a `.part`, see [`super::fetch`]);
//! filesystems without unnamed files (FAT, some network filesystems): the
//! caller falls back to the `.part` path there.
//!
//! # Group commit
//! [`Publisher::publish`] hands a job to a [`Group`]: up to [`PUBLISHERS`]
//! blocking tasks each take what is pending (at most [`GROUP_MAX`]), write
//! it, sync, record, link, answer each job on its oneshot, and repeat until
//! nothing is pending. `pending` holds at most one job per small file being
//! fetched, which the scheduler bounds ([`super::SLOT_KIB`]).

use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::oneshot;

use super::fetch::{FileError, local_io};
use super::group::Group;
use super::names::{candidate_names, ensure_dirs, on_disk, part_path, wire_name};

/// What became of a small file handed to the publisher.
#[derive(Debug)]
pub enum Published {
    /// It has this name, synced.
    Done(PathBuf),
    /// This filesystem has no unnamed files, or a `.part` of an earlier
    /// attempt is there: fetch it through a `.part` instead.
    UsePart,
}

/// Records the final names files are about to get, in one transaction;
/// one result per name, in order.
pub trait Finals: Send + Sync {
    fn record_finals(&self, names: &[(u64, u64, String)]) -> Vec<Result<(), FileError>>;
}

/// One small file to publish.
pub struct Job {
    /// Its request and file (for [`Finals`]).
    pub id: u64,
    pub seq: u64,
    /// The download dir and the directories under it (from the peer's path,
    /// already checked) that the file goes into.
    pub base: PathBuf,
    pub dirs: Vec<String>,
    /// The file's name (checked).
    pub name: String,
    /// Its verified bytes and the sender's mtime.
    pub data: Vec<u8>,
    pub mtime_ns: i64,
    pub reply: oneshot::Sender<Result<Published, FileError>>,
}

/// Publishes small files in groups; see the module docs.
pub struct Publisher {
    /// Jobs waiting for a publishing task (at most [`PUBLISHERS`], taking
    /// [`GROUP_MAX`] at a time), at most one per small file being fetched.
    pending: Group<Job>,
}

impl Default for Publisher {
    fn default() -> Self {
        Publisher { pending: Group::new(PUBLISHERS, GROUP_MAX) }
    }
}

/// Publishing tasks at once. Creating files is most of a small file's cost
/// at the receiver, and a filesystem creates files in different
/// directories side by side: on ext4 here, four threads made 10,000 files
/// 1.6 times as fast as one.
pub const PUBLISHERS: usize = 4;
/// Files one publishing task takes at a time, at most, so that a burst is
/// shared among the tasks.
pub const GROUP_MAX: usize = 64;

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

impl Publisher {
    /// Writes, syncs and names one small file, together with whatever other
    /// small files are ready now.
    pub async fn publish(
        self: &Arc<Self>,
        finals: Arc<dyn Finals>,
        job: impl FnOnce(oneshot::Sender<Result<Published, FileError>>) -> Job,
    ) -> Result<Published, FileError> {
        let (tx, rx) = oneshot::channel();
        if self.pending.push(job(tx)) {
            let this = self.clone();
            tokio::task::spawn_blocking(move || {
                while let Some(batch) = this.pending.next() {
                    publish_group(batch, &*finals);
                }
            });
        }
        rx.await.unwrap_or(Err(FileError::Stopped))
    }
}

/// A job whose bytes are in an unnamed file, waiting for the sync.
struct Written {
    job: Job,
    file: std::fs::File,
    target: PathBuf,
}

/// Writes every job to an unnamed file, syncs each filesystem involved
/// once, records the final names, then links each file to its name and
/// answers its job.
fn publish_group(batch: Vec<Job>, finals: &dyn Finals) {
    let mut written: Vec<Written> = Vec::with_capacity(batch.len());
    for job in batch {
        match write_unnamed(&job) {
            Ok(Some((file, target))) => written.push(Written { job, file, target }),
            Ok(None) => {
                let _ = job.reply.send(Ok(Published::UsePart));
            }
            Err(e) => {
                let _ = job.reply.send(Err(e));
            }
        }
    }
    // One sync per filesystem: the files' data and inodes are then on
    // disk, before any of them has a name.
    let mut synced: Vec<(u64, Option<std::io::ErrorKind>)> = Vec::new();
    let mut ready = Vec::with_capacity(written.len());
    for w in written {
        let dev = w.file.metadata().map(|m| m.dev()).unwrap_or(0);
        let failed = match synced.iter().find(|(d, _)| *d == dev) {
            Some((_, failed)) => *failed,
            None => {
                let failed = syncfs(&w.file).err().map(|e| e.kind());
                synced.push((dev, failed));
                failed
            }
        };
        match failed {
            Some(kind) => {
                let e = local_io("cannot sync", &w.target, std::io::Error::new(kind, "syncfs failed"));
                let _ = w.job.reply.send(Err(e));
            }
            None => ready.push(w),
        }
    }
    // The first free name of each, recorded for all in one transaction.
    let mut named = Vec::with_capacity(ready.len());
    let mut names = Vec::with_capacity(ready.len());
    for w in ready {
        match free_name(&w.target) {
            Ok(path) => {
                names.push((w.job.id, w.job.seq, file_name(&path)));
                named.push((w, path));
            }
            Err(e) => {
                let _ = w.job.reply.send(Err(e));
            }
        }
    }
    let recorded = finals.record_finals(&names);
    for ((w, path), recorded) in named.into_iter().zip(recorded) {
        let result = recorded.and_then(|()| link_unnamed(&w, path, finals));
        let _ = w.job.reply.send(result.map(Published::Done));
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map(wire_name).unwrap_or_default()
}

/// The first of `target`, `name (2).ext`, … that no file has.
fn free_name(target: &Path) -> Result<PathBuf, FileError> {
    for candidate in candidate_names(target).take(10_000) {
        match std::fs::symlink_metadata(&candidate) {
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(candidate),
            Err(e) => return Err(local_io("cannot inspect", &candidate, e)),
        }
    }
    Err(FileError::Permanent(format!("no free name for {}", target.display())))
}

/// Makes the job's directories and writes its bytes to an unnamed file
/// there. `None`: use the `.part` path instead (see [`Published::UsePart`]).
fn write_unnamed(job: &Job) -> Result<Option<(std::fs::File, PathBuf)>, FileError> {
    use std::io::Write;
    std::fs::create_dir_all(&job.base).map_err(|e| local_io("cannot create the download dir", &job.base, e))?;
    let dir = ensure_dirs(&job.base, &job.dirs).map_err(|e| local_io("cannot create a directory in", &job.base, e))?;
    let target = dir.join(on_disk(&job.name));
    if std::fs::symlink_metadata(part_path(&target)).is_ok() {
        return Ok(None);
    }
    let mut file = match std::fs::OpenOptions::new().write(true).mode(0o666).custom_flags(libc::O_TMPFILE).open(&dir) {
        Ok(f) => f,
        // EOPNOTSUPP (no unnamed files here), EISDIR/EINVAL (old kernels).
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)) => {
            return Ok(None);
        }
        Err(e) => return Err(local_io("cannot create a file in", &dir, e)),
    };
    file.write_all(&job.data).map_err(|e| local_io("cannot write", &target, e))?;
    let _ = file.set_modified(super::fetch::system_time(job.mtime_ns));
    Ok(Some((file, target)))
}

/// `syncfs(2)`: every dirty page and inode of the filesystem holding `file`.
fn syncfs(file: &std::fs::File) -> std::io::Result<()> {
    // SAFETY: syncfs only reads its integer argument; the fd is open for as
    // long as `file` is borrowed.
    #[allow(unsafe_code)]
    let r = unsafe { libc::syncfs(file.as_raw_fd()) };
    if r == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// Links a synced unnamed file to `path`, its recorded name. Should another
/// file have taken that name meanwhile, the next free name is recorded
/// (alone) and tried, as for big files.
fn link_unnamed(w: &Written, mut path: PathBuf, finals: &dyn Finals) -> Result<PathBuf, FileError> {
    use std::os::unix::ffi::OsStrExt;
    // Linking an unnamed file by its /proc path needs no privilege
    // (AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH).
    let from = std::ffi::CString::new(format!("/proc/self/fd/{}", w.file.as_raw_fd()))
        .map_err(|_| FileError::Permanent("internal: bad fd path".into()))?;
    for _ in 0..10_000 {
        let to = std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|_| FileError::Permanent(format!("{} has a NUL byte in its name", path.display())))?;
        // SAFETY: both paths are NUL-terminated C strings that outlive the
        // call; linkat only reads them.
        #[allow(unsafe_code)]
        let linked = unsafe {
            libc::linkat(libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr(), libc::AT_SYMLINK_FOLLOW)
        };
        if linked == 0 {
            return Ok(path);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            return Err(local_io("cannot give its final name to", &w.target, e));
        }
        path = free_name(&w.target)?;
        let recorded = finals.record_finals(&[(w.job.id, w.job.seq, file_name(&path))]);
        recorded.into_iter().next().unwrap_or(Err(FileError::Stopped))?;
    }
    Err(FileError::Permanent(format!("no free name for {}", w.target.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock;
    use std::sync::Mutex;

    /// Remembers the names it was asked to record.
    #[derive(Default)]
    struct Recorded(Mutex<Vec<(u64, u64, String)>>);

    impl Finals for Recorded {
        fn record_finals(&self, names: &[(u64, u64, String)]) -> Vec<Result<(), FileError>> {
            lock(&self.0).extend_from_slice(names);
            names.iter().map(|_| Ok(())).collect()
        }
    }

    fn job(base: &Path, seq: u64, name: &str, data: &[u8]) -> (Job, oneshot::Receiver<Result<Published, FileError>>) {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            id: 7,
            seq,
            base: base.to_path_buf(),
            dirs: vec!["a".into(), "b".into()],
            name: name.into(),
            data: data.to_vec(),
            mtime_ns: 1_600_000_000_123_456_789,
            reply,
        };
        (job, rx)
    }

    fn done(mut rx: oneshot::Receiver<Result<Published, FileError>>) -> PathBuf {
        match rx.try_recv().expect("answered").expect("published") {
            Published::Done(p) => p,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_group_is_written_synced_recorded_and_named() {
        let tmp = tempfile::tempdir().unwrap();
        let finals = Recorded::default();
        let (j1, r1) = job(tmp.path(), 1, "one.txt", b"first");
        let (j2, r2) = job(tmp.path(), 2, "two.txt", b"");
        publish_group(vec![j1, j2], &finals);
        let dir = tmp.path().join("a/b");
        assert_eq!(done(r1), dir.join("one.txt"));
        assert_eq!(done(r2), dir.join("two.txt"));
        assert_eq!(std::fs::read(dir.join("one.txt")).unwrap(), b"first");
        assert_eq!(std::fs::read(dir.join("two.txt")).unwrap(), b"");
        let m = std::fs::metadata(dir.join("one.txt")).unwrap();
        assert_eq!((m.mtime(), m.mtime_nsec()), (1_600_000_000, 123_456_789));
        // Both names in one call (one transaction), before the links.
        assert_eq!(*lock(&finals.0), vec![(7, 1, "one.txt".to_owned()), (7, 2, "two.txt".to_owned())]);
        // Nothing else was left in the directory.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
    }

    #[test]
    fn a_taken_name_is_never_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let finals = Recorded::default();
        let dir = tmp.path().join("a/b");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("same.txt"), b"hello").unwrap();
        let (j1, r1) = job(tmp.path(), 1, "same.txt", b"hello");
        let (j2, r2) = job(tmp.path(), 2, "same.txt", b"hello");
        publish_group(vec![j1, j2], &finals);
        let mut got = [done(r1), done(r2)];
        got.sort();
        assert_eq!(got, [dir.join("same (2).txt"), dir.join("same (3).txt")]);
        assert_eq!(std::fs::read(dir.join("same.txt")).unwrap(), b"hello");
        // The second file's first choice was taken by the first: it recorded
        // its next name before linking there.
        let names: Vec<String> = lock(&finals.0).iter().map(|(_, _, n)| n.clone()).collect();
        assert_eq!(names, ["same (2).txt", "same (2).txt", "same (3).txt"]);
    }

    #[test]
    fn a_part_of_an_earlier_attempt_sends_the_file_down_the_part_path() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("big.bin.part"), b"half").unwrap();
        let (j, mut r) = job(tmp.path(), 1, "big.bin", b"whole");
        publish_group(vec![j], &Recorded::default());
        assert!(matches!(r.try_recv().unwrap(), Ok(Published::UsePart)));
        assert!(!dir.join("big.bin").exists());
    }

    #[test]
    fn a_symlinked_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("a")).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), tmp.path().join("a/b")).unwrap();
        let (j, mut r) = job(tmp.path(), 1, "x.txt", b"x");
        publish_group(vec![j], &Recorded::default());
        assert!(r.try_recv().unwrap().is_err());
        assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    }
}
