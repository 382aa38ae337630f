//! `/media`: our files, a peer's and finished downloads for the browser's players, with ranges; the media
//! cookie; hostile content; the Host/Origin guard.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use hdp_e2e::{Node, RawResponse, http_raw, peak_rss_kib, random_file};

fn bearer(node: &Node) -> String {
    format!("Bearer {}", node.token)
}

/// `GET path` with the bearer token and `extra` headers.
fn get(node: &Node, path: &str, extra: &[(&str, &str)]) -> RawResponse {
    let auth = bearer(node);
    let mut headers = vec![("Authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    node.raw("GET", path, &headers)
}

fn range(node: &Node, path: &str, spec: &str) -> RawResponse {
    get(node, path, &[("Range", spec)])
}

/// Checks a 206 answer: status, `Content-Range`, `Content-Length` and the bytes.
fn assert_part(r: &RawResponse, data: &[u8], start: usize, end: usize) {
    assert_eq!(r.status, 206, "{}\n{}", r.head, r.text());
    assert_eq!(r.header("content-range"), Some(format!("bytes {start}-{end}/{}", data.len()).as_str()));
    assert_eq!(r.header("content-length"), Some((end - start + 1).to_string().as_str()));
    assert!(r.body == data[start..=end], "bytes {start}-{end} differ ({} bytes came)", r.body.len());
}

fn assert_unsatisfiable(r: &RawResponse, size: usize) {
    assert_eq!(r.status, 416, "{}\n{}", r.head, r.text());
    assert_eq!(r.header("content-range"), Some(format!("bytes */{size}").as_str()));
    assert!(r.json()["error"].as_str().unwrap().contains("range"), "{}", r.text());
}

/// Exercises every kind of range on `url`, whose bytes are `data`.
fn check_ranges(node: &Node, url: &str, data: &[u8], content_type: &str) {
    let n = data.len();
    let r = get(node, url, &[]);
    assert_eq!(r.status, 200, "{}\n{}", r.head, r.text());
    assert!(r.body == data, "the whole file differs ({} of {n} bytes came)", r.body.len());
    assert_eq!(r.header("content-type"), Some(content_type));
    assert_eq!(r.header("content-length"), Some(n.to_string().as_str()));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert!(r.header("content-disposition").unwrap().starts_with("inline"), "{}", r.head);
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert!(r.header("content-security-policy").unwrap().starts_with("sandbox"), "{}", r.head);
    let etag = r.header("etag").expect("an ETag").to_owned();

    assert_part(&range(node, url, "bytes=1000-70999"), data, 1000, 70_999);
    assert_part(&range(node, url, "bytes=0-0"), data, 0, 0);
    assert_part(&range(node, url, &format!("bytes={}-", n - 1234)), data, n - 1234, n - 1);
    assert_part(&range(node, url, "bytes=-777"), data, n - 777, n - 1);
    assert_part(&range(node, url, &format!("bytes=-{}", n * 2)), data, 0, n - 1);
    assert_part(&range(node, url, &format!("bytes={}-{}", n - 10, n * 3)), data, n - 10, n - 1);
    assert_unsatisfiable(&range(node, url, &format!("bytes={n}-")), n);
    assert_unsatisfiable(&range(node, url, &format!("bytes={}-{}", n + 5, n + 10)), n);
    assert_unsatisfiable(&range(node, url, "bytes=-0"), n);
    // Several ranges (or nonsense) are answered with the whole file.
    for spec in ["bytes=0-1,5-6", "bytes=9-5", "lines=1-2"] {
        let r = range(node, url, spec);
        assert_eq!(r.status, 200, "{spec}");
        assert!(r.body == data, "{spec}");
    }
    // If-Range: the current ETag keeps the range, a stale one gets the whole file.
    assert_part(&get(node, url, &[("Range", "bytes=5-9"), ("If-Range", &etag)]), data, 5, 9);
    let r = get(node, url, &[("Range", "bytes=5-9"), ("If-Range", "\"stale\"")]);
    assert_eq!(r.status, 200);
    assert!(r.body == data);
    // HEAD: the headers of a GET, no body.
    let auth = bearer(node);
    let r = node.raw("HEAD", url, &[("Authorization", &auth), ("Range", "bytes=10-19")]);
    assert_eq!(r.status, 206, "{}", r.head);
    assert_eq!(r.header("content-length"), Some("10"));
    assert!(r.body.is_empty());
    // ?download=1 makes it an attachment under its own name.
    let r = get(node, &format!("{url}?download=1"), &[]);
    assert_eq!(r.status, 200);
    let disposition = r.header("content-disposition").unwrap();
    assert!(disposition.starts_with("attachment") && disposition.contains("filename*=UTF-8''"), "{disposition}");
}

#[test]
fn own_files_are_served_in_ranges_and_hostile_ones_as_downloads() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("Media");
    std::fs::create_dir(&share).unwrap();
    random_file(&share.join("clip.mp4"), 300_000, 7);
    std::fs::write(share.join("page.html"), "<script>alert(document.cookie)</script>").unwrap();
    std::fs::write(share.join("icon.svg"), "<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>").unwrap();
    std::fs::write(share.join("later.mp4"), "swapped for a symlink after the scan").unwrap();
    std::fs::write(tmp.path().join("secret.mp4"), "outside the share").unwrap();
    std::os::unix::fs::symlink(tmp.path().join("secret.mp4"), share.join("escape.mp4")).unwrap();
    std::os::unix::fs::symlink(tmp.path(), share.join("up")).unwrap();
    let node = Node::start(&[&share]);
    node.wait_scanned();
    let data = std::fs::read(share.join("clip.mp4")).unwrap();
    check_ranges(&node, "/media/own/Media/clip.mp4", &data, "video/mp4");

    // Content a browser could run is never inline and never sniffed.
    for (name, body) in [("page.html", "<script>"), ("icon.svg", "<svg")] {
        let r = get(&node, &format!("/media/own/Media/{name}"), &[]);
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(r.header("content-type"), Some("application/octet-stream"), "{name}");
        assert!(r.header("content-disposition").unwrap().starts_with("attachment"), "{name}: {}", r.head);
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert!(r.text().starts_with(body));
    }

    // Nothing outside the share: `..` (also percent-encoded), absolute paths,
    // symlinks leading out (also one swapped in after the scan).
    std::fs::remove_file(share.join("later.mp4")).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("secret.mp4"), share.join("later.mp4")).unwrap();
    for (path, status) in [
        ("/media/own/Media/../secret.mp4", 400),
        ("/media/own/Media/%2e%2e/secret.mp4", 400),
        ("/media/own/Media%2F..%2Fsecret.mp4", 400),
        ("/media/own/%2Ftmp%2Fsecret.mp4", 400),
        ("/media/own/Media/escape.mp4", 404),
        ("/media/own/Media/up/secret.mp4", 404),
        ("/media/own/Media/later.mp4", 404),
        ("/media/own/Media", 404),
        ("/media/own/Nope/clip.mp4", 404),
        ("/media/elsewhere", 404),
    ] {
        let r = get(&node, path, &[]);
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert!(r.json()["error"].is_string(), "{path}");
        assert!(!r.text().contains("outside the share"), "{path}");
    }
    node.stop();
}

