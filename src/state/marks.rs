//! What the agent remembers about a container between cycles: digests quarantined after a
//! failed rollout, holds left by `tidewatch rollback`, and notifications already sent.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::{get_ts, now, ts, StateError, Store};

/// A digest that failed its health gate on a container and is not tried again until the
/// registry offers a different one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineEntry {
    /// The container's name.
    pub container: String,
    /// The quarantined digest.
    pub digest: String,
    /// Why it was quarantined.
    pub reason: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// After `tidewatch rollback`, the container stays on `held_digest` and ignores
/// `skipped_digest` (the one rolled back from) until the registry offers something else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// The container's name.
    pub container: String,
    /// The digest it was rolled back to.
    pub held_digest: String,
    /// The digest it was rolled back from.
    pub skipped_digest: String,
    /// When the hold was placed.
    pub at: DateTime<Utc>,
}

impl Hold {
    /// Whether `remote_digest` is newer than anything the hold knows about, which ends it.
    pub fn is_lifted_by(&self, remote_digest: &str) -> bool {
        remote_digest != self.held_digest && remote_digest != self.skipped_digest
    }
}

fn quarantine_from_row(row: &Row<'_>) -> rusqlite::Result<QuarantineEntry> {
    Ok(QuarantineEntry {
        container: row.get(0)?,
        digest: row.get(1)?,
        reason: row.get(2)?,
        at: get_ts(row, 3)?,
    })
}

fn hold_from_row(row: &Row<'_>) -> rusqlite::Result<Hold> {
    Ok(Hold {
        container: row.get(0)?,
        held_digest: row.get(1)?,
        skipped_digest: row.get(2)?,
        at: get_ts(row, 3)?,
    })
}

impl Store {
    /// Quarantines `digest` for `container`; quarantining it again updates the reason.
    pub fn quarantine(
        &mut self,
        container: &str,
        digest: &str,
        reason: &str,
    ) -> Result<(), StateError> {
        self.write("quarantining a digest", |tx| {
            tx.execute(
                "INSERT INTO quarantine (container, digest, reason, at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (container, digest) DO UPDATE SET reason = ?3, at = ?4",
                params![container, digest, reason, ts(now())],
            )?;
            Ok(())
        })
    }

    /// The reason `digest` is quarantined for `container`, or `None` if it is not.
    pub fn is_quarantined(
        &self,
        container: &str,
        digest: &str,
    ) -> Result<Option<String>, StateError> {
        self.read("checking quarantine", |conn| {
            conn.query_row(
                "SELECT reason FROM quarantine WHERE container = ?1 AND digest = ?2",
                params![container, digest],
                |row| row.get(0),
            )
            .optional()
        })
    }

    /// Lifts every quarantine of `container` except the one on `digest`: once the registry
    /// offers a newer digest, the older failures no longer matter. Returns how many were lifted.
    pub fn lift_other_than(&mut self, container: &str, digest: &str) -> Result<usize, StateError> {
        self.write("lifting quarantine", |tx| {
            Ok(tx.execute(
                "DELETE FROM quarantine WHERE container = ?1 AND digest <> ?2",
                params![container, digest],
            )?)
        })
    }

    /// Quarantined digests, for one container or all, oldest first.
    pub fn quarantined(&self, container: Option<&str>) -> Result<Vec<QuarantineEntry>, StateError> {
        self.read("listing quarantine", |conn| {
            conn.prepare(
                "SELECT container, digest, reason, at FROM quarantine \
                 WHERE (?1 IS NULL OR container = ?1) ORDER BY at, container, digest",
            )?
            .query_map([container], quarantine_from_row)?
            .collect()
        })
    }

    /// Holds `container` on `held_digest`, skipping `skipped_digest`; replaces an earlier hold.
    pub fn hold(
        &mut self,
        container: &str,
        held_digest: &str,
        skipped_digest: &str,
    ) -> Result<(), StateError> {
        self.write("placing a hold", |tx| {
            tx.execute(
                "INSERT INTO holds (container, held_digest, skipped_digest, at) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (container) DO UPDATE SET \
                 held_digest = ?2, skipped_digest = ?3, at = ?4",
                params![container, held_digest, skipped_digest, ts(now())],
            )?;
            Ok(())
        })
    }

    /// The hold on `container`, if any.
    pub fn hold_for(&self, container: &str) -> Result<Option<Hold>, StateError> {
        self.read("reading a hold", |conn| {
            conn.query_row(
                "SELECT container, held_digest, skipped_digest, at FROM holds \
                 WHERE container = ?1",
                [container],
                hold_from_row,
            )
            .optional()
        })
    }

