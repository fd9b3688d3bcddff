use leptos::prelude::*;

use super::severity::SeverityBadge;
use super::time::Timestamp;
use crate::api::RollbackTo;
use crate::dto::VersionDto;

/// History, newest first. Every version but a file's newest can be rolled back to.
#[component]
pub fn HistoryList(
    history: Vec<VersionDto>,
    rollback: ServerAction<RollbackTo>,
    may_change: bool,
    now: Option<String>,
) -> impl IntoView {
    let mut seen = std::collections::HashSet::new();
    let newest: Vec<bool> = history.iter().map(|v| seen.insert(v.file.clone())).collect();
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
                            .zip(newest)
                            .map(|(v, is_newest)| {
                                let label = format!("Roll back {} to version {}", v.file, v.version);
                                let (file, version) = (v.file.clone(), v.version.to_string());
                                view! {
                                    <li data-file=v.file.clone() data-version=v.version.to_string()>
                                        <SeverityBadge severity=v.severity />
                                        " "
                                        <code>{v.file.clone()}</code>
                                        " "
                                        <strong>{format!("v{}", v.version)}</strong>
                                        " "
                                        <span class="muted">
                                            {format!("{} by {} · {} ms · ", v.status, v.actor, v.duration_ms)}
                                            <Timestamp at=v.applied_at.clone() now=now.clone().unwrap_or_default() />
                                        </span>
                                        {v.reason.clone().map(|r| view! { " " <q>{r}</q> })}
                                        {(!is_newest && may_change)
                                            .then(|| {
                                                view! {
                                                    <ActionForm action=rollback attr:class="rollback">
                                                        <input type="hidden" name="file" value=file />
                                                        <input type="hidden" name="version" value=version />
                                                        <button type="submit" class="secondary" aria-label=label>
                                                            "Roll back to this version"
                                                        </button>
                                                    </ActionForm>
                                                }
                                            })}
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
