//! The legacy table, wherever it is: in the site's own database (the usual case,
//! and the only one in which the content API can serve and write it during the
//! move) or in another database given by URL.

use crate::engine::database::{scheme_only, Arg, Pool, PoolSize};
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
                let size = PoolSize { max_connections: 2, keep_forever: false };
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

    /// The columns selected as a [`LegacyRow`].
    pub fn columns(&self) -> String {
        let d = self.dialect();
        let (created, updated) = match self.timestamps {
            true => (d.table("created_at"), d.table("updated_at")),
            false => ("NULL".to_string(), "NULL".to_string()),
        };
        format!(
            "CAST({id} AS TEXT) AS id, CAST({et} AS TEXT) AS entity_type, CAST({data} AS TEXT) AS data, \
             CAST({created} AS TEXT) AS created_at, CAST({updated} AS TEXT) AS updated_at",
            id = d.table("id"),
            et = d.table("entity_type"),
            data = d.table("data"),
        )
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
    pub async fn batch(&self, entity_type: &str, after: &str, limit: usize) -> Result<Vec<LegacyRow>, LegacyError> {
        let d = self.dialect();
        let sql = format!(
            "SELECT {} FROM {} WHERE {} = $1 AND {id} > $2 ORDER BY {id} LIMIT $3",
            self.columns(),
            d.table(&self.table),
            d.table("entity_type"),
            id = d.table("id"),
        );
        let args = [Arg::from(entity_type), Arg::from(after), Arg::Int(limit as i64)];
        self.pool.fetch_all(&sql, &args).await.map_err(LegacyError::Source)
    }

    /// The rows of `ids` (of any type).
    pub async fn rows(&self, ids: &[String]) -> Result<Vec<LegacyRow>, LegacyError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let d = self.dialect();
        let marks: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT {} FROM {} WHERE {} IN ({}) ORDER BY {}",
            self.columns(),
            d.table(&self.table),
            d.table("id"),
            marks.join(", "),
            d.table("id")
        );
        let args: Vec<Arg> = ids.iter().map(Arg::from).collect();
        self.pool.fetch_all(&sql, &args).await.map_err(LegacyError::Source)
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
