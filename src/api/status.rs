//! The status board: what the last cycles found, kept by the daemon for `GET /v1/status` and
//! the containers-by-status metric.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use super::actions::{Action, Actions};
use super::Trigger;
use crate::plan::detect::{CheckRow, Status};
use crate::plan::update::{WaitReason, Waiting};
use crate::report::CycleReport;
use crate::state::{HistoryEntry, QuarantineEntry};

pub use crate::state::LastCycle;

/// When the daemon's next scheduled cycle is due, and why then. Field names are part of the
/// API contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextCycle {
    /// When it is due (jitter included). A cycle in progress or a trigger may come first.
    pub at: DateTime<Utc>,
    /// Why then, for people: `every 5m (interval)`, `cron "0 3 * * *" (schedule)`.
    pub reason: String,
    /// Why then, for scripts: `interval` or `schedule`.
    pub reason_kind: String,
}

/// How many history entries `GET /v1/status` carries, newest first.
pub const STATUS_HISTORY: usize = 10;

/// One container's (or Swarm service's) row: its `check --json` row, flattened, and what the
/// board adds. Field names are part of the API contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusRow {
    /// The row as `check --json` gives it.
    #[serde(flatten)]
    pub row: CheckRow,
    /// When a cycle of this run last checked it.
    pub checked_at: Option<DateTime<Utc>>,
    /// When it was last updated (the history's newest `updated` entry), if ever.
    pub updated_at: Option<DateTime<Utc>>,
    /// Its policy (`update`, `notify`, `ignore`), when the cycle that checked it knew it.
    pub policy: Option<String>,
    /// Its maintenance window (`0 2 * * 6 for 2h`), if it has one.
    pub window: Option<String>,
    /// The board's badge: `up_to_date`, `update_available`, `waiting`, `quarantined` (a
    /// quarantined digest or a rollback hold), `error`, `skipped` or `unknown`.
    pub badge: &'static str,
    /// Why, for the badges that need it (the wait's reason, the error, why it is skipped).
    pub badge_detail: Option<String>,
    /// When a wait ends by itself (min_age, a maintenance window), if it does.
    pub waiting_until: Option<DateTime<Utc>>,
    /// What holds it back until released or a newer digest is pushed (a rollback hold,
    /// quarantined digests), whatever else it waits for; `POST /v1/release` lifts it.
    pub held: Option<String>,
}

impl StatusRow {
    /// Sets the badge from the row's status and the update waiting for it, if any.
    fn set_badge(&mut self, waiting: Option<&Waiting>) {
        let (badge, detail, until) = match waiting.map(|w| &w.reason) {
            Some(WaitReason::MonitorOnly) => (
                "update_available",
                Some(WaitReason::MonitorOnly.to_string()),
                None,
            ),
            Some(r @ (WaitReason::Quarantined { .. } | WaitReason::RollbackHold)) => {
                ("quarantined", Some(r.to_string()), None)
            }
            Some(r) => ("waiting", Some(r.to_string()), r.until()),
            None => (self.row.status.as_str(), self.row.detail.clone(), None),
        };
        // A hold outlasts a closed window or min_age: it is what a person must act on.
        let (badge, detail, until) = match &self.held {
            Some(why) if badge == "waiting" || badge == "update_available" => {
                ("quarantined", Some(why.clone()), None)
            }
            _ => (badge, detail, until),
        };
        self.badge = badge;
        self.badge_detail = detail;
        self.waiting_until = until;
    }
}

impl Deref for StatusRow {
    type Target = CheckRow;

    fn deref(&self) -> &CheckRow {
        &self.row
    }
}

/// This agent, for the board. Field names are part of the API contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentFacts {
    /// tidewatch's version.
    pub version: String,
    /// When this run of the daemon started.
    pub started_at: DateTime<Utc>,
    /// Seconds since then, when the snapshot was taken.
    pub uptime_secs: u64,
}

