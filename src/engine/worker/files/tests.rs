//! Random sequences of what happens to files (saves of every outcome,
//! approvals that apply or fail, declines, another instance's applies,
//! rollbacks, copies falling behind) driven through [`Files`]: no sequence
//! reaches a move the transition table does not list (`move_to` stops debug
//! builds), and what the snapshot shows equals what the worker's former seven
//! maps showed through their priority chain, given the same moves.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::engine::worker::publish::{shown, Shown};
use crate::hazard::Severity;
use crate::plan::{Dialect, Plan, PlanBinding};
use crate::site::Site;

const PATHS: [&str; 3] = ["schemas/a.schema.yaml", "schemas/b.schema.yaml", "config/config.api.yaml"];

#[derive(Debug, Clone, Copy)]
enum Saved {
    Invalid,
    CrossFile,
    Held,
    AutoApplied,
    AutoFailed,
    BackToApplied,
    Behind,
}

#[derive(Debug, Clone, Copy)]
enum Event {
    Save(usize, Saved, u8),
    Approve(usize, bool),
    Decline(usize),
    AppliedElsewhere(usize),
    Rollback(usize),
}

fn event() -> impl Strategy<Value = Event> {
    let path = 0..PATHS.len();
    let saved = prop_oneof![
        Just(Saved::Invalid),
        Just(Saved::CrossFile),
        Just(Saved::Held),
        Just(Saved::AutoApplied),
        Just(Saved::AutoFailed),
        Just(Saved::BackToApplied),
        Just(Saved::Behind),
    ];
    prop_oneof![
        4 => (path.clone(), saved, 0u8..3).prop_map(|(p, s, v)| Event::Save(p, s, v)),
        2 => (path.clone(), any::<bool>()).prop_map(|(p, ok)| Event::Approve(p, ok)),
        1 => path.clone().prop_map(Event::Decline),
        1 => path.clone().prop_map(Event::AppliedElsewhere),
        1 => path.prop_map(Event::Rollback),
    ]
}

fn change(id: u64, path: &str, text: u8) -> PendingChange {
    PendingChange {
        id,
        file: path.to_string(),
        entity: "a".into(),
        severity: Severity::Warning,
        hazards: vec![],
        from_version: None,
        from_hash: String::new(),
        to_hash: format!("text-{text}"),
        created_at: String::new(),
        headline: String::new(),
        summary: vec![],
        text_diff: vec![],
        rows: vec![],
        plan: Plan {
            binding: PlanBinding {
                base_hash: String::new(),
                target_hash: format!("text-{text}"),
                backup_tag: "t".into(),
            },
            dialect: Dialect::Sqlite,
            steps: vec![],
            foreign_keys_off: false,
            rollback_foreign_keys_off: false,
            deferred: vec![],
            dangling: vec![],
            rollback_dangling: vec![],
            path: Default::default(),
            table_rows: None,
        },
        new_file: None,
        rollback_to: None,
        origin: None,
        conflict: false,
        reason: None,
    }
}

fn error(path: &str, what: &str) -> FileError {
    FileError::new(path, (1, 1), None, what.to_string())
}

/// The worker's former state: seven maps keyed by path (here the four that
/// decide what is shown), moved the way the former code moved them.
#[derive(Default)]
struct Maps {
    pending: BTreeMap<String, PendingChange>,
    rejected: BTreeMap<String, Vec<FileError>>,
    failed: BTreeMap<String, FileError>,
    behind: BTreeMap<String, Behind>,
}

impl Maps {
    /// `publish()` as it was: the priority chain over the maps.
    fn shown(&self) -> Shown {
        let mut paths: BTreeSet<&String> = self.pending.keys().collect();
        paths.extend(self.rejected.keys());
        paths.extend(self.failed.keys());
        paths.extend(self.behind.keys());
        let files = paths
            .into_iter()
            .map(|p| crate::engine::snapshot::FileStatus {
                path: p.clone(),
                entity: None,
                version: None,
                hash: None,
                state: if self.behind.contains_key(p) {
                    FileState::Behind
                } else if self.rejected.contains_key(p) {
                    FileState::Rejected
                } else if self.failed.contains_key(p) {
                    FileState::Failed
                } else if self.pending.contains_key(p) {
                    FileState::Pending
                } else {
                    FileState::InSync
                },
            })
            .collect();
        Shown {
            files,
            pending: self.pending.values().cloned().collect(),
            rejected: self.rejected.values().flatten().cloned().collect(),
            failed: self.failed.values().cloned().collect(),
            behind: self.behind.values().cloned().collect(),
        }
    }
}

