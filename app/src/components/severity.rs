//! The severity badge: a colour, an icon and a word, so it reads without colour.

use leptos::prelude::*;

fn icon(severity: &str) -> &'static str {
    match severity {
        "SAFE" => "✓",
        "WARNING" => "⚠",
        "BREAKING" => "✖",
        "BLOCKED" => "⛔",
        _ => "!",
    }
}

#[component]
pub fn SeverityBadge(severity: String) -> impl IntoView {
    let class = format!("badge badge-{}", severity.to_lowercase());
    view! {
        <span class=class data-severity=severity.clone()>
            <span aria-hidden="true">{icon(&severity)}</span>
            " "
            {severity.clone()}
        </span>
    }
}
