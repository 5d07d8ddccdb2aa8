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
        println!("{}", update_json(&report, dry_run, &gitops)?);
    } else {
        print!("{}", output::plan_table(&report.plan));
        if !dry_run {
            print!(
                "{}",
                output::results_table(&report.recovered, &report.results)
            );
        }
    }
    if !gitops.is_empty() && !json {
        print!("{}", output::gitops_report(&gitops));
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

/// What `update --json` prints: the plan (a dry run) or the cycle's report, as before, with a
/// `gitops` key added when `[[gitops]]` repositories were written back.
fn update_json(
    report: &crate::report::CycleReport,
    dry_run: bool,
    gitops: &[crate::gitops::run::RepoReport],
) -> Result<String, anyhow::Error> {
    let mut value = if dry_run {
        serde_json::to_value(&report.plan)?
    } else {
        serde_json::to_value(report)?
    };
    if !gitops.is_empty() {
        if let serde_json::Value::Object(map) = &mut value {
            map.insert("gitops".into(), output::gitops_json(gitops)?);
        }
    }
    Ok(serde_json::to_string_pretty(&value)?)
}
