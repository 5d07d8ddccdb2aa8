//! Keyless signatures: a short-lived certificate from a Fulcio-style CA names who signed, and
//! the transparency log's signed entry timestamp (SET) says when, so the certificate is
//! checked at that moment. Everything comes from a Sigstore trusted root file: no network.

use std::collections::BTreeMap;

use base64::Engine as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use serde::Deserialize;
use webpki::{EndEntityCert, KeyUsage};

use super::{decoded_signature, der, PublicKey, Rejection, SignatureLayer};

/// Code signing, the extended key usage Fulcio certificates carry.
const CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];
/// `subjectAltName`.
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
/// Fulcio's OIDC issuer extension (1.3.6.1.4.1.57264.1.8), a DER string.
const ISSUER_V2: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xbf, 0x30, 0x01, 0x08];
/// Its deprecated form (1.3.6.1.4.1.57264.1.1), the raw URL.
const ISSUER_V1: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xbf, 0x30, 0x01, 0x01];

/// The largest bundle annotation read.
const MAX_BUNDLE_BYTES: usize = 64 * 1024;
/// Intermediate certificates read from a signature, at most.
pub(super) const MAX_CHAIN: usize = 8;

/// A signature made with a certificate's key, as found in a layer or a bundle.
pub(super) struct Signed<'a> {
    /// The signing certificate (DER).
    pub leaf: &'a CertificateDer<'a>,
    /// Intermediates the signature brought along.
    pub chain: Vec<CertificateDer<'static>>,
    /// What was signed.
    pub message: &'a [u8],
    /// The signature.
    pub signature: &'a [u8],
}

/// Who must have signed.
#[derive(Debug, Clone)]
pub enum Identity {
    /// Exactly this certificate identity (a workflow URI, an e-mail address).
    Exact(String),
    /// An identity this expression matches as a whole.
    Regex(regex::Regex),
}

impl Identity {
    /// An [`Identity::Regex`] that must match the whole identity, as if written `^(?:...)$`.
    pub fn whole_match(expression: &str) -> Result<Identity, regex::Error> {
        regex::Regex::new(&format!("^(?:{expression})$")).map(Identity::Regex)
    }

    pub(super) fn matches(&self, identity: &str) -> bool {
        match self {
            Identity::Exact(want) => want == identity,
            Identity::Regex(re) => re.is_match(identity),
        }
    }
}

/// A keyless rule's trust: the roots, the identity and the issuer.
#[derive(Debug, Clone)]
pub struct Keyless {
    /// The trusted root file's CAs and logs.
    pub root: TrustedRoot,
    /// Who must have signed.
    pub identity: Identity,
    /// The OIDC issuer that vouched for the identity.
    pub issuer: String,
    /// Require a transparency log entry (SET) and check the certificate at its time.
    pub tlog: bool,
}

/// The parts of a Sigstore `trusted_root.json` that offline verification uses.
#[derive(Debug, Clone, Default)]
pub struct TrustedRoot {
    /// CA certificates (DER): the last of each chain is a trust anchor, the rest intermediates.
    anchors: Vec<CertificateDer<'static>>,
    intermediates: Vec<CertificateDer<'static>>,
    /// Transparency log keys by log id (hex of the key id).
    logs: BTreeMap<String, PublicKey>,
}

/// Why a trusted root file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustedRootError {
    /// Not the JSON of a trusted root.
    #[error("not a Sigstore trusted root: {0}")]
    Json(String),
    /// A certificate or key is not base64, or not usable.
    #[error("{0}")]
    Material(String),
    /// No certificate authority at all.
    #[error("names no certificate authority (certificateAuthorities[].certChain)")]
    NoAuthority,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRoot {
    #[serde(default)]
    certificate_authorities: Vec<RawAuthority>,
    #[serde(default)]
    tlogs: Vec<RawLog>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAuthority {
    cert_chain: RawChain,
}

/// A chain of certificates, as the trusted root and bundles write it.
#[derive(Deserialize)]
pub(super) struct RawChain {
    pub certificates: Vec<RawBytes>,
}

/// Bytes, base64, as the trusted root and bundles write them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawBytes {
    pub raw_bytes: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLog {
    public_key: RawBytes,
    log_id: RawLogId,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLogId {
    key_id: String,
}

fn base64(text: &str, what: &str) -> Result<Vec<u8>, TrustedRootError> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| TrustedRootError::Material(format!("{what}: not base64 ({e})")))
}

