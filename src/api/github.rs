//! GitHub's package webhooks: a push to GHCR arrives as a `package` (repository or organisation
//! webhook) or `registry_package` (GitHub App) event, signed with `X-Hub-Signature-256`.
//! Pure, tested on literals shaped like GitHub's documented payloads.

use aws_lc_rs::hmac;
use serde::Deserialize;

use crate::image_ref::ImageRef;

/// The registry a package event names when it names none: GitHub's container registry.
const GHCR: &str = "ghcr.io";

/// Whether `header` (`X-Hub-Signature-256: sha256=<hex>`) is the HMAC-SHA256 of `body` under
/// `secret`. The comparison takes the same time whatever the bytes (aws-lc's `verify`).
pub fn signature_ok(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Some(tag) = decode_hex(hex) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::verify(&key, body, &tag).is_ok()
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() != 64 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// What an event asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GithubEvent {
    /// A container image was pushed by tag: check the containers that follow this reference.
    Pushed(String),
    /// Anything else (another event, another action, another package type, a push by digest
    /// only), with why, for the log.
    Ignored(String),
}

/// Why an event that should name a package could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    /// Not the JSON of a package event.
    #[error("not a GitHub {event} event: {source}")]
    Body {
        /// `X-GitHub-Event`.
        event: String,
        /// What serde said.
        source: serde_json::Error,
    },
}

#[derive(Deserialize)]
struct PackageEvent {
    #[serde(default)]
    action: String,
    /// `package` events.
    #[serde(default)]
    package: Option<Package>,
    /// `registry_package` events.
    #[serde(default)]
    registry_package: Option<Package>,
}

#[derive(Deserialize)]
struct Package {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    owner: Option<Owner>,
    /// "CONTAINER" in `package` events, "container" in `registry_package` ones.
    #[serde(default)]
    package_type: Option<String>,
    #[serde(default)]
    package_version: Option<PackageVersion>,
    #[serde(default)]
    registry: Option<Registry>,
}

#[derive(Deserialize)]
struct Owner {
    #[serde(default)]
    login: String,
}

#[derive(Deserialize)]
struct PackageVersion {
    #[serde(default)]
    container_metadata: Option<ContainerMetadata>,
}

#[derive(Deserialize)]
struct ContainerMetadata {
    #[serde(default)]
    tag: Option<Tag>,
}

