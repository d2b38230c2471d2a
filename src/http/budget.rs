//! Reading request bodies under limits. A body is read whole before it can be verified
//! (signatures cover the raw bytes) and parsed, so before any of it is read:
//! - its headers are checked as far as they go (GitLab's token, a signature's headers and
//!   their freshness; Slack's timestamp and signature headers): strangers are refused unread;
//! - a body larger than the route's limit is refused unread (413);
//! - its declared size is taken from a fixed memory budget, of which one peer (an IP address,
//!   an IPv6 /64) may hold only a share. Bodies wait, up to [`BUDGET_WAIT`], for their share
//!   rather than fail (a burst of genuine large webhooks queues), then get 503.
//!
//! While it is read, a body that stalls or trickles (below a minimum average rate once a
//! grace period is over, or past a total time) is cut off with 408 and gives its share back,
//! so slow strangers cannot keep the budget from genuine senders. The share is held until the
//! handler is done with the body (parsing holds about as much again).

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::{Body, Bytes},
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use http_body_util::BodyExt;
use hyper::body::Body as _;
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Instant,
};

use crate::{config::HttpSettings, metrics::Metrics};

const KIB: usize = 1024;
/// Peers tracked before entries nobody uses are swept.
const PEERS_SWEEP_AT: usize = 1024;

/// GitLab waits 10 s for an answer: waiting longer for the budget helps nobody.
pub const BUDGET_WAIT: Duration = Duration::from_secs(10);

/// Why a request was refused on its headers: the status and a short text for the caller.
pub type Refusal = (StatusCode, &'static str);

/// Checks a request's headers before its body is read.
type Precheck = Arc<dyn Fn(&HeaderMap) -> Result<(), Refusal> + Send + Sync>;

/// Bytes of bodies held at once, counted in KiB, in total and per peer.
pub struct Budget {
    total: Arc<Semaphore>,
    per_peer_kib: usize,
    peers: Mutex<HashMap<IpAddr, Arc<Semaphore>>>,
}

impl Budget {
    pub fn new(total_bytes: usize, per_peer_bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            total: Arc::new(Semaphore::new(total_bytes / KIB)),
            per_peer_kib: per_peer_bytes.min(total_bytes) / KIB,
            peers: Mutex::new(HashMap::new()),
        })
    }

    /// Waits for `kib` of the peer's share, then of the total: a peer's excess waits in its
    /// own queue, never ahead of other peers.
    async fn acquire(self: &Arc<Self>, peer: Option<IpAddr>, kib: u32) -> Option<Held> {
        let peer = match peer {
            Some(ip) => {
                let sem = self.peer_semaphore(ip);
                // Made before waiting, so a wait given up on still tidies the peer's entry.
                let mut held = PeerHeld {
                    budget: self.clone(),
                    ip,
                    permit: None,
                    sem: sem.clone(),
                };
                held.permit = Some(sem.acquire_many_owned(kib).await.ok()?);
                Some(held)
            }
            None => None,
        };
        let total = self.total.clone().acquire_many_owned(kib).await.ok()?;
        Some(Held {
            _total: total,
            _peer: peer,
        })
    }

    fn peer_semaphore(&self, ip: IpAddr) -> Arc<Semaphore> {
        let mut peers = self.lock_peers();
        if peers.len() >= PEERS_SWEEP_AT {
            // Entries whose last holder gave up waiting at an awkward moment.
            peers.retain(|_, sem| Arc::strong_count(sem) > 1);
        }
        peers
            .entry(ip)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_peer_kib)))
            .clone()
    }

    fn lock_peers(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Arc<Semaphore>>> {
        self.peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// KiB nobody holds (tests).
    #[cfg(test)]
    fn available_kib(&self) -> usize {
        self.total.available_permits()
    }
}

/// A body's share; given back when dropped.
struct Held {
    _total: OwnedSemaphorePermit,
    _peer: Option<PeerHeld>,
}

/// A peer's part of a share; the peer's entry goes when nobody holds or waits on it.
struct PeerHeld {
    budget: Arc<Budget>,
    ip: IpAddr,
    permit: Option<OwnedSemaphorePermit>,
    sem: Arc<Semaphore>,
}

impl Drop for PeerHeld {
    fn drop(&mut self) {
        drop(self.permit.take());
        let mut peers = self.budget.lock_peers();
        // The map's reference and this one: nobody else holds or waits.
        if Arc::strong_count(&self.sem) == 2 {
            peers.remove(&self.ip);
        }
    }
}

/// The peer a budget share is counted against: IPv6 peers by /64, which one holder has.
fn peer_key(addr: SocketAddr) -> IpAddr {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        ip => ip,
    }
}

