//! The HTTP API's authentication on every declared route, errors, validation, caps on sockets, heads and bodies, and the UI fallback.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use hdp_e2e::{Node, http, http_raw};

/// A declared route with sample values in its parameters.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| match seg {
            "{*path}" => "some/where".to_owned(),
            "{id}" | "{seq}" => "999".to_owned(),
            s if s.starts_with('{') => "x".to_owned(),
            s => s.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn every_route_the_router_declares_refuses_a_missing_wrong_or_other_kind_of_token() {
    let node = Node::start(&[]);
    let token = node.token.clone();
    // The media cookie is a credential too, but of another kind: not an API token.
    let session = node.api("POST", "/api/media-session", None);
    let cookie = session
        .headers
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: ").or(l.strip_prefix("Set-Cookie: ")))
        .expect("media cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let cookie_value = cookie.split_once('=').unwrap().1.to_owned();
    let paths = hdp_node::http::api_paths();
    assert!(paths.len() >= 20, "{paths:?}");
    let wrong: Vec<(String, Vec<(String, String)>)> = vec![
        ("no credentials".into(), vec![]),
        ("a wrong token".into(), vec![("Authorization".into(), "Bearer not-the-token".into())]),
        ("the token with one byte more".into(), vec![("Authorization".into(), format!("Bearer {token}0"))]),
        ("the token under another scheme".into(), vec![("Authorization".into(), format!("Basic {token}"))]),
        ("the token without a scheme".into(), vec![("Authorization".into(), token.clone())]),
        ("the media cookie as a bearer token".into(), vec![("Authorization".into(), format!("Bearer {cookie_value}"))]),
        ("the token as a cookie".into(), vec![("Cookie".into(), format!("hdp_media={token}"))]),
    ];
    for path in &paths {
        let url = concrete(path);
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            for (what, headers) in &wrong {
                let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let r = http(node.http, method, &url, &h, None);
                assert_eq!(r.status, 401, "{method} {url} with {what}: {}", r.body);
            }
            let r = http(node.http, method, &format!("{url}?token={token}"), &[], None);
            assert_eq!(r.status, 401, "{method} {url} with the token in the query");
        }
        if path.starts_with("/api/") {
            // The media cookie opens /media, never /api.
            let r = http(node.http, "GET", &url, &[("Cookie", &cookie)], None);
            assert_eq!(r.status, 401, "GET {url} with the media cookie");
        }
    }
    // With the token, every route and method answers without a server
    // error, also to bodies of the wrong shape and type.
    for path in &paths {
        let url = concrete(path);
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            if url == "/api/events" && method == "GET" {
                continue; // an endless stream; tests/e2e/settings.rs reads it
            }
            for body in [None, Some("[]"), Some("\"x\""), Some("null"), Some("{\"path\": 5, \"id\": \"x\"}"), Some("{")]
            {
                let r = http(node.http, method, &url, &[("Authorization", &format!("Bearer {token}"))], body);
                assert!(r.status != 401 && r.status < 500, "{method} {url} {body:?}: {} {}", r.status, r.body);
            }
        }
    }
    node.cli_ok(&["info"]);
    node.stop();
}

