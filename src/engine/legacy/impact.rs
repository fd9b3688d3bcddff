//! What a schema change does to a move under way: legacy rows of the entity
//! not copied yet that fit the applied schema but would not fit the new one.
//! The worker adds the `legacy_rows_no_longer_fit` hazard with the count, so
//! such a change waits for a person even when it is SAFE on its own.

use super::transition::{active, waiting_rows};
use super::LegacyError;
use crate::engine::store::Store;
use crate::hazard::{Hazard, HazardCode, Severity};
use crate::legacy::convert;
use crate::model::EntitySchema;

/// How many waiting legacy rows are read against the two schemas at most.
pub const LOOKED_AT: i64 = 10_000;

/// The hazard a change from `old` to `new` (`None`: the entity goes) carries
/// for the legacy rows of `old` not copied yet, if any would stop fitting.
pub async fn hazard(
    store: &Store,
    old: &EntitySchema,
    new: Option<&EntitySchema>,
) -> Result<Option<Hazard>, LegacyError> {
    let Some(t) = active(store).await? else { return Ok(None) };
    if t.types_of(&old.id).is_empty() {
        return Ok(None);
    }
    let mut conn = store.pool().acquire().await?;
    let rows = waiting_rows(&mut conn.conn(), &t, old, LOOKED_AT).await?;
    let looked_at = rows.len();
    let broken: Vec<String> = rows
        .into_iter()
        .filter(|row| {
            let data = row.data.as_deref().unwrap_or("null");
            let fits_now = convert(old, data).record.is_ok();
            let fits_then = new.is_some_and(|new| convert(new, data).record.is_ok());
            fits_now && !fits_then
        })
        .map(|row| row.id)
        .collect();
    if broken.is_empty() {
        return Ok(None);
    }
    let first: Vec<&str> = broken.iter().take(5).map(String::as_str).collect();
    let of = if looked_at as i64 == LOOKED_AT { format!("the first {looked_at}") } else { looked_at.to_string() };
    let what = match new {
        Some(_) => "would no longer fit it",
        None => "would have no table to go to",
    };
    Ok(Some(Hazard {
        code: HazardCode::LegacyRowsNoLongerFit,
        severity: Severity::Warning,
        message: format!(
            "{} of {of} {} of `{}` not copied yet fit the applied schema but {what} (e.g. {}); `marain legacy plan --site` shows why",
            broken.len(),
            if looked_at == 1 { "legacy row" } else { "legacy rows" },
            old.id,
            first.join(", ")
        ),
        probe: None,
        counted: None,
    }))
}
