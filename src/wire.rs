//! The small enums the engine sends and the browser shows: what happened to a
//! file (`EventKind`) and where a file stands (`FileState`). They live in the
//! core, beside `ErrorKind` and `Severity`, so the dashboard's browser build
//! matches on them instead of on strings. Each is declared with the list of
//! all its values (`ALL`) and its wire names in one place, so a list built
//! from `ALL` (the audit page's filter) cannot miss one.

use serde::{Deserialize, Serialize};

/// An enum whose every variant is listed once: its `ALL`, its wire name
/// (`as_str`, the serde name) and `parse` come from the same list.
macro_rules! wire_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $wire)] $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The name on the wire (JSON, `secure.log`, CSS classes).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)*
                }
            }

            /// The value named `s` on the wire.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($wire => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum! {
    /// What happened to a file (or, for `Migration`, to the legacy move): one
    /// event per transition, on the event stream and in the audit log.
    pub enum EventKind {
        Detected = "detected",
        /// The file does not validate, or a person declined its change.
        Rejected = "rejected",
        Pending = "pending",
        Approved = "approved",
        Applied = "applied",
        Failed = "failed",
        Superseded = "superseded",
        /// A rollback or recovery change applied: the file is an earlier version again.
        RolledBack = "rolled_back",
        /// A rejected file is back to its applied version: nothing to fix any more.
        Cleared = "cleared",
        /// An approved change waits for a table lock another session holds (who,
        /// and what it runs, in the message); it tries again by itself.
        Waiting = "waiting",
        /// An approved change to a big table runs its online phases
        /// (docs/online-changes.md): sent as each starts, saying which of how
        /// many and what it does.
        Progress = "progress",
        /// The move from the legacy JSON table: progress of a `run` (from the
        /// command line or the dashboard), a verify, a finish. `file` is the legacy
        /// table.
        LegacyMove = "migration",
        /// Rows a data file wrote were changed or deleted by another writer since
        /// it applied (the message says which and how); `file` is the data file.
        Drifted = "drifted",
        /// Sent by the event stream itself to a client that fell too far behind:
        /// events were missed, refetch everything. Never in `secure.log`.
        Resync = "resync",
    }
}

impl EventKind {
    /// Whether events of this kind are kept in `secure.log` (and so can be
    /// looked for in the audit log).
    pub fn audited(self) -> bool {
        self != EventKind::Resync
    }
}

wire_enum! {
    /// Where a file stands, as the dashboard and the REST API show it.
    pub enum FileState {
        InSync = "in_sync",
        Pending = "pending",
        /// The file does not validate, or a person declined its change.
        Rejected = "rejected",
        Failed = "failed",
        /// This instance's copy is an older applied version (per-instance copies).
        Behind = "behind",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip_through_serde_and_parse() {
        for kind in EventKind::ALL {
            let json = serde_json::to_string(kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(EventKind::parse(kind.as_str()), Some(*kind));
        }
        for state in FileState::ALL {
            assert_eq!(serde_json::to_string(state).unwrap(), format!("\"{}\"", state.as_str()));
            assert_eq!(FileState::parse(state.as_str()), Some(*state));
        }
        assert_eq!(EventKind::ALL.len(), 14);
        assert_eq!(EventKind::parse("nonsense"), None);
    }
}
