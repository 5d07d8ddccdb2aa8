//! Detection: is each container in scope, and does it run what its reference points to now?
//! Pure: the engine's observations and the registry's answers come in as values.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{Policy, ServiceConfig, VerifyMode, WatchConfig};
use crate::image_ref::{repo_digest_for, ImageRef};
use crate::labels;
use crate::plan::observed::Platform;
use crate::plan::remote::{IndexEntry, RemoteManifest};
use crate::release_notes::ReleaseNotes;

/// A container's status in `check` output. The names are part of the JSON contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Runs what its reference points to.
    UpToDate,
    /// The reference points to a newer digest.
    UpdateAvailable,
    /// Cannot tell (e.g. a locally built image with no repo digest).
    Unknown,
    /// Excluded by policy (label, pinned digest).
    Skipped,
    /// Something failed for this container; `detail` says what.
    Error,
}

impl Status {
    /// The contract name (`up_to_date`...).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::UpToDate => "up_to_date",
            Status::UpdateAvailable => "update_available",
            Status::Unknown => "unknown",
            Status::Skipped => "skipped",
            Status::Error => "error",
        }
    }
}

/// One row of `check` output. Field names are part of the JSON contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRow {
    /// Container name.
    pub container: String,
    /// The image reference the container was created with.
    pub image: String,
    /// The digest the container runs, for the reference's repository.
    pub current_digest: Option<String>,
    /// The digest the reference points to on the registry.
    pub available_digest: Option<String>,
    /// The verdict.
    pub status: Status,
    /// Why, when the status needs explaining.
    pub detail: Option<String>,
    /// For an update: the versions and where to read what changed (each field absent when
    /// unknown).
    #[serde(flatten)]
    pub notes: ReleaseNotes,
    /// For an update that a `[[verify]]` rule covers: whether its new digest is signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
}

/// What the signature check of an available digest found. The names are part of the JSON
/// contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signature {
    /// Signed as its rule says.
    Verified,
    /// Not verified, and let through: the rule is in `warn` mode.
    Unverified,
    /// Not verified, so not pulled: the row is an error (not quarantined: the next cycle
    /// looks again).
    Rejected,
}

impl Signature {
    /// The contract name (`verified`...).
    pub fn as_str(self) -> &'static str {
        match self {
            Signature::Verified => "verified",
            Signature::Unverified => "unverified",
            Signature::Rejected => "rejected",
        }
    }
}

/// Marks an update's row with its signature check by `rule` (as messages name it): verified
/// rows are unchanged but for the mark; a failure (`why`) makes the row an error in `enforce`
/// mode, so the digest is not pulled, and says so loudly in `warn` mode.
pub fn signature_checked(
    row: &mut CheckRow,
    rule: &str,
    mode: VerifyMode,
    outcome: Result<(), String>,
) {
    let Err(why) = outcome else {
        row.signature = Some(Signature::Verified);
        return;
    };
    match mode {
        VerifyMode::Enforce => {
            row.signature = Some(Signature::Rejected);
            row.status = Status::Error;
            row.detail = Some(format!("blocked by {rule}: {why}"));
        }
        VerifyMode::Warn => {
            row.signature = Some(Signature::Unverified);
            let note = format!("UNVERIFIED ({rule} is in warn mode): {why}");
            row.detail = Some(match row.detail.take() {
                Some(d) => format!("{note}; {d}"),
                None => note,
            });
        }
    }
}

/// Whether this agent looks after a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Eligibility {
    /// Another scope's container: not listed at all.
    OutOfScope,
    /// In scope but excluded, with the reason.
    Excluded(String),
    /// Watched.
    Watched,
}

/// Applies `[watch]` and the container's labels.
pub fn eligibility(
    container_labels: &BTreeMap<String, String>,
    watch: &WatchConfig,
) -> Eligibility {
    let scope = labels::get(container_labels, labels::SCOPE, labels::watchtower::SCOPE)
        .filter(|s| !s.is_empty());
    if scope != watch.scope.as_deref() {
        return Eligibility::OutOfScope;
    }
    let enable = labels::get(container_labels, labels::ENABLE, labels::watchtower::ENABLE)
        .map(|v| v.to_ascii_lowercase());
    match enable.as_deref() {
        Some("false") => Eligibility::Excluded(format!("label {}=false", labels::ENABLE)),
        Some("true") => Eligibility::Watched,
        _ if watch.label_enable => Eligibility::Excluded(format!(
            "label_enable is set and the container has no {}=true",
            labels::ENABLE
        )),
        _ => Eligibility::Watched,
    }
}

