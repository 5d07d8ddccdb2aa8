//! `agent.toml`: raw TOML structs ([`raw`]) validated into a typed [`Config`].
//!
//! Reading the file is kept apart from parsing it ([`Config::load`] calls [`Config::parse`]), so
//! every rule is unit-tested on literals. Every error carries `file:line:col` and what was expected.

mod api;
mod docker;
pub mod engine_host;
mod gitops;
mod notify;
mod raw;
mod secret_files;
mod swarm;
pub mod tls;
mod verify;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use toml::Spanned;

pub use api::{ApiConfig, HostName, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_CONNECTIONS};
pub use docker::{ClientCert, DockerConfig, TlsFiles};
pub use gitops::{
    without_userinfo, FilePatterns, GitAuth, GitopsConfig, RepoKind, RepoUrl, DEFAULT_MESSAGE,
    MESSAGE_PLACEHOLDERS,
};
pub use notify::{
    redacted, EmailConfig, EventKind, MqttConfig, NotifyConfig, NotifyKind, SmtpSecurity,
};
pub use secret_files::ConfigWarning;
pub use swarm::{SwarmConfig, SwarmFailureAction, SwarmOrder};
pub use verify::{rule_for, VerifyMode, VerifyRule};

/// Where the configuration is read from when neither `-c` nor `TIDEWATCH_CONFIG` says otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/tidewatch/agent.toml";

/// A configuration error, with the place it was found when there is one.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read the configuration: {source}")]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The file was read but something in it is wrong.
    #[error("{file}:{line}:{col}: {message}")]
    Invalid {
        /// The file (or `<string>` for literals).
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What is wrong and what was expected.
        message: String,
    },
}

/// How cycles are scheduled by `tidewatch run`.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// A cycle every so often, counted from the end of the previous one.
    Interval(Duration),
    /// A cron expression (5 fields, or 6 with seconds first), evaluated in local time.
    Schedule(Box<Cron>),
}

/// `[agent]`: the daemon's own settings.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// When cycles run.
    pub trigger: Trigger,
    /// A random delay up to this long is added to each scheduled cycle, so that a fleet of
    /// servers on the same schedule does not hit the registry at the same second.
    pub jitter: Duration,
    /// Where the journal, history and locks live.
    pub state_dir: PathBuf,
}

/// What tidewatch does about a container whose image has a new digest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Recreate it on the new image.
    #[default]
    Update,
    /// Report and notify only (monitor-only).
    Notify,
    /// Leave it alone entirely.
    Ignore,
}

impl Policy {
    /// Parses `update`, `notify` or `ignore`.
    pub fn parse(s: &str) -> Option<Policy> {
        match s.trim().to_ascii_lowercase().as_str() {
            "update" => Some(Policy::Update),
            "notify" => Some(Policy::Notify),
            "ignore" => Some(Policy::Ignore),
            _ => None,
        }
    }

    /// The name `parse` reads: `update`, `notify` or `ignore`.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Update => "update",
            Policy::Notify => "notify",
            Policy::Ignore => "ignore",
        }
    }
}

/// A maintenance window: updates start only while one is open.
#[derive(Debug, Clone)]
pub struct Window {
    /// When windows open (cron, local time).
    pub schedule: Box<Cron>,
    /// How long each stays open.
    pub length: Duration,
    /// The expression as written, for messages.
    pub expression: String,
}

impl Window {
    /// `None` when a window is open at `now`; otherwise when the next one opens.
    pub fn closed_until(
        &self,
        now: chrono::DateTime<chrono::Local>,
    ) -> Option<chrono::DateTime<chrono::Local>> {
        let length = chrono::Duration::from_std(self.length).unwrap_or(chrono::Duration::MAX);
        // The latest opening at or before now, if it is still open.
        if let Ok(opened) = self.schedule.find_previous_occurrence(&now, true) {
            // Past the end of time, the window is still open.
            if opened
                .checked_add_signed(length)
                .is_none_or(|end| now < end)
            {
                return None;
            }
        }
        self.schedule.find_next_occurrence(&now, false).ok()
    }
}

