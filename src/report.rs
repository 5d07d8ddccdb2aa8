//! What a cycle reports: how each step ended ([`StepResult`]) and what the whole cycle saw and
//! did ([`CycleReport`]). `apply` and `cycle` fill them in; notifications, metrics, the CLI's
//! output and the API's status read them, so those need neither `apply` nor `cycle`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use crate::config::Policy;
use crate::plan::detect::{CheckRow, Status};
use crate::plan::update::Plan;
use crate::release_notes::ReleaseNotes;
use crate::state::CycleCounts;

/// How one step ended. The names are part of the JSON and history contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    /// The container runs the new image and is healthy.
    Updated,
    /// The new container was not healthy; the old one runs again.
    RolledBack,
    /// The step could not be done (and the old container is as it was, or needs a human).
    Failed,
    /// The step was not attempted (a dependency failed, shutdown).
    Skipped,
}

impl fmt::Display for StepOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StepOutcome::Updated => "updated",
            StepOutcome::RolledBack => "rolled_back",
            StepOutcome::Failed => "failed",
            StepOutcome::Skipped => "skipped",
        })
    }
}

/// The result of one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepResult {
    /// Container name.
    pub container: String,
    /// Its image reference.
    pub image: String,
    /// The digest it ran.
    pub from_digest: Option<String>,
    /// The digest it was moved to.
    pub to_digest: Option<String>,
    /// How it ended.
    pub outcome: StepOutcome,
    /// Why, in words.
    pub detail: String,
    /// The versions and where to read what changed (each field absent when unknown).
    #[serde(flatten)]
    pub notes: ReleaseNotes,
}

/// What one cycle saw and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CycleReport {
    /// Interrupted updates finished at the start of the cycle.
    pub recovered: Vec<StepResult>,
    /// Every container's status, as `check` gives it.
    pub containers: Vec<CheckRow>,
    /// The ordered plan.
    pub plan: Plan,
    /// What applying the plan did (empty on a dry run).
    pub results: Vec<StepResult>,
    /// Containers with a new digest whose policy is `notify` (monitor only).
    #[serde(skip)]
    pub monitor_only: BTreeSet<String>,
    /// Each checked container's policy and window, by name, for the status board.
    #[serde(skip)]
    pub rules: BTreeMap<String, Rules>,
}

/// The rules a container is updated by, as the status board shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Its policy.
    pub policy: Policy,
    /// Its maintenance window (`0 2 * * 6 for 2h`), if any.
    pub window: Option<String>,
}

impl CycleReport {
    /// Every container's status as it stands after the cycle: `containers` is what the check
    /// before the updates saw, so a container updated since is up to date on its new digest.
    pub fn current_rows(&self) -> Vec<CheckRow> {
        let mut rows = self.containers.clone();
        for r in self
            .results
            .iter()
            .filter(|r| r.outcome == StepOutcome::Updated)
        {
            let Some(to) = &r.to_digest else { continue };
            if let Some(row) = rows.iter_mut().find(|row| row.container == r.container) {
                row.status = Status::UpToDate;
                row.current_digest = Some(to.clone());
                row.available_digest = Some(to.clone());
                row.detail = None;
                // Up to date now: its version is the one it moved to, and nothing is pending.
                row.notes = ReleaseNotes {
                    current_version: row.notes.available_version.take(),
                    ..ReleaseNotes::default()
                };
            }
        }
        rows
    }

    /// How its steps ended (recovered interrupted updates included) and how many containers
    /// it could not check.
    pub fn counts(&self) -> CycleCounts {
        let mut counts = CycleCounts::default();
        for r in self.recovered.iter().chain(&self.results) {
            let count = match r.outcome {
                StepOutcome::Updated => &mut counts.updated,
                StepOutcome::RolledBack => &mut counts.rolled_back,
                StepOutcome::Failed => &mut counts.failed,
                StepOutcome::Skipped => &mut counts.skipped,
            };
            *count = count.saturating_add(1);
        }
        let errors = self
            .containers
            .iter()
            .filter(|r| r.status == Status::Error)
            .count();
        counts.check_errors = u32::try_from(errors).unwrap_or(u32::MAX);
        counts
    }

    /// True when nothing failed or was rolled back and every container could be checked. An
    /// interrupted update that recovery undid and this cycle then carried out counts as done.
    pub fn succeeded(&self) -> bool {
        if self.containers.iter().any(|r| r.status == Status::Error) {
            return false;
        }
        let ok = |r: &StepResult| matches!(r.outcome, StepOutcome::Updated | StepOutcome::Skipped);
        let redone = |r: &StepResult| {
            self.results.iter().any(|later| {
                later.container == r.container && later.outcome == StepOutcome::Updated
            })
        };
        self.results.iter().all(ok) && self.recovered.iter().all(|r| ok(r) || redone(r))
    }
}
