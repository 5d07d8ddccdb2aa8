//! `tidewatch run`: the daemon.

use std::sync::Arc;
use std::time::Duration;

use super::{agent, Exit, Failure};
use crate::config::Config;
use crate::cycle::Agent;
use crate::daemon;
use crate::shutdown::{self, Shutdown};

/// The longest wait between two attempts to reach the engine.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

pub(super) async fn run(config: Arc<Config>) -> Result<Exit, Failure> {
    let shutdown = shutdown::on_signals().map_err(anyhow::Error::from)?;
    let Some(agent) = connect_with_backoff(config, shutdown.clone()).await else {
        return Ok(Exit::Success);
    };
    daemon::run(&agent, shutdown).await;
    Ok(Exit::Success)
}

/// An engine that is down at boot (or restarting) is waited for, not a reason to exit: the
/// service manager would only restart us into the same wait.
async fn connect_with_backoff(config: Arc<Config>, mut shutdown: Shutdown) -> Option<Agent> {
    let mut backoff = Duration::from_secs(1);
    loop {
        match agent(config.clone(), shutdown.clone()).await {
            Ok(agent) => return Some(agent),
            Err(e) => {
                tracing::error!(retry_in_secs = backoff.as_secs(), "cannot start: {e:#}");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.wait() => return None,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
