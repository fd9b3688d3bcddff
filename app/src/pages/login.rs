//! Sign-in: a plain HTML form posted to `/login`, so it works without JavaScript.
//! The server answers with a redirect; a failure comes back as `?error=`.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

#[component]
pub fn Login() -> impl IntoView {
    let query = use_query_map();
    let message = move || match query.read().get("error").as_deref() {
        Some("invalid") => Some("Wrong user name or password.".to_string()),
        Some("rate") => Some("Too many attempts from this address; wait a minute and try again.".to_string()),
        Some("slow") => {
            let wait = query.read().get("wait").and_then(|w| w.parse::<u32>().ok()).unwrap_or(1);
            Some(format!(
                "This account had many failed sign-ins; from an address that has failed too, wait {wait} s and try again."
            ))
        }
        Some("origin") => Some("The sign-in form must be sent from this site.".to_string()),
        Some("starting") => Some("Marain is still starting; sign in again in a few seconds.".to_string()),
        Some("unavailable") => Some("The server cannot check accounts right now; try again shortly.".to_string()),
        Some(_) => Some("Signing in failed; try again.".to_string()),
        None => None,
    };
    let next = move || query.read().get("next").unwrap_or_default();
    view! {
        <main class="login">
            <h1>"Marain hot-reload"</h1>
            <form method="post" action="/login" class="login-form">
                <h2>"Sign in"</h2>
                {move || message().map(|m| view! { <p class="error" role="alert" data-testid="login-error">{m}</p> })}
                <input type="hidden" name="next" value=next />
                <label>"User name" <input type="text" name="username" autocomplete="username" required=true /></label>
                <label>
                    "Password" <input type="password" name="password" autocomplete="current-password" required=true />
                </label>
                <button type="submit">"Sign in"</button>
            </form>
        </main>
    }
}
