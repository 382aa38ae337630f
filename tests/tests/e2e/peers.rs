//! Two and three real nodes on loopback: remote listing and search, downloads of trees and a 1 GiB file, refusals, restarts.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use hdp_e2e::{Node, make_tree, random_file, read_tree, same_file, signal};

fn node_on(topic: &str, shares: &[&Path], download_dir: &Path) -> (tempfile::TempDir, Node) {
    let tmp = tempfile::tempdir().unwrap();
    let dl = download_dir.to_str().unwrap();
    let node = Node::start_in(&tmp.path().join("data"), shares, &["--topic", topic, "--download-dir", dl]);
    (tmp, node)
}

/// A node sharing `share` and one downloading into `dl`, on one topic and
/// connected; also the sharing node's name as the other sees it.
fn serving_pair(topic: &str, share: &Path, dl: &Path) -> ((tempfile::TempDir, tempfile::TempDir), Node, Node, String) {
    let (ta, a) = node_on(topic, &[share], &share.with_extension("unused-dl"));
    let (tb, b) = node_on(topic, &[], dl);
    a.wait_scanned();
    let name = b.connect(&a);
    ((ta, tb), a, b, name)
}

#[test]
fn two_nodes_browse_search_and_download_a_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("Stuff");
    make_tree(&share, 1_200, 100);
    std::fs::write(share.join("empty.txt"), "").unwrap();
    std::fs::create_dir_all(share.join("Ünïcode dir/empty dir")).unwrap();
    std::fs::write(share.join("Ünïcode dir/naïve café.txt"), "☕").unwrap();
    let dl = tmp.path().join("dl");
    let (_dirs, a, b, name) = serving_pair("friends", &share, &dl);

    // Remote listing: the shares, one directory, everything, a search.
    let top = b.cli_json(&["ls", &name]);
    assert_eq!(top[0]["name"], "Stuff");
    let all = b.cli_json(&["ls", &format!("{name}/Stuff"), "-r"]);
    assert_eq!(all.as_array().unwrap().iter().filter(|e| e["kind"] == "file").count(), 1_202);
    let hits = b.cli_json(&["ls", &format!("{name}/Stuff"), "-s", "CAFÉ"]);
    assert_eq!(hits.as_array().unwrap().len(), 1, "{hits}");
    assert_eq!(hits[0]["path"], "Stuff/Ünïcode dir/naïve café.txt");
    let r = b.api("GET", "/api/ls?peer=nobody&path=", None);
    assert_eq!(r.status, 404, "{}", r.body);

    // Download the whole share: every file byte-identical, empty ones too.
    let out = b.cli_ok(&["download", &format!("{name}/Stuff"), "--wait"]);
    assert!(out.contains("done"), "{out}");
    assert_eq!(read_tree(&dl.join("Stuff")), read_tree(&share));
    assert!(dl.join("Stuff/Ünïcode dir/empty dir").is_dir(), "empty directories arrive too");
    let parts: Vec<_> = read_tree(&dl).into_iter().filter(|(p, _)| p.ends_with(".part")).collect();
    assert!(parts.is_empty(), "{parts:?}");

    // Downloading the same file twice never overwrites the first copy.
    let target = format!("{name}/Stuff/Ünïcode dir/naïve café.txt");
    for _ in 0..2 {
        let v = b.cli_json(&["download", &target]);
        let done = b.wait_download(v["id"].as_u64().unwrap());
        assert_eq!(done["state"], "done", "{done}");
    }
    std::fs::write(dl.join("naïve café.txt"), "edited locally").unwrap();
    let v = b.cli_json(&["download", &target]);
    assert_eq!(b.wait_download(v["id"].as_u64().unwrap())["state"], "done");
    assert_eq!(std::fs::read_to_string(dl.join("naïve café.txt")).unwrap(), "edited locally");
    assert_eq!(std::fs::read_to_string(dl.join("naïve café (2).txt")).unwrap(), "☕");
    assert_eq!(std::fs::read_to_string(dl.join("naïve café (3).txt")).unwrap(), "☕");
    a.stop();
    b.stop();
}

#[test]
fn a_one_gib_file_arrives_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("big");
    std::fs::create_dir(&share).unwrap();
    let file = share.join("disk.img");
    {
        // Sparse, with real bytes at the start, middle and end.
        let mut f = std::fs::File::create(&file).unwrap();
        f.set_len(1 << 30).unwrap();
        for at in [0u64, (1 << 29) + 12_345, (1 << 30) - 4096] {
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(&(0..4096u32).map(|i| (i * 7 + at as u32) as u8).collect::<Vec<_>>()).unwrap();
        }
    }
    let dl = tmp.path().join("dl");
    let (_dirs, a, b, name) = serving_pair("t", &share, &dl);
    b.cli_ok(&["download", &format!("{name}/big/disk.img"), "--wait"]);
    assert!(same_file(&file, &dl.join("disk.img")));
    a.stop();
    b.stop();
}

