//! The `docker` CLI as test scaffolding, and the guard that the engine is there at all.
//!
//! The product talks to the Engine API; the tests use the CLI on purpose, so that what they set
//! up does not depend on the code under test.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// Runs `docker ARGS` and returns its trimmed stdout; panics with the command and its stderr.
pub fn docker(args: &[&str]) -> String {
    try_docker(args).unwrap_or_else(|error| panic!("{error}"))
}

/// Runs `docker build --quiet --no-cache ARGS... --tag IMAGE CONTEXT` and returns the id of the
/// image the engine now knows as `image`. Not what the build printed: BuildKit prints the config
/// digest, while on the containerd store an image's id is its manifest digest.
///
/// No cache: a cached step is an image shared with other builds, possibly in another test
/// process, whose cleanup can delete it mid-build (the legacy builder then stops after
/// `FROM scratch` with "unknown parent image ID" or a missing layer).
pub fn build(args: &[&str], image: &str, context: &Path) -> String {
    let context = context.to_string_lossy();
    let mut all = vec!["build", "--quiet", "--no-cache"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--tag", image, &context]);
    docker(&all);
    image_id(image)
}

/// The id of the image the engine knows as `image` now.
pub fn image_id(image: &str) -> String {
    docker(&["image", "inspect", "--format", "{{.Id}}", image])
}

/// Runs `docker ARGS`; the error names the command and carries its stderr. For cleanup paths,
/// which must not panic.
pub fn try_docker(args: &[&str]) -> Result<String, String> {
    try_docker_with(None, args)
}

/// Runs `docker ARGS` with its client configuration (credentials) read from `config_dir`
/// (`DOCKER_CONFIG`) when given.
pub fn try_docker_with(config_dir: Option<&Path>, args: &[&str]) -> Result<String, String> {
    let command = format!("docker {}", args.join(" "));
    let mut docker = Command::new("docker");
    if let Some(dir) = config_dir {
        docker.env("DOCKER_CONFIG", dir);
    }
    docker
        .args(args)
        .env("DOCKER_BUILDKIT", buildkit())
        // A test image is one plain manifest: BuildKit would add a provenance attestation and
        // push an index where the tests expect what they built.
        .env("BUILDX_NO_DEFAULT_ATTESTATIONS", "1");
    stdout_of(docker, &command, "run scripts/test-env")
}

/// `DOCKER_BUILDKIT` for the test bed's builds: off on Debian 12's engine (20.10 has no BuildKit
/// client on the test machines, and the legacy builder is enough for `FROM scratch` images);
/// on for a lane that says so (`TIDEWATCH_TEST_BUILDKIT=1`, scripts/lane), since the legacy
/// builder on the containerd image store loses intermediate images under parallel builds.
fn buildkit() -> &'static str {
    match std::env::var("TIDEWATCH_TEST_BUILDKIT").as_deref() {
        Ok("1") => "1",
        _ => "0",
    }
}

/// Runs `command` (shown as `shown`) and returns its trimmed stdout; the error names it and
/// carries its stderr, or says how to get the program (`hint`) when it cannot start.
pub fn stdout_of(mut command: Command, shown: &str, hint: &str) -> Result<String, String> {
    let output = command
        .output()
        .map_err(|error| format!("cannot run `{shown}`: {error} ({hint})"))?;
    if !output.status.success() {
        return Err(format!(
            "`{shown}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The docker engine every container test needs.
pub struct Engine;

impl Engine {
    /// The engine address, as the `[docker] host` of an agent config: `DOCKER_HOST` when set,
    /// else the default socket.
    pub fn host() -> String {
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_owned())
    }

    /// Whether the engine keeps images in the containerd image store (Docker 29's default),
    /// where an image id is its manifest digest and repo digests follow its current names.
    pub fn containerd_store() -> bool {
        static STORE: OnceLock<bool> = OnceLock::new();
        *STORE.get_or_init(|| {
            docker(&["info", "--format", "{{json .DriverStatus}}"])
                .contains("io.containerd.snapshotter")
        })
    }

    /// Panics unless the engine answers. Asked once per test process: a missing engine is a
    /// broken test bed, so the tests fail loudly instead of skipping.
    pub fn require() {
        static ANSWER: OnceLock<Result<String, String>> = OnceLock::new();
        let answer =
            ANSWER.get_or_init(|| try_docker(&["version", "--format", "{{.Server.Version}}"]));
        if let Err(error) = answer {
            panic!(
                "docker engine not reachable at {}: run scripts/test-env\n{error}",
                Self::host()
            );
        }
    }
}
