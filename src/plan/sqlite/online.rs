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
                string_literal(&message)
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
        Phase {
            summary: format!("create {}, the table's new shape, kept up to date by triggers", shadow_table(entity)),
            reset,
            sql: create,
            batches: vec![],
            batch_writes: vec![],
            proofs: vec![],
        },
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
    let rename_index = |table: &str, f: &Field, from: &str, to: &str| {
        let column = quote(&f.column().unwrap_or_default());
        format!(
            "UPDATE sqlite_master SET name = {}, sql = {} WHERE type = 'index' AND name = {}",
            string_literal(to),
            string_literal(&format!("CREATE INDEX {} ON {} ({column})", quote(to), quote(table))),
            string_literal(from)
        )
    };
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
        Phase {
            summary: format!("drop {retired}"),
            reset: vec![],
            sql: vec![format!("DROP TABLE IF EXISTS {r}")],
            batches: vec![],
            batch_writes: vec![],
            proofs: vec![],
        },
    ];
    Online { table: n.table(), phases, sql, retire }
}

/// Where the cut-over puts the table it replaces, until it is dropped.
fn retired_table(entity: &str) -> String {
    format!("marain_retired_{entity}")
}
