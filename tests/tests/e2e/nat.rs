//! NAT traversal through real NATs (tests/natlab: namespaces, nftables, coturn, mosquitto, miniupnpd).

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdp_e2e::net::{Lan, NatLab, can_use_netns};
use hdp_e2e::{Node, make_tree, read_tree};

/// Longest a pairing may take to connect before the test fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// The labs run one at a time: each holds several nodes and daemons, and
/// punching is a matter of timing that a busy 2-core machine would blur.
static ONE_LAB: Mutex<()> = Mutex::new(());

const TOPIC: &str = "nat party";

fn lab(name: &str, kinds: &[&str]) -> Option<NatLab> {
    if !can_use_netns() {
        eprintln!("skipped: the NAT lab needs root and iproute2 (CI runs as root)");
        return None;
    }
    match NatLab::up(name, kinds) {
        Ok(lab) => Some(lab),
        Err(why) => {
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// A node in home `i` of `lab`, meeting peers through the lab's broker and
/// learning its public address from the lab's two STUN addresses.
fn node(lab: &NatLab, i: usize, dir: &Path, share: Option<&Path>, extra: &[&str]) -> Node {
    let mut args = vec![
        "--topic",
        TOPIC,
        "--mqtt",
        "mqtt://203.0.113.1:1883",
        "--stun",
        "203.0.113.2:3478",
        "--stun",
        "203.0.113.3:3478",
        "--no-mdns",
    ];
    let dl = dir.join("downloads");
    args.extend(["--download-dir", dl.to_str().unwrap()]);
    if let Some(s) = share {
        args.extend(["--share", s.to_str().unwrap()]);
    }
    args.extend(extra);
    Node::start_netns(&lab.host(i), &dir.join("data"), &args)
}

fn peer_of(n: &Node) -> Option<serde_json::Value> {
    n.cli_json(&["peers"]).as_array().expect("peer list").first().cloned()
}

/// Waits until `a` and `b` are connected to each other; returns the path
/// each end names and the time it took.
fn wait_connected(a: &Node, b: &Node) -> (String, String, Duration) {
    let start = Instant::now();
    loop {
        let (pa, pb) = (peer_of(a), peer_of(b));
        if let (Some(pa), Some(pb)) = (&pa, &pb)
            && pa["connected"] == true
            && pb["connected"] == true
        {
            let path = |p: &serde_json::Value| p["path"].as_str().unwrap_or("-").to_owned();
            return (path(pa), path(pb), start.elapsed());
        }
        assert!(
            start.elapsed() < CONNECT_TIMEOUT,
            "no connection within {CONNECT_TIMEOUT:?}\nA: {pa:?}\n{}\n-----\nB: {pb:?}\n{}",
            a.log_text(),
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until the router mapped `n`'s port.
fn wait_mapped(n: &Node) {
    let start = Instant::now();
    loop {
        let info = n.cli_json(&["info"]);
        if info["nat"]["port_mapping"].as_str().is_some_and(|m| m.starts_with("mapped")) {
            eprintln!("port mapping after {:?}: {}", start.elapsed(), info["nat"]["port_mapping"]);
            return;
        }
        assert!(start.elapsed() < CONNECT_TIMEOUT, "no port mapping: {info}\n{}", n.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until `n` lists `count` files under `dir` (its scan is done).
fn wait_listed(n: &Node, dir: &str, count: usize) {
    let start = Instant::now();
    loop {
        let v = n.cli_json(&["ls", dir, "-r"]);
        if v.as_array().is_some_and(|a| a.iter().filter(|e| e["kind"] == "file").count() == count) {
            return;
        }
        assert!(start.elapsed() < CONNECT_TIMEOUT, "{v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Two homes of the given kinds: a direct connection (on one of `paths`),
/// then a folder downloads byte-identical.
fn pairing(name: &str, kinds: [&str; 2], paths: &[&str]) {
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lab) = lab(name, &kinds) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("Film Club");
    make_tree(&share, 12, 4);
    let a = node(&lab, 1, &tmp.path().join("a"), Some(&share), &[]);
    if ["upnp", "igd"].contains(&kinds[0]) {
        // An always-on node has long had its mapping when a friend turns up.
        wait_mapped(&a);
    }
    let b = node(&lab, 2, &tmp.path().join("b"), None, &[]);
    let (pa, pb, took) = wait_connected(&a, &b);
    eprintln!("{kinds:?}: connected in {took:?}, paths {pa} / {pb}");
    assert!(
        paths.contains(&pa.as_str()) && paths.contains(&pb.as_str()),
        "{kinds:?}: paths {pa} / {pb}, want {paths:?}"
    );
    let info = a.cli_json(&["info"]);
    assert!(!info["nat"]["public_addrs"].as_array().unwrap().is_empty(), "{info}");
    let a_name = info["name"].as_str().unwrap().to_owned();
    wait_listed(&a, "Film Club", 12);
    let out = b.cli_ok(&["download", &format!("{a_name}/Film Club"), "--wait"]);
    assert!(out.contains("done"), "{out}");
    assert_eq!(read_tree(&tmp.path().join("b/downloads/Film Club")), read_tree(&share));
    b.stop();
    a.stop();
}

#[test]
fn cone_and_cone_connect_directly() {
    pairing("cc", ["cone", "cone"], &["direct", "punched"]);
}

#[test]
fn cone_and_port_restricted_connect() {
    pairing("cr", ["cone", "restricted"], &["direct", "punched"]);
}

#[test]
fn port_restricted_pair_punches_through() {
    pairing("rr", ["restricted", "restricted"], &["punched"]);
}

#[test]
fn upnp_router_and_symmetric_connect_through_the_mapping() {
    pairing("us", ["upnp", "symmetric"], &["mapped"]);
}

#[test]
fn upnp_igd_only_router_maps_the_port_too() {
    pairing("is", ["igd", "symmetric"], &["mapped"]);
}

#[test]
fn cone_and_symmetric_connect() {
    pairing("cs", ["cone", "symmetric"], &["direct", "birthday"]);
}

#[test]
fn port_restricted_and_symmetric_birthday_punch() {
    pairing("rs", ["restricted", "symmetric"], &["birthday"]);
}

#[test]
fn symmetric_pair_ends_in_no_direct_path_without_a_packet_storm() {
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lab) = lab("ss", &["symmetric", "symmetric"]) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let before = (lab.packets(1), lab.packets(2));
    let a = node(&lab, 1, &tmp.path().join("a"), None, &[]);
    let b = node(&lab, 2, &tmp.path().join("b"), None, &[]);
    // Both learn they are behind symmetric NATs, find each other, and give up.
    let start = Instant::now();
    let why = loop {
        let p = peer_of(&a);
        if let Some(p) = &p
            && p["error"].as_str().is_some_and(|e| e.contains("no direct path"))
        {
            break p.clone();
        }
        assert!(start.elapsed() < CONNECT_TIMEOUT, "no verdict: {p:?}\n{}", a.log_text());
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(why["connected"], false, "{why}");
    assert_eq!(a.cli_json(&["info"])["nat"]["nat_type"], "symmetric");
    // Another 10 s of both nodes running: no storm.
    std::thread::sleep(Duration::from_secs(10));
    let sent = (lab.packets(1) - before.0, lab.packets(2) - before.1);
    eprintln!("symmetric pair: packets sent {sent:?} in {:?}", start.elapsed());
    assert!(sent.0 < 1_000 && sent.1 < 1_000, "packets sent {sent:?}");
    assert!(peer_of(&b).is_some_and(|p| p["connected"] == false));
    b.stop();
    a.stop();
}

#[test]
fn a_mapping_change_mid_session_is_survived() {
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lab) = lab("mc", &["restricted", "restricted"]) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    make_tree(&share, 4, 4);
    let a = node(&lab, 1, &tmp.path().join("a"), Some(&share), &[]);
    let b = node(&lab, 2, &tmp.path().join("b"), Some(&share), &[]);
    wait_connected(&a, &b);
    wait_listed(&a, "share", 4);
    wait_listed(&b, "share", 4);
    // The dialing side's router renumbers its mappings (as after a reboot).
    let dialer = if peer_of(&a).unwrap()["direction"] == "out" { 1 } else { 2 };
    lab.run("renat", &[&dialer.to_string()]);
    let (downloader, server) = if dialer == 1 { (&a, &b) } else { (&b, &a) };
    let name = server.cli_json(&["info"])["name"].as_str().unwrap().to_owned();
    let start = Instant::now();
    loop {
        let out = downloader.cli(&["download", &format!("{name}/share"), "--wait"]);
        if out.status.success() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "{}", downloader.log_text());
        std::thread::sleep(Duration::from_secs(1));
    }
    eprintln!("after the mapping change, a download completed in {:?}", start.elapsed());
    let dir = tmp.path().join(if dialer == 1 { "a" } else { "b" }).join("downloads/share");
    assert_eq!(read_tree(&dir), read_tree(&share));
    b.stop();
    a.stop();
}

/// With no STUN server reachable the node starts at once and still meets a
/// neighbour on its LAN (mDNS).
#[test]
fn stun_unreachable_is_not_fatal_and_lan_discovery_works() {
    if !can_use_netns() {
        eprintln!("skipped: creating network namespaces needs root and iproute2 (CI runs as root)");
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let lan = Lan::new(2);
    let tmp = tempfile::tempdir().unwrap();
    // 203.0.113.2 has no route from this LAN: every STUN request goes nowhere.
    let args = ["--topic", "lan party", "--stun", "203.0.113.2:3478", "--stun", "203.0.113.3:3478"];
    let started = Instant::now();
    let a = Node::start_netns(&lan.host(0), &tmp.path().join("a"), &args);
    let b = Node::start_netns(&lan.host(1), &tmp.path().join("b"), &args);
    eprintln!("both nodes up in {:?}", started.elapsed());
    let (pa, _, took) = wait_connected(&a, &b);
    assert_eq!(pa, "lan");
    eprintln!("met over mDNS in {took:?}");
    let start = Instant::now();
    while a.cli_json(&["info"])["nat"]["stun"] != "no answer" {
        assert!(start.elapsed() < Duration::from_secs(30), "{}", a.cli_json(&["info"]));
        std::thread::sleep(Duration::from_millis(200));
    }
    b.stop();
    a.stop();
}
