//! Cosign signatures made in the tests and pushed in cosign's layout: a key pair generated
//! here, the simple signing payload of a digest, and the manifest tagged `sha256-<hex>.sig`
//! whose layers are the payloads, with the signature (and, keyless, the certificate, chain and
//! log bundle) in each layer's annotations.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::Engine as _;
use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
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
    /// The key pair of a PKCS#8 private key (a certificate's key, from rcgen).
    pub fn from_pkcs8(pkcs8: &[u8]) -> Signer {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8)
            .unwrap_or_else(|e| panic!("not a P-256 PKCS#8 key: {e}"));
        Signer { pair }
    }

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

/// A test CA standing in for Fulcio: it issues short-lived code-signing certificates naming an
/// identity (SAN URI or e-mail) and the OIDC issuer (Fulcio's extension 1.3.6.1.4.1.57264.1.8).
pub struct Fulcio {
    issuer: Issuer<'static, KeyPair>,
    root_der: Vec<u8>,
}

impl Fulcio {
    /// A new root.
    pub fn new() -> Fulcio {
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("CA key: {e}"));
        let mut params = CertificateParams::new(Vec::<String>::new())
            .unwrap_or_else(|e| panic!("CA params: {e}"));
        params
            .distinguished_name
            .push(DnType::CommonName, "tidewatch test fulcio");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params
            .self_signed(&key)
            .unwrap_or_else(|e| panic!("CA certificate: {e}"));
        Fulcio {
            issuer: Issuer::new(params, key),
            root_der: cert.der().to_vec(),
        }
    }

    /// A signing certificate (PEM) for `identity` vouched for by `oidc_issuer`, and its key.
    pub fn certify(&self, identity: &str, oidc_issuer: &str) -> (String, Signer) {
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("leaf key: {e}"));
        let mut params = CertificateParams::new(Vec::<String>::new())
            .unwrap_or_else(|e| panic!("leaf params: {e}"));
        let name = Ia5String::try_from(identity.to_owned())
            .unwrap_or_else(|e| panic!("identity {identity}: {e}"));
        params.subject_alt_names = vec![if identity.contains('@') && !identity.contains("://") {
            SanType::Rfc822Name(name)
        } else {
            SanType::URI(name)
        }];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        // Ten minutes from a minute ago, as Fulcio issues: inside the root's validFor.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        params.not_before = epoch + now.saturating_sub(std::time::Duration::from_secs(60));
        params.not_after = epoch + now + std::time::Duration::from_secs(600);
        // A DER UTF8String holding the issuer URL.
        let mut issuer_value = vec![0x0c, u8::try_from(oidc_issuer.len()).unwrap_or(0)];
        issuer_value.extend_from_slice(oidc_issuer.as_bytes());
        params.custom_extensions = vec![CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 57264, 1, 8],
            issuer_value,
        )];
        let cert = params
            .signed_by(&key, &self.issuer)
            .unwrap_or_else(|e| panic!("leaf certificate: {e}"));
        (cert.pem(), Signer::from_pkcs8(&key.serialize_der()))
    }
}

/// A transparency log standing in for Rekor: its key signs entries' timestamps (SETs).
pub struct Rekor {
    signer: Signer,
}

impl Rekor {
    /// A new log key.
    pub fn new() -> Rekor {
        Rekor {
            signer: Signer::generate(),
        }
    }

