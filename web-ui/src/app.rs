//! The application shell: login gating, the header (node name and the state
//! of the link to the node), the page chosen by the address bar's fragment
//! (`#/peers`, `#/browse`, …) and the bottom navigation.
//!
//! The shell provides three contexts the pages share: [`Session`],
//! [`Live`] (the event stream's signals) and [`Nav`] (the page, the browse
//! location and the media player), so a page can send the user to another
//! (a share's "Browse", a peer's "Browse", "Play").

use hdp_proto::api::{Info, MediaKind};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{self, ApiFailure};
use crate::browse::Browse;
use crate::home::Home;
use crate::live::{Link, Live};
use crate::login::Login;
use crate::player::Player;
use crate::session::Session;
use crate::settings::SettingsPage;
use crate::shares::Shares;
use crate::transfers::Transfers;

/// The pages of the app, in navigation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Peers,
    Browse,
    Transfers,
    Shares,
    Settings,
}

const VIEWS: [View; 5] = [View::Peers, View::Browse, View::Transfers, View::Shares, View::Settings];

impl View {
    fn label(self) -> &'static str {
        match self {
            View::Peers => "Peers",
            View::Browse => "Browse",
            View::Transfers => "Transfers",
            View::Shares => "Shares",
            View::Settings => "Settings",
        }
    }

    /// The fragment name (`#/peers`) and element id stem (`nav-peers`, `view-peers`).
    pub fn slug(self) -> &'static str {
        match self {
            View::Peers => "peers",
            View::Browse => "browse",
            View::Transfers => "transfers",
            View::Shares => "shares",
            View::Settings => "settings",
        }
    }

    fn from_hash(hash: &str) -> View {
        let slug = hash.trim_start_matches('#').trim_start_matches('/');
        VIEWS.into_iter().find(|v| v.slug() == slug).unwrap_or(View::Peers)
    }

    /// A 24×24 outline icon.
    fn icon(self) -> &'static str {
        match self {
            View::Peers => {
                "M8 11a3 3 0 1 0 0-6 3 3 0 0 0 0 6zm8 0a3 3 0 1 0 0-6 3 3 0 0 0 0 6zM2.5 19c.6-3 2.8-5 5.5-5s4.9 2 5.5 5M13.6 14.6c.7-.4 1.5-.6 2.4-.6 2.7 0 4.9 2 5.5 5"
            }
            View::Browse => {
                "M3 6.5A1.5 1.5 0 0 1 4.5 5h4.4l2.2 2.2h8.4A1.5 1.5 0 0 1 21 8.7v8.8a1.5 1.5 0 0 1-1.5 1.5h-15A1.5 1.5 0 0 1 3 17.5z"
            }
            View::Transfers => "M8 4v13m0 0-4-4m4 4 4-4M16 20V7m0 0-4 4m4-4 4 4",
            View::Shares => {
                "M12 3v12m0-12L7.5 7.5M12 3l4.5 4.5M5 13v5.5A1.5 1.5 0 0 0 6.5 20h11a1.5 1.5 0 0 0 1.5-1.5V13"
            }
            View::Settings => "M4 7h10m4 0h2M4 17h4m4 0h8M16 5v4M10 15v4",
        }
    }
}

/// Where a browse location points: everyone (the list of sources), this
/// node's own shares, or a connected peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    All,
    Me,
    Peer(String),
}

impl Source {
    /// The peer name for API calls, `None` for our own shares.
    pub fn peer(&self) -> Option<&str> {
        match self {
            Source::Peer(p) => Some(p),
            _ => None,
        }
    }
}

/// Something to show in the media player.
#[derive(Debug, Clone, PartialEq)]
pub struct Media {
    pub url: String,
    pub name: String,
    pub kind: MediaKind,
    /// Set for a peer's file: the player offers "Download to node".
    pub remote: Option<(String, String)>,
}

/// Navigation shared by the pages.
#[derive(Debug, Clone, Copy)]
pub struct Nav {
    pub view: RwSignal<View>,
    pub source: RwSignal<Source>,
    pub path: RwSignal<String>,
    pub playing: RwSignal<Option<Media>>,
}

impl Nav {
    /// Shows `view` (and records it in the address bar, so Back works).
    pub fn go(&self, view: View) {
        if let Some(w) = web_sys::window() {
            let _ = w.location().set_hash(&format!("/{}", view.slug()));
        }
        if self.view.get_untracked() != view {
            self.view.set(view);
            crate::browser::scroll_to_top();
        }
    }

    /// Opens the file browser at `path` of `source`.
    pub fn browse(&self, source: Source, path: String) {
        self.source.set(source);
        self.path.set(path);
        self.go(View::Browse);
    }

    /// Opens `name` at `url` in the player if a browser can show it; returns
    /// whether it did.
    pub fn play(&self, url: String, name: &str, remote: Option<(String, String)>) -> bool {
        match MediaKind::of(name) {
            Some(kind) => {
                self.playing.set(Some(Media { url, name: name.to_owned(), kind, remote }));
                true
            }
            None => false,
        }
    }
}

/// The root component: the login prompt until there is a token, the app after.
#[component]
pub fn App() -> impl IntoView {
    let session = Session::start();
    provide_context(session);
    let listener = window_event_listener(leptos::ev::hashchange, move |_| session.adopt_url_token());
    on_cleanup(move || listener.remove());
    view! {
        <Show when=move || session.is_logged_in() fallback=|| view! { <Login /> }>
            <Shell />
        </Show>
    }
}

