//! Closed-loop HTTP load: `concurrency` senders share `requests` POSTs and
//! record each one's latency.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;

/// A body, optionally made unique per request so the bot cannot treat
/// request n+1 as a duplicate of request n.
#[derive(Clone)]
pub struct Body {
    /// Split around the pipeline id when unique.
    head: Bytes,
    tail: Option<Bytes>,
}

/// The pipeline id written into generated payloads so it can be replaced per request.
pub const ID_MARKER: &str = "\"id\":987654321";

impl Body {
    pub fn fixed(raw: Vec<u8>) -> Self {
        Self {
            head: raw.into(),
            tail: None,
        }
    }

    /// Replaces the first [`ID_MARKER`] with a fresh id per request; falls back
    /// to a fixed body when the marker is absent.
    pub fn unique(raw: Vec<u8>) -> Self {
        let at = raw
            .windows(ID_MARKER.len())
            .position(|w| w == ID_MARKER.as_bytes());
        match at {
            Some(i) => {
                let raw = Bytes::from(raw);
                Self {
                    head: raw.slice(..i),
                    tail: Some(raw.slice(i + ID_MARKER.len()..)),
                }
            }
            None => Self::fixed(raw),
        }
    }

    pub fn is_unique(&self) -> bool {
        self.tail.is_some()
    }

    pub fn len(&self) -> usize {
        self.head.len() + self.tail.as_ref().map_or(0, Bytes::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn nth(&self, n: u64) -> Bytes {
        match &self.tail {
            None => self.head.clone(),
            Some(tail) => {
                let id = format!("\"id\":{n}");
                let mut v = Vec::with_capacity(self.head.len() + id.len() + tail.len());
                v.extend_from_slice(&self.head);
                v.extend_from_slice(id.as_bytes());
                v.extend_from_slice(tail);
                v.into()
            }
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub ok: usize,
    pub errors: usize,
    pub seconds: f64,
    /// Sorted.
    pub latencies: Vec<Duration>,
}

impl Stats {
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.seconds.max(1e-9)
    }

    /// Percentile in milliseconds (`p` in 0..=1).
    pub fn pct(&self, p: f64) -> f64 {
        percentile_ms(&self.latencies, p)
    }
}

pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

pub struct Hit<'a> {
    pub url: &'a str,
    pub body: &'a Body,
    pub headers: &'a [(String, String)],
    pub requests: usize,
    pub concurrency: usize,
    /// Ids start here; distinct per run so repeated runs stay unique.
    pub first_id: u64,
}

pub async fn hit(h: Hit<'_>) -> anyhow::Result<Stats> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(h.concurrency)
        .timeout(Duration::from_secs(60))
        .build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..h.concurrency {
        let (client, url, body, headers, next) = (
            client.clone(),
            h.url.to_string(),
            h.body.clone(),
            h.headers.to_vec(),
            next.clone(),
        );
        let (requests, first_id) = (h.requests, h.first_id);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= requests {
                    break;
                }
                let id = first_id + n as u64;
                let mut req = client
                    .post(&url)
                    .body(body.nth(id))
                    .header("content-type", "application/json");
                for (k, v) in &headers {
                    req = req.header(k, v);
                }
                if body.is_unique() {
                    req = req.header("idempotency-key", format!("bench-{id}"));
                }
                let t = Instant::now();
                match req.send().await {
                    Ok(r) if r.status().is_success() => {
                        // Read the (empty) body so the connection is reused.
                        let _ = r.bytes().await;
                        lat.push(t.elapsed());
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut stats = Stats::default();
    for t in tasks {
        let (l, e) = t.await?;
        stats.latencies.extend(l);
        stats.errors += e;
    }
    stats.seconds = started.elapsed().as_secs_f64();
    stats.ok = stats.latencies.len();
    stats.latencies.sort();
    Ok(stats)
}