impl TrustedRoot {
    /// Parses a `trusted_root.json` (Sigstore's `TrustedRoot` message, as JSON).
    pub fn parse(json: &[u8]) -> Result<TrustedRoot, TrustedRootError> {
        let raw: RawRoot =
            serde_json::from_slice(json).map_err(|e| TrustedRootError::Json(e.to_string()))?;
        let mut root = TrustedRoot::default();
        for (i, ca) in raw.certificate_authorities.iter().enumerate() {
            let chain = &ca.cert_chain.certificates;
            for (j, cert) in chain.iter().enumerate() {
                let what = format!("certificateAuthorities[{i}].certChain.certificates[{j}]");
                let der = CertificateDer::from(base64(&cert.raw_bytes, &what)?);
                if j + 1 == chain.len() {
                    // Checked now, so a bad anchor fails at start-up rather than every cycle.
                    webpki::anchor_from_trusted_cert(&der).map_err(|e| {
                        TrustedRootError::Material(format!("{what}: not a CA certificate ({e})"))
                    })?;
                    root.anchors.push(der);
                } else {
                    root.intermediates.push(der);
                }
            }
        }
        if root.anchors.is_empty() {
            return Err(TrustedRootError::NoAuthority);
        }
        for (i, log) in raw.tlogs.iter().enumerate() {
            let what = format!("tlogs[{i}]");
            let spki = base64(&log.public_key.raw_bytes, &format!("{what}.publicKey"))?;
            let key = PublicKey::from_spki(&spki)
                .map_err(|e| TrustedRootError::Material(format!("{what}.publicKey: {e}")))?;
            let id = base64(&log.log_id.key_id, &format!("{what}.logId"))?;
            root.logs.insert(hex(&id), key);
        }
        Ok(root)
    }

    /// How many transparency logs it names.
    pub fn log_count(&self) -> usize {
        self.logs.len()
    }
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Keyless {
    /// Checks one layer: its certificate chains to the root at the signing time, its key
    /// signed the payload, and it names the identity and issuer.
    pub(super) fn check(&self, layer: &SignatureLayer) -> Result<(), Rejection> {
        let Some(pem) = layer.certificate.as_deref() else {
            // A keyed signature: not what this rule trusts.
            return Err(Rejection::OtherKey);
        };
        let leaf = CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|_| {
            Rejection::Untrusted("the certificate annotation is not a PEM certificate".into())
        })?;
        let signature = decoded_signature(layer).ok_or(Rejection::OtherKey)?;
        let chain = layer.chain.as_deref().map_or_else(Vec::new, |chain| {
            CertificateDer::pem_slice_iter(chain.as_bytes())
                .filter_map(Result::ok)
                .take(MAX_CHAIN)
                .collect()
        });
        let signed = Signed {
            leaf: &leaf,
            chain,
            message: &layer.payload,
            signature: &signature,
        };
        self.check_signed(&signed, || self.logged_at(layer, &leaf, &signature))
    }

