//! The download queue: kill -9 of the downloader mid-queue, pause/resume/cancel, disk full, a 100,000-file request.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hdp_e2e::{Node, Tmpfs, make_tree, part_files, peak_rss_kib, random_file, read_tree, same_file, signal};

/// A downloading node that dials `a` on start (as `--peer` does in real
/// use), so after every restart it finds its peer on its own.
fn downloader(data: &Path, dl: &Path, a: &Node, extra: &[&str]) -> Node {
    let peer = a.quic.to_string();
    let mut args = vec!["--topic", "t", "--download-dir", dl.to_str().unwrap(), "--peer", &peer];
    args.extend_from_slice(extra);
    Node::start_in(data, &[], &args)
}

/// Waits until `b` is connected to `a`; returns `a`'s friendly name.
fn wait_connected(b: &Node, a: &Node) -> String {
    let name = a.cli_json(&["info"])["name"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let peers = b.api("GET", "/api/peers", None).json();
        if peers.as_array().unwrap().iter().any(|p| p["name"] == name.as_str() && p["connected"] == true) {
            return name;
        }
        assert!(Instant::now() < deadline, "{name} never connected: {peers}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A different pause each round, without a random-number crate.
fn pause_for(round: u32) -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    Duration::from_millis(100 + u64::from((nanos ^ round.wrapping_mul(0x9e37_79b9)) % 600))
}

#[test]
fn kill_9_of_the_downloading_node_five_times_and_the_queue_completes_by_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("media");
    for (i, dir) in ["a", "b", "b/c"].iter().enumerate() {
        std::fs::create_dir_all(share.join(dir)).unwrap();
        for j in 0..4 {
            random_file(&share.join(dir).join(format!("track{j}.flac")), (2 << 20) + j * 4099, (i * 10 + j) as u32 + 1);
        }
    }
    std::fs::write(share.join("empty.txt"), b"").unwrap();
    std::fs::write(share.join("b/c/notes.txt"), b"liner notes").unwrap();
    // About 25 MiB at 4 MiB/s: long enough to be killed five times.
    let a = Node::start_in(&tmp.path().join("a"), &[&share], &["--topic", "t", "--max-upload-rate", "4M"]);
    a.wait_scanned();
    let (b_data, dl) = (tmp.path().join("b"), tmp.path().join("dl"));
    let mut b = downloader(&b_data, &dl, &a, &[]);
    let name = wait_connected(&b, &a);
    let id = b.cli_json(&["download", &format!("{name}/media")])["id"].as_u64().unwrap();
    for round in 0..5 {
        // Kill while files are moving: wait for an active transfer, then a
        // different moment each round.
        let restarted = Instant::now();
        let base = b.download(id)["bytes_done"].as_u64().unwrap();
        b.wait_download_until(id, "new bytes on disk", |v| v["bytes_done"].as_u64().unwrap() > base);
        let resumed_after = restarted.elapsed();
        std::thread::sleep(pause_for(round));
        let before = b.download(id);
        assert_ne!(before["state"], "done", "finished before kill {round}; make the share larger: {before}");
        signal(b.pid(), "KILL");
        drop(b);
        eprintln!(
            "kill -9 #{}: new bytes on disk {:.2} s after the restart; killed at {} of {} bytes, {} files done",
            round + 1,
            resumed_after.as_secs_f64(),
            before["bytes_done"],
            before["bytes_total"],
            before["files_done"]
        );
        b = downloader(&b_data, &dl, &a, &[]);
        assert!(b.log_text().contains("resuming the download queue") || b.download(id)["state"] == "done");
    }
    let done = b.wait_download(id);
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["files_done"], 14, "{done}");
    assert_eq!(read_tree(&share), read_tree(&dl.join("media")), "every file byte-identical, none twice");
    assert!(part_files(&dl).is_empty(), "no .part left: {:?}", part_files(&dl));
    b.stop();
    a.stop();
}

