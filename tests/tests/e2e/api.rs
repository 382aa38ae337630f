//! The HTTP API's authentication, errors, validation and UI fallback.

use hdp_e2e::{Node, http};

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
        ("/api/ls?path=s%5C..%5Csecret", 400),
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
