//! Every file a Linux filesystem can hold arrives under its own name, byte for byte; what a FAT disk cannot hold fails by name and is counted.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use hdp_e2e::Node;

/// Length of the sparse file: over 2 GiB, with data only at both ends.
const SPARSE_LEN: u64 = (2 << 30) + 12_345;

/// What a tree holds, keyed by raw relative path bytes: `d` for a
/// directory, or `f` with the BLAKE3 of the content and the size.
fn snapshot(root: &Path) -> BTreeMap<Vec<u8>, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<Vec<u8>, String>) {
        for item in std::fs::read_dir(dir).unwrap() {
            let item = item.unwrap();
            let path = item.path();
            let rel = path.strip_prefix(root).unwrap().as_os_str().as_bytes().to_vec();
            let t = item.file_type().unwrap();
            if t.is_dir() {
                out.insert(rel, "d".into());
                walk(root, &path, out);
            } else if t.is_file() {
                let mut h = blake3::Hasher::new();
                h.update_reader(std::fs::File::open(&path).unwrap()).unwrap();
                out.insert(rel, format!("f {} {}", std::fs::metadata(&path).unwrap().len(), h.finalize().to_hex()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn raw(dir: &Path, name: &[u8]) -> PathBuf {
    dir.join(OsStr::from_bytes(name))
}

/// A share of awkward names and shapes. Returns the listening socket that
/// lies in it (the share keeps a live socket while it is scanned and sent).
fn awkward_tree(share: &Path) -> std::os::unix::net::UnixListener {
    std::fs::create_dir_all(share).unwrap();
    let mut names: Vec<Vec<u8>> = vec![
        // Lengths up to NAME_MAX: 251–255 bytes cannot have a `.part` beside them.
        vec![b'a'; 1],
        vec![b'b'; 250],
        vec![b'c'; 251],
        vec![b'd'; 254],
        vec![b'e'; 255],
        // Multi-byte UTF-8 right at the limit: 127 × 2 + 1 and 85 × 3 bytes.
        ["é".repeat(127), "x".into()].concat().into_bytes(),
        "曲".repeat(85).into_bytes(),
        // Not UTF-8: Latin-1, a cut sequence, 255 bytes of 0xff.
        b"caf\xe9.mp3".to_vec(),
        b"cut \xc3".to_vec(),
        vec![0xff; 255],
        // A code point of the wire's escape block, for real.
        "\u{ef80}private".as_bytes().to_vec(),
        // Control characters.
        b"new\nline.txt".to_vec(),
        b"tab\there".to_vec(),
        b"bell\x07 esc\x1b[31m red".to_vec(),
        b"del\x7f".to_vec(),
        // Spaces, dots and dashes at either end.
        b" leading space".to_vec(),
        b"trailing space ".to_vec(),
        b"-dash".to_vec(),
        b"--double-".to_vec(),
        b"trailing dot.".to_vec(),
        b"...".to_vec(),
        // Characters that mean something to URLs, shells and Windows.
        b"100% #1 ?.txt".to_vec(),
        b"a*b:c\"d<e>f|g".to_vec(),
        b"back\\slash".to_vec(),
        b"%2e%2e".to_vec(),
        // Reserved only on Windows.
        b"CON.txt".to_vec(),
        b"nul.txt".to_vec(),
        b"aux".to_vec(),
        b"COM1".to_vec(),
        b"lpt9.log".to_vec(),
    ];
    for (i, name) in names.iter().enumerate() {
        std::fs::write(raw(share, name), format!("file {i}\n").repeat(i + 1)).unwrap();
    }
    // The same names as directories, each holding one file.
    let dirs = share.join("dirs");
    std::fs::create_dir(&dirs).unwrap();
    for name in names.drain(..) {
        let d = raw(&dirs, &name);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("inside"), &name).unwrap();
    }
    // Empty files and directories, nested empty directories.
    std::fs::write(share.join("empty"), b"").unwrap();
    std::fs::create_dir_all(share.join("empty dir")).unwrap();
    std::fs::create_dir_all(share.join("nested/empty/dirs")).unwrap();
    // Deep nesting, to just under the index's path limit (1,900 bytes of
    // share path), with 200-byte components.
    let mut deep = share.join("deep");
    let mut len = "awkward/deep".len();
    let component = "p".repeat(200);
    while len + 1 + component.len() + 1 + 10 <= 1_900 {
        deep.push(&component);
        len += 1 + component.len();
    }
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("bottom.txt"), b"deep down").unwrap();
    // Hard links: two names, one file.
    std::fs::write(share.join("hard-a"), b"linked content").unwrap();
    std::fs::hard_link(share.join("hard-a"), share.join("hard-b")).unwrap();
    // A sparse file of over 2 GiB: data at both ends, a hole between.
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::File::create(share.join("disk.img")).unwrap();
        f.write_all(b"boot sector").unwrap();
        f.seek(SeekFrom::Start(SPARSE_LEN - 5)).unwrap();
        f.write_all(b"tail!").unwrap();
    }
    // A FIFO and a socket: not files, must neither arrive nor hang anything.
    assert!(Command::new("mkfifo").arg(share.join("fifo")).status().unwrap().success());
    let socket = std::os::unix::net::UnixListener::bind(share.join("socket")).unwrap();
    assert!(std::fs::symlink_metadata(share.join("fifo")).unwrap().file_type().is_fifo());
    assert!(std::fs::symlink_metadata(share.join("socket")).unwrap().file_type().is_socket());
    socket
}

#[test]
fn an_awkward_tree_arrives_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("awkward");
    let _socket = awkward_tree(&share);
    let a = Node::start_in(&tmp.path().join("a"), &[&share], &["--topic", "t"]);
    let shares = a.wait_scanned();
    let dl = tmp.path().join("dl");
    let b = Node::start_in(&tmp.path().join("b"), &[], &["--topic", "t", "--download-dir", dl.to_str().unwrap()]);
    let name = b.connect(&a);
    let started = std::time::Instant::now();
    let id = b.cli_json(&["download", &format!("{name}/awkward")])["id"].as_u64().unwrap();
    let done = b.wait_download(id);
    eprintln!("awkward tree: {:.1} s, {}", started.elapsed().as_secs_f64(), done);
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["files_failed"], 0, "{done}");

    let want = snapshot(&share);
    let got = snapshot(&dl.join("awkward"));
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).map(|k| String::from_utf8_lossy(k)).collect();
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).map(|k| String::from_utf8_lossy(k)).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing {missing:?}, extra {extra:?}; shares {shares}");
    for (k, v) in &want {
        assert_eq!(&got[k], v, "{}", String::from_utf8_lossy(k));
    }
    assert!(!got.keys().any(|k| k.ends_with(b"fifo") || k.ends_with(b"socket")));
    // The sparse file came without its hole being written out.
    let img = std::fs::metadata(dl.join("awkward/disk.img")).unwrap();
    assert_eq!(img.len(), SPARSE_LEN);
    assert!(img.blocks() * 512 < 1 << 20, "the 2 GiB sparse file takes {} bytes on disk", img.blocks() * 512);
    // Names are shown escaped, kept raw: the listing and the log.
    let ls = b.cli_ok(&["ls", &format!("{name}/awkward")]);
    assert!(ls.contains("new\\nline.txt") && ls.contains("caf\\xe9.mp3"), "{ls}");
    assert!(!b.log_text().contains("new\nline"), "a raw newline from a name reached the log");
    a.stop();
    b.stop();
}

