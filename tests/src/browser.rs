//! A small Chrome DevTools Protocol (CDP) driver for the end-to-end tests: it starts a real headless Chromium and
//! drives one page of the web UI the way a person on a phone would: navigate, tap, type, wait, look.
//!
//! ```no_run
//! # use std::time::Duration;
//! # use hdp_e2e::browser::Browser;
//! let b = Browser::launch();
//! b.set_viewport(360, 740, 2.0, true);
//! b.goto("http://127.0.0.1:3030/#token=...");
//! b.wait_for("document.querySelector('#node-name')?.innerText", Duration::from_secs(20), "the node's name");
//! b.fill("#add-share-path", "/tmp/music");
//! b.click("#add-share-form button[type=submit]");
//! b.screenshot("shares.png");
//! assert!(b.console_errors().is_empty(), "{:?}", b.console_errors());
//! ```
//!
//! # Transport
//!
//! Chromium is started with `--remote-debugging-pipe`: it reads CDP requests from fd 3 and writes replies and events
//! to fd 4, each message a JSON object followed by a NUL byte. That needs no websocket crate, opens no DevTools port
//! that another process could reach, and needs no parsing of a "DevTools listening on ..." banner. A `pre_exec` hook
//! puts the pipe ends at fds 3 and 4 in the child; it and the `kill(2)` of Chromium's process group are the only
//! `unsafe` code here (allowed item by item, as the workspace denies `unsafe_code`).
//!
//! Three threads move the bytes: the caller's; a writer thread that owns the request pipe, fed through a bounded
//! queue; and a reader thread that splits the stream on NUL, hands each reply to the one caller waiting for its `id`,
//! keeps the last [`CONSOLE_CAPACITY`] console messages, uncaught exceptions and log entries for diagnostics, and
//! answers JavaScript dialogs (`confirm()` and the like block the page until answered; see
//! [`Browser::set_accept_dialogs`] and [`Browser::dialogs`]).
//!
//! # Limits and timeouts
//!
//! - A message from Chromium over [`MAX_MESSAGE_BYTES`] (64 MiB; screenshots are the big ones) ends the session.
//! - Every command waits at most [`COMMAND_TIMEOUT`] for its reply; [`Browser::goto`] and [`Browser::reload`] wait
//!   at most [`LOAD_TIMEOUT`] for the page to load; [`Browser::click`], [`Browser::fill`], [`Browser::type_text`] and
//!   [`Browser::text`] wait at most [`ELEMENT_TIMEOUT`] for their element; [`Browser::wait_for`] takes its own.
//! - Conditions are polled every [`POLL_INTERVAL`]; nothing here sleeps for a fixed time and hopes.
//! - On failure the helpers panic with what they waited for, the last value seen, the page URL and the recent
//!   console errors (and the end of Chromium's output if it died); [`Browser::command`], [`Browser::try_eval`] and
//!   [`Browser::try_wait_for`] return a [`CdpError`] instead.
//! - Dropping the [`Browser`] sends `Browser.close`, waits at most [`CLOSE_GRACE`], then kills Chromium's whole
//!   process group and removes its temporary profile directory.
//!
//! # What it does not do
//!
//! - Only loopback is reachable: every other host name or address is mapped to `127.0.0.1:9` (connection refused),
//!   so neither a page nor Chromium's own background services can reach the network or send a DNS query.
//! - One page (tab) per [`Browser`]; popups from `window.open` are not followed. Launch another [`Browser`] for a
//!   second user; each has its own profile, so nothing (local storage, cookies) is shared.
//! - Clicks are `element.click()` from JavaScript after scrolling the element into view: a `click` event without
//!   pointer events or hit-testing, so an overlay covering the button does not stop them.
//!
//! Chromium is `$HDP_CHROMIUM`, else Debian's `/usr/bin/chromium` (a shell wrapper that adds a few flags of its
//! own; `HDP_CHROMIUM=/usr/lib/chromium/chromium` skips it).

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufRead, BufReader, PipeReader, PipeWriter, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// Largest message accepted from Chromium. A full-page PNG screenshot of a tall page, base64-encoded, is the
/// biggest thing it sends; anything larger is treated as a broken stream and ends the session.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;
/// Longest any single CDP command waits for its reply.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest [`Browser::goto`] and [`Browser::reload`] wait for `document.readyState == 'complete'`.
pub const LOAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest [`Browser::click`], [`Browser::fill`], [`Browser::type_text`] and [`Browser::text`] wait for their element.
pub const ELEMENT_TIMEOUT: Duration = Duration::from_secs(15);
/// How often [`Browser::wait_for`] re-evaluates its condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Least time one evaluation of a [`Browser::wait_for`] condition is given, even when the wait is nearly over.
const MIN_POLL_EVAL_TIMEOUT: Duration = Duration::from_millis(250);
/// How long Drop lets Chromium close by itself before it kills the process group.
pub const CLOSE_GRACE: Duration = Duration::from_secs(3);
/// How many console messages, exceptions and log entries are kept (oldest dropped first).
pub const CONSOLE_CAPACITY: usize = 500;
/// How many JavaScript dialogs (`alert`, `confirm`, ...) are remembered for [`Browser::dialogs`].
pub const DIALOG_CAPACITY: usize = 100;
/// Longest text kept for one console entry, in bytes; longer ones are cut.
const MAX_ENTRY_BYTES: usize = 4096;
/// Requests queued for the writer thread. Callers wait for each reply before sending the next, so the queue holds
/// at most one request per calling thread; 64 leaves room for a test that drives one page from a few threads.
const OUTBOX_CAPACITY: usize = 64;
/// How much of the end of Chromium's stderr is read for an error about Chromium dying.
const LOG_TAIL_BYTES: u64 = 32 * 1024;
/// How many of those lines (D-Bus noise left out) go into the error.
pub const LOG_TAIL_LINES: usize = 15;
/// Longest Drop waits for each pipe thread to finish once Chromium is gone.
const THREAD_JOIN_GRACE: Duration = Duration::from_secs(2);
/// Timeout for the best-effort look at the page (URL) that goes into a failure message.
const DIAGNOSTIC_TIMEOUT: Duration = Duration::from_secs(2);
/// Console errors shown in a failure message.
const DIAGNOSTIC_ERRORS: usize = 20;

