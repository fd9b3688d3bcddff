//! The conversion table of `docs/grading.md`, cell by cell, on a real SQLite file
//! and on a throw-away PostgreSQL server whose `TimeZone` is Europe/Berlin (so
//! any reliance on the session's zone shows).
//!
//! Each cell is one entity holding the cell's value and a NULL. The change to
//! the new type is planned and probed like any other: a refused value must make
//! the probe block the change; an accepted one must pass the probe, convert to
//! exactly the promised value (the NULL staying NULL), and come back exactly as
//! it was after the rollback. The cells are also checked against the plain-Rust
//! model in `support/conversion.rs`, which the case table and the property
//! tests use as their oracle.

mod support;

use marain::plan::Dialect;
use marain::site::Site;
use marain::{FieldType, Severity};
use sqlx::{PgConnection, Row, SqliteConnection};
use support::case_db::{build_in, CaseDb};
use support::conversion::{expected, Value};
use support::pg_server::PgServer;
use support::sqlite_harness::{open, plan_in};

use FieldType::*;
use Value::{Bool, Float as F, Int, Null, Text as T, Time};

fn t(s: &str) -> Value {
    T(s.into())
}

fn time(s: &str) -> Value {
    Time(s.into())
}

/// (from, to, value, what it becomes; `None`: refused).
fn cells() -> Vec<(FieldType, FieldType, Value, Option<Value>)> {
    let max = i64::MAX;
    vec![
        // text → integer: sign and digits only, leading zeros dropped.
        (Text, Integer, t("42"), Some(Int(42))),
        (Text, Integer, t("007"), Some(Int(7))),
        (Text, Integer, t("+5"), Some(Int(5))),
        (Text, Integer, t("-12"), Some(Int(-12))),
        (Text, Integer, t("9223372036854775807"), Some(Int(max))),
        (Text, Integer, t("9223372036854775808"), None),
        (Text, Integer, t("-9223372036854775808"), Some(Int(i64::MIN))),
        (Text, Integer, t("-9223372036854775809"), None),
        (Text, Integer, t(" 42"), None),
        (Text, Integer, t("42 "), None),
        (Text, Integer, t("1e3"), None),
        (Text, Integer, t("4.0"), None),
        (Text, Integer, t(""), None),
        (Text, Integer, t("0x10"), None),
        (Text, Integer, t("٣"), None),
        // text → float: a decimal read exactly.
        (Text, Float, t("2.5"), Some(F(2.5))),
        (Text, Float, t("1e3"), Some(F(1000.0))),
        (Text, Float, t("4.0"), Some(F(4.0))),
        (Text, Float, t(".5"), Some(F(0.5))),
        (Text, Float, t("-1.25E-7"), Some(F(-1.25e-7))),
        (Text, Float, t(" 2.5"), None),
        (Text, Float, t("1e400"), None),
        (Text, Float, t("1e-400"), None),
        (Text, Float, t("0.1234567890123456"), None),
        (Text, Float, t("NaN"), None),
        (Text, Float, t("1,5"), None),
        (Text, Float, t(""), None),
        // text → boolean.
        (Text, Boolean, t("true"), Some(Bool(true))),
        (Text, Boolean, t("false"), Some(Bool(false))),
        (Text, Boolean, t("1"), Some(Bool(true))),
        (Text, Boolean, t("0"), Some(Bool(false))),
        (Text, Boolean, t("yes"), None),
        (Text, Boolean, t("TRUE"), None),
        (Text, Boolean, t(" true"), None),
        (Text, Boolean, t(""), None),
        // text → datetime: no zone means UTC, never the server's zone.
        (Text, Datetime, t("2026-03-01T10:00:00Z"), Some(time("2026-03-01T10:00:00Z"))),
        (Text, Datetime, t("2026-03-01T10:00:00+02:00"), Some(time("2026-03-01T08:00:00Z"))),
        (Text, Datetime, t("2026-01-01T00:30:00+01:00"), Some(time("2025-12-31T23:30:00Z"))),
        (Text, Datetime, t("2026-03-01 10:00:00"), Some(time("2026-03-01T10:00:00Z"))),
        (Text, Datetime, t("2026-03-29T02:30:00"), Some(time("2026-03-29T02:30:00Z"))),
        (Text, Datetime, t("2026-07-01T12:00"), Some(time("2026-07-01T12:00:00Z"))),
        (Text, Datetime, t("2026-03-01"), Some(time("2026-03-01T00:00:00Z"))),
        (Text, Datetime, t("2026-03-01T10:00:00.120Z"), Some(time("2026-03-01T10:00:00.12Z"))),
        (Text, Datetime, t("2026-03-01T10:00:00.123456-05:30"), Some(time("2026-03-01T15:30:00.123456Z"))),
        (Text, Datetime, t("2026-02-30"), None),
        (Text, Datetime, t("2026-03-01T24:00:00Z"), None),
        (Text, Datetime, t("2026-03-01T10:00:00.1234567Z"), None),
        (Text, Datetime, t("0000-01-01"), None),
        (Text, Datetime, t("next tuesday"), None),
        (Text, Datetime, t(""), None),
        // integer → float: exact up to 2^53.
        (Integer, Float, Int(42), Some(F(42.0))),
        (Integer, Float, Int(-7), Some(F(-7.0))),
        (Integer, Float, Int(1 << 53), Some(F(9_007_199_254_740_992.0))),
        (Integer, Float, Int((1 << 53) + 1), None),
        (Integer, Float, Int(max), None),
        // float → integer: whole numbers only, never rounded.
        (Float, Integer, F(4.0), Some(Int(4))),
        (Float, Integer, F(-3.0), Some(Int(-3))),
        (Float, Integer, F(0.0), Some(Int(0))),
        (Float, Integer, F(2.5), None),
        (Float, Integer, F(1e19), None),
        // booleans to numbers and back.
        (Boolean, Integer, Bool(true), Some(Int(1))),
        (Boolean, Integer, Bool(false), Some(Int(0))),
        (Boolean, Float, Bool(true), Some(F(1.0))),
        (Integer, Boolean, Int(1), Some(Bool(true))),
        (Integer, Boolean, Int(0), Some(Bool(false))),
        (Integer, Boolean, Int(2), None),
        (Integer, Boolean, Int(-1), None),
        (Float, Boolean, F(1.0), Some(Bool(true))),
        (Float, Boolean, F(0.5), None),
        // to text.
        (Integer, Text, Int(42), Some(t("42"))),
        (Integer, Text, Int(i64::MIN), Some(t("-9223372036854775808"))),
        (Float, Text, F(2.5), Some(t("2.5"))),
        (Float, Text, F(4.0), Some(t("4"))),
        (Float, Text, F(1e20), Some(t("1e+20"))),
        (Float, Text, F(1e15), Some(t("1e+15"))),
        (Float, Text, F(1e14), Some(t("100000000000000"))),
        (Float, Text, F(1e-7), Some(t("1e-07"))),
        (Float, Text, F(0.0001), Some(t("0.0001"))),
        (Float, Text, F(123456.789), Some(t("123456.789"))),
        (Float, Text, F(0.1 + 0.2), None),
        (Boolean, Text, Bool(true), Some(t("true"))),
        (Boolean, Text, Bool(false), Some(t("false"))),
        (Datetime, Text, time("2026-03-01T10:00:00Z"), Some(t("2026-03-01T10:00:00Z"))),
        (Datetime, Text, time("2026-03-01T10:00:00+02:00"), Some(t("2026-03-01T08:00:00Z"))),
        (Datetime, Text, time("2026-03-01T10:00:00.5Z"), Some(t("2026-03-01T10:00:00.5Z"))),
        (Text, Slug, t(" Mixed Case "), Some(t(" Mixed Case "))),
        // no meaning carries over.
        (Datetime, Integer, time("2026-03-01T10:00:00Z"), None),
        (Datetime, Boolean, time("2026-03-01T10:00:00Z"), None),
        (Integer, Datetime, Int(20260301), None),
        (Boolean, Datetime, Bool(true), None),
    ]
}

