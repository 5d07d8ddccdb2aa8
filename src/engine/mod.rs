//! The bollard adapter: everything tidewatch asks of the Docker Engine goes through here.
//!
//! The API version is negotiated at connect time ([`api_version`]), so the same binary speaks to
//! Debian 12's engine (API 1.41) and to current ones (Docker 29 refuses anything below 1.44), and
//! to Podman's Docker-compatible service (which reports API 1.41 too, and whose answers differ
//! from Docker's in places: see [`Flavor`]).

pub mod api_version;
mod health;
mod inventory;
mod libpod;
mod ops;
mod own;
mod swarm;

pub use health::Health;

use std::fmt;

use bollard::{ClientVersion, Docker, API_DEFAULT_VERSION};

use crate::config::DockerConfig;
use api_version::{ApiVersion, ApiVersionError};

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
    /// The engine and tidewatch have no API version in common.
    #[error("engine at {host}: no API version in common")]
    ApiVersion {
        /// The address.
        host: String,
        /// Which versions each side speaks.
        source: ApiVersionError,
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
    /// socket, and settles the API version from one `GET /version`, which also tells Docker from
    /// Podman.
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
        let client = |version: &ClientVersion| {
            if let Some(path) = host.strip_prefix("unix://") {
                Docker::connect_with_unix(path, TIMEOUT_SECS, version)
            } else if host.starts_with("tcp://") || host.starts_with("http://") {
                Docker::connect_with_http(&host, TIMEOUT_SECS, version)
            } else {
                Err(bollard::errors::Error::UnsupportedURISchemeError { uri: host.clone() })
            }
        };
        if !["unix://", "tcp://", "http://"]
            .iter()
            .any(|scheme| host.starts_with(scheme))
        {
            return Err(EngineError::BadHost { host });
        }
        // bollard has no way to change a client's version but its own negotiation, which takes
        // the engine's newest version whatever its minimum: the probe asks, and the client that
        // is kept is made with the version chosen from the answer.
        let probe = client(API_DEFAULT_VERSION).map_err(unreachable)?;
        let version = probe.version().await.map_err(unreachable)?;
        let api = api_version::negotiate(
            version.api_version.as_deref(),
            version.min_api_version.as_deref(),
            ApiVersion::from(API_DEFAULT_VERSION),
        )
        .map_err(|source| EngineError::ApiVersion {
            host: host.clone(),
            source,
        })?;
        let docker = client(&api.into()).map_err(unreachable)?;
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
            min_api = version.min_api_version.as_deref().unwrap_or("?"),
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
