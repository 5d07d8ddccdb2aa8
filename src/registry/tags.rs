//! Tags of a repository (`/v2/<repo>/tags/list`, paginated with `Link`) and when an image was
//! built (its config's `created`), for tag tracking.

use chrono::{DateTime, Utc};
use reqwest::{Method, Url};
use serde::Deserialize;

use super::{read_capped, RegistryClient, RegistryError, MAX_TAG_PAGE_BYTES};
use crate::image_ref::ImageRef;
use crate::plan::observed::Platform;

/// Tags asked for per page (fewer when `max_tags` is lower).
const PAGE: usize = 1000;

#[derive(Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

impl RegistryClient {
    /// The tags of `reference`'s repository, following the registry's pagination on the
    /// registry's own origin only, up to its `max_tags` and `max_tag_pages`. A page that
    /// points elsewhere, or a cap reached, ends the list with a warning: tag tracking then
    /// chooses among the tags seen.
    pub async fn list_tags(&self, reference: &ImageRef) -> Result<Vec<String>, RegistryError> {
        let registry = reference.registry();
        let state = self.state(registry).await;
        let (max_tags, max_pages) = (state.settings.max_tags, state.settings.max_tag_pages);
        let protocol = |reason: String| RegistryError::Protocol {
            registry: registry.to_string(),
            reason,
        };
        let first = format!(
            "{}://{}/v2/{}/tags/list?n={}",
            self.scheme(registry),
            reference.api_host(),
            reference.repository(),
            PAGE.min(max_tags)
        );
        let mut url = Url::parse(&first).map_err(|e| protocol(format!("{first}: {e}")))?;
        let mut tags = Vec::new();
        for _ in 0..max_pages {
            let _permit = state.limit.clone().acquire_owned().await.ok();
            let response = self
                .send(Method::GET, url.as_str(), reference, &state)
                .await?;
            let next = response
                .headers()
                .get("link")
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
            let what = format!("tag list of {}", reference.name());
            let body = read_capped(response, MAX_TAG_PAGE_BYTES, registry, &what).await?;
            let page = parse_tag_page(&body).map_err(|e| protocol(format!("{what}: {e}")))?;
            tags.extend(page);
            if tags.len() >= max_tags {
                if tags.len() > max_tags || next.is_some() {
                    tracing::warn!(
                        registry,
                        repository = reference.repository(),
                        max_tags,
                        "tag list cut at max_tags; later tags are not considered"
                    );
                }
                tags.truncate(max_tags);
                return Ok(tags);
            }
            let Some(next) = next else {
                return Ok(tags);
            };
            match same_origin_page(&url, &next) {
                Some(page) => url = page,
                None => {
                    tracing::warn!(
                        registry,
                        repository = reference.repository(),
                        link = next,
                        "the tag list's next page is on another origin; not following it"
                    );
                    return Ok(tags);
                }
            }
        }
        tracing::warn!(
            registry,
            repository = reference.repository(),
            max_tag_pages = max_pages,
            "tag list cut at max_tag_pages; later tags are not considered"
        );
        Ok(tags)
    }

    /// When the image at `digest` (for `platform`, if it is an index) was built (see
    /// [`RegistryClient::image_config`]).
    pub async fn created(
        &self,
        reference: &ImageRef,
        digest: &str,
        platform: &Platform,
    ) -> Result<Option<DateTime<Utc>>, RegistryError> {
        let config = self.image_config(reference, digest, platform).await?;
        Ok(config.and_then(|c| c.created))
    }
}

/// The tags of one page of a tag list (`{"name": ..., "tags": [...]}`); `null` or no `tags`
/// is none.
pub fn parse_tag_page(body: &[u8]) -> Result<Vec<String>, serde_json::Error> {
    let page: TagList = serde_json::from_slice(body)?;
    Ok(page.tags.unwrap_or_default())
}

/// The target of a `Link: </v2/...>; rel="next"` header.
pub fn next_link(header: &str) -> Option<String> {
    let mut rest = Some(header);
    while let Some(text) = rest {
        let (link, after) = match outside_brackets(text, ',') {
            Some(i) => (&text[..i], Some(&text[i + 1..])),
            None => (text, None),
        };
        rest = after;
        let Some(i) = outside_brackets(link, ';') else {
            continue;
        };
        let (target, params) = (&link[..i], &link[i + 1..]);
        if params.contains("rel=\"next\"") {
            let target = target.trim().trim_start_matches('<').trim_end_matches('>');
            return Some(target.to_string());
        }
    }
    None
}

