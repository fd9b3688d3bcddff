use leptos::prelude::*;

use super::time::Timestamp;

#[component]
pub fn StatusBar(in_sync: bool, last_sync: Option<String>, pending: usize, now: Option<String>) -> impl IntoView {
    let (class, text) = if in_sync {
        ("sync sync-ok", "In sync: every file is applied".to_string())
    } else {
        ("sync sync-wait", format!("Out of sync: {pending} change(s) pending, or a file needs fixing"))
    };
    view! {
        <section class=class data-testid="sync-status" data-in-sync=in_sync.to_string()>
            <strong>{text}</strong>
            {last_sync.map(|t| view! { <span class="muted">" · last sync " <Timestamp at=t now=now.clone().unwrap_or_default() /></span> })}
        </section>
    }
}
