//! How the dashboard's files and pages are cached (docs/operating.md,
//! "What the browser downloads"). `cargo xtask build` names the files the page
//! links after their content and writes `.br`/`.gz` copies beside them; here
//! `/pkg/` sends the copy the request's `Accept-Encoding` allows, and tells
//! browsers and proxies to keep a content-named file for a year without
//! asking again. Pages change with the site, so a browser asks each time
//! (`no-cache`) and gets `304 Not Modified` when its copy is still the page.

use std::path::Path;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{
    HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY,
};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::services::ServeDir;

/// A content-named file never changes under its name.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Everything else is checked with the server on every use.
const REVALIDATE: &str = "no-cache";
/// A page shows one signed-in person's view: no shared cache keeps it.
const PAGE: &str = "private, no-cache";
/// A page is read whole to be tagged (the pages render whole before they are
/// sent anyway); one larger than this, far beyond any real page, answers 500
/// rather than grow the buffer without bound.
const LARGEST_TAGGED_PAGE: usize = 64 * 1024 * 1024;

/// The manifest `cargo xtask build` writes: which names the files carry.
pub fn manifest(assets: &Path) -> Option<std::path::PathBuf> {
    let path = assets.join("hash.txt");
    path.is_file().then(|| std::fs::canonicalize(&path).unwrap_or(path))
}

/// `/pkg/…`: the built files, precompressed copies first, with their caching.
pub fn pkg_routes(assets: &Path) -> Router {
    let files = ServeDir::new(assets.join("pkg")).precompressed_br().precompressed_gzip();
    Router::new().nest_service("/pkg", files).layer(axum::middleware::from_fn(cache_file))
}

async fn cache_file(request: Request, next: Next) -> Response {
    let policy = if content_named(request.uri().path()) { IMMUTABLE } else { REVALIDATE };
    let mut response = next.run(request).await;
    if response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED {
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(policy));
        // A shared cache must keep the brotli, gzip and plain answers apart.
        headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
    }
    response
}

/// `marain.0123456789abcdef.wasm`: a name with the content's hash in it.
fn content_named(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let mut parts = name.split('.');
    let (Some(_), Some(hash), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Pages: `private, no-cache` and an ETag, and `304 Not Modified` when the
/// browser's copy has that tag. The tag is the page's hash with its script
/// nonce left out, since the nonce is new on every render. A 304 carries no
/// policy header, so the browser keeps the policy stored with its copy,
/// whose nonce its scripts carry.
pub async fn page_validators(request: Request, next: Next) -> Response {
    let is_get = request.method() == Method::GET || request.method() == Method::HEAD;
    let known = request.headers().get(IF_NONE_MATCH).cloned();
    let response = next.run(request).await;
    let is_page =
        response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("text/html"));
    if !is_get || !is_page || response.status() != StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, LARGEST_TAGGED_PAGE).await {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::error!(error = %e, "a page could not be rendered whole");
            return (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response();
        }
    };
    parts.headers.insert(CACHE_CONTROL, HeaderValue::from_static(PAGE));
    let nonce = parts.headers.get(CONTENT_SECURITY_POLICY).and_then(|v| v.to_str().ok()).and_then(nonce_of);
    let tag = etag(&bytes, nonce.as_deref());
    let Ok(tag_value) = HeaderValue::from_str(&tag) else { return Response::from_parts(parts, Body::from(bytes)) };
    if known.as_ref().and_then(|v| v.to_str().ok()).is_some_and(|k| matches(k, &tag)) {
        let mut not_modified = StatusCode::NOT_MODIFIED.into_response();
        let headers = not_modified.headers_mut();
        headers.insert(ETAG, tag_value);
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(PAGE));
        return not_modified;
    }
    parts.headers.insert(ETAG, tag_value);
    parts.headers.remove(CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes))
}

/// The nonce in `script-src … 'nonce-…'`.
fn nonce_of(policy: &str) -> Option<String> {
    let start = policy.find("'nonce-")? + "'nonce-".len();
    let end = policy[start..].find('\'')?;
    Some(policy[start..start + end].to_string())
}

/// A strong tag of the page with `nonce` left out.
fn etag(page: &[u8], nonce: Option<&str>) -> String {
    let text = String::from_utf8_lossy(page);
    let without = match nonce.filter(|n| !n.is_empty()) {
        Some(nonce) => text.replace(nonce, ""),
        None => text.into_owned(),
    };
    format!("\"{}\"", &marain::hash::sha256_hex(without.as_bytes())[..32])
}

/// `If-None-Match: "a", W/"b"` or `*`, compared weakly (RFC 9110 13.1.2).
fn matches(known: &str, tag: &str) -> bool {
    known.split(',').map(|t| t.trim()).any(|t| t == "*" || t.trim_start_matches("W/") == tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hashed_names_are_immutable() {
        assert!(content_named("/pkg/marain.0123456789abcdef.wasm"));
        assert!(!content_named("/pkg/marain.wasm"));
        assert!(!content_named("/pkg/marain.0123456789abcdeg.wasm"));
        assert!(!content_named("/pkg/snippets/x/inline0.js"));
    }

    #[test]
    fn a_page_keeps_its_tag_across_nonces_and_changes_it_with_its_content() {
        let page = |nonce: &str, text: &str| format!("<script nonce=\"{nonce}\">go()</script><p>{text}</p>");
        let a = etag(page("n0nceAAAA", "one").as_bytes(), Some("n0nceAAAA"));
        let b = etag(page("n0nceBBBB", "one").as_bytes(), Some("n0nceBBBB"));
        let c = etag(page("n0nceCCCC", "two").as_bytes(), Some("n0nceCCCC"));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(nonce_of("default-src 'self'; script-src 'self' 'nonce-abc' 'x'").as_deref(), Some("abc"));
        assert!(matches(&format!("W/{a}, \"other\""), &a));
        assert!(!matches("\"other\"", &a));
    }
}
