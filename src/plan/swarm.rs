//! Swarm services, the pure part: the digest a service's image is pinned to, the update settings
//! Swarm rolls it with, and what the service's `UpdateStatus` says about the roll-out.
//!
//! On a Swarm manager tidewatch never recreates task containers: it points the service at the
//! new digest and lets Swarm roll the tasks (see `apply/service.rs`).

use std::time::Duration;

use bollard::models::{
    ServiceSpec, ServiceSpecUpdateConfig,
    ServiceSpecUpdateConfigFailureActionEnum as FailureAction,
    ServiceSpecUpdateConfigOrderEnum as Order, ServiceUpdateStatusStateEnum as State,
};

use crate::config::{SwarmConfig, SwarmFailureAction, SwarmOrder};
use crate::plan::observed::Platform;

/// A service's `ContainerSpec.Image` split into the reference to follow and the digest it is
/// pinned to. `docker service create` and `docker stack deploy` pin `repo:tag` as
/// `repo:tag@sha256:...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    /// `repo:tag` as written in the spec; the whole image when it names no tag (a service
    /// deployed by digest alone follows nothing).
    pub reference: String,
    /// The pinned digest, when the image names both a tag and a digest.
    pub digest: Option<String>,
}

/// Splits a service image into the reference it follows and its pinned digest.
pub fn split_pinned(image: &str) -> Pinned {
    let whole = || Pinned {
        reference: image.to_string(),
        digest: None,
    };
    let Some((reference, digest)) = image.split_once('@') else {
        return whole();
    };
    // The tag is a `:` in the last path component (a registry port is in the first).
    let last = reference.rsplit('/').next().unwrap_or(reference);
    if !last.contains(':') || !digest.contains(':') {
        return whole();
    }
    Pinned {
        reference: reference.to_string(),
        digest: Some(digest.to_string()),
    }
}

/// The image a service's spec runs (`TaskTemplate.ContainerSpec.Image`), when it names one.
pub fn spec_image(spec: &ServiceSpec) -> Option<&str> {
    spec.task_template
        .as_ref()?
        .container_spec
        .as_ref()?
        .image
        .as_deref()
}

/// The service's image after the update: `reference` pinned to `digest`.
pub fn pin(reference: &str, digest: &str) -> String {
    format!("{reference}@{digest}")
}

/// The update settings to roll a service with: its own `UpdateConfig`, with every field it
/// leaves unset taken from `[swarm]`.
pub fn update_config(
    own: Option<&ServiceSpecUpdateConfig>,
    defaults: &SwarmConfig,
) -> ServiceSpecUpdateConfig {
    let own = own.cloned().unwrap_or_default();
    let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    ServiceSpecUpdateConfig {
        parallelism: own.parallelism.or(Some(
            i64::try_from(defaults.parallelism).unwrap_or(i64::MAX),
        )),
        delay: own.delay.or(Some(nanos(defaults.delay))),
        failure_action: own
            .failure_action
            .filter(|a| *a != FailureAction::EMPTY)
            .or(Some(match defaults.failure_action {
                SwarmFailureAction::Rollback => FailureAction::ROLLBACK,
                SwarmFailureAction::Pause => FailureAction::PAUSE,
                SwarmFailureAction::Continue => FailureAction::CONTINUE,
            })),
        monitor: own.monitor.or(Some(nanos(defaults.monitor))),
        max_failure_ratio: own.max_failure_ratio,
        order: own
            .order
            .filter(|o| *o != Order::EMPTY)
            .or(Some(match defaults.order {
                SwarmOrder::StartFirst => Order::START_FIRST,
                SwarmOrder::StopFirst => Order::STOP_FIRST,
            })),
    }
}

/// Where a service's roll-out stands, read from its `UpdateStatus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Convergence {
    /// Swarm has not taken up this update yet, or is rolling it out.
    Rolling,
    /// Swarm is rolling the service back; not finished yet.
    RollingBack(String),
    /// Every task runs the new spec.
    Completed,
    /// Swarm rolled the service back to its previous spec.
    RolledBack(String),
    /// The roll-out (or its rollback) is paused: a human has to look.
    Paused(String),
}

/// Reads a service's `UpdateStatus`. `state` and `started_at` are the status now;
/// `started_before` is the status's `StartedAt` before the update was asked for, so the
/// outcome of an earlier roll-out is not taken for this one's.
pub fn convergence(
    state: Option<State>,
    started_at: Option<&str>,
    message: Option<&str>,
    started_before: Option<&str>,
) -> Convergence {
    if started_at.is_none() || started_at == started_before {
        return Convergence::Rolling;
    }
    let message = message
        .filter(|m| !m.is_empty())
        .unwrap_or("no message from Swarm")
        .to_string();
    match state {
        Some(State::COMPLETED) => Convergence::Completed,
        Some(State::ROLLBACK_STARTED) => Convergence::RollingBack(message),
        Some(State::ROLLBACK_COMPLETED) => Convergence::RolledBack(message),
        Some(State::PAUSED) | Some(State::ROLLBACK_PAUSED) => Convergence::Paused(message),
        Some(State::UPDATING) | Some(State::EMPTY) | None => Convergence::Rolling,
    }
}

