//! Release notes: what an update changes, in words a person can follow. From the OCI labels of
//! the running image and of the candidate (`org.opencontainers.image.version`, `.revision`,
//! `.source`, `.url`) this derives the two versions and a link to the changes: a compare view
//! on GitHub, GitLab or Gitea/Forgejo, else the source (or url) as is. A container's (or
//! image's) `tidewatch.changelog` label, a URL template, overrides the link.
//!
//! Pure, and strict: labels come from images anyone can push, so a link is only ever an
//! `http`/`https` URL of bounded length without control characters, and label values put into
//! a URL are percent-encoded.

use std::collections::BTreeMap;

use reqwest::Url;
use serde::{Deserialize, Serialize};

/// The OCI label naming the source repository.
pub const SOURCE: &str = "org.opencontainers.image.source";
/// The OCI label naming the source revision (commit).
pub const REVISION: &str = "org.opencontainers.image.revision";
/// The OCI label naming the version.
pub const VERSION: &str = "org.opencontainers.image.version";
/// The OCI label naming the image's home page.
pub const URL: &str = "org.opencontainers.image.url";
/// The OCI label naming when the image was built.
pub const CREATED: &str = "org.opencontainers.image.created";
/// The label holding a changelog URL template, which overrides the derived link.
pub const CHANGELOG: &str = "tidewatch.changelog";

/// The labels kept of an image: the OCI ones this module reads, and the override.
pub const KEPT_LABELS: &[&str] = &[SOURCE, REVISION, VERSION, URL, CREATED, CHANGELOG];

/// The longest link emitted.
pub const MAX_URL_LEN: usize = 2048;
/// The longest version shown; a longer label is not a version anyone can read.
const MAX_VERSION_LEN: usize = 128;

/// What an update changes, as shown next to its digests. Each field is absent when it cannot
/// be told; the names are part of the JSON contract.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseNotes {
    /// The running image's version label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<String>,
    /// The candidate image's version label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_version: Option<String>,
    /// Where to read what changed between the two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes_url: Option<String>,
}

impl ReleaseNotes {
    /// True when nothing is known.
    pub fn is_empty(&self) -> bool {
        self.current_version.is_none()
            && self.available_version.is_none()
            && self.changes_url.is_none()
    }

    /// `1.0.0 -> 2.0.0`, `? -> 2.0.0`, or `None` when neither version is known.
    pub fn versions(&self) -> Option<String> {
        if self.current_version.is_none() && self.available_version.is_none() {
            return None;
        }
        let v = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
        Some(format!(
            "{} -> {}",
            v(&self.current_version),
            v(&self.available_version)
        ))
    }
}

/// The labels of `labels` that [`derive`] reads, so that a caller keeps no more than that.
pub fn kept(labels: impl IntoIterator<Item = (String, String)>) -> BTreeMap<String, String> {
    labels
        .into_iter()
        .filter(|(k, _)| KEPT_LABELS.contains(&k.as_str()))
        .collect()
}

/// The release notes of moving from the image labelled `old` to the one labelled `new`;
/// `template` (a container's `tidewatch.changelog`) overrides the new image's own, which
/// overrides the derived link.
pub fn derive(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
    template: Option<&str>,
) -> ReleaseNotes {
    let current_version = version(old);
    let available_version = version(new);
    let template = template.or_else(|| new.get(CHANGELOG).map(String::as_str));
    let changes_url = match template {
        Some(t) => expand(t, old, new),
        None => derived_link(old, new),
    };
    ReleaseNotes {
        current_version,
        available_version,
        changes_url,
    }
}

fn version(labels: &BTreeMap<String, String>) -> Option<String> {
    let v = labels.get(VERSION)?.trim();
    (!v.is_empty() && v.len() <= MAX_VERSION_LEN && !v.chars().any(char::is_control))
        .then(|| v.to_string())
}

fn label<'a>(labels: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    labels
        .get(key)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty() && v.len() <= MAX_VERSION_LEN)
}