impl Default for AgentFacts {
    fn default() -> AgentFacts {
        AgentFacts {
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: Utc::now().trunc_subsecs(0),
            uptime_secs: 0,
        }
    }
}

/// The engine the agent manages, for the board. Field names are part of the API contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EngineFacts {
    /// Its address (`unix:///var/run/docker.sock`).
    pub host: String,
    /// `docker` or `podman`.
    pub flavor: String,
    /// Its own version, if it said.
    pub version: Option<String>,
    /// The API version tidewatch speaks with it (`1.41`).
    pub api_version: String,
}

/// One `[[gitops]]` file's row on the board: its `check --json` row. Field names are part of
/// the API contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GitRow {
    /// The row as `check --json` gives it (`container` is `<file>#<service>`...).
    #[serde(flatten)]
    pub row: CheckRow,
    /// Always `git`, as in `check --json`.
    pub source: &'static str,
}

/// One `[[gitops]]` repository as the daemon's last write-back found it. Field names are part
/// of the API contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepoStatus {
    /// The repository (without credentials) and its branch.
    pub repo: String,
    /// When the write-back last read it.
    pub checked_at: DateTime<Utc>,
    /// The newest commit this run of the daemon pushed to it, if any.
    pub commit: Option<String>,
    /// When that commit was pushed.
    pub pushed_at: Option<DateTime<Utc>>,
    /// Its files' rows; one error row naming the repository when it could not be fetched or
    /// pushed.
    pub rows: Vec<GitRow>,
}

impl RepoStatus {
    /// What write-back `report` at `at` found, after `before` (the same repository's last).
    fn of(
        report: &crate::gitops::run::RepoReport,
        before: Option<&RepoStatus>,
        at: DateTime<Utc>,
    ) -> RepoStatus {
        use crate::gitops::checkout::Published;
        let pushed = match &report.published {
            Some(Published::Pushed { commit, .. }) => Some(commit.as_str()),
            _ => None,
        };
        let (commit, pushed_at) = match (pushed, before) {
            (Some(commit), _) => (Some(commit.to_string()), Some(at)),
            (None, Some(b)) => (b.commit.clone(), b.pushed_at),
            (None, None) => (None, None),
        };
        let pinned = |name: &str| report.pins.iter().any(|p| p.row == name);
        let rows = report
            .rows
            .iter()
            .map(|row| {
                let mut row = row.clone();
                // The row says what the file had; the commit just changed that.
                if let Some(commit) = pushed.filter(|_| row.detail.is_none()) {
                    if pinned(&row.container) {
                        let short = commit.get(..12).unwrap_or(commit);
                        row.detail = Some(format!("pinned in git: commit {short}"));
                    }
                }
                GitRow { row, source: "git" }
            })
            .collect();
        RepoStatus {
            repo: report.repo.clone(),
            checked_at: at,
            commit,
            pushed_at,
            rows,
        }
    }
}

/// The body of `GET /v1/status`. Field names are part of the API contract.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatusSnapshot {
    /// `None` until a cycle has finished (in this run of the daemon or, recorded in the state
    /// store, an earlier one).
    pub last_cycle: Option<LastCycle>,
    /// Every watched container's row, as `check --json` gives it, with when it was last
    /// checked and updated, its policy and window.
    pub containers: Vec<StatusRow>,
    /// Updates found but held back (quarantined digests, rollback holds, dependency cycles).
    pub pending: Vec<Waiting>,
    /// When the next scheduled cycle is due; `None` until the first cycle has finished.
    pub next_cycle: Option<NextCycle>,
    /// The `[[gitops]]` repositories' rows, as the last write-back found them; empty without
    /// `[[gitops]]` tables and until the first write-back.
    pub gitops: Vec<RepoStatus>,
    /// The newest [`STATUS_HISTORY`] history entries as the daemon read them after its last
    /// cycle, newest first, as `history --json` gives them.
    pub history: Vec<HistoryEntry>,
    /// How many requests the last cycle of this run sent to registries; `None` before one.
    pub last_cycle_requests: Option<u64>,
    /// tidewatch's version and uptime.
    pub agent: AgentFacts,
    /// The engine's address, version and API version; `None` until the daemon connected.
    pub engine: Option<EngineFacts>,
    /// What was asked over the API (`POST /v1/update`, `/v1/rollback`, `/v1/release`) and how
    /// it went, oldest first, the last [`super::actions::KEPT_ACTIONS`].
    pub actions: Vec<Action>,
    /// The requests behind `actions`.
    #[serde(skip)]
    requests: Actions,
    /// When each container was last updated, for the rows' `updated_at`.
    #[serde(skip)]
    updated: BTreeMap<String, DateTime<Utc>>,
    /// What holds each held container back, for the rows' `held`.
    #[serde(skip)]
    held: BTreeMap<String, String>,
}

