//! JSON bodies of the node's HTTP API.
//!
//! Every route lives under `/api/` and needs `Authorization: Bearer <token>`.
//! Errors are always an [`ApiError`] body with a matching status code.
//!
//! | route | request | response |
//! |---|---|---|
//! | `GET /api/info` | | [`Info`] |
//! | `GET /api/shares` | | `[`[`ShareInfo`]`]` |
//! | `POST /api/shares` | [`AddShare`] | [`ShareInfo`] (201; the scan runs in the background) |
//! | `DELETE /api/shares/{name}` (or `DELETE /api/shares?name=`) | | [`ShareInfo`] of the removed share |
//! | `POST /api/shares/{name}/rescan` | | [`ShareInfo`] (202) |
//! | `GET /api/ls` | [`LsQuery`] as query string | [`LsPage`] |
//! | `GET /api/settings` | | [`Settings`] |
//! | `PUT /api/settings` | [`SettingsUpdate`] | [`Settings`] |
//! | `GET /api/uploads` | | [`UploadsInfo`] |
//! | `GET /api/fs?path=&hidden=` | | [`FsListing`] (`path` absent: the home dir) |
//! | `GET /api/contact` | | [`Contact`] |
//! | `POST /api/media-session` | | 204 and the [`MEDIA_COOKIE`] cookie |
//! | `GET /media/…` | `Range` header | the file's bytes (see [`media_url_own`]) |
//!
//! README.md lists every route, including peers, topics, downloads and events.

use serde::{Deserialize, Serialize};

use crate::id::PeerId;

/// Most entries one `ls` page holds when the client asks for no limit.
pub const LS_DEFAULT_LIMIT: u32 = 500;
/// Most entries one `ls` page may hold, whatever the client asks for.
pub const LS_MAX_LIMIT: u32 = 5_000;

/// `GET /api/info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Info {
    /// Our peer id (the ed25519 public key, base32).
    pub id: PeerId,
    /// Display-only friendly name derived from `id`.
    pub name: String,
    pub version: String,
    pub shares: Vec<ShareInfo>,
    /// QUIC addresses peers can dial (empty until the peer protocol runs).
    #[serde(default)]
    pub listen_addrs: Vec<String>,
    /// Topics we are a member of.
    #[serde(default)]
    pub topics: Vec<String>,
    /// The MQTT broker we meet peers through, and how that is going.
    #[serde(default)]
    pub mqtt: MqttStatus,
    /// Whether we advertise and look for peers with mDNS on the LAN.
    #[serde(default)]
    pub mdns: bool,
    /// Where the web UI answers, without the login token: on this machine
    /// first, then on each LAN address when the node listens on all of them.
    #[serde(default)]
    pub web_ui: Vec<String>,
    /// What we know of our router: public addresses, NAT type, port mapping.
    #[serde(default)]
    pub nat: NatInfo,
}

/// How the node is reachable from outside its home network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatInfo {
    /// Our addresses as the internet sees them: the router's port mapping
    /// first, then what STUN servers reported.
    #[serde(default)]
    pub public_addrs: Vec<String>,
    /// `unknown`, `none` (no NAT), `endpoint_independent` or `symmetric`.
    pub nat_type: crate::nat::NatKind,
    /// The router port mapping (NAT-PMP): `off`, `asking`, `mapped ADDR by
    /// GATEWAY (NAT-PMP)` or `none: REASON`.
    #[serde(default)]
    pub port_mapping: String,
    /// STUN: `off`, `asking`, `N of M servers answered` or `no answer`.
    #[serde(default)]
    pub stun: String,
}

impl Default for NatInfo {
    fn default() -> Self {
        NatInfo {
            public_addrs: Vec::new(),
            nat_type: crate::nat::NatKind::Unknown,
            port_mapping: String::new(),
            stun: String::new(),
        }
    }
}

