//! A statement built once and run on any connection the store has: a sqlx transaction on
//! either engine, or the ingest writer's own synchronous SQLite connection
//! ([`super::lite`]). The SQL uses `$n` placeholders, as both sqlx engines read them.

use sqlx::Row;

use super::{Tx, on_tx};

/// A bound value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    Int(Option<i64>),
    Text(Option<&'a str>),
}

impl From<i64> for Param<'_> {
    fn from(v: i64) -> Self {
        Self::Int(Some(v))
    }
}

impl From<Option<i64>> for Param<'_> {
    fn from(v: Option<i64>) -> Self {
        Self::Int(v)
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Self::Text(Some(v))
    }
}

impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Self::Text(v)
    }
}

/// SQL with its parameters, `$1` being the first.
#[derive(Debug, Default)]
pub(crate) struct Stmt<'a> {
    pub sql: String,
    pub params: Vec<Param<'a>>,
}

impl<'a> Stmt<'a> {
    pub fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            params: Vec::new(),
        }
    }

    pub fn bind(&mut self, p: impl Into<Param<'a>>) -> &mut Self {
        self.params.push(p.into());
        self
    }
}

/// A result row, whichever driver read it. Columns are read by position.
pub(crate) trait Get {
    fn int(&self, i: usize) -> anyhow::Result<Option<i64>>;
    fn text(&self, i: usize) -> anyhow::Result<Option<String>>;

    fn req_int(&self, i: usize) -> anyhow::Result<i64> {
        self.int(i)?
            .ok_or_else(|| anyhow::anyhow!("column {i} is unexpectedly NULL"))
    }

    fn req_text(&self, i: usize) -> anyhow::Result<String> {
        self.text(i)?
            .ok_or_else(|| anyhow::anyhow!("column {i} is unexpectedly NULL"))
    }
}

impl Get for sqlx::sqlite::SqliteRow {
    fn int(&self, i: usize) -> anyhow::Result<Option<i64>> {
        Ok(self.try_get(i)?)
    }
    fn text(&self, i: usize) -> anyhow::Result<Option<String>> {
        Ok(self.try_get(i)?)
    }
}

impl Get for sqlx::postgres::PgRow {
    fn int(&self, i: usize) -> anyhow::Result<Option<i64>> {
        Ok(self.try_get(i)?)
    }
    fn text(&self, i: usize) -> anyhow::Result<Option<String>> {
        Ok(self.try_get(i)?)
    }
}

impl Get for rusqlite::Row<'_> {
    fn int(&self, i: usize) -> anyhow::Result<Option<i64>> {
        Ok(self.get(i)?)
    }
    fn text(&self, i: usize) -> anyhow::Result<Option<String>> {
        Ok(self.get(i)?)
    }
}

/// Binds every parameter of `$st` to the sqlx query `$q`.
macro_rules! bound {
    ($q:expr, $st:expr) => {{
        let mut q = $q;
        for p in &$st.params {
            q = match *p {
                Param::Int(v) => q.bind(v),
                Param::Text(v) => q.bind(v),
            };
        }
        q
    }};
}

/// Where a statement runs: a sqlx transaction, or an ingest transaction (which may be the
/// SQLite writer's own connection), so a statement used by both is written once.
pub(crate) trait Exec {
    /// Runs `st` and decodes every row it returns.
    async fn fetch<T>(
        &mut self,
        st: &Stmt<'_>,
        decode: impl Fn(&dyn Get) -> anyhow::Result<T>,
    ) -> anyhow::Result<Vec<T>>;
}

impl Exec for Tx {
    async fn fetch<T>(
        &mut self,
        st: &Stmt<'_>,
        decode: impl Fn(&dyn Get) -> anyhow::Result<T>,
    ) -> anyhow::Result<Vec<T>> {
        fetch(self, st, decode).await
    }
}

/// Runs `st` in `tx` and decodes every row it returns.
pub(crate) async fn fetch<T>(
    tx: &mut Tx,
    st: &Stmt<'_>,
    decode: impl Fn(&dyn Get) -> anyhow::Result<T>,
) -> anyhow::Result<Vec<T>> {
    on_tx!(tx, conn => {
        let rows = bound!(sqlx::query(&st.sql), st).fetch_all(&mut *conn).await?;
        rows.iter().map(|r| decode(r)).collect()
    })
}

/// Runs `st` in `tx` for its effect.
pub(crate) async fn execute(tx: &mut Tx, st: &Stmt<'_>) -> anyhow::Result<()> {
    on_tx!(tx, conn => {
        bound!(sqlx::query(&st.sql), st).execute(&mut *conn).await?;
    });
    Ok(())
}

/// `($a, $b, …), (…)` for `rows` rows of `width` parameters numbered from `first`.
pub(crate) fn values_sql(rows: usize, width: usize, first: usize) -> String {
    use std::fmt::Write;
    let mut sql = String::with_capacity(rows * width * 5);
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..width {
            if c > 0 {
                sql.push_str(", ");
            }
            // Writing to a String cannot fail.
            let _ = write!(sql, "${}", first + r * width + c);
        }
        sql.push(')');
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::values_sql;

    #[test]
    fn placeholders_are_numbered_row_by_row() {
        assert_eq!(values_sql(2, 2, 1), "($1, $2), ($3, $4)");
        assert_eq!(values_sql(1, 3, 5), "($5, $6, $7)");
    }
}
