//! The Shares page: the directories this node shares, adding one (typed,
//! or picked from the node's own filesystem), removing and rescanning them,
//! choosing which topics' peers see each, with scan progress that follows
//! the event stream.

use hdp_proto::api::{AddShare, ShareInfo, ShareUpdate};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api;
use crate::app::{Nav, Source};
use crate::browser;
use crate::live::Live;
use crate::picker::DirPicker;
use crate::session::Session;
use hdp_proto::fmt::{format_duration_ms, format_size, plural};

/// The list of shares and the form to add one.
#[component]
pub fn Shares() -> impl IntoView {
    let live = expect_context::<Live>();
    let nav = expect_context::<Nav>();
    let shares = live.shares;
    let error = RwSignal::new(None::<String>);
    let on_browse = Callback::new(move |name: String| nav.browse(Source::Me, name));
    let names = move || shares.with(|l| l.iter().flatten().map(|s| s.name.clone()).collect::<Vec<_>>());

    view! {
        <div class="section-head">
            <h2>"Shares"</h2>
            <p class="muted">"Folders on this node that your peers can browse."</p>
        </div>
        <AddShareForm shares=shares />
        {move || {
            error
                .get()
                .map(|e| {
                    view! {
                        <div class="notice error" role="alert" id="shares-error">
                            <span>{e}</span>
                        </div>
                    }
                })
        }}
        <Show when=move || shares.with(Option::is_some) fallback=|| view! { <p class="loading">"Loading shares…"</p> }>
            <Show
                when=move || shares.with(|l| l.as_ref().is_some_and(|l| !l.is_empty()))
                fallback=|| {
                    view! {
                        <p class="empty card" id="shares-empty">
                            "No shares yet. Choose a folder on the node above to share it."
                        </p>
                    }
                }
            >
                <ul id="share-list" class="share-list">
                    <For each=names key=|name| name.clone() let:name>
                        <ShareCard name=name shares=shares on_browse=on_browse error=error />
                    </For>
                </ul>
            </Show>
        </Show>
    }
}

/// The "share a folder" form.
#[component]
fn AddShareForm(shares: RwSignal<Option<Vec<ShareInfo>>>) -> impl IntoView {
    let session = expect_context::<Session>();
    let path = RwSignal::new(String::new());
    let adding = RwSignal::new(false);
    let add_error = RwSignal::new(None::<String>);
    let picking = RwSignal::new(false);

    let add = move |dir: String| {
        if adding.get_untracked() {
            return;
        }
        let dir = dir.trim().to_string();
        if dir.is_empty() {
            add_error.set(Some("Enter the path of a folder on the node.".into()));
            return;
        }
        adding.set(true);
        add_error.set(None);
        spawn_local(async move {
            let result =
                session.call(|t| async move { api::add_share(&t, &AddShare { path: dir, topics: None }).await }).await;
            adding.set(false);
            match result {
                Ok(share) => {
                    shares.update(|l| upsert(l.get_or_insert_with(Vec::new), share));
                    path.set(String::new());
                    picking.set(false);
                }
                Err(e) => add_error.set(Some(e.to_string())),
            }
        });
    };

    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        add(path.get_untracked());
    };
    let on_pick = Callback::new(move |dir: String| add(dir));

    view! {
        <form id="add-share-form" class="card add-share" on:submit=on_submit>
            <label for="add-share-path">"Share a folder"</label>
            <div class="input-row">
                <input
                    id="add-share-path"
                    name="path"
                    type="text"
                    inputmode="url"
                    autocomplete="off"
                    autocapitalize="none"
                    spellcheck="false"
                    placeholder="/home/me/Music"
                    bind:value=path
                />
                <button type="submit" class="btn btn-primary" disabled=move || adding.get()>
                    {move || if adding.get() { "Adding…" } else { "Add" }}
                </button>
            </div>
            <p class="hint">"A directory path on the node's disk, not on this device."</p>
            <button
                type="button"
                class="btn btn-block"
                id="choose-folder"
                aria-expanded=move || picking.get().to_string()
                on:click=move |_| picking.update(|p| *p = !*p)
            >
                {move || if picking.get() { "Close the folder list" } else { "Choose a folder…" }}
            </button>
            <Show when=move || picking.get()>
                <DirPicker action="Share this folder" on_pick=on_pick />
            </Show>
            {move || {
                add_error
                    .get()
                    .map(|e| {
                        view! {
                            <p class="field-error" role="alert" id="add-share-error">
                                {e}
                            </p>
                        }
                    })
            }}
        </form>
    }
}