#[test]
fn idle_and_slow_sockets_cannot_stop_the_ui_from_answering_and_are_timed_out() {
    let node = Node::start(&[]);
    // Far more idle sockets than the node keeps, some with half a head.
    let mut idle = Vec::new();
    for i in 0..400 {
        let mut s = TcpStream::connect(node.http).unwrap();
        if i % 2 == 0 {
            s.write_all(b"GET /api/info HTTP/1.1\r\nHost: x").unwrap();
        }
        idle.push(s);
    }
    // The UI and the API still answer.
    for _ in 0..5 {
        assert_eq!(node.api("GET", "/api/info", None).status, 200);
        assert_eq!(http(node.http, "GET", "/", &[], None).status, 200);
    }
    // And the node holds no more of them than its cap: a flood cannot use
    // up its file descriptors.
    let sockets = std::fs::read_dir(format!("/proc/{}/fd", node.pid()))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .ok()
                .and_then(|e| std::fs::read_link(e.path()).ok())
                .is_some_and(|l| l.to_string_lossy().starts_with("socket:"))
        })
        .count();
    let cap = hdp_node::http::server::MAX_CONNECTIONS;
    eprintln!("400 idle sockets: the node holds {sockets} sockets (HTTP cap {cap})");
    assert!(sockets <= cap + 16, "the node holds {sockets} sockets with an HTTP cap of {cap}");
    drop(idle);

    // A head that never ends and a body that never comes are cut off.
    let started = Instant::now();
    let mut slow_head = TcpStream::connect(node.http).unwrap();
    slow_head.write_all(b"GET /api/info HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut slow_body = TcpStream::connect(node.http).unwrap();
    let head = format!(
        "PUT /api/settings HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        node.http, node.token
    );
    slow_body.write_all(head.as_bytes()).unwrap();
    for (what, s) in [("head", &mut slow_head), ("body", &mut slow_body)] {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut got = Vec::new();
        let ended = s.read_to_end(&mut got);
        assert!(ended.is_ok() || got.is_empty(), "the slow {what} was not closed: {ended:?}");
        let text = String::from_utf8_lossy(&got);
        assert!(text.is_empty() || text.starts_with("HTTP/1.1 4"), "slow {what}: {text}");
        eprintln!("slow {what}: closed after {:.1} s: {:?}", started.elapsed().as_secs_f64(), text.lines().next());
    }

    // Heads are capped: too many headers, too long a query.
    let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    let r = http_raw(node.http, &format!("GET / HTTP/1.1\r\nHost: {}\r\n{many}", node.http));
    assert_eq!(r.status, 431, "{}", r.head);
    let long = "a".repeat(20_000);
    let r = http_raw(node.http, &format!("GET /api/ls?path={long} HTTP/1.1\r\nHost: {}\r\n", node.http));
    assert!(r.status == 431 || r.status == 414, "{}", r.head);
    assert_eq!(node.api("GET", "/api/info", None).status, 200);
    node.stop();
}

#[test]
fn nothing_outside_the_shares_is_served_through_the_ui_or_media_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("s");
    std::fs::create_dir(&share).unwrap();
    std::fs::write(share.join("ok.txt"), "shared").unwrap();
    std::fs::write(tmp.path().join("secret.txt"), "SECRET-CONTENT").unwrap();
    std::os::unix::fs::symlink(tmp.path().join("secret.txt"), share.join("link.txt")).unwrap();
    let node = Node::start(&[&share]);
    node.wait_scanned();
    let auth = format!("Authorization: Bearer {}", node.token);
    let secret = tmp.path().join("secret.txt");
    let abs = secret.to_str().unwrap();
    for path in [
        "/../../../../etc/passwd".to_owned(),
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd".to_owned(),
        "/..%2f..%2f..%2fetc%2fpasswd".to_owned(),
        format!("/{abs}"),
        format!("/..{abs}"),
        "/media/own/s/../secret.txt".to_owned(),
        "/media/own/s/%2e%2e/secret.txt".to_owned(),
        "/media/own/s%2f..%2fsecret.txt".to_owned(),
        "/media/own/s/link.txt".to_owned(),
        format!("/media/own/{abs}"),
        format!("/media/own/s/..%2f..%2f..{abs}"),
    ] {
        let r = http_raw(
            node.http,
            &format!("GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}\r\nConnection: close\r\n", node.http),
        );
        let body = r.text();
        assert!(!body.contains("SECRET-CONTENT") && !body.contains("root:x:0:0"), "{path} leaked: {}", r.head);
    }
    let ok = http_raw(
        node.http,
        &format!("GET /media/own/s/ok.txt HTTP/1.1\r\nHost: {}\r\n{auth}\r\nConnection: close\r\n", node.http),
    );
    assert_eq!((ok.status, ok.text().as_str()), (200, "shared"));
    node.stop();
}

#[test]
fn every_api_route_needs_the_token() {
    let node = Node::start(&[]);
    for (method, path) in [
        ("GET", "/api/info"),
        ("GET", "/api/shares"),
        ("POST", "/api/shares"),
        ("DELETE", "/api/shares/x"),
        ("GET", "/api/ls"),
        ("GET", "/api/does-not-exist"),
    ] {
        let r = http(node.http, method, path, &[], None);
        assert_eq!(r.status, 401, "{method} {path}");
        assert!(r.json()["error"].as_str().unwrap().contains("token"));
        let r = http(node.http, method, path, &[("Authorization", "Bearer not-the-token")], None);
        assert_eq!(r.status, 401, "{method} {path} with a wrong token");
    }
    let r = node.api("GET", "/api/info", None);
    assert_eq!(r.status, 200);
    let info = r.json();
    for key in ["id", "name", "version", "shares", "listen_addrs", "topics"] {
        assert!(info.get(key).is_some(), "/api/info lacks {key}: {info}");
    }
    node.stop();
}

