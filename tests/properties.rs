//! Properties of the pure core over generated schemas, and of its plans on a real
//! SQLite file and a throw-away PostgreSQL server.

mod support;

use marain::hash::sha256_hex;
use marain::model::{Cardinality, EntitySchema, Field, FieldType, Literal};
use marain::plan::Dialect;
use marain::site::{SchemaFile, Site};
use marain::validate::parse_entity_schema;
use marain::Severity;
use proptest::prelude::*;
use support::case_db::{build_in, CaseDb};
use support::postgres_harness::PgServer;
use support::sqlite_harness::{open, plan, plan_in, Seed};

/// Field ids come from a small pool so two generated versions share most fields.
const IDS: [&str; 8] = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"];

fn field_type() -> impl Strategy<Value = FieldType> {
    prop_oneof![
        Just(FieldType::Text),
        Just(FieldType::LongText),
        Just(FieldType::Integer),
        Just(FieldType::Float),
        Just(FieldType::Boolean),
        Just(FieldType::Datetime),
        Just(FieldType::EntityReference),
    ]
}

fn field(id: &'static str) -> impl Strategy<Value = Field> {
    (
        field_type(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![6 => Just(1i64), 1 => Just(-1), 1 => Just(3)],
        any::<bool>(),
    )
        .prop_map(move |(t, required, unique, indexed, card, with_default)| {
            let cardinality = match card {
                1 => Cardinality::One,
                -1 => Cardinality::Unbounded,
                n => Cardinality::AtMost(n as u32),
            };
            let single = cardinality.is_single();
            let default = match (t, with_default && single) {
                (_, false) => None,
                (FieldType::Integer, true) => Some(Literal::Integer(7)),
                (FieldType::Float, true) => Some(Literal::Float(0.5)),
                (FieldType::Boolean, true) => Some(Literal::Bool(true)),
                (FieldType::Text | FieldType::LongText, true) => Some(Literal::Text("x".into())),
                _ => None,
            };
            Field {
                id: id.to_string(),
                field_type: t,
                required,
                label: None,
                description: None,
                cardinality,
                target_entity: (t == FieldType::EntityReference).then(|| "owner".to_string()),
                unique: unique && single,
                indexed: indexed && single && !unique,
                default,
                renamed_from: None,
                values: None,
            }
        })
}

/// An `item` entity with a random subset of the pool's fields; `owner` is fixed
/// so references always resolve.
fn entity() -> impl Strategy<Value = EntitySchema> {
    let fields: Vec<_> = IDS.iter().map(|id| proptest::option::weighted(0.6, field(id))).collect();
    fields.prop_filter_map("an entity needs a field", |fs| {
        let fields: Vec<Field> = fs.into_iter().flatten().collect();
        (!fields.is_empty()).then(|| EntitySchema {
            id: "item".into(),
            name: "Item".into(),
            description: None,
            versioned: None,
            recursive: None,
            cacheable: None,
            renamed_from: None,
            fields,
        })
    })
}

fn site(item: &EntitySchema) -> Site {
    let owner = parse_entity_schema(
        "schemas/owner.schema.yaml",
        "id: owner\nname: Owner\nfields:\n  - id: name\n    type: text\n",
    )
    .unwrap();
    let mut s = Site::default();
    for e in [owner, item.clone()] {
        let text = format!("{e:?}");
        s.insert(SchemaFile {
            path: format!("schemas/{}.schema.yaml", e.id),
            hash: sha256_hex(text.as_bytes()),
            text,
            entity: e,
        });
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_site_against_itself_plans_nothing(a in entity()) {
        let s = site(&a);
        prop_assert!(marain::diff_entities(Some(&a), Some(&a)).is_empty());
        prop_assert!(plan(&s, &s).is_empty());
    }

    #[test]
    fn data_deleting_steps_are_never_below_breaking(a in entity(), b in entity()) {
        for change in plan(&site(&a), &site(&b)) {
            for step in &change.plan.steps {
                if !step.backups.is_empty() {
                    let worst = step.hazards.iter().map(|h| h.severity).max().unwrap_or(Severity::Safe);
                    prop_assert!(worst >= Severity::Breaking, "{} backs up data but is {worst}", step.summary);
                }
            }
        }
    }

    /// parse → validate → diff → plan never panics, whatever the bytes, as a
    /// schema or as a config file, in either dialect.
    #[test]
    fn arbitrary_text_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600), text in "\\PC{0,400}", yamlish in "(id: [a-z_]{1,6}\\n|name: [A-Za-z ]{0,8}\\n|fields:\\n|  - id: [a-z]{1,5}\\n|    type: [a-z_]{3,16}\\n|    required: (true|false|maybe)\\n|    cardinality: -?[0-9]{1,3}\\n|    default: [a-z0-9.]{0,4}\\n|&a \\[\\*a\\]\\n){0,16}") {
        let lossy = String::from_utf8_lossy(&bytes).into_owned();
        for t in [&lossy, &text, &yamlish] {
            if let Ok(e) = parse_entity_schema("schemas/x.schema.yaml", t) {
                let s = site(&e);
                for dialect in [Dialect::Sqlite, Dialect::Postgres] {
                    let _ = plan_in(dialect, &Site::default(), &s);
                    let _ = plan_in(dialect, &s, &Site::default());
                }
            }
            let (configs, _) = Site::from_texts([("config/config.x.yaml", t.as_str())]);
            let _ = plan(&Site::default(), &configs);
        }
    }
}

