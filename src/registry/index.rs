//! Multi-arch indexes (OCI image index, Docker manifest list): which manifest serves which
//! platform. Attestation manifests (`unknown/unknown`) are kept but never match a real platform.

use oci_client::manifest::OciImageIndex;

use crate::plan::remote::IndexEntry;

/// Parses an index body.
pub fn parse(body: &[u8]) -> Result<Vec<IndexEntry>, String> {
    let index: OciImageIndex = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(index
        .manifests
        .into_iter()
        .map(|m| {
            let (os, architecture, variant) = match m.platform {
                Some(p) => (p.os.to_string(), p.architecture.to_string(), p.variant),
                None => (String::new(), String::new(), None),
            };
            IndexEntry {
                digest: m.digest,
                os,
                architecture,
                variant,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_with_attestation_lists_every_entry_with_its_platform() {
        let body = br#"{
          "schemaVersion": 2,
          "mediaType": "application/vnd.oci.image.index.v1+json",
          "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:aa", "size": 1,
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:bb", "size": 1,
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:cc", "size": 1,
             "platform": {"architecture": "unknown", "os": "unknown"},
             "annotations": {"vnd.docker.reference.type": "attestation-manifest"}}
          ]
        }"#;
        let entries = parse(body).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].architecture, "amd64");
        assert_eq!(entries[0].os, "linux");
        assert_eq!(entries[1].variant.as_deref(), Some("v8"));
        assert_eq!(entries[2].architecture, "unknown");
    }
}
