//! Registry adapter: the current manifest digest of image references, asked with one `HEAD` per
//! unique reference (GET only to read a multi-arch index when a comparison needs it).
//!
//! The requests are made here rather than through oci-client's `fetch_manifest_digest` because
//! detection needs what that call does not return: the manifest's media type (to tell an index
//! from a single manifest without a GET), the status and headers of refusals, and one
//! connection pool shared across references. oci-client still provides the reference grammar and
//! the manifest types.

pub mod auth;
mod index;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use tokio::sync::{Mutex, Semaphore};

use crate::config::Config;
use crate::image_ref::ImageRef;
use auth::{Challenge, Credentials, TokenCache};
pub use index::{IndexEntry, INDEX_MEDIA_TYPES};

/// Media types tidewatch accepts for a manifest: Docker v2 and OCI, single and multi-arch.
pub const MANIFEST_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// How long to wait for a connection to a registry.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one request may take, start to end.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// References resolved at once across all registries.
const TOTAL_CONCURRENCY: usize = 16;
/// References resolved at once against one registry.
const PER_REGISTRY_CONCURRENCY: usize = 6;

/// What a registry says a reference currently points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteManifest {
    /// The manifest digest (`sha256:...`).
    pub digest: String,
    /// The manifest's media type, when the registry said.
    pub media_type: Option<String>,
}

impl RemoteManifest {
    /// True when the digest names a multi-arch index / manifest list.
    pub fn is_index(&self) -> bool {
        self.media_type
            .as_deref()
            .is_some_and(|m| INDEX_MEDIA_TYPES.contains(&m))
    }
}

/// A failure asking a registry, naming the registry (and repository where it matters).
/// Never carries a credential or token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    /// No connection could be made, or it broke.
    #[error("registry {registry} is unreachable: {reason}")]
    Unreachable {
        /// The registry host.
        registry: String,
        /// The transport's explanation.
        reason: String,
    },
    /// The registry did not answer in time.
    #[error("registry {registry} did not answer within {timeout:?}")]
    Timeout {
        /// The registry host.
        registry: String,
        /// The limit that ran out.
        timeout: Duration,
    },
    /// The registry refused the credentials (or their absence).
    #[error("registry {registry} refused access to {repository}: {detail}")]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// The repository (or token scope).
        repository: String,
        /// What was tried, never the secret.
        detail: String,
    },
    /// The tag or repository does not exist.
    #[error("{reference} was not found on the registry")]
    NotFound {
        /// The reference asked for.
        reference: String,
    },
    /// The registry asked us to slow down.
    #[error("registry {registry} is rate limiting{}", retry_after.map(|d| format!(" (retry after {}s)", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// The registry host.
        registry: String,
        /// From `Retry-After`, when given.
        retry_after: Option<Duration>,
    },
    /// Any other unexpected status.
    #[error("registry {registry} answered {status} for {reference}")]
    Status {
        /// The registry host.
        registry: String,
        /// The reference asked for.
        reference: String,
        /// The HTTP status.
        status: u16,
    },
    /// The answer made no sense (no digest, unreadable body).
    #[error("registry {registry} sent an unusable answer: {reason}")]
    Protocol {
        /// The registry host.
        registry: String,
        /// What was wrong.
        reason: String,
    },
}

impl RegistryError {
    fn transport(registry: &str, e: reqwest::Error) -> RegistryError {
        if e.is_timeout() {
            RegistryError::Timeout {
                registry: registry.to_string(),
                timeout: REQUEST_TIMEOUT,
            }
        } else {
            // The URL is ours and holds no secret; the source chain says why (refused, TLS...).
            let mut reason = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                reason = format!("{reason}: {s}");
                source = s.source();
            }
            RegistryError::Unreachable {
                registry: registry.to_string(),
                reason,
            }
        }
    }
}

/// Counters of requests sent, for logs, benchmarks and metrics.
#[derive(Debug, Default)]
pub struct RequestCounts {
    /// `HEAD` manifest requests.
    pub manifest_heads: AtomicU64,
    /// `GET` manifest requests.
    pub manifest_gets: AtomicU64,
    /// Token requests.
    pub tokens: AtomicU64,
}

