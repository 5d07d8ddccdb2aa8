//! Image references, normalised the way Docker does (`nginx` is `docker.io/library/nginx:latest`,
//! `index.docker.io` is `docker.io`), so that a container's reference, its image's `RepoDigests`
//! and a registry's answer can be compared without false positives.

use std::fmt;

/// The longest `registry/repository`, as Docker counts it (after normalisation).
const MAX_NAME_LEN: usize = 255;

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// A reference that is not a valid image reference.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid image reference {reference:?}: {reason}")]
pub struct ImageRefError {
    /// The text as given.
    pub reference: String,
    /// Why it was refused.
    pub reason: String,
}

impl ImageRef {
    /// Parses `text` like the Docker CLI does. Hand-written rather than oci-spec's regular
    /// expression, whose compiled state would stay resident in the daemon for good.
    pub fn parse(text: &str) -> Result<ImageRef, ImageRefError> {
        let fail = |reason: &str| ImageRefError {
            reference: text.to_string(),
            reason: reason.to_string(),
        };
        let (name_and_tag, digest) = match text.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (text, None),
        };
        if let Some(d) = digest {
            let (algorithm, hex) = d
                .split_once(':')
                .ok_or_else(|| fail("a digest is algorithm:hex"))?;
            let algorithm_ok = !algorithm.is_empty()
                && algorithm
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c));
            if !algorithm_ok || hex.len() < 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(fail(
                    "a digest is algorithm:hex, e.g. sha256:<64 hex digits>",
                ));
            }
        }
        // A tag follows the last ':' after the last '/', so "host:5000/app" has none.
        let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(i) => (
                &name_and_tag[..last_slash + i],
                Some(&name_and_tag[last_slash + i + 1..]),
            ),
            None => (name_and_tag, None),
        };
        if let Some(t) = tag {
            let mut chars = t.chars();
            let first_ok = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            if !first_ok
                || t.len() > 128
                || !chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            {
                return Err(fail(
                    "a tag is up to 128 of [A-Za-z0-9_.-], not starting with . or -",
                ));
            }
        }
        if name.is_empty() {
            return Err(fail("a repository name is 1 to 255 characters"));
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first, rest)
            }
            _ => ("docker.io", name),
        };
        if !valid_host(registry) {
            return Err(fail("the registry part is not a host[:port]"));
        }
        if !path.split('/').all(valid_path_component) {
            return Err(fail(
                "repository path components are lowercase letters and digits, separated by ., _, __ or -",
            ));
        }
        let registry = if registry == "index.docker.io" {
            "docker.io"
        } else {
            registry
        };
        let repository = if registry == "docker.io" && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        // Docker counts the normalised name (`docker.io/library/...`), so a short name whose
        // normalised form is longer is refused, as it would not parse again once printed.
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(fail("a repository name is 1 to 255 characters"));
        }
        Ok(ImageRef {
            registry: registry.to_string(),
            repository,
            // Docker reads a bare name as `:latest`; a digest alone pins without a tag.
            tag: tag
                .map(str::to_string)
                .or_else(|| digest.is_none().then(|| "latest".to_string())),
            digest: digest.map(str::to_string),
        })
    }

    /// The registry host as Docker names it (`docker.io`, `ghcr.io`, `127.0.0.1:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry (`library/nginx`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if the reference has one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference pins one.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// True when the reference pins a digest: such a container never moves by itself.
    pub fn is_pinned(&self) -> bool {
        self.digest.is_some()
    }

    /// `registry/repository`, the key under which `RepoDigests` are compared.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The host to connect to: Docker Hub's API lives at `registry-1.docker.io`.
    pub fn api_host(&self) -> &str {
        if self.registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }

    /// The tag or digest to ask the registry for (`latest` when neither is given).
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The same repository at `digest` (`registry/repo@sha256:...`), for pulls by digest.
    pub fn with_digest(&self, digest: &str) -> ImageRef {
        ImageRef {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest.to_string()),
        }
    }

    /// The same repository at `tag`.
    pub fn with_tag(&self, tag: &str) -> ImageRef {
        ImageRef {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// `host`, `host:port` or `[ipv6]:port`.
fn valid_host(host: &str) -> bool {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, after)) => (ip, after.strip_prefix(':')),
            None => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host, None),
        }
    };
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == ':');
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    name_ok && port_ok
}

/// `[a-z0-9]+` runs separated by `.`, `_`, `__` or one or more `-`.
fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.chars().all(|c| c == '-');
        if !ok {
            return false;
        }
    }
    true
}

/// The first 12 hex digits of a digest (`sha256:0123456789ab`), for tables.
pub fn short_digest(digest: &str) -> &str {
    let hex_start = digest.find(':').map_or(0, |i| i + 1);
    let end = (hex_start + 12).min(digest.len());
    &digest[..end]
}

