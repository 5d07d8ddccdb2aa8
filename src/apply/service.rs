//! One Swarm service update: point the service at the new digest and let Swarm roll its tasks
//! (its own rolling update, health gating and rollback), then wait for the roll-out to
//! converge and report it like a recreate.
//!
//! There is no journal entry: the update is one Engine API call, and Swarm keeps the previous
//! spec itself. A crash while waiting loses only the report of the outcome.
//!
//! With an agent on every manager, only the Swarm leader's updates services: it is asked at
//! the start of the step and again right before the update (see `plan/actor.rs`). An update
//! another actor got in first, or one refused because an election took the leadership away
//! in between, is `skipped`, not `failed`.

use std::time::{Duration, Instant};

use bollard::models::ServiceSpec;

use super::{Applier, StepOutcome, StepResult};
use crate::engine::{EngineError, Observed};
use crate::image_ref::ImageRef;
use crate::plan::actor::{self, Raced};
use crate::plan::swarm::{self, Convergence};
use crate::plan::update::PlannedStep;
use crate::state::{NewHistory, Outcome};

/// How often the service's `UpdateStatus` is read while it rolls.
const POLL: Duration = Duration::from_millis(500);

/// Why a service update could not be started, or how waiting for it ended badly.
#[derive(Debug, thiserror::Error)]
enum ServiceError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("the service has no container spec image")]
    NoImage,
    #[error(
        "the service now runs {now}, not the digest that was checked: left for the next cycle"
    )]
    Changed { now: String },
    #[error("{0}")]
    BadReference(String),
    #[error("the service's version {0} is beyond what the Engine API takes")]
    Version(u64),
    /// Not this agent's to do, or already done: the step is `skipped` for this reason.
    #[error("{0}")]
    NotOurs(String),
}