#[test]
fn three_nodes_download_from_two_peers_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (sa, sb) = (tmp.path().join("a-share"), tmp.path().join("b-share"));
    make_tree(&sa, 50, 10);
    make_tree(&sb, 50, 10);
    let dl = tmp.path().join("dl");
    let (_ta, a) = node_on("trio", &[&sa], &tmp.path().join("x"));
    let (_tb, b) = node_on("trio", &[&sb], &tmp.path().join("y"));
    // The node pulling from two peers at once runs more async threads than
    // the default one, as a bigger machine might.
    let c = Node::start_in(
        &tmp.path().join("c-data"),
        &[],
        &["--topic", "trio", "--download-dir", dl.to_str().unwrap(), "--threads", "3"],
    );
    a.wait_scanned();
    b.wait_scanned();
    let (na, nb) = (c.connect(&a), c.connect(&b));
    // A and B also meet each other, so everyone sees two peers.
    b.connect(&a);
    let ia = c.cli_json(&["download", &format!("{na}/a-share")])["id"].as_u64().unwrap();
    let ib = c.cli_json(&["download", &format!("{nb}/b-share")])["id"].as_u64().unwrap();
    assert_eq!(c.wait_download(ia)["state"], "done");
    assert_eq!(c.wait_download(ib)["state"], "done");
    assert_eq!(read_tree(&dl.join("a-share")), read_tree(&sa));
    assert_eq!(read_tree(&dl.join("b-share")), read_tree(&sb));
    for n in [&a, &b, &c] {
        let peers = n.cli_json(&["peers"]);
        let connected = peers.as_array().unwrap().iter().filter(|p| p["connected"] == true).count();
        assert_eq!(connected, 2, "{peers}");
    }
    let listing = c.cli_ok(&["downloads"]);
    assert!(listing.contains("a-share") && listing.contains("b-share"), "{listing}");
    for n in [a, b, c] {
        n.stop();
    }
}

#[test]
fn nodes_without_a_shared_topic_cannot_list() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("secret");
    make_tree(&share, 3, 3);
    let (_ta, a) = node_on("red", &[&share], &tmp.path().join("x"));
    let (_tb, b) = node_on("blue", &[], &tmp.path().join("y"));
    let out = b.cli(&["connect", &a.quic.to_string()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not on any of our topics"), "{err}");
    // The dialing node says why, and keeps the address for retries.
    let peers = b.cli_json(&["peers"]);
    assert_eq!(peers[0]["connected"], false);
    assert!(peers[0]["error"].as_str().unwrap().contains("topic"), "{peers}");
    // Nothing can be listed, and A knows no peer.
    let a_info = a.cli_json(&["info"]);
    let id_prefix = &a_info["id"].as_str().unwrap()[..8];
    let r = b.api("GET", &format!("/api/ls?peer={id_prefix}&path="), None);
    assert_eq!(r.status, 404);
    assert!(a.cli_json(&["peers"]).as_array().unwrap().is_empty());
    a.stop();
    b.stop();
}

#[test]
fn serving_node_killed_mid_download_and_restarted() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("films");
    std::fs::create_dir(&share).unwrap();
    let file = share.join("film.mkv");
    random_file(&file, 300 << 20, 0x9e37_79b9);
    let dl = tmp.path().join("dl");
    let a_data = tmp.path().join("a-data");
    let a = Node::start_in(&a_data, &[&share], &["--topic", "t", "--upload-slots", "1"]);
    let (_tb, b) = node_on("t", &[], &dl);
    a.wait_scanned();
    let name = b.connect(&a);
    let id = b.cli_json(&["download", &format!("{name}/films/film.mkv")])["id"].as_u64().unwrap();
    let v = b.wait_download_until(id, "the first bytes", |v| v["bytes_done"].as_u64().unwrap() > 0);
    assert_ne!(v["state"], "done", "the download finished before the kill; make the file larger");
    signal(a.pid(), "KILL");
    drop(a);
    std::thread::sleep(Duration::from_millis(300));
    assert!(dl.join("film.mkv.part").is_file(), "the partial download is kept");
    assert!(!dl.join("film.mkv").exists(), "no finished file before it is complete");
    // Same data dir: same identity and QUIC port, so B's redial finds it.
    let a = Node::start_in(&a_data, &[], &["--topic", "t"]);
    let done = b.wait_download(id);
    assert_eq!(done["state"], "done", "{done}");
    assert!(same_file(&file, &dl.join("film.mkv")));
    assert!(!dl.join("film.mkv.part").exists());
    a.stop();
    b.stop();
}

