//! Index and scanner tests on real LMDB files and real directory trees in temp dirs.

use std::fs;
use std::path::Path;

use hdp_proto::api::{Entry, EntryKind};
use hdp_proto::path::SharePath;
use tokio_util::sync::CancellationToken;

use super::scan::{ScanProgress, ScanStats, scan_share};
use super::{Index, LsError, LsRequest, ShareRecord};

struct Fixture {
    _tmp: tempfile::TempDir,
    index: Index,
    root: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let index = Index::open(&tmp.path().join("index")).unwrap();
    let root = fs::canonicalize(tmp.path()).unwrap().join("share");
    fs::create_dir(&root).unwrap();
    index.put_share(&ShareRecord::new("s", &root, None)).unwrap();
    Fixture { _tmp: tmp, index, root }
}

impl Fixture {
    fn scan(&self) -> ScanStats {
        scan_share(&self.index, "s", &self.root, None, &CancellationToken::new(), &ScanProgress::default()).unwrap()
    }

    fn write(&self, rel: &str, contents: &str) {
        let p = self.root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, contents).unwrap();
    }

    fn ls_all(&self, path: &str, recursive: bool, search: Option<&str>, limit: u32) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let req = LsRequest {
                path: SharePath::parse(path).unwrap(),
                recursive,
                search: search.map(str::to_lowercase),
                cursor: cursor.clone(),
                limit: Some(limit),
                hidden: Vec::new(),
            };
            let page = self.index.ls(&req).unwrap();
            assert!(page.entries.len() <= limit as usize);
            out.extend(page.entries);
            match page.cursor {
                Some(c) => cursor = Some(SharePath::parse(&c).unwrap()),
                None => return out,
            }
        }
    }

    fn paths(&self, path: &str, recursive: bool) -> Vec<String> {
        let mut p: Vec<_> = self.ls_all(path, recursive, None, 2).into_iter().map(|e| e.path).collect();
        p.sort();
        p
    }

    fn entry(&self, path: &str) -> Entry {
        self.index.get(&SharePath::parse(path).unwrap()).unwrap().unwrap()
    }
}

#[test]
fn nested_tree_with_unicode_and_empty_dirs() {
    let f = fixture();
    f.write("a/b/c/deep.txt", "deep");
    f.write("a/top.txt", "12345");
    f.write("Ærø/曲 (live).flac", "xx");
    fs::create_dir_all(f.root.join("empty/also-empty")).unwrap();
    let stats = f.scan();
    assert_eq!((stats.files, stats.dirs, stats.size), (3, 6, 11));

    assert_eq!(f.paths("", false), vec!["s"]);
    assert_eq!(f.paths("s", false), vec!["s/a", "s/empty", "s/Ærø"]);
    assert_eq!(
        f.paths("s", true),
        vec![
            "s/a",
            "s/a/b",
            "s/a/b/c",
            "s/a/b/c/deep.txt",
            "s/a/top.txt",
            "s/empty",
            "s/empty/also-empty",
            "s/Ærø",
            "s/Ærø/曲 (live).flac",
        ]
    );
    // Aggregates: size and count of everything below.
    let a = f.entry("s/a");
    assert_eq!((a.kind, a.size, a.entries), (EntryKind::Dir, 9, Some(4)));
    let share = f.entry("s");
    assert_eq!((share.size, share.entries), (11, Some(9)));
    assert_eq!(f.entry("s/empty").entries, Some(1));
    assert_eq!(f.entry("s/a/top.txt").size, 5);
}

