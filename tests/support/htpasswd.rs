//! htpasswd files for registries with basic auth (`auth.htpasswd`). distribution accepts bcrypt
//! entries only, which is what `htpasswd -B` writes.

use std::fs;
use std::path::Path;

/// bcrypt's lowest cost: the hashes only have to be valid, and the registry checks one on every
/// request, so a high cost would only slow the tests.
const COST: u32 = 4;

/// Writes an htpasswd file with one bcrypt line per `(user, password)`.
pub fn write(path: &Path, users: &[(&str, &str)]) {
    let mut contents = String::new();
    for (user, password) in users {
        assert!(
            !user.contains(':'),
            "an htpasswd user name cannot hold ':': {user:?}"
        );
        let hash = bcrypt::hash_with_result(password, COST)
            .unwrap_or_else(|error| panic!("cannot hash the password of {user}: {error}"))
            // `$2y$`, as `htpasswd -B` writes; Go's bcrypt reads every variant.
            .format_for_version(bcrypt::Version::TwoY);
        contents.push_str(&format!("{user}:{hash}\n"));
    }
    fs::write(path, contents)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
}

#[test]
fn htpasswd_lines_are_bcrypt_and_verify() {
    let dir = super::scratch_dir("selftest-");
    let path = dir.path().join("htpasswd");
    write(&path, &[("ci", "s3cret"), ("other", "x")]);
    let contents = fs::read_to_string(&path).unwrap_or_else(|error| panic!("{error}"));
    let lines: Vec<&str> = contents.lines().collect();
    assert_eq!(lines.len(), 2);
    let (user, hash) = lines[0]
        .split_once(':')
        .unwrap_or_else(|| panic!("{contents}"));
    assert_eq!(user, "ci");
    assert!(hash.starts_with("$2y$04$"), "{hash}");
    assert!(bcrypt::verify("s3cret", hash).unwrap_or(false));
    assert!(!bcrypt::verify("wrong", hash).unwrap_or(true));
}
