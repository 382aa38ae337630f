//! The `hdp` binary: parses the command line, sets up logging and the
//! runtime, and turns errors into one line and a non-zero exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use hdp_node::cli::{Cli, Command, StartArgs};
use hdp_node::config::Config;
use hdp_node::node::RunningNode;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Blocking threads at most: LMDB reads, scans and file I/O run there. A few
/// dozen keep a Pi responsive; thousands of threads would not fit its memory.
const MAX_BLOCKING_THREADS: usize = 32;

/// glibc malloc arenas at most. By default glibc gives each thread that
/// allocates its own arena, up to 8 per core, and memory freed in one is
/// not reused by another: a sender serving a folder of small files from
/// 32 blocking threads peaked at 47 MiB, against 30 MiB with 2 arenas and
/// no loss of speed (docs/PERFORMANCE.md). musl has one allocator for all.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MALLOC_ARENAS: libc::c_int = 2;

fn main() -> ExitCode {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable, before any other thread exists.
    // A `MALLOC_ARENA_MAX` in the environment is left to glibc.
    #[allow(unsafe_code)]
    unsafe {
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        }
    }
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        // The configuration comes first: it says how many threads to start.
        Command::Start(args) => Config::resolve(&args).map_err(anyhow::Error::from).and_then(|config| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(config.threads)
                .enable_all()
                .max_blocking_threads(MAX_BLOCKING_THREADS)
                .build()
                .context("cannot start the async runtime")
                .and_then(|rt| rt.block_on(start(args, config)))
        }),
        other => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")
            .and_then(|rt| rt.block_on(hdp_node::client::run(other)).map_err(anyhow::Error::from)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr at `-v`'s level, or as `RUST_LOG` says: a comma-separated
/// list of `LEVEL` and `TARGET=LEVEL` (e.g. `info,hdp_node::download=debug`).
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let from_env = std::env::var("RUST_LOG").ok().filter(|v| !v.trim().is_empty());
    let (filter, bad) = match from_env.as_deref().map(log_filter) {
        Some(Ok(f)) => (f, None),
        Some(Err(e)) => (log_filter(default).unwrap_or_default(), Some(e)),
        None => (log_filter(default).unwrap_or_default(), None),
    };
    // Colours only for a person at a terminal, not for journald or a log file.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(move || LogLine { ansi }).with_ansi(ansi))
        .with(filter)
        .init();
    if let Some(e) = bad {
        tracing::warn!(error = %e, "RUST_LOG is not a list of LEVEL or TARGET=LEVEL; logging at {default}");
    }
}

/// Writes log lines to stderr with the control characters a peer's file
/// name could carry shown as `\n`, `\t`, `\xNN`: one event is one line, and
/// nothing in it can move the cursor or recolour a terminal. The fmt layer
/// writes each event with one `write_all`, ending in its own newline.
struct LogLine {
    /// ESC is the layer's own colour codes when it writes them.
    ansi: bool,
}

impl std::io::Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let body = buf.strip_suffix(b"\n").unwrap_or(buf);
        let mut out = Vec::with_capacity(buf.len() + 16);
        escape_controls(body, self.ansi, &mut out);
        out.extend_from_slice(&buf[body.len()..]);
        std::io::stderr().lock().write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Copies `line` to `out` with ASCII control characters escaped (ESC kept
/// when `keep_esc`). Bytes ≥ 0x80 pass through: the line is UTF-8.
fn escape_controls(line: &[u8], keep_esc: bool, out: &mut Vec<u8>) {
    use std::io::Write as _;
    for &b in line {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0x1b if keep_esc => out.push(b),
            0..0x20 | 0x7f => {
                let _ = write!(out, "\\x{b:02x}");
            }
            _ => out.push(b),
        }
    }
}

/// Parses a `RUST_LOG` list, forgiving spaces and empty items (`info, a=debug,`):
/// an empty item would otherwise enable every target at TRACE.
fn log_filter(spec: &str) -> Result<Targets, tracing_subscriber::filter::ParseError> {
    spec.split(',').map(str::trim).filter(|d| !d.is_empty()).collect::<Vec<_>>().join(",").parse()
}

