//! One repository's write-back in a cycle: sync the working copy, scan the matched files, ask
//! the registry once per unique reference, decide ([`super::plan`]), and commit and push the
//! pins (or, in a dry run, show their diff and write nothing). A repository that cannot be
//! fetched or pushed is one error row naming it; a bad file is its own rows' error.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use super::checkout::{Checkout, Published};
use super::git::GitError;
use super::plan::{
    decide, decide_except, error_row, message, tracked, wanted, Decision, Lookups, Moves, Pin,
    ScannedFile,
};
use crate::config::{GitopsConfig, ServiceConfig, VerifyRule, WatchConfig};
use crate::image_ref::ImageRef;
use crate::plan::detect::{CheckRow, Detection, Status};
use crate::plan::observed::Platform;
use crate::plan::track::{self, Track};
use crate::registry::RegistryClient;
use crate::release_notes;

/// What one repository's cycle did.
#[derive(Debug, Clone)]
pub struct RepoReport {
    /// The repository without credentials, and its branch.
    pub repo: String,
    /// Its rows; one error row naming the repository when it could not be fetched or pushed.
    pub rows: Vec<CheckRow>,
    /// The commit pushed, when one was.
    pub published: Option<Published>,
    /// In a dry run: the diff that would have been committed (empty: none).
    pub diff: Option<String>,
    /// The message of the commit (made or, in a dry run, that would have been).
    pub message: Option<String>,
    /// The images pinned (committed, or in a dry run or check, that would be).
    pub pins: Vec<Pin>,
}

/// What the cycle's settings say about rows.
pub struct Settings<'a> {
    /// `[watch]`: the default policy.
    pub watch: &'a WatchConfig,
    /// `[[service]]`: policies by row name.
    pub services: &'a BTreeMap<String, ServiceConfig>,
    /// `[agent] state_dir`.
    pub state_dir: &'a Path,
    /// Where the new images' labels are read for release-note links and their signatures
    /// checked (`None`: neither).
    pub registry: Option<&'a RegistryClient>,
    /// `[[verify]]`: a pin's new digest is signature-checked as a container's update is.
    pub verify: &'a [VerifyRule],
}

/// Reads a synced working copy's matched files; a file that cannot be read is its own error.
async fn scanned(checkout: &Checkout) -> Result<Vec<ScannedFile>, GitError> {
    Ok(checkout
        .files()
        .await?
        .iter()
        .map(|path| match checkout.read(path) {
            Ok(text) => ScannedFile::scan(path, text),
            Err(e) => ScannedFile {
                path: path.clone(),
                text: String::new(),
                found: Err(super::yaml::ScanError {
                    path: path.clone(),
                    line: 1,
                    col: 1,
                    what: e.to_string(),
                }),
            },
        })
        .collect())
}

/// A repository's working copy, synced, and its matched files.
async fn synced(
    config: &GitopsConfig,
    settings: &Settings<'_>,
) -> Result<(Checkout, Vec<ScannedFile>), GitError> {
    let checkout = Checkout::new(config, settings.state_dir);
    checkout.sync().await?;
    let files = scanned(&checkout).await?;
    Ok((checkout, files))
}

/// Where each tag policy moves its images: each repository's tags listed once; `semver` takes
/// the highest version (never lower than the current tag), `regex` the newest image by
/// creation among the matching tags (as for containers, asked for the default platform).
pub async fn moves(registry: &RegistryClient, tracked: BTreeSet<(ImageRef, String)>) -> Moves {
    let mut tag_lists: HashMap<String, Result<Vec<String>, String>> = HashMap::new();
    let mut moves = Moves::new();
    for (reference, label) in tracked {
        let track = match track::parse(&label) {
            Ok(track) => track,
            Err(e) => {
                moves.insert((reference, label), Err(e));
                continue;
            }
        };
        let key = reference.name();
        if !tag_lists.contains_key(&key) {
            let listed = registry
                .list_tags(&reference)
                .await
                .map_err(|e| format!("listing tags: {e}"));
            tag_lists.insert(key.clone(), listed);
        }
        let tags = match &tag_lists[&key] {
            Ok(tags) => tags,
            Err(e) => {
                moves.insert((reference, label), Err(e.clone()));
                continue;
            }
        };
        let chosen = match &track {
            Track::Semver(range) => {
                let current = reference.tag().and_then(track::tag_version);
                track::newest_semver(tags, range.as_ref())
                    .filter(|best| match (track::tag_version(best), &current) {
                        (Some(best), Some(current)) => best > *current,
                        _ => true,
                    })
                    .map(str::to_string)
            }
            Track::Regex(pattern) => {
                let matching = track::matching(tags, pattern);
                registry
                    .newest_by_creation(&reference, &machine_platform(), matching)
                    .await
            }
            Track::Digest => None,
        };
        let moved = chosen.filter(|t| Some(t.as_str()) != reference.tag());
        moves.insert((reference, label), Ok(moved));
    }
    moves
}

