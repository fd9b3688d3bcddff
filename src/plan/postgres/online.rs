//! The PostgreSQL planner's online forms that need more than an index or a
//! validated constraint (docs/online-changes.md): a dropped column's backup
//! and a type change's shadow column, each kept up to date by a trigger and
//! filled in keyset batches before a cut-over that reads no row.

use super::rename_index;
use crate::plan::{Online, Originals, Phase};
use crate::sql::postgres::{literal, q, ColumnSpec};
use crate::sql::{convert, quote, Dialect};

/// The online form of dropping column `spec` with its values backed up in
/// `bk` (docs/online-changes.md): the backup table is made with a key, a
/// trigger keeps every value written from then on, and the rows already there
/// are copied in keyset batches; the cut-over drops the trigger and the column
/// (`drop`), which reads no row. The backup holds each row's last value at the
/// cut-over, as the one-transaction path's copy does, plus a `copied` column
/// the inverse does not read.
pub(super) fn online_drop(spec: &ColumnSpec, bk: &str, drop: Vec<String>) -> Online {
    let (t, c, id) = (q(&spec.table), quote(&spec.column), quote("id"));
    let keep = q(&format!("{bk}_keep"));
    let b = q(bk);
    let phases = vec![
        Phase::statements(
            format!("keep the values of {}.{} written from now on", spec.table, spec.column),
            vec![format!("DROP FUNCTION IF EXISTS {keep}() CASCADE"), format!("DROP TABLE IF EXISTS {b}")],
            vec![
                format!(
                    "CREATE TABLE {b} ({id} TEXT PRIMARY KEY, {c} {}, {copied} BOOLEAN NOT NULL DEFAULT false)",
                    spec.sql_type(),
                    copied = quote("copied")
                ),
                format!(
                    "CREATE FUNCTION {keep}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                     INSERT INTO {b} ({id}, {c}) VALUES (NEW.{id}, NEW.{c}) \
                     ON CONFLICT ({id}) DO UPDATE SET {c} = EXCLUDED.{c}; RETURN NEW; END $$"
                ),
                format!("CREATE TRIGGER {keep} AFTER INSERT OR UPDATE ON {t} FOR EACH ROW EXECUTE FUNCTION {keep}()"),
            ],
        ),
        Phase {
            summary: format!("back up {}.{} in keyset batches", spec.table, spec.column),
            reset: vec![],
            sql: vec![],
            batches: vec![copy_batch(&t, &c, &b)],
            batch_writes: vec![],
            proofs: vec![],
        },
    ];
    let mut sql = vec![format!("DROP FUNCTION {keep}() CASCADE")];
    sql.extend(drop);
    Online { table: spec.table.clone(), phases, sql, retire: vec![] }
}

/// A batch copying the next `$1` rows of `t` after key `$2` (by `id`) into
/// backup `b`, marked copied; a row the trigger put there already keeps the
/// trigger's value, which is as new or newer. Answers the rows taken and the
/// last key.
fn copy_batch(t: &str, c: &str, b: &str) -> String {
    let (id, copied) = (quote("id"), quote("copied"));
    copy_rows(t, "", b, &format!("{id}, {c}, {copied}"), &format!("r.{id}, r.{c}, true"))
}

/// A batch of `marain_copy_rows` (PostgreSQL migration 0015): the next `$1`
/// rows of `source` after key `$2` inserted into `target`'s `columns` as
/// `selected` (over `source r` and what `joined` adds to the FROM clause,
/// where `$1` and `$2` are the batch's key range) says, but those a trigger
/// wrote there already. Answers the rows taken and the last key.
pub(super) fn copy_rows(source: &str, joined: &str, target: &str, columns: &str, selected: &str) -> String {
    let args = [source, joined, target, columns, selected].map(|a| crate::sql::string_literal(Dialect::Postgres, a));
    format!("SELECT marain_taken, marain_last FROM marain_copy_rows($1, $2, {})", args.join(", "))
}

/// Whether taking column `a` to `b` is a type change the online forms (a
/// shadow column here, a shadow table in `swap.rs`) can run: the same plain
/// column (no unique key, allowed values, reference or default), its index
/// and `required` unchanged.
pub(super) fn retypes_online(a: &ColumnSpec, b: &ColumnSpec) -> bool {
    let plain = |s: &ColumnSpec| !s.unique && s.values.is_none() && s.target.is_none() && s.default.is_none();
    a.column == b.column && plain(a) && plain(b) && a.indexed == b.indexed && a.not_null == b.not_null
}

