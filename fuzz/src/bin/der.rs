//! The DER reader of certificates and keys a registry serves: every read stays inside its
//! input, and anything malformed is `None`, never a panic.

use tidewatch::cosign::{der, PublicKey};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Some((tlv, rest)) = der::next(data) {
            // A tag and a length octet at least, then the content, then what follows.
            assert!(2 + tlv.content.len() + rest.len() <= data.len());
        }
        assert!(der::children(data).count() * 2 <= data.len());
        if let Some(spki) = der::spki_parts(data) {
            assert!(spki.algorithm.len() + spki.key.len() < data.len());
        }
        if let Some(tbs) = der::tbs_parts(data) {
            let read: usize = tbs.extensions.iter().map(|(o, v)| o.len() + v.len()).sum();
            assert!(read < data.len());
        }
        let names: usize = der::san_identities(data).iter().map(String::len).sum();
        assert!(names <= data.len());
        if let Some(text) = der::string(data) {
            assert!(text.len() + 2 <= data.len());
        }
        let _ = PublicKey::from_spki(data);
    });
}
