//! Bounds the memory held by large webhook bodies: each is read whole, then
//! parsed, so 200 concurrent 5 MB deliveries would hold gigabytes. Large
//! bodies wait for their share of a fixed budget (GitLab waits 10 s for an
//! answer) instead of failing; small ones never wait.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tokio::sync::Semaphore;

const MIB: usize = 1024 * 1024;

/// Megabytes of large bodies handled at once.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    mib: Arc<Semaphore>,
    /// Bodies without a length are taken to be this large.
    max_body: usize,
}

impl BodyBudget {
    pub fn new(total_mib: usize, max_body: usize) -> Self {
        Self {
            mib: Arc::new(Semaphore::new(total_mib)),
            max_body,
        }
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
