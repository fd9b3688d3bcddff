//! Rollback and recovery planning, as the pure function it is: no database, no
//! engine. What the engine adds (reading the targets from the history) is tested
//! end to end in `engine_pipeline.rs`.

use std::collections::BTreeMap;

use marain::plan::Dialect;
use marain::restore::{plan_restore, RestoreTarget, Unchanged};
use marain::Site;

const USER: &str = "id: user\nname: User\nfields:\n  - id: username\n    type: text\n";
const USER_WITH_BIO: &str =
    "id: user\nname: User\nfields:\n  - id: username\n    type: text\n  - id: bio\n    type: long_text\n";
const ARTICLE: &str =
    "id: article\nname: Article\nfields:\n  - id: author\n    type: entity_reference\n    target_entity: user\n";

fn site(files: &[(&str, &str)]) -> Site {
    let (site, errors) = Site::from_texts_for("dev", files.iter().copied());
    assert!(errors.is_empty(), "{errors:?}");
    site
}

fn target(version: i64, text: Option<&str>, backups: &[&str]) -> RestoreTarget {
    RestoreTarget { version, text: text.map(str::to_string), backups: backups.iter().map(|b| b.to_string()).collect() }
}

#[test]
fn a_dropped_field_comes_back_with_its_values_from_the_backup() {
    let applied = site(&[("schemas/user.schema.yaml", USER)]);
    let backup = "marain_backup_v2_0a1b2c3d_content_user__bio";
    let targets = BTreeMap::from([("schemas/user.schema.yaml".to_string(), target(1, Some(USER_WITH_BIO), &[backup]))]);
    let restores = plan_restore(Dialect::Sqlite, &applied, &targets, |_| 3, Unchanged::Skip).unwrap();
    assert_eq!(restores.len(), 1);
    let restore = &restores[0];
    assert_eq!(restore.to_version, 1);
    let refill: Vec<_> = restore.change.plan.steps.iter().filter(|s| !s.restores.is_empty()).collect();
    assert_eq!(refill.len(), 1, "{:#?}", restore.change.plan.steps);
    assert_eq!(refill[0].restores, vec![backup.to_string()]);
    assert!(refill[0].sql[0].starts_with("UPDATE \"content_user\" SET \"bio\""), "{}", refill[0].sql[0]);
    assert!(restore.change.plan.moves_data());
    // The re-added column comes before the refill that needs it.
    let add = restore.change.plan.steps.iter().position(|s| s.sql.iter().any(|q| q.contains("ADD COLUMN"))).unwrap();
    let fill = restore.change.plan.steps.iter().position(|s| !s.restores.is_empty()).unwrap();
    assert!(add < fill);
}

#[test]
fn without_a_surviving_backup_the_field_comes_back_empty() {
    let applied = site(&[("schemas/user.schema.yaml", USER)]);
    let targets = BTreeMap::from([("schemas/user.schema.yaml".to_string(), target(1, Some(USER_WITH_BIO), &[]))]);
    let restores = plan_restore(Dialect::Sqlite, &applied, &targets, |_| 3, Unchanged::Skip).unwrap();
    assert_eq!(restores.len(), 1);
    assert!(restores[0].change.plan.steps.iter().all(|s| s.restores.is_empty()));
    assert!(!restores[0].change.plan.moves_data());
}

#[test]
fn a_target_that_is_already_applied_is_skipped_or_rewritten() {
    let applied = site(&[("schemas/user.schema.yaml", USER)]);
    let targets = BTreeMap::from([("schemas/user.schema.yaml".to_string(), target(2, Some(USER), &[]))]);
    assert!(plan_restore(Dialect::Sqlite, &applied, &targets, |_| 3, Unchanged::Skip).unwrap().is_empty());
    let rewrite = plan_restore(Dialect::Sqlite, &applied, &targets, |_| 3, Unchanged::Rewrite).unwrap();
    assert_eq!(rewrite.len(), 1, "a one-file rollback still rewrites the file");
    assert!(rewrite[0].change.graded.items.is_empty());
    assert_eq!(rewrite[0].to_version, 2);
}

#[test]
fn recovery_recreates_dependent_entities_referenced_first() {
    // Both entities were deleted after the recovery point; the article refers to the user.
    let applied = site(&[]);
    let targets = BTreeMap::from([
        ("schemas/article.schema.yaml".to_string(), target(1, Some(ARTICLE), &["marain_backup_v2_aa_content_article"])),
        ("schemas/user.schema.yaml".to_string(), target(1, Some(USER), &["marain_backup_v2_bb_content_user"])),
    ]);
    let restores = plan_restore(Dialect::Sqlite, &applied, &targets, |_| 2, Unchanged::Skip).unwrap();
    let order: Vec<&str> = restores.iter().map(|r| r.change.file.as_str()).collect();
    assert_eq!(order, ["schemas/user.schema.yaml", "schemas/article.schema.yaml"]);
    for r in &restores {
        let refills: Vec<&String> = r.change.plan.steps.iter().flat_map(|s| &s.restores).collect();
        assert_eq!(refills.len(), 1, "{}: {refills:?}", r.change.file);
        assert!(refills[0].ends_with(&format!("_content_{}", r.change.subject())));
    }
}

#[test]
fn a_target_that_no_longer_fits_the_site_is_refused_naming_why() {
    // The article's target refers to `user`, which is no longer defined.
    let applied = site(&[(
        "schemas/article.schema.yaml",
        "id: article\nname: Article\nfields:\n  - id: title\n    type: text\n",
    )]);
    let targets = BTreeMap::from([("schemas/article.schema.yaml".to_string(), target(1, Some(ARTICLE), &[]))]);
    let why = plan_restore(Dialect::Sqlite, &applied, &targets, |_| 2, Unchanged::Rewrite).unwrap_err();
    assert!(why.contains("user"), "{why}");
    let broken = BTreeMap::from([("schemas/article.schema.yaml".to_string(), target(1, Some("id: [unclosed"), &[]))]);
    let why = plan_restore(Dialect::Sqlite, &applied, &broken, |_| 2, Unchanged::Rewrite).unwrap_err();
    assert!(why.contains("schemas/article.schema.yaml:1:"), "{why}");
}

#[test]
fn backups_made_by_the_restoring_version_are_named_for_it() {
    // Rolling back to a version without `bio` drops it again: its backup is tagged
    // with the version the rollback will be recorded as.
    let applied = site(&[("schemas/user.schema.yaml", USER_WITH_BIO)]);
    let targets = BTreeMap::from([("schemas/user.schema.yaml".to_string(), target(1, Some(USER), &[]))]);
    let restores = plan_restore(Dialect::Sqlite, &applied, &targets, |_| 7, Unchanged::Skip).unwrap();
    let made = restores[0].change.plan.backups();
    assert!(!made.is_empty() && made.iter().all(|b| b.starts_with("marain_backup_v7_")), "{made:?}");
}