    /// Checks a signature made with a certificate's key: the key signed the message, the
    /// certificate chains to the root at the signing time (the log's, from `logged`, unless
    /// the rule opts out of the log), and it names the identity and issuer.
    pub(super) fn check_signed(
        &self,
        signed: &Signed<'_>,
        logged: impl FnOnce() -> Result<i64, Rejection>,
    ) -> Result<(), Rejection> {
        let untrusted = |why: &str| Rejection::Untrusted(why.to_string());
        let parts =
            der::tbs_parts(signed.leaf).ok_or_else(|| untrusted("unreadable certificate"))?;
        let cert = EndEntityCert::try_from(signed.leaf)
            .map_err(|e| Rejection::Untrusted(e.to_string()))?;
        let verifies = [
            webpki::aws_lc_rs::ECDSA_P256_SHA256,
            webpki::aws_lc_rs::ECDSA_P384_SHA384,
            webpki::aws_lc_rs::ED25519,
        ]
        .iter()
        .any(|alg| {
            cert.verify_signature(*alg, signed.message, signed.signature)
                .is_ok()
        });
        if !verifies {
            return Err(Rejection::OtherKey);
        }
        let at = if self.tlog {
            logged()?
        } else {
            // No log entry dates the signature: the certificate's own start is the only time
            // there is (weaker: see the README).
            parts.not_before
        };
        let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(at).map_err(|_| untrusted("signing time before 1970"))?,
        ));
        let anchors: Vec<_> = self
            .root
            .anchors
            .iter()
            .filter_map(|a| webpki::anchor_from_trusted_cert(a).ok())
            .collect();
        let mut intermediates = self.root.intermediates.clone();
        intermediates.extend(signed.chain.iter().cloned());
        cert.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &intermediates,
            time,
            KeyUsage::required(CODE_SIGNING),
            None,
            None,
        )
        .map_err(|e| Rejection::Untrusted(format!("not issued by the trusted root ({e:?})")))?;
        let mut identities = Vec::new();
        let mut issuer = None;
        for (oid, value) in &parts.extensions {
            match *oid {
                SUBJECT_ALT_NAME => identities.extend(der::san_identities(value)),
                ISSUER_V2 => issuer = der::string(value).or(issuer),
                ISSUER_V1 if issuer.is_none() => {
                    issuer = std::str::from_utf8(value).ok().map(str::to_string);
                }
                _ => {}
            }
        }
        let identity_ok = identities.iter().any(|i| self.identity.matches(i));
        if identity_ok && issuer.as_deref() == Some(self.issuer.as_str()) {
            Ok(())
        } else {
            Err(Rejection::IdentityMismatch)
        }
    }

    /// The time a log of the root recorded `entry`, once `set` (its signed entry timestamp,
    /// base64) checks out with that log's key. What the entry's body says is the caller's to
    /// check.
    pub(super) fn set_time(&self, entry: &LogEntry, set: &str) -> Result<i64, Rejection> {
        let untrusted = |why: &str| Rejection::Untrusted(why.to_string());
        let key = self
            .root
            .logs
            .get(&entry.log_id)
            .ok_or_else(|| untrusted("the log entry is from a log the root does not name"))?;
        let set = base64::engine::general_purpose::STANDARD
            .decode(set.trim())
            .map_err(|_| untrusted("the log entry's SET is not base64"))?;
        if key.verifies(entry.canonical().as_bytes(), &set) {
            Ok(entry.integrated_time)
        } else {
            Err(untrusted("the log entry's SET is not signed by the log"))
        }
    }

    /// The time the transparency log recorded the signature, once its SET checks out with a
    /// log key of the root and its entry is this layer's signature, payload and certificate.
    fn logged_at(
        &self,
        layer: &SignatureLayer,
        leaf: &[u8],
        signature: &[u8],
    ) -> Result<i64, Rejection> {
        let untrusted = |why: String| Rejection::Untrusted(why);
        let bundle = layer
            .bundle
            .as_deref()
            .filter(|b| b.len() <= MAX_BUNDLE_BYTES)
            .ok_or_else(|| untrusted("no transparency log entry (bundle)".into()))?;
        let bundle: Bundle = serde_json::from_str(bundle)
            .map_err(|e| untrusted(format!("unreadable log bundle: {e}")))?;
        let entry = &bundle.payload;
        let at = self.set_time(entry, &bundle.signed_entry_timestamp)?;
        let body = base64::engine::general_purpose::STANDARD
            .decode(entry.body.trim())
            .map_err(|_| untrusted("the log entry's body is not base64".into()))?;
        let record: Hashedrekord = serde_json::from_slice(&body)
            .map_err(|e| untrusted(format!("the log entry is not a hashedrekord: {e}")))?;
        let payload_hash =
            hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &layer.payload).as_ref());
        let logged_signature = base64::engine::general_purpose::STANDARD
            .decode(record.spec.signature.content.trim())
            .unwrap_or_default();
        let logged_cert = base64::engine::general_purpose::STANDARD
            .decode(record.spec.signature.public_key.content.trim())
            .ok()
            .and_then(|pem| CertificateDer::from_pem_slice(&pem).ok());
        let same = record.spec.data.hash.algorithm == "sha256"
            && record.spec.data.hash.value == payload_hash
            && logged_signature == signature
            && logged_cert.as_deref() == Some(leaf);
        if !same {
            return Err(untrusted("the log entry is for another signature".into()));
        }
        Ok(at)
    }
}

/// Cosign's `dev.sigstore.cosign/bundle` annotation.
#[derive(Deserialize)]
struct Bundle {
    #[serde(rename = "SignedEntryTimestamp")]
    signed_entry_timestamp: String,
    #[serde(rename = "Payload")]
    payload: LogEntry,
}

/// The log's entry, whose canonical JSON the SET signs.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct LogEntry {
    /// The entry's canonical body, base64.
    pub body: String,
    /// When the log took it in, Unix seconds.
    pub integrated_time: i64,
    /// Its place in the log.
    #[serde(rename = "logIndex")]
    pub log_index: i64,
    /// The log's id, hex.
    #[serde(rename = "logID")]
    pub log_id: String,
}

impl LogEntry {
    /// RFC 8785 canonical JSON: keys in order, no spaces (the values are a string, two
    /// integers and hex, which serialise canonically).
    fn canonical(&self) -> String {
        format!(
            "{{\"body\":{},\"integratedTime\":{},\"logID\":{},\"logIndex\":{}}}",
            serde_json::Value::from(self.body.as_str()),
            self.integrated_time,
            serde_json::Value::from(self.log_id.as_str()),
            self.log_index
        )
    }
}

#[derive(Deserialize)]
struct Hashedrekord {
    spec: RekordSpec,
}

#[derive(Deserialize)]
struct RekordSpec {
    data: RekordData,
    signature: RekordSignature,
}

#[derive(Deserialize)]
struct RekordData {
    hash: RekordHash,
}

#[derive(Deserialize)]
struct RekordHash {
    algorithm: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RekordSignature {
    content: String,
    public_key: RekordKey,
}

#[derive(Deserialize)]
struct RekordKey {
    content: String,
}
