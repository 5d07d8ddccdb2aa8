//! Image configs: what `created` and the labels of the image behind a manifest digest are,
//! read from its config blob. Tag tracking by regex reads `created`; release notes read the
//! labels of a candidate image. Each is three small GETs at most (index, platform manifest,
//! config), bounded in size, with the token of the repository's manifest requests, and
//! cached by digest: what a digest names never changes.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{index, RegistryClient, RegistryError, MAX_MANIFEST_BYTES};
use crate::image_ref::ImageRef;
use crate::plan::detect::entry_for;
use crate::plan::observed::Platform;
use crate::release_notes;

/// What tidewatch reads of an image's config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// When the image was built.
    pub created: Option<DateTime<Utc>>,
    /// Its labels that release notes read (see [`release_notes::kept`]).
    pub labels: BTreeMap<String, String>,
}

/// Configs by `(manifest or index digest, platform)`; `None` when the index has no manifest
/// for the platform, or the manifest no config.
pub(super) type ConfigCache = std::collections::HashMap<(String, String), Option<Arc<ImageConfig>>>;

#[derive(Deserialize)]
struct ManifestBody {
    config: Option<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
}

#[derive(Deserialize)]
struct ConfigBody {
    created: Option<DateTime<Utc>>,
    #[serde(default)]
    config: Option<RunConfig>,
}

#[derive(Deserialize)]
struct RunConfig {
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
}

/// Parses a config blob, keeping only the labels release notes read.
pub(super) fn parse(body: &[u8]) -> Result<ImageConfig, serde_json::Error> {
    let config: ConfigBody = serde_json::from_slice(body)?;
    Ok(ImageConfig {
        created: config.created,
        labels: release_notes::kept(config.config.and_then(|c| c.labels).unwrap_or_default()),
    })
}

impl RegistryClient {
    /// The config of the image at `digest` in `reference`'s repository: for an index, of its
    /// manifest for `platform`. Cached by digest and platform.
    pub async fn image_config(
        &self,
        reference: &ImageRef,
        digest: &str,
        platform: &Platform,
    ) -> Result<Option<Arc<ImageConfig>>, RegistryError> {
        let key = (
            digest.to_string(),
            format!(
                "{}/{}/{}",
                platform.os,
                platform.architecture,
                platform.variant.as_deref().unwrap_or_default()
            ),
        );
        if let Some(c) = self.configs.lock().await.get(&key) {
            return Ok(c.clone());
        }
        let config = self.fetch_config(reference, digest, platform).await?;
        self.configs.lock().await.insert(key, config.clone());
        Ok(config)
    }

    async fn fetch_config(
        &self,
        reference: &ImageRef,
        digest: &str,
        platform: &Platform,
    ) -> Result<Option<Arc<ImageConfig>>, RegistryError> {
        let state = self.state(reference.registry()).await;
        // A GET of a manifest counts as a pull on Docker Hub: the quota kept for updates is not
        // spent on notes.
        state.check_rate_limit(reference.registry())?;
        let protocol = |reason: String| RegistryError::Protocol {
            registry: reference.registry().to_string(),
            reason,
        };
        let get = |path: String| {
            let state = state.clone();
            async move {
                if path.starts_with("blobs/") {
                    self.counts.config_blobs.fetch_add(1, Ordering::Relaxed);
                }
                // Image configs are manifests' size too; the same limit bounds both.
                self.get_in_repository(reference, &path, MAX_MANIFEST_BYTES, &state)
                    .await
            }
        };
        let mut body = get(format!("manifests/{digest}")).await?;
        if let Ok(entries) = index::parse(&body) {
            if !entries.is_empty() {
                let Some(entry) = entry_for(&entries, platform) else {
                    return Ok(None);
                };
                body = get(format!("manifests/{}", entry.digest)).await?;
            }
        }
        let manifest: ManifestBody = serde_json::from_slice(&body)
            .map_err(|e| protocol(format!("manifest {digest}: {e}")))?;
        let Some(config) = manifest.config else {
            return Ok(None);
        };
        let blob = get(format!("blobs/{}", config.digest)).await?;
        let parsed =
            parse(&blob).map_err(|e| protocol(format!("image config {}: {e}", config.digest)))?;
        Ok(Some(Arc::new(parsed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_keeps_its_creation_time_and_only_the_labels_release_notes_read() {
        let body = br#"{
          "created": "2026-01-02T03:04:05Z",
          "architecture": "amd64",
          "config": {"Labels": {
            "org.opencontainers.image.version": "2.0.0",
            "org.opencontainers.image.source": "https://github.com/acme/app",
            "com.example.other": "x"
          }}
        }"#;
        let c = parse(body).unwrap();
        assert_eq!(c.created.unwrap().to_rfc3339(), "2026-01-02T03:04:05+00:00");
        assert_eq!(
            c.labels.keys().map(String::as_str).collect::<Vec<_>>(),
            [release_notes::SOURCE, release_notes::VERSION]
        );
        let bare = parse(br#"{"config": {"Labels": null}}"#).unwrap();
        assert_eq!(bare, ImageConfig::default());
        assert_eq!(parse(b"{}").unwrap(), ImageConfig::default());
        assert!(parse(br#"{"config": {"Labels": {"a": 1}}}"#).is_err());
    }
}
