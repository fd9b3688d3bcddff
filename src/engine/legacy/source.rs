//! The legacy table, wherever it is: in the site's own database (the usual case,
//! and the only one in which the content API can serve and write it during the
//! move) or in another database given by URL.

use crate::engine::database::{scheme_only, Arg, Pool, PoolSize};
use crate::engine::rows::{placeholders_per_statement, slot};
use crate::engine::store::Store;
use crate::sql::Dialect;

use super::LegacyError;

/// One row of the legacy table, as text: `data` is the JSON as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LegacyRow {
    pub id: String,
    pub entity_type: String,
    pub data: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// The columns of a legacy table named `c`, selected as a [`LegacyRow`]
/// (`NULL` timestamps when the table has none). An `ORDER BY` must name `c.id`:
/// plain `id` is the cast output column, which no index orders, and the
/// database would sort every remaining row.
pub(super) fn row_columns(d: Dialect, timestamps: bool) -> String {
    let c = |name: &str| format!("c.{}", d.table(name));
    let (created, updated) = match timestamps {
        true => (c("created_at"), c("updated_at")),
        false => ("NULL".to_string(), "NULL".to_string()),
    };
    format!(
        "CAST({id} AS TEXT) AS id, CAST({et} AS TEXT) AS entity_type, CAST({data} AS TEXT) AS data, \
         CAST({created} AS TEXT) AS created_at, CAST({updated} AS TEXT) AS updated_at",
        id = c("id"),
        et = c("entity_type"),
        data = c("data"),
    )
}

/// The legacy table and the pool that reaches it.
#[derive(Clone, Debug)]
pub struct LegacySource {
    pool: Pool,
    table: String,
    same_database: bool,
    /// Whether the table has the timestamp columns (some installs lack them).
    timestamps: bool,
}

impl LegacySource {
    /// The table `table` in the store's database, or in `url`'s when given.
    pub async fn open(store: &Store, url: Option<&str>, table: &str) -> Result<Self, LegacyError> {
        if table.is_empty() || !table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(LegacyError::BadTableName { table: table.to_string() });
        }
        let (pool, same_database, database) = match url {
            None => (store.pool().clone(), true, "the site's database".to_string()),
            Some(url) => {
                let size = PoolSize { max_connections: 2, keep_forever: false, behind_pooler: false };
                let pool = Pool::connect(url, size).await.map_err(LegacyError::Source)?;
                (pool, false, format!("the legacy database ({})", scheme_only(url)))
            }
        };
        let columns = pool.table_columns(table).await.map_err(LegacyError::Source)?;
        let has = |c: &str| columns.iter().any(|x| x == c);
        if !(has("id") && has("entity_type") && has("data")) {
            return Err(LegacyError::NoTable { table: table.to_string(), database });
        }
        let timestamps = has("created_at") && has("updated_at");
        Ok(Self { pool, table: table.to_string(), same_database, timestamps })
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn same_database(&self) -> bool {
        self.same_database
    }

