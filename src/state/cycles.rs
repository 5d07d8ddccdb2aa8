//! The daemon's last cycle: when it ran, whether it went well and how its steps ended, kept so
//! that `tidewatch status` can say so while the daemon is not running. One row, replaced by
//! each cycle.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::{get_ts, ts, StateError, Store};

/// How a cycle's steps ended, and how many containers it could not check. Field names are
/// part of the `/v1/status` and `status --json` contracts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleCounts {
    /// Containers moved to a new image and healthy on it.
    pub updated: u32,
    /// Updates undone after a failed health gate.
    pub rolled_back: u32,
    /// Updates that could not be carried out.
    pub failed: u32,
    /// Updates not attempted (a dependency failed, shutdown).
    pub skipped: u32,
    /// Containers whose check failed (rows in `error`).
    pub check_errors: u32,
}

/// When a cycle ran and whether it went well. Field names are part of the `/v1/status` and
/// `status --json` contracts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastCycle {
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: DateTime<Utc>,
    /// Nothing failed or was rolled back, and every container could be checked.
    pub succeeded: bool,
    /// How its steps ended. Absent from the answers of daemons older than `status`.
    #[serde(default)]
    pub counts: CycleCounts,
}

impl Store {
    /// Records `cycle` as the last one, replacing the one before.
    pub fn record_cycle(&mut self, cycle: &LastCycle) -> Result<(), StateError> {
        let c = cycle.counts;
        self.write("recording the last cycle", |tx| {
            tx.execute(
                "INSERT INTO last_cycle (id, started_at, finished_at, succeeded, updated, \
                 rolled_back, failed, skipped, check_errors) \
                 VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (id) DO UPDATE SET \
                 started_at = ?1, finished_at = ?2, succeeded = ?3, updated = ?4, \
                 rolled_back = ?5, failed = ?6, skipped = ?7, check_errors = ?8",
                params![
                    ts(cycle.started_at),
                    ts(cycle.finished_at),
                    cycle.succeeded,
                    c.updated,
                    c.rolled_back,
                    c.failed,
                    c.skipped,
                    c.check_errors
                ],
            )?;
            Ok(())
        })
    }

    /// The last cycle the daemon recorded, if any.
    pub fn last_cycle(&self) -> Result<Option<LastCycle>, StateError> {
        self.read("reading the last cycle", |conn| {
            conn.query_row(
                "SELECT started_at, finished_at, succeeded, updated, rolled_back, failed, \
                 skipped, check_errors FROM last_cycle WHERE id = 1",
                [],
                |row| {
                    Ok(LastCycle {
                        started_at: get_ts(row, 0)?,
                        finished_at: get_ts(row, 1)?,
                        succeeded: row.get(2)?,
                        counts: CycleCounts {
                            updated: row.get(3)?,
                            rolled_back: row.get(4)?,
                            failed: row.get(5)?,
                            skipped: row.get(6)?,
                            check_errors: row.get(7)?,
                        },
                    })
                },
            )
            .optional()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{now, open_temp};
    use super::*;

    #[test]
    fn the_last_cycle_replaces_the_one_before_and_survives_a_reopen() {
        let (dir, mut store) = open_temp();
        assert_eq!(store.last_cycle().unwrap(), None);
        let first = LastCycle {
            started_at: now(),
            finished_at: now(),
            succeeded: true,
            counts: CycleCounts {
                updated: 2,
                ..CycleCounts::default()
            },
        };
        store.record_cycle(&first).unwrap();
        let second = LastCycle {
            succeeded: false,
            counts: CycleCounts {
                rolled_back: 1,
                check_errors: 3,
                ..CycleCounts::default()
            },
            ..first
        };
        store.record_cycle(&second).unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.last_cycle().unwrap(), Some(second));
    }
}
