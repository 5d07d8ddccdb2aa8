//! Keyless signatures: a short-lived certificate from a Fulcio-style CA names who signed, and
//! the transparency log's signed entry timestamp (SET) says when, so the certificate is
//! checked at that moment. Everything comes from a Sigstore trusted root file: no network.

use std::collections::BTreeMap;

use base64::Engine as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::TrustAnchor;
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
    /// Certificate authorities, each with the time it may have issued in.
    authorities: Vec<Authority>,
    /// Transparency log keys by log id (hex of the key id), each with the time it may have
    /// signed in.
    logs: BTreeMap<String, (PublicKey, Validity)>,
}

/// One CA of the root: its chain's last certificate is the trust anchor, the rest
/// intermediates.
#[derive(Debug, Clone)]
struct Authority {
    anchor: CertificateDer<'static>,
    intermediates: Vec<CertificateDer<'static>>,
    valid: Validity,
}

/// A `validFor` window, Unix seconds: a CA or log key rotated out has an end, and a
/// certificate or entry is checked only against keys valid at its signing time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Validity {
    start: Option<i64>,
    end: Option<i64>,
}

impl Validity {
    fn contains(&self, at: i64) -> bool {
        self.start.is_none_or(|start| start <= at) && self.end.is_none_or(|end| at <= end)
    }
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
    valid_for: Option<RawValidity>,
}

#[derive(Deserialize)]
struct RawValidity {
    start: Option<String>,
    end: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPublicKey {
    raw_bytes: String,
    valid_for: Option<RawValidity>,
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
    public_key: RawPublicKey,
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

/// A `validFor` (RFC 3339 times) as Unix seconds; none is always.
fn validity(raw: Option<&RawValidity>, what: &str) -> Result<Validity, TrustedRootError> {
    let time = |text: &Option<String>| {
        text.as_deref()
            .map(|t| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .map(|at| at.timestamp())
                    .map_err(|e| TrustedRootError::Material(format!("{what}.validFor: {t:?}: {e}")))
            })
            .transpose()
    };
    Ok(match raw {
        Some(v) => Validity {
            start: time(&v.start)?,
            end: time(&v.end)?,
        },
        None => Validity::default(),
    })
}

impl TrustedRoot {
    /// Parses a `trusted_root.json` (Sigstore's `TrustedRoot` message, as JSON).
    pub fn parse(json: &[u8]) -> Result<TrustedRoot, TrustedRootError> {
        let raw: RawRoot =
            serde_json::from_slice(json).map_err(|e| TrustedRootError::Json(e.to_string()))?;
        let mut root = TrustedRoot::default();
        for (i, ca) in raw.certificate_authorities.iter().enumerate() {
            let mut chain = Vec::new();
            for (j, cert) in ca.cert_chain.certificates.iter().enumerate() {
                let what = format!("certificateAuthorities[{i}].certChain.certificates[{j}]");
                chain.push((CertificateDer::from(base64(&cert.raw_bytes, &what)?), what));
            }
            let Some((anchor, what)) = chain.pop() else {
                continue;
            };
            // Checked now, so a bad anchor fails at start-up rather than every cycle.
            webpki::anchor_from_trusted_cert(&anchor).map_err(|e| {
                TrustedRootError::Material(format!("{what}: not a CA certificate ({e})"))
            })?;
            root.authorities.push(Authority {
                anchor,
                intermediates: chain.into_iter().map(|(der, _)| der).collect(),
                valid: validity(
                    ca.valid_for.as_ref(),
                    &format!("certificateAuthorities[{i}]"),
                )?,
            });
        }
        if root.authorities.is_empty() {
            return Err(TrustedRootError::NoAuthority);
        }
        for (i, log) in raw.tlogs.iter().enumerate() {
            let what = format!("tlogs[{i}]");
            let spki = base64(&log.public_key.raw_bytes, &format!("{what}.publicKey"))?;
            let key = PublicKey::from_spki(&spki)
                .map_err(|e| TrustedRootError::Material(format!("{what}.publicKey: {e}")))?;
            let id = base64(&log.log_id.key_id, &format!("{what}.logId"))?;
            let valid = validity(
                log.public_key.valid_for.as_ref(),
                &format!("{what}.publicKey"),
            )?;
            root.logs.insert(hex(&id), (key, valid));
        }
        Ok(root)
    }

