//! SQLite DDL for entity tables.

use super::{child_table, index_name, quote, string_literal, Dialect};
use crate::model::{table_name, Cardinality, EntitySchema, Field, FieldType, Literal};

pub fn column_type(t: FieldType) -> &'static str {
    match t {
        FieldType::Text | FieldType::LongText | FieldType::RichText | FieldType::Slug | FieldType::EntityReference => {
            "TEXT"
        }
        FieldType::Integer | FieldType::Boolean => "INTEGER",
        FieldType::Float => "REAL",
        FieldType::Datetime => "TIMESTAMP",
    }
}

pub fn literal(l: &Literal) -> String {
    match l {
        Literal::Text(s) => string_literal(Dialect::Sqlite, s),
        Literal::Integer(i) => i.to_string(),
        Literal::Float(f) => format!("{f:?}"),
        Literal::Bool(b) => u8::from(*b).to_string(),
    }
}

/// CHECK constraints a value column carries: booleans are 0/1, enumerations their values.
fn checks(col: &str, f: &Field) -> String {
    let mut out = String::new();
    if f.field_type == FieldType::Boolean {
        out.push_str(&format!(" CHECK ({} IN (0, 1))", quote(col)));
    }
    if let Some(values) = &f.values {
        let list: Vec<String> = values.iter().map(|v| string_literal(Dialect::Sqlite, v)).collect();
        out.push_str(&format!(" CHECK ({} IN ({}))", quote(col), list.join(", ")));
    }
    out
}

fn references(f: &Field) -> String {
    match (&f.field_type, &f.target_entity) {
        (FieldType::EntityReference, Some(t)) => format!(" REFERENCES {}({})", quote(&table_name(t)), quote("id")),
        _ => String::new(),
    }
}

/// The column definition of a single-valued field, as in CREATE TABLE or ADD COLUMN.
pub fn column_def(f: &Field) -> String {
    let col = f.column().expect("single-valued field");
    let mut def = format!("{} {}", quote(&col), column_type(f.field_type));
    if f.required {
        def.push_str(" NOT NULL");
    }
    if f.unique {
        def.push_str(" UNIQUE");
    }
    if let Some(d) = &f.default {
        def.push_str(&format!(" DEFAULT {}", literal(d)));
    }
    def.push_str(&checks(&col, f));
    def.push_str(&references(f));
    def
}

/// `CREATE TABLE <name> (...)` for the entity's own table, under any name (a
/// rebuild creates it under a temporary one).
pub fn create_table_as(e: &EntitySchema, name: &str) -> String {
    let mut cols = vec![format!("{} TEXT PRIMARY KEY", quote("id"))];
    cols.extend(e.fields.iter().filter(|f| f.cardinality.is_single()).map(column_def));
    cols.push(format!("{} TIMESTAMP DEFAULT CURRENT_TIMESTAMP", quote("created_at")));
    cols.push(format!("{} TIMESTAMP DEFAULT CURRENT_TIMESTAMP", quote("updated_at")));
    format!("CREATE TABLE {} (\n    {}\n)", quote(name), cols.join(",\n    "))
}

pub fn create_child_table(entity: &str, f: &Field) -> String {
    let bound = match f.cardinality {
        Cardinality::AtMost(n) => format!(" CHECK ({} >= 0 AND {} < {n})", quote("delta"), quote("delta")),
        _ => String::new(),
    };
    let value_def = format!("{} {}{}{}", quote("value"), column_type(f.field_type), checks("value", f), references(f));
    format!(
        "CREATE TABLE {} (\n    {} TEXT NOT NULL REFERENCES {}({}) ON DELETE CASCADE,\n    {} INTEGER NOT NULL{bound},\n    {value_def},\n    PRIMARY KEY ({}, {})\n)",
        quote(&child_table(entity, &f.id)),
        quote("parent_id"),
        quote(&table_name(entity)),
        quote("id"),
        quote("delta"),
        quote("parent_id"),
        quote("delta"),
    )
}

/// `CREATE INDEX` for a field marked `indexed` (unique fields get theirs inline).
pub fn create_index(entity: &str, f: &Field) -> Option<String> {
    let col = f.column()?;
    f.indexed.then(|| {
        format!(
            "CREATE INDEX {} ON {} ({})",
            quote(&index_name(entity, &f.id)),
            quote(&table_name(entity)),
            quote(&col)
        )
    })
}

pub fn drop_index(entity: &str, f: &Field) -> String {
    format!("DROP INDEX IF EXISTS {}", quote(&index_name(entity, &f.id)))
}

/// Everything that makes up an entity, in creation order.
pub fn create_entity(e: &EntitySchema) -> Vec<String> {
    let mut sql = vec![create_table_as(e, &e.table())];
    for f in e.fields.iter().filter(|f| !f.cardinality.is_single()) {
        sql.push(create_child_table(&e.id, f));
    }
    sql.extend(e.fields.iter().filter_map(|f| create_index(&e.id, f)));
    sql
}

/// Column names of the entity table, in table order.
pub fn table_columns(e: &EntitySchema) -> Vec<String> {
    let mut cols = vec!["id".to_string()];
    cols.extend(e.fields.iter().filter_map(Field::column));
    cols.extend(["created_at".to_string(), "updated_at".to_string()]);
    cols
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::parse_entity_schema;

    const ARTICLE: &str = "id: article\nname: Article\nfields:\n  - id: title\n    type: text\n    required: true\n  - id: slug\n    type: slug\n    required: true\n    unique: true\n  - id: body\n    type: rich_text\n  - id: author\n    type: entity_reference\n    target_entity: user\n  - id: published_at\n    type: datetime\n  - id: status\n    type: text\n";

    #[test]
    fn spec_article_ddl() {
        let e = parse_entity_schema("x", ARTICLE).unwrap();
        insta::assert_snapshot!(create_table_as(&e, &e.table()), @r#"
        CREATE TABLE "content_article" (
            "id" TEXT PRIMARY KEY,
            "title" TEXT NOT NULL,
            "slug" TEXT NOT NULL UNIQUE,
            "body" TEXT,
            "author_id" TEXT REFERENCES "content_user"("id"),
            "published_at" TIMESTAMP,
            "status" TEXT,
            "created_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
            "updated_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP
        )
        "#);
    }
}