#[test]
fn a_stalled_event_listener_never_slows_a_download() {
    use std::io::Read;
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("s");
    std::fs::create_dir(&share).unwrap();
    std::fs::write(share.join("f.bin"), vec![7u8; 64 << 20]).unwrap();
    let dl = tmp.path().join("dl");
    let (_dirs, a, b, name) = serving_pair("t", &share, &dl);

    // Subscribe, read only the response head, then stop reading.
    let mut events = std::net::TcpStream::connect(b.http).unwrap();
    let req = format!("GET /api/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\r\n", b.http, b.token);
    events.write_all(req.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        events.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 200") && head.contains("text/event-stream"), "{head}");

    b.cli_ok(&["download", &format!("{name}/s/f.bin"), "--wait"]);
    assert!(same_file(&share.join("f.bin"), &dl.join("f.bin")));

    // What the stream held meanwhile: progress events, or word that some were dropped.
    events.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut got = vec![0u8; 1 << 20];
    let mut n = 0;
    while n < got.len() {
        match events.read(&mut got[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    let text = String::from_utf8_lossy(&got[..n]);
    assert!(text.contains("event: download"), "{text}");
    assert!(text.contains("\"state\":\"done\"") || text.contains("event: lagged"), "{text}");
    a.stop();
    b.stop();
}

#[test]
fn topics_join_and_leave_at_runtime() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("s");
    make_tree(&share, 2, 2);
    let (_ta, a) = node_on("x", &[&share], &tmp.path().join("dl-a"));
    let b_data = tmp.path().join("b");
    let b = Node::start_in(&b_data, &[], &[]);
    a.wait_scanned();

    let out = b.cli(&["connect", &a.quic.to_string()]);
    assert!(!out.status.success(), "a node on no topic cannot connect");
    assert!(String::from_utf8_lossy(&out.stderr).contains("topic"));

    let topics = b.cli_json(&["topics", "join", "x"]);
    assert_eq!(topics[0]["name"], "x");
    let name = b.connect(&a);
    assert_eq!(b.cli_json(&["topics"])[0]["peers"], 1);
    assert!(b.cli_ok(&["ls", &name]).contains("s/"));
    assert_eq!(b.cli_json(&["info"])["topics"][0], "x");

    // A leaves the only topic they share: both drop the connection, and
    // B's redials are refused.
    a.cli_ok(&["topics", "leave", "x"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let connected =
            |n: &Node| n.cli_json(&["peers"]).as_array().unwrap().iter().filter(|p| p["connected"] == true).count();
        if connected(&a) == 0 && connected(&b) == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "peers still connected after leaving the shared topic");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = a.cli(&["topics", "leave", "x"]);
    assert!(!out.status.success());

    // Joined topics survive a restart.
    b.stop();
    let b = Node::start_in(&b_data, &[], &[]);
    assert_eq!(b.cli_json(&["topics"])[0]["name"], "x");
    a.stop();
    b.stop();
}

#[test]
fn a_file_changed_while_it_is_sent_is_fetched_again_not_spliced() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("docs");
    std::fs::create_dir(&share).unwrap();
    let file = share.join("draft.bin");
    std::fs::write(&file, vec![1u8; 256 << 20]).unwrap();
    let dl = tmp.path().join("dl");
    let (_dirs, a, b, name) = serving_pair("t", &share, &dl);
    let id = b.cli_json(&["download", &format!("{name}/docs/draft.bin")])["id"].as_u64().unwrap();
    b.wait_download_until(id, "the first bytes", |v| v["bytes_done"].as_u64().unwrap() > 0);
    // Rewrite the start of the file in place: same size, new content and mtime.
    let state = b.api("GET", &format!("/api/downloads/{id}"), None).json()["state"].clone();
    assert_ne!(state, "done", "the download finished before the change; make the file larger");
    {
        let mut f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        f.write_all(&vec![2u8; 1 << 20]).unwrap();
        f.set_modified(std::time::SystemTime::now() + Duration::from_secs(5)).unwrap();
    }
    let done = b.wait_download(id);
    assert_eq!(done["state"], "done", "{done}");
    assert!(same_file(&file, &dl.join("draft.bin")), "the download must be the new version, whole");
    a.stop();
    b.stop();
}
