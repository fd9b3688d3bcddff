//! Sign-in, sessions, API tokens, roles and the Origin check.
//!
//! Every request except the sign-in page and the static assets needs an
//! identity: a session cookie (HttpOnly, SameSite=Strict, a new id at sign-in)
//! or an `Authorization: Bearer` API token. State changes (anything but GET, HEAD
//! and OPTIONS) made with a session must come from this site's own pages (the
//! `Origin` header names this host), and on the REST API need the `approver`
//! role; server functions check the role themselves (reading the dashboard is a
//! POST too).

use std::sync::Arc;

use axum::extract::{ConnectInfo, Form, Request, State};

use crate::connections::Peer;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use marain::engine::accounts::Identity;
use marain::engine::sign_in::Attempt;
use marain::engine::signed_in::{session_handle, SessionClient};
use marain::engine::{Coordinator, Store};
use marain::ErrorKind;
use serde::Deserialize;
use tokio::sync::Semaphore;
use tower_sessions::Session;

use crate::error::ApiError;

use crate::sessions::{CLIENT_KEY, IDENTITY_KEY};

/// What sign-in and the identity check need: the accounts and the sign-in
/// attempt counts per address and per account (both in the database,
/// `engine::sign_in`), the live settings (trusted proxies), and the permits for
/// password checks.
pub struct Auth {
    store: Store,
    engine: Coordinator,
    /// One permit per password check running; each is a 19 MiB argon2 hash, so
    /// at most one per core runs at a time, and a sign-in beyond that is told to
    /// come back (429) without hashing.
    hashing: Arc<Semaphore>,
}

impl Auth {
    pub fn new(engine: Coordinator) -> Arc<Self> {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Arc::new(Auth { store: engine.store().clone(), engine, hashing: Arc::new(Semaphore::new(cores)) })
    }
}

fn is_public(path: &str) -> bool {
    path == "/login"
        || path.starts_with("/pkg/")
        || path == "/favicon.ico"
        || crate::health::is_probe(path)
        || path == OPENAPI_DOCUMENT
}

/// The API description holds no data; tools read it before they have a token.
const OPENAPI_DOCUMENT: &str = "/api/v1/openapi.json";

/// `GET /metrics` from an address `api.metrics_from` names needs no identity
/// (a Prometheus server on the same network, typically); the connecting
/// address counts, never a forwarded one.
fn scraper_allowed(auth: &Auth, request: &Request) -> bool {
    if request.uri().path() != "/metrics" {
        return false;
    }
    let Some(axum::extract::ConnectInfo(Peer(peer))) = request.extensions().get::<ConnectInfo<Peer>>() else {
        return false;
    };
    auth.engine.snapshot().settings.metrics_from.contains(&peer.ip().to_canonical())
}

/// The request comes from a page of this site: its `Origin` (or, lacking one,
/// its `Referer`) is this host.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else { return false };
    let from = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    ["http://", "https://"].iter().any(|scheme| {
        from.strip_prefix(scheme)
            .is_some_and(|rest| rest == host || rest.strip_prefix(host).is_some_and(|tail| tail.starts_with('/')))
    })
}

/// Who sent the request; `Err` when the database cannot tell (a token lookup
/// failed), which is the server's fault, not the client's.
async fn identify(
    auth: &Auth,
    bearer: Option<String>,
    session: Option<Session>,
) -> Result<Option<Identity>, marain::engine::store::StoreError> {
    if let Some(bearer) = bearer {
        return auth.store.accounts().token_identity(bearer.trim()).await;
    }
    let Some(session) = session else { return Ok(None) };
    let Some(identity) = session.get::<Identity>(IDENTITY_KEY).await.ok().flatten() else { return Ok(None) };
    let Some(id) = session.id() else { return Ok(None) };
    // A session follows its account: removed, or its password or role changed
    // since it signed in, or the session ended from the dashboard, and it is over.
    match auth.store.accounts().session_role(&id.to_string(), &identity.name).await? {
        Some(role) => Ok(Some(Identity { role, session: Some(session_handle(&id.to_string())), ..identity })),
        None => {
            tracing::info!(user = %identity.name, "the session ended or its account changed; signed out");
            let _ = session.flush().await;
            Ok(None)
        }
    }
}

