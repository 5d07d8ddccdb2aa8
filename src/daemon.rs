//! The `run` loop: a cycle at start, then one per interval or cron tick, and one per API
//! trigger; never two at once, until shutdown. Shutdown is passed in; between cycles the loop
//! waits in a `select!` on the next tick, the trigger channel and shutdown.
//!
//! When cycles run (`run_loop`) is kept apart from what one does (`Cycles`, which the agent
//! does with its engine), so that the schedule is tested on tokio's paused clock.

use crate::cycle::gitops_on;
use crate::gitops::checkout::Published;
use crate::gitops::plan::Lookups;
use crate::gitops::run::Mode;
use std::hash::{BuildHasher, RandomState};
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Local, SubsecRound, Utc};
use tokio::sync::mpsc;
// tokio's clock, not std's: it is the one that tokio's paused test time moves.
use tokio::time::Instant;

use crate::api::{
    EngineFacts, LastCycle, NextCycle, StatusBoard, Trigger as ApiTrigger, STATUS_HISTORY,
};
use crate::apply::{Handover, StepOutcome};
use crate::config::{AgentConfig, Trigger};
use crate::cycle::{Agent, CycleReport};
use crate::image_ref::ImageRef;
use crate::metrics::Metrics;
use crate::notify::{Event, EventKind};
use crate::plan::recreate::Flavor;
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
    /// Triggers from the API and MQTT install commands (`None` without either).
    pub triggers: Option<mpsc::Receiver<ApiTrigger>>,
    /// The sending side of `triggers`, for the MQTT notifiers' install commands.
    pub trigger_sender: Option<mpsc::Sender<ApiTrigger>>,
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
    if let Reason::Triggered(t) = reason {
        surface
            .board
            .action_finished(t, false, format!("panicked and was abandoned: {panic}"));
    }
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
            notes: Default::default(),
        };
        // Sent in the background, like a cycle's own notifications.
        drop(agent.notifications.dispatch(&agent.host, vec![event]));
    }
}

/// How a cycle ended, for the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CycleEnd {
    /// The loop goes on.
    Finished,
    /// A successor agent took over (self-update): this one must exit.
    HandedOver,
}

/// What the loop runs: one cycle, under the cycle lock. [`AgentCycles`] runs the agent's;
/// the loop's tests run ones that record when they ran.
trait Cycles {
    /// Held while a cycle runs.
    type Lock;
    /// Takes the cycle lock, waiting while another process holds it; `None` on shutdown.
    async fn lock(&self, shutdown: &mut Shutdown) -> Option<Self::Lock>;
    /// Runs one cycle, for `reason`.
    async fn cycle(&self, reason: &Reason) -> CycleEnd;
    /// Reports a cycle that panicked after `elapsed`, with the panic's message.
    fn panicked(&self, reason: &Reason, panic: &str, elapsed: Duration);
    /// Says when the next scheduled cycle is due.
    fn scheduled(&self, _at: Instant) {}
}

/// The agent's cycles, recorded into the surface's status board and metrics.
struct AgentCycles<'a> {
    agent: &'a Agent,
    surface: &'a Surface,
}

impl Cycles for AgentCycles<'_> {
    type Lock = CycleLock;

    async fn lock(&self, shutdown: &mut Shutdown) -> Option<CycleLock> {
        lock(&self.agent.config.agent.state_dir, shutdown).await
    }

    async fn cycle(&self, reason: &Reason) -> CycleEnd {
        run_one(self.agent, self.surface, reason).await
    }

    fn panicked(&self, reason: &Reason, panic: &str, elapsed: Duration) {
        cycle_panicked(self.agent, self.surface, reason, panic, elapsed);
    }

    fn scheduled(&self, at: Instant) {
        let at = wall_time(at, Instant::now(), Utc::now());
        self.surface
            .board
            .set_next_cycle(next_cycle(&self.agent.config.agent.trigger, at));
    }
}

/// The wall-clock time, to the second, of `at` on tokio's clock, `now` and `wall_now` being
/// the same moment on both; saturated at the calendar's end.
fn wall_time(at: Instant, now: Instant, wall_now: DateTime<Utc>) -> DateTime<Utc> {
    chrono::Duration::from_std(at.saturating_duration_since(now))
        .ok()
        .and_then(|delay| wall_now.checked_add_signed(delay))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
        .trunc_subsecs(0)
}

