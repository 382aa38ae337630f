//! SIGTERM shutdown, the data-dir lock, persisted identity and secrets' modes.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use hdp_e2e::{Node, make_tree, signal};

#[test]
fn sigterm_during_a_scan_exits_cleanly_and_the_next_start_finishes_the_index() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("big");
    make_tree(&share, 20_000, 400);
    let data = tmp.path().join("data");
    let node = Node::start_in(&data, &[&share], &[]);
    std::thread::sleep(Duration::from_millis(50));
    node.stop();

    let node = Node::start_in(&data, &[], &[]);
    let shares = node.wait_scanned();
    assert_eq!(shares[0]["files"], 20_000);
    assert!(shares[0]["error"].is_null());
    node.stop();
}

#[test]
fn one_node_per_data_dir_and_private_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let node = Node::start_in(&data, &[], &[]);
    for f in ["identity.key", "api-token"] {
        let mode = std::fs::metadata(data.join(f)).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{f} is readable by others: {mode:o}");
    }
    assert!(start_fails(&data).contains("already running"));
    // SIGINT works like SIGTERM.
    signal(node.pid(), "INT");
    let mut node = node;
    let mut child = node.child.take().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn config_file_supplies_defaults() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(tmp.path().join("films")).unwrap();
    std::fs::write(tmp.path().join("films/a.mkv"), "x").unwrap();
    std::fs::create_dir_all(data.join("inside")).unwrap();
    // Relative paths are relative to the data dir; the data dir itself holds
    // secrets and is never shared.
    std::fs::write(data.join("config.toml"), "shares = [\"../films\", \"inside\"]\n").unwrap();
    let node = Node::start_in(&data, &[], &[]);
    let shares = node.wait_scanned();
    assert_eq!(shares.as_array().unwrap().len(), 1, "{shares}");
    assert_eq!(shares[0]["name"], "films");
    assert_eq!(shares[0]["files"], 1);
    assert!(node.log_text().contains("inside the node's data dir"));
    node.stop();

    std::fs::write(data.join("config.toml"), "shares = 5\n").unwrap();
    assert!(start_fails(&data).contains("config.toml"));
}

/// Runs `hdp start` on `data`, which must fail at once; returns its stderr.
fn start_fails(data: &std::path::Path) -> String {
    let out = std::process::Command::new(hdp_e2e::hdp_bin())
        .args(["start", "--http", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--mqtt", "off", "--no-mdns", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    assert!(!out.status.success(), "hdp start succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}