/// The policy of container `name`: `[[service]] policy`, else its `tidewatch.policy` label (or
/// Watchtower's `monitor-only=true`, which is `notify`), else `[watch] policy`. An unreadable
/// label value is reported and the stricter `notify` applies.
pub fn policy_for(
    name: &str,
    container_labels: &BTreeMap<String, String>,
    watch: &WatchConfig,
    services: &BTreeMap<String, ServiceConfig>,
) -> Policy {
    if let Some(p) = services.get(name).and_then(|s| s.policy) {
        return p;
    }
    if let Some(value) = container_labels.get(labels::POLICY) {
        return Policy::parse(value).unwrap_or_else(|| {
            tracing::warn!(
                container = name,
                value,
                "unknown {} label; treating it as notify",
                labels::POLICY
            );
            Policy::Notify
        });
    }
    if container_labels
        .get(labels::watchtower::MONITOR_ONLY)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    {
        return Policy::Notify;
    }
    watch.policy
}

/// How the engine stores images, which decides what an image's digests mean.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ImageStore {
    /// The classic graph-driver store (overlay2...): an image's id is its config digest, and
    /// `RepoDigests` records the manifest digests it was pulled by (or pushed as), whatever
    /// happens to its tags later.
    #[default]
    Classic,
    /// The containerd image store (Docker 29's default for new installs): an image's id *is*
    /// the digest of its manifest or index, and `RepoDigests` is made up from the names the
    /// image has *now*: empty once its tag moved to another image, and present for a local
    /// build that was never pushed.
    Containerd,
}

/// The image a container runs, as the engine reports it.
#[derive(Debug, Clone, Copy)]
pub struct RunningImage<'a> {
    /// The image id (`sha256:...`).
    pub id: &'a str,
    /// The image's `RepoDigests` (`repo@sha256:...`).
    pub repo_digests: &'a [String],
    /// The store the engine keeps it in.
    pub store: ImageStore,
}

/// What detection needs to know of a container before asking a registry.
#[derive(Debug, Clone)]
pub enum Target {
    /// Settled without a registry: skipped, unknown or an error.
    Settled(CheckRow),
    /// Ask the registry for `reference` and compare with `current` (the container's image's
    /// repo digests for that repository).
    Remote {
        /// The normalised reference.
        reference: ImageRef,
        /// Digests the running image is known by in that repository.
        current: Vec<String>,
        /// A digest the registry must be asked about before an update is concluded: on the
        /// containerd store the running digest is the image id, which a local build has too,
        /// so when it differs from the tag's, only the registry can tell a pulled image (it
        /// holds that digest) from a local one (it does not). `None` when the engine recorded
        /// where the digests came from.
        confirm: Option<String>,
    },
}