/// Flags for every launch (plus `--user-data-dir` and the first URL). Besides headless operation, they keep
/// Chromium from talking to anything but the pages the test opens: no updates, sync, translation or first-run pings.
const CHROMIUM_FLAGS: &[&str] = &[
    "--remote-debugging-pipe",
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-breakpad",
    "--no-pings",
    "--disable-features=Translate,MediaRouter,OptimizationHints",
    "--autoplay-policy=no-user-gesture-required",
    // Same locale (Intl formatting, Accept-Language) on every machine, whatever $LANG says.
    "--lang=en-US",
    // Every host but loopback goes to 127.0.0.1:9 (discard, nothing listens): a page or a background service asking
    // for any other host or address gets "connection refused" without a DNS query leaving the machine. (Mapping to
    // ~NOTFOUND instead would make Chromium's error page probe public DNS servers.)
    "--host-resolver-rules=MAP * 127.0.0.1:9 , EXCLUDE localhost , EXCLUDE 127.* , EXCLUDE ::1",
];

/// What went wrong talking to Chromium.
#[derive(Debug, thiserror::Error)]
pub enum CdpError {
    #[error("cannot set up Chromium's profile dir, log file or pipes: {0}")]
    Setup(#[source] io::Error),
    #[error("cannot start Chromium {bin}: {source} (set HDP_CHROMIUM to a Chromium binary)")]
    Spawn { bin: PathBuf, source: io::Error },
    #[error("lost Chromium ({why}) while waiting for the reply to {method}; end of its output:\n{log_tail}")]
    Closed { method: String, why: String, log_tail: String },
    #[error("no reply to {method} within {timeout:?}")]
    Timeout { method: String, timeout: Duration },
    #[error("{method} failed: {message} (CDP error {code})")]
    Protocol { method: String, code: i64, message: String },
    #[error("unexpected reply to {method}: {reply}")]
    BadReply { method: String, reply: String },
    #[error("JavaScript threw: {0}")]
    Js(String),
    #[error("the condition was still false after {timeout:?}; last result: {last}")]
    WaitTimeout { timeout: Duration, last: String },
}

/// A reply as the reader thread hands it over: the `result`, or the `error`'s code and message.
type Reply = Result<Value, (i64, String)>;

/// State shared between the caller and the reader thread.
struct Shared {
    /// Callers waiting for a reply, by request id. Emptied (dropping the senders) when the pipe closes.
    pending: Mutex<HashMap<u64, SyncSender<Reply>>>,
    /// Set, under the `pending` lock, once the reader thread has stopped; `why` says why.
    closed: AtomicBool,
    why: Mutex<String>,
    /// The last [`CONSOLE_CAPACITY`] console messages, exceptions and log entries.
    console: Mutex<VecDeque<ConsoleEntry>>,
    /// Request ids, shared with the reader thread, which answers dialogs by itself.
    next_id: AtomicU64,
    /// Whether `alert`/`confirm`/`prompt`/`beforeunload` dialogs are accepted (OK) or dismissed (Cancel).
    accept_dialogs: AtomicBool,
    /// The last [`DIALOG_CAPACITY`] dialogs, as `type: message`.
    dialogs: Mutex<VecDeque<String>>,
}

struct ConsoleEntry {
    level: String,
    text: String,
}

impl ConsoleEntry {
    fn is_error(&self) -> bool {
        self.level == "error" || self.level == "exception" || self.level == "assert" || self.level == "crash"
    }
}

/// Locks `m`, ignoring poisoning: every critical section here leaves its data consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn record(&self, level: &str, mut text: String) {
        truncate(&mut text);
        let mut console = lock(&self.console);
        if console.len() == CONSOLE_CAPACITY {
            console.pop_front();
        }
        console.push_back(ConsoleEntry { level: level.to_owned(), text });
    }

    fn close(&self, why: String) {
        let mut pending = lock(&self.pending);
        *lock(&self.why) = why;
        self.closed.store(true, Ordering::SeqCst);
        pending.clear();
    }

    /// Routes one message from Chromium: a reply to its waiter, an event to the console store; answers dialogs
    /// through `outbox`, since a dialog blocks the page (and any `Runtime.evaluate` in flight) until it is closed.
    fn dispatch(&self, msg: Value, outbox: &SyncSender<Vec<u8>>) {
        let Value::Object(mut msg) = msg else { return };
        if let Some(id) = msg.get("id").and_then(Value::as_u64) {
            let reply = match msg.remove("error") {
                Some(err) => {
                    let code = err.get("code").and_then(Value::as_i64).unwrap_or(0);
                    let mut message = err.get("message").and_then(Value::as_str).unwrap_or("").to_owned();
                    if let Some(data) = err.get("data").and_then(Value::as_str) {
                        message = format!("{message}: {data}");
                    }
                    Err((code, message))
                }
                None => Ok(msg.remove("result").unwrap_or(Value::Null)),
            };
            // No waiter means the caller already timed out; its late reply is dropped.
            if let Some(waiter) = lock(&self.pending).remove(&id) {
                // Capacity 1 and exactly one reply per id: this cannot be full.
                let _ = waiter.try_send(reply);
            }
            return;
        }
        let Some(method) = msg.get("method").and_then(Value::as_str) else { return };
        let params = msg.get("params").unwrap_or(&Value::Null);
        match method {
            "Runtime.consoleAPICalled" => {
                let level = params.get("type").and_then(Value::as_str).unwrap_or("log");
                let args = params.get("args").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
                let text = args.iter().map(remote_object_text).collect::<Vec<_>>().join(" ");
                self.record(level, text);
            }
            "Runtime.exceptionThrown" => {
                self.record("exception", exception_text(&params["exceptionDetails"]));
            }
            "Log.entryAdded" => {
                let entry = &params["entry"];
                let level = entry.get("level").and_then(Value::as_str).unwrap_or("info");
                let mut text = entry.get("text").and_then(Value::as_str).unwrap_or("").to_owned();
                if let Some(url) = entry.get("url").and_then(Value::as_str) {
                    text = format!("{text} ({url})");
                }
                self.record(level, text);
            }
            "Inspector.targetCrashed" => self.record("crash", "the page's renderer process crashed".to_owned()),
            "Page.javascriptDialogOpening" => {
                let kind = params.get("type").and_then(Value::as_str).unwrap_or("dialog");
                let mut text = format!("{kind}: {}", params.get("message").and_then(Value::as_str).unwrap_or(""));
                truncate(&mut text);
                let accept = self.accept_dialogs.load(Ordering::SeqCst);
                let mut answer = json!({
                    "id": self.next_id.fetch_add(1, Ordering::Relaxed),
                    "method": "Page.handleJavaScriptDialog",
                    "params": { "accept": accept, "promptText": params.get("defaultPrompt").unwrap_or(&json!("")) },
                });
                if let Some(session) = msg.get("sessionId") {
                    answer["sessionId"] = session.clone();
                }
                let mut bytes = answer.to_string().into_bytes();
                bytes.push(0);
                // Never block the reader: if the queue is full the dialog stays open and the page's waits time out,
                // which the recorded entry explains.
                let sent = outbox.try_send(bytes).is_ok();
                let verdict = match (sent, accept) {
                    (false, _) => "left open: the request queue was full",
                    (true, true) => "accepted",
                    (true, false) => "dismissed",
                };
                self.record("dialog", format!("{text} ({verdict})"));
                let mut dialogs = lock(&self.dialogs);
                if dialogs.len() == DIALOG_CAPACITY {
                    dialogs.pop_front();
                }
                dialogs.push_back(text);
            }
            _ => {}
        }
    }
}

