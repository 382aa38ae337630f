//! The Transfers page: downloads (the queue, with per-request and per-file
//! progress, rate, ETA, state and controls; finished files open or play
//! here) and uploads (what peers are reading from us now). Both follow the
//! event stream; nothing here polls.

use hdp_proto::api::{DownloadState, FileInfo, FileState, UploadInfo};
use hdp_proto::fmt::{format_size, plural, shown, split_dir_name};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api;
use crate::app::Nav;
use crate::browser;
use crate::live::Live;
use crate::session::Session;

/// Files shown per page in a download's file list.
const FILES_PAGE: u32 = 100;

#[component]
pub fn Transfers() -> impl IntoView {
    let tab = RwSignal::new(false); // false: downloads, true: uploads
    let live = expect_context::<Live>();
    let up_count = move || live.uploads.with(|u| u.uploads.iter().filter(|x| x.finished.is_none()).count());
    view! {
        <div class="section-head">
            <h2>"Transfers"</h2>
        </div>
        <div class="segmented" role="tablist" aria-label="Transfers">
            <button
                type="button"
                role="tab"
                id="tab-downloads"
                aria-selected=move || (!tab.get()).to_string()
                class:active=move || !tab.get()
                on:click=move |_| tab.set(false)
            >
                "Downloads"
            </button>
            <button
                type="button"
                role="tab"
                id="tab-uploads"
                aria-selected=move || tab.get().to_string()
                class:active=move || tab.get()
                on:click=move |_| tab.set(true)
            >
                {move || match up_count() {
                    0 => "Uploads".to_owned(),
                    n => format!("Uploads ({n})"),
                }}
            </button>
        </div>
        <div hidden=move || tab.get()>
            <Downloads />
        </div>
        <div hidden=move || !tab.get()>
            <Uploads />
        </div>
    }
}

#[component]
fn Downloads() -> impl IntoView {
    let live = expect_context::<Live>();
    let ids = move || live.downloads.with(|l| l.iter().rev().map(|d| d.id).collect::<Vec<_>>());
    view! {
        <Show
            when=move || live.downloads.with(|l| !l.is_empty())
            fallback=move || {
                view! {
                    <p class="empty card" id="downloads-empty">
                        {move || {
                            if live.downloads_loaded.get() {
                                "Nothing downloading. Find something on the Browse page and tap its download button."
                            } else {
                                "Loading downloads…"
                            }
                        }}
                    </p>
                }
            }
        >
            <ul class="download-list" id="download-list">
                <For each=ids key=|id| *id let:id>
                    <DownloadCard id=id />
                </For>
            </ul>
        </Show>
    }
}

/// `37%` of a byte count, guarding against zero.
fn percent(done: u64, total: u64) -> f64 {
    if total == 0 { 0.0 } else { (done as f64 * 100.0 / total as f64).min(100.0) }
}

/// A progress bar with an accessible value.
fn bar(done: u64, total: u64, label: String, state: &'static str) -> impl IntoView {
    let pct = percent(done, total);
    view! {
        <div
            class=format!("bar bar-{state}")
            role="progressbar"
            aria-label=label
            aria-valuemin="0"
            aria-valuemax="100"
            aria-valuenow=format!("{pct:.0}")
        >
            <div class="bar-fill" style=format!("width: {pct:.1}%")></div>
        </div>
    }
}

/// `5 min left`, `40 s left`, `2 h 5 min left`.
fn eta_words(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s left"),
        60..3600 => format!("{} min left", secs.div_ceil(60)),
        _ => format!("{} h {} min left", secs / 3600, (secs % 3600) / 60),
    }
}

