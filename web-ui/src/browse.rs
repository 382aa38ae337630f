//! The Browse page: one file browser for every connected peer and for this
//! node's own shares. The top level lists the sources; inside one there are
//! breadcrumbs, paged listings ("Load more"), sorting, and search under the
//! current folder. At the top level the search box searches everyone at
//! once and groups the results by peer. A tap downloads a file or a whole
//! folder, or plays a picture, song or video in the browser.

use std::time::Duration;

use hdp_proto::api::{Entry, EntryKind, LsPage, LsQuery, MediaKind};
use hdp_proto::fmt::{breadcrumbs, format_count, format_size, plural, shown, split_dir_name};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{self, ApiFailure};
use crate::app::{Nav, Source, View};
use crate::browser;
use crate::live::Live;
use crate::session::Session;

/// Entries asked for per page.
const PAGE_SIZE: u32 = 200;
/// Results asked from each source when searching everyone.
const SEARCH_ALL_LIMIT: u32 = 50;
/// Quiet time after the last keystroke before searching.
const SEARCH_DEBOUNCE: Duration = Duration::from_millis(300);

/// How the loaded entries are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    Name,
    Size,
    Date,
}

/// What the list currently shows, replaced as a whole so source, path,
/// search and entries never disagree.
#[derive(Debug, Clone, Default, PartialEq)]
struct Listing {
    source: Option<Source>,
    path: String,
    search: String,
    entries: Vec<Entry>,
    cursor: Option<String>,
    /// At least one answer arrived for this location and search.
    loaded: bool,
}

/// One source's answer to a search of everyone.
#[derive(Debug, Clone, PartialEq)]
struct Group {
    source: Source,
    label: String,
    result: Result<LsPage, String>,
}

async fn fetch(session: Session, source: Source, query: LsQuery) -> Result<LsPage, ApiFailure> {
    session
        .call(|t| async move {
            match source.peer() {
                Some(p) => api::ls_peer(&t, p, &query).await,
                None => api::ls(&t, &query).await,
            }
        })
        .await
}

