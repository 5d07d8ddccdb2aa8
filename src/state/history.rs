//! History: one row per finished update or rollback, for `tidewatch history`, the API and
//! `tidewatch rollback`.

use std::collections::BTreeMap;
use std::ops::Deref;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::outcome::{JournalId, Outcome};
use super::{bad_value, get_ts, ts, StateError, Store};
use crate::release_notes::ReleaseNotes;

/// A history row to append; read back inside a [`HistoryEntry`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewHistory {
    /// When it finished.
    pub at: DateTime<Utc>,
    /// The container's name.
    pub container: String,
    /// The image reference as configured on the container.
    pub image: String,
    /// The digest it ran before, if known.
    pub from_digest: Option<String>,
    /// The digest it was moved to (for a rollback, the one that was tried).
    pub to_digest: String,
    /// The image id it ran before, which `tidewatch rollback` recreates from.
    pub from_image_id: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Why, in words.
    pub reason: String,
    /// How long it took.
    pub duration_ms: u64,
    /// The versions and where to read what changed (each field absent when unknown).
    #[serde(flatten)]
    pub notes: ReleaseNotes,
}

/// A stored history row: the row as appended, and the journal entry it came from.
///
/// Its JSON (`tidewatch history --json`) is the row's fields followed by `journal_id`, as
/// one flat object. It dereferences to the row, so `entry.container` reads the row's field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The row as appended.
    #[serde(flatten)]
    pub row: NewHistory,
    /// The journal entry it came from, if it was written by [`Store::finish`].
    pub journal_id: Option<JournalId>,
}

impl Deref for HistoryEntry {
    type Target = NewHistory;

    fn deref(&self) -> &NewHistory {
        &self.row
    }
}

const COLUMNS: &str = "at, container, image, from_digest, to_digest, from_image_id, outcome, \
                       reason, duration_ms, journal_id, current_version, available_version, \
                       changes_url";

fn entry_from_row(row: &Row<'_>) -> rusqlite::Result<HistoryEntry> {
    let outcome: String = row.get(6)?;
    let duration_ms: i64 = row.get(8)?;
    Ok(HistoryEntry {
        row: NewHistory {
            at: get_ts(row, 0)?,
            container: row.get(1)?,
            image: row.get(2)?,
            from_digest: row.get(3)?,
            to_digest: row.get(4)?,
            from_image_id: row.get(5)?,
            outcome: Outcome::parse(&outcome)
                .ok_or_else(|| bad_value(6, format!("unknown outcome {outcome:?}")))?,
            reason: row.get(7)?,
            duration_ms: u64::try_from(duration_ms)
                .map_err(|_| bad_value(8, format!("negative duration {duration_ms}")))?,
            notes: ReleaseNotes {
                current_version: row.get(10)?,
                available_version: row.get(11)?,
                changes_url: row.get(12)?,
            },
        },
        journal_id: row.get::<_, Option<i64>>(9)?.map(JournalId),
    })
}

/// Appends a row; shared with [`Store::finish`], which writes it in the journal's transaction.
pub(super) fn insert_history(
    conn: &Connection,
    new: &NewHistory,
    journal_id: Option<JournalId>,
) -> rusqlite::Result<HistoryEntry> {
    conn.execute(
        "INSERT INTO history (at, container, image, from_digest, to_digest, from_image_id, \
         outcome, reason, duration_ms, journal_id, current_version, available_version, \
         changes_url) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            ts(new.at),
            new.container,
            new.image,
            new.from_digest,
            new.to_digest,
            new.from_image_id,
            new.outcome.as_str(),
            new.reason,
            new.duration_ms,
            journal_id.map(|id| id.0),
            new.notes.current_version,
            new.notes.available_version,
            new.notes.changes_url,
        ],
    )?;
    Ok(HistoryEntry {
        row: new.clone(),
        journal_id,
    })
}

impl Store {
    /// Appends a history row that has no journal entry behind it. Recreates should use
    /// [`Store::finish`], which writes their row together with closing the entry.
    pub fn record_history(&mut self, new: &NewHistory) -> Result<(), StateError> {
        self.write("recording history", |tx| {
            insert_history(tx, new, None)?;
            Ok(())
        })
    }