/// a → b → a on a real database gives back a's schema and every row and value,
/// whenever the probes let a → b run at all.
async fn round_trip<D: CaseDb>(
    dialect: Dialect,
    a: &EntitySchema,
    b: &EntitySchema,
    mut open: impl AsyncFnMut(&str) -> D,
) -> Result<(), TestCaseError> {
    let (sa, sb) = (site(a), site(b));
    let mut db = open("p").await;
    build_in(&mut db, dialect, &sa).await;
    db.seed(&sa, &Seed::rows(2)).await;
    let (schema_a, data_a) = (db.schema().await, db.data().await);
    let mut changes = plan_in(dialect, &sa, &sb);
    if changes.iter().any(|c| c.severity() >= Severity::Blocked) {
        return Ok(());
    }
    for c in &mut changes {
        let mut counts = std::collections::BTreeMap::new();
        for p in c.plan.probes() {
            counts.insert(p.sql.clone(), db.count(&p.sql).await.map_err(TestCaseError::fail)?);
        }
        c.plan.regrade(|p| counts.get(&p.sql).copied());
    }
    if changes.iter().any(|c| c.severity() >= Severity::Blocked) {
        return Ok(());
    }
    for c in &changes {
        db.run(&c.plan.sql(), c.plan.foreign_keys_off, &c.plan.dangling)
            .await
            .map_err(|e| TestCaseError::fail(format!("apply: {e}")))?;
    }
    let mut fresh = open("fresh").await;
    build_in(&mut fresh, dialect, &sb).await;
    prop_assert_eq!(db.schema().await, fresh.schema().await, "a → b differs from a direct build of b");
    for c in changes.iter().rev() {
        db.run(&c.plan.rollback_sql(), c.plan.rollback_foreign_keys_off, &c.plan.rollback_dangling)
            .await
            .map_err(|e| TestCaseError::fail(format!("rollback: {e}")))?;
    }
    prop_assert_eq!(db.schema().await, schema_a.clone());
    prop_assert_eq!(db.data().await, data_a);

    // Forward again on a fresh database, then plan(b, a) — a forward plan, not
    // the inverse — must arrive at a's schema whenever its probes let it run.
    let mut again = open("again").await;
    build_in(&mut again, dialect, &sa).await;
    again.seed(&sa, &Seed::rows(2)).await;
    for c in &changes {
        again.run(&c.plan.sql(), c.plan.foreign_keys_off, &c.plan.dangling).await.map_err(TestCaseError::fail)?;
    }
    let mut back = plan_in(dialect, &sb, &sa);
    for c in &mut back {
        let mut counts = std::collections::BTreeMap::new();
        for p in c.plan.probes() {
            counts.insert(p.sql.clone(), again.count(&p.sql).await.map_err(TestCaseError::fail)?);
        }
        c.plan.regrade(|p| counts.get(&p.sql).copied());
    }
    if back.iter().any(|c| c.severity() >= Severity::Blocked) {
        return Ok(());
    }
    for c in &back {
        again
            .run(&c.plan.sql(), c.plan.foreign_keys_off, &c.plan.dangling)
            .await
            .map_err(|e| TestCaseError::fail(format!("b → a: {e}")))?;
    }
    prop_assert_eq!(again.schema().await, schema_a, "plan(b, a) does not arrive at a");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn plans_round_trip_on_sqlite(a in entity(), b in entity()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        rt.block_on(round_trip(Dialect::Sqlite, &a, &b, async |name: &str| open(&dir.path().join(format!("{name}.db"))).await))?;
    }
}

/// The same property on one throw-away PostgreSQL server, two databases per case.
#[test]
fn plans_round_trip_on_postgres() {
    let Some(server) = PgServer::start() else { return };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let databases = std::cell::Cell::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 32, ..ProptestConfig::default() });
    let result = runner.run(&(entity(), entity()), |(a, b)| {
        rt.block_on(round_trip(Dialect::Postgres, &a, &b, async |name: &str| {
            databases.set(databases.get() + 1);
            server.database(&format!("{name}_{}", databases.get())).await
        }))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
