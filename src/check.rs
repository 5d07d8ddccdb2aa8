//! One detection pass: inventory -> resolve -> compare. Changes nothing.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::config::{Config, Policy};
use crate::engine::{Engine, EngineError, EngineFacts, Kind, Observed, SwarmRole};
use crate::image_ref::ImageRef;
use crate::plan::detect::{
    self, CheckRow, Comparison, Eligibility, ImageStore, RunningImage, Status, Target,
};
use crate::plan::track::{self, Track};
use crate::registry::{RegistryClient, RegistryError, RemoteManifest};

/// A watched container with its verdict, and what the verdict rests on.
#[derive(Debug, Clone)]
pub struct Detection {
    /// The container as observed.
    pub observed: Observed,
    /// The verdict as `check` prints it.
    pub row: CheckRow,
    /// The normalised reference, when the container has one that could be asked for.
    pub reference: Option<ImageRef>,
    /// With tag tracking, the reference of the newer tag the container should move to.
    pub new_image: Option<String>,
}

/// The containers on the engine and, on a Swarm manager, its services, with the engine's
/// facts (Swarm role, image store). A service that shares its name with a container is
/// reported, not updated: the plan and the dependency graph know both by name.
pub async fn observe_all(
    engine: &Engine,
    include_stopped: bool,
) -> Result<(Vec<Observed>, EngineFacts), EngineError> {
    let mut observed = engine.inventory(include_stopped).await?;
    let facts = engine.facts().await?;
    if facts.role == SwarmRole::Manager {
        let mut services = engine.services(&facts.platform).await?;
        for s in &mut services {
            if observed.iter().any(|c| c.name == s.name) {
                s.problem = Some(format!(
                    "a container is also named {:?}: rename one of them to have the service \
                     updated",
                    s.name
                ));
            }
        }
        observed.extend(services);
    }
    Ok((observed, facts))
}

/// What a Swarm worker's `check` says about services.
pub const WORKER_NOTE: &str = "this node is a swarm worker: services (and their task \
    containers) are updated by the tidewatch agent on a swarm manager";

/// Checks the containers in scope (only `names` when not empty) and, on a Swarm manager, the
/// services in scope. One registry or container failing makes only its rows `error`; only an
/// unreachable engine fails the whole pass. Also returns this node's Swarm role.
pub async fn detect(
    engine: &Engine,
    registry: &RegistryClient,
    config: &Arc<Config>,
    names: &[String],
) -> Result<(Vec<Detection>, SwarmRole), EngineError> {
    let (observed, facts) = observe_all(engine, config.watch.include_stopped).await?;
    let role = facts.role;
    if role == SwarmRole::Worker {
        tracing::info!("{WORKER_NOTE}");
    }
    let wanted: BTreeSet<&str> = names.iter().map(|n| n.trim_start_matches('/')).collect();

    let mut pending: Vec<(Observed, Target)> = Vec::new();
    for o in observed {
        if !wanted.is_empty() && !wanted.contains(o.name.as_str()) {
            continue;
        }
        let target = match detect::eligibility(&o.labels, &config.watch) {
            Eligibility::OutOfScope => continue,
            Eligibility::Excluded(reason) => Target::Settled(CheckRow {
                container: o.name.clone(),
                image: o.image.clone(),
                current_digest: None,
                available_digest: None,
                status: Status::Skipped,
                detail: Some(reason),
            }),
            Eligibility::Watched
                if detect::policy_for(&o.name, &o.labels, &config.watch, &config.services)
                    == Policy::Ignore =>
            {
                Target::Settled(CheckRow {
                    container: o.name.clone(),
                    image: o.image.clone(),
                    current_digest: None,
                    available_digest: None,
                    status: Status::Skipped,
                    detail: Some("policy ignore".into()),
                })
            }
            Eligibility::Watched => match &o.problem {
                Some(problem) => Target::Settled(CheckRow {
                    container: o.name.clone(),
                    image: o.image.clone(),
                    current_digest: None,
                    available_digest: None,
                    status: Status::Error,
                    detail: Some(problem.clone()),
                }),
                None if o.kind == Kind::Service && o.repo_digests.is_empty() => {
                    service_target(&o, registry)
                }
                None => detect::target(
                    &o.name,
                    &o.image,
                    &RunningImage {
                        id: &o.image_id,
                        repo_digests: &o.repo_digests,
                        store: facts.image_store,
                    },
                    &|r| registry.aliases(r),
                ),
            },
        };
        pending.push((o, target));
    }

    let tracked = retarget_tracked(registry, &mut pending).await;

    let refs: BTreeSet<ImageRef> = pending
        .iter()
        .filter_map(|(_, t)| match t {
            Target::Remote { reference, .. } => Some(reference.clone()),
            Target::Settled(_) => None,
        })
        .collect();
    let remote = registry.resolve_all(refs).await;

    // Digests asked about for `Target::Remote::confirm`, by repository and digest: once each.
    let mut confirmations: HashMap<(String, String), Result<bool, RegistryError>> = HashMap::new();
    let mut out = Vec::with_capacity(pending.len());
    for (o, target) in pending {
        let detection = match target {
            Target::Settled(row) => Detection {
                reference: ImageRef::parse(&o.image).ok(),
                observed: o,
                row,
                new_image: None,
            },
            Target::Remote {
                reference,
                current,
                confirm,
            } => {
                let new_image = tracked.get(&o.name).cloned();
                let mut row = match remote.get(&reference) {
                    Some(Ok(m)) => {
                        let row = compare(registry, &o, &reference, &current, m).await;
                        match confirm {
                            Some(digest) if row.status == Status::UpdateAvailable => {
                                let key = (reference.name(), digest);
                                if !confirmations.contains_key(&key) {
                                    let known = registry.holds(&reference, &key.1).await;
                                    confirmations.insert(key.clone(), known);
                                }
                                match &confirmations[&key] {
                                    Ok(known) => detect::confirmed(row, *known, &key.0),
                                    Err(e) => error_row(&o, row.current_digest, e.to_string()),
                                }
                            }
                            _ => row,
                        }
                    }
                    Some(Err(e @ RegistryError::Deferred { .. })) => {
                        let mut row = error_row(&o, Some(current[0].clone()), e.to_string());
                        row.status = Status::Unknown;
                        row
                    }
                    Some(Err(e)) => error_row(&o, Some(current[0].clone()), e.to_string()),
                    None => error_row(&o, None, "internal: reference was not resolved".into()),
                };
                if let Some(new) = &new_image {
                    let note = format!("tracks tags: newest is {new}");
                    row.detail = Some(match row.detail.take() {
                        Some(d) => format!("{note}; {d}"),
                        None => note,
                    });
                }
                Detection {
                    observed: o,
                    row,
                    reference: Some(reference),
                    new_image,
                }
            }
        };
        out.push(detection);
    }
    Ok((out, role))
}

