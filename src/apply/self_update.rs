//! Self-update (`[update] self_update`): the agent's own container, replaced by a successor on
//! its new digest, never in the middle of a cycle.
//!
//! The old agent, after the cycle's other steps: journal -> pull by digest -> rename its own
//! container aside (it keeps running) -> create the successor under the original name with the
//! same settings and [`REPLACES_ENV`] naming the old container -> start it. The successor, on
//! start-up, stops the old agent, then closes the journal entry and removes the old container
//! ([`Applier::finish_takeover`]) once the old agent has exited. The old agent takes that stop
//! as the handover only once the successor has passed the health gate and still runs
//! ([`judge`]); when the successor fails the gate (also after it stopped the old agent), or has
//! not stopped the old agent within `[update] health_timeout`, the old agent removes it, takes
//! its name back and quarantines the digest.
//!
//! A crash at any point is left to recovery, which reads the old container, its aside name
//! and the successor from the entry. An old agent that runs again (a restart policy) never
//! stops itself (`recover.rs`): it starts a successor that exists and waits for it to take
//! over as above (undoing the update if it does not), and without one takes its name back. A
//! successor that starts stops the old agent and commits the entry; when the old container is
//! already gone, the next cycle's recovery commits it (the successor holds the name).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{Applier, StepOutcome, StepResult};
use crate::engine::{EngineError, Health, Observed};
use crate::plan::update::PlannedStep;
use crate::shutdown;
use crate::state::{Outcome, Step};

/// The environment variable that tells a successor agent which container it replaces.
pub const REPLACES_ENV: &str = "TIDEWATCH_REPLACES";

/// The label of the agent's image (packaging/image): a predecessor is stopped and removed only
/// when it carries it.
pub const AGENT_LABEL: &str = "tidewatch.agent";

/// How a self-update ended for the old agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handover {
    /// The successor runs and stopped this agent: exit, it finishes the update.
    TakenOver,
    /// This agent goes on in its own container; the result says why.
    Kept(StepResult),
}

/// What the old agent knows of its successor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Successor {
    /// It passed the health gate (its HEALTHCHECK, or running for `min_running`).
    Healthy,
    /// Healthy, and seen running and healthy again once this agent was asked to stop.
    Confirmed,
    /// It failed the gate: exited, restarted, unhealthy, or not healthy in time.
    Unhealthy(String),
    /// The engine could not say.
    Unknown(String),
}

impl From<Result<Health, EngineError>> for Successor {
    fn from(health: Result<Health, EngineError>) -> Successor {
        match health {
            Ok(Health::Healthy) => Successor::Healthy,
            Ok(Health::Unhealthy(why)) => Successor::Unhealthy(why),
            // Only with a shutdown to wait on, which the gate here is not given.
            Ok(Health::Interrupted) => {
                Successor::Unknown("the health check was interrupted".into())
            }
            Err(e) => Successor::Unknown(e.to_string()),
        }
    }
}

/// What the old agent concludes while it waits for its successor to take over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Takeover {
    /// The successor runs, healthy, and this agent was asked to stop: exit, it finishes.
    HandedOver,
    /// Asked to stop, with a successor that was healthy: look once more that it still is.
    Confirm,
    /// Keep waiting (for the stop request, until the deadline).
    Wait,
    /// Undo the update: why, and whether the new image is to blame (quarantine).
    Failed(String, bool),
}

/// The handover rule. A stop request (`asked_to_stop`, which the successor sends as soon as
/// it starts) counts only for a successor that passed its health gate and, looked at again
/// then, still runs healthy ([`Successor::Confirmed`]); one that failed the gate is undone
/// whether or not it stopped this agent; a healthy one that has not asked this agent to stop
/// by the deadline (`out_of_time`, `timeout` after it was started) is undone too.
pub(super) fn judge(
    successor: &Successor,
    asked_to_stop: bool,
    out_of_time: bool,
    timeout: Duration,
) -> Takeover {
    match successor {
        Successor::Unhealthy(why) => Takeover::Failed(format!("the successor agent {why}"), true),
        Successor::Unknown(why) => Takeover::Failed(why.clone(), false),
        Successor::Confirmed if asked_to_stop => Takeover::HandedOver,
        Successor::Healthy if asked_to_stop => Takeover::Confirm,
        Successor::Healthy | Successor::Confirmed if out_of_time => Takeover::Failed(
            format!(
                "the successor agent runs but did not take over within {}",
                humantime::format_duration(timeout)
            ),
            true,
        ),
        Successor::Healthy | Successor::Confirmed => Takeover::Wait,
    }
}

