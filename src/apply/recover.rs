//! Recovery of recreates interrupted by a crash or `kill -9`. It trusts the engine over the
//! journal's step: the journal says which containers are involved (old id, aside name, new id),
//! the engine says where they are now.

use super::{Applier, StepOutcome, StepResult};
use crate::engine::{EngineError, Health};
use crate::plan::recover::{decide, Decision, Interrupted, Progress};
use crate::state::{JournalEntry, Outcome, Step};

/// Finishes every unfinished journal entry: keeps a replacement that runs healthy, else puts
/// the old container back. Never leaves a name without a container or with two.
pub async fn recover(applier: &Applier<'_>) -> Vec<StepResult> {
    let unfinished = match applier.store.with(|s| s.unfinished()).await {
        Ok(entries) => entries,
        Err(e) => {
            tracing::error!("reading the journal: {e}");
            return Vec::new();
        }
    };
    let mut results = Vec::new();
    for entry in unfinished {
        tracing::warn!(
            container = %entry.container,
            step = %entry.step,
            "recovering an interrupted update"
        );
        let (outcome, detail) = match recover_one(applier, &entry).await {
            Ok(r) => r,
            Err(e) => {
                let detail = format!("recovery failed, will retry next cycle: {e}");
                tracing::error!(container = %entry.container, "{detail}");
                (StepOutcome::Failed, detail)
            }
        };
        results.push(StepResult {
            container: entry.container.clone(),
            image: entry.image_ref.clone(),
            from_digest: entry.old_digest.clone(),
            to_digest: Some(entry.new_digest.clone()),
            outcome,
            detail,
            notes: Default::default(),
        });
    }
    results
}

async fn recover_one(
    applier: &Applier<'_>,
    entry: &JournalEntry,
) -> Result<(StepOutcome, String), EngineError> {
    let engine = applier.engine;
    let id = entry.id;
    let name = entry.container.as_str();
    let old = engine.inspect_container(&entry.old_id).await?;
    let holder = engine.inspect_container(name).await?;
    let holder_id = holder.as_ref().and_then(|c| c.id.clone());
    let replacement = holder_id.filter(|h| *h != entry.old_id);
    let decision = decide(&Interrupted {
        container: name,
        progress: progress(&entry.step),
        was_running: entry.was_running,
        own: applier.own_container == Some(entry.old_id.as_str()),
        old_name: old.as_ref().map(|c| c.name.as_deref().unwrap_or_default()),
        replacement: replacement.as_deref(),
    });
    match decision {
        Decision::Committed => {
            applier.advance(id, Step::Healthy).await;
            applier.advance(id, Step::Committed).await;
            let why = "recovered: the replacement had been committed";
            applier.finish(id, Outcome::Updated, why).await;
            Ok((StepOutcome::Updated, why.into()))
        }
        Decision::Lost => {
            let why = format!(
                "recovered: neither the old container {} nor a replacement exists; recreate \
                 {name} by hand",
                entry.old_id
            );
            applier.finish(id, Outcome::Failed, &why).await;
            Ok((StepOutcome::Failed, why))
        }
        // Started, the successor takes over, and finishes the entry.
        Decision::AwaitSuccessor(new_id) => {
            engine.start(&new_id).await?;
            match applier.await_takeover(&new_id).await {
                Ok(()) => Ok((
                    StepOutcome::Skipped,
                    "recovered: the successor agent took over".into(),
                )),
                Err((why, _)) => {
                    restore(applier, entry, Some(&new_id), format!("recovered: {why}")).await
                }
            }
        }
        Decision::KeepStopped => {
            applier.advance(id, Step::Healthy).await;
            let (outcome, detail) = applier.commit(id, &entry.old_id, Outcome::Updated).await;
            Ok((outcome, format!("recovered: {detail}")))
        }
        Decision::ProveHealthy(new_id) => {
            engine.start(&new_id).await?;
            let health = engine
                .wait_healthy(
                    &new_id,
                    applier.settings.min_running,
                    applier.settings.health_timeout,
                    &applier.shutdown,
                )
                .await?;
            if health == Health::Healthy {
                applier.advance(id, Step::Healthy).await;
                let (outcome, detail) = applier.commit(id, &entry.old_id, Outcome::Updated).await;
                return Ok((outcome, format!("recovered: {detail}")));
            }
            let why = match health {
                Health::Unhealthy(why) => format!("recovered: new container {why}"),
                _ => "recovered: interrupted again while checking health".into(),
            };
            restore(applier, entry, Some(&new_id), why).await
        }
        Decision::Retry { stop_first } => {
            // Our own stop waits for the one the dead agent asked for (with the container's
            // own timeout); only then is the start real.
            let why = if stop_first {
                engine.stop(&entry.old_id).await?;
                "recovered: interrupted while stopping the old container, which runs again; \
                 retried next cycle"
            } else {
                "recovered: interrupted before the container was touched; retried next cycle"
            };
            if entry.was_running {
                engine.start(&entry.old_id).await?;
            }
            applier.finish(id, Outcome::Failed, why).await;
            Ok((StepOutcome::Failed, why.into()))
        }
        Decision::Restore(replacement) => {
            restore(
                applier,
                entry,
                replacement.as_deref(),
                format!("recovered: interrupted at step {}", entry.step),
            )
            .await
        }
    }
}

/// How far the journal says the procedure got, as [`decide`] reads it.
fn progress(step: &Step) -> Progress {
    match step {
        Step::Planned => Progress::Planned,
        Step::Pulled => Progress::Pulled,
        Step::RollingBack => Progress::RollingBack,
        _ => Progress::Underway,
    }
}

async fn restore(
    applier: &Applier<'_>,
    entry: &JournalEntry,
    new_id: Option<&str>,
    why: String,
) -> Result<(StepOutcome, String), EngineError> {
    let id = entry.id;
    applier.advance(id, Step::RollingBack).await;
    applier.restore_old(entry, new_id).await?;
    let reason = format!("{why}; the old container runs again");
    applier.finish(id, Outcome::RolledBack, &reason).await;
    Ok((StepOutcome::RolledBack, reason))
}
