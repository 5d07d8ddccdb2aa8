//! Cosign signatures made in the tests and pushed in cosign's layout: a key pair generated
//! here, the simple signing payload of a digest, and the manifest tagged `sha256-<hex>.sig`
//! whose layers are the payloads, with the signature (and, keyless, the certificate, chain and
//! log bundle) in each layer's annotations.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::Engine as _;
use serde_json::{json, Value};

use super::images::{block_on, Oci};
use super::registry::Registry;

const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_EMPTY_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An ECDSA P-256 key pair, as `cosign generate-key-pair` makes.
pub struct Signer {
    pair: EcdsaKeyPair,
}

impl Signer {
    /// A new key pair.
    pub fn generate() -> Signer {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .unwrap_or_else(|e| panic!("cannot generate a P-256 key: {e}"));
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
            .unwrap_or_else(|e| panic!("cannot read the generated key: {e}"));
        Signer { pair }
    }

    /// The public key's DER `SubjectPublicKeyInfo`.
    pub fn spki(&self) -> Vec<u8> {
        self.pair
            .public_key()
            .as_der()
            .unwrap_or_else(|e| panic!("cannot encode the public key: {e}"))
            .as_ref()
            .to_vec()
    }

    /// Writes the public key as cosign.pub (PEM) into `dir`; returns its path.
    pub fn write_public(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            b64(&self.spki())
        );
        fs::write(&path, pem).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// The ASN.1 ECDSA signature of `message` (SHA-256).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair
            .sign(&SystemRandom::new(), message)
            .unwrap_or_else(|e| panic!("cannot sign: {e}"))
            .as_ref()
            .to_vec()
    }
}

/// Cosign's simple signing payload for `digest` of `repository`.
pub fn payload(repository: &str, digest: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "critical": {
            "identity": { "docker-reference": repository },
            "image": { "docker-manifest-digest": digest },
            "type": "cosign container image signature",
        },
        "optional": null,
    }))
    .unwrap_or_else(|e| panic!("cannot serialise a payload: {e}"))
}

/// One signature layer: its payload and annotations.
#[derive(Debug, Clone)]
pub struct SigLayer {
    /// The simple signing payload.
    pub payload: Vec<u8>,
    /// `dev.cosignproject.cosign/signature` and the others.
    pub annotations: BTreeMap<String, String>,
}

impl SigLayer {
    /// `payload` signed by `signer`, as `cosign sign --key` pushes it.
    pub fn keyed(signer: &Signer, payload: Vec<u8>) -> SigLayer {
        let signature = b64(&signer.sign(&payload));
        SigLayer {
            payload,
            annotations: BTreeMap::from([(
                "dev.cosignproject.cosign/signature".to_owned(),
                signature,
            )]),
        }
    }
}

/// The `.sig` tag of `digest`.
pub fn sig_tag(digest: &str) -> String {
    format!("{}.sig", digest.replacen(':', "-", 1))
}

/// Pushes `layers` as the signatures of `digest` in `repo`: the manifest at its `.sig` tag.
/// Returns the manifest's digest.
pub fn push_signatures(
    registry: &Registry,
    repo: &str,
    digest: &str,
    layers: &[SigLayer],
) -> String {
    block_on(async {
        let oci = Oci::new(registry, repo);
        let (config_digest, config_size) = oci.push_blob(b"{}".to_vec()).await;
        let mut descriptors = Vec::new();
        for layer in layers {
            let (layer_digest, size) = oci.push_blob(layer.payload.clone()).await;
            descriptors.push(json!({
                "mediaType": SIMPLE_SIGNING,
                "digest": layer_digest,
                "size": size,
                "annotations": layer.annotations,
            }));
        }
        let manifest: Value = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": { "mediaType": OCI_EMPTY_CONFIG, "digest": config_digest, "size": config_size },
            "layers": descriptors,
        });
        let body = serde_json::to_vec(&manifest)
            .unwrap_or_else(|e| panic!("cannot serialise the signature manifest: {e}"));
        oci.push_manifest(body, OCI_MANIFEST, Some(&sig_tag(digest)))
            .await
            .0
    })
}

/// Signs `digest` of `repo` with `signer` and pushes the signature, as `cosign sign --key`.
pub fn sign(registry: &Registry, repo: &str, digest: &str, signer: &Signer) {
    let layer = SigLayer::keyed(signer, payload(&registry.repo(repo), digest));
    push_signatures(registry, repo, digest, &[layer]);
}

/// A `[[verify]]` table for `repo` with `key`, and `extra` lines.
pub fn keyed_rule(registry: &Registry, repo: &str, key: &Path, extra: &str) -> String {
    format!(
        "[[verify]]\nimages = [{:?}]\nkey = {:?}\n{extra}",
        registry.repo(repo),
        key
    )
}
