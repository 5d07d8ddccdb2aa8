//! Image references: what parses prints and parses the same.

use tidewatch::image_ref::ImageRef;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        if let Ok(r) = ImageRef::parse(text) {
            let printed = r.to_string();
            assert_eq!(ImageRef::parse(&printed).ok(), Some(r.clone()), "{printed}");
            assert!(r.tag().is_some() || r.digest().is_some());
            assert!(r.name().len() <= 255);
        }
    });
}
