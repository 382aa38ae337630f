//! Settings the web UI can change while the node runs (`GET`/`PUT
//! /api/settings`): the download dir, upload and download slots, the
//! upload and download rate limits, the bandwidth schedule over them
//! ([`crate::schedule`]) and the MQTT broker.
//!
//! # Precedence
//! At start: a command-line flag or `HDP_*` variable, then what the UI
//! saved, then `config.toml`, then the defaults. [`Config::resolve`] merges
//! flags over the file and records which settings a flag gave
//! (`Config::pinned`); once the index is open, [`apply_saved`] lays the
//! saved UI settings over the rest. A pinned setting cannot be changed from
//! the UI for this run (409, naming the flag).
//!
//! # Storage
//! One JSON object ([`Saved`]) under [`SETTINGS_KEY`] in the index's `meta`
//! database; a `PUT` adds the settings it changes, so a setting the UI
//! never touched keeps following `config.toml`.
//!
//! # Applying
//! Every change takes effect at once, without a restart: download slots at
//! the next file the scheduler starts, the download dir for requests made
//! from then on (queued ones keep the dir they were made with), upload
//! slots and the rate limit for the next chunk or read, and the MQTT client
//! is restarted with the new broker.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hdp_proto::api::{Settings, SettingsUpdate};
use tracing::{info, warn};

use crate::config::Config;
use crate::discovery::mqtt::{Broker, MqttHandle, MqttStartError, parse_broker};
use crate::download::Downloads;
use crate::index::{Index, RecordError};
use crate::schedule::RateSchedule;
use crate::serve::Server;

/// Key in the index's `meta` database of the saved UI settings.
pub const SETTINGS_KEY: &str = "settings";
/// Most upload, download or per-peer download slots: each active file
/// holds a buffer and a disk stream; more than this helps no small machine.
pub const MAX_SLOTS: u32 = 64;

/// Settings the UI changed, as saved: the same shape as a `PUT` body.
/// Absent ones were never changed there; a rate of 0 means unlimited.
pub use hdp_proto::api::SettingsUpdate as Saved;

/// The saved settings; unreadable JSON counts as none saved (with a warning).
pub fn load_saved(index: &Index) -> Result<Saved, RecordError> {
    let Some(raw) = index.meta_get(SETTINGS_KEY)? else { return Ok(Saved::default()) };
    Ok(serde_json::from_slice(&raw).unwrap_or_else(|e| {
        warn!(error = %e, "the saved settings are unreadable; using config.toml and defaults");
        Saved::default()
    }))
}

/// Replaces the saved settings.
pub fn store_saved(saved: &Saved, index: &Index) -> Result<(), RecordError> {
    index.meta_put(SETTINGS_KEY, &serde_json::to_vec(saved).unwrap_or_default())
}

/// The flag (and variable) that pins a setting, for messages.
pub fn flag_of(setting: &str) -> &'static str {
    match setting {
        "download_dir" => "--download-dir (or HDP_DOWNLOAD_DIR)",
        "upload_slots" => "--upload-slots (or HDP_UPLOAD_SLOTS)",
        "max_upload_rate" => "--max-upload-rate (or HDP_MAX_UPLOAD_RATE)",
        "max_download_rate" => "--max-download-rate (or HDP_MAX_DOWNLOAD_RATE)",
        "download_slots" => "--download-slots (or HDP_DOWNLOAD_SLOTS)",
        "peer_download_slots" => "--peer-download-slots (or HDP_PEER_DOWNLOAD_SLOTS)",
        "mqtt" => "--mqtt (or HDP_MQTT)",
        _ => "a command-line flag",
    }
}

/// Checks a slot count from the UI.
fn slots(name: &str, n: u32) -> Result<usize, SettingsError> {
    if n == 0 || n > MAX_SLOTS {
        return Err(SettingsError::Invalid(format!("{name} must be between 1 and {MAX_SLOTS}, not {n}")));
    }
    Ok(n as usize)
}