#[test]
fn bad_input_gets_json_errors_with_the_right_status() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("s");
    std::fs::create_dir(&share).unwrap();
    std::fs::write(tmp.path().join("secret"), "x").unwrap();
    let node = Node::start(&[&share]);
    node.wait_scanned();
    for (path, status) in [
        ("/api/ls?path=..", 400),
        ("/api/ls?path=%2Fetc", 400),
        ("/api/ls?path=s%2F..%2F..%2Fsecret", 400),
        ("/api/ls?path=s%5C..%5Csecret", 404),
        ("/api/ls?path=s%00", 400),
        ("/api/ls?path=s&recursive=maybe", 400),
        ("/api/ls?path=s&limit=-1", 400),
        ("/api/ls?path=s&cursor=other%2Fx", 400),
        ("/api/ls?path=missing", 404),
        ("/api/nope", 404),
    ] {
        let r = node.api("GET", path, None);
        assert_eq!(r.status, status, "{path}: {}", r.body);
        assert!(r.json()["error"].is_string(), "{path}: {}", r.body);
    }
    // Empty parameters mean "absent", as in `?path=&recursive=&search=&cursor=`.
    let r = node.api("GET", "/api/ls?path=&recursive=&search=&cursor=", None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["entries"][0]["name"], "s");
    for (body, status) in [("not json", 400), ("{}", 422), ("{\"path\": 5}", 422), ("{\"path\": \"\"}", 400)] {
        let r = node.api("POST", "/api/shares", Some(body));
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert!(r.json()["error"].is_string());
    }
    let r = node.api("POST", "/api/shares", Some("{\"path\": \"/no/such/dir\"}"));
    assert_eq!(r.status, 404);
    let huge = format!("{{\"path\": \"{}\"}}", "a".repeat(100_000));
    let r = node.api("POST", "/api/shares", Some(&huge));
    assert_eq!(r.status, 413);
    // Shares by query and by path segment, and rescan.
    let r = node.api("POST", "/api/shares/s/rescan", None);
    assert_eq!(r.status, 202, "{}", r.body);
    let r = node.api("DELETE", "/api/shares?name=s", None);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = node.api("DELETE", "/api/shares/s", None);
    assert_eq!(r.status, 404);
    node.stop();
}

#[test]
fn ui_is_served_with_index_fallback() {
    let node = Node::start(&[]);
    let r = http(node.http, "GET", "/", &[], None);
    assert_eq!(r.status, 200);
    assert!(r.headers.to_ascii_lowercase().contains("content-type: text/html"));
    assert!(r.body.contains("hdp_web_ui"), "index.html loads the wasm app: {}", r.body);
    let deep = http(node.http, "GET", "/browse/some/where", &[], None);
    assert_eq!((deep.status, deep.body.as_str()), (200, r.body.as_str()));
    let js = http(node.http, "GET", "/hdp_web_ui.js", &[], None);
    assert_eq!(js.status, 200);
    assert!(js.headers.to_ascii_lowercase().contains("javascript"));
    let wasm = http(node.http, "GET", "/hdp_web_ui_bg.wasm", &[], None);
    assert_eq!(wasm.status, 200);
    assert!(wasm.headers.to_ascii_lowercase().contains("application/wasm"));

    // Browsers that accept gzip get the precompressed copies; the whole UI
    // stays within its 400 KB budget.
    let mut total = 0;
    for file in ["/", "/hdp_web_ui.js", "/hdp_web_ui_bg.wasm", "/style.css"] {
        let gz = node.raw("GET", file, &[("Accept-Encoding", "gzip, deflate, br")]);
        assert_eq!(gz.status, 200, "{file}");
        assert_eq!(gz.header("content-encoding"), Some("gzip"), "{file}: {}", gz.head);
        assert!(gz.body.starts_with(&[0x1f, 0x8b]), "{file} is not gzip data");
        total += gz.body.len();
    }
    assert!(total <= 400 * 1024, "the UI is {total} bytes gzipped, over the 400 KB budget");
    let refused = node.raw("GET", "/hdp_web_ui_bg.wasm", &[("Accept-Encoding", "gzip;q=0")]);
    assert_eq!(refused.header("content-encoding"), None);
    assert!(refused.body.starts_with(b"\0asm"), "without gzip the wasm module comes as it is");
    node.stop();
}