impl StatusSnapshot {
    /// Replaces (or adds) the rows of `report`'s containers, checked at `at`.
    fn put_rows(&mut self, report: &CycleReport, at: DateTime<Utc>) {
        for row in report.current_rows() {
            let rules = report.rules.get(&row.container);
            let new = StatusRow {
                checked_at: Some(at.trunc_subsecs(0)),
                updated_at: self.updated.get(&row.container).copied(),
                policy: rules.map(|r| r.policy.as_str().to_string()),
                window: rules.and_then(|r| r.window.clone()),
                badge: row.status.as_str(),
                badge_detail: None,
                waiting_until: None,
                held: None,
                row,
            };
            match self
                .containers
                .iter_mut()
                .find(|r| r.container == new.container)
            {
                Some(old) => *old = new,
                None => self.containers.push(new),
            }
        }
        let seen = |name: &str| report.containers.iter().any(|r| r.container == name);
        self.pending.retain(|w| !seen(&w.container));
        self.pending.extend(report.plan.waiting.iter().cloned());
    }
}

/// A shared snapshot: the daemon writes it after each cycle, the API reads it. Clones share it.
#[derive(Debug, Clone, Default)]
pub struct StatusBoard(Arc<RwLock<StatusSnapshot>>);

impl StatusBoard {
    /// Replaces the snapshot with a cycle over every container in scope; returns the cycle as
    /// recorded.
    pub fn update(
        &self,
        report: &CycleReport,
        started: DateTime<Utc>,
        finished: DateTime<Utc>,
    ) -> LastCycle {
        let last = last_cycle(report, started, finished);
        self.write(|s| {
            s.containers.clear();
            s.pending.clear();
            s.put_rows(report, finished);
            s.last_cycle = Some(last);
        });
        last
    }

    /// Folds in a cycle limited to some containers (`POST /v1/update?container=`, a registry
    /// push): their rows and pending updates are replaced; the other containers' are kept.
    /// Returns the cycle as recorded.
    pub fn merge(
        &self,
        report: &CycleReport,
        started: DateTime<Utc>,
        finished: DateTime<Utc>,
    ) -> LastCycle {
        let last = last_cycle(report, started, finished);
        self.write(|s| {
            s.put_rows(report, finished);
            s.last_cycle = Some(last);
        });
        last
    }

    /// Folds in the rows of a dry run that looked again at some containers after a rollback
    /// or a release, checked at `at`; the last cycle stays the one it was.
    pub fn refresh(&self, report: &CycleReport, at: DateTime<Utc>) {
        self.write(|s| s.put_rows(report, at));
    }

    /// Replaces the `[[gitops]]` repositories' rows with what a write-back at `at` found; a
    /// repository's last pushed commit is kept until it gets a newer one.
    pub fn set_gitops(&self, reports: &[crate::gitops::run::RepoReport], at: DateTime<Utc>) {
        let at = at.trunc_subsecs(0);
        self.write(|s| {
            let earlier = std::mem::take(&mut s.gitops);
            s.gitops = reports
                .iter()
                .map(|r| RepoStatus::of(r, earlier.iter().find(|e| e.repo == r.repo), at))
                .collect();
        });
    }