/// The online form of converting column `a` to `b`'s type
/// (docs/online-changes.md): a shadow column of the new type that a trigger
/// fills on every write, the originals kept in `kept`'s backup as a dropped
/// field's are, the shadow filled in keyset batches, then a cut-over that drops
/// the old column and gives the shadow its name. For a plain column (an index
/// and `required` are carried over); one with a unique key, allowed values, a
/// reference or a default keeps the one-transaction path.
pub(super) fn online_retype(a: &ColumnSpec, b: &ColumnSpec, kept: &Originals) -> Option<Online> {
    if !retypes_online(a, b) {
        return None;
    }
    let (t, c, id) = (q(&a.table), quote(&a.column), quote("id"));
    let shadow_name = format!("{}__marain", a.column);
    let shadow = quote(&shadow_name);
    let bk = q(&kept.backup);
    let sync = q(&format!("{}_sync", kept.backup));
    let copied = quote("copied");
    let new_value = |x: &str| convert::value(Dialect::Postgres, x, a.field_type, b.field_type);
    let mut phases = vec![
        Phase::statements(
            format!("add {}.{shadow_name} of the new type, kept up to date by a trigger", a.table),
            vec![
                format!("DROP FUNCTION IF EXISTS {sync}() CASCADE"),
                format!("DROP TABLE IF EXISTS {bk}"),
                format!("ALTER TABLE {t} DROP COLUMN IF EXISTS {shadow}"),
            ],
            vec![
                format!("ALTER TABLE {t} ADD COLUMN {shadow} {}", b.sql_type()),
                format!(
                    "CREATE TABLE {bk} ({id} TEXT PRIMARY KEY, {c} {}, {copied} BOOLEAN NOT NULL DEFAULT false)",
                    a.sql_type()
                ),
                format!(
                    "CREATE FUNCTION {sync}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                     NEW.{shadow} := {}; \
                     IF TG_OP = 'INSERT' OR NEW.{c} IS DISTINCT FROM OLD.{c} THEN \
                     INSERT INTO {bk} ({id}, {c}) VALUES (NEW.{id}, NEW.{c}) \
                     ON CONFLICT ({id}) DO UPDATE SET {c} = EXCLUDED.{c}; END IF; RETURN NEW; END $$",
                    new_value(&format!("NEW.{c}"))
                ),
                format!("CREATE TRIGGER {sync} BEFORE INSERT OR UPDATE ON {t} FOR EACH ROW EXECUTE FUNCTION {sync}()"),
            ],
        ),
        Phase {
            summary: format!(
                "back up the originals of {}.{} and convert them into {shadow_name}, in keyset batches",
                a.table, a.column
            ),
            reset: vec![],
            sql: vec![],
            // One walk of the table: each row's original backed up (a value the
            // trigger backed up already is as new or newer, and stays), and the
            // row written again, which has the trigger convert it. The rows
            // are written by key range (an index range scan; the same
            // snapshot as `s` sees the same rows), never joined to `s`, which
            // a plan could do by reading the whole table.
            batches: vec![format!(
                "WITH s AS (SELECT {id}, {c} FROM {t} WHERE {id} > $2 ORDER BY {id} LIMIT $1), \
                 i AS (INSERT INTO {bk} ({id}, {c}, {copied}) SELECT {id}, {c}, true FROM s \
                 ON CONFLICT ({id}) DO UPDATE SET {copied} = true RETURNING 1), \
                 u AS (UPDATE {t} SET {shadow} = {} WHERE {id} > $2 AND {id} <= (SELECT max({id}) FROM s) \
                 RETURNING 1) \
                 SELECT COUNT(*), COALESCE(max(s.{id}), '') FROM s",
                new_value(&format!("{t}.{c}"))
            )],
            batch_writes: vec![],
            proofs: vec![],
        },
    ];
    phases.push(vacuum(&a.table));
    let temp_index = format!("{}__marain", b.index_name());
    let not_null = format!("{}_{shadow_name}_not_null", a.table);
    if b.not_null {
        phases.push(Phase::statements(
            format!("prove {}.{shadow_name} holds no NULL", a.table),
            vec![b.drop_constraint_if_exists(&not_null)],
            vec![
                format!("ALTER TABLE {t} ADD CONSTRAINT {} CHECK ({shadow} IS NOT NULL) NOT VALID", q(&not_null)),
                format!("ALTER TABLE {t} VALIDATE CONSTRAINT {}", q(&not_null)),
            ],
        ));
    }
    if b.indexed {
        phases.push(shadow_index(&a.table, &shadow_name, &temp_index));
    }
    let mut sql = vec![
        format!("DROP FUNCTION {sync}() CASCADE"),
        format!("ALTER TABLE {t} DROP COLUMN {c}"),
        format!("ALTER TABLE {t} RENAME COLUMN {shadow} TO {c}"),
    ];
    if b.not_null {
        sql.push(format!("ALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL"));
        sql.push(format!("ALTER TABLE {t} DROP CONSTRAINT {}", q(&not_null)));
    }
    if b.indexed {
        sql.push(rename_index(&temp_index, &b.index_name()));
    }
    Some(Online { table: a.table.clone(), phases, sql, retire: vec![] })
}

