//! One file's history: every version with who, why, when and how long, the diff
//! between any two versions, and "roll back to this version".

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::api::{get_file_history, RollbackTo};
use crate::components::change_card::diff_line;
use crate::components::nav::Nav;
use crate::components::severity::SeverityBadge;
use crate::components::time::Timestamp;

#[component]
pub fn FileHistory() -> impl IntoView {
    let query = use_query_map();
    let rollback = ServerAction::<RollbackTo>::new();
    let data = Resource::new(
        move || {
            let q = query.read();
            let num = |k: &str| q.get(k).and_then(|v| v.parse::<i64>().ok());
            (q.get("file").unwrap_or_default(), num("from"), num("to"))
        },
        |(file, from, to)| get_file_history(file, from, to),
    );
    view! {
        <Nav />
        <main class="page">
            <Transition fallback=|| view! { <p class="empty">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                        Ok(h) if h.versions.is_empty() => view! {
                            <h2>"History of " <code>{h.file.clone()}</code></h2>
                            <p class="empty">"No version of this file has been applied yet. Save it under the site directory, and its first version appears here."</p>
                        }.into_any(),
                        Ok(h) => {
                            let options = |selected: Option<i64>| {
                                h.versions
                                    .iter()
                                    .map(|v| view! { <option value=v.version.to_string() selected=Some(v.version) == selected>{format!("v{}", v.version)}</option> })
                                    .collect_view()
                            };
                            let newest = h.versions.first().map(|v| v.version);
                            let now = h.now.clone().unwrap_or_default();
                            let title = match (h.from, h.to) {
                                (Some(a), Some(b)) => format!("v{a} → v{b}"),
                                _ => "only one version".into(),
                            };
                            view! {
                                <h2>"History of " <code data-testid="history-file">{h.file.clone()}</code></h2>
                                <form method="get" action="/history" class="compare">
                                    <input type="hidden" name="file" value=h.file.clone() />
                                    <label>"From " <select name="from" aria-label="Compare from version">{options(h.from)}</select></label>
                                    <label>"to " <select name="to" aria-label="Compare to version">{options(h.to)}</select></label>
                                    <button type="submit" class="secondary">"Compare"</button>
                                </form>
                                <section aria-labelledby="diff-h">
                                    <h3 id="diff-h">"YAML diff " {title}</h3>
                                    {if h.diff.is_empty() {
                                        view! { <p class="empty">"No difference between these versions."</p> }.into_any()
                                    } else {
                                        let lines: Vec<_> = h.diff.iter().map(diff_line).collect();
                                        view! { <div class="diff" role="table" aria-label="YAML diff between versions" data-testid="version-diff" tabindex="0">{lines}</div> }.into_any()
                                    }}
                                </section>
                                {move || rollback.value().get().map(|r| match r {
                                    Ok(id) => view! { <p class="notice" role="status">{format!("Rollback change {id} waits for approval on ")} <a href="/">"the overview"</a>"."</p> }.into_any(),
                                    Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                                })}
                                <table class="files" data-testid="versions">
                                    <thead><tr>
                                        <th scope="col">"Version"</th><th scope="col">"Severity"</th><th scope="col">"Status"</th>
                                        <th scope="col">"By"</th><th scope="col">"Reason"</th><th scope="col">"When"</th><th scope="col">"Took"</th><th scope="col"></th>
                                    </tr></thead>
                                    <tbody>
                                        {h.versions.clone().into_iter().map(|v| {
                                            let label = format!("Roll back {} to version {}", v.file, v.version);
                                            let can = h.may_change && Some(v.version) != newest;
                                            view! {
                                                <tr data-version=v.version.to_string()>
                                                    <td><strong>{format!("v{}", v.version)}</strong></td>
                                                    <td><SeverityBadge severity=v.severity /></td>
                                                    <td>{v.status.clone()}</td>
                                                    <td>{v.actor.clone()}</td>
                                                    <td>{v.reason.clone().unwrap_or_default()}</td>
                                                    <td><Timestamp at=v.applied_at.clone() now=now.clone() /></td>
                                                    <td>{format!("{} ms", v.duration_ms)}</td>
                                                    <td>{can.then(|| view! {
                                                        <ActionForm action=rollback attr:class="rollback">
                                                            <input type="hidden" name="file" value=v.file.clone() />
                                                            <input type="hidden" name="version" value=v.version.to_string() />
                                                            <button type="submit" class="secondary" aria-label=label>"Roll back to this version"</button>
                                                        </ActionForm>
                                                    })}</td>
                                                </tr>
                                            }
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            }.into_any()
                        }
                    }
                })}
            </Transition>
        </main>
    }
}
