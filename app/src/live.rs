//! The live feed: an `EventSource` on the engine's SSE stream, opened only in the
//! browser. Each state-changing event bumps `tick`, which pages use to refetch.

use leptos::prelude::*;

use crate::dto::EventDto;

/// How many recent events the feed keeps.
#[cfg(feature = "hydrate")]
const FEED_LENGTH: usize = 50;

#[derive(Clone, Copy)]
pub struct LiveFeed {
    pub events: ReadSignal<Vec<EventDto>>,
    /// Changes whenever the server's state may have changed.
    pub tick: ReadSignal<u64>,
    pub connected: ReadSignal<bool>,
}

pub fn use_live_feed() -> LiveFeed {
    let (events, set_events) = signal(Vec::<EventDto>::new());
    let (tick, set_tick) = signal(0u64);
    let (connected, set_connected) = signal(false);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| connect(set_events, set_tick, set_connected));
    #[cfg(not(feature = "hydrate"))]
    let _ = (set_events, set_tick, set_connected);
    LiveFeed { events, tick, connected }
}

#[cfg(feature = "hydrate")]
fn connect(set_events: WriteSignal<Vec<EventDto>>, set_tick: WriteSignal<u64>, set_connected: WriteSignal<bool>) {
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::JsCast;

    let Ok(source) = web_sys::EventSource::new("/api/v1/hot-reload/events") else {
        return;
    };
    let on_message = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |message: web_sys::MessageEvent| {
        let Some(text) = message.data().as_string() else { return };
        let Ok(event) = serde_json::from_str::<EventDto>(&text) else { return };
        let changes_state = event.kind != marain::EventKind::Detected;
        set_events.update(|list| {
            list.insert(0, event);
            list.truncate(FEED_LENGTH);
        });
        if changes_state {
            set_tick.update(|t| *t += 1);
        }
    });
    // On (re)connect, refetch: events sent while disconnected were missed.
    let on_open = Closure::<dyn FnMut()>::new(move || {
        set_connected.set(true);
        set_tick.update(|t| *t += 1);
    });
    let on_error = Closure::<dyn FnMut()>::new(move || set_connected.set(false));
    source.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    source.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    // The closures must live as long as the connection; both go when the page does.
    let keep = send_wrapper::SendWrapper::new((source, on_message, on_open, on_error));
    on_cleanup(move || keep.0.close());
}