/// The first `separator` in `text` that is neither inside a link's `<...>` nor inside a quoted
/// parameter value: a URL may hold commas and semicolons (`?last=a,b;c`).
fn outside_brackets(text: &str, separator: char) -> Option<usize> {
    let (mut in_target, mut quoted) = (false, false);
    for (i, c) in text.char_indices() {
        match c {
            '<' if !quoted => in_target = true,
            '>' if !quoted => in_target = false,
            '"' if !in_target => quoted = !quoted,
            c if c == separator && !in_target && !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// The next page `link` names, resolved against the page `current`, when it has the same
/// scheme, host and port: requests carry the registry's token, and a 401 from another host
/// would be answered with the registry's credentials.
pub fn same_origin_page(current: &Url, link: &str) -> Option<Url> {
    let next = current.join(link).ok()?;
    (next.origin() == current.origin()).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_is_followed() {
        assert_eq!(
            next_link(r#"</v2/app/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/app/tags/list?last=b&n=2")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
        assert_eq!(
            next_link(r#"</v2/app/tags/list?n=2&last=a>; rel="prev", </v2/app/tags/list?n=2&last=c>; rel="next""#).as_deref(),
            Some("/v2/app/tags/list?n=2&last=c")
        );
    }

    #[test]
    fn a_next_link_whose_url_holds_a_comma_or_semicolon_is_read_whole() {
        // Both are allowed in a URL; split on them, the link was cut short or missed.
        assert_eq!(
            next_link(r#"</v2/app/tags/list?n=2&last=a,b;c>; rel="next""#).as_deref(),
            Some("/v2/app/tags/list?n=2&last=a,b;c")
        );
        assert_eq!(
            next_link(r#"</v2/app/tags/list?last=x,y>; rel="prev", </v2/app/tags/list?last=y;z>; rel="next""#)
                .as_deref(),
            Some("/v2/app/tags/list?last=y;z")
        );
        assert_eq!(
            next_link(r#"</a>; title="a, b; c", </b>; rel="next""#).as_deref(),
            Some("/b")
        );
    }

    #[test]
    fn only_next_pages_on_the_same_scheme_host_and_port_are_followed() {
        let current = Url::parse("https://ghcr.io/v2/o/app/tags/list?n=1000").unwrap();
        let follow = |link: &str| same_origin_page(&current, link).map(String::from);
        assert_eq!(
            follow("/v2/o/app/tags/list?n=1000&last=b").as_deref(),
            Some("https://ghcr.io/v2/o/app/tags/list?n=1000&last=b")
        );
        assert_eq!(
            follow("https://ghcr.io/v2/o/app/tags/list?last=b").as_deref(),
            Some("https://ghcr.io/v2/o/app/tags/list?last=b")
        );
        assert_eq!(follow("https://evil.example/v2/o/app/tags/list"), None);
        assert_eq!(
            follow("http://ghcr.io/v2/o/app/tags/list"),
            None,
            "downgrade"
        );
        assert_eq!(follow("https://ghcr.io:8443/v2/o/app/tags/list"), None);
        assert_eq!(follow("//evil.example/v2/o/app/tags/list"), None);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use proptest::string::{string_regex, RegexGeneratorStrategy};

    use super::*;

    /// Characters of a URL reference other than `<` and `>`, which end it in a `Link` header.
    const URL_CHARS: &str = "[a-zA-Z0-9/?&=._~%:@!$'()*+,;-]";

    fn link_target() -> impl Strategy<Value = String> {
        let regex = |pattern: String| -> RegexGeneratorStrategy<String> {
            string_regex(&pattern).expect("a valid pattern")
        };
        prop_oneof![
            regex(format!(
                "/v2/[a-z0-9/]{{1,20}}/tags/list\\?n=[0-9]{{1,4}}&last={URL_CHARS}{{0,20}}"
            )),
            regex(format!(
                "https?://[a-z0-9.-]{{1,12}}(:[0-9]{{1,5}})?/{URL_CHARS}{{0,30}}"
            )),
            regex(format!("{URL_CHARS}{{0,40}}")),
        ]
    }

    fn other_rel() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("prev".to_string()),
            Just("first".to_string()),
            Just("last".to_string()),
            Just("nextish".to_string()),
        ]
    }

    /// A current page's URL: scheme, host and port vary.
    fn current_url() -> impl Strategy<Value = Url> {
        (
            prop_oneof![Just("https"), Just("http")],
            prop_oneof![
                Just("ghcr.io".to_string()),
                Just("127.0.0.1".to_string()),
                "[a-z]{1,8}\\.[a-z]{2,3}",
            ],
            prop::option::of(1u16..),
        )
            .prop_filter_map("not a URL", |(scheme, host, port)| {
                let port = port.map_or(String::new(), |p| format!(":{p}"));
                Url::parse(&format!(
                    "{scheme}://{host}{port}/v2/o/app/tags/list?n=1000"
                ))
                .ok()
            })
    }

    /// Links that leave the current origin, however they are spelled.
    fn foreign_link() -> impl Strategy<Value = String> {
        (
            prop_oneof![
                Just("https://"),
                Just("http://"),
                Just("//"),
                Just("\\\\"),
                Just("/\\"),
                Just("https:\\\\"),
                Just("HTTPS://"),
            ],
            "[a-z]{1,8}\\.(example|test)",
            prop::option::of(1u16..),
            "[a-z0-9/?=&]{0,20}",
        )
            .prop_map(|(prefix, host, port, rest)| {
                let port = port.map_or(String::new(), |p| format!(":{p}"));
                format!("{prefix}{host}{port}/{rest}")
            })
    }

    proptest! {
        #[test]
        fn next_link_never_panics_and_returns_part_of_the_header(header in any::<String>()) {
            if let Some(link) = next_link(&header) {
                prop_assert!(header.contains(&link));
            }
        }

        #[test]
        fn a_generated_next_link_is_found(
            target in link_target(),
            before in prop::collection::vec((link_target(), other_rel()), 0..3),
            after in prop::collection::vec((link_target(), other_rel()), 0..3),
            spaces in prop_oneof![Just(""), Just(" "), Just("  ")],
        ) {
            let link = |(t, rel): &(String, String)| format!("<{t}>;{spaces}rel=\"{rel}\"");
            let mut links: Vec<String> = before.iter().map(link).collect();
            links.push(link(&(target.clone(), "next".to_string())));
            links.extend(after.iter().map(link));
            let header = links.join(&format!(",{spaces}"));
            prop_assert_eq!(next_link(&header), Some(target), "{}", header);
        }

        #[test]
        fn a_followed_page_is_always_on_the_current_origin(
            current in current_url(),
            link in prop_oneof![any::<String>(), link_target(), foreign_link()],
        ) {
            if let Some(next) = same_origin_page(&current, &link) {
                prop_assert_eq!(next.scheme(), current.scheme());
                prop_assert_eq!(next.host_str(), current.host_str());
                prop_assert_eq!(next.port_or_known_default(), current.port_or_known_default());
            }
        }

        #[test]
        fn a_link_to_another_host_is_never_followed(
            current in current_url(),
            link in foreign_link(),
        ) {
            prop_assert_eq!(same_origin_page(&current, &link), None, "{}", link);
            // Nor when the registry sends it as the next page.
            let header = format!("<{link}>; rel=\"next\"");
            let followed = next_link(&header).and_then(|l| same_origin_page(&current, &l));
            prop_assert_eq!(followed, None);
        }

        #[test]
        fn tag_page_parsing_never_panics_and_is_bounded_by_the_body(
            body in prop_oneof![
                any::<Vec<u8>>(),
                "\\{\"(name|tags)\": ?(null|\\[(\"[a-z0-9.]{0,5}\",?){0,6}\\]|[0-9]|\"x\")\\}"
                    .prop_map(String::into_bytes),
            ],
        ) {
            if let Ok(tags) = parse_tag_page(&body) {
                // `"",` at least per tag: the page cannot name more tags than it has bytes.
                prop_assert!(tags.len() * 3 <= body.len());
            }
        }

        #[test]
        fn a_generated_tag_page_reads_back(
            name in "[a-z0-9/]{1,20}",
            tags in prop::option::of(prop::collection::vec("[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", 0..20)),
        ) {
            let body = serde_json::to_vec(&serde_json::json!({"name": name, "tags": tags}))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let parsed = parse_tag_page(&body).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(parsed, tags.unwrap_or_default());
        }

        #[test]
        fn tag_page_parsing_never_panics_on_any_json(value in crate::prop_json::any_json()) {
            let body = serde_json::to_vec(&value).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let _ = parse_tag_page(&body);
        }
    }
}
