//! The journal of recreates: before each engine mutation, `apply` records what it is about to
//! do, so that after a crash a restart finds the half-done recreate and can finish or undo it.

use std::fmt;
use std::ops::Deref;

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row, Transaction};
use serde::{Deserialize, Serialize};

use super::history::{insert_history, HistoryEntry, NewHistory};
use super::outcome::{JournalId, Outcome};
use super::{bad_value, get_opt_ts, get_ts, now, ts, StateError, Store};

/// How far a recreate got. The main line runs `Planned` to `Committed` (steps may be skipped,
/// e.g. `Stopped` for a container that was not running); from any unfinished step it can turn
/// into `RollingBack`, and from there end in `RolledBack` or `Failed`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Recorded, nothing touched yet.
    Planned,
    /// The new image is pulled by digest.
    Pulled,
    /// The old container is stopped.
    Stopped,
    /// The old container is renamed to the entry's `aside_name`.
    RenamedAside,
    /// The replacement exists under the original name.
    Created {
        /// The replacement's container id.
        new_id: String,
    },
    /// The replacement is started.
    Started,
    /// The replacement passed the health gate.
    Healthy,
    /// The replacement is kept; the old container is (being) removed.
    Committed,
    /// The replacement is being discarded and the old container restored.
    RollingBack,
    /// The old container runs again under its original name.
    RolledBack,
    /// Neither the update nor the rollback completed; a human should look.
    Failed,
}

impl Step {
    /// The step's stored name, e.g. `renamed_aside`.
    pub fn name(&self) -> &'static str {
        match self {
            Step::Planned => "planned",
            Step::Pulled => "pulled",
            Step::Stopped => "stopped",
            Step::RenamedAside => "renamed_aside",
            Step::Created { .. } => "created",
            Step::Started => "started",
            Step::Healthy => "healthy",
            Step::Committed => "committed",
            Step::RollingBack => "rolling_back",
            Step::RolledBack => "rolled_back",
            Step::Failed => "failed",
        }
    }

    /// Whether no step may follow this one.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Step::Committed | Step::RolledBack | Step::Failed)
    }

    /// Whether the journal may move from `self` to `next`: only forward, except that any
    /// unfinished step may turn into `RollingBack`.
    pub fn can_advance_to(&self, next: &Step) -> bool {
        if self.is_terminal() {
            return false;
        }
        match next {
            Step::RollingBack => *self != Step::RollingBack,
            _ => next.rank() > self.rank(),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Step::Planned => 0,
            Step::Pulled => 1,
            Step::Stopped => 2,
            Step::RenamedAside => 3,
            Step::Created { .. } => 4,
            Step::Started => 5,
            Step::Healthy => 6,
            Step::Committed => 7,
            Step::RollingBack => 8,
            Step::RolledBack => 9,
            Step::Failed => 10,
        }
    }

    /// Rebuilds a step from its stored name and the entry's `new_id` column.
    fn from_stored(name: &str, new_id: Option<&str>) -> Result<Step, String> {
        Ok(match name {
            "planned" => Step::Planned,
            "pulled" => Step::Pulled,
            "stopped" => Step::Stopped,
            "renamed_aside" => Step::RenamedAside,
            "created" => Step::Created {
                new_id: new_id
                    .ok_or("step is created but new_id is empty")?
                    .to_string(),
            },
            "started" => Step::Started,
            "healthy" => Step::Healthy,
            "committed" => Step::Committed,
            "rolling_back" => Step::RollingBack,
            "rolled_back" => Step::RolledBack,
            "failed" => Step::Failed,
            other => return Err(format!("unknown journal step {other:?}")),
        })
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The terminal step a finished entry with this outcome is left in.
fn terminal_step(outcome: Outcome) -> Step {
    match outcome {
        Outcome::Updated => Step::Committed,
        Outcome::RolledBack => Step::RolledBack,
        // A recreate is never blocked (the gate runs before one is planned); were it asked
        // to end so, it ended without the update.
        Outcome::Failed | Outcome::Blocked => Step::Failed,
    }
}

/// What `apply` records before it touches a container: enough to put the old one back. Read
/// back inside a [`JournalEntry`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRecreate {
    /// The container's name (without the leading `/`).
    pub container: String,
    /// The old container's id.
    pub old_id: String,
    /// The image id the old container runs, to recreate it if the aside copy is lost.
    pub old_image_id: String,
    /// The old image's repo digest, if it had one.
    pub old_digest: Option<String>,
    /// The digest being rolled out.
    pub new_digest: String,
    /// The image reference as configured on the container, e.g. `nginx:1.27`.
    pub image_ref: String,
    /// The name the old container is renamed to while the replacement starts.
    pub aside_name: String,
    /// Whether the old container was running; a stopped one is recreated but not started.
    pub was_running: bool,
}

