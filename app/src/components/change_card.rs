//! A pending change as a card: badge, hazards, YAML diff, SQL, and Approve.

use leptos::prelude::*;
use marain::Severity;

use super::severity::SeverityBadge;
use crate::api::{ApproveChange, ControlChange, DeclineChange};
use crate::dto::{ChangeDto, DiffLineDto, OnlineRunDto, RowDiffDto};

#[component]
pub fn ChangeCard(
    change: ChangeDto,
    approve: ServerAction<ApproveChange>,
    decline: ServerAction<DeclineChange>,
    control: ServerAction<ControlChange>,
    may_change: bool,
) -> impl IntoView {
    let decline_label = format!("Reject change {} to {}", change.brief.id, change.brief.file);
    let decline_id = change.brief.id.to_string();
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
            {change.brief.running.clone().map(|run| view! { <RunProgress run id=change.brief.id control may_change /> })}
            {change.brief.conflict.then(|| view! {
                <p class="conflict" role="note" data-testid="conflict">
                    "Conflict: copies of the site on different instances propose different texts for this file. \
                     None applies by itself; approving one supersedes the others."
                </p>
            })}
            {(!change.headline.is_empty()).then(|| view! { <p class="headline" data-testid="headline">{change.headline.clone()}</p> })}
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
            {(!change.rows.is_empty()).then(|| view! { <RowDiffTable rows=change.rows.clone() /> })}
            <details open>
                <summary>"YAML diff"</summary>
                <DiffViews lines=change.diff.clone() />
            </details>
            {(!change.phases.is_empty()).then(|| {
                let rows = change.table_rows.map(|n| format!(" on {n} rows")).unwrap_or_default();
                view! {
                    <details open data-testid="phases">
                        <summary>{format!("Online: {} before the cut-over{rows}", marain::plural::count(change.phases.len() as i64, "phase", "phases"))}</summary>
                        <ol class="phases">
                            {change.phases.iter().map(|p| view! {
                                <li>{p.summary.clone()}<pre class="sql" tabindex="0">{phase_sql(p)}</pre></li>
                            }).collect_view()}
                        </ol>
                    </details>
                }
            })}
            <details open>
                <summary>{if change.path == "online" { "SQL of the cut-over" } else { "SQL to run" }}</summary>
                <pre class="sql" data-testid="sql" tabindex="0">{sql}</pre>
            </details>
            <details>
                <summary>"Rollback SQL"</summary>
                <pre class="sql" tabindex="0">{rollback}</pre>
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
                <ActionForm action=decline attr:class="reject">
                    <input type="hidden" name="id" value=decline_id />
                    <label>
                        "Reason " <input type="text" name="reason" placeholder="why not" aria-label="Reason to reject" />
                    </label>
                    <button type="submit" class="secondary" aria-label=decline_label>"Reject"</button>
                </ActionForm>
            })}
        </article>
    }
}

/// How far a change's online phases are while they run: a bar of the
/// current phase's rows, the rate and time left in words, and (for an
/// approver) Pause or Resume, and Abort.
#[component]
fn RunProgress(run: OnlineRunDto, id: u64, control: ServerAction<ControlChange>, may_change: bool) -> impl IntoView {
    let total = run.rows_total.unwrap_or(0).max(run.rows_done).max(1);
    let paused = run.state == "paused";
    let button = move |action: &'static str, label: &'static str, class: &'static str| {
        view! {
            <ActionForm action=control attr:class="control">
                <input type="hidden" name="id" value=id.to_string() />
                <input type="hidden" name="action" value=action />
                <button type="submit" class=class aria-label=format!("{label} change {id}")>{label}</button>
            </ActionForm>
        }
    };
    view! {
        <section class="running" data-testid="online-run" data-state=run.state.clone() aria-label="Online phases">
            <progress max=total value=run.rows_done aria-label=format!("phase {} of {}: rows done", run.phase, run.phases)></progress>
            <p role="status" aria-live="polite" data-testid="online-run-text">{run.text.clone()}</p>
            {(may_change && run.state != "aborting").then(|| view! {
                <div class="controls">
                    {if paused { button("resume", "Resume", "") } else { button("pause", "Pause", "secondary") }}
                    {button("abort", "Abort", "danger")}
                </div>
            })}
        </section>
    }
}

/// A phase's statements, then its batch queries marked as such.
fn phase_sql(phase: &crate::dto::PhaseDto) -> String {
    let mut text: Vec<String> = phase.sql.iter().map(|s| format!("{s};")).collect();
    for batch in &phase.batches {
        text.push(format!(
            "-- in batches, each its own transaction: $1 rows after key $2, until none is left\n{batch};"
        ));
    }
    text.join("\n")
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
            <code role="cell">{segments(line)}</code>
        </div>
    }
}