#[component]
pub fn Browse() -> impl IntoView {
    let session = expect_context::<Session>();
    let nav = expect_context::<Nav>();
    let live = expect_context::<Live>();
    let active = Signal::derive(move || nav.view.get() == View::Browse);
    let listing = RwSignal::new(Listing::default());
    let groups = RwSignal::new(Vec::<Group>::new());
    let loading = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let notice = RwSignal::new(None::<String>);
    let sort = RwSignal::new(Sort::Name);
    let search_input = RwSignal::new(String::new());
    let search = RwSignal::new(String::new());
    // Bumped for every request and keystroke so stale answers and timers are dropped.
    let request_gen = StoredValue::new(0u64);
    let input_gen = StoredValue::new(0u64);

    let load = move |source: Source, dir: String, term: String, cursor: Option<String>| {
        let append = cursor.is_some();
        let generation = request_gen.try_get_value().unwrap_or(0).wrapping_add(1);
        request_gen.set_value(generation);
        loading.set(true);
        if !append {
            error.set(None);
        }
        if source == Source::All {
            // The list of sources needs no request; a search asks everyone.
            listing.set(Listing {
                source: Some(Source::All),
                search: term.clone(),
                loaded: true,
                ..Listing::default()
            });
            if term.is_empty() {
                groups.set(Vec::new());
                loading.set(false);
                return;
            }
            let mut sources = vec![(Source::Me, "This node".to_owned())];
            for p in live.connected_peers() {
                let name = p.name.clone().unwrap_or_default();
                sources.push((Source::Peer(name.clone()), name));
            }
            groups.set(
                sources
                    .iter()
                    .map(|(s, l)| Group { source: s.clone(), label: l.clone(), result: Err("Searching…".into()) })
                    .collect(),
            );
            let pending = StoredValue::new(sources.len());
            for (source, _) in sources {
                let query = LsQuery { search: Some(term.clone()), limit: Some(SEARCH_ALL_LIMIT), ..LsQuery::default() };
                spawn_local(async move {
                    let result = fetch(session, source.clone(), query).await.map_err(|e| e.to_string());
                    if request_gen.try_get_value() != Some(generation) {
                        return;
                    }
                    groups.update(|g| {
                        if let Some(slot) = g.iter_mut().find(|x| x.source == source) {
                            slot.result = result;
                        }
                    });
                    pending.update_value(|n| *n = n.saturating_sub(1));
                    if pending.get_value() == 0 {
                        loading.set(false);
                    }
                });
            }
            return;
        }
        let query = LsQuery {
            path: (!dir.is_empty()).then(|| dir.clone()),
            recursive: false,
            search: (!term.is_empty()).then(|| term.clone()),
            cursor,
            limit: Some(PAGE_SIZE),
        };
        spawn_local(async move {
            let result = fetch(session, source.clone(), query).await;
            if request_gen.try_get_value() != Some(generation) {
                return;
            }
            loading.set(false);
            match result {
                Ok(page) if append => listing.update(|l| {
                    l.entries.extend(page.entries);
                    l.cursor = page.cursor;
                }),
                Ok(page) => listing.set(Listing {
                    source: Some(source),
                    path: dir,
                    search: term,
                    entries: page.entries,
                    cursor: page.cursor,
                    loaded: true,
                }),
                Err(e) => {
                    if !append {
                        listing.set(Listing { source: Some(source), path: dir, search: term, ..Listing::default() });
                    }
                    error.set(Some(e.to_string()));
                }
            }
        });
    };

    // (Re)load whenever the location or the search changes, and on showing the page.
    Effect::new(move |_| {
        let source = nav.source.get();
        let dir = nav.path.get();
        let term = search.get();
        if active.get() {
            load(source, dir, term, None);
        }
    });

    let go = move |source: Source, dir: String| {
        input_gen.update_value(|g| *g = g.wrapping_add(1));
        search_input.set(String::new());
        search.set(String::new());
        notice.set(None);
        nav.source.set(source);
        nav.path.set(dir);
        browser::scroll_to_top();
        // Keep the deepest crumb in view on a narrow screen.
        set_timeout(|| browser::scroll_right("breadcrumbs"), Duration::from_millis(0));
    };

    let on_input = move |ev: leptos::ev::Event| {
        let text = event_target_value(&ev);
        search_input.set(text.clone());
        let generation = input_gen.try_get_value().unwrap_or(0).wrapping_add(1);
        input_gen.set_value(generation);
        set_timeout(
            move || {
                if input_gen.try_get_value() == Some(generation) {
                    search.set(text.trim().to_string());
                }
            },
            SEARCH_DEBOUNCE,
        );
    };

    let on_search = move |ev: SubmitEvent| {
        ev.prevent_default();
        input_gen.update_value(|g| *g = g.wrapping_add(1));
        let term = search_input.get_untracked().trim().to_string();
        if term == search.get_untracked() {
            load(nav.source.get_untracked(), nav.path.get_untracked(), term, None);
        } else {
            search.set(term);
        }
    };

    let clear_search = move |_| {
        input_gen.update_value(|g| *g = g.wrapping_add(1));
        search_input.set(String::new());
        search.set(String::new());
    };

    let load_more = move |_| {
        let (source, dir, term, cursor) = listing.with_untracked(|l| {
            (l.source.clone().unwrap_or(Source::All), l.path.clone(), l.search.clone(), l.cursor.clone())
        });
        if cursor.is_some() && !loading.get_untracked() {
            load(source, dir, term, cursor);
        }
    };

    // Download a peer's file or folder, and say so.
    let download = Callback::new(move |(peer, path): (String, String)| {
        let (_, name) = split_dir_name(&path);
        let name = name.to_owned();
        notice.set(Some(format!("Queuing \u{201c}{name}\u{201d}…")));
        spawn_local(async move {
            let result = session
                .call(|t| {
                    let (peer, path) = (peer.clone(), path.clone());
                    async move { api::start_download(&t, peer, path).await }
                })
                .await;
            match result {
                Ok(info) => {
                    live.upsert_download(info);
                    notice.try_set(Some(format!("\u{201c}{name}\u{201d} is downloading. See Transfers.")));
                }
                Err(e) => {
                    notice.try_set(Some(format!("Could not download \u{201c}{name}\u{201d}: {e}")));
                }
            }
        });
    });

    let placeholder = move || match nav.source.get() {
        Source::All => "Search everyone".to_string(),
        _ => match nav.path.get().rsplit('/').next().filter(|s| !s.is_empty()) {
            Some(name) => format!("Search in {name}"),
            None => "Search all shares".to_string(),
        },
    };

    let sorted = move || {
        let mut entries = listing.with(|l| l.entries.clone());
        match sort.get() {
            Sort::Name => {}
            Sort::Size => entries.sort_by_key(|e| std::cmp::Reverse(e.size)),
            Sort::Date => entries.sort_by_key(|e| std::cmp::Reverse(e.mtime)),
        }
        let full = listing.with(|l| !l.search.is_empty());
        let source = listing.with(|l| l.source.clone().unwrap_or(Source::Me));
        entries.into_iter().map(move |e| (full, source.clone(), e)).collect::<Vec<_>>()
    };

    let at_top = move || nav.source.get() == Source::All;

    view! {
        <div class="section-head">
            <h2>"Browse"</h2>
        </div>
        <Crumbs go=go />
        <form class="search-form" role="search" id="browse-search-form" on:submit=on_search>
            <input
                id="browse-search"
                type="search"
                name="search"
                enterkeyhint="search"
                autocomplete="off"
                autocapitalize="none"
                spellcheck="false"
                aria-label="Search file and folder names"
                placeholder=placeholder
                prop:value=move || search_input.get()
                on:input=on_input
            />
            <Show when=move || search_input.with(|s| !s.is_empty())>
                <button type="button" class="btn btn-ghost" aria-label="Clear search" on:click=clear_search>
                    "✕"
                </button>
            </Show>
            <button type="submit" class="btn">
                "Search"
            </button>
        </form>
        {move || notice.get().map(|n| view! { <p class="notice info" role="status" id="browse-notice">{n}</p> })}
        {move || error.get().map(|e| view! { <p class="notice error" role="alert" id="browse-error">{e}</p> })}
        <Show when=move || at_top() && search.with(String::is_empty)>
            <SourceList go=go />
        </Show>
        <Show when=move || at_top() && !search.with(String::is_empty)>
            <SearchGroups groups=groups go=go download=download />
        </Show>
        <Show when=move || !at_top()>
            <div class="list-tools">
                <p class="list-status muted" aria-live="polite" id="browse-status">
                    {move || status_line(&listing.read(), loading.get())}
                </p>
                <label class="sort">
                    <span class="visually-hidden">"Sort by"</span>
                    <select
                        id="browse-sort"
                        aria-label="Sort by"
                        on:change=move |ev| {
                            sort.set(
                                match event_target_value(&ev).as_str() {
                                    "size" => Sort::Size,
                                    "date" => Sort::Date,
                                    _ => Sort::Name,
                                },
                            )
                        }
                    >
                        <option value="name">"Name"</option>
                        <option value="size">"Largest"</option>
                        <option value="date">"Newest"</option>
                    </select>
                </label>
            </div>
            <Show when=move || listing.with(|l| !l.entries.is_empty())>
                <ul id="browse-list" class="entry-list card">
                    <For
                        each=sorted
                        key=|(full, s, e)| (*full, s.clone(), e.path.clone(), e.size, e.mtime)
                        children=move |(full, source, entry)| {
                            view! {
                                <EntryRow
                                    entry=entry
                                    source=source
                                    show_full_path=full
                                    on_open=go
                                    download=download
                                />
                            }
                        }
                    />
                </ul>
            </Show>
            <Show when=move || listing.with(|l| l.cursor.is_some())>
                <button
                    type="button"
                    id="browse-more"
                    class="btn btn-block load-more"
                    disabled=move || loading.get()
                    on:click=load_more
                >
                    {move || if loading.get() { "Loading…" } else { "Load more" }}
                </button>
            </Show>
        </Show>
    }
}

