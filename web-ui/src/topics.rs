//! Topics: the names friends meet at. Join one, leave one, and see how many
//! connected peers proved each.

use hdp_proto::api::TopicInfo;
use hdp_proto::fmt::plural;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api;
use crate::browser;
use crate::live::Live;
use crate::session::Session;

#[component]
pub fn Topics() -> impl IntoView {
    let session = expect_context::<Session>();
    let live = expect_context::<Live>();
    let name = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);

    let apply = move |result: Result<Vec<TopicInfo>, api::ApiFailure>| match result {
        Ok(list) => {
            live.topics.try_set(list);
            error.try_set(None);
        }
        Err(e) => {
            error.try_set(Some(e.to_string()));
        }
    };

    let join = move |ev: SubmitEvent| {
        ev.prevent_default();
        let n = name.get_untracked().trim().to_string();
        if n.is_empty() {
            error.set(Some("Enter the topic name your friends use.".into()));
            return;
        }
        busy.set(true);
        spawn_local(async move {
            let result = session.call(|t| async move { api::join_topic(&t, n).await }).await;
            busy.try_set(false);
            if result.is_ok() {
                name.try_set(String::new());
            }
            apply(result);
        });
    };

    let leave = move |topic: String| {
        if !browser::confirm(&format!("Leave \u{201c}{topic}\u{201d}? Peers you meet only there are disconnected.")) {
            return;
        }
        spawn_local(async move {
            let result = session
                .call(|t| {
                    let topic = topic.clone();
                    async move { api::leave_topic(&t, &topic).await }
                })
                .await;
            apply(result);
        });
    };

    view! {
        <section class="card" aria-labelledby="topics-title" id="topics">
            <div class="card-head">
                <h2 id="topics-title" class="card-title">
                    "Topics"
                </h2>
            </div>
            <p class="muted">"A topic is a secret name you and your friends pick. Nodes on the same topic find each other."</p>
            <Show
                when=move || live.topics.with(|l| !l.is_empty())
                fallback=|| view! { <p class="empty" id="topics-empty">"Not on any topic yet."</p> }
            >
                <ul class="topic-list" id="topic-list">
                    <For each=move || live.topics.get() key=|t| (t.name.clone(), t.peers) let:topic>
                        {
                            let n = topic.name.clone();
                            view! {
                                <li class="topic" data-name=topic.name.clone()>
                                    <span class="topic-name">{topic.name.clone()}</span>
                                    <span class="badge">{plural(topic.peers, "peer", "peers")}</span>
                                    <button
                                        type="button"
                                        class="btn btn-small btn-ghost btn-danger"
                                        aria-label=format!("Leave topic {}", topic.name)
                                        on:click=move |_| leave(n.clone())
                                    >
                                        "Leave"
                                    </button>
                                </li>
                            }
                        }
                    </For>
                </ul>
            </Show>
            <form class="input-row join-form" id="join-form" on:submit=join>
                <input
                    id="join-topic"
                    type="text"
                    autocomplete="off"
                    autocapitalize="none"
                    spellcheck="false"
                    aria-label="Topic name"
                    placeholder="Topic name"
                    bind:value=name
                />
                <button type="submit" class="btn btn-primary" disabled=move || busy.get()>
                    "Join"
                </button>
            </form>
            {move || error.get().map(|e| view! { <p class="field-error" role="alert">{e}</p> })}
        </section>
    }
}
