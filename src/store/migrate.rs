//! `armbot migrate-store`: copies every table from one store to another (SQLite to
//! PostgreSQL when a team moves to replicas, or back), keeping ids so threads, plans and
//! de-duplication keys carry over.

use sqlx::Row;

use super::{Db, Engine, Store, on_db, on_tx};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Text,
}

/// Every table, parents before children, with its columns.
const TABLES: &[(&str, &[(&str, Kind)])] = {
    use Kind::{Int, Text};
    &[
        (
            "incidents",
            &[
                ("id", Int),
                ("project_id", Int),
                ("project_path", Text),
                ("git_ref", Text),
                ("channel", Text),
                ("root_channel", Text),
                ("root_ts", Text),
                ("root_body", Text),
                ("first_pipeline", Int),
                ("latest_pipeline", Int),
                ("latest_url", Text),
                ("failures", Int),
                ("opened_at", Int),
                ("fixed_at", Int),
                ("fixed_by", Int),
            ],
        ),
        (
            "ref_heads",
            &[
                ("project_id", Int),
                ("git_ref", Text),
                ("last_pipeline", Int),
                ("open_incident", Int),
            ],
        ),
        ("dedup_keys", &[("key", Text), ("seen_at", Int)]),
        (
            "outbox",
            &[
                ("id", Int),
                ("channel", Text),
                ("kind", Text),
                ("incident_id", Int),
                ("target_ts", Text),
                ("target_id", Int),
                ("payload", Text),
                ("state", Text),
                ("attempts", Int),
                ("next_attempt_at", Int),
                ("created_at", Int),
                ("attempt_started_at", Int),
                ("finished_at", Int),
                ("ts", Text),
                ("last_error", Text),
            ],
        ),
        (
            "reap_plans",
            &[
                ("id", Text),
                ("plan", Text),
                ("created_by", Text),
                ("created_at", Int),
                ("expires_at", Int),
                ("state", Text),
                ("confirmed_by", Text),
                ("channel", Text),
            ],
        ),
        (
            "audit_log",
            &[
                ("id", Int),
                ("at", Int),
                ("user_id", Text),
                ("action", Text),
                ("plan_id", Text),
                ("detail", Text),
            ],
        ),
        (
            "watch_incidents",
            &[
                ("id", Int),
                ("watch", Text),
                ("channel", Text),
                ("root_outbox_id", Int),
                ("opened_at", Int),
                ("closed_at", Int),
            ],
        ),
        (
            "watch_state",
            &[
                ("watch", Text),
                ("version", Int),
                ("memory", Text),
                ("incident_id", Int),
                ("warning_outbox_id", Int),
                ("updated_at", Int),
            ],
        ),
        (
            "gitlab_projects",
            &[
                ("project_id", Int),
                ("path", Text),
                ("web_url", Text),
                ("first_seen_at", Int),
                ("caught_up_to", Int),
                ("hook_state", Text),
                ("hook_disabled_until", Int),
                ("hook_checked_at", Int),
                ("problem", Text),
            ],
        ),
        (
            "gitlab_alerts",
            &[
                ("key", Text),
                ("channel", Text),
                ("outbox_id", Int),
                ("raised_at", Int),
            ],
        ),
    ]
};

/// Tables whose `id` the engine generates: PostgreSQL's identity must continue after the
/// copied ids.
const IDENTITY_TABLES: &[&str] = &["incidents", "outbox", "audit_log", "watch_incidents"];

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Int(Option<i64>),
    Text(Option<String>),
}

/// Rows copied per insert statement.
const CHUNK: usize = 200;

/// Copies everything from `from` into `to`, which must be empty; returns rows per table.
pub async fn copy(from: &Store, to: &Store) -> anyhow::Result<Vec<(&'static str, usize)>> {
    for (table, _) in TABLES {
        let n = count(to, table).await?;
        anyhow::ensure!(
            n == 0,
            "the target store is not empty ({table} has {n} rows): refusing to mix two stores"
        );
    }
    let mut tx = to.begin().await?;
    let mut copied = Vec::new();
    for (table, columns) in TABLES {
        let rows = read(from, table, columns).await?;
        let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
        for chunk in rows.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO {table} ({}) VALUES {}",
                names.join(", "),
                super::stmt::values_sql(chunk.len(), columns.len(), 1)
            );
            on_tx!(&mut tx, conn => {
                let mut q = sqlx::query(&sql);
                for row in chunk {
                    for v in row {
                        q = match v {
                            Value::Int(i) => q.bind(*i),
                            Value::Text(t) => q.bind(t.as_deref()),
                        };
                    }
                }
                q.execute(conn).await?;
            });
        }
        copied.push((*table, rows.len()));
    }
    if to.engine() == Engine::Postgres {
        for table in IDENTITY_TABLES {
            let sql = format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                               COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
            );
            on_tx!(&mut tx, conn => { sqlx::query(&sql).execute(conn).await?; });
        }
    }
    tx.commit().await?;
    Ok(copied)
}

async fn count(store: &Store, table: &str) -> anyhow::Result<i64> {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    Ok(on_db!(store.db(), pool => sqlx::query_scalar(&sql).fetch_one(pool).await?))
}

async fn read(
    store: &Store,
    table: &str,
    columns: &[(&str, Kind)],
) -> anyhow::Result<Vec<Vec<Value>>> {
    let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
    // Parents first within a table too (ids ascend), so the copy keeps per-channel order.
    let sql = format!(
        "SELECT {} FROM {table} ORDER BY {}",
        names.join(", "),
        names[0]
    );
    on_db!(store.db(), pool => {
        let rows = sqlx::query(&sql).fetch_all(pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut row = Vec::with_capacity(columns.len());
            for (name, kind) in columns {
                row.push(match kind {
                    Kind::Int => Value::Int(r.try_get(*name)?),
                    Kind::Text => Value::Text(r.try_get(*name)?),
                });
            }
            out.push(row);
        }
        Ok(out)
    })
}

/// The tables the engine has, for the check that [`TABLES`] misses none.
pub async fn schema_tables(store: &Store) -> anyhow::Result<Vec<String>> {
    let sql = match store.db() {
        Db::Sqlite(_) => {
            "SELECT name FROM sqlite_master WHERE type = 'table'
               AND name NOT IN ('_sqlx_migrations', 'sqlite_sequence') ORDER BY name"
        }
        Db::Postgres(_) => {
            "SELECT table_name::TEXT FROM information_schema.tables
              WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'
              ORDER BY table_name"
        }
    };
    Ok(on_db!(store.db(), pool => sqlx::query_scalar(sql).fetch_all(pool).await?))
}

/// The tables [`copy`] carries, sorted.
pub fn copied_tables() -> Vec<String> {
    let mut t: Vec<String> = TABLES.iter().map(|(n, _)| (*n).to_string()).collect();
    t.sort();
    t
}