/// A service whose image names no digest: `docker service create --no-resolve-image` (or an
/// image the CLI could not resolve) leaves the tag alone, and which digest its tasks run
/// cannot be told from the service.
fn service_target(o: &Observed, registry: &RegistryClient) -> Target {
    // A service's "image" is its spec's pinned digest, whatever store the manager's engine has.
    let running = RunningImage {
        id: &o.image_id,
        repo_digests: &o.repo_digests,
        store: ImageStore::Classic,
    };
    match detect::target(&o.name, &o.image, &running, &|r| registry.aliases(r)) {
        Target::Settled(mut row) if row.status == Status::Unknown => {
            row.detail = Some(
                "the service's image is not pinned to a digest (deployed with \
                 --no-resolve-image?): what its tasks run cannot be told"
                    .into(),
            );
            Target::Settled(row)
        }
        other => other,
    }
}

/// Containers with a `tidewatch.track` label follow the newest matching tag: their target
/// reference becomes that tag. Returns, by container, the new tag's reference where it differs
/// from the container's own; a bad label or a failed tag listing turns the target into an
/// error row.
async fn retarget_tracked(
    registry: &RegistryClient,
    pending: &mut [(Observed, Target)],
) -> HashMap<String, String> {
    let mut tag_lists: HashMap<String, Result<Vec<String>, String>> = HashMap::new();
    let mut moved = HashMap::new();
    for (o, target) in pending.iter_mut() {
        let Target::Remote { reference, .. } = target else {
            continue;
        };
        let Some(label) = o.labels.get(track::TRACK_LABEL) else {
            continue;
        };
        let fail = |o: &Observed, detail: String| Target::Settled(error_row(o, None, detail));
        let track = match track::parse(label) {
            Ok(Track::Digest) => continue,
            Ok(t) => t,
            Err(e) => {
                *target = fail(o, e);
                continue;
            }
        };
        let key = reference.name();
        if !tag_lists.contains_key(&key) {
            let listed = registry
                .list_tags(reference)
                .await
                .map_err(|e| e.to_string());
            tag_lists.insert(key.clone(), listed);
        }
        let tags = match &tag_lists[&key] {
            Ok(tags) => tags.clone(),
            Err(e) => {
                *target = fail(o, format!("listing tags: {e}"));
                continue;
            }
        };
        let chosen = match &track {
            Track::Semver(range) => {
                let best = track::newest_semver(&tags, range.as_ref()).map(str::to_string);
                // Never move down: a container already past the range stays where it is.
                let current = reference.tag().and_then(track::tag_version);
                best.filter(|b| match (track::tag_version(b), &current) {
                    (Some(b), Some(c)) => b > *c,
                    _ => true,
                })
            }
            Track::Regex(pattern) => {
                newest_by_creation(
                    registry,
                    reference,
                    &o.platform,
                    track::matching(&tags, pattern),
                )
                .await
            }
            Track::Digest => None,
        };
        if let Some(tag) = chosen.filter(|t| Some(t.as_str()) != reference.tag()) {
            let new = reference.with_tag(&tag);
            moved.insert(o.name.clone(), new.to_string());
            *reference = new;
        }
    }
    moved
}

