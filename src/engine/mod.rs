//! The bollard adapter: everything tidewatch asks of the Docker Engine goes through here.
//!
//! The API version is negotiated at connect time, so the same binary speaks to Debian 12's
//! engine (API 1.41) and to current ones, and to Podman's Docker-compatible service (which
//! reports API 1.41 too, and whose answers differ from Docker's in places: see [`Flavor`]).

mod facts;
mod health;
mod inventory;
mod libpod;
mod ops;
mod own;
mod raw;
mod swarm;

pub use facts::EngineFacts;
pub use health::Health;

use std::fmt;

use bollard::{Docker, API_DEFAULT_VERSION};

use crate::config::DockerConfig;

pub use crate::plan::recreate::Flavor;
pub use inventory::{Kind, Observed, Platform};
pub use own::{container_id_from_cgroup, container_id_from_mountinfo};
pub use swarm::SwarmRole;

/// The default engine socket.
pub const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";

/// A failure talking to the engine, with the address or object it concerns.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The engine could not be reached at all. The cause is the error's source, not part of
    /// its message: `{:#}` prints the chain, and bollard's errors repeat their own sources.
    #[error("engine at {host} is not reachable")]
    Unreachable {
        /// The address that was tried.
        host: String,
        /// The cause.
        source: bollard::errors::Error,
    },
    /// The engine address is not one we can use.
    #[error(
        "docker host {host:?} is not supported: use unix:///path/to/docker.sock or tcp://host:port"
    )]
    BadHost {
        /// The address as configured.
        host: String,
    },
    /// The journal that says which containers to act on could not be read.
    #[error("journal: {0}")]
    Journal(String),
    /// A request made without bollard (see `raw.rs`) failed.
    #[error("{what}: {reason}")]
    Raw {
        /// What was being done.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// A request about one object failed.
    #[error("{what}: {source}")]
    Request {
        /// What was being done (`inspecting container "web"`).
        what: String,
        /// The cause.
        source: bollard::errors::Error,
    },
}

impl EngineError {
    /// Whether the engine answered that the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            EngineError::Request {
                source: bollard::errors::Error::DockerResponseServerError {
                    status_code: 404,
                    ..
                },
                ..
            }
        )
    }

    pub(crate) fn request(what: impl fmt::Display) -> impl FnOnce(bollard::errors::Error) -> Self {
        move |source| EngineError::Request {
            what: what.to_string(),
            source,
        }
    }
}

/// A connected engine with a negotiated API version.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    host: String,
    flavor: Flavor,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("host", &self.host)
            .field("api", &self.api_version())
            .field("flavor", &self.flavor)
            .finish()
    }
}

impl Engine {
    /// Connects to the engine named by `[docker] host`, else `DOCKER_HOST`, else the default
    /// socket, and negotiates the API version.
    pub async fn connect(config: &DockerConfig) -> Result<Engine, EngineError> {
        let host = config
            .host
            .clone()
            .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| DEFAULT_SOCKET.to_string());
        let unreachable = |source| EngineError::Unreachable {
            host: host.clone(),
            source,
        };
        // Pulls of large images can take minutes; per-request deadlines are set by callers.
        const TIMEOUT_SECS: u64 = 600;
        let docker = if let Some(path) = host.strip_prefix("unix://") {
            Docker::connect_with_unix(path, TIMEOUT_SECS, API_DEFAULT_VERSION)
        } else if host.starts_with("tcp://") || host.starts_with("http://") {
            Docker::connect_with_http(&host, TIMEOUT_SECS, API_DEFAULT_VERSION)
        } else {
            return Err(EngineError::BadHost { host });
        }
        .map_err(unreachable)?;
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        let version = docker.version().await.map_err(unreachable)?;
        // Podman's service names itself among the components of `GET /version`; Docker's
        // components are "Engine", "containerd", "runc"...
        let podman = version
            .components
            .iter()
            .flatten()
            .any(|c| c.name == "Podman Engine");
        let flavor = if podman {
            Flavor::Podman
        } else {
            Flavor::Docker
        };
        tracing::debug!(
            %host,
            api = %docker.client_version(),
            ?flavor,
            version = version.version.as_deref().unwrap_or("?"),
            "connected to the engine"
        );
        Ok(Engine {
            docker,
            host,
            flavor,
        })
    }

    /// The negotiated API version as `(major, minor)`.
    pub fn api_version(&self) -> (usize, usize) {
        let v = self.docker.client_version();
        (v.major_version, v.minor_version)
    }

    /// Whose engine answers: Docker's or Podman's Docker-compatible service.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// The engine address in use.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The bollard client, for the modules of this adapter.
    pub(crate) fn docker(&self) -> &Docker {
        &self.docker
    }
}
