//! The embedded store in `[agent] state_dir`: the journal of recreates that lets a restart
//! recover from a crash mid-update, the history of finished updates, quarantined digests, holds
//! left by a manual rollback, which notifications already went out, the daemon's last cycle, and
//! the lock that keeps two cycles from running at once.
//!
//! Everything except the lock lives in one SQLite file, `state_dir/tidewatch.db`. The API is
//! synchronous: a [`Store`] is `Send` but not `Sync`, so async callers keep it behind a mutex and
//! call it from `spawn_blocking` (or briefly inline: every call is a few indexed statements).
//! Nothing secret is stored: rows hold container names, image references, ids and digests.

mod cycles;
mod history;
mod journal;
mod lock;
mod marks;
mod outcome;
mod shared;

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use rusqlite::types::Type;
use rusqlite::{Connection, Row, Transaction, TransactionBehavior};

pub use cycles::{CycleCounts, LastCycle};
pub use history::{HistoryEntry, NewHistory};
pub use journal::{JournalEntry, NewRecreate, Step};
pub use lock::{CycleLock, Wait, LOCK_FILE};
pub use marks::{Hold, QuarantineEntry};
pub use outcome::{JournalId, Outcome};
pub use shared::SharedStore;

/// Name of the database file inside `state_dir`.
pub const DB_FILE: &str = "tidewatch.db";

/// The schema this build writes, kept in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How long a statement waits for another process's write before failing with "database is
/// locked". Writes are a few rows, so anything near this long means something is stuck.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Migration `i` takes the schema from version `i` to `i + 1`. Append only: a released
/// migration is never edited, because databases in the field have already run it.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE journal (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    container     TEXT NOT NULL,
    old_id        TEXT NOT NULL,
    old_image_id  TEXT NOT NULL,
    old_digest    TEXT,
    new_digest    TEXT NOT NULL,
    image_ref     TEXT NOT NULL,
    aside_name    TEXT NOT NULL,
    step          TEXT NOT NULL,
    new_id        TEXT,
    reason        TEXT,
    started_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    finished_at   TEXT
);
-- Two open recreates of one container would leave recovery guessing which to undo.
CREATE UNIQUE INDEX journal_one_open_per_container
    ON journal (container) WHERE finished_at IS NULL;

CREATE TABLE history (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at             TEXT NOT NULL,
    container      TEXT NOT NULL,
    image          TEXT NOT NULL,
    from_digest    TEXT,
    to_digest      TEXT NOT NULL,
    from_image_id  TEXT,
    outcome        TEXT NOT NULL CHECK (outcome IN ('updated', 'rolled_back', 'failed')),
    reason         TEXT NOT NULL,
    duration_ms    INTEGER NOT NULL,
    journal_id     INTEGER
);
CREATE INDEX history_by_container ON history (container, at);
CREATE INDEX history_by_time ON history (at);

CREATE TABLE quarantine (
    container  TEXT NOT NULL,
    digest     TEXT NOT NULL,
    reason     TEXT NOT NULL,
    at         TEXT NOT NULL,
    PRIMARY KEY (container, digest)
);

CREATE TABLE holds (
    container       TEXT PRIMARY KEY,
    held_digest     TEXT NOT NULL,
    skipped_digest  TEXT NOT NULL,
    at              TEXT NOT NULL
);

CREATE TABLE notified (
    container  TEXT NOT NULL,
    digest     TEXT NOT NULL,
    event      TEXT NOT NULL,
    at         TEXT NOT NULL,
    PRIMARY KEY (container, digest, event)
);
"#,
    r#"
-- A stopped container (`[watch] include_stopped`) is recreated but not started; recovery
-- must not start it either.
ALTER TABLE journal ADD COLUMN was_running INTEGER NOT NULL DEFAULT 1;

-- When each digest was first seen for a container, for `[watch] min_age`.
CREATE TABLE seen (
    container   TEXT NOT NULL,
    digest      TEXT NOT NULL,
    first_seen  TEXT NOT NULL,
    PRIMARY KEY (container, digest)
);
"#,
    r#"
-- The daemon's last cycle, for `tidewatch status` while the daemon is not running: one row.
CREATE TABLE last_cycle (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    started_at    TEXT NOT NULL,
    finished_at   TEXT NOT NULL,
    succeeded     INTEGER NOT NULL,
    updated       INTEGER NOT NULL,
    rolled_back   INTEGER NOT NULL,
    failed        INTEGER NOT NULL,
    skipped       INTEGER NOT NULL,
    check_errors  INTEGER NOT NULL
);
"#,
    r#"
-- Release notes of an update: the versions and where to read what changed, from the
-- images' OCI labels; NULL when unknown (and for rows written before).
ALTER TABLE history ADD COLUMN current_version TEXT;
ALTER TABLE history ADD COLUMN available_version TEXT;
ALTER TABLE history ADD COLUMN changes_url TEXT;
"#,
    r#"