/// One recreate as stored: what [`Store::begin`] recorded, and how far it got.
///
/// Its JSON is one flat object, the recorded fields between `id` and `step`. It dereferences
/// to the record, so `entry.old_id` reads the record's field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// The entry's id.
    pub id: JournalId,
    /// What was recorded before the recreate began.
    #[serde(flatten)]
    pub recreate: NewRecreate,
    /// How far the recreate got.
    pub step: Step,
    /// The replacement's id once it exists; kept after `Created` is passed.
    pub new_id: Option<String>,
    /// Why it ended as it did; set by [`Store::finish`].
    pub reason: Option<String>,
    /// When it was begun.
    pub started_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it was finished; `None` while recovery may still have work to do.
    pub finished_at: Option<DateTime<Utc>>,
}

impl Deref for JournalEntry {
    type Target = NewRecreate;

    fn deref(&self) -> &NewRecreate {
        &self.recreate
    }
}

impl JournalEntry {
    /// Whether [`Store::finish`] has closed this entry.
    pub fn is_finished(&self) -> bool {
        self.finished_at.is_some()
    }
}

const COLUMNS: &str = "id, container, old_id, old_image_id, old_digest, new_digest, image_ref, \
                       aside_name, step, new_id, reason, started_at, updated_at, finished_at, \
                       was_running";

fn entry_from_row(row: &Row<'_>) -> rusqlite::Result<JournalEntry> {
    let step_name: String = row.get(8)?;
    let new_id: Option<String> = row.get(9)?;
    let step = Step::from_stored(&step_name, new_id.as_deref()).map_err(|e| bad_value(8, e))?;
    Ok(JournalEntry {
        id: JournalId(row.get(0)?),
        recreate: NewRecreate {
            container: row.get(1)?,
            old_id: row.get(2)?,
            old_image_id: row.get(3)?,
            old_digest: row.get(4)?,
            new_digest: row.get(5)?,
            image_ref: row.get(6)?,
            aside_name: row.get(7)?,
            was_running: row.get(14)?,
        },
        step,
        new_id,
        reason: row.get(10)?,
        started_at: get_ts(row, 11)?,
        updated_at: get_ts(row, 12)?,
        finished_at: get_opt_ts(row, 13)?,
    })
}

/// Loads an entry that is still open, refusing unknown and finished ones.
fn load_open(tx: &Transaction<'_>, id: JournalId) -> Result<JournalEntry, super::TxError> {
    let entry = tx
        .query_row(
            &format!("SELECT {COLUMNS} FROM journal WHERE id = ?1"),
            [id.0],
            entry_from_row,
        )
        .optional()?
        .ok_or(StateError::UnknownJournal { id })?;
    if entry.is_finished() {
        return Err(StateError::AlreadyFinished { id }.into());
    }
    Ok(entry)
}

impl Store {
    /// Records a recreate about to start, in step [`Step::Planned`]. Refused while the same
    /// container has an unfinished entry: recovery must settle that one first.
    pub fn begin(&mut self, recreate: &NewRecreate) -> Result<JournalId, StateError> {
        self.write("beginning a recreate", |tx| {
            let open: Option<i64> = tx
                .query_row(
                    "SELECT id FROM journal WHERE container = ?1 AND finished_at IS NULL",
                    [&recreate.container],
                    |row| row.get(0),
                )
                .optional()?;
            if let Some(id) = open {
                return Err(StateError::RecreateInProgress {
                    container: recreate.container.clone(),
                    id: JournalId(id),
                }
                .into());
            }
            let at = ts(now());
            tx.execute(
                "INSERT INTO journal (container, old_id, old_image_id, old_digest, new_digest, \
                 image_ref, aside_name, step, started_at, updated_at, was_running) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10)",
                params![
                    recreate.container,
                    recreate.old_id,
                    recreate.old_image_id,
                    recreate.old_digest,
                    recreate.new_digest,
                    recreate.image_ref,
                    recreate.aside_name,
                    Step::Planned.name(),
                    at,
                    recreate.was_running,
                ],
            )?;
            Ok(JournalId(tx.last_insert_rowid()))
        })
    }

