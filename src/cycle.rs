//! One update cycle: recover -> detect -> plan -> apply. Shared by `tidewatch update` and the
//! `run` daemon; the caller holds the cycle lock.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::apply::{self, Applier, StepOutcome, StepResult};
use crate::check::{detect, Detection};
use crate::config::Config;
use crate::engine::{Engine, EngineError, Observed};
use crate::plan::detect;
use crate::plan::detect::{CheckRow, Status};
use crate::plan::order::{ConfigDependency, Graph, Node};
use crate::plan::update::{self, Candidate, Marks, Moment, Plan};
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
            registry: &self.registry,
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
    /// and changes nothing, not even the state store. `force` lets updates through closed
    /// maintenance windows.
    pub async fn cycle(
        &self,
        names: &[String],
        dry_run: bool,
        force: bool,
    ) -> Result<CycleReport, EngineError> {
        let recovered = if dry_run {
            Vec::new()
        } else {
            self.recover().await
        };
        let detections = detect(&self.engine, &self.registry, &self.config, names).await?;
        let mut candidates = candidates(&detections, &self.config);
        let marks = self.marks(&mut candidates, dry_run).await;
        let graph = graph(&detections, &self.config);
        let images: BTreeMap<String, String> = detections
            .iter()
            .map(|d| (d.observed.name.clone(), d.observed.image.clone()))
            .collect();
        let moment = Moment {
            now: chrono::Local::now(),
            force,
        };
        let plan = update::plan(&candidates, &images, &marks, &graph, moment);
        for w in &plan.waiting {
            tracing::info!(container = %w.container, "update waits: {}", w.reason);
        }
        let containers = detections.iter().map(|d| d.row.clone()).collect();
        if dry_run {
            return Ok(CycleReport {
                recovered,
                containers,
                plan,
                results: Vec::new(),
            });
        }
        let observed: BTreeMap<String, Observed> = detections
            .into_iter()
            .map(|d| (d.observed.name.clone(), d.observed))
            .collect();
        let results = self.applier().apply(&plan, &observed, &graph).await;
        Ok(CycleReport {
            recovered,
            containers,
            plan,
            results,
        })
    }

    /// Quarantine and holds for the candidates, and when each new digest was first seen. A
    /// newer digest lifts quarantine and holds (unless dry run, which only reads).
    async fn marks(&self, candidates: &mut [Candidate], dry_run: bool) -> Marks {
        let list: Vec<(String, String)> = candidates
            .iter()
            .map(|c| (c.container.clone(), c.to_digest.clone()))
            .collect();
        let result = self
            .store
            .with(
                move |s| -> Result<(Marks, Vec<FirstSeen>), crate::state::StateError> {
                    let mut marks = Marks::default();
                    let mut seen = Vec::new();
                    for (container, digest) in list {
                        seen.push(if dry_run {
                            s.seen_at(&container, &digest)?
                        } else {
                            Some(s.first_seen(&container, &digest)?)
                        });
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
                    Ok((marks, seen))
                },
            )
            .await;
        match result {
            Ok((marks, seen)) => {
                for (c, first_seen) in candidates.iter_mut().zip(seen) {
                    c.first_seen = first_seen;
                }
                marks
            }
            Err(e) => {
                tracing::error!("reading quarantine and holds: {e}");
                Marks::default()
            }
        }
    }
}

fn candidates(detections: &[Detection], config: &Config) -> Vec<Candidate> {
    detections
        .iter()
        .filter(|d| d.row.status == Status::UpdateAvailable)
        .filter_map(|d| {
            let name = &d.row.container;
            let service = config.services.get(name);
            Some(Candidate {
                container: name.clone(),
                image: d.row.image.clone(),
                from_digest: d.row.current_digest.clone(),
                to_digest: d.row.available_digest.clone()?,
                new_image: d.new_image.clone(),
                policy: detect::policy_for(
                    name,
                    &d.observed.labels,
                    &config.watch,
                    &config.services,
                ),
                window: service
                    .and_then(|s| s.window.clone())
                    .or_else(|| config.watch.window.clone()),
                min_age: service
                    .and_then(|s| s.min_age)
                    .unwrap_or(config.watch.min_age),
                first_seen: None,
            })
        })
        .collect()
}

/// When a candidate's new digest was first seen, if known.
type FirstSeen = Option<chrono::DateTime<chrono::Utc>>;

/// The dependency graph of the watched containers.
pub fn graph(detections: &[Detection], config: &Config) -> Graph {
    let nodes = detections.iter().map(|d| node(&d.observed)).collect();
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
