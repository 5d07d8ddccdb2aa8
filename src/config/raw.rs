//! The file as written: every key optional, unknown keys refused by name.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub agent: RawAgent,
    #[serde(default)]
    pub docker: RawDocker,
    #[serde(default)]
    pub api: RawApi,
    #[serde(default)]
    pub watch: RawWatch,
    #[serde(default)]
    pub update: RawUpdate,
    #[serde(default)]
    pub swarm: RawSwarm,
    #[serde(default)]
    pub registry: Vec<RawRegistry>,
    #[serde(default)]
    pub service: Vec<RawService>,
    #[serde(default)]
    pub notify: Vec<RawNotify>,
    #[serde(default)]
    pub verify: Vec<RawVerify>,
    #[serde(default)]
    pub gitops: Vec<RawGitops>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAgent {
    pub interval: Option<Spanned<String>>,
    pub schedule: Option<Spanned<String>>,
    pub jitter: Option<Spanned<String>>,
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDocker {
    pub host: Option<Spanned<String>>,
    pub tls_ca: Option<Spanned<PathBuf>>,
    pub tls_cert: Option<Spanned<PathBuf>>,
    pub tls_key: Option<Spanned<PathBuf>>,
    pub insecure: Option<Spanned<bool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApi {
    pub listen: Option<Spanned<String>>,
    pub token_file: Option<Spanned<PathBuf>>,
    pub hook_secret_file: Option<Spanned<PathBuf>>,
    pub public_read: Option<bool>,
    pub header_read_timeout: Option<Spanned<String>>,
    pub max_connections: Option<Spanned<usize>>,
    pub allowed_hosts: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWatch {
    pub scope: Option<String>,
    #[serde(default)]
    pub label_enable: bool,
    pub policy: Option<Spanned<String>>,
    pub window: Option<RawWindow>,
    pub min_age: Option<Spanned<String>>,
    #[serde(default)]
    pub include_stopped: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWindow {
    pub schedule: Spanned<String>,
    pub length: Spanned<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpdate {
    pub min_running: Option<Spanned<String>>,
    pub health_timeout: Option<Spanned<String>>,
    pub keep_images: Option<usize>,
    #[serde(default)]
    pub self_update: bool,
    #[serde(default)]
    pub lifecycle_hooks: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSwarm {
    pub order: Option<Spanned<String>>,
    pub failure_action: Option<Spanned<String>>,
    pub monitor: Option<Spanned<String>>,
    pub parallelism: Option<Spanned<u64>>,
    pub delay: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegistry {
    pub host: Spanned<String>,
    pub insecure: Option<bool>,
    pub username: Option<Spanned<String>>,
    pub password_file: Option<Spanned<PathBuf>>,
    pub password_env: Option<Spanned<String>>,
    /// Refused with a message of its own: secrets never sit in the file.
    pub password: Option<Spanned<toml::Value>>,
    pub ca_file: Option<Spanned<PathBuf>>,
    #[serde(default)]
    pub mirror: Vec<Spanned<String>>,
    pub concurrency: Option<Spanned<usize>>,
    pub rate_limit_reserve: Option<u64>,
    pub max_tags: Option<Spanned<usize>>,
    pub max_tag_pages: Option<Spanned<usize>>,
    pub max_track_candidates: Option<Spanned<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    pub name: Spanned<String>,
    #[serde(default)]
    pub depends_on: Vec<String>,
    pub policy: Option<Spanned<String>>,
    pub window: Option<RawWindow>,
    pub min_age: Option<Spanned<String>>,
    pub hooks: Option<RawHooks>,
}

/// `[[service]] hooks = { pre_update = ["argv", ...], ..., timeout = "1m" }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHooks {
    pub pre_check: Option<Spanned<Vec<String>>>,
    pub pre_update: Option<Spanned<Vec<String>>>,
    pub post_update: Option<Spanned<Vec<String>>>,
    pub post_check: Option<Spanned<Vec<String>>>,
    pub pre_rollback: Option<Spanned<Vec<String>>>,
    pub timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    pub kind: Spanned<super::NotifyKind>,
    pub url: Option<Spanned<String>>,
    /// The URL read from a file, for webhook URLs that are themselves the secret.
    pub url_file: Option<Spanned<PathBuf>>,
    pub events: Option<Spanned<Vec<super::EventKind>>>,
    pub token_file: Option<Spanned<PathBuf>>,
    pub from: Option<Spanned<String>>,
    pub to: Option<Spanned<Vec<Spanned<String>>>>,
    pub username: Option<Spanned<String>>,
    pub password_file: Option<Spanned<PathBuf>>,
    pub topic_prefix: Option<Spanned<String>>,
    pub homeassistant_discovery: Option<Spanned<bool>>,
    pub install_token_file: Option<Spanned<PathBuf>>,
}

/// `[[verify]]`: a cosign key, or a keyless identity under a trusted root.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVerify {
    pub images: Spanned<Vec<Spanned<String>>>,
    pub key: Option<Spanned<PathBuf>>,
    pub identity: Option<Spanned<String>>,
    pub identity_regex: Option<Spanned<String>>,
    pub issuer: Option<Spanned<String>>,
    pub trusted_root: Option<Spanned<PathBuf>>,
    pub tlog: Option<Spanned<bool>>,
    pub mode: Option<Spanned<String>>,
    pub signature_repository: Option<Spanned<String>>,
}

/// `[[gitops]]`: a repository whose files name images, pinned by commits.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGitops {
    pub repo: Spanned<String>,
    pub branch: Option<Spanned<String>>,
    pub files: Spanned<Vec<Spanned<String>>>,
    pub ssh_key_file: Option<Spanned<PathBuf>>,
    pub known_hosts_file: Option<Spanned<PathBuf>>,
    pub username: Option<Spanned<String>>,
    pub token_file: Option<Spanned<PathBuf>>,
    pub author_name: Option<Spanned<String>>,
    pub author_email: Option<Spanned<String>>,
    pub message: Option<Spanned<String>>,
}
