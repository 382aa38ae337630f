//! The embedded WASM UI rendered by real headless Chromium.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hdp_e2e::Node;

/// Debian's Chromium; scripts/test.sh installs it.
fn chromium() -> PathBuf {
    let p = std::env::var_os("HDP_CHROMIUM").map(PathBuf::from).unwrap_or_else(|| "/usr/bin/chromium".into());
    assert!(p.is_file(), "{} is missing: run scripts/test.sh, which installs Debian's chromium", p.display());
    p
}

/// Where screenshots go: `$HDP_ARTIFACTS` or `<workspace>/artifacts`.
fn artifacts() -> PathBuf {
    let dir = std::env::var_os("HDP_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../artifacts"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs headless Chromium on `url` with a phone-sized window and extra args.
fn run_chromium(url: &str, extra: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-features=Translate,MediaRouter",
        "--window-size=360,740",
        "--virtual-time-budget=15000",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(extra)
    .arg(url);
    let out = run_with_timeout(cmd, Duration::from_secs(90));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run_with_timeout(mut cmd: Command, limit: Duration) -> std::process::Output {
    let child =
        cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null()).spawn().expect("start chromium");
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(limit);
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    });
    let out = child.wait_with_output().expect("chromium output");
    drop(watchdog);
    out
}

#[test]
fn chromium_renders_the_node_name_from_the_wasm_app() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("Photos");
    std::fs::create_dir(&share).unwrap();
    std::fs::write(share.join("beach.jpg"), "jpeg").unwrap();
    let node = Node::start(&[&share]);
    node.wait_scanned();
    let name = node.cli_json(&["info"])["name"].as_str().unwrap().to_owned();

    let dom = run_chromium(&node.login_url, &["--dump-dom".into()]);
    assert!(dom.contains("id=\"node-name\""), "the app did not render its header:\n{dom}");
    assert!(dom.contains(&name), "node name {name:?} not in the DOM:\n{dom}");
    assert!(dom.contains("Photos"), "the share list is not rendered:\n{dom}");

    // Without a token the app asks for one instead of failing silently.
    let bare = format!("http://{}/", node.http);
    let dom = run_chromium(&bare, &["--dump-dom".into()]);
    assert!(dom.to_lowercase().contains("token"), "no login prompt without a token:\n{dom}");
    assert!(!dom.contains(&name));

    let shot = artifacts().join("ui-home-360x740.png");
    run_chromium(&node.login_url, &[format!("--screenshot={}", shot.display())]);
    assert!(std::fs::metadata(&shot).map(|m| m.len() > 1000).unwrap_or(false), "no screenshot written");
    node.stop();
}
