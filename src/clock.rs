//! Deadlines from durations that came from outside (the config, a label, the engine, a
//! registry): added without ever panicking. `Instant + Duration` panics on overflow, and a
//! duration such as `500000000000years` or a `StopTimeout` of `i64::MAX` seconds overflows it.

use std::time::{Duration, Instant};

/// The furthest ahead a deadline is put: further is "never" for an agent that restarts with
/// its host, and every platform's clock can hold it.
pub const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// `now + wait`, with `wait` capped at [`FAR_FUTURE`].
pub fn after(now: Instant, wait: Duration) -> Instant {
    now.checked_add(wait.min(FAR_FUTURE))
        // Cannot happen for a hundred years on a monotonic clock that starts near boot; if it
        // did, a deadline of now ends a wait early rather than crashing the agent.
        .unwrap_or(now)
}

/// [`after`] for tokio's clock, which follows tokio's paused test time.
pub fn after_tokio(now: tokio::time::Instant, wait: Duration) -> tokio::time::Instant {
    tokio::time::Instant::from_std(after(now.into_std(), wait))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_durations_give_a_far_deadline_instead_of_a_panic() {
        let now = Instant::now();
        assert_eq!(after(now, Duration::MAX), now + FAR_FUTURE);
        assert_eq!(
            after(now, Duration::from_secs(i64::MAX as u64)),
            now + FAR_FUTURE
        );
        assert_eq!(
            after(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        let tokio_now = tokio::time::Instant::now();
        assert_eq!(
            after_tokio(tokio_now, Duration::MAX),
            tokio_now + FAR_FUTURE
        );
    }
}
