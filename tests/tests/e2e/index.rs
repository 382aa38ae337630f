//! Browsing while a large scan runs; rescans and restarts.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use hdp_e2e::{Node, make_tree};

fn ls_paths(node: &Node, path: &str) -> BTreeSet<String> {
    let v = node.cli_json(&["ls", path, "-r"]);
    v.as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn browse_while_a_large_tree_is_still_scanning() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("Tree");
    let files = make_tree(&tree, 100_000, 500);
    let mut want: BTreeSet<String> = files.iter().map(|f| format!("Tree/{f}")).collect();
    for f in &files {
        let mut p = std::path::Path::new(f).parent();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            want.insert(format!("Tree/{}", d.display()));
            p = d.parent();
        }
    }

    // 200 directories, 10 ms apart: the scan lasts seconds however fast the disk.
    let node = Node::start_env(&[&tree], &[("HDP_SCAN_PAUSE_MS", "10")]);
    // Ask at once, while the scan runs: answers are quick, valid pages of
    // real entries. A page counts as seen during the scan when the share
    // reported `scanning` both before and after it.
    let scanning = || node.api("GET", "/api/shares", None).json()[0]["scanning"] == true;
    let mut seen_while_scanning = 0usize;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let before = scanning();
        let page = node.api("GET", "/api/ls?path=Tree&recursive=true&limit=200", None);
        assert_eq!(page.status, 200, "{}", page.body);
        let entries = page.json()["entries"].as_array().unwrap().clone();
        for e in &entries {
            assert!(want.contains(e["path"].as_str().unwrap()), "listed an entry that does not exist: {e}");
        }
        let after = scanning();
        if before && after {
            seen_while_scanning = seen_while_scanning.max(entries.len());
        }
        if !after {
            break;
        }
        assert!(Instant::now() < deadline, "scan of 100,000 files took over two minutes");
    }
    assert!(seen_while_scanning > 0, "no listing with entries was answered while the scan was running");
    // Once the scan is done, every file and directory is listed.
    let listed = ls_paths(&node, "Tree");
    assert_eq!(listed.len(), want.len());
    assert!(listed == want);
    let shares = node.wait_scanned();
    assert_eq!(shares[0]["files"], 100_000);
    node.stop();
}

#[test]
fn rescan_and_restart_keep_the_index_true() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("docs");
    make_tree(&share, 50, 10);
    let data = tmp.path().join("data");
    let node = Node::start_in(&data, &[&share], &[]);
    node.wait_scanned();
    let id = node.cli_json(&["info"])["id"].clone();
    assert_eq!(ls_paths(&node, "docs").len(), 50 + 5 + 1);

    std::fs::remove_dir_all(share.join("d000/e00")).unwrap();
    std::fs::write(share.join("new file.txt"), "new").unwrap();
    node.cli_ok(&["shares", "rescan", "docs"]);
    std::thread::sleep(Duration::from_millis(100));
    node.wait_scanned();
    let paths = ls_paths(&node, "docs");
    assert!(paths.contains("docs/new file.txt"));
    assert!(!paths.iter().any(|p| p.starts_with("docs/d000/e00")), "{paths:?}");
    node.stop();

    // Restart without --share: the share, its entries and the identity persist.
    let node = Node::start_in(&data, &[], &[]);
    assert_eq!(node.cli_json(&["info"])["id"], id);
    assert!(ls_paths(&node, "docs").contains("docs/new file.txt"));
    node.wait_scanned();
    node.stop();
}
