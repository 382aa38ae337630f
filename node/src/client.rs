//! The `hdp` client commands: talk to a running node over its HTTP API and
//! print the answers, aligned for people or as JSON with `--json`.

use std::io::Write;
use std::time::Duration;

use hdp_proto::api::{
    AddShare, ApiError, ConnectRequest, DownloadInfo, DownloadRequest, DownloadState, EntryKind, FileInfo, FileState,
    FilesPage, FriendInfo, FriendUpdate, Info, JoinTopic, LsPage, PeerInfo, ShareInfo, ShareUpdate, TopicInfo,
};
use hdp_proto::fmt::{format_datetime, format_size, shown};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cli::{
    ClientArgs, Command, ControlArgs, DownloadArgs, DownloadsArgs, FriendsAction, LsArgs, SharesAction, TopicsAction,
};
use crate::config::{ConfigError, data_dir};
use crate::http::auth::{TokenError, load_token};

/// Largest response body the client reads (an `ls` page of 5,000 long paths
/// is well under this).
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// How long one request may take before the client gives up.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the node at {addr}: {reason}. Is `hdp start` running there? (set --http or HDP_HTTP)")]
    Unreachable { addr: String, reason: String },
    #[error("the node at {addr} did not answer within {REQUEST_TIMEOUT:?}")]
    Timeout { addr: String },
    #[error("the node refused the API token: use the node's --data-dir, or pass --token / HDP_TOKEN")]
    Unauthorized,
    #[error("{message}")]
    Api { status: StatusCode, message: String },
    #[error("unexpected answer from the node: {0}")]
    Decode(String),
    #[error("no API token: {0}. Pass the node's --data-dir, or --token")]
    Token(#[from] TokenError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("invalid --http address {0:?}: give HOST:PORT")]
    BadAddress(String),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    #[error("{0}")]
    Usage(String),
}

/// A connection to a node's API.
#[derive(Debug, Clone)]
pub struct Client {
    addr: String,
    token: String,
    http: HyperClient<HttpConnector, Full<Bytes>>,
}

impl Client {
    pub fn new(args: &ClientArgs) -> Result<Self, ClientError> {
        let token = match &args.token {
            Some(t) => t.clone(),
            None => load_token(&data_dir(args.data_dir.as_deref())?, false)?,
        };
        let addr = args.http.trim_start_matches("http://").trim_end_matches('/').to_owned();
        if addr.is_empty() || addr.contains('/') {
            return Err(ClientError::BadAddress(args.http.clone()));
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let http = HyperClient::builder(TokioExecutor::new()).build(connector);
        Ok(Client { addr, token, http })
    }

    /// Sends a request and decodes a JSON answer.
    pub async fn request<T: DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let uri = format!("http://{}{}", self.addr, path_and_query);
        let mut builder = Request::builder()
            .method(method)
            .uri(&uri)
            .header(hyper::header::AUTHORIZATION, format!("Bearer {}", self.token));
        let body = match body {
            Some(b) => {
                builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(serde_json::to_vec(b).map_err(|e| ClientError::Decode(e.to_string()))?))
            }
            None => Full::new(Bytes::new()),
        };
        let req = builder.body(body).map_err(|_| ClientError::BadAddress(self.addr.clone()))?;
        let exchange = async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|e| ClientError::Unreachable { addr: self.addr.clone(), reason: error_chain(&e) })?;
            let status = resp.status();
            let bytes = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| ClientError::Decode(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok::<_, ClientError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| ClientError::Timeout { addr: self.addr.clone() })??;
        if status == StatusCode::UNAUTHORIZED {
            return Err(ClientError::Unauthorized);
        }
        if !status.is_success() {
            let message = serde_json::from_slice::<ApiError>(&bytes)
                .map(|e| e.error)
                .unwrap_or_else(|_| format!("the node answered {status}"));
            return Err(ClientError::Api { status, message });
        }
        // `204 No Content` decodes as JSON `null` (into `()`).
        let bytes = if bytes.is_empty() { Bytes::from_static(b"null") } else { bytes };
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.request(Method::GET, path, None::<&()>).await
    }
}

