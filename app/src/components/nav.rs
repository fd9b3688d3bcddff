//! The top bar of every page: the product's name and the way between pages.

use leptos::prelude::*;

/// The bar; `children` (the overview's live indicator) go at its end.
#[component]
pub fn Nav(#[prop(optional)] children: Option<Children>) -> impl IntoView {
    view! {
        <header class="topbar">
            <h1><a href="/">"Marain hot-reload"</a></h1>
            <nav aria-label="Pages">
                <a href="/">"Overview"</a>
                <a href="/schema">"Schema"</a>
                <a href="/timeline">"Timeline"</a>
                <a href="/audit">"Audit log"</a>
                <a href="/access">"Access"</a>
                <a href="/migration">"Migration"</a>
            </nav>
            {children.map(|c| c())}
        </header>
    }
}