/// A CORS preflight: an OPTIONS request asking, for a cross-origin page, which
/// method it may use. It carries no credentials; the API's CORS layer answers it.
fn is_preflight(request: &Request) -> bool {
    request.method() == Method::OPTIONS
        && request.uri().path().starts_with("/api/")
        && request.headers().contains_key(header::ORIGIN)
        && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The gate in front of everything but the public paths.
pub async fn require_identity(State(auth): State<Arc<Auth>>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    // CORS preflights carry no credentials; the CORS layer answers them. Any
    // other OPTIONS request needs an identity like every other request.
    if is_public(&path) || is_preflight(&request) || scraper_allowed(&auth, &request) {
        return next.run(request).await;
    }
    let api = path.starts_with("/api/") || path.starts_with("/_sfn/") || path == "/metrics";
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::to_string);
    let session = request.extensions().get::<Session>().cloned();
    let identity = match identify(&auth, bearer, session).await {
        Ok(identity) => identity,
        Err(e) => {
            tracing::error!(error = %e, "cannot look the API token up");
            let message = "the accounts cannot be read now; the server log has the details".to_string();
            return ApiError::new(ErrorKind::Unavailable, message).into_response();
        }
    };
    let Some(identity) = identity else {
        if api {
            let message = "sign in, or send an API token as `Authorization: Bearer <token>`".to_string();
            return ApiError::new(ErrorKind::Unauthenticated, message).into_response();
        }
        return Redirect::to(&format!("/login?next={}", urlencoding(&path))).into_response();
    };
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes && !identity.token && !same_origin(request.headers()) {
        let message = "a state change with a session must come from this site's own pages".to_string();
        return ApiError::new(ErrorKind::OriginMismatch, message).into_response();
    }
    if changes && path.starts_with("/api/") && !identity.role.may_change() {
        let message = format!("`{}` is a {}; only an approver may do this", identity.name, identity.role.as_str());
        return ApiError::new(ErrorKind::Forbidden, message).into_response();
    }
    request.extensions_mut().insert(identity);
    next.run(request).await
}

fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    pub username: String,
    pub password: String,
    pub next: Option<String>,
}

/// Only a path on this site: never `//elsewhere`, a full URL, or anything a
/// browser would turn into one (browsers drop tabs and newlines from URLs and
/// read `\` as `/`, so `/\t/evil.example` is `//evil.example`).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(|c| c.is_control() || c.is_whitespace()) =>
        {
            n
        }
        _ => "/",
    }
}

pub async fn login(
    State(auth): State<Arc<Auth>>,
    session: Session,
    request_headers: HeaderMap,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    Form(form): Form<LoginForm>,
) -> Response {
    if !same_origin(&request_headers) {
        return Redirect::to("/login?error=origin").into_response();
    }
    let trusted = auth.engine.snapshot().settings.trusted_proxies.clone();
    let ip = crate::client::client_address(peer.ip(), &request_headers, &trusted);
    let address = ip.to_string();
    let Ok(_hashing) = auth.hashing.clone().try_acquire_owned() else {
        tracing::warn!(%ip, "sign-in refused: every password check is busy");
        let busy = "too many sign-ins at once; try again in a second";
        return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "1")], busy).into_response();
    };
    // Counted before the password is checked: parallel guesses cannot all get through.
    match auth.store.accounts().reserve_sign_in(&address, &form.username).await {
        Ok(Attempt::Allowed) => {}
        Ok(Attempt::LockedOut) => {
            tracing::warn!(%ip, user = %form.username, "sign-in refused: too many attempts");
            return Redirect::to("/login?error=rate").into_response();
        }
        Ok(Attempt::SlowedDown { wait_secs }) => {
            tracing::warn!(%ip, user = %form.username, wait_secs, "sign-in refused: the account is slowed down");
            return Redirect::to(&format!("/login?error=slow&wait={wait_secs}")).into_response();
        }
        Err(e) => {
            tracing::error!(error = %e, "sign-in could not read the failure count");
            return Redirect::to("/login?error=unavailable").into_response();
        }
    }
    match auth.store.accounts().verify_password(&form.username, &form.password).await {
        Ok(Some(identity)) => {
            if let Err(e) = auth.store.accounts().sign_in_succeeded(&address, &identity.name).await {
                tracing::error!(error = %e, "could not clear the failed sign-ins");
            }
            // A new session id at every sign-in: a fixated id is worth nothing.
            let agent = request_headers.get(header::USER_AGENT).and_then(|h| h.to_str().ok()).unwrap_or_default();
            let client = SessionClient { address: address.clone(), user_agent: agent.to_string() };
            if session.cycle_id().await.is_err()
                || session.insert(IDENTITY_KEY, &identity).await.is_err()
                || session.insert(CLIENT_KEY, &client).await.is_err()
            {
                return (StatusCode::SERVICE_UNAVAILABLE, "the session store failed").into_response();
            }
            tracing::info!(user = %identity.name, role = identity.role.as_str(), "signed in");
            Redirect::to(safe_next(form.next.as_deref())).into_response()
        }
        Ok(None) => {
            tracing::warn!(%ip, user = %form.username, "sign-in failed");
            Redirect::to("/login?error=invalid").into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "sign-in could not read the accounts");
            Redirect::to("/login?error=unavailable").into_response()
        }
    }
}

pub async fn logout(session: Session) -> Response {
    let _ = session.flush().await;
    Redirect::to("/login").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_check() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:3000".parse().unwrap());
        assert!(!same_origin(&h), "no Origin, no Referer");
        h.insert(header::ORIGIN, "http://127.0.0.1:3000".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, "http://127.0.0.1:3000.evil.example".parse().unwrap());
        assert!(!same_origin(&h));
        h.remove(header::ORIGIN);
        h.insert(header::REFERER, "http://127.0.0.1:3000/login".parse().unwrap());
        assert!(same_origin(&h));
    }

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/history")), "/history");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        for sneaky in ["/\t/evil.example", "/\n/evil.example", "/\r/evil.example", "/ /evil.example", "/\\evil.example"]
        {
            assert_eq!(safe_next(Some(sneaky)), "/", "{sneaky:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
