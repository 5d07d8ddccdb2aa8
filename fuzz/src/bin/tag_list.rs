//! A page of a tag list: never more tags than the body has room for.

use tidewatch::registry::parse_tag_page;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(tags) = parse_tag_page(data) {
            assert!(tags.len() * 3 <= data.len());
        }
    });
}
