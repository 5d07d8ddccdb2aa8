//! A tag list's `Link` header: the next page it names is followed on the current origin only.

use tidewatch::registry::{next_link, same_origin_page};
use url::Url;

/// Pages the link is resolved against: the first byte of the input picks one.
const CURRENT: [&str; 4] = [
    "https://ghcr.io/v2/o/app/tags/list?n=1000",
    "http://127.0.0.1:5000/v2/app/tags/list?n=1000",
    "https://registry.example:8443/v2/a/b/c/tags/list?n=2&last=x",
    "http://[::1]:5000/v2/app/tags/list",
];

fn main() {
    let pages: Vec<Url> = CURRENT
        .iter()
        .map(|u| Url::parse(u).expect("a fixed, valid URL"))
        .collect();
    afl::fuzz!(|data: &[u8]| {
        let Some((&pick, rest)) = data.split_first() else {
            return;
        };
        let Ok(header) = std::str::from_utf8(rest) else {
            return;
        };
        let current = &pages[usize::from(pick) % pages.len()];
        if let Some(link) = next_link(header) {
            assert!(header.contains(&link));
            if let Some(next) = same_origin_page(current, &link) {
                assert_eq!(next.origin(), current.origin());
                assert_eq!(next.host_str(), current.host_str());
            }
        }
    });
}
