//! The Peers page (home): who this node is and how it is reached, an
//! invitation (QR code) for a friend, topics, the peers we know with how
//! they were found and how fast data moves, and the friend list (nicknames,
//! blocking).

use std::time::Duration;

use hdp_proto::api::{Contact, FriendInfo, FriendUpdate, Info, MqttState, PeerInfo};
use hdp_proto::fmt::{format_size, short_id, shown};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{self, ApiFailure};
use crate::app::{Nav, Source};
use crate::browser;
use crate::live::Live;
use crate::session::Session;
use crate::topics::Topics;

/// How often the node's own status (MQTT state, addresses) is re-read.
const INFO_EVERY: Duration = Duration::from_secs(10);

#[component]
pub fn Home() -> impl IntoView {
    let info = expect_context::<LocalResource<Result<Info, ApiFailure>>>();
    if let Ok(handle) = set_interval_with_handle(move || info.refetch(), INFO_EVERY) {
        on_cleanup(move || handle.clear());
    }
    view! {
        <div class="page-stack">
            <NodeCard info=info />
            <Topics />
            <PeerList />
            <FriendList />
            <Invite />
        </div>
    }
}

/// Our name, id, addresses and discovery state.
#[component]
fn NodeCard(info: LocalResource<Result<Info, ApiFailure>>) -> impl IntoView {
    view! {
        <section class="card node-card" aria-labelledby="node-card-title">
            <h2 id="node-card-title" class="card-title">
                "This node"
            </h2>
            {move || {
                info.get()
                    .and_then(Result::ok)
                    .map(|i| {
                        let (mqtt_text, mqtt_class) = mqtt_words(&i);
                        view! {
                            <p class="node-card-name">{i.name.clone()}</p>
                            <NodeId id=i.id.to_string() />
                            <dl class="facts">
                                <dt>"Reachable at"</dt>
                                <dd class="mono" id="listen-addrs">
                                    {if i.listen_addrs.is_empty() {
                                        "not listening yet".to_owned()
                                    } else {
                                        i.listen_addrs.join(", ")
                                    }}
                                </dd>
                                <dt>"From the internet"</dt>
                                <dd id="nat-status">
                                    <span class=nat_class(&i) aria-hidden="true"></span>
                                    {i.nat.describe()}
                                    {(!i.nat.public_addrs.is_empty())
                                        .then(|| {
                                            view! {
                                                <span class="mono nat-public">
                                                    {format!(" Public address: {}", i.nat.public_addrs.join(", "))}
                                                </span>
                                            }
                                        })}
                                </dd>
                                <dt>"Internet discovery"</dt>
                                <dd id="mqtt-status">
                                    <span class=format!("dot {mqtt_class}") aria-hidden="true"></span>
                                    {mqtt_text}
                                </dd>
                                <dt>"LAN discovery"</dt>
                                <dd id="mdns-status">
                                    <span
                                        class=if i.mdns { "dot ok" } else { "dot off" }
                                        aria-hidden="true"
                                    ></span>
                                    {if i.mdns { "mDNS on" } else { "mDNS off" }}
                                </dd>
                                <dt>"Version"</dt>
                                <dd>{i.version.clone()}</dd>
                            </dl>
                        }
                    })
            }}
        </section>
    }
}

/// The status colour of what the router allows.
fn nat_class(info: &Info) -> &'static str {
    use hdp_proto::nat::NatKind;
    if info.nat.port_mapping.starts_with("mapped") {
        return "dot ok";
    }
    match info.nat.nat_type {
        NatKind::None | NatKind::EndpointIndependent => "dot ok",
        NatKind::Symmetric => "dot warn",
        NatKind::Unknown => "dot off",
    }
}

/// The MQTT state in words, and a status colour.
fn mqtt_words(info: &Info) -> (String, &'static str) {
    let broker = info.mqtt.broker.clone().unwrap_or_default();
    match (info.mqtt.broker.is_some(), info.mqtt.state) {
        (false, _) | (_, MqttState::Off) => ("off".into(), "off"),
        (_, MqttState::Connected) => (format!("connected to {broker}"), "ok"),
        (_, MqttState::Connecting) => (format!("connecting to {broker}…"), "warn"),
        (_, MqttState::Error) => {
            let why = info.mqtt.error.clone().unwrap_or_default();
            (format!("cannot reach {broker}, retrying. {why}"), "bad")
        }
    }
}