#[test]
fn rescan_detects_add_modify_delete_and_writes_nothing_when_unchanged() {
    let f = fixture();
    f.write("keep/x.txt", "x");
    f.write("gone/sub/y.txt", "y");
    f.write("change.txt", "1");
    f.scan();
    assert_eq!(f.scan().changes, 0, "an unchanged tree must not be rewritten");

    fs::remove_dir_all(f.root.join("gone")).unwrap();
    f.write("change.txt", "12345");
    f.write("keep/new.txt", "new");
    let stats = f.scan();
    assert!(stats.changes > 0);
    assert_eq!(f.paths("s", true), vec!["s/change.txt", "s/keep", "s/keep/new.txt", "s/keep/x.txt"]);
    assert_eq!(f.entry("s/change.txt").size, 5);
    assert_eq!(f.entry("s").size, 9);
    // Nothing of the deleted subtree remains, even deep down.
    let all = f.ls_all("", true, None, 100);
    assert!(all.iter().all(|e| !e.path.contains("gone")), "{all:?}");

    // A file turning into a directory and back.
    fs::remove_file(f.root.join("change.txt")).unwrap();
    f.write("change.txt/inner.txt", "i");
    f.scan();
    assert_eq!(f.entry("s/change.txt").kind, EntryKind::Dir);
    assert_eq!(f.paths("s/change.txt", false), vec!["s/change.txt/inner.txt"]);
    fs::remove_dir_all(f.root.join("change.txt")).unwrap();
    f.write("change.txt", "abc");
    f.scan();
    assert_eq!(f.entry("s/change.txt").kind, EntryKind::File);
    assert!(f.ls_all("", true, None, 100).iter().all(|e| !e.path.contains("inner")));
}

#[test]
fn prefix_does_not_match_sibling_components() {
    let f = fixture();
    f.write("music/a.mp3", "a");
    f.write("musicals/b.mp3", "b");
    f.write("music.txt", "c");
    f.scan();
    assert_eq!(f.paths("s/music", true), vec!["s/music/a.mp3"]);
    assert_eq!(f.paths("s/music", false), vec!["s/music/a.mp3"]);
}

#[test]
fn search_is_case_insensitive_and_paged() {
    let f = fixture();
    for i in 0..30 {
        f.write(&format!("d{}/Song {i}.FLAC", i % 3), "s");
    }
    f.write("other/readme.txt", "r");
    f.scan();
    let hits = f.ls_all("s", false, Some("SONG 1"), 4);
    let mut names: Vec<_> = hits.iter().map(|e| e.name.clone()).collect();
    names.sort();
    let mut want: Vec<_> = std::iter::once(1).chain(10..20).map(|i| format!("Song {i}.FLAC")).collect();
    want.sort();
    assert_eq!(names, want);
    assert!(f.ls_all("s/other", false, Some("song"), 4).is_empty());
    // Searching for a directory name finds the directory.
    assert_eq!(f.ls_all("", true, Some("d1"), 10).len(), 1);
}

#[test]
fn large_directory_pages_cover_every_entry_once() {
    let f = fixture();
    fs::create_dir(f.root.join("big")).unwrap();
    for i in 0..2_500 {
        fs::write(f.root.join(format!("big/{i:05}")), "").unwrap();
    }
    f.scan();
    let all = f.ls_all("s/big", false, None, 333);
    assert_eq!(all.len(), 2_500);
    let mut names: Vec<_> = all.iter().map(|e| e.name.clone()).collect();
    names.dedup();
    assert_eq!(names.len(), 2_500);
    assert!(names.windows(2).all(|w| w[0] < w[1]), "children come sorted by name");
}

#[test]
fn traversal_and_bad_cursors_are_refused() {
    let f = fixture();
    f.write("a/x", "x");
    f.scan();
    for bad in ["../etc", "/etc", "s/../..", "s/a\0"] {
        assert!(SharePath::parse(bad).is_err(), "{bad:?}");
    }
    let missing = LsRequest { path: SharePath::parse("s/nope").unwrap(), ..Default::default() };
    assert!(matches!(f.index.ls(&missing), Err(LsError::NotFound(_))));
    // A cursor from another directory is refused rather than leaking other entries.
    let req = LsRequest {
        path: SharePath::parse("s/a").unwrap(),
        cursor: Some(SharePath::parse("t/zzz").unwrap()),
        ..Default::default()
    };
    assert!(matches!(f.index.ls(&req), Err(LsError::Cursor)));
}

