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

mod bundles {
    use super::super::{pae, verify_bundles, SIGN_PREDICATE};
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn statement(digests: &[&str]) -> Vec<u8> {
        let subject: Vec<_> = digests
            .iter()
            .map(|d| serde_json::json!({ "name": "r/a", "digest": { "sha256": &d[7..] } }))
            .collect();
        serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": subject,
            "predicateType": SIGN_PREDICATE,
            "predicate": {},
        })
        .to_string()
        .into_bytes()
    }

    /// A bundle as `cosign sign --key` (cosign 3) writes it, with `media_type`.
    fn bundle(pair: &EcdsaKeyPair, statement: &[u8], media_type: &str) -> Vec<u8> {
        let message = pae("application/vnd.in-toto+json", statement);
        let sig = pair.sign(&SystemRandom::new(), &message).unwrap();
        serde_json::json!({
            "mediaType": media_type,
            "verificationMaterial": { "publicKey": { "hint": "" } },
            "dsseEnvelope": {
                "payload": b64(statement),
                "payloadType": "application/vnd.in-toto+json",
                "signatures": [{ "sig": b64(sig.as_ref()), "keyid": "" }],
            },
        })
        .to_string()
        .into_bytes()
    }

    const V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

    #[test]
    fn dsse_signs_the_pre_authentication_encoding() {
        assert_eq!(pae("t/x", b"hello"), b"DSSEv1 3 t/x 5 hello");
    }

    #[test]
    fn a_bundle_signed_by_the_key_for_the_digest_is_verified_in_each_version() {
        let ours = pair();
        for media_type in [
            V03,
            "application/vnd.dev.sigstore.bundle+json;version=0.2",
            "application/vnd.dev.sigstore.bundle+json;version=0.1",
        ] {
            let b = bundle(&ours, &statement(&[DIGEST]), media_type);
            assert_eq!(
                verify_bundles(&trust(&ours), DIGEST, &[b]),
                Ok(()),
                "{media_type}"
            );
        }
        let unknown = bundle(&ours, &statement(&[DIGEST]), "application/json");
        assert_eq!(
            verify_bundles(&trust(&ours), DIGEST, &[unknown]),
            Err(Rejection::OtherKey)
        );
    }

    #[test]
    fn a_bundle_by_another_key_or_for_another_digest_is_refused_by_name() {
        let (ours, theirs) = (pair(), pair());
        let trust = trust(&ours);
        assert_eq!(
            verify_bundles(&trust, DIGEST, &[]),
            Err(Rejection::NoSignature)
        );
        let by_them = bundle(&theirs, &statement(&[DIGEST]), V03);
        assert_eq!(
            verify_bundles(&trust, DIGEST, &[by_them]),
            Err(Rejection::OtherKey)
        );
        let of_other = bundle(&ours, &statement(&[OTHER]), V03);
        assert_eq!(
            verify_bundles(&trust, DIGEST, &[of_other]),
            Err(Rejection::OtherDigest)
        );
        // A statement about several images is not a signature of one of them.
        let of_both = bundle(&ours, &statement(&[DIGEST, OTHER]), V03);
        assert_eq!(
            verify_bundles(&trust, DIGEST, &[of_both]),
            Err(Rejection::OtherDigest)
        );
    }

    #[test]
    fn an_attestation_or_a_message_signature_is_no_image_signature() {
        let ours = pair();
        let provenance = String::from_utf8(statement(&[DIGEST]))
            .unwrap()
            .replace(SIGN_PREDICATE, "https://slsa.dev/provenance/v1");
        let attestation = bundle(&ours, provenance.as_bytes(), V03);
        assert_eq!(
            verify_bundles(&trust(&ours), DIGEST, &[attestation]),
            Err(Rejection::OtherDigest)
        );
        // What `cosign sign-blob` writes: a signature over a digest, no statement.
        let blob = serde_json::json!({
            "mediaType": V03,
            "verificationMaterial": { "publicKey": { "hint": "" } },
            "messageSignature": {
                "messageDigest": { "algorithm": "SHA2_256", "digest": b64(&[0; 32]) },
                "signature": b64(b"sig"),
            },
        });
        assert_eq!(
            verify_bundles(&trust(&ours), DIGEST, &[blob.to_string().into_bytes()]),
            Err(Rejection::OtherKey)
        );
    }

    #[test]
    fn a_keyed_bundle_is_not_what_a_keyless_rule_trusts() {
        let ours = pair();
        let keyless = Trust::Keyless(Box::new(super::super::Keyless {
            root: super::super::TrustedRoot::default(),
            identity: super::super::Identity::Exact("me@example.com".into()),
            issuer: "https://issuer.example".into(),
            tlog: true,
        }));
        let b = bundle(&ours, &statement(&[DIGEST]), V03);
        assert_eq!(
            verify_bundles(&keyless, DIGEST, &[b]),
            Err(Rejection::OtherKey)
        );
    }
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

        /// Whatever a registry serves as a bundle, checking it ends in a verdict.
        #[test]
        fn any_bundle_a_registry_serves_is_refused_never_a_panic(
            json in proptest::collection::vec(any::<u8>(), 0..512),
            text in ".{0,300}",
        ) {
            let keyless = Trust::Keyless(Box::new(Keyless {
                root: TrustedRoot::default(),
                identity: Identity::Exact("me@example.com".into()),
                issuer: "https://issuer.example".into(),
                tlog: true,
            }));
            for trust in [keyless, trust(&pair())] {
                prop_assert!(
                    super::super::verify_bundles(&trust, DIGEST, &[json.clone(), text.clone().into_bytes()]).is_err()
                );
            }
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
