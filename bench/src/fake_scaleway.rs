//! A fake Scaleway Instance and Block API on loopback for the benchmarks: server
//! lists paged with `X-Total-Count`, one-server reads, and the deletes a reap
//! makes, each answered after a fixed latency, as the recorded API answers.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;
use serde_json::{Value, json};

pub const PROJECT: &str = "b0000000-0000-4000-8000-00000000b0b0";
pub const NAME_PREFIX: &str = "runner-bench-arm-";

#[derive(Clone)]
pub struct FakeScaleway {
    /// zone → server id → server JSON (the Instance API's shape).
    servers: Arc<Mutex<BTreeMap<String, BTreeMap<String, Value>>>>,
    latency: Duration,
    /// Successful DELETE calls, of any resource.
    deletes: Arc<AtomicUsize>,
}

/// One ARM builder as the Instance API describes it: arm64, one Block
/// Storage volume, no flexible IP, in `state` since `age` minutes.
pub fn builder(zone: &str, n: usize, state: &str, age: i64) -> Value {
    let changed = minutes_ago(age);
    json!({
        "id": format!("{:08x}-0000-4000-8000-{:012x}", zone_hash(zone), n),
        "name": format!("{NAME_PREFIX}{zone}-{n}"),
        "arch": "arm64",
        "commercial_type": "COPARM1-4C-16G",
        "organization": PROJECT,
        "project": PROJECT,
        "hostname": format!("{NAME_PREFIX}{n}"),
        "tags": [],
        "state": state,
        "state_detail": if state == "running" { "booted" } else { "" },
        "protected": false,
        "end_of_service": false,
        "creation_date": minutes_ago(age + 60),
        "modification_date": changed,
        "volumes": {"0": {
            "boot": false,
            "volume_type": "sbs_volume",
            "id": format!("{:08x}-0000-4000-9000-{:012x}", zone_hash(zone), n),
            "state": "available",
            "zone": zone,
        }},
        "public_ip": null,
        "public_ips": [],
        "zone": zone,
    })
}

fn zone_hash(zone: &str) -> u32 {
    zone.bytes().fold(2_166_136_261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    })
}

/// RFC 3339 time `minutes` before now, as Scaleway writes dates.
fn minutes_ago(minutes: i64) -> String {
    (chrono::Utc::now() - chrono::TimeDelta::minutes(minutes))
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
}

impl FakeScaleway {
    pub fn new(latency: Duration) -> Self {
        Self {
            servers: Arc::default(),
            latency,
            deletes: Arc::default(),
        }
    }

    /// Replaces the fleet of `zone`.
    pub fn set_zone(&self, zone: &str, servers: Vec<Value>) {
        let map = servers
            .into_iter()
            .map(|s| (s["id"].as_str().unwrap_or_default().to_string(), s))
            .collect();
        self.lock().insert(zone.to_string(), map);
    }

    /// Successful deletes so far, and resets the count.
    pub fn take_deletes(&self) -> usize {
        self.deletes.swap(0, Ordering::Relaxed)
    }

    pub fn count(&self, zone: &str) -> usize {
        self.lock().get(zone).map_or(0, BTreeMap::len)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, BTreeMap<String, Value>>> {
        self.servers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves on 127.0.0.1 on a free port; returns the base URL.
    pub async fn start(self) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
        let app = Router::new()
            .route("/instance/v1/zones/{zone}/servers", get(list))
            .route(
                "/instance/v1/zones/{zone}/servers/{id}",
                get(one).delete(delete_server),
            )
            .route(
                "/instance/v1/zones/{zone}/volumes/{id}",
                axum::routing::delete(delete_other),
            )
            .route(
                "/instance/v1/zones/{zone}/ips/{id}",
                axum::routing::delete(delete_other),
            )
            .route(
                "/block/v1alpha1/zones/{zone}/volumes/{id}",
                axum::routing::delete(delete_other),
            )
            .with_state(self);
        crate::serve_loopback(app).await
    }

    async fn wait(&self) {
        tokio::time::sleep(self.latency).await;
    }
}

#[derive(Deserialize)]
struct ListQuery {
    page: Option<usize>,
    per_page: Option<usize>,
    project: Option<String>,
}

fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"type": "not_found", "message": format!("{what} not found")})),
    )
        .into_response()
}

async fn list(
    State(fake): State<FakeScaleway>,
    Path(zone): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    fake.wait().await;
    let per_page = q.per_page.unwrap_or(50).clamp(1, 100);
    let page = q.page.unwrap_or(1).max(1);
    let servers: Vec<Value> = fake
        .lock()
        .get(&zone)
        .map(|m| {
            m.values()
                .filter(|s| q.project.as_deref().is_none_or(|p| s["project"] == p))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let total = servers.len();
    let slice: Vec<Value> = servers
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let mut headers = HeaderMap::new();
    headers.insert("x-total-count", HeaderValue::from(total));
    (headers, Json(json!({"servers": slice}))).into_response()
}

async fn one(
    State(fake): State<FakeScaleway>,
    Path((zone, id)): Path<(String, String)>,
) -> Response {
    fake.wait().await;
    match fake.lock().get(&zone).and_then(|m| m.get(&id)).cloned() {
        Some(s) => Json(json!({"server": s})).into_response(),
        None => not_found("instance_server"),
    }
}

async fn delete_server(
    State(fake): State<FakeScaleway>,
    Path((zone, id)): Path<(String, String)>,
) -> Response {
    fake.wait().await;
    let removed = fake.lock().get_mut(&zone).and_then(|m| m.remove(&id));
    match removed {
        Some(_) => {
            fake.deletes.fetch_add(1, Ordering::Relaxed);
            StatusCode::NO_CONTENT.into_response()
        }
        None => not_found("instance_server"),
    }
}

async fn delete_other(State(fake): State<FakeScaleway>) -> StatusCode {
    fake.wait().await;
    fake.deletes.fetch_add(1, Ordering::Relaxed);
    StatusCode::NO_CONTENT
}