/// Cuts `text` to at most [`MAX_ENTRY_BYTES`] (on a character boundary), marking the cut.
fn truncate(text: &mut String) {
    if text.len() > MAX_ENTRY_BYTES {
        let mut cut = MAX_ENTRY_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str(" [...]");
    }
}

/// A console argument as text: strings as they are, other values as JSON, objects by their preview (the first
/// few properties, as DevTools shows them) or else their description.
fn remote_object_text(obj: &Value) -> String {
    if let Some(v) = obj.get("value") {
        return match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
    }
    let subtype = obj.get("subtype").and_then(Value::as_str);
    if let (Some("error" | "node"), Some(description)) = (subtype, obj.get("description").and_then(Value::as_str)) {
        return description.to_owned();
    }
    if let Some(props) = obj.get("preview").and_then(|p| p.get("properties")).and_then(Value::as_array) {
        let is_array = subtype == Some("array");
        let mut parts: Vec<String> = props
            .iter()
            .map(|p| {
                let value = p.get("value").and_then(Value::as_str).unwrap_or("?");
                let value = if p.get("type").and_then(Value::as_str) == Some("string") {
                    js_string(value)
                } else {
                    value.to_owned()
                };
                if is_array {
                    value
                } else {
                    format!("{}: {value}", p.get("name").and_then(Value::as_str).unwrap_or("?"))
                }
            })
            .collect();
        if obj["preview"].get("overflow").and_then(Value::as_bool) == Some(true) {
            parts.push("...".to_owned());
        }
        return if is_array { format!("[{}]", parts.join(", ")) } else { format!("{{{}}}", parts.join(", ")) };
    }
    for key in ["unserializableValue", "description", "type"] {
        if let Some(s) = obj.get(key).and_then(Value::as_str) {
            return s.to_owned();
        }
    }
    obj.to_string()
}

/// The readable part of a CDP `ExceptionDetails`: the exception's description (message and stack) when there is
/// one, else the bare text, with where it was thrown.
fn exception_text(details: &Value) -> String {
    let described = details.get("exception").and_then(|e| e.get("description")).and_then(Value::as_str);
    let thrown_value = details.get("exception").and_then(|e| e.get("value"));
    let mut text = match (described, thrown_value) {
        (Some(d), _) => d.to_owned(),
        (None, Some(v)) => format!("{} {v}", details.get("text").and_then(Value::as_str).unwrap_or("Uncaught")),
        (None, None) => details.get("text").and_then(Value::as_str).unwrap_or("exception").to_owned(),
    };
    if let Some(url) = details.get("url").and_then(Value::as_str).filter(|u| !u.is_empty()) {
        let line = details.get("lineNumber").and_then(Value::as_u64).unwrap_or(0) + 1;
        let col = details.get("columnNumber").and_then(Value::as_u64).unwrap_or(0) + 1;
        text = format!("{text} (at {url}:{line}:{col})");
    }
    text
}

/// Reader thread: splits the stream on NUL, never buffering more than [`MAX_MESSAGE_BYTES`] for one message.
fn read_loop(pipe: PipeReader, shared: Arc<Shared>, outbox: SyncSender<Vec<u8>>) {
    let mut reader = BufReader::with_capacity(64 << 10, pipe);
    let mut buf = Vec::new();
    let why = loop {
        buf.clear();
        if buf.capacity() > 1 << 20 {
            buf = Vec::new(); // don't keep a screenshot-sized buffer around
        }
        let limit = MAX_MESSAGE_BYTES as u64 + 1; // + the NUL
        match reader.by_ref().take(limit).read_until(0, &mut buf) {
            Ok(0) => break "it closed the DevTools pipe".to_owned(),
            Ok(_) => {}
            Err(e) => break format!("reading the DevTools pipe failed: {e}"),
        }
        if buf.pop() != Some(0) {
            if buf.len() >= MAX_MESSAGE_BYTES {
                break format!("it sent a message over the {MAX_MESSAGE_BYTES}-byte limit");
            }
            break "it closed the DevTools pipe in the middle of a message".to_owned();
        }
        match serde_json::from_slice(&buf) {
            Ok(msg) => shared.dispatch(msg, &outbox),
            Err(e) => break format!("it sent a message that is not JSON: {e}"),
        }
    };
    shared.close(why);
}