#[test]
fn the_media_cookie_opens_media_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("Pics");
    std::fs::create_dir(&share).unwrap();
    std::fs::write(share.join("a.jpg"), "jpeg bytes").unwrap();
    let node = Node::start(&[&share]);
    node.wait_scanned();
    let url = "/media/own/Pics/a.jpg";

    let r = node.raw("GET", url, &[]);
    assert_eq!(r.status, 401);
    assert!(r.json()["error"].as_str().unwrap().contains("/api/media-session"), "{}", r.text());
    let r = node.raw("POST", "/api/media-session", &[("Content-Length", "0")]);
    assert_eq!(r.status, 401, "the session needs the API token");

    let auth = bearer(&node);
    let r = node.raw("POST", "/api/media-session", &[("Authorization", &auth), ("Content-Length", "0")]);
    assert_eq!(r.status, 204, "{}", r.head);
    let set = r.header("set-cookie").expect("a cookie").to_owned();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/media", "Max-Age="] {
        assert!(set.contains(part), "{set}");
    }
    let pair = set.split(';').next().unwrap().to_owned();
    let value = pair.strip_prefix("hdp_media=").expect("named hdp_media");
    assert!(!value.is_empty() && !value.contains(&node.token) && !node.token.contains(value), "{set}");

    // The cookie alone plays media...
    let r = node.raw("GET", url, &[("Cookie", &format!("theme=dark; {pair}"))]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "jpeg bytes");
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    // ...a wrong one does not, nor does the token as a cookie...
    let other = if value.ends_with('0') { '1' } else { '0' };
    let wrong = format!("hdp_media={}{other}", &value[..value.len() - 1]);
    for cookie in [wrong, format!("hdp_media={}", node.token)] {
        let r = node.raw("GET", url, &[("Cookie", &cookie)]);
        assert_eq!(r.status, 401, "{cookie}");
    }
    // ...and it opens nothing outside /media.
    let r = node.raw("GET", "/api/info", &[("Cookie", &pair)]);
    assert_eq!(r.status, 401);
    node.stop();
}

