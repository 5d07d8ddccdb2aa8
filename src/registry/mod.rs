//! Registry adapter: the current manifest digest of image references, asked with one `HEAD` per
//! unique reference (GET only to read a multi-arch index when a comparison needs it).
//!
//! The requests are made here rather than through oci-client's `fetch_manifest_digest` because
//! detection needs what that call does not return: the manifest's media type (to tell an index
//! from a single manifest without a GET), the status and headers of refusals, and one
//! connection pool shared across references. oci-client still provides the manifest types (and,
//! in the tests, the push API).

pub mod auth;
mod config;
pub mod credentials;
mod index;
mod notes;
mod ratelimit;
mod referrers;
mod request;
mod resolve;
mod signatures;
mod tags;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use tokio::sync::{Mutex, Semaphore};

use crate::config::{Config, RegistryConfig};
use crate::error_chain::error_chain;
use crate::image_ref::ImageRef;
use crate::net::is_loopback;
pub use crate::plan::remote::{IndexEntry, RemoteManifest, INDEX_MEDIA_TYPES};
use auth::{Credentials, TokenCache};
pub use config::ImageConfig;
use credentials::Found;
pub use ratelimit::RateLimit;
pub use signatures::signature_tag;
pub use tags::{next_link, parse_tag_page, same_origin_page};

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
/// How long a registry whose rate limit ran low is left alone.
const DEFER_FOR: Duration = Duration::from_secs(30 * 60);
/// Tries of one request that the registry answers with 429 or 503.
const RATE_LIMIT_TRIES: u32 = 3;
/// The longest `Retry-After` honoured within a cycle; a longer one fails the rows, and the
/// next cycle tries again.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

/// The largest manifest or index read: distribution's own limit for a manifest it accepts.
const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
/// The largest token endpoint answer read: a token is a few kilobytes at most.
const MAX_TOKEN_ANSWER_BYTES: usize = 64 * 1024;
/// The largest page of a tag list read: ten thousand tags of the longest length allowed (128)
/// fit comfortably, in JSON.
const MAX_TAG_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// A failure asking a registry, naming the registry (and repository where it matters).
/// Never carries a credential or token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    /// The HTTPS client cannot be built at all, e.g. the system has no CA certificates.
    #[error(
        "cannot set up the registry client: {reason} (is the ca-certificates package installed?)"
    )]
    ClientSetup {
        /// The TLS library's explanation.
        reason: String,
    },
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
    /// Checks of this registry are put off for the cycle to spare its pull quota.
    #[error(
        "registry {registry} checks deferred: only {remaining} pulls left in its rate limit window"
    )]
    Deferred {
        /// The registry host.
        registry: String,
        /// Pulls left, as the registry last said.
        remaining: u64,
    },
    /// An HTTPS registry named a plain-HTTP token endpoint: asking it would send the
    /// credentials, and the token, in clear.
    #[error("registry {registry} names a token endpoint over plain HTTP ({realm}); refusing to downgrade from HTTPS")]
    InsecureRealm {
        /// The registry host.
        registry: String,
        /// The token endpoint it named.
        realm: String,
    },
    /// An answer was larger than anything a well-behaved registry sends; reading stopped at
    /// `limit` bytes.
    #[error("registry {registry} sent more than {limit} bytes for {what}; refusing to read it")]
    TooLarge {
        /// The registry host.
        registry: String,
        /// What was being read: `manifest <reference>`, `tag list of <repository>`...
        what: String,
        /// The limit, in bytes.
        limit: usize,
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
            let reason = error_chain(&e);
            RegistryError::Unreachable {
                registry: registry.to_string(),
                reason,
            }
        }
    }
}

/// The body of `response`, read chunk by chunk and refused as soon as it exceeds `limit`
/// bytes (or says it will, in `Content-Length`), so a hostile registry cannot make the agent
/// buffer what it likes. `what` names the object in the error.
async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
    registry: &str,
    what: &str,
) -> Result<Vec<u8>, RegistryError> {
    let too_large = || RegistryError::TooLarge {
        registry: registry.to_string(),
        what: what.to_string(),
        limit,
    };
    let declared = response.content_length().unwrap_or(0);
    if usize::try_from(declared).map_or(true, |n| n > limit) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(usize::try_from(declared).unwrap_or(0));
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| RegistryError::transport(registry, e))?
    {
        if body.len().saturating_add(chunk.len()) > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
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
    /// `GET`s of image config blobs (for tag tracking by regex and release notes).
    pub config_blobs: AtomicU64,
    /// `GET`s of signature payload blobs (the `.sig` manifests count as manifest `GET`s).
    pub signature_blobs: AtomicU64,
}