/// Lays the saved UI settings over `config`, except where a flag pinned a
/// setting. A saved value that is no longer valid is skipped with a
/// warning (the file or default stays).
pub fn apply_saved(config: &mut Config, saved: &Saved) {
    let free = |name: &str| !config.pinned.contains(&name);
    let warn_bad = |name: &str, e: &dyn std::fmt::Display| {
        warn!(setting = name, error = %e, "ignoring a saved setting");
    };
    if free("download_dir")
        && let Some(d) = &saved.download_dir
    {
        if Path::new(d).is_absolute() {
            config.download_dir = PathBuf::from(d);
        } else {
            warn_bad("download_dir", &"not an absolute path");
        }
    }
    let apply_slots = |name: &str, value: Option<u32>, field: &mut usize| {
        if let Some(n) = value.filter(|_| free(name)) {
            match slots(name, n) {
                Ok(n) => *field = n,
                Err(e) => warn_bad(name, &e),
            }
        }
    };
    apply_slots("upload_slots", saved.upload_slots, &mut config.upload_slots);
    apply_slots("download_slots", saved.download_slots, &mut config.download_slots);
    apply_slots("peer_download_slots", saved.peer_download_slots, &mut config.peer_download_slots);
    if free("max_upload_rate")
        && let Some(r) = saved.max_upload_rate
    {
        config.max_upload_rate = Some(r).filter(|r| *r > 0);
    }
    if free("max_download_rate")
        && let Some(r) = saved.max_download_rate
    {
        config.max_download_rate = Some(r).filter(|r| *r > 0);
    }
    if let Some(rules) = &saved.schedule {
        match crate::schedule::check(rules) {
            Ok(rules) => config.schedule = rules,
            Err(e) => warn_bad("schedule", &e),
        }
    }
    if free("mqtt")
        && let Some(m) = &saved.mqtt
    {
        match parse_broker(m) {
            Ok(b) => config.mqtt = b,
            Err(e) => warn_bad("mqtt", &e),
        }
    }
}

