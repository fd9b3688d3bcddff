//! Severities and hazards: what can go wrong with a change, in words and codes.

use serde::{Deserialize, Serialize};

/// Ordered from harmless to impossible; a change's severity is its worst hazard's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    Safe,
    Warning,
    Breaking,
    Blocked,
    Rejected,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Safe => "SAFE",
            Severity::Warning => "WARNING",
            Severity::Breaking => "BREAKING",
            Severity::Blocked => "BLOCKED",
            Severity::Rejected => "REJECTED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Severity::Safe, Severity::Warning, Severity::Breaking, Severity::Blocked, Severity::Rejected]
            .into_iter()
            .find(|v| v.as_str() == s)
    }

    /// Whether the default policy may apply it without a person.
    pub fn auto_applies(self) -> bool {
        self == Severity::Safe
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Stable machine codes; the UI and API key on these, so never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HazardCode {
    EntityCreated,
    EntityDropped,
    EntityRenamed,
    MetadataOnly,
    FieldAdded,
    RequiredFieldWithoutDefault,
    FieldDropped,
    FieldRenamed,
    IndexAdded,
    IndexDropped,
    TypeWidened,
    TypeNarrowed,
    RequiredAdded,
    UniqueAdded,
    ConstraintRelaxed,
    AllowedValuesChanged,
    TargetChanged,
    TableRebuild,
    CardinalityChanged,
    NotYetSupported,
    ConfigCreated,
    ConfigKeyAdded,
    ConfigKeyRemoved,
    ConfigValueChanged,
    ConfigTypeChanged,
    ConfigMappingReplaced,
    ConfigIdentityChanged,
    RestartRequired,
    SecretInFile,
    LegacyRowsNoLongerFit,
    RecordAdded,
    RecordChanged,
    RecordRemoved,
    RecordReferenced,
    ReferencedRecordMissing,
}

impl HazardCode {
    pub fn as_str(self) -> &'static str {
        match self {
            HazardCode::EntityCreated => "entity_created",
            HazardCode::EntityDropped => "entity_dropped",
            HazardCode::EntityRenamed => "entity_renamed",
            HazardCode::MetadataOnly => "metadata_only",
            HazardCode::FieldAdded => "field_added",
            HazardCode::RequiredFieldWithoutDefault => "required_field_without_default",
            HazardCode::FieldDropped => "field_dropped",
            HazardCode::FieldRenamed => "field_renamed",
            HazardCode::IndexAdded => "index_added",
            HazardCode::IndexDropped => "index_dropped",
            HazardCode::TypeWidened => "type_widened",
            HazardCode::TypeNarrowed => "type_narrowed",
            HazardCode::RequiredAdded => "required_added",
            HazardCode::UniqueAdded => "unique_added",
            HazardCode::ConstraintRelaxed => "constraint_relaxed",
            HazardCode::AllowedValuesChanged => "allowed_values_changed",
            HazardCode::TargetChanged => "target_changed",
            HazardCode::TableRebuild => "table_rebuild",
            HazardCode::CardinalityChanged => "cardinality_changed",
            HazardCode::NotYetSupported => "not_yet_supported",
            HazardCode::ConfigCreated => "config_created",
            HazardCode::ConfigKeyAdded => "config_key_added",
            HazardCode::ConfigKeyRemoved => "config_key_removed",
            HazardCode::ConfigValueChanged => "config_value_changed",
            HazardCode::ConfigTypeChanged => "config_type_changed",
            HazardCode::ConfigMappingReplaced => "config_mapping_replaced",
            HazardCode::ConfigIdentityChanged => "config_identity_changed",
            HazardCode::RestartRequired => "restart_required",
            HazardCode::SecretInFile => "secret_in_file",
            HazardCode::LegacyRowsNoLongerFit => "legacy_rows_no_longer_fit",
            HazardCode::RecordAdded => "record_added",
            HazardCode::RecordChanged => "record_changed",
            HazardCode::RecordRemoved => "record_removed",
            HazardCode::RecordReferenced => "record_referenced",
            HazardCode::ReferencedRecordMissing => "referenced_record_missing",
        }
    }
}

/// One thing that can go wrong, with a message naming the entity and field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hazard {
    pub code: HazardCode,
    pub severity: Severity,
    pub message: String,
    /// The query that settles this hazard on live data, when one can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<Probe>,
    /// What the probe counted on live data, once it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counted: Option<i64>,
}

/// What a probe's count means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    /// Values the step deletes: none downgrades the deletion to WARNING.
    DeletedValues,
    /// Rows that get no value for a new required field: none makes it SAFE, any BLOCKS.
    RowsWithoutValue,
    /// Rows that would violate the new shape: any BLOCKS.
    Violations,
    /// Rows a table rebuild copies: a small table makes the rebuild SAFE.
    RowsCopied,
    /// Rows another writer changed since the file last applied (or wrote
    /// before the file claimed them): any makes the write a WARNING, showing
    /// what the database holds.
    ChangedElsewhere,
    /// Rows a record's removal deletes: none makes it SAFE.
    RowsDeleted,
}

/// The read-only query that settles a hazard on live data (`probe.rs` makes
/// them and re-grades with their counts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// The hazard this probe settles.
    pub code: HazardCode,
    pub kind: ProbeKind,
    /// Returns one integer.
    pub sql: String,
    /// Completes "N …" in the re-graded message, e.g. "rows have no value for `slug`".
    pub counts: String,
    /// The row the count is about, shown beside the re-graded message when
    /// the count is not 0 (what the database holds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shows: Option<Shows>,
}

/// A query for one row's values, and the names they are shown under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shows {
    pub sql: String,
    pub columns: Vec<String>,
}

impl Shows {
    /// "the database holds `title` = "Latest", `rank` = 3" for one row's values.
    pub fn describe(&self, values: &[serde_json::Value]) -> String {
        let parts: Vec<String> = self.columns.iter().zip(values).map(|(c, v)| format!("`{c}` = {v}")).collect();
        format!("the database holds {}", parts.join(", "))
    }
}

impl Hazard {
    pub fn new(code: HazardCode, severity: Severity, message: impl Into<String>) -> Self {
        Self { code, severity, message: message.into(), probe: None, counted: None }
    }
}

/// The worst severity among `hazards`; SAFE for none.
pub fn worst<'a>(hazards: impl IntoIterator<Item = &'a Hazard>) -> Severity {
    hazards.into_iter().map(|h| h.severity).max().unwrap_or(Severity::Safe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_empty() {
        assert!(Severity::Safe < Severity::Warning && Severity::Breaking < Severity::Blocked);
        assert_eq!(worst([]), Severity::Safe);
        assert_eq!(serde_json::to_string(&Severity::Breaking).unwrap(), "\"BREAKING\"");
    }
}
