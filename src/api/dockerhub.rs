//! Docker Hub's repository webhook: `{"push_data": {"tag"}, "repository": {"repo_name"}}`.
//! Docker Hub neither signs its calls nor sends a header of the user's choosing, so the hook
//! secret travels in the URL path (see the route). Pure, tested on literals.

use serde::Deserialize;

use crate::image_ref::ImageRef;

#[derive(Deserialize)]
struct Body {
    push_data: PushData,
    repository: Repository,
}

#[derive(Deserialize)]
struct PushData {
    #[serde(default)]
    tag: Option<String>,
}

#[derive(Deserialize)]
struct Repository {
    repo_name: String,
}

/// Why a Docker Hub body was refused.
#[derive(Debug, thiserror::Error)]
pub enum DockerHubError {
    /// Not Docker Hub's body.
    #[error("not a Docker Hub webhook body: {0}")]
    Body(serde_json::Error),
    /// It names no reference tidewatch can follow.
    #[error("{0}")]
    Reference(String),
}

/// The reference a Docker Hub push names (`docker.io/acme/app:latest`), or `None` when the push
/// has no tag (nothing to follow).
pub fn parse_dockerhub(body: &[u8]) -> Result<Option<String>, DockerHubError> {
    let body: Body = serde_json::from_slice(body).map_err(DockerHubError::Body)?;
    let Some(tag) = body.push_data.tag.filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    let name = body.repository.repo_name.trim();
    // Docker Hub's names are `name` or `namespace/name`: one that looks like another registry's
    // (`ghcr.io/acme/app`, `host:5000/app`) is not believed.
    let hub_name = name.split('/').count() <= 2
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "/._-".contains(c));
    if !hub_name {
        return Err(DockerHubError::Reference(format!(
            "{name:?} is not a Docker Hub repository name"
        )));
    }
    let reference = ImageRef::parse(&format!("docker.io/{name}:{}", tag.trim()))
        .map_err(|e| DockerHubError::Reference(e.to_string()))?;
    if reference.registry() != "docker.io" || reference.is_pinned() {
        return Err(DockerHubError::Reference(format!(
            "{name:?} with tag {tag:?} is not a Docker Hub repository and tag"
        )));
    }
    Ok(Some(reference.to_string()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Shaped like the example body in Docker Hub's webhook documentation.
    pub(crate) fn push_body(repo_name: &str, tag: &str) -> String {
        format!(
            r#"{{
  "callback_url": "https://registry.hub.docker.com/u/svendowideit/testhook/hook/2141b5bi5i5b02bec211i4eeih0242eg11000a/",
  "push_data": {{
    "pushed_at": 1417566161,
    "pusher": "trustedbuilder",
    "tag": "{tag}"
  }},
  "repository": {{
    "comment_count": 0,
    "date_created": 1417494799,
    "description": "",
    "dockerfile": "",
    "full_description": "Docker Hub based automated build from a GitHub repo",
    "is_official": false,
    "is_private": true,
    "is_trusted": true,
    "name": "testhook",
    "namespace": "svendowideit",
    "owner": "svendowideit",
    "repo_name": "{repo_name}",
    "repo_url": "https://registry.hub.docker.com/u/svendowideit/testhook/",
    "star_count": 0,
    "status": "Active"
  }}
}}"#
        )
    }

    #[test]
    fn a_push_names_its_docker_hub_reference() {
        assert_eq!(
            parse_dockerhub(push_body("svendowideit/testhook", "latest").as_bytes()).unwrap(),
            Some("docker.io/svendowideit/testhook:latest".into())
        );
        assert_eq!(
            parse_dockerhub(push_body("nginx", "1.27").as_bytes()).unwrap(),
            Some("docker.io/library/nginx:1.27".into()),
            "an official image is under library/"
        );
    }

    #[test]
    fn a_push_without_a_tag_names_nothing() {
        assert_eq!(
            parse_dockerhub(push_body("acme/app", "").as_bytes()).unwrap(),
            None
        );
    }

    #[test]
    fn other_registries_digests_and_other_bodies_are_refused() {
        for (name, tag) in [
            ("ghcr.io/acme/app", "v1"),
            ("127.0.0.1:5000/app", "v1"),
            (
                "acme/app",
                "v1@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            ),
            ("Acme/App", "v1"),
        ] {
            assert!(
                parse_dockerhub(push_body(name, tag).as_bytes()).is_err(),
                "{name} {tag}"
            );
        }
        assert!(parse_dockerhub(b"{\"image\": \"acme/app:v1\"}").is_err());
        assert!(parse_dockerhub(b"not json").is_err());
    }
}