impl Applier<'_> {
    /// Updates service `old` to `step.to_digest` and waits until Swarm completes the roll-out
    /// or rolls it back, at most `[swarm] timeout`.
    pub(super) async fn update_service(&self, step: &PlannedStep, old: &Observed) -> StepResult {
        let started = Instant::now();
        let Some(digest) = step.to_digest.clone() else {
            let why = "a service is only updated to a new digest".to_string();
            return StepResult::of(step, &old.image, StepOutcome::Failed, why);
        };
        if let Some(why) = self.not_the_actor().await {
            tracing::info!(service = %old.name, "{why}");
            return StepResult::of(step, &old.image, StepOutcome::Skipped, why);
        }
        let (outcome, detail) = match self.start_roll_out(step, old, &digest).await {
            Ok(started_before) => {
                self.wait_converged(&old.id, started_before.as_deref())
                    .await
            }
            Err(ServiceError::NotOurs(why)) => (StepOutcome::Skipped, why),
            Err(e) => (
                StepOutcome::Failed,
                format!("{e} (the service was not touched)"),
            ),
        };
        let result = StepResult::of(step, &old.image, outcome, detail);
        self.record_service(&result, started.elapsed()).await;
        result
    }

    /// Sends the new spec; returns the `UpdateStatus.StartedAt` the service had before, which
    /// tells this roll-out's status from an earlier one's.
    async fn start_roll_out(
        &self,
        step: &PlannedStep,
        old: &Observed,
        digest: &str,
    ) -> Result<Option<String>, ServiceError> {
        // Read afresh: the version must be the current one, and the service may have moved.
        let service = self.engine.service(&old.id).await?;
        let index = service.version.and_then(|v| v.index).unwrap_or_default();
        let version = i32::try_from(index).map_err(|_| ServiceError::Version(index))?;
        let started_before = service.update_status.and_then(|s| s.started_at);
        let mut spec: ServiceSpec = service.spec.unwrap_or_default();
        let current = swarm::spec_image(&spec)
            .ok_or(ServiceError::NoImage)?
            .to_string();
        let pinned = swarm::split_pinned(&current);
        if pinned.digest.as_deref() == Some(digest) {
            return Err(ServiceError::NotOurs(actor::DONE_ELSEWHERE.into()));
        }
        if pinned.digest != step.from_digest {
            return Err(ServiceError::Changed { now: current });
        }
        // With tag tracking the service moves to the newer tag; otherwise it keeps its own.
        let reference = step.new_image.clone().unwrap_or(pinned.reference);
        let registry_host = ImageRef::parse(&reference)
            .map_err(|e| ServiceError::BadReference(e.to_string()))?
            .registry()
            .to_string();
        let image = swarm::pin(&reference, digest);
        if let Some(c) = spec
            .task_template
            .as_mut()
            .and_then(|t| t.container_spec.as_mut())
        {
            c.image = Some(image.clone());
        }
        spec.update_config = Some(swarm::update_config(
            spec.update_config.as_ref(),
            self.swarm,
        ));
        let found = self.registry.credentials(&registry_host).await;
        tracing::info!(
            service = %old.name,
            %image,
            credentials = %found.source,
            "asking swarm to roll the service"
        );
        if let Some(why) = self.not_the_actor().await {
            return Err(ServiceError::NotOurs(why));
        }
        let updated = self
            .engine
            .update_service(
                &old.id,
                spec,
                version,
                found.credentials.as_ref(),
                &registry_host,
            )
            .await;
        let warnings = match updated {
            Ok(warnings) => warnings,
            Err(e) if e.is_version_conflict() => return Err(self.raced(&old.id, digest).await),
            Err(e) if e.is_leadership_lost() => {
                tracing::info!(service = %old.name, "engine: {e}");
                return Err(ServiceError::NotOurs(actor::LEADERSHIP_MOVED.into()));
            }
            Err(e) => return Err(e.into()),
        };
        for warning in warnings {
            tracing::warn!(service = %old.name, "engine: {warning}");
        }
        Ok(started_before)
    }

    /// Why this agent leaves services alone now, if it does: it is not on the Swarm leader, or
    /// cannot tell (during an election a manager's answers say there is no leader).
    async fn not_the_actor(&self) -> Option<String> {
        match self.engine.leadership().await {
            Ok(leadership) => leadership.why_not(),
            Err(e) => Some(format!(
                "cannot tell whether this node is the swarm leader ({e}): left for the next cycle"
            )),
        }
    }

    /// The engine refused the update as out of sequence: another actor changed the service
    /// since it was read. Read once more: on the wanted digest, the update was done elsewhere;
    /// otherwise the next cycle compares again.
    async fn raced(&self, service: &str, digest: &str) -> ServiceError {
        let now = match self.engine.service(service).await {
            Ok(s) => s
                .spec
                .as_ref()
                .and_then(swarm::spec_image)
                .and_then(|image| swarm::split_pinned(image).digest),
            Err(e) => {
                tracing::warn!(service, "reading the service after a conflict: {e}");
                None
            }
        };
        ServiceError::NotOurs(match actor::after_race(now.as_deref(), digest) {
            Raced::DoneElsewhere => actor::DONE_ELSEWHERE.into(),
            Raced::NextCycle => "the service changed while it was being updated (update out of \
                sequence): compared again next cycle"
                .into(),
        })
    }

    /// Polls the service until its roll-out completes, is rolled back or pauses, or
    /// `[swarm] timeout` passes.
    async fn wait_converged(
        &self,
        service: &str,
        started_before: Option<&str>,
    ) -> (StepOutcome, String) {
        let deadline = crate::clock::after(Instant::now(), self.swarm.timeout);
        let mut last = Convergence::Rolling;
        let mut display = self
            .engine
            .progress()
            .wait(&format!("swarm to roll out {service}"), self.swarm.timeout);
        loop {
            display.tick();
            match self.engine.service(service).await {
                Ok(s) => {
                    let status = s.update_status.unwrap_or_default();
                    last = swarm::convergence(
                        status.state,
                        status.started_at.as_deref(),
                        status.message.as_deref(),
                        started_before,
                    );
                    match &last {
                        Convergence::Completed => {
                            return (
                                StepOutcome::Updated,
                                "swarm completed the rolling update".into(),
                            )
                        }
                        Convergence::RolledBack(why) => {
                            return (
                                StepOutcome::RolledBack,
                                format!("swarm rolled the service back: {why}"),
                            )
                        }
                        Convergence::Paused(why) => {
                            return (
                                StepOutcome::Failed,
                                format!("swarm paused the update: {why}"),
                            )
                        }
                        Convergence::Rolling | Convergence::RollingBack(_) => {}
                    }
                }
                Err(e) => tracing::warn!(service, "reading the update status: {e}"),
            }
            if Instant::now() >= deadline {
                let waited = humantime::format_duration(self.swarm.timeout);
                return match last {
                    Convergence::RollingBack(why) => (
                        StepOutcome::RolledBack,
                        format!(
                            "swarm is rolling the service back ({why}); not finished after {waited}"
                        ),
                    ),
                    _ => (
                        StepOutcome::Failed,
                        format!(
                            "the update did not converge within {waited}; swarm carries on with it"
                        ),
                    ),
                };
            }
            if self.shutdown.is_triggered() {
                return (
                    StepOutcome::Failed,
                    "the agent is shutting down; swarm carries on with the update".into(),
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// History and, after a rollback, quarantine, as for a recreate.
    async fn record_service(&self, result: &StepResult, took: Duration) {
        let outcome = match result.outcome {
            StepOutcome::Updated => Outcome::Updated,
            StepOutcome::RolledBack => Outcome::RolledBack,
            StepOutcome::Failed => Outcome::Failed,
            // Left to another actor or to the next cycle: nothing happened here to remember.
            StepOutcome::Skipped => return,
        };
        let Some(to_digest) = result.to_digest.clone() else {
            return;
        };
        let history = NewHistory {
            at: chrono::Utc::now(),
            container: result.container.clone(),
            image: result.image.clone(),
            from_digest: result.from_digest.clone(),
            to_digest: to_digest.clone(),
            from_image_id: None,
            outcome,
            reason: result.detail.clone(),
            duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            notes: Default::default(),
        };
        let quarantine = (result.outcome == StepOutcome::RolledBack)
            .then(|| (result.container.clone(), to_digest, result.detail.clone()));
        let written = self
            .store
            .with(move |s| {
                s.record_history(&history)?;
                if let Some((service, digest, why)) = quarantine {
                    s.quarantine(&service, &digest, &why)?;
                }
                Ok::<_, crate::state::StateError>(())
            })
            .await;
        if let Err(e) = written {
            tracing::warn!(service = %result.container, "history: {e}");
        }
    }
}
