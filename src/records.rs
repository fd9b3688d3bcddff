//! Reference data as read: a data file (`data/<entity>/<name>.yaml`) holds
//! records of one entity, keyed by `id`, and two versions of one differ record
//! by record. The file kind that plans them is `kind/data/`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::error::FileError;
use crate::hash::sha256_hex;
use crate::hazard::{Hazard, HazardCode as C, Severity as S};
use crate::locate::item_key;

/// One data file as read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataFile {
    pub path: String,
    pub hash: String,
    pub text: String,
    /// The entity whose rows it holds: the directory it sits in.
    pub entity: String,
    /// In file order.
    pub records: Vec<DataRecord>,
}

/// One record: its id and the fields it names (without `id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataRecord {
    pub id: String,
    pub values: BTreeMap<String, Json>,
}

impl DataFile {
    /// Parses `text` as the data file at `path`: a `records:` list of mappings,
    /// each with a unique string `id`. The values are checked against the
    /// entity's schema by the data kind's check (`kind/data/check.rs`), which
    /// sees the site.
    pub fn parse(path: &str, text: &str) -> Result<Self, Vec<FileError>> {
        let entity = entity_of(path)
            .ok_or_else(|| vec![FileError::new(path, (1, 1), None, "a data file sits at data/<entity>/<name>.yaml")])?;
        let raw = crate::yaml::parse_data(path, text).map_err(|e| vec![e])?;
        let mut errors = Vec::new();
        let mut records = Vec::with_capacity(raw.records.len());
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (i, value) in raw.records.into_iter().enumerate() {
            let at = |key: &str| item_key(text, "records", i, key);
            let field = |key: &str| Some(format!("records[{i}].{key}"));
            let Json::Object(mut map) = value else {
                let (line, _) = at("id");
                errors.push(FileError::new(
                    path,
                    (line, 1),
                    Some(format!("records[{i}]")),
                    "a record is a mapping of field ids to values",
                ));
                continue;
            };
            let id = match map.remove("id") {
                Some(Json::String(s)) if !s.trim().is_empty() => s,
                Some(Json::Number(n)) => {
                    errors.push(FileError::new(
                        path,
                        at("id"),
                        field("id"),
                        format!("record ids are text: write `id: \"{n}\"`"),
                    ));
                    continue;
                }
                Some(_) => {
                    errors.push(FileError::new(path, at("id"), field("id"), "must be a non-empty string"));
                    continue;
                }
                None => {
                    errors.push(FileError::new(path, at("id"), field("id"), "every record needs an `id`"));
                    continue;
                }
            };
            if let Some(first) = seen.insert(id.clone(), i) {
                errors.push(FileError::new(
                    path,
                    at("id"),
                    field("id"),
                    format!("record id `{id}` is already used by records[{first}]"),
                ));
                continue;
            }
            records.push(DataRecord { id, values: map.into_iter().collect() });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(DataFile {
            path: path.to_string(),
            hash: sha256_hex(text.as_bytes()),
            text: text.to_string(),
            entity,
            records,
        })
    }
}

/// `data/<entity>/<name>.yaml` → the entity.
pub fn entity_of(path: &str) -> Option<String> {
    let mut parts = path.split('/');
    let (Some("data"), Some(entity), Some(name), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
    (yaml && !entity.is_empty() && !name.starts_with('.') && !entity.starts_with('.')).then(|| entity.to_string())
}

/// One record change. Serialised with its own `kind` tags, beside the schema
/// and configuration changes in [`crate::diff::ChangeItem`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RecordChange {
    RecordAdded {
        entity: String,
        id: String,
        values: BTreeMap<String, Json>,
    },
    /// `old` and `new` are the record as each version of the file names it.
    RecordChanged {
        entity: String,
        id: String,
        old: BTreeMap<String, Json>,
        new: BTreeMap<String, Json>,
    },
    RecordRemoved {
        entity: String,
        id: String,
        values: BTreeMap<String, Json>,
    },
}

/// Records added and changed, in the new file's order, then records removed,
/// in the old file's order. `None` is "no file".
pub fn diff_records(old: Option<&DataFile>, new: Option<&DataFile>) -> Vec<RecordChange> {
    let entity = new.or(old).map(|f| f.entity.clone()).unwrap_or_default();
    // Matched through maps: a file of thousands of records diffs in O(n log n).
    fn by_id(f: Option<&DataFile>) -> BTreeMap<&str, &DataRecord> {
        f.iter().flat_map(|f| &f.records).map(|r| (r.id.as_str(), r)).collect()
    }
    let (olds, news) = (by_id(old), by_id(new));
    let mut out = Vec::new();
    for r in new.iter().flat_map(|f| &f.records) {
        match olds.get(r.id.as_str()) {
            None => out.push(RecordChange::RecordAdded {
                entity: entity.clone(),
                id: r.id.clone(),
                values: r.values.clone(),
            }),
            Some(o) if o.values != r.values => out.push(RecordChange::RecordChanged {
                entity: entity.clone(),
                id: r.id.clone(),
                old: o.values.clone(),
                new: r.values.clone(),
            }),
            Some(_) => {}
        }
    }
    for r in old.iter().flat_map(|f| &f.records) {
        if !news.contains_key(r.id.as_str()) {
            out.push(RecordChange::RecordRemoved {
                entity: entity.clone(),
                id: r.id.clone(),
                values: r.values.clone(),
            });
        }
    }
    out
}

/// A value as people read it in a summary: strings quoted, null as `null`.
pub(crate) fn shown(v: Option<&Json>) -> String {
    match v {
        None | Some(Json::Null) => "null".into(),
        Some(v) => v.to_string(),
    }
}

/// One record's change as a row of the dashboard's row diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowDiff {
    pub id: String,
    /// `added`, `changed` or `removed`.
    pub op: String,
    /// (field, value before, value after), as people read them (`null` for none).
    pub fields: Vec<(String, String, String)>,
}