impl Applier<'_> {
    /// Replaces the agent's own container `own` by a successor for `step` (see the module
    /// documentation). `names` maps container ids to names, for the settings that name others.
    pub async fn replace_self(
        &self,
        step: &PlannedStep,
        own: &Observed,
        names: &BTreeMap<String, String>,
    ) -> Handover {
        let mut result = StepResult {
            container: own.name.clone(),
            image: own.image.clone(),
            from_digest: step.from_digest.clone(),
            to_digest: step.to_digest.clone(),
            outcome: StepOutcome::Failed,
            detail: String::new(),
            notes: Default::default(),
        };
        let own = match self.inspected(own).await {
            Ok(Some(own)) => own,
            Ok(None) => {
                result.detail = "not started: the agent's own container is gone".into();
                return Handover::Kept(result);
            }
            Err(e) => {
                result.detail = format!("not started: {e}");
                return Handover::Kept(result);
            }
        };
        let own = own.as_ref();
        let aside = super::recreate::aside_name(&own.name);
        let id = match self.begin(step, own, &aside).await {
            Ok(id) => id,
            Err(e) => {
                result.detail = format!("not started: {e}");
                return Handover::Kept(result);
            }
        };
        let (outcome, detail) = match self.hand_over(id, &aside, step, own, names).await {
            Ok(()) => return Handover::TakenOver,
            Err(ended) => ended,
        };
        result.outcome = outcome;
        result.detail = detail;
        Handover::Kept(result)
    }

    /// The procedure of journal entry `id`; `Ok` once the successor has taken over, else the
    /// outcome of putting this agent back.
    async fn hand_over(
        &self,
        id: crate::state::JournalId,
        aside: &str,
        step: &PlannedStep,
        own: &Observed,
        names: &BTreeMap<String, String>,
    ) -> Result<(), (StepOutcome, String)> {
        let (mut body, connect_after) = match self.prepare(step, own, names).await {
            Ok(prepared) => prepared,
            Err(why) => return Err(self.fail_untouched(id, why.to_string()).await),
        };
        self.advance(id, Step::Pulled).await;
        // Unlike other containers, the agent is not stopped first: it must live to start its
        // successor. A running container can be renamed.
        if let Err(e) = self.engine.rename(&own.id, aside).await {
            let why = format!("setting the agent's container aside: {e}");
            return Err(self.roll_back(id, own, None, why, false).await);
        }
        self.advance(id, Step::RenamedAside).await;

        let marker = format!("{REPLACES_ENV}=");
        let env = body.env.get_or_insert_with(Vec::new);
        env.retain(|e| !e.starts_with(&marker));
        env.push(format!("{marker}{}", own.id));
        let new_id = match self
            .create_replacement(id, &own.name, body, connect_after)
            .await
        {
            Ok(new_id) => new_id,
            Err(e) => {
                return Err(self
                    .roll_back(id, own, e.created(), e.to_string(), false)
                    .await)
            }
        };
        if let Err(e) = self.engine.start(&new_id).await {
            return Err(self
                .roll_back(id, own, Some(&new_id), e.to_string(), true)
                .await);
        }
        self.advance(id, Step::Started).await;
        tracing::info!(successor = %new_id, "self-update: successor started; waiting for it to take over");

        match self.await_takeover(&new_id).await {
            Ok(()) => Ok(()),
            Err((why, quarantine)) => Err(self
                .roll_back(id, own, Some(&new_id), why, quarantine)
                .await),
        }
    }

    /// Waits for the started successor `new_id` to take over: it stops this agent as soon as
    /// it is up, but that stop (SIGTERM, the shutdown) is the handover only once the successor
    /// has passed the health gate and still runs (see [`judge`]): a stop while it is starting
    /// (or from someone else) waits for its health, and a successor that fails the gate is
    /// undone even after it stopped this agent. `Err` with why (and whether the new image is
    /// to blame) when it is not healthy, or has not taken over, within `[update]
    /// health_timeout`.
    ///
    /// The engine kills this agent once its container's stop timeout is over; a gate still
    /// running then is left to the successor, which commits the update once this agent's cycle
    /// lock is free.
    pub(super) async fn await_takeover(&self, new_id: &str) -> Result<(), (String, bool)> {
        let timeout = self.settings.health_timeout;
        let deadline = crate::clock::after(Instant::now(), timeout);
        // The gate is not cut short by the shutdown: that is what the successor sends. Its own
        // shutdown never fires while `_keep` lives.
        let (_keep, no_shutdown) = shutdown::channel();
        let health = self
            .engine
            .wait_healthy(new_id, self.settings.min_running, timeout, &no_shutdown)
            .await;
        let mut successor = Successor::from(health);
        let mut shutdown = self.shutdown.clone();
        let mut asked_to_stop = shutdown.is_triggered();
        loop {
            let out_of_time = Instant::now() >= deadline;
            match judge(&successor, asked_to_stop, out_of_time, timeout) {
                Takeover::Confirm => {
                    // One look: running, and healthy (or without a healthcheck).
                    let look = self
                        .engine
                        .wait_healthy(new_id, Duration::ZERO, Duration::ZERO, &no_shutdown)
                        .await;
                    successor = match Successor::from(look) {
                        Successor::Healthy => Successor::Confirmed,
                        other => other,
                    };
                }
                Takeover::HandedOver => return Ok(()),
                Takeover::Failed(why, quarantine) => return Err((why, quarantine)),
                Takeover::Wait => {
                    tokio::select! {
                        _ = shutdown.wait() => asked_to_stop = true,
                        _ = tokio::time::sleep_until(deadline.into()) => {}
                    }
                }
            }
        }
    }

    /// The successor's first act: stops the predecessor agent `predecessor` (only if it is an
    /// agent container, and not `own`). Returns its full id when it was stopped.
    pub async fn stop_predecessor(
        &self,
        predecessor: &str,
        own: Option<&str>,
    ) -> Result<Option<String>, EngineError> {
        let Some(old) = self.engine.inspect_container(predecessor).await? else {
            // Gone already: a restart of a successor long after its takeover.
            return Ok(None);
        };
        let id = old.id.unwrap_or_default();
        let is_agent = old
            .config
            .and_then(|c| c.labels)
            .and_then(|labels| labels.get(AGENT_LABEL).cloned())
            .is_some_and(|v| v == "true");
        if own == Some(id.as_str()) || !is_agent {
            tracing::warn!(
                container = %id,
                "{REPLACES_ENV} names a container that is not another tidewatch agent; left alone"
            );
            return Ok(None);
        }
        tracing::info!(predecessor = %id, "self-update: stopping the agent this one replaces");
        self.engine.stop(&id).await?;
        Ok(Some(id))
    }

    /// Closes the self-update of the stopped predecessor `old_id`: commits its journal entry
    /// (which removes the old container and records the history), or just removes the old
    /// container when no entry names it.
    pub async fn finish_takeover(&self, old_id: &str) -> Option<StepResult> {
        let unfinished = self.store.with(|s| s.unfinished()).await;
        let entry = match unfinished {
            Ok(entries) => entries.into_iter().find(|e| e.old_id == old_id),
            Err(e) => {
                tracing::warn!("reading the journal: {e}");
                None
            }
        };
        let Some(entry) = entry else {
            if let Err(e) = self.engine.remove(old_id).await {
                tracing::warn!(container = old_id, "removing the previous agent: {e}");
            }
            return None;
        };
        self.advance(entry.id, Step::Healthy).await;
        let (outcome, detail) = self.commit(entry.id, old_id, Outcome::Updated).await;
        Some(StepResult {
            container: entry.recreate.container,
            image: entry.recreate.image_ref,
            from_digest: entry.recreate.old_digest,
            to_digest: Some(entry.recreate.new_digest),
            outcome,
            detail: format!("self-update: {detail}"),
            notes: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(120);

    #[test]
    fn a_stop_is_the_handover_only_once_the_healthy_successor_is_confirmed() {
        // Healthy by the gate, then asked to stop: one more look first.
        assert_eq!(
            judge(&Successor::Healthy, true, false, TIMEOUT),
            Takeover::Confirm
        );
        assert_eq!(
            judge(&Successor::Confirmed, true, false, TIMEOUT),
            Takeover::HandedOver
        );
        // The stop may come just after the deadline: a healthy successor that sent it counts.
        assert_eq!(
            judge(&Successor::Confirmed, true, true, TIMEOUT),
            Takeover::HandedOver
        );
    }

    #[test]
    fn a_successor_that_stopped_this_agent_but_failed_its_health_gate_is_undone() {
        // Before #13, any SIGTERM while the gate ran counted as the handover.
        let failed = Successor::Unhealthy("exited with code 1".into());
        assert_eq!(
            judge(&failed, true, false, TIMEOUT),
            Takeover::Failed("the successor agent exited with code 1".into(), true)
        );
        // Likewise when the last look, after the stop, finds it gone or unhealthy.
        let gone = Successor::Unhealthy("the container disappeared".into());
        assert!(matches!(
            judge(&gone, true, false, TIMEOUT),
            Takeover::Failed(_, true)
        ));
        // An engine that cannot say is no reason to blame the image.
        let unknown = Successor::Unknown("the engine is gone".into());
        assert_eq!(
            judge(&unknown, true, false, TIMEOUT),
            Takeover::Failed("the engine is gone".into(), false)
        );
    }

    #[test]
    fn a_healthy_successor_is_waited_for_until_it_stops_this_agent_or_time_is_up() {
        assert_eq!(
            judge(&Successor::Healthy, false, false, TIMEOUT),
            Takeover::Wait
        );
        assert_eq!(
            judge(&Successor::Healthy, false, true, TIMEOUT),
            Takeover::Failed(
                "the successor agent runs but did not take over within 2m".into(),
                true
            )
        );
    }

    #[test]
    fn an_interrupted_health_check_is_no_verdict_on_the_successor() {
        let successor = Successor::from(Ok(Health::Interrupted));
        assert!(matches!(successor, Successor::Unknown(_)), "{successor:?}");
        assert!(matches!(
            judge(&successor, true, false, TIMEOUT),
            Takeover::Failed(_, false)
        ));
        assert_eq!(Successor::from(Ok(Health::Healthy)), Successor::Healthy);
    }
}