impl NatInfo {
    /// One sentence for people: what the router allows.
    pub fn describe(&self) -> &'static str {
        use crate::nat::NatKind;
        if self.port_mapping.starts_with("mapped") && !self.port_mapping.contains("not a public") {
            return "Your router opened a port for us: friends anywhere can connect to you directly.";
        }
        match self.nat_type {
            NatKind::None => "This node is directly on the internet: friends anywhere can connect to you.",
            NatKind::EndpointIndependent => {
                "Your router allows direct connections: friends behind other routers can reach you."
            }
            NatKind::Symmetric => {
                "Your router is strict: friends behind an ordinary router can still reach you, \
                 but friends behind a strict router too cannot reach you directly."
            }
            NatKind::Unknown if self.stun == "off" => "Public address checks are off (--stun off).",
            NatKind::Unknown => "Still finding out how your router treats connections from outside.",
        }
    }
}

/// How a connection reached its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathKind {
    /// Over the local network.
    Lan,
    /// Straight to the peer's address over the internet (no punching).
    Direct,
    /// Through a port the peer's router mapped for it.
    Mapped,
    /// Through holes both sides punched in their routers.
    Punched,
    /// Through a birthday punch past a strict (symmetric) router.
    Birthday,
}

impl PathKind {
    /// The name in the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            PathKind::Lan => "lan",
            PathKind::Direct => "direct",
            PathKind::Mapped => "mapped",
            PathKind::Punched => "punched",
            PathKind::Birthday => "birthday",
        }
    }

    /// Words for people.
    pub fn describe(self) -> &'static str {
        match self {
            PathKind::Lan => "on your local network",
            PathKind::Direct => "directly over the internet",
            PathKind::Mapped => "through a port a router opened for us",
            PathKind::Punched => "directly, through both routers (hole punching)",
            PathKind::Birthday => "directly, past a strict router (birthday punching)",
        }
    }
}

/// State of the connection to the MQTT broker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MqttState {
    /// MQTT is disabled (`--mqtt off`).
    #[default]
    Off,
    Connecting,
    Connected,
    /// The last attempt failed; the node retries with backoff.
    Error,
}

impl MqttState {
    /// The name used in JSON (`off`, `connecting`, `connected`, `error`).
    pub fn as_str(self) -> &'static str {
        match self {
            MqttState::Off => "off",
            MqttState::Connecting => "connecting",
            MqttState::Connected => "connected",
            MqttState::Error => "error",
        }
    }
}

/// What `GET /api/info` says about MQTT.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MqttStatus {
    /// The broker URL, `None` when MQTT is off.
    pub broker: Option<String>,
    pub state: MqttState,
    /// Why the last connection attempt failed, in words.
    pub error: Option<String>,
}

/// One shared directory and the state of its index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareInfo {
    /// The share's name: the first component of every path inside it.
    pub name: String,
    /// The directory on this node's disk.
    pub path: String,
    /// A scan is running now; `files`, `dirs` and `size` are still growing.
    pub scanning: bool,
    /// Files indexed so far.
    pub files: u64,
    /// Directories indexed so far (not counting the share itself).
    pub dirs: u64,
    /// Total bytes of the indexed files.
    pub size: u64,
    /// When the last complete scan finished (Unix seconds).
    pub last_scan: Option<i64>,
    /// How long the last complete scan took, in milliseconds.
    pub last_scan_ms: Option<u64>,
    /// Why the last scan failed, if it did.
    pub error: Option<String>,
    /// The topics whose peers see this share; `None` (the default): every
    /// topic we are on. An empty list hides the share from every peer.
    #[serde(default)]
    pub topics: Option<Vec<String>>,
}

/// `POST /api/shares`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddShare {
    /// A directory on the node's disk.
    pub path: String,
    /// Only peers of these topics see the share; absent or `null`: every
    /// topic. Adding a directory already shared sets its topics when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<Vec<String>>,
}

/// `PATCH /api/shares/{name}`: fields left out are unchanged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShareUpdate {
    /// `["family"]`: only peers of those topics see the share; `null`: every
    /// topic; absent: unchanged.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub topics: Option<Option<Vec<String>>>,
}