/// Everyone › source › share › folder…
#[component]
fn Crumbs(go: impl Fn(Source, String) + Copy + Send + Sync + 'static) -> impl IntoView {
    let nav = expect_context::<Nav>();
    view! {
        <nav class="breadcrumbs" aria-label="Folder" id="breadcrumbs">
            <ol>
                <li>
                    <button
                        type="button"
                        class="crumb"
                        class:current=move || nav.source.get() == Source::All
                        on:click=move |_| go(Source::All, String::new())
                    >
                        "Everyone"
                    </button>
                </li>
                {move || {
                    let source = nav.source.get();
                    let path = nav.path.get();
                    let label = match &source {
                        Source::All => return None,
                        Source::Me => "This node".to_owned(),
                        Source::Peer(p) => p.clone(),
                    };
                    let mut crumbs = vec![(label, String::new())];
                    crumbs.extend(breadcrumbs(&path).into_iter().map(|c| (shown(&c.label).into_owned(), c.path)));
                    Some(
                        crumbs
                            .into_iter()
                            .map(|(label, target)| {
                                let current = target == path;
                                let s = source.clone();
                                view! {
                                    <li>
                                        <span class="crumb-sep" aria-hidden="true">
                                            "/"
                                        </span>
                                        <button
                                            type="button"
                                            class="crumb"
                                            class:current=current
                                            aria-current=current.then_some("page")
                                            on:click=move |_| go(s.clone(), target.clone())
                                        >
                                            {label}
                                        </button>
                                    </li>
                                }
                            })
                            .collect_view(),
                    )
                }}
            </ol>
        </nav>
    }
}

