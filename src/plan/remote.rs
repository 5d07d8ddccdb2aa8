//! What a registry says, as the core reads it: the manifest a reference points to now and, for
//! a multi-arch index, which manifest serves which platform. The registry adapter fills these in
//! (and re-exports them); detection compares them with what the engine shows.

/// Media types of a multi-arch index.
pub const INDEX_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// One manifest of an index and the platform it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The platform manifest's digest.
    pub digest: String,
    /// `linux`, or empty when the entry has no platform.
    pub os: String,
    /// `amd64`, `arm64`..., or empty.
    pub architecture: String,
    /// `v8`, `v7`...
    pub variant: Option<String>,
}

/// What a registry says a reference currently points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteManifest {
    /// The manifest digest (`sha256:...`).
    pub digest: String,
    /// The manifest's media type, when the registry said.
    pub media_type: Option<String>,
    /// Worth telling the user: the digest came from a mirror, the rate limit is low...
    pub note: Option<String>,
}

impl RemoteManifest {
    /// True when the digest names a multi-arch index / manifest list.
    pub fn is_index(&self) -> bool {
        self.media_type
            .as_deref()
            .is_some_and(|m| INDEX_MEDIA_TYPES.contains(&m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_media_types_are_indexes() {
        let m = |t: &str| RemoteManifest {
            digest: "sha256:x".into(),
            media_type: Some(t.into()),
            note: None,
        };
        assert!(m("application/vnd.oci.image.index.v1+json").is_index());
        assert!(m("application/vnd.docker.distribution.manifest.list.v2+json").is_index());
        assert!(!m("application/vnd.oci.image.manifest.v1+json").is_index());
    }
}
