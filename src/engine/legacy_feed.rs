//! The legacy move's progress as `migration` events on the event stream, so
//! the dashboard's Migration page moves while a `marain legacy run` works,
//! whichever process runs it: a `run` writes its counts to `marain_legacy`
//! after each batch, and this task reads them twice a second while a move is
//! under way (every 5 s otherwise) and announces each change (at most one
//! event per half second per move; none to `secure.log`: a start, verify or
//! finish from the dashboard is audited with who asked).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use super::events::EventKind;
use super::legacy::transition::{statuses, MoveStatus};
use super::shared::Command;
use super::store::Store;

/// How often `marain_legacy` is read while a move is under way, and while none
/// is (a `run` from the command line then shows within `IDLE`).
const EVERY: Duration = Duration::from_millis(500);
const IDLE: Duration = Duration::from_secs(5);

/// Follows the moves recorded in the store until the worker stops.
pub(super) fn follow(store: &Store, commands: &UnboundedSender<Command>) {
    let (store, commands) = (store.clone(), commands.clone());
    tokio::spawn(async move {
        tokio::select! {
            _ = commands.closed() => {}
            _ = watch(store, &commands) => {}
        }
    });
}

async fn watch(store: Store, commands: &UnboundedSender<Command>) {
    // What was there at start-up is not news.
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut first = true;
    loop {
        let mut under_way = false;
        if let Ok(moves) = statuses(&store).await {
            under_way = moves.iter().any(|m| m.finished_at.is_none());
            for m in moves {
                let stamp = format!("{}|{}", m.updated_at, m.finished_at.as_deref().unwrap_or(""));
                if seen.get(&m.legacy_table) == Some(&stamp) {
                    continue;
                }
                seen.insert(m.legacy_table.clone(), stamp);
                if first {
                    continue;
                }
                let announced = Command::Announce {
                    kind: EventKind::LegacyMove,
                    file: m.legacy_table.clone(),
                    actor: None,
                    message: summary(&m),
                    audit: false,
                };
                if commands.send(announced).is_err() {
                    return;
                }
            }
        }
        first = false;
        tokio::time::sleep(if under_way { EVERY } else { IDLE }).await;
    }
}

/// One line: where each type stands.
pub fn summary(m: &MoveStatus) -> String {
    let state = match (&m.finished_at, m.running) {
        (Some(_), _) => format!("finished; the legacy table is now `{}`", m.renamed_to.as_deref().unwrap_or("?")),
        (None, true) => "copying".to_string(),
        (None, false) => "paused".to_string(),
    };
    let types: Vec<String> = m
        .progress
        .iter()
        .map(|(t, p)| {
            format!("{t}: {} of {} copied, {} do not fit, {} waiting", p.copied, p.total, p.misfits, p.waiting)
        })
        .collect();
    format!("legacy `{}` {state}: {}", m.legacy_table, types.join("; "))
}