/// The top level: this node and every connected peer.
#[component]
fn SourceList(go: impl Fn(Source, String) + Copy + Send + Sync + 'static) -> impl IntoView {
    let live = expect_context::<Live>();
    let nav = expect_context::<Nav>();
    let peers = move || live.connected_peers();
    view! {
        <ul class="entry-list card" id="source-list">
            <SourceRow
                key="me".into()
                avatar="★".into()
                label="This node".into()
                meta="Your own shares".into()
                on_open=Callback::new(move |()| go(Source::Me, String::new()))
            />
            <For each=peers key=|p| p.id let:peer>
                {
                    let name = peer.name.clone().unwrap_or_default();
                    let initial = name.chars().next().unwrap_or('?').to_uppercase().to_string();
                    let target = name.clone();
                    let meta = if peer.topics.is_empty() {
                        "connected".to_owned()
                    } else {
                        format!("on {}", peer.topics.join(", "))
                    };
                    view! {
                        <SourceRow
                            key=name.clone()
                            avatar=initial
                            label=name
                            meta=meta
                            on_open=Callback::new(move |()| go(Source::Peer(target.clone()), String::new()))
                        />
                    }
                }
            </For>
        </ul>
        <Show when=move || peers().is_empty()>
            <p class="empty" id="no-peers">
                "No peers connected. "
                <a href="#/peers" on:click=move |ev| {
                    ev.prevent_default();
                    nav.go(View::Peers);
                }>"Join a topic or connect to a friend"</a>
                " to browse their files."
            </p>
        </Show>
    }
}

/// One row of the source list: an avatar, a name and a line about it.
#[component]
fn SourceRow(key: String, avatar: String, label: String, meta: String, on_open: Callback<()>) -> impl IntoView {
    view! {
        <li class="entry" data-kind="source" data-name=key.clone()>
            <button type="button" class="entry-main entry-open" on:click=move |_| on_open.run(())>
                <span class="avatar" class:me=key == "me" aria-hidden="true">
                    {avatar}
                </span>
                <span class="entry-text">
                    <span class="entry-base">{label}</span>
                    <span class="entry-meta">{meta}</span>
                </span>
                <span class="chevron" aria-hidden="true">
                    "›"
                </span>
            </button>
        </li>
    }
}

