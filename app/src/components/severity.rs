//! The severity badge: a colour, an icon and a word, so it reads without colour.

use leptos::prelude::*;
use marain::Severity;

fn icon(severity: Severity) -> &'static str {
    match severity {
        Severity::Safe => "✓",
        Severity::Warning => "⚠",
        Severity::Breaking => "✖",
        Severity::Blocked => "⛔",
        Severity::Rejected => "!",
    }
}

#[component]
pub fn SeverityBadge(severity: Severity) -> impl IntoView {
    let word = severity.as_str();
    let class = format!("badge badge-{}", word.to_lowercase());
    view! {
        <span class=class data-severity=word>
            <span aria-hidden="true">{icon(severity)}</span>
            " "
            {word}
        </span>
    }
}