    /// Records how many requests the last cycle sent to registries.
    pub fn set_last_cycle_requests(&self, requests: u64) {
        self.write(|s| s.last_cycle_requests = Some(requests));
    }

    /// Records the engine the daemon manages.
    pub fn set_engine(&self, engine: EngineFacts) {
        self.write(|s| s.engine = Some(engine));
    }

    /// Records when each container was last updated.
    pub fn set_last_updated(&self, updated: BTreeMap<String, DateTime<Utc>>) {
        self.write(|s| {
            for row in &mut s.containers {
                row.updated_at = updated.get(&row.container).copied();
            }
            s.updated = updated;
        });
    }

    /// Records what holds containers back (rollback holds, quarantined digests), by name.
    pub fn set_held(&self, held: BTreeMap<String, String>) {
        self.write(|s| s.held = held);
    }

    /// Records a request the API queued for the daemon; its id (`None` for a registry push).
    pub fn queue_action(&self, trigger: &Trigger) -> Option<u64> {
        self.write(|s| s.requests.queue(trigger, Utc::now()))
    }

    /// The API could not queue request `id` after all.
    pub fn drop_action(&self, id: u64, why: &str) {
        self.write(|s| s.requests.drop_queued(id, why, Utc::now()));
    }

    /// The daemon took `trigger`.
    pub fn action_started(&self, trigger: &Trigger) {
        self.write(|s| s.requests.start(trigger));
    }

    /// The daemon finished `trigger`, as asked (`ok`) or not, with what happened.
    pub fn action_finished(&self, trigger: &Trigger, ok: bool, detail: String) {
        self.write(|s| s.requests.finish(trigger, ok, detail, Utc::now()));
    }

    /// Starts from what a previous run of the daemon recorded: its last cycle and the recent
    /// history. The containers' rows stay empty until this run's first cycle has checked them.
    pub fn restore(&self, last: Option<LastCycle>, history: Vec<HistoryEntry>) {
        self.write(|s| {
            s.last_cycle = last;
            s.history = history;
        });
    }

    /// Records when the next scheduled cycle is due.
    pub fn set_next_cycle(&self, next: NextCycle) {
        self.write(|s| s.next_cycle = Some(next));
    }

    /// Adds to `pending` the updates that `quarantine` holds back but the last plan did not
    /// list: those rolled back in that very cycle, which the next plan holds.
    pub fn hold_quarantined(&self, quarantine: &[QuarantineEntry]) {
        self.write(|s| {
            for q in quarantine {
                let offered = s.containers.iter().any(|r| {
                    r.container == q.container
                        && r.status == Status::UpdateAvailable
                        && r.available_digest.as_deref() == Some(q.digest.as_str())
                });
                if offered && !s.pending.iter().any(|w| w.container == q.container) {
                    s.pending.push(Waiting {
                        container: q.container.clone(),
                        to_digest: q.digest.clone(),
                        reason: WaitReason::Quarantined {
                            why: q.reason.clone(),
                        },
                    });
                }
            }
        });
    }

    /// Replaces the recent history entries.
    pub fn set_history(&self, history: Vec<HistoryEntry>) {
        self.write(|s| s.history = history);
    }

    /// A copy of the current snapshot, with the uptime and requests as they stand now.
    pub fn snapshot(&self) -> StatusSnapshot {
        let mut s = self.read(StatusSnapshot::clone);
        s.agent.uptime_secs = (Utc::now() - s.agent.started_at)
            .to_std()
            .unwrap_or_default()
            .as_secs();
        s.actions = s.requests.list();
        let pending = std::mem::take(&mut s.pending);
        for row in &mut s.containers {
            row.held = s.held.get(&row.container).cloned();
            row.set_badge(pending.iter().find(|w| w.container == row.container));
        }
        s.pending = pending;
        s
    }