fn current_hash() -> String {
    web_sys::window().and_then(|w| w.location().hash().ok()).unwrap_or_default()
}

/// Everything behind the login: header, the current page, navigation.
#[component]
fn Shell() -> impl IntoView {
    let session = expect_context::<Session>();
    let info: LocalResource<Result<Info, ApiFailure>> =
        LocalResource::new(move || session.call(|t| async move { api::get_info(&t).await }));
    let live = Live::start(session);
    provide_context(live);
    let nav = Nav {
        view: RwSignal::new(View::from_hash(&current_hash())),
        source: RwSignal::new(Source::All),
        path: RwSignal::new(String::new()),
        playing: RwSignal::new(None),
    };
    provide_context(nav);
    provide_context(info);

    // Back and forward buttons move between pages.
    let listener = window_event_listener(leptos::ev::hashchange, move |_| {
        nav.view.set(View::from_hash(&current_hash()));
    });
    on_cleanup(move || listener.remove());

    // Media elements cannot send the token: ask the node for its media cookie.
    spawn_local(async move {
        let _ = session.call(|t| async move { api::media_session(&t).await }).await;
    });

    let page = |v: View, content: AnyView| {
        view! {
            <section
                id=format!("view-{}", v.slug())
                class="page"
                aria-label=v.label()
                hidden=move || nav.view.get() != v
            >
                {content}
            </section>
        }
    };

    view! {
        <Header info=info />
        <LinkBanner />
        // Every page stays mounted so each keeps its state across switches.
        <main class="content" id="content" class:stale=move || matches!(live.link.get(), Link::Down(_))>
            {page(View::Peers, view! { <Home /> }.into_any())}
            {page(View::Browse, view! { <Browse /> }.into_any())}
            {page(View::Transfers, view! { <Transfers /> }.into_any())}
            {page(View::Shares, view! { <Shares /> }.into_any())}
            {page(View::Settings, view! { <SettingsPage /> }.into_any())}
        </main>
        <BottomNav />
        <Player />
    }
}

/// The bottom navigation bar (a side rail on wide screens).
#[component]
fn BottomNav() -> impl IntoView {
    let nav = expect_context::<Nav>();
    let live = expect_context::<Live>();
    let active_downloads = move || {
        live.downloads.with(|l| l.iter().filter(|d| !d.state.is_finished() && d.state.as_str() != "paused").count())
    };
    view! {
        <nav class="bottom-nav" aria-label="Pages">
            {VIEWS
                .into_iter()
                .map(|v| {
                    view! {
                        <a
                            href=format!("#/{}", v.slug())
                            id=format!("nav-{}", v.slug())
                            class="nav-item"
                            class:active=move || nav.view.get() == v
                            aria-current=move || (nav.view.get() == v).then_some("page")
                            on:click=move |ev| {
                                ev.prevent_default();
                                nav.go(v);
                            }
                        >
                            <svg class="nav-icon" viewBox="0 0 24 24" aria-hidden="true">
                                <path d=v.icon() />
                            </svg>
                            <span class="nav-label">{v.label()}</span>
                            {(v == View::Transfers)
                                .then(|| {
                                    view! {
                                        <Show when=move || { active_downloads() > 0 }>
                                            <span class="nav-badge" aria-label="active downloads">
                                                {active_downloads}
                                            </span>
                                        </Show>
                                    }
                                })}
                        </a>
                    }
                })
                .collect_view()}
        </nav>
    }
}

/// "Disconnected from the node" while the event stream is down.
#[component]
fn LinkBanner() -> impl IntoView {
    let live = expect_context::<Live>();
    view! {
        {move || match live.link.get() {
            Link::Down(why) => {
                Some(
                    view! {
                        <div id="link-banner" class="link-banner" role="status">
                            <strong>"Disconnected from the node."</strong>
                            " Reconnecting… "
                            <span class="muted">{why}</span>
                        </div>
                    },
                )
            }
            _ => None,
        }}
    }
}

/// The top bar: the node's name, and whether the page is live.
#[component]
fn Header(info: LocalResource<Result<Info, ApiFailure>>) -> impl IntoView {
    let live = expect_context::<Live>();
    view! {
        <header class="app-header">
            <span class="brand-dot" aria-hidden="true"></span>
            <div class="identity">
                {move || match info.get() {
                    None => view! { <p class="node-name-placeholder">"Connecting…"</p> }.into_any(),
                    Some(Ok(info)) => {
                        view! {
                            <h1 id="node-name" class="node-name">
                                {info.name}
                            </h1>
                        }
                            .into_any()
                    }
                    Some(Err(e)) => {
                        view! {
                            <p class="notice error header-error" role="alert">
                                {e.to_string()}
                            </p>
                            <button type="button" class="btn btn-small" on:click=move |_| info.refetch()>
                                "Retry"
                            </button>
                        }
                            .into_any()
                    }
                }}
            </div>
            <span
                id="link-state"
                class="link-state"
                class:live=move || live.link.get() == Link::Live
                class:down=move || matches!(live.link.get(), Link::Down(_))
                title="Live updates from the node"
            >
                {move || match live.link.get() {
                    Link::Live => "live",
                    Link::Connecting => "connecting",
                    Link::Down(_) => "offline",
                }}
            </span>
        </header>
    }
}
