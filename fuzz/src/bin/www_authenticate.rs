//! `WWW-Authenticate` values: a bearer challenge's parameters come from the header.

use tidewatch::registry::auth::{parse_challenge, Challenge};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(header) = std::str::from_utf8(data) else {
            return;
        };
        if let Some(Challenge::Bearer {
            realm,
            service,
            scope,
        }) = parse_challenge(header)
        {
            for value in [Some(realm), service, scope].into_iter().flatten() {
                assert!(header.contains(&value));
            }
        }
    });
}