#[test]
fn pause_holds_resume_continues_and_cancel_leaves_no_part_files() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("s");
    std::fs::create_dir_all(share.join("two")).unwrap();
    random_file(&share.join("big.bin"), 12 << 20, 7);
    random_file(&share.join("other.bin"), 12 << 20, 8);
    random_file(&share.join("two/keep.bin"), 1 << 20, 9);
    random_file(&share.join("two/drop.bin"), 1 << 20, 10);
    let a = Node::start_in(&tmp.path().join("a"), &[&share], &["--topic", "t", "--max-upload-rate", "4M"]);
    a.wait_scanned();
    let dl = tmp.path().join("dl");
    let b = downloader(&tmp.path().join("b"), &dl, &a, &[]);
    let name = wait_connected(&b, &a);
    let part = dl.join("big.bin.part");

    // Pause holds: no byte moves while paused.
    let id = b.cli_json(&["download", &format!("{name}/s/big.bin")])["id"].as_u64().unwrap();
    b.wait_download_until(id, "the first MiB", |v| v["bytes_done"].as_u64().unwrap() > 1 << 20);
    let paused = b.cli_json(&["pause", &id.to_string()]);
    assert_eq!(paused["state"], "paused", "{paused}");
    std::thread::sleep(Duration::from_millis(300));
    let held = std::fs::metadata(&part).unwrap().len();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(std::fs::metadata(&part).unwrap().len(), held, "bytes moved while paused");
    let v = b.download(id);
    assert_eq!((v["state"].as_str(), v["rate"].as_u64()), (Some("paused"), Some(0)), "{v}");
    assert!(held > 0 && held < 12 << 20);

    // Resume continues from where it stopped, never from zero.
    b.cli_ok(&["resume", &id.to_string()]);
    let moving = b.wait_download_until(id, "progress after resume", |v| {
        v["state"] == "done" || v["bytes_done"].as_u64().unwrap() > held
    });
    assert_ne!(moving["state"], "paused");
    if let Ok(m) = std::fs::metadata(&part) {
        assert!(m.len() >= held, "the .part restarted from scratch: {} < {held}", m.len());
    }
    assert_eq!(b.wait_download(id)["state"], "done");
    assert!(same_file(&share.join("big.bin"), &dl.join("big.bin")));
    assert!(b.log_text().contains("download paused") && b.log_text().contains("download resumed"));
    // The resumed prefix was hashed from disk, the rest as it arrived: one match.
    assert!(!b.log_text().contains("mismatch"), "the resumed file did not verify at once");

    // Cancel stops the transfer, deletes the .part and forgets the request.
    let id2 = b.cli_json(&["download", &format!("{name}/s/other.bin")])["id"].as_u64().unwrap();
    b.wait_download_until(id2, "some bytes", |v| v["bytes_done"].as_u64().unwrap() > 0);
    b.cli_ok(&["cancel", &id2.to_string()]);
    assert!(part_files(&dl).is_empty(), "cancel left {:?}", part_files(&dl));
    assert!(!dl.join("other.bin").exists());
    assert_eq!(b.api("GET", &format!("/api/downloads/{id2}"), None).status, 404);
    std::thread::sleep(Duration::from_millis(500));
    assert!(part_files(&dl).is_empty(), "a .part came back after cancel");

    // Per file: queued paused, one file cancelled, the rest resumed.
    let id3 = b.cli_json(&["download", &format!("{name}/s/two"), "--paused"])["id"].as_u64().unwrap();
    b.wait_download_until(id3, "the listing", |v| v["listing"] == false && v["files_total"] == 2);
    let files = b.cli_json(&["downloads", &id3.to_string()]);
    let drop_seq = files.as_array().unwrap().iter().find(|f| f["path"] == "s/two/drop.bin").unwrap()["seq"].clone();
    let cancelled = b.cli_json(&["cancel", &id3.to_string(), "--file", &drop_seq.to_string()]);
    assert_eq!(cancelled["state"], "cancelled", "{cancelled}");
    b.cli_ok(&["resume", &id3.to_string()]);
    let done = b.wait_download(id3);
    assert_eq!((done["state"].as_str(), done["files_total"].as_u64()), (Some("done"), Some(1)), "{done}");
    assert!(same_file(&share.join("two/keep.bin"), &dl.join("two/keep.bin")));
    assert!(!dl.join("two/drop.bin").exists() && part_files(&dl).is_empty());
    b.stop();
    a.stop();
}

