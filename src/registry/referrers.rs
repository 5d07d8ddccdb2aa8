//! Sigstore bundles attached to a digest as OCI 1.1 referrers, where cosign 3 puts its
//! signatures: artifact manifests whose `subject` is the digest, whose `artifactType` is a
//! bundle media type, and whose layer is the bundle. They are listed by the referrers API
//! (`GET /v2/<name>/referrers/<digest>`) or, on a registry without it (which answers 404,
//! like distribution 2.8), by the referrers tag schema: an image index tagged `sha256-<hex>`.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use serde::Deserialize;

use super::signatures::{is_sha256, sha256_hex, Descriptor};
use super::{RegistryClient, RegistryError, RegistryState, MAX_MANIFEST_BYTES};
use crate::cosign::{is_bundle_media_type, MAX_BUNDLE_BYTES};
use crate::image_ref::ImageRef;

/// Bundle referrers of one digest read at most: one per signing, and a registry that lists
/// thousands is not worth the requests.
const MAX_REFERRERS: usize = 8;
/// The largest referrers list read (an index of descriptors).
const MAX_INDEX_BYTES: usize = 256 * 1024;

/// A referrers list, from the API or the tag schema: an image index.
#[derive(Deserialize)]
struct Referrers {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// A referrer's manifest: only what is checked.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Artifact {
    #[serde(default)]
    artifact_type: String,
    config: Option<Descriptor>,
    subject: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

/// The tag the referrers tag schema lists `digest`'s referrers under: `sha256-<hex>`.
pub fn referrers_tag(digest: &str) -> String {
    digest.replacen(':', "-", 1)
}

fn fits(d: &Descriptor, max: usize) -> bool {
    usize::try_from(d.size).is_ok_and(|s| s <= max) && is_sha256(&d.digest)
}

impl RegistryClient {
    /// The Sigstore bundles (their JSON) that `reference`'s repository holds as referrers of
    /// `digest`: none when it lists none. Manifests and blobs that are not what their
    /// descriptors say, or whose subject is another digest, are left out.
    pub async fn signature_bundles(
        &self,
        reference: &ImageRef,
        digest: &str,
    ) -> Result<Vec<Vec<u8>>, RegistryError> {
        let state = self.state(reference.registry()).await;
        state.check_rate_limit(reference.registry())?;
        let Some(body) = self.referrers_list(reference, digest, &state).await? else {
            return Ok(Vec::new());
        };
        let protocol = |what: String| RegistryError::Protocol {
            registry: reference.registry().to_string(),
            reason: format!("referrers of {digest} in {}: {what}", reference.name()),
        };
        let list: Referrers = serde_json::from_slice(&body).map_err(|e| protocol(e.to_string()))?;
        let mut bundles = Vec::new();
        let mut seen = HashSet::new();
        for d in list
            .manifests
            .iter()
            .filter(|d| is_bundle_media_type(&d.artifact_type))
            .filter(|d| fits(d, MAX_MANIFEST_BYTES))
            .take(MAX_REFERRERS)
        {
            if !seen.insert(d.digest.as_str()) {
                continue;
            }
            let path = format!("manifests/{}", d.digest);
            let body = self
                .get_in_repository(reference, &path, MAX_MANIFEST_BYTES, &state)
                .await?;
            if format!("sha256:{}", sha256_hex(&body)) != d.digest {
                tracing::warn!(reference = %reference, manifest = d.digest, "a referrer's manifest is not what its descriptor says; ignored");
                continue;
            }
            let Ok(artifact) = serde_json::from_slice::<Artifact>(&body) else {
                continue;
            };
            let of_digest = artifact
                .subject
                .as_ref()
                .is_some_and(|s| s.digest == digest);
            let config_type = artifact.config.as_ref().map(|c| c.media_type.as_str());
            let is_bundle = is_bundle_media_type(&artifact.artifact_type)
                || config_type.is_some_and(is_bundle_media_type);
            if !of_digest || !is_bundle {
                continue;
            }
            let Some(layer) = artifact
                .layers
                .iter()
                .find(|l| is_bundle_media_type(&l.media_type) && fits(l, MAX_BUNDLE_BYTES))
            else {
                continue;
            };
            self.counts.signature_blobs.fetch_add(1, Ordering::Relaxed);
            let path = format!("blobs/{}", layer.digest);
            let bundle = self
                .get_in_repository(reference, &path, MAX_BUNDLE_BYTES, &state)
                .await?;
            if format!("sha256:{}", sha256_hex(&bundle)) == layer.digest {
                bundles.push(bundle);
            } else {
                tracing::warn!(reference = %reference, blob = layer.digest, "a bundle is not what its descriptor says; ignored");
            }
        }
        Ok(bundles)
    }

    /// The referrers list of `digest`: from the referrers API, else (the registry has none)
    /// the index at the referrers tag; `None` when neither exists.
    async fn referrers_list(
        &self,
        reference: &ImageRef,
        digest: &str,
        state: &RegistryState,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let get = |path: String| async move {
            self.get_in_repository(reference, &path, MAX_INDEX_BYTES, state)
                .await
        };
        if !state.no_referrers_api.load(Ordering::Relaxed) {
            // A registry with the API answers an empty list for a digest without referrers;
            // a 404 means it has no such API (see `lacks_the_api`), which is remembered for
            // the client's life.
            match get(format!("referrers/{digest}")).await {
                Ok(body) => return Ok(Some(body)),
                Err(e) if lacks_the_api(&e) => {
                    state.no_referrers_api.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        match get(format!("manifests/{}", referrers_tag(digest))).await {
            Ok(body) => Ok(Some(body)),
            Err(RegistryError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Whether the referrers API's answer says the registry has no such API: 404, as OCI 1.1
/// says, or what registries answer for a path they do not route (400, 405, 501).
fn lacks_the_api(error: &RegistryError) -> bool {
    match error {
        RegistryError::NotFound { .. } => true,
        RegistryError::Status { status, .. } => matches!(status, 400 | 405 | 501),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_404_or_an_unrouted_path_means_no_referrers_api_and_a_refusal_does_not() {
        let status = |status| RegistryError::Status {
            registry: "r".into(),
            reference: "r/a".into(),
            status,
        };
        let not_found = RegistryError::NotFound {
            reference: "r/a".into(),
        };
        assert!(lacks_the_api(&not_found));
        for code in [400, 405, 501] {
            assert!(lacks_the_api(&status(code)), "{code}");
        }
        for code in [500, 502, 418] {
            assert!(!lacks_the_api(&status(code)), "{code}");
        }
        let refused = RegistryError::Unauthorized {
            registry: "r".into(),
            repository: "a".into(),
            detail: "answered 401".into(),
        };
        assert!(!lacks_the_api(&refused));
    }

    #[test]
    fn the_referrers_tag_is_the_digest_with_a_dash() {
        assert_eq!(referrers_tag("sha256:abc123"), "sha256-abc123");
    }
}
