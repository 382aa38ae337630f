//! Node configuration: CLI flags, then `HDP_*` environment variables (both via
//! clap), then `<data-dir>/config.toml`, then built-in defaults. Settings the
//! web UI saved come between the variables and the file; they are applied
//! once the index is open ([`crate::http::settings`]), to the settings no flag pinned.
//!
//! The file is `<data-dir>/config.toml` unless `--config FILE` (`HDP_CONFIG`)
//! names another, which must then exist (the packages use
//! `/etc/harddrive-party/config.toml`).
//!
//! ```toml
//! # <data-dir>/config.toml — every key optional
//! http = "0.0.0.0:3030"
//! shares = ["/srv/music", "videos"]   # relative paths are relative to the data dir
//! download_dir = "/srv/downloads"
//! listen = "0.0.0.0:4433"
//! topics = ["our-band"]
//! peers = ["friend.example.org:4433"]
//! upload_slots = 4
//! max_upload_rate = "2M"              # all uploads together; "off" for none
//! max_download_rate = "4M"            # all downloads together; "off" for none
//! max_peers = 128                     # peers connected at once
//! handshake_rate = 20                 # connection attempts per source address per second
//! stream_budget = 2048                # request streams of all peers together
//! threads = 1                         # async worker threads (QUIC, peers, web UI)
//! mqtt = "mqtts://broker.hivemq.com:8883"   # or "off"
//! mdns = true
//! stun = ["stun.example.org:3478", "198.51.100.7:3478"]   # or ["off"]
//! portmap = true                      # ask the router for a port mapping (NAT-PMP)
//! http_hosts = ["nas.example.org"]   # names the web UI may be opened under, besides IPs, localhost, *.local
//! timezone = "Europe/Paris"           # for the schedule; default: TZ, /etc/localtime, /etc/TZ, else UTC
//!
//! # Other limits at chosen hours; the first rule that covers the moment
//! # wins, outside every rule max_upload_rate / max_download_rate apply.
//! [[schedule]]
//! days = "weekdays"                   # or ["mon", "sat"], "weekends", "daily"
//! from = "08:00"
//! to = "23:00"                        # earlier than from: runs past midnight
//! max_upload_rate = "1M"              # left out: the usual limit; "off": none
//! max_download_rate = "4M"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cli::{DEFAULT_HTTP, StartArgs};
use crate::discovery::mqtt::{Broker, BrokerUrlError, DEFAULT_BROKER, parse_broker};

pub const CONFIG_FILE: &str = "config.toml";

/// The configuration a node runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub http: SocketAddr,
    /// Directories to make sure are shared at start (added if new).
    pub shares: Vec<PathBuf>,
    pub download_dir: PathBuf,
    /// UDP address of the QUIC endpoint; port 0 means "the port used last time, else any".
    pub listen: SocketAddr,
    pub topics: Vec<String>,
    /// `HOST:PORT` of peers to dial.
    pub peers: Vec<String>,
    pub upload_slots: usize,
    /// Peers connected at once at most.
    pub max_peers: usize,
    /// Connection attempts per source address per second.
    pub handshake_rate: u32,
    /// Request streams all peers together may have open.
    pub stream_budget: u32,
    /// Bytes per second all uploads together may send; `None`: unlimited.
    pub max_upload_rate: Option<u64>,
    /// Bytes per second all downloads together may receive; `None`: unlimited.
    pub max_download_rate: Option<u64>,
    /// Files downloading at once, in all.
    pub download_slots: usize,
    /// Files downloading at once from one peer.
    pub peer_download_slots: usize,
    /// Async worker threads of the node's runtime.
    pub threads: usize,
    /// The MQTT broker, `None` when off.
    pub mqtt: Option<Broker>,
    pub mdns: bool,
    /// STUN servers (`HOST:PORT`); empty when off.
    pub stun: Vec<String>,
    /// Ask the home router for a port mapping.
    pub portmap: bool,
    /// Host names the HTTP server answers to besides IP addresses,
    /// `localhost` and `*.local` (`--http-host`; see [`crate::http::guard`]).
    pub http_hosts: Vec<String>,
    /// The bandwidth schedule ([`hdp_proto::schedule`]), checked.
    pub schedule: Vec<hdp_proto::schedule::RateRule>,
    /// The time zone the schedule runs in (a zoneinfo name, a file or a
    /// POSIX TZ string); `None`: the system's.
    pub timezone: Option<String>,
    /// Settings given by a flag or `HDP_*` variable, named as in
    /// `hdp_proto::api::Settings`: saved UI settings do not override them,
    /// and the UI cannot change them for this run.
    pub pinned: Vec<&'static str>,
}