/// Search results from everyone, one group per source.
#[component]
fn SearchGroups(
    groups: RwSignal<Vec<Group>>,
    go: impl Fn(Source, String) + Copy + Send + Sync + 'static,
    download: Callback<(String, String)>,
) -> impl IntoView {
    view! {
        <div id="search-groups" class="search-groups">
            <For each=move || groups.get() key=|g| (g.source.clone(), format!("{:?}", g.result)) let:group>
                {
                    let count = match &group.result {
                        Ok(p) => {
                            let more = if p.cursor.is_some() { "+" } else { "" };
                            format!("{}{more}", plural(p.entries.len() as u64, "result", "results"))
                        }
                        Err(e) => e.clone(),
                    };
                    let source = group.source.clone();
                    let entries = group.result.clone().map(|p| p.entries).unwrap_or_default();
                    let empty = entries.is_empty();
                    view! {
                        <section class="search-group" data-source=group.label.clone()>
                            <h3 class="group-title">
                                <span>{group.label.clone()}</span>
                                <span class="muted group-count">{count}</span>
                            </h3>
                            {(!empty)
                                .then(|| {
                                    view! {
                                        <ul class="entry-list card">
                                            {entries
                                                .into_iter()
                                                .map(|e| {
                                                    view! {
                                                        <EntryRow
                                                            entry=e
                                                            source=source.clone()
                                                            show_full_path=true
                                                            on_open=go
                                                            download=download
                                                        />
                                                    }
                                                })
                                                .collect_view()}
                                        </ul>
                                    }
                                })}
                        </section>
                    }
                }
            </For>
        </div>
    }
}

/// `Loading…`, `12 items`, `3 results for “jazz”`, `No matches`, …
fn status_line(l: &Listing, loading: bool) -> String {
    if !l.loaded {
        return if loading { "Loading…".into() } else { String::new() };
    }
    let more = if l.cursor.is_some() { "+" } else { "" };
    let n = l.entries.len() as u64;
    let text = if !l.search.is_empty() {
        if n == 0 {
            format!("No matches for \u{201c}{}\u{201d}", l.search)
        } else {
            format!(
                "{}{more} {} for \u{201c}{}\u{201d}",
                format_count(n),
                if n == 1 && more.is_empty() { "result" } else { "results" },
                l.search
            )
        }
    } else if l.path.is_empty() && n == 0 {
        if l.source == Some(Source::Me) {
            "No shares yet: add one on the Shares page.".into()
        } else {
            "This peer shares nothing yet.".into()
        }
    } else if n == 0 {
        "This folder is empty.".into()
    } else if l.path.is_empty() {
        format!("{}{more} {}", format_count(n), if n == 1 && more.is_empty() { "share" } else { "shares" })
    } else {
        format!("{}{more} {}", format_count(n), if n == 1 && more.is_empty() { "item" } else { "items" })
    };
    if loading { format!("{text} · loading…") } else { text }
}