-- A digest that no signature its [[verify]] rule trusts names is recorded as 'blocked'.
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt with the same rows.
CREATE TABLE history_with_blocked (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    at                 TEXT NOT NULL,
    container          TEXT NOT NULL,
    image              TEXT NOT NULL,
    from_digest        TEXT,
    to_digest          TEXT NOT NULL,
    from_image_id      TEXT,
    outcome            TEXT NOT NULL
        CHECK (outcome IN ('updated', 'rolled_back', 'failed', 'blocked')),
    reason             TEXT NOT NULL,
    duration_ms        INTEGER NOT NULL,
    journal_id         INTEGER,
    current_version    TEXT,
    available_version  TEXT,
    changes_url        TEXT
);
INSERT INTO history_with_blocked
    (id, at, container, image, from_digest, to_digest, from_image_id, outcome, reason,
     duration_ms, journal_id, current_version, available_version, changes_url)
    SELECT id, at, container, image, from_digest, to_digest, from_image_id, outcome, reason,
           duration_ms, journal_id, current_version, available_version, changes_url
    FROM history;
DROP TABLE history;
ALTER TABLE history_with_blocked RENAME TO history;
CREATE INDEX history_by_container ON history (container, at);
CREATE INDEX history_by_time ON history (at);
"#,
];

/// Why a state operation failed. Database errors name the file and what was being done; the
/// rest are refusals a caller can branch on.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The state directory could not be created.
    #[error("creating state directory {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// SQLite failed while doing `op` on the database at `path`.
    #[error("state database {}: {op}", path.display())]
    Db {
        /// The database file.
        path: PathBuf,
        /// What was being done, e.g. "advancing a recreate".
        op: &'static str,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer tidewatch (or its version pragma is garbage);
    /// opening it anyway could misread or damage it.
    #[error(
        "state database {} has schema version {found}; this tidewatch understands versions up to \
         {supported}",
        path.display()
    )]
    UnsupportedSchema {
        /// The database file.
        path: PathBuf,
        /// `PRAGMA user_version` as found.
        found: i64,
        /// [`SCHEMA_VERSION`].
        supported: i64,
    },
    /// No journal entry has this id.
    #[error("journal entry {id} does not exist")]
    UnknownJournal {
        /// The id asked for.
        id: JournalId,
    },
    /// The journal entry was already finished and cannot change any more.
    #[error("journal entry {id} is already finished")]
    AlreadyFinished {
        /// The entry.
        id: JournalId,
    },
    /// The journal only moves forward (or into `rolling_back`), and an update is only finished
    /// once its replacement is healthy.
    #[error("journal entry {id} cannot move from {from} to {to}")]
    InvalidStep {
        /// The entry.
        id: JournalId,
        /// Its current step.
        from: Step,
        /// The step that was refused.
        to: Step,
    },
    /// The container already has an unfinished recreate, which recovery must settle first.
    #[error("container {container:?} already has an unfinished recreate (journal entry {id})")]
    RecreateInProgress {
        /// The container.
        container: String,
        /// The unfinished entry.
        id: JournalId,
    },
    /// Another process holds the cycle lock and the caller asked not to wait.
    #[error("another cycle is in progress ({})", lock::describe_holder(*pid, path))]
    Busy {
        /// The lock file.
        path: PathBuf,
        /// The holder's pid as written into the lock file, if it could be read.
        pid: Option<u32>,
    },
    /// The lock file could not be opened, locked or written.
    #[error("cycle lock {}: {op}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}

/// The open database in `state_dir`. See the module docs for how to share it.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) `state_dir/tidewatch.db` and brings its schema up to
    /// [`SCHEMA_VERSION`].
    pub fn open(state_dir: &Path) -> Result<Store, StateError> {
        fs::create_dir_all(state_dir).map_err(|source| StateError::CreateDir {
            path: state_dir.to_path_buf(),
            source,
        })?;
        let path = state_dir.join(DB_FILE);
        let conn = Connection::open(&path).map_err(|source| StateError::Db {
            path: path.clone(),
            op: "opening",
            source,
        })?;
        let mut store = Store { conn, path };
        store.configure()?;
        store.migrate()?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn configure(&self) -> Result<(), StateError> {
        self.read("configuring the connection", |conn| {
            // `tidewatch history` may read while the daemon writes; wait for the writer
            // instead of failing at once.
            conn.busy_timeout(BUSY_TIMEOUT)?;
            // WAL lets readers run during a write, and a crash mid-transaction leaves the last
            // committed state intact.
            let mode: String =
                conn.pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                tracing::warn!(
                    path = %self.path.display(),
                    mode,
                    "state database could not switch to WAL mode; concurrent readers will block"
                );
            }
            // A journal row must be on disk before the engine mutation it announces. WAL's
            // usual `NORMAL` may lose the latest commits on power loss; `FULL` syncs each one.
            conn.pragma_update(None, "synchronous", "FULL")
        })
    }

    fn migrate(&mut self) -> Result<(), StateError> {
        let path = self.path.clone();
        loop {
            // Read the version inside the write transaction so two processes opening a fresh
            // database at once do not both run the same migration.
            let done = self.write("migrating the schema", |tx| {
                let found: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
                let next = match usize::try_from(found) {
                    Ok(next) if next <= MIGRATIONS.len() => next,
                    _ => {
                        return Err(StateError::UnsupportedSchema {
                            path: path.clone(),
                            found,
                            supported: SCHEMA_VERSION,
                        }
                        .into())
                    }
                };
                let Some(sql) = MIGRATIONS.get(next) else {
                    return Ok(true);
                };
                tx.execute_batch(sql)?;
                tx.pragma_update(None, "user_version", found + 1)?;
                Ok(false)
            })?;
            if done {
                return Ok(());
            }
        }
    }

    /// Runs `f` in an IMMEDIATE transaction and commits if it succeeds.
    ///
    /// IMMEDIATE takes the write lock up front: a deferred transaction that reads and then
    /// writes fails with `SQLITE_BUSY` at once, without honouring the busy timeout, when another
    /// process committed in between.
    fn write<T>(
        &mut self,
        op: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, TxError>,
    ) -> Result<T, StateError> {
        let result = (|| {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        })();
        result.map_err(|err| match err {
            TxError::Db(source) => StateError::Db {
                path: self.path.clone(),
                op,
                source,
            },
            TxError::State(err) => err,
        })
    }

    /// Runs `f` on the connection, naming `op` and the file if it fails.
    fn read<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StateError> {
        f(&self.conn).map_err(|source| StateError::Db {
            path: self.path.clone(),
            op,
            source,
        })
    }
}