/// A new change id (the worker derives one from the change; any unique one does here).
fn fresh_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// One event, as the worker handles it, on both representations.
fn happen(files: &mut Files, maps: &mut Maps, event: Event) {
    match event {
        Event::Save(i, saved, text) => {
            let path = PATHS[i];
            // What `intake.rs` does before the outcome: a failure is over once the file changed.
            files.retry(path);
            maps.failed.remove(path);
            if let Saved::Behind = saved {
                let behind = Behind { file: path.into(), copy_version: 1, applied_version: 2 };
                files.supersede(path);
                files.fall_behind(path, behind.clone());
                maps.rejected.remove(path);
                maps.pending.remove(path);
                maps.behind.insert(path.into(), behind);
                return;
            }
            files.catch_up(path);
            maps.behind.remove(path);
            if let Saved::Invalid = saved {
                let errors = vec![error(path, &format!("invalid {text}"))];
                files.supersede(path);
                files.invalidate(path, errors.clone(), Some(format!("text {text}")));
                maps.pending.remove(path);
                maps.rejected.insert(path.into(), errors);
                return;
            }
            files.accept(path);
            maps.rejected.remove(path);
            files.supersede(path);
            maps.pending.remove(path);
            match saved {
                Saved::CrossFile => {
                    let errors = vec![error(path, "names an entity no file defines")];
                    files.wait_on_others(path, errors.clone());
                    maps.rejected.insert(path.into(), errors);
                }
                Saved::Held => {
                    let change = change(fresh_id(), path, text);
                    files.hold(change.clone());
                    maps.pending.insert(path.into(), change);
                }
                Saved::AutoApplied => {
                    files.settle(path);
                }
                Saved::AutoFailed => {
                    files.fail(path, error(path, "applying failed"));
                    maps.failed.insert(path.into(), error(path, "applying failed"));
                }
                Saved::BackToApplied | Saved::Invalid | Saved::Behind => {}
            }
        }
        Event::Approve(i, ok) => {
            let path = PATHS[i];
            if files.pending(path).is_none() {
                assert!(!maps.pending.contains_key(path));
                return;
            }
            files.supersede(path);
            maps.pending.remove(path);
            if ok {
                files.settle(path);
            } else {
                files.fail(path, error(path, "applying failed"));
                maps.failed.insert(path.into(), error(path, "applying failed"));
            }
        }
        Event::Decline(i) => {
            let path = PATHS[i];
            if files.pending(path).is_some() {
                files.decline(path, error(path, "declined"));
                maps.pending.remove(path);
                maps.rejected.insert(path.into(), vec![error(path, "declined")]);
            }
        }
        Event::AppliedElsewhere(i) => {
            let path = PATHS[i];
            files.settle_elsewhere(path);
            maps.pending.remove(path);
            maps.failed.remove(path);
        }
        Event::Rollback(i) => {
            // A rollback asked for now waits in place of whatever the file showed.
            let path = PATHS[i];
            files.supersede(path);
            let mut rollback = change(fresh_id(), path, 9);
            rollback.rollback_to = Some(1);
            files.hold(rollback.clone());
            maps.rejected.remove(path);
            maps.failed.remove(path);
            maps.behind.remove(path);
            maps.pending.insert(path.into(), rollback);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_sequence_moves_by_the_table_and_shows_what_the_maps_showed(events in proptest::collection::vec(event(), 1..40)) {
        let (mut files, mut maps) = (Files::default(), Maps::default());
        let applied = Site::default();
        for event in events {
            happen(&mut files, &mut maps, event);
            let now = shown(&files, &applied, &BTreeMap::new());
            prop_assert_eq!(&now, &maps.shown(), "after {:?}", event);
            prop_assert!(files.indexes_agree(), "the pending and waiting indexes drifted after {:?}", event);
            // One state per file: no file is in two lists.
            let mut listed: Vec<&str> = now.pending.iter().map(|c| c.file.as_str()).collect();
            listed.extend(now.failed.iter().map(|e| e.file.as_str()));
            listed.extend(now.behind.iter().map(|b| b.file.as_str()));
            listed.extend(now.rejected.iter().map(|e| e.file.as_str()).collect::<BTreeSet<_>>());
            let unique: BTreeSet<&str> = listed.iter().copied().collect();
            prop_assert_eq!(unique.len(), listed.len(), "a file is in two lists: {:?}", listed);
        }
    }
}

/// A move the table does not list stops a debug build: the table is enforced,
/// not decoration.
#[test]
#[should_panic(expected = "no transition")]
fn a_move_the_table_does_not_list_is_refused() {
    let mut files = Files::default();
    let path = PATHS[0];
    files.hold(change(1, path, 1));
    // Pending → Behind is not a move: the waiting change must be superseded first.
    files.fall_behind(path, Behind { file: path.into(), copy_version: 1, applied_version: 2 });
}

/// Every state is reached by some move and left by some move.
#[test]
fn every_state_is_entered_and_left() {
    for state in StateName::ALL {
        assert!(TRANSITIONS.iter().any(|(_, to, _)| *to == state), "nothing enters {state:?}");
        assert!(TRANSITIONS.iter().any(|(from, _, _)| *from == state), "nothing leaves {state:?}");
    }
}
