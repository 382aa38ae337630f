//! Harness for the end-to-end tests: starts the real `hdp` binary on a free
//! port with a temp data dir, drives it through its CLI and raw HTTP, and
//! stops it with SIGTERM.
//!
//! Nothing here mocks the node: every test talks to a real process over
//! loopback, with real LMDB files in temp dirs.

pub mod browser;
pub mod net;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Longest a node may take to print its banner.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a node may take to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// The `hdp` binary under test: `$HDP_BIN`, else the one cargo built next to
/// this test executable (`target/<profile>/hdp`).
pub fn hdp_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("HDP_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>");
    let bin = dir.join("hdp");
    assert!(bin.is_file(), "{} is missing: run `cargo build -p hdp-node` first (scripts/test.sh does)", bin.display());
    bin
}

/// How an `hdp` binary is run: natively, or through an emulator (e.g.
/// `qemu-aarch64 -L /usr/aarch64-linux-gnu`) for one built for another CPU.
#[derive(Debug, Clone)]
pub struct Hdp {
    pub program: PathBuf,
    /// Command words put before the program (empty to run it directly).
    pub wrapper: Vec<String>,
}

impl Hdp {
    /// The binary under test ([`hdp_bin`]), run directly.
    pub fn native() -> Hdp {
        Hdp { program: hdp_bin(), wrapper: Vec::new() }
    }

    /// The binary, run inside network namespace `netns` when given.
    fn command(&self, netns: Option<&str>) -> Command {
        let mut words: Vec<std::ffi::OsString> = Vec::new();
        if let Some(ns) = netns {
            words.extend(["ip", "netns", "exec", ns].map(Into::into));
        }
        words.extend(self.wrapper.iter().map(Into::into));
        words.push(self.program.clone().into());
        let mut c = Command::new(&words[0]);
        c.args(&words[1..]);
        c
    }
}

/// A running `hdp start`.
pub struct Node {
    pub child: Option<Child>,
    pub data_dir: PathBuf,
    pub http: SocketAddr,
    /// The node's QUIC address.
    pub quic: SocketAddr,
    pub token: String,
    pub login_url: String,
    pub log: PathBuf,
    /// The network namespace it runs in (CLI commands run there too).
    pub netns: Option<String>,
    /// The binary (CLI commands use it too).
    pub hdp: Hdp,
    _tmp: Option<tempfile::TempDir>,
}

impl Node {
    /// Starts a node with a fresh temp data dir sharing `shares`.
    pub fn start(shares: &[&Path]) -> Node {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data_dir = tmp.path().join("data");
        let mut node = Node::start_in(&data_dir, shares, &[]);
        node._tmp = Some(tmp);
        node
    }

    /// Starts a node on an existing (or new) data dir, with extra arguments.
    ///
    /// Unless `extra` says otherwise, the node listens on loopback and runs
    /// with MQTT and mDNS off: tests never reach the public broker, and never
    /// multicast on the machine's real interfaces. A `config.toml` in the
    /// data dir that sets `mqtt` replaces `--mqtt off` (so the setting is
    /// not pinned by a flag).
    pub fn start_in(data_dir: &Path, shares: &[&Path], extra: &[&str]) -> Node {
        Node::spawn(&Hdp::native(), None, data_dir, shares, extra, &[])
    }

    /// Like [`Node::start_in`], with another binary or an emulator.
    pub fn start_with(hdp: &Hdp, data_dir: &Path, shares: &[&Path], extra: &[&str]) -> Node {
        Node::spawn(hdp, None, data_dir, shares, extra, &[])
    }

    /// Like [`Node::start_in`], with extra environment variables.
    pub fn start_in_env(data_dir: &Path, shares: &[&Path], extra: &[&str], env: &[(&str, &str)]) -> Node {
        Node::spawn(&Hdp::native(), None, data_dir, shares, extra, env)
    }

    /// Like [`Node::start`], with extra environment variables.
    pub fn start_env(shares: &[&Path], env: &[(&str, &str)]) -> Node {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data_dir = tmp.path().join("data");
        let mut node = Node::spawn(&Hdp::native(), None, &data_dir, shares, &[], env);
        node._tmp = Some(tmp);
        node
    }

    /// Starts a node inside network namespace `netns` (which the test made),
    /// listening on all its interfaces with mDNS on and MQTT off unless
    /// `extra` says otherwise. Drive it with [`Node::cli`].
    pub fn start_netns(netns: &str, data_dir: &Path, extra: &[&str]) -> Node {
        Node::spawn(&Hdp::native(), Some(netns), data_dir, &[], extra, &[])
    }

