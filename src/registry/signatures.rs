//! The signature gate: before an update's new digest may be pulled, its cosign signatures
//! (the manifest tagged `sha256-<hex>.sig` in the same repository, and the payloads its layers
//! name; failing those, the Sigstore bundles `registry::referrers` finds) are read, bounded in
//! size, and checked against the first `[[verify]]` rule whose images match. A verified digest is remembered for the client's life (what a digest names
//! never changes); a rejection is not, so the next cycle looks again with one request for the
//! `.sig` tag, and a signature pushed after the image lets the update through then.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;

use futures_util::stream::{self, StreamExt};
use serde::Deserialize;

use super::{RegistryClient, RegistryError, MAX_MANIFEST_BYTES};
use crate::config::{rule_for, VerifyRule};
use crate::cosign::{self, SignatureLayer, MAX_PAYLOAD_BYTES, SIMPLE_SIGNING_MEDIA_TYPE};
use crate::image_ref::ImageRef;
use crate::plan::detect::{signature_checked, Detection, Status};

/// Layers of a `.sig` manifest read at most: cosign adds one per signing, and a registry that
/// sends thousands is not worth the requests.
const MAX_LAYERS: usize = 16;
/// Digests checked at once.
const CONCURRENCY: usize = 8;
/// Verified digests remembered; past that the memory starts again.
const MAX_VERIFIED: usize = 4096;

/// What a rule concluded about one digest of one repository, keyed for the cache.
type Key = (usize, String, String);

#[derive(Deserialize)]
struct SigManifest {
    #[serde(default)]
    layers: Vec<Descriptor>,
}

/// An OCI descriptor: only what signatures and referrers read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub artifact_type: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// The `.sig` tag cosign stores `digest`'s signatures under: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replacen(':', "-", 1))
}