/// The statement giving backup `bk` an index on `id` if it has none: one the
/// one-transaction path made has none (an online drop's has its primary
/// key). Nothing but a refill reads a backup, so the plain build holds up
/// nobody.
pub(super) fn key_backup(bk: &str) -> String {
    let b = q(bk);
    format!(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a \
         ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
         WHERE i.indrelid = '{b}'::regclass AND a.attname = 'id') \
         THEN CREATE INDEX {} ON {b} ({}); END IF; END $$",
        q(&format!("{bk}__id")),
        quote("id")
    )
}

/// The online form of bringing back column `spec`, a field a later version
/// dropped, with its values refilled from backup `bk` (a rollback,
/// docs/online-changes.md): a shadow column is added and filled from the
/// backup in keyset batches (a row written meanwhile under the old schema
/// never held the field, so nothing keeps it in step), then the cut-over
/// gives it the field's name and what the field asks of it. `None` for a
/// column with a unique key, allowed values or a reference, which keep the
/// one-transaction path.
pub(crate) fn online_refill(spec: &ColumnSpec, bk: &str) -> Option<Online> {
    if spec.unique || spec.values.is_some() || spec.target.is_some() || !spec.add_check().is_empty() {
        return None;
    }
    let (t, c, id) = (q(&spec.table), quote(&spec.column), quote("id"));
    let shadow_name = format!("{}__marain", spec.column);
    let shadow = quote(&shadow_name);
    let b = q(bk);
    let default = spec.default.as_ref().map(|d| format!(" DEFAULT {}", literal(d))).unwrap_or_default();
    let mut phases = vec![
        Phase::statements(
            format!("add {}.{shadow_name}, to be refilled from {bk}", spec.table),
            vec![format!("ALTER TABLE {t} DROP COLUMN IF EXISTS {shadow}")],
            vec![
                // With the field's default, as adding it would: the rows the
                // backup does not hold (written since the drop) take it.
                format!("ALTER TABLE {t} ADD COLUMN {shadow} {}{default}", spec.sql_type()),
                // The batches walk the backup by key.
                key_backup(bk),
            ],
        ),
        Phase {
            summary: format!("refill {}.{shadow_name} from {bk} in batches", spec.table),
            reset: vec![],
            sql: vec![],
            // The backup walked by its key, each of its rows written into the
            // live row of that key (an index lookup per row: planned for the
            // batch's own size, `plan_cache_mode` on the lease's session). A
            // join by key range instead read the whole backup per batch.
            batches: vec![format!(
                "WITH s AS MATERIALIZED (SELECT {id}, {c} FROM {b} WHERE {id} > $2 ORDER BY {id} LIMIT $1), \
                 u AS (UPDATE {t} SET {shadow} = s.{c} FROM s WHERE {t}.{id} = s.{id} RETURNING 1) \
                 SELECT COUNT(*), COALESCE(max({id}), '') FROM s"
            )],
            batch_writes: vec![],
            proofs: vec![],
        },
    ];
    phases.push(vacuum(&spec.table));
    let temp_index = format!("{}__marain", spec.index_name());
    if spec.indexed {
        phases.push(shadow_index(&spec.table, &shadow_name, &temp_index));
    }
    let mut sql = vec![format!("ALTER TABLE {t} RENAME COLUMN {shadow} TO {c}")];
    if spec.not_null {
        // Scans the table under the cut-over's lock: a row written under the
        // old schema meanwhile holds no value, and fails it as it fails the
        // one-transaction path.
        sql.push(format!("ALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL"));
    }
    if spec.indexed {
        sql.push(rename_index(&temp_index, &spec.index_name()));
    }
    Some(Online { table: spec.table.clone(), phases, sql, retire: vec![] })
}

/// The phase building the index of `table`'s shadow column `shadow` under
/// the temporary name `temp_index` (the cut-over gives it the field's).
fn shadow_index(table: &str, shadow: &str, temp_index: &str) -> Phase {
    Phase::statements(
        format!("build the index of {table}.{shadow} concurrently"),
        vec![ColumnSpec::drop_index_concurrently(temp_index)],
        vec![format!("CREATE INDEX CONCURRENTLY {} ON {} ({})", q(temp_index), q(table), quote(shadow))],
    )
}

/// The phase after batches that wrote every row of `table` again: `VACUUM`
/// clears the old row versions they left. It runs beside reads and writes
/// (its lock conflicts with neither), and it spares the cut-over an
/// autovacuum that would take the table for those rows just then: the
/// cut-over's `ALTER TABLE` would wait for it, and every request of the
/// entity behind the cut-over, until PostgreSQL cancelled it (a second).
fn vacuum(table: &str) -> Phase {
    Phase::statements(
        format!("vacuum {table}: clear the old row versions the batches left"),
        vec![],
        vec![format!("VACUUM {}", q(table))],
    )
}
