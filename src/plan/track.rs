//! Tag tracking: containers whose CI tags images by version or commit rather than moving one
//! tag follow the newest matching tag (`tidewatch.track` label). Pure: tags in, choice out.

use regex::Regex;
use semver::{Version, VersionReq};

/// The label that chooses how a container follows its image.
pub const TRACK_LABEL: &str = "tidewatch.track";

/// How a container follows its image.
#[derive(Debug, Clone)]
pub enum Track {
    /// Its own tag, to whatever digest it points (the default).
    Digest,
    /// The highest semantic-version tag, within a range when given (`^1.4`).
    Semver(Option<VersionReq>),
    /// The newest tag (by image creation time) whose name matches the pattern.
    Regex(Regex),
}

/// Parses a `tidewatch.track` value: `digest`, `semver`, `semver:^1.4` (or `semver ^1.4`),
/// `regex:PATTERN`.
pub fn parse(value: &str) -> Result<Track, String> {
    let value = value.trim();
    if value.is_empty() || value == "digest" {
        return Ok(Track::Digest);
    }
    if let Some(pattern) = value.strip_prefix("regex:") {
        // Anchored: `main-.*` must not match `not-main-1`.
        let anchored = format!("^(?:{pattern})$");
        return Regex::new(&anchored)
            .map(Track::Regex)
            .map_err(|e| format!("bad {TRACK_LABEL} regex {pattern:?}: {e}"));
    }
    if let Some(rest) = value.strip_prefix("semver") {
        let range = rest.trim_start_matches([':', ' ']).trim();
        if range.is_empty() {
            return Ok(Track::Semver(None));
        }
        return VersionReq::parse(range)
            .map(|r| Track::Semver(Some(r)))
            .map_err(|e| format!("bad {TRACK_LABEL} semver range {range:?}: {e}"));
    }
    Err(format!(
        "unknown {TRACK_LABEL} value {value:?}: expected digest, semver[:RANGE] or regex:PATTERN"
    ))
}

/// A tag read as a version: `1.4.2` or `v1.4.2`.
pub fn tag_version(tag: &str) -> Option<Version> {
    Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()
}

/// The highest version tag within `range`. Pre-releases count only when the range names one
/// (semver's own rule), so `1.5.0-rc.1` never replaces `1.4.2` by surprise.
pub fn newest_semver<'a>(tags: &'a [String], range: Option<&VersionReq>) -> Option<&'a str> {
    tags.iter()
        .filter_map(|t| tag_version(t).map(|v| (v, t.as_str())))
        .filter(|(v, _)| match range {
            Some(r) => r.matches(v),
            None => v.pre.is_empty(),
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, t)| t)
}

/// The tags matching `pattern`, in the registry's order.
pub fn matching<'a>(tags: &'a [String], pattern: &Regex) -> Vec<&'a str> {
    tags.iter()
        .map(String::as_str)
        .filter(|t| pattern.is_match(t))
        .collect()
}

/// `tags` with the likely newest first: by name, numbers compared as numbers, descending
/// (`build-10` before `build-9`, `2024-06-02` before `2024-06-01`). Only a guess for names
/// that carry no order (`main-<sha>`); the creation time decides among the tags evaluated.
pub fn likely_newest_first(mut tags: Vec<&str>) -> Vec<&str> {
    tags.sort_by(|a, b| natural_cmp(b, a));
    tags
}

/// Compares names run by run: digit runs as numbers, the rest as text.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn runs(s: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[i - 1].is_ascii_digit() {
                out.push(&s[start..i]);
                start = i;
            }
        }
        out
    }
    let (ra, rb) = (runs(a), runs(b));
    for (x, y) in ra.iter().zip(&rb) {
        let both_digits = x.as_bytes()[0].is_ascii_digit() && y.as_bytes()[0].is_ascii_digit();
        let order = if both_digits {
            let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
            x.len().cmp(&y.len()).then_with(|| x.cmp(y))
        } else {
            x.cmp(y)
        };
        if order.is_ne() {
            return order;
        }
    }
    ra.len().cmp(&rb.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn likely_newest_names_come_first_with_numbers_compared_as_numbers() {
        let t = tags(&[
            "build-9",
            "build-10",
            "build-100",
            "build-010x",
            "2024-06-01",
            "2024-06-02",
        ]);
        let refs: Vec<&str> = t.iter().map(String::as_str).collect();
        assert_eq!(
            likely_newest_first(refs),
            [
                "build-100",
                "build-010x",
                "build-10",
                "build-9",
                "2024-06-02",
                "2024-06-01"
            ]
        );
    }

    #[test]
    fn track_values_parse() {
        assert!(matches!(parse("digest"), Ok(Track::Digest)));
        assert!(matches!(parse(""), Ok(Track::Digest)));
        assert!(matches!(parse("semver"), Ok(Track::Semver(None))));
        assert!(matches!(parse("semver:^1.4"), Ok(Track::Semver(Some(_)))));
        assert!(matches!(parse("semver ~2"), Ok(Track::Semver(Some(_)))));
        assert!(matches!(
            parse("regex:main-[0-9a-f]{7}"),
            Ok(Track::Regex(_))
        ));
        assert!(parse("semver:^^1").unwrap_err().contains("semver range"));
        assert!(parse("regex:(").unwrap_err().contains("regex"));
        assert!(parse("latest").unwrap_err().contains("expected digest"));
    }

    #[test]
    fn highest_semver_tag_wins_and_v_prefix_is_read() {
        let t = tags(&["1.2.0", "v1.10.0", "1.9.3", "latest", "sha-abc1234"]);
        assert_eq!(newest_semver(&t, None), Some("v1.10.0"));
    }

    #[test]
    fn range_limits_the_choice() {
        let t = tags(&["1.4.0", "1.4.7", "1.5.0", "2.0.0"]);
        let r = VersionReq::parse("~1.4").unwrap();
        assert_eq!(newest_semver(&t, Some(&r)), Some("1.4.7"));
        let r = VersionReq::parse("^1.4").unwrap();
        assert_eq!(newest_semver(&t, Some(&r)), Some("1.5.0"));
    }

    #[test]
    fn prereleases_are_not_chosen_by_surprise() {
        let t = tags(&["1.4.2", "1.5.0-rc.1"]);
        assert_eq!(newest_semver(&t, None), Some("1.4.2"));
        let r = VersionReq::parse(">=1.5.0-rc.0").unwrap();
        assert_eq!(newest_semver(&t, Some(&r)), Some("1.5.0-rc.1"));
    }

    #[test]
    fn regex_is_anchored() {
        let Ok(Track::Regex(re)) = parse("regex:main-[0-9a-f]+") else {
            panic!()
        };
        let t = tags(&[
            "main-abc123",
            "not-main-abc",
            "main-abc123-dirty",
            "main-ff",
        ]);
        assert_eq!(matching(&t, &re), ["main-abc123", "main-ff"]);
    }
}
