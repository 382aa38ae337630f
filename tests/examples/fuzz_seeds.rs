//! Writes the fuzz targets' seed corpus (tests/fuzz/corpus/<target>/) from
//! real messages made by our own encoders, so fuzzing starts from what
//! peers, brokers, browsers and users really send:
//!
//!     cargo run -p hdp-e2e --example fuzz_seeds -- tests/fuzz/corpus
//!
//! Each run makes new identities, so the seeds that carry a key or a
//! signature (announcements, signals, mDNS records, the certificate,
//! contacts) change from run to run; the others do not.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hdp_node::identity::Identity;
use hdp_node::net::transport::TlsIdentity;
use hdp_proto::api::EntryKind;
use hdp_proto::contact::Contact;
use hdp_proto::discovery::{AddrKind, WireAddr, mdns_txt, seal_announcement, seal_signal};
use hdp_proto::nat::{probe, stun_binding_request};
use hdp_proto::path::encode_name;
use hdp_proto::topic::TopicKeys;
use hdp_proto::wire::{
    HashReply, HashRequest, Hello, LsFrame, LsRequest, MAX_LS_FRAME, ReadHeader, ReadRequest, Request, RequestError,
    WireEntry, encode_frame,
};

/// RFC 5769 §2.2: a STUN binding response with XOR-MAPPED-ADDRESS 192.0.2.1:32853.
const RFC5769_RESPONSE: &str = "0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220\
002000080001a147e112a643000800142b91f599fd9e90c38c7489f92af9ba53f06be7d780280004c07d4c96";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

struct Corpus(PathBuf);

impl Corpus {
    fn put(&self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.0.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }

    /// A frame's body: the decoders take bodies, and `decode_frame` whole frames.
    fn frame<T: serde::Serialize>(&self, target: &str, name: &str, msg: &T) {
        let frame = encode_frame(msg, MAX_LS_FRAME).unwrap();
        self.put(target, &format!("{name}.frame"), &frame);
        self.put(target, &format!("{name}.body"), &frame[4..]);
    }
}