    fn spawn(
        hdp: &Hdp,
        netns: Option<&str>,
        data_dir: &Path,
        shares: &[&Path],
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Node {
        std::fs::create_dir_all(data_dir).expect("data dir");
        let log = data_dir.with_extension("log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut cmd = hdp.command(netns);
        cmd.arg("start").arg("--data-dir").arg(data_dir).args(["--http", "127.0.0.1:0"]);
        if !extra.contains(&"--listen") {
            cmd.args(["--listen", if netns.is_some() { "0.0.0.0:0" } else { "127.0.0.1:0" }]);
        }
        if !extra.contains(&"--mqtt") && !config_sets(data_dir, "mqtt") {
            cmd.args(["--mqtt", "off"]);
        }
        if netns.is_none() && !extra.contains(&"--no-mdns") {
            cmd.arg("--no-mdns");
        }
        // Never a public STUN server, never the machine's real router.
        if !extra.contains(&"--stun") && !config_sets(data_dir, "stun") {
            cmd.args(["--stun", "off"]);
        }
        if !extra.contains(&"--no-portmap") && netns.is_none() {
            cmd.arg("--no-portmap");
        }
        for s in shares {
            cmd.arg("--share").arg(s);
        }
        cmd.args(extra)
            .env_remove("HDP_HTTP")
            .env_remove("HDP_SHARE")
            .env_remove("HDP_TOKEN")
            .env_remove("HDP_MQTT")
            .env_remove("HDP_NO_MDNS")
            .env_remove("HDP_TOPIC")
            .env_remove("HDP_PEER")
            .env_remove("HDP_CONFIG")
            .env_remove("HDP_STUN")
            .env_remove("HDP_NO_PORTMAP")
            .env("RUST_LOG", "info,hdp_node=debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file));
        let mut child = cmd.spawn().expect("spawn hdp");
        let stdout = child.stdout.take().expect("piped stdout");
        // One line at a time from the child's stdout; bounded so a chatty child
        // blocks rather than growing memory.
        let (tx, rx) = mpsc::sync_channel::<String>(64);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let mut seen = Vec::new();
        let mut quic = None;
        let login_url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if line.contains("(QUIC)") {
                        quic = line.split_whitespace().find_map(|w| w.parse::<SocketAddr>().ok());
                    }
                    if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) {
                        break url.to_owned();
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
                    panic!("hdp start printed no web UI link; stdout: {seen:?}\nlog:\n{log_text}");
                }
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        let rest = login_url.trim_start_matches("http://");
        let (host, fragment) = rest.split_once("/#token=").expect("login url has a token fragment");
        Node {
            child: Some(child),
            data_dir: data_dir.to_owned(),
            http: host.parse().expect("login url host is an address"),
            quic: quic.expect("the banner names the QUIC address before the web UI link"),
            token: fragment.to_owned(),
            login_url,
            log,
            netns: netns.map(str::to_owned),
            hdp: hdp.clone(),
            _tmp: None,
        }
    }

    /// Runs `hdp ARGS --http ADDR --data-dir DIR`.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.hdp
            .command(self.netns.as_deref())
            .args(args)
            .arg("--http")
            .arg(self.http.to_string())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env_remove("HDP_TOKEN")
            .stdin(Stdio::null())
            .output()
            .expect("run hdp")
    }

    /// Runs a CLI command that must succeed, returning its stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "hdp {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Runs a CLI command with `--json` and parses its output.
    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        let text = self.cli_ok(&a);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("hdp {a:?} printed invalid JSON ({e}): {text}"))
    }

    /// A raw HTTP request with the node's token.
    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> Response {
        let auth = format!("Bearer {}", self.token);
        http(self.http, method, path, &[("Authorization", &auth)], body)
    }

    /// A request with exactly the headers given (plus `Host` naming the
    /// node and `Connection: close`), its response body kept as bytes.
    pub fn raw(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> RawResponse {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", self.http);
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        http_raw(self.http, &head)
    }

    /// `hdp connect` to another node; returns the peer's friendly name.
    pub fn connect(&self, other: &Node) -> String {
        let v = self.cli_json(&["connect", &other.quic.to_string()]);
        v["name"].as_str().expect("connected peer has a name").to_owned()
    }

    /// `GET /api/downloads/{id}` as JSON.
    pub fn download(&self, id: u64) -> serde_json::Value {
        self.api("GET", &format!("/api/downloads/{id}"), None).json()
    }

    /// Polls download `id` until it is done or failed.
    pub fn wait_download(&self, id: u64) -> serde_json::Value {
        self.wait_download_until(id, "the end of the download", |v| v["state"] == "done" || v["state"] == "failed")
    }

    /// Polls download `id` (every 5 ms, at most 300 s) until `cond` holds.
    pub fn wait_download_until(
        &self,
        id: u64,
        what: &str,
        cond: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let v = self.download(id);
            if cond(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "download {id}: waited in vain for {what}: {v}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Polls `GET /api/shares` until no share is scanning.
    pub fn wait_scanned(&self) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let r = self.api("GET", "/api/shares", None);
            assert_eq!(r.status, 200, "{}", r.body);
            let v = r.json();
            let scanning = v.as_array().expect("share list").iter().any(|s| s["scanning"] == true);
            if !scanning {
                return v;
            }
            assert!(Instant::now() < deadline, "scan did not finish: {v}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) {
        let mut child = self.child.take().expect("running");
        signal(child.id(), "TERM");
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                assert!(status.success(), "hdp exited with {status} after SIGTERM\n{}", self.log_text());
                let log = self.log_text();
                assert!(log.contains("stopped"), "no clean-shutdown line in the log:\n{log}");
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("hdp did not exit within {STOP_TIMEOUT:?} of SIGTERM\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Whether `<data_dir>/config.toml` sets `key`.
fn config_sets(data_dir: &Path, key: &str) -> bool {
    let text = std::fs::read_to_string(data_dir.join("config.toml")).unwrap_or_default();
    text.lines().any(|l| l.trim_start().strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('=')))
}

/// Sends a signal with the system's `kill` command.
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().expect("run kill");
    assert!(ok.success(), "kill -{sig} {pid} failed");
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("invalid JSON ({e}): {}", self.body))
    }
}

/// A minimal HTTP/1.1 client (one request per connection), so the tests see
/// exactly what goes over the wire.
pub fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Response {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect to node");
    s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).expect("send request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").expect("response has headers");
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("status code");
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(rest) } else { rest.to_owned() };
    Response { status, headers: head.to_owned(), body }
}

