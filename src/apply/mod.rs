//! Applying a plan: each step recreates one container by the safe procedure, journalled so a
//! crash at any point can be recovered ([`recover`]).
//!
//! The procedure: pull by digest -> stop old -> rename old aside -> create new under the
//! original name -> start -> health gate -> remove old (commit), or remove new, rename old back
//! and start it (rollback). The old container is never removed before its replacement is
//! healthy.

mod compose;
mod error;
mod hooks;
mod recover;
mod recreate;
mod self_update;
mod service;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::config::{ServiceConfig, SwarmConfig, UpdateConfig};
use crate::engine::{Engine, EngineError, Kind, Observed};
use crate::plan::order::Graph;
use crate::plan::update::{Plan, PlannedStep, Reason, WaitReason, Waiting};
use crate::registry::RegistryClient;
use crate::shutdown::Shutdown;
use crate::state::SharedStore;

pub use crate::report::{StepOutcome, StepResult};
pub use error::StepError;
pub use recover::recover;
pub use self_update::{Handover, AGENT_LABEL, REPLACES_ENV};

impl StepResult {
    /// The result of `step` on `image`, ending as `outcome` for `detail`.
    fn of(step: &PlannedStep, image: &str, outcome: StepOutcome, detail: String) -> StepResult {
        StepResult {
            container: step.container.clone(),
            image: image.to_string(),
            from_digest: step.from_digest.clone(),
            to_digest: step.to_digest.clone(),
            outcome,
            detail,
            notes: Default::default(),
        }
    }
}

/// What applying needs.
pub struct Applier<'a> {
    /// The engine.
    pub engine: &'a Engine,
    /// The registries: where to pull from, with which credentials.
    pub registry: &'a RegistryClient,
    /// The journal, history and quarantine.
    pub store: &'a SharedStore,
    /// `[update]`.
    pub settings: &'a UpdateConfig,
    /// `[swarm]`: how services are rolled.
    pub swarm: &'a SwarmConfig,
    /// `[[service]]`, by container name: their lifecycle hooks.
    pub services: &'a BTreeMap<String, ServiceConfig>,
    /// Stops between steps, and undoes a step caught in its health gate.
    pub shutdown: Shutdown,
    /// The id of the container this agent runs in, if any: recovery never stops it.
    pub own_container: Option<&'a str>,
}

/// What applying a plan did.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// How each step that was attempted (or skipped) ended.
    pub results: Vec<StepResult>,
    /// Steps a pre-update hook deferred to the next cycle (exit 75), with why: they wait
    /// like an update outside its maintenance window.
    pub waiting: Vec<Waiting>,
}

/// How one step went: done (whatever its outcome), or deferred by its pre-update hook.
enum Stepped {
    Done(StepResult),
    Deferred(String),
}

