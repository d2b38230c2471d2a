//! A PostgreSQL schema of its own for one benchmark or crash-test run, so runs never share
//! state and nothing is left behind.

use anyhow::Context;

pub struct Schema {
    base: String,
    name: String,
    /// `base` with the schema as its search path: what the bots get as their database URL.
    pub url: String,
}

impl Schema {
    pub async fn create(base: &str) -> anyhow::Result<Self> {
        let name = format!("armbot_bench_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(base)
            .await
            .context("cannot reach the PostgreSQL server")?;
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&admin)
            .await?;
        admin.close().await;
        let sep = if base.contains('?') { '&' } else { '?' };
        Ok(Self {
            url: format!("{base}{sep}options=-c%20search_path%3D{name}"),
            base: base.to_string(),
            name,
        })
    }

    pub async fn drop_it(self) -> anyhow::Result<()> {
        let admin = sqlx::PgPool::connect(&self.base).await?;
        sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.name))
            .execute(&admin)
            .await?;
        admin.close().await;
        Ok(())
    }
}
