//! Sigstore bundles, what cosign 3 writes by default: one JSON document holding the signed
//! content, the signer's certificate (or a hint of its key) and the transparency log's entry.
//! For an image, `cosign sign` signs a DSSE envelope whose payload is an in-toto statement with
//! predicate type `https://sigstore.dev/cosign/sign/v1` and the image digest as its subject;
//! that is what is accepted here. A bundle holding a bare `messageSignature` (what `cosign
//! sign-blob` writes) names no image, and is refused.

use base64::Engine as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Deserializer};

use super::keyless::{hex, LogEntry, RawBytes, RawChain, Signed, MAX_CHAIN};
use super::{Keyless, PublicKey, Rejection};

/// The largest bundle read: cosign's are a few KiB.
pub const MAX_BUNDLE_BYTES: usize = 256 * 1024;
/// Bundle media types (also a referrer's `artifactType`): v0.3, then the older forms that
/// differ only in how the version is written.
pub const BUNDLE_MEDIA_TYPES: &[&str] = &[
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
];
/// The DSSE payload type of an in-toto statement.
const IN_TOTO: &str = "application/vnd.in-toto+json";
/// The predicate type of `cosign sign`'s statement.
pub const SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
/// Signatures of one envelope, or log entries of one bundle, looked at.
const MAX_ENTRIES: usize = 4;

