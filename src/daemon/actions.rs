//! What the daemon does for a person's request from the status board or the API, beyond a
//! cycle: a rollback or a release (`POST /v1/rollback`, `POST /v1/release`), and the sentence
//! the board shows for each request when it is done.

use chrono::Utc;

use super::{record_registry_counts, remember, Surface};
use crate::api::Trigger;
use crate::apply::StepOutcome;
use crate::cycle::{Agent, CycleReport};
use crate::plan::detect::Status;

/// Runs a rollback or release trigger and tells the board how it went. A cycle trigger is not
/// for this function: the daemon's loop runs it.
pub(super) async fn run(agent: &Agent, surface: &Surface, trigger: &Trigger) {
    let (container, (ok, detail)) = match trigger {
        Trigger::Rollback { container } => (
            container,
            match crate::rollback::roll_back(agent, container).await {
                Ok(done) => rolled_back(container, &done),
                Err(e) => (false, e.to_string()),
            },
        ),
        Trigger::Release { container } => (container, release(agent, container).await),
        Trigger::Cycle { .. } | Trigger::Images(_) => return,
    };
    if ok {
        tracing::info!("{detail}");
    } else {
        tracing::warn!("{detail}");
    }
    look_again(agent, surface, container).await;
    surface.board.action_finished(trigger, ok, detail);
}

/// What a cycle a person asked for did, for the board: whether it did what was asked, and a
/// sentence. `container`: the one container it was asked for, if any.
pub(super) fn cycle_outcome(report: &CycleReport, container: Option<&str>) -> (bool, String) {
    let Some(name) = container else {
        let c = report.counts();
        return (
            report.succeeded(),
            format!(
                "checked {} containers: {} updated, {} rolled back, {} failed, {} waiting",
                report.containers.len(),
                c.updated,
                c.rolled_back,
                c.failed,
                report.plan.waiting.len()
            ),
        );
    };
    if let Some(r) = report.results.iter().find(|r| r.container == name) {
        let detail = format!("{name}: {}: {}", r.outcome, r.detail);
        return (r.outcome == StepOutcome::Updated, detail);
    }
    if let Some(w) = report.plan.waiting.iter().find(|w| w.container == name) {
        return (true, format!("{name}: the update waits: {}", w.reason));
    }
    match report.containers.iter().find(|r| r.container == name) {
        Some(row) => {
            let status = row.status.as_str().replace('_', " ");
            let detail = match &row.detail {
                Some(d) => format!("{name}: {status}: {d}"),
                None => format!("{name}: {status}"),
            };
            (row.status != Status::Error, detail)
        }
        None => (
            false,
            format!("{name}: no such container in this agent's scope"),
        ),
    }
}

/// The board's sentence for a rollback that was done, and whether its sharers followed.
fn rolled_back(container: &str, done: &crate::rollback::RolledBack) -> (bool, String) {
    let mut detail = format!(
        "{container}: rolled back to {} and held there until a newer digest is pushed",
        done.back_to
    );
    let mut ok = true;
    for s in &done.sharers {
        if s.outcome == StepOutcome::Updated {
            detail.push_str(&format!("; {} recreated to follow it", s.container));
        } else {
            ok = false;
            detail.push_str(&format!("; {}: {}: {}", s.container, s.outcome, s.detail));
        }
    }
    (ok, detail)
}

/// Lifts `container`'s quarantined digests and rollback hold (`POST /v1/release`).
async fn release(agent: &Agent, container: &str) -> (bool, String) {
    let name = container.to_string();
    match agent.store.with(move |s| s.release_all(&name)).await {
        Ok((0, false)) => (true, format!("{container}: nothing was held")),
        Ok((lifted, hold)) => (
            true,
            format!(
                "{container}: released {lifted} quarantined digest(s){}; the next cycle may update it",
                if hold { " and the rollback hold" } else { "" }
            ),
        ),
        Err(e) => (false, format!("{container}: {e}")),
    }
}

/// After a rollback or release: checks `container` again without changing anything, so the
/// board shows where it stands, and reads the history that moved.
async fn look_again(agent: &Agent, surface: &Surface, container: &str) {
    match agent.cycle(&[container.to_string()], true, false).await {
        Ok(report) => surface.board.refresh(&report, Utc::now()),
        Err(e) => tracing::warn!("checking {container} again for the status: {e}"),
    }
    record_registry_counts(agent, surface).await;
    remember(agent, surface, None).await;
}
