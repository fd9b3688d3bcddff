//! The PostgreSQL planner's shadow-table form of a type change and of a
//! rollback's refill (docs/online-changes.md, "Online plans on PostgreSQL"
//! and "Rolling back an online change"): the rows are copied, converted or
//! with the refilled column, into a new table that has no index but its key,
//! the indexes are built on it once it is full, and the cut-over swaps the
//! two tables by name. Writing a new table without its indexes is what makes
//! it faster than filling a shadow column in place, which writes every row
//! again with every index of the table (and leaves a dead version of each).
//!
//! After a type change the table the swap replaces becomes the backup of the
//! converted column: at the cut-over it holds every original value, the
//! writes made during the copy included, which is what a backup must hold
//! then. After a refill it is of no use, and is dropped.

use super::online::{copy_rows, key_backup, retypes_online};
use super::rename_index;
use crate::model::EntitySchema;
use crate::plan::{Online, Originals, Phase};
use crate::sql::postgres::{ident, literal, pkey_name, q, table_columns, ColumnSpec};
use crate::sql::{convert, quote, Dialect};

/// The shadow table of `entity`'s type change.
fn shadow_table(entity: &str) -> String {
    ident(&format!("marain_shadow_{entity}"))
}

/// The table of the keys of rows deleted while the shadow is filled.
fn gone_table(entity: &str) -> String {
    ident(&format!("marain_gone_{entity}"))
}

/// What the shadow table changes of the table's shape.
pub(crate) enum Reshape<'a> {
    /// Column `a` converted to `b`'s type; the table the shadow replaces
    /// becomes the backup of the originals, `kept`.
    Retype { a: &'a ColumnSpec, b: &'a ColumnSpec, kept: &'a Originals },
    /// Column `spec` added back, its values refilled from backup `backup` (a
    /// rollback of the change that dropped it); the table the shadow
    /// replaces is retired and dropped after the cut-over.
    Refill { spec: &'a ColumnSpec, backup: &'a str },
}

impl Reshape<'_> {
    /// The column the shadow holds differently.
    fn column(&self) -> &ColumnSpec {
        match self {
            Reshape::Retype { b, .. } => b,
            Reshape::Refill { spec, .. } => spec,
        }
    }

    /// Whether the swap can run it: not a retype of a column that is not a
    /// plain one (a unique key, allowed values, a reference or a default keep
    /// the one-transaction path) or that changes more than its type, nor a
    /// refill of a column with a unique key, allowed values or a reference.
    fn eligible(&self) -> bool {
        match self {
            Reshape::Retype { a, b, .. } => retypes_online(a, b),
            Reshape::Refill { spec, .. } => !spec.unique && spec.values.is_none() && spec.target.is_none(),
        }
    }
}

