//! `hdp start`/`info`/`shares`/`ls` as a user runs them, text and `--json`.

use hdp_e2e::Node;

#[test]
fn share_list_and_search_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let music = tmp.path().join("Music");
    std::fs::create_dir_all(music.join("Album Ü")).unwrap();
    std::fs::write(music.join("Album Ü/01 Intro.flac"), "abc").unwrap();
    std::fs::write(music.join("notes.txt"), "hello").unwrap();
    let node = Node::start(&[&music]);
    node.wait_scanned();

    let info = node.cli_json(&["info"]);
    assert_eq!(info["id"].as_str().unwrap().len(), 52);
    assert!(info["name"].as_str().unwrap().contains('-'));
    assert_eq!(info["shares"][0]["name"], "Music");
    assert_eq!(info["shares"][0]["files"], 2);
    let text = node.cli_ok(&["info"]);
    assert!(text.contains(info["name"].as_str().unwrap()) && text.contains("Music"), "{text}");

    let all = node.cli_json(&["ls", "Music", "-r"]);
    let mut paths: Vec<_> = all.as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap().to_owned()).collect();
    paths.sort();
    assert_eq!(paths, vec!["Music/Album Ü", "Music/Album Ü/01 Intro.flac", "Music/notes.txt"]);
    let file = all.as_array().unwrap().iter().find(|e| e["name"] == "notes.txt").unwrap();
    assert_eq!((file["kind"].as_str(), file["size"].as_u64()), (Some("file"), Some(5)));

    let hits = node.cli_json(&["ls", "-s", "INTRO"]);
    assert_eq!(hits.as_array().unwrap().len(), 1);
    assert_eq!(hits[0]["path"], "Music/Album Ü/01 Intro.flac");

    // `hdp link` prints the login link the banner printed (the node is on loopback).
    let links = node.cli_json(&["link"]);
    assert_eq!(links["links"][0].as_str(), Some(node.login_url.as_str()));
    assert_eq!(info["web_ui"][0].as_str(), node.login_url.split('#').next());
    assert_eq!(node.cli_ok(&["link", "--no-qr"]).trim(), node.login_url);

    let human = node.cli_ok(&["ls", "Music"]);
    assert!(human.contains("Album Ü/") && human.contains("notes.txt"), "{human}");

    // Add a second share named like the first, then remove it.
    let other = tmp.path().join("other/Music");
    std::fs::create_dir_all(&other).unwrap();
    let added = node.cli_json(&["shares", "add", other.to_str().unwrap()]);
    assert_eq!(added["name"], "Music-2");
    let list = node.cli_json(&["shares"]);
    assert_eq!(list.as_array().unwrap().len(), 2);
    let removed = node.cli_json(&["shares", "rm", "Music-2"]);
    assert_eq!(removed["name"], "Music-2");
    assert_eq!(node.cli_json(&["shares", "list"]).as_array().unwrap().len(), 1);
    node.stop();
}

#[test]
fn failures_exit_non_zero_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::start(&[]);
    for (args, needle) in [
        (vec!["ls", "../etc"], "invalid path"),
        (vec!["ls", "nope"], "no such file"),
        (vec!["shares", "rm", "nope"], "no share named"),
        (vec!["shares", "add", "/definitely/not/here"], "does not exist"),
    ] {
        let out = node.cli(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    // Wrong token.
    let out = std::process::Command::new(hdp_e2e::hdp_bin())
        .args(["info", "--http", &node.http.to_string(), "--token", "wrong"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("token"));
    node.stop();
    // Nobody listening.
    let out = std::process::Command::new(hdp_e2e::hdp_bin())
        .args(["info", "--http", "127.0.0.1:9", "--token", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach the node"), "{err}");
    // A bad setting stops `start` before anything runs, in one line.
    let out = std::process::Command::new(hdp_e2e::hdp_bin())
        .args(["start", "--threads", "0", "--data-dir"])
        .arg(tmp.path())
        .args(["--http", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--mqtt", "off", "--no-mdns"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end(), "error: threads must be at least 1", "{err}");
}