/// A settings change was refused or could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{setting} is set by {flag} for this run; restart the node without it to change it here")]
    Pinned { setting: &'static str, flag: &'static str },
    #[error("{0}")]
    Invalid(String),
    #[error("cannot use {path} as the download dir: {reason}")]
    Dir { path: String, reason: String },
    #[error("cannot save the settings: {0}")]
    Save(#[from] RecordError),
    #[error("cannot start the MQTT client: {0}")]
    Mqtt(#[from] MqttStartError),
}

/// The settings of a running node; see the module docs.
#[derive(Debug)]
pub struct LiveSettings {
    index: Index,
    downloads: Arc<Downloads>,
    server: Arc<Server>,
    /// The usual rate limits and the schedule over them.
    schedule: Arc<RateSchedule>,
    mqtt: Arc<MqttHandle>,
    pinned: Vec<&'static str>,
    /// One change at a time: validate, save and apply together, so two
    /// concurrent `PUT`s cannot interleave their saves.
    changing: tokio::sync::Mutex<()>,
}

/// A change checked and ready to apply.
#[derive(Debug, Default)]
struct Checked {
    download_dir: Option<PathBuf>,
    upload_slots: Option<usize>,
    max_upload_rate: Option<Option<u64>>,
    max_download_rate: Option<Option<u64>>,
    download_slots: Option<usize>,
    peer_download_slots: Option<usize>,
    mqtt: Option<Option<Broker>>,
    schedule: Option<Vec<hdp_proto::schedule::RateRule>>,
}

impl LiveSettings {
    pub fn new(
        index: Index,
        downloads: Arc<Downloads>,
        server: Arc<Server>,
        schedule: Arc<RateSchedule>,
        mqtt: Arc<MqttHandle>,
        pinned: Vec<&'static str>,
    ) -> Self {
        LiveSettings { index, downloads, server, schedule, mqtt, pinned, changing: tokio::sync::Mutex::new(()) }
    }

    /// What the node runs with now.
    pub fn get(&self) -> Settings {
        let (download_slots, peer_download_slots) = self.downloads.limits();
        Settings {
            download_dir: self.downloads.dir().display().to_string(),
            upload_slots: self.server.upload_slots() as u32,
            max_upload_rate: self.schedule.usual().0,
            max_download_rate: self.schedule.usual().1,
            download_slots: download_slots as u32,
            peer_download_slots: peer_download_slots as u32,
            mqtt: self.mqtt.broker().map(|b| b.to_string()),
            pinned: self.pinned.iter().map(|s| (*s).to_owned()).collect(),
            restart_needed: Vec::new(),
            schedule: self.schedule.rules(),
            limits_now: self.schedule.now(),
        }
    }

    /// Checks `u`, saves it and applies it. Nothing is saved or applied if
    /// any part is refused. A pinned setting may be sent unchanged (a form
    /// that sends every field); changing it is refused.
    pub async fn update(&self, u: SettingsUpdate) -> Result<Settings, SettingsError> {
        let _one = self.changing.lock().await;
        let now = self.get();
        let checked = self.check(&u, &now).await?;
        let mut saved = load_saved(&self.index)?;
        if let Some(d) = &checked.download_dir {
            saved.download_dir = Some(d.display().to_string());
        }
        saved.upload_slots = checked.upload_slots.map(|n| n as u32).or(saved.upload_slots);
        saved.download_slots = checked.download_slots.map(|n| n as u32).or(saved.download_slots);
        saved.peer_download_slots = checked.peer_download_slots.map(|n| n as u32).or(saved.peer_download_slots);
        if let Some(r) = checked.max_upload_rate {
            saved.max_upload_rate = Some(r.unwrap_or(0));
        }
        if let Some(r) = checked.max_download_rate {
            saved.max_download_rate = Some(r.unwrap_or(0));
        }
        if let Some(m) = &checked.mqtt {
            saved.mqtt = Some(m.as_ref().map_or_else(|| "off".to_owned(), Broker::to_string));
        }
        if let Some(rules) = &checked.schedule {
            saved.schedule = Some(rules.clone());
        }
        let index = self.index.clone();
        tokio::task::spawn_blocking(move || store_saved(&saved, &index))
            .await
            .map_err(|_| SettingsError::Invalid("the node is shutting down".into()))??;

        if let Some(d) = checked.download_dir {
            info!(dir = %d.display(), "new downloads go to another dir");
            self.downloads.set_dir(d);
        }
        if checked.download_slots.is_some() || checked.peer_download_slots.is_some() {
            let (g, p) = self.downloads.limits();
            self.downloads.set_limits(checked.download_slots.unwrap_or(g), checked.peer_download_slots.unwrap_or(p));
        }
        if let Some(n) = checked.upload_slots {
            self.server.set_upload_slots(n);
        }
        if let Some(r) = checked.max_upload_rate {
            self.schedule.set_usual_upload(r);
        }
        if let Some(r) = checked.max_download_rate {
            self.schedule.set_usual_download(r);
        }
        if let Some(rules) = checked.schedule {
            self.schedule.set_rules(rules).map_err(|e| SettingsError::Invalid(e.to_string()))?;
        }
        if let Some(m) = checked.mqtt {
            self.mqtt.set(m)?;
        }
        Ok(self.get())
    }

    /// Validates every field of `u` against the settings `now`.
    async fn check(&self, u: &SettingsUpdate, now: &Settings) -> Result<Checked, SettingsError> {
        let mut c = Checked::default();
        let pinned = |name: &'static str, changes: bool| -> Result<(), SettingsError> {
            if changes && self.pinned.contains(&name) {
                return Err(SettingsError::Pinned { setting: name, flag: flag_of(name) });
            }
            Ok(())
        };
        if let Some(n) = u.upload_slots {
            pinned("upload_slots", n != now.upload_slots)?;
            c.upload_slots = Some(slots("upload_slots", n)?).filter(|_| n != now.upload_slots);
        }
        if let Some(n) = u.download_slots {
            pinned("download_slots", n != now.download_slots)?;
            c.download_slots = Some(slots("download_slots", n)?).filter(|_| n != now.download_slots);
        }
        if let Some(n) = u.peer_download_slots {
            pinned("peer_download_slots", n != now.peer_download_slots)?;
            c.peer_download_slots = Some(slots("peer_download_slots", n)?).filter(|_| n != now.peer_download_slots);
        }
        if let Some(r) = u.max_upload_rate {
            if r > 0 && r < crate::serve::MIN_UPLOAD_RATE {
                return Err(SettingsError::Invalid(format!(
                    "an upload limit of {r} bytes/s is too low for peers to finish a read before they give up; \
                     use at least 64K, or 0 for no limit"
                )));
            }
            let r = Some(r).filter(|r| *r > 0);
            pinned("max_upload_rate", r != now.max_upload_rate)?;
            c.max_upload_rate = Some(r).filter(|r| *r != now.max_upload_rate);
        }
        if let Some(r) = u.max_download_rate {
            if r > 0 && r < crate::serve::MIN_UPLOAD_RATE {
                return Err(SettingsError::Invalid(format!(
                    "a download limit of {r} bytes/s is too low: a peer drops a read that does not move for a \
                     while; use at least 64K, or 0 for no limit"
                )));
            }
            let r = Some(r).filter(|r| *r > 0);
            pinned("max_download_rate", r != now.max_download_rate)?;
            c.max_download_rate = Some(r).filter(|r| *r != now.max_download_rate);
        }
        if let Some(rules) = &u.schedule {
            let rules = crate::schedule::check(rules).map_err(|e| SettingsError::Invalid(e.to_string()))?;
            c.schedule = Some(rules).filter(|r| *r != now.schedule);
        }
        if let Some(m) = &u.mqtt {
            let broker = parse_broker(m).map_err(|e| SettingsError::Invalid(e.to_string()))?;
            let changes = broker.as_ref().map(Broker::to_string) != now.mqtt;
            pinned("mqtt", changes)?;
            c.mqtt = Some(broker).filter(|_| changes);
        }
        if let Some(d) = &u.download_dir {
            let changes = d.trim() != now.download_dir;
            pinned("download_dir", changes)?;
            if changes {
                let d = d.trim().to_owned();
                c.download_dir = Some(
                    tokio::task::spawn_blocking(move || check_download_dir(&d))
                        .await
                        .map_err(|_| SettingsError::Invalid("the node is shutting down".into()))??,
                );
            }
        }
        Ok(c)
    }
}