/// The peer id, shortened; tap to show it in full (and select it to copy).
#[component]
fn NodeId(id: String) -> impl IntoView {
    let expanded = RwSignal::new(false);
    let short = short_id(&id);
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

/// A QR code and link a friend can use to connect directly.
#[component]
fn Invite() -> impl IntoView {
    let session = expect_context::<Session>();
    let contact: LocalResource<Result<Contact, ApiFailure>> =
        LocalResource::new(move || session.call(|t| async move { api::contact(&t).await }));
    let copied = RwSignal::new(false);
    view! {
        <section class="card invite" aria-labelledby="invite-title">
            <h2 id="invite-title" class="card-title">
                "Invite a friend"
            </h2>
            <p class="muted">
                "Friends on the same topic find you by themselves. To connect directly, scan this with their phone and paste the link into their node's Peers page."
            </p>
            {move || match contact.get() {
                None => view! { <p class="loading">"Loading…"</p> }.into_any(),
                Some(Err(e)) => view! { <p class="notice error">{e.to_string()}</p> }.into_any(),
                Some(Ok(c)) => {
                    let uri = c.uri.clone();
                    view! {
                        <div class="qr" id="contact-qr" inner_html=c.qr_svg.clone()></div>
                        <div class="input-row">
                            <input
                                id="contact-uri"
                                type="text"
                                readonly
                                aria-label="Contact link"
                                prop:value=c.uri.clone()
                                on:focus=|ev| {
                                    use wasm_bindgen::JsCast;
                                    if let Some(t) = ev
                                        .target()
                                        .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
                                    {
                                        t.select();
                                    }
                                }
                            />
                            <button
                                type="button"
                                class="btn"
                                on:click=move |_| {
                                    browser::copy_text(&uri);
                                    copied.set(true);
                                    set_timeout(move || copied.set(false), Duration::from_secs(2));
                                }
                            >
                                {move || if copied.get() { "Copied" } else { "Copy" }}
                            </button>
                        </div>
                    }
                        .into_any()
                }
            }}
        </section>
    }
}

/// Connected peers, then the ones we know but are not connected to, and the
/// form to dial one.
#[component]
fn PeerList() -> impl IntoView {
    let live = expect_context::<Live>();
    let connected = move || live.peers.with(|l| l.iter().filter(|p| p.connected).cloned().collect::<Vec<_>>());
    let known = move || live.peers.with(|l| l.iter().filter(|p| !p.connected).cloned().collect::<Vec<_>>());
    view! {
        <section class="card" aria-labelledby="peers-title">
            <div class="card-head">
                <h2 id="peers-title" class="card-title">
                    "Peers"
                </h2>
                <span class="badge" id="peer-count">
                    {move || format!("{} connected", connected().len())}
                </span>
            </div>
            <Show
                when=move || !connected().is_empty()
                fallback=|| {
                    view! {
                        <p class="empty" id="peers-empty">
                            "Nobody connected yet. Join the topic your friends use, or connect by address below."
                        </p>
                    }
                }
            >
                <ul class="peer-list" id="peer-list">
                    <For
                        each=connected
                        key=|p| (p.id, p.addr.clone(), p.rx_rate, p.tx_rate, p.rtt_ms, p.topics.clone(), p.path)
                        let:peer
                    >
                        <PeerRow peer=peer />
                    </For>
                </ul>
            </Show>
            <Show when=move || !known().is_empty()>
                <h3 class="sub-title">"Trying to reach"</h3>
                <ul class="peer-list" id="known-list">
                    <For each=known key=|p| (p.addr.clone(), p.error.clone()) let:peer>
                        <PeerRow peer=peer />
                    </For>
                </ul>
            </Show>
            <ConnectForm />
        </section>
    }
}

/// One peer: name, how we know it, rates, and its actions.
#[component]
fn PeerRow(peer: PeerInfo) -> impl IntoView {
    let session = expect_context::<Session>();
    let nav = expect_context::<Nav>();
    let name = peer.name.clone().unwrap_or_else(|| peer.addr.clone().unwrap_or_default());
    let key = peer.id.map(|i| i.to_string()).or_else(|| peer.addr.clone()).unwrap_or_default();
    let mut facts = vec![source_words(&peer.source)];
    if let Some(path) = peer.path.filter(|_| peer.connected) {
        facts.push(format!("connected {}", path.describe()));
    }
    if let Some(a) = &peer.addr {
        facts.push(a.clone());
    }
    if let Some(rtt) = peer.rtt_ms {
        facts.push(format!("{rtt} ms"));
    }
    let rates =
        peer.connected.then(|| format!("↓ {}/s · ↑ {}/s", format_size(peer.rx_rate), format_size(peer.tx_rate)));
    let topics = (!peer.topics.is_empty()).then(|| format!("on {}", peer.topics.join(", ")));
    let error = peer.error.clone().filter(|_| !peer.connected);
    let busy = RwSignal::new(false);
    let browse_name = name.clone();
    let connected = peer.connected;
    let forget = move |_| {
        let question = if connected {
            format!("Disconnect from {name}? Discovery may connect again later.")
        } else {
            format!("Stop trying to reach {name}?")
        };
        if !browser::confirm(&question) {
            return;
        }
        busy.set(true);
        let key = key.clone();
        spawn_local(async move {
            let _ = session
                .call(|t| {
                    let key = key.clone();
                    async move { api::forget_peer(&t, &key).await }
                })
                .await;
            busy.try_set(false);
        });
    };
    view! {
        <li class="peer" class:offline=!connected data-name=browse_name.clone()>
            <div class="peer-main">
                <span class=if connected { "dot ok" } else { "dot off" } aria-hidden="true"></span>
                <div class="peer-text">
                    <p class="peer-name">{browse_name.clone()}</p>
                    <p class="peer-meta">{facts.join(" · ")}</p>
                    {topics.map(|t| view! { <p class="peer-meta">{t}</p> })}
                    {rates.map(|r| view! { <p class="peer-rates">{r}</p> })}
                    {error.map(|e| view! { <p class="field-error">{e}</p> })}
                </div>
            </div>
            <div class="peer-actions">
                {connected
                    .then(|| {
                        let n = browse_name.clone();
                        view! {
                            <button
                                type="button"
                                class="btn btn-small"
                                on:click=move |_| nav.browse(Source::Peer(n.clone()), String::new())
                            >
                                "Browse"
                            </button>
                        }
                    })}
                <button
                    type="button"
                    class="btn btn-small btn-ghost"
                    disabled=move || busy.get()
                    aria-label=if connected { "Disconnect" } else { "Forget" }
                    on:click=forget
                >
                    {if connected { "Disconnect" } else { "Forget" }}
                </button>
            </div>
        </li>
    }
}

/// Everyone this node completed a handshake with: rename, block, unblock.
#[component]
fn FriendList() -> impl IntoView {
    let session = expect_context::<Session>();
    let friends =
        LocalResource::new(move || async move { session.call(|t| async move { api::friends(&t).await }).await });
    if let Ok(handle) = set_interval_with_handle(move || friends.refetch(), INFO_EVERY) {
        on_cleanup(move || handle.clear());
    }
    let list = move || friends.get().and_then(Result::ok).unwrap_or_default();
    view! {
        <section class="card" aria-labelledby="friends-title">
            <div class="card-head">
                <h2 id="friends-title" class="card-title">
                    "Friends"
                </h2>
                <span class="badge" id="friend-count">
                    {move || format!("{} known", list().len())}
                </span>
            </div>
            <Show
                when=move || !list().is_empty()
                fallback=|| {
                    view! {
                        <p class="empty" id="friends-empty">
                            "Everyone this node meets is remembered here, and redialed after a restart."
                        </p>
                    }
                }
            >
                <ul class="peer-list" id="friend-list">
                    <For
                        each=list
                        key=|f| (f.id, f.nickname.clone(), f.blocked, f.connected, f.last_seen)
                        let:friend
                    >
                        <FriendRow friend=friend on_change=Callback::new(move |()| friends.refetch()) />
                    </For>
                </ul>
            </Show>
        </section>
    }
}

/// One friend: its nickname (or name), state and last address; rename and
/// block or unblock it.
#[component]
fn FriendRow(friend: FriendInfo, on_change: Callback<()>) -> impl IntoView {
    let session = expect_context::<Session>();
    let id = friend.id.to_string();
    let title = friend.nickname.clone().map_or_else(|| friend.name.clone(), |n| shown(&n).into_owned());
    let state = if friend.blocked {
        "blocked"
    } else if friend.connected {
        "connected"
    } else {
        "away"
    };
    let mut facts = vec![state.to_owned()];
    if friend.nickname.is_some() {
        facts.push(friend.name.clone());
    }
    if let Some(a) = friend.addrs.first() {
        facts.push(format!("last at {} ({})", a.addr, a.path.as_str()));
    }
    let renaming = RwSignal::new(false);
    let nickname = RwSignal::new(friend.nickname.clone().unwrap_or_default());
    let error = RwSignal::new(None::<String>);
    let blocked = friend.blocked;
    let send = move |update: FriendUpdate| {
        let id = id.clone();
        spawn_local(async move {
            let r = session
                .call(|t| {
                    let (id, update) = (id.clone(), update.clone());
                    async move { api::update_friend(&t, &id, &update).await }
                })
                .await;
            match r {
                Ok(_) => {
                    renaming.try_set(false);
                    error.try_set(None);
                    on_change.run(());
                }
                Err(e) => {
                    error.try_set(Some(e.message().to_owned()));
                }
            }
        });
    };
    let name_for_block = title.clone();
    let toggle_block = {
        let send = send.clone();
        move |_| {
            if !blocked
                && !browser::confirm(&format!(
                    "Block {name_for_block}? It is disconnected now, refused from now on and never dialed."
                ))
            {
                return;
            }
            send(FriendUpdate { nickname: None, blocked: Some(!blocked) });
        }
    };
    let save = move |ev: SubmitEvent| {
        ev.prevent_default();
        send(FriendUpdate { nickname: Some(nickname.get_untracked()), blocked: None });
    };
    view! {
        <li class="peer friend" class:offline=!friend.connected data-name=friend.name.clone() data-state=state>
            <div class="peer-main">
                <span class=if friend.connected { "dot ok" } else { "dot off" } aria-hidden="true"></span>
                <div class="peer-text">
                    <p class="peer-name">{title}</p>
                    <p class="peer-meta">{facts.join(" · ")}</p>
                    <form class="inline-form friend-rename" hidden=move || !renaming.get() on:submit=save>
                            <input
                                type="text"
                                class="input"
                                aria-label="Nickname"
                                maxlength="64"
                                prop:value=move || nickname.get()
                                on:input=move |ev| nickname.set(event_target_value(&ev))
                            />
                            <button type="submit" class="btn btn-small">
                                "Save"
                            </button>
                    </form>
                    {move || error.get().map(|e| view! { <p class="field-error">{e}</p> })}
                </div>
            </div>
            <div class="peer-actions">
                <button type="button" class="btn btn-small btn-ghost friend-rename-btn" on:click=move |_| renaming.update(|r| *r = !*r)>
                    "Rename"
                </button>
                <button
                    type="button"
                    class="btn btn-small btn-ghost friend-block-btn"
                    aria-label=if blocked { "Unblock" } else { "Block" }
                    on:click=toggle_block
                >
                    {if blocked { "Unblock" } else { "Block" }}
                </button>
            </div>
        </li>
    }
}

/// "found through the MQTT broker", "found on the LAN", …
fn source_words(source: &str) -> String {
    match source {
        "mqtt" => "found via MQTT".into(),
        "mdns" => "found on the LAN".into(),
        "mqtt+mdns" => "found via MQTT and on the LAN".into(),
        "manual" => "added by address".into(),
        "incoming" => "connected to us".into(),
        other => other.into(),
    }
}

/// Dial a peer by `HOST:PORT` or contact link.
#[component]
fn ConnectForm() -> impl IntoView {
    let session = expect_context::<Session>();
    let addr = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let message = RwSignal::new(None::<Result<String, String>>);
    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let a = addr.get_untracked().trim().to_string();
        if a.is_empty() {
            message.set(Some(Err("Enter HOST:PORT or paste a contact link.".into())));
            return;
        }
        busy.set(true);
        message.set(None);
        spawn_local(async move {
            let result = session.call(|t| async move { api::connect(&t, a).await }).await;
            busy.try_set(false);
            match result {
                Ok(p) => {
                    addr.set(String::new());
                    message.set(Some(Ok(format!("Connected to {}.", p.name.unwrap_or_default()))));
                }
                Err(e) => message.set(Some(Err(e.to_string()))),
            }
        });
    };
    view! {
        <form class="connect-form stack" id="connect-form" on:submit=submit>
            <label for="connect-addr">"Connect by address"</label>
            <div class="input-row">
                <input
                    id="connect-addr"
                    type="text"
                    inputmode="url"
                    autocomplete="off"
                    autocapitalize="none"
                    spellcheck="false"
                    placeholder="192.168.1.20:4433 or hdp:…"
                    bind:value=addr
                />
                <button type="submit" class="btn btn-primary" disabled=move || busy.get()>
                    {move || if busy.get() { "Connecting…" } else { "Connect" }}
                </button>
            </div>
            {move || {
                message
                    .get()
                    .map(|m| match m {
                        Ok(t) => view! { <p class="field-ok" role="status">{t}</p> }.into_any(),
                        Err(e) => view! { <p class="field-error" role="alert">{e}</p> }.into_any(),
                    })
            }}
        </form>
    }
}