async fn start(args: StartArgs, config: Config) -> anyhow::Result<()> {
    // Listen for signals before the node starts (only the configuration
    // was read so far): a SIGTERM that arrives while it starts must stop it
    // cleanly, not kill it.
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let node = RunningNode::start(config).await?;
    // A QR code only helps a person looking at a terminal, unless asked for.
    let qr = !args.no_qr && (args.qr || std::io::stdout().is_terminal());
    print_banner(&node, qr);
    let stop = node.shutdown_token();
    tokio::spawn(print_public(node.net.clone(), stop.clone()));
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = stop.cancelled() => {}
    }
    if node.shutdown().await { Ok(()) } else { anyhow::bail!("shutdown was not clean (see the log above)") }
}

/// Prints our public address and what the router allows once STUN or the
/// router told us (the banner cannot wait for them), and again when it changes.
async fn print_public(net: std::sync::Arc<hdp_node::net::Net>, stop: tokio_util::sync::CancellationToken) {
    use std::io::Write;
    let mut changed = net.subscribe();
    let mut last = Vec::new();
    loop {
        tokio::select! {
            r = changed.changed() => if r.is_err() { return },
            _ = stop.cancelled() => return,
        }
        let info = net.info();
        if info.public_addrs.is_empty() || info.public_addrs == last {
            continue;
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "  public    {} — {}", info.public_addrs.join(", "), info.describe());
        last = info.public_addrs;
    }
}

fn print_banner(node: &RunningNode, qr: bool) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "harddrive-party {} is running", hdp_proto::VERSION);
    let _ = writeln!(out, "  name      {}", node.id.friendly_name());
    let _ = writeln!(out, "  id        {}", node.id);
    let _ = writeln!(out, "  data dir  {}", node.config.data_dir.display());
    // What a friend can dial: the LAN addresses (not 0.0.0.0), then the
    // public address once STUN or the router tell us (printed below).
    let lan: Vec<std::net::SocketAddr> = hdp_node::node::listen_addrs(node.quic_addr)
        .into_iter()
        .filter(|a| !a.ip().is_loopback() || node.quic_addr.ip().is_loopback())
        .collect();
    let mut quic = lan.iter().map(ToString::to_string);
    let _ = writeln!(out, "  peers at  {} (QUIC)", quic.next().unwrap_or_else(|| node.quic_addr.to_string()));
    for more in quic {
        let _ = writeln!(out, "            {more}");
    }
    if node.config.stun.is_empty() && !node.config.portmap {
        let _ = writeln!(out, "  public    unknown (--stun off, --no-portmap)");
    }
    let _ = writeln!(out, "  web UI    {}", node.login_url());
    let lan = node.lan_login_urls();
    for url in &lan {
        let _ = writeln!(out, "  on LAN    {url}");
    }
    let topics = node.topics.join(", ");
    let _ = writeln!(
        out,
        "  topics    {}",
        if topics.is_empty() { "none (add --topic NAME to meet friends)" } else { &topics }
    );
    if let Ok(shares) = node.shares().list() {
        for s in shares {
            let _ = writeln!(out, "  sharing   {} ({})", s.name, s.path);
        }
    }
    if let Some(first) = lan.first().filter(|_| qr)
        && let Ok(code) = hdp_node::http::qr::terminal(first)
    {
        let _ = writeln!(out, "Scan this with a phone on the same network to open the first \"on LAN\" link:");
        let _ = write!(out, "{code}");
    }
    if lan.is_empty() {
        let _ = writeln!(out, "Open the web UI link on this machine (it carries the login). Stop with Ctrl-C.");
    } else {
        let _ = writeln!(
            out,
            "Open a web UI link (it carries the login): the first on this machine, an \"on LAN\" one from a phone. \
             Stop with Ctrl-C."
        );
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn log_lines_cannot_be_split_or_recoloured_by_a_name() {
        let mut out = Vec::new();
        escape_controls(b"file=a\nFAKE ERROR\tx\x1b[31m\x07 caf\xc3\xa9", false, &mut out);
        assert_eq!(out, b"file=a\\nFAKE ERROR\\tx\\x1b[31m\\x07 caf\xc3\xa9");
        out.clear();
        escape_controls(b"\x1b[2mdim\x1b[0m", true, &mut out);
        assert_eq!(out, b"\x1b[2mdim\x1b[0m");
    }

    #[test]
    fn rust_log_lists_forgive_spaces_and_empty_items() {
        let f = log_filter("info, hdp_node::download=debug ,").unwrap();
        assert!(f.would_enable("hdp_node::download::fetch", &Level::DEBUG));
        assert!(f.would_enable("quinn", &Level::INFO));
        assert!(!f.would_enable("quinn", &Level::DEBUG), "a trailing comma must not enable everything");
        assert!(log_filter("info,hdp_node=loud").is_err());
    }
}
