use leptos::prelude::*;

use marain::FileState;

use crate::dto::{BehindDto, DriftDto, FileDto, FileProblemDto};

#[component]
pub fn FileTable(files: Vec<FileDto>) -> impl IntoView {
    view! {
        <section aria-labelledby="files-h">
            <h2 id="files-h">"Watched files"</h2>
            {if files.is_empty() {
                view! { <p class="empty">"No schema files yet. Add one under schemas/, e.g. article.schema.yaml."</p> }
                    .into_any()
            } else {
                view! {
                    <table class="files">
                        <thead>
                            <tr>
                                <th scope="col">"File"</th>
                                <th scope="col">"Entity"</th>
                                <th scope="col">"Version"</th>
                                <th scope="col">"Status"</th>
                            </tr>
                        </thead>
                        <tbody>
                            {files
                                .into_iter()
                                .map(|f| {
                                    view! {
                                        <tr data-file=f.path.clone()>
                                            <td><a href=format!("/history?file={}", f.path) aria-label=format!("History of {}", f.path)><code>{f.path.clone()}</code></a></td>
                                            <td>{f.entity.clone().unwrap_or_default()}</td>
                                            <td>{f.version.map(|v| format!("v{v}")).unwrap_or_else(|| "—".into())}</td>
                                            <td><span class=format!("state state-{}", f.state)>{f.state.as_str().replace('_', " ")}</span></td>
                                        </tr>
                                    }
                                })
                                .collect_view()}
                        </tbody>
                    </table>
                }
                    .into_any()
            }}
        </section>
    }
}

/// Files that could not be accepted or applied, with the error at its line.
#[component]
pub fn Problems(rejected: Vec<FileProblemDto>, failed: Vec<FileProblemDto>) -> impl IntoView {
    let any = !(rejected.is_empty() && failed.is_empty());
    let row = |kind: &'static str, p: FileProblemDto| {
        let (at, column) = (p.line, p.column);
        let excerpt = (!p.excerpt.is_empty()).then(|| {
            view! {
                <pre class="excerpt" data-testid="excerpt" tabindex="0">
                    {p.excerpt
                        .into_iter()
                        .map(|(n, text)| {
                            let caret = (n == at).then(|| format!("\n{}^", " ".repeat(column.saturating_sub(1) + 6)));
                            view! {
                                <span class:at=n == at>{format!("{n:>4}  {text}")}</span>
                                {caret}
                                "\n"
                            }
                        })
                        .collect_view()}
                </pre>
            }
        });
        view! {
            <li class="problem" data-testid=kind data-file=p.file.clone()>
                <code>{format!("{}:{}:{}", p.file, p.line, p.column)}</code>
                " "
                {p.message}
                {excerpt}
            </li>
        }
    };
    any.then(|| {
        view! {
            <section aria-labelledby="problems-h" class="problems">
                <h2 id="problems-h">"Files that need fixing"</h2>
                <p class="muted">"The last good version of each stays live until the file is fixed."</p>
                <ul>
                    {rejected.into_iter().map(|p| row(FileState::Rejected.as_str(), p)).collect_view()}
                    {failed.into_iter().map(|p| row(FileState::Failed.as_str(), p)).collect_view()}
                </ul>
            </section>
        }
    })
}

/// Files whose copy on this instance is older than what the database has
/// applied: this host is still to be updated. Shown, never proposed.
#[component]
pub fn BehindList(behind: Vec<BehindDto>) -> impl IntoView {
    (!behind.is_empty()).then(|| {
        view! {
            <section aria-labelledby="behind-h" class="problems">
                <h2 id="behind-h">"Behind: this instance's copy is older than what is applied"</h2>
                <p class="muted">"Another instance applied a newer version. Update this host's copy of the site; nothing here is proposed as a change."</p>
                <ul>
                    {behind
                        .into_iter()
                        .map(|b| view! { <li class="problem" data-testid=FileState::Behind.as_str()><code>{b.file}</code> " " {b.message}</li> })
                        .collect_view()}
                </ul>
            </section>
        }
    })
}

/// The database differs from the applied files: shown, never repaired silently.
#[component]
pub fn DriftList(drift: Vec<DriftDto>) -> impl IntoView {
    (!drift.is_empty()).then(|| {
        view! {
            <section aria-labelledby="drift-h" class="problems">
                <h2 id="drift-h">"Drift: the database differs from the files"</h2>
                <p class="muted">"Someone changed the database outside the files: by hand, or through the content API in rows a data file wrote. Nothing is repaired automatically."</p>
                <ul>
                    {drift
                        .into_iter()
                        .map(|d| view! { <li class="problem" data-testid="drift"><code>{d.table}</code> " " {d.problem}</li> })
                        .collect_view()}
                </ul>
            </section>
        }
    })
}