#[test]
fn symlinks_inside_are_indexed_outside_and_broken_are_skipped() {
    let f = fixture();
    f.write("real.txt", "real");
    let outside = f.root.parent().unwrap().join("secret.txt");
    fs::write(&outside, "secret").unwrap();
    std::os::unix::fs::symlink(f.root.join("real.txt"), f.root.join("inside-link")).unwrap();
    std::os::unix::fs::symlink(&outside, f.root.join("outside-link")).unwrap();
    std::os::unix::fs::symlink(f.root.join("nowhere"), f.root.join("broken-link")).unwrap();
    std::os::unix::fs::symlink(f.root.parent().unwrap(), f.root.join("dir-link")).unwrap();
    f.scan();
    assert_eq!(f.paths("s", true), vec!["s/inside-link", "s/real.txt"]);
}

#[test]
fn unreadable_directories_are_skipped() {
    use std::os::unix::fs::PermissionsExt;
    let f = fixture();
    f.write("open/a", "a");
    f.write("locked/b", "b");
    fs::set_permissions(f.root.join("locked"), fs::Permissions::from_mode(0o000)).unwrap();
    let readable_as_root = fs::read_dir(f.root.join("locked")).is_ok();
    f.scan();
    fs::set_permissions(f.root.join("locked"), fs::Permissions::from_mode(0o755)).unwrap();
    let paths = f.paths("s", true);
    assert!(paths.contains(&"s/open/a".to_string()));
    assert!(paths.contains(&"s/locked".to_string()));
    assert_eq!(paths.contains(&"s/locked/b".to_string()), readable_as_root);
}

#[test]
fn cancelled_scan_keeps_what_it_wrote_and_the_next_scan_completes() {
    let f = fixture();
    for i in 0..50 {
        f.write(&format!("d{i}/f"), "x");
    }
    let cancel = CancellationToken::new();
    cancel.cancel();
    let r = scan_share(&f.index, "s", &f.root, None, &cancel, &ScanProgress::default());
    assert!(r.is_err());
    let stats = f.scan();
    assert_eq!(stats.files, 50);
    assert_eq!(f.entry("s").size, 50);
}

#[test]
fn remove_share_deletes_every_entry() {
    let f = fixture();
    f.write("a/b/c", "c");
    f.scan();
    f.index.remove_share("s").unwrap();
    assert!(f.ls_all("", true, None, 100).is_empty());
    assert!(f.index.share_records().unwrap().is_empty());
}

#[test]
fn missing_root_is_an_error() {
    let f = fixture();
    let gone = f.root.join("missing");
    let r = scan_share(&f.index, "s", &gone, None, &CancellationToken::new(), &ScanProgress::default());
    assert!(r.unwrap_err().to_string().contains("missing"));
    let _ = Path::new("");
}

#[test]
fn the_private_dir_and_overlong_paths_are_skipped() {
    let f = fixture();
    f.write("data/identity.key", "secret");
    f.write("ok.txt", "ok");
    let deep: String = (0..20).map(|i| format!("{}{i}", "d".repeat(98))).collect::<Vec<_>>().join("/");
    f.write(&format!("{deep}/x"), "x");
    let private = f.root.join("data");
    scan_share(&f.index, "s", &f.root, Some(&private), &CancellationToken::new(), &ScanProgress::default()).unwrap();
    let paths = f.paths("s", true);
    assert!(paths.contains(&"s/ok.txt".to_string()));
    assert!(!paths.iter().any(|p| p.contains("identity")), "{paths:?}");
    assert!(paths.iter().all(|p| p.len() <= super::scan::MAX_KEY_LEN));
}

