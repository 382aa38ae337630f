//! Discovery: nodes meet through a real mosquitto broker and through mDNS across network namespaces.

use std::str::FromStr;
use std::time::{Duration, Instant};

use hdp_e2e::Node;
use hdp_e2e::net::{Lan, Mosquitto, Recorder, can_use_netns};
use hdp_proto::id::PeerId;

/// Longest discovery may take in these tests before they fail.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(60);

fn id_of(n: &Node) -> String {
    n.cli_json(&["info"])["id"].as_str().expect("info has an id").to_owned()
}

/// Ids of the peers `n` is connected to, sorted.
fn connected(n: &Node) -> Vec<String> {
    let v = n.cli_json(&["peers"]);
    let mut ids: Vec<String> = v
        .as_array()
        .expect("peer list")
        .iter()
        .filter(|p| p["connected"] == true)
        .filter_map(|p| p["id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

fn peer_entry(n: &Node, id: &str) -> Option<serde_json::Value> {
    n.cli_json(&["peers"]).as_array().expect("peer list").iter().find(|p| p["id"] == id).cloned()
}

/// Polls until every node in `nodes` is connected to exactly the others.
/// Returns how long it took.
fn wait_mesh(nodes: &[&Node]) -> Duration {
    let start = Instant::now();
    let ids: Vec<String> = nodes.iter().map(|n| id_of(n)).collect();
    loop {
        let done = nodes.iter().enumerate().all(|(i, n)| {
            let mut want: Vec<String> =
                ids.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, s)| s.clone()).collect();
            want.sort();
            connected(n) == want
        });
        if done {
            return start.elapsed();
        }
        if start.elapsed() > DISCOVERY_TIMEOUT {
            let state: Vec<String> = nodes.iter().map(|n| format!("{:?}\n{}", connected(n), n.log_text())).collect();
            panic!("nodes did not all connect within {DISCOVERY_TIMEOUT:?}:\n{}", state.join("\n-----\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < DISCOVERY_TIMEOUT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
    start.elapsed()
}

fn mqtt_state(n: &Node) -> String {
    n.cli_json(&["info"])["mqtt"]["state"].as_str().unwrap_or_default().to_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn three_nodes_meet_through_the_broker_and_a_fourth_on_another_topic_stays_apart() {
    let broker = Mosquitto::start();
    let recorder = Recorder::start(&broker);
    let tmp = tempfile::tempdir().unwrap();
    let url = broker.url();
    let topic = "Film Club Saturday";
    let other = "another topic entirely";
    let args = ["--topic", topic, "--mqtt", &url];
    let a = Node::start_in(&tmp.path().join("a"), &[], &args);
    let b = Node::start_in(&tmp.path().join("b"), &[], &args);
    let c = Node::start_in(&tmp.path().join("c"), &[], &args);
    let d = Node::start_in(&tmp.path().join("d"), &[], &["--topic", other, "--mqtt", &url]);
    let took = wait_mesh(&[&a, &b, &c]);
    eprintln!("discovery-time mqtt-three-nodes {:.3}", took.as_secs_f64());

    assert_eq!(mqtt_state(&a), "connected");
    let info = a.cli_json(&["info"]);
    assert_eq!(info["mqtt"]["broker"], url.as_str());
    assert_eq!(info["mdns"], false);
    let b_id = id_of(&b);
    assert_eq!(peer_entry(&a, &b_id).unwrap()["source"], "mqtt");

    // The fourth node heard the same broker for as long, and met no one.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(connected(&d), Vec::<String>::new());
    let d_id = id_of(&d);
    for n in [&a, &b, &c] {
        assert!(peer_entry(n, &d_id).is_none(), "a node on another topic was seen");
    }

    // What the broker (and anyone subscribed to `#`) saw.
    let ids = [id_of(&a), b_id, id_of(&c), d_id];
    let seen = recorder.text().to_lowercase();
    let lines: Vec<&str> = seen.lines().collect();
    assert!(lines.len() >= 4, "every node should have announced at least once: {seen}");
    assert!(lines.iter().all(|l| l.starts_with("hdp/1/")), "unexpected MQTT topic: {seen}");
    let mut secrets: Vec<String> = vec![
        topic.to_lowercase(),
        other.to_lowercase(),
        hex(topic.as_bytes()),
        hex(other.as_bytes()),
        "127.0.0.1".into(),
        hex(&[127, 0, 0, 1]),
    ];
    for id in &ids {
        secrets.push(id.to_lowercase());
        secrets.push(hex(PeerId::from_str(id).unwrap().as_bytes()));
        secrets.push(hex(&PeerId::from_str(id).unwrap().as_bytes()[..8]));
    }
    for s in &secrets {
        assert!(!seen.contains(s.as_str()), "{s:?} appears in what the broker saw");
    }

    for n in [a, b, c, d] {
        n.stop();
    }
}

#[test]
fn nodes_reconnect_to_a_restarted_broker_and_a_newcomer_still_finds_them() {
    let mut broker = Mosquitto::start();
    let tmp = tempfile::tempdir().unwrap();
    let url = broker.url();
    let args = ["--topic", "broker restart", "--mqtt", &url];
    let a = Node::start_in(&tmp.path().join("a"), &[], &args);
    let b = Node::start_in(&tmp.path().join("b"), &[], &args);
    wait_mesh(&[&a, &b]);

    broker.stop();
    wait_until("the nodes to notice the broker is gone", || mqtt_state(&a) != "connected");
    broker.restart();
    let back = wait_until("the nodes to reconnect to the broker", || {
        mqtt_state(&a) == "connected" && mqtt_state(&b) == "connected"
    });
    eprintln!("broker-reconnect-time {:.3}", back.as_secs_f64());

    let c = Node::start_in(&tmp.path().join("c"), &[], &args);
    let took = wait_mesh(&[&a, &b, &c]);
    eprintln!("discovery-time mqtt-after-broker-restart {:.3}", took.as_secs_f64());
    for n in [a, b, c] {
        n.stop();
    }
}

#[test]
fn joining_and_leaving_a_topic_at_runtime_connects_and_disconnects_discovered_peers() {
    let broker = Mosquitto::start();
    let tmp = tempfile::tempdir().unwrap();
    let url = broker.url();
    let a = Node::start_in(&tmp.path().join("a"), &[], &["--topic", "first topic", "--mqtt", &url]);
    let b = Node::start_in(&tmp.path().join("b"), &[], &["--topic", "second topic", "--mqtt", &url]);
    wait_until("both nodes on the broker", || mqtt_state(&a) == "connected" && mqtt_state(&b) == "connected");
    std::thread::sleep(Duration::from_secs(2));
    assert!(connected(&a).is_empty(), "nodes on different topics connected");

    b.cli_ok(&["topics", "join", "first topic"]);
    let took = wait_mesh(&[&a, &b]);
    eprintln!("discovery-time mqtt-runtime-join {:.3}", took.as_secs_f64());

    b.cli_ok(&["topics", "leave", "first topic"]);
    wait_until("the peers to disconnect", || connected(&a).is_empty() && connected(&b).is_empty());
    // And they stay apart: a keeps b's announcement for a while, but b
    // refuses a connection on a topic it left.
    std::thread::sleep(Duration::from_secs(4));
    assert!(connected(&a).is_empty() && connected(&b).is_empty(), "peers reconnected after leaving");
    for n in [a, b] {
        n.stop();
    }
}

#[test]
fn nodes_on_one_lan_meet_through_mdns_across_network_namespaces() {
    if !can_use_netns() {
        eprintln!("skipped: creating network namespaces needs root and iproute2 (CI runs as root)");
        return;
    }
    let lan = Lan::new(3);
    let tmp = tempfile::tempdir().unwrap();
    let a = Node::start_netns(&lan.host(0), &tmp.path().join("a"), &["--topic", "lan party"]);
    let b = Node::start_netns(&lan.host(1), &tmp.path().join("b"), &["--topic", "lan party"]);
    let c = Node::start_netns(&lan.host(2), &tmp.path().join("c"), &["--topic", "not the party"]);
    let took = wait_mesh(&[&a, &b]);
    eprintln!("discovery-time mdns-two-nodes {:.3}", took.as_secs_f64());

    let info = a.cli_json(&["info"]);
    assert_eq!(info["mdns"], true);
    assert_eq!(info["mqtt"]["state"], "off");
    // b may have dialed a before a's own browser saw b: until then a lists
    // b as "incoming".
    wait_until("a to see b through mDNS", || peer_entry(&a, &id_of(&b)).is_some_and(|p| p["source"] == "mdns"));
    let b_entry = peer_entry(&a, &id_of(&b)).unwrap();
    assert!(b_entry["addr"].as_str().unwrap().starts_with(&lan.addr(1)), "{b_entry}");

    std::thread::sleep(Duration::from_secs(2));
    assert!(connected(&c).is_empty(), "the node on another topic connected");
    let c_id = id_of(&c);
    assert!(
        peer_entry(&a, &c_id).is_none() && peer_entry(&b, &c_id).is_none(),
        "the other topic's node was recognised"
    );
    for n in [a, b, c] {
        n.stop();
    }
}

/// Publishes one raw payload on an MQTT topic with mosquitto_pub.
fn publish(broker: &Mosquitto, topic: &str, payload: &[u8]) {
    use std::io::Write;
    let bin = hdp_e2e::net::find_program("mosquitto_pub").expect("mosquitto_pub is not installed");
    let mut child = std::process::Command::new(bin)
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string(), "-t", topic, "-s"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn mosquitto_pub");
    child.stdin.take().unwrap().write_all(payload).unwrap();
    assert!(child.wait().unwrap().success(), "mosquitto_pub failed");
}

#[test]
fn forged_stale_replayed_and_junk_announcements_are_ignored() {
    use ed25519_dalek::SigningKey;
    use hdp_proto::discovery::{AddrKind, WireAddr, seal_announcement};
    use hdp_proto::topic::TopicKeys;

    let broker = Mosquitto::start();
    let tmp = tempfile::tempdir().unwrap();
    let topic = "hostile broker test";
    let url = broker.url();
    let b = Node::start_in(&tmp.path().join("b"), &[], &["--topic", topic, "--mqtt", &url]);
    wait_until("the node on the broker", || mqtt_state(&b) == "connected");

    let keys = TopicKeys::derive(topic);
    let path = format!("hdp/1/{}", hex(&keys.mqtt_path));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let nowhere = [WireAddr::new(AddrKind::Local, "127.0.0.1:9".parse().unwrap())];
    let stale_key = SigningKey::from_bytes(&[1; 32]);
    let future_key = SigningKey::from_bytes(&[2; 32]);
    let wrong_topic_key = SigningKey::from_bytes(&[3; 32]);
    let good_key = SigningKey::from_bytes(&[4; 32]);
    let id = |k: &SigningKey| PeerId(k.verifying_key().to_bytes()).to_string();

    publish(&broker, &path, b"not an announcement");
    publish(&broker, &path, &[1u8; 10_000]);
    publish(&broker, &path, &[0x42; 200 * 1024]);
    publish(&broker, &path, &seal_announcement(&keys, &stale_key, now - 10 * 60 * 1000, &nowhere, [1; 24]).unwrap());
    publish(&broker, &path, &seal_announcement(&keys, &future_key, now + 10 * 60 * 1000, &nowhere, [2; 24]).unwrap());
    let other = TopicKeys::derive("some other topic");
    publish(&broker, &path, &seal_announcement(&other, &wrong_topic_key, now, &nowhere, [3; 24]).unwrap());
    let good = seal_announcement(&keys, &good_key, now, &nowhere, [4; 24]).unwrap();
    publish(&broker, &path, &good);
    publish(&broker, &path, &good);

    // The genuine announcement is taken (the peer is known, not reachable);
    // the rest are not, the replay is noticed, and the node is still on the broker.
    let deadline = Instant::now() + DISCOVERY_TIMEOUT;
    while peer_entry(&b, &id(&good_key)).is_none() {
        assert!(Instant::now() < deadline, "the genuine announcement was not taken:\n{}", b.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let entry = peer_entry(&b, &id(&good_key)).unwrap();
    assert_eq!(entry["source"], "mqtt");
    assert_eq!(entry["connected"], false);
    for k in [&stale_key, &future_key, &wrong_topic_key] {
        assert!(peer_entry(&b, &id(k)).is_none(), "a bad announcement was taken");
    }
    wait_until("the replay to be logged", || b.log_text().contains("replayed"));
    // The 200 KiB message never reached it: the broker honours the packet
    // size limit the node declares, so the node stayed connected throughout.
    assert_eq!(mqtt_state(&b), "connected");
    assert!(!b.log_text().contains("MQTT broker unreachable"), "junk knocked the node off the broker");
    b.stop();
}
