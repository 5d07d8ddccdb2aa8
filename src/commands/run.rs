//! `tidewatch run`: the daemon.

use std::sync::Arc;

use super::{agent, Exit, Failure};
use crate::config::Config;
use crate::daemon;
use crate::shutdown;

pub(super) async fn run(config: Arc<Config>) -> Result<Exit, Failure> {
    let shutdown = shutdown::on_signals().map_err(anyhow::Error::from)?;
    let agent = agent(config, shutdown.clone()).await?;
    daemon::run(&agent, shutdown).await;
    Ok(Exit::Success)
}
