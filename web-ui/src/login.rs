//! The login prompt, shown when there is no token or the node rejected it.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;

use crate::session::Session;

#[component]
pub fn Login() -> impl IntoView {
    let session = expect_context::<Session>();
    let token = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);

    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let t = token.get_untracked().trim().to_string();
        if t.is_empty() {
            error.set(Some("Paste the token first.".into()));
            return;
        }
        error.set(None);
        session.log_in(t);
    };

    view! {
        <main class="login-page">
            <section id="login" class="card login-card" aria-labelledby="login-title">
                <p class="brand-mark" aria-hidden="true">"◉"</p>
                <h1 id="login-title">"harddrive-party"</h1>
                <p class="lead">"Connect to your node"</p>
                {move || {
                    session
                        .notice()
                        .map(|n| {
                            view! {
                                <p id="login-reason" class="notice error" role="alert">
                                    {n}
                                </p>
                            }
                        })
                }}
                <p class="login-help">
                    "Open the link printed by " <code>"hdp start"</code>
                    ", or paste the token from " <code>"<data-dir>/api-token"</code> "."
                </p>
                <form id="login-form" class="stack" on:submit=on_submit>
                    <label for="login-token">"API token"</label>
                    <input
                        id="login-token"
                        name="token"
                        type="password"
                        autocomplete="off"
                        autocapitalize="none"
                        spellcheck="false"
                        placeholder="Paste the token"
                        bind:value=token
                    />
                    {move || {
                        error
                            .get()
                            .map(|e| {
                                view! {
                                    <p class="field-error" role="alert">
                                        {e}
                                    </p>
                                }
                            })
                    }}
                    <button type="submit" class="btn btn-primary btn-block">
                        "Connect"
                    </button>
                </form>
            </section>
        </main>
    }
}
