//! `SchemaLocks`: one read-write lock per entity, so a change to one entity
//! never holds up content requests for another (docs/online-changes.md).
//!
//! A content request holds its entity's lock shared for its whole duration;
//! the worker holds the lock of every entity a change's SQL names
//! ([`Plan::entities`](crate::plan::Plan::entities)) exclusively from the
//! change's cut-over transaction to the snapshot swap that follows it. So a
//! request runs wholly before or wholly after a change to its entity, and
//! requests for other entities do not wait at all.
//!
//! No deadlock: a request takes exactly one lock, and only the worker (one
//! task) ever takes locks exclusively.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

/// The locks, made on first use. Entries are only made for entities the
/// snapshot defines or a plan names, so a client asking for made-up names
/// cannot grow the map.
#[derive(Default)]
pub struct SchemaLocks {
    by_entity: Mutex<HashMap<String, Arc<RwLock<()>>>>,
}

/// Exclusive locks the worker holds, by entity, until the snapshot that
/// reflects its changes is published.
#[derive(Default)]
pub struct Held {
    guards: BTreeMap<String, OwnedRwLockWriteGuard<()>>,
}

impl SchemaLocks {
    fn lock_of(&self, entity: &str) -> Arc<RwLock<()>> {
        let mut map = self.by_entity.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.entry(entity.to_string()).or_default().clone()
    }

    /// The entities a change holds (or waits to hold) now, in name order:
    /// their content requests wait for its cut-over.
    pub fn changing(&self) -> Vec<String> {
        let map = self.by_entity.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut out: Vec<String> =
            map.iter().filter(|(_, lock)| lock.try_read().is_err()).map(|(e, _)| e.clone()).collect();
        out.sort();
        out
    }

    /// Shares `entity`'s lock: a content request's whole duration.
    pub async fn read(&self, entity: &str) -> OwnedRwLockReadGuard<()> {
        self.lock_of(entity).read_owned().await
    }

    /// Takes `entities` exclusively into `held`, in name order, skipping those
    /// already held; returns the ones it took (so a retry can let exactly
    /// those go again).
    pub async fn write(&self, held: &mut Held, entities: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut wanted: Vec<String> = entities.into_iter().filter(|e| !held.guards.contains_key(e)).collect();
        wanted.sort();
        wanted.dedup();
        for entity in &wanted {
            let guard = self.lock_of(entity).write_owned().await;
            held.guards.insert(entity.clone(), guard);
        }
        wanted
    }
}

impl Held {
    /// Lets go of `entities`' locks (a change that waits to try again).
    pub fn release(&mut self, entities: &[String]) {
        for entity in entities {
            self.guards.remove(entity);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.guards.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_change_to_one_entity_blocks_its_readers_and_no_others() {
        let locks = Arc::new(SchemaLocks::default());
        let mut held = Held::default();
        let taken = locks.write(&mut held, ["post".to_string(), "post".to_string()]).await;
        assert_eq!(taken, ["post"]);
        assert_eq!(locks.changing(), ["post"]);
        let other = tokio::time::timeout(Duration::from_secs(5), locks.read("author")).await;
        assert!(other.is_ok(), "a reader of another entity waited for the change");
        let reader = {
            let locks = locks.clone();
            tokio::spawn(async move { drop(locks.read("post").await) })
        };
        tokio::task::yield_now().await;
        assert!(!reader.is_finished(), "a reader of the changed entity ran across the change");
        // Taking it again is a no-op; releasing it lets the reader in.
        assert!(locks.write(&mut held, ["post".to_string()]).await.is_empty());
        held.release(&taken);
        assert!(held.is_empty());
        assert!(locks.changing().is_empty());
        tokio::time::timeout(Duration::from_secs(5), reader).await.expect("the reader ran").unwrap();
    }
}
