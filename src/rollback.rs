//! Rolling a container back to the image it ran before its last update, by the same safe
//! procedure as an update, then holding it there until a newer digest is pushed. Shared by
//! `tidewatch rollback NAME` and the daemon's `POST /v1/rollback`; the caller holds the cycle
//! lock.

use std::collections::BTreeMap;

use crate::apply::{StepOutcome, StepResult};
use crate::cycle::{self, Agent};
use crate::engine::EngineError;
use crate::image_ref::ImageRef;
use crate::plan;
use crate::plan::rollback::Rollback;
use crate::state::StateError;

/// Why a rollback did not happen (or did not finish).
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    /// A `[[gitops]]` file's row (`<file>#<service>`...): git holds what it runs.
    #[error("{0}: a row of a [[gitops]] file, not a container; revert the commit that pinned it (`tidewatch history {0}` names it)")]
    GitRow(String),
    /// The history has no successful update of the container.
    #[error("{0}: no update in the history to roll back")]
    NoUpdate(String),
    /// The history's last update does not say which image ran before.
    #[error("{0}: the history does not record its previous image")]
    NoPreviousImage(String),
    /// No container of that name.
    #[error("{0}: no such container")]
    NoSuchContainer(String),
    /// The agent's own container: stopping it would stop the rollback half-way.
    #[error("{0}: this agent's own container; roll it back from outside it (tidewatch on the host, or docker)")]
    OwnContainer(String),
    /// The previous image is gone and the history has no digest to pull it back by.
    #[error("{0}: the previous image is gone and its digest unknown")]
    PreviousImageGone(String),
    /// The container's image reference cannot be parsed.
    #[error("{name}: reading its image reference: {reason}")]
    Reference {
        /// The container.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The state store failed.
    #[error("{what}: {source}")]
    State {
        /// What was being done.
        what: &'static str,
        /// The store's error.
        source: StateError,
    },
    /// The engine failed.
    #[error("{what}: {source}")]
    Engine {
        /// What was being done.
        what: &'static str,
        /// The engine's error.
        source: EngineError,
    },
    /// The safe procedure ran and did not end on the previous image (it restored the container
    /// it started from).
    #[error("{name}: rollback {outcome}: {detail}")]
    NotDone {
        /// The container.
        name: String,
        /// How the step ended.
        outcome: StepOutcome,
        /// Why.
        detail: String,
    },
}

/// A rollback that was done.
#[derive(Debug, Clone)]
pub struct RolledBack {
    /// The digest (else the image id) the container runs again.
    pub back_to: String,
    /// The containers sharing its namespaces, recreated to follow it, and how each ended.
    pub sharers: Vec<StepResult>,
}

/// Rolls container `name` back to the image it ran before its last update and holds it there.
/// Recovers interrupted updates first, as a cycle does.
pub async fn roll_back(agent: &Agent, name: &str) -> Result<RolledBack, RollbackError> {
    let name = name.trim_start_matches('/').to_string();
    // Docker refuses a `#` in a container's name; a write-back row always has one.
    if name.contains('#') {
        return Err(RollbackError::GitRow(name));
    }
    agent.recover().await;
    let wanted = name.clone();
    let last = agent
        .store
        .with(move |s| s.last_update(&wanted))
        .await
        .map_err(|source| RollbackError::State {
            what: "reading history",
            source,
        })?
        .ok_or_else(|| RollbackError::NoUpdate(name.clone()))?;
    let previous_image = last
        .from_image_id
        .clone()
        .ok_or_else(|| RollbackError::NoPreviousImage(name.clone()))?;

    let engine = |what| move |source| RollbackError::Engine { what, source };
    let mut observed = agent
        .engine
        .containers(true, None)
        .await
        .map_err(engine("listing containers"))?;
    agent
        .engine
        .inspect_details(&mut observed, |o| {
            o.name == name || (o.state == "running" && cycle::in_scope(o, &agent.config))
        })
        .await
        .map_err(engine("inspecting containers"))?;
    let container = observed
        .iter()
        .find(|o| o.name == name)
        .cloned()
        .ok_or_else(|| RollbackError::NoSuchContainer(name.clone()))?;
    if agent.is_own(&container) {
        return Err(RollbackError::OwnContainer(name));
    }
    let reference = ImageRef::parse(&container.image).map_err(|e| RollbackError::Reference {
        name: name.clone(),
        reason: e.to_string(),
    })?;
    restore_previous_image(
        agent,
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
    let mut results = agent
        .applier()
        .apply(&plan, &observed_map, &graph)
        .await
        .results
        .into_iter();
    let Some(result) = results.next() else {
        return Err(RollbackError::NotDone {
            name,
            outcome: StepOutcome::Failed,
            detail: "the rollback did not run".into(),
        });
    };
    if result.outcome != StepOutcome::Updated {
        // The safe procedure restored what ran before; put the tag back where it was.
        if let Err(e) = agent.engine.tag(&container.image_id, &reference).await {
            tracing::warn!("restoring the tag of {reference}: {e}");
        }
        return Err(RollbackError::NotDone {
            name,
            outcome: result.outcome,
            detail: result.detail,
        });
    }
    if let Some((held, skipped)) = rollback.hold() {
        let c = name.clone();
        agent
            .store
            .with(move |s| s.hold(&c, &held, &skipped))
            .await
            .map_err(|source| RollbackError::State {
                what: "recording the hold",
                source,
            })?;
    }
    Ok(RolledBack {
        back_to: last.from_digest.clone().unwrap_or(previous_image),
        sharers: results.collect(),
    })
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
) -> Result<(), RollbackError> {
    if agent.engine.inspect_image(previous_image).await.is_ok() {
        return agent
            .engine
            .tag(previous_image, reference)
            .await
            .map_err(|source| RollbackError::Engine {
                what: "putting the previous image back under its reference",
                source,
            });
    }
    let digest = digest.ok_or_else(|| RollbackError::PreviousImageGone(name.to_string()))?;
    let sources = agent.registry.pull_sources(reference).await;
    agent
        .engine
        .pull_by_digest(reference, digest, &sources)
        .await
        .map_err(|source| RollbackError::Engine {
            what: "pulling the previous image",
            source,
        })?;
    Ok(())
}