/// Finds the digest recorded for `name` (`registry/repository`) among an image's `RepoDigests`
/// (`nginx@sha256:...`, `127.0.0.1:5000/app@sha256:...`).
pub fn repo_digest_for<'a>(repo_digests: &'a [String], name: &str) -> Vec<&'a str> {
    repo_digests
        .iter()
        .filter_map(|rd| {
            let (repo, digest) = rd.split_once('@')?;
            let parsed = ImageRef::parse(repo).ok()?;
            (parsed.name() == name).then_some(digest)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_short_names_are_normalised() {
        let r = ImageRef::parse("nginx").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/nginx:latest");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        let r = ImageRef::parse("index.docker.io/library/nginx:1.25").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/nginx:1.25");
        let r = ImageRef::parse("someone/app").unwrap();
        assert_eq!(r.name(), "docker.io/someone/app");
    }

    #[test]
    fn registry_with_port_is_kept() {
        let r = ImageRef::parse("127.0.0.1:5000/team/app:v2").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "team/app");
        assert_eq!(r.tag(), Some("v2"));
        assert_eq!(r.api_host(), "127.0.0.1:5000");
        assert!(!r.is_pinned());
    }

    #[test]
    fn digest_pinned_reference_is_pinned() {
        let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let r = ImageRef::parse(&format!("ghcr.io/o/app@{d}")).unwrap();
        assert!(r.is_pinned());
        assert_eq!(r.manifest_reference(), d);
        let r = ImageRef::parse(&format!("ghcr.io/o/app:1@{d}")).unwrap();
        assert!(r.is_pinned());
        assert_eq!(r.tag(), Some("1"));
    }

    #[test]
    fn grammar_edges_match_docker() {
        assert!(
            ImageRef::parse("UPPER/case").is_err(),
            "uppercase repository"
        );
        assert!(ImageRef::parse("app:").is_err(), "empty tag");
        assert!(ImageRef::parse("app:-x").is_err(), "tag starting with -");
        assert!(ImageRef::parse("a..b/app").is_ok(), "dots make a host");
        assert!(ImageRef::parse("team/a__b-c.d/app").is_ok());
        assert!(ImageRef::parse("team/a___b").is_err(), "three underscores");
        assert!(ImageRef::parse("app@sha256:xyz").is_err(), "bad digest");
        let r = ImageRef::parse("localhost/app").unwrap();
        assert_eq!(r.registry(), "localhost");
        let r = ImageRef::parse("[::1]:5000/app:1").unwrap();
        assert_eq!(r.registry(), "[::1]:5000");
        assert_eq!(r.tag(), Some("1"));
        let r = ImageRef::parse("docker.io/nginx").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/nginx:latest");
    }

    #[test]
    fn invalid_reference_is_refused_by_name() {
        let e = ImageRef::parse("app name:x").unwrap_err();
        assert!(e.to_string().contains("app name:x"));
    }

    #[test]
    fn repo_digests_match_across_spellings() {
        let d = "sha256:aaaa";
        let rds = vec![
            format!("nginx@{d}"),
            "127.0.0.1:5000/app@sha256:bbbb".to_string(),
        ];
        assert_eq!(repo_digest_for(&rds, "docker.io/library/nginx"), vec![d]);
        assert_eq!(
            repo_digest_for(&rds, "127.0.0.1:5000/app"),
            vec!["sha256:bbbb"]
        );
        assert!(repo_digest_for(&rds, "127.0.0.1:5001/app").is_empty());
    }

    #[test]
    fn a_name_over_255_characters_once_normalised_is_refused() {
        // 250 characters as written, 268 as `docker.io/library/...`: it used to be accepted,
        // and then its own printed form did not parse.
        let long = "a".repeat(250);
        assert!(ImageRef::parse(&long).is_err());
        assert!(ImageRef::parse(&format!("docker.io/library/{long}")).is_err());
        let longest = "a".repeat(255 - "docker.io/library/".len());
        let r = ImageRef::parse(&longest).unwrap();
        assert_eq!(ImageRef::parse(&r.to_string()).unwrap(), r);
        assert!(ImageRef::parse(&format!("ghcr.io/{}", "a".repeat(247))).is_ok());
        assert!(ImageRef::parse(&format!("ghcr.io/{}", "a".repeat(248))).is_err());
    }

    #[test]
    fn short_digest_keeps_algorithm_and_twelve_hex() {
        assert_eq!(
            short_digest("sha256:0123456789abcdef0123"),
            "sha256:0123456789ab"
        );
        assert_eq!(short_digest("sha256:01"), "sha256:01");
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Text that looks like references more often than arbitrary strings do.
    fn reference_like() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[a-zA-Z0-9:/@._\\-\\[\\]]{0,300}",
            "([a-z0-9.:\\-]{1,20}/)?[a-z0-9._\\-/]{1,40}(:[A-Za-z0-9._\\-]{0,10})?(@[a-z0-9]{0,8}:[0-9a-f]{0,70})?",
        ]
    }

    /// A path component: `[a-z0-9]+` runs joined by `.`, `_`, `__` or dashes, and now and then
    /// a long one, so that whole names fall on both sides of 255 characters.
    fn component() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => "[a-z0-9]{1,8}((\\.|_|__|-{1,3})[a-z0-9]{1,8}){0,3}",
            1 => "[a-z0-9]{40,120}",
        ]
    }

    /// A registry as written (`None`: Docker Hub implied).
    fn host() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            Just(None),
            Just(Some("docker.io".to_string())),
            Just(Some("index.docker.io".to_string())),
            Just(Some("localhost".to_string())),
            "localhost:[0-9]{1,5}".prop_map(Some),
            "127\\.0\\.0\\.1:[0-9]{1,5}".prop_map(Some),
            "\\[::1\\]:[0-9]{1,5}".prop_map(Some),
            "[a-z0-9-]{1,12}(\\.[a-z0-9-]{1,12}){1,3}(:[0-9]{1,5})?".prop_map(Some),
        ]
    }

    fn tag() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
    }

    fn digest() -> impl Strategy<Value = String> {
        "(sha256|sha512|[a-z0-9]{1,6}([+._-][a-z0-9]{1,6})?):[0-9a-fA-F]{32,128}"
    }

    /// The parts of a well-formed reference. Without a host, a first path component that looks
    /// like one (a dot, or `localhost`) would be read as the registry: it is left out.
    fn parts(
    ) -> impl Strategy<Value = (Option<String>, Vec<String>, Option<String>, Option<String>)> {
        (
            host(),
            prop::collection::vec(component(), 1..5),
            prop::option::of(tag()),
            prop::option::of(digest()),
        )
            .prop_filter(
                "a first component that reads as a host",
                |(host, path, ..)| {
                    host.is_some()
                        || path.len() == 1
                        || !(path[0].contains('.') || path[0] == "localhost")
                },
            )
    }

    proptest! {
        #[test]
        fn parsing_never_panics_and_what_parses_prints_and_parses_the_same(text in reference_like()) {
            if let Ok(r) = ImageRef::parse(&text) {
                let printed = r.to_string();
                prop_assert_eq!(ImageRef::parse(&printed).ok(), Some(r.clone()), "{}", printed);
                prop_assert_eq!(r.name(), format!("{}/{}", r.registry(), r.repository()));
                prop_assert!(r.tag().is_some() || r.digest().is_some());
                prop_assert_eq!(r.is_pinned(), r.digest().is_some());
                prop_assert_eq!(r.manifest_reference(), r.digest().or(r.tag()).unwrap_or("latest"));
                prop_assert!(r.name().len() <= MAX_NAME_LEN);
            }
        }

        #[test]
        fn a_well_formed_reference_parses_into_its_parts((host, path, tag, digest) in parts()) {
            let path = path.join("/");
            let mut text = match &host {
                Some(h) => format!("{h}/{path}"),
                None => path.clone(),
            };
            if let Some(t) = &tag {
                text = format!("{text}:{t}");
            }
            if let Some(d) = &digest {
                text = format!("{text}@{d}");
            }
            let registry = match host.as_deref() {
                None | Some("index.docker.io") => "docker.io",
                Some(h) => h,
            };
            let repository = if registry == "docker.io" && !path.contains('/') {
                format!("library/{path}")
            } else {
                path.clone()
            };
            let parsed = ImageRef::parse(&text);
            if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
                prop_assert!(parsed.is_err(), "{}", text);
                return Ok(());
            }
            let r = parsed.map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(r.registry(), registry);
            prop_assert_eq!(r.repository(), repository.as_str());
            let expected_tag = tag.clone().or_else(|| digest.is_none().then(|| "latest".to_string()));
            prop_assert_eq!(r.tag(), expected_tag.as_deref());
            prop_assert_eq!(r.digest(), digest.as_deref());
            prop_assert_eq!(ImageRef::parse(&r.to_string()).ok(), Some(r.clone()));
            // What a pull by digest or a move to another tag names parses back the same too.
            if let Some(d) = &digest {
                let pinned = r.with_digest(d);
                prop_assert_eq!(ImageRef::parse(&pinned.to_string()).ok(), Some(pinned));
            }
            if let Some(t) = &tag {
                let tagged = r.with_tag(t);
                prop_assert_eq!(ImageRef::parse(&tagged.to_string()).ok(), Some(tagged));
            }
        }
    }
}
