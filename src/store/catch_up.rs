//! What catch-up and the hook check keep: the watched projects (each with its high-water
//! mark and its hook's last known state) and the warnings posted once per outage.

use sqlx::Row;

use super::{
    Store,
    ingest::{QueuedRow, queue_rows},
    on_db, on_tx,
    stmt::{self, Stmt, values_sql},
};
use crate::store::NewMessage;

/// A project a pipeline event named, to record for catch-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenProject {
    pub project_id: u64,
    pub path: String,
    pub web_url: String,
}

/// A watched project as the store knows it. Times in milliseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedProject {
    pub project_id: u64,
    pub path: String,
    pub web_url: String,
    pub first_seen_at: i64,
    /// Pipelines updated after this are still to be read; `None`: catch-up never ran here.
    pub caught_up_to: Option<i64>,
    pub hook: HookRecord,
    /// The last problem logged for the project.
    pub problem: Option<String>,
}

/// The project's hook, as the last check found it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookRecord {
    /// `ok`, `disabled`, `temporarily_disabled`, `no_hook`, `no_pipeline_events`,
    /// `forbidden`; `None` until checked.
    pub state: Option<String>,
    pub disabled_until: Option<i64>,
    pub checked_at: Option<i64>,
}

/// An open warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub key: String,
    pub channel: String,
    pub outbox_id: Option<i64>,
    pub raised_at: i64,
}

/// Reads a watched project from either engine's row type.
macro_rules! watched_row {
    ($r:expr) => {{
        let r = $r;
        WatchedProject {
            project_id: r.try_get::<i64, _>("project_id")? as u64,
            path: r.try_get("path")?,
            web_url: r.try_get("web_url")?,
            first_seen_at: r.try_get("first_seen_at")?,
            caught_up_to: r.try_get("caught_up_to")?,
            hook: HookRecord {
                state: r.try_get("hook_state")?,
                disabled_until: r.try_get("hook_disabled_until")?,
                checked_at: r.try_get("hook_checked_at")?,
            },
            problem: r.try_get("problem")?,
        }
    }};
}

const WATCHED_COLUMNS: &str = "project_id, path, web_url, first_seen_at, caught_up_to, \
     hook_state, hook_disabled_until, hook_checked_at, problem";

/// Inserts projects not known yet (catch-up starts from `now_ms` for them: a project's first
/// sighting is its first start) and follows renames of known ones.
pub(super) fn upsert_projects_stmt<'a>(projects: &[&'a SeenProject], now_ms: i64) -> Stmt<'a> {
    let mut st = Stmt::new(format!(
        "INSERT INTO gitlab_projects (project_id, path, web_url, first_seen_at, caught_up_to)
         VALUES {}
         ON CONFLICT (project_id) DO UPDATE SET path = excluded.path, web_url = excluded.web_url
          WHERE gitlab_projects.path <> excluded.path
             OR gitlab_projects.web_url <> excluded.web_url",
        values_sql(projects.len(), 5, 1)
    ));
    for p in projects {
        st.bind(p.project_id as i64)
            .bind(p.path.as_str())
            .bind(p.web_url.as_str())
            .bind(now_ms)
            .bind(now_ms);
    }
    st
}