/// A download dir from the UI: absolute, created if missing, a directory,
/// and writable (a file is created and removed to find out).
pub fn check_download_dir(text: &str) -> Result<PathBuf, SettingsError> {
    let bad = |reason: String| SettingsError::Dir { path: text.to_owned(), reason };
    if text.is_empty() || text.contains('\0') {
        return Err(SettingsError::Invalid("give the download dir as an absolute path".into()));
    }
    let path = PathBuf::from(text);
    if !path.is_absolute() {
        return Err(bad("give an absolute path (starting with /)".into()));
    }
    std::fs::create_dir_all(&path).map_err(|e| bad(format!("cannot create it ({e})")))?;
    let meta = std::fs::metadata(&path).map_err(|e| bad(e.to_string()))?;
    if !meta.is_dir() {
        return Err(bad("it is not a directory".into()));
    }
    let mut nonce = [0u8; 8];
    let _ = getrandom::fill(&mut nonce);
    let probe = path.join(format!(".hdp-write-test-{}", hdp_proto::topic::hex(&nonce)));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| bad(format!("this node cannot write there ({e})")))?;
    let _ = std::fs::remove_file(&probe);
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::StartArgs;
    use crate::config::CONFIG_FILE;

    fn args(dir: &Path) -> StartArgs {
        crate::config::test_args(dir)
    }

    #[test]
    fn flags_beat_saved_beats_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "upload_slots = 3\ndownload_slots = 5\npeer_download_slots = 2\nmqtt = \"off\"\ndownload_dir = \"/from/file\"\n",
        )
        .unwrap();
        let saved = Saved {
            download_dir: Some("/from/ui".into()),
            upload_slots: Some(7),
            max_upload_rate: Some(0),
            max_download_rate: None,
            download_slots: Some(9),
            peer_download_slots: None,
            mqtt: Some("mqtt://127.0.0.1:1883".into()),
            schedule: Some(vec![hdp_proto::schedule::RateRule {
                days: vec!["weekends".into()],
                from: "9:00".into(),
                to: "17:00".into(),
                max_upload_rate: Some(1 << 20),
                max_download_rate: None,
            }]),
        };
        let mut a = args(dir.path());
        a.upload_slots = Some(1);
        a.max_upload_rate = Some("8M".into());
        let mut c = Config::resolve(&a).unwrap();
        assert_eq!(c.pinned, ["upload_slots", "max_upload_rate"]);
        apply_saved(&mut c, &saved);
        assert_eq!(c.upload_slots, 1, "a flag beats the UI");
        assert_eq!(c.max_upload_rate, Some(8 << 20), "a flag beats the UI");
        assert_eq!(c.download_slots, 9, "the UI beats config.toml");
        assert_eq!(c.peer_download_slots, 2, "config.toml where the UI saved nothing");
        assert_eq!(c.download_dir, PathBuf::from("/from/ui"));
        assert_eq!(c.mqtt.map(|b| b.to_string()).as_deref(), Some("mqtt://127.0.0.1:1883"));
        assert_eq!(c.schedule.len(), 1, "the UI's schedule replaces config.toml's");
        assert_eq!((c.schedule[0].days.len(), c.schedule[0].from.as_str()), (2, "09:00"));

        // Unlimited saved in the UI beats a file limit; invalid saved values are skipped.
        std::fs::write(dir.path().join(CONFIG_FILE), "max_upload_rate = \"1M\"\n").unwrap();
        let mut c = Config::resolve(&args(dir.path())).unwrap();
        assert!(c.pinned.is_empty());
        let odd = Saved {
            max_upload_rate: Some(0),
            download_slots: Some(0),
            download_dir: Some("relative".into()),
            mqtt: Some("ftp://x".into()),
            ..Saved::default()
        };
        let before = c.clone();
        apply_saved(&mut c, &odd);
        assert_eq!(c.max_upload_rate, None);
        assert_eq!(c.download_slots, before.download_slots);
        assert_eq!(c.download_dir, before.download_dir);
        assert_eq!(c.mqtt, before.mqtt);
    }

    #[test]
    fn saved_json_round_trip_and_garbage() {
        let s = Saved { upload_slots: Some(2), mqtt: Some("off".into()), ..Saved::default() };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"{"upload_slots":2,"mqtt":"off"}"#);
        assert_eq!(serde_json::from_str::<Saved>(&json).unwrap(), s);
        assert_eq!(serde_json::from_str::<Saved>("{}").unwrap(), Saved::default());
    }

    #[test]
    fn download_dir_checks() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("a/b");
        assert_eq!(check_download_dir(new.to_str().unwrap()).unwrap(), new);
        assert!(new.is_dir(), "created");
        assert_eq!(std::fs::read_dir(&new).unwrap().count(), 0, "the write probe is removed");
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let e = check_download_dir(file.to_str().unwrap()).unwrap_err().to_string();
        assert!(e.contains("cannot create") || e.contains("not a directory"), "{e}");
        assert!(check_download_dir("rel/dir").unwrap_err().to_string().contains("absolute"));
        assert!(check_download_dir("").is_err());
    }

    #[test]
    fn slot_bounds() {
        assert!(slots("x", 0).is_err());
        assert_eq!(slots("x", 1).unwrap(), 1);
        assert_eq!(slots("x", MAX_SLOTS).unwrap(), MAX_SLOTS as usize);
        assert!(slots("x", MAX_SLOTS + 1).is_err());
    }
}
