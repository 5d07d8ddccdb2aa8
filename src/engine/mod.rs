//! The bollard adapter: everything tidewatch asks of the Docker Engine goes through here.
//!
//! The API version is negotiated at connect time ([`api_version`]), so the same binary speaks to
//! Debian 12's engine (API 1.41) and to current ones (Docker 29 refuses anything below 1.44), and
//! to Podman's Docker-compatible service (which reports API 1.41 too, and whose answers differ
//! from Docker's in places: see [`Flavor`]). A remote engine is reached over TLS ([`tls`]).

pub mod api_version;
pub mod endpoint;
mod exec;
mod facts;
mod health;
mod inventory;
mod libpod;
mod ops;
mod own;
mod raw;
mod swarm;

pub use exec::{ExecEnd, ExecRun, EXEC_OUTPUT_LIMIT};
pub use facts::EngineFacts;
pub use health::Health;

use std::fmt;
use std::sync::Arc;

use bollard::{BollardRequest, ClientVersion, Docker, API_DEFAULT_VERSION};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::tls::{self, TlsFileError};
use crate::config::DockerConfig;
use crate::progress::Progress;
use api_version::{ApiVersion, ApiVersionError};
use endpoint::{Endpoint, Transport};

pub use crate::plan::observed::{Kind, Observed, Platform};
pub use crate::plan::recreate::Flavor;
pub use inventory::Inventory;
pub use own::{container_id_from_cgroup, container_id_from_mountinfo};
pub use swarm::{SwarmRole, WORKER_NOTE};

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
        "docker host {host:?} is not supported: use unix:///path/to/docker.sock, tcp://host:port or https://host:port"
    )]
    BadHost {
        /// The address as configured.
        host: String,
    },
    /// TLS files with an http:// address, or an https:// address without them.
    #[error(
        "docker host {host}: https:// needs TLS files (DOCKER_TLS_VERIFY with DOCKER_CERT_PATH, or [docker] tls_ca), and http:// is plain HTTP: use tcp:// or https:// with them"
    )]
    BadTls {
        /// The address as configured.
        host: String,
    },
    /// Plain HTTP to an engine on another machine, not allowed by `[docker] insecure = true`.
    #[error(
        "docker host {host} is another machine, and plain tcp:// to it lets anyone on the way drive its engine: use TLS (DOCKER_TLS_VERIFY=1 with DOCKER_CERT_PATH, or [docker] tls_ca, tls_cert and tls_key), or set [docker] insecure = true to accept that"
    )]
    PlainToRemote {
        /// The address as configured.
        host: String,
    },
    /// `DOCKER_TLS_VERIFY` is set but `DOCKER_CERT_PATH` does not have what it needs.
    #[error("TLS for the engine at {host}: {problem}")]
    EnvTls {
        /// The address.
        host: String,
        /// What is missing.
        problem: String,
    },
    /// A TLS file could not be used.
    #[error("TLS for the engine at {host}")]
    TlsFile {
        /// The address.
        host: String,
        /// The file and why.
        source: TlsFileError,
    },
    /// The engine and tidewatch have no API version in common.
    #[error("engine at {host}: no API version in common")]
    ApiVersion {
        /// The address.
        host: String,
        /// Which versions each side speaks.
        source: ApiVersionError,
    },
    /// The journal that says which containers to act on could not be read.
    #[error("journal: {0}")]
    Journal(String),
    /// A pull by digest had no source to pull from (no origin and no mirror configured).
    #[error("{reference}: no registry to pull it from")]
    NoPullSource {
        /// The reference that was to be pulled.
        reference: String,
    },
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

    /// True when the engine refused a service update because the service changed since it was
    /// read ("update out of sequence"): another actor updated it.
    pub fn is_version_conflict(&self) -> bool {
        self.server_refusal().is_some_and(|(status, message)| {
            crate::plan::actor::is_version_conflict(status, message)
        })
    }

    /// True when the engine refused a service update because this manager lost the Swarm's
    /// leadership while it was asked (see [`crate::plan::actor::is_leadership_lost`]).
    pub fn is_leadership_lost(&self) -> bool {
        self.server_refusal().is_some_and(|(status, message)| {
            crate::plan::actor::is_leadership_lost(status, message)
        })
    }

    /// The status and message of an error answer from the engine.
    fn server_refusal(&self) -> Option<(u16, &str)> {
        match self {
            EngineError::Request {
                source:
                    bollard::errors::Error::DockerResponseServerError {
                        status_code,
                        message,
                    },
                ..
            } => Some((*status_code, message)),
            _ => None,
        }
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
    /// The engine's own version as `GET /version` gave it (for the status board), if it gave
    /// a short printable one.
    server_version: Option<String>,
    /// How to reach the engine, for the requests made outside bollard (`raw.rs`): over the
    /// same TLS as bollard's, never in plain text.
    connector: Arc<Connector>,
    /// How pulls and health waits show their progress (log lines unless a command asks).
    progress: Progress,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("host", &self.host)
            .field("api", &self.api_version())
            .field("flavor", &self.flavor)
            .field("tls", &self.connector.is_tls())
            .finish()
    }
}