/// A FAT filesystem image mounted with fusefat (FUSE: no kernel module or
/// loop device needed); `None` where the machine cannot (no root, no
/// mkfs.vfat or fusefat).
struct FatDisk {
    mount: PathBuf,
}

impl FatDisk {
    fn new(dir: &Path) -> Option<FatDisk> {
        let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        let image = dir.join("fat.img");
        let mount = dir.join("fat");
        std::fs::create_dir_all(&mount).unwrap();
        let ok = root
            && std::fs::File::create(&image).and_then(|f| f.set_len(64 << 20)).is_ok()
            && Command::new("mkfs.vfat").arg(&image).output().is_ok_and(|o| o.status.success())
            && Command::new("fusefat")
                .args(["-o", "rw+"])
                .arg(&image)
                .arg(&mount)
                .output()
                .is_ok_and(|o| o.status.success());
        ok.then_some(FatDisk { mount })
    }
}

impl Drop for FatDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
    }
}

#[test]
fn names_a_fat_disk_refuses_fail_by_name_with_what_to_do_and_are_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(fat) = FatDisk::new(tmp.path()) else {
        eprintln!("skipped: needs root, mkfs.vfat and fusefat (scripts/setup.sh --test installs them)");
        return;
    };
    let share = tmp.path().join("music");
    std::fs::create_dir_all(&share).unwrap();
    std::fs::write(share.join("fine.mp3"), b"fine").unwrap();
    std::fs::write(share.join("what?.mp3"), b"question").unwrap();
    std::fs::write(share.join("a:b.mp3"), b"colon").unwrap();
    std::fs::write(share.join("big?.flac"), vec![3u8; 300 << 10]).unwrap();
    let a = Node::start_in(&tmp.path().join("a"), &[&share], &["--topic", "t"]);
    a.wait_scanned();
    let dl = fat.mount.join("dl");
    let b = Node::start_in(&tmp.path().join("b"), &[], &["--topic", "t", "--download-dir", dl.to_str().unwrap()]);
    let name = b.connect(&a);
    let id = b.cli_json(&["download", &format!("{name}/music")])["id"].as_u64().unwrap();
    let done = b.wait_download(id);
    assert_eq!((done["files_done"].as_u64(), done["files_failed"].as_u64()), (Some(1), Some(3)), "{done}");
    assert_eq!(std::fs::read(dl.join("music/fine.mp3")).unwrap(), b"fine");
    let files = b.api("GET", &format!("/api/downloads/{id}/files"), None).json();
    let failed: Vec<_> =
        files["files"].as_array().unwrap().iter().filter(|f| f["state"] == "failed").cloned().collect();
    assert_eq!(failed.len(), 3, "{files}");
    for f in &failed {
        let err = f["error"].as_str().unwrap();
        let file = f["path"].as_str().unwrap().rsplit('/').next().unwrap();
        assert!(err.contains(file), "the reason does not name {file}: {err}");
        assert!(err.contains("download to a Linux filesystem"), "the reason does not say what to do: {err}");
    }
    // No temporary files left behind on the FAT disk.
    let left: Vec<_> = std::fs::read_dir(dl.join("music")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, [OsStr::new("fine.mp3")], "{left:?}");
    a.stop();
    b.stop();
    drop(fat);
}
