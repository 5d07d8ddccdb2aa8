//! Recreate spec: what `docker inspect` says about a container, turned back into the create request
//! for its successor on a new image.
//!
//! The Engine API has no inspect-to-create conversion, and inspect is not what the user asked for:
//! it is the user's settings merged with the image's defaults (env, labels, cmd, volumes, ...) and
//! the daemon's (masked paths, log driver, SELinux labels, generated hostname, MAC and IPs). This
//! module owns that translation, field by field, so `docker compose up`-style semantics hold: every
//! setting the user gave is kept, what came from the *old* image is dropped so the *new* image's
//! defaults apply, and what the engine computed is left for it to compute again. Anonymous volumes
//! are re-attached by name, because recreating them empty would lose data.
//!
//! The bollard structs are destructured without `..`, so a field added in a bollard upgrade fails
//! the build here until someone decides whether it is user intent or engine state.
//!
//! Pure: the caller supplies the inspect responses, the negotiated API version and a resolver from
//! container ids to current names.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use bollard::models::{
    ContainerConfig, ContainerCreateBody, ContainerInspectResponse, EndpointIpamConfig,
    EndpointSettings, HostConfig, HostConfigCgroupnsModeEnum, HostConfigIsolationEnum, ImageConfig,
    ImageInspect, Mount, MountPoint, MountType, MountVolumeOptions, MountVolumeOptionsDriverConfig,
    NetworkingConfig, ResourcesUlimits, RestartPolicyNameEnum,
};

/// An Engine API version as negotiated with the daemon, e.g. `1.44`.
///
/// Field order makes the derived `Ord` compare major first, then minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    /// Major version; 1 for every Engine API so far.
    pub major: u32,
    /// Minor version, the part that moves with engine releases.
    pub minor: u32,
}

impl ApiVersion {
    /// Builds a version from its two parts.
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }
}

/// Whose engine answers the Engine API. Podman's Docker-compatible service reports the same API
/// version as Debian 12's Docker (1.41) but fills some inspect fields its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flavor {
    /// Docker Engine (moby).
    #[default]
    Docker,
    /// Podman's `podman system service`.
    Podman,
}

/// The version a bollard client speaks, which after `negotiate_version` is the lower of bollard's
/// and the daemon's.
impl From<&bollard::ClientVersion> for ApiVersion {
    fn from(v: &bollard::ClientVersion) -> Self {
        // Versions are small numbers; saturating keeps the conversion total without a panic.
        let part = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Self::new(part(v.major_version), part(v.minor_version))
    }
}

