//! Recovery of recreates interrupted by a crash or `kill -9`. It trusts the engine over the
//! journal's step: the journal says which containers are involved (old id, aside name, new id),
//! the engine says where they are now.

use super::{Applier, StepOutcome, StepResult};
use crate::engine::{EngineError, Health};
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

    let finish = |outcome: Outcome, reason: String| async move {
        let r = reason.clone();
        if let Err(e) = applier.store.with(move |s| s.finish(id, outcome, &r)).await {
            tracing::warn!(journal = %id, "journal: {e}");
        }
        reason
    };

    // This agent's own self-update, with the agent running again before its successor took
    // over (it would have stopped this agent first): stopping the old container, as for
    // others, would stop the agent itself.
    let own = applier.own_container == Some(entry.old_id.as_str());
    match (old, replacement) {
        // The old container is gone: it is only removed after its replacement was healthy.
        (None, Some(_)) => {
            applier.advance(id, Step::Healthy).await;
            applier.advance(id, Step::Committed).await;
            let why = finish(
                Outcome::Updated,
                "recovered: the replacement had been committed".into(),
            )
            .await;
            Ok((StepOutcome::Updated, why))
        }
        (None, None) => {
            let why = finish(
                Outcome::Failed,
                format!(
                    "recovered: neither the old container {} nor a replacement exists; recreate {name} by hand",
                    entry.old_id
                ),
            )
            .await;
            Ok((StepOutcome::Failed, why))
        }
        // The agent's successor exists: started, it takes over, and finishes the entry.
        (Some(_), Some(new_id)) if own && entry.step != Step::RollingBack => {
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
        // A replacement exists beside the aside old container: keep it only if it proves healthy
        // now, on the digest being rolled out, and the update was not already being undone.
        // A stopped container's replacement is never started: existing is all it proves.
        (Some(_), Some(_)) if !entry.was_running && entry.step != Step::RollingBack => {
            applier.advance(id, Step::Healthy).await;
            let (outcome, detail) = applier.commit(id, &entry.old_id, Outcome::Updated).await;
            Ok((outcome, format!("recovered: {detail}")))
        }
        (Some(_), Some(new_id)) if entry.step != Step::RollingBack => {
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
        (Some(old), None)
            if !own
                && matches!(entry.step, Step::Planned | Step::Pulled)
                && old.name.as_deref().map(|n| n.trim_start_matches('/')) == Some(name) =>
        {
            // `Pulled` is journalled just before the stop request, so the engine may still be
            // carrying out a stop the dead agent asked for; it goes on without its client and
            // would stop the container after a plain start, which is a no-op on a container
            // that is still running. Our own stop waits for that one to end (with the
            // container's own timeout); only then is the start real.
            let why = if entry.step == Step::Pulled {
                engine.stop(&entry.old_id).await?;
                "recovered: interrupted while stopping the old container, which runs again; \
                 retried next cycle"
            } else {
                "recovered: interrupted before the container was touched; retried next cycle"
            };
            if entry.was_running {
                engine.start(&entry.old_id).await?;
            }
            let why = finish(Outcome::Failed, why.into()).await;
            Ok((StepOutcome::Failed, why))
        }
        (Some(_), replacement) => {
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
    let r = reason.clone();
    if let Err(e) = applier
        .store
        .with(move |s| s.finish(id, Outcome::RolledBack, &r))
        .await
    {
        tracing::warn!(journal = %id, "journal: {e}");
    }
    Ok((StepOutcome::RolledBack, reason))
}
