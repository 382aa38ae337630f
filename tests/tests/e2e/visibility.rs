//! Shares per topic: every serving path (`ls`, search, `read`, `hash`, media streaming) refuses a peer the share's topics do not cover; share changes, joins and leaves reach live connections and running uploads.

use std::path::Path;
use std::time::{Duration, Instant};

use hdp_e2e::{Node, random_file};
use hdp_node::remote::{self, RemoteError};
use hdp_proto::wire::{LsRequest, ReadRequest, RequestError};

use crate::hostile::{dial, runtime};

/// The share names in a peer's root listing, as `node` sees them.
fn peer_shares(node: &Node, peer: &str) -> Vec<String> {
    let r = node.api("GET", &format!("/api/ls?peer={peer}"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let mut names: Vec<String> =
        r.json()["entries"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap().to_owned()).collect();
    names.sort();
    names
}

/// The paths a search of a peer finds (the search-everyone view asks each peer this).
fn peer_search(node: &Node, peer: &str, term: &str) -> Vec<String> {
    let r = node.api("GET", &format!("/api/ls?peer={peer}&search={term}"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["entries"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap().to_owned()).collect()
}

fn media_status(node: &Node, peer: &str, path: &str) -> u16 {
    node.api("GET", &format!("/media/peer/{peer}/{path}"), None).status
}

/// What a fresh identity that proved only `topic` gets for `ls`, `read` and
/// `hash` of `path`, straight on the wire.
fn wire_answers(dir: &Path, addr: std::net::SocketAddr, topic: &str, path: &str) -> [Result<(), RemoteError>; 3] {
    runtime().block_on(async {
        let conn = dial(dir, addr, topic).await.expect("handshake");
        let ls =
            remote::ls(&conn, LsRequest { path: path.into(), recursive: false, search: None, cursor: None, limit: 10 })
                .await
                .map(drop);
        let read = remote::read(&conn, ReadRequest { path: path.into(), offset: 0, length: Some(1) }).await.map(drop);
        let hash = remote::hash(&conn, path).await.map(drop);
        conn.close(0u32.into(), b"done");
        [ls, read, hash]
    })
}

fn not_shared(r: &Result<(), RemoteError>) -> bool {
    matches!(r, Err(RemoteError::Refused(RequestError::NotShared)))
}

/// What `ls` answers for a share that does not exist.
fn not_found(r: &Result<(), RemoteError>) -> bool {
    matches!(r, Err(RemoteError::Refused(RequestError::NotFound)))
}

#[test]
fn each_peer_sees_only_the_shares_of_its_topics_and_changes_reach_live_connections() {
    let tmp = tempfile::tempdir().unwrap();
    let (photos, music) = (tmp.path().join("Photos"), tmp.path().join("Music"));
    std::fs::create_dir_all(&photos).unwrap();
    std::fs::create_dir_all(&music).unwrap();
    std::fs::write(photos.join("beach.jpg"), "a photo").unwrap();
    std::fs::write(music.join("song.flac"), "a song").unwrap();
    random_file(&music.join("album.bin"), 8 << 20, 7);

    let a = Node::start_in(&tmp.path().join("a"), &[], &["--topic", "family", "--topic", "music-club"]);
    let added = a.cli_json(&["shares", "add", photos.to_str().unwrap(), "--topic", "family"]);
    assert_eq!(added["topics"], serde_json::json!(["family"]));
    let added = a.cli_json(&["shares", "add", music.to_str().unwrap(), "--topic", "music-club"]);
    assert_eq!(added["topics"], serde_json::json!(["music-club"]));
    a.wait_scanned();
    let listed = a.cli_ok(&["shares"]);
    assert!(listed.contains("SEEN BY") && listed.contains("music-club"), "{listed}");

    let b = Node::start_in(&tmp.path().join("b"), &[], &["--topic", "family"]);
    let dl = tmp.path().join("dl");
    let c = Node::start_in(
        &tmp.path().join("c"),
        &[],
        &[
            "--topic",
            "family",
            "--topic",
            "music-club",
            "--download-dir",
            dl.to_str().unwrap(),
            "--max-download-rate",
            "1M",
        ],
    );
    let a_for_b = b.connect(&a);
    let a_for_c = c.connect(&a);

    // B (family only): Music does not exist for it, on every path.
    assert_eq!(peer_shares(&b, &a_for_b), vec!["Photos"]);
    assert_eq!(peer_search(&b, &a_for_b, "song"), Vec::<String>::new());
    assert_eq!(peer_search(&b, &a_for_b, "beach"), vec!["Photos/beach.jpg"]);
    let r = b.api("GET", &format!("/api/ls?peer={a_for_b}&path=Music"), None);
    assert_ne!(r.status, 200, "B listed Music: {}", r.body);
    assert_eq!(media_status(&b, &a_for_b, "Music/song.flac"), 404);
    assert_eq!(media_status(&b, &a_for_b, "Photos/beach.jpg"), 200);
    let id = b.cli_json(&["download", &format!("{a_for_b}/Music/song.flac")])["id"].as_u64().unwrap();
    let refused = b.wait_download(id);
    assert_eq!(refused["state"], "failed", "{refused}");
    eprintln!("visibility: B's download of a Music file by guessed path: {}", refused["error"]);
    // The same on the wire, `hash` included, for an identity on family only.
    let [ls, read, hash] = wire_answers(&tmp.path().join("f1"), a.quic, "family", "Music/song.flac");
    assert!(not_found(&ls) && not_shared(&read) && not_shared(&hash), "{ls:?} {read:?} {hash:?}");
    // Exactly what a share that does not exist gets.
    let [ls, read, hash] = wire_answers(&tmp.path().join("f0"), a.quic, "family", "Nope/song.flac");
    assert!(not_found(&ls) && not_shared(&read) && not_shared(&hash), "{ls:?} {read:?} {hash:?}");
    let [ls, read, hash] = wire_answers(&tmp.path().join("f2"), a.quic, "family", "Photos/beach.jpg");
    assert!(ls.is_ok() && read.is_ok() && hash.is_ok(), "{ls:?} {read:?} {hash:?}");

    // C (both topics) sees both.
    assert_eq!(peer_shares(&c, &a_for_c), vec!["Music", "Photos"]);
    assert_eq!(peer_search(&c, &a_for_c, "song"), vec!["Music/song.flac"]);
    assert_eq!(media_status(&c, &a_for_c, "Music/song.flac"), 200);
    let [ls, read, hash] = wire_answers(&tmp.path().join("f3"), a.quic, "music-club", "Music/song.flac");
    assert!(ls.is_ok() && read.is_ok() && hash.is_ok(), "{ls:?} {read:?} {hash:?}");

    // Music for every topic: B sees it on the connection it already has.
    let since = |node: &Node| node.api("GET", "/api/peers", None).json()[0]["since"].clone();
    let b_since = since(&b);
    let set = a.cli_json(&["shares", "set", "Music", "--all"]);
    assert_eq!(set["topics"], serde_json::Value::Null);
    assert_eq!(peer_shares(&b, &a_for_b), vec!["Music", "Photos"]);
    assert_eq!(media_status(&b, &a_for_b, "Music/song.flac"), 200);
    assert_eq!(since(&b), b_since, "B did not reconnect");
    a.cli_json(&["shares", "set", "Music", "--topic", "music-club"]);
    assert_eq!(peer_shares(&b, &a_for_b), vec!["Photos"]);

    // B joins music-club: it proves the topic on the live connection
    // (`Prove`) and sees Music without reconnecting.
    b.cli_ok(&["topics", "join", "music-club"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while peer_shares(&b, &a_for_b) != ["Music", "Photos"] {
        assert!(Instant::now() < deadline, "B never saw Music after joining music-club");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(since(&b), b_since, "B did not reconnect");
    let b_peers = b.api("GET", "/api/peers", None).json();
    assert_eq!(b_peers[0]["topics"], serde_json::json!(["family", "music-club"]), "{b_peers}");

    // A leaves music-club while C downloads from Music: the upload stops,
    // the download fails with the reason, and C stays connected (family).
    let id = c.cli_json(&["download", &format!("{a_for_c}/Music/album.bin")])["id"].as_u64().unwrap();
    c.wait_download_until(id, "bytes moving", |v| v["bytes_done"].as_u64().unwrap() > (1 << 20));
    let t0 = Instant::now();
    a.cli_ok(&["topics", "leave", "music-club"]);
    let stopped = c.wait_download(id);
    eprintln!(
        "visibility: C's download stopped {:.1} s after A left music-club, at {} of {} bytes: {}",
        t0.elapsed().as_secs_f64(),
        stopped["bytes_done"],
        stopped["bytes_total"],
        stopped["error"]
    );
    assert_eq!(stopped["state"], "failed", "{stopped}");
    assert!(stopped["bytes_done"].as_u64().unwrap() < 8 << 20, "{stopped}");
    let files = c.api("GET", &format!("/api/downloads/{id}/files"), None).json();
    let reason = files["files"][0]["error"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("no longer shares this file"), "{files}");
    assert_eq!(peer_shares(&c, &a_for_c), vec!["Photos"], "C is still connected through family");
    // A restated its topics: C no longer counts music-club for A either.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let c_peers = c.api("GET", "/api/peers", None).json();
        if c_peers[0]["topics"] == serde_json::json!(["family"]) {
            break;
        }
        assert!(Instant::now() < deadline, "C still counts music-club for A: {c_peers}");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(100));
    a.stop();
    b.stop();
    c.stop();
}