#[test]
fn the_guard_refuses_foreign_hosts_and_origins() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("Pics");
    std::fs::create_dir(&share).unwrap();
    std::fs::write(share.join("a.jpg"), "jpeg").unwrap();
    let node = Node::start_in(&tmp.path().join("data"), &[&share], &["--http-host", "nas.example"]);
    node.wait_scanned();
    let port = node.http.port();
    let auth = bearer(&node);
    let request = |host: Option<&str>, path: &str, extra: &[(&str, &str)]| {
        let mut head = format!("GET {path} HTTP/1.1\r\nConnection: close\r\nAuthorization: {auth}\r\n");
        if let Some(h) = host {
            head.push_str(&format!("Host: {h}\r\n"));
        }
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        http_raw(node.http, &head)
    };
    let own = format!("127.0.0.1:{port}");

    // The node's own names.
    for host in [own.clone(), format!("localhost:{port}"), format!("my-pi.local:{port}"), format!("nas.example:{port}")]
    {
        for path in ["/api/info", "/media/own/Pics/a.jpg", "/"] {
            let r = request(Some(&host), path, &[]);
            assert_eq!(r.status, 200, "{host} {path}: {}", r.text());
        }
    }
    // DNS rebinding: a foreign name is refused everywhere, with the fix in words.
    for path in ["/api/info", "/media/own/Pics/a.jpg", "/", "/index.html"] {
        let r = request(Some(&format!("evil.example:{port}")), path, &[]);
        assert_eq!(r.status, 403, "{path}");
        let msg = r.json()["error"].as_str().unwrap().to_owned();
        assert!(msg.contains("--http-host") && msg.contains("IP address"), "{msg}");
    }
    // Cross-origin requests.
    let r = request(Some(&own), "/api/info", &[("Origin", "http://evil.example")]);
    assert_eq!(r.status, 403, "{}", r.text());
    let r = request(Some(&own), "/api/info", &[("Origin", &format!("http://127.0.0.1:{}", port + 1))]);
    assert_eq!(r.status, 403);
    let r = request(Some(&own), "/api/info", &[("Origin", &format!("http://{own}"))]);
    assert_eq!(r.status, 200, "{}", r.text());
    for path in ["/api/info", "/media/own/Pics/a.jpg"] {
        let r = request(Some(&own), path, &[("Sec-Fetch-Site", "cross-site")]);
        assert_eq!(r.status, 403, "{path}");
        let r = request(Some(&own), path, &[("Sec-Fetch-Site", "same-origin")]);
        assert_eq!(r.status, 200, "{path}");
    }
    // No Host at all (HTTP/1.0 style) is refused.
    let r = http_raw(node.http, &format!("GET /api/info HTTP/1.0\r\nAuthorization: {auth}\r\n"));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("Host"));
    node.stop();
}

