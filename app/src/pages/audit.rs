//! The audit log: every engine event as `secure.log` keeps it, newest first,
//! filtered by file, actor and kind with a plain GET form (works without JS).

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::api::get_audit;
use crate::components::nav::Nav;
use crate::components::time::Timestamp;
use marain::EventKind;

/// The kinds the filter offers: every kind `secure.log` keeps, from the enum
/// itself, so a new kind is offered without touching this page.
pub fn filter_kinds() -> Vec<&'static str> {
    EventKind::ALL.iter().filter(|k| k.audited()).map(|k| k.as_str()).collect()
}

#[component]
pub fn Audit() -> impl IntoView {
    let query = use_query_map();
    let param = move |k: &str| query.read().get(k).filter(|v| !v.is_empty());
    let data = Resource::new(move || (param("file"), param("actor"), param("kind")), |(f, a, k)| get_audit(f, a, k));
    view! {
        <Nav />
        <main class="page">
            <h2>"Audit log"</h2>
            <form method="get" action="/audit" class="compare">
                <label>"File " <input type="text" name="file" value=move || param("file").unwrap_or_default() placeholder="schemas/article" /></label>
                <label>"Actor " <input type="text" name="actor" value=move || param("actor").unwrap_or_default() placeholder="admin" /></label>
                <label>"Kind "
                    <select name="kind">
                        <option value="" selected=move || param("kind").is_none()>"any"</option>
                        {filter_kinds().into_iter().map(|k| view! {
                            <option value=k selected=move || param("kind").as_deref() == Some(k)>{k}</option>
                        }).collect_view()}
                    </select>
                </label>
                <button type="submit" class="secondary">"Filter"</button>
            </form>
            <Transition fallback=|| view! { <p class="empty">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                        Ok(entries) if entries.is_empty() => view! {
                            <p class="empty">"No event matches. Clear a filter, or edit a file under the site to make one."</p>
                        }.into_any(),
                        Ok(entries) => view! {
                            <table class="files" data-testid="audit">
                                <thead><tr>
                                    <th scope="col">"When"</th><th scope="col">"Kind"</th><th scope="col">"File"</th>
                                    <th scope="col">"By"</th><th scope="col">"What"</th>
                                </tr></thead>
                                <tbody>
                                    {entries.into_iter().map(|e| view! {
                                        <tr data-kind=e.kind.as_str()>
                                            <td><Timestamp at=e.at /></td>
                                            <td><span class=format!("kind kind-{}", e.kind)>{e.kind.as_str().replace('_', " ")}</span></td>
                                            <td><a href=format!("/history?file={}", e.file)><code>{e.file.clone()}</code></a></td>
                                            <td>{e.actor.unwrap_or_default()}</td>
                                            <td>{e.message}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                    }
                })}
            </Transition>
        </main>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind `secure.log` keeps is offered by the filter, the ones the
    /// former hand-written list missed (`waiting`, `migration`) too.
    #[test]
    fn the_filter_offers_every_audited_kind() {
        let offered = filter_kinds();
        for kind in EventKind::ALL.iter().filter(|k| k.audited()) {
            assert!(offered.contains(&kind.as_str()), "the audit filter misses `{kind}`");
        }
        assert!(offered.contains(&"waiting") && offered.contains(&"migration"));
        assert!(!offered.contains(&"resync"), "resync is never in secure.log");
    }
}
