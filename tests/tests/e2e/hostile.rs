//! ALPN and certificate refusals, traversal and oversized frames against a real node, and a lying peer that cannot make a real node write outside its download dir.

use std::net::SocketAddr;
use std::path::Path;

use hdp_e2e::Node;
use hdp_node::identity::Identity;
use hdp_node::net::transport::{
    TlsIdentity, certified_key, client_config, client_config_with_alpn, remote_peer_id, server_config,
};
use hdp_node::peers::{DialError, Topics, dialer_handshake, listener_handshake};
use hdp_node::remote::{self, RemoteError};
use hdp_proto::api::EntryKind;
use hdp_proto::wire::{
    HashReply, LsFrame, LsRequest, MAX_HASH_REPLY_FRAME, MAX_LS_FRAME, MAX_READ_HEADER_FRAME, ReadHeader, ReadRequest,
    Request, RequestError, StreamCode, WireEntry, decode_body, encode_frame,
};

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

pub(crate) fn identity(dir: &Path) -> (Identity, TlsIdentity) {
    std::fs::create_dir_all(dir).unwrap();
    let id = Identity::load_or_create(dir).unwrap();
    let tls = TlsIdentity::new(&id).unwrap();
    (id, tls)
}

/// Completes TLS with `addr` as a fresh identity (made in `dir`) from
/// `endpoint`, and nothing more: no topic handshake.
pub(crate) async fn connect_tls(
    dir: &Path,
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
) -> Result<(Identity, quinn::Connection), quinn::ConnectionError> {
    let (id, tls) = identity(dir);
    let cfg = client_config(certified_key(tls.cert.clone(), &tls.key).unwrap()).unwrap();
    let conn = endpoint.connect_with(cfg, addr, "hdp").unwrap().await?;
    Ok((id, conn))
}

/// Dials `addr` as a fresh identity on `topic`, running the real handshake.
pub(crate) async fn dial(dir: &Path, addr: SocketAddr, topic: &str) -> Result<quinn::Connection, DialError> {
    let ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let (id, conn) = connect_tls(dir, &ep, addr).await?;
    dialer_handshake(&conn, id.peer_id(), &Topics::new(&[topic.to_owned()])).await?;
    Ok(conn)
}

fn node_with_share(tmp: &Path) -> Node {
    let share = tmp.join("share");
    std::fs::create_dir_all(share.join("sub")).unwrap();
    std::fs::write(share.join("sub/file.txt"), "0123456789").unwrap();
    std::fs::write(share.join("empty"), "").unwrap();
    std::fs::write(tmp.join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(tmp.join("secret.txt"), share.join("link-out")).unwrap();
    let node = Node::start_in(&tmp.join("data"), &[&share], &["--topic", "t"]);
    node.wait_scanned();
    node
}

#[test]
fn alpn_mismatch_and_a_certificate_that_does_not_match_its_key_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::start_in(&tmp.path().join("data"), &[], &["--topic", "t"]);
    runtime().block_on(async {
        let (_, tls) = identity(&tmp.path().join("a"));
        let ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();

        let old = client_config_with_alpn(certified_key(tls.cert.clone(), &tls.key).unwrap(), b"hdp/0").unwrap();
        let err = ep.connect_with(old, node.quic, "hdp").unwrap().await.unwrap_err();
        let err = DialError::from(err);
        assert!(matches!(err, DialError::AlpnMismatch), "{err}");
        assert!(err.to_string().contains("ALPN"));

        // Certificate of one key, handshake signed with another.
        let (_, other) = identity(&tmp.path().join("b"));
        let forged = client_config(certified_key(tls.cert.clone(), &other.key).unwrap()).unwrap();
        let res = match ep.connect_with(forged, node.quic, "hdp").unwrap().await {
            Err(e) => Err(DialError::from(e)),
            // The server may only notice once it processes the client's Finished.
            Ok(conn) => dialer_handshake(&conn, hdp_proto::id::PeerId([0; 32]), &Topics::new(&["t".into()])).await,
        };
        assert!(res.is_err(), "a forged certificate was accepted");

        // The genuine pair passes.
        dial(&tmp.path().join("a"), node.quic, "t").await.unwrap();
    });
    node.stop();
}

