//! The top bar of every page: the product's name and the way between pages.

use leptos::prelude::*;

#[component]
pub fn Nav() -> impl IntoView {
    view! {
        <header class="topbar">
            <h1><a href="/">"Marain hot-reload"</a></h1>
            <nav aria-label="Pages">
                <a href="/">"Overview"</a>
                <a href="/audit">"Audit log"</a>
            </nav>
        </header>
    }
}
