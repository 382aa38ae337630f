//! The Settings page: download folder, upload and download concurrency, the
//! upload and download rate limits, the bandwidth schedule
//! ([`crate::schedule`]) and the MQTT broker. Changes apply at once where the
//! node can do so and are saved on the node; a setting fixed by a
//! command-line flag is shown but cannot be changed here. Also: signing
//! this device out.

use hdp_proto::api::{Settings, SettingsUpdate};
use hdp_proto::fmt::format_size;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api;
use crate::picker::DirPicker;
use crate::schedule::ScheduleCard;
use crate::session::Session;

/// The form's text fields, as typed.
#[derive(Debug, Clone, Default)]
struct Form {
    download_dir: RwSignal<String>,
    upload_slots: RwSignal<String>,
    max_upload_rate: RwSignal<String>,
    max_download_rate: RwSignal<String>,
    download_slots: RwSignal<String>,
    peer_download_slots: RwSignal<String>,
    mqtt: RwSignal<String>,
}

/// `8M`, `500K` or `off` for a rate in bytes per second.
fn rate_text(rate: Option<u64>) -> String {
    match rate {
        None | Some(0) => "off".into(),
        Some(r) if r % (1 << 20) == 0 => format!("{}M", r >> 20),
        Some(r) if r % (1 << 10) == 0 => format!("{}K", r >> 10),
        Some(r) => r.to_string(),
    }
}

/// Reads `off`, `0`, `1234`, `500K`, `8M`, `1G` (powers of 1024).
pub(crate) fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("off") || t == "0" {
        return Ok(0);
    }
    let (digits, mult) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("{text:?} is not a rate: write e.g. 500K, 8M or off"))
}

fn parse_slots(label: &str, text: &str) -> Result<u32, String> {
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| format!("{label} must be a whole number, 1 or more"))
}

