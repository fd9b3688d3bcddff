//! parse → validate → diff → grade → plan on arbitrary bytes, as schema files
//! and as configuration files, in both dialects.
//!
//! The first byte picks what the bytes are; the rest is split at the first
//! 0xFF into an old and a new text (0xFF never occurs in UTF-8, so the split
//! is free for the fuzzer to place). Beyond "never panics", each input checks:
//! - planning is deterministic (the same sites plan the same way twice);
//! - a site planned against itself needs no change;
//! - a step that backs data up is graded BREAKING or worse;
//! - every file that differs is planned, once.
#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use marain::plan::Dialect;
use marain::site::Site;
use marain::site_plan::plan_sites_in;
use marain::Severity;

/// Where the texts are put, by the first byte.
const LAYOUTS: [[&str; 2]; 4] = [
    ["schemas/item.schema.yaml", "schemas/item.schema.yaml"],
    ["config/config.app.yaml", "config/config.app.yaml"],
    // Two files of one site: references, renames and name clashes between them.
    ["schemas/item.schema.yaml", "schemas/owner.schema.yaml"],
    ["config/config.system.yaml", "config/config.hot_reload.yaml"],
];

fn backup_tag(file: &str, short: &str) -> String {
    format!("f{}_{short}", file.len())
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let layout = LAYOUTS[usize::from(first) % LAYOUTS.len()];
    let (a, b) = match rest.iter().position(|&x| x == 0xFF) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let (a, b) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
    let (old, new) = if layout[0] == layout[1] {
        // One file, two versions.
        (Site::from_texts([(layout[0], a.as_ref())]).0, Site::from_texts([(layout[0], b.as_ref())]).0)
    } else {
        // One site of two files, before and after swapping their texts.
        let before = Site::from_texts([(layout[0], a.as_ref()), (layout[1], b.as_ref())]).0;
        let after = Site::from_texts([(layout[0], b.as_ref()), (layout[1], a.as_ref())]).0;
        (before, after)
    };
    // The cross-file rules run on whatever parsed; they must not panic either.
    let _ = (old.check(), new.check());
    for dialect in [Dialect::Sqlite, Dialect::Postgres] {
        let changes = plan_sites_in(dialect, &old, &new, backup_tag);
        assert_eq!(changes, plan_sites_in(dialect, &old, &new, backup_tag), "planning is not deterministic");
        assert!(plan_sites_in(dialect, &new, &new, backup_tag).is_empty(), "a site differs from itself");
        for change in &changes {
            for step in &change.plan.steps {
                if !step.backups.is_empty() {
                    let worst = step.hazards.iter().map(|h| h.severity).max().unwrap_or(Severity::Safe);
                    assert!(worst >= Severity::Breaking, "{} backs up data but is {worst}", step.summary);
                }
            }
        }
        let differing: BTreeSet<&str> =
            old.paths().chain(new.paths()).filter(|p| old.hash_of(p) != new.hash_of(p)).map(String::as_str).collect();
        let planned: Vec<&str> = changes.iter().map(|c| c.file.as_str()).collect();
        assert_eq!(
            planned.iter().copied().collect::<BTreeSet<_>>(),
            differing,
            "not every differing file planned once"
        );
        assert_eq!(planned.len(), differing.len(), "a file planned twice");
    }
});
