//! What a rollback or a point-in-time recovery starts from, read from the
//! history: each file's target text and the backups that can refill it. The
//! planning itself is the core's [`crate::restore::plan_restore`].

use std::collections::BTreeMap;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::store::Store;
use super::EngineError;
use crate::restore::RestoreTarget;

/// `file` back to its applied version `version`.
pub async fn rollback_target(
    store: &Store,
    file: &str,
    version: i64,
) -> Result<BTreeMap<String, RestoreTarget>, EngineError> {
    let row = store
        .history()
        .version(file, version)
        .await?
        .ok_or_else(|| EngineError::UnknownVersion { file: file.to_string(), version })?;
    targets(store, BTreeMap::from([(file.to_string(), (version, row.yaml))])).await
}

/// Every file ever applied, back to its newest version applied at or before `at`
/// (RFC 3339); a file that did not exist then is to be deleted (version 0).
pub async fn recovery_targets(store: &Store, at: &str) -> Result<BTreeMap<String, RestoreTarget>, EngineError> {
    let invalid = |reason: String| EngineError::InvalidRecovery { at: at.to_string(), reason };
    let cutoff = OffsetDateTime::parse(at, &Rfc3339).map_err(|e| invalid(format!("not an RFC 3339 time: {e}")))?;
    let mut then: BTreeMap<String, i64> = BTreeMap::new();
    for applied in store.history().applied_versions().await? {
        let before = OffsetDateTime::parse(&applied.applied_at, &Rfc3339).is_ok_and(|t| t <= cutoff);
        let version = then.entry(applied.file).or_insert(0);
        if before {
            *version = applied.version;
        }
    }
    let mut texts = BTreeMap::new();
    for (file, version) in then {
        let text = match version {
            0 => None,
            v => store.history().version(&file, v).await?.and_then(|row| row.yaml),
        };
        texts.insert(file, (version, text));
    }
    targets(store, texts).await
}

/// The targets of `texts` (file → version and its text), with their backups.
async fn targets(
    store: &Store,
    texts: BTreeMap<String, (i64, Option<String>)>,
) -> Result<BTreeMap<String, RestoreTarget>, EngineError> {
    let since: BTreeMap<String, i64> = texts.iter().map(|(f, (v, _))| (f.clone(), *v)).collect();
    let mut backups = store.history().backups_since(&since).await?;
    Ok(texts
        .into_iter()
        .map(|(file, (version, text))| {
            let backups = backups.remove(&file).unwrap_or_default();
            (file, RestoreTarget { version, text, backups })
        })
        .collect())
}
