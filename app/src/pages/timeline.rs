//! The History timeline: one lane per file, each applied version a mark at the
//! time it applied, coloured by severity and sized by how long it took to
//! apply, with rejected files and failed applies as red crosses on the same
//! lanes, so a slow or failing period stands out.

use std::collections::BTreeSet;

use leptos::prelude::*;

use crate::api::get_timeline;
use crate::components::nav::Nav;
use crate::dto::TimelineDto;

const LANE: f64 = 28.0;
const LABEL: f64 = 260.0;
const WIDTH: f64 = 1000.0;
const TOP: f64 = 24.0;

#[component]
pub fn Timeline() -> impl IntoView {
    let data = Resource::new(|| (), |_| get_timeline());
    view! {
        <Nav />
        <main class="page">
            <h2>"Timeline"</h2>
            <p class="muted">
                "Each applied version at the time it applied, coloured by severity (SAFE green, WARNING amber, \
                 BREAKING red, rollbacks and recoveries included); a larger mark took longer to apply. \
                 A red cross is a rejected file or a failed apply."
            </p>
            <Transition fallback=|| view! { <p class="empty">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                        Ok(t) if t.versions.is_empty() && t.problems.is_empty() => {
                            view! { <p class="empty">"Nothing applied yet."</p> }.into_any()
                        }
                        Ok(t) => chart(t).into_any(),
                    }
                })}
            </Transition>
        </main>
    }
}

fn seconds(at: &str) -> Option<f64> {
    let t = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()?;
    Some(t.unix_timestamp_nanos() as f64 / 1e9)
}

fn chart(t: TimelineDto) -> impl IntoView {
    let files: Vec<String> = t
        .versions
        .iter()
        .map(|v| v.file.clone())
        .chain(t.problems.iter().map(|p| p.file.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let times: Vec<f64> = t
        .versions
        .iter()
        .filter_map(|v| seconds(&v.applied_at))
        .chain(t.problems.iter().filter_map(|p| seconds(&p.at)))
        .collect();
    let start = times.iter().copied().fold(f64::INFINITY, f64::min);
    let end = times.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = (end - start).max(1.0);
    let x = move |s: f64| LABEL + 12.0 + (s - start) / span * (WIDTH - LABEL - 24.0);
    let lane = |file: &str| files.iter().position(|f| f == file).unwrap_or(0) as f64;
    let height = TOP + LANE * files.len() as f64 + 8.0;
    let slowest = t.versions.iter().map(|v| v.duration_ms).max().unwrap_or(1).max(1) as f64;
    let marks = t
        .versions
        .iter()
        .filter_map(|v| {
            let cx = x(seconds(&v.applied_at)?);
            let cy = TOP + LANE * lane(&v.file) + LANE / 2.0;
            let r = 4.0 + 6.0 * (v.duration_ms.max(0) as f64 / slowest).sqrt();
            let class = format!("mark mark-{}", v.severity.as_str().to_lowercase());
            let title = format!(
                "{} v{} · {} · applied in {} ms by {} at {}",
                v.file, v.version, v.severity, v.duration_ms, v.actor, v.applied_at
            );
            Some(view! {
                <circle class=class cx=cx cy=cy r=r data-file=v.file.clone() data-version=v.version><title>{title}</title></circle>
            })
        })
        .collect_view();
    let crosses = t
        .problems
        .iter()
        .filter_map(|p| {
            let cx = x(seconds(&p.at)?);
            let cy = TOP + LANE * lane(&p.file) + LANE / 2.0;
            let d = format!("M{} {} l10 10 m0 -10 l-10 10", cx - 5.0, cy - 5.0);
            let title = format!("{} {} at {}: {}", p.file, p.kind, p.at, p.message);
            Some(view! { <path class="cross" d=d data-kind=p.kind.as_str()><title>{title}</title></path> })
        })
        .collect_view();
    let lanes = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let y = TOP + LANE * i as f64;
            view! {
                <g>
                    <line class="lane" x1=LABEL x2=WIDTH y1=y + LANE / 2.0 y2=y + LANE / 2.0 />
                    <text class="lane-label" x=LABEL - 8.0 y=y + LANE / 2.0 + 4.0 text-anchor="end">{f.clone()}</text>
                </g>
            }
        })
        .collect_view();
    let described = format!(
        "Timeline of {} and {} across {}",
        marain::plural::count(t.versions.len() as i64, "applied version", "applied versions"),
        marain::plural::count(t.problems.len() as i64, "problem", "problems"),
        marain::plural::count(files.len() as i64, "file", "files")
    );
    let from = t.versions.last().map(|v| v.applied_at.clone()).unwrap_or_default();
    let to = t.versions.first().map(|v| v.applied_at.clone()).unwrap_or_default();
    view! {
        <figure class="picture" data-testid="timeline" tabindex="0">
            <svg role="img" aria-label=described viewBox=format!("0 0 {WIDTH} {height}") width="100%">
                {lanes}
                {marks}
                {crosses}
            </svg>
            <figcaption class="muted">{format!("From {} to {} (UTC)", from.get(..19).unwrap_or(&from), to.get(..19).unwrap_or(&to))}</figcaption>
        </figure>
    }
}
