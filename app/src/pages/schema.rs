//! The site as a picture: every entity with its fields and row count, every
//! reference an arrow (drawn on the server, `picture.rs`), what the waiting
//! changes do in their severity's colour, and a table linking each entity to
//! its file's history.

use leptos::prelude::*;

use crate::api::get_schema;
use crate::components::nav::Nav;
use crate::components::severity::SeverityBadge;

#[component]
pub fn Schema() -> impl IntoView {
    let data = Resource::new(|| (), |_| get_schema());
    view! {
        <Nav />
        <main class="page">
            <h2>"Schema"</h2>
            <p class="muted">
                "Entities and their fields; arrows are references. A waiting change colours its entity by severity; \
                 a field it drops is struck through in red, a field it adds is green."
            </p>
            <Transition fallback=|| view! { <p class="empty">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                        Ok(schema) if schema.entities.is_empty() => view! {
                            <p class="empty">"No entity yet. Add a file under schemas/, e.g. article.schema.yaml."</p>
                        }.into_any(),
                        Ok(schema) => {
                            let described = format!(
                                "Diagram of {} and their references",
                                marain::plural::count(schema.entities.len() as i64, "entity", "entities")
                            );
                            view! {
                                <figure class="picture" data-testid="schema-picture" tabindex="0">
                                    <div role="img" aria-label=described inner_html=schema.svg></div>
                                </figure>
                                <table class="files" data-testid="schema-entities">
                                    <thead><tr>
                                        <th scope="col">"Entity"</th><th scope="col">"Fields"</th><th scope="col">"Rows"</th>
                                        <th scope="col">"References"</th><th scope="col">"Waiting change"</th><th scope="col">"File"</th>
                                    </tr></thead>
                                    <tbody>
                                        {schema.entities.into_iter().map(|e| view! {
                                            <tr data-entity=e.id.clone()>
                                                <td><code>{e.id.clone()}</code> " " <span class="muted">{e.name.clone()}</span></td>
                                                <td>{e.fields}</td>
                                                <td>{e.rows.map(|n| n.to_string()).unwrap_or_else(|| "?".into())}</td>
                                                <td>{e.references.join(", ")}</td>
                                                <td>{e.pending.map(|s| view! {
                                                    <SeverityBadge severity=s /> " " {e.pending_headline.clone().unwrap_or_default()}
                                                })}</td>
                                                <td><a href=format!("/history?file={}", e.file)><code>{e.file.clone()}</code></a></td>
                                            </tr>
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
