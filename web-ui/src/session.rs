//! The API token: where it comes from, where it is kept, and what happens
//! when the node rejects it.
//!
//! `hdp start` prints `http://127.0.0.1:3030/#token=…`. On load the token is
//! taken from the fragment, kept in `localStorage` under [`TOKEN_KEY`] and the
//! fragment is removed from the address bar. A 401 from any call forgets the
//! token and brings up the login prompt with the node's message.

use std::future::Future;

use leptos::prelude::*;
use web_sys::Storage;

use crate::api::ApiFailure;

/// The `localStorage` key holding the API token.
pub const TOKEN_KEY: &str = "hdp-token";

fn storage() -> Option<Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

fn stored_token() -> Option<String> {
    storage()?.get_item(TOKEN_KEY).ok().flatten().filter(|t| !t.trim().is_empty())
}

fn store_token(token: &str) {
    // Without storage (private mode, disabled) the token lives in memory only.
    if let Some(s) = storage() {
        let _ = s.set_item(TOKEN_KEY, token);
    }
}

fn forget_token() {
    if let Some(s) = storage() {
        let _ = s.remove_item(TOKEN_KEY);
    }
}

/// Takes `token=…` out of the URL fragment, if there, and removes the
/// fragment from the address bar and history so the secret does not linger.
fn take_token_from_url() -> Option<String> {
    let window = web_sys::window()?;
    let location = window.location();
    let hash = location.hash().ok()?;
    let fragment = hash.strip_prefix('#').unwrap_or(&hash);
    if fragment.is_empty() {
        return None;
    }
    let params = web_sys::UrlSearchParams::new_with_str(fragment).ok()?;
    let token = params.get("token")?.trim().to_string();
    let clean =
        format!("{}{}", location.pathname().unwrap_or_else(|_| "/".into()), location.search().unwrap_or_default());
    if let Ok(history) = window.history() {
        let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&clean));
    }
    (!token.is_empty()).then_some(token)
}

/// Login state, provided as context by [`crate::app::App`]
/// (`expect_context::<Session>()`).
#[derive(Debug, Clone, Copy)]
pub struct Session {
    token: RwSignal<Option<String>>,
    /// Why the login prompt is showing (the node's 401 message), if not
    /// simply because there was no token yet.
    notice: RwSignal<Option<String>>,
}

impl Session {
    /// Picks up the token from the URL fragment or from storage.
    pub fn start() -> Self {
        let token = match take_token_from_url() {
            Some(t) => {
                store_token(&t);
                Some(t)
            }
            None => stored_token(),
        };
        Self { token: RwSignal::new(token), notice: RwSignal::new(None) }
    }

    /// Logs in with a `#token=…` that arrived in the fragment after the page
    /// loaded (a login link opened in a tab that already shows the app).
    pub fn adopt_url_token(&self) {
        if let Some(t) = take_token_from_url() {
            self.log_in(t);
        }
    }

    /// Whether we have a token (tracked: the app switches on it).
    pub fn is_logged_in(&self) -> bool {
        self.token.with(Option::is_some)
    }

    /// The token now, untracked (for calls made outside [`Session::call`]).
    pub fn token(&self) -> Option<String> {
        self.token.try_get_untracked().flatten()
    }

    /// Why the login prompt is showing, if there is more to say (tracked).
    pub fn notice(&self) -> Option<String> {
        self.notice.get()
    }

    /// Stores `token` and makes the app load its data with it.
    pub fn log_in(&self, token: String) {
        store_token(&token);
        self.notice.set(None);
        self.token.set(Some(token));
    }

    /// Forgets the token and shows the login prompt, with `notice` if given.
    pub fn log_out(&self, notice: Option<String>) {
        forget_token();
        self.notice.set(notice);
        self.token.set(None);
    }

    /// Runs one API call with the current token. A 401 logs out (unless the
    /// token has changed since the call began, so a stale answer cannot end
    /// a newer session) and is still returned to the caller.
    pub async fn call<T, F, Fut>(self, f: F) -> Result<T, ApiFailure>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<T, ApiFailure>>,
    {
        let Some(token) = self.token.try_get_untracked().flatten() else {
            return Err(ApiFailure::Unauthorized("Not logged in.".into()));
        };
        let result = f(token.clone()).await;
        if let Err(ApiFailure::Unauthorized(message)) = &result {
            let current = self.token.try_get_untracked().flatten();
            if current.as_deref() == Some(token.as_str()) {
                self.log_out(Some(format!("The node did not accept the token: {message}")));
            }
        }
        result
    }
}