    /// Every hold, oldest first (`tidewatch status`).
    pub fn holds(&self) -> Result<Vec<Hold>, StateError> {
        self.read("listing holds", |conn| {
            conn.prepare(
                "SELECT container, held_digest, skipped_digest, at FROM holds \
                 ORDER BY at, container",
            )?
            .query_map([], hold_from_row)?
            .collect()
        })
    }

    /// Removes the hold on `container`; returns whether there was one.
    pub fn release(&mut self, container: &str) -> Result<bool, StateError> {
        self.write("releasing a hold", |tx| {
            Ok(tx.execute("DELETE FROM holds WHERE container = ?1", [container])? > 0)
        })
    }

    /// Lifts every quarantine of `container` and its rollback hold, so the next cycle may
    /// move it to the digest they held back (`POST /v1/release`, the board's "Release hold").
    /// Returns how many quarantined digests were lifted and whether there was a hold.
    pub fn release_all(&mut self, container: &str) -> Result<(usize, bool), StateError> {
        self.write("releasing quarantine and hold", |tx| {
            let lifted = tx.execute("DELETE FROM quarantine WHERE container = ?1", [container])?;
            let held = tx.execute("DELETE FROM holds WHERE container = ?1", [container])? > 0;
            Ok((lifted, held))
        })
    }

    /// Records that `event` was announced for `container` at `digest`. Returns `true` the first
    /// time and `false` ever after, also across restarts, so each is announced once.
    pub fn mark_notified(
        &mut self,
        container: &str,
        digest: &str,
        event: &str,
    ) -> Result<bool, StateError> {
        self.write("recording a notification", |tx| {
            let inserted = tx.execute(
                "INSERT INTO notified (container, digest, event, at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT DO NOTHING",
                params![container, digest, event, ts(now())],
            )?;
            Ok(inserted == 1)
        })
    }

    /// When `digest` was first seen for `container`, if it was recorded.
    pub fn seen_at(
        &self,
        container: &str,
        digest: &str,
    ) -> Result<Option<DateTime<Utc>>, StateError> {
        self.read("reading when a digest was first seen", |conn| {
            conn.query_row(
                "SELECT first_seen FROM seen WHERE container = ?1 AND digest = ?2",
                params![container, digest],
                |row| get_ts(row, 0),
            )
            .optional()
        })
    }