/// An HTTP response with its body as bytes (media is binary).
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("invalid JSON ({e}): {}", self.text()))
    }
}

/// Sends `head` as given (the request line and header lines, each ending in
/// CRLF; the blank line is added) and reads the response until the node
/// closes the connection, so a test controls every header: a foreign
/// `Host`, none at all, `Origin`, cookies. The body is returned as it came
/// (the node sends media with `Content-Length`, not chunked).
pub fn http_raw(addr: SocketAddr, head: &str) -> RawResponse {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect to node");
    s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    s.write_all(format!("{head}\r\n").as_bytes()).expect("send request");
    let mut raw = Vec::new();
    // A body the node aborts ends with a reset, not a clean close: keep what came.
    let _ = s.read_to_end(&mut raw);
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("response has headers");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("status code");
    RawResponse { status, head, body: raw[end + 4..].to_vec() }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Creates `count` files spread over nested directories under `root`;
/// returns their relative paths.
pub fn make_tree(root: &Path, count: usize, per_dir: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let d = i / per_dir;
        let rel = format!("d{:03}/e{:02}/f{i:06}.dat", d / 10, d % 10);
        let p = root.join(&rel);
        if i % per_dir == 0 {
            std::fs::create_dir_all(p.parent().expect("has parent")).expect("mkdir");
        }
        std::fs::write(&p, i.to_string()).expect("write file");
        out.push(rel);
    }
    out
}

/// Every regular file below `root`, as (relative path, contents), sorted.
pub fn read_tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read dir") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).expect("below root").to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&p).expect("read file")));
            }
        }
    }
    out.sort();
    out
}

/// Compares two files in 1 MiB steps (for files too big to read at once).
pub fn same_file(a: &Path, b: &Path) -> bool {
    let (mut fa, mut fb) = (std::fs::File::open(a).expect("open a"), std::fs::File::open(b).expect("open b"));
    if fa.metadata().expect("meta").len() != fb.metadata().expect("meta").len() {
        return false;
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = read_full(&mut fa, &mut ba);
        let m = read_full(&mut fb, &mut bb);
        if n != m || ba[..n] != bb[..m] {
            return false;
        }
        if n == 0 {
            return true;
        }
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buf.len() {
        match f.read(&mut buf[filled..]).expect("read") {
            0 => break,
            n => filled += n,
        }
    }
    filled
}

/// Writes `len` pseudo-random bytes (xorshift from `seed`) to `path`.
pub fn random_file(path: &Path, len: usize, seed: u32) {
    let mut x = seed | 1;
    let mut data = vec![0u8; len];
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    std::fs::write(path, data).expect("write random file");
}

/// Every `.part` file below `root`.
pub fn part_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "part") {
                out.push(p);
            }
        }
    }
    out
}

/// Peak resident memory (`VmHWM`) of a process, in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmHWM in /proc status")
}

/// A small tmpfs mounted for a test (needs root); unmounted when dropped.
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "4m") at `path`; `None` without root.
    pub fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        if !net::can_use_netns() {
            return None;
        }
        std::fs::create_dir_all(path).expect("mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "hdp-test"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs { path: path.to_path_buf() })
    }

    /// Changes the size of the mounted tmpfs.
    pub fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount {} failed", self.path.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
