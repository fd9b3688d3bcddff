//! `GET /api/v1/hot-reload/events`: the engine's events as Server-Sent Events.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use marain::ErrorKind;
use marain_app::dto::EventDto;
use tokio::sync::OwnedSemaphorePermit;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use crate::error::ApiError;
use crate::state::AppState;

/// The stream, while fewer than `api.max_event_streams` are open; otherwise 503
/// with `Retry-After`.
#[utoipa::path(get, path = "/api/v1/hot-reload/events", tag = "hot-reload",
    responses((status = 200, description = "Server-Sent Events, one `data:` JSON object per engine event", content_type = "text/event-stream", body = EventDto),
        (status = 503, description = "Too many event streams are open", body = crate::error::ErrorBody)))]
pub async fn events(State(state): State<AppState>) -> Response {
    let Ok(permit) = state.event_streams.clone().try_acquire_owned() else {
        let message = "too many event streams are open; try again shortly".to_string();
        let mut response = ApiError::new(ErrorKind::Unavailable, message).into_response();
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(5));
        return response;
    };
    // A proxy that buffers responses (nginx does by default) would hold the
    // events back: `X-Accel-Buffering: no` tells it not to, and the comments
    // the stream sends every 15 s keep an idle one from timing it out.
    let mut response = stream(state, permit).into_response();
    response.headers_mut().insert(HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no"));
    response
}

fn stream(state: AppState, permit: OwnedSemaphorePermit) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = BroadcastStream::new(state.engine.subscribe()).map(move |item| {
        // The permit is the stream's: it goes back when the stream ends.
        let _open = &permit;
        let dto = match item {
            Ok(event) => EventDto::from(&event),
            // A slow client missed events: tell it to refetch everything.
            Err(BroadcastStreamRecvError::Lagged(n)) => EventDto {
                seq: 0,
                at: marain::engine::now_rfc3339(),
                kind: marain::EventKind::Resync,
                file: String::new(),
                change_id: None,
                version: None,
                severity: None,
                actor: None,
                message: format!("{n} events were missed; state refetched"),
            },
        };
        let data = serde_json::to_string(&dto).expect("event serialises");
        Ok(Event::default().id(dto.seq.to_string()).data(data))
    });
    // Open streams must end on shutdown, or graceful shutdown would wait forever.
    let mut stop = state.shutdown.clone();
    let stream = stream.take_until(async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
