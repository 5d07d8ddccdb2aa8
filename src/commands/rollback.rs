//! `tidewatch rollback NAME`: back to the image NAME ran before its last update, by the same
//! safe procedure, then held there until a newer digest is pushed.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use anyhow::{anyhow, Context as _};

use super::{agent, cycle_lock, Exit, Failure};
use crate::apply::StepOutcome;
use crate::config::Config;
use crate::cycle;
use crate::image_ref::ImageRef;
use crate::plan::update::{Plan, PlannedStep, Reason};
use crate::shutdown;

pub(super) async fn run(config: Arc<Config>, name: &str) -> Result<Exit, Failure> {
    let name = name.trim_start_matches('/').to_string();
    let _lock = cycle_lock(&config.agent.state_dir).await?;
    let agent = agent(config, shutdown::on_signals().map_err(anyhow::Error::from)?).await?;
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
        .containers(true)
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

    // The previous image is normally still here (kept for rollback); otherwise pull it back
    // by the digest the history recorded.
    if agent.engine.inspect_image(&previous_image).await.is_ok() {
        agent
            .engine
            .tag(&previous_image, &reference)
            .await
            .context("putting the previous image back under its reference")?;
    } else {
        let digest = last
            .from_digest
            .clone()
            .ok_or_else(|| anyhow!("{name}: the previous image is gone and its digest unknown"))?;
        let sources = agent.registry.pull_sources(&reference).await;
        agent
            .engine
            .pull_by_digest(&reference, &digest, &sources)
            .await
            .context("pulling the previous image")?;
    }

    let step = PlannedStep {
        container: name.clone(),
        image: container.image.clone(),
        from_digest: Some(last.to_digest.clone()),
        to_digest: last.from_digest.clone(),
        new_image: None,
        reason: Reason::Rollback,
    };
    // The containers sharing its namespaces (`container:NAME`) follow it onto the restored
    // container, as they follow an update; left alone, they would stay in the namespace of the
    // container the rollback removes.
    let running_in_scope = observed
        .iter()
        .filter(|o| o.name == name || (o.state == "running" && cycle::in_scope(o, &agent.config)));
    let graph = cycle::graph(running_in_scope, &agent.config);
    let mut steps = vec![step];
    let mut owners = VecDeque::from([name.clone()]);
    while let Some(owner) = owners.pop_front() {
        for sharer in graph.namespace_dependents(&owner) {
            if steps.iter().any(|s| s.container == sharer) {
                continue;
            }
            let image = observed
                .iter()
                .find(|o| o.name == sharer)
                .map(|o| o.image.clone())
                .unwrap_or_default();
            steps.push(PlannedStep {
                container: sharer.clone(),
                image,
                from_digest: None,
                to_digest: None,
                new_image: None,
                reason: Reason::SharesNamespace(owner.clone()),
            });
            owners.push_back(sharer);
        }
    }
    let plan = Plan {
        steps,
        waiting: Vec::new(),
        self_update: None,
    };
    let observed_map: BTreeMap<_, _> = observed.into_iter().map(|o| (o.name.clone(), o)).collect();
    let applier = agent.applier();
    let mut results = applier
        .apply(&plan, &observed_map, &graph)
        .await
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
    if let Some(held) = last.from_digest.clone() {
        let (c, skipped) = (name.clone(), last.to_digest.clone());
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