/// Whether `media_type` is one of the bundle media types.
pub fn is_bundle_media_type(media_type: &str) -> bool {
    BUNDLE_MEDIA_TYPES.contains(&media_type)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBundle {
    media_type: String,
    verification_material: Material,
    dsse_envelope: Option<Envelope>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Material {
    /// v0.3: the leaf alone.
    certificate: Option<RawBytes>,
    /// v0.1 and v0.2: the leaf first, then intermediates.
    x509_certificate_chain: Option<RawChain>,
    #[serde(default)]
    tlog_entries: Vec<TlogEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TlogEntry {
    #[serde(deserialize_with = "int64")]
    log_index: i64,
    log_id: LogId,
    kind_version: KindVersion,
    #[serde(deserialize_with = "int64")]
    integrated_time: i64,
    inclusion_promise: Option<Promise>,
    canonicalized_body: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogId {
    key_id: String,
}

#[derive(Deserialize)]
struct KindVersion {
    kind: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Promise {
    signed_entry_timestamp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload: String,
    payload_type: String,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Deserialize)]
struct EnvelopeSignature {
    sig: String,
}

/// Protobuf's JSON writes 64-bit integers as strings; a number is taken too.
fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int {
        Text(String),
        Number(i64),
    }
    match Int::deserialize(d)? {
        Int::Number(n) => Ok(n),
        Int::Text(t) => t.parse().map_err(serde::de::Error::custom),
    }
}

fn decode(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
}

/// DSSE's pre-authentication encoding: what an envelope's signatures sign.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Checks one bundle against a key: some signature of its envelope is the key's.
pub(super) fn signed_by_key(key: &PublicKey, json: &[u8]) -> Result<Statement, Rejection> {
    let bundle = parse(json).ok_or(Rejection::OtherKey)?;
    let (envelope, payload) = envelope(&bundle).ok_or(Rejection::OtherKey)?;
    let message = pae(&envelope.payload_type, &payload);
    let signed = envelope
        .signatures
        .iter()
        .take(MAX_ENTRIES)
        .filter_map(|s| decode(&s.sig))
        .any(|sig| key.verifies(&message, &sig));
    if signed {
        Ok(Statement(payload))
    } else {
        Err(Rejection::OtherKey)
    }
}

/// Checks one bundle against a keyless rule: its certificate's key signed the envelope, and
/// (unless the rule opts out) a log of the root recorded exactly that signature.
pub(super) fn signed_keyless(keyless: &Keyless, json: &[u8]) -> Result<Statement, Rejection> {
    let bundle = parse(json).ok_or(Rejection::OtherKey)?;
    let material = &bundle.verification_material;
    let mut certificates = match (&material.certificate, &material.x509_certificate_chain) {
        (Some(leaf), _) => vec![leaf],
        (None, Some(chain)) => chain.certificates.iter().take(MAX_CHAIN + 1).collect(),
        // A keyed bundle (`publicKey` hint): not what this rule trusts.
        (None, None) => return Err(Rejection::OtherKey),
    }
    .into_iter()
    .map(|c| decode(&c.raw_bytes).map(CertificateDer::from));
    let leaf = certificates
        .next()
        .flatten()
        .ok_or_else(|| Rejection::Untrusted("the bundle's certificate is not base64".into()))?;
    let chain = certificates.flatten().collect();
    let (envelope, payload) = envelope(&bundle).ok_or(Rejection::OtherKey)?;
    let message = pae(&envelope.payload_type, &payload);
    let mut best = Rejection::OtherKey;
    for signature in envelope
        .signatures
        .iter()
        .take(MAX_ENTRIES)
        .filter_map(|s| decode(&s.sig))
    {
        let signed = Signed {
            leaf: &leaf,
            chain: Vec::clone(&chain),
            message: &message,
            signature: &signature,
        };
        let logged = || logged_at(keyless, material, &payload, &leaf, &signature);
        match keyless.check_signed(&signed, logged) {
            Ok(()) => return Ok(Statement(payload)),
            Err(why) if why.rank() > best.rank() => best = why,
            Err(_) => {}
        }
    }
    Err(best)
}

fn parse(json: &[u8]) -> Option<RawBundle> {
    if json.len() > MAX_BUNDLE_BYTES {
        return None;
    }
    let bundle: RawBundle = serde_json::from_slice(json).ok()?;
    is_bundle_media_type(&bundle.media_type).then_some(bundle)
}

/// The bundle's DSSE envelope and its decoded payload, when it holds an in-toto statement.
fn envelope(bundle: &RawBundle) -> Option<(&Envelope, Vec<u8>)> {
    let envelope = bundle.dsse_envelope.as_ref()?;
    if envelope.payload_type != IN_TOTO {
        return None;
    }
    Some((envelope, decode(&envelope.payload)?))
}

/// When a log of the root recorded this signature: an entry with a valid SET whose body is a
/// DSSE record of this payload, signed with this signature by this certificate.
fn logged_at(
    keyless: &Keyless,
    material: &Material,
    payload: &[u8],
    leaf: &[u8],
    signature: &[u8],
) -> Result<i64, Rejection> {
    let untrusted = |why: &str| Rejection::Untrusted(why.to_string());
    let mut best = untrusted("no transparency log entry (tlogEntries with an inclusionPromise)");
    for entry in material.tlog_entries.iter().take(MAX_ENTRIES) {
        let Some(promise) = &entry.inclusion_promise else {
            continue;
        };
        let Some(log_id) = decode(&entry.log_id.key_id) else {
            continue;
        };
        let log_entry = LogEntry {
            body: entry.canonicalized_body.clone(),
            integrated_time: entry.integrated_time,
            log_index: entry.log_index,
            log_id: hex(&log_id),
        };
        let at = match keyless.set_time(&log_entry, &promise.signed_entry_timestamp) {
            Ok(at) => at,
            Err(why) => {
                best = why;
                continue;
            }
        };
        if entry.kind_version.kind == "dsse"
            && records(&entry.canonicalized_body, payload, leaf, signature)
        {
            return Ok(at);
        }
        best = untrusted("the log entry is for another signature");
    }
    Err(best)
}

/// Whether a DSSE log entry's body records `payload` signed with `signature` by `leaf`.
fn records(body: &str, payload: &[u8], leaf: &[u8], signature: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Body {
        kind: String,
        spec: Spec,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Spec {
        payload_hash: Hash,
        signatures: Vec<Logged>,
    }
    #[derive(Deserialize)]
    struct Hash {
        algorithm: String,
        value: String,
    }
    #[derive(Deserialize)]
    struct Logged {
        signature: String,
        verifier: String,
    }
    let Some(body) = decode(body).and_then(|b| serde_json::from_slice::<Body>(&b).ok()) else {
        return false;
    };
    let payload_hash = hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, payload).as_ref());
    let hash = &body.spec.payload_hash;
    body.kind == "dsse"
        && hash.algorithm == "sha256"
        && hash.value == payload_hash
        && body.spec.signatures.iter().take(MAX_ENTRIES).any(|s| {
            let cert =
                decode(&s.verifier).and_then(|pem| CertificateDer::from_pem_slice(&pem).ok());
            decode(&s.signature).as_deref() == Some(signature) && cert.as_deref() == Some(leaf)
        })
}

/// A signed in-toto statement, whose subjects are checked next.
pub(super) struct Statement(Vec<u8>);

impl Statement {
    /// Whether it is `cosign sign`'s statement and names exactly `digest`.
    pub(super) fn names_digest(&self, digest: &str) -> Result<(), Rejection> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Raw {
            #[serde(rename = "_type")]
            kind: String,
            predicate_type: String,
            subject: Vec<Subject>,
        }
        #[derive(Deserialize)]
        struct Subject {
            digest: std::collections::BTreeMap<String, String>,
        }
        let raw: Raw = serde_json::from_slice(&self.0).map_err(|_| Rejection::OtherDigest)?;
        let (algorithm, hex) = digest.split_once(':').ok_or(Rejection::OtherDigest)?;
        let named = raw
            .subject
            .iter()
            .any(|s| s.digest.get(algorithm).map(String::as_str) == Some(hex));
        let statement = raw.kind.starts_with("https://in-toto.io/Statement/");
        // `cosign sign` signs one image per statement: a statement about several is not a
        // signature of this one.
        if statement && raw.predicate_type == SIGN_PREDICATE && raw.subject.len() == 1 && named {
            Ok(())
        } else {
            Err(Rejection::OtherDigest)
        }
    }
}