#[test]
fn hash_cache_is_keyed_by_size_and_mtime_and_unhashed_files_are_found_from_lmdb() {
    let f = fixture();
    f.write("a.txt", "aaa");
    f.write("d/b.txt", "bb");
    f.scan();
    let p = |s: &str| SharePath::parse(s).unwrap();
    let all = vec![p("s/a.txt"), p("s/d"), p("s/d/b.txt"), p("s/missing")];
    // Directories and unknown paths never need hashing; both files do.
    assert_eq!(f.index.unhashed(all.clone()).unwrap(), vec![p("s/a.txt"), p("s/d/b.txt")]);

    let a = f.index.get(&p("s/a.txt")).unwrap().unwrap();
    let meta = fs::metadata(f.root.join("a.txt")).unwrap();
    let mtime = super::scan::mtime_ns(&meta);
    f.index.hash_put(&p("s/a.txt"), a.size, mtime, &[7; 32]).unwrap();
    assert_eq!(f.index.hash_get(&p("s/a.txt"), 3, mtime).unwrap(), Some([7; 32]));
    assert_eq!(f.index.hash_get(&p("s/a.txt"), 4, mtime).unwrap(), None);
    assert_eq!(f.index.hash_get(&p("s/a.txt"), 3, mtime + 1).unwrap(), None);
    assert_eq!(f.index.unhashed(all.clone()).unwrap(), vec![p("s/d/b.txt")]);

    // A changed file (new size and mtime after a rescan) needs hashing again.
    f.write("a.txt", "aaaa");
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    fs::File::options().write(true).open(f.root.join("a.txt")).unwrap().set_modified(later).unwrap();
    f.scan();
    assert_eq!(f.index.unhashed(all).unwrap(), vec![p("s/a.txt"), p("s/d/b.txt")]);
}

#[test]
fn hidden_shares_are_skipped_at_the_root() {
    let f = fixture();
    f.write("a/song.flac", "x");
    f.scan();
    let root = |hidden: Vec<String>, search: Option<&str>| {
        let req = LsRequest {
            path: SharePath::root(),
            recursive: true,
            search: search.map(str::to_owned),
            hidden,
            ..Default::default()
        };
        f.index.ls(&req).unwrap().entries.into_iter().map(|e| e.path).collect::<Vec<_>>()
    };
    assert_eq!(root(vec![], Some("song")), vec!["s/a/song.flac".to_owned()]);
    assert!(root(vec!["s".into()], Some("song")).is_empty());
    assert!(root(vec!["s".into()], None).is_empty());
    assert_eq!(root(vec!["other".into()], None).len(), 3, "the share, its folder and its file");
    // A cursor inside a hidden share is refused like a made-up one, and a
    // walk page by page never returns a cursor that names a hidden share.
    let req = LsRequest {
        path: SharePath::root(),
        recursive: true,
        cursor: Some(SharePath::parse("s/a").unwrap()),
        hidden: vec!["s".into()],
        ..Default::default()
    };
    assert!(matches!(f.index.ls(&req), Err(LsError::Cursor)));
}

#[test]
fn hidden_share_holes_leave_every_other_key() {
    let f = fixture();
    f.write("a/song.flac", "x");
    f.scan();
    for (name, dir) in [("s-x", "sx"), ("s2", "s2"), ("t", "t")] {
        let root = f.root.parent().unwrap().join(dir);
        fs::create_dir_all(root.join("d")).unwrap();
        fs::write(root.join("d/f"), "y").unwrap();
        f.index.put_share(&ShareRecord::new(name, &root, None)).unwrap();
        scan_share(&f.index, name, &root, None, &CancellationToken::new(), &ScanProgress::default()).unwrap();
    }
    let walk = |hidden: Vec<String>| {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let req = LsRequest {
                path: SharePath::root(),
                recursive: true,
                cursor: cursor.clone(),
                limit: Some(1),
                hidden: hidden.clone(),
                ..Default::default()
            };
            let page = f.index.ls(&req).unwrap();
            out.extend(page.entries.into_iter().map(|e| e.path));
            match page.cursor {
                Some(c) => {
                    assert!(!hidden.iter().any(|h| c == *h || c.starts_with(&format!("{h}/"))), "cursor {c}");
                    cursor = Some(SharePath::parse(&c).unwrap());
                }
                None => return out,
            }
        }
    };
    let all = walk(vec![]);
    assert_eq!(all.len(), 12, "{all:?}");
    let seen = walk(vec!["s".into(), "t".into()]);
    let mut want: Vec<String> = all.into_iter().filter(|p| p.starts_with("s-x") || p.starts_with("s2")).collect();
    want.sort();
    let mut got = seen.clone();
    got.sort();
    assert_eq!(got, want, "only the visible shares, whole");
}
