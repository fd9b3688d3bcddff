//! The Marain dashboard: Leptos pages rendered on the server and hydrated in the
//! browser, the server functions they call, and the DTOs both sides share.

pub mod api;
pub mod components;
#[cfg(feature = "ssr")]
pub mod convert;
pub mod dto;
pub mod error;
pub mod live;
pub mod pages;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{path, SsrMode};

/// The HTML document around the app, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/marain.css" />
        <Title text="Marain hot-reload" />
        <Router>
            <Routes fallback=|| view! { <p class="empty">"Page not found."</p> }>
                // Async: the whole page is rendered before it is sent, so it reads
                // without JavaScript.
                <Route path=path!("/") view=pages::dashboard::Dashboard ssr=SsrMode::Async />
                <Route path=path!("/login") view=pages::login::Login />
                <Route path=path!("/history") view=pages::history::FileHistory ssr=SsrMode::Async />
                <Route path=path!("/audit") view=pages::audit::Audit ssr=SsrMode::Async />
                <Route path=path!("/access") view=pages::access::Access ssr=SsrMode::Async />
                <Route path=path!("/migration") view=pages::migration::Migration ssr=SsrMode::Async />
            </Routes>
        </Router>
    }
}

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
}
