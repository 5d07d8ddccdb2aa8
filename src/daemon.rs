//! The `run` loop: a cycle at start, then one per interval or cron tick, and one per API
//! trigger; never two at once, until shutdown. Shutdown is passed in; between cycles the loop
//! waits in a `select!` on the next tick, the trigger channel and shutdown.

use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use chrono::{DateTime, Local, Utc};
use tokio::sync::mpsc;

use crate::api::{StatusBoard, Trigger as ApiTrigger};
use crate::apply::{Handover, StepOutcome};
use crate::check::observe_all;
use crate::config::{AgentConfig, Trigger};
use crate::cycle::{Agent, CycleReport};
use crate::image_ref::ImageRef;
use crate::metrics::Metrics;
use crate::notify::{Event, EventKind};
use crate::shutdown::Shutdown;
use crate::state::{CycleLock, StateError, Wait};

/// How often a busy cycle lock is tried again.
const LOCK_RETRY: Duration = Duration::from_secs(1);

/// What the daemon reports into and listens to besides its schedule.
#[derive(Default)]
pub struct Surface {
    /// `/v1/status`.
    pub board: StatusBoard,
    /// `/metrics`.
    pub metrics: Metrics,
    /// Triggers from the API (`None` without `[api]`).
    pub triggers: Option<mpsc::Receiver<ApiTrigger>>,
}

/// Why a cycle runs.
enum Reason {
    Scheduled,
    Triggered(ApiTrigger),
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Scheduled => f.write_str("scheduled"),
            Reason::Triggered(t) => write!(f, "triggered ({t:?})"),
        }
    }
}

/// Runs one cycle, catching a panic at the cycle boundary, so the daemon carries on with the
/// next cycle instead of dying with it: `Err` with the panic's message. An update it
/// interrupted is in the journal, and the next cycle recovers it as after a crash.
async fn guarded<T>(cycle: impl std::future::Future<Output = T>) -> Result<T, String> {
    use futures_util::FutureExt;
    // AssertUnwindSafe: what a cycle shares with the daemon is behind tokio mutexes (which do
    // not poison) or std mutexes read with `into_inner` on poison; the journal, not memory,
    // says what a cut-off update left behind.
    std::panic::AssertUnwindSafe(cycle)
        .catch_unwind()
        .await
        .map_err(|panic| {
            panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".to_string())
        })
}

/// Reports a cycle that panicked: logged with why it ran, counted (`cycle_failed`), and
/// announced as a `failed` event of `tidewatch` itself to the notifiers that want failures.
fn cycle_panicked(
    agent: &Agent,
    surface: &Surface,
    reason: &Reason,
    panic: &str,
    elapsed: Duration,
) {
    surface.metrics.record_cycle_failed(elapsed);
    tracing::error!(
        cycle = %reason,
        panic,
        "cycle panicked and was abandoned; the next cycle runs as scheduled"
    );
    if agent.notifications.wants(EventKind::Failed) {
        let event = Event {
            container: "tidewatch".to_string(),
            image: format!("{reason} cycle"),
            event: EventKind::Failed,
            from_digest: None,
            to_digest: None,
            detail: format!(
                "panicked and was abandoned: {panic}; the next cycle runs as scheduled"
            ),
        };
        // Sent in the background, like a cycle's own notifications.
        drop(agent.notifications.dispatch(&agent.host, vec![event]));
    }
}

/// Runs cycles until `shutdown` fires.
pub async fn run(agent: &Agent, mut shutdown: Shutdown, mut surface: Surface) {
    tracing::info!(engine = %agent.engine.host(), "tidewatch running");
    let mut reason = Reason::Scheduled;
    let mut next_tick = Instant::now();
    loop {
        let Some(lock) = lock(agent, &mut shutdown).await else {
            break;
        };
        let clock = Instant::now();
        let handed_over = match guarded(run_one(agent, &surface, &reason)).await {
            Ok(handed_over) => handed_over,
            Err(panic) => {
                cycle_panicked(agent, &surface, &reason, &panic, clock.elapsed());
                false
            }
        };
        drop(lock);
        if handed_over {
            tracing::info!("self-update: the successor agent took over; exiting");
            break;
        }
        release_freed_memory();
        // Counted from the end of a scheduled cycle; a triggered one leaves the schedule be.
        if let Reason::Scheduled = reason {
            let delay = next_delay(&agent.config.agent, Local::now(), random_fraction());
            next_tick = crate::clock::after(Instant::now(), delay);
        }
        if shutdown.is_triggered() {
            break;
        }
        tracing::debug!(
            in_secs = next_tick
                .saturating_duration_since(Instant::now())
                .as_secs(),
            "next scheduled cycle"
        );
        reason = tokio::select! {
            _ = tokio::time::sleep_until(next_tick.into()) => Reason::Scheduled,
            Some(t) = recv(&mut surface.triggers) => Reason::Triggered(t),
            _ = shutdown.wait() => break,
        };
    }
    tracing::info!("tidewatch stopped");
}

