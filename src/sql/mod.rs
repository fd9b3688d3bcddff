//! SQL text for each dialect. Identifiers are validated upstream and still always
//! quoted here, so a name can never be read as SQL.

pub mod convert;
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

/// `'text'`, with embedded quotes doubled: the same text on `d` whatever
/// the session's settings. On PostgreSQL a text holding a backslash is
/// written `E'…'` with the backslash doubled, which reads the same with
/// `standard_conforming_strings` on or off: in a plain literal under the
/// legacy `off`, a backslash would escape the quote doubled after it, end
/// the literal early and run the rest of the text as SQL.
pub fn string_literal(d: Dialect, s: &str) -> String {
    let quoted = s.replace('\'', "''");
    match d {
        Dialect::Postgres if s.contains('\\') => format!("E'{}'", quoted.replace('\\', "\\\\")),
        _ => format!("'{quoted}'"),
    }
}

/// `idx_<entity>__<field>`: the name of a field's index. Entity ids never hold
/// `__`, so the first `__` splits the name and no two fields share one (nor
/// does any index of our own tables, which has no `__`).
pub fn index_name(entity: &str, field: &str) -> String {
    format!("idx_{entity}__{field}")
}

/// `idx_<entity>_<field>`: how older releases named indexes, when `a_b.c` and
/// `a.b_c` (or entity `marain` and our own `idx_marain_history_file`) could
/// share a name. Renamed at start-up; see `engine::index_names`.
pub fn legacy_index_name(entity: &str, field: &str) -> String {
    format!("idx_{entity}_{field}")
}

/// Every name an entity takes in the database's one namespace of tables and
/// indexes (tables, child tables, primary keys, unique keys, plain indexes),
/// each with the field that needs it (`None`: the entity itself). Two entities
/// must not need the same name; [`crate::site::Site::check`] says so.
pub fn relation_names(e: &crate::model::EntitySchema) -> Vec<(String, Option<&str>)> {
    let table = e.table();
    let mut names = vec![(table.clone(), None), (postgres::pkey_name(&table), None)];
    for f in &e.fields {
        match f.column() {
            Some(col) => {
                if f.unique {
                    names.push((format!("{table}_{col}_key"), Some(f.id.as_str())));
                }
                if f.indexed {
                    names.push((index_name(&e.id, &f.id), Some(f.id.as_str())));
                }
            }
            None => {
                let child = child_table(&e.id, &f.id);
                names.push((postgres::pkey_name(&child), Some(f.id.as_str())));
                names.push((child, Some(f.id.as_str())));
            }
        }
    }
    names
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