/// Writer thread: writes queued requests until the queue's sender is dropped or Chromium stops reading.
fn write_loop(mut pipe: PipeWriter, outbox: Receiver<Vec<u8>>) {
    for msg in outbox {
        if pipe.write_all(&msg).is_err() {
            return;
        }
    }
}

/// Makes the child see `read_fd` as fd 3 and `write_fd` as fd 4, as `--remote-debugging-pipe` expects.
#[allow(unsafe_code)]
fn place_pipe_fds(cmd: &mut Command, read_fd: RawFd, write_fd: RawFd) {
    // SAFETY: the hook runs in the forked child before exec. It only calls fcntl, dup2 and close, which are
    // async-signal-safe, on fds that stay open in the parent until spawn returns, and it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            // Copy both ends above 4 first, so that putting one at 3 or 4 cannot close the other when the
            // original happens to be fd 3 or 4. dup2 clears close-on-exec on 3 and 4; the copies are closed.
            let r = libc::fcntl(read_fd, libc::F_DUPFD, 10);
            let w = libc::fcntl(write_fd, libc::F_DUPFD, 10);
            if r < 0 || w < 0 || libc::dup2(r, 3) < 0 || libc::dup2(w, 4) < 0 {
                return Err(io::Error::last_os_error());
            }
            libc::close(r);
            libc::close(w);
            Ok(())
        });
    }
}

/// SIGKILLs every process in process group `pgid` (Chromium and its helpers).
#[allow(unsafe_code)]
fn kill_process_group(pgid: u32) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else { return };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// Whether process `pid` (our unreaped child) has exited, read from /proc without reaping it, so that its pid —
/// also its process group's id — cannot be reused before the group is killed.
fn has_exited(pid: u32) -> bool {
    /// /proc/PID/stat is one line of a few hundred bytes.
    const MAX_STAT_BYTES: u64 = 4096;
    let mut stat = String::new();
    let read = File::open(format!("/proc/{pid}/stat")).and_then(|f| f.take(MAX_STAT_BYTES).read_to_string(&mut stat));
    if read.is_err() {
        return true;
    }
    // The state is the first field after the command name, which is in parentheses and may contain spaces.
    let state = stat.rfind(')').and_then(|i| stat[i + 1..].trim_start().chars().next());
    matches!(state, Some('Z' | 'X') | None)
}

/// Waits at most `grace` for `handle`'s thread to end; a thread still blocked after that is left detached.
fn join_within(handle: Option<JoinHandle<()>>, grace: Duration) {
    let Some(handle) = handle else { return };
    let deadline = Instant::now() + grace;
    while !handle.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    if handle.is_finished() {
        let _ = handle.join();
    }
}

