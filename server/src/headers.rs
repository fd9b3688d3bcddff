//! What every response tells the browser about how it may be used
//! (docs/security.md): no page of another site may frame the dashboard (the
//! Approve button under a transparent overlay), no response is read as a type
//! it does not say it is, no address leaks to other sites in `Referer`, and a
//! page runs only the scripts it was rendered with.

use axum::http::header::{
    HeaderName, HeaderValue, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use tower_http::set_header::SetResponseHeaderLayer;

/// The headers every response carries, unless a route set its own.
pub fn layers() -> [SetResponseHeaderLayer<HeaderValue>; 3] {
    let fixed = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
    };
    [fixed(X_FRAME_OPTIONS, "DENY"), fixed(X_CONTENT_TYPE_OPTIONS, "nosniff"), fixed(REFERRER_POLICY, "same-origin")]
}

/// The policy of a rendered page whose inline scripts (hydration, the diff
/// view's) carry `nonce`: scripts from this site or with the nonce, the
/// WebAssembly the page loads, connections (server functions, the event
/// stream) to this site only; never framed, no `<base>`, forms posted here.
/// Styles may be inline: the schema diagram's SVG carries style attributes.
pub fn content_security_policy(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self' \
         'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// Sets the page's policy on the response being rendered, with the nonce
/// leptos gave this render; called in the render's context.
pub fn set_page_policy() {
    use leptos::prelude::use_context;
    let (Some(nonce), Some(response)) = (leptos::nonce::use_nonce(), use_context::<leptos_axum::ResponseOptions>())
    else {
        return;
    };
    if let Ok(value) = HeaderValue::from_str(&content_security_policy(&nonce)) {
        response.insert_header(CONTENT_SECURITY_POLICY, value);
    }
}
