//! The Browse section: a file browser over this node's own shares, with
//! breadcrumbs, paged listings ("Load more") and search under the current
//! folder.

use std::time::Duration;

use hdp_proto::api::{Entry, EntryKind, LsQuery};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api;
use crate::browser;
use crate::session::Session;
use hdp_proto::fmt::{breadcrumbs, split_dir_name};
use hdp_proto::fmt::{format_count, format_size, plural};

/// Entries asked for per page.
const PAGE_SIZE: u32 = 200;
/// Quiet time after the last keystroke before searching.
const SEARCH_DEBOUNCE: Duration = Duration::from_millis(300);

/// What the list currently shows, replaced as a whole so path, search and
/// entries never disagree.
#[derive(Debug, Clone, Default, PartialEq)]
struct Listing {
    path: String,
    search: String,
    entries: Vec<Entry>,
    cursor: Option<String>,
    /// At least one answer arrived for this path and search.
    loaded: bool,
}

/// The file browser. `path` is the folder shown (`""` lists the shares);
/// the listing loads (and reloads) only while `active`.
#[component]
pub fn Browse(path: RwSignal<String>, #[prop(into)] active: Signal<bool>) -> impl IntoView {
    let session = expect_context::<Session>();
    let listing = RwSignal::new(Listing::default());
    let loading = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    // The text in the search box, and the search actually run (debounced).
    let search_input = RwSignal::new(String::new());
    let search = RwSignal::new(String::new());
    // Bumped for every request and keystroke so stale answers and timers
    // are dropped.
    let request_gen = StoredValue::new(0u64);
    let input_gen = StoredValue::new(0u64);

    let load = move |dir: String, term: String, cursor: Option<String>| {
        let append = cursor.is_some();
        let generation = request_gen.try_get_value().unwrap_or(0).wrapping_add(1);
        request_gen.set_value(generation);
        loading.set(true);
        if !append {
            error.set(None);
        }
        let query = LsQuery {
            path: (!dir.is_empty()).then(|| dir.clone()),
            recursive: false,
            search: (!term.is_empty()).then(|| term.clone()),
            cursor,
            limit: Some(PAGE_SIZE),
        };
        spawn_local(async move {
            let result = session.call(|t| async move { api::ls(&t, &query).await }).await;
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
                    path: dir,
                    search: term,
                    entries: page.entries,
                    cursor: page.cursor,
                    loaded: true,
                }),
                Err(e) => {
                    if !append {
                        listing.set(Listing { path: dir, search: term, ..Listing::default() });
                    }
                    error.set(Some(e.to_string()));
                }
            }
        });
    };

    // (Re)load whenever the folder or the search changes, and on showing the
    // tab (shares may have been added or rescanned meanwhile).
    Effect::new(move |_| {
        let dir = path.get();
        let term = search.get();
        if active.get() {
            load(dir, term, None);
        }
    });

    let go = move |dir: String| {
        input_gen.update_value(|g| *g = g.wrapping_add(1));
        search_input.set(String::new());
        search.set(String::new());
        path.set(dir);
        browser::scroll_to_top();
    };

    let open = Callback::new(go);

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
            // Same search again: run it again (the index may have grown).
            load(path.get_untracked(), term, None);
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
        let (dir, term, cursor) = listing.with_untracked(|l| (l.path.clone(), l.search.clone(), l.cursor.clone()));
        if cursor.is_some() && !loading.get_untracked() {
            load(dir, term, cursor);
        }
    };

    let placeholder = move || {
        let here = path.get();
        match here.rsplit('/').next().filter(|s| !s.is_empty()) {
            Some(name) => format!("Search in {name}"),
            None => "Search all shares".to_string(),
        }
    };

    let searching = move || listing.with(|l| !l.search.is_empty());

    view! {
        <div class="section-head">
            <h2>"Browse"</h2>
        </div>
        <nav class="breadcrumbs" aria-label="Folder" id="breadcrumbs">
            <ol>
                <li>
                    <button
                        type="button"
                        class="crumb"
                        class:current=move || path.with(String::is_empty)
                        on:click=move |_| go(String::new())
                    >
                        "All shares"
                    </button>
                </li>
                {move || {
                    breadcrumbs(&path.get())
                        .into_iter()
                        .map(|c| {
                            let target = c.path.clone();
                            let current = c.path == path.get_untracked();
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
                                        on:click=move |_| go(target.clone())
                                    >
                                        {c.label}
                                    </button>
                                </li>
                            }
                        })
                        .collect_view()
                }}
            </ol>
        </nav>
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
        <p class="list-status muted" aria-live="polite" id="browse-status">
            {move || status_line(&listing.read(), loading.get())}
        </p>
        {move || {
            error
                .get()
                .map(|e| {
                    view! {
                        <p class="notice error" role="alert" id="browse-error">
                            {e}
                        </p>
                    }
                })
        }}
        <Show when=move || listing.with(|l| !l.entries.is_empty())>
            <ul id="browse-list" class="entry-list card" class:search-results=searching>
                <For
                    each=move || {
                        listing
                            .with(|l| {
                                let full = !l.search.is_empty();
                                l.entries.iter().map(|e| (full, e.clone())).collect::<Vec<_>>()
                            })
                    }
                    key=|(full, e)| (*full, e.path.clone(), e.size, e.mtime, e.entries)
                    children=move |(full, entry)| {
                        view! { <EntryRow entry=entry show_full_path=full on_open=open /> }
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
        "No shares yet: add one in the Shares tab.".into()
    } else if n == 0 {
        "This folder is empty.".into()
    } else if l.path.is_empty() {
        format!("{}{more} {}", format_count(n), if n == 1 && more.is_empty() { "share" } else { "shares" })
    } else {
        format!("{}{more} {}", format_count(n), if n == 1 && more.is_empty() { "item" } else { "items" })
    };
    if loading { format!("{text} · loading…") } else { text }
}

