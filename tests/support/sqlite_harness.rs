//! Running plans on a real SQLite file and reading back its schema and data, for
//! the case table and the property tests.

use std::collections::BTreeMap;
use std::path::Path;

use marain::plan::Dialect;
use marain::site::Site;
use marain::site_plan::{plan_sites_in, FileChange};
use sqlx::{Connection, Row, SqliteConnection};

/// Rows by table, then by key, then by column, each value as a literal.
pub type Data = BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>>;

pub fn plan(old: &Site, new: &Site) -> Vec<FileChange> {
    plan_in(Dialect::Sqlite, old, new)
}

pub fn plan_in(dialect: Dialect, old: &Site, new: &Site) -> Vec<FileChange> {
    plan_sites_in(dialect, old, new, |_, short| format!("t_{short}"))
}

pub async fn open(path: &Path) -> SqliteConnection {
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&url).unwrap().with_regexp();
    let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
    sqlx::query("PRAGMA foreign_keys = ON").execute(&mut conn).await.unwrap();
    conn
}

/// Runs statements in one transaction the way the store does; returns the error
/// text on failure, with the transaction rolled back.
pub async fn run(conn: &mut SqliteConnection, sql: &[String], foreign_keys_off: bool) -> Result<(), String> {
    run_leaving(conn, sql, foreign_keys_off, &[]).await
}

/// [`run`], skipping `dangling` tables in the foreign-key check.
pub async fn run_leaving(
    conn: &mut SqliteConnection,
    sql: &[String],
    foreign_keys_off: bool,
    dangling: &[String],
) -> Result<(), String> {
    if foreign_keys_off {
        sqlx::query("PRAGMA foreign_keys = OFF").execute(&mut *conn).await.unwrap();
    }
    let result = async {
        let mut tx = conn.begin().await.map_err(|e| e.to_string())?;
        for statement in sql {
            sqlx::query(statement).execute(&mut *tx).await.map_err(|e| format!("{statement}: {e}"))?;
        }
        let broken: Vec<String> = sqlx::query_scalar("SELECT \"table\" FROM pragma_foreign_key_check")
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
        let broken: Vec<&String> = broken.iter().filter(|t| !dangling.contains(t)).collect();
        if !broken.is_empty() {
            return Err(format!("{} foreign key violations in {broken:?}", broken.len()));
        }
        tx.commit().await.map_err(|e| e.to_string())
    }
    .await;
    sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await.unwrap();
    result
}

pub async fn build(conn: &mut SqliteConnection, site: &Site) {
    for change in plan(&Site::default(), site) {
        run(conn, &change.plan.sql(), change.plan.foreign_keys_off).await.unwrap();
    }
}

