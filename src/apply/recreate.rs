//! One recreate, by the safe procedure, journalled step by step.

use std::collections::BTreeMap;
use std::time::Duration;

use super::hooks::HookVerdict;
use super::{Applier, StepError, StepOutcome, StepResult, Stepped};
use crate::engine::{EngineError, Flavor, Health, Observed};
use crate::image_ref::ImageRef;
use crate::labels;
use crate::plan::hooks::HookMoment;
use crate::plan::recreate::{recreate_spec, EngineSide};
use crate::plan::update::{PlannedStep, Reason};
use crate::state::{JournalEntry, JournalId, NewRecreate, Outcome, StateError, Step};

/// The label in which compose v2 records the image id a container was created from.
const COMPOSE_IMAGE_LABEL: &str = "com.docker.compose.image";

/// The name the old container carries while its replacement starts.
pub(super) fn aside_name(container: &str) -> String {
    let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S");
    format!("{container}-tidewatch-old-{stamp}")
}

/// How a recreate's procedure ended: with an outcome, or called off by a pre-update hook
/// before anything was touched.
enum Procedure {
    Ended(StepOutcome, String),
    Deferred(String),
}

impl From<(StepOutcome, String)> for Procedure {
    fn from((outcome, detail): (StepOutcome, String)) -> Procedure {
        Procedure::Ended(outcome, detail)
    }
}

/// `why`, followed by what earlier hooks of the step said.
fn with_notes(why: String, notes: &[String]) -> String {
    if notes.is_empty() {
        why
    } else {
        format!("{why} (earlier: {})", notes.join("; "))
    }
}

/// The engine's stop timeout for a container that sets none.
const DEFAULT_STOP_TIMEOUT_SECS: u64 = 10;

