use leptos::prelude::*;

/// An RFC 3339 UTC timestamp shown to the second, with the exact value on hover.
#[component]
pub fn Timestamp(at: String) -> impl IntoView {
    let shown = match at.get(..19) {
        Some(head) if at.len() >= 19 => format!("{} UTC", head.replace('T', " ")),
        _ => at.clone(),
    };
    view! {
        <time datetime=at.clone() title=at>
            {shown}
        </time>
    }
}