/// `[watch]`: which containers this agent looks after, and how.
#[derive(Debug, Clone, Default)]
pub struct WatchConfig {
    /// Only containers labelled `tidewatch.scope=<scope>`; `None`: only those with no scope label.
    pub scope: Option<String>,
    /// Only containers labelled `tidewatch.enable=true`.
    pub label_enable: bool,
    /// The default policy; a `tidewatch.policy` label or `[[service]] policy` overrides it.
    pub policy: Policy,
    /// The default maintenance window (`None`: any time).
    pub window: Option<Window>,
    /// A digest first seen less than this long ago waits.
    pub min_age: Duration,
    /// Also watch stopped containers: they are recreated on the new image but not started.
    pub include_stopped: bool,
}

/// A secret read from a file or the environment at start-up. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret obtained elsewhere (a test, another source than the config).
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Credentials given in `agent.toml` (the password from a file or the environment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredLogin {
    /// The user name.
    pub username: String,
    /// The password or access token.
    pub password: Secret,
    /// Where the password came from, for error messages: `password_file /path` or
    /// `password_env VAR`.
    pub source: String,
}

/// `[[registry]]`: per-registry settings.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// `host[:port]` as it appears in image references (`ghcr.io`, `127.0.0.1:5000`).
    pub host: String,
    /// Speak plain HTTP. `None` means the default: allowed for loopback hosts only, like Docker.
    pub insecure: Option<bool>,
    /// Credentials from `username` + `password_file`/`password_env`.
    pub login: Option<ConfiguredLogin>,
    /// Extra root certificate(s), PEM, for a private CA.
    pub ca_file: Option<PathBuf>,
    /// Pull-through mirrors (`host[:port]`): images are pulled from them by digest, while the
    /// current digest is asked of the origin.
    pub mirrors: Vec<String>,
    /// Requests in flight to this registry at once.
    pub concurrency: usize,
    /// When the registry says fewer pulls than this remain (`RateLimit-Remaining`), its checks
    /// are deferred for the cycle rather than eat into the pull quota.
    pub rate_limit_reserve: u64,
    /// Tag tracking reads at most this many tags of a repository; the rest are not seen.
    pub max_tags: usize,
    /// ... and follows at most this many pages (`Link: rel="next"`) of its tag list.
    pub max_tag_pages: usize,
    /// `tidewatch.track=regex:` evaluates (one HEAD, and GETs for the creation time of a
    /// digest not seen before) at most this many matching tags per repository and cycle, the
    /// likely newest first.
    pub max_track_candidates: usize,
}

impl RegistryConfig {
    /// The settings of a registry not listed in the file.
    pub fn unlisted(host: &str) -> RegistryConfig {
        RegistryConfig {
            host: host.to_string(),
            insecure: None,
            login: None,
            ca_file: None,
            mirrors: Vec::new(),
            concurrency: DEFAULT_REGISTRY_CONCURRENCY,
            rate_limit_reserve: DEFAULT_RATE_LIMIT_RESERVE,
            max_tags: DEFAULT_MAX_TAGS,
            max_tag_pages: DEFAULT_MAX_TAG_PAGES,
            max_track_candidates: DEFAULT_MAX_TRACK_CANDIDATES,
        }
    }
}

/// Default `[[registry]] concurrency`.
pub const DEFAULT_REGISTRY_CONCURRENCY: usize = 6;
/// Default `[[registry]] rate_limit_reserve`.
pub const DEFAULT_RATE_LIMIT_RESERVE: u64 = 10;

/// Default `[[registry]] max_tags`.
pub const DEFAULT_MAX_TAGS: usize = 10_000;
/// Default `[[registry]] max_tag_pages`.
pub const DEFAULT_MAX_TAG_PAGES: usize = 50;
/// Default `[[registry]] max_track_candidates`.
pub const DEFAULT_MAX_TRACK_CANDIDATES: usize = 20;
/// The most `max_track_candidates`.
pub const MAX_MAX_TRACK_CANDIDATES: usize = 1_000;
/// The most `max_tags` (a tag list that long is megabytes per repository and cycle).
pub const MAX_MAX_TAGS: usize = 1_000_000;
/// The most `max_tag_pages`.
pub const MAX_MAX_TAG_PAGES: usize = 10_000;