/// What the client keeps per registry host.
struct RegistryState {
    settings: RegistryConfig,
    /// Bounds the requests in flight, so one slow registry cannot take all the slots.
    limit: Arc<Semaphore>,
    /// Looked up once per client (a credential helper is a process to run).
    credentials: Found,
    /// Until when every request to this registry waits (after a 429 or 503).
    backoff_until: Mutex<Option<Instant>>,
    /// The HTTP client for it (with its `ca_file`, if it has one).
    http: reqwest::Client,
    /// The rate limit it last reported, and when.
    rate_limit: std::sync::Mutex<Option<(RateLimit, Instant)>>,
    /// Requests sent to it and how many failed, since last taken (for metrics).
    requests: AtomicU64,
    errors: AtomicU64,
    /// Set once it answered 404 to the OCI 1.1 referrers API: bundles are then looked up
    /// through the referrers tag schema only.
    no_referrers_api: std::sync::atomic::AtomicBool,
}

/// Asks registries for digests. One per cycle (or per daemon): it caches tokens, credentials
/// and index contents.
pub struct RegistryClient {
    /// For registries trusted through the system roots alone.
    http: reqwest::Client,
    /// For registries with a `ca_file`: that CA is trusted for them only, not for every host.
    http_with_ca: HashMap<String, reqwest::Client>,
    config: Arc<Config>,
    tokens: TokenCache,
    registries: Mutex<HashMap<String, Arc<RegistryState>>>,
    /// Index contents by digest: a digest's content never changes, so this never goes stale.
    indexes: Mutex<HashMap<String, Arc<Vec<IndexEntry>>>>,
    /// Image configs by digest and platform, for tag tracking by regex and release notes.
    configs: Mutex<config::ConfigCache>,
    /// Digests whose signatures were verified, by `(rule number, repository, digest)`.
    verified: Mutex<std::collections::HashSet<(usize, String, String)>>,
    counts: RequestCounts,
}