/// The `/v1/status` view of a scheduled cycle due `at`.
fn next_cycle(trigger: &Trigger, at: DateTime<Utc>) -> NextCycle {
    let (reason, kind) = match trigger {
        Trigger::Interval(every) => (
            format!("every {} (interval)", humantime::format_duration(*every)),
            "interval",
        ),
        Trigger::Schedule(cron) => (format!("cron \"{cron}\" (schedule)"), "schedule"),
    };
    NextCycle {
        at,
        reason,
        reason_kind: kind.to_string(),
    }
}

/// When scheduled cycles run: `[agent]`'s interval or cron schedule, plus its jitter.
struct Schedule<'a> {
    agent: &'a AgentConfig,
    /// The wall clock that cron ticks are found on: `Local::now`, but for tests.
    wall: &'a (dyn Fn() -> DateTime<Local> + Sync),
}

impl Schedule<'_> {
    /// When the next scheduled cycle is due, a scheduled cycle having ended at `now`.
    fn next_tick(&self, now: Instant) -> Instant {
        let delay = next_delay(self.agent, (self.wall)(), random_fraction());
        crate::clock::after_tokio(now, delay)
    }
}

/// Runs cycles until `shutdown` fires.
pub async fn run(agent: &Agent, shutdown: Shutdown, mut surface: Surface) {
    recall(agent, &surface).await;
    surface.board.set_engine(engine_facts(agent));
    tracing::info!(engine = %agent.engine.host(), "tidewatch running");
    let triggers = surface.triggers.take();
    // Held for the daemon's life: its cycles publish through them, and they say `offline` at
    // shutdown.
    let mqtt = agent.notifications.start_mqtt(
        &agent.host,
        &shutdown,
        surface.trigger_sender.take().as_ref(),
    );
    let cycles = AgentCycles {
        agent,
        surface: &surface,
    };
    let schedule = Schedule {
        agent: &agent.config.agent,
        wall: &Local::now,
    };
    run_loop(&cycles, &schedule, shutdown, triggers).await;
    // A handover ends the loop without shutdown: the connections are dropped with the process.
    if agent.shutdown.is_triggered() {
        futures_util::future::join_all(mqtt).await;
    }
    tracing::info!("tidewatch stopped");
}

/// The loop of [`run`]: a cycle at once, then one at each of `schedule`'s ticks and one per
/// trigger, until shutdown or a handover.
async fn run_loop(
    cycles: &impl Cycles,
    schedule: &Schedule<'_>,
    mut shutdown: Shutdown,
    mut triggers: Option<mpsc::Receiver<ApiTrigger>>,
) {
    let mut reason = Reason::Scheduled;
    let mut next_tick = Instant::now();
    loop {
        let Some(lock) = cycles.lock(&mut shutdown).await else {
            break;
        };
        let clock = Instant::now();
        let end = match guarded(cycles.cycle(&reason)).await {
            Ok(end) => end,
            Err(panic) => {
                cycles.panicked(&reason, &panic, clock.elapsed());
                CycleEnd::Finished
            }
        };
        drop(lock);
        if end == CycleEnd::HandedOver {
            tracing::info!("self-update: the successor agent took over; exiting");
            break;
        }
        release_freed_memory();
        // Counted from the end of a scheduled cycle; a triggered one leaves the schedule be.
        if let Reason::Scheduled = reason {
            next_tick = schedule.next_tick(Instant::now());
            cycles.scheduled(next_tick);
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
            _ = tokio::time::sleep_until(next_tick) => Reason::Scheduled,
            Some(t) = recv(&mut triggers) => Reason::Triggered(t),
            _ = shutdown.wait() => break,
        };
    }
}