/// What bollard is told to speak.
impl From<ApiVersion> for bollard::ClientVersion {
    fn from(v: ApiVersion) -> Self {
        Self {
            major_version: v.major as usize,
            minor_version: v.minor as usize,
        }
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A string that is not of the form `<major>.<minor>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Engine API version {input:?}: expected <major>.<minor>, e.g. 1.44")]
pub struct ParseApiVersionError {
    input: String,
}

impl FromStr for ApiVersion {
    type Err = ParseApiVersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseApiVersionError {
            input: s.to_owned(),
        };
        let (major, minor) = s.split_once('.').ok_or_else(err)?;
        Ok(Self {
            major: major.parse().map_err(|_| err())?,
            minor: minor.parse().map_err(|_| err())?,
        })
    }
}

/// Before 1.44 the engine rejects a create with more than one network endpoint, and ignores the
/// per-endpoint MAC address (it only knew the container-wide one, which bollard's models no longer
/// carry).
const MULTI_NETWORK_CREATE: ApiVersion = ApiVersion::new(1, 44);
const ENDPOINT_MAC: ApiVersion = ApiVersion::new(1, 44);
/// From 1.48 (Docker 28) the engine makes up random MAC addresses instead of `02:42:…` ones.
const RANDOM_MACS: ApiVersion = ApiVersion::new(1, 48);
/// Mount options the engine refuses below the version that introduced them.
const MOUNT_RO_FORCE_RECURSIVE: ApiVersion = ApiVersion::new(1, 44);
const MOUNT_VOLUME_SUBPATH: ApiVersion = ApiVersion::new(1, 45);
const MOUNT_TYPE_IMAGE: ApiVersion = ApiVersion::new(1, 48);
/// From 1.48 the engine refuses `net.*.*.ethN.*` sysctls in `HostConfig.Sysctls`; they must be
/// given per endpoint (accepted since 1.46, migrated by the engine itself from 1.46 to 1.47).
const ENDPOINT_SYSCTLS_REQUIRED: ApiVersion = ApiVersion::new(1, 48);
const ENDPOINT_SYSCTLS_OPT: &str = "com.docker.network.endpoint.sysctls";

/// What the engine says besides the inspect: which API it speaks, whose it is, and what the
/// inspect model leaves out.
#[derive(Debug, Clone, Copy)]
pub struct EngineSide<'a> {
    /// The negotiated API version.
    pub api: ApiVersion,
    /// Docker's engine or Podman's service.
    pub flavor: Flavor,
    /// `Config.MacAddress` as the engine recorded it: the MAC the user asked for on the
    /// primary network, `None` when the engine picked one.
    pub chosen_mac: Option<&'a str>,
}

impl EngineSide<'_> {
    /// An engine at `api` of `flavor` that recorded no chosen MAC address.
    pub fn new(api: ApiVersion, flavor: Flavor) -> EngineSide<'static> {
        EngineSide {
            api,
            flavor,
            chosen_mac: None,
        }
    }
}

/// The request that recreates a container: the create body, plus the networks that have to be
/// connected separately on engines that take only one network at create.
#[derive(Debug, Clone, PartialEq)]
pub struct RecreateSpec {
    /// Body for `POST /containers/create`, including `host_config` and `networking_config`.
    /// The caller adds the container name as a query parameter.
    pub body: ContainerCreateBody,
    /// Networks to connect after create, with their endpoint settings, sorted by network name.
    /// Only used below API 1.44 (the engine accepts a single network at create there); empty from
    /// 1.44 on, where every network is in `body.networking_config`.
    pub connect_after_create: Vec<(String, EndpointSettings)>,
}

/// Why a container's settings could not be carried over to a create request. Every variant names
/// the container and the inspect field at fault, so one bad container can be reported and skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The inspect response lacks a section the spec is built from.
    #[error("container {container:?}: inspect response has no {field}")]
    Missing {
        /// Name (or id) of the container being recreated.
        container: String,
        /// The absent inspect field.
        field: String,
    },
    /// A `container:<id>` namespace mode or a `VolumesFrom` entry points at a container that no
    /// longer exists, so the new container would have nothing to join.
    #[error("container {container:?}: {field} refers to container {reference:?}, which no longer exists")]
    UnknownContainer {
        /// Name (or id) of the container being recreated.
        container: String,
        /// The inspect field holding the reference.
        field: String,
        /// The id that resolved to no container.
        reference: String,
    },
    /// A setting the user gave can only be expressed at create with a newer Engine API than the
    /// negotiated one; creating without it would silently change the container.
    #[error("container {container:?}: {field} needs Engine API {required} or newer, the engine speaks {api}")]
    ApiTooOld {
        /// Name (or id) of the container being recreated.
        container: String,
        /// The inspect field that cannot be expressed.
        field: String,
        /// Oldest API version that can express it.
        required: ApiVersion,
        /// The negotiated API version.
        api: ApiVersion,
    },
    /// A setting has no create-time form.
    #[error("container {container:?}: cannot carry over {field}: {reason}")]
    Untranslatable {
        /// Name (or id) of the container being recreated.
        container: String,
        /// The inspect field that cannot be translated.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl SpecError {
    /// Name (or id) of the container the error is about.
    pub fn container(&self) -> &str {
        match self {
            Self::Missing { container, .. }
            | Self::UnknownContainer { container, .. }
            | Self::ApiTooOld { container, .. }
            | Self::Untranslatable { container, .. } => container,
        }
    }

    /// The inspect field that could not be translated.
    pub fn field(&self) -> &str {
        match self {
            Self::Missing { field, .. }
            | Self::UnknownContainer { field, .. }
            | Self::ApiTooOld { field, .. }
            | Self::Untranslatable { field, .. } => field,
        }
    }
}

/// Builds the create request that recreates `old` on `new_image_ref`.
///
/// * `old_image`: inspect of the image `old` was created from; whatever `old` shares with its
///   defaults is dropped so the new image's defaults apply.
/// * `new_image_ref`: the reference to create from (typically the tag, just moved to the new
///   digest).
/// * `api`: the Engine API version negotiated with the daemon.
/// * `flavor`: whether that daemon is Docker or Podman.
/// * `names`: resolves a container id (full or prefix) to its current name. `container:<id>`
///   modes and `VolumesFrom` entries are rewritten to names so the new container joins whatever
///   container holds that name when it is created, e.g. a sidecar that was itself recreated.
pub fn recreate_spec(
    old: &ContainerInspectResponse,
    old_image: &ImageInspect,
    new_image_ref: &str,
    engine: EngineSide<'_>,
    names: &dyn Fn(&str) -> Option<String>,
) -> Result<RecreateSpec, SpecError> {
    let EngineSide {
        api,
        flavor,
        chosen_mac,
    } = engine;
    let cx = Cx {
        container: old
            .name
            .as_deref()
            .map(|n| n.trim_start_matches('/'))
            .filter(|n| !n.is_empty())
            .or(old.id.as_deref())
            .unwrap_or("<unnamed>")
            .to_owned(),
        api,
        flavor,
        chosen_mac,
        names,
    };
    let config = old.config.as_ref().ok_or_else(|| cx.missing("Config"))?;
    let host_config = old
        .host_config
        .as_ref()
        .ok_or_else(|| cx.missing("HostConfig"))?;
    let no_image_config = ImageConfig::default();
    let image = old_image.config.as_ref().unwrap_or(&no_image_config);

    let mut host_config = translate_host_config(&cx, host_config)?;
    let volumes = carry_volumes(
        &cx,
        &mut host_config,
        config.volumes.as_deref().unwrap_or_default(),
        image.volumes.as_deref().unwrap_or_default(),
        old.mounts.as_deref().unwrap_or_default(),
    )?;
    let mut networks = plan_networks(&cx, old, host_config.network_mode.take())?;
    host_config.network_mode = networks.mode.take();
    migrate_interface_sysctls(&cx, &mut host_config, &mut networks)?;

    let mut body = translate_config(&cx, old, config, image, &host_config, new_image_ref);
    body.volumes = volumes;
    body.host_config = Some(host_config);
    body.networking_config = (!networks.at_create.is_empty()).then_some(NetworkingConfig {
        endpoints_config: Some(networks.at_create),
    });
    Ok(RecreateSpec {
        body,
        connect_after_create: networks.after_create,
    })
}

/// What every translation step needs to know: whose settings these are (for errors), which API
/// the engine speaks, and how to turn container ids into names.
struct Cx<'a> {
    container: String,
    api: ApiVersion,
    flavor: Flavor,
    chosen_mac: Option<&'a str>,
    names: &'a dyn Fn(&str) -> Option<String>,
}

impl Cx<'_> {
    fn missing(&self, field: &str) -> SpecError {
        SpecError::Missing {
            container: self.container.clone(),
            field: field.to_owned(),
        }
    }

    fn untranslatable(&self, field: String, reason: impl Into<String>) -> SpecError {
        SpecError::Untranslatable {
            container: self.container.clone(),
            field,
            reason: reason.into(),
        }
    }

    fn require(
        &self,
        required: ApiVersion,
        field: impl FnOnce() -> String,
    ) -> Result<(), SpecError> {
        if self.api >= required {
            return Ok(());
        }
        Err(SpecError::ApiTooOld {
            container: self.container.clone(),
            field: field(),
            required,
            api: self.api,
        })
    }

    /// The name to use for a container the old one referred to by id. A reference that does not
    /// resolve is kept if it may be a name (the engine resolves names too), but an id of a
    /// container that is gone is an error: the new container would join nothing.
    fn container_ref(&self, field: &str, reference: &str) -> Result<String, SpecError> {
        if let Some(name) = (self.names)(reference) {
            let name = name.trim_start_matches('/');
            if !name.is_empty() {
                return Ok(name.to_owned());
            }
        }
        if looks_like_container_id(reference) {
            return Err(SpecError::UnknownContainer {
                container: self.container.clone(),
                field: field.to_owned(),
                reference: reference.to_owned(),
            });
        }
        Ok(reference.to_owned())
    }

    /// Rewrites a `container:<id>` namespace mode to `container:<name>`; other modes pass.
    fn namespace_mode(
        &self,
        field: &str,
        mode: Option<String>,
    ) -> Result<Option<String>, SpecError> {
        match mode {
            Some(mode) => match mode.strip_prefix("container:") {
                Some(reference) => Ok(Some(format!(
                    "container:{}",
                    self.container_ref(field, reference)?
                ))),
                None => Ok(Some(mode)),
            },
            None => Ok(None),
        }
    }
}

/// Container ids are 64 lowercase hex characters; users and the engine abbreviate them to 12.
fn looks_like_container_id(s: &str) -> bool {
    (12..=64).contains(&s.len()) && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `Config`: the user's settings minus the old image's defaults.
fn translate_config(
    cx: &Cx<'_>,
    old: &ContainerInspectResponse,
    config: &ContainerConfig,
    image: &ImageConfig,
    host_config: &HostConfig,
    new_image_ref: &str,
) -> ContainerCreateBody {
    let ContainerConfig {
        hostname,
        domainname,
        user,
        attach_stdin,
        attach_stdout,
        attach_stderr,
        exposed_ports,
        tty,
        open_stdin,
        stdin_once,
        env,
        cmd,
        healthcheck,
        args_escaped,
        // Replaced by the new reference.
        image: _,
        // Computed by `carry_volumes`, which needs the mounts.
        volumes: _,
        working_dir,
        entrypoint,
        network_disabled,
        on_build,
        labels,
        stop_signal,
        stop_timeout,
        shell,
    } = config.clone();

    // Podman writes the hostname into the env (`HOSTNAME=<short id>`), and sets it again for
    // the new container; carried over, it would name the old one. Docker keeps it out of inspect.
    let hostname_env = hostname.as_ref().map(|h| format!("HOSTNAME={h}"));
    let env = env.map(|env| {
        env.into_iter()
            .filter(|e| Some(e) != hostname_env.as_ref())
            .collect()
    });
    let image_working_dir = image.working_dir.as_ref().filter(|w| !w.is_empty());
    let image_stop_signal = image.stop_signal.as_ref().filter(|s| !s.is_empty());

    let network_mode = host_config.network_mode.as_deref().unwrap_or_default();
    let joins_network = network_mode.starts_with("container:");
    // The engine refuses a hostname with UTS mode host or a container network (whose hostname the
    // container takes over at start, and which inspect then shows), and names a container after
    // its short id when no hostname was given. None of those are the user's.
    let short_id = old.id.as_deref().map(|id| id.get(..12).unwrap_or(id));
    let hostname = non_empty(hostname).filter(|h| {
        !joins_network
            && host_config.uts_mode.as_deref() != Some("host")
            && Some(h.as_str()) != short_id
    });
    let domainname = non_empty(domainname).filter(|_| !joins_network);

    let (entrypoint, cmd) = entrypoint_and_cmd(entrypoint, cmd, image);

    ContainerCreateBody {
        hostname,
        domainname,
        user: non_empty(user).filter(|u| Some(u) != image.user.as_ref()),
        attach_stdin,
        attach_stdout,
        attach_stderr,
        exposed_ports: without(exposed_ports, image.exposed_ports.as_deref()),
        tty,
        open_stdin,
        stdin_once,
        env: without(env, image.env.as_deref()),
        cmd,
        healthcheck: healthcheck.filter(|h| Some(h) != image.healthcheck.as_ref()),
        args_escaped,
        image: Some(new_image_ref.to_owned()),
        volumes: None,
        // Podman reports `/` for a container whose image sets no WORKDIR, where Docker reports
        // nothing; both start such a container in `/`, and a WORKDIR of the new image must apply.
        working_dir: non_empty(working_dir)
            .filter(|w| Some(w) != image_working_dir)
            .filter(|w| !(w == "/" && image_working_dir.is_none())),
        entrypoint,
        network_disabled,
        on_build,
        labels: labels_without(labels, image.labels.as_ref()),
        // Podman reports its default signal (`15`) for a container whose image sets no
        // STOPSIGNAL; a STOPSIGNAL of the new image must apply.
        stop_signal: non_empty(stop_signal)
            .filter(|s| Some(s) != image_stop_signal)
            .filter(|s| {
                !(cx.flavor == Flavor::Podman
                    && image_stop_signal.is_none()
                    && matches!(s.as_str(), "15" | "SIGTERM" | "TERM"))
            }),
        stop_timeout,
        shell,
        host_config: None,
        networking_config: None,
    }
}

/// Entrypoint and cmd as the user gave them, following how the engine merges them with the image:
/// the image's cmd is only inherited when no entrypoint is given, and an entrypoint reset with
/// `--entrypoint ""` is stored as none at all.
fn entrypoint_and_cmd(
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    image: &ImageConfig,
) -> (Option<Vec<String>>, Option<Vec<String>>) {
    let entrypoint = non_empty_vec(entrypoint);
    let cmd = non_empty_vec(cmd);
    let image_entrypoint = image.entrypoint.as_ref().filter(|e| !e.is_empty());
    let image_cmd = image.cmd.as_ref().filter(|c| !c.is_empty());

    if entrypoint.is_some() && cmd.is_none() && image_cmd.is_some() {
        // Only an explicit entrypoint keeps the engine from filling in the image's cmd, so the
        // user gave this one, even if it equals the image's; dropping it would start passing the
        // new image's cmd as arguments.
        return (entrypoint, None);
    }
    if entrypoint.as_ref() == image_entrypoint {
        // The entrypoint is the image's, so the new image's applies, and with it the engine's rule
        // that the image cmd fills in when none is given.
        return (None, cmd.filter(|c| Some(c) != image_cmd));
    }
    // The user chose the entrypoint. The engine then never inherits the image's cmd, so the cmd
    // the container has is the user's even where it equals the image's, and must be kept as is.
    let entrypoint = match entrypoint {
        Some(entrypoint) => entrypoint,
        // The image has an entrypoint but the container none: the user reset it, which the API
        // spells `[""]`. Sending none would bring the new image's entrypoint back.
        None => vec![String::new()],
    };
    (Some(entrypoint), cmd)
}

/// `HostConfig`, with ids turned into names and what the engine filled in or refuses left out.
/// Volumes and the network mode are finished by `carry_volumes` and `plan_networks`.
fn translate_host_config(cx: &Cx<'_>, host_config: &HostConfig) -> Result<HostConfig, SpecError> {
    let HostConfig {
        cpu_shares,
        memory,
        cgroup_parent,
        blkio_weight,
        blkio_weight_device,
        blkio_device_read_bps,
        blkio_device_write_bps,
        blkio_device_read_iops,
        blkio_device_write_iops,
        cpu_period,
        cpu_quota,
        cpu_realtime_period,
        cpu_realtime_runtime,
        cpuset_cpus,
        cpuset_mems,
        devices,
        device_cgroup_rules,
        device_requests,
        memory_reservation,
        memory_swap,
        memory_swappiness,
        nano_cpus,
        oom_kill_disable,
        init,
        pids_limit,
        ulimits,
        cpu_count,
        cpu_percent,
        io_maximum_iops,
        io_maximum_bandwidth,
        binds,
        // Written by the CLI, not the engine, when `docker run --cidfile` created the container;
        // it describes the old container's id, not the new one.
        container_id_file: _,
        log_config,
        network_mode,
        port_bindings,
        restart_policy,
        auto_remove,
        volume_driver,
        volumes_from,
        mounts,
        // The terminal size of the client that created the old container; nobody is attached to
        // the new one at create.
        console_size: _,
        annotations,
        cap_add,
        cap_drop,
        cgroupns_mode,
        dns,
        dns_options,
        dns_search,
        extra_hosts,
        group_add,
        ipc_mode,
        cgroup,
        links,
        oom_score_adj,
        pid_mode,
        privileged,
        publish_all_ports,
        readonly_rootfs,
        security_opt,
        storage_opt,
        tmpfs,
        uts_mode,
        userns_mode,
        shm_size,
        sysctls,
        runtime,
        isolation,
        masked_paths,
        readonly_paths,
    } = host_config.clone();

    let ipc_mode = cx.namespace_mode("HostConfig.IpcMode", ipc_mode)?;
    let pid_mode = cx.namespace_mode("HostConfig.PidMode", pid_mode)?;
    let security_opt = without_engine_labels(
        security_opt,
        privileged == Some(true),
        ipc_mode.as_deref(),
        pid_mode.as_deref(),
    );

    Ok(HostConfig {
        cpu_shares,
        memory,
        cgroup_parent,
        blkio_weight,
        blkio_weight_device,
        blkio_device_read_bps,
        blkio_device_write_bps,
        blkio_device_read_iops,
        blkio_device_write_iops,
        cpu_period,
        cpu_quota,
        cpu_realtime_period,
        cpu_realtime_runtime,
        cpuset_cpus,
        cpuset_mems,
        devices,
        device_cgroup_rules,
        device_requests,
        memory_reservation,
        memory_swap,
        memory_swappiness,
        nano_cpus,
        oom_kill_disable,
        init,
        // The engine reads 0 and negatives as "unlimited", the same as no limit at all.
        pids_limit: pids_limit.filter(|&p| p > 0),
        // Note: inspect merges the daemon's default ulimits into this list, so they are carried
        // over as if the user had set them; nothing in inspect tells them apart.
        ulimits: ulimits.map(|ulimits| ulimits.into_iter().map(ulimit_for_create).collect()),
        // Windows-only knobs: inspect reports 0 on Linux, and a Linux engine refuses the IO ones
        // when they are non-zero, so zero means unset.
        cpu_count: cpu_count.filter(|&v| v != 0),
        cpu_percent: cpu_percent.filter(|&v| v != 0),
        io_maximum_iops: io_maximum_iops.filter(|&v| v != 0),
        io_maximum_bandwidth: io_maximum_bandwidth.filter(|&v| v != 0),
        binds,
        container_id_file: None,
        log_config,
        network_mode: cx.namespace_mode("HostConfig.NetworkMode", network_mode)?,
        port_bindings,
        restart_policy: restart_policy.map(|mut policy| {
            // Engines before 25.0 stored a retry count with any policy; newer ones refuse it
            // unless the policy is on-failure, and it means nothing elsewhere.
            if policy.name != Some(RestartPolicyNameEnum::ON_FAILURE) {
                policy.maximum_retry_count = None;
            }
            policy
        }),
        auto_remove,
        volume_driver,
        volumes_from: volumes_from
            .map(|entries| {
                entries
                    .iter()
                    .map(|entry| volumes_from_entry(cx, entry))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?,
        mounts,
        console_size: None,
        annotations,
        cap_add,
        cap_drop,
        cgroupns_mode: cgroupns_mode.filter(|m| *m != HostConfigCgroupnsModeEnum::EMPTY),
        dns,
        dns_options,
        dns_search,
        extra_hosts,
        group_add,
        ipc_mode,
        cgroup: cx.namespace_mode("HostConfig.Cgroup", cgroup)?,
        links: links
            .map(|links| {
                links
                    .iter()
                    .map(|link| {
                        link_for_create(link).ok_or_else(|| {
                            cx.untranslatable(
                                "HostConfig.Links".to_owned(),
                                format!("malformed link {link:?}"),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?,
        oom_score_adj,
        pid_mode,
        privileged,
        publish_all_ports,
        readonly_rootfs,
        security_opt,
        storage_opt,
        tmpfs,
        uts_mode,
        userns_mode,
        shm_size,
        sysctls,
        runtime,
        // Linux reports "" and accepts only "" or "default".
        isolation: isolation.filter(|i| *i != HostConfigIsolationEnum::EMPTY),
        // The engine fills in its default lists when none were given (and the container is not
        // privileged), so a non-empty list is almost always the old engine's defaults; carrying
        // it over would pin them. An empty list is the user's `systempaths=unconfined`.
        masked_paths: masked_paths.filter(Vec::is_empty),
        readonly_paths: readonly_paths.filter(Vec::is_empty),
    })
}

/// Podman's inspect names ulimits after the kernel's constants (`RLIMIT_NOFILE`) while its create,
/// like Docker's, takes `ulimit`'s names (`nofile`) and refuses the others; Docker reports `nofile`
/// already, which passes unchanged.
fn ulimit_for_create(mut ulimit: ResourcesUlimits) -> ResourcesUlimits {
    if let Some(name) = &ulimit.name {
        if let Some(short) = name.strip_prefix("RLIMIT_") {
            ulimit.name = Some(short.to_ascii_lowercase());
        }
    }
    ulimit
}

/// `/db:/web/db` (inspect's form: target name and alias path) becomes `db:db` (create's form:
/// target and alias). Create forms (`db:alias`, `db`) pass unchanged. `None` if malformed.
fn link_for_create(link: &str) -> Option<String> {
    let (target, alias) = match link.split_once(':') {
        Some((target, alias)) => (target, Some(alias)),
        None => (link, None),
    };
    let target = target.trim_start_matches('/');
    if target.is_empty() {
        return None;
    }
    match alias.map(|alias| alias.rsplit('/').next().unwrap_or(alias)) {
        Some("") => None,
        Some(alias) => Some(format!("{target}:{alias}")),
        None => Some(target.to_owned()),
    }
}

/// `<container>[:ro|rw]` with the container id rewritten to its current name.
fn volumes_from_entry(cx: &Cx<'_>, entry: &str) -> Result<String, SpecError> {
    let (reference, mode) = match entry.split_once(':') {
        Some((reference, mode)) => (reference, Some(mode)),
        None => (entry, None),
    };
    let name = cx.container_ref("HostConfig.VolumesFrom", reference)?;
    Ok(match mode {
        Some(mode) => format!("{name}:{mode}"),
        None => name,
    })
}

/// Drops the SELinux `label=` options the engine adds itself, which it adds again on create:
/// `label=disable` for privileged containers and host IPC/PID namespaces, and the copy of the
/// joined container's process label (user, role, type and level) for `container:` IPC/PID modes,
/// which would otherwise pin the label of a container that may since have been recreated.
fn without_engine_labels(
    security_opt: Option<Vec<String>>,
    privileged: bool,
    ipc_mode: Option<&str>,
    pid_mode: Option<&str>,
) -> Option<Vec<String>> {
    let mut opts = security_opt?;
    let host_namespace = privileged || ipc_mode == Some("host") || pid_mode == Some("host");
    let joins = [ipc_mode, pid_mode]
        .iter()
        .any(|m| m.is_some_and(|m| m.starts_with("container:")));
    let copied_label = joins
        && ["label=user:", "label=role:", "label=type:"]
            .iter()
            .all(|prefix| opts.iter().any(|o| o.starts_with(prefix)));
    opts.retain(|opt| {
        let engine_added = (host_namespace && opt == "label=disable")
            || (copied_label
                && ["label=user:", "label=role:", "label=type:", "label=level:"]
                    .iter()
                    .any(|prefix| opt.starts_with(prefix)));
        !engine_added
    });
    Some(opts)
}

/// Makes sure every volume the old container had is mounted again by name, and returns the
/// `Config.Volumes` to send.
///
/// Anonymous volumes come from three places, and get their generated name back in each:
/// `Config.Volumes` (an image `VOLUME`, or `docker run -v /path`), which become `Mounts` entries;
/// a `Mounts` entry of type volume without a source; and a `Binds` entry that is a bare path.
/// Volumes in `old.mounts` at any other path came from `VolumesFrom`, which brings them again.
fn carry_volumes(
    cx: &Cx<'_>,
    host_config: &mut HostConfig,
    config_volumes: &[String],
    image_volumes: &[String],
    mount_points: &[MountPoint],
) -> Result<Option<Vec<String>>, SpecError> {
    let volume_at: HashMap<&str, &MountPoint> = mount_points
        .iter()
        .filter(|mp| mp.typ.as_deref() == Some("volume"))
        .filter(|mp| mp.name.as_deref().is_some_and(|n| !n.is_empty()))
        .filter_map(|mp| Some((clean_path(mp.destination.as_deref()?), mp)))
        .collect();
    let name_at = |dest: &str| {
        volume_at
            .get(clean_path(dest))
            .and_then(|mp| mp.name.clone())
    };

    if let Some(binds) = &mut host_config.binds {
        for bind in binds.iter_mut() {
            if !bind.contains(':') {
                if let Some(name) = name_at(bind) {
                    *bind = format!("{name}:{bind}");
                }
            }
        }
    }
    if let Some(mounts) = &mut host_config.mounts {
        for (i, mount) in mounts.iter_mut().enumerate() {
            check_mount_api(cx, i, mount)?;
            let anonymous = mount.typ == Some(MountType::VOLUME)
                && mount.source.as_deref().is_none_or(str::is_empty);
            if let (true, Some(target)) = (anonymous, mount.target.as_deref()) {
                if let Some(name) = name_at(target) {
                    mount.source = Some(name);
                }
            }
        }
    }

    let mut covered: HashSet<String> = HashSet::new();
    for bind in host_config.binds.iter().flatten() {
        let mut parts = bind.split(':');
        let first = parts.next().unwrap_or_default();
        covered.insert(clean_path(parts.next().unwrap_or(first)).to_owned());
    }
    for mount in host_config.mounts.iter().flatten() {
        if let Some(target) = &mount.target {
            covered.insert(clean_path(target).to_owned());
        }
    }
    for dest in host_config.tmpfs.iter().flat_map(HashMap::keys) {
        covered.insert(clean_path(dest).to_owned());
    }

    let mut sorted_volumes: Vec<&str> = config_volumes.iter().map(|v| clean_path(v)).collect();
    sorted_volumes.sort_unstable();
    sorted_volumes.dedup();
    for dest in sorted_volumes {
        if covered.contains(dest) {
            continue;
        }
        let Some(mp) = volume_at.get(dest) else {
            continue;
        };
        let driver = mp.driver.clone().filter(|d| !d.is_empty());
        host_config.mounts.get_or_insert_with(Vec::new).push(Mount {
            target: Some(dest.to_owned()),
            source: mp.name.clone(),
            typ: Some(MountType::VOLUME),
            read_only: (mp.rw == Some(false)).then_some(true),
            // Naming the driver the volume was created with keeps a container-wide VolumeDriver
            // from being applied to a volume that already exists with another driver.
            volume_options: driver.map(|name| MountVolumeOptions {
                driver_config: Some(MountVolumeOptionsDriverConfig {
                    name: Some(name),
                    options: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        covered.insert(dest.to_owned());
    }

    // Paths the image declares come back with the new image if it still declares them, and paths
    // now mounted explicitly need no anonymous volume; what remains is the user's.
    let image_volumes: HashSet<&str> = image_volumes.iter().map(|v| clean_path(v)).collect();
    let volumes: Vec<String> = config_volumes
        .iter()
        .filter(|v| !image_volumes.contains(clean_path(v)) && !covered.contains(clean_path(v)))
        .cloned()
        .collect();
    Ok((!volumes.is_empty()).then_some(volumes))
}

/// Mount options the engine refuses below the API version that introduced them. The old
/// container can only have them if it was created through a newer API than tidewatch negotiated.
fn check_mount_api(cx: &Cx<'_>, i: usize, mount: &Mount) -> Result<(), SpecError> {
    if mount.typ == Some(MountType::IMAGE) {
        cx.require(MOUNT_TYPE_IMAGE, || {
            format!("HostConfig.Mounts[{i}].Type (image)")
        })?;
    }
    if let Some(true) = mount
        .bind_options
        .as_ref()
        .and_then(|b| b.read_only_force_recursive)
    {
        cx.require(MOUNT_RO_FORCE_RECURSIVE, || {
            format!("HostConfig.Mounts[{i}].BindOptions.ReadOnlyForceRecursive")
        })?;
    }
    let subpath = mount
        .volume_options
        .as_ref()
        .and_then(|v| v.subpath.as_deref());
    if subpath.is_some_and(|s| !s.is_empty()) {
        cx.require(MOUNT_VOLUME_SUBPATH, || {
            format!("HostConfig.Mounts[{i}].VolumeOptions.Subpath")
        })?;
    }
    Ok(())
}

/// A container path without trailing slashes, so `/data/` in `Config.Volumes` matches `/data`
/// in a mount point.
fn clean_path(path: &str) -> &str {
    match path.trim_end_matches('/') {
        "" if path.starts_with('/') => "/",
        trimmed => trimmed,
    }
}

/// Where the new container's networks go.
struct NetworkPlan {
    /// `HostConfig.NetworkMode` to send.
    mode: Option<String>,
    /// The network the engine attaches first (and the one `eth0` belongs to).
    primary: Option<String>,
    /// `NetworkingConfig.EndpointsConfig`.
    at_create: HashMap<String, EndpointSettings>,
    /// Connected after create, on engines that take a single network at create.
    after_create: Vec<(String, EndpointSettings)>,
}

/// Spreads the old container's networks over the create request and later connects.
fn plan_networks(
    cx: &Cx<'_>,
    old: &ContainerInspectResponse,
    mode: Option<String>,
) -> Result<NetworkPlan, SpecError> {
    let mut plan = NetworkPlan {
        mode,
        primary: None,
        at_create: HashMap::new(),
        after_create: Vec::new(),
    };
    let mode = plan.mode.clone().unwrap_or_else(|| "default".to_owned());
    let mode = mode.as_str();
    // These modes have no endpoints of their own; inspect still lists a `host` or `none`
    // pseudo-network, which the create must not name.
    if matches!(mode, "host" | "none") || mode.starts_with("container:") {
        return Ok(plan);
    }
    let old_networks = old
        .network_settings
        .as_ref()
        .and_then(|s| s.networks.as_ref());
    let short_id = old.id.as_deref().map(|id| id.get(..12).unwrap_or(id));
    let mut endpoints = BTreeMap::new();
    for (network, endpoint) in old_networks.into_iter().flatten() {
        endpoints.insert(
            network.clone(),
            endpoint_for_create(cx, network, endpoint, short_id)?,
        );
    }
    let Some(first) = endpoints.keys().next().cloned() else {
        return Ok(plan);
    };

    let default_mode = matches!(mode, "default" | "bridge" | "");
    // The mode may name the network by (a prefix of) its id rather than its name.
    let by_id = || {
        if default_mode || !mode.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        endpoints
            .keys()
            .find(|name| {
                old_networks
                    .and_then(|networks| networks.get(*name))
                    .and_then(|ep| ep.network_id.as_deref())
                    .is_some_and(|id| id.starts_with(mode))
            })
            .cloned()
    };
    let mode_is_primary = (default_mode && endpoints.contains_key("bridge"))
        || (!default_mode && endpoints.contains_key(mode));
    let primary = if default_mode && endpoints.contains_key("bridge") {
        "bridge".to_owned()
    } else if !default_mode && endpoints.contains_key(mode) {
        mode.to_owned()
    } else {
        // The mode names a network the old container is no longer on (e.g. it was disconnected
        // from bridge): make one of its networks the mode, or the engine would attach the
        // network in the mode as well.
        let primary = by_id().unwrap_or(first);
        plan.mode = Some(primary.clone());
        primary
    };
    for (network, endpoint) in endpoints.iter_mut() {
        let is_primary = *network == primary;
        // The chosen MAC belongs to the network in the old mode; if the container left that
        // network, it has no endpoint to go to.
        let chosen = is_primary && mode_is_primary;
        endpoint.mac_address = user_mac(cx, chosen, is_primary, endpoint.mac_address.take());
        if endpoint.mac_address.is_some() {
            cx.require(ENDPOINT_MAC, || {
                format!("NetworkSettings.Networks[{network:?}].MacAddress")
            })?;
        }
    }

    if cx.api >= MULTI_NETWORK_CREATE {
        plan.at_create.extend(endpoints);
    } else {
        for (network, endpoint) in endpoints {
            if network == primary {
                plan.at_create.insert(network, endpoint);
            } else {
                plan.after_create.push((network, endpoint));
            }
        }
    }
    plan.primary = Some(primary);
    Ok(plan)
}

/// The user's part of an endpoint: aliases, static addresses, links, driver options, gateway
/// priority and a MAC address the user set. Ids, gateways, assigned addresses and DNS names are
/// the engine's, recomputed for the new endpoint.
fn endpoint_for_create(
    cx: &Cx<'_>,
    network: &str,
    endpoint: &EndpointSettings,
    short_id: Option<&str>,
) -> Result<EndpointSettings, SpecError> {
    let EndpointSettings {
        ipam_config,
        links,
        mac_address,
        aliases,
        driver_opts,
        gw_priority,
        network_id: _,
        endpoint_id: _,
        gateway: _,
        ip_address: _,
        ip_prefix_len: _,
        ipv6_gateway: _,
        global_ipv6_address: _,
        global_ipv6_prefix_len: _,
        dns_names: _,
    } = endpoint.clone();
    let field = |name: &str| format!("NetworkSettings.Networks[{network:?}].{name}");

    // IPAMConfig only holds what was asked for (`--ip`, `--ip6`, `--link-local-ip`); addresses the
    // engine picked are in IPAddress and friends.
    let ipam_config = ipam_config
        .map(|c| EndpointIpamConfig {
            ipv4_address: non_empty(c.ipv4_address),
            ipv6_address: non_empty(c.ipv6_address),
            link_local_ips: non_empty_vec(c.link_local_ips),
        })
        .filter(|c| *c != EndpointIpamConfig::default());

    let links = links
        .map(|links| {
            links
                .iter()
                .map(|link| {
                    link_for_create(link).ok_or_else(|| {
                        cx.untranslatable(field("Links"), format!("malformed link {link:?}"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;

    // Engines before API 1.45 add the short id to the aliases themselves; the new container gets
    // its own.
    let aliases = non_empty_vec(aliases.map(|a| {
        a.into_iter()
            .filter(|a| Some(a.as_str()) != short_id)
            .collect()
    }));

    // Which MAC is the user's depends on which endpoint is primary: see `plan_networks`.
    let mac_address = non_empty(mac_address);

    Ok(EndpointSettings {
        ipam_config,
        links: non_empty_vec(links),
        mac_address,
        aliases,
        driver_opts: driver_opts.filter(|o| !o.is_empty()),
        gw_priority: gw_priority.filter(|&p| p != 0),
        ..Default::default()
    })
}

/// The MAC address the user set on an endpoint, given the one inspect reports in use there.
///
/// For the primary network the engine records the request itself (`Config.MacAddress`, see
/// [`EngineSide::chosen_mac`]), on 20.10 and on 28.x alike, so the address in use is never
/// guessed at: a Docker 28 engine's random, locally administered MACs (`86:11:…`, `e6:bd:…`)
/// are not pinned, and a user's `02:42:…` address is kept.
///
/// For other networks inspect keeps no request. Engines before API 1.48 (Docker 27 and older)
/// derive the MACs they make from `02:42`, so any other address there was chosen; from 1.48
/// the engine picks random ones, and a MAC chosen for a second network cannot be told from
/// them: it is left for the engine to pick again (README, "Engines").
///
/// Podman's network backends pick a random MAC with no fixed prefix and record no request, so
/// under Podman every MAC counts as generated: a user-chosen one is lost rather than every
/// recreate refused.
fn user_mac(cx: &Cx<'_>, chosen: bool, is_primary: bool, in_use: Option<String>) -> Option<String> {
    if cx.flavor == Flavor::Podman {
        return None;
    }
    if is_primary {
        return if chosen {
            cx.chosen_mac.map(str::to_owned)
        } else {
            None
        };
    }
    if cx.api >= RANDOM_MACS {
        return None;
    }
    in_use.filter(|mac| {
        !mac.get(..6)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("02:42:"))
    })
}

/// Moves `net.*.*.eth0.*` sysctls, which engines from API 1.48 refuse in `HostConfig.Sysctls`, to
/// the primary endpoint's driver options, as the engine itself did for API 1.46 and 1.47.
/// Containers created on older engines still have them at the top level.
fn migrate_interface_sysctls(
    cx: &Cx<'_>,
    host_config: &mut HostConfig,
    networks: &mut NetworkPlan,
) -> Result<(), SpecError> {
    let mode = host_config.network_mode.as_deref().unwrap_or("default");
    if cx.api < ENDPOINT_SYSCTLS_REQUIRED || mode == "host" || mode.starts_with("container:") {
        return Ok(());
    }
    let Some(sysctls) = &mut host_config.sysctls else {
        return Ok(());
    };
    let mut per_interface: Vec<(String, String)> = sysctls
        .iter()
        .filter(|(key, _)| {
            let parts: Vec<&str> = key.splitn(5, '.').collect();
            parts.len() == 5 && parts[0] == "net" && parts[3].starts_with("eth")
        })
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    if per_interface.is_empty() {
        return Ok(());
    }
    per_interface.sort_unstable();

    let mut migrated = Vec::with_capacity(per_interface.len());
    for (key, value) in &per_interface {
        let field = || format!("HostConfig.Sysctls[{key:?}]");
        let parts: Vec<&str> = key.splitn(5, '.').collect();
        if parts[3] != "eth0" {
            // Only eth0 is known to be the primary network's interface.
            return Err(cx.untranslatable(
                field(),
                "interface sysctls for other than eth0 must be set per network",
            ));
        }
        migrated.push(format!(
            "net.{}.{}.IFNAME.{}={value}",
            parts[1], parts[2], parts[4]
        ));
    }
    let endpoint = networks
        .primary
        .as_ref()
        .and_then(|primary| networks.at_create.get_mut(primary))
        .ok_or_else(|| {
            cx.untranslatable(
                format!("HostConfig.Sysctls[{:?}]", per_interface[0].0),
                "the container has no network to set it on",
            )
        })?;
    let opts = endpoint.driver_opts.get_or_insert_with(HashMap::new);
    let mut value = migrated.join(",");
    // Settings already given per endpoint come last, so they win, as with the engine's migration.
    if let Some(existing) = opts.get(ENDPOINT_SYSCTLS_OPT) {
        value = format!("{value},{existing}");
    }
    opts.insert(ENDPOINT_SYSCTLS_OPT.to_owned(), value);
    for (key, _) in &per_interface {
        sysctls.remove(key);
    }
    if sysctls.is_empty() {
        host_config.sysctls = None;
    }
    Ok(())
}

/// Entries of `values` that are not in `image`, in their original order; unset when none remain
/// (an empty list and an absent one mean the same to the engine).
fn without(values: Option<Vec<String>>, image: Option<&[String]>) -> Option<Vec<String>> {
    let image: HashSet<&str> = image.into_iter().flatten().map(String::as_str).collect();
    non_empty_vec(values.map(|v| {
        v.into_iter()
            .filter(|value| !image.contains(value.as_str()))
            .collect()
    }))
}

/// Labels whose key and value are not both those of an image label.
fn labels_without(
    labels: Option<HashMap<String, String>>,
    image: Option<&HashMap<String, String>>,
) -> Option<HashMap<String, String>> {
    let mut labels = labels?;
    if let Some(image) = image {
        labels.retain(|key, value| image.get(key) != Some(value));
    }
    (!labels.is_empty()).then_some(labels)
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

fn non_empty_vec<T>(v: Option<Vec<T>>) -> Option<Vec<T>> {
    v.filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{
        HealthConfig, HostConfigLogConfig, MountBindOptions, NetworkSettings, PortBinding,
        ResourcesUlimits, RestartPolicy,
    };

    const OLD_ID: &str = "4f3c2b1a0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a";
    const SHORT_ID: &str = "4f3c2b1a0d9e";
    const NEW_IMAGE: &str = "127.0.0.1:5000/app:latest";
    const DB_ID: &str = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b";

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn map(items: &[(&str, &str)]) -> HashMap<String, String> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn container(config: ContainerConfig, host_config: HostConfig) -> ContainerInspectResponse {
        ContainerInspectResponse {
            id: Some(OLD_ID.to_owned()),
            name: Some("/web".to_owned()),
            image: Some("sha256:0ld".to_owned()),
            config: Some(ContainerConfig {
                image: Some("127.0.0.1:5000/app:latest".to_owned()),
                ..config
            }),
            host_config: Some(host_config),
            ..Default::default()
        }
    }

    fn image(config: ImageConfig) -> ImageInspect {
        ImageInspect {
            id: Some("sha256:0ld".to_owned()),
            config: Some(config),
            ..Default::default()
        }
    }

    /// An image in the shape most images have: env, cmd, a label, an exposed port, a volume.
    fn app_image() -> ImageInspect {
        image(ImageConfig {
            env: Some(strings(&["PATH=/usr/local/bin:/usr/bin", "APP_PORT=8080"])),
            cmd: Some(strings(&["app", "serve"])),
            labels: Some(map(&[("org.opencontainers.image.version", "1.0")])),
            exposed_ports: Some(strings(&["8080/tcp"])),
            volumes: Some(strings(&["/data"])),
            working_dir: Some("/srv".to_owned()),
            user: Some("app".to_owned()),
            ..Default::default()
        })
    }

    fn no_names(_: &str) -> Option<String> {
        None
    }

    fn names(id: &str) -> Option<String> {
        DB_ID.starts_with(id).then(|| "/db".to_owned())
    }

    fn spec_at(
        old: &ContainerInspectResponse,
        image: &ImageInspect,
        api: ApiVersion,
    ) -> RecreateSpec {
        recreate_spec(
            old,
            image,
            NEW_IMAGE,
            EngineSide::new(api, Flavor::Docker),
            &names,
        )
        .expect("spec")
    }

    fn spec(old: &ContainerInspectResponse, image: &ImageInspect) -> RecreateSpec {
        spec_at(old, image, ApiVersion::new(1, 47))
    }

    fn host(spec: &RecreateSpec) -> &HostConfig {
        spec.body.host_config.as_ref().expect("host config")
    }

    fn endpoints(spec: &RecreateSpec) -> &HashMap<String, EndpointSettings> {
        spec.body
            .networking_config
            .as_ref()
            .and_then(|n| n.endpoints_config.as_ref())
            .expect("endpoints")
    }

    fn with_networks(
        mut old: ContainerInspectResponse,
        networks: &[(&str, EndpointSettings)],
    ) -> ContainerInspectResponse {
        old.network_settings = Some(NetworkSettings {
            networks: Some(
                networks
                    .iter()
                    .map(|(name, ep)| ((*name).to_owned(), ep.clone()))
                    .collect(),
            ),
            ..Default::default()
        });
        old
    }

    /// What inspect shows for an endpoint the engine set up without any user settings.
    fn engine_endpoint(network_id: &str, ip: &str, mac: &str) -> EndpointSettings {
        EndpointSettings {
            network_id: Some(network_id.to_owned()),
            endpoint_id: Some("e9d8c7b6a5f4".to_owned()),
            gateway: Some("172.18.0.1".to_owned()),
            ip_address: Some(ip.to_owned()),
            ip_prefix_len: Some(16),
            ipv6_gateway: Some(String::new()),
            global_ipv6_address: Some(String::new()),
            global_ipv6_prefix_len: Some(0),
            mac_address: Some(mac.to_owned()),
            dns_names: Some(strings(&["web", SHORT_ID])),
            ..Default::default()
        }
    }

    #[test]
    fn a_container_with_only_image_defaults_recreates_with_nothing_but_the_new_image() {
        let old = container(
            ContainerConfig {
                hostname: Some(SHORT_ID.to_owned()),
                domainname: Some(String::new()),
                user: Some("app".to_owned()),
                env: Some(strings(&["PATH=/usr/local/bin:/usr/bin", "APP_PORT=8080"])),
                cmd: Some(strings(&["app", "serve"])),
                labels: Some(map(&[("org.opencontainers.image.version", "1.0")])),
                exposed_ports: Some(strings(&["8080/tcp"])),
                volumes: Some(strings(&["/data"])),
                working_dir: Some("/srv".to_owned()),
                entrypoint: None,
                ..Default::default()
            },
            HostConfig::default(),
        );

        let spec = spec(&old, &app_image());

        assert_eq!(
            spec.body,
            ContainerCreateBody {
                image: Some(NEW_IMAGE.to_owned()),
                host_config: Some(HostConfig::default()),
                ..Default::default()
            }
        );
        assert!(spec.connect_after_create.is_empty());
    }

    #[test]
    fn env_labels_and_cmd_from_the_old_image_are_dropped_and_the_users_are_kept() {
        let old = container(
            ContainerConfig {
                env: Some(strings(&[
                    "PATH=/usr/local/bin:/usr/bin",
                    "APP_PORT=9090",
                    "DATABASE_URL=postgres://db/app",
                ])),
                labels: Some(map(&[
                    ("org.opencontainers.image.version", "1.0"),
                    ("com.docker.compose.project", "shop"),
                    ("com.docker.compose.service", "web"),
                ])),
                cmd: Some(strings(&["app", "serve", "--verbose"])),
                user: Some("1000:1000".to_owned()),
                working_dir: Some("/srv/app".to_owned()),
                ..Default::default()
            },
            HostConfig::default(),
        );

        let body = spec(&old, &app_image()).body;

        assert_eq!(
            body.env,
            Some(strings(&[
                "APP_PORT=9090",
                "DATABASE_URL=postgres://db/app"
            ]))
        );
        assert_eq!(
            body.labels,
            Some(map(&[
                ("com.docker.compose.project", "shop"),
                ("com.docker.compose.service", "web"),
            ]))
        );
        assert_eq!(body.cmd, Some(strings(&["app", "serve", "--verbose"])));
        assert_eq!(body.entrypoint, None);
        assert_eq!(body.user.as_deref(), Some("1000:1000"));
        assert_eq!(body.working_dir.as_deref(), Some("/srv/app"));
    }

    #[test]
    fn a_label_the_user_changed_from_the_images_value_is_kept() {
        let old = container(
            ContainerConfig {
                labels: Some(map(&[("org.opencontainers.image.version", "pinned")])),
                ..Default::default()
            },
            HostConfig::default(),
        );

        let body = spec(&old, &app_image()).body;

        assert_eq!(
            body.labels,
            Some(map(&[("org.opencontainers.image.version", "pinned")]))
        );
    }

    #[test]
    fn an_image_entrypoint_is_dropped_so_the_new_images_applies() {
        let image = image(ImageConfig {
            entrypoint: Some(strings(&["/docker-entrypoint.sh"])),
            cmd: Some(strings(&["nginx", "-g", "daemon off;"])),
            ..Default::default()
        });
        let old = container(
            ContainerConfig {
                entrypoint: Some(strings(&["/docker-entrypoint.sh"])),
                cmd: Some(strings(&["nginx", "-g", "daemon off;"])),
                ..Default::default()
            },
            HostConfig::default(),
        );

        let body = spec(&old, &image).body;

        assert_eq!((body.entrypoint, body.cmd), (None, None));
    }

    #[test]
    fn a_user_entrypoint_keeps_its_cmd_even_when_that_equals_the_images_cmd() {
        // With an entrypoint given the engine does not inherit the image cmd, so dropping the cmd
        // because it looks like the image's would run the entrypoint without arguments.
        let image = image(ImageConfig {
            cmd: Some(strings(&["serve"])),
            ..Default::default()
        });
        let old = container(
            ContainerConfig {
                entrypoint: Some(strings(&["/usr/bin/tini", "--", "app"])),
                cmd: Some(strings(&["serve"])),
                ..Default::default()
            },
            HostConfig::default(),
        );

        let body = spec(&old, &image).body;

        assert_eq!(
            body.entrypoint,
            Some(strings(&["/usr/bin/tini", "--", "app"]))
        );
        assert_eq!(body.cmd, Some(strings(&["serve"])));
    }

    #[test]
    fn an_entrypoint_given_without_cmd_is_kept_even_when_it_equals_the_images() {
        // `docker run --entrypoint /docker-entrypoint.sh nginx` runs the entrypoint without the
        // image's cmd; that only stays so while the entrypoint is given explicitly.
        let image = image(ImageConfig {
            entrypoint: Some(strings(&["/docker-entrypoint.sh"])),
            cmd: Some(strings(&["nginx", "-g", "daemon off;"])),
            ..Default::default()
        });
        let old = container(
            ContainerConfig {
                entrypoint: Some(strings(&["/docker-entrypoint.sh"])),
                cmd: None,
                ..Default::default()
            },
            HostConfig::default(),
        );

        let body = spec(&old, &image).body;

        assert_eq!(body.entrypoint, Some(strings(&["/docker-entrypoint.sh"])));
        assert_eq!(body.cmd, None);
    }

    #[test]
    fn an_entrypoint_the_user_reset_is_sent_as_the_empty_entrypoint() {
        // `docker run --entrypoint "" image sh -c ...` is stored with no entrypoint at all.
        let image = image(ImageConfig {
            entrypoint: Some(strings(&["/docker-entrypoint.sh"])),
            cmd: Some(strings(&["nginx"])),
            ..Default::default()
        });
        let old = container(
            ContainerConfig {
                entrypoint: None,
                cmd: Some(strings(&["sh", "-c", "sleep infinity"])),
                ..Default::default()
            },
            HostConfig::default(),
        );

        let body = spec(&old, &image).body;

        assert_eq!(body.entrypoint, Some(strings(&[""])));
        assert_eq!(body.cmd, Some(strings(&["sh", "-c", "sleep infinity"])));
    }

    #[test]
    fn healthcheck_and_stop_signal_from_the_image_are_dropped_and_overrides_kept() {
        let image_health = HealthConfig {
            test: Some(strings(&["CMD", "curl", "-f", "http://localhost/"])),
            interval: Some(30_000_000_000),
            ..Default::default()
        };
        let image = image(ImageConfig {
            healthcheck: Some(image_health.clone()),
            stop_signal: Some("SIGQUIT".to_owned()),
            ..Default::default()
        });
        let from_image = container(
            ContainerConfig {
                healthcheck: Some(image_health.clone()),
                stop_signal: Some("SIGQUIT".to_owned()),
                stop_timeout: Some(30),
                ..Default::default()
            },
            HostConfig::default(),
        );
        let overridden = container(
            ContainerConfig {
                healthcheck: Some(HealthConfig {
                    test: Some(strings(&["NONE"])),
                    ..Default::default()
                }),
                stop_signal: Some("SIGTERM".to_owned()),
                ..Default::default()
            },
            HostConfig::default(),
        );

        let body = spec(&from_image, &image).body;
        assert_eq!((body.healthcheck, body.stop_signal), (None, None));
        assert_eq!(body.stop_timeout, Some(30));

        let body = spec(&overridden, &image).body;
        assert_eq!(
            body.healthcheck.and_then(|h| h.test),
            Some(strings(&["NONE"]))
        );
        assert_eq!(body.stop_signal.as_deref(), Some("SIGTERM"));
    }

    #[test]
    fn exposed_ports_from_the_image_are_dropped_and_user_ports_and_bindings_kept() {
        let bindings: bollard::models::PortMap = [
            (
                "8080/tcp".to_owned(),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".to_owned()),
                    host_port: Some("80".to_owned()),
                }]),
            ),
            (
                "9000/udp".to_owned(),
                Some(vec![PortBinding {
                    host_ip: Some(String::new()),
                    host_port: Some("9000".to_owned()),
                }]),
            ),
        ]
        .into_iter()
        .collect();
        let old = container(
            ContainerConfig {
                exposed_ports: Some(strings(&["8080/tcp", "9000/udp", "9100/tcp"])),
                ..Default::default()
            },
            HostConfig {
                port_bindings: Some(bindings.clone()),
                publish_all_ports: Some(false),
                ..Default::default()
            },
        );

        let spec = spec(&old, &app_image());

        assert_eq!(
            spec.body.exposed_ports,
            Some(strings(&["9000/udp", "9100/tcp"]))
        );
        assert_eq!(host(&spec).port_bindings, Some(bindings));
        assert_eq!(host(&spec).publish_all_ports, Some(false));
    }

    #[test]
    fn binds_named_volumes_mounts_and_tmpfs_are_kept_as_given() {
        let mounts = vec![
            Mount {
                target: Some("/cache".to_owned()),
                source: Some("shop_cache".to_owned()),
                typ: Some(MountType::VOLUME),
                ..Default::default()
            },
            Mount {
                target: Some("/etc/app".to_owned()),
                source: Some("/srv/shop/config".to_owned()),
                typ: Some(MountType::BIND),
                read_only: Some(true),
                bind_options: Some(MountBindOptions {
                    read_only_non_recursive: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ];
        let old = ContainerInspectResponse {
            mounts: Some(vec![
                MountPoint {
                    typ: Some("bind".to_owned()),
                    source: Some("/srv/shop/uploads".to_owned()),
                    destination: Some("/uploads".to_owned()),
                    rw: Some(true),
                    ..Default::default()
                },
                MountPoint {
                    typ: Some("volume".to_owned()),
                    name: Some("shop_db".to_owned()),
                    destination: Some("/var/lib/db".to_owned()),
                    driver: Some("local".to_owned()),
                    rw: Some(true),
                    ..Default::default()
                },
                MountPoint {
                    typ: Some("volume".to_owned()),
                    name: Some("shop_cache".to_owned()),
                    destination: Some("/cache".to_owned()),
                    driver: Some("local".to_owned()),
                    rw: Some(true),
                    ..Default::default()
                },
            ]),
            ..container(
                ContainerConfig::default(),
                HostConfig {
                    binds: Some(strings(&[
                        "/srv/shop/uploads:/uploads:rw,z",
                        "shop_db:/var/lib/db",
                    ])),
                    mounts: Some(mounts.clone()),
                    tmpfs: Some(map(&[("/run", "rw,noexec,size=65536k")])),
                    volume_driver: Some("local".to_owned()),
                    ..Default::default()
                },
            )
        };

        let spec = spec(&old, &image(ImageConfig::default()));

        let host = host(&spec);
        assert_eq!(
            host.binds,
            Some(strings(&[
                "/srv/shop/uploads:/uploads:rw,z",
                "shop_db:/var/lib/db"
            ]))
        );
        assert_eq!(host.mounts, Some(mounts));
        assert_eq!(host.tmpfs, Some(map(&[("/run", "rw,noexec,size=65536k")])));
        assert_eq!(host.volume_driver.as_deref(), Some("local"));
        assert_eq!(spec.body.volumes, None);
    }

    #[test]
    fn anonymous_volumes_of_image_volume_paths_are_reattached_by_name_so_no_data_is_lost() {
        let anonymous = "a3f1c2d4e5b6a7980f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2";
        let user_anonymous = "0b1c2d3e4f5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4";
        let old = ContainerInspectResponse {
            mounts: Some(vec![
                MountPoint {
                    typ: Some("volume".to_owned()),
                    name: Some(anonymous.to_owned()),
                    source: Some(format!("/var/lib/docker/volumes/{anonymous}/_data")),
                    destination: Some("/data".to_owned()),
                    driver: Some("local".to_owned()),
                    rw: Some(true),
                    ..Default::default()
                },
                MountPoint {
                    typ: Some("volume".to_owned()),
                    name: Some(user_anonymous.to_owned()),
                    destination: Some("/scratch".to_owned()),
                    driver: Some("local".to_owned()),
                    rw: Some(false),
                    ..Default::default()
                },
            ]),
            ..container(
                ContainerConfig {
                    // Image `VOLUME /data` plus `docker run -v /scratch` (stored read-only here).
                    volumes: Some(strings(&["/data", "/scratch/"])),
                    ..Default::default()
                },
                HostConfig::default(),
            )
        };

        let spec = spec(&old, &app_image());

        let volume = |name: &str, target: &str, read_only: Option<bool>| Mount {
            target: Some(target.to_owned()),
            source: Some(name.to_owned()),
            typ: Some(MountType::VOLUME),
            read_only,
            volume_options: Some(MountVolumeOptions {
                driver_config: Some(MountVolumeOptionsDriverConfig {
                    name: Some("local".to_owned()),
                    options: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            host(&spec).mounts,
            Some(vec![
                volume(anonymous, "/data", None),
                volume(user_anonymous, "/scratch", Some(true)),
            ])
        );
        // Both paths are mounted explicitly now, so neither needs a fresh anonymous volume.
        assert_eq!(spec.body.volumes, None);
    }

    #[test]
    fn anonymous_mounts_and_bare_path_binds_get_their_volume_name_back() {
        // Compose writes `volumes: [/data]` as a volume mount without a source; old clients could
        // send a bind that is just a path. Both would get a fresh, empty volume on create.
        let by_mount = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";
        let by_bind = "facade00facade00facade00facade00facade00facade00facade00facade00";
        let old = ContainerInspectResponse {
            mounts: Some(vec![
                MountPoint {
                    typ: Some("volume".to_owned()),
                    name: Some(by_mount.to_owned()),
                    destination: Some("/data".to_owned()),
                    rw: Some(true),
                    ..Default::default()
                },
                MountPoint {
                    typ: Some("volume".to_owned()),
                    name: Some(by_bind.to_owned()),
                    destination: Some("/logs".to_owned()),
                    rw: Some(true),
                    ..Default::default()
                },
            ]),
            ..container(
                ContainerConfig::default(),
                HostConfig {
                    binds: Some(strings(&["/logs"])),
                    mounts: Some(vec![Mount {
                        target: Some("/data".to_owned()),
                        source: Some(String::new()),
                        typ: Some(MountType::VOLUME),
                        ..Default::default()
                    }]),
                    ..Default::default()
                },
            )
        };

        let spec = spec(&old, &image(ImageConfig::default()));

        assert_eq!(host(&spec).binds, Some(vec![format!("{by_bind}:/logs")]));
        assert_eq!(
            host(&spec).mounts,
            Some(vec![Mount {
                target: Some("/data".to_owned()),
                source: Some(by_mount.to_owned()),
                typ: Some(MountType::VOLUME),
                ..Default::default()
            }])
        );
    }

    #[test]
    fn volumes_brought_by_volumes_from_are_left_to_volumes_from() {
        let old = ContainerInspectResponse {
            mounts: Some(vec![MountPoint {
                typ: Some("volume".to_owned()),
                name: Some("db_data".to_owned()),
                destination: Some("/var/lib/postgresql/data".to_owned()),
                rw: Some(true),
                ..Default::default()
            }]),
            ..container(
                ContainerConfig::default(),
                HostConfig {
                    volumes_from: Some(vec![format!("{DB_ID}:ro")]),
                    ..Default::default()
                },
            )
        };

        let spec = spec(&old, &image(ImageConfig::default()));

        assert_eq!(host(&spec).mounts, None);
        assert_eq!(host(&spec).volumes_from, Some(strings(&["db:ro"])));
    }

    #[test]
    fn container_namespace_modes_follow_the_containers_name_not_its_old_id() {
        let old = container(
            ContainerConfig::default(),
            HostConfig {
                network_mode: Some(format!("container:{DB_ID}")),
                pid_mode: Some(format!("container:{DB_ID}")),
                ipc_mode: Some(format!("container:{}", &DB_ID[..12])),
                cgroup: Some(format!("container:{DB_ID}")),
                volumes_from: Some(vec![DB_ID.to_owned(), "cache:rw".to_owned()]),
                uts_mode: Some("host".to_owned()),
                userns_mode: Some("host".to_owned()),
                ..Default::default()
            },
        );

        let spec = spec(&old, &image(ImageConfig::default()));

        let host = host(&spec);
        assert_eq!(host.network_mode.as_deref(), Some("container:db"));
        assert_eq!(host.pid_mode.as_deref(), Some("container:db"));
        assert_eq!(host.ipc_mode.as_deref(), Some("container:db"));
        assert_eq!(host.cgroup.as_deref(), Some("container:db"));
        assert_eq!(host.volumes_from, Some(strings(&["db", "cache:rw"])));
        assert_eq!(host.uts_mode.as_deref(), Some("host"));
        assert_eq!(host.userns_mode.as_deref(), Some("host"));
        assert_eq!(spec.body.networking_config, None);
    }

    #[test]
    fn a_namespace_mode_naming_a_container_that_is_gone_is_an_error() {
        let old = container(
            ContainerConfig::default(),
            HostConfig {
                pid_mode: Some(format!("container:{DB_ID}")),
                ..Default::default()
            },
        );

        let err = recreate_spec(
            &old,
            &image(ImageConfig::default()),
            NEW_IMAGE,
            EngineSide::new(ApiVersion::new(1, 47), Flavor::Docker),
            &no_names,
        )
        .expect_err("vanished container");

        assert_eq!(
            err,
            SpecError::UnknownContainer {
                container: "web".to_owned(),
                field: "HostConfig.PidMode".to_owned(),
                reference: DB_ID.to_owned(),
            }
        );
        assert_eq!(
            (err.container(), err.field()),
            ("web", "HostConfig.PidMode")
        );
    }

    #[test]
    fn joining_another_containers_network_drops_the_hostname_it_took_from_it() {
        // Inspect shows the joined container's hostname; the engine refuses one on create.
        let old = with_networks(
            container(
                ContainerConfig {
                    hostname: Some("db-host".to_owned()),
                    domainname: Some("example.internal".to_owned()),
                    ..Default::default()
                },
                HostConfig {
                    network_mode: Some(format!("container:{DB_ID}")),
                    ..Default::default()
                },
            ),
            &[],
        );

        let body = spec(&old, &image(ImageConfig::default())).body;

        assert_eq!((body.hostname, body.domainname), (None, None));
    }

    #[test]
    fn a_hostname_defaulted_to_the_short_id_is_dropped_and_a_chosen_one_kept() {
        let defaulted = container(
            ContainerConfig {
                hostname: Some(SHORT_ID.to_owned()),
                ..Default::default()
            },
            HostConfig::default(),
        );
        let chosen = container(
            ContainerConfig {
                hostname: Some("web-1".to_owned()),
                domainname: Some("shop.internal".to_owned()),
                ..Default::default()
            },
            HostConfig::default(),
        );

        assert_eq!(spec(&defaulted, &app_image()).body.hostname, None);
        let body = spec(&chosen, &app_image()).body;
        assert_eq!(body.hostname.as_deref(), Some("web-1"));
        assert_eq!(body.domainname.as_deref(), Some("shop.internal"));
    }

    #[test]
    fn legacy_links_are_turned_from_inspect_form_into_create_form() {
        let old = container(
            ContainerConfig::default(),
            HostConfig {
                links: Some(strings(&["/db:/web/db", "/redis-1:/web/cache", "queue:mq"])),
                ..Default::default()
            },
        );

        let spec = spec(&old, &image(ImageConfig::default()));

        assert_eq!(
            host(&spec).links,
            Some(strings(&["db:db", "redis-1:cache", "queue:mq"]))
        );
    }

    #[test]
    fn a_malformed_link_is_an_error_naming_the_field() {
        let old = container(
            ContainerConfig::default(),
            HostConfig {
                links: Some(strings(&["/db:"])),
                ..Default::default()
            },
        );

        let err = recreate_spec(
            &old,
            &image(ImageConfig::default()),
            NEW_IMAGE,
            EngineSide::new(ApiVersion::new(1, 47), Flavor::Docker),
            &names,
        )
        .expect_err("malformed link");

        assert_eq!(err.field(), "HostConfig.Links");
    }

    fn shop_networks() -> Vec<(&'static str, EndpointSettings)> {
        vec![
            (
                "shop_backend",
                EndpointSettings {
                    ipam_config: Some(EndpointIpamConfig {
                        ipv4_address: Some("10.10.0.5".to_owned()),
                        ipv6_address: Some(String::new()),
                        link_local_ips: Some(vec![]),
                    }),
                    aliases: Some(strings(&["web", "api", SHORT_ID])),
                    links: Some(strings(&["db:database"])),
                    driver_opts: Some(map(&[("com.example.mtu", "1400")])),
                    ..engine_endpoint("1111aaaa2222", "10.10.0.5", "02:42:0a:0a:00:05")
                },
            ),
            (
                "shop_frontend",
                EndpointSettings {
                    aliases: Some(strings(&["web", SHORT_ID])),
                    ..engine_endpoint("3333bbbb4444", "172.20.0.3", "02:42:ac:14:00:03")
                },
            ),
        ]
    }

    fn backend_endpoint() -> EndpointSettings {
        EndpointSettings {
            ipam_config: Some(EndpointIpamConfig {
                ipv4_address: Some("10.10.0.5".to_owned()),
                ..Default::default()
            }),
            aliases: Some(strings(&["web", "api"])),
            links: Some(strings(&["db:database"])),
            driver_opts: Some(map(&[("com.example.mtu", "1400")])),
            ..Default::default()
        }
    }

    fn frontend_endpoint() -> EndpointSettings {
        EndpointSettings {
            aliases: Some(strings(&["web"])),
            ..Default::default()
        }
    }

    #[test]
    fn every_network_with_aliases_and_static_ips_goes_into_the_create_from_api_1_44() {
        let old = with_networks(
            container(
                ContainerConfig::default(),
                HostConfig {
                    network_mode: Some("shop_backend".to_owned()),
                    ..Default::default()
                },
            ),
            &shop_networks(),
        );

        let spec = spec_at(&old, &app_image(), ApiVersion::new(1, 44));

        assert_eq!(host(&spec).network_mode.as_deref(), Some("shop_backend"));
        assert_eq!(
            endpoints(&spec),
            &[
                ("shop_backend".to_owned(), backend_endpoint()),
                ("shop_frontend".to_owned(), frontend_endpoint()),
            ]
            .into_iter()
            .collect::<HashMap<_, _>>()
        );
        assert!(spec.connect_after_create.is_empty());
    }

    #[test]
    fn before_api_1_44_only_the_mode_network_is_created_and_the_rest_connected_after() {
        let old = with_networks(
            container(
                ContainerConfig::default(),
                HostConfig {
                    network_mode: Some("shop_frontend".to_owned()),
                    ..Default::default()
                },
            ),
            &shop_networks(),
        );

        let spec = spec_at(&old, &app_image(), ApiVersion::new(1, 41));

        assert_eq!(host(&spec).network_mode.as_deref(), Some("shop_frontend"));
        assert_eq!(
            endpoints(&spec),
            &[("shop_frontend".to_owned(), frontend_endpoint())]
                .into_iter()
                .collect::<HashMap<_, _>>()
        );
        assert_eq!(
            spec.connect_after_create,
            vec![("shop_backend".to_owned(), backend_endpoint())]
        );
    }

    #[test]
    fn before_api_1_44_the_default_mode_creates_on_bridge_and_connects_the_rest() {
        let old = with_networks(
            container(
                ContainerConfig::default(),
                HostConfig {
                    network_mode: Some("default".to_owned()),
                    ..Default::default()
                },
            ),
            &[
                (
                    "bridge",
                    engine_endpoint("5555cccc6666", "172.17.0.2", "02:42:ac:11:00:02"),
                ),
                ("app_net", EndpointSettings::default()),
            ],
        );

        let spec = spec_at(&old, &app_image(), ApiVersion::new(1, 41));

        assert_eq!(host(&spec).network_mode.as_deref(), Some("default"));
        assert_eq!(
            endpoints(&spec),
            &[("bridge".to_owned(), EndpointSettings::default())]
                .into_iter()
                .collect::<HashMap<_, _>>()
        );
        assert_eq!(
            spec.connect_after_create,
            vec![("app_net".to_owned(), EndpointSettings::default())]
        );
    }

    #[test]
    fn a_container_moved_off_bridge_gets_its_first_network_as_mode() {
        // `docker run` then `docker network disconnect bridge` leaves the mode at "default";
        // keeping it would attach the new container to bridge again.
        let old = with_networks(
            container(
                ContainerConfig::default(),
                HostConfig {
                    network_mode: Some("default".to_owned()),
                    ..Default::default()
                },
            ),
            &shop_networks(),
        );

        let spec = spec_at(&old, &app_image(), ApiVersion::new(1, 41));

        assert_eq!(host(&spec).network_mode.as_deref(), Some("shop_backend"));
        assert!(endpoints(&spec).contains_key("shop_backend"));
        assert_eq!(spec.connect_after_create.len(), 1);
    }

    #[test]
    fn a_mode_naming_the_network_by_id_creates_on_that_network() {
        let old = with_networks(
            container(
                ContainerConfig::default(),
                HostConfig {
                    network_mode: Some("3333bbbb".to_owned()),
                    ..Default::default()
                },
            ),
            &shop_networks(),
        );

        let spec = spec_at(&old, &app_image(), ApiVersion::new(1, 41));

        assert_eq!(host(&spec).network_mode.as_deref(), Some("shop_frontend"));
        assert!(endpoints(&spec).contains_key("shop_frontend"));
        assert_eq!(
            spec.connect_after_create,
            vec![("shop_backend".to_owned(), backend_endpoint())]
        );
    }

    #[test]
    fn host_none_and_container_network_modes_get_no_endpoints() {
        for mode in ["host", "none", "container:db"] {
            let old = with_networks(
                container(
                    ContainerConfig::default(),
                    HostConfig {
                        network_mode: Some(mode.to_owned()),
                        ..Default::default()
                    },
                ),
                &[(mode, engine_endpoint("7777dddd8888", "", ""))],
            );

            let spec = spec_at(&old, &app_image(), ApiVersion::new(1, 41));

            assert_eq!(host(&spec).network_mode.as_deref(), Some(mode));
            assert_eq!(spec.body.networking_config, None, "mode {mode}");
            assert!(spec.connect_after_create.is_empty(), "mode {mode}");
        }
    }

    /// A container on `networks` whose mode names `mode`, and the spec at `api` for an engine
    /// that recorded `chosen` as its `Config.MacAddress`.
    fn mac_spec(
        mode: &str,
        networks: &[(&str, EndpointSettings)],
        api: ApiVersion,
        chosen: Option<&str>,
    ) -> Result<RecreateSpec, SpecError> {
        let old = with_networks(
            container(
                ContainerConfig::default(),
                HostConfig {
                    network_mode: Some(mode.to_owned()),
                    ..Default::default()
                },
            ),
            networks,
        );
        let engine = EngineSide {
            api,
            flavor: Flavor::Docker,
            chosen_mac: chosen,
        };
        recreate_spec(&old, &app_image(), NEW_IMAGE, engine, &names)
    }

    #[test]
    fn docker_28s_random_mac_is_not_pinned_on_the_new_container() {
        // Seen on docker.io 28.5.2: nobody chose a MAC, the engine made up `86:11:…`.
        let spec = mac_spec(
            "bridge",
            &[(
                "bridge",
                engine_endpoint("1", "172.17.0.2", "86:11:a9:81:c6:cd"),
            )],
            ApiVersion::new(1, 51),
            None,
        )
        .expect("spec");

        assert_eq!(endpoints(&spec)["bridge"].mac_address, None);
    }

    #[test]
    fn the_mac_the_user_chose_for_the_primary_network_is_kept_whatever_its_prefix() {
        for (api, mac) in [
            (ApiVersion::new(1, 51), "92:d0:c6:0a:29:33"),
            (ApiVersion::new(1, 51), "02:42:ac:11:00:05"),
            (ApiVersion::new(1, 44), "02:42:ac:11:00:05"),
        ] {
            let spec = mac_spec(
                "front",
                &[
                    ("front", engine_endpoint("1", "10.0.0.2", mac)),
                    (
                        "back",
                        engine_endpoint("2", "10.1.0.2", "02:42:0a:01:00:02"),
                    ),
                ],
                api,
                Some(mac),
            )
            .expect("spec");

            assert_eq!(
                endpoints(&spec)["front"].mac_address.as_deref(),
                Some(mac),
                "{api}"
            );
            assert_eq!(endpoints(&spec)["back"].mac_address, None, "{api}");
        }
    }

    #[test]
    fn before_docker_28_a_mac_without_the_engine_prefix_on_a_second_network_was_chosen() {
        let networks = [
            (
                "front",
                engine_endpoint("1", "10.0.0.2", "02:42:0A:00:00:02"),
            ),
            (
                "back",
                engine_endpoint("2", "10.1.0.2", "92:20:de:b0:6b:61"),
            ),
        ];

        let spec = mac_spec("front", &networks, ApiVersion::new(1, 47), None).expect("spec");
        assert_eq!(endpoints(&spec)["front"].mac_address, None);
        assert_eq!(
            endpoints(&spec)["back"].mac_address.as_deref(),
            Some("92:20:de:b0:6b:61")
        );

        // From Docker 28 the engine's own MACs are random too: nothing tells them apart.
        let spec = mac_spec("front", &networks, ApiVersion::new(1, 48), None).expect("spec");
        assert_eq!(endpoints(&spec)["back"].mac_address, None);
    }

    #[test]
    fn a_chosen_mac_of_a_network_the_container_left_goes_nowhere() {
        let spec = mac_spec(
            "bridge",
            &[(
                "back",
                engine_endpoint("2", "10.1.0.2", "8a:20:de:b0:6b:61"),
            )],
            ApiVersion::new(1, 51),
            Some("92:d0:c6:0a:29:33"),
        )
        .expect("spec");

        assert_eq!(endpoints(&spec)["back"].mac_address, None);
    }

    #[test]
    fn what_podman_fills_in_is_left_for_it_to_fill_in_again() {
        // As Podman 4.3's compat inspect shows a `podman run -e FOO=bar --ulimit ...` of an image
        // without WORKDIR or STOPSIGNAL, on Podman's default network.
        let old = with_networks(
            container(
                ContainerConfig {
                    hostname: Some(SHORT_ID.to_owned()),
                    env: Some(strings(&[
                        "PATH=/usr/local/bin:/usr/bin",
                        "TERM=xterm",
                        "container=podman",
                        "FOO=bar",
                        &format!("HOSTNAME={SHORT_ID}"),
                    ])),
                    working_dir: Some("/".to_owned()),
                    stop_signal: Some("15".to_owned()),
                    ..Default::default()
                },
                HostConfig {
                    network_mode: Some("bridge".to_owned()),
                    ulimits: Some(vec![ResourcesUlimits {
                        name: Some("RLIMIT_NOFILE".to_owned()),
                        soft: Some(1024),
                        hard: Some(4096),
                    }]),
                    ..Default::default()
                },
            ),
            &[(
                "podman",
                engine_endpoint("podman", "10.88.0.9", "7a:b9:64:d5:f9:42"),
            )],
        );
        let image = image(ImageConfig {
            env: Some(strings(&["PATH=/usr/local/bin:/usr/bin"])),
            ..Default::default()
        });

        let spec = recreate_spec(
            &old,
            &image,
            NEW_IMAGE,
            EngineSide::new(ApiVersion::new(1, 41), Flavor::Podman),
            &names,
        )
        .expect("spec");

        assert_eq!(
            spec.body.env,
            Some(strings(&["TERM=xterm", "container=podman", "FOO=bar"])),
            "Podman sets TERM and container again; HOSTNAME would name the old container"
        );
        assert_eq!(spec.body.working_dir, None);
        assert_eq!(spec.body.stop_signal, None);
        assert_eq!(
            host(&spec).ulimits.as_ref().expect("ulimits")[0]
                .name
                .as_deref(),
            Some("nofile")
        );
        assert_eq!(host(&spec).network_mode.as_deref(), Some("podman"));
        assert_eq!(endpoints(&spec)["podman"].mac_address, None);
    }

    #[test]
    fn a_stop_signal_and_workdir_the_user_chose_under_podman_are_kept() {
        let old = container(
            ContainerConfig {
                working_dir: Some("/".to_owned()),
                stop_signal: Some("SIGINT".to_owned()),
                ..Default::default()
            },
            HostConfig::default(),
        );

        let spec = recreate_spec(
            &old,
            &app_image(),
            NEW_IMAGE,
            EngineSide::new(ApiVersion::new(1, 41), Flavor::Podman),
            &names,
        )
        .expect("spec");

        assert_eq!(spec.body.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(
            spec.body.working_dir.as_deref(),
            Some("/"),
            "the image's WORKDIR is /srv, so / was chosen"
        );
    }

    #[test]
    fn a_user_mac_before_api_1_44_is_an_error_rather_than_silently_lost() {
        let err = mac_spec(
            "bridge",
            &[(
                "bridge",
                engine_endpoint("1", "172.17.0.2", "92:20:de:b0:6b:61"),
            )],
            ApiVersion::new(1, 43),
            Some("92:20:de:b0:6b:61"),
        )
        .expect_err("mac needs 1.44");

        assert_eq!(
            err,
            SpecError::ApiTooOld {
                container: "web".to_owned(),
                field: "NetworkSettings.Networks[\"bridge\"].MacAddress".to_owned(),
                required: ApiVersion::new(1, 44),
                api: ApiVersion::new(1, 43),
            }
        );
    }

    #[test]
    fn eth0_sysctls_move_to_the_primary_endpoint_from_api_1_48() {
        let old = with_networks(
            container(
                ContainerConfig::default(),
                HostConfig {
                    network_mode: Some("shop_backend".to_owned()),
                    sysctls: Some(map(&[
                        ("net.ipv4.conf.eth0.accept_redirects", "0"),
                        ("net.core.somaxconn", "1024"),
                    ])),
                    ..Default::default()
                },
            ),
            &shop_networks(),
        );

        let at_1_47 = spec_at(&old, &app_image(), ApiVersion::new(1, 47));
        let at_1_48 = spec_at(&old, &app_image(), ApiVersion::new(1, 48));

        assert_eq!(
            host(&at_1_47).sysctls.as_ref().map(HashMap::len),
            Some(2),
            "engines before 1.48 migrate it themselves"
        );
        assert_eq!(
            host(&at_1_48).sysctls,
            Some(map(&[("net.core.somaxconn", "1024")]))
        );
        let opts = endpoints(&at_1_48)["shop_backend"]
            .driver_opts
            .clone()
            .expect("driver opts");
        assert_eq!(
            opts.get(ENDPOINT_SYSCTLS_OPT).map(String::as_str),
            Some("net.ipv4.conf.IFNAME.accept_redirects=0")
        );
        assert_eq!(
            opts.get("com.example.mtu").map(String::as_str),
            Some("1400")
        );
    }

    #[test]
    fn resources_ulimits_log_config_caps_and_security_settings_are_kept() {
        let host_config = HostConfig {
            memory: Some(512 * 1024 * 1024),
            memory_reservation: Some(256 * 1024 * 1024),
            memory_swap: Some(1024 * 1024 * 1024),
            nano_cpus: Some(1_500_000_000),
            cpu_shares: Some(512),
            cpuset_cpus: Some("0-1".to_owned()),
            pids_limit: Some(200),
            blkio_weight: Some(300),
            oom_score_adj: Some(-500),
            oom_kill_disable: Some(false),
            ulimits: Some(vec![ResourcesUlimits {
                name: Some("nofile".to_owned()),
                soft: Some(1024),
                hard: Some(4096),
            }]),
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".to_owned()),
                config: Some(map(&[("max-size", "10m"), ("max-file", "3")])),
            }),
            cap_add: Some(strings(&["NET_ADMIN"])),
            cap_drop: Some(strings(&["ALL"])),
            security_opt: Some(strings(&["no-new-privileges:true", "apparmor=shop"])),
            privileged: Some(false),
            readonly_rootfs: Some(true),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::ON_FAILURE),
                maximum_retry_count: Some(5),
            }),
            extra_hosts: Some(strings(&["host.docker.internal:host-gateway"])),
            dns: Some(strings(&["1.1.1.1"])),
            dns_search: Some(strings(&["shop.internal"])),
            dns_options: Some(strings(&["ndots:1"])),
            init: Some(true),
            shm_size: Some(128 * 1024 * 1024),
            sysctls: Some(map(&[("net.core.somaxconn", "1024")])),
            group_add: Some(strings(&["audio"])),
            runtime: Some("runc".to_owned()),
            cgroup_parent: Some("shop.slice".to_owned()),
            cgroupns_mode: Some(HostConfigCgroupnsModeEnum::PRIVATE),
            ipc_mode: Some("shareable".to_owned()),
            devices: Some(vec![bollard::models::DeviceMapping {
                path_on_host: Some("/dev/fuse".to_owned()),
                path_in_container: Some("/dev/fuse".to_owned()),
                cgroup_permissions: Some("rwm".to_owned()),
            }]),
            annotations: Some(map(&[("com.example.team", "shop")])),
            auto_remove: Some(false),
            ..Default::default()
        };
        let old = container(
            ContainerConfig {
                tty: Some(true),
                open_stdin: Some(true),
                stdin_once: Some(false),
                ..Default::default()
            },
            host_config.clone(),
        );

        let spec = spec(&old, &app_image());

        assert_eq!(host(&spec), &host_config);
        assert_eq!(
            (spec.body.tty, spec.body.open_stdin, spec.body.stdin_once),
            (Some(true), Some(true), Some(false))
        );
    }

    #[test]
    fn settings_the_engine_filled_in_or_refuses_are_left_out() {
        let old = container(
            ContainerConfig::default(),
            HostConfig {
                masked_paths: Some(strings(&["/proc/kcore", "/sys/firmware"])),
                readonly_paths: Some(strings(&["/proc/sys"])),
                console_size: Some(vec![0, 0]),
                container_id_file: Some("/tmp/web.cid".to_owned()),
                isolation: Some(HostConfigIsolationEnum::EMPTY),
                cgroupns_mode: Some(HostConfigCgroupnsModeEnum::EMPTY),
                pids_limit: Some(0),
                cpu_count: Some(0),
                cpu_percent: Some(0),
                io_maximum_iops: Some(0),
                io_maximum_bandwidth: Some(0),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::ALWAYS),
                    maximum_retry_count: Some(3),
                }),
                privileged: Some(true),
                security_opt: Some(strings(&["label=disable", "seccomp=unconfined"])),
                ..Default::default()
            },
        );

        let spec = spec(&old, &app_image());

        assert_eq!(
            host(&spec),
            &HostConfig {
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::ALWAYS),
                    maximum_retry_count: None,
                }),
                privileged: Some(true),
                security_opt: Some(strings(&["seccomp=unconfined"])),
                ..Default::default()
            }
        );
    }

    #[test]
    fn unconfined_system_paths_stay_unconfined() {
        // `--security-opt systempaths=unconfined` is stored as empty lists.
        let old = container(
            ContainerConfig::default(),
            HostConfig {
                masked_paths: Some(vec![]),
                readonly_paths: Some(vec![]),
                ..Default::default()
            },
        );

        let spec = spec(&old, &app_image());

        assert_eq!(host(&spec).masked_paths, Some(vec![]));
        assert_eq!(host(&spec).readonly_paths, Some(vec![]));
    }

    #[test]
    fn selinux_labels_copied_from_a_joined_container_are_left_for_the_engine_to_copy_again() {
        let old = container(
            ContainerConfig::default(),
            HostConfig {
                ipc_mode: Some(format!("container:{DB_ID}")),
                security_opt: Some(strings(&[
                    "no-new-privileges",
                    "label=user:system_u",
                    "label=role:system_r",
                    "label=type:container_t",
                    "label=level:s0:c1,c2",
                ])),
                ..Default::default()
            },
        );

        let spec = spec(&old, &app_image());

        assert_eq!(
            host(&spec).security_opt,
            Some(strings(&["no-new-privileges"]))
        );
    }

    #[test]
    fn image_mounts_need_api_1_48() {
        let old = container(
            ContainerConfig::default(),
            HostConfig {
                mounts: Some(vec![Mount {
                    target: Some("/models".to_owned()),
                    source: Some("registry/models:v3".to_owned()),
                    typ: Some(MountType::IMAGE),
                    ..Default::default()
                }]),
                ..Default::default()
            },
        );

        let err = recreate_spec(
            &old,
            &app_image(),
            NEW_IMAGE,
            EngineSide::new(ApiVersion::new(1, 47), Flavor::Docker),
            &names,
        )
        .expect_err("image mount");

        assert_eq!(err.field(), "HostConfig.Mounts[0].Type (image)");
        assert!(recreate_spec(
            &old,
            &app_image(),
            NEW_IMAGE,
            EngineSide::new(ApiVersion::new(1, 48), Flavor::Docker),
            &names
        )
        .is_ok());
    }

    #[test]
    fn an_inspect_without_config_is_an_error() {
        let old = ContainerInspectResponse {
            config: None,
            ..container(ContainerConfig::default(), HostConfig::default())
        };

        let err = recreate_spec(
            &old,
            &app_image(),
            NEW_IMAGE,
            EngineSide::new(ApiVersion::new(1, 47), Flavor::Docker),
            &names,
        )
        .expect_err("no config");

        assert_eq!(
            err.to_string(),
            "container \"web\": inspect response has no Config"
        );
    }

    #[test]
    fn api_versions_parse_and_compare_by_major_then_minor() {
        assert_eq!("1.41".parse(), Ok(ApiVersion::new(1, 41)));
        assert!(ApiVersion::new(1, 9) < ApiVersion::new(1, 41));
        assert!(ApiVersion::new(2, 0) > ApiVersion::new(1, 99));
        assert_eq!(ApiVersion::new(1, 44).to_string(), "1.44");
        assert_eq!(
            ApiVersion::from(&bollard::ClientVersion {
                major_version: 1,
                minor_version: 41,
            }),
            ApiVersion::new(1, 41)
        );
        for bad in ["", "1", "1.", "v1.41", "1.41.0", "one.two"] {
            assert!(bad.parse::<ApiVersion>().is_err(), "{bad:?}");
        }
    }
}
