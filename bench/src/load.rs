//! HTTP load that records each request's latency: closed loop ([`hit`], `concurrency`
//! senders share `requests` POSTs, each sending its next when its last is answered) or
//! open loop ([`hit_at_rate`], requests started on a fixed schedule whatever the answers).

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

/// One POST of `body` with id `id`, and the token headers.
fn request(
    client: &reqwest::Client,
    url: &str,
    body: &Body,
    headers: &[(String, String)],
    id: u64,
) -> reqwest::RequestBuilder {
    let mut req = client
        .post(url)
        .body(body.nth(id))
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(k, v);
    }
    if body.is_unique() {
        req = req.header("idempotency-key", format!("bench-{id}"));
    }
    req
}

/// Sends `req`; whether it was answered with a success.
async fn send(req: reqwest::RequestBuilder) -> bool {
    match req.send().await {
        Ok(r) if r.status().is_success() => {
            // Read the (empty) body so the connection is reused.
            let _ = r.bytes().await;
            true
        }
        _ => false,
    }
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
                // Built (the body copied) before the clock starts, as the send is what is timed.
                let req = request(&client, &url, &body, &headers, first_id + n as u64);
                let t = Instant::now();
                if send(req).await {
                    lat.push(t.elapsed());
                } else {
                    errors += 1;
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

/// Open loop: request `n` is started at `start + n / rate` whatever became of the earlier
/// ones, at most `h.concurrency` in flight (a cap meant to be generous; a request waiting for
/// a slot is late and counted so), and each latency is measured from the scheduled start, not
/// from the send, so a stall shows in every request it delays (no coordinated omission).
pub async fn hit_at_rate(h: Hit<'_>, rate: f64) -> anyhow::Result<Stats> {
    anyhow::ensure!(
        rate.is_finite() && rate > 0.0,
        "the rate must be a positive number of requests per second, not {rate}"
    );
    let cap = h.concurrency.max(1);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(cap)
        .timeout(Duration::from_secs(60))
        .build()?;
    let slots = Arc::new(tokio::sync::Semaphore::new(cap));
    let (due_tx, mut due_rx) = tokio::sync::mpsc::unbounded_channel();
    let requests = h.requests;
    let started = Instant::now();
    // The schedule is kept by a thread of its own: tokio's timer rounds every deadline up to
    // the next whole millisecond, which would add up to 1 ms to each latency (a fifth of a
    // 5 ms target), while a thread's sleep is late by some tens of microseconds.
    std::thread::spawn(move || {
        for n in 0..requests {
            let due = started + Duration::from_secs_f64(n as f64 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if due_tx.send((n, due)).is_err() {
                break; // the receiving side gave up
            }
        }
    });
    let mut tasks = Vec::with_capacity(requests);
    while let Some((n, due)) = due_rx.recv().await {
        let slot = slots.clone().acquire_owned().await?;
        let req = request(&client, h.url, h.body, h.headers, h.first_id + n as u64);
        tasks.push(tokio::spawn(async move {
            let answered = send(req).await;
            drop(slot);
            answered.then(|| due.elapsed())
        }));
    }
    let mut stats = Stats::default();
    for t in tasks {
        match t.await? {
            Some(l) => stats.latencies.push(l),
            None => stats.errors += 1,
        }
    }
    stats.seconds = started.elapsed().as_secs_f64();
    stats.ok = stats.latencies.len();
    stats.latencies.sort();
    Ok(stats)
}
