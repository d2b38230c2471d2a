//! Bounds the memory held by large webhook bodies: each is read whole, then
//! parsed, so 200 concurrent 5 MB deliveries would hold gigabytes. Large
//! bodies wait for their share of a fixed budget (GitLab waits 10 s for an
//! answer) instead of failing; small ones never wait.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tokio::sync::Semaphore;

const MIB: usize = 1024 * 1024;

/// Whether a request's headers alone are acceptable (e.g. its credentials).
type Precheck = Arc<dyn Fn(&HeaderMap) -> bool + Send + Sync>;

/// Megabytes of large bodies handled at once.
#[derive(Clone)]
pub struct BodyBudget {
    mib: Arc<Semaphore>,
    /// Bodies without a length are taken to be this large.
    max_body: usize,
    /// Checked before a large body waits or is read; failing it answers 401.
    precheck: Option<Precheck>,
}

impl BodyBudget {
    pub fn new(total_mib: usize, max_body: usize) -> Self {
        Self {
            mib: Arc::new(Semaphore::new(total_mib)),
            max_body,
            precheck: None,
        }
    }

    /// Large requests must pass `check` on their headers before they may wait
    /// for the budget: otherwise anyone could hold it with slow uploads.
    pub fn with_precheck(
        mut self,
        check: impl Fn(&HeaderMap) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.precheck = Some(Arc::new(check));
        self
    }
}

pub async fn limit_large_bodies(
    State(budget): State<BodyBudget>,
    req: Request,
    next: Next,
) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(budget.max_body)
        .min(budget.max_body);
    if declared < MIB {
        return next.run(req).await;
    }
    if budget
        .precheck
        .as_ref()
        .is_some_and(|ok| !ok(req.headers()))
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    // Parsing roughly doubles what the body itself holds; counted in whole MiB.
    let share = declared.div_ceil(MIB) as u32;
    let Ok(_held) = budget.mib.acquire_many(share).await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{
        Router,
        body::{Body, Bytes},
        extract::DefaultBodyLimit,
        middleware::from_fn_with_state,
        routing::post,
    };
    use tower::ServiceExt;

    fn app(budget: &BodyBudget) -> Router {
        Router::new()
            .route("/", post(|b: Bytes| async move { b.len().to_string() }))
            .layer(DefaultBodyLimit::max(8 * MIB))
            .layer(from_fn_with_state(budget.clone(), limit_large_bodies))
    }

    fn post_of(len: usize) -> axum::http::Request<Body> {
        axum::http::Request::post("/")
            .header(header::CONTENT_LENGTH, len)
            .body(Body::from(vec![b'x'; len]))
            .expect("request")
    }

    #[tokio::test]
    async fn large_bodies_wait_for_the_budget_and_small_ones_do_not() {
        let budget = BodyBudget::new(4, 8 * MIB);
        let all = budget
            .mib
            .clone()
            .acquire_many_owned(4)
            .await
            .expect("permits");

        let small = app(&budget).oneshot(post_of(1000)).await.expect("small");
        assert_eq!(small.status(), StatusCode::OK);

        let large = app(&budget).oneshot(post_of(3 * MIB));
        tokio::pin!(large);
        assert!(
            futures::poll!(&mut large).is_pending(),
            "waits for the budget"
        );
        drop(all);
        let large = large.await.expect("large");
        assert_eq!(large.status(), StatusCode::OK);
        assert_eq!(budget.mib.available_permits(), 4, "its share is returned");
    }

    #[tokio::test]
    async fn a_large_body_that_fails_the_precheck_is_refused_unread_and_takes_nothing() {
        let budget = BodyBudget::new(4, 8 * MIB)
            .with_precheck(|h| h.get("x-gitlab-token").is_some_and(|v| v == "right"));
        let stranger = app(&budget)
            .oneshot(post_of(3 * MIB))
            .await
            .expect("stranger");
        assert_eq!(stranger.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(budget.mib.available_permits(), 4);

        let mut req = post_of(3 * MIB);
        req.headers_mut().insert(
            "x-gitlab-token",
            axum::http::HeaderValue::from_static("right"),
        );
        let known = app(&budget).oneshot(req).await.expect("known");
        assert_eq!(known.status(), StatusCode::OK);

        // Small bodies are left to the handler, which authenticates every request.
        let small = app(&budget).oneshot(post_of(1000)).await.expect("small");
        assert_eq!(small.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_body_of_unknown_length_counts_as_the_largest() {
        let budget = BodyBudget::new(8, 8 * MIB);
        let _some = budget.mib.clone().acquire_owned().await.expect("permit");
        let req = axum::http::Request::post("/")
            .body(Body::from_stream(futures::stream::iter([Ok::<
                _,
                std::io::Error,
            >(
                Bytes::from_static(b"chunk"),
            )])))
            .expect("request");
        let fut = app(&budget).oneshot(req);
        tokio::pin!(fut);
        assert!(futures::poll!(&mut fut).is_pending());
    }
}
