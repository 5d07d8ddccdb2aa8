//! The registry webhook's body: which image references a push names. Pure, tested on literals.
//!
//! Two shapes are understood: CNCF distribution's notification envelope
//! (`{"events": [{"action": "push", "target": {"repository", "tag", ...}, "request": {"host"}}]}`)
//! and a generic `{"image": "host/repo:tag"}` for CI jobs.

use serde::Deserialize;
use serde_json::Value;

use crate::image_ref::ImageRef;

/// The references a webhook body names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookImages {
    /// Normalised references (`host/repo:tag`), each once, in the order they came.
    pub images: Vec<String>,
    /// Events that name no tag to follow: pulls, deletes, blob pushes, pushes by digest.
    pub ignored: usize,
}

/// Why a webhook body was refused.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// Not JSON at all.
    #[error("the body is not JSON: {0}")]
    NotJson(serde_json::Error),
    /// JSON, but neither shape.
    #[error(
        "expected a registry notification {{\"events\": [...]}} or {{\"image\": \"host/repo:tag\"}}"
    )]
    UnknownShape,
    /// An `events` envelope whose structure is wrong.
    #[error("bad notification envelope: {0}")]
    Envelope(serde_json::Error),
    /// A `{"image": ...}` body with a wrong type or an unknown field.
    #[error("bad image body: {0}")]
    Generic(serde_json::Error),
    /// `image` is not a reference to follow.
    #[error("{0}")]
    Image(String),
}

#[derive(Deserialize)]
struct Envelope {
    events: Vec<Event>,
}

/// One notification. Distribution sends more fields (id, timestamp, actor, source); only these
/// matter here.
#[derive(Deserialize)]
struct Event {
    action: String,
    #[serde(default)]
    target: Target,
    #[serde(default)]
    request: Request,
}

#[derive(Default, Deserialize)]
struct Target {
    #[serde(default)]
    repository: Option<String>,
    #[serde(default)]
    tag: Option<String>,
}