/// The whole cause chain of an error, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl ClientError {
    /// The reader of our output went away (`hdp ls | head`): not a failure.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, ClientError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// Runs a client command.
fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

pub async fn run(command: Command) -> Result<(), ClientError> {
    let mut out = std::io::stdout().lock();
    match command {
        Command::Start(_) => Err(ClientError::Usage("`start` is not a client command".into())),
        Command::Info(args) => {
            let client = Client::new(&args)?;
            let info: Info = client.get("/api/info").await?;
            if args.json {
                return print_json(&mut out, &info);
            }
            writeln!(out, "name     {}", info.name)?;
            writeln!(out, "id       {}", info.id)?;
            writeln!(out, "version  {}", info.version)?;
            let listen = if info.listen_addrs.is_empty() { "-".into() } else { info.listen_addrs.join(", ") };
            writeln!(out, "listen   {listen}")?;
            let topics = if info.topics.is_empty() { "-".into() } else { info.topics.join(", ") };
            writeln!(out, "topics   {topics}")?;
            let mqtt = match (&info.mqtt.broker, info.mqtt.state) {
                (None, _) => "off".to_owned(),
                (Some(b), hdp_proto::api::MqttState::Error) => {
                    format!("{b}: {} (retrying)", info.mqtt.error.as_deref().unwrap_or("unreachable"))
                }
                (Some(b), state) => format!("{b} ({})", state.as_str()),
            };
            writeln!(out, "mqtt     {mqtt}")?;
            writeln!(out, "mdns     {}", if info.mdns { "on" } else { "off" })?;
            let public = if info.nat.public_addrs.is_empty() { "-".into() } else { info.nat.public_addrs.join(", ") };
            writeln!(out, "public   {public}")?;
            writeln!(out, "nat      {} ({})", info.nat.nat_type.as_str(), info.nat.describe())?;
            writeln!(out, "stun     {}", or_dash(&info.nat.stun))?;
            writeln!(out, "portmap  {}", or_dash(&info.nat.port_mapping))?;
            writeln!(out)?;
            print_shares(&mut out, &info.shares)
        }
        Command::Link(args) => {
            let client = Client::new(&args.client)?;
            let info: Info = client.get("/api/info").await?;
            // A node from before `web_ui` answers where we reached it.
            let web_ui = if info.web_ui.is_empty() { vec![format!("http://{}/", client.addr)] } else { info.web_ui };
            let links: Vec<String> = web_ui.iter().map(|u| crate::node::login_link(u, &client.token)).collect();
            if args.client.json {
                return print_json(&mut out, &serde_json::json!({ "links": links }));
            }
            for link in &links {
                writeln!(out, "{link}")?;
            }
            // A LAN link is what a phone scans; the first link is this machine's own.
            let qr = !args.no_qr && (args.qr || std::io::IsTerminal::is_terminal(&std::io::stdout()));
            match links.get(1).filter(|_| qr) {
                Some(lan) => {
                    if let Ok(code) = crate::http::qr::terminal(lan) {
                        writeln!(out, "Scan this with a phone on the same network:")?;
                        write!(out, "{code}")?;
                    }
                }
                None if args.qr => writeln!(
                    out,
                    "No QR code: the web UI answers on this machine only. Start the node with \
                     --http 0.0.0.0:3030 (or set http in config.toml) to reach it from a phone."
                )?,
                None => {}
            }
            Ok(())
        }
        Command::Shares { action, client: args } => {
            let client = Client::new(&args)?;
            match action.unwrap_or(SharesAction::List) {
                SharesAction::List => {
                    let shares: Vec<ShareInfo> = client.get("/api/shares").await?;
                    if args.json { print_json(&mut out, &shares) } else { print_shares(&mut out, &shares) }
                }
                SharesAction::Add { dir, topics } => {
                    // The node may run in another directory: send an absolute path.
                    let dir = std::path::absolute(&dir)?;
                    let topics = (!topics.is_empty()).then_some(topics);
                    let body = AddShare { path: dir.display().to_string(), topics };
                    let share: ShareInfo = client.request(Method::POST, "/api/shares", Some(&body)).await?;
                    if args.json {
                        return print_json(&mut out, &share);
                    }
                    writeln!(
                        out,
                        "sharing {} as {:?} with {}; indexing in the background",
                        share.path,
                        share.name,
                        audience(&share)
                    )?;
                    Ok(())
                }
                SharesAction::Set { name, topics, all } => {
                    let path = format!("/api/shares/{}", encode_component(&name));
                    let body = ShareUpdate { topics: Some((!all).then_some(topics)) };
                    let share: ShareInfo = client.request(Method::PATCH, &path, Some(&body)).await?;
                    if args.json {
                        return print_json(&mut out, &share);
                    }
                    writeln!(out, "{:?} is now shared with {}", share.name, audience(&share))?;
                    Ok(())
                }
                SharesAction::Rm { name } => {
                    let path = format!("/api/shares/{}", encode_component(&name));
                    let share: ShareInfo = client.request(Method::DELETE, &path, None::<&()>).await?;
                    if args.json {
                        return print_json(&mut out, &share);
                    }
                    writeln!(out, "stopped sharing {:?} ({})", share.name, share.path)?;
                    Ok(())
                }
                SharesAction::Rescan { name } => {
                    let names = match name {
                        Some(n) => vec![n],
                        None => {
                            client.get::<Vec<ShareInfo>>("/api/shares").await?.into_iter().map(|s| s.name).collect()
                        }
                    };
                    let mut done = Vec::new();
                    for n in names {
                        let path = format!("/api/shares/{}/rescan", encode_component(&n));
                        let s: ShareInfo = client.request(Method::POST, &path, None::<&()>).await?;
                        done.push(s);
                    }
                    if args.json {
                        return print_json(&mut out, &done);
                    }
                    for s in done {
                        writeln!(out, "rescanning {:?}", s.name)?;
                    }
                    Ok(())
                }
            }
        }
        Command::Ls(args) => ls(&mut out, args).await,
        Command::Peers(args) => {
            let client = Client::new(&args)?;
            let peers: Vec<PeerInfo> = client.get("/api/peers").await?;
            if args.json { print_json(&mut out, &peers) } else { print_peers(&mut out, &peers) }
        }
        Command::Connect { addr, client: args } => {
            let client = Client::new(&args)?;
            let body = ConnectRequest { addr };
            let peer: PeerInfo = client.request(Method::POST, "/api/connect", Some(&body)).await?;
            if args.json {
                return print_json(&mut out, &peer);
            }
            let name = peer.name.as_deref().unwrap_or("?");
            let id = peer.id.map(|i| i.to_string()).unwrap_or_default();
            writeln!(out, "connected to {name} ({id}) on topics: {}", peer.topics.join(", "))?;
            Ok(())
        }
        Command::Download(args) => download(&mut out, args).await,
        Command::Topics { action, client: args } => {
            let client = Client::new(&args)?;
            let topics: Vec<TopicInfo> = match action.unwrap_or(TopicsAction::List) {
                TopicsAction::List => client.get("/api/topics").await?,
                TopicsAction::Join { name } => {
                    client.request(Method::POST, "/api/topics", Some(&JoinTopic { name })).await?
                }
                TopicsAction::Leave { name } => {
                    let path = format!("/api/topics/{}", encode_component(&name));
                    client.request(Method::DELETE, &path, None::<&()>).await?
                }
            };
            if args.json {
                return print_json(&mut out, &topics);
            }
            if topics.is_empty() {
                writeln!(out, "no topics: `hdp topics join NAME` meets friends who use the same name")?;
            }
            for t in &topics {
                writeln!(out, "{:<30}  {} peer{}", t.name, t.peers, if t.peers == 1 { "" } else { "s" })?;
            }
            Ok(())
        }
        Command::Friends { action, client: args } => {
            let client = Client::new(&args)?;
            let patch = |peer: String, u: FriendUpdate| {
                let path = format!("/api/friends/{}", encode_component(&peer));
                (path, u)
            };
            let changed = match action.unwrap_or(FriendsAction::List) {
                FriendsAction::List => None,
                FriendsAction::Name { peer, nickname } => {
                    Some(patch(peer, FriendUpdate { nickname: Some(nickname), blocked: None }))
                }
                FriendsAction::Block { peer } => {
                    Some(patch(peer, FriendUpdate { nickname: None, blocked: Some(true) }))
                }
                FriendsAction::Unblock { peer } => {
                    Some(patch(peer, FriendUpdate { nickname: None, blocked: Some(false) }))
                }
            };
            if let Some((path, update)) = changed {
                let f: FriendInfo = client.request(Method::PATCH, &path, Some(&update)).await?;
                if args.json {
                    return print_json(&mut out, &f);
                }
                return print_friends(&mut out, std::slice::from_ref(&f));
            }
            let friends: Vec<FriendInfo> = client.get("/api/friends").await?;
            if args.json {
                return print_json(&mut out, &friends);
            }
            if friends.is_empty() {
                writeln!(out, "no friends yet: everyone this node completes a handshake with is remembered here")?;
                return Ok(());
            }
            print_friends(&mut out, &friends)
        }
        Command::Downloads(DownloadsArgs { id: Some(id), client: args }) => {
            let client = Client::new(&args)?;
            let mut cursor = Some(0u64);
            let mut all = Vec::new();
            let tty = !args.json && std::io::IsTerminal::is_terminal(&std::io::stdout());
            while let Some(c) = cursor {
                let page: FilesPage = client.get(&format!("/api/downloads/{id}/files?cursor={c}&limit=1000")).await?;
                if args.json {
                    all.extend(page.files);
                } else {
                    for f in &page.files {
                        writeln!(out, "{}", file_line(f, tty))?;
                    }
                }
                cursor = page.cursor;
            }
            if args.json {
                return print_json(&mut out, &all);
            }
            Ok(())
        }
        Command::Downloads(DownloadsArgs { id: None, client: args }) => {
            let client = Client::new(&args)?;
            let list: Vec<DownloadInfo> = client.get("/api/downloads").await?;
            if args.json {
                return print_json(&mut out, &list);
            }
            if list.is_empty() {
                writeln!(out, "no downloads")?;
            }
            let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
            for d in &list {
                writeln!(out, "{}", download_line(d))?;
                if tty && !d.state.is_finished() {
                    writeln!(out, "      {}", progress_bar(d))?;
                }
            }
            Ok(())
        }
        Command::Pause(a) => control(&mut out, a, "pause").await,
        Command::Resume(a) => control(&mut out, a, "resume").await,
        Command::Cancel(a) => control(&mut out, a, "cancel").await,
        Command::Retry(a) => control(&mut out, a, "retry").await,
        Command::Top(a) => {
            if a.file.is_some() {
                return Err(ClientError::Usage("`top` moves a whole download; leave out --file".into()));
            }
            control(&mut out, a, "top").await
        }
    }
}

