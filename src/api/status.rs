//! The status board: what the last cycles found, kept by the daemon for `GET /v1/status` and
//! the containers-by-status metric.

use std::sync::{Arc, RwLock};

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

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

/// The body of `GET /v1/status`. Field names are part of the API contract.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatusSnapshot {
    /// `None` until a cycle has finished (in this run of the daemon or, recorded in the state
    /// store, an earlier one).
    pub last_cycle: Option<LastCycle>,
    /// Every watched container's row, as `check --json` gives it.
    pub containers: Vec<CheckRow>,
    /// Updates found but held back (quarantined digests, rollback holds, dependency cycles).
    pub pending: Vec<Waiting>,
    /// When the next scheduled cycle is due; `None` until the first cycle has finished.
    pub next_cycle: Option<NextCycle>,
    /// The newest [`STATUS_HISTORY`] history entries as the daemon read them after its last
    /// cycle, newest first, as `history --json` gives them.
    pub history: Vec<HistoryEntry>,
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
            s.containers = report.current_rows();
            s.pending = report.plan.waiting.clone();
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
            for row in report.current_rows() {
                match s
                    .containers
                    .iter_mut()
                    .find(|r| r.container == row.container)
                {
                    Some(old) => *old = row,
                    None => s.containers.push(row),
                }
            }
            let seen = |name: &str| report.containers.iter().any(|r| r.container == name);
            s.pending.retain(|w| !seen(&w.container));
            s.pending.extend(report.plan.waiting.iter().cloned());
            s.last_cycle = Some(last);
        });
        last
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

    /// A copy of the current snapshot.
    pub fn snapshot(&self) -> StatusSnapshot {
        self.read(StatusSnapshot::clone)
    }

    /// Runs `f` on the current snapshot without copying it.
    pub fn read<T>(&self, f: impl FnOnce(&StatusSnapshot) -> T) -> T {
        // A panic while writing leaves a whole snapshot (each write replaces fields with
        // complete values), so a poisoned lock is still readable.
        let guard = self.0.read().unwrap_or_else(|p| p.into_inner());
        f(&guard)
    }

    fn write(&self, f: impl FnOnce(&mut StatusSnapshot)) {
        let mut guard = self.0.write().unwrap_or_else(|p| p.into_inner());
        f(&mut guard);
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
        assert_eq!(s.containers, vec![row("db", Status::UpToDate)]);
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
            s.containers,
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
        let json = serde_json::to_value(board.snapshot()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "last_cycle": null,
                "containers": [],
                "pending": [],
                "next_cycle": null,
                "history": []
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
}
