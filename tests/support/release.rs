//! Releasing a new version the way it happens in production: built and pushed by CI somewhere
//! else, so the server running the old version has never seen the new image.

use std::fs;

use super::bed::{TestBed, IMAGE_LABEL};
use super::docker::docker;
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
    fs::write(&dockerfile, format!("FROM {app}\n{declared}"))
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", dockerfile.display()));
    docker(&[
        "build",
        "--quiet",
        "--label",
        &format!("{IMAGE_LABEL}={}", bed.id()),
        "--tag",
        image,
        &context.to_string_lossy(),
    ])
}

/// Publishes a new version of `image` as CI elsewhere would: `build` builds it here under the
/// `image` tag, it is pushed, and then the engine is put back as a server that never built it:
/// the tag points at the image it pointed at before, and the new image is deleted. Returns the
/// digest the registry now serves for `image`.
pub fn push_from_elsewhere(image: &str, build: impl FnOnce() -> String) -> String {
    let previous = docker(&["image", "inspect", "--format", "{{.Id}}", image]);
    let built = build();
    assert_ne!(built, previous, "the new version built the same image");
    let digest = push(image);
    docker(&["tag", &previous, image]);
    docker(&["rmi", &built]);
    digest
}
