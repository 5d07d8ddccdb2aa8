//! The health gate: a replacement counts as healthy when its HEALTHCHECK says so or, without
//! one, when it keeps running for `min_running`.

use std::time::{Duration, Instant};

use bollard::models::{ContainerStateStatusEnum, HealthStatusEnum};

use super::{Engine, EngineError, Flavor};
use crate::shutdown::Shutdown;

/// How often the container is inspected while waiting.
const POLL: Duration = Duration::from_millis(250);

/// What the health gate concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Healthy (or running long enough without a healthcheck).
    Healthy,
    /// Not healthy, with why.
    Unhealthy(String),
    /// Shutdown was asked for while waiting.
    Interrupted,
}

impl Engine {
    /// Waits until `container` is healthy, fails, or `timeout` runs out.
    pub async fn wait_healthy(
        &self,
        container: &str,
        min_running: Duration,
        timeout: Duration,
        shutdown: &Shutdown,
    ) -> Result<Health, EngineError> {
        let mut shutdown = shutdown.clone();
        let deadline = crate::clock::after(Instant::now(), timeout);
        let mut first_restart_count = None;
        let mut running_since: Option<Instant> = None;
        // Whether the last look found a healthcheck that has not run even once.
        let mut check_never_ran = false;
        let mut display = None;
        loop {
            let Some(c) = self.inspect_container(container).await? else {
                return Ok(Health::Unhealthy("the container disappeared".into()));
            };
            // Shown by name: the id a caller holds means nothing to the person watching.
            display
                .get_or_insert_with(|| {
                    let name = c
                        .name
                        .as_deref()
                        .unwrap_or(container)
                        .trim_start_matches('/');
                    self.progress()
                        .wait(&format!("{name} to be healthy"), timeout)
                })
                .tick();
            let state = c.state.clone().unwrap_or_default();
            let restarts = c.restart_count.unwrap_or(0);
            let first = *first_restart_count.get_or_insert(restarts);
            let exit = state.exit_code.unwrap_or(0);
            match state.status {
                Some(ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::DEAD) => {
                    return Ok(Health::Unhealthy(format!("exited with code {exit}")));
                }
                Some(ContainerStateStatusEnum::RESTARTING) => {
                    return Ok(Health::Unhealthy(format!(
                        "is restarting (last exit code {exit})"
                    )));
                }
                _ if restarts > first => {
                    return Ok(Health::Unhealthy(format!(
                        "restarted {} time(s) while being checked (last exit code {exit})",
                        restarts - first
                    )));
                }
                Some(ContainerStateStatusEnum::RUNNING) => {
                    check_never_ran = state.health.as_ref().is_some_and(|h| {
                        h.status == Some(HealthStatusEnum::STARTING)
                            && h.log.as_ref().is_none_or(Vec::is_empty)
                    });
                    match state.health.as_ref().and_then(|h| h.status) {
                        Some(HealthStatusEnum::HEALTHY) => return Ok(Health::Healthy),
                        Some(HealthStatusEnum::UNHEALTHY) => {
                            let output = state
                                .health
                                .as_ref()
                                .and_then(|h| h.log.as_ref())
                                .and_then(|log| log.last())
                                .and_then(|r| r.output.clone())
                                .unwrap_or_default();
                            return Ok(Health::Unhealthy(format!(
                                "healthcheck reports unhealthy: {}",
                                output.trim()
                            )));
                        }
                        Some(HealthStatusEnum::STARTING) => {}
                        // No healthcheck: running long enough is the gate.
                        _ => {
                            let since = *running_since.get_or_insert_with(Instant::now);
                            if since.elapsed() >= min_running {
                                return Ok(Health::Healthy);
                            }
                        }
                    }
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                let mut why = format!("not healthy within {}", humantime::format_duration(timeout));
                // Podman runs healthchecks from systemd timers; without systemd (or with its
                // healthcheck timers failing) the check never runs and the status stays
                // `starting` for good, which would otherwise read like a slow application.
                if check_never_ran && self.flavor() == Flavor::Podman {
                    why.push_str(
                        ": its HEALTHCHECK never ran (Podman runs healthchecks from systemd \
                         timers; is systemd running?)",
                    );
                }
                return Ok(Health::Unhealthy(why));
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.wait() => return Ok(Health::Interrupted),
            }
        }
    }
}