/// A field that is present (even as `null`) is `Some`: tells "set to null"
/// from "left out" in a PATCH body.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// File or directory.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Full share path, starting with the share name.
    pub path: String,
    /// Last component of `path`.
    pub name: String,
    pub kind: EntryKind,
    /// Bytes; for a directory, the total of every file below it.
    pub size: u64,
    /// Modification time, Unix seconds (rounded down).
    pub mtime: i64,
    /// Modification time, Unix nanoseconds: the value `read` and `hash`
    /// carry for the same file.
    #[serde(default)]
    pub mtime_ns: i64,
    /// For a directory: how many files and directories lie below it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<u64>,
}

/// `GET /api/ls` query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LsQuery {
    /// Directory to list; empty or absent lists the shares.
    #[serde(default)]
    pub path: Option<String>,
    /// Everything below `path`, not just its children.
    #[serde(default)]
    pub recursive: bool,
    /// Case-insensitive substring that entry names must contain. Searching is
    /// always recursive.
    #[serde(default)]
    pub search: Option<String>,
    /// Continue after the page that returned this cursor.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Page size, at most [`LS_MAX_LIMIT`].
    #[serde(default)]
    pub limit: Option<u32>,
}

/// One page of a listing. Children of a directory come sorted by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LsPage {
    pub entries: Vec<Entry>,
    /// Pass back as `cursor` for the next page; `None` when the listing is complete.
    pub cursor: Option<String>,
}

/// How we are linked to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// We dialed it.
    Out,
    /// It dialed us.
    In,
}

/// A node we have completed a handshake with (`GET /api/friends`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FriendInfo {
    pub id: PeerId,
    /// Display-only name derived from `id`.
    pub name: String,
    /// The name our user gave it, if any.
    #[serde(default)]
    pub nickname: Option<String>,
    /// First and last completed handshake (Unix seconds).
    pub first_seen: i64,
    pub last_seen: i64,
    /// Topics it proved, the last time.
    #[serde(default)]
    pub topics: Vec<String>,
    /// Where it was reached, most recent first.
    #[serde(default)]
    pub addrs: Vec<FriendAddr>,
    /// Refused right after TLS, never dialed, its announcements ignored.
    #[serde(default)]
    pub blocked: bool,
    pub connected: bool,
}

/// An address a friend was reached at, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FriendAddr {
    pub addr: String,
    pub path: PathKind,
    /// When (Unix seconds).
    pub seen: i64,
}

/// `PATCH /api/friends/{peer}`: what to change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FriendUpdate {
    /// A new nickname; `""` removes it. At most [`MAX_NICKNAME_LEN`] bytes.
    #[serde(default)]
    pub nickname: Option<String>,
    #[serde(default)]
    pub blocked: Option<bool>,
}

/// Longest nickname, in bytes.
pub const MAX_NICKNAME_LEN: usize = 64;

/// A peer: connected, or an address we keep dialing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Its peer id, once a handshake told us.
    pub id: Option<PeerId>,
    /// Display-only name derived from `id`.
    pub name: Option<String>,
    /// The address we reach it at (or it came from).
    pub addr: Option<String>,
    pub connected: bool,
    pub direction: Option<Direction>,
    /// Connected since (Unix seconds).
    pub since: Option<i64>,
    /// Topics we share with it.
    #[serde(default)]
    pub topics: Vec<String>,
    /// Round-trip time, milliseconds.
    pub rtt_ms: Option<u64>,
    /// How the connection reached the peer (connected peers).
    #[serde(default)]
    pub path: Option<PathKind>,
    /// How we know it: `manual` (`--peer`, `hdp connect`), `mqtt`, `mdns`
    /// (found on a topic; `mqtt+mdns` when both), or `incoming`.
    pub source: String,
    /// Why the last attempt to reach it failed, in words.
    pub error: Option<String>,
    /// Bytes per second we receive from it now (connected peers).
    #[serde(default)]
    pub rx_rate: u64,
    /// Bytes per second we send to it now.
    #[serde(default)]
    pub tx_rate: u64,
    /// Bytes received from and sent to it over this connection.
    #[serde(default)]
    pub rx_bytes: u64,
    #[serde(default)]
    pub tx_bytes: u64,
}