/// Decides, without I/O, whether a watched container needs a registry lookup. `aliases` gives
/// the repository names under which the image may record digests of a reference (the origin,
/// and its pull-through mirrors).
pub fn target(
    container: &str,
    image: &str,
    running: &RunningImage<'_>,
    aliases: &dyn Fn(&ImageRef) -> Vec<String>,
) -> Target {
    let row = |status, detail: String| {
        Target::Settled(CheckRow {
            container: container.to_string(),
            image: image.to_string(),
            current_digest: None,
            available_digest: None,
            status,
            detail: Some(detail),
            notes: Default::default(),
            signature: None,
        })
    };
    let reference = match ImageRef::parse(image) {
        Ok(r) => r,
        // Containers created from an image id (`docker run sha256:...`) have no reference.
        Err(_) if image.starts_with("sha256:") || image.chars().all(|c| c.is_ascii_hexdigit()) => {
            return row(
                Status::Unknown,
                "created from an image id, not a reference".into(),
            )
        }
        Err(e) => return row(Status::Error, e.to_string()),
    };
    if reference.is_pinned() {
        return row(
            Status::Skipped,
            "pinned to a digest: nothing to follow".into(),
        );
    }
    if running.store == ImageStore::Containerd && is_digest(running.id) {
        // Every repo digest this store reports is `<name>@<image id>`: the id says all of it,
        // and is there even when the image has lost its tag.
        return Target::Remote {
            reference,
            current: vec![running.id.to_string()],
            confirm: Some(running.id.to_string()),
        };
    }
    let mut current: Vec<String> = Vec::new();
    for name in aliases(&reference) {
        for d in repo_digest_for(running.repo_digests, &name) {
            if !current.iter().any(|c| c == d) {
                current.push(d.to_string());
            }
        }
    }
    if current.is_empty() {
        return row(
            Status::Unknown,
            format!(
                "the image has no digest from {} (built locally or loaded?)",
                reference.name()
            ),
        );
    }
    Target::Remote {
        reference,
        current,
        confirm: None,
    }
}

/// Whether `text` is a `sha256:` digest (an image id on the containerd store is one).
fn is_digest(text: &str) -> bool {
    text.strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// What the registry said of a digest that [`Target::Remote::confirm`] asked about, when the
/// tag points elsewhere.
pub fn confirmed(row: CheckRow, registry_has_it: bool, repository: &str) -> CheckRow {
    if registry_has_it || row.status != Status::UpdateAvailable {
        return row;
    }
    CheckRow {
        status: Status::Unknown,
        // The digest is the local build's own, not one of the repository's.
        current_digest: None,
        detail: Some(format!(
            "the image is not in {repository} (built locally, or pushed elsewhere?): \
             left alone"
        )),
        ..row
    }
}

/// The outcome of comparing a container's digests with the registry's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    /// Same content; `current` is the digest that matched (possibly a platform manifest).
    UpToDate {
        /// The container's matching digest.
        current: String,
        /// How it matched, when not directly.
        detail: Option<String>,
    },
    /// The registry has something else.
    UpdateAvailable {
        /// The container's digest.
        current: String,
    },
    /// The registry's digest is an index; its entries are needed to decide.
    NeedIndex,
}

/// Compares without false positives: a direct digest match, or, when the tag names a multi-arch
/// index, the index's manifest for the container's platform.
pub fn compare(
    current: &[String],
    platform: &Platform,
    remote: &RemoteManifest,
    index: Option<&[IndexEntry]>,
) -> Comparison {
    if let Some(c) = current.iter().find(|c| **c == remote.digest) {
        return Comparison::UpToDate {
            current: c.clone(),
            detail: None,
        };
    }
    let first = current.first().cloned().unwrap_or_default();
    if !remote.is_index() {
        return Comparison::UpdateAvailable { current: first };
    }
    let Some(entries) = index else {
        return Comparison::NeedIndex;
    };
    let for_platform = entries.iter().find(|e| platform_matches(e, platform));
    match for_platform {
        Some(e) if current.contains(&e.digest) => Comparison::UpToDate {
            current: e.digest.clone(),
            detail: Some(format!(
                "runs the {} manifest of the index",
                platform_name(platform)
            )),
        },
        _ => Comparison::UpdateAvailable { current: first },
    }
}

/// The manifest of an index that serves `platform`.
pub fn entry_for<'a>(entries: &'a [IndexEntry], platform: &Platform) -> Option<&'a IndexEntry> {
    entries.iter().find(|e| platform_matches(e, platform))
}

fn platform_matches(entry: &IndexEntry, platform: &Platform) -> bool {
    entry.os == platform.os
        && entry.architecture == platform.architecture
        && match (&entry.variant, &platform.variant) {
            (Some(a), Some(b)) => a == b,
            // Engines often omit the variant for the default one (arm64 is v8).
            _ => true,
        }
}

fn platform_name(p: &Platform) -> String {
    match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    }
}

mod verdict;

pub use verdict::{
    asked_reference, count_by_status, missing_rows, targets, verdicts, Detection, Lookup, Pending,
    RemoteFailure, Remotes,
};

#[cfg(test)]
mod tests;
