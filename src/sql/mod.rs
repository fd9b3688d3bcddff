//! SQL text for each dialect. Identifiers are validated upstream and still always
//! quoted here, so a name can never be read as SQL.

pub mod postgres;
pub mod sqlite;

use serde::{Deserialize, Serialize};

/// Which database a plan's SQL is written for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    #[default]
    Sqlite,
    Postgres,
}

impl Dialect {
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }

    /// `DROP TABLE` of an entity's child tables, then of its table.
    pub fn drop_entity(self, e: &crate::model::EntitySchema) -> Vec<String> {
        let children = e.fields.iter().filter(|f| !f.cardinality.is_single());
        let mut sql: Vec<String> =
            children.map(|f| format!("DROP TABLE {}", self.table(&child_table(&e.id, &f.id)))).collect();
        sql.push(format!("DROP TABLE {}", self.table(&e.table())));
        sql
    }

    /// A name as the database stores it: PostgreSQL's shortened as its DDL
    /// shortens them (see [`postgres::ident`]).
    pub fn ident(self, name: &str) -> String {
        match self {
            Dialect::Sqlite => name.to_string(),
            Dialect::Postgres => postgres::ident(name),
        }
    }

    /// A quoted table name; PostgreSQL's shortened as its DDL shortens them.
    pub fn table(self, name: &str) -> String {
        match self {
            Dialect::Sqlite => quote(name),
            Dialect::Postgres => postgres::q(name),
        }
    }
}

/// `"name"`, with embedded quotes doubled.
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// `'text'`, with embedded quotes doubled.
pub fn string_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `idx_<entity>_<field>`: the name of a field's index.
pub fn index_name(entity: &str, field: &str) -> String {
    format!("idx_{entity}_{field}")
}

/// `content_<entity>__<field>`: the child table of a multi-valued field.
pub fn child_table(entity: &str, field: &str) -> String {
    format!("content_{entity}__{field}")
}

/// The table a rebuild fills before it takes the entity table's name.
pub fn rebuild_table(entity: &str) -> String {
    format!("marain_rebuild_{entity}")
}

/// Where a data-deleting step copies the data first. `tag` makes it unique per
/// applied version, so repeating a transition never collides with an old backup.
pub fn backup_table(tag: &str, table: &str, column: Option<&str>) -> String {
    match column {
        Some(c) => format!("marain_backup_{tag}_{table}__{c}"),
        None => format!("marain_backup_{tag}_{table}"),
    }
}