    /// Appends `new` unless the history has a row of the same container, digest and outcome
    /// already: a digest that stays blocked over many cycles is one row. True when appended.
    pub fn record_history_once(&mut self, new: &NewHistory) -> Result<bool, StateError> {
        self.write("recording history", |tx| {
            let seen: Option<i64> = tx
                .query_row(
                    "SELECT 1 FROM history WHERE container = ?1 AND to_digest = ?2 AND outcome = ?3",
                    params![new.container, new.to_digest, new.outcome.as_str()],
                    |row| row.get(0),
                )
                .optional()?;
            if seen.is_some() {
                return Ok(false);
            }
            insert_history(tx, new, None)?;
            Ok(true)
        })
    }

    /// Adds `notes` to the newest row of `container` moving to `to_digest`: the step that
    /// wrote it (deep in `apply`) does not know them, the cycle does. False when there is no
    /// such row.
    pub fn add_release_notes(
        &mut self,
        container: &str,
        to_digest: &str,
        notes: &ReleaseNotes,
    ) -> Result<bool, StateError> {
        self.write("recording release notes", |tx| {
            let changed = tx.execute(
                "UPDATE history SET current_version = ?3, available_version = ?4, \
                 changes_url = ?5 WHERE id = (SELECT id FROM history \
                 WHERE container = ?1 AND to_digest = ?2 ORDER BY at DESC, id DESC LIMIT 1)",
                params![
                    container,
                    to_digest,
                    notes.current_version,
                    notes.available_version,
                    notes.changes_url
                ],
            )?;
            Ok(changed > 0)
        })
    }