/// Replaces the share with the same name, or appends it.
fn upsert(list: &mut Vec<ShareInfo>, share: ShareInfo) {
    match list.iter_mut().find(|s| s.name == share.name) {
        Some(old) => *old = share,
        None => list.push(share),
    }
}

/// One share: its numbers, scan state and actions. Reads its data from
/// `shares` by name, so polling updates it in place.
#[component]
fn ShareCard(
    name: String,
    shares: RwSignal<Option<Vec<ShareInfo>>>,
    on_browse: Callback<String>,
    error: RwSignal<Option<String>>,
) -> impl IntoView {
    let session = expect_context::<Session>();
    let share = Memo::new({
        let name = name.clone();
        move |_| shares.with(|l| l.iter().flatten().find(|s| s.name == name).cloned())
    });
    let busy = RwSignal::new(false);

    let rescan = {
        let name = name.clone();
        move |_| {
            busy.set(true);
            let name = name.clone();
            spawn_local(async move {
                let result = session.call(|t| async move { api::rescan_share(&t, &name).await }).await;
                busy.set(false);
                match result {
                    Ok(s) => shares.update(|l| upsert(l.get_or_insert_with(Vec::new), s)),
                    Err(e) => error.set(Some(e.to_string())),
                }
            });
        }
    };

    let remove = {
        let name = name.clone();
        move |_| {
            let question = format!(
                "Stop sharing \u{201c}{name}\u{201d}?\n\nPeers will no longer see it. The files themselves are not deleted."
            );
            if !browser::confirm(&question) {
                return;
            }
            busy.set(true);
            let name = name.clone();
            spawn_local(async move {
                let result = session
                    .call(|t| {
                        let name = name.clone();
                        async move { api::remove_share(&t, &name).await }
                    })
                    .await;
                busy.set(false);
                match result {
                    Ok(_) => shares.update(|l| l.iter_mut().for_each(|l| l.retain(|s| s.name != name))),
                    Err(e) => error.set(Some(e.to_string())),
                }
            });
        }
    };

    let browse = {
        let name = name.clone();
        move |_| on_browse.run(name.clone())
    };

    let scanning = move || share.with(|s| s.as_ref().is_some_and(|s| s.scanning));

    view! {
        <li class="card share" data-name=name.clone() class:scanning=scanning>
            <div class="share-head">
                <h3 class="share-name">{name.clone()}</h3>
                {move || {
                    share
                        .with(|s| {
                            let s = s.as_ref()?;
                            Some(
                                if s.scanning {
                                    view! { <span class="badge badge-scanning">"scanning…"</span> }
                                        .into_any()
                                } else if s.error.is_some() {
                                    view! { <span class="badge badge-error">"scan failed"</span> }
                                        .into_any()
                                } else {
                                    view! { <span class="badge badge-ok">"indexed"</span> }.into_any()
                                },
                            )
                        })
                }}
            </div>
            <p class="share-path mono" title="Folder on the node">
                {move || share.with(|s| s.as_ref().map(|s| s.path.clone()))}
            </p>
            <p class="share-stats">
                {move || {
                    share
                        .with(|s| {
                            s.as_ref()
                                .map(|s| {
                                    format!(
                                        "{} · {} · {}",
                                        plural(s.files, "file", "files"),
                                        plural(s.dirs, "folder", "folders"),
                                        format_size(s.size),
                                    )
                                })
                        })
                }}
            </p>
            <p class="share-scan muted">{move || share.with(|s| s.as_ref().map(scan_summary))}</p>
            {move || {
                share
                    .with(|s| s.as_ref().and_then(|s| s.error.clone()))
                    .map(|e| view! { <p class="share-error field-error">{e}</p> })
            }}
            <ShareTopics name=name.clone() share=share shares=shares error=error />
            <div class="actions">
                <button type="button" class="btn" on:click=browse>
                    "Browse"
                </button>
                <button
                    type="button"
                    class="btn"
                    disabled=move || busy.get() || scanning()
                    on:click=rescan
                >
                    "Rescan"
                </button>
                <button type="button" class="btn btn-danger" disabled=move || busy.get() on:click=remove>
                    "Remove"
                </button>
            </div>
        </li>
    }
}

