//! One state per file. The worker keeps, for every path it has looked at, what
//! it last read there and one [`State`]; the methods below are the only way to
//! move a file from one state to another, and each move is one row of
//! [`TRANSITIONS`] (ARCHITECTURE.md prints the same table, and a tidy check
//! keeps the two equal). The snapshot's lists are derived from the states, so
//! a file cannot be shown pending and rejected at once.

use std::collections::{BTreeMap, BTreeSet};

use crate::engine::snapshot::{Behind, FileState, PendingChange};
use crate::error::FileError;

/// Where a file stands. `Applied` is the calm state: the applied version (or
/// none) stands and nothing about the file waits or failed.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::engine) enum State {
    Applied,
    /// A planned change waits for a person.
    Pending(Box<PendingChange>),
    /// The file does not validate on its own; `source` is its text when it
    /// does not even parse, to show the error in place.
    Invalid {
        errors: Vec<FileError>,
        source: Option<String>,
    },
    /// The file would break a rule that spans files (a reference to an entity
    /// no file defines, a deletion others depend on): checked again with every
    /// batch, so it goes through as soon as the other file arrives.
    WaitingOn(Vec<FileError>),
    /// A person declined this copy's change; the file stays as it is on disk.
    Declined(FileError),
    /// An approved change could not be applied (its transaction rolled back).
    Failed(FileError),
    /// This instance's copy is an older applied version (per-instance copies).
    Behind(Behind),
}

/// A [`State`] without its data: the rows and columns of the transition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(in crate::engine) enum StateName {
    Applied,
    Pending,
    Invalid,
    WaitingOn,
    Declined,
    Failed,
    Behind,
}

impl StateName {
    #[cfg(test)]
    pub const ALL: [StateName; 7] = [
        StateName::Applied,
        StateName::Pending,
        StateName::Invalid,
        StateName::WaitingOn,
        StateName::Declined,
        StateName::Failed,
        StateName::Behind,
    ];
}

impl State {
    pub fn name(&self) -> StateName {
        match self {
            State::Applied => StateName::Applied,
            State::Pending(_) => StateName::Pending,
            State::Invalid { .. } => StateName::Invalid,
            State::WaitingOn(_) => StateName::WaitingOn,
            State::Declined(_) => StateName::Declined,
            State::Failed(_) => StateName::Failed,
            State::Behind(_) => StateName::Behind,
        }
    }

    /// What the dashboard and the REST API call it.
    pub fn shown(&self) -> FileState {
        match self {
            State::Applied => FileState::InSync,
            State::Pending(_) => FileState::Pending,
            State::Invalid { .. } | State::WaitingOn(_) | State::Declined(_) => FileState::Rejected,
            State::Failed(_) => FileState::Failed,
            State::Behind(_) => FileState::Behind,
        }
    }

    /// The errors a file in this state shows as rejected.
    pub fn rejected(&self) -> &[FileError] {
        match self {
            State::Invalid { errors, .. } | State::WaitingOn(errors) => errors,
            State::Declined(error) => std::slice::from_ref(error),
            _ => &[],
        }
    }
}

/// The moves a transition method makes, named `via`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(in crate::engine) enum Via {
    /// A planned change starts waiting (a save, a rollback, a recovery).
    Hold,
    /// The waiting change goes: the file changed again, or was approved.
    Supersede,
    /// The file does not validate on its own.
    Invalidate,
    /// The file breaks a rule that spans files.
    WaitOnOthers,
    /// The file validates again (or is back to its applied text).
    Accept,
    /// A person declined the waiting change.
    Decline,
    /// The apply of a change failed.
    Fail,
    /// The file changed after a failed apply: it is looked at afresh.
    Retry,
    /// This copy turned out to be an older applied version.
    FallBehind,
    /// This copy is no longer behind.
    CatchUp,
    /// A version of the file was applied (here, or by another instance).
    Settle,
}

use StateName as S;

