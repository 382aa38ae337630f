//! The media player: pictures, songs, videos and text shown over the page,
//! streamed from the node with HTTP range requests (seeking works, and a
//! peer's file plays without being downloaded first). Opened through
//! [`crate::app::Nav::play`].

use hdp_proto::api::MediaKind;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api;
use crate::app::Nav;
use crate::live::Live;
use crate::session::Session;

#[component]
pub fn Player() -> impl IntoView {
    let nav = expect_context::<Nav>();
    let session = expect_context::<Session>();
    let live = expect_context::<Live>();
    let status = RwSignal::new(None::<String>);
    let close = move || {
        nav.playing.set(None);
        status.set(None);
    };
    let on_key = window_event_listener(leptos::ev::keydown, move |ev| {
        if ev.key() == "Escape" && nav.playing.with_untracked(Option::is_some) {
            close();
        }
    });
    on_cleanup(move || on_key.remove());

    view! {
        {move || {
            nav.playing
                .get()
                .map(|m| {
                    let media = match m.kind {
                        MediaKind::Audio => {
                            view! {
                                <div class="audio-art" aria-hidden="true">
                                    "♪"
                                </div>
                                <audio id="player-audio" controls autoplay preload="metadata" src=m.url.clone()></audio>
                            }
                                .into_any()
                        }
                        MediaKind::Video => {
                            view! {
                                <video
                                    id="player-video"
                                    controls
                                    autoplay
                                    playsinline
                                    preload="metadata"
                                    src=m.url.clone()
                                ></video>
                            }
                                .into_any()
                        }
                        MediaKind::Image => {
                            view! { <img id="player-image" src=m.url.clone() alt=m.name.clone() /> }.into_any()
                        }
                        MediaKind::Text => {
                            view! {
                                <iframe id="player-text" sandbox="" title=m.name.clone() src=m.url.clone()></iframe>
                            }
                                .into_any()
                        }
                    };
                    let save = format!("{}?download=1", m.url);
                    let remote = m.remote.clone();
                    view! {
                        <div class="player-backdrop" on:click=move |_| close()></div>
                        <div class="player" role="dialog" aria-modal="true" aria-labelledby="player-title" id="player">
                            <div class="player-head">
                                <h2 id="player-title" class="player-title">
                                    {m.name.clone()}
                                </h2>
                                <button
                                    type="button"
                                    class="icon-btn"
                                    id="player-close"
                                    aria-label="Close player"
                                    on:click=move |_| close()
                                >
                                    "✕"
                                </button>
                            </div>
                            <div class="player-media">{media}</div>
                            <div class="actions">
                                {remote
                                    .map(|(peer, path)| {
                                        view! {
                                            <button
                                                type="button"
                                                class="btn btn-primary"
                                                on:click=move |_| {
                                                    let (peer, path) = (peer.clone(), path.clone());
                                                    status.set(Some("Queuing…".into()));
                                                    spawn_local(async move {
                                                        let r = session
                                                            .call(|t| async move {
                                                                api::start_download(&t, peer, path).await
                                                            })
                                                            .await;
                                                        status
                                                            .try_set(
                                                                Some(
                                                                    match r {
                                                                        Ok(info) => {
                                                                            live.upsert_download(info);
                                                                            "Downloading to the node. See Transfers."
                                                                                .to_owned()
                                                                        }
                                                                        Err(e) => e.to_string(),
                                                                    },
                                                                ),
                                                            );
                                                    });
                                                }
                                            >
                                                "Download to node"
                                            </button>
                                        }
                                    })}
                                <a class="btn" href=save download="">
                                    "Save to this device"
                                </a>
                            </div>
                            {move || status.get().map(|s| view! { <p class="muted" role="status">{s}</p> })}
                        </div>
                    }
                })
        }}
    }
}