/// One row: folders open on tap; media files play on tap; a peer's files
/// and folders have a download button.
#[component]
fn EntryRow(
    entry: Entry,
    source: Source,
    show_full_path: bool,
    on_open: impl Fn(Source, String) + Copy + Send + Sync + 'static,
    download: Callback<(String, String)>,
) -> impl IntoView {
    let nav = expect_context::<Nav>();
    let is_dir = entry.kind == EntryKind::Dir;
    let kind = if is_dir { "dir" } else { "file" };
    let mut meta = vec![format_size(entry.size)];
    if let Some(n) = entry.entries.filter(|_| is_dir) {
        meta.push(plural(n, "item", "items"));
    }
    if entry.mtime > 0 {
        meta.push(browser::local_datetime(entry.mtime));
    }
    let meta = meta
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let sep = if i == 0 { "" } else { " · " };
            view! {
                {sep}
                <span>{m}</span>
            }
        })
        .collect_view();

    let label = if show_full_path {
        let (dir, name) = split_dir_name(&entry.path);
        view! {
            <span class="entry-name">
                <span class="entry-dir">{shown(dir).into_owned()}</span>
                <span class="entry-base">{shown(name).into_owned()}</span>
            </span>
        }
        .into_any()
    } else {
        view! {
            <span class="entry-name">
                <span class="entry-base">{shown(&entry.name).into_owned()}</span>
            </span>
        }
        .into_any()
    };
    let media = if is_dir { None } else { MediaKind::of(&entry.name) };
    let icon = if is_dir { folder_icon().into_any() } else { file_icon(file_category(&entry.name)).into_any() };
    let body = view! {
        {icon}
        <span class="entry-text">
            {label}
            <span class="entry-meta">{meta}</span>
        </span>
    };

    let path = entry.path.clone();
    let peer = source.peer().map(str::to_owned);
    let main = if is_dir {
        let s = source.clone();
        view! {
            <button type="button" class="entry-main entry-open" on:click=move |_| on_open(s.clone(), path.clone())>
                {body}
                <span class="chevron" aria-hidden="true">
                    "›"
                </span>
            </button>
        }
        .into_any()
    } else if media.is_some() {
        let name = entry.name.clone();
        let peer = peer.clone();
        view! {
            <button
                type="button"
                class="entry-main entry-open entry-play"
                aria-label=format!("Play {}", entry.name)
                on:click=move |_| {
                    let url = api::media_url(peer.as_deref(), &path);
                    nav.play(url, &name, peer.clone().map(|p| (p, path.clone())));
                }
            >
                {body}
            </button>
        }
        .into_any()
    } else {
        view! { <div class="entry-main">{body}</div> }.into_any()
    };
    let dl = peer.map(|p| {
        let path = entry.path.clone();
        let label = format!("Download {}", entry.name);
        view! {
            <button
                type="button"
                class="icon-btn entry-download"
                aria-label=label.clone()
                title=label
                on:click=move |_| download.run((p.clone(), path.clone()))
            >
                <svg viewBox="0 0 24 24" aria-hidden="true">
                    <path d="M12 4v11m0 0-4.5-4.5M12 15l4.5-4.5M5 19.5h14" />
                </svg>
            </button>
        }
    });

    view! {
        <li class="entry" data-kind=kind data-path=entry.path.clone() data-media=media.map(|m| format!("{m:?}"))>
            {main}
            {dl}
        </li>
    }
}

/// A folder glyph (inline SVG: no icon font, no emoji font needed).
fn folder_icon() -> impl IntoView {
    view! {
        <svg class="entry-icon icon-dir" viewBox="0 0 24 24" aria-hidden="true">
            <path d="M3 6.5A1.5 1.5 0 0 1 4.5 5h4.4l2.2 2.2h8.4A1.5 1.5 0 0 1 21 8.7v8.8a1.5 1.5 0 0 1-1.5 1.5h-15A1.5 1.5 0 0 1 3 17.5z" />
        </svg>
    }
}

/// A page glyph, tinted by `category` (see [`file_category`]).
pub fn file_icon(category: &'static str) -> impl IntoView {
    view! {
        <svg class=format!("entry-icon icon-file icon-{category}") viewBox="0 0 24 24" aria-hidden="true">
            <path d="M6.5 3h7.2L19 8.3v11.2a1.5 1.5 0 0 1-1.5 1.5h-11A1.5 1.5 0 0 1 5 19.5v-15A1.5 1.5 0 0 1 6.5 3z" />
            <path class="fold" d="M13.5 3v5.5H19" />
        </svg>
    }
}

/// A broad kind of file by its extension, for the icon's tint.
pub fn file_category(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "mp3" | "flac" | "ogg" | "opus" | "wav" | "m4a" | "aac" | "aiff" | "wma" => "audio",
        "mp4" | "mkv" | "webm" | "avi" | "mov" | "m4v" | "wmv" => "video",
        "jpg" | "jpeg" | "png" | "gif" | "webp" | "svg" | "heic" | "bmp" | "tiff" => "image",
        "zip" | "tar" | "gz" | "xz" | "bz2" | "7z" | "rar" | "zst" => "archive",
        "pdf" | "epub" | "mobi" | "djvu" | "txt" | "md" | "doc" | "docx" | "odt" | "rtf" => "doc",
        _ => "other",
    }
}
