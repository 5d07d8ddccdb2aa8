//! Releasing a new version the way it happens in production: built and pushed by CI somewhere
//! else, so the server running the old version has never seen the new image.

use std::fs;

use super::bed::{TestBed, IMAGE_LABEL};
use super::docker::{build, docker, image_id};
use super::images::push;

/// Builds the test app at `version` as `image` (see [`TestBed::build_app`]), with a `VOLUME` for
/// each of `volumes` declared on top; returns the image id.
pub fn build_app_declaring(bed: &TestBed, image: &str, version: &str, volumes: &[&str]) -> String {
    let app = bed.build_app(image, version);
    if volumes.is_empty() {
        return app;
    }
    let context = bed.dir().join(format!("volumes-{}", app.replace(':', "-")));
    fs::create_dir_all(&context)
        .unwrap_or_else(|error| panic!("cannot create {}: {error}", context.display()));
    let dockerfile = context.join("Dockerfile");
    let declared = volumes
        .iter()
        .map(|path| format!("VOLUME {path}\n"))
        .collect::<String>();
    // By name, not id: BuildKit reads `FROM sha256:…` as an image on Docker Hub.
    fs::write(&dockerfile, format!("FROM {image}\n{declared}"))
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", dockerfile.display()));
    build(
        &["--label", &format!("{IMAGE_LABEL}={}", bed.id())],
        image,
        &context,
    )
}

/// Publishes a new version of `image` as CI elsewhere would: `build` builds it here under the
/// `image` tag, it is pushed, and then the engine is put back as a server that never built it:
/// the tag points at the image it pointed at before, and the new image is deleted. Returns the
/// digest the registry now serves for `image`.
///
/// The previous image holds a second name meanwhile: on the containerd store, a build that
/// moves an image's only name deletes the image, even under a running container.
pub fn push_from_elsewhere(image: &str, build: impl FnOnce() -> String) -> String {
    let previous = image_id(image);
    let keep = format!("{}-kept-{}", image, short(&previous));
    docker(&["tag", &previous, &keep]);
    let built = build();
    assert_ne!(built, previous, "the new version built the same image");
    let digest = push(image);
    docker(&["rmi", "--force", &built]);
    docker(&["tag", &keep, image]);
    // Only the name goes: `image` names the previous image again.
    docker(&["rmi", &keep]);
    digest
}

/// The hex of a digest, shortened, for a tag.
fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..12.min(hex.len())]
}
