//! One update cycle: recover -> detect -> plan -> apply. Shared by `tidewatch update` and the
//! `run` daemon; the caller holds the cycle lock.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::apply::{self, Applier, StepOutcome, StepResult};
use crate::config::{Config, Policy};
use crate::engine::{Engine, EngineError, Inventory, Kind, Observed, SwarmRole, WORKER_NOTE};
use crate::gitops::plan::Lookups;
use crate::gitops::run as gitops;
use crate::notify::Notifications;
use crate::plan::detect::{self, eligibility, Detection, Eligibility, Status};
use crate::plan::hooks::HookMoment;
use crate::plan::order::{ConfigDependency, Graph, Node};
use crate::plan::update::{self, Candidate, Marks, Moment};
use crate::registry::RegistryClient;
use crate::release_notes::ReleaseNotes;
use crate::shutdown::Shutdown;
use crate::state::{NewHistory, Outcome as HistoryOutcome, SharedStore};

pub use crate::report::CycleReport;

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
    /// Where updates, rollbacks and failures are announced.
    pub notifications: Notifications,
    /// This server's name, in notifications.
    pub host: String,
    /// The id of the container this agent runs in, if it runs in one of this engine's.
    pub own_container: Option<String>,
    /// What the registries said of each reference in the last cycle's detection, for the
    /// `[[gitops]]` write-back that follows it ([`Agent::write_back`]) not to ask again.
    pub answered: std::sync::Mutex<Lookups>,
}