impl RegistryClient {
    /// A client for the registries of `config`. Fails when a `ca_file` cannot be used.
    pub fn new(config: Arc<Config>) -> Result<RegistryClient, RegistryError> {
        let builder = || {
            reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(REQUEST_TIMEOUT)
                .user_agent(concat!("tidewatch/", env!("CARGO_PKG_VERSION")))
        };
        let mut http_with_ca = HashMap::new();
        for r in config.registries.values() {
            let Some(path) = &r.ca_file else { continue };
            let setup = |reason: String| RegistryError::Protocol {
                registry: r.host.clone(),
                reason,
            };
            let pem = std::fs::read(path)
                .map_err(|e| setup(format!("ca_file {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| setup(format!("ca_file {}: {e}", path.display())))?;
            let client = certs
                .into_iter()
                .fold(builder(), |b, cert| b.add_root_certificate(cert))
                .build()
                .map_err(|e| RegistryError::transport(&r.host, e))?;
            http_with_ca.insert(r.host.clone(), client);
        }
        let http = builder().build().map_err(|e| RegistryError::ClientSetup {
            reason: error_chain(&e),
        })?;
        Ok(RegistryClient {
            http,
            http_with_ca,
            config,
            tokens: TokenCache::default(),
            registries: Mutex::default(),
            indexes: Mutex::default(),
            configs: Mutex::default(),
            verified: Mutex::default(),
            counts: RequestCounts::default(),
        })
    }

    /// Requests sent so far.
    pub fn counts(&self) -> &RequestCounts {
        &self.counts
    }

    /// `(registry, requests, errors)` since the last call, per registry host.
    pub async fn take_registry_counts(&self) -> Vec<(String, u64, u64)> {
        self.registries
            .lock()
            .await
            .iter()
            .map(|(host, state)| {
                (
                    host.clone(),
                    state.requests.swap(0, Ordering::Relaxed),
                    state.errors.swap(0, Ordering::Relaxed),
                )
            })
            .collect()
    }

    /// Resolves every reference once, concurrently within bounds. One registry failing makes
    /// only its references' results errors.
    pub async fn resolve_all(
        &self,
        refs: impl IntoIterator<Item = ImageRef>,
    ) -> HashMap<ImageRef, Result<RemoteManifest, RegistryError>> {
        stream::iter(refs)
            .map(|r| async move {
                let result = self.current(&r).await;
                (r, result)
            })
            .buffer_unordered(TOTAL_CONCURRENCY)
            .collect()
            .await
    }

    /// The digest `reference` points to now: asked of the origin; when the origin cannot be
    /// reached, of its mirrors, saying so.
    pub async fn current(&self, reference: &ImageRef) -> Result<RemoteManifest, RegistryError> {
        let origin_error = match self.head(reference).await {
            Ok(m) => return Ok(m),
            Err(e) => e,
        };
        if !matches!(
            origin_error,
            RegistryError::Unreachable { .. } | RegistryError::Timeout { .. }
        ) {
            return Err(origin_error);
        }
        let state = self.state(reference.registry()).await;
        for mirror in &state.settings.mirrors {
            let Ok(via) = ImageRef::parse(&format!(
                "{mirror}/{}:{}",
                reference.repository(),
                reference.manifest_reference()
            )) else {
                continue;
            };
            if let Ok(mut m) = self.head(&via).await {
                tracing::warn!(%reference, mirror, "origin unreachable; using the mirror's digest");
                m.note = Some(format!(
                    "origin unreachable ({origin_error}); digest from mirror {mirror}, which may lag"
                ));
                return Ok(m);
            }
        }
        Err(origin_error)
    }

    /// Where to pull `reference` from: its mirrors first (by digest, so a stale mirror cannot
    /// serve the wrong image), then the origin; each with the credentials for that host.
    pub async fn pull_sources(&self, reference: &ImageRef) -> Vec<(ImageRef, Option<Credentials>)> {
        let state = self.state(reference.registry()).await;
        let mut sources = Vec::new();
        for mirror in &state.settings.mirrors {
            if let Ok(via) = ImageRef::parse(&format!("{mirror}/{}", reference.repository())) {
                let creds = self.state(mirror).await.credentials.credentials.clone();
                sources.push((via, creds));
            }
        }
        sources.push((reference.clone(), state.credentials.credentials.clone()));
        sources
    }

    /// Names under which a container's image may record digests of `reference`'s repository:
    /// the origin and its mirrors.
    pub fn aliases(&self, reference: &ImageRef) -> Vec<String> {
        let mut names = vec![reference.name()];
        if let Some(r) = self.config.registry(reference.registry()) {
            for m in &r.mirrors {
                names.push(format!("{m}/{}", reference.repository()));
            }
        }
        names
    }

    /// The manifest `reference` points to now, by one `HEAD` (more only when the registry
    /// asks to wait, or for its auth challenge).
    pub async fn head(&self, reference: &ImageRef) -> Result<RemoteManifest, RegistryError> {
        let state = self.state(reference.registry()).await;
        let _permit = state.limit.clone().acquire_owned().await.ok();
        // Checked once our turn has come, so requests that queued behind the one that saw the
        // limit run low are deferred too.
        state.check_rate_limit(reference.registry())?;
        let url = self.manifest_url(reference, reference.manifest_reference());
        let response = self.send(Method::HEAD, &url, reference, &state).await?;
        let headers = response.headers();
        let media_type = header_str(headers, CONTENT_TYPE.as_str())
            .map(|m| m.split(';').next().unwrap_or(m).trim().to_string());
        let note = ratelimit::from_headers(headers).map(|rl| rl.to_string());
        match header_str(headers, "docker-content-digest") {
            Some(digest) => Ok(RemoteManifest {
                digest: digest.to_string(),
                media_type,
                note,
            }),
            None => Err(RegistryError::Protocol {
                registry: reference.registry().to_string(),
                reason: format!("no Docker-Content-Digest header for {reference}"),
            }),
        }
    }

    /// Whether `reference`'s repository holds the manifest (or index) `digest`: one `HEAD` of
    /// `repository@digest`. A registry that answers "not found" does not hold it.
    pub async fn holds(&self, reference: &ImageRef, digest: &str) -> Result<bool, RegistryError> {
        match self.head(&reference.with_digest(digest)).await {
            Ok(_) => Ok(true),
            Err(RegistryError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
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
        let state = self.state(reference.registry()).await;
        let _permit = state.limit.clone().acquire_owned().await.ok();
        let url = self.manifest_url(reference, digest);
        let response = self.send(Method::GET, &url, reference, &state).await?;
        let body = read_capped(
            response,
            MAX_MANIFEST_BYTES,
            reference.registry(),
            &format!("index {digest} of {}", reference.name()),
        )
        .await?;
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

    /// The settings of registry `host` (its `[[registry]]` table, or the defaults).
    pub fn settings(&self, host: &str) -> RegistryConfig {
        self.config.registry_or_default(host)
    }

    /// The credentials tidewatch uses for `host`, and where they came from.
    pub async fn credentials(&self, host: &str) -> Found {
        self.state(host).await.credentials.clone()
    }

    async fn state(&self, host: &str) -> Arc<RegistryState> {
        let mut registries = self.registries.lock().await;
        if let Some(state) = registries.get(host) {
            return state.clone();
        }
        let settings = self.config.registry_or_default(host);
        let lookup_host = host.to_string();
        let lookup_settings = settings.clone();
        // A credential helper is a process: keep it off the async threads.
        let credentials = tokio::task::spawn_blocking(move || {
            credentials::lookup(&lookup_host, &lookup_settings)
        })
        .await
        .unwrap_or_else(|_| Found {
            credentials: None,
            source: "docker config (lookup panicked), then anonymous".into(),
        });
        let http = self
            .http_with_ca
            .get(host)
            .cloned()
            .unwrap_or_else(|| self.http.clone());
        let state = Arc::new(RegistryState {
            http,
            // Validation bounds `concurrency` far below the limit; an unlisted registry's
            // default is small. The `min` keeps `Semaphore::new` from panicking regardless.
            limit: Arc::new(Semaphore::new(
                settings.concurrency.clamp(1, Semaphore::MAX_PERMITS),
            )),
            settings,
            credentials,
            backoff_until: Mutex::new(None),
            rate_limit: std::sync::Mutex::new(None),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            no_referrers_api: std::sync::atomic::AtomicBool::new(false),
        });
        registries.insert(host.to_string(), state.clone());
        state
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

    /// GETs `path` (`manifests/...`, `blobs/...`) of `reference`'s repository within the
    /// registry's concurrency limit, reading at most `limit` bytes of the answer.
    async fn get_in_repository(
        &self,
        reference: &ImageRef,
        path: &str,
        limit: usize,
        state: &RegistryState,
    ) -> Result<Vec<u8>, RegistryError> {
        let url = format!(
            "{}://{}/v2/{}/{path}",
            self.scheme(reference.registry()),
            reference.api_host(),
            reference.repository()
        );
        let _permit = state.limit.clone().acquire_owned().await.ok();
        let response = self.send(Method::GET, &url, reference, state).await?;
        let what = format!("{path} of {}", reference.name());
        read_capped(response, limit, reference.registry(), &what).await
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

    /// Sends a manifest request: waits out the registry's backoff, answers one auth
    /// challenge, and retries 429/503 after `Retry-After` (with jitter) a few times.
    async fn send(
        &self,
        method: Method,
        url: &str,
        reference: &ImageRef,
        state: &RegistryState,
    ) -> Result<reqwest::Response, RegistryError> {
        let result = self.send_counted(method, url, reference, state).await;
        if result.is_err() {
            state.errors.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn send_counted(
        &self,
        method: Method,
        url: &str,
        reference: &ImageRef,
        state: &RegistryState,
    ) -> Result<reqwest::Response, RegistryError> {
        let registry = reference.registry();
        let scope = format!("repository:{}:pull", reference.repository());
        let mut authorization = match self.tokens.get(registry, &scope).await {
            Some(token) => Authorization::Bearer(token),
            None => Authorization::None,
        };
        let mut challenged = false;
        let mut retries = 0;
        loop {
            state.wait_out_backoff().await;
            let response = self
                .send_once(&method, url, registry, state, &authorization)
                .await?;
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            // One challenge is answered; a 401 to the answer is a refusal.
            if status == StatusCode::UNAUTHORIZED && !challenged {
                challenged = true;
                let headers = response.headers();
                if let Some(answer) = self
                    .answer_challenge(headers, url, reference, &scope, state, &authorization)
                    .await?
                {
                    authorization = answer;
                    continue;
                }
            }
            let retry_after = ratelimit::retry_after(response.headers());
            if let Some(delay) = request::retry_delay(status, retry_after, retries) {
                retries += 1;
                state.back_off(registry, status, delay).await;
                continue;
            }
            return Err(refusal(
                status,
                response.headers(),
                reference,
                &state.credentials,
            ));
        }
    }
}

impl RegistryState {
    /// `Deferred` while the registry's rate limit, as it last reported it, is down to
    /// `rate_limit_reserve`: for a while, then one request finds out whether the window moved
    /// on.
    fn check_rate_limit(&self, registry: &str) -> Result<(), RegistryError> {
        let reserve = self.settings.rate_limit_reserve;
        let last = *self.rate_limit.lock().unwrap_or_else(|p| p.into_inner());
        match last {
            Some((rl, seen)) if rl.remaining <= reserve && seen.elapsed() < DEFER_FOR => {
                Err(RegistryError::Deferred {
                    registry: registry.to_string(),
                    remaining: rl.remaining,
                })
            }
            _ => Ok(()),
        }
    }
}

/// Whether the token endpoint `realm`, named by the registry answering `request_url`, may be
/// sent the registry's credentials. Its own origin may, and any host over HTTPS; a plain-HTTP
/// realm on another host only when registry and realm are both on loopback (a local test or
/// development registry). A plain-HTTP realm named by an HTTPS registry is a downgrade, and
/// an error.
fn realm_gets_credentials(
    request_url: &str,
    realm: &str,
    registry: &str,
) -> Result<bool, RegistryError> {
    let protocol = |reason: String| RegistryError::Protocol {
        registry: registry.to_string(),
        reason,
    };
    let request = reqwest::Url::parse(request_url)
        .map_err(|e| protocol(format!("request URL {request_url}: {e}")))?;
    let realm_url = reqwest::Url::parse(realm)
        .map_err(|e| protocol(format!("token endpoint {realm:?} is not a URL: {e}")))?;
    match realm_url.scheme() {
        "https" => return Ok(true),
        "http" if request.scheme() == "https" => {
            return Err(RegistryError::InsecureRealm {
                registry: registry.to_string(),
                realm: realm.to_string(),
            })
        }
        "http" => {}
        other => {
            return Err(protocol(format!(
                "token endpoint {realm:?} has scheme {other:?}, not https"
            )))
        }
    }
    if realm_url.origin() == request.origin() {
        return Ok(true);
    }
    let on_loopback = |url: &reqwest::Url| url.host_str().is_some_and(is_loopback);
    Ok(on_loopback(&request) && on_loopback(&realm_url))
}

/// Up to `max`, different on each call.
fn jitter(max: Duration) -> Duration {
    use std::hash::{BuildHasher, RandomState};
    let n = RandomState::new().hash_one(Instant::now());
    max.mul_f64((n % 1000) as f64 / 1000.0)
}

/// What a request carries to prove who is asking.
enum Authorization {
    None,
    Bearer(String),
    Basic(Credentials),
}

fn refusal(
    status: StatusCode,
    headers: &HeaderMap,
    reference: &ImageRef,
    credentials: &Found,
) -> RegistryError {
    let registry = reference.registry().to_string();
    match status {
        StatusCode::NOT_FOUND => RegistryError::NotFound {
            reference: reference.to_string(),
        },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => RegistryError::Unauthorized {
            registry,
            repository: reference.repository().to_string(),
            detail: format!("answered {status}; tried {}", credentials.source),
        },
        StatusCode::TOO_MANY_REQUESTS => RegistryError::RateLimited {
            registry,
            retry_after: ratelimit::retry_after(headers),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_go_to_a_realm_on_the_same_origin_or_over_https_only() {
        let gets = |request: &str, realm: &str| realm_gets_credentials(request, realm, "reg");
        let https = "https://ghcr.io/v2/o/app/manifests/1";
        assert!(gets(https, "https://ghcr.io/token").unwrap());
        assert!(gets(https, "https://auth.example/token").unwrap());
        let downgrade = gets(https, "http://auth.example/token").unwrap_err();
        assert!(
            matches!(&downgrade, RegistryError::InsecureRealm { registry, .. } if registry == "reg"),
            "{downgrade}"
        );
        assert!(
            gets(https, "http://ghcr.io/token").is_err(),
            "same host, still a downgrade"
        );
        assert!(gets(https, "ftp://ghcr.io/token").is_err());

        let http = "http://10.0.0.5:5000/v2/app/manifests/1";
        assert!(
            gets(http, "http://10.0.0.5:5000/token").unwrap(),
            "its own origin"
        );
        assert!(
            !gets(http, "http://10.0.0.6/token").unwrap(),
            "another host in clear"
        );
        let loopback = "http://127.0.0.1:5000/v2/app/manifests/1";
        assert!(gets(loopback, "http://127.0.0.1:5001/token").unwrap());
        assert!(gets(loopback, "http://localhost:5001/token").unwrap());
        assert!(!gets(loopback, "http://10.0.0.6/token").unwrap());
    }
}