impl Applier<'_> {
    pub(super) async fn recreate(
        &self,
        step: &PlannedStep,
        old: &Observed,
        names: &BTreeMap<String, String>,
    ) -> Stepped {
        let mut result = StepResult::of(step, &old.image, StepOutcome::Failed, String::new());
        let old = match self.inspected(old).await {
            Ok(Some(old)) => old,
            Ok(None) => {
                result.outcome = StepOutcome::Skipped;
                result.detail = "the container is gone".into();
                return Stepped::Done(result);
            }
            Err(e) => {
                result.detail = format!("not started: {e}");
                return Stepped::Done(result);
            }
        };
        let old = old.as_ref();
        let aside = aside_name(&old.name);
        let id = match self.begin(step, old, &aside).await {
            Ok(id) => id,
            Err(e) => {
                result.detail = format!("not started: {e}");
                return Stepped::Done(result);
            }
        };
        match self.run_procedure(id, &aside, step, old, names).await {
            Procedure::Ended(outcome, detail) => {
                result.outcome = outcome;
                result.detail = detail;
                Stepped::Done(result)
            }
            Procedure::Deferred(why) => {
                // Nothing was touched: the entry goes without a history row.
                if let Err(e) = self.store.with(move |s| s.withdraw(id)).await {
                    tracing::warn!(journal = %id, "journal: {e}");
                }
                Stepped::Deferred(why)
            }
        }
    }

    /// The hook run before `old` is stopped for `step`: pre-update for an update, pre-rollback
    /// for `tidewatch rollback`; none for a namespace sharer (its image does not change) or a
    /// stopped container (nothing to run it in).
    fn hook_before(&self, step: &PlannedStep, old: &Observed) -> Option<crate::plan::hooks::Hook> {
        if old.state != "running" {
            return None;
        }
        match step.reason {
            Reason::NewDigest => self.hook(HookMoment::PreUpdate, old),
            Reason::Rollback => self.hook(HookMoment::PreRollback, old),
            Reason::SharesNamespace(_) => None,
        }
    }

    /// Journals the recreate of `old` for `step` before anything is touched, with the name it
    /// will be set aside as.
    pub(super) async fn begin(
        &self,
        step: &PlannedStep,
        old: &Observed,
        aside: &str,
    ) -> Result<JournalId, StateError> {
        let new_digest = step
            .to_digest
            .clone()
            .or_else(|| step.from_digest.clone())
            .unwrap_or_else(|| old.image_id.clone());
        let record = NewRecreate {
            container: old.name.clone(),
            old_id: old.id.clone(),
            old_image_id: old.image_id.clone(),
            old_digest: step.from_digest.clone(),
            new_digest,
            image_ref: old.image.clone(),
            aside_name: aside.to_string(),
            was_running: old.state == "running",
        };
        self.store.with(move |s| s.begin(&record)).await
    }

    /// Runs the procedure of journal entry `id`, setting the old container aside as `aside`
    /// (the name the entry records, so recovery finds it); returns the outcome with the reason.
    async fn run_procedure(
        &self,
        id: JournalId,
        aside: &str,
        step: &PlannedStep,
        old: &Observed,
        names: &BTreeMap<String, String>,
    ) -> Procedure {
        let name = old.name.as_str();
        // Nothing is touched until the new image is here and the new container's settings are
        // known: failures up to that point leave the old container running as it was.
        let prepared = self.prepare(step, old, names).await;
        let (body, connect_after) = match prepared {
            Ok(p) => p,
            Err(why) => return self.fail_untouched(id, why.to_string()).await.into(),
        };
        self.advance(id, Step::Pulled).await;

        // The hook runs last before the stop, so a dump it takes is as fresh as can be. A crash
        // while it runs leaves the entry at `Pulled`: recovery retries the recreate, hook and all.
        let mut notes = Vec::new();
        if let Some(hook) = self.hook_before(step, old) {
            match self.run_hook(&hook, &old.id, name).await {
                HookVerdict::Passed(note) => notes.extend(note),
                HookVerdict::Defer(why) => return Procedure::Deferred(why),
                HookVerdict::Failed(why) => {
                    return self
                        .fail_untouched(id, format!("not attempted: {why}"))
                        .await
                        .into()
                }
            }
        }
        self.stopped_and_replaced(id, aside, step, old, body, connect_after, notes)
            .await
            .into()
    }

    /// The procedure from the stop of `old` on (see [`Applier::run_procedure`]); `notes` are
    /// what its hooks said so far, for the history.
    #[allow(clippy::too_many_arguments)]
    async fn stopped_and_replaced(
        &self,
        id: JournalId,
        aside: &str,
        step: &PlannedStep,
        old: &Observed,
        body: bollard::models::ContainerCreateBody,
        connect_after: Vec<(String, bollard::models::EndpointSettings)>,
        mut notes: Vec<String>,
    ) -> (StepOutcome, String) {
        let name = old.name.as_str();

        if let Err(e) = self.stop_old(old).await {
            return self
                .roll_back(
                    id,
                    old,
                    None,
                    format!("stopping the old container: {e}"),
                    false,
                )
                .await;
        }
        self.advance(id, Step::Stopped).await;
        if let Err(e) = self.engine.rename(&old.id, aside).await {
            return self
                .roll_back(
                    id,
                    old,
                    None,
                    format!("setting the old container aside: {e}"),
                    false,
                )
                .await;
        }
        self.advance(id, Step::RenamedAside).await;

        let new_id = match self.create_replacement(id, name, body, connect_after).await {
            Ok(new_id) => new_id,
            Err(e) => {
                return self
                    .roll_back(id, old, e.created(), e.to_string(), false)
                    .await
            }
        };
        if old.state != "running" {
            // `[watch] include_stopped`: recreated on the new image, left stopped as it was.
            self.advance(id, Step::Healthy).await;
            return self.commit(id, &old.id, Outcome::Updated).await;
        }
        if let Err(e) = self.engine.start(&new_id).await {
            return self
                .roll_back(id, old, Some(&new_id), e.to_string(), true)
                .await;
        }
        self.advance(id, Step::Started).await;

        let health = self
            .engine
            .wait_healthy(
                &new_id,
                self.settings.min_running,
                self.settings.health_timeout,
                &self.shutdown,
            )
            .await;
        match health {
            Ok(Health::Healthy) => {}
            Ok(Health::Unhealthy(why)) => {
                return self
                    .roll_back(id, old, Some(&new_id), format!("new container {why}"), true)
                    .await
            }
            Ok(Health::Interrupted) => {
                return self
                    .roll_back(
                        id,
                        old,
                        Some(&new_id),
                        "the agent is shutting down".into(),
                        false,
                    )
                    .await
            }
            Err(e) => {
                return self
                    .roll_back(id, old, Some(&new_id), e.to_string(), false)
                    .await
            }
        }
        // Once the new container is running and healthy; the entry stays at `Started` meanwhile,
        // so a crash during the hook is recovered by proving the replacement healthy again.
        let post = match step.reason {
            Reason::SharesNamespace(_) => None,
            _ => self.hook(HookMoment::PostUpdate, old),
        };
        if let Some(hook) = post {
            match self.run_hook(&hook, &new_id, name).await {
                HookVerdict::Passed(note) => notes.extend(note),
                HookVerdict::Defer(why) | HookVerdict::Failed(why) => {
                    return self
                        .roll_back(id, old, Some(&new_id), with_notes(why, &notes), true)
                        .await
                }
            }
        }
        self.advance(id, Step::Healthy).await;
        let outcome = match step.reason {
            Reason::Rollback => Outcome::RolledBack,
            _ => Outcome::Updated,
        };
        let committed = self
            .commit_noting(id, &old.id, outcome, &notes.join("; "))
            .await;
        if step.reason == Reason::NewDigest {
            self.prune_images(old, &new_id).await;
        }
        committed
    }

    /// Stops the old container, with the signal its labels ask for when they ask for one
    /// (`tidewatch.stop-signal` or Watchtower's), given the container's own stop timeout.
    async fn stop_old(&self, old: &Observed) -> Result<(), EngineError> {
        match labels::stop_signal(&old.labels) {
            Some(signal) => {
                let grace = old
                    .details
                    .as_ref()
                    .and_then(|d| d.config.as_ref())
                    .and_then(|c| c.stop_timeout)
                    .and_then(|secs| u64::try_from(secs).ok())
                    .unwrap_or(DEFAULT_STOP_TIMEOUT_SECS);
                self.engine
                    .stop_with_signal(&old.id, signal, Duration::from_secs(grace))
                    .await
            }
            None => self.engine.stop(&old.id).await,
        }
    }

    /// Creates the replacement under `name`, journals its id and connects its other networks
    /// (engines before API 1.44 take one at create).
    pub(super) async fn create_replacement(
        &self,
        id: JournalId,
        name: &str,
        body: bollard::models::ContainerCreateBody,
        connect_after: Vec<(String, bollard::models::EndpointSettings)>,
    ) -> Result<String, StepError> {
        let new_id = self.engine.create(name, body).await?;
        self.advance(
            id,
            Step::Created {
                new_id: new_id.clone(),
            },
        )
        .await;
        for (network, endpoint) in connect_after {
            if let Err(e) = self
                .engine
                .connect_network(&new_id, &network, endpoint)
                .await
            {
                return Err(StepError::NotConnected { new_id, source: e });
            }
        }
        Ok(new_id)
    }

    /// Keeps `[update] keep_images` previous images of the container's repository for
    /// `tidewatch rollback`, and removes older ones nothing uses.
    async fn prune_images(&self, old: &Observed, new_container: &str) {
        let Ok(reference) = ImageRef::parse(&old.image) else {
            return;
        };
        let current = match self.engine.inspect_container(new_container).await {
            Ok(Some(c)) => c.image.unwrap_or_default(),
            _ => return,
        };
        match self
            .engine
            .prune_previous_images(&reference, &current, self.settings.keep_images)
            .await
        {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(repository = %reference.name(), removed = n, "pruned previous images")
            }
            Err(e) => {
                tracing::warn!(repository = %reference.name(), "pruning previous images: {e}")
            }
        }
    }

    /// Pulls the new image (by digest) and builds the new container's settings.
    pub(super) async fn prepare(
        &self,
        step: &PlannedStep,
        old: &Observed,
        names: &BTreeMap<String, String>,
    ) -> Result<
        (
            bollard::models::ContainerCreateBody,
            Vec<(String, bollard::models::EndpointSettings)>,
        ),
        StepError,
    > {
        // With tag tracking the container moves to a newer tag; otherwise it keeps its own.
        let target_image = step.new_image.as_deref().unwrap_or(&old.image);
        let new_image_id = match (&step.reason, &step.to_digest) {
            (Reason::NewDigest, Some(digest)) => {
                let reference = ImageRef::parse(target_image)?;
                let sources = self.registry.pull_sources(&reference).await;
                Some(
                    self.engine
                        .pull_by_digest(&reference, digest, &sources)
                        .await?,
                )
            }
            // The caller put the previous image back under the reference.
            (Reason::Rollback, _) => self
                .engine
                .inspect_image(&old.image)
                .await
                .ok()
                .and_then(|i| i.id),
            // A namespace sharer keeps its own image.
            _ => None,
        };
        let old_image = self.old_image(old).await?;
        let api = self.engine.api_version();
        let resolve = |id: &str| -> Option<String> {
            names
                .iter()
                .find(|(full, _)| full.starts_with(id))
                .map(|(_, name)| name.clone())
        };
        let flavor = self.engine.flavor();
        // Podman records no chosen MAC (see `user_mac`), so it is not asked.
        let chosen_mac = match flavor {
            Flavor::Docker => self.engine.chosen_mac(&old.id).await?,
            Flavor::Podman => None,
        };
        let engine = EngineSide {
            api,
            flavor,
            chosen_mac: chosen_mac.as_deref(),
        };
        let inspect = old
            .details
            .as_deref()
            .ok_or_else(|| StepError::NotInspected(old.name.clone()))?;
        let mut spec = recreate_spec(inspect, &old_image, target_image, engine, &resolve)?;
        // Compose v2 records the image id it created the container from; keep it truthful so
        // a later `docker compose up` sees the container as current.
        if let Some(labels) = spec.body.labels.as_mut() {
            if let (Some(id), Some(label)) = (new_image_id, labels.get_mut(COMPOSE_IMAGE_LABEL)) {
                *label = id;
            }
            super::compose::refresh_config_hash(labels).await;
        }
        Ok((spec.body, spec.connect_after_create))
    }

    /// The image `old` runs, with its defaults (which the new container must not inherit as
    /// settings). On the containerd store a build or pull that moved the tag can have deleted
    /// its record while the container still runs its content; the image id is then the
    /// manifest digest, and pulling it by digest brings the record back (the content is
    /// local, so little moves), for its defaults now and for a rollback later.
    async fn old_image(&self, old: &Observed) -> Result<bollard::models::ImageInspect, StepError> {
        let missing = match self.engine.inspect_image_defaults(&old.image_id).await {
            Ok(image) => return Ok(image),
            Err(e) if e.is_not_found() => e,
            Err(e) => return Err(e.into()),
        };
        let Ok(reference) = ImageRef::parse(&old.image) else {
            return Err(missing.into());
        };
        let sources = self.registry.pull_sources(&reference).await;
        if let Err(source) = self
            .engine
            .restore_by_digest(&reference, &old.image_id, &sources)
            .await
        {
            return Err(StepError::OldImageGone { missing, source });
        }
        tracing::info!(container = %old.name, image = %old.image_id, "pulled the running image back by digest");
        Ok(self.engine.inspect_image_defaults(&old.image_id).await?)
    }

    pub(super) async fn advance(&self, id: JournalId, step: Step) {
        let name = step.name();
        if let Err(e) = self.store.with(move |s| s.advance(id, step)).await {
            // The journal lags reality here; recovery reads the engine, not just the step.
            tracing::warn!(journal = %id, step = name, "journal: {e}");
        }
    }

    /// Closes journal entry `id` as `outcome`, saying why. A journal that cannot be written
    /// is warned about: the engine is already as `outcome` says, and recovery reads the engine.
    pub(super) async fn finish(&self, id: JournalId, outcome: Outcome, why: &str) {
        let why = why.to_string();
        if let Err(e) = self.store.with(move |s| s.finish(id, outcome, &why)).await {
            tracing::warn!(journal = %id, "journal: {e}");
        }
    }

    pub(super) async fn fail_untouched(&self, id: JournalId, why: String) -> (StepOutcome, String) {
        self.finish(id, Outcome::Failed, &why).await;
        (
            StepOutcome::Failed,
            format!("{why} (the old container was not touched)"),
        )
    }

    /// The replacement is healthy: remove the old container and close the entry as `outcome`
    /// (`Updated`, or `RolledBack` for `tidewatch rollback`).
    pub(super) async fn commit(
        &self,
        id: JournalId,
        old_id: &str,
        outcome: Outcome,
    ) -> (StepOutcome, String) {
        self.commit_noting(id, old_id, outcome, "").await
    }

    /// [`Applier::commit`], with `note` (what the step's hooks said) after the outcome's words.
    pub(super) async fn commit_noting(
        &self,
        id: JournalId,
        old_id: &str,
        outcome: Outcome,
        note: &str,
    ) -> (StepOutcome, String) {
        // `Committed` is terminal in the journal; a manual rollback ends as `RolledBack` instead.
        if outcome == Outcome::Updated {
            self.advance(id, Step::Committed).await;
        }
        let mut detail = match outcome {
            Outcome::RolledBack => "healthy again on its previous image".to_string(),
            _ => "healthy on the new image".to_string(),
        };
        if !note.is_empty() {
            detail = format!("{detail}; {note}");
        }
        if let Err(e) = self.engine.remove(old_id).await {
            // The update stands; the aside copy is harmless and recovery retries the removal.
            tracing::warn!(container = old_id, "removing the old container: {e}");
            detail = format!("{detail}; the old container could not be removed: {e}");
        }
        self.finish(id, outcome, &detail).await;
        // The step reached its target either way; only the history tells a manual rollback apart.
        (StepOutcome::Updated, detail)
    }

    /// Puts the old container back under its name and running; quarantines the digest when
    /// the new image itself was at fault.
    pub(super) async fn roll_back(
        &self,
        id: JournalId,
        old: &Observed,
        new_id: Option<&str>,
        why: String,
        quarantine: bool,
    ) -> (StepOutcome, String) {
        tracing::warn!(container = %old.name, "rolling back: {why}");
        self.advance(id, Step::RollingBack).await;
        let entry = self.store.with(move |s| s.entry(id)).await.ok().flatten();
        let restored = match &entry {
            Some(entry) => self.restore_old(entry, new_id).await,
            None => Err(EngineError::Journal(format!(
                "journal entry {id} is missing"
            ))),
        };
        match restored {
            Ok(()) => {
                if quarantine {
                    if let Some(entry) = &entry {
                        let (c, d, r) = (
                            entry.container.clone(),
                            entry.new_digest.clone(),
                            why.clone(),
                        );
                        if let Err(e) = self.store.with(move |s| s.quarantine(&c, &d, &r)).await {
                            tracing::warn!(journal = %id, "quarantine: {e}");
                        }
                    }
                }
                self.finish(id, Outcome::RolledBack, &why).await;
                (
                    StepOutcome::RolledBack,
                    format!("{why}; the old container runs again"),
                )
            }
            Err(e) => {
                let reason = format!("{why}; restoring the old container failed too: {e}");
                tracing::error!(container = %old.name, "{reason}");
                self.finish(id, Outcome::Failed, &reason).await;
                (StepOutcome::Failed, reason)
            }
        }
    }

    /// Removes the replacement (if any), gives the old container back its name, running, and
    /// points the image reference back at the old image so that compose or a plain
    /// `docker run` do not pick up the image that was just refused.
    pub(super) async fn restore_old(
        &self,
        entry: &JournalEntry,
        new_id: Option<&str>,
    ) -> Result<(), EngineError> {
        let (old_id, name) = (entry.old_id.as_str(), entry.container.as_str());
        if let Ok(reference) = ImageRef::parse(&entry.image_ref) {
            if !reference.is_pinned()
                && self.engine.inspect_image(&entry.old_image_id).await.is_ok()
            {
                self.engine.tag(&entry.old_image_id, &reference).await?;
            }
        }
        if let Some(new_id) = new_id {
            self.engine.remove(new_id).await?;
        } else if let Some(holder) = self.engine.inspect_container(name).await? {
            // A replacement may exist whose id was never journalled (crash right after create).
            if holder.id.as_deref() != Some(old_id) {
                self.engine
                    .remove(holder.id.as_deref().unwrap_or(name))
                    .await?;
            }
        }
        let current = self.engine.inspect_container(old_id).await?;
        let current_name = current
            .as_ref()
            .and_then(|c| c.name.as_deref())
            .map(|n| n.trim_start_matches('/').to_string());
        if current_name.as_deref() != Some(name) {
            self.engine.rename(old_id, name).await?;
        }
        if entry.was_running {
            self.engine.start(old_id).await?;
        }
        Ok(())
    }
}