/// The shadow-table form of `reshape` on `e` (as the change leaves it);
/// `None` where [`Reshape::eligible`] says no. The caller uses it only when
/// this change is the only one to the entity in its plan: the swap replaces
/// the whole table, and another step's cut-over statements would name the
/// table the swap retires.
pub(crate) fn online_swap(e: &EntitySchema, reshape: Reshape<'_>) -> Option<Online> {
    let c = reshape.column();
    let columns = table_columns(e);
    if !reshape.eligible() || !columns.contains(&c.column) {
        return None;
    }
    let table = &c.table;
    let (t, s, gone, id) = (q(table), q(&shadow_table(&e.id)), q(&gone_table(&e.id)), quote("id"));
    let shadow_name = shadow_table(&e.id);
    // The old table's name after the swap, the trigger's function, and the
    // column's value in a row of the old table (`row`).
    let (old_name, sync) = match &reshape {
        Reshape::Retype { kept, .. } => (kept.backup.clone(), q(&format!("{}_sync", kept.backup))),
        Reshape::Refill { backup, .. } => (ident(&format!("marain_retired_{}", e.id)), q(&format!("{backup}_refill"))),
    };
    // The column's value in `row`, a row of the old table: `Row::Written`
    // in the trigger, `Row::Batch` in a batch, which reads a refill's backup
    // joined over its key range (`joined`, below: one pass of each index, in
    // key order) where the trigger looks the row up by its key.
    let value = |row: Row| match &reshape {
        Reshape::Retype { a, b, .. } => convert::value(
            Dialect::Postgres,
            &format!("{}.{}", row.alias(), quote(&a.column)),
            a.field_type,
            b.field_type,
        ),
        // The backup's value where it holds the row (an empty one
        // included); a row written since the drop takes the default.
        Reshape::Refill { spec, backup } => {
            let (b, col) = (q(backup), quote(&spec.column));
            let default = spec.default.as_ref().map(literal).unwrap_or_else(|| "NULL".into());
            match row {
                Row::Batch => format!("CASE WHEN {BACKUP}.{id} IS NULL THEN {default} ELSE {BACKUP}.{col} END"),
                Row::Written => format!(
                    "CASE WHEN EXISTS (SELECT 1 FROM {b} WHERE {b}.{id} = NEW.{id}) \
                     THEN (SELECT {b}.{col} FROM {b} WHERE {b}.{id} = NEW.{id}) ELSE {default} END"
                ),
            }
        }
    };
    let joined = match &reshape {
        Reshape::Retype { .. } => String::new(),
        Reshape::Refill { backup, .. } => format!(
            "LEFT JOIN {} {BACKUP} ON {BACKUP}.{id} = r.{id} AND {BACKUP}.{id} > $1 AND {BACKUP}.{id} <= $2",
            q(backup)
        ),
    };
    let converted = |row: Row| {
        let each = columns.iter().map(|x| match *x == c.column {
            true => value(row),
            false => format!("{}.{}", row.alias(), quote(x)),
        });
        each.collect::<Vec<_>>().join(", ")
    };
    let listed = columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    let updated = columns.iter().filter(|c| *c != "id").map(|c| format!("{c} = EXCLUDED.{c}", c = quote(c)));
    let updated = updated.collect::<Vec<_>>().join(", ");
    let specs: Vec<ColumnSpec> = e.fields.iter().filter_map(|f| ColumnSpec::of_field(&e.id, f)).collect();
    let mut phases = vec![
        Phase::statements(
            match &reshape {
                Reshape::Retype { .. } => {
                    format!("create {shadow_name}, {table} with {} of the new type, kept in step by a trigger", c.column)
                }
                Reshape::Refill { backup, .. } => {
                    format!("create {shadow_name}, {table} with {} refilled from {backup}, kept in step by a trigger", c.column)
                }
            },
            vec![
                format!("DROP FUNCTION IF EXISTS {sync}() CASCADE"),
                // With the copies of the keys pointing at it (`shadow_keys`).
                format!("DROP TABLE IF EXISTS {s} CASCADE"),
                format!("DROP TABLE IF EXISTS {gone}"),
            ],
            vec![
                // The columns in the table's own order, with their defaults,
                // NOT NULLs and CHECKs; no index but the key yet.
                format!("CREATE TABLE {s} (LIKE {t} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"),
                match &reshape {
                    Reshape::Retype { .. } => {
                        format!("ALTER TABLE {s} ALTER COLUMN {} TYPE {} USING NULL", quote(&c.column), c.sql_type())
                    }
                    Reshape::Refill { .. } => format!("ALTER TABLE {s} ADD COLUMN {}", c.definition()),
                },
                format!("ALTER TABLE {s} ADD CONSTRAINT {} PRIMARY KEY ({id})", q(&pkey_name(&shadow_name))),
                format!("CREATE TABLE {gone} ({id} TEXT PRIMARY KEY)"),
                // Every write from now on reaches the shadow, converted (a
                // value the new type cannot hold fails the write, which the
                // content API answers 409, engine/rows.rs); a deleted row's
                // key is kept, for a batch may have read the row just before.
                format!(
                    "CREATE FUNCTION {sync}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                     IF TG_OP <> 'INSERT' AND (TG_OP = 'DELETE' OR NEW.{id} IS DISTINCT FROM OLD.{id}) THEN \
                     DELETE FROM {s} WHERE {id} = OLD.{id}; \
                     INSERT INTO {gone} ({id}) VALUES (OLD.{id}) ON CONFLICT DO NOTHING; END IF; \
                     IF TG_OP = 'DELETE' THEN RETURN NULL; END IF; \
                     INSERT INTO {s} ({listed}) VALUES ({}) ON CONFLICT ({id}) DO UPDATE SET {updated}; \
                     IF TG_OP = 'INSERT' OR NEW.{id} IS DISTINCT FROM OLD.{id} THEN \
                     DELETE FROM {gone} WHERE {id} = NEW.{id}; END IF; RETURN NULL; END $$",
                    converted(Row::Written)
                ),
                format!(
                    "CREATE TRIGGER {sync} AFTER INSERT OR UPDATE OR DELETE ON {t} FOR EACH ROW EXECUTE FUNCTION {sync}()"
                ),
            ],
        ),
        Phase {
            summary: match &reshape {
                Reshape::Retype { .. } => {
                    format!("copy {table} into {shadow_name} in keyset batches, converting {}", c.column)
                }
                Reshape::Refill { backup, .. } => {
                    format!("copy {table} into {shadow_name} in keyset batches, {} from {backup}", c.column)
                }
            },
            reset: vec![],
            sql: vec![],
            // A row the trigger wrote already is as new or newer, and stays.
            batches: vec![copy_rows(&t, &joined, &s, &listed, &converted(Row::Batch))],
            batch_writes: vec![],
            proofs: vec![],
        },
        // A batch that read a row just before its delete committed copied
        // it after the trigger had deleted it. No batch runs from here on;
        // cleared before the unique indexes are built on the shadow (and
        // again in the cut-over, for a delete that commits later).
        Phase::statements(
            format!("clear from {shadow_name} the rows deleted while it was filled"),
            vec![],
            vec![format!("DELETE FROM {s} WHERE {id} IN (SELECT {id} FROM {gone})")],
        ),
    ];
    if let Reshape::Refill { backup, .. } = &reshape {
        // A refill looks each row up in the backup by key, the trigger's
        // first write included.
        phases[0].sql.insert(0, key_backup(backup));
    }
    let temp = |name: &str| format!("{name}__marain");
    for spec in &specs {
        let (name, unique) = match (spec.unique, spec.indexed) {
            (true, _) => (spec.key_name(), "UNIQUE "),
            (false, true) => (spec.index_name(), ""),
            (false, false) => continue,
        };
        phases.push(Phase::statements(
            format!("build the {}index of {shadow_name}.{} concurrently", unique.to_lowercase(), spec.column),
            vec![ColumnSpec::drop_index_concurrently(&temp(&name))],
            vec![format!("CREATE {unique}INDEX CONCURRENTLY {} ON {s} ({})", q(&temp(&name)), quote(&spec.column))],
        ));
        // A field both unique and indexed has a second, plain index.
        if spec.unique && spec.indexed {
            let name = spec.index_name();
            phases.push(Phase::statements(
                format!("build the index of {shadow_name}.{} concurrently", spec.column),
                vec![ColumnSpec::drop_index_concurrently(&temp(&name))],
                vec![format!("CREATE INDEX CONCURRENTLY {} ON {s} ({})", q(&temp(&name)), quote(&spec.column))],
            ));
        }
    }
    phases.push(shadow_keys(&t, &s, &shadow_name));
    // The statistics the planner reads once the shadow is the table, and
    // the visibility map of its rows: a table that was only inserted into
    // brings autovacuum to it for those rows, which just as the cut-over
    // needs the table makes it wait until PostgreSQL cancels the autovacuum
    // (a second; seen at ten million rows, with every request of the entity
    // queued behind the cut-over). Reads and writes go on meanwhile.
    phases.push(Phase::statements(
        format!("vacuum and analyze {shadow_name}"),
        vec![],
        vec![format!("VACUUM (ANALYZE) {s}")],
    ));
    let old = q(&old_name);
    let mut sql = vec![
        format!("DROP FUNCTION {sync}() CASCADE"),
        // Under the table's lock no delete is in flight: a transaction that
        // deleted a row a batch then copied, and committed only after the
        // phase above, has its key in `gone` now.
        format!("DELETE FROM {s} WHERE {id} IN (SELECT {id} FROM {gone})"),
        format!("DROP TABLE {gone}"),
        // The table's own keys go with it (the shadow has its copies); each
        // key pointing at it gives way to its copy pointing at the shadow.
        format!(
            "DO $$ DECLARE k record; BEGIN FOR k IN SELECT conname::text AS name FROM pg_constraint \
             WHERE contype = 'f' AND conrelid = '{t}'::regclass LOOP \
             EXECUTE format('ALTER TABLE {t} DROP CONSTRAINT %I', k.name); END LOOP; \
             FOR k IN SELECT c.conrelid::regclass::text AS rel, c.conname::text AS copy, o.conname::text AS name \
             FROM pg_constraint c JOIN pg_constraint o ON o.oid = substr(c.conname, {at})::oid \
             WHERE c.contype = 'f' AND c.confrelid = '{s}'::regclass AND c.conname LIKE '{COPY}%' LOOP \
             EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', k.rel, k.name); \
             EXECUTE format('ALTER TABLE %s RENAME CONSTRAINT %I TO %I', k.rel, k.copy, k.name); END LOOP; END $$",
            at = COPY.len() + 1
        ),
        format!("ALTER TABLE {t} RENAME TO {old}"),
        format!("ALTER TABLE {old} RENAME CONSTRAINT {} TO {}", q(&pkey_name(table)), q(&pkey_name(&old_name))),
    ];
    // The old table's keys and indexes, but a refilled column's, which it
    // does not have.
    let refilled = |spec: &ColumnSpec| matches!(reshape, Reshape::Refill { .. }) && spec.column == c.column;
    for spec in specs.iter().filter(|spec| !refilled(spec)) {
        if spec.unique {
            sql.push(format!("ALTER TABLE {old} DROP CONSTRAINT {}", q(&spec.key_name())));
        }
        if spec.indexed {
            sql.push(format!("DROP INDEX {}", q(&spec.index_name())));
        }
    }
    sql.push(format!("ALTER TABLE {s} RENAME TO {t}"));
    sql.push(format!("ALTER TABLE {t} RENAME CONSTRAINT {} TO {}", q(&pkey_name(&shadow_name)), q(&pkey_name(table))));
    for spec in &specs {
        if spec.unique {
            sql.push(format!(
                "ALTER TABLE {t} ADD CONSTRAINT {} UNIQUE USING INDEX {}",
                q(&spec.key_name()),
                q(&temp(&spec.key_name()))
            ));
        }
        if spec.indexed {
            sql.push(rename_index(&temp(&spec.index_name()), &spec.index_name()));
        }
    }
    // A retype keeps the old table as the backup of the originals; a
    // refill's is of no use once the cut-over committed.
    let retire = match &reshape {
        Reshape::Retype { .. } => vec![],
        Reshape::Refill { .. } => vec![Phase::statements(
            format!("drop {old_name}, the table {shadow_name} replaced"),
            vec![],
            vec![format!("DROP TABLE IF EXISTS {old}")],
        )],
    };
    Some(Online { table: table.clone(), phases, sql, retire })
}

