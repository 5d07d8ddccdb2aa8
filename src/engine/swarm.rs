//! Swarm: this node's role, the services a manager looks after, and asking Swarm to roll one.
//!
//! Services appear as [`Observed`] of [`Kind::Service`], so detection, planning, ordering and
//! reporting treat them like containers; only applying a step differs (`apply/service.rs`).

use bollard::auth::DockerCredentials;
use bollard::models::{Service, ServiceSpec};
use bollard::query_parameters::{ListNodesOptions, UpdateServiceOptions};

use super::{Engine, EngineError};
use crate::credentials::Credentials;
use crate::plan::actor::{self, Leadership, Manager};
use crate::plan::observed::{Kind, Observed, Platform};
use crate::plan::swarm::{spec_image, split_pinned};

/// What `check` and the log say on a Swarm worker about services.
pub const WORKER_NOTE: &str = "this node is a swarm worker: services (and their task \
    containers) are updated by the tidewatch agent on a swarm manager";

/// What this engine is in a Swarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwarmRole {
    /// Not part of a Swarm (or not active in one).
    Inactive,
    /// A worker: it runs tasks, but only a manager can update services.
    Worker,
    /// A manager: services are listed and updated here.
    Manager,
}

impl Engine {
    /// The services of the Swarm this manager belongs to, as [`Observed`]: the reference each
    /// follows, the digest it is pinned to and the labels of its spec.
    pub async fn services(&self, platform: &Platform) -> Result<Vec<Observed>, EngineError> {
        let services = self
            .docker()
            .list_services(None)
            .await
            .map_err(EngineError::request("listing swarm services"))?;
        let mut observed: Vec<Observed> = services
            .into_iter()
            .filter_map(|s| observe_service(s, platform))
            .collect();
        observed.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(observed)
    }

    /// Whether this manager is the Swarm leader, whose agent alone updates services (see
    /// `plan/actor.rs`), and which node is: `/info`'s `Swarm.NodeID`, then the managers'
    /// `ManagerStatus`. Asked afresh each time, as leadership moves when a manager is lost.
    pub async fn leadership(&self) -> Result<Leadership, EngineError> {
        let this_node = self.facts().await?.node_id;
        self.leadership_of(&this_node).await
    }

    /// Like [`Engine::leadership`], for a caller that has just read `/info` and knows this
    /// node's id (`check`, whose requests are counted).
    pub async fn leadership_of(&self, this_node: &str) -> Result<Leadership, EngineError> {
        let options = ListNodesOptions {
            filters: Some([("role".to_string(), vec!["manager".to_string()])].into()),
        };
        let nodes = self
            .docker()
            .list_nodes(Some(options))
            .await
            .map_err(EngineError::request("listing swarm managers"))?;
        let managers: Vec<Manager> = nodes
            .into_iter()
            .map(|n| Manager {
                id: n.id.unwrap_or_default(),
                hostname: n.description.and_then(|d| d.hostname).unwrap_or_default(),
                leader: n.manager_status.and_then(|m| m.leader).unwrap_or(false),
            })
            .collect();
        Ok(actor::leadership(this_node, &managers))
    }

    /// Inspects a service by id or name.
    pub async fn service(&self, service: &str) -> Result<Service, EngineError> {
        self.docker()
            .inspect_service(service, None)
            .await
            .map_err(EngineError::request(format!(
                "inspecting service {service}"
            )))
    }

    /// Replaces the spec of `service` at `version` (optimistic concurrency: the engine refuses
    /// if the service changed since it was read). `credentials` are forwarded as
    /// `X-Registry-Auth` for `server`, so that every node can pull a private image; they are
    /// never logged. Returns the engine's warnings.
    pub async fn update_service(
        &self,
        service: &str,
        spec: ServiceSpec,
        version: i32,
        credentials: Option<&Credentials>,
        server: &str,
    ) -> Result<Vec<String>, EngineError> {
        let what = format!("updating service {service}");
        let auth = credentials.map(|c| DockerCredentials {
            username: Some(c.username.clone()),
            password: Some(c.password.clone()),
            serveraddress: Some(server.to_string()),
            ..Default::default()
        });
        let options = UpdateServiceOptions {
            version,
            ..Default::default()
        };
        let response = self
            .docker()
            .update_service(service, spec, options, auth)
            .await
            .map_err(EngineError::request(what))?;
        Ok(response.warnings.unwrap_or_default())
    }
}

fn observe_service(s: Service, platform: &Platform) -> Option<Observed> {
    let spec = s.spec?;
    let name = spec.name.clone()?;
    let image = spec_image(&spec).unwrap_or_default().to_string();
    let pinned = split_pinned(&image);
    let repo_digests = match &pinned.digest {
        // The repository as written (without the tag), like an image's `RepoDigests`.
        Some(digest) => {
            let reference = pinned.reference.as_str();
            let last_colon = reference
                .rfind(':')
                .filter(|i| !reference[*i..].contains('/'));
            let repository = last_colon.map_or(reference, |i| &reference[..i]);
            vec![format!("{repository}@{digest}")]
        }
        None => Vec::new(),
    };
    Some(Observed {
        kind: Kind::Service,
        id: s.id.unwrap_or_default(),
        name,
        image: pinned.reference,
        image_id: String::new(),
        repo_digests,
        platform: platform.clone(),
        labels: spec.labels.unwrap_or_default().into_iter().collect(),
        state: "service".into(),
        problem: None,
        details: None,
        image_labels: Default::default(),
    })
}
