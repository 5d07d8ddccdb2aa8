//! The `run` loop: a cycle at start, then one per interval or cron tick, never two at once,
//! until shutdown. Shutdown is passed in; between cycles the loop sleeps in a `select!` on it.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use chrono::{DateTime, Local};

use crate::config::{AgentConfig, Trigger};
use crate::cycle::Agent;
use crate::shutdown::Shutdown;
use crate::state::{CycleLock, StateError, Wait};

/// How often a busy cycle lock is tried again.
const LOCK_RETRY: Duration = Duration::from_secs(1);

/// Runs cycles until `shutdown` fires.
pub async fn run(agent: &Agent, mut shutdown: Shutdown) {
    tracing::info!(engine = %agent.engine.host(), "tidewatch running");
    loop {
        let Some(lock) = lock(agent, &mut shutdown).await else {
            break;
        };
        match agent.cycle(&[], false, false).await {
            Ok(report) => {
                let updated = report
                    .results
                    .iter()
                    .filter(|r| r.outcome == crate::apply::StepOutcome::Updated)
                    .count();
                tracing::info!(
                    containers = report.containers.len(),
                    planned = report.plan.steps.len(),
                    updated,
                    waiting = report.plan.waiting.len(),
                    ok = report.succeeded(),
                    "cycle finished"
                );
            }
            Err(e) => tracing::error!("cycle failed: {e}"),
        }
        drop(lock);
        if shutdown.is_triggered() {
            break;
        }
        let delay = next_delay(&agent.config.agent, Local::now(), random_fraction());
        tracing::debug!(in_secs = delay.as_secs(), "next cycle");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.wait() => break,
        }
    }
    tracing::info!("tidewatch stopped");
}

/// Takes the cycle lock, waiting while a manual `tidewatch update` holds it; `None` on shutdown.
async fn lock(agent: &Agent, shutdown: &mut Shutdown) -> Option<CycleLock> {
    let mut said = false;
    loop {
        match CycleLock::acquire(&agent.config.agent.state_dir, Wait::NoWait) {
            Ok(lock) => return Some(lock),
            Err(StateError::Busy { pid, .. }) if !said => {
                tracing::info!(?pid, "another cycle is in progress; waiting");
                said = true;
            }
            Err(StateError::Busy { .. }) => {}
            Err(e) => tracing::error!("cycle lock: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(LOCK_RETRY) => {}
            _ = shutdown.wait() => return None,
        }
    }
}

/// How long until the next cycle: the interval, or until the next cron tick, plus up to
/// `jitter` scaled by `fraction` (in `[0, 1)`).
pub fn next_delay(agent: &AgentConfig, now: DateTime<Local>, fraction: f64) -> Duration {
    let base = match &agent.trigger {
        Trigger::Interval(d) => *d,
        Trigger::Schedule(cron) => cron
            .find_next_occurrence(&now, false)
            .ok()
            .and_then(|next| (next - now).to_std().ok())
            // No next occurrence (an impossible date): check again in an hour.
            .unwrap_or(Duration::from_secs(3600)),
    };
    base + agent.jitter.mul_f64(fraction.clamp(0.0, 1.0))
}

/// A number in `[0, 1)` that differs between calls and processes; jitter needs no more.
fn random_fraction() -> f64 {
    let n = RandomState::new().hash_one(std::time::SystemTime::now());
    (n >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use chrono::TimeZone;

    fn agent(text: &str) -> AgentConfig {
        Config::parse(text, "agent.toml").unwrap().agent
    }

    #[test]
    fn interval_is_the_delay() {
        let a = agent("[agent]\ninterval = \"90s\"\n");
        assert_eq!(next_delay(&a, Local::now(), 0.5), Duration::from_secs(90));
    }

    #[test]
    fn jitter_adds_up_to_its_length() {
        let a = agent("[agent]\ninterval = \"1m\"\njitter = \"20s\"\n");
        assert_eq!(next_delay(&a, Local::now(), 0.0), Duration::from_secs(60));
        assert_eq!(next_delay(&a, Local::now(), 0.5), Duration::from_secs(70));
        assert!(next_delay(&a, Local::now(), 0.999_999) < Duration::from_secs(80));
    }

    #[test]
    fn cron_waits_until_the_next_tick() {
        let a = agent("[agent]\nschedule = \"*/5 * * * *\"\n");
        let now = Local.with_ymd_and_hms(2026, 3, 10, 12, 2, 30).unwrap();
        assert_eq!(next_delay(&a, now, 0.0), Duration::from_secs(150));
    }

    #[test]
    fn random_fraction_is_in_range() {
        for _ in 0..100 {
            let f = random_fraction();
            assert!((0.0..1.0).contains(&f));
        }
    }
}
