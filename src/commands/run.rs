//! `tidewatch run`: the daemon, with its HTTP API when `[api]` is set.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use super::{agent, cycle_lock, Exit, Failure};
use crate::api::{self, ApiState};
use crate::apply::REPLACES_ENV;
use crate::config::Config;
use crate::cycle::Agent;
use crate::daemon::{self, Surface};
use crate::error_chain::error_chain;
use crate::notify::Notifications;
use crate::service_manager;
use crate::shutdown::{self, Shutdown};

/// The longest wait between two attempts to reach the engine.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

pub(super) async fn run(config: Arc<Config>) -> Result<Exit, Failure> {
    let shutdown = shutdown::on_signals().map_err(anyhow::Error::from)?;
    // A successor of a self-update takes over first: until the old agent exits, it holds the
    // cycle lock and the API's port.
    let mut connected = None;
    if let Some(predecessor) = predecessor() {
        let Some(agent) = connect_with_backoff(config.clone(), shutdown.clone()).await else {
            return Ok(Exit::Success);
        };
        take_over(&agent, &predecessor).await;
        connected = Some(agent);
    }
    let mut surface = Surface::default();
    // One queue of triggers for the API and MQTT install commands: the daemon runs them one
    // at a time, whoever asked.
    let (tx, rx) = api::trigger_channel();
    if config.api.is_some() || Notifications::mqtt_install(&config.notify) {
        surface.triggers = Some(rx);
        surface.trigger_sender = Some(tx.clone());
    }
    // The API comes up before the engine is reached, so /healthz and /metrics answer while
    // tidewatch waits for a restarting engine.
    let server = match &config.api {
        Some(api_config) => {
            let listener = tokio::net::TcpListener::bind(api_config.listen)
                .await
                .with_context(|| format!("listening on {} ([api] listen)", api_config.listen))?;
            let state = ApiState::new(
                api_config,
                tx,
                surface.board.clone(),
                surface.metrics.clone(),
            );
            tracing::info!(listen = %api_config.listen, "HTTP API listening");
            Some(tokio::spawn(api::serve(listener, state, shutdown.clone())))
        }
        None => None,
    };
    // Ready once the API listens: waiting for the engine is part of running, not of starting,
    // and `systemctl status` says what it waits for.
    service_manager::ready();
    let agent = match connected {
        Some(agent) => Some(agent),
        None => connect_with_backoff(config, shutdown.clone()).await,
    };
    if let Some(agent) = agent {
        service_manager::status(&format!("watching through {}", agent.engine.host()));
        daemon::run(&agent, shutdown, surface).await;
    }
    service_manager::stopping();
    if let Some(server) = server {
        match server.await {
            Ok(Err(e)) => tracing::warn!("HTTP API: {e}"),
            Err(e) => tracing::warn!("HTTP API task: {e}"),
            Ok(Ok(())) => {}
        }
    }
    Ok(Exit::Success)
}

/// The container a self-update's successor replaces, from its environment.
fn predecessor() -> Option<String> {
    std::env::var(REPLACES_ENV).ok().filter(|p| !p.is_empty())
}

/// A successor of a self-update (its environment names the agent it replaces) stops that agent,
/// then, holding the cycle lock the old agent held until it exited, commits the update and
/// removes the old container.
async fn take_over(agent: &Agent, predecessor: &str) {
    let applier = agent.applier();
    let stopped = applier
        .stop_predecessor(predecessor, agent.own_container.as_deref())
        .await;
    let old_id = match stopped {
        Ok(Some(id)) => id,
        Ok(None) => return,
        Err(e) => {
            tracing::error!("self-update: stopping the previous agent: {e}");
            return;
        }
    };
    let _lock = match cycle_lock(&agent.config.agent.state_dir).await {
        Ok(lock) => lock,
        Err(e) => {
            tracing::error!("self-update: {e:#}");
            return;
        }
    };
    if let Some(result) = applier.finish_takeover(&old_id).await {
        tracing::info!(
            container = %result.container,
            outcome = %result.outcome,
            "{}",
            result.detail
        );
    }
}

/// An engine that is down at boot (or restarting) is waited for, not a reason to exit: the
/// service manager would only restart us into the same wait.
async fn connect_with_backoff(config: Arc<Config>, mut shutdown: Shutdown) -> Option<Agent> {
    let mut backoff = Duration::from_secs(1);
    loop {
        match agent(config.clone(), shutdown.clone()).await {
            Ok(agent) => return Some(agent),
            Err(e) => {
                let why = error_chain(e.as_ref());
                tracing::error!(retry_in_secs = backoff.as_secs(), "cannot start: {why}");
                service_manager::status(&format!("cannot start, retrying: {why}"));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.wait() => return None,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
