//! Inventory: the containers in scope, with what they actually run.

use std::collections::HashMap;

use bollard::models::{ContainerInspectResponse, ContainerSummary, ImageInspect};
use bollard::query_parameters::ListContainersOptions;
use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::{Engine, EngineError, EngineFacts, SwarmRole};
use crate::labels;
use crate::plan::observed::{Kind, Observed, Platform};

/// How many inspect requests are in flight at once.
const INSPECT_CONCURRENCY: usize = 16;

/// What one cycle knows of the engine: its containers (and, on a Swarm manager, services),
/// sorted by name, and the engine's facts. Taken once per cycle.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// Containers and services.
    pub observed: Vec<Observed>,
    /// Swarm role, platform, image store.
    pub facts: EngineFacts,
}

impl Inventory {
    /// The container or service named `name`.
    pub fn get(&self, name: &str) -> Option<&Observed> {
        self.observed.iter().find(|o| o.name == name)
    }
}

impl Engine {
    /// The containers (and, on a Swarm manager, services) with the engine's facts: one list
    /// call (two with a scope), one inspect per distinct image, `/info`, and the services on a
    /// manager. A service that shares its name with a container is reported, not updated: the
    /// plan and the dependency graph know both by name.
    ///
    /// With a `scope`, only containers labelled with it are listed (see [`Engine::containers`]).
    pub async fn inventory(
        &self,
        include_stopped: bool,
        scope: Option<&str>,
    ) -> Result<Inventory, EngineError> {
        let mut observed = self.containers(include_stopped, scope).await?;
        let facts = self.facts().await?;
        if facts.role == SwarmRole::Manager {
            let mut services = self.services(&facts.platform).await?;
            for s in &mut services {
                if observed.iter().any(|c| c.name == s.name) {
                    s.problem = Some(format!(
                        "a container is also named {:?}: rename one of them to have the \
                         service updated",
                        s.name
                    ));
                }
            }
            observed.extend(services);
        }
        Ok(Inventory { observed, facts })
    }

    /// Running containers (all containers with `include_stopped`) with their images, sorted by
    /// name: one list call (two with a scope) and one inspect per distinct image. A container
    /// is inspected only when the list does not give the reference it was created with (the
    /// engine shows the image id instead once that reference names another image). The
    /// containers of Swarm tasks are left out: Swarm replaces them when their service is
    /// updated.
    ///
    /// With a `scope`, the engine lists only the containers labelled with it (`tidewatch.scope`
    /// or Watchtower's label; the scope rules still decide, this only narrows the list): it
    /// applies a label filter before the costly part of a list entry, so a scoped agent on a
    /// busy engine pays for its own containers, not for every container there, and inspects
    /// no image of theirs.
    pub async fn containers(
        &self,
        include_stopped: bool,
        scope: Option<&str>,
    ) -> Result<Vec<Observed>, EngineError> {
        let summaries = match scope {
            None => self.list(include_stopped, None).await?,
            Some(scope) => {
                // Labels in one filter must all match: one list per label.
                let mut summaries = Vec::new();
                for label in [labels::SCOPE, labels::watchtower::SCOPE] {
                    let filter = format!("{label}={scope}");
                    for s in self.list(include_stopped, Some(filter)).await? {
                        if !summaries.iter().any(|k: &ContainerSummary| k.id == s.id) {
                            summaries.push(s);
                        }
                    }
                }
                summaries
            }
        };
        let summaries: Vec<ContainerSummary> = summaries
            .into_iter()
            .filter(|s| s.id.is_some() && !is_swarm_task(s.labels.as_ref()))
            .collect();

        // The reference of a container whose list entry shows an image id instead.
        let references: HashMap<String, Option<String>> = stream::iter(
            summaries
                .iter()
                .filter(|s| lists_no_reference(s))
                .filter_map(|s| s.id.clone()),
        )
        .map(|id| async move {
            let reference = self
                .inspect_container(&id)
                .await
                .map(|c| c.and_then(|c| c.config).and_then(|c| c.image));
            reference.map(|r| (id, r))
        })
        .buffer_unordered(INSPECT_CONCURRENCY)
        .try_collect()
        .await?;

        let mut image_ids: Vec<String> = summaries
            .iter()
            .filter_map(|s| s.image_id.clone())
            .collect();
        image_ids.sort();
        image_ids.dedup();
        // One image that cannot be inspected (removed under a stopped container) makes only
        // its containers' rows errors.
        let images: HashMap<String, Result<ImageInspect, String>> = stream::iter(image_ids)
            .map(|id| async move {
                let image = self
                    .docker()
                    .inspect_image(&id)
                    .await
                    .map_err(|e| format!("inspecting image {id}: {e}"));
                (id, image)
            })
            .buffer_unordered(INSPECT_CONCURRENCY)
            .collect()
            .await;

        let mut observed: Vec<Observed> = summaries
            .into_iter()
            .filter_map(|s| {
                let reference = match s.id.as_ref().and_then(|id| references.get(id)) {
                    // Removed between list and inspect: not ours to report.
                    Some(None) => return None,
                    Some(Some(reference)) => Some(reference.clone()),
                    None => None,
                };
                Some(observe(s, reference, &images))
            })
            .collect();
        observed.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(observed)
    }