/// `hdp pause|resume|cancel|retry|top ID [--file SEQ]`.
async fn control(out: &mut impl Write, a: ControlArgs, action: &str) -> Result<(), ClientError> {
    let client = Client::new(&a.client)?;
    match a.file {
        Some(seq) => {
            let path = format!("/api/downloads/{}/files/{seq}/{action}", a.id);
            let f: FileInfo = client.request(Method::POST, &path, None::<&()>).await?;
            if a.client.json {
                return print_json(out, &f);
            }
            writeln!(out, "{}", file_line(&f, false))?;
        }
        None if action == "cancel" => {
            let () = client.request(Method::POST, &format!("/api/downloads/{}/cancel", a.id), None::<&()>).await?;
            if a.client.json {
                return print_json(out, &serde_json::json!({ "id": a.id, "cancelled": true }));
            }
            writeln!(out, "download {} cancelled; its partial files are deleted", a.id)?;
        }
        None => {
            let d: DownloadInfo =
                client.request(Method::POST, &format!("/api/downloads/{}/{action}", a.id), None::<&()>).await?;
            if a.client.json {
                return print_json(out, &d);
            }
            writeln!(out, "{}", download_line(&d))?;
        }
    }
    Ok(())
}

fn file_line(f: &FileInfo, bar: bool) -> String {
    let mut line = format!(
        "{:>6}  {:<9} {:>10} / {:<10} {}",
        f.seq,
        f.state.as_str(),
        format_size(f.bytes_done),
        format_size(f.size),
        shown(&f.path)
    );
    if bar && f.state == FileState::Active {
        line.push_str(&format!("  {}/s", format_size(f.rate)));
    }
    if let Some(e) = &f.error {
        line.push_str(&format!("  ({})", shown(e)));
    }
    line
}