#[derive(Default, Deserialize)]
struct Request {
    #[serde(default)]
    host: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Generic {
    image: String,
}

/// Reads a webhook body.
pub fn parse_hook(body: &[u8]) -> Result<HookImages, HookError> {
    let value: Value = serde_json::from_slice(body).map_err(HookError::NotJson)?;
    let Some(object) = value.as_object() else {
        return Err(HookError::UnknownShape);
    };
    if object.contains_key("events") {
        let envelope: Envelope = serde_json::from_value(value).map_err(HookError::Envelope)?;
        Ok(from_events(envelope.events))
    } else if object.contains_key("image") {
        let generic: Generic = serde_json::from_value(value).map_err(HookError::Generic)?;
        Ok(HookImages {
            images: vec![generic_image(&generic.image)?],
            ignored: 0,
        })
    } else {
        Err(HookError::UnknownShape)
    }
}

fn from_events(events: Vec<Event>) -> HookImages {
    let mut out = HookImages::default();
    for event in events {
        match pushed_reference(&event) {
            Some(reference) if !out.images.contains(&reference) => out.images.push(reference),
            Some(_) => {}
            None => out.ignored += 1,
        }
    }
    out
}

/// `host/repository:tag` of a push by tag; `None` for anything else. The host is the one the
/// client pushed to (`request.host`), as the containers' references name it.
fn pushed_reference(event: &Event) -> Option<String> {
    if event.action != "push" {
        return None;
    }
    fn non_empty(s: &Option<String>) -> Option<&str> {
        s.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }
    let tag = non_empty(&event.target.tag)?;
    let repository = non_empty(&event.target.repository)?;
    let host = non_empty(&event.request.host)?;
    match ImageRef::parse(&format!("{host}/{repository}:{tag}")) {
        Ok(r) => Some(r.to_string()),
        Err(e) => {
            tracing::debug!("registry notification ignored: {e}");
            None
        }
    }
}

fn generic_image(image: &str) -> Result<String, HookError> {
    let reference = ImageRef::parse(image.trim()).map_err(|e| HookError::Image(e.to_string()))?;
    if reference.is_pinned() {
        return Err(HookError::Image(format!(
            "{image:?} pins a digest: give the tag that was pushed, like \"ghcr.io/org/app:latest\""
        )));
    }
    Ok(reference.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like what distribution 2.8/3.0 sends for `docker push 127.0.0.1:5000/team/app:v2`:
    /// blob pushes first (no tag), then the manifest by tag.
    const DISTRIBUTION_PUSH: &str = r#"{
      "events": [
        {
          "id": "320678d8-ca14-430f-8bb6-4ca139cd83f7",
          "timestamp": "2026-03-10T12:00:00.000000000Z",
          "action": "push",
          "target": {
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "size": 2779,
            "digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111",
            "length": 2779,
            "repository": "team/app",
            "url": "http://127.0.0.1:5000/v2/team/app/blobs/sha256:1111"
          },
          "request": {"id": "r1", "addr": "127.0.0.1:41234", "host": "127.0.0.1:5000",
                      "method": "PUT", "useragent": "docker/27"},
          "actor": {},
          "source": {"addr": "registry:5000", "instanceID": "i"}
        },
        {
          "id": "6b2f2f0e-4a1e-4c56-9d2b-5ad3f8f9a111",
          "timestamp": "2026-03-10T12:00:01.000000000Z",
          "action": "push",
          "target": {
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "size": 856,
            "digest": "sha256:2222222222222222222222222222222222222222222222222222222222222222",
            "length": 856,
            "repository": "team/app",
            "url": "http://127.0.0.1:5000/v2/team/app/manifests/sha256:2222",
            "tag": "v2"
          },
          "request": {"id": "r2", "addr": "127.0.0.1:41234", "host": "127.0.0.1:5000",
                      "method": "PUT", "useragent": "docker/27"},
          "actor": {"name": "ci"},
          "source": {"addr": "registry:5000", "instanceID": "i"}
        }
      ]
    }"#;

    #[test]
    fn distribution_push_by_tag_names_host_repository_and_tag() {
        let got = parse_hook(DISTRIBUTION_PUSH.as_bytes()).unwrap();
        assert_eq!(got.images, vec!["127.0.0.1:5000/team/app:v2".to_string()]);
        assert_eq!(got.ignored, 1);
    }

    #[test]
    fn pulls_and_pushes_by_digest_are_ignored() {
        let body = r#"{"events": [
            {"action": "pull", "target": {"repository": "app", "tag": "latest"},
             "request": {"host": "127.0.0.1:5000"}},
            {"action": "push", "target": {"repository": "app", "digest": "sha256:33"},
             "request": {"host": "127.0.0.1:5000"}},
            {"action": "delete", "target": {"repository": "app"}, "request": {}}
        ]}"#;
        let got = parse_hook(body.as_bytes()).unwrap();
        assert!(got.images.is_empty());
        assert_eq!(got.ignored, 3);
    }

    #[test]
    fn one_reference_pushed_twice_is_named_once() {
        let event = r#"{"action": "push", "target": {"repository": "app", "tag": "latest"},
                        "request": {"host": "registry.example.com"}}"#;
        let body = format!(r#"{{"events": [{event}, {event}]}}"#);
        let got = parse_hook(body.as_bytes()).unwrap();
        assert_eq!(
            got.images,
            vec!["registry.example.com/app:latest".to_string()]
        );
        assert_eq!(got.ignored, 0);
    }

    #[test]
    fn an_event_without_a_host_is_ignored() {
        let body =
            r#"{"events": [{"action": "push", "target": {"repository": "app", "tag": "v1"}}]}"#;
        let got = parse_hook(body.as_bytes()).unwrap();
        assert!(got.images.is_empty());
        assert_eq!(got.ignored, 1);
    }

    #[test]
    fn generic_body_is_normalised_like_container_references() {
        let got = parse_hook(br#"{"image": "nginx"}"#).unwrap();
        assert_eq!(
            got.images,
            vec!["docker.io/library/nginx:latest".to_string()]
        );
        let got = parse_hook(br#"{"image": "ghcr.io/org/app:1.2"}"#).unwrap();
        assert_eq!(got.images, vec!["ghcr.io/org/app:1.2".to_string()]);
    }

    #[test]
    fn generic_body_with_a_digest_is_refused() {
        let e = parse_hook(br#"{"image": "ghcr.io/org/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}"#)
            .unwrap_err();
        assert!(matches!(e, HookError::Image(_)), "{e}");
        assert!(e.to_string().contains("pins a digest"), "{e}");
    }

    #[test]
    fn malformed_bodies_are_refused() {
        assert!(matches!(
            parse_hook(b"image=app"),
            Err(HookError::NotJson(_))
        ));
        assert!(matches!(parse_hook(b"[]"), Err(HookError::UnknownShape)));
        assert!(matches!(
            parse_hook(br#"{"images": ["app"]}"#),
            Err(HookError::UnknownShape)
        ));
        assert!(matches!(
            parse_hook(br#"{"events": {"action": "push"}}"#),
            Err(HookError::Envelope(_))
        ));
        assert!(matches!(
            parse_hook(br#"{"events": [{"target": {}}]}"#),
            Err(HookError::Envelope(_))
        ));
        assert!(matches!(
            parse_hook(br#"{"image": 7}"#),
            Err(HookError::Generic(_))
        ));
        assert!(matches!(
            parse_hook(br#"{"image": "app", "tag": "v1"}"#),
            Err(HookError::Generic(_))
        ));
        assert!(matches!(
            parse_hook(br#"{"image": "Not A Ref"}"#),
            Err(HookError::Image(_))
        ));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::*;

    /// What a parsed body names is normalised, once each, and no more than it has events.
    fn check(images: &HookImages, events: Option<usize>) -> Result<(), TestCaseError> {
        for (i, image) in images.images.iter().enumerate() {
            let parsed = ImageRef::parse(image).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&parsed.to_string(), image);
            prop_assert!(!parsed.is_pinned(), "{}", image);
            prop_assert!(!images.images[..i].contains(image), "{} twice", image);
        }
        if let Some(events) = events {
            prop_assert!(images.images.len() + images.ignored <= events);
        }
        Ok(())
    }

    fn event() -> impl Strategy<Value = Value> {
        let text = || {
            prop_oneof![
                3 => "[a-z0-9]{1,6}(/[a-z0-9._-]{1,6}){0,2}".prop_map(Value::from),
                1 => "[a-zA-Z0-9:./@ _-]{0,12}".prop_map(Value::from),
                1 => crate::prop_json::any_json(),
            ]
        };
        (
            prop_oneof![Just("push"), Just("pull"), Just("delete"), Just("PUSH")],
            prop::option::of(text()),
            prop::option::of(prop_oneof![
                "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}".prop_map(Value::from),
                text(),
            ]),
            prop::option::of(prop_oneof![
                "(127\\.0\\.0\\.1:5000|localhost|[a-z]{1,6}\\.[a-z]{2,3}(:[0-9]{1,5})?)"
                    .prop_map(Value::from),
                text(),
            ]),
        )
            .prop_map(|(action, repository, tag, host)| {
                let mut target = serde_json::Map::new();
                target.insert(
                    "mediaType".into(),
                    json!("application/vnd.oci.image.manifest.v1+json"),
                );
                if let Some(r) = repository {
                    target.insert("repository".into(), r);
                }
                if let Some(t) = tag {
                    target.insert("tag".into(), t);
                }
                let mut request = serde_json::Map::new();
                if let Some(h) = host {
                    request.insert("host".into(), h);
                }
                json!({"id": "x", "action": action, "target": target, "request": request})
            })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_are_read_or_refused(body in any::<Vec<u8>>()) {
            if let Ok(images) = parse_hook(&body) {
                check(&images, None)?;
            }
        }

        #[test]
        fn arbitrary_json_is_read_or_refused(value in crate::prop_json::any_json()) {
            let body = serde_json::to_vec(&value).map_err(|e| TestCaseError::fail(e.to_string()))?;
            if let Ok(images) = parse_hook(&body) {
                check(&images, None)?;
            }
        }

        #[test]
        fn a_notification_names_its_pushes_by_tag(events in prop::collection::vec(event(), 0..8)) {
            let body = serde_json::to_vec(&json!({"events": events}))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            match parse_hook(&body) {
                Ok(images) => {
                    check(&images, Some(events.len()))?;
                    // A push whose parts make a reference is named; nothing else is.
                    for e in &events {
                        let part = |v: &Value| v.as_str().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
                        let named = (e["action"] == "push")
                            .then(|| Some(format!(
                                "{}/{}:{}",
                                part(&e["request"]["host"])?,
                                part(&e["target"]["repository"])?,
                                part(&e["target"]["tag"])?,
                            )))
                            .flatten()
                            .and_then(|r| ImageRef::parse(&r).ok());
                        if let Some(r) = named {
                            prop_assert!(images.images.contains(&r.to_string()), "{} missing", r);
                        }
                    }
                }
                // A field of the wrong type refuses the envelope, as serde reads it.
                Err(HookError::Envelope(_)) => {}
                Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
            }
        }

        #[test]
        fn a_generic_body_names_its_image_normalised(image in prop_oneof![
            "[a-z0-9.:/@_-]{0,40}",
            "(ghcr\\.io/)?[a-z0-9]{1,8}(/[a-z0-9]{1,8})?(:[a-z0-9.]{1,8})?",
        ]) {
            let body = serde_json::to_vec(&json!({"image": image}))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let expected = ImageRef::parse(image.trim()).ok().filter(|r| !r.is_pinned());
            match (parse_hook(&body), expected) {
                (Ok(images), Some(r)) => prop_assert_eq!(images.images, vec![r.to_string()]),
                (Err(HookError::Image(_)), None) => {}
                (got, expected) => {
                    return Err(TestCaseError::fail(format!("{image:?}: {got:?}, expected {expected:?}")))
                }
            }
        }
    }
}
