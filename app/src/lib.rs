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
#[cfg(feature = "ssr")]
pub mod picture;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
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
                // No icon: without this line every page load asks for
                // `/favicon.ico` and gets a 404 page.
                <link rel="icon" href="data:," />
                <link rel="stylesheet" id="leptos" href=stylesheet_href(&options) />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
                // Before the first paint: the diff layout the reader chose last
                // time (no flash of the other one), and the buttons that change it.
                <script nonce=leptos::nonce::use_nonce()>{DIFF_VIEW_SCRIPT}</script>
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// `/pkg/marain.<hash>.css` when the build named its files by content (the
/// `css:` line of the manifest Leptos reads for the script names), else
/// `/pkg/marain.css`. Read on each render, as Leptos reads it.
fn stylesheet_href(options: &LeptosOptions) -> String {
    let pkg = &options.site_pkg_dir;
    let hash = options
        .hash_files
        .then(|| std::fs::read_to_string(options.hash_file.as_ref()).ok())
        .flatten()
        .and_then(|manifest| manifest.lines().find_map(|l| l.strip_prefix("css:").map(|h| h.trim().to_string())));
    match hash {
        Some(hash) => format!("/{pkg}/{}.{hash}.css", options.output_name),
        None => format!("/{pkg}/{}.css", options.output_name),
    }
}

/// Sets `data-diff-view` on `<html>` from `localStorage` (`unified` unless the
/// reader chose `split`), and makes every `[data-diff-choice]` button set and
/// remember it. Plain script, so it works before and without hydration.
const DIFF_VIEW_SCRIPT: &str = r#"(function(){var k='marain.diff-view',d=document.documentElement;try{d.dataset.diffView=localStorage.getItem(k)==='split'?'split':'unified'}catch(e){d.dataset.diffView='unified'}document.addEventListener('click',function(e){var b=e.target.closest&&e.target.closest('[data-diff-choice]');if(!b)return;d.dataset.diffView=b.dataset.diffChoice;try{localStorage.setItem(k,b.dataset.diffChoice)}catch(e){}});})();"#;

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
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
                <Route path=path!("/migration") view=pages::legacy_move::LegacyMove ssr=SsrMode::Async />
                <Route path=path!("/schema") view=pages::schema::Schema ssr=SsrMode::Async />
                <Route path=path!("/timeline") view=pages::timeline::Timeline ssr=SsrMode::Async />
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