fn print_friends(out: &mut impl Write, friends: &[FriendInfo]) -> Result<(), ClientError> {
    writeln!(
        out,
        "{:<20}  {:<24}  {:<12}  {:<9}  {:<22}  LAST ADDRESS",
        "NICKNAME", "NAME", "ID", "STATE", "LAST SEEN"
    )?;
    for f in friends {
        let state = if f.blocked {
            "blocked"
        } else if f.connected {
            "connected"
        } else {
            "away"
        };
        let addr = f.addrs.first().map(|a| format!("{} ({})", a.addr, a.path.as_str())).unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "{:<20}  {:<24}  {:<12}  {:<9}  {:<22}  {addr}",
            shown(f.nickname.as_deref().unwrap_or("-")),
            f.name,
            &f.id.to_string()[..12],
            state,
            format_datetime(f.last_seen, 0),
        )?;
    }
    Ok(())
}

fn print_peers(out: &mut impl Write, peers: &[PeerInfo]) -> Result<(), ClientError> {
    if peers.is_empty() {
        writeln!(out, "no peers: `hdp connect HOST:PORT` dials one; friends on your --topic connect on their own")?;
        return Ok(());
    }
    let width = peers.iter().map(|p| p.name.as_deref().unwrap_or("?").len()).max().unwrap_or(4).max(4);
    writeln!(
        out,
        "{:<width$}  {:<12}  {:<9}  {:<9}  {:<8}  {:<21}  TOPICS / ERROR",
        "NAME", "ID", "STATE", "FOUND BY", "PATH", "ADDRESS"
    )?;
    for p in peers {
        let id = p.id.map(|i| i.to_string()[..12].to_owned()).unwrap_or_else(|| "-".into());
        let state = if p.connected { "connected" } else { "retrying" };
        let detail = if p.connected { p.topics.join(", ") } else { p.error.clone().unwrap_or_default() };
        writeln!(
            out,
            "{:<width$}  {:<12}  {:<9}  {:<9}  {:<8}  {:<21}  {detail}",
            p.name.as_deref().unwrap_or("?"),
            id,
            state,
            p.source,
            p.path.map(|k| k.as_str()).unwrap_or("-"),
            p.addr.as_deref().unwrap_or("-")
        )?;
    }
    Ok(())
}