    /// Moves an open entry to `step`. Only forward moves are accepted, plus a move into
    /// [`Step::RollingBack`] from any unfinished step; [`Step::Created`] also records the
    /// replacement's id.
    pub fn advance(&mut self, id: JournalId, step: Step) -> Result<(), StateError> {
        self.write("advancing a recreate", |tx| {
            let entry = load_open(tx, id)?;
            if !entry.step.can_advance_to(&step) {
                return Err(StateError::InvalidStep {
                    id,
                    from: entry.step,
                    to: step,
                }
                .into());
            }
            let new_id = match &step {
                Step::Created { new_id } => Some(new_id.as_str()),
                _ => None,
            };
            tx.execute(
                "UPDATE journal SET step = ?1, new_id = COALESCE(?2, new_id), updated_at = ?3 \
                 WHERE id = ?4",
                params![step.name(), new_id, ts(now()), id.0],
            )?;
            Ok(())
        })
    }

    /// Records the replacement's id without changing the step, e.g. when recovery finds a
    /// replacement that was created just before a crash.
    pub fn set_new_id(&mut self, id: JournalId, new_id: &str) -> Result<(), StateError> {
        self.write("recording the replacement's id", |tx| {
            load_open(tx, id)?;
            tx.execute(
                "UPDATE journal SET new_id = ?1, updated_at = ?2 WHERE id = ?3",
                params![new_id, ts(now()), id.0],
            )?;
            Ok(())
        })
    }

    /// Deletes an open entry whose recreate was called off before the old container was
    /// touched ([`Step::Planned`] or [`Step::Pulled`]): a pre-update hook deferred it to the
    /// next cycle, which is no outcome for the history. Refused at any later step.
    pub fn withdraw(&mut self, id: JournalId) -> Result<(), StateError> {
        self.write("withdrawing a recreate", |tx| {
            let entry = load_open(tx, id)?;
            if !matches!(entry.step, Step::Planned | Step::Pulled) {
                return Err(StateError::InvalidStep {
                    id,
                    from: entry.step,
                    to: Step::Planned,
                }
                .into());
            }
            tx.execute("DELETE FROM journal WHERE id = ?1", [id.0])?;
            Ok(())
        })
    }

    /// Closes an entry and appends its history row, in one transaction so a finished recreate
    /// always has one. The entry is left in the outcome's terminal step; `Updated` is refused
    /// unless the replacement reached [`Step::Healthy`], because the old container must never
    /// be removed before its replacement is healthy.
    pub fn finish(
        &mut self,
        id: JournalId,
        outcome: Outcome,
        reason: &str,
    ) -> Result<HistoryEntry, StateError> {
        self.write("finishing a recreate", |tx| {
            let entry = load_open(tx, id)?;
            let to = terminal_step(outcome);
            let allowed = match outcome {
                Outcome::Updated => matches!(entry.step, Step::Healthy | Step::Committed),
                Outcome::RolledBack | Outcome::Failed | Outcome::Blocked => {
                    entry.step == to || entry.step.can_advance_to(&to)
                }
            };
            if !allowed {
                return Err(StateError::InvalidStep {
                    id,
                    from: entry.step,
                    to,
                }
                .into());
            }
            let at = now();
            tx.execute(
                "UPDATE journal SET step = ?1, reason = ?2, updated_at = ?3, finished_at = ?3 \
                 WHERE id = ?4",
                params![to.name(), reason, ts(at), id.0],
            )?;
            let duration_ms = u64::try_from((at - entry.started_at).num_milliseconds())
                // The wall clock stepped backwards during the recreate.
                .unwrap_or(0);
            let recreate = entry.recreate;
            let history = NewHistory {
                at,
                container: recreate.container,
                image: recreate.image_ref,
                from_digest: recreate.old_digest,
                to_digest: recreate.new_digest,
                from_image_id: Some(recreate.old_image_id),
                outcome,
                reason: reason.to_string(),
                duration_ms,
                notes: Default::default(),
            };
            Ok(insert_history(tx, &history, Some(id))?)
        })
    }

    /// One entry, finished or not.
    pub fn entry(&self, id: JournalId) -> Result<Option<JournalEntry>, StateError> {
        self.read("reading a journal entry", |conn| {
            conn.query_row(
                &format!("SELECT {COLUMNS} FROM journal WHERE id = ?1"),
                [id.0],
                entry_from_row,
            )
            .optional()
        })
    }