/// How fast a body must arrive.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// The whole body, at most.
    pub timeout: Duration,
    /// Before the minimum rate applies.
    pub grace: Duration,
    /// Average bytes per second after the grace; 0 for none.
    pub min_rate: u64,
}

impl From<&HttpSettings> for Pace {
    fn from(s: &HttpSettings) -> Self {
        Self {
            timeout: s.body_timeout,
            grace: s.body_grace,
            min_rate: s.min_body_rate,
        }
    }
}

/// The limits for one route's bodies.
#[derive(Clone)]
pub struct BodyGate {
    budget: Arc<Budget>,
    limit: usize,
    pace: Pace,
    precheck: Option<Precheck>,
    metrics: Metrics,
}

impl BodyGate {
    pub fn new(budget: Arc<Budget>, limit: usize, pace: Pace, metrics: Metrics) -> Self {
        Self {
            budget,
            limit,
            pace,
            precheck: None,
            metrics,
        }
    }

    /// Requests must pass `check` on their headers before their body waits or is read.
    pub fn with_precheck(
        mut self,
        check: impl Fn(&HeaderMap) -> Result<(), Refusal> + Send + Sync + 'static,
    ) -> Self {
        self.precheck = Some(Arc::new(check));
        self
    }

    fn refuse(&self, reason: &str, status: StatusCode) -> Response {
        Metrics::reason(&self.metrics.http_requests_refused, reason);
        let mut r = status.into_response();
        // The connection may hold the rest of a body nobody will read.
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

/// Middleware: check the headers, take the body's share of the budget, read it under the pace,
/// and hand the handler the bytes.
pub async fn read_body(State(gate): State<BodyGate>, req: Request, next: Next) -> Response {
    if let Some(check) = &gate.precheck
        && let Err(refusal) = check(req.headers())
    {
        Metrics::reason(&gate.metrics.http_requests_refused, "unauthorized");
        return refusal.into_response();
    }
    // Content-Length, or the exact size of a body built in memory.
    let declared = req.body().size_hint().upper();
    let expected = match declared {
        Some(n) if n > gate.limit as u64 => {
            return gate.refuse("too_large", StatusCode::PAYLOAD_TOO_LARGE);
        }
        Some(n) => n as usize,
        None => gate.limit,
    };
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| peer_key(c.0));
    let kib = u32::try_from(expected.div_ceil(KIB)).unwrap_or(u32::MAX);
    let held = match tokio::time::timeout(BUDGET_WAIT, gate.budget.acquire(peer, kib)).await {
        Ok(Some(held)) => held,
        _ => return gate.refuse("busy", StatusCode::SERVICE_UNAVAILABLE),
    };
    let (parts, body) = req.into_parts();
    let bytes = match collect(body, expected, gate.limit, gate.pace).await {
        Ok(b) => b,
        Err(Cut::TooSlow) => return gate.refuse("too_slow", StatusCode::REQUEST_TIMEOUT),
        Err(Cut::TooLarge) => return gate.refuse("too_large", StatusCode::PAYLOAD_TOO_LARGE),
        Err(Cut::Broken) => return gate.refuse("broken", StatusCode::BAD_REQUEST),
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    drop(held);
    response
}

#[derive(Debug, PartialEq, Eq)]
enum Cut {
    TooSlow,
    TooLarge,
    Broken,
}

/// Reads a body of about `expected` bytes whole, holding it to `pace`.
async fn collect(mut body: Body, expected: usize, limit: usize, pace: Pace) -> Result<Bytes, Cut> {
    let start = Instant::now();
    let hard = start + pace.timeout;
    // The share is already held, so allocate it once rather than double as it grows.
    let mut buf = Vec::with_capacity(expected.min(limit));
    loop {
        let due = if pace.min_rate == 0 {
            hard
        } else {
            let allowed =
                pace.grace + Duration::from_secs_f64(buf.len() as f64 / pace.min_rate as f64);
            (start + allowed).min(hard)
        };
        let frame = match tokio::time::timeout_at(due, body.frame()).await {
            Err(_) => return Err(Cut::TooSlow),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(Cut::Broken),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(Cut::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{Router, routing::post};
    use tower::ServiceExt;

    const MIB: usize = 1024 * 1024;

    fn pace() -> Pace {
        Pace {
            timeout: Duration::from_secs(10),
            grace: Duration::from_secs(2),
            min_rate: 64 * 1024,
        }
    }

    fn app(gate: BodyGate) -> Router {
        Router::new()
            .route("/", post(|b: Bytes| async move { b.len().to_string() }))
            .layer(axum::extract::DefaultBodyLimit::max(8 * MIB))
            .layer(axum::middleware::from_fn_with_state(gate, read_body))
    }

    fn post_of(len: usize) -> axum::http::Request<Body> {
        axum::http::Request::post("/")
            .body(Body::from(vec![b'x'; len]))
            .expect("request")
    }

    fn from(ip: &str, mut req: axum::http::Request<Body>) -> axum::http::Request<Body> {
        let addr: SocketAddr = format!("{ip}:1234").parse().expect("addr");
        req.extensions_mut().insert(ConnectInfo(addr));
        req
    }

    #[tokio::test]
    async fn bodies_wait_for_the_budget_and_give_it_back() {
        let budget = Budget::new(4 * MIB, 4 * MIB);
        let gate = BodyGate::new(budget.clone(), 8 * MIB, pace(), Metrics::new());
        let all = budget
            .total
            .clone()
            .acquire_many_owned(4 * 1024)
            .await
            .expect("permits");
        let waiting = app(gate.clone()).oneshot(post_of(3 * MIB));
        tokio::pin!(waiting);
        assert!(futures::poll!(&mut waiting).is_pending(), "waits");
        drop(all);
        let r = waiting.await.expect("response");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(budget.available_kib(), 4 * 1024, "its share is returned");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_or_failing_the_precheck_is_refused_unread() {
        let budget = Budget::new(4 * MIB, 4 * MIB);
        let gate = BodyGate::new(budget.clone(), MIB, pace(), Metrics::new()).with_precheck(|h| {
            if h.get("x-token").is_some_and(|v| v == "right") {
                Ok(())
            } else {
                Err((StatusCode::UNAUTHORIZED, ""))
            }
        });
        let stranger = app(gate.clone()).oneshot(post_of(10)).await.expect("r");
        assert_eq!(stranger.status(), StatusCode::UNAUTHORIZED);
        let mut big = post_of(MIB + 1);
        big.headers_mut()
            .insert("x-token", HeaderValue::from_static("right"));
        let big = app(gate.clone()).oneshot(big).await.expect("r");
        assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(budget.available_kib(), 4 * 1024);
    }

    #[tokio::test]
    async fn one_peer_holds_at_most_its_share_and_others_pass() {
        let budget = Budget::new(8 * MIB, 4 * MIB);
        let gate = BodyGate::new(budget.clone(), 8 * MIB, pace(), Metrics::new());
        // A stalled upload of 4 MiB from one peer holds that peer's share.
        let (tx, stalled_body) = stalled(4 * MIB);
        let stalled_req = from(
            "192.0.2.1",
            axum::http::Request::post("/")
                .body(stalled_body)
                .expect("req"),
        );
        let held = tokio::spawn(app(gate.clone()).oneshot(stalled_req));
        tokio::task::yield_now().await;
        while budget.available_kib() == 8 * 1024 {
            tokio::task::yield_now().await;
        }
        // The same peer waits for its share…
        let same = app(gate.clone()).oneshot(from("192.0.2.1", post_of(MIB)));
        tokio::pin!(same);
        assert!(futures::poll!(&mut same).is_pending());
        // …another peer does not.
        let other = app(gate.clone())
            .oneshot(from("198.51.100.7", post_of(MIB)))
            .await
            .expect("r");
        assert_eq!(other.status(), StatusCode::OK);
        tx.abort();
        let _ = held.await;
        assert_eq!(same.await.expect("r").status(), StatusCode::OK);
        assert_eq!(budget.available_kib(), 8 * 1024);
        assert!(budget.lock_peers().is_empty(), "no peer entry left behind");
    }

    #[tokio::test]
    async fn a_stalled_body_is_cut_when_the_grace_is_over() {
        let gate = BodyGate::new(
            Budget::new(64 * MIB, 32 * MIB),
            8 * MIB,
            pace(),
            Metrics::new(),
        );
        let (tx, body) = stalled(MIB);
        let started = Instant::now();
        let r = app(gate.clone())
            .oneshot(axum::http::Request::post("/").body(body).expect("req"))
            .await
            .expect("r");
        assert_eq!(r.status(), StatusCode::REQUEST_TIMEOUT);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_secs(3),
            "{took:?}"
        );
        drop(tx);
    }

    /// A body of `len` declared bytes that sends 1 KiB and then nothing.
    fn stalled(len: usize) -> (tokio::task::JoinHandle<()>, Body) {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        let task = tokio::spawn(async move {
            let _ = tx.send(Ok(Bytes::from(vec![b'x'; 1024]))).await;
            std::future::pending::<()>().await;
            drop(tx);
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let body = Sized(Body::from_stream(stream), len as u64);
        (task, Body::new(body))
    }

    /// A streamed body that says how long it is, as one with a Content-Length does.
    struct Sized(Body, u64);

    impl http_body::Body for Sized {
        type Data = Bytes;
        type Error = axum::Error;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            std::pin::Pin::new(&mut self.0).poll_frame(cx)
        }
        fn size_hint(&self) -> http_body::SizeHint {
            http_body::SizeHint::with_exact(self.1)
        }
    }
}
