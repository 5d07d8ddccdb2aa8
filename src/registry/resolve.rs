//! The resolve stage: everything detection asks of the registries in one cycle, gathered into
//! [`Remotes`] for the pure verdicts (`plan::detect::verdicts`). Each reference is asked once
//! however many containers use it; an index or a digest's presence only where a comparison
//! needs it.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};

use futures_util::stream::{self, StreamExt};

use super::{RegistryClient, RegistryError};
use crate::image_ref::ImageRef;
use crate::plan::detect::{
    asked_reference, compare, Comparison, Lookup, Pending, RemoteFailure, Remotes, Target,
};
use crate::plan::observed::{Observed, Platform};
use crate::plan::track::{self, Track};

impl From<&RegistryError> for RemoteFailure {
    fn from(e: &RegistryError) -> Self {
        RemoteFailure {
            detail: e.to_string(),
            deferred: matches!(e, RegistryError::Deferred { .. }),
        }
    }
}

fn lookup<T>(result: Result<T, RegistryError>) -> Lookup<T> {
    result.map_err(|e| RemoteFailure::from(&e))
}

impl RegistryClient {
    /// Asks the registries what the `pending` containers' verdicts need: tag lists for the
    /// containers that track tags, one `HEAD` per reference, and the indexes and digests some
    /// comparisons need.
    pub async fn resolve(&self, pending: &[Pending], observed: &[Observed]) -> Remotes {
        let platforms: HashMap<&str, &Platform> = observed
            .iter()
            .map(|o| (o.name.as_str(), &o.platform))
            .collect();
        let labels: HashMap<&str, &Observed> =
            observed.iter().map(|o| (o.name.as_str(), o)).collect();
        let mut remotes = Remotes {
            tracked: self.tracked(pending, &labels).await,
            ..Remotes::default()
        };

        let refs: BTreeSet<ImageRef> = pending
            .iter()
            .filter_map(|p| asked_reference(p, &remotes).cloned())
            .collect();
        remotes.manifests = self
            .resolve_all(refs)
            .await
            .into_iter()
            .map(|(r, m)| (r, lookup(m)))
            .collect();

        for p in pending {
            let Target::Remote {
                current, confirm, ..
            } = &p.target
            else {
                continue;
            };
            let Some(reference) = asked_reference(p, &remotes).cloned() else {
                continue;
            };
            let Some(Ok(manifest)) = remotes.manifests.get(&reference).cloned() else {
                continue;
            };
            let platform = platforms
                .get(p.name.as_str())
                .copied()
                .cloned()
                .unwrap_or_default();
            let mut comparison = compare(current, &platform, &manifest, None);
            if comparison == Comparison::NeedIndex {
                if !remotes.indexes.contains_key(&manifest.digest) {
                    let entries = self.index_entries(&reference, &manifest.digest).await;
                    let entries = lookup(entries.map(|e| e.as_ref().clone()));
                    remotes.indexes.insert(manifest.digest.clone(), entries);
                }
                let Some(Ok(entries)) = remotes.indexes.get(&manifest.digest) else {
                    continue;
                };
                comparison = compare(current, &platform, &manifest, Some(entries));
            }
            let update = matches!(comparison, Comparison::UpdateAvailable { .. });
            if let Some(digest) = confirm.as_ref().filter(|_| update) {
                let key = (reference.name(), digest.clone());
                if let Entry::Vacant(slot) = remotes.held.entry(key) {
                    slot.insert(lookup(self.holds(&reference, digest).await));
                }
            }
        }
        remotes
    }

    /// For each pending container with a `tidewatch.track` label, the newer tag's reference it
    /// should move to, if any; a bad label or a failed tag listing is its failure. Each
    /// repository's tags are listed once.
    async fn tracked(
        &self,
        pending: &[Pending],
        observed: &HashMap<&str, &Observed>,
    ) -> HashMap<String, Lookup<Option<ImageRef>>> {
        let mut tag_lists: HashMap<String, Result<Vec<String>, String>> = HashMap::new();
        let mut tracked = HashMap::new();
        for p in pending {
            let Target::Remote { reference, .. } = &p.target else {
                continue;
            };
            let Some(o) = observed.get(p.name.as_str()) else {
                continue;
            };
            let Some(label) = o.labels.get(track::TRACK_LABEL) else {
                continue;
            };
            let failure = |detail: String| RemoteFailure {
                detail,
                deferred: false,
            };
            let track = match track::parse(label) {
                Ok(Track::Digest) => continue,
                Ok(t) => t,
                Err(e) => {
                    tracked.insert(p.name.clone(), Err(failure(e)));
                    continue;
                }
            };
            let key = reference.name();
            if !tag_lists.contains_key(&key) {
                let listed = self.list_tags(reference).await.map_err(|e| e.to_string());
                tag_lists.insert(key.clone(), listed);
            }
            let tags = match &tag_lists[&key] {
                Ok(tags) => tags,
                Err(e) => {
                    tracked.insert(p.name.clone(), Err(failure(format!("listing tags: {e}"))));
                    continue;
                }
            };
            let chosen = match &track {
                Track::Semver(range) => {
                    let best = track::newest_semver(tags, range.as_ref()).map(str::to_string);
                    // Never move down: a container already past the range stays where it is.
                    let current = reference.tag().and_then(track::tag_version);
                    best.filter(|b| match (track::tag_version(b), &current) {
                        (Some(b), Some(c)) => b > *c,
                        _ => true,
                    })
                }
                Track::Regex(pattern) => {
                    let matching = track::matching(tags, pattern);
                    self.newest_by_creation(reference, &o.platform, matching)
                        .await
                }
                Track::Digest => None,
            };
            let newer = chosen
                .filter(|t| Some(t.as_str()) != reference.tag())
                .map(|tag| reference.with_tag(&tag));
            tracked.insert(p.name.clone(), Ok(newer));
        }
        tracked
    }

    /// The tag among `tags` whose image was built last. At most the registry's
    /// `max_track_candidates` tags are looked up, the likely newest names first, its
    /// `concurrency` at a time (ties: the likelier newest name).
    pub(crate) async fn newest_by_creation(
        &self,
        reference: &ImageRef,
        platform: &Platform,
        tags: Vec<&str>,
    ) -> Option<String> {
        let settings = self.settings(reference.registry());
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
                    let Ok(manifest) = self.current(&candidate).await else {
                        return (rank, None);
                    };
                    let created = self
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
}
