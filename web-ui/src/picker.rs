//! A directory picker over the node's own filesystem (`GET /api/fs`),
//! starting in the home directory of the user the node runs as. Used to
//! choose a folder to share and the download folder.

use hdp_proto::api::FsListing;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api;
use crate::session::Session;

/// Lists directories; `on_pick` receives the chosen absolute path.
#[component]
pub fn DirPicker(action: &'static str, on_pick: Callback<String>) -> impl IntoView {
    let session = expect_context::<Session>();
    let listing = RwSignal::new(None::<FsListing>);
    let error = RwSignal::new(None::<String>);
    let hidden = RwSignal::new(false);
    let loading = RwSignal::new(false);

    let open = move |path: Option<String>| {
        loading.set(true);
        let show_hidden = hidden.get_untracked();
        spawn_local(async move {
            let result = session
                .call(|t| {
                    let path = path.clone();
                    async move { api::fs(&t, path.as_deref(), show_hidden).await }
                })
                .await;
            loading.try_set(false);
            match result {
                Ok(l) => {
                    listing.try_set(Some(l));
                    error.try_set(None);
                }
                Err(e) => {
                    error.try_set(Some(e.to_string()));
                }
            }
        });
    };
    open(None);

    let here = move || listing.with(|l| l.as_ref().map(|l| l.path.clone()));
    view! {
        <div class="picker" id="dir-picker">
            <div class="picker-head">
                <button
                    type="button"
                    class="btn btn-small"
                    id="picker-up"
                    aria-label="Parent folder"
                    disabled=move || listing.with(|l| l.as_ref().is_none_or(|l| l.parent.is_none()))
                    on:click=move |_| open(listing.with_untracked(|l| l.as_ref().and_then(|l| l.parent.clone())))
                >
                    "↑ Up"
                </button>
                <button
                    type="button"
                    class="btn btn-small btn-ghost"
                    on:click=move |_| open(listing.with_untracked(|l| l.as_ref().and_then(|l| l.home.clone())))
                >
                    "Home"
                </button>
                <label class="check">
                    <input
                        type="checkbox"
                        prop:checked=move || hidden.get()
                        on:change=move |ev| {
                            hidden.set(event_target_checked(&ev));
                            open(here());
                        }
                    />
                    "Hidden"
                </label>
            </div>
            <p class="picker-path mono" id="picker-path">
                {move || here().unwrap_or_else(|| "…".into())}
            </p>
            {move || error.get().map(|e| view! { <p class="field-error" role="alert">{e}</p> })}
            <ul class="picker-list">
                {move || {
                    listing
                        .get()
                        .map(|l| {
                            if l.dirs.is_empty() {
                                return view! { <li class="muted picker-empty">"No folders inside."</li> }.into_any();
                            }
                            let truncated = l.truncated;
                            view! {
                                {l
                                    .dirs
                                    .into_iter()
                                    .map(|d| {
                                        let path = d.path.clone();
                                        view! {
                                            <li>
                                                <button
                                                    type="button"
                                                    class="picker-dir"
                                                    data-name=d.name.clone()
                                                    on:click=move |_| open(Some(path.clone()))
                                                >
                                                    <span class="picker-name">{d.name.clone()}</span>
                                                    {d.shared.then(|| view! { <span class="badge badge-ok">"shared"</span> })}
                                                    <span class="chevron" aria-hidden="true">
                                                        "›"
                                                    </span>
                                                </button>
                                            </li>
                                        }
                                    })
                                    .collect_view()}
                                {truncated.then(|| view! { <li class="muted">"Too many folders to list them all."</li> })}
                            }
                                .into_any()
                        })
                }}
            </ul>
            <button
                type="button"
                class="btn btn-primary btn-block"
                id="picker-choose"
                disabled=move || here().is_none() || loading.get()
                on:click=move |_| {
                    if let Some(p) = here() {
                        on_pick.run(p);
                    }
                }
            >
                {action}
            </button>
        </div>
    }
}
