//! Reap plans and the audit log.

use sqlx::Row;

use super::{Store, on_db};

/// Why a confirmation did not claim the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The caller now owns the run.
    Claimed(String),
    NotFound,
    Expired,
    /// Already running, done or cancelled (a double click or a second person).
    AlreadyHandled(String),
}

/// A plan whose run was under way.
#[derive(Debug, Clone)]
pub struct RunningPlan {
    pub id: String,
    /// The plan as stored (JSON).
    pub plan: String,
    pub confirmed_by: Option<String>,
    /// Where the plan was confirmed, if known.
    pub channel: Option<String>,
}

impl Store {
    pub async fn save_plan(
        &self,
        id: &str,
        plan_json: &str,
        user: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> anyhow::Result<()> {
        let sql = "INSERT INTO reap_plans (id, plan, created_by, created_at, expires_at)
                   VALUES ($1, $2, $3, $4, $5)";
        on_db!(self.db(), pool => {
            sqlx::query(sql)
            .bind(id)
            .bind(plan_json)
            .bind(user)
            .bind(now_ms)
            .bind(expires_ms)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Moves a plan from `planned` to `to` in one statement, so exactly one of several
    /// concurrent confirmations wins, on whichever replica they land. Returns the plan JSON.
    pub async fn claim_plan(
        &self,
        id: &str,
        user: &str,
        to: &str,
        channel: Option<&str>,
        now_ms: i64,
    ) -> anyhow::Result<Claim> {
        let claim = "UPDATE reap_plans SET state = $1, confirmed_by = $2, channel = $5
                     WHERE id = $3 AND state = 'planned' AND expires_at > $4 RETURNING plan";
        let look = "SELECT state, expires_at FROM reap_plans WHERE id = $1";
        let (claimed, found): (Option<String>, Option<(String, i64)>) = on_db!(self.db(), pool => {
            let claimed: Option<String> = sqlx::query_scalar(claim)
                .bind(to)
                .bind(user)
                .bind(id)
                .bind(now_ms)
                .bind(channel)
                .fetch_optional(pool)
                .await?;
            if claimed.is_some() {
                (claimed, None)
            } else {
                let row = sqlx::query(look).bind(id).fetch_optional(pool).await?;
                let found = match row {
                    Some(r) => Some((r.try_get("state")?, r.try_get("expires_at")?)),
                    None => None,
                };
                (None, found)
            }
        });
        Ok(match (claimed, found) {
            (Some(plan), _) => Claim::Claimed(plan),
            (None, None) => Claim::NotFound,
            (None, Some((state, expires))) if state == "planned" && expires <= now_ms => {
                Claim::Expired
            }
            (None, Some((state, _))) => Claim::AlreadyHandled(state),
        })
    }

    /// Plans a run was under way on when it was cut short: left `running` by a crash, or by
    /// a replica that vanished. Only meaningful while holding the reap lock.
    pub async fn running_plans(&self) -> anyhow::Result<Vec<RunningPlan>> {
        let sql = "SELECT id, plan, confirmed_by, channel FROM reap_plans
                   WHERE state = 'running' ORDER BY created_at";
        on_db!(self.db(), pool => {
            let rows = sqlx::query(sql).fetch_all(pool).await?;
            rows.iter()
                .map(|r| {
                    Ok(RunningPlan {
                        id: r.try_get("id")?,
                        plan: r.try_get("plan")?,
                        confirmed_by: r.try_get("confirmed_by")?,
                        channel: r.try_get("channel")?,
                    })
                })
                .collect()
        })
    }

    /// Marks a cut-short run `interrupted`; false when it was not `running` any more.
    pub async fn interrupt_plan(&self, id: &str) -> anyhow::Result<bool> {
        let sql = "UPDATE reap_plans SET state = 'interrupted' WHERE id = $1 AND state = 'running'";
        Ok(on_db!(self.db(), pool => {
            sqlx::query(sql).bind(id).execute(pool).await?.rows_affected() == 1
        }))
    }

    pub async fn finish_plan(&self, id: &str) -> anyhow::Result<()> {
        let sql = "UPDATE reap_plans SET state = 'done' WHERE id = $1";
        on_db!(self.db(), pool => {
            sqlx::query(sql).bind(id).execute(pool).await?;
        });
        Ok(())
    }

    pub async fn audit(
        &self,
        now_ms: i64,
        user: &str,
        action: &str,
        plan_id: Option<&str>,
        detail: &serde_json::Value,
    ) -> anyhow::Result<()> {
        let sql = "INSERT INTO audit_log (at, user_id, action, plan_id, detail)
                   VALUES ($1, $2, $3, $4, $5)";
        let detail = detail.to_string();
        on_db!(self.db(), pool => {
            sqlx::query(sql)
            .bind(now_ms)
            .bind(user)
            .bind(action)
            .bind(plan_id)
            .bind(detail.as_str())
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The audit trail of one plan, oldest first: (user, action, detail).
    pub async fn audit_for(&self, plan_id: &str) -> anyhow::Result<Vec<(String, String, String)>> {
        let sql = "SELECT user_id, action, detail FROM audit_log WHERE plan_id = $1 ORDER BY id";
        on_db!(self.db(), pool => {
            let rows = sqlx::query(sql).bind(plan_id).fetch_all(pool).await?;
            rows.iter()
                .map(|r| Ok((r.try_get("user_id")?, r.try_get("action")?, r.try_get("detail")?)))
                .collect()
        })
    }
}
