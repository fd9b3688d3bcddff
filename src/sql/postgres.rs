//! PostgreSQL DDL for entity tables.
//!
//! Every constraint is created under an explicit name (PostgreSQL's own naming
//! scheme: `<table>_<column>_key`, `_check`, `_fkey`, `<table>_pkey`), so that later
//! plans can drop, validate or rename exactly that constraint, and a table migrated
//! step by step is indistinguishable from one created directly.

use super::{child_table, index_name, quote, string_literal, Dialect};
use crate::hash::sha256_hex;
use crate::model::{table_name, Cardinality, EntitySchema, Field, FieldType, Literal};

/// PostgreSQL silently truncates longer identifiers, which could make two names
/// collide; longer ones are shortened here with a hash suffix instead.
pub const MAX_IDENT: usize = 63;

/// `name`, shortened deterministically when PostgreSQL would truncate it.
pub fn ident(name: &str) -> String {
    if name.len() <= MAX_IDENT {
        return name.to_string();
    }
    format!("{}_{}", &name[..54], &sha256_hex(name.as_bytes())[..8])
}

/// A quoted, length-safe identifier.
pub fn q(name: &str) -> String {
    quote(&ident(name))
}

pub fn column_type(t: FieldType) -> &'static str {
    match t {
        FieldType::Text | FieldType::LongText | FieldType::RichText | FieldType::Slug | FieldType::EntityReference => {
            "TEXT"
        }
        FieldType::Integer => "BIGINT",
        FieldType::Float => "DOUBLE PRECISION",
        FieldType::Boolean => "BOOLEAN",
        FieldType::Datetime => "TIMESTAMPTZ",
    }
}

pub fn literal(l: &Literal) -> String {
    match l {
        Literal::Text(s) => string_literal(Dialect::Postgres, s),
        Literal::Integer(i) => i.to_string(),
        Literal::Float(f) => format!("{f:?}"),
        Literal::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
    }
}

/// One value column and everything PostgreSQL attaches to it. Two specs that are
/// equal need no DDL between them.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSpec {
    pub entity: String,
    pub field: String,
    pub table: String,
    pub column: String,
    pub field_type: FieldType,
    pub not_null: bool,
    pub default: Option<Literal>,
    pub unique: bool,
    pub values: Option<Vec<String>>,
    /// Referenced entity.
    pub target: Option<String>,
    /// Plain index `idx_<entity>__<field>` (entity-table columns only).
    pub indexed: bool,
}

impl ColumnSpec {
    /// The entity-table column of a single-valued field.
    pub fn of_field(entity: &str, f: &Field) -> Option<Self> {
        Some(ColumnSpec {
            entity: entity.to_string(),
            field: f.id.clone(),
            table: table_name(entity),
            column: f.column()?,
            field_type: f.field_type,
            not_null: f.required,
            default: f.default.clone(),
            unique: f.unique,
            values: f.values.clone(),
            target: reference_target(f),
            indexed: f.indexed,
        })
    }

    /// The `value` column of a multi-valued field's child table.
    pub fn of_child_value(entity: &str, f: &Field) -> Self {
        ColumnSpec {
            entity: entity.to_string(),
            field: f.id.clone(),
            table: child_table(entity, &f.id),
            column: "value".into(),
            field_type: f.field_type,
            not_null: false,
            default: None,
            unique: false,
            values: f.values.clone(),
            target: reference_target(f),
            indexed: false,
        }
    }

    /// Where a field's values live, whichever its cardinality.
    pub fn of_any(entity: &str, f: &Field) -> Self {
        Self::of_field(entity, f).unwrap_or_else(|| Self::of_child_value(entity, f))
    }