    /// One container list, with a `label` filter (`key=value`) when given.
    async fn list(
        &self,
        include_stopped: bool,
        label: Option<String>,
    ) -> Result<Vec<ContainerSummary>, EngineError> {
        self.docker()
            .list_containers(Some(ListContainersOptions {
                all: include_stopped,
                filters: label.map(|l| HashMap::from([("label".to_owned(), vec![l])])),
                ..Default::default()
            }))
            .await
            .map_err(EngineError::request("listing containers"))
    }

    /// Fills in the full inspect data of the containers `wanted` picks that lack it. A
    /// container removed since the list keeps none, and recreating it is skipped.
    pub async fn inspect_details(
        &self,
        observed: &mut [Observed],
        wanted: impl Fn(&Observed) -> bool,
    ) -> Result<(), EngineError> {
        let ids: Vec<String> = observed
            .iter()
            .filter(|o| o.kind == Kind::Container && o.details.is_none() && wanted(o))
            .map(|o| o.id.clone())
            .collect();
        let mut details: HashMap<String, ContainerInspectResponse> = stream::iter(ids)
            .map(|id| async move { self.inspect_container(&id).await.map(|c| (id, c)) })
            .buffer_unordered(INSPECT_CONCURRENCY)
            .try_filter_map(|(id, c)| async move { Ok(c.map(|c| (id, c))) })
            .try_collect()
            .await?;
        for o in observed.iter_mut() {
            if let Some(c) = details.remove(&o.id) {
                o.details = Some(Box::new(c));
            }
        }
        Ok(())
    }
}

/// Whether a container runs a task of a Swarm service.
fn is_swarm_task(labels: Option<&HashMap<String, String>>) -> bool {
    labels.is_some_and(|l| {
        l.contains_key(labels::SWARM_SERVICE_ID) || l.contains_key(labels::SWARM_TASK_ID)
    })
}

/// Whether the list entry shows the container's image id where its reference belongs: the
/// engine does so once the reference names another image (a pull or build moved the tag) or
/// none at all.
fn lists_no_reference(s: &ContainerSummary) -> bool {
    match (s.image.as_deref(), s.image_id.as_deref()) {
        (None | Some(""), _) => true,
        (Some(image), Some(id)) if image == id => true,
        (Some(image), _) => image.starts_with("sha256:"),
    }
}

/// An [`Observed`] from a list entry, with the reference the container was created with when
/// the entry does not show it.
fn observe(
    s: ContainerSummary,
    reference: Option<String>,
    images: &HashMap<String, Result<ImageInspect, String>>,
) -> Observed {
    let image_id = s.image_id.clone().unwrap_or_default();
    // On the containerd store a build or pull that moves a tag can delete the image record
    // while a container still runs its content; from API 1.48 the container itself names the
    // manifest it runs and its platform, which is all detection needs.
    let descriptor = s
        .image_manifest_descriptor
        .as_ref()
        .filter(|d| d.digest.as_deref() == Some(image_id.as_str()));
    let (image, problem) = match images.get(&image_id) {
        Some(Ok(image)) => (Some(image), None),
        Some(Err(_)) if descriptor.is_some() => (None, None),
        Some(Err(e)) => (None, Some(e.clone())),
        None => (None, Some(format!("image {image_id} was not inspected"))),
    };
    let described = descriptor.and_then(|d| d.platform.as_ref());
    // The image's own labels; when the image record is gone (containerd store, above), the
    // container's, which the engine merged the image's into when creating it.
    let image_labels = crate::release_notes::kept(
        image
            .and_then(|i| i.config.as_ref())
            .and_then(|c| c.labels.clone())
            .or_else(|| s.labels.clone())
            .unwrap_or_default(),
    );
    Observed {
        kind: Kind::Container,
        id: s.id.clone().unwrap_or_default(),
        // The first name is the container's own; links add `/other/alias` names after it.
        name: s
            .names
            .as_ref()
            .and_then(|names| names.iter().find(|n| n.matches('/').count() == 1))
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_default(),
        image: reference.or(s.image.clone()).unwrap_or_default(),
        repo_digests: image
            .and_then(|i| i.repo_digests.clone())
            .unwrap_or_default(),
        platform: Platform {
            os: image
                .and_then(|i| i.os.clone())
                .or_else(|| described.and_then(|p| p.os.clone()))
                .unwrap_or_default(),
            architecture: image
                .and_then(|i| i.architecture.clone())
                .or_else(|| described.and_then(|p| p.architecture.clone()))
                .unwrap_or_default(),
            variant: image
                .and_then(|i| i.variant.clone())
                .or_else(|| described.and_then(|p| p.variant.clone()))
                .filter(|v| !v.is_empty()),
        },
        labels: s.labels.unwrap_or_default().into_iter().collect(),
        image_labels,
        state: s.state.map(|s| s.to_string()).unwrap_or_default(),
        image_id,
        problem,
        details: None,
    }
}