    /// Up to `limit` rows, newest first, for one container or all of them.
    pub fn history(
        &self,
        container: Option<&str>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StateError> {
        self.read("reading history", |conn| {
            // `id` breaks ties between rows written within the same millisecond.
            conn.prepare(&format!(
                "SELECT {COLUMNS} FROM history WHERE (?1 IS NULL OR container = ?1) \
                 ORDER BY at DESC, id DESC LIMIT ?2"
            ))?
            .query_map(params![container, limit], entry_from_row)?
            .collect()
        })
    }

    /// When each container was last updated successfully (its newest `updated` row), for the
    /// status board.
    pub fn last_updated(&self) -> Result<BTreeMap<String, DateTime<Utc>>, StateError> {
        self.read("reading when containers were last updated", |conn| {
            // Fixed-width RFC 3339 in UTC: text order is time order.
            conn.prepare(
                "SELECT container, MAX(at) FROM history WHERE outcome = ?1 GROUP BY container",
            )?
            .query_map([Outcome::Updated.as_str()], |row| {
                Ok((row.get(0)?, get_ts(row, 1)?))
            })?
            .collect()
        })
    }

    /// The newest successful update of `container`: what `tidewatch rollback` undoes.
    pub fn last_update(&self, container: &str) -> Result<Option<HistoryEntry>, StateError> {
        self.read("reading the last update", |conn| {
            conn.query_row(
                &format!(
                    "SELECT {COLUMNS} FROM history WHERE container = ?1 AND outcome = ?2 \
                     ORDER BY at DESC, id DESC LIMIT 1"
                ),
                params![container, Outcome::Updated.as_str()],
                entry_from_row,
            )
            .optional()
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::super::open_temp;
    use super::*;

    fn row(minute: u32, container: &str, outcome: Outcome, to: &str) -> NewHistory {
        NewHistory {
            at: Utc.with_ymd_and_hms(2024, 5, 1, 12, minute, 0).unwrap(),
            container: container.into(),
            image: format!("{container}:latest"),
            from_digest: Some(format!("{to}-before")),
            to_digest: to.into(),
            from_image_id: Some(format!("sha256:image-before-{to}")),
            outcome,
            reason: "new digest".into(),
            duration_ms: 1500,
            notes: Default::default(),
        }
    }

    #[test]
    fn last_updated_is_each_containers_newest_successful_update() {
        let (_dir, mut store) = open_temp();
        for r in [
            row(1, "web", Outcome::Updated, "sha256:w1"),
            row(3, "web", Outcome::Updated, "sha256:w2"),
            row(5, "web", Outcome::RolledBack, "sha256:w3"),
            row(2, "db", Outcome::Updated, "sha256:d1"),
            row(4, "cache", Outcome::Failed, "sha256:c1"),
        ] {
            store.record_history(&r).unwrap();
        }
        let last = store.last_updated().unwrap();
        assert_eq!(last.len(), 2, "{last:?}");
        assert_eq!(last["web"], row(3, "web", Outcome::Updated, "x").at);
        assert_eq!(last["db"], row(2, "db", Outcome::Updated, "x").at);
    }

    #[test]
    fn release_notes_land_on_the_newest_row_of_that_container_and_digest_and_read_back() {
        let (_dir, mut store) = open_temp();
        store
            .record_history(&row(1, "web", Outcome::Updated, "sha256:w1"))
            .unwrap();
        store
            .record_history(&row(2, "web", Outcome::RolledBack, "sha256:w2"))
            .unwrap();
        store
            .record_history(&row(3, "db", Outcome::Updated, "sha256:w2"))
            .unwrap();
        let notes = ReleaseNotes {
            current_version: Some("1.0.0".into()),
            available_version: Some("2.0.0".into()),
            changes_url: Some("https://github.com/acme/web/compare/a...b".into()),
        };
        assert!(store.add_release_notes("web", "sha256:w2", &notes).unwrap());
        assert!(!store
            .add_release_notes("web", "sha256:none", &notes)
            .unwrap());

        let rows = store.history(None, 10).unwrap();
        let notes_of = |c: &str, d: &str| {
            rows.iter()
                .find(|h| h.container == c && h.to_digest == d)
                .unwrap()
                .notes
                .clone()
        };
        assert_eq!(notes_of("web", "sha256:w2"), notes);
        assert!(notes_of("web", "sha256:w1").is_empty());
        assert!(
            notes_of("db", "sha256:w2").is_empty(),
            "another container's row"
        );

        let json = serde_json::to_value(&rows[1]).unwrap();
        assert_eq!(json["container"], "web");
        assert_eq!(json["available_version"], "2.0.0");
        let old = serde_json::to_value(&rows[2]).unwrap();
        assert!(old.get("changes_url").is_none(), "{old}");
    }

    #[test]
    fn history_is_newest_first_and_filters_by_container() {
        let (_dir, mut store) = open_temp();
        // Written out of time order on purpose: order comes from `at`, not insertion.
        store
            .record_history(&row(5, "web", Outcome::Updated, "sha256:w2"))
            .unwrap();
        store
            .record_history(&row(1, "web", Outcome::Updated, "sha256:w1"))
            .unwrap();
        store
            .record_history(&row(3, "db", Outcome::Failed, "sha256:d1"))
            .unwrap();
        store
            .record_history(&row(9, "db", Outcome::Updated, "sha256:d2"))
            .unwrap();

        let all: Vec<_> = store
            .history(None, 10)
            .unwrap()
            .into_iter()
            .map(|h| h.row.to_digest)
            .collect();
        assert_eq!(all, ["sha256:d2", "sha256:w2", "sha256:d1", "sha256:w1"]);

        let web = store.history(Some("web"), 10).unwrap();
        assert_eq!(web.len(), 2);
        assert!(web.iter().all(|h| h.container == "web"));
        assert_eq!(web[0].to_digest, "sha256:w2");

        let newest = store.history(None, 1).unwrap();
        assert_eq!(newest.len(), 1);
        assert_eq!(
            newest[0],
            HistoryEntry {
                row: NewHistory {
                    at: Utc.with_ymd_and_hms(2024, 5, 1, 12, 9, 0).unwrap(),
                    container: "db".into(),
                    image: "db:latest".into(),
                    from_digest: Some("sha256:d2-before".into()),
                    to_digest: "sha256:d2".into(),
                    from_image_id: Some("sha256:image-before-sha256:d2".into()),
                    outcome: Outcome::Updated,
                    reason: "new digest".into(),
                    duration_ms: 1500,
                    notes: Default::default(),
                },
                journal_id: None,
            }
        );

        assert!(store.history(Some("nobody"), 10).unwrap().is_empty());
    }

    #[test]
    fn a_row_written_by_earlier_versions_loads_and_prints_as_it_did() {
        let (_dir, store) = open_temp();
        store
            .conn
            .execute_batch(
                "INSERT INTO history (at, container, image, from_digest, to_digest, \
                 from_image_id, outcome, reason, duration_ms, journal_id) VALUES \
                 ('2024-05-01T12:09:00.250Z', 'web', 'nginx:1.27', 'sha256:aaa', 'sha256:bbb', \
                  'sha256:oldimage', 'updated', 'new digest', 1500, 7), \
                 ('2024-05-01T12:03:00.000Z', 'db', 'postgres:16', NULL, 'sha256:ddd', \
                  NULL, 'rolled_back', 'unhealthy', 900, NULL);",
            )
            .unwrap();
        let rows = store.history(None, 10).unwrap();
        let json = serde_json::to_string(&rows).unwrap();
        assert_eq!(
            json,
            concat!(
                r#"[{"at":"2024-05-01T12:09:00.250Z","container":"web","image":"nginx:1.27","#,
                r#""from_digest":"sha256:aaa","to_digest":"sha256:bbb","#,
                r#""from_image_id":"sha256:oldimage","outcome":"updated","#,
                r#""reason":"new digest","duration_ms":1500,"journal_id":7},"#,
                r#"{"at":"2024-05-01T12:03:00Z","container":"db","image":"postgres:16","#,
                r#""from_digest":null,"to_digest":"sha256:ddd","from_image_id":null,"#,
                r#""outcome":"rolled_back","reason":"unhealthy","duration_ms":900,"#,
                r#""journal_id":null}]"#
            )
        );
        assert_eq!(
            serde_json::from_str::<Vec<HistoryEntry>>(&json).unwrap(),
            rows
        );
        let last = store.last_update("web").unwrap().unwrap();
        assert_eq!(last.from_image_id.as_deref(), Some("sha256:oldimage"));
        assert_eq!(last.journal_id, Some(JournalId(7)));
    }

    #[test]
    fn last_update_skips_rollbacks_and_failures() {
        let (_dir, mut store) = open_temp();
        store
            .record_history(&row(1, "web", Outcome::Updated, "sha256:good"))
            .unwrap();
        store
            .record_history(&row(2, "web", Outcome::RolledBack, "sha256:bad"))
            .unwrap();
        store
            .record_history(&row(3, "web", Outcome::Failed, "sha256:worse"))
            .unwrap();
        store
            .record_history(&row(4, "api", Outcome::Updated, "sha256:api"))
            .unwrap();

        let last = store.last_update("web").unwrap().unwrap();
        assert_eq!(last.to_digest, "sha256:good");
        assert_eq!(last.from_digest.as_deref(), Some("sha256:good-before"));
        assert_eq!(store.last_update("db").unwrap(), None);
    }

    #[test]
    fn a_blocked_digest_is_one_row_however_often_it_is_recorded() {
        let (_dir, mut store) = open_temp();
        let blocked = row(1, "web", Outcome::Blocked, "sha256:w2");
        assert!(store.record_history_once(&blocked).unwrap());
        assert!(!store
            .record_history_once(&row(2, "web", Outcome::Blocked, "sha256:w2"))
            .unwrap());
        assert!(store
            .record_history_once(&row(3, "web", Outcome::Blocked, "sha256:w3"))
            .unwrap());
        assert!(store
            .record_history_once(&row(4, "db", Outcome::Blocked, "sha256:w2"))
            .unwrap());
        let rows = store.history(Some("web"), 10).unwrap();
        let outcomes: Vec<(Outcome, &str)> = rows
            .iter()
            .map(|h| (h.outcome, h.to_digest.as_str()))
            .collect();
        assert_eq!(
            outcomes,
            [
                (Outcome::Blocked, "sha256:w3"),
                (Outcome::Blocked, "sha256:w2")
            ]
        );
        assert_eq!(
            store.last_update("web").unwrap(),
            None,
            "nothing to roll back"
        );
    }
}