#[test]
fn traversal_ranged_reads_and_oversized_frames() {
    let tmp = tempfile::tempdir().unwrap();
    let node = node_with_share(tmp.path());
    runtime().block_on(async {
        let conn = dial(&tmp.path().join("client"), node.quic, "t").await.unwrap();
        let ls = |path: &str| LsRequest { path: path.into(), recursive: true, search: None, cursor: None, limit: 100 };
        for bad in ["..", "../etc", "/etc", "share/../..", "share/\0"] {
            let r = remote::ls(&conn, ls(bad)).await;
            assert!(matches!(r, Err(RemoteError::Refused(RequestError::Invalid(_)))), "ls {bad:?}: {r:?}");
        }
        // A backslash is a name on Linux, not a separator: nothing by that name.
        let r = remote::ls(&conn, ls("share\\..\\x")).await;
        assert!(matches!(r, Err(RemoteError::Refused(RequestError::NotFound))), "{r:?}");
        let all = remote::ls(&conn, ls("share")).await.unwrap();
        let paths: Vec<_> = all.entries.iter().map(|e| e.path.as_str()).collect();
        assert!(!paths.iter().any(|p| p.contains("link-out")), "a symlink leaving the share was indexed: {paths:?}");

        let read = |path: &str, offset, length| ReadRequest { path: path.into(), offset, length };
        for (path, want) in [
            ("share/../secret.txt", "invalid"),
            ("share/link-out", "no such"),
            ("other/x", "not in any"),
            ("share/sub", "no such"),
            ("share", "no such"),
            ("", "not in any"),
        ] {
            let err = remote::read(&conn, read(path, 0, None)).await.unwrap_err();
            assert!(err.to_string().contains(want), "{path:?}: {err}");
        }
        for (offset, length, want) in
            [(0, None, "0123456789"), (3, Some(4), "3456"), (8, Some(100), "89"), (10, None, "")]
        {
            let (head, mut recv) = remote::read(&conn, read("share/sub/file.txt", offset, length)).await.unwrap();
            assert_eq!(head.size, 10);
            let body = recv.read_to_end(1 << 20).await.unwrap();
            assert_eq!(String::from_utf8(body).unwrap(), want, "offset {offset} length {length:?}");
        }
        let err = remote::read(&conn, read("share/sub/file.txt", 11, None)).await.unwrap_err();
        assert!(matches!(err, RemoteError::Refused(RequestError::BadRange)), "{err}");
        let (head, mut recv) = remote::read(&conn, read("share/empty", 0, None)).await.unwrap();
        assert_eq!((head.size, head.length), (0, 0));
        assert!(recv.read_to_end(16).await.unwrap().is_empty());

        // Hashes: refused where reads are, the BLAKE3 of the content where
        // they are served, and a new hash once the file changes.
        for (path, want) in
            [("share/../secret.txt", "invalid"), ("share/link-out", "no such"), ("other/x", "not in any")]
        {
            let err = remote::hash(&conn, path).await.unwrap_err();
            assert!(err.to_string().contains(want), "hash {path:?}: {err}");
        }
        let h = remote::hash(&conn, "share/sub/file.txt").await.unwrap();
        assert_eq!((h.size, h.hash), (10, *blake3::hash(b"0123456789").as_bytes()));
        let file = tmp.path().join("share/sub/file.txt");
        std::fs::write(&file, "abcdefghij").unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options().write(true).open(&file).unwrap().set_modified(later).unwrap();
        let h2 = remote::hash(&conn, "share/sub/file.txt").await.unwrap();
        assert_eq!(h2.hash, *blake3::hash(b"abcdefghij").as_bytes());
        assert_ne!(h2.mtime_ns, h.mtime_ns);

        // An announced 4 GiB request frame: the stream is reset, nothing is allocated.
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        let err = recv.read_to_end(1024).await.unwrap_err();
        assert!(err.to_string().contains(&(StreamCode::BadRequest as u32).to_string()), "{err}");
        // Garbage inside a well-sized frame: the same.
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).await.unwrap();
        assert!(recv.read_to_end(1024).await.is_err());
        // The connection and the node are fine.
        assert!(!remote::ls(&conn, ls("")).await.unwrap().entries.is_empty());
    });
    node.cli_ok(&["info"]);
    node.stop();
}

#[test]
fn oversized_hello_closes_the_connection_not_the_node() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::start_in(&tmp.path().join("data"), &[], &["--topic", "t"]);
    runtime().block_on(async {
        let ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let (_, conn) = connect_tls(&tmp.path().join("c"), &ep, node.quic).await.unwrap();
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        send.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        let reason = conn.closed().await;
        let err = DialError::from(reason);
        assert!(err.to_string().contains("broke the protocol"), "{err}");
        dial(&tmp.path().join("d"), node.quic, "t").await.unwrap();
    });
    node.stop();
}