/// No database (the plain-Rust model against the table).
#[test]
fn the_model_agrees_with_every_cell() {
    for (from, to, value, want) in cells() {
        assert_eq!(expected(from, to, &value), want, "{from:?} → {to:?}: {value:?}");
    }
}

fn schema(entity: &str, t: FieldType) -> String {
    format!("id: {entity}\nname: {entity}\nfields:\n  - id: v\n    type: {}\n", t.as_str())
}

fn site(texts: &[(String, String)]) -> Site {
    let (site, errors) = Site::from_texts(texts.iter().map(|(p, t)| (p.as_str(), t.as_str())));
    assert!(errors.is_empty(), "{errors:?}");
    site
}

fn literal(d: Dialect, v: &Value) -> String {
    match v {
        Null => "NULL".into(),
        Int(i) => i.to_string(),
        F(f) => format!("{f:?}"),
        Bool(b) if d == Dialect::Postgres => b.to_string().to_uppercase(),
        Bool(b) => u8::from(*b).to_string(),
        T(s) | Time(s) => marain::sql::string_literal(d, s),
    }
}

/// The typed values of `v` in `table`'s rows, by id.
trait Typed: CaseDb {
    async fn values(&mut self, table: &str, t: FieldType) -> Vec<Value>;
    async fn execute(&mut self, sql: &str);
}

