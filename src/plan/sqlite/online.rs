//! The SQLite planner's online rebuild (docs/online-changes.md): instead of
//! copying the table inside the change's transaction, a shadow table of the
//! new shape is made beside the live one, kept up to date by triggers on it,
//! filled in keyset batches (each a short write transaction, so content
//! writes interleave; readers in WAL mode never wait), and swapped in by a
//! cut-over that reads no row.

use crate::diff::Continuations;
use crate::model::{EntitySchema, Field};
use crate::plan::{Online, Phase};
use crate::sql::{convert, index_name, quote, sqlite, string_literal, Dialect};

/// A column whose values a backup keeps: a dropped field's, or the originals
/// of a converted one.
pub(super) struct Kept {
    pub backup: String,
    pub column: String,
    pub sql_type: &'static str,
}

/// The shadow table of `entity` while its online rebuild runs.
fn shadow_table(entity: &str) -> String {
    format!("marain_shadow_{entity}")
}

/// The temporary name of a shadow table's index, given the field's own at
/// the cut-over.
fn shadow_index(entity: &str, field: &Field) -> String {
    format!("{}__marain", index_name(entity, &field.id))
}

/// The online form of rebuilding `o`'s table into `n`'s shape, for a
/// rebuild of single-valued columns only (the planner checks): `kept` are the
/// backups the one-transaction path fills, made here with a key and kept by
/// the triggers; `proofs` count what the data must not hold (values a new
/// type cannot hold, rows breaking a new rule), run once the copy is done.
pub(super) fn online_rebuild(o: &EntitySchema, n: &EntitySchema, kept: &[Kept], proofs: Vec<String>) -> Online {
    let links = Continuations::new(o, n);
    let entity = &n.id;
    let (t, s, id) = (quote(&n.table()), quote(&shadow_table(entity)), quote("id"));
    // The shadow's columns, each with the expression filling it from a row
    // of the live table (`row` is `NEW.` in a trigger, nothing in a batch).
    let mut cols = vec![id.clone()];
    let mut sources: Vec<(String, &Field, &Field)> = Vec::new();
    for nf in n.fields.iter().filter(|f| f.cardinality.is_single()) {
        let Some(of) = links.source(&nf.id) else { continue };
        let (Some(oc), Some(nc)) = (of.column(), nf.column()) else { continue };
        cols.push(quote(&nc));
        sources.push((quote(&oc), of, nf));
    }
    cols.extend(["created_at", "updated_at"].map(quote));
    let exprs = |row: &str| {
        let mut out = vec![format!("{row}{id}")];
        for (oc, of, nf) in &sources {
            out.push(convert::value(Dialect::Sqlite, &format!("{row}{oc}"), of.field_type, nf.field_type));
        }
        out.extend(["created_at", "updated_at"].map(|c| format!("{row}{}", quote(c))));
        out.join(", ")
    };
    let list = cols.join(", ");
    let trigger = |what: &str| quote(&format!("{}_{what}", shadow_table(entity)));

    // What a trigger does for a row written: refuse a value the new type
    // cannot hold (a 409 naming the field, see `engine::rows::refusal`),
    // keep the backups, and write the row's new shape into the shadow (whose
    // constraints refuse what the new schema will).
    let mut written = Vec::new();
    for (oc, of, nf) in &sources {
        let new = format!("NEW.{oc}");
        if let Some(fits) = convert::fits(Dialect::Sqlite, &new, of.field_type, nf.field_type) {
            // Read by `engine::rows::refusal`, which says it in full.
            let message = format!("marain: cannot convert {}", of.column().unwrap_or_default());
            written.push(format!(
                "SELECT RAISE(ABORT, {}) WHERE {new} IS NOT NULL AND NOT ({fits});",
                string_literal(Dialect::Sqlite, &message)
            ));
        }
    }
    for k in kept {
        let (b, c) = (quote(&k.backup), quote(&k.column));
        written.push(format!(
            "INSERT INTO {b} ({id}, {c}) VALUES (NEW.{id}, NEW.{c}) ON CONFLICT ({id}) DO UPDATE SET {c} = excluded.{c};"
        ));
    }
    let updates: Vec<String> = cols[1..].iter().map(|c| format!("{c} = excluded.{c}")).collect();
    written.push(format!(
        "INSERT INTO {s} ({list}) VALUES ({}) ON CONFLICT ({id}) DO UPDATE SET {};",
        exprs("NEW."),
        updates.join(", ")
    ));
    let gone = |key: &str| {
        let mut out = vec![format!("DELETE FROM {s} WHERE {id} = {key};")];
        out.extend(kept.iter().map(|k| format!("DELETE FROM {} WHERE {id} = {key};", quote(&k.backup))));
        out
    };
    let mut moved = gone(&format!("OLD.{id} AND OLD.{id} IS NOT NEW.{id}"));
    moved.extend(written.iter().cloned());

    let mut reset: Vec<String> =
        ["insert", "update", "delete"].iter().map(|w| format!("DROP TRIGGER IF EXISTS {}", trigger(w))).collect();
    reset.push(format!("DROP TABLE IF EXISTS {s}"));
    // A table an earlier change retired and could not drop would stop the
    // cut-over, which renames the live table to its name.
    reset.push(format!("DROP TABLE IF EXISTS {}", quote(&retired_table(entity))));
    reset.extend(kept.iter().map(|k| format!("DROP TABLE IF EXISTS {}", quote(&k.backup))));

    let mut create = vec![sqlite::create_table_as(n, &shadow_table(entity))];
    let indexed: Vec<&Field> = n.fields.iter().filter(|f| f.indexed && f.column().is_some()).collect();
    for f in &indexed {
        let column = quote(&f.column().unwrap_or_default());
        create.push(format!("CREATE INDEX {} ON {s} ({column})", quote(&shadow_index(entity, f))));
    }
    for k in kept {
        create.push(format!(
            "CREATE TABLE {} ({id} TEXT PRIMARY KEY, {} {})",
            quote(&k.backup),
            quote(&k.column),
            k.sql_type
        ));
    }
    let body = |statements: &[String]| statements.join(" ");
    create.push(format!("CREATE TRIGGER {} AFTER INSERT ON {t} BEGIN {} END", trigger("insert"), body(&written)));
    create.push(format!("CREATE TRIGGER {} AFTER UPDATE ON {t} BEGIN {} END", trigger("update"), body(&moved)));
    let deleted = gone(&format!("OLD.{id}"));
    create.push(format!("CREATE TRIGGER {} AFTER DELETE ON {t} BEGIN {} END", trigger("delete"), body(&deleted)));

    let range = format!("{id} > $2 AND {id} <= $3");
    let mut batch_writes: Vec<String> = kept
        .iter()
        .map(|k| {
            let (b, c) = (quote(&k.backup), quote(&k.column));
            format!("INSERT INTO {b} ({id}, {c}) SELECT {id}, {c} FROM {t} WHERE {range} ON CONFLICT ({id}) DO NOTHING")
        })
        .collect();
    // A row the triggers wrote already holds the same: writes are serialised.
    batch_writes.push(format!(
        "INSERT INTO {s} ({list}) SELECT {} FROM {t} WHERE {range} ON CONFLICT ({id}) DO NOTHING",
        exprs("")
    ));
    let phases = vec![
        Phase::statements(
            format!("create {}, the table's new shape, kept up to date by triggers", shadow_table(entity)),
            reset,
            create,
        ),
        Phase {
            summary: format!("copy {} into {} in keyset batches", n.table(), shadow_table(entity)),
            reset: vec![],
            sql: vec![],
            batches: vec![format!(
                "SELECT COUNT(*), COALESCE(MAX({id}), '') FROM (SELECT {id} FROM {t} WHERE {id} > $2 ORDER BY {id} \
                 LIMIT $1)"
            )],
            batch_writes,
            proofs,
        },
    ];
    // The cut-over reads no row. The triggers go; the live table is renamed
    // aside (`legacy_alter_table`, set around the apply by the backend, keeps
    // the other tables' keys naming the entity's table, which the shadow is
    // about to become); its indexes give up their fields' names and the
    // shadow's take them, in the schema table (SQLite cannot rename an index;
    // `writable_schema` lets this transaction write it); then the shadow is
    // renamed, which reloads the schema as the file now has it.
    let retired = retired_table(entity);
    let r = quote(&retired);
    let mut sql: Vec<String> =
        ["insert", "update", "delete"].iter().map(|w| format!("DROP TRIGGER {}", trigger(w))).collect();
    sql.push(format!("ALTER TABLE {t} RENAME TO {r}"));
    let rename_index =
        |table: &str, f: &Field, from: &str, to: &str| rename_index(table, &f.column().unwrap_or_default(), from, to);
    for f in o.fields.iter().filter(|f| f.indexed && f.column().is_some()) {
        let name = index_name(entity, &f.id);
        sql.push(rename_index(&retired, f, &name, &format!("{name}__retired")));
    }
    for f in &indexed {
        sql.push(rename_index(&shadow_table(entity), f, &shadow_index(entity, f), &index_name(entity, &f.id)));
    }
    sql.push(format!("ALTER TABLE {s} RENAME TO {t}"));
    // After the cut-over, beside live traffic: the old table emptied in
    // batches (each a short write transaction), then dropped.
    let retire = vec![
        Phase {
            summary: format!("empty {retired}, the table as it was, in keyset batches"),
            reset: vec![],
            sql: vec![],
            batches: vec![format!(
                "SELECT COUNT(*), COALESCE(MAX({id}), '') FROM (SELECT {id} FROM {r} WHERE {id} > $2 ORDER BY {id} \
                 LIMIT $1)"
            )],
            batch_writes: vec![format!("DELETE FROM {r} WHERE {range}")],
            proofs: vec![],
        },
        Phase::statements(format!("drop {retired}"), vec![], vec![format!("DROP TABLE IF EXISTS {r}")]),
    ];
    Online { table: n.table(), phases, sql, retire }
}