fn download_line(d: &DownloadInfo) -> String {
    let state = d.state.as_str();
    let mut line = format!(
        "{:>4}  {:<7} {:>10} / {:<10} {:>5}/{:<5} files  {}:{}",
        d.id,
        state,
        format_size(d.bytes_done),
        format_size(d.bytes_total),
        d.files_done,
        d.files_total,
        d.peer_name,
        shown(&d.path)
    );
    if let Some(w) = &d.waiting {
        line.push_str(&format!("  [{w}]"));
    }
    if d.listing {
        line.push_str("  [listing]");
    }
    if let Some(e) = &d.error {
        line.push_str(&format!("  ({e})"));
    }
    line
}

/// Splits `PEER/PATH` at the first `/`.
fn split_peer(target: &str) -> (&str, &str) {
    target.split_once('/').unwrap_or((target, ""))
}

/// Whether `name` names a connected peer (friendly name or id prefix).
fn is_peer(peers: &[PeerInfo], name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !name.is_empty()
        && peers.iter().filter(|p| p.connected).any(|p| {
            p.name.as_deref() == Some(name)
                || p.id.is_some_and(|i| lower.len() >= 4 && i.to_string().starts_with(&lower))
        })
}

async fn download(out: &mut impl Write, args: DownloadArgs) -> Result<(), ClientError> {
    let client = Client::new(&args.client)?;
    let (peer, path) = split_peer(&args.target);
    if path.is_empty() {
        return Err(ClientError::Usage("give PEER/SHARE/PATH, e.g. brave-otter/Music/Album".into()));
    }
    let body = DownloadRequest { peer: peer.into(), path: path.into(), paused: args.paused };
    let mut info: DownloadInfo = client.request(Method::POST, "/api/downloads", Some(&body)).await?;
    if !args.wait {
        if args.client.json {
            return print_json(out, &info);
        }
        writeln!(out, "{}", info.id)?;
        return Ok(());
    }
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    loop {
        if tty {
            eprint!("\r\x1b[2K{}", progress_bar(&info));
        }
        if info.state.is_finished() {
            break;
        }
        // Short: `--wait` returns (and scripts time it) within 50 ms of the end.
        tokio::time::sleep(Duration::from_millis(50)).await;
        info = client.get(&format!("/api/downloads/{}", info.id)).await?;
    }
    if tty {
        eprintln!();
    }
    if args.client.json {
        print_json(out, &info)?;
    } else {
        writeln!(out, "{}", download_line(&info))?;
    }
    match info.state {
        DownloadState::Done => Ok(()),
        _ => Err(ClientError::Usage(format!(
            "download {} failed: {}",
            info.id,
            info.error.as_deref().unwrap_or("unknown error")
        ))),
    }
}