/// Every move between two different states: (from, to, by). ARCHITECTURE.md's
/// table of file states is this one.
pub(in crate::engine) const TRANSITIONS: &[(StateName, StateName, Via)] = &[
    (S::Applied, S::Pending, Via::Hold),
    (S::Invalid, S::Pending, Via::Hold),
    (S::WaitingOn, S::Pending, Via::Hold),
    (S::Declined, S::Pending, Via::Hold),
    (S::Failed, S::Pending, Via::Hold),
    (S::Behind, S::Pending, Via::Hold),
    (S::Pending, S::Applied, Via::Supersede),
    (S::Applied, S::Invalid, Via::Invalidate),
    (S::WaitingOn, S::Invalid, Via::Invalidate),
    (S::Declined, S::Invalid, Via::Invalidate),
    (S::Failed, S::Invalid, Via::Invalidate),
    (S::Behind, S::Invalid, Via::Invalidate),
    (S::Applied, S::WaitingOn, Via::WaitOnOthers),
    (S::Invalid, S::WaitingOn, Via::WaitOnOthers),
    (S::Declined, S::WaitingOn, Via::WaitOnOthers),
    (S::Invalid, S::Applied, Via::Accept),
    (S::WaitingOn, S::Applied, Via::Accept),
    (S::Declined, S::Applied, Via::Accept),
    (S::Pending, S::Declined, Via::Decline),
    (S::Applied, S::Declined, Via::Decline),
    (S::Applied, S::Failed, Via::Fail),
    (S::Pending, S::Failed, Via::Fail),
    (S::Invalid, S::Failed, Via::Fail),
    (S::WaitingOn, S::Failed, Via::Fail),
    (S::Declined, S::Failed, Via::Fail),
    (S::Behind, S::Failed, Via::Fail),
    (S::Failed, S::Applied, Via::Retry),
    (S::Applied, S::Behind, Via::FallBehind),
    (S::Invalid, S::Behind, Via::FallBehind),
    (S::WaitingOn, S::Behind, Via::FallBehind),
    (S::Declined, S::Behind, Via::FallBehind),
    (S::Failed, S::Behind, Via::FallBehind),
    (S::Behind, S::Applied, Via::CatchUp),
    (S::Pending, S::Applied, Via::Settle),
    (S::Invalid, S::Applied, Via::Settle),
    (S::WaitingOn, S::Applied, Via::Settle),
    (S::Declined, S::Applied, Via::Settle),
    (S::Failed, S::Applied, Via::Settle),
    (S::Behind, S::Applied, Via::Settle),
];

/// What the worker knows of one path.
#[derive(Debug, Clone)]
struct Tracked {
    /// The hash of what was last read there (`Some(None)`: absent), so an event
    /// that leaves a file's bytes unchanged costs one read and nothing more;
    /// `None` until read, or once forgotten (the next read counts as new).
    seen: Option<Option<String>>,
    state: State,
}

/// Every path the worker has looked at, with its state.
#[derive(Debug, Default)]
pub(in crate::engine) struct Files {
    tracked: BTreeMap<String, Tracked>,
    /// The paths in `Pending` and in `WaitingOn`, kept by `move_to`, so what
    /// each turn looks at costs what waits, not every path.
    pending: BTreeSet<String>,
    waiting: BTreeSet<String>,
    /// When the files were last taken in (RFC 3339).
    pub last_sync: Option<String>,
}

/// The id of a planned change, from what makes it that change: every instance
/// that plans the same change from the same data gives it the same id, so an
/// approval may reach any of them (behind a load balancer, or after the one
/// that showed it died); a change graded afresh (other hazards or figures) gets
/// another. 52 bits, so a browser's number holds it exactly.
pub(in crate::engine) fn change_id(identity: &[&str]) -> u64 {
    let hex = crate::hash::sha256_hex(identity.join("\u{1f}").as_bytes());
    u64::from_str_radix(&hex[..13], 16).expect("hex digits").max(1)
}

