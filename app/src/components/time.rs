use leptos::prelude::*;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// An RFC 3339 timestamp, shown relative to `now` ("3 min ago") when the page
/// knows when it was rendered, with the exact UTC time on hover. `now` comes from
/// the server with the data, so the server's render and the browser's hydration
/// print the same words.
#[component]
pub fn Timestamp(at: String, #[prop(optional)] now: Option<String>) -> impl IntoView {
    let absolute = match at.get(..19) {
        Some(head) if at.len() >= 19 => format!("{} UTC", head.replace('T', " ")),
        _ => at.clone(),
    };
    let shown = now.as_deref().and_then(|now| relative(&at, now)).unwrap_or_else(|| absolute.clone());
    view! {
        <time datetime=at.clone() title=absolute>
            {shown}
        </time>
    }
}

/// "just now", "42 s ago", "3 min ago", "5 h ago", "2 days ago".
pub fn relative(at: &str, now: &str) -> Option<String> {
    let (at, now) = (OffsetDateTime::parse(at, &Rfc3339).ok()?, OffsetDateTime::parse(now, &Rfc3339).ok()?);
    let secs = (now - at).whole_seconds().max(0);
    Some(match secs {
        0..=4 => "just now".into(),
        5..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn relative_words() {
        let r = |at| super::relative(at, "2026-11-26T12:00:00Z").unwrap();
        assert_eq!(r("2026-11-26T11:59:58Z"), "just now");
        assert_eq!(r("2026-11-26T11:59:00Z"), "1 min ago");
        assert_eq!(r("2026-11-26T09:00:00.5Z"), "2 h ago");
        assert_eq!(r("2026-11-20T12:00:00Z"), "6 days ago");
    }
}