/// A topic we are a member of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicInfo {
    pub name: String,
    /// Connected peers that proved this topic.
    pub peers: u64,
}

/// `POST /api/topics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinTopic {
    pub name: String,
}

/// `POST /api/connect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectRequest {
    /// `HOST:PORT` of the peer's QUIC endpoint, or an `hdp:` contact URI
    /// (see [`crate::contact`]).
    pub addr: String,
}

/// `POST /api/downloads`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DownloadRequest {
    /// Friendly name or unambiguous id prefix of a connected peer.
    pub peer: String,
    /// Share path of a file or directory on that peer.
    pub path: String,
    /// Queue it paused: the listing runs, no file moves until resumed.
    #[serde(default)]
    pub paused: bool,
}

/// Where a download request is. Persisted states are `queued`, `paused`,
/// `done` and `failed`; `active` means at least one of its files is
/// transferring now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DownloadState {
    Queued,
    Active,
    Paused,
    Done,
    Failed,
}

impl DownloadState {
    pub fn as_str(self) -> &'static str {
        match self {
            DownloadState::Queued => "queued",
            DownloadState::Active => "active",
            DownloadState::Paused => "paused",
            DownloadState::Done => "done",
            DownloadState::Failed => "failed",
        }
    }

    /// Done or failed: nothing more happens without a retry.
    pub fn is_finished(self) -> bool {
        matches!(self, DownloadState::Done | DownloadState::Failed)
    }
}

/// Where one file of a download request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileState {
    Queued,
    Active,
    Paused,
    Done,
    Failed,
    Cancelled,
}

impl FileState {
    pub fn as_str(self) -> &'static str {
        match self {
            FileState::Queued => "queued",
            FileState::Active => "active",
            FileState::Paused => "paused",
            FileState::Done => "done",
            FileState::Failed => "failed",
            FileState::Cancelled => "cancelled",
        }
    }
}

/// One file of a download request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileInfo {
    /// Position in its request, for `/api/downloads/{id}/files/{seq}/…`.
    pub seq: u64,
    /// Remote share path.
    pub path: String,
    /// Where it lands (or landed) on this node.
    pub local_path: String,
    pub state: FileState,
    pub size: u64,
    /// Bytes on disk (complete files: `size`).
    pub bytes_done: u64,
    /// Bytes per second while active.
    pub rate: u64,
    /// Why it failed, or the last error it is retrying after.
    pub error: Option<String>,
    /// Failed attempts so far.
    pub attempts: u32,
}

/// A page of `GET /api/downloads/{id}/files`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilesPage {
    pub files: Vec<FileInfo>,
    /// Pass as `?cursor=` for the next page; `None` at the end.
    pub cursor: Option<u64>,
}

/// A download request and its progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DownloadInfo {
    pub id: u64,
    pub peer: PeerId,
    pub peer_name: String,
    /// Remote share path.
    pub path: String,
    /// Where it lands on this node.
    pub local_path: String,
    pub state: DownloadState,
    pub files_done: u64,
    /// Files found so far (grows while a directory is being listed).
    pub files_total: u64,
    /// Files that ended in `failed`.
    #[serde(default)]
    pub files_failed: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// Bytes per second, recent average.
    pub rate: u64,
    /// Seconds left at the current rate, when it is moving and the listing is complete.
    #[serde(default)]
    pub eta_secs: Option<u64>,
    /// Whether the remote directory is still being listed.
    #[serde(default)]
    pub listing: bool,
    /// Why nothing moves now, e.g. "waiting for the peer to reconnect".
    #[serde(default)]
    pub waiting: Option<String>,
    /// The file being transferred now (the first of `active`).
    pub current: Option<String>,
    /// Files transferring now, with their progress.
    #[serde(default)]
    pub active: Vec<FileInfo>,
    /// Why it failed, or the last transient error it is retrying after.
    pub error: Option<String>,
}

