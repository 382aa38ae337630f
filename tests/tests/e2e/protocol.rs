//! What docs/PROTOCOL.md promises, checked against a real node: the handshake deadline and its close code, one mtime per file, `ls` limits.

use std::time::{Duration, UNIX_EPOCH};

use hdp_e2e::Node;
use hdp_node::peers::DialError;
use hdp_node::remote;
use hdp_proto::wire::{CloseCode, LsRequest, ReadRequest};

use super::hostile::{connect_tls, dial, runtime};

#[test]
fn a_peer_that_never_sends_hello_is_closed_with_handshake_failed_after_10_s() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::start_in(&tmp.path().join("data"), &[], &["--topic", "t"]);
    runtime().block_on(async {
        let ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let (_, conn) = connect_tls(&tmp.path().join("mute"), &ep, node.quic).await.unwrap();
        // TLS is done; say nothing. §4: the listener gives up after 10 s
        // with HandshakeFailed (2), not with a silent close (0).
        let reason = tokio::time::timeout(Duration::from_secs(20), conn.closed()).await.expect("never closed");
        match &reason {
            quinn::ConnectionError::ApplicationClosed(c) => {
                assert_eq!(c.error_code.into_inner(), CloseCode::HandshakeFailed as u64, "{reason}");
            }
            other => panic!("closed without an application code: {other}"),
        }
        assert!(matches!(DialError::from(reason), DialError::Closed(CloseCode::HandshakeFailed)));
    });
    node.stop();
}

#[test]
fn ls_read_and_hash_give_one_mtime_and_ls_limits_are_as_documented() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    std::fs::create_dir_all(&share).unwrap();
    for name in ["a", "b", "c"] {
        std::fs::write(share.join(name), name).unwrap();
    }
    // A time with nanoseconds that a seconds-rounded listing would lose.
    let when = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
    std::fs::File::options().write(true).open(share.join("a")).unwrap().set_modified(when).unwrap();
    let node = Node::start_in(&tmp.path().join("data"), &[&share], &["--topic", "t"]);
    node.wait_scanned();
    runtime().block_on(async {
        let conn = dial(&tmp.path().join("client"), node.quic, "t").await.unwrap();
        let ls = |limit, cursor: Option<String>| LsRequest {
            path: "share".into(),
            recursive: false,
            search: None,
            cursor,
            limit,
        };
        let all = remote::ls(&conn, ls(100, None)).await.unwrap();
        let a = all.entries.iter().find(|e| e.path == "share/a").unwrap();
        let (head, _) =
            remote::read(&conn, ReadRequest { path: "share/a".into(), offset: 0, length: Some(0) }).await.unwrap();
        let hash = remote::hash(&conn, "share/a").await.unwrap();
        let want = when.duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64;
        assert_eq!((a.mtime_ns, head.mtime_ns, hash.mtime_ns), (want, want, want));
        // The HTTP listing carries the same nanoseconds beside its seconds.
        let api = node.api("GET", "/api/ls?path=share", None).json();
        let entry = api["entries"].as_array().unwrap().iter().find(|e| e["name"] == "a").unwrap().clone();
        assert_eq!((entry["mtime"].as_i64(), entry["mtime_ns"].as_i64()), (Some(1_700_000_000), Some(want)));

        // limit 0 is taken as 1: every page advances, and the cursors walk
        // the whole directory.
        let mut cursor = None;
        let mut seen = Vec::new();
        loop {
            let page = remote::ls(&conn, ls(0, cursor.take())).await.unwrap();
            assert!(page.entries.len() == 1 || page.cursor.is_none(), "{page:?}");
            seen.extend(page.entries.into_iter().map(|e| e.path));
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
            assert!(seen.len() <= 3, "the listing does not end: {seen:?}");
        }
        assert_eq!(seen, ["share/a", "share/b", "share/c"]);
        // A limit over 2,000 is 2,000 (here: everything, no cursor).
        let big = remote::ls(&conn, ls(u32::MAX, None)).await.unwrap();
        assert_eq!((big.entries.len(), big.cursor), (3, None));
    });
    node.stop();
}
