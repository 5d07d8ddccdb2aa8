//! Tags of a repository (`/v2/<repo>/tags/list`, paginated with `Link`) and when an image was
//! built (its config's `created`), for tag tracking.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Deserialize;

use super::{index, RegistryClient, RegistryError};
use crate::engine::Platform;
use crate::image_ref::ImageRef;

/// Tags asked for per page.
const PAGE: usize = 1000;
/// Pages followed at most, so a misbehaving `Link` cannot loop forever.
const MAX_PAGES: usize = 50;

#[derive(Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct ManifestBody {
    config: Option<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
}

#[derive(Deserialize)]
struct ImageConfig {
    created: Option<DateTime<Utc>>,
}

impl RegistryClient {
    /// Every tag of `reference`'s repository, following the registry's pagination.
    pub async fn list_tags(&self, reference: &ImageRef) -> Result<Vec<String>, RegistryError> {
        let state = self.state(reference.registry()).await;
        let base = format!(
            "{}://{}",
            self.scheme(reference.registry()),
            reference.api_host()
        );
        let mut url = format!("{base}/v2/{}/tags/list?n={PAGE}", reference.repository());
        let mut tags = Vec::new();
        for _ in 0..MAX_PAGES {
            let _permit = state.limit.clone().acquire_owned().await.ok();
            let response = self.send(Method::GET, &url, reference, &state).await?;
            let next = response
                .headers()
                .get("link")
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
            let page: TagList = response.json().await.map_err(|e| RegistryError::Protocol {
                registry: reference.registry().to_string(),
                reason: format!("tag list of {}: {e}", reference.name()),
            })?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                Some(path) if path.starts_with('/') => url = format!("{base}{path}"),
                Some(absolute) => url = absolute,
                None => return Ok(tags),
            }
        }
        Ok(tags)
    }

    /// When the image at `digest` (for `platform`, if it is an index) was built. Cached by
    /// digest: content behind a digest never changes.
    pub async fn created(
        &self,
        reference: &ImageRef,
        digest: &str,
        platform: &Platform,
    ) -> Result<Option<DateTime<Utc>>, RegistryError> {
        if let Some(c) = self.created.lock().await.get(digest) {
            return Ok(*c);
        }
        let state = self.state(reference.registry()).await;
        let protocol = |reason: String| RegistryError::Protocol {
            registry: reference.registry().to_string(),
            reason,
        };
        let get = |path: String| {
            let state = state.clone();
            async move {
                let url = format!(
                    "{}://{}/v2/{}/{path}",
                    self.scheme(reference.registry()),
                    reference.api_host(),
                    reference.repository()
                );
                let _permit = state.limit.clone().acquire_owned().await.ok();
                let response = self.send(Method::GET, &url, reference, &state).await?;
                response
                    .bytes()
                    .await
                    .map_err(|e| RegistryError::transport(reference.registry(), e))
            }
        };
        let mut body = get(format!("manifests/{digest}")).await?;
        if let Ok(entries) = index::parse(&body) {
            if !entries.is_empty() {
                let Some(entry) = entries
                    .iter()
                    .find(|e| e.os == platform.os && e.architecture == platform.architecture)
                else {
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
        let config: ImageConfig = serde_json::from_slice(&blob)
            .map_err(|e| protocol(format!("image config {}: {e}", config.digest)))?;
        self.created
            .lock()
            .await
            .insert(digest.to_string(), config.created);
        Ok(config.created)
    }
}

/// The target of a `Link: </v2/...>; rel="next"` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

/// Cache of image creation times by digest.
pub(super) type CreatedCache = HashMap<String, Option<DateTime<Utc>>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_is_followed() {
        assert_eq!(
            next_link(r#"</v2/app/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/app/tags/list?last=b&n=2")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
    }
}