#[component]
fn DownloadCard(id: u64) -> impl IntoView {
    let session = expect_context::<Session>();
    let live = expect_context::<Live>();
    let info = Memo::new(move |_| live.downloads.with(|l| l.iter().find(|d| d.id == id).cloned()));
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let show_files = RwSignal::new(false);

    let act = move |action: &'static str| {
        if action == "cancel"
            && !browser::confirm("Cancel this download? Files not yet complete are deleted; finished ones stay.")
        {
            return;
        }
        busy.set(true);
        spawn_local(async move {
            let result = session.call(|t| async move { api::download_action(&t, id, action).await }).await;
            busy.try_set(false);
            match result {
                Ok(Some(d)) => {
                    live.upsert_download(d);
                    error.try_set(None);
                }
                Ok(None) => {
                    live.downloads.try_update(|l| l.retain(|d| d.id != id));
                }
                Err(e) => {
                    error.try_set(Some(e.to_string()));
                }
            }
        });
    };

    // One of the card's action buttons, shown when `show`.
    let button = move |show: bool, label: &'static str, class: &'static str, action: &'static str| {
        show.then(|| {
            view! {
                <button type="button" class=class disabled=move || busy.get() on:click=move |_| act(action)>
                    {label}
                </button>
            }
        })
    };

    view! {
        {move || {
            info.get()
                .map(|d| {
                    let (_, name) = split_dir_name(&d.path);
                    let name = shown(if name.is_empty() { &d.path } else { name }).into_owned();
                    let state = d.state;
                    let pct = percent(d.bytes_done, d.bytes_total);
                    let mut line = vec![
                        format!("{} of {}", format_size(d.bytes_done), format_size(d.bytes_total)),
                        format!("{} of {}", d.files_done, plural(d.files_total, "file", "files")),
                    ];
                    if d.listing {
                        line.push("still listing".into());
                    }
                    if d.rate > 0 {
                        line.push(format!("{}/s", format_size(d.rate)));
                    }
                    if let Some(eta) = d.eta_secs {
                        line.push(eta_words(eta));
                    }
                    let failed = d.files_failed;
                    let can_pause = matches!(state, DownloadState::Queued | DownloadState::Active);
                    let can_resume = state == DownloadState::Paused;
                    let can_retry = failed > 0 || state == DownloadState::Failed;
                    let finished = state.is_finished();
                    view! {
                        <li
                            class="card download"
                            data-id=id.to_string()
                            data-state=state.as_str()
                            data-percent=format!("{pct:.0}")
                        >
                            <div class="download-head">
                                <div class="download-title">
                                    <h3 class="download-name">{name.clone()}</h3>
                                    <p class="muted download-from">
                                        {format!("from {} · {}", d.peer_name, shown(&d.path))}
                                    </p>
                                </div>
                                <span class=format!("badge state-{}", state.as_str())>{state_words(state)}</span>
                            </div>
                            {bar(d.bytes_done, d.bytes_total, format!("{name} progress"), state.as_str())}
                            <p class="download-line">
                                <strong class="pct">{format!("{pct:.0}%")}</strong>
                                " · "
                                {line.join(" · ")}
                            </p>
                            {(failed > 0)
                                .then(|| {
                                    view! {
                                        <p class="field-error">{format!("{} failed", plural(failed, "file", "files"))}</p>
                                    }
                                })}
                            {d.waiting.clone().map(|w| view! { <p class="waiting">{w}</p> })}
                            {d.error.clone().map(|e| view! { <p class="field-error">{e}</p> })}
                            {(!d.active.is_empty())
                                .then(|| {
                                    view! {
                                        <ul class="active-files">
                                            {d
                                                .active
                                                .iter()
                                                .map(|f| {
                                                    let (_, n) = split_dir_name(&f.path);
                                                    view! {
                                                        <li>
                                                            <span class="active-name">{shown(n).into_owned()}</span>
                                                            {bar(f.bytes_done, f.size, format!("{n} progress"), "active")}
                                                        </li>
                                                    }
                                                })
                                                .collect_view()}
                                        </ul>
                                    }
                                })}
                            <div class="actions">
                                {button(can_pause, "Pause", "btn dl-pause", "pause")}
                                {button(can_resume, "Resume", "btn btn-primary dl-resume", "resume")}
                                {button(can_retry, "Retry failed", "btn dl-retry", "retry")}
                                <button
                                    type="button"
                                    class="btn dl-files"
                                    aria-expanded=move || show_files.get().to_string()
                                    on:click=move |_| show_files.update(|s| *s = !*s)
                                >
                                    {move || {
                                        if show_files.get() {
                                            "Hide files"
                                        } else if finished {
                                            "Open"
                                        } else {
                                            "Files"
                                        }
                                    }}
                                </button>
                                {button(!finished, "Cancel", "btn btn-danger dl-cancel", "cancel")}
                                // Cancelling a finished download only forgets it.
                                {button(finished, "Remove", "btn btn-ghost dl-forget", "cancel")}
                            </div>
                            {move || error.get().map(|e| view! { <p class="field-error" role="alert">{e}</p> })}
                        </li>
                    }
                })
        }}
        <Show when=move || show_files.get()>
            <FileList id=id />
        </Show>
    }
}