    /// Every entry not yet finished, oldest first: what recovery must look at after a restart.
    /// This includes entries already in a terminal step whose `finish` never ran (say, the
    /// process died while removing the old container).
    pub fn unfinished(&self) -> Result<Vec<JournalEntry>, StateError> {
        self.read("listing unfinished recreates", |conn| {
            conn.prepare(&format!(
                "SELECT {COLUMNS} FROM journal WHERE finished_at IS NULL ORDER BY id"
            ))?
            .query_map([], entry_from_row)?
            .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::open_temp;
    use super::*;

    fn web() -> NewRecreate {
        NewRecreate {
            container: "web".into(),
            old_id: "0ld1d".into(),
            old_image_id: "sha256:oldimage".into(),
            old_digest: Some("sha256:aaa".into()),
            new_digest: "sha256:bbb".into(),
            image_ref: "nginx:1.27".into(),
            aside_name: "web-tidewatch-old-20240102T030405Z".into(),
            was_running: true,
        }
    }

    fn walk_to_healthy(store: &mut Store, id: JournalId) {
        for step in [
            Step::Pulled,
            Step::Stopped,
            Step::RenamedAside,
            Step::Created {
                new_id: "n3w1d".into(),
            },
            Step::Started,
            Step::Healthy,
        ] {
            store.advance(id, step).unwrap();
        }
    }

    #[test]
    fn journal_survives_reopen_and_lists_unfinished() {
        let (dir, mut store) = open_temp();
        let done = store.begin(&web()).unwrap();
        walk_to_healthy(&mut store, done);
        store.finish(done, Outcome::Updated, "new digest").unwrap();

        let mut api = web();
        api.container = "api".into();
        let crashed = store.begin(&api).unwrap();
        store.advance(crashed, Step::Pulled).unwrap();
        store.advance(crashed, Step::Stopped).unwrap();
        store.advance(crashed, Step::RenamedAside).unwrap();
        drop(store);

        let store = Store::open(dir.path()).unwrap();
        let open = store.unfinished().unwrap();
        assert_eq!(open.len(), 1, "{open:#?}");
        let entry = &open[0];
        assert_eq!(entry.id, crashed);
        assert_eq!(entry.container, "api");
        assert_eq!(entry.step, Step::RenamedAside);
        assert_eq!(entry.aside_name, api.aside_name);
        assert_eq!(entry.old_id, api.old_id);
        assert_eq!(entry.old_image_id, api.old_image_id);
        assert_eq!(entry.new_id, None);
        assert!(!entry.is_finished());

        let finished = store.entry(done).unwrap().unwrap();
        assert_eq!(finished.step, Step::Committed);
        assert_eq!(finished.reason.as_deref(), Some("new digest"));
        assert_eq!(finished.new_id.as_deref(), Some("n3w1d"));
        assert!(finished.is_finished());
    }

    #[test]
    fn rows_written_by_earlier_versions_load_and_print_as_they_did() {
        let (_dir, store) = open_temp();
        store
            .conn
            .execute_batch(
                "INSERT INTO journal (id, container, old_id, old_image_id, old_digest, \
                 new_digest, image_ref, aside_name, step, new_id, reason, started_at, \
                 updated_at, finished_at, was_running) VALUES \
                 (3, 'web', '0ld1d', 'sha256:oldimage', 'sha256:aaa', 'sha256:bbb', \
                  'nginx:1.27', 'web-tidewatch-old-20240102T030405Z', 'committed', 'n3w1d', \
                  'new digest', '2024-01-02T03:04:05.000Z', '2024-01-02T03:04:35.500Z', \
                  '2024-01-02T03:04:35.500Z', 1), \
                 (4, 'api', '4p1', 'sha256:apiold', NULL, 'sha256:ccc', 'api:latest', \
                  'api-tidewatch-old-20240102T030405Z', 'created', 'n3w2', NULL, \
                  '2024-01-02T03:05:00.000Z', '2024-01-02T03:05:01.000Z', NULL, 0);",
            )
            .unwrap();
        let finished = store.entry(JournalId(3)).unwrap().unwrap();
        assert_eq!(
            serde_json::to_string(&finished).unwrap(),
            concat!(
                r#"{"id":3,"container":"web","old_id":"0ld1d","old_image_id":"sha256:oldimage","#,
                r#""old_digest":"sha256:aaa","new_digest":"sha256:bbb","image_ref":"nginx:1.27","#,
                r#""aside_name":"web-tidewatch-old-20240102T030405Z","was_running":true,"#,
                r#""step":{"step":"committed"},"new_id":"n3w1d","reason":"new digest","#,
                r#""started_at":"2024-01-02T03:04:05Z","updated_at":"2024-01-02T03:04:35.500Z","#,
                r#""finished_at":"2024-01-02T03:04:35.500Z"}"#
            )
        );
        let open = store.unfinished().unwrap();
        assert_eq!(open.len(), 1, "{open:#?}");
        let json = serde_json::to_string(&open[0]).unwrap();
        assert_eq!(
            json,
            concat!(
                r#"{"id":4,"container":"api","old_id":"4p1","old_image_id":"sha256:apiold","#,
                r#""old_digest":null,"new_digest":"sha256:ccc","image_ref":"api:latest","#,
                r#""aside_name":"api-tidewatch-old-20240102T030405Z","was_running":false,"#,
                r#""step":{"step":"created","new_id":"n3w2"},"new_id":"n3w2","reason":null,"#,
                r#""started_at":"2024-01-02T03:05:00Z","updated_at":"2024-01-02T03:05:01Z","#,
                r#""finished_at":null}"#
            )
        );
        assert_eq!(
            serde_json::from_str::<JournalEntry>(&json).unwrap(),
            open[0]
        );
    }

    #[test]
    fn terminal_step_without_finish_is_still_unfinished() {
        let (_dir, mut store) = open_temp();
        let id = store.begin(&web()).unwrap();
        walk_to_healthy(&mut store, id);
        store.advance(id, Step::Committed).unwrap();
        let open = store.unfinished().unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].step, Step::Committed);
        store.finish(id, Outcome::Updated, "new digest").unwrap();
        assert!(store.unfinished().unwrap().is_empty());
    }

    #[test]
    fn journal_only_moves_forward_except_into_rolling_back() {
        let (_dir, mut store) = open_temp();
        let id = store.begin(&web()).unwrap();
        store.advance(id, Step::Stopped).unwrap();

        let err = store.advance(id, Step::Pulled).unwrap_err();
        assert!(
            matches!(
                &err,
                StateError::InvalidStep {
                    from: Step::Stopped,
                    to: Step::Pulled,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("journal entry {id} cannot move from stopped to pulled")
        );
        assert!(store.advance(id, Step::Stopped).is_err(), "same step twice");

        store
            .advance(
                id,
                Step::Created {
                    new_id: "n3w1d".into(),
                },
            )
            .unwrap();
        store.advance(id, Step::RollingBack).unwrap();
        assert!(store.advance(id, Step::RollingBack).is_err());
        assert!(store.advance(id, Step::Healthy).is_err());
        assert!(store.advance(id, Step::Committed).is_err());
        store.advance(id, Step::RolledBack).unwrap();
        // RolledBack is terminal: nothing follows, not even another rollback.
        assert!(store.advance(id, Step::RollingBack).is_err());
        assert!(store.advance(id, Step::Failed).is_err());
    }

    #[test]
    fn created_step_records_the_new_id_and_it_outlives_the_step() {
        let (_dir, mut store) = open_temp();
        let id = store.begin(&web()).unwrap();
        store
            .advance(
                id,
                Step::Created {
                    new_id: "n3w1d".into(),
                },
            )
            .unwrap();
        let entry = store.entry(id).unwrap().unwrap();
        assert_eq!(
            entry.step,
            Step::Created {
                new_id: "n3w1d".into()
            }
        );
        store.advance(id, Step::Started).unwrap();
        let entry = store.entry(id).unwrap().unwrap();
        assert_eq!(entry.step, Step::Started);
        assert_eq!(entry.new_id.as_deref(), Some("n3w1d"));
    }

    #[test]
    fn set_new_id_keeps_the_step() {
        let (_dir, mut store) = open_temp();
        let id = store.begin(&web()).unwrap();
        store.advance(id, Step::RenamedAside).unwrap();
        store.set_new_id(id, "f0und").unwrap();
        let entry = store.entry(id).unwrap().unwrap();
        assert_eq!(entry.step, Step::RenamedAside);
        assert_eq!(entry.new_id.as_deref(), Some("f0und"));
    }

    #[test]
    fn update_cannot_finish_before_the_replacement_is_healthy() {
        let (_dir, mut store) = open_temp();
        let id = store.begin(&web()).unwrap();
        store.advance(id, Step::Started).unwrap();
        let err = store
            .finish(id, Outcome::Updated, "new digest")
            .unwrap_err();
        assert!(
            matches!(
                err,
                StateError::InvalidStep {
                    from: Step::Started,
                    to: Step::Committed,
                    ..
                }
            ),
            "{err:?}"
        );
        // Nothing was written: still open, no history.
        assert_eq!(store.unfinished().unwrap().len(), 1);
        assert!(store.history(None, 10).unwrap().is_empty());
    }

    #[test]
    fn a_withdrawn_entry_leaves_no_trace_and_only_untouched_ones_are_withdrawn() {
        let (_dir, mut store) = open_temp();
        let id = store.begin(&web()).unwrap();
        store.advance(id, Step::Pulled).unwrap();
        store.withdraw(id).unwrap();
        assert!(store.unfinished().unwrap().is_empty());
        assert_eq!(store.last_update("web").unwrap(), None);
        // The container can be journalled again at once.
        let again = store.begin(&web()).unwrap();
        store.advance(again, Step::Stopped).unwrap();
        assert!(
            store.withdraw(again).is_err(),
            "the old container was touched"
        );
        assert_eq!(store.unfinished().unwrap().len(), 1);
    }

    #[test]
    fn finish_appends_history_with_old_image_id() {
        let (_dir, mut store) = open_temp();
        let id = store.begin(&web()).unwrap();
        walk_to_healthy(&mut store, id);
        let row = store.finish(id, Outcome::Updated, "new digest").unwrap();
        assert_eq!(row.container, "web");
        assert_eq!(row.image, "nginx:1.27");
        assert_eq!(row.from_digest.as_deref(), Some("sha256:aaa"));
        assert_eq!(row.to_digest, "sha256:bbb");
        assert_eq!(row.from_image_id.as_deref(), Some("sha256:oldimage"));
        assert_eq!(row.outcome, Outcome::Updated);
        assert_eq!(row.journal_id, Some(id));
        assert_eq!(store.last_update("web").unwrap(), Some(row));
    }

    #[test]
    fn rollback_finishes_as_rolled_back() {
        let (_dir, mut store) = open_temp();
        let id = store.begin(&web()).unwrap();
        store.advance(id, Step::Started).unwrap();
        store.advance(id, Step::RollingBack).unwrap();
        let row = store
            .finish(id, Outcome::RolledBack, "health check failed")
            .unwrap();
        assert_eq!(row.outcome, Outcome::RolledBack);
        assert_eq!(store.entry(id).unwrap().unwrap().step, Step::RolledBack);
    }

    #[test]
    fn finished_entry_cannot_change() {
        let (_dir, mut store) = open_temp();
        let id = store.begin(&web()).unwrap();
        store.finish(id, Outcome::Failed, "pull failed").unwrap();
        assert!(matches!(
            store.advance(id, Step::Pulled),
            Err(StateError::AlreadyFinished { .. })
        ));
        assert!(matches!(
            store.set_new_id(id, "x"),
            Err(StateError::AlreadyFinished { .. })
        ));
        assert!(matches!(
            store.finish(id, Outcome::Failed, "again"),
            Err(StateError::AlreadyFinished { .. })
        ));
        assert_eq!(store.history(None, 10).unwrap().len(), 1);
    }

    #[test]
    fn unknown_entry_is_reported() {
        let (_dir, mut store) = open_temp();
        assert!(matches!(
            store.advance(JournalId(42), Step::Pulled),
            Err(StateError::UnknownJournal { id: JournalId(42) })
        ));
        assert_eq!(store.entry(JournalId(42)).unwrap(), None);
    }

    #[test]
    fn one_open_recreate_per_container() {
        let (_dir, mut store) = open_temp();
        let first = store.begin(&web()).unwrap();
        let err = store.begin(&web()).unwrap_err();
        assert!(
            matches!(&err, StateError::RecreateInProgress { container, id } if container == "web" && *id == first),
            "{err:?}"
        );
        store.finish(first, Outcome::Failed, "pull failed").unwrap();
        let second = store.begin(&web()).unwrap();
        assert!(second > first);
    }

    #[test]
    fn steps_serialize_with_their_names() {
        let created = Step::Created {
            new_id: "n3w1d".into(),
        };
        let json = serde_json::to_string(&created).unwrap();
        assert_eq!(json, r#"{"step":"created","new_id":"n3w1d"}"#);
        assert_eq!(serde_json::from_str::<Step>(&json).unwrap(), created);
        assert_eq!(
            serde_json::to_string(&Step::RenamedAside).unwrap(),
            r#"{"step":"renamed_aside"}"#
        );
        assert_eq!(
            serde_json::to_string(&Outcome::RolledBack).unwrap(),
            r#""rolled_back""#
        );
    }
}