/// Asks registries for digests. Cheap to share: clone the `Arc`.
pub struct RegistryClient {
    http: reqwest::Client,
    config: Arc<Config>,
    tokens: TokenCache,
    /// Per-registry bounds, so one slow registry cannot take all the slots.
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Index contents by digest: a digest's content never changes, so this never goes stale.
    indexes: Mutex<HashMap<String, Arc<Vec<IndexEntry>>>>,
    counts: RequestCounts,
}

impl RegistryClient {
    /// A client for the registries of `config`.
    pub fn new(config: Arc<Config>) -> Result<RegistryClient, RegistryError> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("tidewatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RegistryError::transport("(client setup)", e))?;
        Ok(RegistryClient {
            http,
            config,
            tokens: TokenCache::default(),
            limits: Mutex::default(),
            indexes: Mutex::default(),
            counts: RequestCounts::default(),
        })
    }

    /// Requests sent so far.
    pub fn counts(&self) -> &RequestCounts {
        &self.counts
    }

    /// Resolves every reference once, concurrently within bounds. One registry failing makes
    /// only its references' results errors.
    pub async fn resolve_all(
        &self,
        refs: impl IntoIterator<Item = ImageRef>,
    ) -> HashMap<ImageRef, Result<RemoteManifest, RegistryError>> {
        stream::iter(refs)
            .map(|r| async move {
                let result = self.head(&r).await;
                (r, result)
            })
            .buffer_unordered(TOTAL_CONCURRENCY)
            .collect()
            .await
    }

    /// The manifest `reference` points to now, by one `HEAD`.
    pub async fn head(&self, reference: &ImageRef) -> Result<RemoteManifest, RegistryError> {
        let limit = self.limit_for(reference.registry()).await;
        let _permit = limit.acquire_owned().await.ok();
        let url = self.manifest_url(reference, reference.manifest_reference());
        self.counts.manifest_heads.fetch_add(1, Ordering::Relaxed);
        let response = self.send(Method::HEAD, &url, reference).await?;
        let headers = response.headers();
        let media_type = header_str(headers, CONTENT_TYPE.as_str())
            .map(|m| m.split(';').next().unwrap_or(m).trim().to_string());
        match header_str(headers, "docker-content-digest") {
            Some(digest) => Ok(RemoteManifest {
                digest: digest.to_string(),
                media_type,
            }),
            None => Err(RegistryError::Protocol {
                registry: reference.registry().to_string(),
                reason: format!("no Docker-Content-Digest header for {reference}"),
            }),
        }
    }

    /// The entries of the index `digest` in `reference`'s repository (one GET, then cached).
    pub async fn index_entries(
        &self,
        reference: &ImageRef,
        digest: &str,
    ) -> Result<Arc<Vec<IndexEntry>>, RegistryError> {
        if let Some(entries) = self.indexes.lock().await.get(digest) {
            return Ok(entries.clone());
        }
        let limit = self.limit_for(reference.registry()).await;
        let _permit = limit.acquire_owned().await.ok();
        let url = self.manifest_url(reference, digest);
        self.counts.manifest_gets.fetch_add(1, Ordering::Relaxed);
        let response = self.send(Method::GET, &url, reference).await?;
        let body = response
            .bytes()
            .await
            .map_err(|e| RegistryError::transport(reference.registry(), e))?;
        let entries = Arc::new(
            index::parse(&body).map_err(|reason| RegistryError::Protocol {
                registry: reference.registry().to_string(),
                reason: format!("index {digest} of {}: {reason}", reference.name()),
            })?,
        );
        self.indexes
            .lock()
            .await
            .insert(digest.to_string(), entries.clone());
        Ok(entries)
    }

