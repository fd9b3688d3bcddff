//! `api.rate_limit`, per client address. The settings are read from the live
//! snapshot on every request, so an edit to the config file takes effect on the
//! next request; a changed quota starts a fresh limiter (governor's GCRA).

use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use marain::engine::Coordinator;
use marain::live_config::RateLimit;
use marain::ErrorKind;

use crate::error::ApiError;

pub struct LiveRateLimit {
    engine: Coordinator,
    /// The limiter built for the settings last seen, rebuilt when they change.
    current: Mutex<Option<(RateLimit, Arc<DefaultKeyedRateLimiter<IpAddr>>)>>,
}

impl LiveRateLimit {
    pub fn new(engine: Coordinator) -> Arc<Self> {
        Arc::new(LiveRateLimit { engine, current: Mutex::new(None) })
    }

    fn limiter(&self, settings: RateLimit) -> Arc<DefaultKeyedRateLimiter<IpAddr>> {
        let mut current = self.current.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match &*current {
            Some((seen, limiter)) if *seen == settings => limiter.clone(),
            _ => {
                let per_minute = NonZeroU32::new(settings.requests_per_minute).unwrap_or(NonZeroU32::MIN);
                let burst = NonZeroU32::new(settings.burst_size).unwrap_or(NonZeroU32::MIN);
                let limiter = Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)));
                *current = Some((settings, limiter.clone()));
                limiter
            }
        }
    }
}

pub async fn limit(State(live): State<Arc<LiveRateLimit>>, request: Request, next: Next) -> Response {
    let settings = live.engine.snapshot().settings.rate_limit;
    if !settings.enabled {
        return next.run(request).await;
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<crate::connections::Peer>>()
        .map(|c| c.0 .0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let trusted = &live.engine.snapshot().settings.trusted_proxies;
    let client = crate::client::client_address(peer, request.headers(), trusted);
    match live.limiter(settings).check_key(&client) {
        Ok(()) => next.run(request).await,
        Err(not_until) => {
            let wait = not_until.wait_time_from(DefaultClock::default().now()).as_secs().max(1);
            let message = format!(
                "more than {} requests per minute from {client}; retry in {wait} s",
                settings.requests_per_minute
            );
            let mut response = ApiError::new(ErrorKind::RateLimited, message).into_response();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
            response
        }
    }
}
