//! The overview: sync status, pending changes, problems, files, history, live feed.

use leptos::prelude::*;

use crate::api::{get_dashboard, ApproveChange, ControlChange, DeclineChange, RollbackTo};
use crate::components::change_card::ChangeCard;
use crate::components::feed::Feed;
use crate::components::files::{BehindList, DriftList, FileTable, Problems};
use crate::components::history::HistoryList;
use crate::components::nav::Nav;
use crate::components::status::StatusBar;
use crate::live::use_live_feed;

#[component]
pub fn Dashboard() -> impl IntoView {
    let live = use_live_feed();
    let approve = ServerAction::<ApproveChange>::new();
    let rollback = ServerAction::<RollbackTo>::new();
    let decline = ServerAction::<DeclineChange>::new();
    let control = ServerAction::<ControlChange>::new();
    let data = Resource::new(
        move || {
            let actions = (approve.version().get(), rollback.version().get(), decline.version().get());
            (live.tick.get(), actions, control.version().get())
        },
        |_| get_dashboard(),
    );
    let approve_error = move || {
        let approve = approve.value().get().and_then(|r| r.err());
        let rollback = rollback.value().get().and_then(|r| r.err());
        let declined = decline.value().get().and_then(|r| r.err());
        let controlled = control.value().get().and_then(|r| r.err());
        approve.or(rollback).or(declined).or(controlled).map(|e| e.to_string())
    };

    view! {
        <Nav>
            <span class="live" class:on=move || live.connected.get() role="status" aria-live="polite">
                {move || if live.connected.get() { "● live" } else { "○ connecting…" }}
            </span>
        </Nav>
        <main class="layout">
            <Transition fallback=|| view! { <p class="empty">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(d) => {
                            let may_change = d.user.as_ref().is_some_and(|u| u.may_change);
                            view! {
                                {d.user.clone().map(|u| view! { <UserBar name=u.name role=u.role /> }.into_any())}
                                <StatusBar
                                    in_sync=d.in_sync
                                    last_sync=d.last_sync.clone()
                                    pending=d.pending.len()
                                    problems=problem_files(&d)
                                    drift=d.drift.len()
                                    now=d.now.clone()
                                />
                                <section aria-labelledby="pending-h">
                                    <h2 id="pending-h">"Pending changes"</h2>
                                    {approve_error().map(|e| view! { <p class="error" role="alert">{e}</p> })}
                                    {if d.pending.is_empty() {
                                        view! {
                                            <p class="empty">
                                                "Nothing waits for approval. Edit a file under schemas/ and its change appears here."
                                            </p>
                                        }
                                            .into_any()
                                    } else {
                                        d.pending
                                            .into_iter()
                                            .map(|c| view! { <ChangeCard change=c approve decline control may_change /> })
                                            .collect_view()
                                            .into_any()
                                    }}
                                </section>
                                {view! { <Problems rejected=d.rejected failed=d.failed /> }.into_any()}
                                {view! { <DriftList drift=d.drift /> }.into_any()}
                                {view! { <BehindList behind=d.behind /> }.into_any()}
                                {view! { <FileTable files=d.files /> }.into_any()}
                                <HistoryList history=d.history rollback may_change now=d.now.clone() />
                            }
                                .into_any()
                        }
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
            <Feed events=live.events />
        </main>
    }
}

/// Who is signed in, and the way out. A plain form: it works without JavaScript.
#[component]
fn UserBar(name: String, role: String) -> impl IntoView {
    view! {
        <form class="userbar" method="post" action="/logout">
            <span>"Signed in as " <strong data-testid="user">{name}</strong> " (" {role} ") "</span>
            <button type="submit" class="secondary">"Sign out"</button>
        </form>
    }
}

/// How many files need fixing: rejected or failed (a file may have several errors).
fn problem_files(d: &crate::dto::DashboardDto) -> usize {
    d.rejected.iter().chain(&d.failed).map(|p| p.file.as_str()).collect::<std::collections::BTreeSet<_>>().len()
}