impl Files {
    pub fn state(&self, path: &str) -> &State {
        self.tracked.get(path).map(|t| &t.state).unwrap_or(&State::Applied)
    }

    /// Every path with its state, in path order.
    pub fn states(&self) -> impl Iterator<Item = (&String, &State)> {
        self.tracked.iter().map(|(p, t)| (p, &t.state))
    }

    /// Every path the worker knows of.
    pub fn paths(&self) -> impl Iterator<Item = &String> {
        self.tracked.keys()
    }

    /// The waiting change of `path`, if any.
    pub fn pending(&self, path: &str) -> Option<&PendingChange> {
        match self.state(path) {
            State::Pending(change) => Some(change),
            _ => None,
        }
    }

    /// Every waiting change of this copy, in path order.
    pub fn pending_changes(&self) -> impl Iterator<Item = &PendingChange> {
        self.pending.iter().filter_map(|p| self.pending(p))
    }

    /// Calls `edit` on every waiting change, in path order (the conflict marks).
    pub fn edit_pending(&mut self, mut edit: impl FnMut(&mut PendingChange)) {
        for path in &self.pending {
            if let Some(Tracked { state: State::Pending(change), .. }) = self.tracked.get_mut(path) {
                edit(change);
            }
        }
    }

    /// The paths waiting on other files, to check again with a batch.
    pub fn waiting_on_others(&self) -> impl Iterator<Item = &String> {
        self.waiting.iter()
    }

    /// What was last read at `path`: `None` if never (or forgotten).
    pub fn seen(&self, path: &str) -> Option<&Option<String>> {
        self.tracked.get(path).and_then(|t| t.seen.as_ref())
    }

    pub fn see(&mut self, path: &str, hash: Option<String>) {
        self.entry(path).seen = Some(hash);
    }

    /// Forgets what was read at `path`, so the next read is taken as new.
    pub fn forget(&mut self, path: &str) {
        if let Some(t) = self.tracked.get_mut(path) {
            t.seen = None;
        }
    }

    fn entry(&mut self, path: &str) -> &mut Tracked {
        self.tracked.entry(path.to_string()).or_insert(Tracked { seen: None, state: State::Applied })
    }

    /// Moves `path` to `to` by `via`; the one place a state changes. A move
    /// the table does not list is a bug: debug builds stop, release builds
    /// log it and carry on.
    fn move_to(&mut self, path: &str, to: State, via: Via) -> State {
        let tracked = self.entry(path);
        let (from, name) = (tracked.state.name(), to.name());
        if from != name && !TRANSITIONS.contains(&(from, name, via)) {
            debug_assert!(false, "{path}: no transition {from:?} → {name:?} by {via:?}");
            tracing::error!(file = path, ?from, to = ?name, ?via, "a file moved between states the table does not allow");
        }
        let old = std::mem::replace(&mut tracked.state, to);
        for (index, state) in [(&mut self.pending, StateName::Pending), (&mut self.waiting, StateName::WaitingOn)] {
            match (from == state, name == state) {
                (false, true) => index.insert(path.to_string()),
                (true, false) => index.remove(path),
                _ => false,
            };
        }
        old
    }

    /// `change` starts waiting; what waited before is returned (the caller
    /// supersedes first, so normally nothing).
    pub fn hold(&mut self, change: PendingChange) -> Option<PendingChange> {
        let path = change.file.clone();
        match self.move_to(&path, State::Pending(Box::new(change)), Via::Hold) {
            State::Pending(old) => Some(*old),
            _ => None,
        }
    }

    /// The waiting change of `path` goes; returned for its event.
    pub fn supersede(&mut self, path: &str) -> Option<PendingChange> {
        self.pending(path)?;
        match self.move_to(path, State::Applied, Via::Supersede) {
            State::Pending(old) => Some(*old),
            _ => None,
        }
    }

