use leptos::prelude::*;

use super::time::Timestamp;

#[component]
pub fn StatusBar(
    in_sync: bool,
    last_sync: Option<String>,
    /// Changes waiting for approval.
    pending: usize,
    /// Files rejected or failed: someone must fix them.
    problems: usize,
    /// Tables, and rows data files wrote, that differ from the files.
    drift: usize,
    now: Option<String>,
) -> impl IntoView {
    let (class, text) = if in_sync {
        ("sync sync-ok", "In sync: every file is applied".to_string())
    } else {
        let counts = [
            (pending, "change waits for approval", "changes wait for approval"),
            (problems, "file needs fixing", "files need fixing"),
            (drift, "difference between the database and the files", "differences between the database and the files"),
        ];
        let said: Vec<String> = counts
            .iter()
            .filter(|(n, ..)| *n > 0)
            .map(|(n, one, many)| marain::plural::count(*n as i64, one, many))
            .collect();
        let text =
            if said.is_empty() { "Out of sync".to_string() } else { format!("Out of sync: {}", said.join(" · ")) };
        ("sync sync-wait", text)
    };
    view! {
        <section class=class data-testid="sync-status" data-in-sync=in_sync.to_string()>
            <strong>{text}</strong>
            {last_sync.map(|t| view! { <span class="muted">" · last sync " <Timestamp at=t now=now.clone().unwrap_or_default() /></span> })}
        </section>
    }
}
