use leptos::prelude::*;

use super::severity::SeverityBadge;
use super::time::Timestamp;
use crate::dto::VersionDto;

#[component]
pub fn HistoryList(history: Vec<VersionDto>) -> impl IntoView {
    view! {
        <section aria-labelledby="history-h">
            <h2 id="history-h">"History"</h2>
            {if history.is_empty() {
                view! { <p class="empty">"Nothing applied yet."</p> }.into_any()
            } else {
                view! {
                    <ol class="history" data-testid="history">
                        {history
                            .into_iter()
                            .map(|v| {
                                view! {
                                    <li data-file=v.file.clone() data-version=v.version.to_string()>
                                        <SeverityBadge severity=v.severity.clone() />
                                        " "
                                        <code>{v.file.clone()}</code>
                                        " "
                                        <strong>{format!("v{}", v.version)}</strong>
                                        " "
                                        <span class="muted">
                                            {format!("{} by {} · {} ms · ", v.status, v.actor, v.duration_ms)}
                                            <Timestamp at=v.applied_at.clone() />
                                        </span>
                                        {v.reason.clone().map(|r| view! { <q>{r}</q> })}
                                    </li>
                                }
                            })
                            .collect_view()}
                    </ol>
                }
                    .into_any()
            }}
        </section>
    }
}