fn state_words(state: DownloadState) -> &'static str {
    match state {
        DownloadState::Queued => "queued",
        DownloadState::Active => "downloading",
        DownloadState::Paused => "paused",
        DownloadState::Done => "done",
        DownloadState::Failed => "failed",
    }
}

/// The files of one download, a page at a time.
#[component]
fn FileList(id: u64) -> impl IntoView {
    let session = expect_context::<Session>();
    let live = expect_context::<Live>();
    let files = RwSignal::new(Vec::<FileInfo>::new());
    let cursor = RwSignal::new(Some(0u64));
    let error = RwSignal::new(None::<String>);
    let loading = RwSignal::new(false);

    let load = move |reset: bool| {
        let from = if reset { 0 } else { cursor.get_untracked().unwrap_or(0) };
        loading.set(true);
        spawn_local(async move {
            let result = session.call(|t| async move { api::download_files(&t, id, from, FILES_PAGE).await }).await;
            loading.try_set(false);
            match result {
                Ok(page) => {
                    if reset {
                        files.try_set(page.files);
                    } else {
                        files.try_update(|f| f.extend(page.files));
                    }
                    cursor.try_set(page.cursor);
                }
                Err(e) => {
                    error.try_set(Some(e.to_string()));
                }
            }
        });
    };
    load(true);
    // Follow the download: reload the first page when its counts move.
    let counts = Memo::new(move |_| {
        live.downloads.with(|l| l.iter().find(|d| d.id == id).map(|d| (d.files_done, d.files_failed, d.state)))
    });
    Effect::new(move |prev: Option<()>| {
        counts.track();
        if prev.is_some() && files.with_untracked(|f| f.len() as u32 <= FILES_PAGE) {
            load(true);
        }
    });

    view! {
        <div class="card file-panel" id=format!("files-{id}")>
            {move || error.get().map(|e| view! { <p class="field-error">{e}</p> })}
            <ul class="file-list">
                <For each=move || files.get() key=|f| (f.seq, f.state.as_str(), f.bytes_done, f.attempts) let:file>
                    <FileRow id=id file=file files=files />
                </For>
            </ul>
            <Show when=move || cursor.get().is_some() && !files.with(Vec::is_empty)>
                <button type="button" class="btn btn-block" disabled=move || loading.get() on:click=move |_| load(false)>
                    "More files"
                </button>
            </Show>
        </div>
    }
}