/// A compare link when the source is a forge and both sides name a revision (exact, so
/// preferred) or a version that differ; else the source, else the new image's `url`.
fn derived_link(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Option<String> {
    let source = new
        .get(SOURCE)
        .or_else(|| old.get(SOURCE))
        .and_then(|s| repository(s));
    let Some(source) = source else {
        return new.get(URL).and_then(|u| safe_url(u));
    };
    let pair = |key| match (label(old, key), label(new, key)) {
        (Some(a), Some(b)) if a != b => Some((a, b)),
        _ => None,
    };
    let Some((from, to)) = pair(REVISION).or_else(|| pair(VERSION)) else {
        return safe_url(source.as_str());
    };
    let compare = match forge(&source) {
        Forge::GitLab => "/-/compare/",
        Forge::GitHubOrGitea => "/compare/",
    };
    let link = format!(
        "{}{compare}{}...{}",
        source.as_str().trim_end_matches('/'),
        encode(from),
        encode(to)
    );
    safe_url(&link)
}

/// Which compare URL a forge uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forge {
    /// `/-/compare/a...b`: gitlab.com, and any host with `gitlab` in its name.
    GitLab,
    /// `/compare/a...b`: github.com, and Gitea and Forgejo (codeberg.org...), which a host
    /// name cannot tell apart from other self-hosted forges.
    GitHubOrGitea,
}

fn forge(source: &Url) -> Forge {
    let host = source.host_str().unwrap_or_default().to_ascii_lowercase();
    if host.split('.').any(|part| part.contains("gitlab")) {
        Forge::GitLab
    } else {
        Forge::GitHubOrGitea
    }
}

/// The web address of the repository a `source` label names: `https://host/owner/repo`
/// without a `.git` suffix or trailing slash, a `git+https://` prefix dropped, and scp-like
/// `git@host:owner/repo.git` read as its `https` address. Anything else (`ssh://`, `file:`,
/// a path with no repository) is refused.
fn repository(source: &str) -> Option<Url> {
    let source = source.trim();
    if source.len() > MAX_URL_LEN || source.chars().any(char::is_control) {
        return None;
    }
    let source = source.strip_prefix("git+").unwrap_or(source);
    let web = match source.strip_prefix("git@") {
        Some(rest) => {
            let (host, path) = rest.split_once(':')?;
            if host.is_empty() || host.contains('/') || path.starts_with('/') {
                return None;
            }
            format!("https://{host}/{path}")
        }
        None => source.to_string(),
    };
    let mut url = Url::parse(&web).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    url.set_query(None);
    url.set_fragment(None);
    let path = url.path().trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path).to_string();
    // A repository is at least `owner/name`.
    if path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .count()
        < 2
    {
        return None;
    }
    url.set_path(&path);
    Some(url)
}