    pub fn dialect(&self) -> Dialect {
        self.pool.dialect()
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The columns selected as a [`LegacyRow`], of the table named `c`.
    pub fn columns(&self) -> String {
        row_columns(self.dialect(), self.timestamps)
    }

    /// Each entity type with its number of rows, by type.
    pub async fn types(&self) -> Result<Vec<(String, i64)>, LegacyError> {
        let d = self.dialect();
        let sql = format!(
            "SELECT CAST({et} AS TEXT), COUNT(*) FROM {t} GROUP BY {et} ORDER BY 1",
            et = d.table("entity_type"),
            t = d.table(&self.table)
        );
        let rows: Vec<(Option<String>, i64)> = self.pool.fetch_all(&sql, &[]).await.map_err(LegacyError::Source)?;
        Ok(rows.into_iter().map(|(t, n)| (t.unwrap_or_default(), n)).collect())
    }

    /// Up to `limit` rows of `entity_type` with ids after `after`, in id order.
    ///
    /// SQLite hands each row of a result from its connection's thread to ours
    /// on its own, which costs more than reading it; there the batch comes as
    /// one JSON array of rows (`json_group_array`), one hand-over per batch.
    async fn batch(&self, entity_type: &str, after: &str, limit: usize) -> Result<Vec<LegacyRow>, LegacyError> {
        let d = self.dialect();
        let page = format!(
            "SELECT {} FROM {} c WHERE c.{} = $1 AND c.{id} > $2 ORDER BY c.{id} LIMIT $3",
            self.columns(),
            d.table(&self.table),
            d.table("entity_type"),
            id = d.table("id"),
        );
        let args = [Arg::from(entity_type), Arg::from(after), Arg::Int(limit as i64)];
        if !self.pool.backend().pages_as_json() {
            return self.pool.fetch_all(&page, &args).await.map_err(LegacyError::Source);
        }
        let sql = format!(
            "SELECT json_group_array(json_array(id, entity_type, data, created_at, updated_at)) FROM ({page}) p"
        );
        let (rows,): (String,) = self.pool.fetch_one(&sql, &args).await.map_err(LegacyError::Source)?;
        type Row = (String, String, Option<String>, Option<String>, Option<String>);
        let rows: Vec<Row> =
            serde_json::from_str(&rows).map_err(|e| LegacyError::Source(sqlx::Error::Decode(Box::new(e))))?;
        let mut rows: Vec<LegacyRow> = rows
            .into_iter()
            .map(|(id, entity_type, data, created_at, updated_at)| LegacyRow {
                id,
                entity_type,
                data,
                created_at,
                updated_at,
            })
            .collect();
        // An aggregate's order is not promised; the cursor needs it.
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(rows)
    }

    /// The rows of `entity_type`, `size` at a time, in id order.
    pub fn batches(&self, entity_type: &str, size: usize) -> Batches<'_> {
        Batches { source: self, entity_type: entity_type.to_string(), after: String::new(), size }
    }

    /// The rows of `ids` (of any type), in id order.
    pub async fn rows(&self, ids: &[String]) -> Result<Vec<LegacyRow>, LegacyError> {
        let d = self.dialect();
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(placeholders_per_statement(d).min(1000)) {
            let marks: Vec<String> = (1..=chunk.len()).map(|n| slot(d, n)).collect();
            let sql = format!(
                "SELECT {} FROM {} c WHERE c.{} IN ({})",
                self.columns(),
                d.table(&self.table),
                d.table("id"),
                marks.join(", "),
            );
            let args: Vec<Arg> = chunk.iter().map(Arg::from).collect();
            out.extend(self.pool.fetch_all::<LegacyRow>(&sql, &args).await.map_err(LegacyError::Source)?);
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Every row's id and type: what `infer` recognises references by.
    pub async fn id_types(&self) -> Result<Vec<(String, String)>, LegacyError> {
        let d = self.dialect();
        let sql = format!(
            "SELECT CAST({} AS TEXT), CAST({} AS TEXT) FROM {}",
            d.table("id"),
            d.table("entity_type"),
            d.table(&self.table)
        );
        let rows: Vec<(String, Option<String>)> = self.pool.fetch_all(&sql, &[]).await.map_err(LegacyError::Source)?;
        Ok(rows.into_iter().map(|(id, t)| (id, t.unwrap_or_default())).collect())
    }

    pub async fn close(&self) {
        if !self.same_database {
            self.pool.close().await;
        }
    }
}

/// The rows of one type, a batch at a time: [`LegacySource::batches`].
pub struct Batches<'s> {
    source: &'s LegacySource,
    entity_type: String,
    /// The last id read; the next batch starts after it.
    after: String,
    size: usize,
}

impl Batches<'_> {
    /// The next batch, or `None` once the rows have ended.
    pub async fn next(&mut self) -> Result<Option<Vec<LegacyRow>>, LegacyError> {
        let rows = self.source.batch(&self.entity_type, &self.after, self.size).await?;
        let Some(last) = rows.last() else { return Ok(None) };
        self.after = last.id.clone();
        Ok(Some(rows))
    }
}