fn progress_bar(d: &DownloadInfo) -> String {
    const WIDTH: usize = 30;
    let frac = if d.bytes_total == 0 { 0.0 } else { d.bytes_done as f64 / d.bytes_total as f64 };
    let filled = ((frac.clamp(0.0, 1.0)) * WIDTH as f64) as usize;
    let eta = match d.eta_secs {
        Some(s) if s >= 3600 => format!("  ETA {}h{:02}m", s / 3600, s / 60 % 60),
        Some(s) => format!("  ETA {}m{:02}s", s / 60, s % 60),
        None => String::new(),
    };
    format!(
        "[{}{}] {:>5.1}%  {} / {}  {}/s  {}/{} files{eta}",
        "#".repeat(filled),
        "-".repeat(WIDTH - filled),
        frac * 100.0,
        format_size(d.bytes_done),
        format_size(d.bytes_total),
        format_size(d.rate),
        d.files_done,
        d.files_total
    )
}

/// A JSON write error: an I/O failure (such as a closed pipe) stays one.
fn json_write_error(e: serde_json::Error) -> ClientError {
    if e.is_io() { ClientError::Output(e.into()) } else { ClientError::Decode(e.to_string()) }
}

fn print_json(out: &mut impl Write, v: &impl Serialize) -> Result<(), ClientError> {
    serde_json::to_writer_pretty(&mut *out, v).map_err(json_write_error)?;
    writeln!(out)?;
    Ok(())
}

