//! `tidewatch update [--dry-run] [--json] [NAME...]`.

use std::sync::Arc;

use super::{agent, cycle_lock, Exit, Failure};
use crate::config::Config;
use crate::gitops::run::Mode;
use crate::output;
use crate::plan::detect::Status;
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
    // The `[[gitops]]` repositories: after the containers, one commit per repository (in a
    // dry run, the diff it would be). `update NAME...` names containers only.
    let (gitops, git_sending) = if names.is_empty() {
        let mode = if dry_run { Mode::DryRun } else { Mode::Apply };
        agent.write_back(mode).await
    } else {
        (Vec::new(), None)
    };
    let git_failed = gitops
        .iter()
        .flat_map(|r| &r.rows)
        .any(|r| r.status == Status::Error);
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
    if !gitops.is_empty() {
        if json {
            // stdout holds the cycle's JSON (a contract): the repositories go to the log.
            for r in &gitops {
                tracing::info!(repo = r.repo, published = ?r.published, "gitops");
            }
        } else {
            print!("{}", output::gitops_report(&gitops));
        }
    }
    for handle in sending.into_iter().chain(git_sending) {
        let _ = handle.await;
    }
    Ok(if report.succeeded() && !git_failed {
        Exit::Success
    } else {
        Exit::Failures
    })
}
