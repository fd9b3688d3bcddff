//! A pending change as a card: badge, hazards, YAML diff, SQL, and Approve.

use leptos::prelude::*;
use marain::Severity;

use super::severity::SeverityBadge;
use crate::api::{ApproveChange, RejectChange};
use crate::dto::{ChangeDto, DiffLineDto};

#[component]
pub fn ChangeCard(
    change: ChangeDto,
    approve: ServerAction<ApproveChange>,
    reject: ServerAction<RejectChange>,
    may_change: bool,
) -> impl IntoView {
    let reject_label = format!("Reject change {} to {}", change.brief.id, change.brief.file);
    let reject_id = change.brief.id.to_string();
    let blocked = change.brief.severity >= Severity::Blocked;
    let breaking = change.brief.severity == Severity::Breaking;
    let entity = change.entity.clone();
    let from = change.brief.from_version.map(|v| format!("v{v}")).unwrap_or_else(|| "new file".into());
    let sql = if change.sql.is_empty() { "-- no database change".to_string() } else { change.sql.join(";\n\n") + ";" };
    let rollback = change.rollback_sql.join(";\n\n");
    let label = format!("Approve change {} to {}", change.brief.id, change.brief.file);
    view! {
        <article class="card" data-testid="change-card" data-id=change.brief.id.to_string() data-severity=change.brief.severity.as_str() data-file=change.brief.file.clone()>
            <header class="card-head">
                <SeverityBadge severity=change.brief.severity />
                <h3>{change.brief.file.clone()}</h3>
                <span class="muted">{from} " → " {short(&change.brief.to_hash)}</span>
                {change.rollback_to.map(|v| view! { <span class="tag">{format!("rollback to v{v}")}</span> })}
                {change.brief.origin.clone().map(|o| view! { <span class="tag" data-testid="origin">{format!("proposed by the copy on {o}")}</span> })}
            </header>
            {change.brief.waiting.clone().map(|w| view! { <p class="waiting" role="status" data-testid="lock-wait">{w}</p> })}
            {change.brief.conflict.then(|| view! {
                <p class="conflict" role="note" data-testid="conflict">
                    "Conflict: copies of the site on different instances propose different texts for this file. \
                     None applies by itself; approving one supersedes the others."
                </p>
            })}
            <ul class="summary">
                {change.summary.iter().map(|s| view! { <li><code>{s.clone()}</code></li> }).collect_view()}
            </ul>
            <ul class="hazards" aria-label="Hazards">
                {change
                    .brief.hazards
                    .iter()
                    .map(|h| {
                        view! {
                            <li>
                                <SeverityBadge severity=h.severity />
                                " "
                                {h.message.clone()}
                                " "
                                <code class="muted">{h.code.clone()}</code>
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
            <details open>
                <summary>"YAML diff"</summary>
                <div class="diff" role="table" aria-label="YAML diff">
                    {change.diff.iter().map(diff_line).collect_view()}
                </div>
            </details>
            <details open>
                <summary>"SQL to run"</summary>
                <pre class="sql" data-testid="sql">{sql}</pre>
            </details>
            <details>
                <summary>"Rollback SQL"</summary>
                <pre class="sql">{rollback}</pre>
            </details>
            {(!may_change).then(|| view! { <p class="muted">"An approver can approve this change."</p> })}
            {may_change.then(move || view! {
            <ActionForm action=approve attr:class="approve">
                <input type="hidden" name="id" value=change.brief.id.to_string() />
                <label>
                    "Reason " <input type="text" name="reason" placeholder="why this change is fine" aria-label="Reason to approve" />
                </label>
                {breaking
                    .then(|| {
                        view! {
                            <label>
                                "Type " <code>{entity.clone()}</code> " to confirm "
                                <input type="text" name="confirm" autocomplete="off" required=true aria-label=format!("Type {entity} to confirm") />
                            </label>
                        }
                    })}
                <button type="submit" disabled=blocked aria-label=label.clone()>
                    "Approve"
                </button>
            </ActionForm>
            })}
            {may_change.then(move || view! {
                <ActionForm action=reject attr:class="reject">
                    <input type="hidden" name="id" value=reject_id />
                    <label>
                        "Reason " <input type="text" name="reason" placeholder="why not" aria-label="Reason to reject" />
                    </label>
                    <button type="submit" class="secondary" aria-label=reject_label>"Reject"</button>
                </ActionForm>
            })}
        </article>
    }
}

fn short(hash: &str) -> String {
    if hash.is_empty() {
        "deleted".into()
    } else {
        hash[..hash.len().min(8)].to_string()
    }
}

/// One line of a YAML diff: old and new line numbers, +/-, changed words marked.
pub fn diff_line(line: &DiffLineDto) -> impl IntoView {
    let mark = match line.tag.as_str() {
        "added" => "+",
        "removed" => "-",
        _ => " ",
    };
    let num = |n: Option<usize>| n.map(|n| n.to_string()).unwrap_or_default();
    view! {
        <div class=format!("dl dl-{}", line.tag) role="row">
            <span class="ln" role="cell">{num(line.old_line)}</span>
            <span class="ln" role="cell">{num(line.new_line)}</span>
            <span class="mk" role="cell">{mark}</span>
            <code role="cell">
                {line
                    .segments
                    .iter()
                    .map(|(changed, text)| {
                        if *changed {
                            view! { <mark>{text.clone()}</mark> }.into_any()
                        } else {
                            text.clone().into_any()
                        }
                    })
                    .collect_view()}
            </code>
        </div>
    }
}