/// The Chromium binary: `$HDP_CHROMIUM`, else Debian's `/usr/bin/chromium`.
pub fn chromium_bin() -> PathBuf {
    std::env::var_os("HDP_CHROMIUM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// A headless Chromium driving one page. See the module docs.
pub struct Browser {
    child: Child,
    shared: Arc<Shared>,
    /// Requests for the writer thread; `None` once Drop has started shutting down.
    outbox: Option<SyncSender<Vec<u8>>>,
    /// The flattened CDP session of the page target all page commands go to.
    session_id: String,
    reader: Option<JoinHandle<()>>,
    writer: Option<JoinHandle<()>>,
    log_path: PathBuf,
    /// Holds the profile dir and Chromium's log; removed by Drop once Chromium is dead.
    dir: Option<tempfile::TempDir>,
}

impl Browser {
    /// Starts headless Chromium with a fresh profile and opens a blank page, panicking with the reason (and the end
    /// of Chromium's stderr) when it cannot.
    pub fn launch() -> Browser {
        Browser::try_launch()
            .unwrap_or_else(|e| panic!("launching headless Chromium ({}): {e}", chromium_bin().display()))
    }

    /// [`Browser::launch`], returning the error instead of panicking.
    pub fn try_launch() -> Result<Browser, CdpError> {
        let bin = chromium_bin();
        let dir = tempfile::Builder::new().prefix("hdp-chromium-").tempdir().map_err(CdpError::Setup)?;
        let log_path = dir.path().join("chromium.log");
        let log = File::create(&log_path).map_err(CdpError::Setup)?;
        let log2 = log.try_clone().map_err(CdpError::Setup)?;
        let (to_chromium_r, to_chromium_w) = io::pipe().map_err(CdpError::Setup)?;
        let (from_chromium_r, from_chromium_w) = io::pipe().map_err(CdpError::Setup)?;

        let mut user_data_dir = OsString::from("--user-data-dir=");
        user_data_dir.push(dir.path().join("profile"));
        let mut cmd = Command::new(&bin);
        cmd.args(CHROMIUM_FLAGS)
            .arg(user_data_dir)
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            // Its own process group, so Drop can kill the renderers and other helpers along with it.
            .process_group(0);
        place_pipe_fds(&mut cmd, to_chromium_r.as_raw_fd(), from_chromium_w.as_raw_fd());
        let child = cmd.spawn().map_err(|source| CdpError::Spawn { bin: bin.clone(), source })?;
        // Close our copies of Chromium's ends, so the reader sees EOF when Chromium exits.
        drop(cmd);
        drop(to_chromium_r);
        drop(from_chromium_w);

        let shared = Arc::new(Shared {
            pending: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            why: Mutex::new(String::new()),
            console: Mutex::new(VecDeque::with_capacity(CONSOLE_CAPACITY)),
            next_id: AtomicU64::new(1),
            accept_dialogs: AtomicBool::new(true),
            dialogs: Mutex::new(VecDeque::new()),
        });
        let (outbox, outbox_rx) = mpsc::sync_channel(OUTBOX_CAPACITY);
        let (reader_shared, reader_outbox) = (Arc::clone(&shared), outbox.clone());
        let reader = thread::Builder::new()
            .name("cdp-reader".into())
            .spawn(move || read_loop(from_chromium_r, reader_shared, reader_outbox))
            .map_err(CdpError::Setup);
        let writer =
            thread::Builder::new().name("cdp-writer".into()).spawn(move || write_loop(to_chromium_w, outbox_rx));
        // From here on Drop cleans up whatever fails.
        let mut browser = Browser {
            child,
            shared,
            outbox: Some(outbox),
            session_id: String::new(),
            reader: None,
            writer: None,
            log_path,
            dir: Some(dir),
        };
        browser.reader = Some(reader?);
        browser.writer = Some(writer.map_err(CdpError::Setup)?);
        browser.open_page()?;
        Ok(browser)
    }

    /// Creates the page target, attaches to it with a flattened session and enables the domains the driver uses.
    fn open_page(&mut self) -> Result<(), CdpError> {
        let created = self.send(None, "Target.createTarget", json!({ "url": "about:blank" }), COMMAND_TIMEOUT)?;
        let target_id = reply_str(&created, "targetId", "Target.createTarget")?;
        let attach = json!({ "targetId": target_id, "flatten": true });
        let attached = self.send(None, "Target.attachToTarget", attach, COMMAND_TIMEOUT)?;
        self.session_id = reply_str(&attached, "sessionId", "Target.attachToTarget")?;
        for domain in ["Runtime", "Page", "Log", "Inspector"] {
            self.command(&format!("{domain}.enable"), json!({}))?;
        }
        // A headless window is never focused; pretend it is so focus, blur and :focus behave as on a phone.
        self.command("Emulation.setFocusEmulationEnabled", json!({ "enabled": true }))?;
        Ok(())
    }

    /// Chromium's process id (also its process group's id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a CDP command to the page's session and waits at most [`COMMAND_TIMEOUT`] for its `result`.
    pub fn command(&self, method: &str, params: Value) -> Result<Value, CdpError> {
        self.send(Some(&self.session_id), method, params, COMMAND_TIMEOUT)
    }

    /// Sends a CDP command to the browser itself (no session), e.g. `Browser.getVersion`.
    pub fn browser_command(&self, method: &str, params: Value) -> Result<Value, CdpError> {
        self.send(None, method, params, COMMAND_TIMEOUT)
    }

    fn send(&self, session: Option<&str>, method: &str, params: Value, timeout: Duration) -> Result<Value, CdpError> {
        let deadline = Instant::now() + timeout;
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            msg["sessionId"] = Value::from(session);
        }
        let mut bytes = serde_json::to_vec(&msg).expect("a serde_json::Value always serializes");
        bytes.push(0);

        // Capacity 1: exactly one reply comes for one id.
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        {
            let mut pending = lock(&self.shared.pending);
            if self.shared.closed.load(Ordering::SeqCst) {
                return Err(self.closed_error(method));
            }
            pending.insert(id, reply_tx);
        }
        let forget = || {
            lock(&self.shared.pending).remove(&id);
        };
        let Some(outbox) = &self.outbox else {
            forget();
            return Err(self.closed_error(method));
        };
        loop {
            match outbox.try_send(bytes) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    bytes = back;
                    thread::sleep(Duration::from_millis(5));
                }
                Err(TrySendError::Full(_)) => {
                    forget();
                    return Err(CdpError::Timeout { method: method.to_owned(), timeout });
                }
                Err(TrySendError::Disconnected(_)) => {
                    forget();
                    return Err(self.closed_error(method));
                }
            }
        }
        match reply_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Ok(result)) => Ok(result),
            Ok(Err((code, message))) => Err(CdpError::Protocol { method: method.to_owned(), code, message }),
            Err(RecvTimeoutError::Timeout) => {
                forget();
                Err(CdpError::Timeout { method: method.to_owned(), timeout })
            }
            Err(RecvTimeoutError::Disconnected) => Err(self.closed_error(method)),
        }
    }

    fn closed_error(&self, method: &str) -> CdpError {
        let why = lock(&self.shared.why).clone();
        let why = if why.is_empty() { "the driver is shutting down".to_owned() } else { why };
        CdpError::Closed { method: method.to_owned(), why, log_tail: self.log_tail() }
    }

    /// The last [`LOG_TAIL_LINES`] lines of Chromium's stdout and stderr, leaving out its complaints about having no
    /// D-Bus (there is none in a container or CI, and they drown everything else).
    pub fn log_tail(&self) -> String {
        let read = || -> io::Result<String> {
            let mut f = File::open(&self.log_path)?;
            let len = f.metadata()?.len();
            let start = len.saturating_sub(LOG_TAIL_BYTES);
            f.seek(SeekFrom::Start(start))?;
            let mut bytes = Vec::new();
            f.take(LOG_TAIL_BYTES).read_to_end(&mut bytes)?;
            let text = String::from_utf8_lossy(&bytes);
            // A tail that starts mid-file starts mid-line: skip that partial line.
            let mut lines: Vec<&str> = text.lines().skip(usize::from(start > 0)).collect();
            lines.retain(|l| !l.trim().is_empty() && !l.contains("dbus") && !l.contains("D-Bus"));
            let kept = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            Ok(if kept.is_empty() { "(nothing)".to_owned() } else { kept.join("\n") })
        };
        read().unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log_path.display()))
    }

    /// Emulates a screen of `width` x `height` CSS pixels at `device_scale_factor`; `mobile` also turns on the
    /// mobile viewport (`<meta name="viewport">` is honoured, overlay scrollbars) and touch events.
    pub fn set_viewport(&self, width: u32, height: u32, device_scale_factor: f64, mobile: bool) {
        let metrics = json!({
            "width": width,
            "height": height,
            "deviceScaleFactor": device_scale_factor,
            "mobile": mobile,
        });
        self.command("Emulation.setDeviceMetricsOverride", metrics)
            .unwrap_or_else(|e| panic!("setting a {width}x{height} viewport: {e}"));
        let touch = json!({ "enabled": mobile, "maxTouchPoints": if mobile { 5 } else { 1 } });
        self.command("Emulation.setTouchEmulationEnabled", touch)
            .unwrap_or_else(|e| panic!("turning touch emulation {}: {e}", if mobile { "on" } else { "off" }));
    }

    /// Navigates to `url` and waits at most [`LOAD_TIMEOUT`] for the new document to finish loading. A change of
    /// only the `#fragment` stays in the same document (no reload), as in a real browser.
    pub fn goto(&self, url: &str) {
        // Marks the current document, so the wait below cannot be satisfied by the page being left.
        self.mark_document_stale();
        let nav =
            self.command("Page.navigate", json!({ "url": url })).unwrap_or_else(|e| panic!("navigating to {url}: {e}"));
        if let Some(err) = nav.get("errorText").and_then(Value::as_str).filter(|e| !e.is_empty()) {
            panic!("navigating to {url} failed: {err}{}", self.diagnostics());
        }
        let new_document = nav.get("loaderId").and_then(Value::as_str).is_some();
        self.wait_for_load(new_document, &format!("{url} to load"));
    }

    /// Reloads the page and waits at most [`LOAD_TIMEOUT`] for it to finish loading.
    pub fn reload(&self) {
        self.mark_document_stale();
        self.command("Page.reload", json!({})).unwrap_or_else(|e| panic!("reloading the page: {e}"));
        self.wait_for_load(true, "the page to reload");
    }

    fn mark_document_stale(&self) {
        // Best effort: a page that is already unloading needs no mark, and a dead browser fails the next step.
        let _ = self.try_eval("window.__hdpLeaving = true");
    }

    fn wait_for_load(&self, new_document: bool, what: &str) {
        let condition = if new_document {
            "!window.__hdpLeaving && document.readyState === 'complete'"
        } else {
            "document.readyState === 'complete'"
        };
        self.wait_for(condition, LOAD_TIMEOUT, what);
    }

    /// Evaluates the JavaScript expression `js` in the page (awaiting it if it is a promise) and returns its value
    /// as JSON. `undefined` and unserializable objects come back as `null`; `NaN`, `Infinity`, `-0` and bigints as
    /// strings. Panics if it throws, with the exception's message and stack.
    pub fn eval(&self, js: &str) -> Value {
        self.try_eval(js).unwrap_or_else(|e| panic!("evaluating `{js}`: {e}{}", self.diagnostics()))
    }

    /// [`Browser::eval`], returning the error instead of panicking.
    pub fn try_eval(&self, js: &str) -> Result<Value, CdpError> {
        self.eval_within(js, COMMAND_TIMEOUT)
    }

    fn eval_within(&self, js: &str, timeout: Duration) -> Result<Value, CdpError> {
        let params = json!({
            "expression": js,
            "returnByValue": true,
            "awaitPromise": true,
            // Counts as a user gesture, so media play() and similar activation-gated calls are allowed.
            "userGesture": true,
        });
        let mut reply = self.send(Some(&self.session_id), "Runtime.evaluate", params, timeout)?;
        if let Some(details) = reply.get("exceptionDetails") {
            return Err(CdpError::Js(exception_text(details)));
        }
        let Some(Value::Object(mut result)) = reply.get_mut("result").map(Value::take) else {
            return Err(CdpError::BadReply { method: "Runtime.evaluate".to_owned(), reply: reply.to_string() });
        };
        if let Some(value) = result.remove("value") {
            return Ok(value);
        }
        Ok(result.remove("unserializableValue").unwrap_or(Value::Null))
    }

    /// Polls the JavaScript expression `js_condition` every [`POLL_INTERVAL`] until it is truthy (promises are
    /// awaited), and returns its value. A throwing condition counts as not yet true. After `timeout` it panics,
    /// naming `what` it waited for, the last value or exception, the page URL and the recent console errors.
    pub fn wait_for(&self, js_condition: &str, timeout: Duration, what: &str) -> Value {
        match self.try_wait_for(js_condition, timeout) {
            Ok(value) => value,
            Err(CdpError::WaitTimeout { last, .. }) => panic!(
                "timed out after {timeout:?} waiting for {what}\n  condition: {js_condition}\n  last result: {last}{}",
                self.diagnostics()
            ),
            Err(e) => panic!("while waiting for {what}: {e}\n  condition: {js_condition}{}", self.diagnostics()),
        }
    }

    /// [`Browser::wait_for`], returning [`CdpError::WaitTimeout`] with the last result (or [`CdpError::Closed`] if
    /// Chromium died) instead of panicking.
    pub fn try_wait_for(&self, js_condition: &str, timeout: Duration) -> Result<Value, CdpError> {
        // The newline before `)` lets the condition end in a // comment.
        let probe = format!(
            "(async () => {{ const v = await ({js_condition}\n); let shown; \
             if (typeof v === 'number' && !Number.isFinite(v)) shown = String(v); \
             else if (v instanceof Node) shown = '<' + v.nodeName.toLowerCase() + '>'; \
             else {{ try {{ shown = JSON.parse(JSON.stringify(v) ?? 'null'); }} catch (e) {{ shown = String(v); }} }} \
             return {{ ok: !!v, value: shown }}; }})()"
        );
        let deadline = Instant::now() + timeout;
        let mut last;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.eval_within(&probe, left.clamp(MIN_POLL_EVAL_TIMEOUT, COMMAND_TIMEOUT)) {
                Ok(mut r) if r["ok"] == Value::Bool(true) => return Ok(r["value"].take()),
                Ok(r) => last = r["value"].to_string(),
                Err(e @ CdpError::Closed { .. }) => return Err(e),
                Err(e) => last = e.to_string(),
            }
            if Instant::now() + POLL_INTERVAL > deadline {
                return Err(CdpError::WaitTimeout { timeout, last });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits at most `timeout` for an element matching `css` that is rendered with a non-empty box, is not
    /// `visibility: hidden` and is not disabled.
    pub fn wait_visible(&self, css: &str, timeout: Duration) {
        let sel = js_string(css);
        let condition = format!(
            "(() => {{ const el = document.querySelector({sel}); if (!el) return false; \
             const r = el.getBoundingClientRect(); \
             return r.width > 0 && r.height > 0 && el.checkVisibility({{ visibilityProperty: true }}) \
             && !el.disabled; }})()"
        );
        self.wait_for(&condition, timeout, &format!("`{css}` to be visible and enabled"));
    }

    fn wait_exists(&self, css: &str, timeout: Duration) {
        let condition = format!("document.querySelector({}) !== null", js_string(css));
        self.wait_for(&condition, timeout, &format!("`{css}` to exist"));
    }

    /// Waits for `css` to be visible and enabled, scrolls it to the middle of the screen and clicks it
    /// (`element.click()`: a `click` event, no pointer or mouse events, no hit-testing).
    pub fn click(&self, css: &str) {
        self.wait_visible(css, ELEMENT_TIMEOUT);
        let sel = js_string(css);
        let js = format!(
            "(() => {{ const el = document.querySelector({sel}); \
             el.scrollIntoView({{ block: 'center', inline: 'center' }}); \
             if (typeof el.click === 'function') el.click(); \
             else el.dispatchEvent(new MouseEvent('click', {{ bubbles: true, cancelable: true, view: window }})); \
             return true; }})()"
        );
        if let Err(e) = self.try_eval(&js) {
            panic!("clicking `{css}`: {e}{}", self.diagnostics());
        }
    }

    /// Sets the value of the `<input>`, `<textarea>` or `<select>` matching `css` to `text` through the native value
    /// setter (so frameworks that track the value see the change) and fires `input` and `change`, as Leptos
    /// `bind:value` and `on:input` expect. Panics if the element ends up with a different value (e.g. a number field
    /// given letters).
    pub fn fill(&self, css: &str, text: &str) {
        self.wait_visible(css, ELEMENT_TIMEOUT);
        let (sel, val) = (js_string(css), js_string(text));
        let js = format!(
            "(() => {{ const el = document.querySelector({sel}); el.focus(); \
             const proto = el instanceof HTMLTextAreaElement ? HTMLTextAreaElement.prototype \
             : el instanceof HTMLSelectElement ? HTMLSelectElement.prototype : HTMLInputElement.prototype; \
             Object.getOwnPropertyDescriptor(proto, 'value').set.call(el, {val}); \
             el.dispatchEvent(new InputEvent('input', {{ bubbles: true, inputType: 'insertText', data: {val} }})); \
             el.dispatchEvent(new Event('change', {{ bubbles: true }})); return el.value; }})()"
        );
        match self.try_eval(&js) {
            Ok(Value::String(got)) if got == text => {}
            Ok(got) => panic!("filling `{css}` with {text:?} left it holding {got}{}", self.diagnostics()),
            Err(e) => panic!("filling `{css}` with {text:?}: {e}{}", self.diagnostics()),
        }
    }

    /// Focuses `css` (waiting for it to be visible and enabled), puts the caret at the end and types `text` into it
    /// as the keyboard would (`Input.insertText`: `beforeinput` and `input` events, no key events).
    pub fn type_text(&self, css: &str, text: &str) {
        self.wait_visible(css, ELEMENT_TIMEOUT);
        let sel = js_string(css);
        let js = format!(
            "(() => {{ const el = document.querySelector({sel}); el.focus(); \
             if (typeof el.setSelectionRange === 'function' && typeof el.value === 'string') \
             {{ try {{ el.setSelectionRange(el.value.length, el.value.length); }} catch (e) {{}} }} \
             return document.activeElement === el; }})()"
        );
        match self.try_eval(&js) {
            Ok(Value::Bool(true)) => {}
            Ok(other) => panic!("focusing `{css}` to type into it did not focus it ({other}){}", self.diagnostics()),
            Err(e) => panic!("focusing `{css}` to type into it: {e}{}", self.diagnostics()),
        }
        self.command("Input.insertText", json!({ "text": text }))
            .unwrap_or_else(|e| panic!("typing {text:?} into `{css}`: {e}{}", self.diagnostics()));
    }

    /// Presses and releases one key on the focused element: `Enter`, `Tab`, `Escape`, `Backspace`, `Delete`,
    /// `Space` or an arrow key (`ArrowUp`, `ArrowDown`, `ArrowLeft`, `ArrowRight`).
    pub fn press_key(&self, key: &str) {
        let (key_value, code, key_code, text) = match key {
            "Enter" => ("Enter", "Enter", 13, "\r"),
            "Tab" => ("Tab", "Tab", 9, ""),
            "Escape" => ("Escape", "Escape", 27, ""),
            "Backspace" => ("Backspace", "Backspace", 8, ""),
            "Delete" => ("Delete", "Delete", 46, ""),
            "Space" => (" ", "Space", 32, " "),
            "ArrowLeft" => ("ArrowLeft", "ArrowLeft", 37, ""),
            "ArrowUp" => ("ArrowUp", "ArrowUp", 38, ""),
            "ArrowRight" => ("ArrowRight", "ArrowRight", 39, ""),
            "ArrowDown" => ("ArrowDown", "ArrowDown", 40, ""),
            other => panic!("press_key: no key code known for {other:?}; add it to the table in browser.rs"),
        };
        let down_type = if text.is_empty() { "rawKeyDown" } else { "keyDown" };
        for event_type in [down_type, "keyUp"] {
            let mut params = json!({
                "type": event_type,
                "key": key_value,
                "code": code,
                "windowsVirtualKeyCode": key_code,
                "nativeVirtualKeyCode": key_code,
            });
            if event_type == "keyDown" {
                params["text"] = Value::from(text);
            }
            self.command("Input.dispatchKeyEvent", params)
                .unwrap_or_else(|e| panic!("pressing {key}: {e}{}", self.diagnostics()));
        }
    }

    /// The rendered text (`innerText`) of the first element matching `css`, after waiting at most
    /// [`ELEMENT_TIMEOUT`] for it to exist.
    pub fn text(&self, css: &str) -> String {
        self.wait_exists(css, ELEMENT_TIMEOUT);
        let js = format!("document.querySelector({}).innerText", js_string(css));
        match self.try_eval(&js) {
            Ok(Value::String(s)) => s,
            Ok(other) => panic!("reading the text of `{css}` gave {other}{}", self.diagnostics()),
            Err(e) => panic!("reading the text of `{css}`: {e}{}", self.diagnostics()),
        }
    }

    /// Whether an element matches `css` right now (no waiting).
    pub fn exists(&self, css: &str) -> bool {
        self.eval(&format!("document.querySelector({}) !== null", js_string(css))) == Value::Bool(true)
    }

    /// The page's current URL.
    pub fn url(&self) -> String {
        match self.eval("location.href") {
            Value::String(s) => s,
            other => panic!("location.href is not a string: {other}"),
        }
    }

    /// A PNG of the viewport, or of the whole page when `full_page` (via `captureBeyondViewport`).
    pub fn screenshot_png(&self, full_page: bool) -> Vec<u8> {
        let mut params = json!({ "format": "png" });
        if full_page {
            let metrics = self
                .command("Page.getLayoutMetrics", json!({}))
                .unwrap_or_else(|e| panic!("measuring the page for a full-page screenshot: {e}"));
            let size = &metrics["cssContentSize"];
            let (Some(width), Some(height)) = (size["width"].as_f64(), size["height"].as_f64()) else {
                panic!("Page.getLayoutMetrics gave no cssContentSize: {metrics}");
            };
            params["captureBeyondViewport"] = Value::Bool(true);
            params["clip"] = json!({ "x": 0, "y": 0, "width": width, "height": height, "scale": 1 });
        }
        let shot = self
            .command("Page.captureScreenshot", params)
            .unwrap_or_else(|e| panic!("taking a screenshot: {e}{}", self.diagnostics()));
        let Some(data) = shot.get("data").and_then(Value::as_str) else {
            panic!("Page.captureScreenshot gave no data");
        };
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap_or_else(|e| panic!("Page.captureScreenshot gave bad base64: {e}"))
    }

    /// Saves a PNG of the viewport to `path`.
    pub fn screenshot(&self, path: impl AsRef<Path>) {
        self.save_png(path.as_ref(), false);
    }

    /// Saves a PNG of the whole page (beyond the viewport) to `path`.
    pub fn screenshot_full_page(&self, path: impl AsRef<Path>) {
        self.save_png(path.as_ref(), true);
    }

    fn save_png(&self, path: &Path, full_page: bool) {
        let png = self.screenshot_png(full_page);
        std::fs::write(path, png).unwrap_or_else(|e| panic!("writing screenshot {}: {e}", path.display()));
    }

    /// The retained console messages, uncaught exceptions and browser log entries, oldest first, as `[level] text`.
    pub fn console_messages(&self) -> Vec<String> {
        lock(&self.shared.console).iter().map(|e| format!("[{}] {}", e.level, e.text)).collect()
    }

    /// The retained `console.error`/`console.assert` messages, uncaught exceptions, error-level log entries (such as
    /// failed loads) and renderer crashes, oldest first.
    pub fn console_errors(&self) -> Vec<String> {
        lock(&self.shared.console)
            .iter()
            .filter(|e| e.is_error())
            .map(|e| format!("[{}] {}", e.level, e.text))
            .collect()
    }

    /// Whether JavaScript dialogs (`alert`, `confirm`, `prompt`, `beforeunload`) are answered OK (`true`, the
    /// default) or Cancel. Dialogs are always answered at once: an open dialog would block the page.
    pub fn set_accept_dialogs(&self, accept: bool) {
        self.shared.accept_dialogs.store(accept, Ordering::SeqCst);
    }

    /// The dialogs shown so far (the last [`DIALOG_CAPACITY`]), oldest first, as `type: message`, e.g.
    /// `confirm: Remove this share?`.
    pub fn dialogs(&self) -> Vec<String> {
        lock(&self.shared.dialogs).iter().cloned().collect()
    }

    /// Forgets the retained console messages, so a test can check that one step logged no errors.
    pub fn clear_console(&self) {
        lock(&self.shared.console).clear();
    }

    /// Page URL and recent console errors, for failure messages. Never panics and never waits long.
    fn diagnostics(&self) -> String {
        let url = match self.eval_within("location.href", DIAGNOSTIC_TIMEOUT) {
            Ok(Value::String(url)) => url,
            Ok(other) => other.to_string(),
            Err(CdpError::Closed { .. }) => "(unknown: lost Chromium)".to_owned(),
            Err(e) => format!("(unknown: {e})"),
        };
        let errors = self.console_errors();
        let recent = &errors[errors.len().saturating_sub(DIAGNOSTIC_ERRORS)..];
        let mut out = format!("\n  page: {url}\n  recent console errors ({} in all):", errors.len());
        if recent.is_empty() {
            out.push_str(" none");
        }
        for e in recent {
            out.push_str("\n    ");
            out.push_str(e);
        }
        out
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let pid = self.child.id();
        if !self.shared.closed.load(Ordering::SeqCst) {
            // Best effort: a clean close lets Chromium end its helpers itself.
            let _ = self.send(None, "Browser.close", json!({}), CLOSE_GRACE);
        }
        let deadline = Instant::now() + CLOSE_GRACE;
        while !has_exited(pid) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        // The browser process is not reaped yet, so its pid (the group's id) cannot have been reused.
        kill_process_group(pid);
        let _ = self.child.wait();
        self.outbox = None;
        // The reader ends at EOF now that Chromium is dead, dropping its copy of the queue's sender; with both
        // senders gone the writer ends too.
        join_within(self.reader.take(), THREAD_JOIN_GRACE);
        join_within(self.writer.take(), THREAD_JOIN_GRACE);
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

fn reply_str(reply: &Value, key: &str, method: &str) -> Result<String, CdpError> {
    reply
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| CdpError::BadReply { method: method.to_owned(), reply: reply.to_string() })
}

/// `s` as a JavaScript string literal (JSON strings are valid JavaScript).
fn js_string(s: &str) -> String {
    Value::from(s).to_string()
}