/// Two nodes on one topic, `b` connected to `a`; returns `a`'s name as `b` sees it.
fn pair(tmp: &Path, share: &Path, a_extra: &[&str], dl: &Path) -> (Node, Node, String) {
    let mut extra = vec!["--topic", "media-test"];
    extra.extend_from_slice(a_extra);
    let a = Node::start_in(&tmp.join("a"), &[share], &extra);
    let b = Node::start_in(&tmp.join("b"), &[], &["--topic", "media-test", "--download-dir", dl.to_str().unwrap()]);
    a.wait_scanned();
    let name = b.connect(&a);
    (a, b, name)
}

/// Starts a GET of `path`, reads `bytes` of the answer, and hangs up.
fn abandon(node: &Node, path: &str, bytes: usize) {
    let mut s = TcpStream::connect(node.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
        node.http,
        bearer(node)
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut buf = vec![0u8; bytes];
    s.read_exact(&mut buf).unwrap();
    assert!(buf.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..40]));
}

#[test]
fn a_peers_file_streams_in_ranges_and_stops_with_the_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("Films");
    std::fs::create_dir(&share).unwrap();
    random_file(&share.join("short.ogg"), 100_000, 5);
    random_file(&share.join("movie.webm"), 32 << 20, 3);
    // One upload slot: a stream the browser abandoned but we kept would hold
    // it, and the next request would find the peer busy.
    let (a, b, name) = pair(tmp.path(), &share, &["--upload-slots", "1"], &tmp.path().join("dl"));
    let data = std::fs::read(share.join("short.ogg")).unwrap();
    check_ranges(&b, &format!("/media/peer/{name}/Films/short.ogg"), &data, "audio/ogg");
    assert_unsatisfiable(&range(&b, &format!("/media/peer/{name}/Films/short.ogg"), "bytes=200000-"), data.len());

    for (path, status) in [
        (format!("/media/peer/{name}/Films/missing.ogg"), 404),
        (format!("/media/peer/{name}/Elsewhere/x.ogg"), 404),
        ("/media/peer/nobody/Films/short.ogg".to_owned(), 404),
        (format!("/media/peer/{name}/Films/../x"), 400),
        (format!("/media/peer/{name}/Films"), 404),
    ] {
        let r = get(&b, &path, &[]);
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert!(r.json()["error"].is_string(), "{path}");
    }

    let movie = format!("/media/peer/{name}/Films/movie.webm");
    for _ in 0..3 {
        abandon(&b, &movie, 256 * 1024);
        let r = get(&b, &format!("/media/peer/{name}/Films/short.ogg"), &[]);
        assert_eq!(r.status, 200, "the abandoned stream still holds the peer's upload slot: {}", r.text());
    }

    // The whole movie passes through without either node holding it in memory.
    let (rss_a, rss_b) = (peak_rss_kib(a.pid()), peak_rss_kib(b.pid()));
    let r = get(&b, &movie, &[]);
    assert_eq!(r.status, 200);
    assert!(r.body == std::fs::read(share.join("movie.webm")).unwrap(), "the movie differs");
    let r = get(&a, "/media/own/Films/movie.webm", &[]);
    assert_eq!(r.body.len(), 32 << 20);
    let (grew_a, grew_b) = (peak_rss_kib(a.pid()) - rss_a, peak_rss_kib(b.pid()) - rss_b);
    eprintln!("peak RSS grew by {grew_a} KiB (serving) and {grew_b} KiB (relaying) for a 32 MiB file");
    assert!(grew_a < 16 * 1024 && grew_b < 16 * 1024, "memory grew with the file: {grew_a} KiB, {grew_b} KiB");
    a.stop();
    b.stop();
}

#[test]
fn a_finished_download_is_served_and_an_unfinished_one_is_not() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("Music");
    std::fs::create_dir(&share).unwrap();
    random_file(&share.join("song.flac"), 200_000, 9);
    random_file(&share.join("later.flac"), 1000, 11);
    let dl = tmp.path().join("dl");
    let (a, b, name) = pair(tmp.path(), &share, &[], &dl);

    let id = b.cli_json(&["download", &format!("{name}/Music/song.flac")])["id"].as_u64().unwrap();
    assert_eq!(b.wait_download(id)["state"], "done");
    let files = b.api("GET", &format!("/api/downloads/{id}/files"), None).json();
    let seq = files["files"][0]["seq"].as_u64().unwrap();
    let data = std::fs::read(share.join("song.flac")).unwrap();
    check_ranges(&b, &format!("/media/download/{id}/{seq}"), &data, "audio/flac");

    let paused = b.cli_json(&["download", &format!("{name}/Music/later.flac"), "--paused"])["id"].as_u64().unwrap();
    b.wait_download_until(paused, "the listing", |v| v["files_total"] == 1);
    for (path, status) in [
        (format!("/media/download/{paused}/0"), 404),
        (format!("/media/download/{id}/{}", seq + 1), 404),
        ("/media/download/99999/0".to_owned(), 404),
        ("/media/download/x/0".to_owned(), 400),
    ] {
        let r = get(&b, &path, &[]);
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert!(r.json()["error"].is_string(), "{path}");
    }
    a.stop();
    b.stop();
}

