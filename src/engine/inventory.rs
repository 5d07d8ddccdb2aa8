//! Inventory: the containers in scope, with what they actually run.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{ContainerInspectResponse, ImageInspect};
use bollard::query_parameters::ListContainersOptions;
use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::{Engine, EngineError};
use crate::labels;

/// How many inspect requests are in flight at once.
const INSPECT_CONCURRENCY: usize = 16;

/// An image's platform, as the engine reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`...
    pub architecture: String,
    /// `v8`, `v7`... when the architecture has variants.
    pub variant: Option<String>,
}

/// What an [`Observed`] is: a container tidewatch recreates itself, or a Swarm service it asks
/// Swarm to roll.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Kind {
    /// A plain container.
    #[default]
    Container,
    /// A Swarm service (on a manager); `id` is the service id, `image` the reference it follows
    /// and `repo_digests` the digest it is pinned to.
    Service,
}

/// One container (or Swarm service) as observed on the engine.
#[derive(Debug, Clone)]
pub struct Observed {
    /// A container, or a Swarm service.
    pub kind: Kind,
    /// Full container id.
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    /// The image reference the container was created with (`Config.Image`).
    pub image: String,
    /// The id of the image the container runs.
    pub image_id: String,
    /// `RepoDigests` of that image (`repo@sha256:...`).
    pub repo_digests: Vec<String>,
    /// The platform of that image.
    pub platform: Platform,
    /// Container labels.
    pub labels: BTreeMap<String, String>,
    /// `running`, `exited`, `restarting`...
    pub state: String,
    /// Why what the container runs could not be fully observed, if it could not.
    pub problem: Option<String>,
    /// The full inspect data, which recreating the container needs.
    pub inspect: Box<ContainerInspectResponse>,
}

impl Engine {
    /// Lists running containers (all containers with `include_stopped`) and inspects each and
    /// its image. Images shared by many containers are inspected once. The containers of Swarm
    /// tasks are left out: Swarm replaces them when their service is updated.
    pub async fn inventory(&self, include_stopped: bool) -> Result<Vec<Observed>, EngineError> {
        let summaries = self
            .docker()
            .list_containers(Some(ListContainersOptions {
                all: include_stopped,
                ..Default::default()
            }))
            .await
            .map_err(EngineError::request("listing containers"))?;

        let inspected: Vec<ContainerInspectResponse> = stream::iter(summaries)
            .filter(|s| std::future::ready(!is_swarm_task(s.labels.as_ref())))
            .filter_map(|s| async move { s.id })
            .map(|id| async move {
                match self.inspect_container_settled(&id).await {
                    Ok(c) => Ok(Some(c)),
                    // Removed between list and inspect: not ours to report.
                    Err(bollard::errors::Error::DockerResponseServerError {
                        status_code: 404,
                        ..
                    }) => Ok(None),
                    Err(e) => Err(EngineError::request(format!("inspecting container {id}"))(
                        e,
                    )),
                }
            })
            .buffered(INSPECT_CONCURRENCY)
            .try_filter_map(|c| async move { Ok(c) })
            .try_collect()
            .await?;

        let mut image_ids: Vec<String> = inspected.iter().filter_map(|c| c.image.clone()).collect();
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

        let mut observed: Vec<Observed> =
            inspected.into_iter().map(|c| observe(c, &images)).collect();
        observed.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(observed)
    }
}

/// Whether a container runs a task of a Swarm service.
fn is_swarm_task(labels: Option<&HashMap<String, String>>) -> bool {
    labels.is_some_and(|l| {
        l.contains_key(labels::SWARM_SERVICE_ID) || l.contains_key(labels::SWARM_TASK_ID)
    })
}

fn observe(
    c: ContainerInspectResponse,
    images: &HashMap<String, Result<ImageInspect, String>>,
) -> Observed {
    let image_id = c.image.clone().unwrap_or_default();
    // On the containerd store a build or pull that moves a tag can delete the image record
    // while a container still runs its content; from API 1.48 the container itself names the
    // manifest it runs and its platform, which is all detection needs.
    let descriptor = c
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
    let config = c.config.as_ref();
    Observed {
        kind: Kind::Container,
        id: c.id.clone().unwrap_or_default(),
        name: c
            .name
            .as_deref()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        image: config.and_then(|c| c.image.clone()).unwrap_or_default(),
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
        labels: config
            .and_then(|c| c.labels.clone())
            .unwrap_or_default()
            .into_iter()
            .collect(),
        state: c
            .state
            .as_ref()
            .and_then(|s| s.status)
            .map(|s| s.to_string())
            .unwrap_or_default(),
        image_id,
        problem,
        inspect: Box::new(c),
    }
}
