//! `tidewatch check [--json] [NAME...]`.

use std::sync::Arc;

use anyhow::Context as _;

use super::{Exit, Failure};
use crate::config::Config;
use crate::cycle::{detect_sharing, gitops_on};
use crate::engine::{Engine, SwarmRole, WORKER_NOTE};
use crate::gitops::run::Mode;
use crate::notify::{self, Notifications};
use crate::output;
use crate::plan::detect::{count_by_status, missing_rows, CheckRow, Status};
use crate::registry::RegistryClient;

pub(super) async fn run(
    config: Arc<Config>,
    json: bool,
    names: &[String],
) -> Result<Exit, Failure> {
    let engine = Engine::connect(&config.docker)
        .await
        .context("connecting to the docker engine")?;
    let registry = RegistryClient::new(config.clone()).context("setting up the registry client")?;
    let inventory = engine
        .inventory(config.watch.include_stopped, config.watch.scope.as_deref())
        .await
        .context("listing containers")?;
    let role = inventory.facts.role;
    let (detections, known) = detect_sharing(&registry, &config, &inventory, names).await;
    let mut rows: Vec<CheckRow> = detections.into_iter().map(|d| d.row).collect();
    // The `[[gitops]]` files' rows: the references the containers share were asked once.
    let git_rows: Vec<CheckRow> = gitops_on(&registry, &config, &known, Mode::Check)
        .await
        .into_iter()
        .flat_map(|r| r.rows)
        .filter(|r| names.is_empty() || names.contains(&r.container))
        .collect();
    let missing = missing_rows(
        names,
        &rows.iter().chain(&git_rows).cloned().collect::<Vec<_>>(),
    );
    rows.extend(missing);
    // A check changes nothing, but MQTT subscribers (Home Assistant) want what it found.
    if config.notify.iter().any(|n| n.mqtt.is_some()) {
        let notifications =
            Notifications::new(&config.notify).context("setting up notifications")?;
        let _ = notifications
            .publish_state(&notify::host_name(), rows.clone(), Vec::new())
            .await;
    }
    print(&rows, &git_rows, json)?;
    rows.extend(git_rows);
    // The JSON array is a contract; the note goes to the log there (see `detect`).
    if role == SwarmRole::Worker && !json {
        println!("note: {WORKER_NOTE}");
    }
    if role == SwarmRole::Manager {
        // Only the leader's agent updates services; a check anywhere says which node that is.
        let leader = match engine.leadership_of(&inventory.facts.node_id).await {
            Ok(leadership) => leadership.describe(),
            Err(e) => format!("cannot tell which node is the swarm leader: {e}"),
        };
        if json {
            tracing::info!("{leader}");
        } else {
            println!("note: {leader}");
        }
    }
    let counts = count_by_status(&rows);
    tracing::info!(
        containers = rows.len(),
        updates = counts.get(&Status::UpdateAvailable).copied().unwrap_or(0),
        errors = counts.get(&Status::Error).copied().unwrap_or(0),
        "check finished"
    );
    Ok(if rows.iter().any(|r| r.status == Status::Error) {
        Exit::Failures
    } else {
        Exit::Success
    })
}

/// The rows, the files' after the containers'; in JSON each file row has `"source": "git"`.
fn print(rows: &[CheckRow], git_rows: &[CheckRow], json: bool) -> anyhow::Result<()> {
    if json {
        let mut values: Vec<serde_json::Value> = Vec::with_capacity(rows.len() + git_rows.len());
        for row in rows {
            values.push(serde_json::to_value(row)?);
        }
        for row in git_rows {
            values.push(output::git_row_json(row)?);
        }
        println!("{}", serde_json::to_string_pretty(&values)?);
    } else {
        let all: Vec<CheckRow> = rows.iter().chain(git_rows).cloned().collect();
        print!("{}", output::check_table(&all));
    }
    Ok(())
}