#[test]
fn a_lying_peer_cannot_make_a_node_write_outside_its_download_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let dl = tmp.path().join("dl");
    let node = Node::start_in(&tmp.path().join("data"), &[], &["--topic", "t", "--download-dir", dl.to_str().unwrap()]);
    let abs_target = format!("/tmp/hdp-e2e-evil-{}", std::process::id());
    // The fake peer keeps running on a worker thread while the test drives the CLI.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (fake_addr, server) = rt.block_on(async {
        let (id, tls) = identity(&tmp.path().join("fake"));
        let ep = quinn::Endpoint::server(server_config(&tls).unwrap(), "127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = ep.local_addr().unwrap();
        let abs = abs_target.clone();
        let server = tokio::spawn(async move {
            let conn = ep.accept().await.unwrap().await.unwrap();
            let peer = remote_peer_id(&conn).unwrap();
            listener_handshake(&conn, id.peer_id(), peer, &Topics::new(&["t".into()])).await.unwrap();
            let file =
                |path: &str| WireEntry { path: path.into(), kind: EntryKind::File, size: 3, mtime_ns: 0, count: 0 };
            let lies = vec![
                file("share/ok.txt"),
                file("share/wrong-hash.txt"),
                file("../../evil.txt"),
                file(&abs),
                file("share/../../evil2.txt"),
                file("share/sub/../../../evil3.txt"),
                file("share/a\\..\\..\\evil4"),
                file("share/CON"),
                file("other/evil5.txt"),
                WireEntry { path: "share/../..".into(), kind: EntryKind::Dir, size: 0, mtime_ns: 0, count: 0 },
            ];
            while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                let mut header = [0u8; 4];
                recv.read_exact(&mut header).await.unwrap();
                let mut body = vec![0u8; u32::from_be_bytes(header) as usize];
                recv.read_exact(&mut body).await.unwrap();
                match decode_body::<Request>(&body).unwrap() {
                    Request::Ls(_) => {
                        send.write_all(&encode_frame(&LsFrame::Entries(lies.clone()), MAX_LS_FRAME).unwrap())
                            .await
                            .unwrap();
                        send.write_all(&encode_frame(&LsFrame::End { cursor: None }, MAX_LS_FRAME).unwrap())
                            .await
                            .unwrap();
                    }
                    Request::Read(r) => {
                        let h = ReadHeader::Ok { size: 3, mtime_ns: 0, length: 3 };
                        send.write_all(&encode_frame(&h, MAX_READ_HEADER_FRAME).unwrap()).await.unwrap();
                        let data: &[u8] = if r.path == "share/ok.txt" { b"ok!" } else { b"BAD" };
                        send.write_all(data).await.unwrap();
                    }
                    Request::Hash(h) => {
                        // The truth for ok.txt; for anything else, a hash of other bytes.
                        let content: &[u8] = if h.path == "share/ok.txt" { b"ok!" } else { b"not what was sent" };
                        let reply = HashReply::Ok { size: 3, mtime_ns: 0, hash: *blake3::hash(content).as_bytes() };
                        send.write_all(&encode_frame(&reply, MAX_HASH_REPLY_FRAME).unwrap()).await.unwrap();
                    }
                    // It joins no topic later: nothing to prove.
                    Request::Prove(_) => {}
                }
                let _ = send.finish();
            }
        });
        (addr, server)
    });
    let name = node.cli_json(&["connect", &fake_addr.to_string()])["name"].as_str().unwrap().to_owned();
    let out = node.cli(&["download", &format!("{name}/share"), "--wait"]);
    assert!(!out.status.success(), "a download with refused names must report failure");
    let tree = hdp_e2e::read_tree(&dl);
    assert_eq!(tree, vec![("share/ok.txt".to_string(), b"ok!".to_vec())]);
    for outside in ["evil.txt", "evil2.txt", "evil3.txt", "evil4", "evil5.txt"] {
        assert!(!tmp.path().join(outside).exists() && !dl.join(outside).exists(), "{outside} was written");
    }
    assert!(!Path::new(&abs_target).exists(), "an absolute path was written");
    // The file whose hash did not match was fetched again, then given up on.
    let log = node.log_text();
    assert!(log.contains("BLAKE3 mismatch") && log.contains("copies that did not match"), "{log}");
    node.stop();
    server.abort();
    drop(rt);
}