impl RecordChange {
    pub fn row_diff(&self) -> RowDiff {
        let op = match self {
            RecordChange::RecordAdded { .. } => "added",
            RecordChange::RecordChanged { .. } => "changed",
            RecordChange::RecordRemoved { .. } => "removed",
        };
        let fields = self
            .fields()
            .into_iter()
            .map(|(f, o, n)| {
                let side = |v: Option<Json>, present: bool| if present { shown(v.as_ref()) } else { String::new() };
                (f, side(o, op != "added"), side(n, op != "removed"))
            })
            .collect();
        RowDiff { id: self.id().to_string(), op: op.to_string(), fields }
    }

    pub fn entity(&self) -> &str {
        match self {
            RecordChange::RecordAdded { entity, .. }
            | RecordChange::RecordChanged { entity, .. }
            | RecordChange::RecordRemoved { entity, .. } => entity,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            RecordChange::RecordAdded { id, .. }
            | RecordChange::RecordChanged { id, .. }
            | RecordChange::RecordRemoved { id, .. } => id,
        }
    }

    /// Every field either version of the record names, in id order.
    pub fn named(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = match self {
            RecordChange::RecordAdded { values, .. } | RecordChange::RecordRemoved { values, .. } => {
                values.keys().map(String::as_str).collect()
            }
            RecordChange::RecordChanged { old, new, .. } => old.keys().chain(new.keys()).map(String::as_str).collect(),
        };
        keys.sort();
        keys.dedup();
        keys
    }

