//! What the engine shows of each container (or Swarm service), as the core reads it: the image
//! it was created with, what that image is and runs on, its labels and state. The engine adapter
//! fills these in (`engine::inventory`; `engine` re-exports them); detection, the Swarm rules
//! and the registry adapter read them here, so none of those needs the engine.

use std::collections::BTreeMap;

use bollard::models::ContainerInspectResponse;

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
    /// The labels of the image it runs that release notes read (see
    /// [`crate::release_notes::kept`]); empty for a service or an image not inspected.
    pub image_labels: BTreeMap<String, String>,
    /// `running`, `exited`, `restarting`...
    pub state: String,
    /// Why what the container runs could not be fully observed, if it could not.
    pub problem: Option<String>,
    /// The full inspect data, which recreating the container and its place in the dependency
    /// graph need; `None` until the engine's `inspect_details` fetched it (detection needs only
    /// the list), and always for a service.
    pub details: Option<Box<ContainerInspectResponse>>,
}
