//! `[swarm]`: how a Swarm service is rolled when its own `UpdateConfig` leaves a setting unset,
//! and how long tidewatch waits for the roll-out to converge.

use std::time::Duration;

use toml::Spanned;

use super::{bounded, raw, ConfigError, Locator, MAX_SHORT_DURATION};

/// The most tasks updated at once: Swarm takes an `i64`, and no cluster has more.
const MAX_PARALLELISM: u64 = 1_000_000;

/// `[swarm]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmConfig {
    /// `order`: default `start-first`, so a service never runs fewer tasks than its replicas.
    pub order: SwarmOrder,
    /// `failure_action`: default `rollback`.
    pub failure_action: SwarmFailureAction,
    /// `monitor`: how long Swarm watches each updated task for a failure (default 10s).
    pub monitor: Duration,
    /// `parallelism`: tasks updated at once (default 1; 0 is all at once).
    pub parallelism: u64,
    /// `delay`: between batches of tasks (default 0s).
    pub delay: Duration,
    /// `timeout`: how long tidewatch waits for a roll-out to complete or roll back (default
    /// 5m); then the step is reported `failed` and Swarm carries on by itself.
    pub timeout: Duration,
}

impl Default for SwarmConfig {
    fn default() -> Self {
        SwarmConfig {
            order: SwarmOrder::StartFirst,
            failure_action: SwarmFailureAction::Rollback,
            monitor: Duration::from_secs(10),
            parallelism: 1,
            delay: Duration::ZERO,
            timeout: Duration::from_secs(300),
        }
    }
}

/// `[swarm] order`: whether a new task starts before the old one stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwarmOrder {
    /// `start-first`: never fewer running tasks than replicas during the roll-out.
    StartFirst,
    /// `stop-first`: Swarm's own default.
    StopFirst,
}

/// `[swarm] failure_action`: what Swarm does when an updated task fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwarmFailureAction {
    /// Roll the service back to its previous spec.
    Rollback,
    /// Stop the roll-out where it is.
    Pause,
    /// Carry on with the other tasks.
    Continue,
}

pub(super) fn validate(raw: raw::RawSwarm, at: &Locator<'_>) -> Result<SwarmConfig, ConfigError> {
    let defaults = SwarmConfig::default();
    let order = match &raw.order {
        None => defaults.order,
        Some(v) => match v.get_ref().trim() {
            "start-first" => SwarmOrder::StartFirst,
            "stop-first" => SwarmOrder::StopFirst,
            other => {
                return Err(unknown(
                    v,
                    "order",
                    other,
                    "\"start-first\" or \"stop-first\"",
                    at,
                ))
            }
        },
    };
    let failure_action = match &raw.failure_action {
        None => defaults.failure_action,
        Some(v) => match v.get_ref().trim() {
            "rollback" => SwarmFailureAction::Rollback,
            "pause" => SwarmFailureAction::Pause,
            "continue" => SwarmFailureAction::Continue,
            other => {
                return Err(unknown(
                    v,
                    "failure_action",
                    other,
                    "\"rollback\", \"pause\" or \"continue\"",
                    at,
                ))
            }
        },
    };
    let timeout = match &raw.timeout {
        Some(t) if super::parse_duration(t, at)?.is_zero() => {
            return Err(at.error(t.span(), "timeout must be longer than zero"))
        }
        _ => bounded(raw.timeout, "timeout", MAX_SHORT_DURATION, at)?.unwrap_or(defaults.timeout),
    };
    if let Some(p) = &raw.parallelism {
        if *p.get_ref() > MAX_PARALLELISM {
            return Err(at.error(
                p.span(),
                format!(
                    "parallelism {} is too high: at most {MAX_PARALLELISM} (0 is all at once)",
                    p.get_ref()
                ),
            ));
        }
    }
    Ok(SwarmConfig {
        order,
        failure_action,
        monitor: bounded(raw.monitor, "monitor", MAX_SHORT_DURATION, at)?
            .unwrap_or(defaults.monitor),
        parallelism: raw
            .parallelism
            .map(Spanned::into_inner)
            .unwrap_or(defaults.parallelism),
        delay: bounded(raw.delay, "delay", MAX_SHORT_DURATION, at)?.unwrap_or(defaults.delay),
        timeout,
    })
}

fn unknown(
    value: &Spanned<String>,
    key: &str,
    found: &str,
    expected: &str,
    at: &Locator<'_>,
) -> ConfigError {
    at.error(
        value.span(),
        format!("unknown {key} {found:?}: expected {expected}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn err(text: &str) -> String {
        Config::parse(text, "agent.toml").unwrap_err().to_string()
    }

    #[test]
    fn absent_section_gives_the_defaults() {
        let c = Config::parse("", "agent.toml").unwrap();
        assert_eq!(c.swarm, SwarmConfig::default());
    }

    #[test]
    fn every_key_is_read() {
        let c = Config::parse(
            "[swarm]\norder = \"stop-first\"\nfailure_action = \"pause\"\nmonitor = \"2s\"\n\
             parallelism = 0\ndelay = \"1s\"\ntimeout = \"90s\"\n",
            "agent.toml",
        )
        .unwrap();
        assert_eq!(
            c.swarm,
            SwarmConfig {
                order: SwarmOrder::StopFirst,
                failure_action: SwarmFailureAction::Pause,
                monitor: Duration::from_secs(2),
                parallelism: 0,
                delay: Duration::from_secs(1),
                timeout: Duration::from_secs(90),
            }
        );
    }

    #[test]
    fn a_bad_order_points_at_the_value() {
        let e = err("[swarm]\norder = \"sideways\"\n");
        assert!(e.starts_with("agent.toml:2:9:"), "{e}");
        assert!(e.contains("start-first"), "{e}");
    }

    #[test]
    fn a_bad_failure_action_points_at_the_value() {
        let e = err("[swarm]\nmonitor = \"1s\"\nfailure_action = \"retry\"\n");
        assert!(e.starts_with("agent.toml:3:18:"), "{e}");
        assert!(e.contains("rollback"), "{e}");
    }

    #[test]
    fn a_zero_timeout_and_unknown_keys_are_refused_with_their_place() {
        let e = err("[swarm]\ntimeout = \"0s\"\n");
        assert!(e.starts_with("agent.toml:2:11:"), "{e}");
        let e = err("[swarm]\nreplicas = 3\n");
        assert!(e.starts_with("agent.toml:2:1:"), "{e}");
        let e = err("[swarm]\nparallelism = -1\n");
        assert!(e.starts_with("agent.toml:2:15:"), "{e}");
    }
}
