//! Migration: the move from the legacy JSON `content` table (docs/legacy.md).
//! Per type, rows copied, not fitting and waiting, with a bar that moves while a
//! run works (its progress comes as `migration` events on the live feed, from
//! a run started here or on the command line); the rows that do not fit, with
//! why; and, for approvers, Start, Verify and Finish.

use leptos::prelude::*;

use crate::api::{get_legacy_move, FinishLegacyMove, StartLegacyMove, VerifyLegacyMove};
use crate::components::nav::Nav;
use crate::components::time::Timestamp;
use crate::dto::{LegacyMoveDto, MisfitDto, MoveDto, TypeProgressDto, VerifyDto};
use crate::live::use_live_feed;

#[component]
pub fn LegacyMove() -> impl IntoView {
    let live = use_live_feed();
    let start = ServerAction::<StartLegacyMove>::new();
    let verify = ServerAction::<VerifyLegacyMove>::new();
    let finish = ServerAction::<FinishLegacyMove>::new();
    let data = Resource::new(
        move || (live.tick.get(), start.version().get(), verify.version().get(), finish.version().get()),
        |_| get_legacy_move(),
    );
    // Each action's latest outcome, in one place.
    let outcomes = move || {
        let shown = |r: Result<String, crate::error::AppError>| match r {
            Ok(done) => view! { <p class="notice" role="status" data-testid="migration-outcome">{done}</p> }.into_any(),
            Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
        };
        let started = start.value().get().map(|r| shown(r.map(|()| "Copying started.".to_string())));
        let finished = finish
            .value()
            .get()
            .map(|r| shown(r.map(|name| format!("Finished: the legacy table is kept as `{name}`."))));
        let verified = verify.value().get().map(|r| match r {
            Ok(v) => view! { <VerifyResult v=v /> }.into_any(),
            Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
        });
        [started, finished, verified].into_iter().flatten().collect_view()
    };
    view! {
        <Nav />
        <main class="page">
            <h2>"Migration from the legacy content table"</h2>
            <div class="outcomes">{outcomes}</div>
            <Transition fallback=|| view! { <p class="empty">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                        Ok(m) => view! { <Moves m=m start=start verify=verify finish=finish /> }.into_any(),
                    }
                })}
            </Transition>
        </main>
    }
}

#[component]
fn Moves(
    m: LegacyMoveDto,
    start: ServerAction<StartLegacyMove>,
    verify: ServerAction<VerifyLegacyMove>,
    finish: ServerAction<FinishLegacyMove>,
) -> impl IntoView {
    let LegacyMoveDto { moves, misfits, startable, may_change } = m;
    if moves.is_empty() {
        return match startable {
            Some(table) => view! {
                <p data-testid="migration-startable">
                    "A legacy table " <code>{table}</code> " is in this database and nothing has been copied yet. "
                    "Read " <code>"marain legacy plan"</code> " first, then start."
                </p>
                {may_change.then(|| view! {
                    <button on:click=move |_| { start.dispatch(StartLegacyMove {}); } disabled=move || start.pending().get()>
                        "Start copying"
                    </button>
                })}
            }
            .into_any(),
            None => view! {
                <p class="empty" data-testid="migration-none">
                    "No legacy " <code>"content"</code> " table in this database, and no move recorded."
                </p>
            }
            .into_any(),
        };
    }
    view! {
        {moves.into_iter().map(|one| view! { <Move one=one may_change=may_change start=start verify=verify finish=finish /> }).collect_view()}
        <Misfits misfits=misfits />
    }
    .into_any()
}