async fn recv(triggers: &mut Option<mpsc::Receiver<ApiTrigger>>) -> Option<ApiTrigger> {
    match triggers {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// One cycle, narrowed to what a trigger names, then the self-update if the plan has one, all
/// recorded everywhere. True when a successor agent took over and this one must exit.
async fn run_one(agent: &Agent, surface: &Surface, reason: &Reason) -> bool {
    let (names, force, full) = match reason {
        Reason::Scheduled => (Vec::new(), false, true),
        Reason::Triggered(t @ ApiTrigger::Cycle { container, force }) => {
            tracing::info!(?t, "cycle triggered through the API");
            (
                container.iter().cloned().collect(),
                *force,
                container.is_none(),
            )
        }
        Reason::Triggered(t @ ApiTrigger::Images(images)) => {
            // Services too, on a Swarm manager: they follow references like containers.
            let names = match observe_all(&agent.engine, agent.config.watch.include_stopped).await {
                Ok((observed, _)) => observed
                    .iter()
                    .filter(|o| t.selects(&o.name, &o.image) || same_repository(images, &o.image))
                    .map(|o| o.name.clone())
                    .collect::<Vec<_>>(),
                Err(e) => {
                    tracing::error!("listing containers for a registry push: {e}");
                    return false;
                }
            };
            if names.is_empty() {
                tracing::info!(?images, "registry push: no container uses these references");
                return false;
            }
            tracing::info!(?images, containers = ?names, "registry push: checking the containers that use it");
            (names, false, false)
        }
    };
    let started = Utc::now();
    let clock = Instant::now();
    let result = agent.cycle(&names, false, force).await;
    for (registry, requests, errors) in agent.registry.take_registry_counts().await {
        surface.metrics.record_registry(&registry, requests, errors);
    }
    let mut handed_over = false;
    match result {
        Ok(mut report) => {
            // Not while shutting down: that may be a successor taking over already (recovery
            // waits for one that exists).
            let self_update = report.plan.self_update.clone();
            if let Some(step) = self_update.filter(|_| !agent.shutdown.is_triggered()) {
                match agent.replace_self(&step).await {
                    Handover::TakenOver => handed_over = true,
                    Handover::Kept(result) => {
                        tracing::warn!(outcome = %result.outcome, "self-update: {}", result.detail);
                        report.results.push(result);
                    }
                }
            }
            // Sent in the background; the next cycle does not wait for it.
            drop(agent.announce(&report).await);
            surface.metrics.record_cycle(&report, clock.elapsed());
            if full {
                surface.board.update(&report, started, Utc::now());
            } else {
                surface.board.merge(&report, started, Utc::now());
            }
            log_summary(&report);
        }
        Err(e) => {
            surface.metrics.record_cycle_error(clock.elapsed());
            tracing::error!("cycle failed: {e}");
        }
    }
    handed_over
}

/// A push of another tag of a container's repository matters to containers that track tags
/// (`tidewatch.track`); checking the others costs one `HEAD` each.
fn same_repository(pushed: &[String], image: &str) -> bool {
    let Ok(image) = ImageRef::parse(image) else {
        return false;
    };
    pushed
        .iter()
        .filter_map(|p| ImageRef::parse(p).ok())
        .any(|p| p.name() == image.name())
}

fn log_summary(report: &CycleReport) {
    let updated = report
        .results
        .iter()
        .filter(|r| r.outcome == StepOutcome::Updated)
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

/// Hands the memory a cycle freed back to the system. glibc keeps freed heap for reuse, so an
/// agent that sleeps between cycles would otherwise sit on its busiest moment's footprint.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of glibc's own heap to the kernel; it reads
    // and writes no memory of ours and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
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
    base.saturating_add(agent.jitter.mul_f64(fraction.clamp(0.0, 1.0)))
}

/// A number in `[0, 1)` that differs between calls and processes; jitter needs no more.
fn random_fraction() -> f64 {
    let n = RandomState::new().hash_one(std::time::SystemTime::now());
    (n >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests;