impl Applier<'_> {
    /// Applies `plan` step by step. A failed or deferred step skips the containers that depend
    /// on it; the others go on.
    pub async fn apply(
        &self,
        plan: &Plan,
        observed: &BTreeMap<String, Observed>,
        graph: &Graph,
    ) -> Applied {
        let names: BTreeMap<String, String> = observed
            .values()
            .map(|o| (o.id.clone(), o.name.clone()))
            .collect();
        let mut blocked: BTreeMap<String, String> = BTreeMap::new();
        let mut restarted: BTreeSet<String> = BTreeSet::new();
        // Namespace sharers restarted after their owner was rolled back, with what happened.
        let mut rejoined: BTreeMap<String, String> = BTreeMap::new();
        let planned: BTreeSet<&str> = plan.steps.iter().map(|s| s.container.as_str()).collect();
        let mut results = Vec::with_capacity(plan.steps.len());
        let mut waiting = Vec::new();
        for step in &plan.steps {
            let skip =
                |detail: String| StepResult::of(step, &step.image, StepOutcome::Skipped, detail);
            if self.shutdown.is_triggered() {
                results.push(skip("the agent is shutting down".into()));
                continue;
            }
            if let Some(failed) = blocked.get(&step.container) {
                let rejoin = rejoined
                    .get(&step.container)
                    .map(|note| format!("; {note}"))
                    .unwrap_or_default();
                results.push(skip(format!(
                    "its dependency {failed} was not updated{rejoin}"
                )));
                continue;
            }
            let Some(old) = observed.get(&step.container) else {
                results.push(skip("the container is gone".into()));
                continue;
            };
            let stepped = match old.kind {
                Kind::Container => self.recreate(step, old, &names).await,
                Kind::Service => Stepped::Done(self.update_service(step, old).await),
            };
            let result = match stepped {
                Stepped::Done(result) => result,
                Stepped::Deferred(why) => {
                    tracing::info!(container = %step.container, "update waits: {why}");
                    for dependent in graph.dependents_transitive(&step.container) {
                        blocked.entry(dependent).or_insert(step.container.clone());
                    }
                    waiting.push(Waiting {
                        container: step.container.clone(),
                        to_digest: step
                            .to_digest
                            .clone()
                            .or_else(|| step.from_digest.clone())
                            .unwrap_or_default(),
                        reason: WaitReason::PreUpdateHook { why },
                    });
                    continue;
                }
            };
            tracing::info!(
                container = %result.container,
                outcome = %result.outcome,
                detail = %result.detail,
                "update step finished"
            );
            if result.outcome == StepOutcome::Updated {
                if let Reason::NewDigest = step.reason {
                    self.restart_compose_dependents(
                        &step.container,
                        graph,
                        &planned,
                        &mut restarted,
                    )
                    .await;
                }
            } else {
                if result.outcome == StepOutcome::RolledBack {
                    self.rejoin_namespace_sharers(&step.container, observed, graph, &mut rejoined)
                        .await;
                }
                for dependent in graph.dependents_transitive(&step.container) {
                    blocked.entry(dependent).or_insert(step.container.clone());
                }
            }
            results.push(result);
        }
        Applied { results, waiting }
    }

    /// `old` with its full inspect data, which recreating it needs: as observed when the cycle
    /// fetched it, else read now. `None` when the container is gone.
    pub(crate) async fn inspected<'o>(
        &self,
        old: &'o Observed,
    ) -> Result<Option<Cow<'o, Observed>>, EngineError> {
        if old.details.is_some() {
            return Ok(Some(Cow::Borrowed(old)));
        }
        let details = self.engine.inspect_container(&old.id).await?;
        Ok(details.map(|d| {
            Cow::Owned(Observed {
                details: Some(Box::new(d)),
                ..old.clone()
            })
        }))
    }

    /// A rollback stopped the old container and started it again, which gave it new network,
    /// pid and ipc namespaces: containers that share them (`container:<owner>`) are left in the
    /// dead ones, cut off from it, until they restart. Their ids do not change, so a restart
    /// joins them to the running owner again; sharers of sharers follow their own owner.
    /// Only sharers that were running are restarted.
    async fn rejoin_namespace_sharers(
        &self,
        owner: &str,
        observed: &BTreeMap<String, Observed>,
        graph: &Graph,
        rejoined: &mut BTreeMap<String, String>,
    ) {
        let mut owners = VecDeque::from([owner.to_string()]);
        while let Some(current) = owners.pop_front() {
            for sharer in graph.namespace_dependents(&current) {
                let running = observed.get(&sharer).is_some_and(|o| o.state == "running");
                if !running || rejoined.contains_key(&sharer) {
                    continue;
                }
                let note = match self.engine.restart(&sharer).await {
                    Ok(()) => {
                        tracing::info!(
                            container = %sharer,
                            owner = %current,
                            "restarted to rejoin its owner's namespace"
                        );
                        format!("restarted to rejoin the namespace of {current}")
                    }
                    Err(e) => {
                        tracing::warn!(
                            container = %sharer,
                            owner = %current,
                            "restarting to rejoin its owner's namespace: {e}"
                        );
                        format!("restarting it to rejoin the namespace of {current} failed: {e}")
                    }
                };
                rejoined.insert(sharer.clone(), note);
                owners.push_back(sharer);
            }
        }
    }

    /// Compose dependents declared with `restart: true` are restarted after their dependency
    /// changed, as `docker compose up` does.
    async fn restart_compose_dependents(
        &self,
        container: &str,
        graph: &Graph,
        planned: &BTreeSet<&str>,
        restarted: &mut BTreeSet<String>,
    ) {
        for dependent in graph.restart_dependents(container) {
            if planned.contains(dependent.as_str()) || !restarted.insert(dependent.clone()) {
                continue;
            }
            match self.engine.restart(&dependent).await {
                Ok(()) => {
                    tracing::info!(container = %dependent, after = container, "restarted compose dependent")
                }
                Err(e) => {
                    tracing::warn!(container = %dependent, "restarting compose dependent: {e}")
                }
            }
        }
    }
}
