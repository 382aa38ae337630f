//! Local names for remote files: every name a peer sends is checked before
//! it becomes a file or directory here.
//!
//! A hostile peer cannot write outside the download dir: every remote path
//! is checked component by component ([`local_path_for`]), directories are
//! created one level at a time refusing symlinks ([`ensure_dirs`]), and
//! files are opened with `O_NOFOLLOW` (in [`super::fetch`]).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use hdp_proto::path::{MAX_COMPONENT_LEN, SharePath, decode_name, encode_name, validate_component};

/// A name a peer sent that we refuse to create.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsafe name from peer: {}", hdp_proto::fmt::shown(.0))]
pub struct UnsafeName(pub String);

/// The name (or relative path) on disk for a name in wire form
/// ([`hdp_proto::path`]: names that are not UTF-8 travel escaped).
pub fn on_disk(wire: &str) -> OsString {
    OsString::from_vec(decode_name(wire).into_owned())
}

/// The wire form of a name on disk: what the index, the queue and the API
/// store and show.
pub fn wire_name(name: &OsStr) -> String {
    encode_name(name.as_bytes()).into_owned()
}

/// Prefix of the temporary name of a file whose name is too long for
/// `<name>.part` ([`part_path`]).
const LONG_PART_PREFIX: &str = ".hdp-";

/// Where a file is written until it is complete and verified: `name.part`
/// next to `target`, or, when that would be longer than the filesystem
/// allows (`NAME_MAX`, 255 bytes), `.hdp-<32 hex digits of BLAKE3(name)>.part`
/// in the same directory. Both are a function of the final name alone, so a
/// restarted node finds its partial file again.
pub fn part_path(target: &Path) -> PathBuf {
    let name = target.file_name().unwrap_or_default();
    if name.len() + ".part".len() <= MAX_COMPONENT_LEN {
        let mut part = name.to_os_string();
        part.push(".part");
        return target.with_file_name(part);
    }
    let hash = blake3::hash(name.as_bytes());
    let hex: String = hash.as_bytes()[..16].iter().map(|b| format!("{b:02x}")).collect();
    target.with_file_name(format!("{LONG_PART_PREFIX}{hex}.part"))
}

/// `target`, then `name (2).ext`, `name (3).ext`, …; a name that would grow
/// past `NAME_MAX` has its stem shortened (at a character boundary when it is
/// UTF-8) to make room for the number.
pub fn candidate_names(target: &Path) -> impl Iterator<Item = PathBuf> + '_ {
    let stem = target.file_stem().unwrap_or_default().as_bytes();
    let ext = target.extension().map(|e| [b".", e.as_bytes()].concat()).unwrap_or_default();
    std::iter::once(target.to_path_buf()).chain((2u32..).map(move |n| {
        let number = format!(" ({n})");
        let room = MAX_COMPONENT_LEN.saturating_sub(number.len() + ext.len());
        let mut cut = stem.len().min(room);
        if let Ok(s) = std::str::from_utf8(stem) {
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
        }
        let name = [&stem[..cut], number.as_bytes(), &ext].concat();
        target.with_file_name(OsString::from_vec(name))
    }))
}

/// Checks one name a peer sent before it becomes a local file or directory:
/// what a Linux filesystem cannot hold or what would leave the directory
/// (`/`, NUL, `.`, `..`, over 255 bytes) is refused; everything else,
/// control characters and Windows' reserved names included, is a name.
pub fn safe_component(name: &str) -> Result<(), UnsafeName> {
    validate_component(name).map_err(|_| UnsafeName(name.to_owned()))
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
        p.push(on_disk(c));
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
    fn names_linux_can_hold_are_kept() {
        for name in ["CON", "aux.txt", "trailing.", "trailing ", " -lead", "a\\..\\b", "new\nline", "tab\t", "%#?"] {
            let path = format!("m/Album/{name}");
            assert_eq!(local_path_for(&sp("m/Album"), &path).unwrap(), vec!["Album", name], "{name:?}");
        }
        let latin1 = encode_name(b"caf\xe9").into_owned();
        assert_eq!(on_disk(&latin1).as_bytes(), b"caf\xe9");
        assert_eq!(wire_name(&on_disk(&latin1)), latin1);
    }

    #[test]
    fn part_names_fit_name_max() {
        assert_eq!(part_path(Path::new("/d/a.mp3")), PathBuf::from("/d/a.mp3.part"));
        let fits = "x".repeat(250);
        assert_eq!(part_path(&Path::new("/d").join(&fits)), Path::new("/d").join(format!("{fits}.part")));
        for long in [&[b'y'; 251][..], &[b'z'; 255][..], "é".repeat(127).as_bytes()] {
            let part = part_path(&Path::new("/d").join(OsStr::from_bytes(long)));
            let name = part.file_name().unwrap().to_str().unwrap();
            assert!(name.starts_with(LONG_PART_PREFIX) && name.ends_with(".part") && name.len() == 42, "{name}");
            assert_eq!(part.parent(), Some(Path::new("/d")));
        }
        let a = part_path(&Path::new("/d").join("a".repeat(255)));
        let b = part_path(&Path::new("/d").join("b".repeat(255)));
        assert_ne!(a, b);
    }

    #[test]
    fn numbered_names_fit_name_max() {
        let name = format!("{}.flac", "é".repeat(125)); // 255 bytes
        let target = Path::new("/d").join(&name);
        let got: Vec<PathBuf> = candidate_names(&target).take(12).collect();
        assert_eq!(got[0], target);
        for c in &got[1..] {
            let n = c.file_name().unwrap();
            assert!(n.len() <= MAX_COMPONENT_LEN, "{} bytes", n.len());
            let n = n.to_str().expect("cut at a character boundary");
            assert!(n.ends_with(").flac"));
        }
        assert!(got[11].to_str().unwrap().ends_with(" (12).flac"));
        assert_eq!(candidate_names(Path::new("/d/a.txt")).nth(1).unwrap(), PathBuf::from("/d/a (2).txt"));
        let raw = Path::new("/d").join(OsStr::from_bytes(&[0xff; 255]));
        assert!(candidate_names(&raw).nth(1).unwrap().file_name().unwrap().len() <= MAX_COMPONENT_LEN);
    }
}