    async fn limit_for(&self, registry: &str) -> Arc<Semaphore> {
        self.limits
            .lock()
            .await
            .entry(registry.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(PER_REGISTRY_CONCURRENCY)))
            .clone()
    }

    fn manifest_url(&self, reference: &ImageRef, tag_or_digest: &str) -> String {
        format!(
            "{}://{}/v2/{}/manifests/{}",
            self.scheme(reference.registry()),
            reference.api_host(),
            reference.repository(),
            tag_or_digest
        )
    }

    /// `http` for registries marked insecure, and by default for loopback ones (as Docker does).
    fn scheme(&self, registry: &str) -> &'static str {
        let insecure = self
            .config
            .registry(registry)
            .and_then(|r| r.insecure)
            .unwrap_or_else(|| is_loopback(registry));
        if insecure {
            "http"
        } else {
            "https"
        }
    }

    fn credentials(&self, _registry: &str) -> Option<Credentials> {
        None
    }

    /// Sends a manifest request, answering one auth challenge if the registry makes one.
    async fn send(
        &self,
        method: Method,
        url: &str,
        reference: &ImageRef,
    ) -> Result<reqwest::Response, RegistryError> {
        let registry = reference.registry();
        let scope = format!("repository:{}:pull", reference.repository());
        let mut authorization = match self.tokens.get(registry, &scope).await {
            Some(token) => Authorization::Bearer(token),
            None => Authorization::None,
        };
        let credentials = self.credentials(registry);
        for attempt in 0..2 {
            let mut request = self
                .http
                .request(method.clone(), url)
                .header(ACCEPT, MANIFEST_MEDIA_TYPES.join(", "));
            request = match &authorization {
                Authorization::None => request,
                Authorization::Bearer(token) => {
                    request.header(AUTHORIZATION, format!("Bearer {token}"))
                }
                Authorization::Basic(c) => request.basic_auth(&c.username, Some(&c.password)),
            };
            tracing::trace!(%method, url, "registry request");
            let response = request
                .send()
                .await
                .map_err(|e| RegistryError::transport(registry, e))?;
            let status = response.status();
            tracing::debug!(%method, url, %status, "registry answered");
            if status.is_success() {
                return Ok(response);
            }
            if status == StatusCode::UNAUTHORIZED && attempt == 0 {
                let challenge = header_str(response.headers(), WWW_AUTHENTICATE.as_str())
                    .and_then(auth::parse_challenge);
                match challenge {
                    Some(Challenge::Bearer {
                        realm,
                        service,
                        scope: asked,
                    }) => {
                        self.tokens.forget(registry, &scope).await;
                        self.counts.tokens.fetch_add(1, Ordering::Relaxed);
                        let token = self
                            .tokens
                            .fetch(
                                &self.http,
                                registry,
                                &realm,
                                service.as_deref(),
                                asked.as_deref().unwrap_or(&scope),
                                credentials.as_ref(),
                            )
                            .await?;
                        authorization = Authorization::Bearer(token);
                        continue;
                    }
                    Some(Challenge::Basic) => {
                        if let Some(c) = &credentials {
                            authorization = Authorization::Basic(c.clone());
                            continue;
                        }
                    }
                    _ => {}
                }
            }
            return Err(refusal(status, response.headers(), reference));
        }
        Err(RegistryError::Unauthorized {
            registry: registry.to_string(),
            repository: reference.repository().to_string(),
            detail: match credentials {
                Some(_) => "the configured credentials were refused".into(),
                None => "anonymous access was refused and no credentials are configured".into(),
            },
        })
    }
}

/// What a request carries to prove who is asking.
enum Authorization {
    None,
    Bearer(String),
    Basic(Credentials),
}

fn refusal(status: StatusCode, headers: &HeaderMap, reference: &ImageRef) -> RegistryError {
    let registry = reference.registry().to_string();
    match status {
        StatusCode::NOT_FOUND => RegistryError::NotFound {
            reference: reference.to_string(),
        },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => RegistryError::Unauthorized {
            registry,
            repository: reference.repository().to_string(),
            detail: format!("answered {status}"),
        },
        StatusCode::TOO_MANY_REQUESTS => RegistryError::RateLimited {
            registry,
            retry_after: header_str(headers, "retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
        },
        _ => RegistryError::Status {
            registry,
            reference: reference.to_string(),
            status: status.as_u16(),
        },
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// True for `localhost`, `127.0.0.0/8` and `::1`, with or without a port.
pub fn is_loopback(host: &str) -> bool {
    let bare = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(host, |(h, _)| h)
    };
    bare == "localhost"
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("127.8.9.1"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("ghcr.io"));
        assert!(!is_loopback("10.0.0.1:5000"));
        assert!(!is_loopback("registry.tailnet.ts.net:5000"));
    }

    #[test]
    fn index_media_types_are_indexes() {
        let m = |t: &str| RemoteManifest {
            digest: "sha256:x".into(),
            media_type: Some(t.into()),
        };
        assert!(m("application/vnd.oci.image.index.v1+json").is_index());
        assert!(m("application/vnd.docker.distribution.manifest.list.v2+json").is_index());
        assert!(!m("application/vnd.oci.image.manifest.v1+json").is_index());
    }
}
