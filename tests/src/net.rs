//! Real network pieces for discovery tests: a mosquitto broker on loopback, a
//! raw MQTT subscriber that records everything, and network namespaces joined
//! by a bridge. Each cleans up when dropped.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Finds a program in `PATH` or the sbin directories (Debian installs
/// mosquitto in /usr/sbin, which is not on every user's PATH).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

/// A mosquitto broker on 127.0.0.1 and a free port, with a generated config.
pub struct Mosquitto {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut m = Mosquitto { child: None, port: free_tcp_port(), dir };
        m.spawn();
        m
    }

    fn spawn(&mut self) {
        let bin = find_program("mosquitto").expect("mosquitto is not installed: run scripts/setup.sh --test");
        let conf = self.dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n",
                self.port
            ),
        )
        .expect("write mosquitto.conf");
        let log = std::fs::File::create(self.dir.path().join("mosquitto.log")).expect("log");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not listen on {addr}: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// Stops the broker (clients see the connection drop).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `mosquitto_sub` on `#`, writing `topic hexpayload` lines to a file.
pub struct Recorder {
    child: Child,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Recorder {
    pub fn start(broker: &Mosquitto) -> Recorder {
        let bin = find_program("mosquitto_sub").expect("mosquitto_sub is not installed: run scripts/setup.sh --test");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("recorded.txt");
        let out = std::fs::File::create(&path).expect("record file");
        let child = Command::new(bin)
            .args(["-h", "127.0.0.1", "-p", &broker.port.to_string(), "-t", "#", "-F", "%t %x"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mosquitto_sub");
        // Give it a moment to subscribe before the nodes start publishing.
        std::thread::sleep(Duration::from_millis(300));
        Recorder { child, path, _dir: dir }
    }

    /// Everything recorded so far.
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap_or_default()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether this process may create network namespaces.
pub fn can_use_netns() -> bool {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    root && find_program("ip").is_some()
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Hosts on one LAN: a namespace per host, each with `eth0` on a bridge
/// that lives in a namespace of its own, so nothing touches the machine's
/// real interfaces. Deleted (with their interfaces) when dropped.
pub struct Lan {
    prefix: String,
    /// Third octet of the hosts' addresses, unique per `Lan` in this process.
    subnet: u32,
    hosts: Vec<String>,
}

impl Lan {
    /// Creates `n` hosts, host `i` at `10.77.<subnet>.<i+1>/24`.
    pub fn new(n: usize) -> Lan {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let seq = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let prefix = format!("hdp{}x{seq}", std::process::id());
        let mut lan = Lan { prefix: prefix.clone(), subnet: seq % 250, hosts: Vec::new() };
        let br = format!("{prefix}br");
        ip(&["netns", "add", &br]);
        lan.hosts.push(br.clone());
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &br, "link", "set", "br0", "up"]);
        for i in 0..n {
            let host = format!("{prefix}h{i}");
            ip(&["netns", "add", &host]);
            lan.hosts.push(host.clone());
            let port = format!("p{i}");
            ip(&["-n", &br, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &host]);
            ip(&["-n", &br, "link", "set", &port, "master", "br0", "up"]);
            ip(&["-n", &host, "addr", "add", &format!("{}/24", lan.addr(i)), "dev", "eth0"]);
            ip(&["-n", &host, "link", "set", "eth0", "up"]);
            ip(&["-n", &host, "link", "set", "lo", "up"]);
        }
        lan
    }

    /// The namespace of host `i`.
    pub fn host(&self, i: usize) -> String {
        format!("{}h{i}", self.prefix)
    }

    /// Host `i`'s address.
    pub fn addr(&self, i: usize) -> String {
        format!("10.77.{}.{}", self.subnet, i + 1)
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for h in self.hosts.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", h]).output();
        }
    }
}

/// A NAT lab (`tests/natlab/natlab.sh`): an "internet" namespace with a
/// mosquitto broker (203.0.113.1:1883) and a STUN server on two addresses
/// (203.0.113.2 and .3, port 3478), and one home per NAT kind, each a
/// router namespace doing NAT in front of a host namespace. Torn down
/// (every namespace and process) when dropped.
pub struct NatLab {
    name: String,
}

/// Where the lab script lives.
pub fn natlab_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("natlab/natlab.sh")
}

impl NatLab {
    /// Builds lab `name` (≤ 4 characters) with one home per kind (`cone`,
    /// `restricted`, `symmetric`, `upnp`). `Err` says why it cannot run
    /// here (not root, a tool missing); a broken lab panics.
    pub fn up(name: &str, kinds: &[&str]) -> Result<NatLab, String> {
        let out = Command::new("bash")
            .arg(natlab_script())
            .args(["up", name])
            .args(kinds)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run the NAT lab script: {e}"))?;
        let lab = NatLab { name: name.to_owned() };
        match out.status.code() {
            Some(0) => Ok(lab),
            Some(2) => Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
            _ => panic!(
                "natlab up {name} {kinds:?} failed:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }

    /// The namespace of home `i`'s host (1-based).
    pub fn host(&self, i: usize) -> String {
        format!("hdp-{}-h{i}", self.name)
    }

    /// Runs a lab subcommand (`flush`, `renat`, `stun`, `pkts`, …) for this lab.
    pub fn run(&self, cmd: &str, args: &[&str]) -> String {
        let out = Command::new("bash")
            .arg(natlab_script())
            .args([cmd, &self.name])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run the NAT lab script");
        assert!(out.status.success(), "natlab {cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Packets host `i` has sent so far.
    pub fn packets(&self, i: usize) -> u64 {
        self.run("pkts", &[&i.to_string()]).trim().parse().expect("a packet count")
    }
}

impl Drop for NatLab {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(natlab_script()).args(["down", &self.name]).stdin(Stdio::null()).output();
    }
}
