//! Local names for remote files: every name a peer sends is checked before
//! it becomes a file or directory here.
//!
//! A hostile peer cannot write outside the download dir: every remote path
//! is checked component by component ([`local_path_for`]), directories are
//! created one level at a time refusing symlinks ([`ensure_dirs`]), and
//! files are opened with `O_NOFOLLOW` (in [`super::fetch`]).

use std::path::{Path, PathBuf};

use hdp_proto::path::{SharePath, validate_component};

/// A name a peer sent that we refuse to create.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsafe name from peer: {0:?}")]
pub struct UnsafeName(pub String);

/// `name.part` next to `target`.
pub fn part_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".part");
    target.with_file_name(name)
}

/// `target`, then `name (2).ext`, `name (3).ext`, …
pub fn candidate_names(target: &Path) -> impl Iterator<Item = PathBuf> + '_ {
    let stem = target.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let ext = target.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    std::iter::once(target.to_path_buf())
        .chain((2u32..).map(move |n| target.with_file_name(format!("{stem} ({n}){ext}"))))
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
    use std::path::{Path, PathBuf};

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