#[component]
fn Move(
    one: MoveDto,
    may_change: bool,
    start: ServerAction<StartLegacyMove>,
    verify: ServerAction<VerifyLegacyMove>,
    finish: ServerAction<FinishLegacyMove>,
) -> impl IntoView {
    let state = match (&one.finished_at, one.running) {
        (Some(_), _) => format!("finished; kept as `{}`", one.renamed_to.clone().unwrap_or_default()),
        (None, true) => "copying".to_string(),
        (None, false) => "under way: reads fall back to legacy rows not copied yet".to_string(),
    };
    let open = one.finished_at.is_none();
    let busy = one.running;
    view! {
        <section class="card" data-testid="migration-move" aria-label=format!("legacy table {}", one.legacy_table)>
            <div class="card-head">
                <h3>{one.legacy_table.clone()}</h3>
                <span class="state" data-testid="migration-state">{state}</span>
                <span class="muted">"writes through: " {if one.dual_write { "on" } else { "off" }}</span>
                <span class="muted">"last batch " <Timestamp at=one.updated_at.clone() /></span>
            </div>
            <table class="files" data-testid="migration-types">
                <thead><tr>
                    <th scope="col">"Type"</th><th scope="col">"Entity"</th><th scope="col">"Progress"</th>
                    <th scope="col">"Copied"</th><th scope="col">"Do not fit"</th><th scope="col">"Waiting"</th>
                </tr></thead>
                <tbody>
                    {one.types.into_iter().map(|t| view! { <TypeRow t=t /> }).collect_view()}
                </tbody>
            </table>
            {(may_change && open).then(|| view! {
                <div class="approve">
                    <button on:click=move |_| { start.dispatch(StartLegacyMove {}); } disabled=move || busy || start.pending().get()>
                        "Run again"
                    </button>
                    <button on:click=move |_| { verify.dispatch(VerifyLegacyMove {}); } disabled=move || verify.pending().get()>
                        "Verify"
                    </button>
                    <button class="danger" on:click=move |_| { finish.dispatch(FinishLegacyMove {}); } disabled=move || busy || finish.pending().get()>
                        "Finish"
                    </button>
                </div>
            })}
        </section>
    }
}

#[component]
fn TypeRow(t: TypeProgressDto) -> impl IntoView {
    let done = t.total - t.waiting;
    let percent = if t.total > 0 { done * 100 / t.total } else { 100 };
    let misfit_class = if t.misfits > 0 { "state state-rejected" } else { "" };
    view! {
        <tr data-testid=format!("migration-type-{}", t.entity_type)>
            <td><code>{t.entity_type.clone()}</code></td>
            <td><code>{t.entity}</code></td>
            <td>
                <progress max=t.total.max(1) value=done aria-label=format!("{} rows looked at", t.entity_type)></progress>
                " " {percent} "%"
            </td>
            <td data-testid="copied">{t.copied} " of " {t.total}</td>
            <td data-testid="misfits" class=misfit_class>{t.misfits}</td>
            <td data-testid="waiting">{t.waiting}</td>
        </tr>
    }
}

#[component]
fn Misfits(misfits: Vec<MisfitDto>) -> impl IntoView {
    if misfits.is_empty() {
        return view! { <p class="empty">"Every row looked at fits."</p> }.into_any();
    }
    view! {
        <section aria-labelledby="misfits-h">
            <h3 id="misfits-h">"Rows that do not fit"</h3>
            <p class="muted">"They stay in the legacy table. Fix the data or the schema, then run again."</p>
            <table class="files" data-testid="migration-misfits">
                <thead><tr>
                    <th scope="col">"Type"</th><th scope="col">"Row"</th><th scope="col">"Key"</th>
                    <th scope="col">"Value"</th><th scope="col">"Why"</th>
                </tr></thead>
                <tbody>
                    {misfits.into_iter().map(|m| view! {
                        <tr>
                            <td><code>{m.entity_type}</code></td>
                            <td><code>{m.id}</code></td>
                            <td>{if m.key.is_empty() { view! { <span class="muted">"(the row)"</span> }.into_any() } else { view! { <code>{m.key}</code> }.into_any() }}</td>
                            <td><code>{m.value}</code></td>
                            <td>{m.reason}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </section>
    }
    .into_any()
}

#[component]
fn VerifyResult(v: VerifyDto) -> impl IntoView {
    let passed = v.difference_count == 0;
    let class = if passed { "notice" } else { "error" };
    view! {
        <div class=class role="status" data-testid="migration-verify">
            <p>
                {if passed { "Verify passed: " } else { "Verify found differences: " }}
                {format!(
                    "{} compared, {} not copied, {}.",
                    marain::plural::count(v.compared, "row", "rows"),
                    v.not_copied,
                    marain::plural::count(v.difference_count as i64, "difference", "differences")
                )}
            </p>
            {(!passed).then(|| view! {
                <ul>{v.differences.into_iter().map(|d| view! { <li><code>{d}</code></li> }).collect_view()}</ul>
            })}
        </div>
    }
}