    /// The trust anchors and intermediates of the CAs valid at `at` (Unix seconds).
    fn authorities_at(&self, at: i64) -> (Vec<TrustAnchor<'_>>, Vec<CertificateDer<'static>>) {
        let valid = self.authorities.iter().filter(|a| a.valid.contains(at));
        let anchors = valid
            .clone()
            .filter_map(|a| webpki::anchor_from_trusted_cert(&a.anchor).ok())
            .collect();
        let intermediates = valid
            .flat_map(|a| a.intermediates.iter().cloned())
            .collect();
        (anchors, intermediates)
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
        let (anchors, mut intermediates) = self.root.authorities_at(at);
        if anchors.is_empty() {
            return Err(untrusted(
                "no certificate authority of the trusted root is valid at the signing time",
            ));
        }
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
        let (key, valid) = self
            .root
            .logs
            .get(&entry.log_id)
            .ok_or_else(|| untrusted("the log entry is from a log the root does not name"))?;
        let set = base64::engine::general_purpose::STANDARD
            .decode(set.trim())
            .map_err(|_| untrusted("the log entry's SET is not base64"))?;
        if !key.verifies(entry.canonical().as_bytes(), &set) {
            return Err(untrusted("the log entry's SET is not signed by the log"));
        }
        if !valid.contains(entry.integrated_time) {
            return Err(untrusted(
                "the log's key was not valid (validFor) at the entry's time",
            ));
        }
        Ok(entry.integrated_time)
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

#[cfg(test)]
mod tests {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_ASN1_SIGNING};

    use super::*;

    /// 2020-01-01T00:00:00Z, 2021-01-01T00:00:00Z and 2022-01-01T00:00:00Z.
    const Y2020: i64 = 1_577_836_800;
    const Y2021: i64 = 1_609_459_200;
    const Y2022: i64 = 1_640_995_200;
    const LOG_ID: [u8; 4] = [7, 7, 7, 7];

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn log_key() -> EcdsaKeyPair {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap()
    }

    fn ca(name: &str) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().der().to_vec()
    }

    /// A root whose first CA issued in 2020 only and whose second took over in 2021, and
    /// whose log key signed in 2020 only.
    fn root(old: &[u8], new: &[u8], log: &EcdsaKeyPair) -> TrustedRoot {
        let json = format!(
            r#"{{
  "certificateAuthorities": [
    {{ "certChain": {{ "certificates": [{{ "rawBytes": "{old}" }}] }},
       "validFor": {{ "start": "2020-01-01T00:00:00Z", "end": "2021-01-01T00:00:00Z" }} }},
    {{ "certChain": {{ "certificates": [{{ "rawBytes": "{new}" }}] }},
       "validFor": {{ "start": "2021-01-01T00:00:00Z" }} }}
  ],
  "tlogs": [
    {{ "publicKey": {{ "rawBytes": "{key}",
                      "validFor": {{ "start": "2020-01-01T00:00:00Z", "end": "2021-01-01T00:00:00Z" }} }},
       "logId": {{ "keyId": "{id}" }} }}
  ]
}}"#,
            old = b64(old),
            new = b64(new),
            key = b64(log.public_key().as_der().unwrap().as_ref()),
            id = b64(&LOG_ID),
        );
        TrustedRoot::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn a_window_holds_its_start_and_its_end_and_nothing_outside() {
        let window = Validity {
            start: Some(Y2020),
            end: Some(Y2021),
        };
        assert!(window.contains(Y2020) && window.contains(Y2021));
        assert!(!window.contains(Y2020 - 1) && !window.contains(Y2021 + 1));
        let open = Validity {
            start: Some(Y2021),
            end: None,
        };
        assert!(open.contains(Y2022) && !open.contains(Y2020));
        assert!(Validity::default().contains(0));
    }

    #[test]
    fn only_the_cas_valid_at_the_signing_time_are_trust_anchors() {
        let (old, new) = (ca("old"), ca("new"));
        let root = root(&old, &new, &log_key());
        let subject = |der: &[u8]| {
            let cert = CertificateDer::from(der);
            webpki::anchor_from_trusted_cert(&cert)
                .unwrap()
                .subject
                .as_ref()
                .to_vec()
        };
        let subjects_at = |at| {
            root.authorities_at(at)
                .0
                .iter()
                .map(|a| a.subject.as_ref().to_vec())
                .collect::<Vec<_>>()
        };
        assert!(subjects_at(Y2020 - 1).is_empty());
        assert_eq!(subjects_at(Y2020 + 60), [subject(&old)]);
        // The moment of the hand-over belongs to both.
        assert_eq!(subjects_at(Y2021), [subject(&old), subject(&new)]);
        assert_eq!(subjects_at(Y2022), [subject(&new)]);
    }

    #[test]
    fn a_set_counts_only_from_a_log_key_valid_at_the_entry_s_time() {
        let log = log_key();
        let keyless = Keyless {
            root: root(&ca("old"), &ca("new"), &log),
            identity: Identity::Exact("me@example.com".into()),
            issuer: "https://issuer.example".into(),
            tlog: true,
        };
        let logged = |at| {
            let entry = LogEntry {
                body: "e30=".into(),
                integrated_time: at,
                log_index: 1,
                log_id: hex(&LOG_ID),
            };
            let set = log
                .sign(&SystemRandom::new(), entry.canonical().as_bytes())
                .unwrap();
            keyless.set_time(&entry, &b64(set.as_ref()))
        };
        assert_eq!(logged(Y2020 + 60), Ok(Y2020 + 60));
        assert_eq!(
            logged(Y2022),
            Err(Rejection::Untrusted(
                "the log's key was not valid (validFor) at the entry's time".into()
            ))
        );
    }

    #[test]
    fn a_valid_for_that_is_no_rfc_3339_time_is_refused_at_start_up() {
        let json = format!(
            r#"{{ "certificateAuthorities": [{{ "certChain": {{ "certificates": [{{ "rawBytes": "{}" }}] }},
                 "validFor": {{ "start": "last tuesday" }} }}] }}"#,
            b64(&ca("ca"))
        );
        let error = TrustedRoot::parse(json.as_bytes()).unwrap_err().to_string();
        assert!(
            error.starts_with("certificateAuthorities[0].validFor: \"last tuesday\""),
            "{error}"
        );
    }
}
