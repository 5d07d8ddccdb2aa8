//! Release notes of the updates a check found: the candidate image's labels from its config
//! blob (for the references whose digest changed only, each once), the running image's from
//! the engine's inventory, turned into versions and a link by [`crate::release_notes`].

use std::collections::{BTreeMap, HashMap};

use futures_util::stream::{self, StreamExt};

use super::RegistryClient;
use crate::image_ref::ImageRef;
use crate::plan::detect::{Detection, Status};
use crate::plan::observed::{Observed, Platform};
use crate::release_notes::{self, ReleaseNotes};

/// Config blobs read at once; they are a handful of small GETs per changed reference.
const CONCURRENCY: usize = 4;

impl RegistryClient {
    /// Fills in the release notes of the `detections` that have an update available. Reading
    /// the candidate's labels can fail (logged); the notes then hold only what the running
    /// image says, and the verdict is unchanged.
    pub async fn add_release_notes(&self, detections: &mut [Detection], observed: &[Observed]) {
        let by_name: HashMap<&str, &Observed> =
            observed.iter().map(|o| (o.name.as_str(), o)).collect();
        type Key = (ImageRef, String, Platform);
        let key = |d: &Detection| -> Option<Key> {
            if d.row.status != Status::UpdateAvailable {
                return None;
            }
            let digest = d.row.available_digest.clone()?;
            let reference = ImageRef::parse(d.new_image.as_deref().unwrap_or(&d.row.image)).ok()?;
            let platform = by_name.get(d.name.as_str())?.platform.clone();
            Some((reference, digest, platform))
        };
        let mut wanted: Vec<Key> = detections.iter().filter_map(key).collect();
        // Sorted on the whole key so that equal keys are adjacent and read once.
        wanted.sort_by_key(|(r, d, p)| {
            (
                r.name(),
                d.clone(),
                p.os.clone(),
                p.architecture.clone(),
                p.variant.clone(),
            )
        });
        wanted.dedup_by(|a, b| a.0.name() == b.0.name() && a.1 == b.1 && a.2 == b.2);
        let labels: Vec<(Key, Option<BTreeMap<String, String>>)> = stream::iter(wanted)
            .map(|k| async move {
                let found = match self.image_config(&k.0, &k.1, &k.2).await {
                    Ok(config) => Some(config.map(|c| c.labels.clone()).unwrap_or_default()),
                    Err(e) => {
                        tracing::warn!(reference = %k.0, digest = %k.1, "release notes: reading the new image's labels: {e}");
                        None
                    }
                };
                (k, found)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for d in detections.iter_mut() {
            let Some(k) = key(d) else { continue };
            let Some(o) = by_name.get(d.name.as_str()) else {
                continue;
            };
            let new = labels
                .iter()
                .find(|(l, _)| l.0.name() == k.0.name() && l.1 == k.1 && l.2 == k.2)
                .and_then(|(_, found)| found.as_ref());
            let template = o.labels.get(release_notes::CHANGELOG).map(String::as_str);
            d.row.notes = match new {
                Some(new) => release_notes::derive(&o.image_labels, new, template),
                // What the running image says is still worth showing.
                None => ReleaseNotes {
                    current_version: release_notes::derive(&o.image_labels, &BTreeMap::new(), None)
                        .current_version,
                    ..ReleaseNotes::default()
                },
            };
        }
    }
}