/// Inside a transaction: either SQLite failed or the operation was refused.
#[derive(Debug)]
enum TxError {
    Db(rusqlite::Error),
    State(StateError),
}

impl From<rusqlite::Error> for TxError {
    fn from(err: rusqlite::Error) -> Self {
        TxError::Db(err)
    }
}

impl From<StateError> for TxError {
    fn from(err: StateError) -> Self {
        TxError::State(err)
    }
}

/// The current time at the precision it is stored with, so a value handed back by a write
/// equals the one a later read returns.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

/// Timestamps are stored as fixed-width RFC 3339 UTC text, so they sort as strings and stay
/// readable in the `sqlite3` shell.
fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn get_ts(row: &Row<'_>, idx: usize) -> rusqlite::Result<DateTime<Utc>> {
    let text: String = row.get(idx)?;
    DateTime::parse_from_rfc3339(&text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|err| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(err)))
}

fn get_opt_ts(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    match row.get_ref(idx)? {
        rusqlite::types::ValueRef::Null => Ok(None),
        _ => get_ts(row, idx).map(Some),
    }
}

/// A stored value this build cannot read back, reported as a conversion failure of its column.
#[derive(Debug)]
struct BadValue(String);

impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadValue {}

fn bad_value(idx: usize, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(BadValue(what)))
}

#[cfg(test)]
fn open_temp() -> (tempfile::TempDir, Store) {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let store = Store::open(dir.path()).expect("open store");
    (dir, store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_version_is_set() {
        let (dir, store) = open_temp();
        assert_eq!(store.path(), dir.path().join(DB_FILE));
        let version: i64 = store
            .conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let mode: String = store
            .conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn reopening_keeps_data_and_does_not_rerun_migrations() {
        let (dir, mut store) = open_temp();
        store.quarantine("web", "sha256:bad", "unhealthy").unwrap();
        drop(store);
        // Re-running the first migration would fail on `CREATE TABLE` of an existing table.
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store
                .is_quarantined("web", "sha256:bad")
                .unwrap()
                .as_deref(),
            Some("unhealthy")
        );
    }

    #[test]
    fn two_handles_on_one_database_see_each_others_writes() {
        // The daemon and a `tidewatch history` run each open their own handle.
        let (dir, mut daemon) = open_temp();
        let cli = Store::open(dir.path()).unwrap();
        daemon.hold("web", "sha256:old", "sha256:new").unwrap();
        assert!(cli.hold_for("web").unwrap().is_some());
    }

    #[test]
    fn database_from_a_newer_tidewatch_is_refused() {
        let (dir, store) = open_temp();
        store
            .conn
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(store);
        let err = Store::open(dir.path()).unwrap_err();
        assert!(
            matches!(err, StateError::UnsupportedSchema { found, .. } if found == SCHEMA_VERSION + 1),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains(DB_FILE), "{message}");
    }

    #[test]
    fn state_dir_is_created_when_missing() {
        let dir = tempfile::TempDir::new().unwrap();
        let nested = dir.path().join("var/lib/tidewatch");
        let store = Store::open(&nested).unwrap();
        assert!(store.path().exists());
    }

    #[test]
    fn unopenable_database_error_names_the_path() {
        let dir = tempfile::TempDir::new().unwrap();
        // A directory where the database file should be cannot be opened as a database.
        fs::create_dir(dir.path().join(DB_FILE)).unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(matches!(err, StateError::Db { .. }), "{err:?}");
        assert!(err.to_string().contains(DB_FILE), "{err}");
    }

    #[test]
    fn timestamps_round_trip_at_millisecond_precision() {
        let at = now();
        let text = ts(at);
        assert_eq!(text.len(), "2024-01-02T03:04:05.678Z".len());
        assert_eq!(DateTime::parse_from_rfc3339(&text).unwrap(), at);
    }
}