async fn recv(triggers: &mut Option<mpsc::Receiver<ApiTrigger>>) -> Option<ApiTrigger> {
    match triggers {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The engine's facts for the status board.
fn engine_facts(agent: &Agent) -> EngineFacts {
    EngineFacts {
        host: agent.engine.host().to_string(),
        flavor: match agent.engine.flavor() {
            Flavor::Docker => "docker",
            Flavor::Podman => "podman",
        }
        .to_string(),
        version: agent.engine.server_version().map(str::to_string),
        api_version: agent.engine.api_version().to_string(),
    }
}

/// One cycle, narrowed to what a trigger names, then the self-update if the plan has one, all
/// recorded everywhere; or the rollback or release a trigger asks for.
async fn run_one(agent: &Agent, surface: &Surface, reason: &Reason) -> CycleEnd {
    if let Reason::Triggered(t) = reason {
        surface.board.action_started(t);
    }
    if let Reason::Triggered(t @ (ApiTrigger::Rollback { .. } | ApiTrigger::Release { .. })) =
        reason
    {
        actions::run(agent, surface, t).await;
        return CycleEnd::Finished;
    }
    let started = Utc::now();
    let clock = Instant::now();
    let (result, full) = match reason {
        Reason::Scheduled => (agent.cycle(&[], false, false).await, true),
        Reason::Triggered(t @ ApiTrigger::Cycle { container, force }) => {
            tracing::info!(
                ?t,
                "cycle triggered through the API or an MQTT install command"
            );
            let names: Vec<String> = container.iter().cloned().collect();
            (
                agent.cycle(&names, false, *force).await,
                container.is_none(),
            )
        }
        Reason::Triggered(t @ ApiTrigger::Images(images)) => {
            // The cycle goes on with the inventory that chose its containers.
            let inventory = match agent.inventory().await {
                Ok(inventory) => inventory,
                Err(e) => {
                    tracing::error!("listing containers for a registry push: {e}");
                    return CycleEnd::Finished;
                }
            };
            // Services too, on a Swarm manager: they follow references like containers.
            let names: Vec<String> = inventory
                .observed
                .iter()
                .filter(|o| t.selects(&o.name, &o.image) || same_repository(images, &o.image))
                .map(|o| o.name.clone())
                .collect();
            if names.is_empty() {
                tracing::info!(?images, "registry push: no container uses these references");
                // The `[[gitops]]` files may name them (asked afresh: no cycle ran).
                write_back(agent, surface, false).await;
                return CycleEnd::Finished;
            }
            tracing::info!(?images, containers = ?names, "registry push: checking the containers that use it");
            (agent.cycle_after(inventory, &names, false).await, false)
        }
        // Answered above.
        Reason::Triggered(ApiTrigger::Rollback { .. } | ApiTrigger::Release { .. }) => {
            return CycleEnd::Finished
        }
    };
    // A cycle narrowed to one container by name leaves the repositories alone.
    let narrowed = matches!(
        reason,
        Reason::Triggered(ApiTrigger::Cycle {
            container: Some(_),
            ..
        })
    );
    if !narrowed && !agent.shutdown.is_triggered() {
        write_back(agent, surface, true).await;
    }
    let requests = record_registry_counts(agent, surface).await;
    surface.board.set_last_cycle_requests(requests);
    let mut end = CycleEnd::Finished;
    match result {
        Ok(mut report) => {
            // Not while shutting down: that may be a successor taking over already (recovery
            // waits for one that exists).
            let self_update = report.plan.self_update.clone();
            if let Some(step) = self_update.filter(|_| !agent.shutdown.is_triggered()) {
                match agent.replace_self(&step).await {
                    Handover::TakenOver => end = CycleEnd::HandedOver,
                    Handover::Kept(result) => {
                        tracing::warn!(outcome = %result.outcome, "self-update: {}", result.detail);
                        report.results.push(result);
                    }
                }
            }
            // Sent in the background; the next cycle does not wait for it.
            drop(agent.announce(&report).await);
            surface.metrics.record_cycle(&report, clock.elapsed());
            let last = if full {
                surface.board.update(&report, started, Utc::now())
            } else {
                surface.board.merge(&report, started, Utc::now())
            };
            remember(agent, surface, Some(last)).await;
            log_summary(&report);
            if let Reason::Triggered(t @ ApiTrigger::Cycle { container, .. }) = reason {
                let (ok, detail) = actions::cycle_outcome(&report, container.as_deref());
                surface.board.action_finished(t, ok, detail);
            }
        }
        Err(e) => {
            surface.metrics.record_cycle_error(clock.elapsed());
            tracing::error!("cycle failed: {e}");
            if let Reason::Triggered(t) = reason {
                surface
                    .board
                    .action_finished(t, false, format!("the cycle failed: {e}"));
            }
        }
    }
    end
}

/// Pins new digests in each `[[gitops]]` repository: one commit per repository, logged.
/// `after_cycle`: the cycle just run asked about some references already.
async fn write_back(agent: &Agent, surface: &Surface, after_cycle: bool) {
    if agent.config.gitops.is_empty() {
        return;
    }
    // Sent in the background, as a cycle's are.
    let reports = if after_cycle {
        let (reports, sending) = agent.write_back(Mode::Apply).await;
        drop(sending);
        reports
    } else {
        let reports = gitops_on(&agent.registry, &agent.config, &Lookups::new(), Mode::Apply).await;
        drop(agent.record_write_back(&reports).await);
        reports
    };
    surface.metrics.record_gitops(&reports);
    surface.board.set_gitops(&reports, Utc::now());
    for r in reports {
        if let Some(Published::Pushed { commit, attempts }) = &r.published {
            tracing::info!(
                repo = r.repo,
                commit,
                attempts,
                "gitops: pinned and pushed: {}",
                r.message
                    .as_deref()
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or_default()
            );
        }
    }
}

/// Adds the registry requests since the last call to the metrics; returns how many there were.
async fn record_registry_counts(agent: &Agent, surface: &Surface) -> u64 {
    let mut total = 0;
    for (registry, requests, errors) in agent.registry.take_registry_counts().await {
        surface.metrics.record_registry(&registry, requests, errors);
        total += requests;
    }
    total
}

/// Puts the last cycle and history a previous run recorded on the board, so `/v1/status` and
/// `tidewatch status` say what happened before a restart while the first cycle still runs. A
/// failure is logged: the first cycle fills the board anyway.
async fn recall(agent: &Agent, surface: &Surface) {
    let read = agent
        .store
        .with(|s| {
            Ok::<_, StateError>((
                s.last_cycle()?,
                s.history(None, STATUS_HISTORY)?,
                s.last_updated()?,
            ))
        })
        .await;
    match read {
        Ok((last, history, updated)) => {
            surface.board.restore(last, history);
            surface.board.set_last_updated(updated);
        }
        Err(e) => tracing::warn!("state store: reading the last cycle for status: {e}"),
    }
}

/// Keeps `last` (if a cycle ended) in the state store, for `tidewatch status` while the
/// daemon is stopped, and puts the newest history entries, when each container was last
/// updated and the digests quarantined this cycle on the board. A failure is logged: the
/// cycle is done.
async fn remember(agent: &Agent, surface: &Surface, last: Option<LastCycle>) {
    let read = agent
        .store
        .with(move |s| {
            if let Some(last) = &last {
                s.record_cycle(last)?;
            }
            Ok::<_, StateError>((
                s.history(None, STATUS_HISTORY)?,
                s.quarantined(None)?,
                s.last_updated()?,
                s.holds()?,
            ))
        })
        .await;
    match read {
        Ok((history, quarantine, updated, holds)) => {
            surface.board.set_history(history);
            surface.board.set_last_updated(updated);
            surface.board.set_held(held(&quarantine, &holds));
            surface.board.hold_quarantined(&quarantine);
        }
        Err(e) => tracing::warn!("state store: recording the cycle for status: {e}"),
    }
}

/// What holds each container back, in words, for the board: its rollback hold, then its
/// quarantined digests.
fn held(
    quarantine: &[crate::state::QuarantineEntry],
    holds: &[crate::state::Hold],
) -> std::collections::BTreeMap<String, String> {
    let mut held = std::collections::BTreeMap::new();
    for h in holds {
        held.insert(
            h.container.clone(),
            format!(
                "rolled back to {} and held there until a newer digest than {} is pushed",
                h.held_digest, h.skipped_digest
            ),
        );
    }
    for q in quarantine {
        let text = format!("{} quarantined: {}", q.digest, q.reason);
        held.entry(q.container.clone())
            .and_modify(|t: &mut String| {
                t.push_str("; ");
                t.push_str(&text);
            })
            .or_insert(text);
    }
    held
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

/// Takes the cycle lock in `state_dir`, waiting while a manual `tidewatch update` holds it;
/// `None` on shutdown.
async fn lock(state_dir: &Path, shutdown: &mut Shutdown) -> Option<CycleLock> {
    let mut said = false;
    loop {
        match CycleLock::acquire(state_dir, Wait::NoWait) {
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

mod actions;
#[cfg(test)]
mod tests;
