use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::Engine as _;

use super::*;

const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const OTHER: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn pair() -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap()
}

fn trust(pair: &EcdsaKeyPair) -> Trust {
    let spki = pair.public_key().as_der().unwrap();
    Trust::Key(PublicKey::from_spki(spki.as_ref()).unwrap())
}

fn layer(pair: &EcdsaKeyPair, digest: &str) -> SignatureLayer {
    let payload = payload_for("registry.example/app", digest);
    let signature = pair.sign(&SystemRandom::new(), &payload).unwrap();
    SignatureLayer {
        payload,
        signature: Some(base64::engine::general_purpose::STANDARD.encode(signature.as_ref())),
        ..SignatureLayer::default()
    }
}

#[test]
fn a_digest_signed_by_the_key_is_verified() {
    let ours = pair();
    assert_eq!(
        verify(&trust(&ours), DIGEST, &[layer(&ours, DIGEST)]),
        Ok(())
    );
}

#[test]
fn one_good_layer_among_others_is_enough() {
    let (ours, theirs) = (pair(), pair());
    let layers = [
        layer(&theirs, DIGEST),
        layer(&ours, OTHER),
        layer(&ours, DIGEST),
    ];
    assert_eq!(verify(&trust(&ours), DIGEST, &layers), Ok(()));
}

#[test]
fn each_rejection_says_why() {
    let (ours, theirs) = (pair(), pair());
    let trust = trust(&ours);
    assert_eq!(verify(&trust, DIGEST, &[]), Err(Rejection::NoSignature));
    assert_eq!(
        verify(&trust, DIGEST, &[layer(&theirs, DIGEST)]),
        Err(Rejection::OtherKey)
    );
    assert_eq!(
        verify(&trust, DIGEST, &[layer(&ours, OTHER)]),
        Err(Rejection::OtherDigest)
    );
    // The most telling reason wins, whatever the layers' order.
    assert_eq!(
        verify(
            &trust,
            DIGEST,
            &[layer(&ours, OTHER), layer(&theirs, DIGEST)]
        ),
        Err(Rejection::OtherDigest)
    );
    assert_eq!(Rejection::NoSignature.to_string(), "no signature");
    assert_eq!(Rejection::OtherKey.to_string(), "signed by another key");
    assert_eq!(
        Rejection::OtherDigest.to_string(),
        "signature is for another digest"
    );
    assert_eq!(
        Rejection::IdentityMismatch.to_string(),
        "identity does not match"
    );
}

#[test]
fn a_tampered_payload_or_a_missing_signature_is_not_the_key_s() {
    let ours = pair();
    let mut tampered = layer(&ours, DIGEST);
    tampered.payload = payload_for("registry.example/evil", DIGEST);
    let mut unsigned = layer(&ours, DIGEST);
    unsigned.signature = None;
    let mut garbled = layer(&ours, DIGEST);
    garbled.signature = Some("not base64!".into());
    for l in [tampered, unsigned, garbled] {
        assert_eq!(
            verify(&trust(&ours), DIGEST, &[l]),
            Err(Rejection::OtherKey)
        );
    }
}

#[test]
fn a_payload_of_another_type_names_no_digest() {
    let payload = format!(
        r#"{{"critical":{{"image":{{"docker-manifest-digest":"{DIGEST}"}},"type":"something else"}}}}"#
    );
    assert_eq!(
        names_digest(payload.as_bytes(), DIGEST),
        Err(Rejection::OtherDigest)
    );
    assert_eq!(names_digest(b"[]", DIGEST), Err(Rejection::OtherDigest));
    assert_eq!(names_digest(&payload_for("r/a", DIGEST), DIGEST), Ok(()));
}

mod untrusted {
    use proptest::prelude::*;

    use super::super::{der, keyless, verify, Identity, Keyless, Trust, TrustedRoot};
    use super::*;

    fn pem(label: &str, der: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN {label}-----\n{b64}\n-----END {label}-----\n")
    }

    proptest! {
        /// Whatever a registry serves as a signature layer (payload, annotations, a
        /// certificate of arbitrary DER), checking it ends in a verdict, never a panic.
        #[test]
        fn anything_a_registry_serves_is_refused_never_a_panic(
            payload in proptest::collection::vec(any::<u8>(), 0..256),
            signature in ".{0,120}",
            cert in proptest::collection::vec(any::<u8>(), 0..400),
            bundle in ".{0,200}",
        ) {
            let layer = SignatureLayer {
                payload,
                signature: Some(signature),
                certificate: Some(pem("CERTIFICATE", &cert)),
                chain: Some(pem("CERTIFICATE", &cert)),
                bundle: Some(bundle),
            };
            let keyless = Trust::Keyless(Box::new(Keyless {
                root: TrustedRoot::default(),
                identity: Identity::Exact("me@example.com".into()),
                issuer: "https://issuer.example".into(),
                tlog: true,
            }));
            prop_assert!(verify(&keyless, DIGEST, std::slice::from_ref(&layer)).is_err());
            prop_assert!(verify(&trust(&pair()), DIGEST, &[layer]).is_err());
            let _ = der::tbs_parts(&cert);
            let _ = der::spki_parts(&cert);
            let _ = der::san_identities(&cert);
            let _ = keyless::TrustedRoot::parse(&cert);
        }
    }
}

#[test]
fn an_identity_expression_matches_whole_identities_only() {
    let re = Identity::whole_match("https://github.com/acme/.*@refs/heads/main|a|ab").unwrap();
    assert!(re.matches("https://github.com/acme/app/.github/workflows/x.yml@refs/heads/main"));
    assert!(
        re.matches("ab"),
        "an alternative that matches whole, not just first"
    );
    assert!(!re.matches("https://github.com/acme/app/x.yml@refs/heads/main-evil"));
    assert!(!re.matches("xhttps://github.com/acme/app@refs/heads/main"));
}