fn main() {
    let out = std::env::args().nth(1).unwrap_or_else(|| "tests/fuzz/corpus".into());
    let c = Corpus(PathBuf::from(out));
    let tmp = tempfile::tempdir().unwrap();
    let id = Identity::load_or_create(tmp.path()).unwrap();
    std::fs::create_dir(tmp.path().join("b")).unwrap();
    let other = Identity::load_or_create(&tmp.path().join("b")).unwrap();
    let keys = TopicKeys::derive("fuzz");

    // hdp/1 frames.
    c.frame("wire_frames", "hello", &Hello { proofs: vec![[7; 32], [9; 32]] });
    let ls = LsRequest {
        path: "music".into(),
        recursive: true,
        search: Some("ß".into()),
        cursor: Some("music/a".into()),
        limit: 500,
    };
    c.frame("wire_frames", "ls", &Request::Ls(ls));
    c.frame(
        "wire_frames",
        "read",
        &Request::Read(ReadRequest { path: "m/a.flac".into(), offset: 5, length: Some(1 << 20) }),
    );
    c.frame("wire_frames", "hash", &Request::Hash(HashRequest { path: encode_name(b"m/caf\xe9").into_owned() }));
    c.frame("wire_frames", "prove", &Request::Prove(Hello { proofs: vec![[7; 32]] }));
    let entry = |path: &str, kind| WireEntry {
        path: path.into(),
        kind,
        size: 1 << 33,
        mtime_ns: 1_700_000_000_123_456_789,
        count: 3,
    };
    c.frame(
        "wire_frames",
        "entries",
        &LsFrame::Entries(vec![entry("m/a", EntryKind::File), entry("m/d", EntryKind::Dir)]),
    );
    c.frame("wire_frames", "end", &LsFrame::End { cursor: Some("m/d".into()) });
    c.frame("wire_frames", "ls-error", &LsFrame::Error(RequestError::Invalid("bad path".into())));
    c.frame("wire_frames", "read-ok", &ReadHeader::Ok { size: 10, mtime_ns: -1, length: 4 });
    c.frame("wire_frames", "read-err", &ReadHeader::Err(RequestError::BadRange));
    c.frame("wire_frames", "hash-ok", &HashReply::Ok { size: 5, mtime_ns: 2, hash: [0xab; 32] });
    c.frame("wire_frames", "hash-err", &HashReply::Err(RequestError::Changed));

    // Discovery: an announcement, a signal, an mDNS record.
    let addrs = [
        WireAddr::new(AddrKind::Local, "192.168.1.20:4433".parse::<SocketAddr>().unwrap()),
        WireAddr::new(AddrKind::Reflexive, "[2001:db8::1]:50000".parse::<SocketAddr>().unwrap()),
    ];
    let ann = seal_announcement(&keys, id.signing_key(), 1_700_000_000_000, &addrs, [1; 24]).unwrap();
    c.put("discovery", "announcement", &ann);
    let sig =
        seal_signal(&keys, id.signing_key(), &other.peer_id(), 1_700_000_000_000, [2; 16], &addrs, [3; 24]).unwrap();
    c.put("discovery", "signal", &sig);
    let txt = mdns_txt(&id.peer_id(), &[4; 16], &[&keys]);
    let lines: String = txt.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    c.put("discovery", "mdns-txt", lines.as_bytes());

    // A real certificate, as a node presents it.
    let tls = TlsIdentity::new(&id).unwrap();
    c.put("cert", "node-cert.der", tls.cert.as_ref());

    // Contact links, peer ids.
    let contact = Contact {
        id: id.peer_id(),
        addrs: vec!["192.168.1.20:4433".into(), "[2001:db8::1]:4433".into(), "nas.example.org:4433".into()],
    };
    c.put("contact", "contact", contact.to_string().as_bytes());
    c.put("contact", "peer-id", id.peer_id().to_string().as_bytes());

    // Names and paths.
    for (name, bytes) in [
        ("plain", &b"music/Album/01 Track.flac"[..]),
        ("latin1", b"caf\xe9.mp3"),
        ("controls", b"new\nline\ttab\x1b[31m"),
        ("escape-block", "\u{ef80}x".as_bytes()),
        ("long", &[b'a'; 255]),
        ("traversal", b"a/../../etc/passwd"),
    ] {
        c.put("names", name, bytes);
    }

    // HTTP: ranges, query strings, JSON bodies.
    for (name, text) in [
        ("range", "bytes=0-499"),
        ("range-suffix", "bytes=-500"),
        ("range-open", "bytes=9999999999-"),
        ("query-ls", "peer=brave-otter&path=music%2FAlbum&recursive=true&search=mix&cursor=music%2Fa&limit=200"),
        ("query-files", "cursor=12&limit=100"),
        ("query-fs", "path=%2Fsrv&hidden=1"),
        ("body-share", r#"{"path":"/srv/music"}"#),
        ("body-download", r#"{"peer":"brave-otter","path":"music/Album","paused":false}"#),
        ("body-connect", r#"{"addr":"192.168.1.20:4433"}"#),
        ("body-topic", r#"{"name":"family"}"#),
        (
            "body-settings",
            r#"{"max_upload_rate":"4M","upload_slots":4,"download_dir":"/srv/dl","mqtt":"mqtts://broker.example.org:8883"}"#,
        ),
    ] {
        c.put("http_input", name, text.as_bytes());
    }

    // Datagrams.
    c.put("stun", "rfc5769-response", &unhex(RFC5769_RESPONSE));
    c.put("stun", "binding-request", &stun_binding_request(&[5; 12]));
    c.put("stun", "probe", &probe(&[6; 16]));

    // config.toml.
    let config = r#"http = "0.0.0.0:8080"
shares = ["/srv/music", "photos"]
download_dir = "/srv/downloads"
listen = "0.0.0.0:4433"
topics = ["family", "music-club"]
peers = ["192.168.1.20:4433"]
max_peers = 64
handshake_rate = 10
stream_budget = 4096
upload_slots = 4
max_upload_rate = "2M"
download_slots = 4
peer_download_slots = 2
threads = 2
mqtt = "mqtt://127.0.0.1:1883"
mdns = false
stun = ["stun.example.org:3478"]
portmap = false
http_hosts = ["nas.example.org"]
"#;
    c.put("config", "full.toml", config.as_bytes());
    c.put("config", "small.toml", b"topics = [\"family\"]\n");
    println!("seeds written under {}", Path::new(&c.0).display());
}