    /// The fields whose value differs, in id order: (field, old, new).
    pub fn fields(&self) -> Vec<(String, Option<Json>, Option<Json>)> {
        let (old, new) = match self {
            RecordChange::RecordAdded { values, .. } => (None, Some(values)),
            RecordChange::RecordChanged { old, new, .. } => (Some(old), Some(new)),
            RecordChange::RecordRemoved { values, .. } => (Some(values), None),
        };
        let mut keys: Vec<&String> = old.into_iter().chain(new).flat_map(|m| m.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .map(|k| (k.clone(), old.and_then(|m| m.get(k)).cloned(), new.and_then(|m| m.get(k)).cloned()))
            .filter(|(_, o, n)| o != n)
            .collect()
    }

    pub fn headline(&self) -> String {
        match self {
            RecordChange::RecordAdded { entity, id, .. } => format!("record `{id}` of `{entity}` added"),
            RecordChange::RecordChanged { entity, id, .. } => {
                let names: Vec<String> = self.fields().into_iter().map(|(f, _, _)| format!("`{f}`")).collect();
                format!("record `{id}` of `{entity}`: {} changed", names.join(", "))
            }
            RecordChange::RecordRemoved { entity, id, .. } => format!("record `{id}` of `{entity}` removed"),
        }
    }

    /// `~ record category/news: title "News" → "Latest"`.
    pub fn summary(&self) -> String {
        let (sign, (entity, id)) = match self {
            RecordChange::RecordAdded { .. } => ('+', (self.entity(), self.id())),
            RecordChange::RecordChanged { .. } => ('~', (self.entity(), self.id())),
            RecordChange::RecordRemoved { .. } => ('-', (self.entity(), self.id())),
        };
        let fields: Vec<String> = self
            .fields()
            .into_iter()
            .map(|(f, o, n)| match self {
                RecordChange::RecordChanged { .. } => format!("{f} {} → {}", shown(o.as_ref()), shown(n.as_ref())),
                RecordChange::RecordAdded { .. } => format!("{f} {}", shown(n.as_ref())),
                RecordChange::RecordRemoved { .. } => format!("{f} {}", shown(o.as_ref())),
            })
            .collect();
        match fields.is_empty() {
            true => format!("{sign} record {entity}/{id}"),
            false => format!("{sign} record {entity}/{id}: {}", fields.join(", ")),
        }
    }

    /// Static grading; the planner gives the hazards their probes, which re-grade
    /// them on the live rows (a row another writer changed, a row others reference).
    pub fn hazards(&self) -> Vec<Hazard> {
        let h = Hazard::new;
        match self {
            RecordChange::RecordAdded { entity, id, .. } => {
                vec![h(C::RecordAdded, S::Safe, format!("record `{id}` is added to `{entity}`"))]
            }
            RecordChange::RecordChanged { entity, id, .. } => {
                let names: Vec<String> = self.fields().into_iter().map(|(f, _, _)| format!("`{f}`")).collect();
                vec![h(C::RecordChanged, S::Safe, format!("record `{id}` of `{entity}`: {} set", names.join(", ")))]
            }
            RecordChange::RecordRemoved { entity, id, .. } => vec![h(
                C::RecordRemoved,
                S::Breaking,
                format!("record `{id}` is removed from `{entity}`: its row is deleted (backed up first)"),
            )],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records_and_names_the_line_of_each_problem() {
        let text = "records:\n  - id: news\n    title: News\n  - id: sport\n    title: Sport\n";
        let f = DataFile::parse("data/category/main.yaml", text).unwrap();
        assert_eq!(f.entity, "category");
        assert_eq!(f.records.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["news", "sport"]);
        assert_eq!(f.records[1].values["title"], Json::String("Sport".into()));

        let text = "records:\n  - id: news\n  - title: Lost\n  - id: news\n  - id: 7\n";
        let errors = DataFile::parse("data/category/main.yaml", text).unwrap_err();
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "data/category/main.yaml:3:3: every record needs an `id`",
                "data/category/main.yaml:4:5: record id `news` is already used by records[0]",
                "data/category/main.yaml:5:5: record ids are text: write `id: \"7\"`",
            ]
        );
        let err = DataFile::parse("data/category/main.yaml", "records:\n  - id: a\nrows: []\n").unwrap_err();
        assert!(err[0].message.contains("unknown field `rows`"), "{err:?}");
    }

    fn file(text: &str) -> DataFile {
        DataFile::parse("data/category/main.yaml", text).unwrap()
    }

    #[test]
    fn matched_by_id_in_file_order() {
        let old = file("records:\n  - id: a\n    title: A\n  - id: b\n    title: B\n  - id: c\n    title: C\n");
        let new = file("records:\n  - id: c\n    title: C\n  - id: d\n    title: D\n  - id: a\n    title: Aa\n");
        let summaries: Vec<String> = diff_records(Some(&old), Some(&new)).iter().map(RecordChange::summary).collect();
        assert_eq!(
            summaries,
            [
                "+ record category/d: title \"D\"",
                "~ record category/a: title \"A\" → \"Aa\"",
                "- record category/b: title \"B\""
            ]
        );
        assert!(diff_records(Some(&old), Some(&old)).is_empty());
        let severities: Vec<S> =
            diff_records(Some(&old), Some(&new)).iter().map(|c| crate::hazard::worst(&c.hazards())).collect();
        assert_eq!(severities, [S::Safe, S::Safe, S::Breaking]);
    }

    #[test]
    fn a_long_change_names_three_records_and_counts_the_rest() {
        let new = file("records:\n  - id: a\n  - id: b\n  - id: c\n  - id: d\n  - id: e\n");
        let items: Vec<crate::diff::ChangeItem> =
            diff_records(None, Some(&new)).into_iter().map(crate::diff::ChangeItem::Record).collect();
        assert_eq!(
            crate::diff::headline(&items, &[]),
            "record `a` of `category` added · record `b` of `category` added · record `c` of `category` added · and 2 more changes"
        );
        let rows: Vec<String> =
            items.iter().filter_map(|i| i.row_diff()).map(|r| format!("{} {}", r.op, r.id)).collect();
        assert_eq!(rows, ["added a", "added b", "added c", "added d", "added e"]);
    }
}
