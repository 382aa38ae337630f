//! The friend list: remembered with topics and addresses, renamed, redialed after a restart with no broker and no mDNS; blocking refuses with a named close code, survives restarts, and is undone.

use std::time::{Duration, Instant};

use hdp_e2e::Node;

/// Polls `what` on `node` until `cond` holds (at most `secs` seconds).
fn wait_for(
    node: &Node,
    path: &str,
    secs: u64,
    what: &str,
    cond: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = node.api("GET", path, None).json();
        if cond(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "waited {secs} s in vain for {what}: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn friend<'a>(list: &'a serde_json::Value, id: &str) -> Option<&'a serde_json::Value> {
    list.as_array().unwrap().iter().find(|f| f["id"] == id)
}

#[test]
fn a_friend_is_remembered_renamed_and_redialed_after_a_restart_without_discovery() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Node::start_in(&tmp.path().join("a"), &[], &["--topic", "t"]);
    let a_id = a.cli_json(&["info"])["id"].as_str().unwrap().to_owned();
    let b_data = tmp.path().join("b");
    let b = Node::start_in(&b_data, &[], &["--topic", "t"]);
    let a_name = b.connect(&a);
    let list = b.cli_json(&["friends"]);
    let f = friend(&list, &a_id).expect("a is a friend of b");
    assert_eq!((f["name"].as_str(), f["connected"].as_bool()), (Some(a_name.as_str()), Some(true)), "{f}");
    assert_eq!(f["topics"], serde_json::json!(["t"]));
    assert_eq!(f["addrs"][0]["addr"], a.quic.to_string());
    let renamed = b.cli_json(&["friends", "name", &a_name, "Alice"]);
    assert_eq!(renamed["nickname"], "Alice");
    assert!(b.cli_ok(&["friends"]).contains("Alice"));
    // Both restart: no --peer, MQTT and mDNS off, no dial target survives.
    // The friend lists alone bring them together again.
    b.stop();
    let a_data = a.data_dir.clone();
    a.stop();
    let a = Node::start_in(&a_data, &[], &["--topic", "t"]);
    let b = Node::start_in(&b_data, &[], &["--topic", "t"]);
    let peers = wait_for(&b, "/api/peers", 30, "a redialed", |v| {
        v.as_array().unwrap().iter().any(|p| p["id"] == a_id.as_str() && p["connected"] == true)
    });
    eprintln!("friends: redialed after a restart: {peers}");
    let list = b.cli_json(&["friends"]);
    let f = friend(&list, &a_id).unwrap();
    assert_eq!((f["nickname"].as_str(), f["connected"].as_bool()), (Some("Alice"), Some(true)), "{f}");
    // The nickname names it in commands.
    assert_eq!(b.cli_json(&["friends", "name", "Alice", ""])["nickname"], serde_json::Value::Null);
    a.stop();
    b.stop();
}

#[test]
fn a_blocked_peer_is_refused_with_its_close_code_not_redialed_and_stays_blocked_until_unblocked() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Node::start_in(&tmp.path().join("a"), &[], &["--topic", "t"]);
    let a_id = a.cli_json(&["info"])["id"].as_str().unwrap().to_owned();
    let b_data = tmp.path().join("b");
    let b = Node::start_in(&b_data, &[], &["--topic", "t"]);
    // a dials b (and keeps redialing it); b blocks a.
    let b_name = a.connect(&b);
    let a_name = wait_for(&b, "/api/friends", 10, "a in b's friends", |v| friend(v, &a_id).is_some())[0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let blocked = b.cli_json(&["friends", "block", &a_name]);
    assert_eq!(blocked["blocked"], true);
    // a sees why: the close code, in words, in its `hdp peers`.
    let peers = wait_for(&a, "/api/peers", 20, "the block to reach a", |v| {
        v.as_array().unwrap().iter().any(|p| p["error"].as_str().is_some_and(|e| e.contains("blocked this node")))
    });
    eprintln!("friends: a after the block: {peers}");
    assert!(a.cli_ok(&["peers"]).contains("blocked this node"));
    // b restarts: still blocked; a's redials are refused; b never shows a connected.
    b.stop();
    let b = Node::start_in(&b_data, &[], &["--topic", "t"]);
    std::thread::sleep(Duration::from_secs(3));
    let list = b.cli_json(&["friends"]);
    assert_eq!(friend(&list, &a_id).unwrap()["blocked"], true, "{list}");
    let bp = b.api("GET", "/api/peers", None).json();
    assert!(!bp.as_array().unwrap().iter().any(|p| p["id"] == a_id.as_str() && p["connected"] == true), "{bp}");
    assert!(b.log_text().lines().all(|l| !(l.contains("peer connected") && l.contains(&a_id))), "a got in");
    // Unblocked, a's redial gets in again.
    assert_eq!(b.cli_json(&["friends", "unblock", &a_name])["blocked"], false);
    wait_for(&b, "/api/peers", 60, "a back in after the unblock", |v| {
        v.as_array().unwrap().iter().any(|p| p["id"] == a_id.as_str() && p["connected"] == true)
    });
    let _ = b_name;
    a.stop();
    b.stop();
}