/// The tag among `tags` whose image was built last. At most the registry's
/// `max_track_candidates` tags are looked up, the likely newest names first, its
/// `concurrency` at a time (ties: the likelier newest name).
async fn newest_by_creation(
    registry: &RegistryClient,
    reference: &ImageRef,
    platform: &crate::engine::Platform,
    tags: Vec<&str>,
) -> Option<String> {
    use futures_util::stream::{self, StreamExt};
    let settings = registry.settings(reference.registry());
    let matching = tags.len();
    let mut candidates = track::likely_newest_first(tags);
    if matching > settings.max_track_candidates {
        tracing::warn!(
            %reference,
            matching,
            max_track_candidates = settings.max_track_candidates,
            "more tags match than are looked up per cycle; the likely newest names are"
        );
        candidates.truncate(settings.max_track_candidates);
    }
    let created: Vec<(usize, Option<chrono::DateTime<chrono::Utc>>)> =
        stream::iter(candidates.iter().enumerate())
            .map(|(rank, tag)| async move {
                let candidate = reference.with_tag(tag);
                let Ok(manifest) = registry.current(&candidate).await else {
                    return (rank, None);
                };
                let created = registry
                    .created(&candidate, &manifest.digest, platform)
                    .await
                    .ok()
                    .flatten();
                (rank, created)
            })
            .buffer_unordered(settings.concurrency.max(1))
            .collect()
            .await;
    created
        .into_iter()
        .filter_map(|(rank, created)| Some((created?, std::cmp::Reverse(rank))))
        .max()
        .map(|(_, std::cmp::Reverse(rank))| candidates[rank].to_string())
}

/// Rows for names asked for on the command line that are not running in scope.
pub fn missing_rows(names: &[String], rows: &[CheckRow]) -> Vec<CheckRow> {
    names
        .iter()
        .map(|n| n.trim_start_matches('/'))
        .filter(|n| !rows.iter().any(|r| r.container == *n))
        .map(|n| CheckRow {
            container: n.to_string(),
            image: String::new(),
            current_digest: None,
            available_digest: None,
            status: Status::Error,
            detail: Some("no running container of that name in this agent's scope".into()),
        })
        .collect()
}

async fn compare(
    registry: &RegistryClient,
    o: &Observed,
    reference: &ImageRef,
    current: &[String],
    remote: &RemoteManifest,
) -> CheckRow {
    let mut comparison = detect::compare(current, &o.platform, remote, None);
    if comparison == Comparison::NeedIndex {
        match registry.index_entries(reference, &remote.digest).await {
            Ok(entries) => {
                comparison = detect::compare(current, &o.platform, remote, Some(&entries));
            }
            Err(e) => return error_row(o, Some(current[0].clone()), e.to_string()),
        }
    }
    let (status, current, detail) = match comparison {
        Comparison::UpToDate { current, detail } => (Status::UpToDate, current, detail),
        Comparison::UpdateAvailable { current } => (Status::UpdateAvailable, current, None),
        Comparison::NeedIndex => unreachable!("index entries were supplied"),
    };
    let detail = match (detail, &remote.note) {
        (Some(d), Some(n)) => Some(format!("{d}; {n}")),
        (d, n) => d.or_else(|| n.clone()),
    };
    CheckRow {
        container: o.name.clone(),
        image: o.image.clone(),
        current_digest: Some(current),
        available_digest: Some(remote.digest.clone()),
        status,
        detail,
    }
}

fn error_row(o: &Observed, current: Option<String>, detail: String) -> CheckRow {
    tracing::warn!(container = %o.name, image = %o.image, "{detail}");
    CheckRow {
        container: o.name.clone(),
        image: o.image.clone(),
        current_digest: current,
        available_digest: None,
        status: Status::Error,
        detail: Some(detail),
    }
}

/// Groups rows by status, for summaries.
pub fn count_by_status(rows: &[CheckRow]) -> HashMap<Status, usize> {
    let mut m = HashMap::new();
    for r in rows {
        *m.entry(r.status).or_insert(0) += 1;
    }
    m
}