/// A fake peer on topic `t` that answers every `read` of a 100,000-byte file
/// with the promise the path names: `short` promises it all and sends half,
/// `liar` promises fewer bytes than were asked for, anything else is honest.
fn fake_peer(rt: &tokio::runtime::Runtime, dir: &Path) -> std::net::SocketAddr {
    use hdp_node::identity::Identity;
    use hdp_node::net::transport::{TlsIdentity, remote_peer_id, server_config};
    use hdp_node::peers::{Topics, listener_handshake};
    use hdp_proto::wire::{MAX_READ_HEADER_FRAME, ReadHeader, Request, decode_body, encode_frame};

    std::fs::create_dir_all(dir).unwrap();
    let id = Identity::load_or_create(dir).unwrap();
    let tls = TlsIdentity::new(&id).unwrap();
    rt.block_on(async {
        let ep = quinn::Endpoint::server(server_config(&tls).unwrap(), "127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = ep.local_addr().unwrap();
        tokio::spawn(async move {
            let conn = ep.accept().await.unwrap().await.unwrap();
            let peer = remote_peer_id(&conn).unwrap();
            listener_handshake(&conn, id.peer_id(), peer, &Topics::new(&["t".into()])).await.unwrap();
            while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                let mut header = [0u8; 4];
                recv.read_exact(&mut header).await.unwrap();
                let mut body = vec![0u8; u32::from_be_bytes(header) as usize];
                recv.read_exact(&mut body).await.unwrap();
                let Ok(Request::Read(r)) = decode_body::<Request>(&body) else { continue };
                let size = 100_000u64;
                let due = size.saturating_sub(r.offset).min(r.length.unwrap_or(u64::MAX));
                let (promise, sent) = match r.path.as_str() {
                    "share/short.mp3" => (due, due / 2),
                    "share/liar.mp3" if due > 0 => (due - 1, due - 1),
                    _ => (due, due),
                };
                let h = ReadHeader::Ok { size, mtime_ns: 0, length: promise };
                send.write_all(&encode_frame(&h, MAX_READ_HEADER_FRAME).unwrap()).await.unwrap();
                let _ = send.write_all(&vec![7u8; sent as usize]).await;
                let _ = send.finish();
            }
        });
        addr
    })
}

#[test]
fn a_peer_that_sends_less_than_it_promised_aborts_the_response() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::start_in(&tmp.path().join("data"), &[], &["--topic", "t"]);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let addr = fake_peer(&rt, &tmp.path().join("fake"));
    let name = node.cli_json(&["connect", &addr.to_string()])["name"].as_str().unwrap().to_owned();

    let r = get(&node, &format!("/media/peer/{name}/share/honest.mp3"), &[("Range", "bytes=10-19")]);
    assert_eq!(r.status, 206, "{}", r.text());
    assert_eq!(r.body, vec![7u8; 10]);
    // Headers promised 100,000 bytes; the body stops short and the
    // connection is cut, so the browser knows the file is incomplete.
    let r = get(&node, &format!("/media/peer/{name}/share/short.mp3"), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("100000"));
    assert!(r.body.len() < 100_000, "{} bytes", r.body.len());
    // A promise that does not match the request is refused before any byte.
    let r = get(&node, &format!("/media/peer/{name}/share/liar.mp3"), &[("Range", "bytes=0-99")]);
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("promised"), "{}", r.text());
    node.stop();
    drop(rt);
}