#[derive(Deserialize)]
struct Tag {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct Registry {
    #[serde(default)]
    url: Option<String>,
}

/// Reads the body of an event of type `event` (`X-GitHub-Event`).
pub fn parse_github(event: &str, body: &[u8]) -> Result<GithubEvent, GithubError> {
    if event != "package" && event != "registry_package" {
        return Ok(GithubEvent::Ignored(format!("a {event:?} event")));
    }
    let body_error = |source| GithubError::Body {
        event: event.to_string(),
        source,
    };
    // An object first: serde would also fill the struct from a JSON array.
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(body).map_err(body_error)?;
    let parsed: PackageEvent =
        serde_json::from_value(serde_json::Value::Object(object)).map_err(body_error)?;
    if parsed.action != "published" && parsed.action != "updated" {
        return Ok(GithubEvent::Ignored(format!(
            "action {:?}: only \"published\" and \"updated\" are pushes",
            parsed.action
        )));
    }
    let Some(package) = parsed.package.or(parsed.registry_package) else {
        return Ok(GithubEvent::Ignored("the event names no package".into()));
    };
    let kind = package.package_type.unwrap_or_default();
    if !kind.eq_ignore_ascii_case("container") {
        return Ok(GithubEvent::Ignored(format!(
            "a package of type {kind:?}, not a container image"
        )));
    }
    let tag = package
        .package_version
        .and_then(|v| v.container_metadata)
        .and_then(|m| m.tag)
        .and_then(|t| t.name)
        .filter(|t| !t.trim().is_empty());
    let Some(tag) = tag else {
        // Each platform manifest of a multi-arch push arrives as its own untagged version.
        return Ok(GithubEvent::Ignored("a version without a tag".into()));
    };
    let owner = package
        .namespace
        .filter(|n| !n.trim().is_empty())
        .or(package.owner.map(|o| o.login))
        .unwrap_or_default();
    let host = package
        .registry
        .and_then(|r| r.url)
        .and_then(|url| registry_host(&url))
        .unwrap_or_else(|| GHCR.to_string());
    // GHCR's references are lower case whatever the owner's or package's spelling.
    let reference = format!("{host}/{owner}/{}:{}", package.name, tag.trim()).to_lowercase();
    match ImageRef::parse(&reference) {
        Ok(r) if !r.is_pinned() => Ok(GithubEvent::Pushed(r.to_string())),
        Ok(_) => Ok(GithubEvent::Ignored("a push by digest".into())),
        Err(e) => Ok(GithubEvent::Ignored(format!("no image reference: {e}"))),
    }
}

/// `ghcr.io` of `https://ghcr.io/acme`: the host (and port) of the registry's URL.
fn registry_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host = rest.split(['/', '?', '#']).next()?.trim();
    (!host.is_empty() && !host.contains('@')).then(|| host.to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// GitHub's documented example ("Validating webhook deliveries").
    #[test]
    fn the_documented_signature_is_accepted_and_any_other_refused() {
        let secret = b"It's a Secret to Everybody";
        let body = b"Hello, World!";
        let good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(signature_ok(secret, body, Some(good)));
        assert!(!signature_ok(secret, b"Hello, World?", Some(good)));
        assert!(!signature_ok(b"another secret", body, Some(good)));
        let flipped = good.replace("757107", "757108");
        assert!(!signature_ok(secret, body, Some(&flipped)));
        for bad in [
            "",
            "sha256=",
            "sha1=757107ea0eb2509fc211221cce984b8a37570b6d",
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1",
            "sha256=zz7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "sha256=é57107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1",
        ] {
            assert!(!signature_ok(secret, body, Some(bad)), "{bad:?}");
        }
        assert!(!signature_ok(secret, body, None));
    }

    /// Shaped like GitHub's `package` webhook payload for a container pushed to GHCR (trimmed of
    /// fields tidewatch does not read; `repository`, `sender`, ids and urls as GitHub sends).
    pub(crate) fn package_event(action: &str, package_type: &str, tag: &str) -> String {
        format!(
            r#"{{
  "action": "{action}",
  "package": {{
    "id": 1234567,
    "name": "Hello-World",
    "namespace": "Octo-Org",
    "description": "",
    "ecosystem": "CONTAINER",
    "package_type": "{package_type}",
    "html_url": "https://github.com/orgs/Octo-Org/packages/container/package/hello-world",
    "created_at": "2026-12-01T10:00:00Z",
    "updated_at": "2026-12-07T10:00:00Z",
    "owner": {{"login": "Octo-Org", "id": 1, "type": "Organization"}},
    "package_version": {{
      "id": 7654321,
      "version": "sha256:3333333333333333333333333333333333333333333333333333333333333333",
      "name": "sha256:3333333333333333333333333333333333333333333333333333333333333333",
      "description": "",
      "summary": "",
      "manifest": "",
      "html_url": "https://github.com/orgs/Octo-Org/packages/container/hello-world/7654321",
      "target_commitish": "main",
      "target_oid": "0123456789abcdef0123456789abcdef01234567",
      "created_at": "2026-12-07T10:00:00Z",
      "updated_at": "2026-12-07T10:00:00Z",
      "metadata": [],
      "container_metadata": {{
        "tag": {{"name": "{tag}", "digest": "sha256:3333333333333333333333333333333333333333333333333333333333333333"}},
        "labels": {{}},
        "manifest": {{}}
      }},
      "package_files": [],
      "installation_command": "docker pull ghcr.io/octo-org/hello-world:{tag}",
      "package_url": "ghcr.io/octo-org/hello-world:{tag}"
    }},
    "registry": {{"about_url": "https://docs.github.com/packages/learn-github-packages/introduction-to-github-packages", "name": "GitHub CONTAINER registry", "type": "CONTAINER", "url": "https://ghcr.io/octo-org", "vendor": "GitHub Inc"}}
  }},
  "repository": {{"id": 42, "name": "hello-world", "full_name": "Octo-Org/hello-world", "private": true}},
  "organization": {{"login": "Octo-Org", "id": 1}},
  "sender": {{"login": "octocat", "id": 2, "type": "User"}}
}}"#
        )
    }

    #[test]
    fn a_published_container_names_its_ghcr_reference_in_lower_case() {
        for action in ["published", "updated"] {
            let body = package_event(action, "CONTAINER", "v1.2");
            assert_eq!(
                parse_github("package", body.as_bytes()).unwrap(),
                GithubEvent::Pushed("ghcr.io/octo-org/hello-world:v1.2".into())
            );
        }
    }

    #[test]
    fn a_registry_package_event_is_read_the_same_way() {
        let body = package_event("published", "container", "latest").replacen(
            "\"package\":",
            "\"registry_package\":",
            1,
        );
        assert_eq!(
            parse_github("registry_package", body.as_bytes()).unwrap(),
            GithubEvent::Pushed("ghcr.io/octo-org/hello-world:latest".into())
        );
    }

    #[test]
    fn other_events_actions_types_and_untagged_versions_are_ignored() {
        let ignored = |event: &str, body: &str| match parse_github(event, body.as_bytes()) {
            Ok(GithubEvent::Ignored(why)) => why,
            other => panic!("{event}: {other:?}"),
        };
        assert!(ignored("ping", "{\"zen\": \"Design for failure.\"}").contains("ping"));
        assert!(ignored("push", "not even json").contains("push"));
        assert!(
            ignored("package", &package_event("deleted", "CONTAINER", "v1")).contains("deleted")
        );
        assert!(ignored("package", &package_event("published", "npm", "v1")).contains("npm"));
        assert!(ignored("package", &package_event("published", "CONTAINER", "")).contains("tag"));
        assert!(ignored("package", r#"{"action": "published"}"#).contains("no package"));
    }

    #[test]
    fn a_malformed_package_event_is_an_error_naming_the_event() {
        let e = parse_github("package", b"{\"action\": 5}").unwrap_err();
        assert!(e.to_string().contains("package event"), "{e}");
        assert!(parse_github("package", b"[]").is_err());
    }

    #[test]
    fn the_registry_host_comes_from_its_url_and_nothing_else_of_it() {
        assert_eq!(
            registry_host("https://ghcr.io/octo-org").as_deref(),
            Some("ghcr.io")
        );
        assert_eq!(
            registry_host("http://127.0.0.1:5000/x?y#z").as_deref(),
            Some("127.0.0.1:5000")
        );
        assert_eq!(registry_host("https://user@evil.example/"), None);
        assert_eq!(registry_host("https:///path"), None);
        let body = package_event("published", "CONTAINER", "v1")
            .replace("https://ghcr.io/octo-org", "http://127.0.0.1:5000/octo-org");
        assert_eq!(
            parse_github("package", body.as_bytes()).unwrap(),
            GithubEvent::Pushed("127.0.0.1:5000/octo-org/hello-world:v1".into())
        );
    }
}
