//! Reap plans and the audit log.

use sqlx::Row;

use super::Store;

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

impl Store {
    pub async fn save_plan(
        &self,
        id: &str,
        plan_json: &str,
        user: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> anyhow::Result<()> {
        sqlx::query("INSERT INTO reap_plans (id, plan, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?)")
            .bind(id)
            .bind(plan_json)
            .bind(user)
            .bind(now_ms)
            .bind(expires_ms)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Moves a plan from `planned` to `to` in one statement, so exactly one
    /// of several concurrent confirmations wins. Returns the plan JSON.
    pub async fn claim_plan(
        &self,
        id: &str,
        user: &str,
        to: &str,
        now_ms: i64,
    ) -> anyhow::Result<Claim> {
        let row = sqlx::query(
            "UPDATE reap_plans SET state = ?, confirmed_by = ?
             WHERE id = ? AND state = 'planned' AND expires_at > ? RETURNING plan",
        )
        .bind(to)
        .bind(user)
        .bind(id)
        .bind(now_ms)
        .fetch_optional(self.pool())
        .await?;
        if let Some(r) = row {
            return Ok(Claim::Claimed(r.try_get("plan")?));
        }
        let row = sqlx::query("SELECT state, expires_at FROM reap_plans WHERE id = ?")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            None => Claim::NotFound,
            Some(r) => {
                let state: String = r.try_get("state")?;
                let expires: i64 = r.try_get("expires_at")?;
                if state == "planned" && expires <= now_ms {
                    Claim::Expired
                } else {
                    Claim::AlreadyHandled(state)
                }
            }
        })
    }

    pub async fn finish_plan(&self, id: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE reap_plans SET state = 'done' WHERE id = ?")
            .bind(id)
            .execute(self.pool())
            .await?;
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
        sqlx::query(
            "INSERT INTO audit_log (at, user_id, action, plan_id, detail) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(now_ms)
        .bind(user)
        .bind(action)
        .bind(plan_id)
        .bind(detail.to_string())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The audit trail of one plan, oldest first: (user, action, detail).
    pub async fn audit_for(&self, plan_id: &str) -> anyhow::Result<Vec<(String, String, String)>> {
        let rows = sqlx::query(
            "SELECT user_id, action, detail FROM audit_log WHERE plan_id = ? ORDER BY id",
        )
        .bind(plan_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("user_id")?,
                    r.try_get("action")?,
                    r.try_get("detail")?,
                ))
            })
            .collect()
    }
}
