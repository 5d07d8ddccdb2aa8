//! Cosign signature verification, pure: the signature layers a registry holds for a digest (as
//! `registry::signatures` reads them) and a rule's trust in, a verdict out.
//!
//! Cosign stores the signatures of `repo@sha256:<hex>` as the layers of the manifest tagged
//! `sha256-<hex>.sig`: each layer a "simple signing" JSON payload naming the digest, with the
//! signature (and, keyless, the certificate, its chain and the transparency log's bundle) in
//! the layer's annotations. A digest is verified when at least one layer is signed by what the
//! rule trusts *and* names exactly that digest.
//!
//! Cosign 3 writes a Sigstore bundle instead (`bundle.rs`), attached to the digest as an OCI
//! 1.1 referrer: the same verdict, from a DSSE envelope whose in-toto statement names the
//! digest.
//!
//! Written on aws-lc-rs (already the TLS provider) and rustls-webpki (already the certificate
//! verifier) rather than the `sigstore` crate: see the README's "Signatures" section.

mod bundle;
pub mod der;
mod key;
mod keyless;

use base64::Engine as _;
use serde::Deserialize;

pub use bundle::{is_bundle_media_type, pae, BUNDLE_MEDIA_TYPES, MAX_BUNDLE_BYTES, SIGN_PREDICATE};
pub use key::{KeyError, PublicKey};
pub use keyless::{Identity, Keyless, TrustedRoot, TrustedRootError};

/// The media type of a cosign signature layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The layer annotation holding the signing certificate (PEM), keyless.
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// The layer annotation holding the certificate's chain (PEM), keyless.
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
/// The layer annotation holding the transparency log's bundle (JSON).
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";

/// The largest payload read: cosign's are a few hundred bytes.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// One signature layer, as the registry holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignatureLayer {
    /// The payload (the blob the layer descriptor names, checked against its digest).
    pub payload: Vec<u8>,
    /// The `dev.cosignproject.cosign/signature` annotation (base64).
    pub signature: Option<String>,
    /// The `dev.sigstore.cosign/certificate` annotation (PEM).
    pub certificate: Option<String>,
    /// The `dev.sigstore.cosign/chain` annotation (PEM).
    pub chain: Option<String>,
    /// The `dev.sigstore.cosign/bundle` annotation (JSON).
    pub bundle: Option<String>,
}

/// What a rule trusts.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Signatures by this key.
    Key(PublicKey),
    /// Certificates from this root, for this identity and issuer.
    Keyless(Box<Keyless>),
}

/// Why no signature of a digest was accepted. The messages are part of the row's detail
/// contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The registry has no signature for the digest.
    #[error("no signature")]
    NoSignature,
    /// Signatures exist, none by the trusted key (or certificate) or none valid.
    #[error("signed by another key")]
    OtherKey,
    /// A trusted signature names another digest.
    #[error("signature is for another digest")]
    OtherDigest,
    /// A valid keyless signature whose certificate names another identity or issuer.
    #[error("identity does not match")]
    IdentityMismatch,
    /// A keyless signature whose certificate or log entry is not trusted.
    #[error("certificate not trusted: {0}")]
    Untrusted(String),
}

impl Rejection {
    /// How telling the reason is, to report the best one over several layers.
    fn rank(&self) -> u8 {
        match self {
            Rejection::NoSignature => 0,
            Rejection::OtherKey => 1,
            Rejection::Untrusted(_) => 2,
            Rejection::IdentityMismatch => 3,
            Rejection::OtherDigest => 4,
        }
    }
}

/// Verifies that some layer is signed as `trust` says and names `digest`; otherwise the most
/// telling reason over all layers.
pub fn verify(trust: &Trust, digest: &str, layers: &[SignatureLayer]) -> Result<(), Rejection> {
    best_of(layers.iter().map(|layer| {
        match trust {
            Trust::Key(key) => signed_by(key, layer),
            Trust::Keyless(keyless) => keyless.check(layer),
        }
        .and_then(|()| names_digest(&layer.payload, digest))
    }))
}

/// Verifies that some Sigstore bundle (its JSON) is signed as `trust` says and its statement
/// names `digest`; otherwise the most telling reason over all bundles.
pub fn verify_bundles(trust: &Trust, digest: &str, bundles: &[Vec<u8>]) -> Result<(), Rejection> {
    best_of(bundles.iter().map(|json| {
        match trust {
            Trust::Key(key) => bundle::signed_by_key(key, json),
            Trust::Keyless(keyless) => bundle::signed_keyless(keyless, json),
        }
        .and_then(|statement| statement.names_digest(digest))
    }))
}

/// The first success, else the most telling rejection (`NoSignature` when there is none).
pub fn best_of(outcomes: impl IntoIterator<Item = Result<(), Rejection>>) -> Result<(), Rejection> {
    let mut best = Rejection::NoSignature;
    for outcome in outcomes {
        match outcome {
            Ok(()) => return Ok(()),
            Err(why) if why.rank() > best.rank() => best = why,
            Err(_) => {}
        }
    }
    Err(best)
}

/// Whether `key` signed the layer's payload.
fn signed_by(key: &PublicKey, layer: &SignatureLayer) -> Result<(), Rejection> {
    let signature = decoded_signature(layer).ok_or(Rejection::OtherKey)?;
    if key.verifies(&layer.payload, &signature) {
        Ok(())
    } else {
        Err(Rejection::OtherKey)
    }
}

/// The layer's signature, decoded; `None` when absent or not base64.
fn decoded_signature(layer: &SignatureLayer) -> Option<Vec<u8>> {
    let text = layer.signature.as_deref()?;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
}

/// Cosign's simple signing payload: only what is checked.
#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    image: PayloadImage,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct PayloadImage {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}

/// The type cosign writes into `critical.type`.
const PAYLOAD_TYPE: &str = "cosign container image signature";

/// Whether a (signed) payload names exactly `digest`.
fn names_digest(payload: &[u8], digest: &str) -> Result<(), Rejection> {
    let parsed: Payload = serde_json::from_slice(payload).map_err(|_| Rejection::OtherDigest)?;
    if parsed.critical.kind == PAYLOAD_TYPE && parsed.critical.image.digest == digest {
        Ok(())
    } else {
        Err(Rejection::OtherDigest)
    }
}

/// The simple signing payload cosign signs for `reference`'s `digest` (tests and tools make
/// signatures with it).
pub fn payload_for(docker_reference: &str, digest: &str) -> Vec<u8> {
    serde_json::json!({
        "critical": {
            "identity": { "docker-reference": docker_reference },
            "image": { "docker-manifest-digest": digest },
            "type": PAYLOAD_TYPE,
        },
        "optional": null,
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests;