/// Where the shadow's values come from: the row a trigger is told of, or a
/// row a batch reads.
#[derive(Clone, Copy)]
enum Row {
    Written,
    Batch,
}

impl Row {
    /// How the row is named in the SQL (`marain_copy_rows` calls a batch's
    /// source `r`).
    fn alias(self) -> &'static str {
        match self {
            Row::Written => "NEW",
            Row::Batch => "r",
        }
    }
}

/// The alias of a refill's backup in a batch's FROM clause.
const BACKUP: &str = "marain_b";

/// How a copy of a key pointing at the table is named while it points at the
/// shadow: after the original's oid, which the cut-over finds it by.
const COPY: &str = "marain_fk_";

/// The phase giving the shadow table (`s`, of `t`) a validated copy of every
/// foreign key from and to `t`: its own keys (a reference to itself then
/// points at the shadow), and beside each key of another table pointing at
/// `t` (a child table's, another entity's reference) one pointing at the
/// shadow. Each is added `NOT VALID` (no row read under its lock) and then
/// validated, which lets reads and writes go on. The cut-over then only drops
/// the originals and renames the copies: nothing is left to validate once the
/// new table is live.
fn shadow_keys(t: &str, s: &str, shadow_name: &str) -> Phase {
    let pointing = format!(
        "SELECT c.oid, c.conrelid, c.conname::text AS name, \
         replace(regexp_replace(pg_get_constraintdef(c.oid), ' NOT VALID$', ''), \
         'REFERENCES ' || '{t}'::regclass::text || '(', 'REFERENCES {s}(') AS def \
         FROM pg_constraint c WHERE c.contype = 'f' \
         AND (c.conrelid = '{t}'::regclass OR c.confrelid = '{t}'::regclass)"
    );
    let ours = format!(
        "SELECT conrelid::regclass::text AS rel, conname::text AS name FROM pg_constraint WHERE contype = 'f' \
         AND (conrelid = to_regclass('{s}') OR (confrelid = to_regclass('{s}') AND conname LIKE '{COPY}%'))"
    );
    Phase::statements(
        format!("copy the foreign keys from and to {shadow_name}, validated"),
        vec![format!(
            "DO $$ DECLARE k record; BEGIN FOR k IN {ours} LOOP \
             EXECUTE format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', k.rel, k.name); END LOOP; END $$"
        )],
        vec![
            format!(
                "DO $$ DECLARE k record; BEGIN FOR k IN {pointing} LOOP \
                 IF k.conrelid = '{t}'::regclass THEN \
                 EXECUTE format('ALTER TABLE {s} ADD CONSTRAINT %I %s NOT VALID', k.name, k.def); \
                 ELSE EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s NOT VALID', \
                 k.conrelid::regclass::text, '{COPY}' || k.oid, k.def); END IF; END LOOP; END $$"
            ),
            format!(
                "DO $$ DECLARE k record; BEGIN FOR k IN {ours} LOOP \
                 EXECUTE format('ALTER TABLE %s VALIDATE CONSTRAINT %I', k.rel, k.name); END LOOP; END $$"
            ),
        ],
    )
}
