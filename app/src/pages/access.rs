//! Access: who is signed in to the dashboard, and the API tokens. An approver
//! sees where each session signed in from, can end a session (it is signed
//! out on its next request) and can revoke a token (refused at once).

use leptos::prelude::*;

use crate::api::{get_access, EndSession, RevokeToken};
use crate::components::nav::Nav;
use crate::components::time::Timestamp;
use crate::dto::{AccessDto, SessionDto, TokenDto};

#[component]
pub fn Access() -> impl IntoView {
    let revoke = ServerAction::<RevokeToken>::new();
    let end = ServerAction::<EndSession>::new();
    let data = Resource::new(move || (revoke.version().get(), end.version().get()), |_| get_access());
    let outcome = move || {
        let revoked =
            revoke.value().get().map(|r| r.map(|name| format!("Token `{name}` revoked: it is refused from now on.")));
        let ended =
            end.value().get().map(|r| r.map(|()| "Session ended: it is signed out on its next request.".to_string()));
        revoked.or(ended).map(|r| match r {
            Ok(done) => view! { <p class="notice" role="status" data-testid="access-outcome">{done}</p> }.into_any(),
            Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
        })
    };
    view! {
        <Nav />
        <main class="page">
            <h2>"Access"</h2>
            {outcome}
            <Transition fallback=|| view! { <p class="empty">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                        Ok(access) => view! { <AccessTables access=access revoke=revoke end=end /> }.into_any(),
                    }
                })}
            </Transition>
        </main>
    }
}

#[component]
fn AccessTables(access: AccessDto, revoke: ServerAction<RevokeToken>, end: ServerAction<EndSession>) -> impl IntoView {
    let AccessDto { sessions, tokens, may_change, now } = access;
    let session_now = now.clone();
    view! {
        <section aria-labelledby="sessions-h">
            <h3 id="sessions-h">"Signed in"</h3>
            <table class="files" data-testid="sessions">
                <thead><tr>
                    <th scope="col">"Who"</th><th scope="col">"Role"</th>
                    {may_change.then(|| view! { <th scope="col">"From"</th><th scope="col">"Browser"</th> })}
                    <th scope="col">"Signed in"</th><th scope="col">"Last seen"</th>
                    {may_change.then(|| view! { <th scope="col"><span class="visually-hidden">"Actions"</span></th> })}
                </tr></thead>
                <tbody>
                    {sessions.into_iter().map(|s| view! { <SessionRow s=s now=session_now.clone() may_change=may_change end=end /> }).collect_view()}
                </tbody>
            </table>
        </section>
        <section aria-labelledby="tokens-h">
            <h3 id="tokens-h">"API tokens"</h3>
            {if tokens.is_empty() {
                view! { <p class="empty">"No API token. Create one with " <code>"marain token create --name ci --role viewer"</code> "."</p> }.into_any()
            } else {
                view! {
                    <table class="files" data-testid="tokens">
                        <thead><tr>
                            <th scope="col">"Name"</th><th scope="col">"Role"</th><th scope="col">"Created"</th><th scope="col">"Expires"</th>
                            {may_change.then(|| view! { <th scope="col"><span class="visually-hidden">"Actions"</span></th> })}
                        </tr></thead>
                        <tbody>
                            {tokens.into_iter().map(|t| view! { <TokenRow t=t now=now.clone() may_change=may_change revoke=revoke /> }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}

#[component]
fn SessionRow(s: SessionDto, now: String, may_change: bool, end: ServerAction<EndSession>) -> impl IntoView {
    let label = format!("End the session of {} from {}", s.username, s.address.clone().unwrap_or_default());
    let handle = s.handle.clone();
    view! {
        <tr data-user=s.username.clone() data-current=s.current.to_string()>
            <td>{s.username.clone()} {s.current.then(|| view! { " " <span class="tag">"you"</span> })}</td>
            <td>{s.role.clone()}</td>
            {may_change.then(|| view! { <td><code>{s.address.clone().unwrap_or_default()}</code></td><td>{s.browser.clone().unwrap_or_default()}</td> })}
            <td><Timestamp at=s.signed_in_at.clone() now=now.clone() /></td>
            <td><Timestamp at=s.last_seen.clone() now=now /></td>
            {may_change.then(move || view! {
                <td>
                    {(!s.current).then(move || view! {
                        <ActionForm action=end attr:class="inline">
                            <input type="hidden" name="handle" value=handle />
                            <button type="submit" class="secondary" aria-label=label>"End session"</button>
                        </ActionForm>
                    })}
                </td>
            })}
        </tr>
    }
}

#[component]
fn TokenRow(t: TokenDto, now: String, may_change: bool, revoke: ServerAction<RevokeToken>) -> impl IntoView {
    let label = format!("Revoke token {}", t.name);
    let name = t.name.clone();
    view! {
        <tr data-token=t.name.clone()>
            <td><code>{t.name.clone()}</code></td>
            <td>{t.role.clone()}</td>
            <td><Timestamp at=t.created_at.clone() now=now.clone() /></td>
            <td>{match t.expires_at.clone() {
                None => view! { "never" }.into_any(),
                Some(at) if t.expired => view! { <span class="tag">"expired"</span> " " <Timestamp at=at now=now /> }.into_any(),
                Some(at) => view! { <Timestamp at=at /> }.into_any(),
            }}</td>
            {may_change.then(move || view! {
                <td>
                    <ActionForm action=revoke attr:class="inline">
                        <input type="hidden" name="name" value=name />
                        <button type="submit" class="danger" aria-label=label>"Revoke"</button>
                    </ActionForm>
                </td>
            })}
        </tr>
    }
}