    pub fn sql_type(&self) -> &'static str {
        column_type(self.field_type)
    }

    pub fn key_name(&self) -> String {
        format!("{}_{}_key", self.table, self.column)
    }

    pub fn check_name(&self) -> String {
        format!("{}_{}_check", self.table, self.column)
    }

    pub fn fkey_name(&self) -> String {
        format!("{}_{}_fkey", self.table, self.column)
    }

    pub fn index_name(&self) -> String {
        index_name(&self.entity, &self.field)
    }

    fn col(&self) -> String {
        quote(&self.column)
    }

    fn alter(&self) -> String {
        format!("ALTER TABLE {}", q(&self.table))
    }

    fn check_expr(&self) -> Option<String> {
        let values = self.values.as_ref()?;
        let list: Vec<String> = values.iter().map(|v| string_literal(Dialect::Postgres, v)).collect();
        Some(format!("CHECK ({} IN ({}))", self.col(), list.join(", ")))
    }

    /// `"col" TYPE [NOT NULL] [DEFAULT x] [CONSTRAINT .. UNIQUE] [CONSTRAINT .. CHECK]`,
    /// as CREATE TABLE has it. Foreign keys are added separately (the target may
    /// not exist yet).
    pub fn definition(&self) -> String {
        let mut def = format!("{} {}", self.col(), self.sql_type());
        if self.not_null {
            def.push_str(" NOT NULL");
        }
        if let Some(d) = &self.default {
            def.push_str(&format!(" DEFAULT {}", literal(d)));
        }
        if self.unique {
            def.push_str(&format!(" CONSTRAINT {} UNIQUE", q(&self.key_name())));
        }
        if let Some(check) = self.check_expr() {
            def.push_str(&format!(" CONSTRAINT {} {check}", q(&self.check_name())));
        }
        def
    }

    pub fn add_unique(&self) -> String {
        format!("{} ADD CONSTRAINT {} UNIQUE ({})", self.alter(), q(&self.key_name()), self.col())
    }

    /// CHECK added without scanning under the lock, then validated.
    pub fn add_check(&self) -> Vec<String> {
        let Some(check) = self.check_expr() else { return vec![] };
        vec![
            format!("{} ADD CONSTRAINT {} {check} NOT VALID", self.alter(), q(&self.check_name())),
            format!("{} VALIDATE CONSTRAINT {}", self.alter(), q(&self.check_name())),
        ]
    }

    /// The foreign key; on a table that may hold rows it is added NOT VALID and
    /// then validated, so the scan does not hold the exclusive lock.
    pub fn add_fkey(&self, table_has_rows: bool) -> Vec<String> {
        let Some(target) = &self.target else { return vec![] };
        let add = format!(
            "{} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({})",
            self.alter(),
            q(&self.fkey_name()),
            self.col(),
            q(&table_name(target)),
            quote("id")
        );
        if table_has_rows {
            vec![format!("{add} NOT VALID"), format!("{} VALIDATE CONSTRAINT {}", self.alter(), q(&self.fkey_name()))]
        } else {
            vec![add]
        }
    }

    pub fn drop_constraint(&self, name: &str) -> String {
        format!("{} DROP CONSTRAINT {}", self.alter(), q(name))
    }

    pub fn create_index(&self) -> Option<String> {
        self.indexed.then(|| format!("CREATE INDEX {} ON {} ({})", q(&self.index_name()), q(&self.table), self.col()))
    }

    pub fn drop_index(&self) -> String {
        format!("DROP INDEX {}", q(&self.index_name()))
    }

    /// The plain index, built without blocking writes (outside a transaction).
    pub fn create_index_concurrently(&self) -> String {
        format!("CREATE INDEX CONCURRENTLY {} ON {} ({})", q(&self.index_name()), q(&self.table), self.col())
    }

    /// The unique key's index, built without blocking writes; the cut-over
    /// turns it into the constraint ([`ColumnSpec::add_unique_using_index`]).
    pub fn create_unique_index_concurrently(&self) -> String {
        format!("CREATE UNIQUE INDEX CONCURRENTLY {} ON {} ({})", q(&self.key_name()), q(&self.table), self.col())
    }

    pub fn add_unique_using_index(&self) -> String {
        format!("{} ADD CONSTRAINT {} UNIQUE USING INDEX {}", self.alter(), q(&self.key_name()), q(&self.key_name()))
    }

    /// What an unfinished concurrent build of index `name` left (an invalid
    /// index), dropped without blocking writes.
    pub fn drop_index_concurrently(name: &str) -> String {
        format!("DROP INDEX CONCURRENTLY IF EXISTS {}", q(name))
    }

    /// The CHECK that proves the column holds no NULL, so that `SET NOT NULL`
    /// skips its scan (PostgreSQL 12+); dropped again once the column is NOT NULL.
    pub fn not_null_check_name(&self) -> String {
        format!("{}_{}_not_null", self.table, self.column)
    }

    pub fn add_not_null_check(&self) -> Vec<String> {
        let name = q(&self.not_null_check_name());
        vec![
            format!("{} ADD CONSTRAINT {name} CHECK ({} IS NOT NULL) NOT VALID", self.alter(), self.col()),
            format!("{} VALIDATE CONSTRAINT {name}", self.alter()),
        ]
    }

    pub fn drop_constraint_if_exists(&self, name: &str) -> String {
        format!("{} DROP CONSTRAINT IF EXISTS {}", self.alter(), q(name))
    }

    /// Every constraint name this column carries, for renames.
    pub fn constraint_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if self.unique {
            names.push(self.key_name());
        }
        if self.values.is_some() {
            names.push(self.check_name());
        }
        if self.target.is_some() {
            names.push(self.fkey_name());
        }
        names
    }
}

