//! The upstream Marain files must load unmodified. They are third-party data and
//! live in `../shared/`, not in this repository.

use std::path::PathBuf;

mod support;

use support::fixtures::upstream_fixtures;

use marain::plan::Dialect;
use marain::site::Site;
use support::case_db::{build_in, CaseDb};
use support::postgres_harness::PgServer;
use support::sqlite_harness::Seed;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn upstream_schemas(dir: &std::path::Path) -> Site {
    let mut texts = Vec::new();
    for entry in std::fs::read_dir(dir.join("schemas")).unwrap() {
        let path = entry.unwrap().path();
        let rel = format!("schemas/{}", path.file_name().unwrap().to_string_lossy());
        texts.push((rel, std::fs::read_to_string(&path).unwrap()));
    }
    assert_eq!(texts.len(), 5);
    let (site, errors) = Site::from_texts(texts.iter().map(|(p, t)| (p.as_str(), t.as_str())));
    assert!(errors.is_empty(), "{errors:#?}");
    site
}

/// No database (parse and plan only).
#[test]
fn every_upstream_schema_loads_and_plans() {
    let Some(dir) = upstream_fixtures(&repo(), "every_upstream_schema_loads_and_plans") else { return };
    let site = upstream_schemas(&dir);
    let order = site.dependency_order();
    assert_eq!(order.len(), 5);
    let pos = |id: &str| order.iter().position(|x| x == id).unwrap();
    assert!(pos("links") < pos("user") && pos("user") < pos("snippet"));

    let user = &site.entity_file("user").unwrap().entity;
    let managed_by = user.field("managed_by").unwrap();
    assert!(managed_by.required && managed_by.target_entity.as_deref() == Some("user"));
}

#[tokio::test]
async fn upstream_site_applies_to_sqlite() {
    let Some(dir) = upstream_fixtures(&repo(), "upstream_site_applies_to_sqlite") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let config = marain::engine::EngineConfig::new(&dir, format!("sqlite://{}", tmp.path().join("db").display()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (coordinator, task) = marain::engine::Coordinator::start(config, async move {
        let _ = stopped.await;
    })
    .await
    .unwrap();
    let snapshot = coordinator.snapshot();
    assert!(snapshot.rejected.is_empty(), "{:#?}", snapshot.rejected);
    assert!(snapshot.pending.is_empty(), "creations are SAFE");
    // The three configs, the system one being the `dev` environment's.
    assert_eq!(snapshot.applied.configs().count(), 3);
    assert_eq!(snapshot.applied.config("system").unwrap().doc.values["app"]["name"], "MarainCMS");
    let store = coordinator.store();
    assert!(store.table_columns("content_user").await.unwrap().contains(&"managed_by_id".to_string()));
    assert_eq!(store.table_columns("content_multi__infinite").await.unwrap(), ["parent_id", "delta", "value"]);
    assert_eq!(store.table_columns("content_user__public_links").await.unwrap(), ["parent_id", "delta", "value"]);
    stop.send(()).unwrap();
    task.await.unwrap();
}

/// The upstream schemas created on PostgreSQL (the self reference `user.managed_by`
/// included), then dropped again by the inverse plans.
#[tokio::test]
async fn upstream_site_applies_to_postgres() {
    let Some(dir) = upstream_fixtures(&repo(), "upstream_site_applies_to_postgres") else { return };
    let server = PgServer::start();
    let site = upstream_schemas(&dir);
    let mut db = server.database("upstream").await;
    build_in(&mut db, Dialect::Postgres, &site).await;
    db.seed(&site, &Seed::rows(3)).await;
    let schema = db.schema().await;
    assert!(
        schema["content_user"].iter().any(|f| f.starts_with("column managed_by_id text nullable=NO")),
        "{schema:#?}"
    );
    assert!(
        schema["content_user"]
            .iter()
            .any(|f| f
                .contains("content_user_managed_by_id_fkey FOREIGN KEY (managed_by_id) REFERENCES content_user(id)"))
    );
    assert!(schema.contains_key("content_user__public_links"));
    let changes = support::sqlite_harness::plan_in(Dialect::Postgres, &Site::default(), &site);
    for change in changes.iter().rev() {
        db.run(&change.plan.rollback_sql(), false, &[]).await.unwrap();
    }
    assert!(db.schema().await.is_empty());
}