    /// The log id: the SHA-256 of its public key.
    fn log_id(&self) -> Vec<u8> {
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.signer.spki())
            .as_ref()
            .to_vec()
    }

    /// Logs `body` (a Rekor entry body) now: the body as base64, the time, the log id (hex)
    /// and the SET over the entry's canonical JSON.
    fn log(&self, body: &Value) -> (String, u64, String, Vec<u8>) {
        let body = b64(body.to_string().as_bytes());
        let integrated_time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let log_id = hex(&self.log_id());
        // RFC 8785: keys sorted, no spaces.
        let canonical = format!(
            "{{\"body\":\"{body}\",\"integratedTime\":{integrated_time},\"logID\":\"{log_id}\",\"logIndex\":1}}"
        );
        let set = self.signer.sign(canonical.as_bytes());
        (body, integrated_time, log_id, set)
    }

    /// Cosign's `dev.sigstore.cosign/bundle` for `payload` signed with `signature` by the
    /// holder of `cert_pem`, logged now.
    pub fn bundle(&self, payload: &[u8], signature: &[u8], cert_pem: &str) -> String {
        let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, payload);
        let body = json!({
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": { "hash": { "algorithm": "sha256", "value": hex(hash.as_ref()) } },
                "signature": {
                    "content": b64(signature),
                    "publicKey": { "content": b64(cert_pem.as_bytes()) },
                },
            },
        });
        let (body, integrated_time, log_id, set) = self.log(&body);
        json!({
            "SignedEntryTimestamp": b64(&set),
            "Payload": {
                "body": body,
                "integratedTime": integrated_time,
                "logIndex": 1,
                "logID": log_id,
            },
        })
        .to_string()
    }

    /// A Sigstore bundle's `tlogEntries[]` item for a DSSE envelope of `payload` signed with
    /// `signature` by the holder of `cert_pem`, logged now with an inclusion promise (SET).
    pub fn dsse_entry(&self, payload: &[u8], signature: &[u8], cert_pem: &str) -> Value {
        let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, payload);
        let body = json!({
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": { "algorithm": "sha256", "value": hex(&[0; 32]) },
                "payloadHash": { "algorithm": "sha256", "value": hex(hash.as_ref()) },
                "signatures": [{
                    "signature": b64(signature),
                    "verifier": b64(cert_pem.as_bytes()),
                }],
            },
        });
        let (body, integrated_time, _, set) = self.log(&body);
        json!({
            "logIndex": "1",
            "logId": { "keyId": b64(&self.log_id()) },
            "kindVersion": { "kind": "dsse", "version": "0.0.1" },
            "integratedTime": integrated_time.to_string(),
            "inclusionPromise": { "signedEntryTimestamp": b64(&set) },
            "canonicalizedBody": body,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A Sigstore `trusted_root.json` naming `fulcio`'s root and, when given, `rekor`'s key.
pub fn trusted_root(fulcio: &Fulcio, rekor: Option<&Rekor>) -> String {
    let tlogs: Vec<Value> = rekor
        .map(|r| {
            json!({
                "baseUrl": "https://rekor.test.invalid",
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": b64(&r.signer.spki()),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": { "start": "2020-01-01T00:00:00Z" },
                },
                "logId": { "keyId": b64(&r.log_id()) },
            })
        })
        .into_iter()
        .collect();
    json!({
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": tlogs,
        "certificateAuthorities": [{
            "subject": { "organization": "tidewatch", "commonName": "test fulcio" },
            "uri": "https://fulcio.test.invalid",
            "certChain": { "certificates": [{ "rawBytes": b64(&fulcio.root_der) }] },
            "validFor": { "start": "2020-01-01T00:00:00Z" },
        }],
        "ctlogs": [],
        "timestampAuthorities": [],
    })
    .to_string()
}

impl SigLayer {
    /// `payload` signed keyless, as `cosign sign` in CI pushes it: a certificate for
    /// `identity` from `fulcio`, and, with `rekor`, the log's bundle.
    pub fn keyless(
        fulcio: &Fulcio,
        rekor: Option<&Rekor>,
        identity: &str,
        oidc_issuer: &str,
        payload: Vec<u8>,
    ) -> SigLayer {
        let (cert, signer) = fulcio.certify(identity, oidc_issuer);
        let signature = signer.sign(&payload);
        let mut annotations = BTreeMap::from([
            (
                "dev.cosignproject.cosign/signature".to_owned(),
                b64(&signature),
            ),
            ("dev.sigstore.cosign/certificate".to_owned(), cert.clone()),
            ("dev.sigstore.cosign/chain".to_owned(), String::new()),
        ]);
        if let Some(rekor) = rekor {
            annotations.insert(
                "dev.sigstore.cosign/bundle".to_owned(),
                rekor.bundle(&payload, &signature, &cert),
            );
        }
        SigLayer {
            payload,
            annotations,
        }
    }
}

const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const IN_TOTO: &str = "application/vnd.in-toto+json";
const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The predicate type of `cosign sign`'s (cosign 3) statement.
pub const SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";

/// The in-toto statement cosign 3 signs for `digest`: one subject, the digest.
pub fn statement(repository: &str, digest: &str) -> Vec<u8> {
    let (algorithm, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
    serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{ "name": repository, "digest": { algorithm: hex } }],
        "predicateType": SIGN_PREDICATE,
        "predicate": {},
    }))
    .unwrap_or_else(|e| panic!("cannot serialise a statement: {e}"))
}

