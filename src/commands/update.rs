//! `tidewatch update [--dry-run] [--json] [NAME...]`.

use std::sync::Arc;

use super::{agent, cycle_lock, Exit, Failure};
use crate::config::Config;
use crate::output;
use crate::progress::Progress;
use crate::shutdown;

pub(super) async fn run(
    config: Arc<Config>,
    dry_run: bool,
    force: bool,
    json: bool,
    names: &[String],
) -> Result<Exit, Failure> {
    // A dry run changes nothing, so it need not wait for a running cycle.
    let _lock = if dry_run {
        None
    } else {
        Some(cycle_lock(&config.agent.state_dir).await?)
    };
    let shutdown = shutdown::on_signals().map_err(anyhow::Error::from)?;
    let mut agent = agent(config, shutdown).await?;
    agent.engine.show_progress(Progress::for_terminal(!json));
    let report = agent
        .cycle(names, dry_run, force)
        .await
        .map_err(anyhow::Error::from)?;
    // `update` exits right after its cycle: wait (bounded by the notifiers' own retries) so
    // the message is not lost with the process.
    let sending = if dry_run {
        None
    } else {
        Some(agent.announce(&report).await)
    };
    if json {
        let value = if dry_run {
            serde_json::to_string_pretty(&report.plan)
        } else {
            serde_json::to_string_pretty(&report)
        };
        println!("{}", value.map_err(anyhow::Error::from)?);
    } else {
        print!("{}", output::plan_table(&report.plan));
        if !dry_run {
            print!(
                "{}",
                output::results_table(&report.recovered, &report.results)
            );
        }
    }
    if let Some(handle) = sending {
        let _ = handle.await;
    }
    Ok(if report.succeeded() {
        Exit::Success
    } else {
        Exit::Failures
    })
}