/// Who sees a share, in words.
fn audience(share: &ShareInfo) -> String {
    match &share.topics {
        None => "the peers of every topic".into(),
        Some(t) if t.is_empty() => "no peer (no topic chosen)".into(),
        Some(t) => format!("the peers of {}", t.join(", ")),
    }
}

fn print_shares(out: &mut impl Write, shares: &[ShareInfo]) -> Result<(), ClientError> {
    if shares.is_empty() {
        writeln!(out, "no shares yet: `hdp shares add DIR` shares a directory")?;
        return Ok(());
    }
    let width = shares.iter().map(|s| s.name.chars().count()).max().unwrap_or(4).max(4);
    let seen = |s: &ShareInfo| match &s.topics {
        None => "all topics".to_owned(),
        Some(t) if t.is_empty() => "nobody".to_owned(),
        Some(t) => t.join(", "),
    };
    let swidth = shares.iter().map(|s| seen(s).chars().count()).max().unwrap_or(7).max(7);
    writeln!(out, "{:<width$}  {:>9}  {:>10}  {:<9}  {:<swidth$}  PATH", "NAME", "FILES", "SIZE", "STATE", "SEEN BY")?;
    for s in shares {
        let state = match (&s.error, s.scanning) {
            (_, true) => "scanning",
            (Some(_), false) => "error",
            (None, false) => "ready",
        };
        writeln!(
            out,
            "{:<width$}  {:>9}  {:>10}  {:<9}  {:<swidth$}  {}",
            s.name,
            s.files,
            format_size(s.size),
            state,
            seen(s),
            s.path
        )?;
        if let Some(e) = &s.error {
            writeln!(out, "{:<width$}  error: {e}", "")?;
        }
    }
    Ok(())
}

/// Streams every page of a listing: memory holds one page at a time.
async fn ls(out: &mut impl Write, args: LsArgs) -> Result<(), ClientError> {
    let client = Client::new(&args.client)?;
    // `PEER/PATH` when the first component names a connected peer.
    let (head, rest) = split_peer(&args.path);
    let remote = if head.is_empty() {
        None
    } else {
        let peers: Vec<PeerInfo> = client.get("/api/peers").await?;
        is_peer(&peers, head).then(|| (head.to_owned(), rest.to_owned()))
    };
    let mut cursor: Option<String> = None;
    let mut first = true;
    if args.client.json {
        write!(out, "[")?;
    }
    loop {
        let mut q = match &remote {
            Some((peer, path)) => format!("/api/ls?peer={}&path={}", encode_component(peer), encode_component(path)),
            None => format!("/api/ls?path={}", encode_component(&args.path)),
        };
        if args.recursive {
            q.push_str("&recursive=true");
        }
        if let Some(s) = &args.search {
            q.push_str(&format!("&search={}", encode_component(s)));
        }
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={}", encode_component(c)));
        }
        let page: LsPage = client.get(&q).await?;
        for e in &page.entries {
            if args.client.json {
                if !first {
                    write!(out, ",")?;
                }
                write!(out, "\n  ")?;
                serde_json::to_writer(&mut *out, e).map_err(|e| ClientError::Decode(e.to_string()))?;
            } else {
                let (mark, size) = match e.kind {
                    EntryKind::Dir => ("d", format_size(e.size)),
                    EntryKind::File => ("-", format_size(e.size)),
                };
                let name = shown(if args.recursive || args.search.is_some() { &e.path } else { &e.name });
                let slash = if e.kind == EntryKind::Dir { "/" } else { "" };
                writeln!(out, "{mark} {size:>10}  {}  {name}{slash}", format_datetime(e.mtime, 0))?;
            }
            first = false;
        }
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    if args.client.json {
        writeln!(out, "{}]", if first { "" } else { "\n" })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_encoding() {
        assert_eq!(encode_component("a b/ü&=#"), "a%20b%2F%C3%BC%26%3D%23");
        assert_eq!(encode_component("Az09-_.~"), "Az09-_.~");
    }
}