impl Agent {
    /// What applies plans, with this agent's engine, registries, store and settings.
    pub fn applier(&self) -> Applier<'_> {
        Applier {
            engine: &self.engine,
            registry: &self.registry,
            store: &self.store,
            settings: &self.config.update,
            swarm: &self.config.swarm,
            services: &self.config.services,
            shutdown: self.shutdown.clone(),
            own_container: self.own_container.as_deref(),
        }
    }

    /// The `[[gitops]]` write-back after a cycle: the references the cycle asked about are
    /// not asked again (its answers are used once, then forgotten).
    /// In `Apply` mode the pins are recorded in the history and announced: the handle is the
    /// notifications' sending.
    pub async fn write_back(
        &self,
        mode: gitops::Mode,
    ) -> (Vec<gitops::RepoReport>, Option<tokio::task::JoinHandle<()>>) {
        let answered = std::mem::take(
            &mut *self
                .answered
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let reports = gitops_on(&self.registry, &self.config, &answered, mode).await;
        let sending = if mode == gitops::Mode::Apply {
            Some(self.record_write_back(&reports).await)
        } else {
            None
        };
        (reports, sending)
    }

    /// Records a write-back's pins, and the new digests its `[[verify]]` rules kept out, in the
    /// history and announces them; returns the notifications' sending.
    pub async fn record_write_back(
        &self,
        reports: &[gitops::RepoReport],
    ) -> tokio::task::JoinHandle<()> {
        self.record_pins(reports).await;
        for report in reports {
            self.record_blocked(&report.rows).await;
        }
        self.notifications
            .announce_write_back(&self.store, &self.host, reports)
            .await
    }

    /// One history row per image a pushed commit pinned: the row's name stands for the
    /// container, the reason names the commit and the repository.
    async fn record_pins(&self, reports: &[gitops::RepoReport]) {
        let rows: Vec<NewHistory> = reports
            .iter()
            .filter_map(|r| match &r.published {
                Some(crate::gitops::checkout::Published::Pushed { commit, .. }) => {
                    Some((r, commit))
                }
                _ => None,
            })
            .flat_map(|(r, commit)| {
                r.pins.iter().map(move |p| NewHistory {
                    at: chrono::Utc::now(),
                    container: p.row.clone(),
                    image: p.image.clone(),
                    from_digest: p.old.clone(),
                    to_digest: p.new.clone(),
                    from_image_id: None,
                    outcome: HistoryOutcome::Updated,
                    reason: format!(
                        "pinned in git: commit {} to {}",
                        &commit[..commit.len().min(12)],
                        r.repo
                    ),
                    duration_ms: 0,
                    notes: ReleaseNotes::default(),
                })
            })
            .collect();
        if rows.is_empty() {
            return;
        }
        let written = self
            .store
            .with(move |s| rows.iter().try_for_each(|row| s.record_history(row)))
            .await;
        if let Err(e) = written {
            tracing::warn!("recording gitops pins in the history: {e}");
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
        let inventory = self.inventory().await?;
        self.cycle_on(inventory, recovered, names, dry_run, force)
            .await
    }

    /// The engine's containers and services, as a cycle starts from.
    pub async fn inventory(&self) -> Result<Inventory, EngineError> {
        self.engine
            .inventory(
                self.config.watch.include_stopped,
                self.config.watch.scope.as_deref(),
            )
            .await
    }

    /// [`Agent::cycle`] on an inventory taken already (a trigger needed it to choose `names`):
    /// when recovery finished an interrupted update, the inventory is taken again.
    pub async fn cycle_after(
        &self,
        inventory: Inventory,
        names: &[String],
        force: bool,
    ) -> Result<CycleReport, EngineError> {
        let recovered = self.recover().await;
        let inventory = if recovered.is_empty() {
            inventory
        } else {
            self.inventory().await?
        };
        self.cycle_on(inventory, recovered, names, false, force)
            .await
    }

    /// The stages of a cycle: detect (targets, registry, verdicts), plan, apply.
    async fn cycle_on(
        &self,
        inventory: Inventory,
        recovered: Vec<StepResult>,
        names: &[String],
        dry_run: bool,
        force: bool,
    ) -> Result<CycleReport, EngineError> {
        // Lifecycle check hooks run around a real cycle only: a dry run changes nothing.
        let hooked: Vec<Observed> = if dry_run || !self.config.update.lifecycle_hooks {
            Vec::new()
        } else {
            inventory
                .observed
                .iter()
                .filter(|o| o.kind == Kind::Container && in_scope(o, &self.config))
                .filter(|o| names.is_empty() || names.contains(&o.name))
                .cloned()
                .collect()
        };
        let hooked: Vec<&Observed> = hooked.iter().collect();
        self.applier()
            .run_check_hooks(HookMoment::PreCheck, &hooked)
            .await;
        let (mut detections, answered) =
            detect_sharing(&self.registry, &self.config, &inventory, names).await;
        *self
            .answered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = answered;
        let Inventory { mut observed, .. } = inventory;
        for d in &mut detections {
            let own = observed.iter().any(|o| o.name == d.name && self.is_own(o));
            if own && d.row.status == Status::UpdateAvailable {
                d.row.detail = Some(update::OWN_CONTAINER.into());
            }
        }
        let mut candidates = candidates(&detections, &observed, &self.config, |o| self.is_own(o));
        let marks = self.marks(&mut candidates, dry_run).await;
        let containers: Vec<detect::CheckRow> = detections.iter().map(|d| d.row.clone()).collect();
        if !dry_run {
            self.record_blocked(&containers).await;
        }
        // Only a cycle with something to update needs the containers' full settings: for the
        // namespaces and links of the dependency graph, and for recreating them. `update
        // NAME...` checks only the named containers, but the sharers of their namespaces must
        // follow them onto their new containers: the graph spans every container in scope.
        observed.retain(|o| in_scope(o, &self.config));
        if !candidates.is_empty() {
            self.engine.inspect_details(&mut observed, |_| true).await?;
        }
        let observed: BTreeMap<String, Observed> =
            observed.into_iter().map(|o| (o.name.clone(), o)).collect();
        let graph = graph(observed.values(), &self.config);
        let images: BTreeMap<String, String> = observed
            .values()
            .map(|o| (o.name.clone(), o.image.clone()))
            .collect();
        let moment = Moment {
            now: chrono::Local::now(),
            force,
        };
        let plan = update::plan(
            &candidates,
            &images,
            &marks,
            &graph,
            moment,
            self.config.update.self_update,
        );
        for w in &plan.waiting {
            tracing::info!(container = %w.container, "update waits: {}", w.reason);
        }
        let monitor_only = candidates
            .iter()
            .filter(|c| c.policy == Policy::Notify)
            .map(|c| c.container.clone())
            .collect();
        let rules = rules(&containers, observed.values(), &self.config);
        if dry_run {
            return Ok(CycleReport {
                recovered,
                containers,
                plan,
                results: Vec::new(),
                monitor_only,
                rules,
            });
        }
        let applier = self.applier();
        let applied = applier.apply(&plan, &observed, &graph).await;
        let mut plan = plan;
        plan.waiting.extend(applied.waiting);
        plan.waiting.sort_by(|a, b| a.container.cmp(&b.container));
        let mut results = applied.results;
        with_release_notes(&mut results, &containers);
        with_signature_warnings(&mut results, &containers);
        self.record_release_notes(&results).await;
        applier
            .run_check_hooks(HookMoment::PostCheck, &hooked)
            .await;
        Ok(CycleReport {
            recovered,
            containers,
            plan,
            results,
            monitor_only,
            rules,
        })
    }

    /// The verdicts on the containers in `inventory` (only `names` when given): which need the
    /// registry asked what, its answers, then the pure comparison.
    pub async fn detect(&self, inventory: &Inventory, names: &[String]) -> Vec<Detection> {
        detect_on(&self.registry, &self.config, inventory, names).await
    }

    /// Replaces the agent's own container by a successor for `step`, the plan's
    /// `self_update` (see [`apply::Handover`]).
    pub async fn replace_self(&self, step: &update::PlannedStep) -> apply::Handover {
        let failed = |detail: String| {
            apply::Handover::Kept(StepResult {
                container: step.container.clone(),
                image: step.image.clone(),
                from_digest: step.from_digest.clone(),
                to_digest: step.to_digest.clone(),
                outcome: StepOutcome::Failed,
                detail,
                notes: Default::default(),
            })
        };
        // Read afresh: the cycle's other steps recreated containers this one may name.
        let observed = match self.engine.containers(true, None).await {
            Ok(observed) => observed,
            Err(e) => return failed(format!("not started: {e}")),
        };
        let Some(own) = observed.iter().find(|o| self.is_own(o)) else {
            return failed("not started: the agent's own container is gone".into());
        };
        let names = observed
            .iter()
            .map(|o| (o.id.clone(), o.name.clone()))
            .collect();
        self.applier().replace_self(step, own, &names).await
    }

    /// Whether `o` is the container this agent runs in.
    pub fn is_own(&self, o: &Observed) -> bool {
        self.own_container.as_deref() == Some(o.id.as_str())
    }

    /// Announces what a (real, not dry-run) cycle did, each event once; sending goes on in
    /// the background and never holds up the next cycle.
    pub async fn announce(&self, report: &CycleReport) -> tokio::task::JoinHandle<()> {
        self.notifications
            .announce(&self.store, &self.host, report, |name| {
                report.monitor_only.contains(name)
            })
            .await
    }

    /// One history row per container (or `[[gitops]]` file row) and new digest that its
    /// `[[verify]]` rule refused, however many cycles it stays refused; each cycle logs it.
    async fn record_blocked(&self, rows: &[detect::CheckRow]) {
        let blocked: Vec<NewHistory> = rows
            .iter()
            .filter(|r| r.signature == Some(detect::Signature::Rejected))
            .filter_map(|r| {
                tracing::warn!(
                    container = %r.container,
                    "{}",
                    r.detail.as_deref().unwrap_or("blocked by a verify rule")
                );
                Some(NewHistory {
                    at: chrono::Utc::now(),
                    container: r.container.clone(),
                    image: r.image.clone(),
                    from_digest: r.current_digest.clone(),
                    to_digest: r.available_digest.clone()?,
                    from_image_id: None,
                    outcome: HistoryOutcome::Blocked,
                    reason: r.detail.clone().unwrap_or_default(),
                    duration_ms: 0,
                    notes: r.notes.clone(),
                })
            })
            .collect();
        if blocked.is_empty() {
            return;
        }
        let written = self
            .store
            .with(move |s| {
                blocked
                    .iter()
                    .try_for_each(|row| s.record_history_once(row).map(|_| ()))
            })
            .await;
        if let Err(e) = written {
            tracing::warn!("recording blocked updates in the history: {e}");
        }
    }

    /// Adds the steps' release notes to the history rows they wrote.
    async fn record_release_notes(&self, results: &[StepResult]) {
        let notes: Vec<(String, String, ReleaseNotes)> = results
            .iter()
            .filter(|r| matches!(r.outcome, StepOutcome::Updated | StepOutcome::RolledBack))
            .filter(|r| !r.notes.is_empty())
            .filter_map(|r| Some((r.container.clone(), r.to_digest.clone()?, r.notes.clone())))
            .collect();
        if notes.is_empty() {
            return;
        }
        let written = self
            .store
            .with(move |s| {
                notes
                    .iter()
                    .try_for_each(|(c, d, n)| s.add_release_notes(c, d, n).map(|_| ()))
            })
            .await;
        if let Err(e) = written {
            tracing::warn!("recording release notes in the history: {e}");
        }
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
                        // A dry run records nothing: a digest never seen before counts as seen now,
                        // as the real cycle would record it.
                        seen.push(if dry_run {
                            s.seen_at(&container, &digest)?.or(Some(chrono::Utc::now()))
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

/// The verdicts on the containers in `inventory` (only `names` when given), as `check` and a
/// cycle give them: which need the registry asked what, its answers, then the pure
/// comparison.
pub async fn detect_on(
    registry: &RegistryClient,
    config: &Config,
    inventory: &Inventory,
    names: &[String],
) -> Vec<Detection> {
    detect_sharing(registry, config, inventory, names).await.0
}

/// [`detect_on`], with what the registries said of each reference, for the `[[gitops]]`
/// files to use rather than ask again.
pub async fn detect_sharing(
    registry: &RegistryClient,
    config: &Config,
    inventory: &Inventory,
    names: &[String],
) -> (Vec<Detection>, Lookups) {
    if inventory.facts.role == SwarmRole::Worker {
        tracing::info!("{WORKER_NOTE}");
    }
    let pending = detect::targets(
        &inventory.observed,
        inventory.facts.image_store,
        config,
        names,
        &|r| registry.aliases(r),
    );
    let remotes = registry.resolve(&pending, &inventory.observed).await;
    let mut detections = detect::verdicts(&pending, &inventory.observed, &remotes);
    // Before anything else reads the rows: a rejected digest is no update to plan or announce.
    registry
        .verify_updates(&mut detections, &config.verify)
        .await;
    registry
        .add_release_notes(&mut detections, &inventory.observed)
        .await;
    let known = remotes
        .manifests
        .into_iter()
        .map(|(r, m)| (r, m.map(|m| m.digest).map_err(|f| f.detail)))
        .collect();
    (detections, known)
}

/// Every `[[gitops]]` repository's rows (and, with `mode`, its diff or commit), asking the
/// registries only for references `known` (the containers' answers) lacks.
pub async fn gitops_on(
    registry: &RegistryClient,
    config: &Config,
    known: &Lookups,
    mode: gitops::Mode,
) -> Vec<gitops::RepoReport> {
    let settings = gitops::Settings {
        watch: &config.watch,
        services: &config.services,
        state_dir: &config.agent.state_dir,
        registry: Some(registry),
        verify: &config.verify,
    };
    let mut reports = Vec::new();
    for table in &config.gitops {
        let report = gitops::run(table, &settings, registry, known, mode).await;
        for row in report.rows.iter().filter(|r| r.status == Status::Error) {
            tracing::warn!(
                repo = report.repo,
                row = row.container,
                "{}",
                row.detail.as_deref().unwrap_or("error")
            );
        }
        reports.push(report);
    }
    reports
}

fn candidates(
    detections: &[Detection],
    observed: &[Observed],
    config: &Config,
    is_own: impl Fn(&Observed) -> bool,
) -> Vec<Candidate> {
    detections
        .iter()
        .filter(|d| d.row.status == Status::UpdateAvailable)
        .filter_map(|d| {
            let name = &d.row.container;
            let o = observed.iter().find(|o| o.name == *name)?;
            let service = config.services.get(name);
            Some(Candidate {
                container: name.clone(),
                image: d.row.image.clone(),
                from_digest: d.row.current_digest.clone(),
                to_digest: d.row.available_digest.clone()?,
                new_image: d.new_image.clone(),
                policy: detect::policy_for(name, &o.labels, &config.watch, &config.services),
                window: service
                    .and_then(|s| s.window.clone())
                    .or_else(|| config.watch.window.clone()),
                min_age: service
                    .and_then(|s| s.min_age)
                    .unwrap_or(config.watch.min_age),
                first_seen: None,
                own: is_own(o),
            })
        })
        .collect()
}

/// The policy and window of each of `rows`' containers, as `candidates` finds them.
fn rules<'a>(
    rows: &[detect::CheckRow],
    observed: impl Iterator<Item = &'a Observed>,
    config: &Config,
) -> BTreeMap<String, crate::report::Rules> {
    let observed: BTreeMap<&str, &Observed> = observed.map(|o| (o.name.as_str(), o)).collect();
    rows.iter()
        .filter_map(|row| {
            let name = &row.container;
            let o = observed.get(name.as_str())?;
            let window = config
                .services
                .get(name)
                .and_then(|s| s.window.as_ref())
                .or(config.watch.window.as_ref())
                .map(|w| {
                    format!(
                        "{} for {}",
                        w.expression,
                        humantime::format_duration(w.length)
                    )
                });
            let policy = detect::policy_for(name, &o.labels, &config.watch, &config.services);
            Some((name.clone(), crate::report::Rules { policy, window }))
        })
        .collect()
}

/// Gives each step the release notes its container's row had for the digest it moved to.
fn with_release_notes(results: &mut [StepResult], rows: &[detect::CheckRow]) {
    for r in results {
        let row = rows.iter().find(|row| {
            row.container == r.container
                && row.available_digest.is_some()
                && row.available_digest == r.to_digest
        });
        if let Some(row) = row {
            r.notes = row.notes.clone();
        }
    }
}

/// Says in each step that moved to a digest no trusted signature names (a `[[verify]]` rule in
/// `warn` mode let it through) that it did, ahead of the step's own detail.
fn with_signature_warnings(results: &mut [StepResult], rows: &[detect::CheckRow]) {
    for r in results {
        let row = rows.iter().find(|row| {
            row.container == r.container
                && row.signature == Some(detect::Signature::Unverified)
                && row.available_digest == r.to_digest
        });
        if let Some(warning) = row.and_then(|row| row.detail.as_deref()) {
            r.detail = if r.detail.is_empty() {
                warning.to_string()
            } else {
                format!("{warning}; {}", r.detail)
            };
        }
    }
}

/// When a candidate's new digest was first seen, if known.
type FirstSeen = Option<chrono::DateTime<chrono::Utc>>;

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

/// A container's place in the graph: its labels, and from its full inspect data (when the
/// cycle fetched it) its links, namespaces and `volumes_from`.
fn node(o: &Observed) -> Node {
    let host = o
        .details
        .as_ref()
        .and_then(|d| d.host_config.clone())
        .unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Kind;

    fn service(name: &str, labels: &[(&str, &str)]) -> Observed {
        Observed {
            kind: Kind::Service,
            id: format!("id-{name}"),
            name: name.into(),
            image: format!("registry.example/{name}:stable"),
            image_id: String::new(),
            repo_digests: vec![format!("registry.example/{name}@sha256:1")],
            platform: Default::default(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            state: "service".into(),
            problem: None,
            details: None,
            image_labels: Default::default(),
        }
    }

    #[test]
    fn services_are_ordered_by_their_labels_and_the_config() {
        let config = Config::parse(
            "[[service]]\nname = \"stack_web\"\ndepends_on = [\"stack_cache\"]\n",
            "agent.toml",
        )
        .unwrap();
        let services = [
            service("stack_api", &[("tidewatch.depends-on", "stack_db")]),
            service("stack_cache", &[]),
            service(
                "stack_db",
                &[("com.centurylinklabs.watchtower.depends-on", "stack_volume")],
            ),
            service("stack_volume", &[]),
            service("stack_web", &[]),
        ];
        let graph = graph(services.iter(), &config);
        let all = services.iter().map(|s| s.name.clone()).collect();
        let order = graph.order_partial(&all).order;
        let at = |name: &str| order.iter().position(|n| n == name).unwrap();
        assert!(at("stack_volume") < at("stack_db"), "{order:?}");
        assert!(at("stack_db") < at("stack_api"), "{order:?}");
        assert!(at("stack_cache") < at("stack_web"), "{order:?}");
    }
}
