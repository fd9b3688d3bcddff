//! Incremental planning equals whole-site planning: on generated sites of every
//! topology, a random batch of edits (fields added and removed, references
//! retargeted, broken and restored, entities renamed, created and deleted, ids
//! duplicated, configs changed) gives the same site, the same errors and the
//! same plans whether the engine's way is taken (a copy of the applied site,
//! only the batch's files checked and planned) or everything is done again from
//! the texts.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use marain::plan::Dialect;
use marain::site::{Site, SiteFile};
use marain::site_plan::{plan_files_in, plan_sites_in};
use proptest::prelude::*;
use support::generated::{self, Topology};

const SCHEMAS: usize = 24;
const CONFIGS: usize = 4;

/// One edit of a batch, on the file or entity numbered `i` (modulo the site).
#[derive(Debug, Clone)]
enum Edit {
    AddField(usize),
    DropLastField(usize),
    Retarget(usize, usize),
    BreakReference(usize),
    Rename(usize),
    Delete(usize),
    Create(usize),
    DuplicateId(usize, usize),
    ConfigValue(usize, u32),
    UniqueClash(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let i = 0..SCHEMAS + 4;
    prop_oneof![
        3 => i.clone().prop_map(Edit::AddField),
        2 => i.clone().prop_map(Edit::DropLastField),
        2 => (i.clone(), i.clone()).prop_map(|(a, b)| Edit::Retarget(a, b)),
        1 => i.clone().prop_map(Edit::BreakReference),
        1 => i.clone().prop_map(Edit::Rename),
        1 => i.clone().prop_map(Edit::Delete),
        2 => i.clone().prop_map(Edit::Create),
        1 => (i.clone(), i.clone()).prop_map(|(a, b)| Edit::DuplicateId(a, b)),
        1 => (0..CONFIGS + 1, any::<u32>()).prop_map(|(c, v)| Edit::ConfigValue(c, v)),
        1 => i.prop_map(Edit::UniqueClash),
    ]
}

fn topology() -> impl Strategy<Value = Topology> {
    prop_oneof![Just(Topology::Independent), Just(Topology::Star), Just(Topology::Chain), Just(Topology::Layered)]
}

/// The texts after `edits`, as path → text (`None`: deleted).
fn apply(texts: &BTreeMap<String, String>, edits: &[Edit]) -> BTreeMap<String, Option<String>> {
    let mut out: BTreeMap<String, Option<String>> = BTreeMap::new();
    let current = |out: &BTreeMap<String, Option<String>>, path: &str| -> Option<String> {
        out.get(path).cloned().unwrap_or_else(|| texts.get(path).cloned())
    };
    for (n, e) in edits.iter().enumerate() {
        let schema = |i: usize| generated::schema_path(i % (SCHEMAS + 4));
        match e {
            Edit::AddField(i) => {
                if let Some(t) = current(&out, &schema(*i)) {
                    out.insert(schema(*i), Some(generated::with_field(&t, n)));
                }
            }
            Edit::DropLastField(i) => {
                if let Some(t) = current(&out, &schema(*i)) {
                    let cut = t.rfind("  - id: ").unwrap_or(t.len());
                    if t[..cut].matches("  - id: ").count() >= 1 {
                        out.insert(schema(*i), Some(t[..cut].to_string()));
                    }
                }
            }
            Edit::Retarget(i, j) => {
                if let Some(t) = current(&out, &schema(*i)) {
                    let j = j % (SCHEMAS + 4);
                    out.insert(
                        schema(*i),
                        Some(format!("{t}  - id: to_{n}\n    type: entity_reference\n    target_entity: e{j}\n")),
                    );
                }
            }
            Edit::BreakReference(i) => {
                if let Some(t) = current(&out, &schema(*i)) {
                    out.insert(
                        schema(*i),
                        Some(format!("{t}  - id: gone_{n}\n    type: entity_reference\n    target_entity: nowhere\n")),
                    );
                }
            }
            Edit::Rename(i) => {
                if let Some(t) = current(&out, &schema(*i)) {
                    let id = format!("e{}", i % (SCHEMAS + 4));
                    let renamed = t.replacen(&format!("id: {id}\n"), &format!("id: {id}x\nrenamed_from: {id}\n"), 1);
                    out.insert(schema(*i), Some(renamed));
                }
            }
            Edit::Delete(i) => {
                out.insert(schema(*i), None);
            }
            Edit::Create(i) => {
                let i = i % (SCHEMAS + 4);
                out.insert(generated::schema_path(i), Some(generated::schema(Topology::Layered, i)));
            }
            Edit::DuplicateId(i, j) => {
                if let Some(t) = current(&out, &schema(*j)) {
                    let id = format!("e{}", i % (SCHEMAS + 4));
                    let first = t.lines().next().unwrap_or_default().to_string();
                    out.insert(schema(*j), Some(t.replacen(&first, &format!("id: {id}"), 1)));
                }
            }
            Edit::ConfigValue(c, v) => {
                let path = generated::config_path(*c);
                out.insert(path, Some(format!("id: c{c}\nvalues:\n  limit: {v}\n")));
            }
            Edit::UniqueClash(i) => {
                // `e{i}_x` with a unique `y` and `e{i}` with a unique `x_y` both
                // need `content_e{i}_x_y_key`.
                let i = i % (SCHEMAS + 4);
                let text = |id: &str, field: &str| {
                    format!("id: {id}\nname: N\nfields:\n  - id: {field}\n    type: text\n    unique: true\n")
                };
                out.insert(format!("schemas/e{i}_x.schema.yaml"), Some(text(&format!("e{i}_x"), "y")));
                if let Some(t) = current(&out, &schema(i)) {
                    out.insert(schema(i), Some(format!("{t}  - id: x_y\n    type: text\n    unique: true\n")));
                }
            }
        }
    }
    out
}

fn sorted(errors: Vec<marain::FileError>) -> Vec<String> {
    let mut all: Vec<String> = errors.iter().map(ToString::to_string).collect();
    all.sort();
    all.dedup();
    all
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn an_incremental_batch_equals_the_whole_site(topology in topology(), edits in proptest::collection::vec(edit(), 1..6)) {
        let texts: BTreeMap<String, String> = generated::site_texts(topology, SCHEMAS, CONFIGS).into_iter().collect();
        let (old, errors) = Site::from_texts(texts.iter().map(|(p, t)| (p.as_str(), t.as_str())));
        prop_assert!(errors.is_empty(), "{errors:?}");
        let changes = apply(&texts, &edits);

        // The engine's way: a copy of the applied site, the batch's files in it.
        let mut incremental = old.clone();
        let mut changed = BTreeSet::new();
        for (path, text) in &changes {
            match text.as_deref().map(|t| SiteFile::parse(path, t)) {
                Some(Ok(f)) => incremental.insert_file(f),
                Some(Err(_)) => continue,
                None => incremental.remove(path),
            }
            changed.insert(path.clone());
        }
        // From scratch: every text parsed again.
        let mut after = texts.clone();
        for (path, text) in &changes {
            if changed.contains(path) {
                match text {
                    Some(t) => after.insert(path.clone(), t.clone()),
                    None => after.remove(path),
                };
            }
        }
        let (whole, _) = Site::from_texts(after.iter().map(|(p, t)| (p.as_str(), t.as_str())));
        prop_assert!(incremental == whole, "the sites differ");
        prop_assert_eq!(sorted(incremental.check_changes(&old, &changed)), sorted(whole.check()));
        prop_assert_eq!(whole.dependency_order().len(), whole.schema_files().map(|f| f.entity.id.clone()).collect::<BTreeSet<_>>().len());
        if whole.check().is_empty() {
            for dialect in [Dialect::Sqlite, Dialect::Postgres] {
                let tag = |file: &str, short: &str| format!("{}_{short}", file.len());
                let paths = changed.iter().map(String::as_str);
                let batch = plan_files_in(dialect, &old, &incremental, paths, tag);
                prop_assert_eq!(batch, plan_sites_in(dialect, &old, &whole, tag));
            }
        }
    }
}

/// Kahn's levels give the order the pass-per-level definition gives: every
/// entity after the ones it references (cycles broken at their smallest id),
/// each level in id order.
#[test]
fn dependency_order_is_by_levels_in_id_order() {
    let texts = generated::site_texts(Topology::Layered, 12, 0);
    let (site, errors) = Site::from_texts(texts.iter().map(|(p, t)| (p.as_str(), t.as_str())));
    assert!(errors.is_empty(), "{errors:?}");
    let order = site.dependency_order();
    // Level by level: e0; e1; e2, e3 (refs e1/e0 and e2/e1: e3 waits for e2)...
    let level = |id: &str| -> usize {
        let i: usize = id[1..].parse().unwrap();
        if i == 0 {
            return 0;
        }
        Topology::Layered.targets(i).iter().map(|t| 1 + level_of(*t)).max().unwrap()
    };
    fn level_of(i: usize) -> usize {
        if i == 0 {
            0
        } else {
            Topology::Layered.targets(i).iter().map(|t| 1 + level_of(*t)).max().unwrap()
        }
    }
    let mut expected: Vec<String> = order.clone();
    expected.sort_by_key(|id| (level(id), id.clone()));
    assert_eq!(order, expected);
}