fn typed(t: FieldType, kind: &str, text: Option<String>) -> Value {
    let Some(text) = text else { return Null };
    match (kind, t) {
        ("integer", Boolean) => Bool(text == "1"),
        ("integer", _) => Int(text.parse().unwrap()),
        ("real", _) => F(text.parse().unwrap()),
        ("bool", _) => Bool(text == "true"),
        ("text", Datetime) => Time(text),
        _ => T(text),
    }
}

impl Typed for SqliteConnection {
    async fn values(&mut self, table: &str, t: FieldType) -> Vec<Value> {
        let sql = format!(
            "SELECT id, typeof(v), CASE typeof(v) WHEN 'real' THEN printf('%.17g', v) ELSE CAST(v AS TEXT) END \
             FROM \"{table}\" ORDER BY id"
        );
        let rows = sqlx::query(&sql).fetch_all(&mut *self).await.unwrap();
        rows.iter().map(|r| typed(t, &r.get::<String, _>(1), r.get(2))).collect()
    }
    async fn execute(&mut self, sql: &str) {
        sqlx::query(sql).execute(self).await.unwrap();
    }
}

impl Typed for PgConnection {
    async fn values(&mut self, table: &str, t: FieldType) -> Vec<Value> {
        let (kind, text) = match t {
            Integer => ("integer", "CAST(v AS TEXT)".to_string()),
            Float => ("real", "CAST(v AS TEXT)".to_string()),
            Boolean => ("bool", "CAST(v AS TEXT)".to_string()),
            Datetime => ("text", marain::sql::convert::postgres_utc("v")),
            _ => ("text", "v".to_string()),
        };
        let sql = format!("SELECT {text} FROM \"{table}\" ORDER BY id");
        let rows = sqlx::query(&sql).fetch_all(&mut *self).await.unwrap();
        rows.iter().map(|r| typed(t, kind, r.get(0))).collect()
    }
    async fn execute(&mut self, sql: &str) {
        sqlx::query(sql).execute(self).await.unwrap();
    }
}

