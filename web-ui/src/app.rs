//! The application shell: login gating, the header with the node's name and
//! peer id, the section tabs and the sections themselves.

use hdp_proto::api::Info;
use leptos::prelude::*;

use crate::api::{self, ApiFailure};
use crate::browse::Browse;
use crate::login::Login;
use crate::session::Session;
use crate::shares::Shares;

/// The sections of the app. Add a variant (and a [`TAB_ORDER`] entry) to
/// add a tab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Shares,
    Browse,
}

impl View {
    fn label(self) -> &'static str {
        match self {
            View::Shares => "Shares",
            View::Browse => "Browse",
        }
    }

    /// Stable name for element ids (`tab-shares`, `view-shares`).
    fn slug(self) -> &'static str {
        match self {
            View::Shares => "shares",
            View::Browse => "browse",
        }
    }
}

/// The tabs, left to right.
const TAB_ORDER: [View; 2] = [View::Shares, View::Browse];

/// The root component: the login prompt until there is a token, the app after.
#[component]
pub fn App() -> impl IntoView {
    let session = Session::start();
    provide_context(session);
    view! {
        <Show when=move || session.is_logged_in() fallback=|| view! { <Login /> }>
            <Shell />
        </Show>
    }
}

/// Everything behind the login: header, tabs, sections, footer.
#[component]
fn Shell() -> impl IntoView {
    let session = expect_context::<Session>();
    let info: LocalResource<Result<Info, ApiFailure>> =
        LocalResource::new(move || session.call(|t| async move { api::get_info(&t).await }));

    let view_sig = RwSignal::new(View::Shares);
    // The folder the browser shows; shared so "Browse" on a share can open it.
    let browse_path = RwSignal::new(String::new());
    let open_share = Callback::new(move |name: String| {
        browse_path.set(name);
        view_sig.set(View::Browse);
    });

    view! {
        <Header info=info />
        <nav class="tabs" role="tablist" aria-label="Sections">
            {TAB_ORDER
                .into_iter()
                .map(|v| {
                    view! {
                        <button
                            type="button"
                            role="tab"
                            class="tab"
                            id=format!("tab-{}", v.slug())
                            aria-controls=format!("view-{}", v.slug())
                            aria-selected=move || (view_sig.get() == v).to_string()
                            class:active=move || view_sig.get() == v
                            on:click=move |_| view_sig.set(v)
                        >
                            {v.label()}
                        </button>
                    }
                })
                .collect_view()}
        </nav>
        // Both sections stay mounted so each keeps its state across tab switches.
        <main class="content">
            <section
                id="view-shares"
                role="tabpanel"
                aria-labelledby="tab-shares"
                hidden=move || view_sig.get() != View::Shares
            >
                <Shares on_browse=open_share />
            </section>
            <section
                id="view-browse"
                role="tabpanel"
                aria-labelledby="tab-browse"
                hidden=move || view_sig.get() != View::Browse
            >
                <Browse path=browse_path active=Signal::derive(move || view_sig.get() == View::Browse) />
            </section>
        </main>
        <footer class="app-footer">
            "harddrive-party"
            {move || {
                info.get()
                    .and_then(Result::ok)
                    .map(|i| format!(" {}", i.version))
            }}
        </footer>
    }
}

/// The top bar: the node's friendly name and peer id once `/api/info` answers.
#[component]
fn Header(info: LocalResource<Result<Info, ApiFailure>>) -> impl IntoView {
    let session = expect_context::<Session>();
    view! {
        <header class="app-header">
            <div class="identity">
                {move || match info.get() {
                    None => {
                        view! {
                            <p class="node-name-placeholder" aria-live="polite">
                                "Connecting…"
                            </p>
                        }
                            .into_any()
                    }
                    Some(Ok(info)) => {
                        let status = discovery_text(&info);
                        view! {
                            <h1 id="node-name" class="node-name">
                                {info.name}
                            </h1>
                            <NodeId id=info.id.to_string() />
                            <p id="discovery-status" class="discovery-status">
                                {status}
                            </p>
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
            <button
                type="button"
                class="btn btn-ghost btn-small"
                id="sign-out"
                title="Forget the token on this device"
                on:click=move |_| session.log_out(None)
            >
                "Sign out"
            </button>
        </header>
    }
}

/// How the node finds peers, in words: the MQTT broker's state and mDNS.
fn discovery_text(info: &Info) -> String {
    use hdp_proto::api::MqttState;
    let mqtt = match (&info.mqtt.broker, info.mqtt.state) {
        (None, _) | (_, MqttState::Off) => "MQTT off".to_owned(),
        (Some(_), MqttState::Connected) => "MQTT broker connected".to_owned(),
        (Some(_), MqttState::Connecting) => "connecting to the MQTT broker…".to_owned(),
        (Some(_), MqttState::Error) => "MQTT broker unreachable, retrying".to_owned(),
    };
    let mdns = if info.mdns { "LAN discovery on" } else { "LAN discovery off" };
    format!("{mqtt} · {mdns}")
}

/// The peer id, shortened; tap to show it in full (and select it to copy).
#[component]
fn NodeId(id: String) -> impl IntoView {
    let expanded = RwSignal::new(false);
    let short = hdp_proto::fmt::short_id(&id);
    let title = id.clone();
    view! {
        <button
            type="button"
            id="node-id"
            class="node-id mono"
            title=title
            aria-label="Peer id, tap to show it in full"
            aria-expanded=move || expanded.get().to_string()
            class:expanded=move || expanded.get()
            on:click=move |_| expanded.update(|e| *e = !*e)
        >
            {move || if expanded.get() { id.clone() } else { short.clone() }}
        </button>
    }
}