/// Where the cut-over puts the table it replaces, until it is dropped.
fn retired_table(entity: &str) -> String {
    format!("marain_retired_{entity}")
}

/// The online form of bringing back `field` of `entity`, a single-valued
/// field a later version dropped, with its values refilled from backup `bk`
/// (a rollback, docs/online-changes.md): a shadow column is added in place
/// and filled from the backup in keyset batches (each a short write
/// transaction; a row written meanwhile under the old schema never held the
/// field, so nothing keeps it in step), its index built, then the cut-over
/// gives both the field's names. `None` for a column with a unique key, a
/// CHECK or a reference, which keep the one-transaction path.
pub(crate) fn online_refill(entity: &str, field: &Field, bk: &str) -> Option<Online> {
    let column = field.column()?;
    let def = sqlite::column_def(field);
    if field.unique || def.contains(" CHECK ") || def.contains(" REFERENCES ") {
        return None;
    }
    let table = crate::model::table_name(entity);
    let shadow_name = format!("{column}__marain");
    let (t, c, shadow, id, b) = (quote(&table), quote(&column), quote(&shadow_name), quote("id"), quote(bk));
    // The field's own definition (its type, `NOT NULL` with its default) under
    // the shadow's name: rows the backup does not hold take the default.
    let shadow_def = def.replacen(&c, &shadow, 1);
    // SQLite cannot drop a column only if it is there: what a phase cut short
    // leaves is cleared by the backend's query of unfinished phases, which
    // finds the `__marain` column (and its index) by name.
    // The batches walk the backup by its rowid (a backup made in one
    // transaction has no key; building one would hold the write lock for a
    // sort of the whole table), each writing its rows' values into the live
    // table by key.
    let after = "CAST($2 AS INTEGER)";
    let mut phases = vec![
        Phase::statements(
            format!("add {table}.{shadow_name}, to be refilled from {bk}"),
            vec![],
            vec![format!("ALTER TABLE {t} ADD COLUMN {shadow_def}")],
        ),
        Phase {
            summary: format!("refill {table}.{shadow_name} from {bk} in batches"),
            reset: vec![],
            sql: vec![],
            batches: vec![format!(
                "SELECT COUNT(*), COALESCE(CAST(MAX(rowid) AS TEXT), '') FROM (SELECT rowid FROM {b} \
                 WHERE rowid > {after} ORDER BY rowid LIMIT $1)"
            )],
            batch_writes: vec![format!(
                "UPDATE {t} SET {shadow} = {b}.{c} FROM {b} WHERE {b}.rowid > {after} \
                 AND {b}.rowid <= CAST($3 AS INTEGER) AND {b}.{id} = {t}.{id}"
            )],
            proofs: vec![],
        },
    ];
    let index = index_name(entity, &field.id);
    let temp_index = format!("{index}__marain");
    let mut sql = vec![format!("ALTER TABLE {t} RENAME COLUMN {shadow} TO {c}")];
    if field.indexed {
        // One write transaction: SQLite builds an index in one pass.
        phases.push(Phase::statements(
            format!("build the index of {table}.{shadow_name}"),
            vec![format!("DROP INDEX IF EXISTS {}", quote(&temp_index))],
            vec![format!("CREATE INDEX {} ON {t} ({shadow})", quote(&temp_index))],
        ));
        sql.push(rename_index(&table, &column, &temp_index, &index));
    }
    Some(Online { table, phases, sql, retire: vec![] })
}

/// Gives index `from` (on `table`'s `column`) the name `to` in the schema
/// table: SQLite cannot rename an index, and the online cut-overs run with
/// `writable_schema` on (`engine::backend::sqlite`).
fn rename_index(table: &str, column: &str, from: &str, to: &str) -> String {
    format!(
        "UPDATE sqlite_master SET name = {}, sql = {} WHERE type = 'index' AND name = {}",
        string_literal(Dialect::Sqlite, to),
        string_literal(Dialect::Sqlite, &format!("CREATE INDEX {} ON {} ({})", quote(to), quote(table), quote(column))),
        string_literal(Dialect::Sqlite, from)
    )
}