/// What `GET /api/events` sends about downloads (boxed: the broadcast
/// buffer holds many of them).
#[derive(Debug, Clone, PartialEq)]
pub enum DownloadEvent {
    /// `event: download`, data: a [`DownloadInfo`].
    Update(Box<DownloadInfo>),
    /// `event: download_removed`, data: `{"id": N}`: cancelled or forgotten.
    Removed { id: u64 },
}

/// `GET /api/settings`, and the answer to `PUT /api/settings`: what the
/// node runs with now. Changes from the UI are saved in the node's data dir
/// and win over `config.toml` on the next start; a command-line flag or
/// `HDP_*` variable wins over both (see `pinned`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Where downloads land (new downloads; running ones keep their place).
    pub download_dir: String,
    /// Files served to peers at once.
    pub upload_slots: u32,
    /// Bytes per second all uploads together may send; `None`: unlimited.
    pub max_upload_rate: Option<u64>,
    /// Bytes per second all downloads together may receive; `None`: unlimited.
    #[serde(default)]
    pub max_download_rate: Option<u64>,
    /// Files downloading at once, in all.
    pub download_slots: u32,
    /// Files downloading at once from one peer.
    pub peer_download_slots: u32,
    /// The MQTT broker URL; `None` when MQTT is off.
    pub mqtt: Option<String>,
    /// Settings fixed for this run by a command-line flag or `HDP_*`
    /// variable (names as in this struct); the UI cannot change them.
    #[serde(default)]
    pub pinned: Vec<String>,
    /// Saved settings that take effect only after the node restarts.
    #[serde(default)]
    pub restart_needed: Vec<String>,
    /// Other limits at chosen hours ([`crate::schedule`]); outside every
    /// rule, `max_upload_rate` and `max_download_rate` apply.
    #[serde(default)]
    pub schedule: Vec<crate::schedule::RateRule>,
    /// The limits in force now, and why.
    #[serde(default)]
    pub limits_now: LimitsNow,
}

/// The upload and download limits in force now: the usual ones, or those
/// of the schedule's rule that covers the node's local time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LimitsNow {
    /// Bytes per second; `None`: unlimited.
    pub max_upload_rate: Option<u64>,
    /// Bytes per second; `None`: unlimited.
    pub max_download_rate: Option<u64>,
    /// Index in `schedule` of the rule in force; `None`: the usual limits.
    pub rule: Option<u32>,
    /// The node's local time as the schedule sees it, e.g. `mon 08:05`.
    pub local_time: String,
    /// Where that local time comes from (the `timezone` setting, `TZ`,
    /// `/etc/localtime`, `/etc/TZ`, or `UTC` when none is found).
    pub timezone: String,
}

/// `PUT /api/settings`: the settings to change; absent ones stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SettingsUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_slots: Option<u32>,
    /// Bytes per second; `0` means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_upload_rate: Option<u64>,
    /// Bytes per second; `0` means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_download_rate: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_slots: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_download_slots: Option<u32>,
    /// A broker URL (`mqtt://` or `mqtts://`), or `"off"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<String>,
    /// The whole bandwidth schedule (replaces the one in force; `[]`: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Vec<crate::schedule::RateRule>>,
}

/// A file a peer is reading from us (`GET /api/uploads`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadInfo {
    pub peer: PeerId,
    pub peer_name: String,
    /// Share path of the file.
    pub path: String,
    /// Size of the whole file.
    pub size: u64,
    /// Where the read began, and how many bytes it asked for.
    pub offset: u64,
    pub length: u64,
    /// Bytes sent so far.
    pub sent: u64,
    /// Bytes per second, recent average (0 once finished).
    pub rate: u64,
    /// When the read began (Unix seconds).
    pub started: i64,
    /// `None` while sending; `Some(true)` sent in full, `Some(false)` ended early.
    pub finished: Option<bool>,
}