/// One (humantime) year: the longest `interval`, window `length` and `min_age`. Values beyond
/// the bounds below are typos, not settings, and once added to a clock they overflowed it and
/// panicked the daemon mid-cycle; they are refused at start-up instead.
pub const MAX_LONG_DURATION: Duration = Duration::from_secs(31_557_600);
/// One day: the longest `jitter`, `min_running`, `health_timeout` and `[swarm]` durations.
pub const MAX_SHORT_DURATION: Duration = Duration::from_secs(24 * 60 * 60);
/// The most `[[registry]] concurrency`: far beyond what any registry accepts from one client,
/// far below tokio's semaphore limit.
pub const MAX_REGISTRY_CONCURRENCY: usize = 64;
/// How far ahead a window's (or `[agent] schedule`'s) next occurrence is looked for: a cron
/// expression that never fires within it (`0 3 30 2 *`, February 30th) is refused.
const SCHEDULE_HORIZON_YEARS: i32 = 5;

/// `[update]`: how a recreate is gated.
#[derive(Debug, Clone)]
pub struct UpdateConfig {
    /// Without a HEALTHCHECK, a new container must keep running this long to count as healthy.
    pub min_running: Duration,
    /// How long a new container may take to become healthy before it is rolled back.
    pub health_timeout: Duration,
    /// How many previous images per container are kept for `tidewatch rollback`.
    pub keep_images: usize,
    /// When the agent runs in a container of its own scope: after a cycle's other updates,
    /// replace that container by a successor on its new digest (see `apply::self_update`).
    /// Otherwise its own container is never recreated.
    pub self_update: bool,
    /// Run lifecycle hooks (Watchtower's `lifecycle.*` labels, `tidewatch.hook.*` labels and
    /// `[[service]] hooks`) around checks and updates; off, they are ignored as Watchtower
    /// ignores them without `--enable-lifecycle-hooks`.
    pub lifecycle_hooks: bool,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig {
            min_running: Duration::from_secs(10),
            health_timeout: Duration::from_secs(120),
            keep_images: 2,
            self_update: false,
            lifecycle_hooks: false,
        }
    }
}

/// `[[service]]`: per-container overrides, by container name.
#[derive(Debug, Clone, Default)]
pub struct ServiceConfig {
    /// The container's name.
    pub name: String,
    /// Containers that must be updated (and healthy) before this one.
    pub depends_on: Vec<String>,
    /// Overrides the label and `[watch] policy`.
    pub policy: Option<Policy>,
    /// Overrides `[watch] window`.
    pub window: Option<Window>,
    /// Overrides `[watch] min_age`.
    pub min_age: Option<Duration>,
    /// Lifecycle hooks for this container, ahead of its labels (`[update] lifecycle_hooks`).
    pub hooks: ServiceHooks,
}

/// `[[service]] hooks`: commands run with `docker exec` as argv (no shell), for containers
/// whose labels cannot be changed. Each overrides the container's label for the same moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceHooks {
    /// Before a cycle checks the container.
    pub pre_check: Option<Vec<String>>,
    /// In the old container, before it is stopped for an update.
    pub pre_update: Option<Vec<String>>,
    /// In the new container, once it runs and passed the health gate.
    pub post_update: Option<Vec<String>>,
    /// After a cycle, in the container as it then is.
    pub post_check: Option<Vec<String>>,
    /// In the current container, before `tidewatch rollback` replaces it.
    pub pre_rollback: Option<Vec<String>>,
    /// How long each may run (default [`DEFAULT_HOOK_TIMEOUT`], at most [`MAX_HOOK_TIMEOUT`]).
    pub timeout: Option<Duration>,
}

