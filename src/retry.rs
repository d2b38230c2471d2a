//! Bounded retries for the bot's API clients (Scaleway, GitLab): one policy, one backoff.

use std::time::Duration;

use rand::Rng;

/// How failed calls are retried. Each client has its defaults; tests shrink the durations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1 is always made).
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubled for each later one.
    pub base_backoff: Duration,
    /// Ceiling of the computed backoff.
    pub max_backoff: Duration,
    /// Ceiling of a server-sent `Retry-After` taken inside a call.
    pub max_retry_after: Duration,
}

impl RetryPolicy {
    /// Retries without waiting, and no `Retry-After` wait inside a call: for tests.
    pub fn immediate() -> Self {
        Self {
            max_attempts: 3,
            base_backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
            max_retry_after: Duration::ZERO,
        }
    }

    /// Exponential backoff with "equal jitter" (between half and all of the step), so calls
    /// retrying at once do not stay in lockstep.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let step = self
            .base_backoff
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.max_backoff);
        let half = step / 2;
        let jitter = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rand::rng().random_range(0..=jitter))
    }

    /// The wait before attempt `attempt + 1`: `Retry-After` (capped) when the server sent
    /// one, else [`RetryPolicy::backoff`].
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(wait) => wait.min(self.max_retry_after),
            None => self.backoff(attempt),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_its_ceiling_and_retry_after_is_capped() {
        let p = RetryPolicy {
            max_attempts: 4,
            base_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(10),
        };
        let first = p.backoff(1);
        assert!((Duration::from_secs(1)..=Duration::from_secs(2)).contains(&first));
        let third = p.backoff(3);
        assert!((Duration::from_millis(2500)..=Duration::from_secs(5)).contains(&third));
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(60))),
            Duration::from_secs(10)
        );
        assert_eq!(RetryPolicy::immediate().backoff(5), Duration::ZERO);
    }
}