/// Who sees a share, and the editor that chooses it: every topic, or a
/// set of them (the topics we are on, and any the share names that we
/// left). Saved with `PATCH /api/shares/{name}`; effective at once.
#[component]
fn ShareTopics(
    name: String,
    share: Memo<Option<ShareInfo>>,
    shares: RwSignal<Option<Vec<ShareInfo>>>,
    error: RwSignal<Option<String>>,
) -> impl IntoView {
    let session = expect_context::<Session>();
    let live = expect_context::<Live>();
    let editing = RwSignal::new(false);
    let saving = RwSignal::new(false);
    // The editor's state: every topic, or the chosen ones.
    let all = RwSignal::new(true);
    let chosen = RwSignal::new(Vec::<String>::new());
    let seen_by = move || {
        share.with(|s| match s.as_ref().map(|s| &s.topics) {
            Some(None) | None => "every topic".to_string(),
            Some(Some(t)) if t.is_empty() => "nobody (no topic chosen)".to_string(),
            Some(Some(t)) => t.join(", "),
        })
    };
    let open = move |_| {
        let current = share.with_untracked(|s| s.as_ref().and_then(|s| s.topics.clone()));
        all.set(current.is_none());
        chosen.set(current.unwrap_or_default());
        editing.set(true);
    };
    let choices = move || {
        let mut names: Vec<String> = live.topics.with(|t| t.iter().map(|t| t.name.clone()).collect());
        for t in chosen.get() {
            if !names.contains(&t) {
                names.push(t);
            }
        }
        names
    };
    let save = {
        let name = name.clone();
        Callback::new(move |()| {
            let topics = if all.get_untracked() { None } else { Some(chosen.get_untracked()) };
            if topics.as_ref().is_some_and(Vec::is_empty) {
                error.set(Some(
                    "Choose at least one topic, or every topic. To hide a share from everyone, remove it.".into(),
                ));
                return;
            }
            let name = name.clone();
            saving.set(true);
            spawn_local(async move {
                let update = ShareUpdate { topics: Some(topics) };
                let result = session
                    .call(|t| {
                        let (name, update) = (name.clone(), update.clone());
                        async move { api::update_share(&t, &name, &update).await }
                    })
                    .await;
                saving.set(false);
                match result {
                    Ok(s) => {
                        shares.update(|l| upsert(l.get_or_insert_with(Vec::new), s));
                        editing.set(false);
                    }
                    Err(e) => error.set(Some(e.to_string())),
                }
            });
        })
    };

    view! {
        <div class="share-topics">
            <p class="share-seen">
                <span class="muted">"Seen by: "</span>
                <span class="share-seen-by">{seen_by}</span>
                <Show when=move || !editing.get()>
                    <button type="button" class="btn btn-small share-topics-edit" on:click=open>
                        "Choose topics"
                    </button>
                </Show>
            </p>
            <Show when=move || editing.get()>
                <fieldset class="share-topics-editor">
                    <legend>"Who sees this share"</legend>
                    <label class="check">
                        <input
                            type="checkbox"
                            class="share-all-topics"
                            prop:checked=move || all.get()
                            on:change=move |ev| all.set(event_target_checked(&ev))
                        />
                        "The peers of every topic I am on"
                    </label>
                    <For each=choices key=|t| t.clone() let:topic>
                        <label class="check">
                            <input
                                type="checkbox"
                                name="share-topic"
                                value=topic.clone()
                                disabled=move || all.get()
                                prop:checked={
                                    let topic = topic.clone();
                                    move || !all.get() && chosen.with(|c| c.contains(&topic))
                                }
                                on:change={
                                    let topic = topic.clone();
                                    move |ev| {
                                        let on = event_target_checked(&ev);
                                        chosen
                                            .update(|c| {
                                                c.retain(|t| *t != topic);
                                                if on {
                                                    c.push(topic.clone());
                                                }
                                            });
                                    }
                                }
                            />
                            {topic.clone()}
                        </label>
                    </For>
                    <p class="hint">
                        "Peers see a share only through a topic it is shown to. A change applies at once, even to peers already connected."
                    </p>
                    <div class="actions">
                        <button
                            type="button"
                            class="btn btn-primary share-topics-save"
                            disabled=move || saving.get()
                            on:click=move |_| save.run(())
                        >
                            {move || if saving.get() { "Saving…" } else { "Save" }}
                        </button>
                        <button type="button" class="btn" on:click=move |_| editing.set(false)>
                            "Cancel"
                        </button>
                    </div>
                </fieldset>
            </Show>
        </div>
    }
}

/// `Scanning…` / `Scanned 5 min ago in 3.2 s` / `Not scanned yet`.
fn scan_summary(s: &ShareInfo) -> String {
    if s.scanning {
        return "Scanning… the numbers grow as files are found.".into();
    }
    match (s.last_scan, s.last_scan_ms) {
        (Some(at), Some(ms)) => format!("Scanned {} in {}", browser::ago_or_date(at), format_duration_ms(ms)),
        (Some(at), None) => format!("Scanned {}", browser::ago_or_date(at)),
        _ => "Not scanned yet".into(),
    }
}