impl RegistryClient {
    /// Checks the new digest of each update that a `[[verify]]` rule covers, and marks its row
    /// (see [`signature_checked`]): verified, let through unverified (`warn`), or an error
    /// that keeps it from being pulled (`enforce`).
    pub async fn verify_updates(&self, detections: &mut [Detection], rules: &[VerifyRule]) {
        if rules.is_empty() {
            return;
        }
        // Each digest once, however many containers run its reference.
        let mut wanted: Vec<(Key, &VerifyRule, ImageRef)> = Vec::new();
        let mut keys: Vec<Option<Key>> = Vec::new();
        for d in detections.iter() {
            let covered = covered(d, rules);
            if let Some((key, rule, reference)) = &covered {
                if !wanted.iter().any(|(k, ..)| k == key) {
                    wanted.push((key.clone(), *rule, reference.clone()));
                }
            }
            keys.push(covered.map(|(key, ..)| key));
        }
        let outcomes: Vec<(Key, Result<(), String>)> = stream::iter(wanted.iter())
            .map(|(key, rule, reference)| async move {
                (key.clone(), self.verified(key, rule, reference).await)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (d, key) in detections.iter_mut().zip(keys) {
            let Some(key) = key else { continue };
            let Some((_, rule, _)) = wanted.iter().find(|(k, ..)| *k == key) else {
                continue;
            };
            let Some((_, outcome)) = outcomes.iter().find(|(k, _)| *k == key) else {
                continue;
            };
            signature_checked(&mut d.row, &rule.describe(), rule.mode, outcome.clone());
        }
    }

    /// Whether `key`'s digest is signed as `rule` says: from the cache, else from the registry.
    async fn verified(
        &self,
        key: &Key,
        rule: &VerifyRule,
        reference: &ImageRef,
    ) -> Result<(), String> {
        if self.verified.lock().await.contains(key) {
            return Ok(());
        }
        let digest = &key.2;
        let unreadable = |e: RegistryError| format!("signatures could not be read: {e}");
        let layers = self
            .signature_layers(reference, digest)
            .await
            .map_err(unreadable)?;
        // The `.sig` tag first (cosign 2 and older, and cosign 3 told to keep that layout);
        // the referrers only when it holds no valid signature.
        if let Err(why) = cosign::verify(&rule.trust, digest, &layers) {
            let bundles = self
                .signature_bundles(reference, digest)
                .await
                .map_err(unreadable)?;
            let outcome = cosign::verify_bundles(&rule.trust, digest, &bundles);
            cosign::best_of([Err(why), outcome]).map_err(|why| why.to_string())?;
        }
        let mut verified = self.verified.lock().await;
        if verified.len() >= MAX_VERIFIED {
            verified.clear();
        }
        verified.insert(key.clone());
        Ok(())
    }

    /// The signature layers of `digest` in `reference`'s repository: none when the `.sig` tag
    /// does not exist. Layers whose blob is not what their descriptor says are left out.
    pub async fn signature_layers(
        &self,
        reference: &ImageRef,
        digest: &str,
    ) -> Result<Vec<SignatureLayer>, RegistryError> {
        let state = self.state(reference.registry()).await;
        // A manifest GET counts as a pull on Docker Hub: a registry whose quota ran low is
        // deferred, and the digest stays unverified this cycle.
        state.check_rate_limit(reference.registry())?;
        let get = |path: String, limit: usize| {
            let state = state.clone();
            async move {
                self.get_in_repository(reference, &path, limit, &state)
                    .await
            }
        };
        let tag = signature_tag(digest);
        let body = match get(format!("manifests/{tag}"), MAX_MANIFEST_BYTES).await {
            Ok(body) => body,
            Err(RegistryError::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let manifest: SigManifest =
            serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
                registry: reference.registry().to_string(),
                reason: format!("signature manifest {tag} of {}: {e}", reference.name()),
            })?;
        let mut layers = Vec::new();
        let mut seen = HashSet::new();
        for d in manifest
            .layers
            .into_iter()
            .filter(|d| d.media_type == SIMPLE_SIGNING_MEDIA_TYPE)
            .filter(|d| usize::try_from(d.size).is_ok_and(|s| s <= MAX_PAYLOAD_BYTES))
            .filter(|d| is_sha256(&d.digest))
            .take(MAX_LAYERS)
        {
            if !seen.insert(d.digest.clone()) {
                continue;
            }
            self.counts.signature_blobs.fetch_add(1, Ordering::Relaxed);
            let payload = get(format!("blobs/{}", d.digest), MAX_PAYLOAD_BYTES).await?;
            let actual = format!("sha256:{}", sha256_hex(&payload));
            if actual != d.digest {
                tracing::warn!(reference = %reference, blob = d.digest, "a signature payload is not what its descriptor says; ignored");
                continue;
            }
            let annotation = |name: &str| d.annotations.get(name).cloned();
            layers.push(SignatureLayer {
                payload,
                signature: annotation(cosign::SIGNATURE_ANNOTATION),
                certificate: annotation(cosign::CERTIFICATE_ANNOTATION),
                chain: annotation(cosign::CHAIN_ANNOTATION),
                bundle: annotation(cosign::BUNDLE_ANNOTATION),
            });
        }
        Ok(layers)
    }
}

/// The rule that covers `d`'s update, with its cache key and the reference whose repository
/// holds the signatures (the image's, or the rule's `signature_repository`); `None` when `d`
/// is no update or no rule matches.
fn covered<'r>(d: &Detection, rules: &'r [VerifyRule]) -> Option<(Key, &'r VerifyRule, ImageRef)> {
    if d.row.status != Status::UpdateAvailable {
        return None;
    }
    let digest = d.row.available_digest.clone()?;
    // With tag tracking the update moves to another tag of the same repository.
    let reference = ImageRef::parse(d.new_image.as_deref().unwrap_or(&d.row.image)).ok()?;
    let rule = rule_for(rules, &reference.name())?;
    // Validation kept the signature repository on the images' registry.
    let reference = rule.signature_repository.clone().unwrap_or(reference);
    Some(((rule.number, reference.name(), digest), rule, reference))
}

pub(super) fn is_sha256(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The SHA-256 of `bytes`, in hex.
pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sig_tag_is_the_digest_with_a_dash() {
        assert_eq!(signature_tag("sha256:abc123"), "sha256-abc123.sig");
    }
}