/// A YAML diff both ways, unified and side by side; the page shows the one the
/// reader chose (`data-diff-view` on `<html>`, remembered in the browser by the
/// shell's script), so switching needs no request and survives a reload.
#[component]
pub fn DiffViews(lines: Vec<DiffLineDto>) -> impl IntoView {
    view! {
        <div class="diff-views">
            <div class="diff-toggle" role="group" aria-label="Diff layout">
                <button type="button" class="secondary" data-diff-choice="unified">"Unified"</button>
                <button type="button" class="secondary" data-diff-choice="split">"Side by side"</button>
            </div>
            <div class="diff diff-unified" role="table" aria-label="YAML diff" tabindex="0">
                {lines.iter().map(diff_line).collect_view()}
            </div>
            <div class="diff diff-split" role="table" aria-label="YAML diff, side by side" data-testid="diff-split" tabindex="0">
                {split_rows(&lines).into_iter().map(split_row).collect_view()}
            </div>
        </div>
    }
}

/// One row of the side-by-side view: the old line (if any) and the new one.
type SplitRow<'a> = (Option<&'a DiffLineDto>, Option<&'a DiffLineDto>);

/// Pairs removed lines with the added lines that follow them, in order; lines
/// the same on both sides sit on one row.
fn split_rows(lines: &[DiffLineDto]) -> Vec<SplitRow<'_>> {
    let mut rows = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].tag == "same" {
            rows.push((Some(&lines[i]), Some(&lines[i])));
            i += 1;
            continue;
        }
        let removed: Vec<&DiffLineDto> = lines[i..].iter().take_while(|l| l.tag == "removed").collect();
        let added: Vec<&DiffLineDto> = lines[i + removed.len()..].iter().take_while(|l| l.tag == "added").collect();
        let n = removed.len().max(added.len()).max(1);
        for k in 0..n {
            rows.push((removed.get(k).copied(), added.get(k).copied()));
        }
        i += (removed.len() + added.len()).max(1);
    }
    rows
}

fn split_row((old, new): SplitRow<'_>) -> impl IntoView {
    let side = |line: Option<&DiffLineDto>, number: fn(&DiffLineDto) -> Option<usize>, class: &'static str| match line {
        Some(l) => {
            let tag = if l.tag == "same" { "same" } else { class };
            view! {
                <span class=format!("ln sl-{tag}") role="cell">{number(l).map(|n| n.to_string()).unwrap_or_default()}</span>
                <code class=format!("sl-{tag}") role="cell">{segments(l)}</code>
            }
            .into_any()
        }
        None => view! {
            <span class="ln sl-empty" role="cell"></span>
            <code class="sl-empty" role="cell"></code>
        }
        .into_any(),
    };
    view! {
        <div class="sl" role="row">
            {side(old, |l| l.old_line, "removed")}
            {side(new, |l| l.new_line, "added")}
        </div>
    }
}

fn segments(line: &DiffLineDto) -> impl IntoView {
    line.segments
        .iter()
        .map(
            |(changed, text)| {
                if *changed {
                    view! { <mark>{text.clone()}</mark> }.into_any()
                } else {
                    text.clone().into_any()
                }
            },
        )
        .collect_view()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(tag: &str, text: &str) -> DiffLineDto {
        DiffLineDto { tag: tag.into(), old_line: None, new_line: None, segments: vec![(false, text.into())] }
    }

    #[test]
    fn removed_and_added_lines_pair_up_side_by_side() {
        let lines = [
            line("same", "a"),
            line("removed", "b"),
            line("removed", "c"),
            line("added", "B"),
            line("same", "d"),
            line("added", "e"),
        ];
        let text = |l: Option<&DiffLineDto>| l.map(|l| l.segments[0].1.clone()).unwrap_or_default();
        let rows: Vec<(String, String)> = split_rows(&lines).into_iter().map(|(o, n)| (text(o), text(n))).collect();
        let want = [("a", "a"), ("b", "B"), ("c", ""), ("d", "d"), ("", "e")];
        assert_eq!(rows, want.map(|(o, n)| (o.to_string(), n.to_string())));
    }
}

/// The rows a change to reference data writes or deletes: one line per field
/// that differs, the value before and after, coloured like the YAML diff.
#[component]
fn RowDiffTable(rows: Vec<RowDiffDto>) -> impl IntoView {
    let lines: Vec<(String, String, (String, String, String))> = rows
        .into_iter()
        .flat_map(|r| {
            let (id, op) = (r.id, r.op);
            let fields =
                if r.fields.is_empty() { vec![(String::new(), String::new(), String::new())] } else { r.fields };
            fields.into_iter().map(move |f| (id.clone(), op.clone(), f))
        })
        .collect();
    view! {
        <div class="row-diff-box" tabindex="0" role="region" aria-label="Row diff">
            <table class="row-diff" data-testid="row-diff">
                <thead>
                    <tr><th scope="col">"Record"</th><th scope="col">"Field"</th><th scope="col">"Before"</th><th scope="col">"After"</th></tr>
                </thead>
                <tbody>
                    {lines
                        .into_iter()
                        .map(|(id, op, (field, before, after))| {
                            let sign = match op.as_str() {
                                "added" => "+ ",
                                "removed" => "- ",
                                _ => "~ ",
                            };
                            let (record, name) = (id.clone(), field.clone());
                            view! {
                                <tr class=format!("row-{op}") data-record=record data-field=name>
                                    <td><code>{sign}{id}</code></td>
                                    <td><code>{field}</code></td>
                                    <td class="before"><code>{before}</code></td>
                                    <td class="after"><code>{after}</code></td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}