/// The template with `{old_version}`, `{new_version}`, `{old_revision}` and `{new_revision}`
/// replaced by the labels, percent-encoded; `None` when it names a value that is missing or
/// the result is not a safe link.
fn expand(
    template: &str,
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Option<String> {
    if template.len() > MAX_URL_LEN {
        return None;
    }
    let mut out = template.to_string();
    for (name, labels, key) in [
        ("{old_version}", old, VERSION),
        ("{new_version}", new, VERSION),
        ("{old_revision}", old, REVISION),
        ("{new_revision}", new, REVISION),
    ] {
        if out.contains(name) {
            out = out.replace(name, &encode(label(labels, key)?));
        }
    }
    safe_url(&out)
}

/// `text` as a link, when it is one that is safe to show and follow: `http` or `https`, with
/// a host, at most [`MAX_URL_LEN`] bytes, no control characters, no credentials.
pub fn safe_url(text: &str) -> Option<String> {
    let text = text.trim();
    if text.len() > MAX_URL_LEN || text.chars().any(char::is_control) {
        return None;
    }
    let url = Url::parse(text).ok()?;
    let ok = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some()
        && url.username().is_empty()
        && url.password().is_none();
    let url = url.to_string();
    (ok && url.len() <= MAX_URL_LEN).then_some(url)
}

/// `value` percent-encoded for any part of a URL: everything but RFC 3986's unreserved
/// characters.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn image(source: &str, version: &str, revision: &str) -> BTreeMap<String, String> {
        let mut l = BTreeMap::new();
        for (k, v) in [(SOURCE, source), (VERSION, version), (REVISION, revision)] {
            if !v.is_empty() {
                l.insert(k.to_string(), v.to_string());
            }
        }
        l
    }

    #[test]
    fn compare_links_follow_the_forge_of_the_source() {
        let cases = [
            (
                "https://github.com/acme/app",
                "https://github.com/acme/app/compare/aaa1...bbb2",
            ),
            (
                "https://github.com/acme/app.git",
                "https://github.com/acme/app/compare/aaa1...bbb2",
            ),
            (
                "https://github.com/acme/app/",
                "https://github.com/acme/app/compare/aaa1...bbb2",
            ),
            (
                "git@github.com:acme/app.git",
                "https://github.com/acme/app/compare/aaa1...bbb2",
            ),
            (
                "git+https://github.com/acme/app.git",
                "https://github.com/acme/app/compare/aaa1...bbb2",
            ),
            (
                "https://gitlab.com/group/sub/app",
                "https://gitlab.com/group/sub/app/-/compare/aaa1...bbb2",
            ),
            (
                "https://gitlab.example.org/team/app.git",
                "https://gitlab.example.org/team/app/-/compare/aaa1...bbb2",
            ),
            (
                "https://codeberg.org/acme/app",
                "https://codeberg.org/acme/app/compare/aaa1...bbb2",
            ),
            (
                "https://git.example.org/acme/app",
                "https://git.example.org/acme/app/compare/aaa1...bbb2",
            ),
        ];
        for (source, link) in cases {
            let notes = derive(
                &image(source, "1.0.0", "aaa1"),
                &image(source, "2.0.0", "bbb2"),
                None,
            );
            assert_eq!(notes.changes_url.as_deref(), Some(link), "{source}");
            assert_eq!(notes.current_version.as_deref(), Some("1.0.0"));
            assert_eq!(notes.available_version.as_deref(), Some("2.0.0"));
        }
    }

    #[test]
    fn revisions_are_compared_when_both_are_known_else_versions() {
        let gh = "https://github.com/acme/app";
        let link = |old, new| derive(&old, &new, None).changes_url;
        assert_eq!(
            link(image(gh, "1.0.0", "aaa1"), image(gh, "2.0.0", "bbb2")).as_deref(),
            Some("https://github.com/acme/app/compare/aaa1...bbb2")
        );
        assert_eq!(
            link(image(gh, "v1.0.0", ""), image(gh, "v2.0.0", "bbb2")).as_deref(),
            Some("https://github.com/acme/app/compare/v1.0.0...v2.0.0"),
            "one revision missing: versions"
        );
        assert_eq!(
            link(image(gh, "1.0.0", "same"), image(gh, "1.0.0", "same")).as_deref(),
            Some(gh),
            "nothing to compare: the source itself"
        );
        assert_eq!(
            link(image(gh, "1.0", ""), image(gh, "1.0+build 2", "")).as_deref(),
            Some("https://github.com/acme/app/compare/1.0...1.0%2Bbuild%202"),
            "versions are encoded for the path"
        );
    }

    #[test]
    fn missing_labels_give_what_is_known() {
        let none = derive(&BTreeMap::new(), &BTreeMap::new(), None);
        assert!(none.is_empty());
        assert_eq!(none.versions(), None);

        let only_new = derive(&BTreeMap::new(), &labels(&[(VERSION, "2.0.0")]), None);
        assert_eq!(only_new.versions().as_deref(), Some("? -> 2.0.0"));
        assert_eq!(only_new.changes_url, None);

        let url_only = derive(
            &BTreeMap::new(),
            &labels(&[(URL, "https://app.example/releases")]),
            None,
        );
        assert_eq!(
            url_only.changes_url.as_deref(),
            Some("https://app.example/releases")
        );

        let source_from_old = derive(
            &image("https://github.com/acme/app", "", "aaa1"),
            &labels(&[(REVISION, "bbb2")]),
            None,
        );
        assert_eq!(
            source_from_old.changes_url.as_deref(),
            Some("https://github.com/acme/app/compare/aaa1...bbb2")
        );
    }

    #[test]
    fn unsafe_or_unusable_sources_give_no_link() {
        for source in [
            "ssh://git@github.com/acme/app.git",
            "javascript:alert(1)",
            "file:///etc/passwd",
            "https://github.com",
            "https://github.com/acme",
            "git@github.com:/abs/path",
            "https://user:pw@github.com/acme/app",
            "https://github.com/acme/app\n[x](https://evil)",
            "not a url",
        ] {
            let notes = derive(&image(source, "1", "a"), &image(source, "2", "b"), None);
            assert_eq!(notes.changes_url, None, "{source:?}");
        }
        let long = format!("https://github.com/acme/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(
            derive(&image(&long, "1", "a"), &image(&long, "2", "b"), None).changes_url,
            None
        );
        assert_eq!(
            derive(
                &BTreeMap::new(),
                &labels(&[(URL, "javascript:alert(1)")]),
                None
            )
            .changes_url,
            None
        );
    }

    #[test]
    fn versions_with_control_characters_or_too_long_are_not_shown() {
        let bad = derive(
            &labels(&[(VERSION, "1.0\u{1b}[31m")]),
            &labels(&[(VERSION, &"9".repeat(MAX_VERSION_LEN + 1))]),
            None,
        );
        assert_eq!(bad.current_version, None);
        assert_eq!(bad.available_version, None);
    }

    #[test]
    fn a_changelog_template_overrides_the_derived_link() {
        let old = image("https://github.com/acme/app", "1.0.0", "aaa1");
        let new = image("https://github.com/acme/app", "2.0.0/../x y", "bbb2");
        let t =
            "https://docs.example/changes?from={old_version}&to={new_version}&rev={new_revision}";
        assert_eq!(
            derive(&old, &new, Some(t)).changes_url.as_deref(),
            Some("https://docs.example/changes?from=1.0.0&to=2.0.0%2F..%2Fx%20y&rev=bbb2")
        );
        let mut labelled = new.clone();
        labelled.insert(
            CHANGELOG.into(),
            "https://acme.example/app/{old_revision}..{new_revision}".into(),
        );
        assert_eq!(
            derive(&old, &labelled, None).changes_url.as_deref(),
            Some("https://acme.example/app/aaa1..bbb2"),
            "the image's own template"
        );
        assert_eq!(
            derive(&old, &labelled, Some("https://c.example/{new_version}"))
                .changes_url
                .as_deref(),
            Some("https://c.example/2.0.0%2F..%2Fx%20y"),
            "the container's template wins"
        );
        assert_eq!(
            derive(
                &BTreeMap::new(),
                &new,
                Some("https://c.example/{old_version}")
            )
            .changes_url,
            None,
            "a value the template needs is missing"
        );
        assert_eq!(
            derive(&old, &new, Some("javascript:alert('{new_version}')")).changes_url,
            None
        );
    }

    #[test]
    fn only_the_labels_read_are_kept() {
        let kept = kept([
            (VERSION.to_string(), "1".to_string()),
            ("com.example.big".to_string(), "x".repeat(10_000)),
        ]);
        assert_eq!(kept.keys().collect::<Vec<_>>(), [VERSION]);
    }

    mod prop {
        use proptest::prelude::*;

        use super::super::*;

        /// Label values as a hostile image might set them: forge-like URLs, markup, control
        /// characters, template placeholders, and anything at all.
        fn value() -> impl Strategy<Value = String> {
            prop_oneof![
                "(https?|ssh|git\\+https|javascript|file)://[a-z.]{0,12}(/[a-z.]{0,8}){0,3}/?",
                "git@[a-z.]{0,10}:[a-z/]{0,12}(\\.git)?",
                "[ -~]{0,40}",
                "\\PC{0,20}",
                "[\\x00-\\x1f<>|\\[\\]()@*_ ]{0,10}",
                Just("{new_version}".to_string()),
            ]
        }

        fn labels() -> impl Strategy<Value = BTreeMap<String, String>> {
            proptest::collection::btree_map(
                prop_oneof![
                    Just(SOURCE.to_string()),
                    Just(VERSION.to_string()),
                    Just(REVISION.to_string()),
                    Just(URL.to_string()),
                    Just(CHANGELOG.to_string()),
                ],
                value(),
                0..5,
            )
        }

        proptest! {
            #[test]
            fn whatever_the_labels_say_a_link_is_a_short_http_url_and_versions_are_plain_text(
                old in labels(),
                new in labels(),
                template in proptest::option::of(value()),
            ) {
                let notes = derive(&old, &new, template.as_deref());
                if let Some(url) = &notes.changes_url {
                    prop_assert!(
                        url.starts_with("https://") || url.starts_with("http://"),
                        "{url:?}"
                    );
                    prop_assert!(url.len() <= MAX_URL_LEN, "{}", url.len());
                    prop_assert!(
                        !url.chars().any(|c| c.is_control() || c.is_whitespace()),
                        "{url:?}"
                    );
                }
                for v in [&notes.current_version, &notes.available_version].into_iter().flatten() {
                    prop_assert!(v.len() <= MAX_VERSION_LEN && !v.chars().any(char::is_control));
                }
            }
        }
    }
}
