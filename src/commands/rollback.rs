//! `tidewatch rollback NAME`: back to the image NAME ran before its last update, by the same
//! safe procedure, then held there until a newer digest is pushed.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{anyhow, Context as _};

use super::{agent, cycle_lock, Exit, Failure};
use crate::apply::StepOutcome;
use crate::config::Config;
use crate::cycle::{self, Agent};
use crate::image_ref::ImageRef;
use crate::plan;
use crate::plan::rollback::Rollback;
use crate::progress::Progress;
use crate::shutdown;

pub(super) async fn run(config: Arc<Config>, name: &str) -> Result<Exit, Failure> {
    let name = name.trim_start_matches('/').to_string();
    let _lock = cycle_lock(&config.agent.state_dir).await?;
    let mut agent = agent(config, shutdown::on_signals().map_err(anyhow::Error::from)?).await?;
    agent.engine.show_progress(Progress::for_terminal(true));
    agent.recover().await;

    let wanted = name.clone();
    let last = agent
        .store
        .with(move |s| s.last_update(&wanted))
        .await
        .context("reading history")?
        .ok_or_else(|| anyhow!("{name}: no update in the history to roll back"))?;
    let previous_image = last
        .from_image_id
        .clone()
        .ok_or_else(|| anyhow!("{name}: the history does not record its previous image"))?;

    let mut observed = agent
        .engine
        .containers(true, None)
        .await
        .context("listing containers")?;
    agent
        .engine
        .inspect_details(&mut observed, |o| {
            o.name == name || (o.state == "running" && cycle::in_scope(o, &agent.config))
        })
        .await
        .context("inspecting containers")?;
    let container = observed
        .iter()
        .find(|o| o.name == name)
        .cloned()
        .ok_or_else(|| anyhow!("{name}: no such container"))?;
    if agent.is_own(&container) {
        // Stopping it would stop this very process half-way through.
        return Err(anyhow!(
            "{name}: this agent's own container; roll it back from outside it (tidewatch on the host, or docker)"
        )
        .into());
    }
    let reference = ImageRef::parse(&container.image).context("reading its image reference")?;
    restore_previous_image(
        &agent,
        &name,
        &reference,
        &previous_image,
        last.from_digest.as_deref(),
    )
    .await?;

    let rollback = Rollback {
        container: name.clone(),
        image: container.image.clone(),
        leaving: last.to_digest.clone(),
        back_to: last.from_digest.clone(),
    };
    let running_in_scope = observed
        .iter()
        .filter(|o| o.name == name || (o.state == "running" && cycle::in_scope(o, &agent.config)));
    let graph = cycle::graph(running_in_scope, &agent.config);
    let images: BTreeMap<String, String> = observed
        .iter()
        .map(|o| (o.name.clone(), o.image.clone()))
        .collect();
    let plan = plan::rollback::plan(&rollback, &images, &graph);
    let observed_map: BTreeMap<_, _> = observed.into_iter().map(|o| (o.name.clone(), o)).collect();
    let applier = agent.applier();
    let mut results = applier
        .apply(&plan, &observed_map, &graph)
        .await
        .results
        .into_iter();
    let result = results
        .next()
        .ok_or_else(|| anyhow!("{name}: the rollback did not run"))?;
    if result.outcome != StepOutcome::Updated {
        // The safe procedure restored what ran before; put the tag back where it was.
        if let Err(e) = agent.engine.tag(&container.image_id, &reference).await {
            tracing::warn!("restoring the tag of {reference}: {e}");
        }
        return Err(anyhow!("{name}: rollback {}: {}", result.outcome, result.detail).into());
    }
    if let Some((held, skipped)) = rollback.hold() {
        let c = name.clone();
        agent
            .store
            .with(move |s| s.hold(&c, &held, &skipped))
            .await
            .context("recording the hold")?;
    }
    println!(
        "{name}: rolled back to {} and held there until a newer digest is pushed",
        last.from_digest.as_deref().unwrap_or(&previous_image)
    );
    let mut exit = Exit::Success;
    for sharer in results {
        if sharer.outcome == StepOutcome::Updated {
            println!("{}: recreated to follow {name}", sharer.container);
        } else {
            println!(
                "{}: {}: {}",
                sharer.container, sharer.outcome, sharer.detail
            );
            exit = Exit::Failures;
        }
    }
    Ok(exit)
}

/// Puts `previous_image`, the image container `name` ran before its last update, back under
/// `reference`: it is normally still here (kept for rollback); otherwise it is pulled back by
/// `digest`, the one the history recorded.
async fn restore_previous_image(
    agent: &Agent,
    name: &str,
    reference: &ImageRef,
    previous_image: &str,
    digest: Option<&str>,
) -> anyhow::Result<()> {
    if agent.engine.inspect_image(previous_image).await.is_ok() {
        agent
            .engine
            .tag(previous_image, reference)
            .await
            .context("putting the previous image back under its reference")?;
        return Ok(());
    }
    let digest = digest
        .ok_or_else(|| anyhow!("{name}: the previous image is gone and its digest unknown"))?;
    let sources = agent.registry.pull_sources(reference).await;
    agent
        .engine
        .pull_by_digest(reference, digest, &sources)
        .await
        .context("pulling the previous image")?;
    Ok(())
}
