use leptos::prelude::*;

use crate::dto::EventDto;

/// The live event feed, newest first, filled by the SSE stream.
#[component]
pub fn Feed(events: ReadSignal<Vec<EventDto>>) -> impl IntoView {
    view! {
        <aside class="feed" aria-labelledby="feed-h">
            <h2 id="feed-h">"Live events"</h2>
            <ol aria-live="polite" data-testid="feed">
                <For each=move || events.get() key=|e| e.seq let:event>
                    <li class=format!("ev ev-{}", event.kind)>
                        <span class="ev-kind">{event.kind.as_str()}</span>
                        " "
                        <code>{event.file.clone()}</code>
                        <div class="muted">{event.message.clone()}</div>
                    </li>
                </For>
            </ol>
            <Show when=move || events.get().is_empty()>
                <p class="empty">"Waiting for file events…"</p>
            </Show>
        </aside>
    }
}