    /// When `digest` was first seen for `container`: now, the first time it is asked.
    pub fn first_seen(
        &mut self,
        container: &str,
        digest: &str,
    ) -> Result<DateTime<Utc>, StateError> {
        self.write("recording when a digest was first seen", |tx| {
            tx.execute(
                "INSERT INTO seen (container, digest, first_seen) VALUES (?1, ?2, ?3) \
                 ON CONFLICT DO NOTHING",
                params![container, digest, ts(now())],
            )?;
            Ok(tx.query_row(
                "SELECT first_seen FROM seen WHERE container = ?1 AND digest = ?2",
                params![container, digest],
                |row| get_ts(row, 0),
            )?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::open_temp;
    use super::*;

    #[test]
    fn release_all_lifts_every_quarantine_and_the_hold_of_one_container_only() {
        let (_dir, mut store) = open_temp();
        store.quarantine("web", "sha256:bad1", "exited").unwrap();
        store.quarantine("web", "sha256:bad2", "unhealthy").unwrap();
        store.quarantine("db", "sha256:bad3", "exited").unwrap();
        store.hold("web", "sha256:old", "sha256:bad2").unwrap();
        store.hold("db", "sha256:old", "sha256:bad3").unwrap();
        assert_eq!(store.release_all("web").unwrap(), (2, true));
        assert!(store.quarantined(Some("web")).unwrap().is_empty());
        assert_eq!(store.hold_for("web").unwrap(), None);
        assert_eq!(store.quarantined(Some("db")).unwrap().len(), 1);
        assert!(store.hold_for("db").unwrap().is_some());
        assert_eq!(store.release_all("web").unwrap(), (0, false));
    }

    #[test]
    fn newer_digest_lifts_quarantine() {
        let (_dir, mut store) = open_temp();
        store
            .quarantine("web", "sha256:bad1", "health check failed")
            .unwrap();
        store
            .quarantine("web", "sha256:bad2", "exited with code 1")
            .unwrap();
        assert_eq!(
            store
                .is_quarantined("web", "sha256:bad1")
                .unwrap()
                .as_deref(),
            Some("health check failed")
        );

        // The registry now offers bad2 again: bad1 is history, bad2 stays quarantined.
        assert_eq!(store.lift_other_than("web", "sha256:bad2").unwrap(), 1);
        assert_eq!(store.is_quarantined("web", "sha256:bad1").unwrap(), None);
        assert!(store
            .is_quarantined("web", "sha256:bad2")
            .unwrap()
            .is_some());

        // A genuinely newer digest lifts everything.
        assert_eq!(store.lift_other_than("web", "sha256:fixed").unwrap(), 1);
        assert!(store.quarantined(Some("web")).unwrap().is_empty());
    }

    #[test]
    fn quarantine_is_per_container() {
        let (_dir, mut store) = open_temp();
        store.quarantine("web", "sha256:bad", "unhealthy").unwrap();
        store
            .quarantine("worker", "sha256:bad", "unhealthy")
            .unwrap();
        assert_eq!(store.is_quarantined("api", "sha256:bad").unwrap(), None);

        store.lift_other_than("web", "sha256:new").unwrap();
        assert_eq!(store.is_quarantined("web", "sha256:bad").unwrap(), None);
        assert!(store
            .is_quarantined("worker", "sha256:bad")
            .unwrap()
            .is_some());
        let all = store.quarantined(None).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].container, "worker");
    }

    #[test]
    fn quarantining_again_updates_the_reason() {
        let (_dir, mut store) = open_temp();
        store.quarantine("web", "sha256:bad", "first").unwrap();
        store.quarantine("web", "sha256:bad", "second").unwrap();
        assert_eq!(
            store
                .is_quarantined("web", "sha256:bad")
                .unwrap()
                .as_deref(),
            Some("second")
        );
        assert_eq!(store.quarantined(None).unwrap().len(), 1);
    }

    #[test]
    fn hold_stays_until_a_newer_digest_appears() {
        let (_dir, mut store) = open_temp();
        assert_eq!(store.hold_for("web").unwrap(), None);
        store.hold("web", "sha256:old", "sha256:new").unwrap();

        let hold = store.hold_for("web").unwrap().unwrap();
        assert_eq!(hold.held_digest, "sha256:old");
        assert_eq!(hold.skipped_digest, "sha256:new");
        assert!(!hold.is_lifted_by("sha256:new"));
        assert!(!hold.is_lifted_by("sha256:old"));
        assert!(hold.is_lifted_by("sha256:newer"));

        assert!(store.release("web").unwrap());
        assert_eq!(store.hold_for("web").unwrap(), None);
        assert!(!store.release("web").unwrap());
    }

    #[test]
    fn second_hold_replaces_the_first() {
        let (_dir, mut store) = open_temp();
        store.hold("web", "sha256:a", "sha256:b").unwrap();
        store.hold("web", "sha256:b", "sha256:c").unwrap();
        let hold = store.hold_for("web").unwrap().unwrap();
        assert_eq!(
            (hold.held_digest.as_str(), hold.skipped_digest.as_str()),
            ("sha256:b", "sha256:c")
        );
    }

    #[test]
    fn holds_lists_every_container_held() {
        let (_dir, mut store) = open_temp();
        assert!(store.holds().unwrap().is_empty());
        store.hold("web", "sha256:a", "sha256:b").unwrap();
        store.hold("db", "sha256:c", "sha256:d").unwrap();
        let mut held: Vec<String> = store
            .holds()
            .unwrap()
            .into_iter()
            .map(|h| h.container)
            .collect();
        held.sort();
        assert_eq!(held, ["db", "web"]);
    }

    #[test]
    fn notified_once_across_reopen() {
        let (dir, mut store) = open_temp();
        assert!(store
            .mark_notified("web", "sha256:new", "update_available")
            .unwrap());
        assert!(!store
            .mark_notified("web", "sha256:new", "update_available")
            .unwrap());
        // A different event, digest or container is a different announcement.
        assert!(store.mark_notified("web", "sha256:new", "updated").unwrap());
        assert!(store
            .mark_notified("web", "sha256:newer", "update_available")
            .unwrap());
        assert!(store
            .mark_notified("api", "sha256:new", "update_available")
            .unwrap());
        drop(store);

        let mut store = Store::open(dir.path()).unwrap();
        assert!(!store
            .mark_notified("web", "sha256:new", "update_available")
            .unwrap());
        assert!(!store.mark_notified("web", "sha256:new", "updated").unwrap());
    }
}