#[component]
pub fn SettingsPage() -> impl IntoView {
    let session = expect_context::<Session>();
    let current = RwSignal::new(None::<Settings>);
    let form = Form::default();
    let message = RwSignal::new(None::<Result<String, String>>);
    let saving = RwSignal::new(false);
    let picking = RwSignal::new(false);

    let fill = move |s: &Settings| {
        form.download_dir.set(s.download_dir.clone());
        form.upload_slots.set(s.upload_slots.to_string());
        form.max_upload_rate.set(rate_text(s.max_upload_rate));
        form.max_download_rate.set(rate_text(s.max_download_rate));
        form.download_slots.set(s.download_slots.to_string());
        form.peer_download_slots.set(s.peer_download_slots.to_string());
        form.mqtt.set(s.mqtt.clone().unwrap_or_else(|| "off".into()));
    };
    spawn_local(async move {
        match session.call(|t| async move { api::settings(&t).await }).await {
            Ok(s) => {
                fill(&s);
                current.try_set(Some(s));
            }
            Err(e) => {
                message.try_set(Some(Err(e.to_string())));
            }
        }
    });

    let pinned = move |name: &str| current.with(|c| c.as_ref().is_some_and(|c| c.pinned.iter().any(|p| p == name)));

    let save = move |ev: SubmitEvent| {
        ev.prevent_default();
        let Some(cur) = current.get_untracked() else { return };
        let build = || -> Result<SettingsUpdate, String> {
            let mut u = SettingsUpdate::default();
            let dir = form.download_dir.get_untracked().trim().to_string();
            if dir != cur.download_dir {
                u.download_dir = Some(dir);
            }
            let n = parse_slots("Upload slots", &form.upload_slots.get_untracked())?;
            if n != cur.upload_slots {
                u.upload_slots = Some(n);
            }
            let r = parse_rate(&form.max_upload_rate.get_untracked())?;
            if r != cur.max_upload_rate.unwrap_or(0) {
                u.max_upload_rate = Some(r);
            }
            let r = parse_rate(&form.max_download_rate.get_untracked())?;
            if r != cur.max_download_rate.unwrap_or(0) {
                u.max_download_rate = Some(r);
            }
            let n = parse_slots("Downloads at once", &form.download_slots.get_untracked())?;
            if n != cur.download_slots {
                u.download_slots = Some(n);
            }
            let n = parse_slots("Downloads per peer", &form.peer_download_slots.get_untracked())?;
            if n != cur.peer_download_slots {
                u.peer_download_slots = Some(n);
            }
            let m = form.mqtt.get_untracked().trim().to_string();
            if m != cur.mqtt.clone().unwrap_or_else(|| "off".into()) {
                u.mqtt = Some(m);
            }
            Ok(u)
        };
        let update = match build() {
            Ok(u) if u == SettingsUpdate::default() => {
                message.set(Some(Ok("Nothing changed.".into())));
                return;
            }
            Ok(u) => u,
            Err(e) => {
                message.set(Some(Err(e)));
                return;
            }
        };
        saving.set(true);
        spawn_local(async move {
            let result = session.call(|t| async move { api::save_settings(&t, &update).await }).await;
            saving.try_set(false);
            match result {
                Ok(s) => {
                    fill(&s);
                    let note = if s.restart_needed.is_empty() {
                        "Saved and applied.".to_owned()
                    } else {
                        format!("Saved. Restart the node to apply: {}.", s.restart_needed.join(", "))
                    };
                    current.try_set(Some(s));
                    message.try_set(Some(Ok(note)));
                }
                Err(e) => {
                    message.try_set(Some(Err(e.to_string())));
                }
            }
        });
    };

    let field = move |id: &'static str,
                      name: &'static str,
                      label: &'static str,
                      hint: &'static str,
                      value: RwSignal<String>,
                      mode: &'static str| {
        view! {
            <div class="field">
                <label for=id>{label}</label>
                <input
                    id=id
                    type="text"
                    inputmode=mode
                    autocomplete="off"
                    autocapitalize="none"
                    spellcheck="false"
                    bind:value=value
                    disabled=move || pinned(name)
                />
                <p class="hint">
                    {move || if pinned(name) { "Set by a command-line flag for this run.".to_owned() } else { hint.to_owned() }}
                </p>
            </div>
        }
    };

    view! {
        <div class="section-head">
            <h2>"Settings"</h2>
            <p class="muted">"Saved on the node and applied at once where possible."</p>
        </div>
        <form class="card stack settings-form" id="settings-form" on:submit=save>
            <div class="field">
                <label for="set-download-dir">"Download folder"</label>
                <div class="input-row">
                    <input
                        id="set-download-dir"
                        type="text"
                        autocomplete="off"
                        autocapitalize="none"
                        spellcheck="false"
                        bind:value=form.download_dir
                        disabled=move || pinned("download_dir")
                    />
                    <button
                        type="button"
                        class="btn"
                        disabled=move || pinned("download_dir")
                        on:click=move |_| picking.update(|p| *p = !*p)
                    >
                        "Choose"
                    </button>
                </div>
                <p class="hint">"New downloads land here; running ones finish where they started."</p>
                <Show when=move || picking.get()>
                    <DirPicker
                        action="Use this folder"
                        on_pick=Callback::new(move |p: String| {
                            form.download_dir.set(p);
                            picking.set(false);
                        })
                    />
                </Show>
            </div>
            {field("set-download-slots", "download_slots", "Downloads at once", "Files downloading at the same time, from everyone.", form.download_slots, "numeric")}
            {field("set-peer-slots", "peer_download_slots", "Downloads per peer", "Files downloading at the same time from one peer.", form.peer_download_slots, "numeric")}
            {field("set-upload-slots", "upload_slots", "Upload slots", "Files peers may download from you at the same time.", form.upload_slots, "numeric")}
            {field("set-upload-rate", "max_upload_rate", "Upload limit", "Bytes per second for all uploads, e.g. 500K or 2M; off for no limit.", form.max_upload_rate, "text")}
            {field("set-download-rate", "max_download_rate", "Download limit", "Bytes per second for all downloads, e.g. 1M or 4M; off for no limit.", form.max_download_rate, "text")}
            {field("set-mqtt", "mqtt", "MQTT broker", "Where friends on a topic meet over the internet, e.g. mqtts://broker.example.org:8883; off to use only the LAN and addresses.", form.mqtt, "url")}
            {move || {
                current
                    .get()
                    .map(|c| {
                        c.max_upload_rate
                            .map(|r| view! { <p class="hint">{format!("Uploads are limited to {}/s now.", format_size(r))}</p> })
                    })
            }}
            <button type="submit" class="btn btn-primary btn-block" id="settings-save" disabled=move || saving.get()>
                {move || if saving.get() { "Saving…" } else { "Save" }}
            </button>
            {move || {
                message
                    .get()
                    .map(|m| match m {
                        Ok(t) => view! { <p class="field-ok" role="status" id="settings-message">{t}</p> }.into_any(),
                        Err(e) => view! { <p class="field-error" role="alert" id="settings-message">{e}</p> }.into_any(),
                    })
            }}
        </form>
        <ScheduleCard current=current />
        <section class="card stack">
            <h2 class="card-title">"This device"</h2>
            <p class="muted">"The token that lets this browser control the node is kept on this device."</p>
            <button type="button" class="btn btn-danger btn-block" id="sign-out" on:click=move |_| session.log_out(None)>
                "Sign out"
            </button>
        </section>
    }
}
