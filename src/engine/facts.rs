//! What one `GET /info` tells about the engine as a whole: its Swarm role, its platform and how
//! it stores images. Asked once per inventory.

use bollard::models::{LocalNodeState, SystemInfo};

use super::swarm::SwarmRole;
use super::{Engine, EngineError};
use crate::plan::detect::ImageStore;
use crate::plan::observed::Platform;
use crate::plan::swarm::platform;

/// The engine-wide facts an inventory needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineFacts {
    /// This node's Swarm role.
    pub role: SwarmRole,
    /// This node's Swarm node id (`Swarm.NodeID`), empty outside a Swarm.
    pub node_id: String,
    /// The engine's platform, which stands for the platform of its services' images.
    pub platform: Platform,
    /// How the engine stores images, which decides what their digests mean.
    pub image_store: ImageStore,
}

/// The snapshotter the containerd image store reports as its `driver-type`.
const CONTAINERD_SNAPSHOTTER: &str = "io.containerd.snapshotter.v1";

impl Engine {
    /// This node's Swarm role (`Swarm.LocalNodeState`, `Swarm.ControlAvailable`), platform and
    /// image store, from one `GET /info`.
    pub async fn facts(&self) -> Result<EngineFacts, EngineError> {
        let info = self
            .docker()
            .info()
            .await
            .map_err(EngineError::request("reading engine info"))?;
        Ok(facts_from(info))
    }
}

/// Reads [`EngineFacts`] from an `/info` answer.
fn facts_from(info: SystemInfo) -> EngineFacts {
    let swarm = info.swarm.unwrap_or_default();
    let node_id = swarm.node_id.clone().unwrap_or_default();
    let role = match (swarm.local_node_state, swarm.control_available) {
        (Some(LocalNodeState::ACTIVE), Some(true)) => SwarmRole::Manager,
        (Some(LocalNodeState::ACTIVE), _) => SwarmRole::Worker,
        _ => SwarmRole::Inactive,
    };
    let platform = platform(
        info.os_type.as_deref().unwrap_or("linux"),
        info.architecture.as_deref().unwrap_or_default(),
    );
    EngineFacts {
        role,
        node_id,
        platform,
        image_store: image_store(info.driver_status.as_deref().unwrap_or_default()),
    }
}

/// The image store named by `/info`'s `DriverStatus`: the containerd store reports
/// `["driver-type", "io.containerd.snapshotter.v1"]` (its `Driver` is the snapshotter, e.g.
/// `overlayfs`); graph drivers report their own pairs (`Backing Filesystem`...). Podman reports
/// neither, and its image ids are config digests as in the classic store.
fn image_store(driver_status: &[Vec<String>]) -> ImageStore {
    let containerd = driver_status.iter().any(|pair| {
        matches!(pair.as_slice(), [key, value] if key == "driver-type" && value == CONTAINERD_SNAPSHOTTER)
    });
    if containerd {
        ImageStore::Containerd
    } else {
        ImageStore::Classic
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<Vec<String>> {
        list.iter()
            .map(|(k, v)| vec![k.to_string(), v.to_string()])
            .collect()
    }

    #[test]
    fn docker_28s_containerd_store_is_told_by_its_driver_type() {
        // As docker.io 28.5.2 answers with `"features": {"containerd-snapshotter": true}`.
        let status = pairs(&[("driver-type", "io.containerd.snapshotter.v1")]);
        assert_eq!(image_store(&status), ImageStore::Containerd);
    }

    #[test]
    fn overlay2_and_an_engine_that_says_nothing_are_the_classic_store() {
        // As docker.io 20.10 and 28.5.2 with the snapshotter off answer.
        let overlay2 = pairs(&[
            ("Backing Filesystem", "extfs"),
            ("Supports d_type", "true"),
            ("Native Overlay Diff", "true"),
            ("userxattr", "false"),
        ]);
        assert_eq!(image_store(&overlay2), ImageStore::Classic);
        assert_eq!(image_store(&[]), ImageStore::Classic);
    }

    #[test]
    fn an_active_manager_is_told_from_a_worker() {
        let mut info = SystemInfo {
            driver_status: Some(pairs(&[("driver-type", CONTAINERD_SNAPSHOTTER)])),
            architecture: Some("x86_64".into()),
            ..Default::default()
        };
        info.swarm = Some(bollard::models::SwarmInfo {
            local_node_state: Some(LocalNodeState::ACTIVE),
            control_available: Some(true),
            ..Default::default()
        });
        let facts = facts_from(info.clone());
        assert_eq!(facts.role, SwarmRole::Manager);
        assert_eq!(facts.image_store, ImageStore::Containerd);
        assert_eq!(facts.platform.architecture, "amd64");
        info.swarm = Some(bollard::models::SwarmInfo {
            local_node_state: Some(LocalNodeState::ACTIVE),
            control_available: Some(false),
            ..Default::default()
        });
        assert_eq!(facts_from(info).role, SwarmRole::Worker);
    }
}
