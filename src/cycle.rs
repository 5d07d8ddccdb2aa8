//! One update cycle: recover -> detect -> plan -> apply. Shared by `tidewatch update` and the
//! `run` daemon; the caller holds the cycle lock.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::apply::{self, Applier, StepOutcome, StepResult};
use crate::check::{detect, Detection};
use crate::config::Config;
use crate::engine::{Engine, EngineError, Observed};
use crate::plan::detect::{eligibility, CheckRow, Eligibility, Status};
use crate::plan::order::{ConfigDependency, Graph, Node};
use crate::plan::update::{self, Candidate, Marks, Plan};
use crate::registry::RegistryClient;
use crate::shutdown::Shutdown;
use crate::state::SharedStore;

/// Everything a cycle talks to.
pub struct Agent {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The engine.
    pub engine: Engine,
    /// The registries.
    pub registry: RegistryClient,
    /// Journal, history, quarantine.
    pub store: SharedStore,
    /// Asked to stop.
    pub shutdown: Shutdown,
}

/// What one cycle saw and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CycleReport {
    /// Interrupted updates finished at the start of the cycle.
    pub recovered: Vec<StepResult>,
    /// Every container's status, as `check` gives it.
    pub containers: Vec<CheckRow>,
    /// The ordered plan.
    pub plan: Plan,
    /// What applying the plan did (empty on a dry run).
    pub results: Vec<StepResult>,
}

impl CycleReport {
    /// True when nothing failed or was rolled back.
    pub fn succeeded(&self) -> bool {
        self.results
            .iter()
            .chain(&self.recovered)
            .all(|r| matches!(r.outcome, StepOutcome::Updated | StepOutcome::Skipped))
    }
}

impl Agent {
    fn applier(&self) -> Applier<'_> {
        Applier {
            engine: &self.engine,
            store: &self.store,
            settings: &self.config.update,
            shutdown: self.shutdown.clone(),
        }
    }

    /// Finishes interrupted recreates (see [`apply::recover`]).
    pub async fn recover(&self) -> Vec<StepResult> {
        apply::recover(&self.applier()).await
    }

    /// Runs one cycle over the containers in scope (only `names` when given). A dry run plans
    /// and changes nothing, not even the state store.
    pub async fn cycle(&self, names: &[String], dry_run: bool) -> Result<CycleReport, EngineError> {
        let recovered = if dry_run {
            Vec::new()
        } else {
            self.recover().await
        };
        let detections = detect(&self.engine, &self.registry, &self.config, names).await?;
        let candidates = candidates(&detections);
        let marks = self.marks(&candidates, dry_run).await;
        let containers = detections.iter().map(|d| d.row.clone()).collect();
        // `update NAME...` checks only the named containers, but the sharers of their
        // namespaces must follow them onto their new containers: the graph then spans every
        // container in scope, which the engine alone can tell.
        let observed: BTreeMap<String, Observed> = if names.is_empty() {
            detections
                .into_iter()
                .map(|d| (d.observed.name.clone(), d.observed))
                .collect()
        } else {
            self.engine
                .inventory(false)
                .await?
                .into_iter()
                .filter(|o| in_scope(o, &self.config))
                .map(|o| (o.name.clone(), o))
                .collect()
        };
        let graph = graph(observed.values(), &self.config);
        let images: BTreeMap<String, String> = observed
            .values()
            .map(|o| (o.name.clone(), o.image.clone()))
            .collect();
        let plan = update::plan(&candidates, &images, &marks, &graph);
        for w in &plan.waiting {
            tracing::info!(container = %w.container, "update waits: {}", w.reason);
        }
        if dry_run {
            return Ok(CycleReport {
                recovered,
                containers,
                plan,
                results: Vec::new(),
            });
        }
        let results = self.applier().apply(&plan, &observed, &graph).await;
        Ok(CycleReport {
            recovered,
            containers,
            plan,
            results,
        })
    }

    /// Quarantine and holds for the candidates. A newer digest lifts both (unless dry run,
    /// which only reads).
    async fn marks(&self, candidates: &[Candidate], dry_run: bool) -> Marks {
        let list: Vec<(String, String)> = candidates
            .iter()
            .map(|c| (c.container.clone(), c.to_digest.clone()))
            .collect();
        let result = self
            .store
            .with(move |s| -> Result<Marks, crate::state::StateError> {
                let mut marks = Marks::default();
                for (container, digest) in list {
                    if !dry_run {
                        s.lift_other_than(&container, &digest)?;
                    }
                    if let Some(why) = s.is_quarantined(&container, &digest)? {
                        marks
                            .quarantined
                            .insert((container.clone(), digest.clone()), why);
                    }
                    if let Some(hold) = s.hold_for(&container)? {
                        if hold.is_lifted_by(&digest) {
                            if !dry_run {
                                s.release(&container)?;
                            }
                        } else {
                            marks
                                .holds
                                .insert(container, (hold.held_digest, hold.skipped_digest));
                        }
                    }
                }
                Ok(marks)
            })
            .await;
        result.unwrap_or_else(|e| {
            tracing::error!("reading quarantine and holds: {e}");
            Marks::default()
        })
    }
}

fn candidates(detections: &[Detection]) -> Vec<Candidate> {
    detections
        .iter()
        .filter(|d| d.row.status == Status::UpdateAvailable)
        .filter_map(|d| {
            Some(Candidate {
                container: d.row.container.clone(),
                image: d.row.image.clone(),
                from_digest: d.row.current_digest.clone(),
                to_digest: d.row.available_digest.clone()?,
            })
        })
        .collect()
}

/// Whether `[watch]` puts the container in this agent's scope (watched, or excluded by a label
/// but still part of the dependency graph, as in a cycle).
pub fn in_scope(o: &Observed, config: &Config) -> bool {
    !matches!(
        eligibility(&o.labels, &config.watch),
        Eligibility::OutOfScope
    )
}

/// The dependency graph of the given containers.
pub fn graph<'a>(observed: impl IntoIterator<Item = &'a Observed>, config: &Config) -> Graph {
    let nodes = observed.into_iter().map(node).collect();
    let extra: Vec<ConfigDependency> = config
        .services
        .values()
        .filter(|s| !s.depends_on.is_empty())
        .map(|s| ConfigDependency {
            name: s.name.clone(),
            depends_on: s.depends_on.clone(),
        })
        .collect();
    let (graph, warnings) = Graph::build(nodes, &extra);
    for w in warnings {
        tracing::warn!("dependencies: {w}");
    }
    graph
}

fn node(o: &Observed) -> Node {
    let host = o.inspect.host_config.clone().unwrap_or_default();
    Node {
        id: o.id.clone(),
        name: o.name.clone(),
        labels: o.labels.clone(),
        links: host.links.unwrap_or_default(),
        network_mode: host.network_mode.unwrap_or_default(),
        pid_mode: host.pid_mode.unwrap_or_default(),
        ipc_mode: host.ipc_mode.unwrap_or_default(),
        volumes_from: host.volumes_from.unwrap_or_default(),
    }
}
