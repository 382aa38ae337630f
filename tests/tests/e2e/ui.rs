//! The embedded WASM UI in real headless Chromium at phone size, driving two real nodes end to end.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hdp_e2e::browser::Browser;
use hdp_e2e::net::Mosquitto;
use hdp_e2e::{Node, random_file, same_file};

/// Waits in the browser for things the network does (discovery, transfers).
const NET_WAIT: Duration = Duration::from_secs(45);
/// Waits for things the page does by itself.
const UI_WAIT: Duration = Duration::from_secs(15);

/// Where screenshots go: `$HDP_ARTIFACTS` or `<workspace>/artifacts`.
fn artifacts() -> PathBuf {
    let dir = std::env::var_os("HDP_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../artifacts"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn shot(b: &Browser, name: &str) {
    let path = artifacts().join(format!("ui-{name}.png"));
    b.screenshot(&path);
    assert!(std::fs::metadata(&path).map(|m| m.len() > 5_000).unwrap_or(false), "no screenshot {}", path.display());
}

/// A `seconds`-long 440 Hz tone as a 16-bit mono 8 kHz WAV file.
fn write_wav(path: &Path, seconds: u32) {
    let rate = 8_000u32;
    let samples: Vec<i16> = (0..rate * seconds)
        .map(|i| ((i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 8_000.0) as i16)
        .collect();
    let data_len = samples.len() as u32 * 2;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, out).unwrap();
}

/// JS: the element matching `css` whose `data-name` is `name` exists.
fn has_named(css: &str, name: &str) -> String {
    format!("[...document.querySelectorAll({css:?})].some(e => e.dataset.name === {name:?})")
}

/// JS: the audio element has loaded and reports a duration near `secs`.
fn audio_ready(secs: f64) -> String {
    format!(
        "(() => {{ const a = document.querySelector('#player-audio'); \
         return !!a && isFinite(a.duration) && Math.abs(a.duration - {secs}) < 0.2; }})()"
    )
}

#[test]
fn phone_ui_joins_a_topic_browses_searches_plays_and_downloads_a_folder() {
    let broker = Mosquitto::start();
    let url = broker.url();
    let tmp = tempfile::tempdir().unwrap();

    // B shares an album: two songs, a text file and a large file, so a
    // rate-limited download lasts long enough to pause.
    let music = tmp.path().join("Music");
    let album = music.join("Album");
    std::fs::create_dir_all(&album).unwrap();
    write_wav(&album.join("01 intro.wav"), 1);
    write_wav(&album.join("02 outro.wav"), 2);
    std::fs::write(album.join("notes.txt"), "liner notes\n").unwrap();
    random_file(&album.join("big.bin"), 12 << 20, 7);
    let b = Node::start_in(
        &tmp.path().join("b"),
        &[&music],
        &["--topic", "party", "--mqtt", &url, "--max-upload-rate", "3M"],
    );
    b.wait_scanned();
    let b_name = b.cli_json(&["info"])["name"].as_str().unwrap().to_owned();

    // A has no topic yet; its user does everything from the phone.
    // Its home dir holds a folder to share through the picker.
    let downloads = tmp.path().join("dl");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(home.join("Videos/Holiday")).unwrap();
    std::fs::write(home.join("Videos/Holiday/beach.txt"), "sand").unwrap();
    let a = Node::start_in_env(
        &tmp.path().join("a"),
        &[],
        &["--mqtt", &url, "--download-dir", downloads.to_str().unwrap()],
        &[("HOME", home.to_str().unwrap())],
    );
    let a_name = a.cli_json(&["info"])["name"].as_str().unwrap().to_owned();

    let browser = Browser::launch();
    let br = &browser;
    br.set_viewport(360, 740, 2.0, true);

    // Without a token the app asks for one instead of failing silently.
    br.goto(&format!("http://{}/", a.http));
    br.wait_visible("#login-form", UI_WAIT);
    assert!(!br.exists("#node-name"));
    shot(br, "01-login");

    // The login link logs in and leaves no secret in the address bar.
    br.goto(&a.login_url);
    br.wait_for(
        &format!("document.querySelector('#node-name')?.innerText === {a_name:?}"),
        UI_WAIT,
        "the node's name in the header",
    );
    assert!(!br.url().contains("token"), "the token is still in the URL: {}", br.url());
    br.wait_for("document.querySelector('#link-state')?.innerText === 'live'", UI_WAIT, "the event stream");
    br.wait_visible("#contact-qr svg", UI_WAIT);

    // Join B's topic: discovery through the broker brings B to the peer list.
    br.fill("#join-topic", "party");
    br.click("#join-form button[type=submit]");
    br.wait_for(&has_named("#topic-list .topic", "party"), UI_WAIT, "the joined topic");
    br.wait_for(&has_named("#peer-list .peer", &b_name), NET_WAIT, "peer B in the peer list");
    br.wait_for(
        "/1 peer/.test(document.querySelector('#topic-list .topic')?.innerText)",
        NET_WAIT,
        "the topic's peer count",
    );
    // What the router allows, in words (test nodes run with --stun off),
    // and how B is connected (over loopback: the local network).
    assert!(br.text("#nat-status").contains("--stun off"), "{}", br.text("#nat-status"));
    br.wait_for(
        &format!(
            "/connected on your local network/.test(document.querySelector('#peer-list .peer[data-name={b_name:?}]')?.innerText)"
        ),
        UI_WAIT,
        "B's path in words",
    );
    shot(br, "02-peers");

    // Browse into B's album.
    br.click("#nav-browse");
    br.wait_for(&has_named("#source-list .entry", &b_name), UI_WAIT, "B among the sources");
    br.click(&format!("#source-list .entry[data-name={b_name:?}] button"));
    br.click("#browse-list [data-path='Music'] .entry-open");
    br.click("#browse-list [data-path='Music/Album'] .entry-open");
    br.wait_visible("#browse-list [data-path='Music/Album/01 intro.wav']", NET_WAIT);
    assert!(br.text("#breadcrumbs").contains(&b_name));
    assert!(br.text("#browse-status").contains("4 items"), "{}", br.text("#browse-status"));
    shot(br, "03-browse");

    // A friend's song plays in the browser, streamed with range requests.
    br.click("#browse-list [data-path='Music/Album/01 intro.wav'] .entry-play");
    br.wait_for(&audio_ready(1.0), NET_WAIT, "the peer's song to load in the audio element");
    shot(br, "04-player");
    br.click("#player-close");

    // Search everyone from the top: results come grouped by peer.
    br.click("#breadcrumbs .crumb");
    br.fill("#browse-search", "album");
    br.click("#browse-search-form button[type=submit]");
    let group = format!(".search-group[data-source={b_name:?}]");
    br.wait_visible(&format!("{group} [data-path='Music/Album']"), NET_WAIT);
    br.wait_visible(".search-group[data-source='This node']", UI_WAIT);
    shot(br, "05-search");

    // One tap downloads the whole folder.
    br.click(&format!("{group} [data-path='Music/Album'] .entry-download"));
    br.wait_for(
        "/downloading/.test(document.querySelector('#browse-notice')?.innerText)",
        NET_WAIT,
        "the queued notice",
    );

    // Transfers: progress, pause, resume, done.
    br.click("#nav-transfers");
    br.wait_visible("#download-list .download", UI_WAIT);
    br.wait_for(
        "document.querySelector('#download-list .download')?.dataset.state === 'active'",
        NET_WAIT,
        "the download to start",
    );
    br.click("#download-list .dl-pause");
    br.wait_for(
        "document.querySelector('#download-list .download')?.dataset.state === 'paused'",
        UI_WAIT,
        "the paused state",
    );
    let paused_at: f64 =
        br.eval("Number(document.querySelector('#download-list .download').dataset.percent)").as_f64().unwrap();
    assert!(paused_at < 100.0, "the download finished before it could be paused");
    shot(br, "06-paused");
    br.click("#download-list .dl-resume");
    br.wait_for(
        "(() => { const d = document.querySelector('#download-list .download'); \
         return d?.dataset.state === 'done' && d?.dataset.percent === '100'; })()",
        NET_WAIT,
        "the download to reach 100 %",
    );
    shot(br, "07-done");
    for name in ["01 intro.wav", "02 outro.wav", "notes.txt", "big.bin"] {
        assert!(same_file(&album.join(name), &downloads.join("Album").join(name)), "{name} differs");
    }

    // A finished download plays from the node's disk.
    br.click("#download-list .dl-files");
    let row = "[data-state='done'] .file-name";
    br.wait_for(
        &format!("[...document.querySelectorAll({row:?})].some(e => e.innerText === '02 outro.wav')"),
        UI_WAIT,
        "the finished file list",
    );
    br.eval(
        "[...document.querySelectorAll('.file-row')].find(r => r.innerText.includes('02 outro.wav'))\
         .querySelector('.file-actions button').click()",
    );
    br.wait_for(&audio_ready(2.0), UI_WAIT, "the downloaded song in the audio element");
    br.click("#player-close");
    br.click("#tab-uploads");
    br.wait_visible("#uploads-status", UI_WAIT);
    br.click("#tab-downloads");

    // Shares: the directory picker starts in the node's home dir; pick a
    // folder in it and watch it get indexed.
    br.click("#nav-shares");
    br.click("#choose-folder");
    br.wait_for(
        &format!("document.querySelector('#picker-path')?.innerText === {:?}", home.to_str().unwrap()),
        UI_WAIT,
        "the picker in the home dir",
    );
    br.click("#dir-picker .picker-dir[data-name='Videos']");
    br.wait_for(
        &format!("document.querySelector('#picker-path')?.innerText === {:?}", home.join("Videos").to_str().unwrap()),
        UI_WAIT,
        "the picker in Videos",
    );
    shot(br, "08-picker");
    br.click("#picker-choose");
    br.wait_for(
        "/1 file/.test(document.querySelector('#share-list .share[data-name=\"Videos\"] .share-stats')?.innerText)",
        UI_WAIT,
        "the new share, indexed",
    );
    shot(br, "09-shares");

    // Settings apply live and persist on the node.
    br.click("#nav-settings");
    br.wait_for("document.querySelector('#set-download-slots')?.value !== ''", UI_WAIT, "the settings form");
    br.fill("#set-download-slots", "3");
    br.click("#settings-save");
    br.wait_for("/Saved/.test(document.querySelector('#settings-message')?.innerText)", UI_WAIT, "the saved message");
    assert_eq!(a.api("GET", "/api/settings", None).json()["download_slots"], 3);
    shot(br, "10-settings");

    // A bandwidth schedule rule for every day, all day: in force at once.
    br.click("#schedule input[name=schedule-day][value=sat]");
    br.click("#schedule input[name=schedule-day][value=sun]");
    br.fill("#schedule-from", "00:00");
    br.fill("#schedule-to", "00:00");
    br.fill("#schedule-down", "2M");
    br.click("#schedule-add-btn");
    br.wait_for(
        "document.querySelectorAll('#schedule-rules li').length === 1 \
         && /by rule 1/.test(document.querySelector('#schedule-now')?.innerText)",
        NET_WAIT,
        "the rule in force",
    );
    let s = a.api("GET", "/api/settings", None).json();
    assert_eq!(s["limits_now"]["max_download_rate"], 2 << 20, "{s}");
    assert_eq!(s["schedule"][0]["days"].as_array().unwrap().len(), 7, "{s}");
    shot(br, "10b-schedule");
    br.click("#schedule .schedule-remove");
    br.wait_for("document.querySelectorAll('#schedule-rules li').length === 0", NET_WAIT, "the rule removed");
    assert_eq!(a.api("GET", "/api/settings", None).json()["schedule"], serde_json::json!([]));

    // Dark mode follows the system.
    br.command(
        "Emulation.setEmulatedMedia",
        serde_json::json!({ "features": [{ "name": "prefers-color-scheme", "value": "dark" }] }),
    )
    .unwrap();
    br.click("#nav-peers");
    let bg = br.eval("getComputedStyle(document.body).backgroundColor").as_str().unwrap().to_owned();
    assert_eq!(bg, "rgb(17, 19, 23)", "dark background");
    shot(br, "11-peers-dark");

    // The same app on a desktop screen: the navigation becomes a side rail.
    br.set_viewport(1280, 800, 1.0, false);
    br.click("#nav-transfers");
    let rail = br.eval("getComputedStyle(document.querySelector('.bottom-nav')).flexDirection");
    assert_eq!(rail, "column");
    shot(br, "12-desktop");

    let errors = br.console_errors();
    assert!(errors.is_empty(), "the page logged errors: {errors:#?}");

    // When the node goes away, the page says so.
    a.stop();
    br.wait_visible("#link-banner", NET_WAIT);
    shot(br, "13-disconnected");
    drop(browser);
    b.stop();
}

#[test]
fn phone_ui_renames_and_blocks_a_friend() {
    let tmp = tempfile::tempdir().unwrap();
    let b = Node::start_in(&tmp.path().join("b"), &[], &["--topic", "t"]);
    let b_id = b.cli_json(&["info"])["id"].as_str().unwrap().to_owned();
    let a = Node::start_in(&tmp.path().join("a"), &[], &["--topic", "t"]);
    let b_name = a.connect(&b);

    let browser = Browser::launch();
    let br = &browser;
    br.set_viewport(360, 740, 2.0, true);
    br.goto(&a.login_url);
    br.wait_for(&has_named("#friend-list .friend", &b_name), NET_WAIT, "the friend in the list");
    br.wait_for(
        &format!("document.querySelector('#friend-list .friend[data-name={b_name:?}]')?.dataset.state === 'connected'"),
        UI_WAIT,
        "the friend shown connected",
    );

    // Rename it from the phone.
    let row = format!("#friend-list .friend[data-name={b_name:?}]");
    br.click(&format!("{row} .friend-rename-btn"));
    br.fill(&format!("{row} .friend-rename input"), "Bob's NAS");
    br.click(&format!("{row} .friend-rename button[type=submit]"));
    br.wait_for(
        &format!("document.querySelector('{row} .peer-name')?.innerText === \"Bob's NAS\""),
        UI_WAIT,
        "the nickname on the row",
    );
    shot(br, "20-friend-renamed");

    // Block it: the page asks first; the connection drops at once.
    br.set_accept_dialogs(true);
    br.click(&format!("{row} .friend-block-btn"));
    br.wait_for(
        &format!("document.querySelector('{row}')?.dataset.state === 'blocked'"),
        NET_WAIT,
        "the friend shown blocked",
    );
    assert!(br.dialogs().iter().any(|d| d.starts_with("confirm: Block")), "{:?}", br.dialogs());
    shot(br, "21-friend-blocked");
    let friends = a.api("GET", "/api/friends", None).json();
    let f = friends.as_array().unwrap().iter().find(|f| f["id"] == b_id.as_str()).unwrap().clone();
    assert_eq!(
        (f["nickname"].as_str(), f["blocked"].as_bool(), f["connected"].as_bool()),
        (Some("Bob's NAS"), Some(true), Some(false)),
        "{f}"
    );
    let errors = br.console_errors();
    assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
    drop(browser);
    a.stop();
    b.stop();
}

#[test]
fn phone_ui_chooses_which_topics_see_a_share() {
    let tmp = tempfile::tempdir().unwrap();
    let music = tmp.path().join("Music");
    std::fs::create_dir_all(&music).unwrap();
    std::fs::write(music.join("song.flac"), "a song").unwrap();
    let a = Node::start_in(&tmp.path().join("a"), &[&music], &["--topic", "family", "--topic", "music-club"]);
    a.wait_scanned();
    let b = Node::start_in(&tmp.path().join("b"), &[], &["--topic", "family"]);
    let a_name = b.connect(&a);
    let seen_by_b = || {
        let r = b.api("GET", &format!("/api/ls?peer={a_name}"), None);
        r.json()["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["path"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(seen_by_b(), vec!["Music"]);

    let browser = Browser::launch();
    let br = &browser;
    br.set_viewport(360, 740, 2.0, true);
    br.goto(&a.login_url);
    br.click("#nav-shares");
    let card = "#share-list .share[data-name=\"Music\"]";
    br.wait_for(
        &format!("document.querySelector('{card} .share-seen-by')?.innerText === 'every topic'"),
        UI_WAIT,
        "the share seen by every topic",
    );
    // Only music-club: untick "every topic", tick music-club, save.
    br.click(&format!("{card} .share-topics-edit"));
    br.wait_for(
        &format!("!!document.querySelector('{card} input[name=share-topic][value=\"music-club\"]')"),
        UI_WAIT,
        "the topic boxes",
    );
    br.click(&format!("{card} .share-all-topics"));
    br.click(&format!("{card} input[name=share-topic][value=\"music-club\"]"));
    shot(br, "22-share-topics-editor");
    br.click(&format!("{card} .share-topics-save"));
    br.wait_for(
        &format!("document.querySelector('{card} .share-seen-by')?.innerText === 'music-club'"),
        NET_WAIT,
        "the share seen by music-club",
    );
    shot(br, "23-share-topics-saved");
    let shares = a.api("GET", "/api/shares", None).json();
    assert_eq!(shares[0]["topics"], serde_json::json!(["music-club"]), "{shares}");
    // B, on family only, no longer sees it, without reconnecting.
    assert_eq!(seen_by_b(), Vec::<String>::new());

    // Back to every topic.
    br.click(&format!("{card} .share-topics-edit"));
    br.click(&format!("{card} .share-all-topics"));
    br.click(&format!("{card} .share-topics-save"));
    br.wait_for(
        &format!("document.querySelector('{card} .share-seen-by')?.innerText === 'every topic'"),
        NET_WAIT,
        "the share seen by every topic again",
    );
    assert_eq!(seen_by_b(), vec!["Music"]);
    let errors = br.console_errors();
    assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
    drop(browser);
    a.stop();
    b.stop();
}
