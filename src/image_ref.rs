//! Image references, normalised the way Docker does (`nginx` is `docker.io/library/nginx:latest`,
//! `index.docker.io` is `docker.io`), so that a container's reference, its image's `RepoDigests`
//! and a registry's answer can be compared without false positives.

use std::fmt;
use std::str::FromStr;

use oci_client::Reference;

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// A reference that is not a valid image reference.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid image reference {reference:?}: {reason}")]
pub struct ImageRefError {
    /// The text as given.
    pub reference: String,
    /// Why it was refused.
    pub reason: String,
}

impl ImageRef {
    /// Parses `text` like the Docker CLI does.
    pub fn parse(text: &str) -> Result<ImageRef, ImageRefError> {
        let parsed = Reference::from_str(text).map_err(|e| ImageRefError {
            reference: text.to_string(),
            reason: e.to_string(),
        })?;
        Ok(ImageRef {
            registry: parsed.registry().to_string(),
            repository: parsed.repository().to_string(),
            tag: parsed.tag().map(str::to_string),
            digest: parsed.digest().map(str::to_string),
        })
    }

    /// The registry host as Docker names it (`docker.io`, `ghcr.io`, `127.0.0.1:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry (`library/nginx`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if the reference has one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference pins one.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// True when the reference pins a digest: such a container never moves by itself.
    pub fn is_pinned(&self) -> bool {
        self.digest.is_some()
    }

    /// `registry/repository`, the key under which `RepoDigests` are compared.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The host to connect to: Docker Hub's API lives at `registry-1.docker.io`.
    pub fn api_host(&self) -> &str {
        if self.registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }

    /// The tag or digest to ask the registry for (`latest` when neither is given).
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The same repository at `digest` (`registry/repo@sha256:...`), for pulls by digest.
    pub fn with_digest(&self, digest: &str) -> ImageRef {
        ImageRef {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest.to_string()),
        }
    }

    /// The same repository at `tag`.
    pub fn with_tag(&self, tag: &str) -> ImageRef {
        ImageRef {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        }
    }

    /// The reference as oci-client's type.
    pub fn to_oci(&self) -> Reference {
        match (&self.tag, &self.digest) {
            (Some(t), Some(d)) => Reference::with_tag_and_digest(
                self.registry.clone(),
                self.repository.clone(),
                t.clone(),
                d.clone(),
            ),
            (_, Some(d)) => {
                Reference::with_digest(self.registry.clone(), self.repository.clone(), d.clone())
            }
            (t, None) => Reference::with_tag(
                self.registry.clone(),
                self.repository.clone(),
                t.clone().unwrap_or_else(|| "latest".into()),
            ),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// The first 12 hex digits of a digest (`sha256:0123456789ab`), for tables.
pub fn short_digest(digest: &str) -> &str {
    let hex_start = digest.find(':').map_or(0, |i| i + 1);
    let end = (hex_start + 12).min(digest.len());
    &digest[..end]
}

/// Finds the digest recorded for `name` (`registry/repository`) among an image's `RepoDigests`
/// (`nginx@sha256:...`, `127.0.0.1:5000/app@sha256:...`).
pub fn repo_digest_for<'a>(repo_digests: &'a [String], name: &str) -> Vec<&'a str> {
    repo_digests
        .iter()
        .filter_map(|rd| {
            let (repo, digest) = rd.split_once('@')?;
            let parsed = ImageRef::parse(repo).ok()?;
            (parsed.name() == name).then_some(digest)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_short_names_are_normalised() {
        let r = ImageRef::parse("nginx").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/nginx:latest");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        let r = ImageRef::parse("index.docker.io/library/nginx:1.25").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/nginx:1.25");
        let r = ImageRef::parse("someone/app").unwrap();
        assert_eq!(r.name(), "docker.io/someone/app");
    }

    #[test]
    fn registry_with_port_is_kept() {
        let r = ImageRef::parse("127.0.0.1:5000/team/app:v2").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "team/app");
        assert_eq!(r.tag(), Some("v2"));
        assert_eq!(r.api_host(), "127.0.0.1:5000");
        assert!(!r.is_pinned());
    }

    #[test]
    fn digest_pinned_reference_is_pinned() {
        let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let r = ImageRef::parse(&format!("ghcr.io/o/app@{d}")).unwrap();
        assert!(r.is_pinned());
        assert_eq!(r.manifest_reference(), d);
        let r = ImageRef::parse(&format!("ghcr.io/o/app:1@{d}")).unwrap();
        assert!(r.is_pinned());
        assert_eq!(r.tag(), Some("1"));
    }

    #[test]
    fn invalid_reference_is_refused_by_name() {
        let e = ImageRef::parse("app name:x").unwrap_err();
        assert!(e.to_string().contains("app name:x"));
    }

    #[test]
    fn repo_digests_match_across_spellings() {
        let d = "sha256:aaaa";
        let rds = vec![
            format!("nginx@{d}"),
            "127.0.0.1:5000/app@sha256:bbbb".to_string(),
        ];
        assert_eq!(repo_digest_for(&rds, "docker.io/library/nginx"), vec![d]);
        assert_eq!(
            repo_digest_for(&rds, "127.0.0.1:5000/app"),
            vec!["sha256:bbbb"]
        );
        assert!(repo_digest_for(&rds, "127.0.0.1:5001/app").is_empty());
    }

    #[test]
    fn short_digest_keeps_algorithm_and_twelve_hex() {
        assert_eq!(
            short_digest("sha256:0123456789abcdef0123"),
            "sha256:0123456789ab"
        );
        assert_eq!(short_digest("sha256:01"), "sha256:01");
    }
}