impl Store {
    /// Every project recorded, by path.
    pub async fn watched_projects(&self) -> anyhow::Result<Vec<WatchedProject>> {
        let sql = format!("SELECT {WATCHED_COLUMNS} FROM gitlab_projects ORDER BY path");
        on_db!(self.db(), pool => {
            let rows = sqlx::query(&sql).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(watched_row!(r));
            }
            Ok(out)
        })
    }

    /// Records (or renames) one project and returns it as stored.
    pub async fn remember_project(
        &self,
        project: &SeenProject,
        now_ms: i64,
    ) -> anyhow::Result<WatchedProject> {
        let mut tx = self.begin().await?;
        stmt::execute(&mut tx, &upsert_projects_stmt(&[project], now_ms)).await?;
        tx.commit().await?;
        let sql = format!("SELECT {WATCHED_COLUMNS} FROM gitlab_projects WHERE project_id = $1");
        on_db!(self.db(), pool => {
            let r = sqlx::query(&sql)
                .bind(project.project_id as i64)
                .fetch_one(pool)
                .await?;
            Ok(watched_row!(&r))
        })
    }

    /// Moves a project's high-water mark (milliseconds, GitLab's clock).
    pub async fn set_caught_up(&self, project_id: u64, to_ms: i64) -> anyhow::Result<()> {
        let sql = "UPDATE gitlab_projects SET caught_up_to = $1 WHERE project_id = $2";
        on_db!(self.db(), pool => {
            sqlx::query(sql).bind(to_ms).bind(project_id as i64).execute(pool).await?;
        });
        Ok(())
    }

    /// What the hook check found.
    pub async fn set_hook_state(
        &self,
        project_id: u64,
        state: &str,
        disabled_until_ms: Option<i64>,
        now_ms: i64,
    ) -> anyhow::Result<()> {
        let sql = "UPDATE gitlab_projects
                      SET hook_state = $1, hook_disabled_until = $2, hook_checked_at = $3
                    WHERE project_id = $4";
        on_db!(self.db(), pool => {
            sqlx::query(sql)
                .bind(state)
                .bind(disabled_until_ms)
                .bind(now_ms)
                .bind(project_id as i64)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Records the project's current problem (`None`: none); true when it changed, so the
    /// caller logs a problem once rather than at every pass.
    pub async fn set_project_problem(
        &self,
        project_id: u64,
        problem: Option<&str>,
    ) -> anyhow::Result<bool> {
        let sql = "UPDATE gitlab_projects SET problem = $1
                    WHERE project_id = $2 AND problem IS DISTINCT FROM $1";
        let changed = on_db!(self.db(), pool => {
            sqlx::query(sql)
                .bind(problem)
                .bind(project_id as i64)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(changed > 0)
    }

    /// Posts `warning` unless the alert `key` is already open; true when it was raised now.
    /// The alert and its message are stored together, so a restart or another replica never
    /// posts it twice.
    pub async fn raise_alert(
        &self,
        key: &str,
        warning: &NewMessage,
        now_ms: i64,
    ) -> anyhow::Result<bool> {
        let claim = "INSERT INTO gitlab_alerts (key, channel, raised_at) VALUES ($1, $2, $3)
                     ON CONFLICT (key) DO NOTHING RETURNING key";
        let link = "UPDATE gitlab_alerts SET outbox_id = $1 WHERE key = $2";
        let row: QueuedRow = warning.row()?;
        let mut tx = self.begin().await?;
        let claimed: Option<String> = on_tx!(&mut tx, conn => {
            sqlx::query_scalar(claim)
                .bind(key)
                .bind(warning.channel.as_str())
                .bind(now_ms)
                .fetch_optional(conn)
                .await?
        });
        if claimed.is_none() {
            return Ok(false);
        }
        // Queued on the wall clock, as every outbox row is (the worker paces on it).
        let ids = queue_rows(&mut tx, &[row], super::now_ms()).await?;
        let id = ids
            .first()
            .copied()
            .ok_or_else(|| anyhow::anyhow!("the outbox insert returned no id"))?;
        on_tx!(&mut tx, conn => {
            sqlx::query(link).bind(id).bind(key).execute(conn).await?;
        });
        tx.commit().await?;
        Ok(true)
    }

    /// Closes the alert `key` and queues `recovery` as a reply in its warning's thread (in the
    /// warning's channel); false when no such alert was open.
    pub async fn clear_alert(&self, key: &str, recovery: &NewMessage) -> anyhow::Result<bool> {
        let close = "DELETE FROM gitlab_alerts WHERE key = $1 RETURNING outbox_id, channel";
        let mut tx = self.begin().await?;
        let closed: Option<(Option<i64>, String)> = on_tx!(&mut tx, conn => {
            match sqlx::query(close).bind(key).fetch_optional(conn).await? {
                Some(r) => Some((r.try_get("outbox_id")?, r.try_get("channel")?)),
                None => None,
            }
        });
        let Some((warning, channel)) = closed else {
            return Ok(false);
        };
        if let Some(warning) = warning {
            // In the warning's channel, whatever the routes say now.
            let mut row = recovery.row()?;
            row.channel = channel;
            row.target_id = Some(warning);
            queue_rows(&mut tx, &[row], super::now_ms()).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// The open alerts, oldest first.
    pub async fn open_alerts(&self) -> anyhow::Result<Vec<Alert>> {
        let sql =
            "SELECT key, channel, outbox_id, raised_at FROM gitlab_alerts ORDER BY raised_at, key";
        on_db!(self.db(), pool => {
            let rows = sqlx::query(sql).fetch_all(pool).await?;
            rows.iter()
                .map(|r| {
                    Ok(Alert {
                        key: r.try_get("key")?,
                        channel: r.try_get("channel")?,
                        outbox_id: r.try_get("outbox_id")?,
                        raised_at: r.try_get("raised_at")?,
                    })
                })
                .collect()
        })
    }
}