/// One row: folders open on tap, files show their size and date.
#[component]
fn EntryRow(entry: Entry, show_full_path: bool, on_open: Callback<String>) -> impl IntoView {
    let is_dir = entry.kind == EntryKind::Dir;
    let kind = if is_dir { "dir" } else { "file" };
    let mut meta = vec![format_size(entry.size)];
    if let Some(n) = entry.entries.filter(|_| is_dir) {
        meta.push(plural(n, "item", "items"));
    }
    if entry.mtime > 0 {
        meta.push(browser::local_datetime(entry.mtime));
    }
    // Each part keeps its words together; lines break at the separators.
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
                <span class="entry-dir">{dir.to_string()}</span>
                <span class="entry-base">{name.to_string()}</span>
            </span>
        }
        .into_any()
    } else {
        view! {
            <span class="entry-name">
                <span class="entry-base">{entry.name.clone()}</span>
            </span>
        }
        .into_any()
    };
    let icon = if is_dir { folder_icon().into_any() } else { file_icon(file_category(&entry.name)).into_any() };
    let body = view! {
        {icon}
        <span class="entry-text">
            {label}
            <span class="entry-meta">{meta}</span>
        </span>
    };

    let path = entry.path.clone();
    view! {
        <li class="entry" data-kind=kind data-path=entry.path.clone()>
            {if is_dir {
                view! {
                    <button
                        type="button"
                        class="entry-main entry-open"
                        on:click=move |_| on_open.run(path.clone())
                    >
                        {body}
                        <span class="chevron" aria-hidden="true">
                            "›"
                        </span>
                    </button>
                }
                    .into_any()
            } else {
                view! { <div class="entry-main">{body}</div> }.into_any()
            }}
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
fn file_icon(category: &'static str) -> impl IntoView {
    view! {
        <svg class=format!("entry-icon icon-file icon-{category}") viewBox="0 0 24 24" aria-hidden="true">
            <path d="M6.5 3h7.2L19 8.3v11.2a1.5 1.5 0 0 1-1.5 1.5h-11A1.5 1.5 0 0 1 5 19.5v-15A1.5 1.5 0 0 1 6.5 3z" />
            <path class="fold" d="M13.5 3v5.5H19" />
        </svg>
    }
}

/// A broad kind of file by its extension, for the icon's tint.
fn file_category(name: &str) -> &'static str {
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
