//! Webhook bodies: what is named is a normalised reference by tag, once each.

use tidewatch::api::parse_hook;
use tidewatch::image_ref::ImageRef;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(found) = parse_hook(data) {
            for (i, image) in found.images.iter().enumerate() {
                let parsed = ImageRef::parse(image).expect("a named image parses");
                assert_eq!(&parsed.to_string(), image);
                assert!(!parsed.is_pinned());
                assert!(!found.images[..i].contains(image));
            }
        }
    });
}