impl Engine {
    /// Connects to the engine named by `[docker] host`, else `DOCKER_HOST` (with
    /// `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`), else the default socket, and settles the
    /// API version from one `GET /version`, which also tells Docker from Podman.
    pub async fn connect(config: &DockerConfig) -> Result<Engine, EngineError> {
        let endpoint = Endpoint::resolve(config, &|name| std::env::var(name).ok())?;
        let host = endpoint.host.clone();
        let client = Connector::new(&endpoint)?;
        let unreachable = |source| EngineError::Unreachable {
            host: host.clone(),
            source,
        };
        // bollard has no way to change a client's version but its own negotiation, which takes
        // the engine's newest version whatever its minimum: the probe asks, and the client that
        // is kept is made with the version chosen from the answer.
        let probe = client.docker(API_DEFAULT_VERSION).map_err(unreachable)?;
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
        let docker = client.docker(&api.into()).map_err(unreachable)?;
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
            tls = client.is_tls(),
            ?flavor,
            version = version.version.as_deref().unwrap_or("?"),
            "connected to the engine"
        );
        // The engine's text: shown on the status board, so kept short and printable.
        let server_version = version
            .version
            .filter(|v| !v.is_empty() && v.len() <= 64 && !v.chars().any(char::is_control));
        Ok(Engine {
            docker,
            host,
            flavor,
            server_version,
            connector: Arc::new(client),
            progress: Progress::log(),
        })
    }

    /// The negotiated API version.
    pub fn api_version(&self) -> ApiVersion {
        ApiVersion::from(&self.docker.client_version())
    }

    /// Whose engine answers: Docker's or Podman's Docker-compatible service.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// The engine's own version (`20.10.24`, `28.0.1`, Podman's `5.4.2`), when it said.
    pub fn server_version(&self) -> Option<&str> {
        self.server_version.as_deref()
    }

    /// The engine address in use.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Shows pulls and waits with `progress` from now on (every clone of this engine too).
    pub fn show_progress(&mut self, progress: Progress) {
        self.progress = progress;
    }

    /// How pulls and waits show their progress.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// The bollard client, for the modules of this adapter.
    pub(crate) fn docker(&self) -> &Docker {
        &self.docker
    }
}

/// Pulls of large images can take minutes; per-request deadlines are set by callers.
const TIMEOUT_SECS: u64 = 600;

/// An HTTPS client trusting what `config` trusts, for bollard and for `raw.rs`. No idle
/// connections are kept, as bollard's own clients do not keep them: the same behaviour on every
/// transport, at the price of a handshake a request.
fn https_client<B>(
    config: &rustls::ClientConfig,
) -> Client<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>, B>
where
    B: hyper::body::Body + Send,
    B::Data: Send,
{
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config.clone())
        .https_only()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(https)
}

/// Makes bollard clients for one endpoint, with the TLS files read once.
pub(crate) enum Connector {
    Unix(String),
    Http(String),
    Tls {
        authority: String,
        config: Box<rustls::ClientConfig>,
    },
}

impl Connector {
    fn new(endpoint: &Endpoint) -> Result<Connector, EngineError> {
        Ok(match &endpoint.transport {
            Transport::Unix(path) => Connector::Unix(path.clone()),
            Transport::Http(authority) => Connector::Http(authority.clone()),
            Transport::Tls {
                authority, files, ..
            } => Connector::Tls {
                authority: authority.clone(),
                config: Box::new(tls::client_config(files).map_err(|source| {
                    EngineError::TlsFile {
                        host: endpoint.host.clone(),
                        source,
                    }
                })?),
            },
        })
    }

    fn is_tls(&self) -> bool {
        matches!(self, Connector::Tls { .. })
    }

    /// A client speaking API `version`. Nothing is sent yet.
    fn docker(&self, version: &ClientVersion) -> Result<Docker, bollard::errors::Error> {
        match self {
            Connector::Unix(path) => Docker::connect_with_unix(path, TIMEOUT_SECS, version),
            Connector::Http(authority) => {
                Docker::connect_with_http(authority, TIMEOUT_SECS, version)
            }
            Connector::Tls { authority, config } => {
                let client = https_client(config);
                let transport = move |request: BollardRequest| {
                    let client = client.clone();
                    async move {
                        client
                            .request(request)
                            .await
                            .map_err(bollard::errors::Error::from)
                    }
                };
                Docker::connect_with_custom_transport(
                    transport,
                    Some(format!("https://{authority}")),
                    TIMEOUT_SECS,
                    version,
                )
            }
        }
    }
}