/// How long a hook may run when nothing says otherwise (Watchtower's default for its
/// pre- and post-update commands).
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest a hook may run: longer settings (and Watchtower's `0`, "no timeout") are
/// capped here, so a hung hook never holds a cycle forever.
pub const MAX_HOOK_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[agent]`.
    pub agent: AgentConfig,
    /// `[docker]`.
    pub docker: DockerConfig,
    /// `[api]`: `None` unless `listen` is set.
    pub api: Option<ApiConfig>,
    /// `[watch]`.
    pub watch: WatchConfig,
    /// `[[registry]]`, by host.
    pub registries: BTreeMap<String, RegistryConfig>,
    /// `[update]`.
    pub update: UpdateConfig,
    /// `[swarm]`: how services are rolled on a Swarm manager.
    pub swarm: SwarmConfig,
    /// `[[service]]`, by container name.
    pub services: BTreeMap<String, ServiceConfig>,
    /// `[[notify]]`, in file order.
    pub notify: Vec<NotifyConfig>,
    /// `[[verify]]`, in file order: the first whose images match applies.
    pub verify: Vec<VerifyRule>,
    /// `[[gitops]]`, in file order: repositories whose files are pinned by commits.
    pub gitops: Vec<GitopsConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config::parse("", "<defaults>").unwrap_or_else(|e| unreachable!("defaults are valid: {e}"))
    }
}

impl Config {
    /// Reads and validates `path`, with a warning for each file holding a secret that users
    /// other than its owner can read (`path` itself when it holds one): see [`ConfigWarning`].
    pub fn load(path: &Path) -> Result<(Config, Vec<ConfigWarning>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let (config, secrets) = parse(&text, &path.display().to_string())?;
        Ok((config, secrets.warnings(Some(path))))
    }

    /// Parses and validates `text`; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        parse(text, file).map(|(config, _)| config)
    }

    /// The registry settings for `host`, if any.
    pub fn registry(&self, host: &str) -> Option<&RegistryConfig> {
        self.registries.get(host)
    }

    /// The settings for `host`, or the defaults for an unlisted registry.
    pub fn registry_or_default(&self, host: &str) -> RegistryConfig {
        self.registries
            .get(host)
            .cloned()
            .unwrap_or_else(|| RegistryConfig::unlisted(host))
    }
}

/// [`Config::parse`], and where the file keeps its secrets.
fn parse(text: &str, file: &str) -> Result<(Config, secret_files::SecretPlaces), ConfigError> {
    let at = Locator { text, file };
    let raw: raw::RawConfig = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        at.error(span, e.message().trim_end().to_string())
    })?;
    let secrets = secret_files::SecretPlaces::of(&raw);
    Ok((validate(raw, &at)?, secrets))
}

/// Turns byte spans into `file:line:col` errors.
struct Locator<'a> {
    text: &'a str,
    file: &'a str,
}

impl Locator<'_> {
    fn error(&self, span: Range<usize>, message: impl fmt::Display) -> ConfigError {
        let (line, col) = line_col(self.text, span.start);
        ConfigError::Invalid {
            file: self.file.to_string(),
            line,
            col,
            message: message.to_string(),
        }
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = text[line_start..offset].chars().count() + 1;
    (line, col)
}

fn validate(raw: raw::RawConfig, at: &Locator<'_>) -> Result<Config, ConfigError> {
    let agent = validate_agent(raw.agent, at)?;
    let mut registries = BTreeMap::new();
    for r in raw.registry {
        let host = r.host.get_ref().trim().to_string();
        if host.is_empty() || host.contains('/') || host.contains("://") {
            return Err(at.error(
                r.host.span(),
                format!(
                    "registry host {:?} must be a bare host[:port], like \"ghcr.io\" or \"127.0.0.1:5000\"",
                    r.host.get_ref()
                ),
            ));
        }
        if registries.contains_key(&host) {
            return Err(at.error(r.host.span(), format!("registry {host:?} is listed twice")));
        }
        let login = validate_login(&r, &host, at)?;
        let mut mirrors = Vec::new();
        for m in &r.mirror {
            let mirror = m.get_ref().trim().to_string();
            if mirror.is_empty() || mirror.contains('/') {
                return Err(at.error(
                    m.span(),
                    format!("mirror {:?} must be a bare host[:port]", m.get_ref()),
                ));
            }
            mirrors.push(mirror);
        }
        let concurrency = match &r.concurrency {
            Some(c) if *c.get_ref() == 0 => {
                return Err(at.error(c.span(), "concurrency must be at least 1"))
            }
            Some(c) if *c.get_ref() > MAX_REGISTRY_CONCURRENCY => {
                return Err(at.error(
                    c.span(),
                    format!(
                        "concurrency {} is too high: at most {MAX_REGISTRY_CONCURRENCY}",
                        c.get_ref()
                    ),
                ))
            }
            Some(c) => *c.get_ref(),
            None => DEFAULT_REGISTRY_CONCURRENCY,
        };
        let max_tags = count(&r.max_tags, "max_tags", MAX_MAX_TAGS, at)?;
        let max_tag_pages = count(&r.max_tag_pages, "max_tag_pages", MAX_MAX_TAG_PAGES, at)?;
        let max_track_candidates = count(
            &r.max_track_candidates,
            "max_track_candidates",
            MAX_MAX_TRACK_CANDIDATES,
            at,
        )?;
        let ca_file = match r.ca_file {
            Some(path) => {
                if let Err(e) = std::fs::metadata(path.get_ref()) {
                    return Err(at.error(
                        path.span(),
                        format!("ca_file {}: {e}", path.get_ref().display()),
                    ));
                }
                Some(path.into_inner())
            }
            None => None,
        };
        registries.insert(
            host.clone(),
            RegistryConfig {
                host,
                insecure: r.insecure,
                login,
                ca_file,
                mirrors,
                concurrency,
                rate_limit_reserve: r.rate_limit_reserve.unwrap_or(DEFAULT_RATE_LIMIT_RESERVE),
                max_tags: max_tags.unwrap_or(DEFAULT_MAX_TAGS),
                max_tag_pages: max_tag_pages.unwrap_or(DEFAULT_MAX_TAG_PAGES),
                max_track_candidates: max_track_candidates.unwrap_or(DEFAULT_MAX_TRACK_CANDIDATES),
            },
        );
    }
    let mut services = BTreeMap::new();
    for s in raw.service {
        let name = s.name.get_ref().trim_start_matches('/').to_string();
        if name.is_empty() {
            return Err(at.error(s.name.span(), "service name must not be empty"));
        }
        if services.contains_key(&name) {
            return Err(at.error(s.name.span(), format!("service {name:?} is listed twice")));
        }
        services.insert(
            name.clone(),
            ServiceConfig {
                name,
                depends_on: s.depends_on,
                policy: s.policy.map(|p| parse_policy(&p, at)).transpose()?,
                window: s.window.map(|w| parse_window(w, at)).transpose()?,
                min_age: bounded(s.min_age, "min_age", MAX_LONG_DURATION, at)?,
                hooks: s
                    .hooks
                    .map(|h| validate_hooks(h, at))
                    .transpose()?
                    .unwrap_or_default(),
            },
        );
    }
    let update = UpdateConfig::default();
    let update = UpdateConfig {
        min_running: bounded(
            raw.update.min_running,
            "min_running",
            MAX_SHORT_DURATION,
            at,
        )?
        .unwrap_or(update.min_running),
        health_timeout: bounded(
            raw.update.health_timeout,
            "health_timeout",
            MAX_SHORT_DURATION,
            at,
        )?
        .unwrap_or(update.health_timeout),
        keep_images: raw.update.keep_images.unwrap_or(update.keep_images),
        self_update: raw.update.self_update,
        lifecycle_hooks: raw.update.lifecycle_hooks,
    };
    Ok(Config {
        agent,
        docker: docker::validate(raw.docker, at)?,
        api: api::validate(raw.api, at)?,
        watch: WatchConfig {
            scope: raw.watch.scope.filter(|s| !s.is_empty()),
            label_enable: raw.watch.label_enable,
            policy: raw
                .watch
                .policy
                .map(|p| parse_policy(&p, at))
                .transpose()?
                .unwrap_or_default(),
            window: raw.watch.window.map(|w| parse_window(w, at)).transpose()?,
            min_age: bounded(raw.watch.min_age, "min_age", MAX_LONG_DURATION, at)?
                .unwrap_or_default(),
            include_stopped: raw.watch.include_stopped,
        },
        registries,
        update,
        swarm: swarm::validate(raw.swarm, at)?,
        services,
        notify: notify::validate(raw.notify, at)?,
        verify: verify::validate(raw.verify, at)?,
        gitops: gitops::validate(raw.gitops, at)?,
    })
}

/// `[[service]] hooks`: each command a non-empty argv, the timeout a bounded duration.
fn validate_hooks(raw: raw::RawHooks, at: &Locator<'_>) -> Result<ServiceHooks, ConfigError> {
    let argv = |value: Option<Spanned<Vec<String>>>, key: &str| {
        value
            .map(|v| {
                let span = v.span();
                let argv = v.into_inner();
                if argv.first().is_none_or(|program| program.is_empty()) {
                    return Err(at.error(
                        span,
                        format!(
                            "hooks.{key} needs a program: [\"/path/to/program\", \"arg\", ...]"
                        ),
                    ));
                }
                Ok(argv)
            })
            .transpose()
    };
    Ok(ServiceHooks {
        pre_check: argv(raw.pre_check, "pre_check")?,
        pre_update: argv(raw.pre_update, "pre_update")?,
        post_update: argv(raw.post_update, "post_update")?,
        post_check: argv(raw.post_check, "post_check")?,
        pre_rollback: argv(raw.pre_rollback, "pre_rollback")?,
        timeout: bounded(raw.timeout, "hooks.timeout", MAX_HOOK_TIMEOUT, at)?,
    })
}

/// `username` with `password_file` or `password_env`: the secret is read now, so a missing file
/// fails at start-up, and never appears in an error.
fn validate_login(
    r: &raw::RawRegistry,
    host: &str,
    at: &Locator<'_>,
) -> Result<Option<ConfiguredLogin>, ConfigError> {
    if let Some(p) = &r.password {
        return Err(at.error(
            p.span(),
            "a password is never written in agent.toml: use password_file (a file readable only by root) or password_env",
        ));
    }
    let (password, source) = match (&r.password_file, &r.password_env) {
        (Some(_), Some(env)) => {
            return Err(at.error(
                env.span(),
                "password_file and password_env are exclusive: keep one of them",
            ))
        }
        (Some(file), None) => {
            let text = std::fs::read_to_string(file.get_ref()).map_err(|e| {
                at.error(
                    file.span(),
                    format!("password_file {}: {e}", file.get_ref().display()),
                )
            })?;
            // A trailing newline from `echo secret > file` is not part of the secret.
            let secret = text.trim_end_matches(['\n', '\r']).to_string();
            (
                (secret, file.span()),
                format!("password_file {}", file.get_ref().display()),
            )
        }
        (None, Some(env)) => {
            let value = std::env::var(env.get_ref()).map_err(|_| {
                at.error(
                    env.span(),
                    format!(
                        "password_env: the environment variable {} is not set",
                        env.get_ref()
                    ),
                )
            })?;
            (
                (value, env.span()),
                format!("password_env {}", env.get_ref()),
            )
        }
        (None, None) => {
            if let Some(u) = &r.username {
                return Err(at.error(
                    u.span(),
                    format!("registry {host}: username needs password_file or password_env"),
                ));
            }
            return Ok(None);
        }
    };
    let ((password, span), source) = (password, source);
    let Some(username) = &r.username else {
        return Err(at.error(
            span,
            format!("registry {host}: a password needs a username"),
        ));
    };
    if password.is_empty() {
        return Err(at.error(span, format!("{source} is empty")));
    }
    Ok(Some(ConfiguredLogin {
        username: username.get_ref().clone(),
        password: Secret(password),
        source,
    }))
}

fn validate_agent(raw: raw::RawAgent, at: &Locator<'_>) -> Result<AgentConfig, ConfigError> {
    let trigger = match (raw.interval, raw.schedule) {
        (Some(_), Some(schedule)) => {
            return Err(at.error(
                schedule.span(),
                "`interval` and `schedule` are exclusive: keep one of them",
            ))
        }
        (Some(interval), None) => {
            let d = at_most(&interval, "interval", MAX_LONG_DURATION, at)?;
            if d.is_zero() {
                return Err(at.error(interval.span(), "interval must be longer than zero"));
            }
            Trigger::Interval(d)
        }
        (None, Some(schedule)) => {
            Trigger::Schedule(Box::new(parse_firing_schedule(&schedule, at)?))
        }
        (None, None) => Trigger::Interval(Duration::from_secs(300)),
    };
    Ok(AgentConfig {
        trigger,
        jitter: bounded(raw.jitter, "jitter", MAX_SHORT_DURATION, at)?.unwrap_or_default(),
        state_dir: raw
            .state_dir
            .unwrap_or_else(|| PathBuf::from("/var/lib/tidewatch")),
    })
}

/// An optional count from 1 to `max`; `key` names it in the error.
fn count(
    value: &Option<Spanned<usize>>,
    key: &str,
    max: usize,
    at: &Locator<'_>,
) -> Result<Option<usize>, ConfigError> {
    match value {
        Some(v) if !(1..=max).contains(v.get_ref()) => Err(at.error(
            v.span(),
            format!("{key} {} is out of range: 1 to {max}", v.get_ref()),
        )),
        Some(v) => Ok(Some(*v.get_ref())),
        None => Ok(None),
    }
}

/// An optional duration of at most `max`; `key` names it in the error.
fn bounded(
    value: Option<Spanned<String>>,
    key: &str,
    max: Duration,
    at: &Locator<'_>,
) -> Result<Option<Duration>, ConfigError> {
    value.map(|v| at_most(&v, key, max, at)).transpose()
}

/// A duration of at most `max`; `key` names it in the error.
fn at_most(
    value: &Spanned<String>,
    key: &str,
    max: Duration,
    at: &Locator<'_>,
) -> Result<Duration, ConfigError> {
    let d = parse_duration(value, at)?;
    if d > max {
        return Err(at.error(
            value.span(),
            format!(
                "{key} {:?} is too long: at most {}",
                value.get_ref(),
                humantime::format_duration(max)
            ),
        ));
    }
    Ok(d)
}

fn parse_duration(value: &Spanned<String>, at: &Locator<'_>) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value.get_ref()).map_err(|e| {
        at.error(
            value.span(),
            format!(
                "bad duration {:?}: {e} (expected e.g. \"30s\", \"5m\", \"1h 30m\")",
                value.get_ref()
            ),
        )
    })
}

fn parse_policy(value: &Spanned<String>, at: &Locator<'_>) -> Result<Policy, ConfigError> {
    Policy::parse(value.get_ref()).ok_or_else(|| {
        at.error(
            value.span(),
            format!(
                "unknown policy {:?}: expected \"update\", \"notify\" or \"ignore\"",
                value.get_ref()
            ),
        )
    })
}

fn parse_window(raw: raw::RawWindow, at: &Locator<'_>) -> Result<Window, ConfigError> {
    let length = at_most(&raw.length, "a window's length", MAX_LONG_DURATION, at)?;
    if length.is_zero() {
        return Err(at.error(
            raw.length.span(),
            "a window's length must be longer than zero",
        ));
    }
    Ok(Window {
        schedule: Box::new(parse_firing_schedule(&raw.schedule, at)?),
        length,
        expression: raw.schedule.get_ref().clone(),
    })
}

/// Parses a standard 5-field crontab line, or 6 fields with seconds first.
pub fn parse_cron(expr: &str) -> Result<Cron, croner::errors::CronError> {
    // croner skips the empty elements of a list, so a field of a stray comma (`0 , * * *`)
    // matches nothing, and looking for its next occurrence stepped hour by hour (minute by
    // minute for the minutes) to the year 5000, and start-up hung on a typo.
    if expr
        .split_whitespace()
        .any(|field| field.split(',').any(str::is_empty))
    {
        return Err(croner::errors::CronError::InvalidPattern(
            "a list has an empty element (a stray comma)".to_string(),
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
}

fn parse_schedule(value: &Spanned<String>, at: &Locator<'_>) -> Result<Cron, ConfigError> {
    parse_cron(value.get_ref()).map_err(|e| {
        at.error(
            value.span(),
            format!(
                "bad cron expression {:?}: {e} (expected 5 fields \"min hour dom month dow\", or 6 with seconds first)",
                value.get_ref()
            ),
        )
    })
}

/// A cron expression that fires at least once in the next [`SCHEDULE_HORIZON_YEARS`]: one that
/// never does (February 30th) would otherwise mean a window that is never open, or worse, is
/// taken for "no window" (always open) by code that finds no occurrence.
fn parse_firing_schedule(value: &Spanned<String>, at: &Locator<'_>) -> Result<Cron, ConfigError> {
    let cron = parse_schedule(value, at)?;
    let now = chrono::Local::now();
    let horizon = now
        .checked_add_months(chrono::Months::new(
            12 * SCHEDULE_HORIZON_YEARS.unsigned_abs(),
        ))
        .unwrap_or(now);
    match cron.find_next_occurrence(&now, false) {
        Ok(next) if next <= horizon => Ok(cron),
        _ => Err(at.error(
            value.span(),
            format!(
                "cron expression {:?} never fires in the next {SCHEDULE_HORIZON_YEARS} years \
                 (an impossible date such as February 30th?)",
                value.get_ref()
            ),
        )),
    }
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