/// `GET /api/uploads`: reads in progress and the most recent finished ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UploadsInfo {
    /// Active reads first, then recently finished ones, newest first.
    pub uploads: Vec<UploadInfo>,
    /// Bytes per second of all uploads together.
    pub rate: u64,
    /// Reads waiting for an upload slot.
    pub waiting: u32,
    pub slots: u32,
}

/// A directory in the node's own filesystem (`GET /api/fs?path=`), for
/// choosing what to share. Only directories are listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FsListing {
    /// The listed directory, absolute and canonical.
    pub path: String,
    /// Its parent, `None` at `/`.
    pub parent: Option<String>,
    /// The home directory of the user the node runs as (where picking starts).
    pub home: Option<String>,
    /// Sub-directories, sorted by name; hidden ones only with `?hidden=true`.
    pub dirs: Vec<FsDir>,
    /// More sub-directories exist than [`FS_MAX_DIRS`].
    pub truncated: bool,
}

/// Most sub-directories one `GET /api/fs` answer holds.
pub const FS_MAX_DIRS: usize = 2_000;

/// One sub-directory in an [`FsListing`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FsDir {
    pub name: String,
    pub path: String,
    /// Whether it is already shared (it or a directory above it).
    #[serde(default)]
    pub shared: bool,
}

/// `GET /api/contact`: what a friend needs to reach this node, as text and
/// as a QR code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    /// An `hdp:` URI (see [`crate::contact`]); `hdp connect` and
    /// `POST /api/connect` accept it.
    pub uri: String,
    /// The same URI as an SVG QR code (a complete `<svg>` element).
    pub qr_svg: String,
}

/// `POST /api/media-session` sets this cookie (HttpOnly, SameSite=Strict,
/// `Path=/media`) so `<audio>`, `<video>` and `<img>` elements, which cannot
/// send an `Authorization` header, may read `/media/*`. Its value is derived
/// from the API token and grants nothing else.
pub const MEDIA_COOKIE: &str = "hdp_media";

/// Where a browser plays or opens a file, with HTTP range requests:
/// `/media/own/{share path}` (our shares), `/media/peer/{peer}/{share path}`
/// (streamed from a connected peer), `/media/download/{id}/{seq}` (a
/// finished download). Path segments are percent-encoded by `encode`.
pub fn media_url_own(path: &str, encode: impl Fn(&str) -> String) -> String {
    format!("/media/own/{}", encode_path(path, &encode))
}

/// See [`media_url_own`].
pub fn media_url_peer(peer: &str, path: &str, encode: impl Fn(&str) -> String) -> String {
    format!("/media/peer/{}/{}", encode(peer), encode_path(path, &encode))
}

/// See [`media_url_own`].
pub fn media_url_download(id: u64, seq: u64) -> String {
    format!("/media/download/{id}/{seq}")
}

fn encode_path(path: &str, encode: &impl Fn(&str) -> String) -> String {
    path.split('/').map(encode).collect::<Vec<_>>().join("/")
}

/// What kind of media a file name suggests, for choosing a player.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Image,
    Audio,
    Video,
    Text,
}

impl MediaKind {
    /// By extension, case-insensitively; `None` for anything a browser
    /// should not show inline.
    pub fn of(name: &str) -> Option<MediaKind> {
        let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
        Some(match ext.as_str() {
            "jpg" | "jpeg" | "png" | "gif" | "webp" | "avif" | "bmp" => MediaKind::Image,
            "mp3" | "ogg" | "oga" | "opus" | "flac" | "wav" | "m4a" | "aac" => MediaKind::Audio,
            "mp4" | "m4v" | "webm" | "ogv" | "mov" => MediaKind::Video,
            "txt" | "md" | "log" | "nfo" | "srt" | "vtt" => MediaKind::Text,
            _ => return None,
        })
    }