fn reference_target(f: &Field) -> Option<String> {
    match f.field_type {
        FieldType::EntityReference => f.target_entity.clone(),
        _ => None,
    }
}

pub fn pkey_name(table: &str) -> String {
    format!("{table}_pkey")
}

/// The child table's own constraints (besides the value column's).
pub fn child_constraint_names(entity: &str, f: &Field) -> Vec<String> {
    let child = child_table(entity, &f.id);
    let mut names = vec![pkey_name(&child), format!("{child}_parent_id_fkey")];
    if let Cardinality::AtMost(_) = f.cardinality {
        names.push(format!("{child}_delta_check"));
    }
    names
}

pub fn delta_check(f: &Field) -> Option<String> {
    match f.cardinality {
        Cardinality::AtMost(n) => Some(format!("CHECK ({d} >= 0 AND {d} < {n})", d = quote("delta"))),
        _ => None,
    }
}

/// `CREATE TABLE` for the entity table, without foreign keys.
pub fn create_table(e: &EntitySchema) -> String {
    let table = e.table();
    let mut cols = vec![format!("{} TEXT CONSTRAINT {} PRIMARY KEY", quote("id"), q(&pkey_name(&table)))];
    cols.extend(e.fields.iter().filter_map(|f| ColumnSpec::of_field(&e.id, f)).map(|s| s.definition()));
    cols.push(format!("{} TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP", quote("created_at")));
    cols.push(format!("{} TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP", quote("updated_at")));
    format!("CREATE TABLE {} (\n    {}\n)", q(&table), cols.join(",\n    "))
}

/// `CREATE TABLE` for a multi-valued field's child table, without the value's
/// foreign key.
pub fn create_child_table(entity: &str, f: &Field) -> String {
    let child = child_table(entity, &f.id);
    let value = ColumnSpec::of_child_value(entity, f);
    let delta = match delta_check(f) {
        Some(check) => format!(" CONSTRAINT {} {check}", q(&format!("{child}_delta_check"))),
        None => String::new(),
    };
    format!(
        "CREATE TABLE {} (\n    {} TEXT NOT NULL CONSTRAINT {} REFERENCES {} ({}) ON DELETE CASCADE,\n    {} INTEGER NOT NULL{delta},\n    {},\n    CONSTRAINT {} PRIMARY KEY ({}, {})\n)",
        q(&child),
        quote("parent_id"),
        q(&format!("{child}_parent_id_fkey")),
        q(&table_name(entity)),
        quote("id"),
        quote("delta"),
        value.definition(),
        q(&pkey_name(&child)),
        quote("parent_id"),
        quote("delta"),
    )
}

/// Column names of the entity table, in table order.
pub fn table_columns(e: &EntitySchema) -> Vec<String> {
    super::sqlite::table_columns(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::parse_entity_schema;

    #[test]
    fn long_names_are_shortened_deterministically() {
        let long = format!("content_{}__{}", "a".repeat(48), "b".repeat(48));
        let short = ident(&long);
        assert_eq!(short.len(), MAX_IDENT);
        assert_eq!(short, ident(&long));
        assert_ne!(short, ident(&long.replace('b', "c")));
        assert_eq!(ident("content_article"), "content_article");
    }

    #[test]
    fn article_ddl() {
        let e = parse_entity_schema(
            "x",
            "id: article\nname: A\nfields:\n  - id: slug\n    type: slug\n    required: true\n    unique: true\n  - id: status\n    type: text\n    default: draft\n    values: [draft, live]\n  - id: live\n    type: boolean\n    default: true\n  - id: author\n    type: entity_reference\n    target_entity: user\n",
        )
        .unwrap();
        insta::assert_snapshot!(create_table(&e), @r#"
        CREATE TABLE "content_article" (
            "id" TEXT CONSTRAINT "content_article_pkey" PRIMARY KEY,
            "slug" TEXT NOT NULL CONSTRAINT "content_article_slug_key" UNIQUE,
            "status" TEXT DEFAULT 'draft' CONSTRAINT "content_article_status_check" CHECK ("status" IN ('draft', 'live')),
            "live" BOOLEAN DEFAULT TRUE,
            "author_id" TEXT,
            "created_at" TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP,
            "updated_at" TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP
        )
        "#);
    }
}
