//! What the journal and the history both speak of: how a recreate ended, and which journal
//! entry a history row came from. Kept apart so that the history does not depend on the
//! journal, which writes history rows when it closes an entry.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Identifies one recreate in the journal. Ids are never reused, so they are safe to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JournalId(pub i64);

impl fmt::Display for JournalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How a recreate ended; also the `outcome` of its history row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The replacement is healthy and kept.
    Updated,
    /// The container runs the older image again: after a failed health gate, or after
    /// `tidewatch rollback`.
    RolledBack,
    /// It ended some other way; the reason says how.
    Failed,
    /// Never started: the new digest has no signature its `[[verify]]` rule trusts. A history
    /// row only (once per container and digest), never a recreate's outcome.
    Blocked,
}

impl Outcome {
    /// The stored name: `updated`, `rolled_back`, `failed` or `blocked`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Updated => "updated",
            Outcome::RolledBack => "rolled_back",
            Outcome::Failed => "failed",
            Outcome::Blocked => "blocked",
        }
    }

    pub(super) fn parse(text: &str) -> Option<Outcome> {
        match text {
            "updated" => Some(Outcome::Updated),
            "rolled_back" => Some(Outcome::RolledBack),
            "failed" => Some(Outcome::Failed),
            "blocked" => Some(Outcome::Blocked),
            _ => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