    /// Runs `f` on the current snapshot without copying it.
    pub fn read<T>(&self, f: impl FnOnce(&StatusSnapshot) -> T) -> T {
        // A panic while writing leaves a whole snapshot (each write replaces fields with
        // complete values), so a poisoned lock is still readable.
        let guard = self.0.read().unwrap_or_else(|p| p.into_inner());
        f(&guard)
    }

    fn write<T>(&self, f: impl FnOnce(&mut StatusSnapshot) -> T) -> T {
        let mut guard = self.0.write().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

fn last_cycle(report: &CycleReport, started: DateTime<Utc>, finished: DateTime<Utc>) -> LastCycle {
    // At the precision the state store keeps, so the daemon's answer and the store agree.
    LastCycle {
        started_at: started.trunc_subsecs(3),
        finished_at: finished.trunc_subsecs(3),
        succeeded: report.succeeded(),
        counts: report.counts(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(container: &str, status: Status) -> CheckRow {
        CheckRow {
            container: container.into(),
            image: format!("127.0.0.1:5000/{container}:latest"),
            current_digest: Some("sha256:aaaa".into()),
            available_digest: None,
            status,
            detail: None,
            notes: Default::default(),
            signature: None,
        }
    }

    fn rows(s: &StatusSnapshot) -> Vec<CheckRow> {
        s.containers.iter().map(|r| r.row.clone()).collect()
    }

    fn waiting(container: &str) -> Waiting {
        Waiting {
            container: container.into(),
            to_digest: "sha256:bbbb".into(),
            reason: WaitReason::Quarantined {
                why: "exited".into(),
            },
        }
    }

    fn report(rows: Vec<CheckRow>, waits: Vec<Waiting>) -> CycleReport {
        let mut r = CycleReport {
            containers: rows,
            ..CycleReport::default()
        };
        r.plan.waiting = waits;
        r
    }

    #[test]
    fn a_full_cycle_replaces_everything() {
        let board = StatusBoard::default();
        assert_eq!(board.snapshot().last_cycle, None);
        let t0 = Utc::now();
        board.update(
            &report(
                vec![
                    row("web", Status::UpdateAvailable),
                    row("db", Status::UpToDate),
                ],
                vec![waiting("web")],
            ),
            t0,
            t0,
        );
        board.update(&report(vec![row("db", Status::UpToDate)], vec![]), t0, t0);
        let s = board.snapshot();
        assert_eq!(rows(&s), vec![row("db", Status::UpToDate)]);
        assert!(s.pending.is_empty());
        assert!(s.last_cycle.unwrap().succeeded);
    }

    #[test]
    fn the_status_shows_release_notes_of_pending_updates_and_the_version_an_update_reached() {
        let board = StatusBoard::default();
        let t0 = Utc::now();
        let notes = crate::release_notes::ReleaseNotes {
            current_version: Some("1.0.0".into()),
            available_version: Some("2.0.0".into()),
            changes_url: Some("https://github.com/acme/app/compare/a...b".into()),
        };
        let mut r = report(
            vec![
                CheckRow {
                    notes: notes.clone(),
                    ..row("web", Status::UpdateAvailable)
                },
                CheckRow {
                    notes: notes.clone(),
                    available_digest: Some("sha256:new".into()),
                    ..row("api", Status::UpdateAvailable)
                },
            ],
            vec![],
        );
        r.results.push(crate::report::StepResult {
            container: "api".into(),
            image: "127.0.0.1:5000/api:latest".into(),
            from_digest: Some("sha256:aaaa".into()),
            to_digest: Some("sha256:new".into()),
            outcome: crate::report::StepOutcome::Updated,
            detail: String::new(),
            notes,
        });
        board.update(&r, t0, t0);
        let json = serde_json::to_value(board.snapshot().containers).unwrap();
        assert_eq!(json[0]["container"], "web");
        assert_eq!(json[0]["current_version"], "1.0.0");
        assert_eq!(json[0]["available_version"], "2.0.0");
        assert_eq!(
            json[0]["changes_url"],
            "https://github.com/acme/app/compare/a...b"
        );
        assert_eq!(json[1]["container"], "api");
        assert_eq!(json[1]["status"], "up_to_date");
        assert_eq!(json[1]["current_version"], "2.0.0", "{json}");
        assert!(json[1].get("changes_url").is_none(), "{json}");
    }

    #[test]
    fn a_hold_outranks_a_closed_window_on_the_badge() {
        let board = StatusBoard::default();
        let t0 = Utc::now();
        let window = Waiting {
            container: "web".into(),
            to_digest: "sha256:bbbb".into(),
            reason: WaitReason::MinAge {
                age: std::time::Duration::from_secs(1),
                min_age: std::time::Duration::from_secs(60),
                until: t0,
            },
        };
        board.update(
            &report(
                vec![
                    row("web", Status::UpdateAvailable),
                    row("db", Status::UpdateAvailable),
                ],
                vec![window],
            ),
            t0,
            t0,
        );
        let badges = |board: &StatusBoard| -> Vec<(&'static str, Option<String>)> {
            board
                .snapshot()
                .containers
                .iter()
                .map(|r| (r.badge, r.held.clone()))
                .collect()
        };
        assert_eq!(
            badges(&board),
            vec![("waiting", None), ("update_available", None)]
        );
        board.set_held([("web".to_string(), "rolled back".to_string())].into());
        assert_eq!(
            badges(&board),
            vec![
                ("quarantined", Some("rolled back".into())),
                ("update_available", None)
            ]
        );
    }

    #[test]
    fn a_partial_cycle_keeps_the_other_containers() {
        let board = StatusBoard::default();
        let t0 = Utc::now();
        board.update(
            &report(
                vec![
                    row("web", Status::UpdateAvailable),
                    row("db", Status::UpToDate),
                ],
                vec![waiting("web")],
            ),
            t0,
            t0,
        );
        board.merge(
            &report(
                vec![row("web", Status::UpToDate), row("new", Status::Unknown)],
                vec![],
            ),
            t0,
            t0,
        );
        let s = board.snapshot();
        assert_eq!(
            rows(&s),
            vec![
                row("web", Status::UpToDate),
                row("db", Status::UpToDate),
                row("new", Status::Unknown)
            ]
        );
        assert!(s.pending.is_empty());
    }

    #[test]
    fn a_digest_rolled_back_in_the_last_cycle_is_pending_as_quarantined() {
        let board = StatusBoard::default();
        let t0 = Utc::now();
        let mut offered = row("web", Status::UpdateAvailable);
        offered.available_digest = Some("sha256:bbbb".into());
        board.update(
            &report(vec![offered, row("db", Status::UpToDate)], vec![]),
            t0,
            t0,
        );
        let entry = |container: &str| QuarantineEntry {
            container: container.into(),
            digest: "sha256:bbbb".into(),
            reason: "exited".into(),
            at: t0,
        };
        board.hold_quarantined(&[entry("web"), entry("db")]);
        board.hold_quarantined(&[entry("web")]);
        assert_eq!(board.snapshot().pending, vec![waiting("web")]);
    }

    #[test]
    fn snapshot_serialises_as_the_status_contract() {
        let board = StatusBoard::default();
        let mut json = serde_json::to_value(board.snapshot()).unwrap();
        let agent = json.as_object_mut().unwrap().remove("agent").unwrap();
        assert_eq!(agent["version"], env!("CARGO_PKG_VERSION"));
        assert!(
            agent["started_at"].is_string() && agent["uptime_secs"].is_u64(),
            "{agent}"
        );
        assert_eq!(
            json,
            serde_json::json!({
                "last_cycle": null,
                "containers": [],
                "pending": [],
                "next_cycle": null,
                "gitops": [],
                "history": [],
                "last_cycle_requests": null,
                "engine": null,
                "actions": []
            })
        );
        let t0 = DateTime::parse_from_rfc3339("2026-03-10T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let t1 = DateTime::parse_from_rfc3339("2026-03-10T12:00:07Z")
            .unwrap()
            .with_timezone(&Utc);
        board.update(
            &report(
                vec![row("web", Status::UpdateAvailable)],
                vec![waiting("web")],
            ),
            t0,
            t1,
        );
        let json = serde_json::to_value(board.snapshot()).unwrap();
        assert_eq!(
            json["last_cycle"],
            serde_json::json!({
                "started_at": "2026-03-10T12:00:00Z",
                "finished_at": "2026-03-10T12:00:07Z",
                "succeeded": true,
                "counts": {
                    "updated": 0,
                    "rolled_back": 0,
                    "failed": 0,
                    "skipped": 0,
                    "check_errors": 0
                }
            })
        );
        assert_eq!(json["containers"][0]["status"], "update_available");
        assert_eq!(
            json["pending"][0],
            serde_json::json!({
                "container": "web",
                "to_digest": "sha256:bbbb",
                "reason": "digest quarantined after a failed update: exited",
                "reason_kind": "quarantined",
                "until": null
            })
        );
        board.set_next_cycle(NextCycle {
            at: t1,
            reason: "every 5m (interval)".into(),
            reason_kind: "interval".into(),
        });
        let json = serde_json::to_value(board.snapshot()).unwrap();
        assert_eq!(
            json["next_cycle"],
            serde_json::json!({
                "at": "2026-03-10T12:00:07Z",
                "reason": "every 5m (interval)",
                "reason_kind": "interval"
            })
        );
    }

    #[test]
    fn a_write_back_replaces_the_repositories_rows_and_keeps_the_last_pushed_commit() {
        use crate::gitops::checkout::Published;
        use crate::gitops::run::RepoReport;
        let repo = |rows: Vec<CheckRow>, published| RepoReport {
            repo: "file:///srv/deploy.git (main)".into(),
            rows,
            published,
            diff: None,
            message: None,
            pins: Vec::new(),
        };
        let board = StatusBoard::default();
        let t0 = Utc::now().trunc_subsecs(0);
        let pushed = Some(Published::Pushed {
            commit: "0123456789abcdef".into(),
            attempts: 1,
        });
        let mut first = repo(
            vec![
                row("compose.yaml#web", Status::UpdateAvailable),
                row("compose.yaml#db", Status::UpToDate),
            ],
            pushed,
        );
        first.pins.push(crate::gitops::plan::Pin {
            row: "compose.yaml#web".into(),
            image: "127.0.0.1:5000/web:latest".into(),
            old: None,
            new: "sha256:bbbb".into(),
            tag: None,
            link: None,
        });
        board.set_gitops(&[first], t0);
        let details: Vec<Option<String>> = board.snapshot().gitops[0]
            .rows
            .iter()
            .map(|r| r.row.detail.clone())
            .collect();
        assert_eq!(
            details,
            [Some("pinned in git: commit 0123456789ab".to_string()), None],
            "only the pinned row says so"
        );
        let t1 = t0 + chrono::Duration::seconds(60);
        board.set_gitops(
            &[repo(
                vec![row("compose.yaml#web", Status::UpToDate)],
                Some(Published::Unchanged),
            )],
            t1,
        );

        let s = board.snapshot();
        assert_eq!(s.gitops.len(), 1);
        let r = &s.gitops[0];
        assert_eq!(r.checked_at, t1);
        assert_eq!(r.commit.as_deref(), Some("0123456789abcdef"));
        assert_eq!(r.pushed_at, Some(t0));
        let json = serde_json::to_value(&s).unwrap();
        let shown = &json["gitops"][0]["rows"][0];
        assert_eq!(shown["container"], "compose.yaml#web");
        assert_eq!(shown["status"], "up_to_date");
        assert_eq!(shown["source"], "git");
        // Containers' rows are not the files'.
        assert!(s.containers.is_empty());

        // A table removed from agent.toml: its repository goes with the next write-back.
        board.set_gitops(&[], t1);
        assert!(board.snapshot().gitops.is_empty());
    }
}