    /// The `Content-Type` the node sends for this extension.
    pub fn content_type(name: &str) -> &'static str {
        let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
        match ext.as_str() {
            "jpg" | "jpeg" => "image/jpeg",
            "png" => "image/png",
            "gif" => "image/gif",
            "webp" => "image/webp",
            "avif" => "image/avif",
            "bmp" => "image/bmp",
            "mp3" => "audio/mpeg",
            "ogg" | "oga" => "audio/ogg",
            "opus" => "audio/opus",
            "flac" => "audio/flac",
            "wav" => "audio/wav",
            "m4a" => "audio/mp4",
            "aac" => "audio/aac",
            "mp4" | "m4v" => "video/mp4",
            "webm" => "video/webm",
            "ogv" => "video/ogg",
            "mov" => "video/quicktime",
            "vtt" => "text/vtt",
            "txt" | "md" | "log" | "nfo" | "srt" => "text/plain; charset=utf-8",
            _ => "application/octet-stream",
        }
    }
}

/// What `GET /api/events` sends besides single download changes: a fresh
/// snapshot when it changes, checked about once a second. `event: peers`
/// carries `[`[`PeerInfo`]`]`, `event: shares` `[`[`ShareInfo`]`]`, `event:
/// uploads` an [`UploadsInfo`], `event: topics` `[`[`TopicInfo`]`]`. Each is
/// sent once when the stream opens, so a client needs no separate first
/// fetch. `event: downloads` (`[`[`DownloadInfo`]`]`, every request) comes
/// when the stream opens and again right after each `lagged`; `download`
/// and `download_removed` events that follow it are newer.
pub const EVENT_NAMES: [&str; 8] =
    ["download", "download_removed", "lagged", "downloads", "peers", "shares", "uploads", "topics"];

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    /// What went wrong and, where it helps, what to do.
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_state_names_match_json() {
        use DownloadState as D;
        for s in [D::Queued, D::Active, D::Paused, D::Done, D::Failed] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        use FileState as F;
        for s in [F::Queued, F::Active, F::Paused, F::Done, F::Failed, F::Cancelled] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn mqtt_state_names_match_json() {
        for s in [MqttState::Off, MqttState::Connecting, MqttState::Connected, MqttState::Error] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn entry_json_shape() {
        let e = Entry {
            path: "music/a.flac".into(),
            name: "a.flac".into(),
            kind: EntryKind::File,
            size: 3,
            mtime: 1_700_000_000,
            mtime_ns: 1_700_000_000_123_456_789,
            entries: None,
        };
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            json,
            r#"{"path":"music/a.flac","name":"a.flac","kind":"file","size":3,"mtime":1700000000,"mtime_ns":1700000000123456789}"#
        );
        assert_eq!(serde_json::from_str::<Entry>(&json).unwrap(), e);
    }

    #[test]
    fn ls_query_defaults() {
        let q: LsQuery = serde_json::from_str("{}").unwrap();
        assert_eq!(q, LsQuery::default());
    }

    #[test]
    fn a_share_update_tells_null_from_left_out() {
        let left_out: ShareUpdate = serde_json::from_str("{}").unwrap();
        assert_eq!(left_out.topics, None);
        let all: ShareUpdate = serde_json::from_str(r#"{"topics":null}"#).unwrap();
        assert_eq!(all.topics, Some(None));
        let some: ShareUpdate = serde_json::from_str(r#"{"topics":["family"]}"#).unwrap();
        assert_eq!(some.topics, Some(Some(vec!["family".to_owned()])));
        assert_eq!(serde_json::to_string(&all).unwrap(), r#"{"topics":null}"#);
        // A share listed by an older node has no topics field: every topic.
        let old = r#"{"name":"m","path":"/m","scanning":false,"files":0,"dirs":0,"size":0,
            "last_scan":null,"last_scan_ms":null,"error":null}"#;
        assert_eq!(serde_json::from_str::<ShareInfo>(old).unwrap().topics, None);
    }
}