/// Asks the registry for `refs`, one `HEAD` each.
pub async fn lookups(registry: &RegistryClient, refs: BTreeSet<ImageRef>) -> Lookups {
    registry
        .resolve_all(refs)
        .await
        .into_iter()
        .map(|(r, m)| (r, m.map(|m| m.digest).map_err(|e| e.to_string())))
        .collect()
}

/// What a cycle does with a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Rows only (`tidewatch check`): nothing written.
    Check,
    /// Rows and the diff a commit would have (`update --dry-run`): nothing committed.
    DryRun,
    /// Rows, one commit and a push.
    Apply,
}

/// The whole write-back of one repository. `known` holds what the cycle already asked the
/// registries (for the containers): only the references it lacks are asked, one `HEAD` each.
pub async fn run(
    config: &GitopsConfig,
    settings: &Settings<'_>,
    registry: &RegistryClient,
    known: &Lookups,
    mode: Mode,
) -> RepoReport {
    let (checkout, files) = match synced(config, settings).await {
        Ok(found) => found,
        Err(e) => return failed(config, &e),
    };
    let moves = moves(registry, tracked(&files, settings.watch, settings.services)).await;
    let refs = wanted(&files, &moves, settings.watch, settings.services);
    let (mut lookups, missing): (Lookups, BTreeSet<ImageRef>) = {
        let mut have = Lookups::new();
        let mut missing = BTreeSet::new();
        for r in refs {
            match known.get(&r) {
                Some(answer) => {
                    have.insert(r, answer.clone());
                }
                None => {
                    missing.insert(r);
                }
            }
        }
        (have, missing)
    };
    lookups.extend(self::lookups(registry, missing).await);
    if mode == Mode::Check {
        let decision = decided(&files, &lookups, &moves, settings).await;
        return RepoReport {
            repo: config.describe(),
            message: (!decision.pins.is_empty()).then(|| message(config, &decision.pins)),
            pins: decision.pins,
            rows: decision.rows,
            published: None,
            diff: None,
        };
    }
    write_back(
        config,
        settings,
        &checkout,
        &files,
        &lookups,
        &moves,
        mode == Mode::DryRun,
    )
    .await
}

/// Decides on `files` (read from `checkout`'s current tip) and commits the pins; after a
/// rejected push the files are read again on the new tip and decided with the same lookups.
pub async fn write_back(
    config: &GitopsConfig,
    settings: &Settings<'_>,
    checkout: &Checkout,
    files: &[ScannedFile],
    lookups: &Lookups,
    moves: &Moves,
    dry_run: bool,
) -> RepoReport {
    let first = decided(files, lookups, moves, settings).await;
    let mut report = RepoReport {
        repo: config.describe(),
        rows: first.rows.clone(),
        published: None,
        diff: None,
        message: (!first.pins.is_empty()).then(|| message(config, &first.pins)),
        pins: first.pins.clone(),
    };
    if dry_run {
        let diff = match write(checkout, &first) {
            Ok(()) => checkout.diff().await,
            Err(e) => Err(e),
        };
        // Nothing of a dry run stays in the working copy.
        let reset = checkout.discard().await;
        match diff.and_then(|d| reset.map(|()| d)) {
            Ok(diff) => report.diff = Some(diff),
            Err(e) => return failed(config, &e),
        }
        return report;
    }
    let mut first_decision: Option<Decision> = Some(first);
    let published = checkout
        .publish(async |c| {
            // The first try uses the files already read; a retry reads the new tip's.
            let decision = match first_decision.take() {
                Some(d) => d,
                None => {
                    let files = scanned(c).await?;
                    decided(&files, lookups, moves, settings).await
                }
            };
            write(c, &decision)?;
            let text = (!decision.pins.is_empty()).then(|| message(config, &decision.pins));
            report.rows = decision.rows;
            report.pins = decision.pins;
            report.message.clone_from(&text);
            Ok::<_, GitError>(text)
        })
        .await;
    match published {
        Ok(Ok(p)) => {
            report.published = Some(p);
            report
        }
        Ok(Err(e)) | Err(e) => failed(config, &e),
    }
}

