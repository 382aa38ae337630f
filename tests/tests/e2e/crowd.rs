//! A hostile crowd against a real node: 1,000 identities, junk handshakes, silent and trickling streams, unread reads, request floods; an honest friend's download completes during each, and RSS stays under a ceiling.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdp_e2e::{Node, random_file};
use hdp_node::remote;
use hdp_proto::wire::{LsRequest, MAX_REQUEST_FRAME, ReadRequest, Request, encode_frame};

use super::hostile::{dial, runtime};

/// What the node may hold at its peak under all of this, in MiB: a debug
/// build peaked at 55–58 MiB (most of it the silent streams, bounded by
/// `hdp_node::peers::STREAM_BUDGET`), 20 MiB when left alone.
const RSS_CEILING_MIB: u64 = 96;

/// Samples `pid`'s RSS every 100 ms until stopped; the peak in KiB.
struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let (stop, peak) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                let kib = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
                    .unwrap_or(0);
                p.fetch_max(kib, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        RssSampler { stop, peak, thread: Some(thread) }
    }

    fn peak_mib(&self) -> u64 {
        self.peak.load(Ordering::Relaxed) / 1024
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The honest friend downloads `a`'s big file again; returns its rate in MiB/s.
fn honest_download(b: &Node, a_name: &str, dl: &Path, round: usize) -> f64 {
    for entry in std::fs::read_dir(dl).into_iter().flatten().flatten() {
        let _ = std::fs::remove_file(entry.path());
    }
    let started = Instant::now();
    let id = b.cli_json(&["download", &format!("{a_name}/share/big.bin")])["id"].as_u64().unwrap();
    let done = b.wait_download(id);
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(done["state"], "done", "round {round}: {done}");
    (32 << 20) as f64 / (1 << 20) as f64 / secs
}

/// An endpoint on its own loopback address (127.0.0.0/8), as if from
/// another machine.
fn endpoint_at(i: usize) -> quinn::Endpoint {
    let ip = std::net::Ipv4Addr::new(127, 1 + (i / 250) as u8, (i % 250) as u8, 2);
    quinn::Endpoint::client(SocketAddr::from((ip, 0))).unwrap()
}

#[test]
fn a_hostile_crowd_cannot_hurt_the_node_and_an_honest_friend_keeps_downloading() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    std::fs::create_dir_all(share.join("many")).unwrap();
    random_file(&share.join("big.bin"), 32 << 20, 7);
    for i in 0..200 {
        std::fs::write(share.join(format!("many/{i}.txt")), format!("file {i}")).unwrap();
    }
    let a = Node::start_in(&tmp.path().join("a"), &[&share], &["--topic", "t"]);
    a.wait_scanned();
    let dl = tmp.path().join("dl");
    let b = Node::start_in(&tmp.path().join("b"), &[], &["--topic", "t", "--download-dir", dl.to_str().unwrap()]);
    let a_name = b.connect(&a);
    let rss = RssSampler::start(a.pid());
    let quiet = honest_download(&b, &a_name, &dl, 0);
    eprintln!("crowd: honest download alone: {quiet:.1} MiB/s, node RSS peak {} MiB", rss.peak_mib());
    let mut report = vec![("none".to_owned(), quiet, rss.peak_mib())];
    let rt = runtime();
    let quic = a.quic;
    let ids = tmp.path().join("ids");

    // 1. 1,000 identities at once, each from its own loopback address, all
    // on the topic: the node keeps at most --max-peers of them.
    {
        let outcome = rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..1_000 {
                let dir = ids.join(i.to_string());
                set.spawn(async move {
                    let ep = endpoint_at(i);
                    let r = tokio::time::timeout(Duration::from_secs(30), async {
                        let (id, conn) =
                            super::hostile::connect_tls(&dir, &ep, quic).await.map_err(DialErrorText::from)?;
                        hdp_node::peers::dialer_handshake(
                            &conn,
                            id.peer_id(),
                            &hdp_node::peers::Topics::new(&["t".to_owned()]),
                        )
                        .await
                        .map_err(|e| DialErrorText(e.to_string()))?;
                        Ok::<_, DialErrorText>(conn)
                    })
                    .await;
                    (ep, r)
                });
            }
            let mut kept = Vec::new();
            let (mut ok, mut refused) = (0, std::collections::BTreeMap::<String, usize>::new());
            while let Some(r) = set.join_next().await {
                let (ep, r) = r.unwrap();
                match r {
                    Ok(Ok(conn)) => {
                        ok += 1;
                        kept.push((ep, conn));
                    }
                    Ok(Err(e)) => *refused.entry(e.0.chars().take(60).collect()).or_default() += 1,
                    Err(_) => *refused.entry("timed out".into()).or_default() += 1,
                }
            }
            (ok, refused, kept)
        });
        let (ok, refused, kept) = outcome;
        eprintln!("crowd: 1,000 identities: {ok} completed the handshake; refused: {refused:?}");
        // Connections the node closed for being over its limit end soon.
        let rate = honest_download(&b, &a_name, &dl, 1);
        let still = rt.block_on(async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            kept.iter().filter(|(_, c)| c.close_reason().is_none()).count()
        });
        eprintln!("crowd: {still} of them still connected during the honest download");
        assert!(still <= hdp_node::peers::MAX_PEERS, "{still} connections kept");
        report.push(("1,000 identities".into(), rate, rss.peak_mib()));
        drop(kept);
    }

    // 2. Junk QUIC Initials from 100 sockets: dropped without state.
    {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (stop, sent) = (stop.clone(), sent.clone());
                std::thread::spawn(move || {
                    let socks: Vec<_> = (0..25)
                        .map(|i| UdpSocket::bind((std::net::Ipv4Addr::new(127, 10 + t, i, 3), 0)).unwrap())
                        .collect();
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for (i, s) in socks.iter().enumerate() {
                            let mut pkt = vec![0u8; 1200];
                            pkt[0] = 0xc3; // long header, Initial
                            pkt[1..5].copy_from_slice(&1u32.to_be_bytes());
                            pkt[5] = 8;
                            pkt[6..14].copy_from_slice(&(n ^ i as u64).to_be_bytes());
                            pkt[14] = 8;
                            pkt[15..23].copy_from_slice(&n.to_le_bytes());
                            pkt[23] = 0; // no token
                            pkt[24..26].copy_from_slice(&(0x4000u16 | 1100).to_be_bytes());
                            let _ = s.send_to(&pkt, quic);
                            n += 1;
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    sent.fetch_add(n, Ordering::Relaxed);
                })
            })
            .collect();
        let rate = honest_download(&b, &a_name, &dl, 2);
        stop.store(true, Ordering::Relaxed);
        threads.into_iter().for_each(|t| t.join().unwrap());
        eprintln!("crowd: {} junk Initials sent", sent.load(Ordering::Relaxed));
        report.push(("junk handshakes".into(), rate, rss.peak_mib()));
    }

    // 3. Streams that never send a request, and streams that trickle one
    // byte a second, the most each connection may open; 4. reads whose
    // answers are never read; 5. floods of ls (looping cursors), 10,000
    // paths and hash requests.
    let attackers = rt.block_on(async {
        let mut conns = Vec::new();
        for i in 0..8 {
            conns.push(dial(&ids.join(format!("attacker-{i}")), quic, "t").await.unwrap());
        }
        conns
    });
    let phases: [(&str, Attack); 4] = [
        ("silent and trickling streams", |c| {
            tokio::spawn(async move {
                let mut held = Vec::new();
                for _ in 0..hdp_node::net::transport::MAX_STREAMS {
                    let Ok((mut send, recv)) = c.open_bi().await else { break };
                    let _ = send.write_all(&[0]).await; // part of a frame header, then silence
                    held.push((send, recv));
                }
                for _ in 0..30 {
                    for (send, _) in held.iter_mut().take(64) {
                        let _ = send.write_all(&[0]).await;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            })
        }),
        ("reads never consumed", |c| {
            tokio::spawn(async move {
                let mut held = Vec::new();
                for _ in 0..64 {
                    let req = ReadRequest { path: "share/big.bin".into(), offset: 0, length: None };
                    if let Ok((head, recv)) = remote::read(&c, req).await {
                        held.push((head, recv));
                    }
                }
                tokio::time::sleep(Duration::from_secs(120)).await;
            })
        }),
        ("ls and path floods", |c| {
            tokio::spawn(async move {
                for i in 0..10_000u32 {
                    let (path, cursor) = match i % 3 {
                        0 => ("share".to_owned(), Some("share/big.bin".to_owned())),
                        1 => (format!("share/many/{i}.nope"), None),
                        _ => (format!("share/no/such/{i}"), None),
                    };
                    let req = LsRequest { path, recursive: i % 2 == 0, search: None, cursor, limit: 2_000 };
                    if remote::ls(&c, req).await.is_err() && c.close_reason().is_some() {
                        break;
                    }
                }
            })
        }),
        ("hash requests in a loop", |c| {
            tokio::spawn(async move {
                for i in 0..5_000u32 {
                    let path =
                        if i % 2 == 0 { "share/big.bin".to_owned() } else { format!("share/many/{}.txt", i % 200) };
                    if remote::hash(&c, &path).await.is_err() && c.close_reason().is_some() {
                        break;
                    }
                    // A raw frame too, half sent.
                    if let Ok((mut s, _r)) = c.open_bi().await {
                        let f = encode_frame(&Request::Hash(hdp_proto::wire::HashRequest { path }), MAX_REQUEST_FRAME)
                            .unwrap();
                        let _ = s.write_all(&f[..f.len() / 2]).await;
                    }
                }
            })
        }),
    ];
    for (name, attack) in phases {
        let handles: Vec<_> = {
            let _g = rt.enter();
            attackers.iter().map(|c| attack(c.clone())).collect()
        };
        // Let the attack build up, then the honest download runs through it.
        rt.block_on(async { tokio::time::sleep(Duration::from_secs(2)).await });
        let rate = {
            let b = &b;
            std::thread::scope(|s| {
                let h = s.spawn(|| honest_download(b, &a_name, &dl, 3));
                // Drive the attack tasks while the download runs.
                while !h.is_finished() {
                    rt.block_on(async { tokio::time::sleep(Duration::from_millis(50)).await });
                }
                h.join().unwrap()
            })
        };
        handles.iter().for_each(|h| h.abort());
        rt.block_on(async {
            for h in handles {
                let _ = h.await;
            }
        });
        eprintln!("crowd: {name}: honest download {rate:.1} MiB/s, node RSS peak so far {} MiB", rss.peak_mib());
        report.push((name.to_owned(), rate, rss.peak_mib()));
    }
    drop(attackers);

    let peak = rss.peak_mib();
    drop(rss);
    eprintln!("crowd: | attack | honest download MiB/s | node peak RSS so far (MiB) |");
    for (name, rate, mib) in &report {
        eprintln!("crowd: | {name} | {rate:.1} | {mib} |");
    }
    assert!(peak <= RSS_CEILING_MIB, "the node peaked at {peak} MiB under attack (ceiling {RSS_CEILING_MIB} MiB)");
    assert!(!a.log_text().contains("panicked"), "the node panicked:\n{}", a.log_text());
    a.cli_ok(&["info"]);
    a.stop();
    b.stop();
}

/// One attacker's behaviour on its connection, as a task.
type Attack = fn(quinn::Connection) -> tokio::task::JoinHandle<()>;

/// A dial failure as text (the crowd only counts kinds).
#[derive(Debug)]
struct DialErrorText(String);

impl From<quinn::ConnectionError> for DialErrorText {
    fn from(e: quinn::ConnectionError) -> Self {
        DialErrorText(hdp_node::peers::DialError::from(e).to_string())
    }
}
