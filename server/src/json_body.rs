//! `JsonBody<T>`: a JSON request body whose refusals are API errors in the
//! REST API's one shape (`{"error": {"code", "message"}}`), not the
//! framework's plain text: a body that is not JSON, or not sent as
//! `application/json`, is `malformed` (400); JSON that does not fit the
//! endpoint is `invalid` (422). Either message says where (line and column)
//! and, for a misfit, which field.

use axum::body::Bytes;
use axum::extract::{FromRequest, OptionalFromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use marain::ErrorKind;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON request body; see the module.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    // axum's name for what an extractor answers when it refuses a request.
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !sent_as_json(request.headers()) {
            return Err(ApiError::new(
                ErrorKind::Malformed,
                "the body must be sent as `content-type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|e| {
            ApiError::new(ErrorKind::Malformed, format!("the body could not be read: {}", e.body_text()))
        })?;
        parse(&bytes).map(JsonBody)
    }
}

/// No body at all (no `Content-Type`) is `None`; a body that is there must be
/// well-formed.
impl<T: DeserializeOwned, S: Send + Sync> OptionalFromRequest<S> for JsonBody<T> {
    // axum's name for what an extractor answers when it refuses a request.
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Option<Self>, ApiError> {
        if !request.headers().contains_key(CONTENT_TYPE) {
            return Ok(None);
        }
        <Self as FromRequest<S>>::from_request(request, state).await.map(Some)
    }
}

/// `application/json`, or any `application/…+json`.
fn sent_as_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let mime = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let kind = match e.classify() {
            serde_json::error::Category::Data => ErrorKind::Invalid,
            _ => ErrorKind::Malformed,
        };
        ApiError::new(kind, format!("the body does not fit: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_is_malformed_and_a_misfit_invalid() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Body {
            file: String,
        }
        let err = parse::<Body>(b"{\"file\": ").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Malformed);
        assert!(err.message.contains("line 1 column 9"), "{}", err.message);
        let err = parse::<Body>(b"{\"file\": 7}").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid);
        assert!(err.message.contains("invalid type: integer `7`"), "{}", err.message);
        let mut headers = HeaderMap::new();
        assert!(!sent_as_json(&headers));
        headers.insert(CONTENT_TYPE, "application/merge-patch+json; charset=utf-8".parse().unwrap());
        assert!(sent_as_json(&headers));
        headers.insert(CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(!sent_as_json(&headers));
    }
}
