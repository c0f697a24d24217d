//! What keeps one client, or too many, from wearing the server down: a
//! token bucket per device on signed requests (429), a cap on requests in
//! flight that refuses the excess at once (503) instead of queueing it, and
//! a deadline on every request (408).
//!
//! The rate limit is checked after the signature verifies, keyed by the
//! verified device id: a stranger cannot spend another device's requests by
//! sending unsigned ones under its `keyid`, and the buckets can only ever be
//! as many as the enrolled devices. What an unsigned flood costs (a key
//! lookup and a signature check each) is bounded by the concurrency cap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use super::{AppState, Failure};
use crate::config::RateLimit;

/// How often idle buckets are forgotten, at most.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// One token bucket per device.
#[derive(Debug)]
pub(super) struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    by_device: HashMap<String, Bucket>,
    swept_at: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    pub(super) fn new(limit: RateLimit, now: Instant) -> RateLimiter {
        RateLimiter {
            limit,
            buckets: Mutex::new(Buckets {
                by_device: HashMap::new(),
                swept_at: now,
            }),
        }
    }

    pub(super) fn limit(&self) -> RateLimit {
        self.limit
    }

    fn per_second(&self) -> f64 {
        f64::from(self.limit.per_minute) / 60.0
    }

    fn capacity(&self) -> f64 {
        f64::from(self.limit.burst)
    }

    /// The bucket's tokens at `now`, refilled since it was last used.
    fn refilled(&self, bucket: Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        (bucket.tokens + elapsed * self.per_second()).min(self.capacity())
    }

    /// Spends one of `device_id`'s requests, or says how long until it has
    /// one again.
    pub(super) fn take(&self, device_id: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if now.saturating_duration_since(buckets.swept_at) >= SWEEP_EVERY {
            // A full bucket is the same as none: forgetting it changes nothing.
            buckets
                .by_device
                .retain(|_, bucket| self.refilled(*bucket, now) < self.capacity());
            buckets.swept_at = now;
        }
        let tokens = match buckets.by_device.get(device_id) {
            Some(bucket) => self.refilled(*bucket, now),
            None => self.capacity(),
        };
        if tokens >= 1.0 {
            buckets.by_device.insert(
                device_id.to_owned(),
                Bucket {
                    tokens: tokens - 1.0,
                    updated: now,
                },
            );
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - tokens) / self.per_second()))
        }
    }

    /// How many devices have a bucket that is not full.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_device
            .len()
    }
}

/// Whole seconds to put in `Retry-After`: rounded up, at least 1.
pub(super) fn retry_after_secs(wait: Duration) -> u32 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    u32::try_from(secs).unwrap_or(u32::MAX).max(1)
}

/// The cap on requests in flight and the deadline of each, around every
/// route. A request over the cap is answered 503 at once, without reading
/// its body; one past its deadline is answered 408 (its work is dropped:
/// a report whose write was already queued may still be stored, and the
/// agent's retry then gets its receipt).
pub(super) async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let _permit = match &state.inner.in_flight {
        Some(in_flight) => match Arc::clone(in_flight).try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                state.metrics().refused("overloaded");
                tracing::warn!(
                    limit = state.inner.limits.max_concurrent_requests,
                    "request refused: too many requests in flight"
                );
                return Failure::retry_later(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the server is handling as many requests as it can; nothing was changed, try again shortly",
                    Duration::from_secs(1),
                )
                .into_response();
            }
        },
        None => None,
    };
    let Some(timeout) = state.inner.limits.request_timeout else {
        return next.run(request).await;
    };
    let http1 = request.version() <= Version::HTTP_11;
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            state.metrics().refused("timed_out");
            tracing::warn!(timeout_secs = timeout.as_secs_f64(), "request timed out");
            let mut response = Failure::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request took longer than the {} s allowed; send it again (a report is never stored twice)",
                    timeout.as_secs_f64()
                ),
            )
            .into_response();
            if http1 {
                // Part of the body may still be on its way: start afresh.
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            response
        }
    }
}

/// The semaphore behind the cap, when there is one.
pub(super) fn in_flight(max: Option<usize>) -> Option<Arc<Semaphore>> {
    max.map(|max| Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_minute: u32, burst: u32, start: Instant) -> RateLimiter {
        RateLimiter::new(RateLimit { per_minute, burst }, start)
    }

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let start = Instant::now();
        let limiter = limiter(60, 3, start);
        for _ in 0..3 {
            assert_eq!(limiter.take("a", start), Ok(()));
        }
        let wait = limiter.take("a", start).unwrap_err();
        assert_eq!(retry_after_secs(wait), 1, "{wait:?}");
        let later = start + Duration::from_millis(1000);
        assert_eq!(limiter.take("a", later), Ok(()), "one more after a second");
        assert!(limiter.take("a", later).is_err());
    }

    #[test]
    fn devices_have_their_own_buckets() {
        let start = Instant::now();
        let limiter = limiter(60, 1, start);
        assert_eq!(limiter.take("a", start), Ok(()));
        assert!(limiter.take("a", start).is_err());
        assert_eq!(limiter.take("b", start), Ok(()));
    }

    #[test]
    fn the_wait_is_the_time_to_the_next_token() {
        let start = Instant::now();
        let limiter = limiter(6, 1, start);
        assert_eq!(limiter.take("a", start), Ok(()));
        let wait = limiter
            .take("a", start + Duration::from_secs(4))
            .unwrap_err();
        assert_eq!(retry_after_secs(wait), 6, "{wait:?}");
        assert_eq!(limiter.take("a", start + Duration::from_secs(10)), Ok(()));
    }

    #[test]
    fn idle_buckets_are_forgotten() {
        let start = Instant::now();
        let limiter = limiter(60, 10, start);
        assert_eq!(limiter.take("idle", start), Ok(()));
        assert_eq!(limiter.tracked(), 1);
        let busy = start + SWEEP_EVERY;
        for _ in 0..5 {
            assert_eq!(limiter.take("busy", busy), Ok(()));
        }
        assert_eq!(limiter.tracked(), 1, "the idle bucket refilled and went");
        let wait = start + SWEEP_EVERY * 2;
        assert_eq!(limiter.take("other", wait), Ok(()));
        assert_eq!(limiter.tracked(), 1, "and so did the busy one, later");
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }
}