/// Files served at once unless configured: enough to keep a Pi's uplink busy
/// without thrashing its disk.
pub const DEFAULT_UPLOAD_SLOTS: usize = 4;
pub use crate::download::{DEFAULT_DOWNLOAD_SLOTS, DEFAULT_PEER_DOWNLOAD_SLOTS};
pub const DEFAULT_LISTEN: &str = "0.0.0.0:0";
/// Async worker threads unless configured. One: QUIC for every peer, the
/// web UI and the queue share it, and disk, index and hashing work runs on
/// the blocking pool beside it. With two, tasks that hand work to each
/// other (quinn's drivers, a stream's reader) wake the other thread at every
/// step; on a 2-core machine a 1 GiB loopback download ran about 10% faster
/// with one (`scripts/bench-transfer.sh`).
pub const DEFAULT_THREADS: usize = 1;
/// More async worker threads than this help nothing a node does.
pub const MAX_THREADS: usize = 64;

/// The configuration could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("no data dir: set --data-dir or HDP_DATA_DIR (HOME is not set)")]
    NoHome,
    #[error("invalid [[schedule]] rule: {0}")]
    Schedule(#[from] hdp_proto::schedule::RuleError),
    #[error("STUN server {0:?} is not HOST:PORT (or `off`)")]
    Stun(String),
    #[error("invalid topic {name:?}: {reason}")]
    Topic { name: String, reason: hdp_proto::topic::TopicError },
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    #[error("{what} must be at most {max}")]
    TooMany { what: &'static str, max: usize },
    #[error("invalid rate {0:?}: give bytes per second, e.g. 500K, 8M or 1G (K = 1024)")]
    Rate(String),
    #[error("rate {0:?} is too low: peers give up on a read that stalls for a minute; use at least 64K")]
    RateTooLow(String),
    #[error(transparent)]
    Mqtt(#[from] BrokerUrlError),
    #[error("invalid --http-host {0:?}: give a host name such as nas.example.org, without scheme, port or path")]
    HttpHost(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    http: Option<SocketAddr>,
    shares: Option<Vec<PathBuf>>,
    download_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    topics: Option<Vec<String>>,
    peers: Option<Vec<String>>,
    upload_slots: Option<usize>,
    max_peers: Option<usize>,
    handshake_rate: Option<u32>,
    stream_budget: Option<u32>,
    max_upload_rate: Option<String>,
    max_download_rate: Option<String>,
    download_slots: Option<usize>,
    peer_download_slots: Option<usize>,
    threads: Option<usize>,
    mqtt: Option<String>,
    mdns: Option<bool>,
    stun: Option<Vec<String>>,
    portmap: Option<bool>,
    http_hosts: Option<Vec<String>>,
    timezone: Option<String>,
    schedule: Option<Vec<FileRule>>,
}

/// A `[[schedule]]` table of config.toml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRule {
    days: Option<FileDays>,
    from: String,
    to: String,
    max_upload_rate: Option<String>,
    max_download_rate: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FileDays {
    One(String),
    Many(Vec<String>),
}

impl FileRule {
    /// As the API writes it: a left-out rate stays left out, `off` is 0.
    fn to_rule(&self) -> Result<hdp_proto::schedule::RateRule, ConfigError> {
        let days = match &self.days {
            None => Vec::new(),
            Some(FileDays::One(d)) => hdp_proto::schedule::expand_days(&[d])?,
            Some(FileDays::Many(d)) => hdp_proto::schedule::expand_days(d)?,
        };
        let rate = |r: &Option<String>| r.as_deref().map(parse_rate).transpose().map(|r| r.map(|r| r.unwrap_or(0)));
        let rule = hdp_proto::schedule::RateRule {
            days,
            from: self.from.clone(),
            to: self.to.clone(),
            max_upload_rate: rate(&self.max_upload_rate)?,
            max_download_rate: rate(&self.max_download_rate)?,
        };
        Ok(hdp_proto::schedule::Rule::check(&rule)?.written())
    }
}

/// A rate in bytes per second: `0`/`off` for unlimited, else a number with
/// an optional K, M or G suffix (powers of 1024).
pub fn parse_rate(text: &str) -> Result<Option<u64>, ConfigError> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("off") || t == "0" {
        return Ok(None);
    }
    let (digits, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    let n: u64 = digits.trim().parse().map_err(|_| ConfigError::Rate(text.into()))?;
    let rate = n.checked_mul(mult).filter(|r| *r > 0).ok_or_else(|| ConfigError::Rate(text.into()))?;
    if rate < crate::serve::MIN_UPLOAD_RATE {
        return Err(ConfigError::RateTooLow(text.into()));
    }
    Ok(Some(rate))
}

/// `$XDG_DATA_HOME/harddrive-party`, else `~/.local/share/harddrive-party`.
pub fn default_data_dir() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(x).join("harddrive-party"));
    }
    home().map(|h| h.join(".local/share/harddrive-party"))
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// The data dir a command uses: the flag/env value, else the default.
pub fn data_dir(given: Option<&Path>) -> Result<PathBuf, ConfigError> {
    match given {
        Some(d) => Ok(d.to_path_buf()),
        None => default_data_dir().ok_or(ConfigError::NoHome),
    }
}

impl Config {
    /// Merges flags/env (`args`) over `config.toml` over defaults.
    pub fn resolve(args: &StartArgs) -> Result<Config, ConfigError> {
        let data_dir = data_dir(args.data_dir.as_deref())?;
        // A file named with --config must exist; the one in the data dir is optional.
        let (path, required) = match &args.config {
            Some(p) => (p.clone(), true),
            None => (data_dir.join(CONFIG_FILE), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => None,
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        Self::merge(args, data_dir, text.as_deref(), &path)
    }

    /// Merges flags/env (`args`) over the text of a config file (`None`: no
    /// file; `path` names it in errors) over defaults. Touches no disk.
    pub fn merge(args: &StartArgs, data_dir: PathBuf, text: Option<&str>, path: &Path) -> Result<Config, ConfigError> {
        let file = match text {
            Some(text) => toml::from_str::<FileConfig>(text)
                .map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() })?,
            None => FileConfig::default(),
        };
        let http = args
            .http
            .or(file.http)
            .unwrap_or_else(|| DEFAULT_HTTP.parse().expect("DEFAULT_HTTP is a valid socket address"));
        let shares = if args.shares.is_empty() {
            file.shares.unwrap_or_default().into_iter().map(|p| data_dir.join(p)).collect()
        } else {
            args.shares.clone()
        };
        let download_dir = match (&args.download_dir, file.download_dir) {
            (Some(d), _) => d.clone(),
            (None, Some(d)) => data_dir.join(d),
            (None, None) => home().map(|h| h.join("Downloads")).unwrap_or_else(|| data_dir.join("downloads")),
        };
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("DEFAULT_LISTEN is a valid socket address"));
        let raw_topics = if args.topics.is_empty() { file.topics.unwrap_or_default() } else { args.topics.clone() };
        let mut topics = Vec::new();
        for t in raw_topics {
            let name = hdp_proto::topic::validate_topic(&t)
                .map_err(|reason| ConfigError::Topic { name: t.clone(), reason })?
                .to_owned();
            if !topics.contains(&name) {
                topics.push(name);
            }
        }
        let peers = if args.peers.is_empty() { file.peers.unwrap_or_default() } else { args.peers.clone() };
        let upload_slots = args.upload_slots.or(file.upload_slots).unwrap_or(DEFAULT_UPLOAD_SLOTS);
        if upload_slots == 0 {
            return Err(ConfigError::Zero("upload slots"));
        }
        let max_peers = args.max_peers.or(file.max_peers).unwrap_or(crate::peers::MAX_PEERS);
        if max_peers == 0 {
            return Err(ConfigError::Zero("max peers"));
        }
        let handshake_rate =
            args.handshake_rate.or(file.handshake_rate).unwrap_or(crate::peers::DEFAULT_HANDSHAKE_RATE);
        if handshake_rate == 0 {
            return Err(ConfigError::Zero("handshake rate"));
        }
        let stream_budget = args.stream_budget.or(file.stream_budget).unwrap_or(crate::peers::STREAM_BUDGET);
        if stream_budget == 0 {
            return Err(ConfigError::Zero("stream budget"));
        }
        let max_upload_rate = match args.max_upload_rate.as_deref().or(file.max_upload_rate.as_deref()) {
            Some(r) => parse_rate(r)?,
            None => None,
        };
        let max_download_rate = match args.max_download_rate.as_deref().or(file.max_download_rate.as_deref()) {
            Some(r) => parse_rate(r)?,
            None => None,
        };
        let download_slots = args.download_slots.or(file.download_slots).unwrap_or(DEFAULT_DOWNLOAD_SLOTS);
        let peer_download_slots =
            args.peer_download_slots.or(file.peer_download_slots).unwrap_or(DEFAULT_PEER_DOWNLOAD_SLOTS);
        if download_slots == 0 {
            return Err(ConfigError::Zero("download slots"));
        }
        if peer_download_slots == 0 {
            return Err(ConfigError::Zero("per-peer download slots"));
        }
        let threads = args.threads.or(file.threads).unwrap_or(DEFAULT_THREADS);
        if threads == 0 {
            return Err(ConfigError::Zero("threads"));
        }
        if threads > MAX_THREADS {
            return Err(ConfigError::TooMany { what: "threads", max: MAX_THREADS });
        }
        let mqtt = parse_broker(args.mqtt.as_deref().or(file.mqtt.as_deref()).unwrap_or(DEFAULT_BROKER))?;
        let mdns = !args.no_mdns && file.mdns.unwrap_or(true);
        let stun = parse_stun(if args.stun.is_empty() { file.stun.unwrap_or_default() } else { args.stun.clone() })?;
        let portmap = !args.no_portmap && file.portmap.unwrap_or(true);
        let http_hosts =
            if args.http_hosts.is_empty() { file.http_hosts.unwrap_or_default() } else { args.http_hosts.clone() };
        if let Some(bad) = http_hosts.iter().find(|h| !crate::http::guard::valid_host_name(h)) {
            return Err(ConfigError::HttpHost(bad.clone()));
        }
        let schedule =
            file.schedule.unwrap_or_default().iter().map(FileRule::to_rule).collect::<Result<Vec<_>, _>>()?;
        if schedule.len() > hdp_proto::schedule::MAX_RULES {
            return Err(hdp_proto::schedule::RuleError::TooMany.into());
        }
        let timezone = file.timezone.filter(|t| !t.trim().is_empty());
        let pinned = [
            ("download_dir", args.download_dir.is_some()),
            ("upload_slots", args.upload_slots.is_some()),
            ("max_upload_rate", args.max_upload_rate.is_some()),
            ("max_download_rate", args.max_download_rate.is_some()),
            ("download_slots", args.download_slots.is_some()),
            ("peer_download_slots", args.peer_download_slots.is_some()),
            ("mqtt", args.mqtt.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect();
        Ok(Config {
            data_dir,
            http,
            shares,
            download_dir,
            listen,
            topics,
            peers,
            upload_slots,
            max_peers,
            handshake_rate,
            stream_budget,
            max_upload_rate,
            max_download_rate,
            download_slots,
            peer_download_slots,
            threads,
            mqtt,
            mdns,
            stun,
            portmap,
            http_hosts,
            schedule,
            timezone,
            pinned,
        })
    }
}

/// The STUN servers: the defaults when none are given, none for `off`.
fn parse_stun(given: Vec<String>) -> Result<Vec<String>, ConfigError> {
    if given.is_empty() {
        return Ok(crate::net::stun::DEFAULT_STUN.iter().map(|s| (*s).to_owned()).collect());
    }
    if given.iter().any(|s| s.eq_ignore_ascii_case("off")) {
        return Ok(Vec::new());
    }
    for s in &given {
        let ok = s
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0));
        if !ok {
            return Err(ConfigError::Stun(s.clone()));
        }
    }
    Ok(given)
}