#[component]
fn FileRow(id: u64, file: FileInfo, files: RwSignal<Vec<FileInfo>>) -> impl IntoView {
    let session = expect_context::<Session>();
    let nav = expect_context::<Nav>();
    let (_, name) = split_dir_name(&file.path);
    let name = shown(name).into_owned();
    let seq = file.seq;
    let state = file.state;
    let act = move |action: &'static str| {
        spawn_local(async move {
            if let Ok(f) = session.call(|t| async move { api::file_action(&t, id, seq, action).await }).await {
                files.try_update(|l| {
                    if let Some(old) = l.iter_mut().find(|x| x.seq == f.seq) {
                        *old = f;
                    }
                });
            }
        });
    };
    let url = hdp_proto::api::media_url_download(id, seq);
    let play_name = name.clone();
    let play_url = url.clone();
    let playable = hdp_proto::api::MediaKind::of(&name).is_some();
    let play_label = match hdp_proto::api::MediaKind::of(&name) {
        Some(hdp_proto::api::MediaKind::Audio | hdp_proto::api::MediaKind::Video) => "Play",
        _ => "View",
    };
    view! {
        <li class="file-row" data-seq=seq.to_string() data-state=state.as_str()>
            <div class="file-text">
                <span class="file-name">{name.clone()}</span>
                <span class="entry-meta">
                    {format!(
                        "{} · {} of {}{}",
                        state.as_str(),
                        format_size(file.bytes_done),
                        format_size(file.size),
                        file.error.as_ref().map(|e| format!(" · {e}")).unwrap_or_default(),
                    )}
                </span>
            </div>
            <div class="file-actions">
                {match state {
                    FileState::Done => {
                        view! {
                            {playable
                                .then(|| {
                                    view! {
                                        <button
                                            type="button"
                                            class="btn btn-small btn-primary"
                                            on:click=move |_| {
                                                nav.play(play_url.clone(), &play_name, None);
                                            }
                                        >
                                            {play_label}
                                        </button>
                                    }
                                })}
                            <a class="btn btn-small" href=url.clone() target="_blank" rel="noopener">
                                "Open"
                            </a>
                        }
                            .into_any()
                    }
                    other => {
                        let (label, action) = match other {
                            FileState::Paused => ("Resume", "resume"),
                            FileState::Failed | FileState::Cancelled => ("Retry", "retry"),
                            _ => ("Pause", "pause"),
                        };
                        view! {
                            <button type="button" class="btn btn-small" on:click=move |_| act(action)>
                                {label}
                            </button>
                        }
                            .into_any()
                    }
                }}
            </div>
        </li>
    }
}

#[component]
fn Uploads() -> impl IntoView {
    let live = expect_context::<Live>();
    view! {
        <p class="list-status muted" id="uploads-status">
            {move || {
                live.uploads
                    .with(|u| {
                        let active = u.uploads.iter().filter(|x| x.finished.is_none()).count() as u64;
                        let mut parts = vec![
                            format!("{} sending", plural(active, "file", "files")),
                            format!("{}/s", format_size(u.rate)),
                            plural(u.slots as u64, "slot", "slots"),
                        ];
                        if u.waiting > 0 {
                            parts.push(format!("{} waiting", u.waiting));
                        }
                        parts.join(" · ")
                    })
            }}
        </p>
        <Show
            when=move || live.uploads.with(|u| !u.uploads.is_empty())
            fallback=|| {
                view! {
                    <p class="empty card" id="uploads-empty">
                        "Nobody is downloading from you right now."
                    </p>
                }
            }
        >
            <ul class="entry-list card" id="upload-list">
                <For
                    each=move || live.uploads.get().uploads
                    key=|u| (u.peer, u.path.clone(), u.started, u.sent, u.finished)
                    let:up
                >
                    <UploadRow up=up />
                </For>
            </ul>
        </Show>
    }
}

#[component]
fn UploadRow(up: UploadInfo) -> impl IntoView {
    let (_, name) = split_dir_name(&up.path);
    let name = shown(name).into_owned();
    let state = match up.finished {
        None => "active",
        Some(true) => "done",
        Some(false) => "failed",
    };
    let mut line =
        vec![format!("to {}", up.peer_name), format!("{} of {}", format_size(up.sent), format_size(up.length))];
    match up.finished {
        None => line.push(format!("{}/s", format_size(up.rate))),
        Some(true) => line.push("sent".into()),
        Some(false) => line.push("stopped early".into()),
    }
    view! {
        <li class="upload" data-state=state>
            <div class="file-text">
                <span class="file-name">{name.to_owned()}</span>
                <span class="entry-meta">{line.join(" · ")}</span>
                {bar(up.sent, up.length.max(1), format!("{name} sent"), state)}
            </div>
        </li>
    }
}
