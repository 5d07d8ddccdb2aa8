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
        // BuildKit is not part of the docker.io 20.10 engine on the test machines; the legacy
        // builder is enough for `FROM scratch` images.
        .env("DOCKER_BUILDKIT", "0");
    stdout_of(docker, &command, "run scripts/test-env")
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