/// `hdp start --data-dir DIR` and nothing else, for tests.
#[cfg(test)]
pub(crate) fn test_args(dir: &Path) -> StartArgs {
    StartArgs {
        data_dir: Some(dir.into()),
        config: None,
        shares: vec![],
        http: None,
        download_dir: None,
        listen: None,
        topics: vec![],
        peers: vec![],
        max_peers: None,
        handshake_rate: None,
        stream_budget: None,
        upload_slots: None,
        max_upload_rate: None,
        max_download_rate: None,
        download_slots: None,
        peer_download_slots: None,
        threads: None,
        mqtt: None,
        no_mdns: false,
        stun: vec![],
        no_portmap: false,
        http_hosts: vec![],
        qr: false,
        no_qr: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(dir: &Path) -> StartArgs {
        test_args(dir)
    }

    #[test]
    fn config_flag_names_the_file_and_it_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc.toml");
        std::fs::write(&etc, "download_dir = \"dl\"\nthreads = 2\n").unwrap();
        // The data dir's own file is ignored when --config names another.
        std::fs::write(dir.path().join(CONFIG_FILE), "threads = 3\n").unwrap();
        let mut a = args(dir.path());
        a.config = Some(etc);
        let c = Config::resolve(&a).unwrap();
        assert_eq!(c.threads, 2);
        assert_eq!(c.download_dir, dir.path().join("dl"), "relative paths stay relative to the data dir");
        a.config = Some(dir.path().join("missing.toml"));
        let err = Config::resolve(&a).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    }

    #[test]
    fn file_fills_what_flags_leave_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "http = \"127.0.0.1:4000\"\nshares = [\"music\"]\ndownload_dir = \"/srv/dl\"\n",
        )
        .unwrap();
        let c = Config::resolve(&args(dir.path())).unwrap();
        assert_eq!(c.http, "127.0.0.1:4000".parse().unwrap());
        assert_eq!(c.shares, vec![dir.path().join("music")]);
        assert_eq!(c.download_dir, PathBuf::from("/srv/dl"));

        let mut a = args(dir.path());
        a.http = Some("127.0.0.1:5000".parse().unwrap());
        a.shares = vec!["/x".into()];
        let c = Config::resolve(&a).unwrap();
        assert_eq!(c.http, "127.0.0.1:5000".parse().unwrap());
        assert_eq!(c.shares, vec![PathBuf::from("/x")]);
    }

    #[test]
    fn crowd_limits_default_and_come_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::resolve(&args(dir.path())).unwrap();
        assert_eq!(
            (c.max_peers, c.handshake_rate, c.stream_budget),
            (crate::peers::MAX_PEERS, crate::peers::DEFAULT_HANDSHAKE_RATE, crate::peers::STREAM_BUDGET)
        );
        let text = "max_peers = 8\nhandshake_rate = 3\nstream_budget = 512\n";
        let c = Config::merge(&args(dir.path()), dir.path().into(), Some(text), Path::new("c.toml")).unwrap();
        assert_eq!((c.max_peers, c.handshake_rate, c.stream_budget), (8, 3, 512));
        let zero = Config::merge(&args(dir.path()), dir.path().into(), Some("max_peers = 0"), Path::new("c.toml"));
        assert!(matches!(zero, Err(ConfigError::Zero(_))));
    }

    #[test]
    fn threads_default_to_one_and_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Config::resolve(&args(dir.path())).unwrap().threads, 1);
        std::fs::write(dir.path().join(CONFIG_FILE), "threads = 3\n").unwrap();
        assert_eq!(Config::resolve(&args(dir.path())).unwrap().threads, 3);
        let mut a = args(dir.path());
        a.threads = Some(2);
        assert_eq!(Config::resolve(&a).unwrap().threads, 2);
        a.threads = Some(0);
        assert_eq!(Config::resolve(&a).unwrap_err().to_string(), "threads must be at least 1");
        a.threads = Some(MAX_THREADS + 1);
        assert_eq!(Config::resolve(&a).unwrap_err().to_string(), "threads must be at most 64");
    }

    #[test]
    fn http_hosts_from_flags_or_file_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), "http_hosts = [\"nas.example.org\"]\n").unwrap();
        assert_eq!(Config::resolve(&args(dir.path())).unwrap().http_hosts, ["nas.example.org"]);
        let mut a = args(dir.path());
        a.http_hosts = vec!["pi".into(), "pi.lan".into()];
        assert_eq!(Config::resolve(&a).unwrap().http_hosts, ["pi", "pi.lan"]);
        a.http_hosts = vec!["http://pi:3030".into()];
        let err = Config::resolve(&a).unwrap_err().to_string();
        assert!(err.contains("--http-host") && err.contains("http://pi:3030"), "{err}");
    }

    #[test]
    fn a_schedule_comes_from_the_file_checked_and_spelled_out() {
        let dir = tempfile::tempdir().unwrap();
        let text = "timezone = \"Europe/Paris\"\n\
            [[schedule]]\ndays = \"weekdays\"\nfrom = \"8:00\"\nto = \"23:00\"\n\
            max_upload_rate = \"1M\"\nmax_download_rate = \"4M\"\n\
            [[schedule]]\ndays = [\"Sat\", \"sunday\"]\nfrom = \"00:00\"\nto = \"00:00\"\nmax_upload_rate = \"off\"\n";
        let merge = |text: &str| Config::merge(&args(dir.path()), dir.path().into(), Some(text), Path::new("c.toml"));
        let c = merge(text).unwrap();
        assert_eq!(c.timezone.as_deref(), Some("Europe/Paris"));
        assert_eq!(c.schedule.len(), 2);
        let (week, weekend) = (&c.schedule[0], &c.schedule[1]);
        assert_eq!((week.days.len(), week.from.as_str(), week.max_upload_rate), (5, "08:00", Some(1 << 20)));
        assert_eq!(week.max_download_rate, Some(4 << 20));
        assert_eq!(
            (weekend.days.clone(), weekend.max_upload_rate, weekend.max_download_rate),
            (vec!["sat".to_owned(), "sun".to_owned()], Some(0), None)
        );
        for bad in [
            "[[schedule]]\nfrom = \"25:00\"\nto = \"01:00\"\n",
            "[[schedule]]\ndays = \"someday\"\nfrom = \"01:00\"\nto = \"02:00\"\n",
            "[[schedule]]\nfrom = \"01:00\"\nto = \"02:00\"\nmax_upload_rate = \"1\"\n",
            "[[schedule]]\nfrom = \"01:00\"\n",
        ] {
            assert!(merge(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_keys_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), "htp = \"x\"\n").unwrap();
        let err = Config::resolve(&args(dir.path())).unwrap_err().to_string();
        assert!(err.contains("config.toml") && err.contains("htp"), "{err}");
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("8M").unwrap(), Some(8 << 20));
        assert_eq!(parse_rate("500k").unwrap(), Some(500 << 10));
        assert_eq!(parse_rate("65536").unwrap(), Some(65536));
        assert!(matches!(parse_rate("1234"), Err(ConfigError::RateTooLow(_))));
        assert_eq!(parse_rate("off").unwrap(), None);
        assert_eq!(parse_rate("0").unwrap(), None);
        for bad in ["", "M", "-1", "1.5M", "99999999999G", "8 MB"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
