//! `GET /api/v1/hot-reload/events`: the engine's events as Server-Sent Events.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use marain_app::dto::EventDto;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use crate::state::AppState;

pub async fn events(State(state): State<AppState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = BroadcastStream::new(state.engine.subscribe()).map(|item| {
        let dto = match item {
            Ok(event) => EventDto::from(&event),
            // A slow client missed events: tell it to refetch everything.
            Err(BroadcastStreamRecvError::Lagged(n)) => EventDto {
                seq: 0,
                at: marain::engine::now_rfc3339(),
                kind: "resync".into(),
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