/// DSSE's pre-authentication encoding of an in-toto payload: what the envelope's signature
/// signs.
fn pae(payload: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {IN_TOTO} {} ", IN_TOTO.len(), payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

fn envelope(statement: &[u8], signature: &[u8]) -> Value {
    json!({
        "payload": b64(statement),
        "payloadType": IN_TOTO,
        "signatures": [{ "sig": b64(signature), "keyid": "" }],
    })
}

/// The bundle `cosign sign --key` (cosign 3) writes for `statement`: the DSSE envelope and a
/// hint of the key.
pub fn keyed_bundle(signer: &Signer, statement: &[u8]) -> Vec<u8> {
    let signature = signer.sign(&pae(statement));
    json_bytes(&json!({
        "mediaType": BUNDLE_V03,
        "verificationMaterial": { "publicKey": { "hint": "" } },
        "dsseEnvelope": envelope(statement, &signature),
    }))
}

/// The bundle keyless `cosign sign` (cosign 3) writes for `statement`: a certificate for
/// `identity` from `fulcio`, the envelope, and `rekor`'s entry.
pub fn keyless_bundle(
    fulcio: &Fulcio,
    rekor: &Rekor,
    identity: &str,
    oidc_issuer: &str,
    statement: &[u8],
) -> Vec<u8> {
    let (cert, signer) = fulcio.certify(identity, oidc_issuer);
    let signature = signer.sign(&pae(statement));
    let der = CertificateDer::from_pem_slice(cert.as_bytes())
        .unwrap_or_else(|e| panic!("the leaf certificate is not PEM: {e}"));
    json_bytes(&json!({
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {
            "certificate": { "rawBytes": b64(&der) },
            "tlogEntries": [rekor.dsse_entry(statement, &signature, &cert)],
        },
        "dsseEnvelope": envelope(statement, &signature),
    }))
}

fn json_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|e| panic!("cannot serialise {value}: {e}"))
}

/// Pushes `bundle` as cosign 3 does on a registry without the referrers API: an artifact
/// manifest whose subject is `digest`, and the referrers tag schema's index at `sha256-<hex>`
/// listing it (replacing what was listed). Returns the artifact manifest's digest.
pub fn push_bundle(registry: &Registry, repo: &str, digest: &str, bundle: Vec<u8>) -> String {
    block_on(async {
        let oci = Oci::new(registry, repo);
        let (subject, subject_size) = oci.manifest(digest).await;
        let (config_digest, config_size) = oci.push_blob(b"{}".to_vec()).await;
        let (bundle_digest, bundle_size) = oci.push_blob(bundle).await;
        let annotations = json!({
            "dev.sigstore.bundle.content": "dsse-envelope",
            "dev.sigstore.bundle.predicateType": SIGN_PREDICATE,
        });
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": BUNDLE_V03,
            "config": { "mediaType": OCI_EMPTY, "digest": config_digest, "size": config_size },
            "layers": [{ "mediaType": BUNDLE_V03, "digest": bundle_digest, "size": bundle_size }],
            "subject": { "mediaType": subject["mediaType"], "digest": digest, "size": subject_size },
            "annotations": annotations,
        });
        let (artifact, artifact_size) = oci
            .push_manifest(json_bytes(&manifest), OCI_MANIFEST, None)
            .await;
        let index = json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{
                "mediaType": OCI_MANIFEST,
                "digest": artifact,
                "size": artifact_size,
                "artifactType": BUNDLE_V03,
                "annotations": annotations,
            }],
        });
        let tag = referrers_tag(digest);
        oci.push_manifest(json_bytes(&index), OCI_INDEX, Some(&tag))
            .await;
        artifact
    })
}

/// The referrers tag schema's tag of `digest`.
pub fn referrers_tag(digest: &str) -> String {
    digest.replacen(':', "-", 1)
}
