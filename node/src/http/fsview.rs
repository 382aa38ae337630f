//! The directory picker behind `GET /api/fs`: the sub-directories of one
//! directory of the node's own filesystem, for choosing what to share or
//! where downloads go.
//!
//! Only names of directories are returned, never file names or contents;
//! the route is behind the API token like every other. The listing is
//! bounded: at most [`FS_MAX_DIRS`] names are kept (the first ones in name
//! order), however large the directory.

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use hdp_proto::api::{FS_MAX_DIRS, FsDir, FsListing};

/// A directory could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("{0} is not a directory")]
    NotADirectory(String),
    #[error("this node may not read {0} (permission denied)")]
    PermissionDenied(String),
    #[error("give an absolute path (starting with /), not {0:?}")]
    Relative(String),
    #[error("cannot list {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

impl FsError {
    fn from_io(path: &Path, e: std::io::Error) -> Self {
        let shown = path.display().to_string();
        match e.kind() {
            ErrorKind::NotFound => FsError::NotFound(shown),
            ErrorKind::NotADirectory => FsError::NotADirectory(shown),
            ErrorKind::PermissionDenied => FsError::PermissionDenied(shown),
            _ => FsError::Io { path: shown, source: e },
        }
    }
}

/// The home directory of the user the node runs as (`$HOME`), canonical.
pub fn home() -> Option<PathBuf> {
    let h = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    std::fs::canonicalize(h).ok()
}

/// Lists the sub-directories of `path` (absent: the home dir, else `/`).
/// Hidden (dot) directories only when `hidden`. `shared` holds the roots
/// of the shares (canonical): a directory at or below one is marked.
/// Blocking: call it on the blocking pool.
pub fn list_dirs(path: Option<&str>, hidden: bool, shared: &[PathBuf]) -> Result<FsListing, FsError> {
    let home = home();
    let asked = match path.map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) if p.contains('\0') => return Err(FsError::NotFound(p.replace('\0', ""))),
        Some(p) if !Path::new(p).is_absolute() => return Err(FsError::Relative(p.to_owned())),
        Some(p) => PathBuf::from(p),
        None => home.clone().unwrap_or_else(|| PathBuf::from("/")),
    };
    let dir = std::fs::canonicalize(&asked).map_err(|e| FsError::from_io(&asked, e))?;
    let meta = std::fs::metadata(&dir).map_err(|e| FsError::from_io(&dir, e))?;
    if !meta.is_dir() {
        return Err(FsError::NotADirectory(dir.display().to_string()));
    }
    let entries = std::fs::read_dir(&dir).map_err(|e| FsError::from_io(&dir, e))?;
    // The first FS_MAX_DIRS names in order; the set never holds more than one extra.
    let mut names = BTreeSet::new();
    let mut truncated = false;
    for entry in entries {
        let Ok(entry) = entry else { continue };
        // A name that is not UTF-8 cannot travel in JSON unchanged: skipped.
        let Ok(name) = entry.file_name().into_string() else { continue };
        if name.starts_with('.') && !hidden {
            continue;
        }
        let is_dir = match entry.file_type() {
            Ok(t) if t.is_dir() => true,
            // A symlink counts when it leads to a directory.
            Ok(t) if t.is_symlink() => std::fs::metadata(entry.path()).is_ok_and(|m| m.is_dir()),
            _ => false,
        };
        if !is_dir {
            continue;
        }
        if names.len() == FS_MAX_DIRS {
            truncated = true;
            if names.last().is_some_and(|last: &String| &name >= last) {
                continue;
            }
            names.pop_last();
        }
        names.insert(name);
    }
    let is_shared = |p: &Path| shared.iter().any(|root| p.starts_with(root));
    let dirs = names
        .into_iter()
        .map(|name| {
            let path = dir.join(&name);
            FsDir { shared: is_shared(&path), path: path.display().to_string(), name }
        })
        .collect();
    Ok(FsListing {
        parent: dir.parent().map(|p| p.display().to_string()),
        path: dir.display().to_string(),
        home: home.map(|h| h.display().to_string()),
        dirs,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_only_directories_sorted_and_marks_shares() {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        for d in ["b", "a", ".hidden", "music/inner"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("file.txt"), b"x").unwrap();
        std::os::unix::fs::symlink(root.join("a"), root.join("link-to-a")).unwrap();
        std::os::unix::fs::symlink(root.join("file.txt"), root.join("link-to-file")).unwrap();
        let shares = vec![root.join("music")];

        let l = list_dirs(Some(root.to_str().unwrap()), false, &shares).unwrap();
        assert_eq!(l.path, root.display().to_string());
        assert_eq!(l.parent, root.parent().map(|p| p.display().to_string()));
        let names: Vec<&str> = l.dirs.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "link-to-a", "music"]);
        assert!(!l.truncated);
        assert_eq!(l.dirs.iter().filter(|d| d.shared).map(|d| d.name.as_str()).collect::<Vec<_>>(), ["music"]);
        assert_eq!(l.dirs[0].path, root.join("a").display().to_string());

        let l = list_dirs(Some(root.to_str().unwrap()), true, &shares).unwrap();
        assert_eq!(l.dirs[0].name, ".hidden");

        // Below a share counts as shared; `..` is resolved.
        let inner = format!("{}/music/inner/..", root.display());
        let l = list_dirs(Some(&inner), false, &shares).unwrap();
        assert_eq!(l.path, root.join("music").display().to_string());
        assert!(l.dirs.iter().all(|d| d.shared) && l.dirs.len() == 1);
    }

    #[test]
    fn refusals() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(list_dirs(Some(file.to_str().unwrap()), false, &[]), Err(FsError::NotADirectory(_))));
        let gone = tmp.path().join("gone");
        assert!(matches!(list_dirs(Some(gone.to_str().unwrap()), false, &[]), Err(FsError::NotFound(_))));
        assert!(matches!(list_dirs(Some("relative/dir"), false, &[]), Err(FsError::Relative(_))));
    }

    #[test]
    fn bounded_to_the_first_names() {
        let tmp = tempfile::tempdir().unwrap();
        let n = FS_MAX_DIRS + 5;
        // Made in reverse order, so the kept ones are not simply the first read.
        for i in (0..n).rev() {
            std::fs::create_dir(tmp.path().join(format!("d{i:05}"))).unwrap();
        }
        let l = list_dirs(Some(tmp.path().to_str().unwrap()), false, &[]).unwrap();
        assert!(l.truncated);
        assert_eq!(l.dirs.len(), FS_MAX_DIRS);
        assert_eq!(l.dirs[0].name, "d00000");
        assert_eq!(l.dirs.last().unwrap().name, format!("d{:05}", FS_MAX_DIRS - 1));
    }
}