/// [`decide`], with the release-note link of each pin where its images' labels give one.
async fn decided(
    files: &[ScannedFile],
    lookups: &Lookups,
    moves: &Moves,
    settings: &Settings<'_>,
) -> Decision {
    let decision = decide(files, lookups, moves, settings.watch, settings.services);
    let Some(registry) = settings.registry else {
        return decision;
    };
    let mut decision = if settings.verify.is_empty() {
        decision
    } else {
        signed_only(decision, files, lookups, moves, settings, registry).await
    };
    let platform = machine_platform();
    let mut read: HashMap<(String, String), BTreeMap<String, String>> = HashMap::new();
    let mut labels_of = async |reference: &ImageRef, digest: &str| {
        let key = (reference.name(), digest.to_string());
        if let Some(found) = read.get(&key) {
            return found.clone();
        }
        let found = match registry.image_config(reference, digest, &platform).await {
            Ok(config) => config.map(|c| c.labels.clone()).unwrap_or_default(),
            Err(e) => {
                tracing::warn!(%reference, digest, "release notes: reading the image's labels: {e}");
                BTreeMap::new()
            }
        };
        read.insert(key, found.clone());
        found
    };
    for pin in &mut decision.pins {
        let Ok(reference) = ImageRef::parse(&pin.image) else {
            continue;
        };
        let new = labels_of(&reference, &pin.new).await;
        let old = match &pin.old {
            Some(old) => labels_of(&reference, old).await,
            None => BTreeMap::new(),
        };
        let notes = release_notes::derive(&old, &new, None);
        pin.link.clone_from(&notes.changes_url);
        if let Some(row) = decision.rows.iter_mut().find(|r| r.container == pin.row) {
            row.notes = notes;
        }
    }
    decision
}

/// The `[[verify]]` gate of the pins: what git records is deployed, so a digest a rule refuses
/// is not pinned (its row an error saying which rule and why, as a container's would be) and
/// one let through in `warn` mode says so. Verified digests are remembered by the registry
/// client; refused ones are asked about again next cycle, as for containers.
async fn signed_only(
    decision: Decision,
    files: &[ScannedFile],
    lookups: &Lookups,
    moves: &Moves,
    settings: &Settings<'_>,
    registry: &RegistryClient,
) -> Decision {
    let mut checked: Vec<Detection> = decision
        .pins
        .iter()
        .filter_map(|pin| {
            let row = decision.rows.iter().find(|r| r.container == pin.row)?;
            let new_image = pin.tag.as_ref().and_then(|tag| {
                ImageRef::parse(&pin.image)
                    .ok()
                    .map(|r| r.with_tag(tag).to_string())
            });
            Some(Detection {
                name: pin.row.clone(),
                row: row.clone(),
                new_image,
            })
        })
        .collect();
    registry.verify_updates(&mut checked, settings.verify).await;
    let held: BTreeSet<String> = checked
        .iter()
        .filter(|d| d.row.status == Status::Error)
        .map(|d| d.name.clone())
        .collect();
    let mut decision = if held.is_empty() {
        decision
    } else {
        decide_except(
            files,
            lookups,
            moves,
            settings.watch,
            settings.services,
            &held,
        )
    };
    for d in checked {
        if let Some(row) = decision.rows.iter_mut().find(|r| r.container == d.name) {
            *row = d.row;
        }
    }
    decision
}

/// The platform of this machine, for the images' configs of a multi-arch index (the files may
/// be deployed elsewhere; a label is the same on every platform of one build as a rule).
fn machine_platform() -> Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    Platform {
        os: "linux".into(),
        architecture: architecture.into(),
        variant: None,
    }
}

/// Writes a decision's edits into the working copy.
fn write(checkout: &Checkout, decision: &Decision) -> Result<(), GitError> {
    for (path, text) in &decision.edits {
        checkout.write(path, text)?;
    }
    Ok(())
}

/// The one error row of a repository that could not be fetched or pushed.
fn failed(config: &GitopsConfig, e: &GitError) -> RepoReport {
    RepoReport {
        repo: config.describe(),
        rows: vec![error_row(&config.repo.to_string(), e.to_string())],
        published: None,
        diff: None,
        message: None,
        pins: Vec::new(),
    }
}