async fn every_cell<D: Typed>(db: &mut D, dialect: Dialect) {
    let cells = cells();
    let name = |i: usize| format!("c{i}");
    let files = |new: bool| -> Vec<(String, String)> {
        cells
            .iter()
            .enumerate()
            .map(|(i, (from, to, ..))| {
                (format!("schemas/{}.schema.yaml", name(i)), schema(&name(i), if new { *to } else { *from }))
            })
            .collect()
    };
    let (old, new) = (site(&files(false)), site(&files(true)));
    build_in(db, dialect, &old).await;
    for (i, (_, _, value, _)) in cells.iter().enumerate() {
        let table = format!("content_{}", name(i));
        db.execute(&format!("INSERT INTO \"{table}\" (id, v) VALUES ('a', {}), ('n', NULL)", literal(dialect, value)))
            .await;
    }
    let mut failures = Vec::new();
    for change in plan_in(dialect, &old, &new) {
        let i: usize = change.file.trim_start_matches("schemas/c").trim_end_matches(".schema.yaml").parse().unwrap();
        let (from, to, value, want) = &cells[i];
        let table = format!("content_{}", name(i));
        let cell = format!("{from:?} → {to:?} {value:?}");
        let mut plan = change.plan.clone();
        let mut counts = std::collections::BTreeMap::new();
        for p in plan.probes() {
            let n = db.count(&p.sql).await.unwrap();
            counts.insert(p.sql, n);
        }
        plan.regrade(|p| counts.get(&p.sql).copied());
        let blocked = plan.severity() == Severity::Blocked;
        let Some(want) = want else {
            if !blocked {
                failures.push(format!("{cell}: should be refused, but the probe passed it"));
            }
            continue;
        };
        if blocked {
            failures.push(format!("{cell}: should convert to {want:?}, but the probe blocked it"));
            continue;
        }
        let before = db.values(&table, *from).await;
        if let Err(e) = db.run(&plan.sql(), plan.foreign_keys_off, &plan.dangling).await {
            failures.push(format!("{cell}: the apply failed: {e}"));
            continue;
        }
        let after = db.values(&table, *to).await;
        if after != [want.clone(), Null] {
            failures.push(format!("{cell}: became {after:?}, the table promises [{want:?}, Null]"));
        }
        // A row written after the apply is not in the backup: the rollback
        // converts it back; the rows that were there come back exactly.
        let z = format!("INSERT INTO \"{table}\" (id, v) VALUES ('z', {})", literal(dialect, want));
        db.execute(&z).await;
        db.run(&plan.rollback_sql(), plan.rollback_foreign_keys_off, &plan.rollback_dangling).await.unwrap();
        let back = db.values(&table, *from).await;
        let Some(written) = expected(*to, *from, want) else {
            failures.push(format!("{cell}: {want:?} does not convert back"));
            continue;
        };
        if back[..2] != before[..] || back[2] != written {
            failures.push(format!("{cell}: the rollback gave {back:?}, not {before:?} and {written:?}"));
        }
    }
    assert!(failures.is_empty(), "{dialect:?}: {} cells failed:\n{}", failures.len(), failures.join("\n"));
}

#[tokio::test]
async fn every_cell_converts_as_promised_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = open(&dir.path().join("cells.db")).await;
    every_cell(&mut db, Dialect::Sqlite).await;
}

#[tokio::test]
async fn every_cell_converts_as_promised_on_postgres_in_berlin() {
    let server = PgServer::start_with(&["-c", "timezone=Europe/Berlin"]);
    let mut db = server.database("cells").await;
    // sqlx starts its sessions in UTC; a pooler or psql session would not.
    sqlx::query("SET TimeZone = 'Europe/Berlin'").execute(&mut db).await.unwrap();
    let zone: String = sqlx::query_scalar("SHOW TimeZone").fetch_one(&mut db).await.unwrap();
    assert_eq!(zone, "Europe/Berlin");
    every_cell(&mut db, Dialect::Postgres).await;
}