    /// `path` does not validate; false when it already showed these errors
    /// (nothing new to announce). Any waiting change must be superseded first.
    pub fn invalidate(&mut self, path: &str, errors: Vec<FileError>, source: Option<String>) -> bool {
        let same = self.state(path).rejected() == errors.as_slice() && !matches!(self.state(path), State::Pending(_));
        self.move_to(path, State::Invalid { errors, source }, Via::Invalidate);
        !same
    }

    /// `path` breaks a rule that spans files; false when it already showed
    /// these errors.
    pub fn wait_on_others(&mut self, path: &str, errors: Vec<FileError>) -> bool {
        let same = self.state(path).rejected() == errors.as_slice();
        self.move_to(path, State::WaitingOn(errors), Via::WaitOnOthers);
        !same
    }

    /// `path` validates (or is its applied text again): whatever it showed as
    /// rejected goes. True when it showed something.
    pub fn accept(&mut self, path: &str) -> bool {
        let rejected = matches!(self.state(path), State::Invalid { .. } | State::WaitingOn(_) | State::Declined(_));
        if rejected {
            self.move_to(path, State::Applied, Via::Accept);
        }
        rejected
    }

    /// A person declined the waiting change of `path`.
    pub fn decline(&mut self, path: &str, error: FileError) {
        self.move_to(path, State::Declined(error), Via::Decline);
    }

    /// The apply of a change to `path` failed (this copy's, whose waiting
    /// change was taken off already, or another copy's proposal).
    pub fn fail(&mut self, path: &str, error: FileError) {
        self.move_to(path, State::Failed(error), Via::Fail);
    }

    /// `path` changed after a failed apply: the failure is over.
    pub fn retry(&mut self, path: &str) {
        if matches!(self.state(path), State::Failed(_)) {
            self.move_to(path, State::Applied, Via::Retry);
        }
    }

    /// `path`'s copy is an older applied version; true when it was not behind
    /// before. Any waiting change must be superseded first.
    pub fn fall_behind(&mut self, path: &str, behind: Behind) -> bool {
        let was = matches!(self.state(path), State::Behind(_));
        self.move_to(path, State::Behind(behind), Via::FallBehind);
        !was
    }

    /// `path`'s copy is no longer behind; true when it was.
    pub fn catch_up(&mut self, path: &str) -> bool {
        let was = matches!(self.state(path), State::Behind(_));
        if was {
            self.move_to(path, State::Applied, Via::CatchUp);
        }
        was
    }

    /// A version of `path` was applied: whatever it showed is over; the
    /// waiting change it replaces is returned.
    pub fn settle(&mut self, path: &str) -> Option<PendingChange> {
        match self.move_to(path, State::Applied, Via::Settle) {
            State::Pending(old) => Some(*old),
            _ => None,
        }
    }

    /// Another instance applied a version of `path`: its waiting change here
    /// and its failure go (what is on disk is judged again by the caller).
    pub fn settle_elsewhere(&mut self, path: &str) -> Option<PendingChange> {
        match self.state(path) {
            State::Pending(_) | State::Failed(_) => self.settle(path),
            _ => None,
        }
    }

    /// The texts of files that do not parse, for showing the error in place.
    pub fn sources(&self) -> BTreeMap<String, String> {
        let source = |t: &Tracked| match &t.state {
            State::Invalid { source: Some(text), .. } => Some(text.clone()),
            _ => None,
        };
        self.tracked.iter().filter_map(|(p, t)| Some((p.clone(), source(t)?))).collect()
    }
}

#[cfg(test)]
impl Files {
    /// Whether the indexes of pending and waiting paths are what the states say.
    fn indexes_agree(&self) -> bool {
        let of = |name| self.tracked.iter().filter(|(_, t)| t.state.name() == name).map(|(p, _)| p.clone()).collect();
        self.pending == of(StateName::Pending) && self.waiting == of(StateName::WaitingOn)
    }
}

#[cfg(test)]
mod tests;