/// The engine's architecture (`uname -m` style, as `/info` reports it) in the names image
/// indexes use.
pub fn platform(os: &str, architecture: &str) -> Platform {
    let (arch, variant) = match architecture {
        "x86_64" | "amd64" => ("amd64", None),
        "aarch64" | "arm64" => ("arm64", None),
        "armv7l" => ("arm", Some("v7")),
        "armv6l" => ("arm", Some("v6")),
        "i386" | "i686" => ("386", None),
        other => (other, None),
    };
    Platform {
        os: os.to_string(),
        architecture: arch.to_string(),
        variant: variant.map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployed_image_is_split_into_its_tag_and_pinned_digest() {
        assert_eq!(
            split_pinned("127.0.0.1:5000/app:latest@sha256:abc"),
            Pinned {
                reference: "127.0.0.1:5000/app:latest".into(),
                digest: Some("sha256:abc".into()),
            }
        );
        assert_eq!(
            split_pinned("nginx:1.25@sha256:def").digest.as_deref(),
            Some("sha256:def")
        );
    }

    #[test]
    fn a_spec_names_its_image_only_through_task_template_and_container_spec() {
        use bollard::models::{TaskSpec, TaskSpecContainerSpec};
        let with = |image: Option<&str>| ServiceSpec {
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: image.map(str::to_string),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            spec_image(&with(Some("app:1@sha256:a"))),
            Some("app:1@sha256:a")
        );
        assert_eq!(spec_image(&with(None)), None);
        assert_eq!(spec_image(&ServiceSpec::default()), None);
    }

    #[test]
    fn an_image_without_tag_or_digest_is_kept_whole() {
        for image in [
            "127.0.0.1:5000/app@sha256:abc",
            "127.0.0.1:5000/app:latest",
            "nginx",
        ] {
            assert_eq!(
                split_pinned(image),
                Pinned {
                    reference: image.into(),
                    digest: None
                },
                "{image}"
            );
        }
    }

    #[test]
    fn pinning_puts_the_digest_after_the_tag() {
        assert_eq!(pin("app:latest", "sha256:1"), "app:latest@sha256:1");
    }

    fn defaults() -> SwarmConfig {
        SwarmConfig {
            order: SwarmOrder::StartFirst,
            failure_action: SwarmFailureAction::Rollback,
            monitor: Duration::from_secs(3),
            parallelism: 2,
            delay: Duration::from_millis(500),
            timeout: Duration::from_secs(60),
        }
    }

    #[test]
    fn an_unset_update_config_takes_every_default() {
        let merged = update_config(None, &defaults());
        assert_eq!(merged.order, Some(Order::START_FIRST));
        assert_eq!(merged.failure_action, Some(FailureAction::ROLLBACK));
        assert_eq!(merged.monitor, Some(3_000_000_000));
        assert_eq!(merged.parallelism, Some(2));
        assert_eq!(merged.delay, Some(500_000_000));
        assert_eq!(merged.max_failure_ratio, None);
    }

    #[test]
    fn what_the_service_sets_wins_over_the_defaults() {
        let own = ServiceSpecUpdateConfig {
            parallelism: Some(0),
            failure_action: Some(FailureAction::PAUSE),
            order: Some(Order::EMPTY),
            max_failure_ratio: Some(0.5),
            ..Default::default()
        };
        let merged = update_config(Some(&own), &defaults());
        assert_eq!(merged.parallelism, Some(0), "0 is all at once, not unset");
        assert_eq!(merged.failure_action, Some(FailureAction::PAUSE));
        assert_eq!(
            merged.order,
            Some(Order::START_FIRST),
            "an empty order is unset"
        );
        assert_eq!(merged.max_failure_ratio, Some(0.5));
        assert_eq!(merged.monitor, Some(3_000_000_000));
    }

    #[test]
    fn an_earlier_roll_out_is_not_taken_for_this_one() {
        let before = Some("2026-11-26T10:00:00Z");
        assert_eq!(
            convergence(Some(State::COMPLETED), before, None, before),
            Convergence::Rolling
        );
        assert_eq!(
            convergence(None, None, None, None),
            Convergence::Rolling,
            "no status yet"
        );
        assert_eq!(
            convergence(
                Some(State::COMPLETED),
                Some("2026-11-26T11:00:00Z"),
                None,
                before
            ),
            Convergence::Completed
        );
    }

    #[test]
    fn update_states_map_to_outcomes() {
        let now = Some("2026-11-26T11:00:00Z");
        let read = |state| convergence(Some(state), now, Some("task unhealthy"), None);
        assert_eq!(read(State::UPDATING), Convergence::Rolling);
        assert_eq!(
            read(State::ROLLBACK_STARTED),
            Convergence::RollingBack("task unhealthy".into())
        );
        assert_eq!(
            read(State::ROLLBACK_COMPLETED),
            Convergence::RolledBack("task unhealthy".into())
        );
        assert_eq!(
            read(State::PAUSED),
            Convergence::Paused("task unhealthy".into())
        );
        assert_eq!(
            read(State::ROLLBACK_PAUSED),
            Convergence::Paused("task unhealthy".into())
        );
        assert_eq!(
            convergence(Some(State::PAUSED), now, Some(""), None),
            Convergence::Paused("no message from Swarm".into())
        );
    }

    #[test]
    fn engine_architectures_are_named_as_in_image_indexes() {
        assert_eq!(platform("linux", "x86_64").architecture, "amd64");
        assert_eq!(platform("linux", "aarch64").architecture, "arm64");
        let arm = platform("linux", "armv7l");
        assert_eq!(
            (arm.architecture.as_str(), arm.variant.as_deref()),
            ("arm", Some("v7"))
        );
        assert_eq!(platform("linux", "s390x").architecture, "s390x");
    }
}
