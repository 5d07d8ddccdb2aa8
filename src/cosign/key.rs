//! Public keys as cosign writes them (`cosign.pub`: a PEM `SubjectPublicKeyInfo`), and checking
//! a signature with one.

use aws_lc_rs::signature::{self, ParsedPublicKey, VerificationAlgorithm};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::SubjectPublicKeyInfoDer;

use super::der;

const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// A key that signatures are checked with.
#[derive(Clone)]
pub struct PublicKey {
    key: ParsedPublicKey,
    /// `ECDSA P-256`..., for messages.
    kind: &'static str,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.kind)
    }
}

/// Why a key file could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not a PEM `PUBLIC KEY`.
    #[error("not a PEM public key (-----BEGIN PUBLIC KEY-----), as `cosign generate-key-pair` writes to cosign.pub")]
    NotPem,
    /// A key type cosign does not sign with.
    #[error("unsupported key type: ECDSA P-256 or P-384, Ed25519 and RSA are")]
    Unsupported,
    /// The key's bits are not a valid key of its type.
    #[error("the {0} key is malformed")]
    Malformed(&'static str),
}

impl PublicKey {
    /// Reads a PEM `PUBLIC KEY` (`cosign.pub`).
    pub fn from_pem(pem: &[u8]) -> Result<PublicKey, KeyError> {
        let spki = SubjectPublicKeyInfoDer::from_pem_slice(pem).map_err(|_| KeyError::NotPem)?;
        PublicKey::from_spki(&spki)
    }

    /// Reads a DER `SubjectPublicKeyInfo`.
    pub fn from_spki(spki: &[u8]) -> Result<PublicKey, KeyError> {
        let der::Spki {
            algorithm: oid,
            param,
            key: bits,
        } = der::spki_parts(spki).ok_or(KeyError::NotPem)?;
        // The digest goes with the curve, as cosign (and sigstore-go) sign.
        let (algorithm, kind): (&'static dyn VerificationAlgorithm, _) = match (oid, param) {
            (EC_PUBLIC_KEY, Some(P256)) => (&signature::ECDSA_P256_SHA256_ASN1, "ECDSA P-256"),
            (EC_PUBLIC_KEY, Some(P384)) => (&signature::ECDSA_P384_SHA384_ASN1, "ECDSA P-384"),
            (ED25519, _) => (&signature::ED25519, "Ed25519"),
            (RSA, _) => (&signature::RSA_PKCS1_2048_8192_SHA256, "RSA"),
            _ => return Err(KeyError::Unsupported),
        };
        let key = ParsedPublicKey::new(algorithm, bits).map_err(|_| KeyError::Malformed(kind))?;
        Ok(PublicKey { key, kind })
    }

    /// Whether `signature` is this key's over `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(message, signature).is_ok()
    }

    /// The key type, for messages.
    pub fn kind(&self) -> &'static str {
        self.kind
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

    fn pem(der: &[u8]) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n")
    }

    #[test]
    fn a_p256_key_checks_its_own_signatures_only() {
        let rng = SystemRandom::new();
        let pair = |_| {
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap()
        };
        let (ours, theirs) = (pair(0), pair(1));
        let spki = ours.public_key().as_der().unwrap();
        let key = PublicKey::from_pem(pem(spki.as_ref()).as_bytes()).unwrap();
        assert_eq!(key.kind(), "ECDSA P-256");
        let signed = ours.sign(&rng, b"payload").unwrap();
        assert!(key.verifies(b"payload", signed.as_ref()));
        assert!(!key.verifies(b"payload!", signed.as_ref()));
        let other = theirs.sign(&rng, b"payload").unwrap();
        assert!(!key.verifies(b"payload", other.as_ref()));
    }

    #[test]
    fn what_is_not_a_public_key_is_refused_by_name() {
        assert_eq!(PublicKey::from_pem(b"hello").unwrap_err(), KeyError::NotPem);
        // An SPKI naming an unknown algorithm (1.2.3).
        let spki = [
            0x30, 0x0a, 0x30, 0x04, 0x06, 0x02, 0x2a, 0x03, 0x03, 0x02, 0x00, 0x01,
        ];
        assert_eq!(
            PublicKey::from_pem(pem(&spki).as_bytes()).unwrap_err(),
            KeyError::Unsupported
        );
    }
}