/// Tables, columns, indexes, foreign keys and CHECKs, order-independent.
pub async fn schema(conn: &mut SqliteConnection) -> BTreeMap<String, Vec<String>> {
    let tables = sqlx::query(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name LIKE 'content\\_%' ESCAPE '\\' ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let mut out = BTreeMap::new();
    for t in tables {
        let name: String = t.get("name");
        let sql: String = t.get("sql");
        let mut facts = Vec::new();
        for c in sqlx::query("SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1)")
            .bind(&name)
            .fetch_all(&mut *conn)
            .await
            .unwrap()
        {
            facts.push(format!(
                "column {} {} notnull={} default={:?} pk={}",
                c.get::<String, _>(0),
                c.get::<String, _>(1),
                c.get::<i64, _>(2),
                c.get::<Option<String>, _>(3),
                c.get::<i64, _>(4)
            ));
        }
        for i in sqlx::query("SELECT name, \"unique\", origin FROM pragma_index_list(?1)")
            .bind(&name)
            .fetch_all(&mut *conn)
            .await
            .unwrap()
        {
            let index: String = i.get(0);
            let cols: Vec<String> = sqlx::query("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")
                .bind(&index)
                .fetch_all(&mut *conn)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            let shown = if index.starts_with("sqlite_autoindex") { String::from("(auto)") } else { index };
            facts.push(format!(
                "index {shown} unique={} origin={} on {}",
                i.get::<i64, _>(1),
                i.get::<String, _>(2),
                cols.join(",")
            ));
        }
        for f in sqlx::query("SELECT \"table\", \"from\", \"to\", on_delete FROM pragma_foreign_key_list(?1)")
            .bind(&name)
            .fetch_all(&mut *conn)
            .await
            .unwrap()
        {
            facts.push(format!(
                "fk {} -> {}({}) on delete {}",
                f.get::<String, _>(1),
                f.get::<String, _>(0),
                f.get::<String, _>(2),
                f.get::<String, _>(3)
            ));
        }
        facts.extend(checks(&sql).into_iter().map(|c| format!("check {c}")));
        facts.sort();
        out.insert(name, facts);
    }
    out
}

/// The `CHECK (...)` clauses of a CREATE TABLE text.
pub fn checks(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = sql;
    while let Some(at) = rest.find("CHECK (") {
        let body = &rest[at + 6..];
        let mut depth = 0;
        let mut end = body.len();
        for (i, ch) in body.char_indices() {
            match ch {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        out.push(body[..end].to_string());
        rest = &body[end..];
    }
    out
}

/// Every content row, each value in SQLite's own literal form (`quote()`), so
/// `11`, `11.0` and `'11'` stay distinct.
pub async fn data(conn: &mut SqliteConnection) -> Data {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'content\\_%' ESCAPE '\\' ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let mut out = BTreeMap::new();
    for table in tables {
        let cols: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
            .bind(&table)
            .fetch_all(&mut *conn)
            .await
            .unwrap();
        let key = if cols.contains(&"id".to_string()) {
            "\"id\"".to_string()
        } else {
            "\"parent_id\" || '#' || \"delta\"".to_string()
        };
        let select: Vec<String> = cols.iter().map(|c| format!("quote(\"{c}\")")).collect();
        let rows = sqlx::query(&format!("SELECT {key}, {} FROM \"{table}\"", select.join(", ")))
            .fetch_all(&mut *conn)
            .await
            .unwrap();
        out.insert(table, rows_by_key(&rows, &cols));
    }
    out
}

/// Rows read as `SELECT key, col…` (every value as text): key → column → value.
pub fn rows_by_key<R: Row>(rows: &[R], cols: &[String]) -> BTreeMap<String, BTreeMap<String, String>>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    rows.iter()
        .map(|r| {
            let values = cols.iter().enumerate().map(|(i, c)| (c.clone(), r.get::<String, _>(i + 1))).collect();
            (r.get::<String, _>(0), values)
        })
        .collect()
}

/// What to seed: `rows` rows per entity table, with values chosen per field
/// unless `values` names the SQL literals of some (`"<entity>.<field>"` or
/// `"<entity>.id"`, one per row, used in turn), so a case can seed data that a
/// type change converts, or ids two entities share.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Seed {
    pub rows: usize,
    #[serde(default)]
    pub values: BTreeMap<String, Vec<String>>,
    /// After the `rows` ordinary rows, [`EDGE_ROWS`] more whose single-valued
    /// fields hold the values conversions trip on ([`edge_value`]).
    #[serde(default)]
    pub edges: bool,
}

/// How many rows of edge values a seed with `edges` adds.
pub const EDGE_ROWS: usize = 8;

impl Seed {
    pub fn rows(rows: usize) -> Self {
        Seed { rows, values: BTreeMap::new(), edges: false }
    }

    /// `rows` ordinary rows, then the edge rows.
    pub fn with_edges(rows: usize) -> Self {
        Seed { rows, values: BTreeMap::new(), edges: true }
    }

    /// How many rows entity `e` gets: a unique field whose values repeat
    /// after a few (a boolean, a reference, allowed values) cannot take the
    /// edge rows, so an entity with one gets none.
    fn rows_of(&self, e: &marain::model::EntitySchema) -> usize {
        use marain::model::FieldType;
        let repeats = |f: &marain::model::Field| {
            matches!(f.field_type, FieldType::Boolean | FieldType::EntityReference) || f.values.is_some()
        };
        let limited = e.fields.iter().any(|f| f.unique && repeats(f));
        self.rows + if self.edges && !limited { EDGE_ROWS } else { 0 }
    }

    /// The case's own literal for `key` in row `n`, if it gives one.
    fn given(&self, key: &str, n: usize) -> Option<String> {
        self.values.get(key).filter(|v| !v.is_empty()).map(|v| v[n % v.len()].clone())
    }
}

/// Value number `n` of field `f` of entity `e`, as a literal: allowed values in
/// turn, references to the target's rows, numbers, dates; every `n` a different
/// value, so a multi-valued field's values differ from each other.
pub fn seed_value(
    e: &marain::model::EntitySchema,
    f: &marain::model::Field,
    n: usize,
    rows: usize,
    dialect: Dialect,
) -> String {
    use marain::model::FieldType;
    match (&f.field_type, &f.values, &f.target_entity) {
        (_, Some(allowed), _) => format!("'{}'", allowed[n % allowed.len()]),
        (FieldType::EntityReference, _, Some(t)) => format!("'{t}-{}'", n % rows.max(1)),
        (FieldType::Integer, ..) => (n * 10 + 1).to_string(),
        (FieldType::Float, ..) => format!("{}.5", n),
        (FieldType::Boolean, ..) if dialect == Dialect::Postgres => (n % 2 == 1).to_string(),
        (FieldType::Boolean, ..) => (n % 2).to_string(),
        (FieldType::Datetime, ..) => format!("'2026-02-{:02}T10:00:00Z'", n % 28 + 1),
        _ => format!("'{}-{}-{n}'", e.id, f.id),
    }
}

/// Edge value number `k` of single-valued field `f`, as a literal; `None`
/// where the ordinary value must stand (allowed values, references, a
/// required field's NULL). NULL (optional fields), empty and blank text,
/// numbers in text, leading zeros, quotes, Unicode, integers at and beyond
/// 2^53 and at the ends of 64 bits, floats at the ends of their range, and
/// datetimes at the ends of the calendar and across a DST change. The values
/// of each list differ from each other and from the ordinary rows', so a
/// unique field holds them.
pub fn edge_value(f: &marain::model::Field, k: usize, dialect: Dialect) -> Option<String> {
    use marain::model::FieldType;
    if k == 0 && !f.required {
        return Some("NULL".to_string());
    }
    if f.values.is_some() || f.field_type == FieldType::EntityReference {
        return None;
    }
    let list: &[&str] = match f.field_type {
        FieldType::Integer => &[
            "42",
            "0",
            "-1",
            "9007199254740993",
            "-9223372036854775808",
            "9223372036854775807",
            "7",
            "-9007199254740992",
        ],
        FieldType::Float => {
            &["-1e300", "0.0", "2.5", "1e-300", "1.7976931348623157e308", "0.1", "-3.25", "123456789.123456789"]
        }
        FieldType::Boolean if f.unique => return None,
        FieldType::Boolean if dialect == Dialect::Postgres => &["true", "false"],
        FieldType::Boolean => &["1", "0"],
        FieldType::Datetime => &[
            "'2024-12-31T23:59:59Z'",
            "'1970-01-01T00:00:00Z'",
            "'9999-12-31T23:59:59Z'",
            "'2000-02-29T12:34:56Z'",
            "'2026-03-29T01:30:00Z'",
            "'1969-12-31T23:59:59Z'",
            "'2038-01-19T03:14:08Z'",
            "'2026-10-25T00:59:59Z'",
        ],
        _ => &["'  '", "''", "' 7'", "'007'", "'1e3'", "'4.0'", "'Grüße — 日本 🎉'", "'it''s'"],
    };
    Some(list[k % list.len()].to_string())
}

/// The INSERTs of the seed: `seed.rows` rows per entity table, every field filled
/// (references point at rows of the target), two different values per
/// multi-valued field. Rows may reference rows inserted later: run them with keys
/// unenforced.
pub fn seed_statements(site: &Site, seed: &Seed, dialect: Dialect) -> Vec<String> {
    let stamp = |day: u8| match dialect {
        Dialect::Sqlite => format!("'2026-01-0{day} 00:00:00'"),
        Dialect::Postgres => format!("'2026-01-0{day} 00:00:00+00'"),
    };
    let rows = seed.rows;
    let mut out = Vec::new();
    for file in site.schema_files() {
        let e = &file.entity;
        for i in 0..seed.rows_of(e) {
            let id = seed.given(&format!("{}.id", e.id), i).unwrap_or_else(|| format!("'{}-{i}'", e.id));
            let mut cols = vec!["\"id\"".to_string(), "\"created_at\"".into(), "\"updated_at\"".into()];
            let mut vals = vec![id.clone(), stamp(1), stamp(2)];
            for f in &e.fields {
                let given = |n: usize| seed.given(&format!("{}.{}", e.id, f.id), n);
                match f.column() {
                    Some(c) => {
                        cols.push(format!("\"{c}\""));
                        let edge = i.checked_sub(rows).and_then(|k| edge_value(f, k, dialect));
                        vals.push(given(i).or(edge).unwrap_or_else(|| seed_value(e, f, i, rows, dialect)));
                    }
                    None => {
                        let child = dialect.table(&marain::sql::child_table(&e.id, &f.id));
                        for delta in 0..2 {
                            let n = i + delta * rows;
                            let value = given(n).unwrap_or_else(|| seed_value(e, f, n, rows, dialect));
                            out.push(format!(
                                "INSERT INTO {child} (parent_id, delta, value) VALUES ({id}, {delta}, {value})"
                            ));
                        }
                    }
                }
            }
            out.push(format!("INSERT INTO \"{}\" ({}) VALUES ({})", e.table(), cols.join(", "), vals.join(", ")));
        }
    }
    out
}

/// Deterministic rows for every entity of `site` ([`seed_statements`]).
pub async fn seed(conn: &mut SqliteConnection, site: &Site, seed: &Seed) {
    sqlx::query("PRAGMA foreign_keys = OFF").execute(&mut *conn).await.unwrap();
    for sql in seed_statements(site, seed, Dialect::Sqlite) {
        sqlx::query(&sql).execute(&mut *conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let broken = sqlx::query("PRAGMA foreign_key_check").fetch_all(&mut *conn).await.unwrap();
    assert!(broken.is_empty(), "seed data breaks foreign keys");
    sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await.unwrap();
}