#[test]
fn a_full_disk_fails_the_file_clearly_keeps_the_part_and_retry_finishes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&tmp.path().join("disk"), "2m") else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let share = tmp.path().join("s");
    std::fs::create_dir_all(&share).unwrap();
    random_file(&share.join("film.mkv"), 6 << 20, 3);
    let a = Node::start_in(&tmp.path().join("a"), &[&share], &["--topic", "t"]);
    a.wait_scanned();
    let dl: PathBuf = disk.path.join("dl");
    let b = downloader(&tmp.path().join("b"), &dl, &a, &[]);
    let name = wait_connected(&b, &a);
    let id = b.cli_json(&["download", &format!("{name}/s/film.mkv")])["id"].as_u64().unwrap();
    let failed = b.wait_download(id);
    assert_eq!(failed["state"], "failed", "{failed}");
    let files = b.cli_json(&["downloads", &id.to_string()]);
    let error = files[0]["error"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains("disk is full"), "the reason names the full disk: {files}");
    let kept = std::fs::metadata(dl.join("film.mkv.part")).map(|m| m.len()).unwrap_or(0);
    assert!(kept > 0, "the partial data is kept");
    assert_eq!(b.api("GET", "/api/info", None).status, 200, "the node keeps running");

    // Space freed: retry continues the same .part and finishes.
    disk.resize("16m");
    b.cli_ok(&["retry", &id.to_string()]);
    let done = b.wait_download(id);
    assert_eq!(done["state"], "done", "{done}");
    assert!(same_file(&share.join("film.mkv"), &dl.join("film.mkv")));
    assert!(!b.log_text().contains("mismatch"), "the resumed file did not verify at once");
    b.stop();
    a.stop();
    drop(disk);
}

#[test]
fn a_request_for_100_000_files_keeps_the_downloader_small() {
    const FILES: usize = 100_000;
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("many");
    make_tree(&share, FILES, 100);
    let a = Node::start_in(&tmp.path().join("a"), &[&share], &["--topic", "t"]);
    a.wait_scanned();
    let dl = tmp.path().join("dl");
    let b = downloader(&tmp.path().join("b"), &dl, &a, &[]);
    let name = wait_connected(&b, &a);
    let rss_idle = peak_rss_kib(b.pid());
    let started = Instant::now();
    let id = b.cli_json(&["download", &format!("{name}/many"), "--paused"])["id"].as_u64().unwrap();
    let listed = b.wait_download_until(id, "the whole listing", |v| v["listing"] == false);
    assert_eq!(listed["files_total"], FILES, "{listed}");
    let list_secs = started.elapsed().as_secs_f64();
    // Paging through the queue's files: bounded pages, all of them there.
    let page = b.api("GET", &format!("/api/downloads/{id}/files?cursor=99990&limit=5000"), None).json();
    assert_eq!(page["files"].as_array().unwrap().len(), 10, "{page}");
    assert!(page["cursor"].is_null());
    b.cli_ok(&["resume", &id.to_string()]);
    std::thread::sleep(Duration::from_secs(5));
    let moving = b.download(id);
    let done = moving["files_done"].as_u64().unwrap();
    assert!(done > 0, "files move after resume: {moving}");
    let rss_peak = peak_rss_kib(b.pid());
    eprintln!(
        "queue_100k: listed {FILES} files in {list_secs:.1} s; {done} small files in 5 s after resume; \
         peak RSS {:.1} MiB (idle {:.1} MiB)",
        rss_peak as f64 / 1024.0,
        rss_idle as f64 / 1024.0
    );
    assert!(rss_peak < 96 * 1024, "peak RSS {rss_peak} KiB for a {FILES}-file request");
    b.cli_ok(&["cancel", &id.to_string()]);
    assert!(part_files(&dl).is_empty());
    assert_eq!(b.api("GET", &format!("/api/downloads/{id}"), None).status, 404);
    b.stop();
    a.stop();
}
