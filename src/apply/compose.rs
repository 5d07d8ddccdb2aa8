//! docker-compose v1 decides whether a container is current by a hash of its service config
//! that includes the id of the image the service's tag points to (compose 1.29
//! `Service.config_dict`). After tidewatch points the tag at the new image, that hash changes,
//! and the next `docker-compose up -d` would recreate the service once more for nothing.
//!
//! The hash covers compose's parsed options, which the container does not record, so it can
//! only be computed by compose itself: `docker-compose config --hash=SERVICE`, run in the
//! project's directory with its files, as the labels compose wrote say. When that is not
//! possible (compose not installed, files moved), the label is left as it was and compose
//! recreates the service once, onto the same new image.

use std::collections::HashMap;
use std::ffi::OsString;
use std::time::Duration;

use tokio::process::Command;

/// The labels compose v1 writes and reads.
mod label {
    pub const VERSION: &str = "com.docker.compose.version";
    pub const PROJECT: &str = "com.docker.compose.project";
    pub const SERVICE: &str = "com.docker.compose.service";
    pub const WORKING_DIR: &str = "com.docker.compose.project.working_dir";
    pub const CONFIG_FILES: &str = "com.docker.compose.project.config_files";
    pub const CONFIG_HASH: &str = "com.docker.compose.config-hash";
}

/// How long compose may take to print a hash.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The compose v1 program, looked up in `PATH`.
const COMPOSE: &str = "docker-compose";

/// Refreshes the config-hash label of a compose v1 container about to be recreated, once the
/// service's tag points at the new image. Does nothing for other containers.
pub async fn refresh_config_hash(labels: &mut HashMap<String, String>) {
    refresh_config_hash_with(COMPOSE, labels).await
}

/// [`refresh_config_hash`] with `program` as compose.
async fn refresh_config_hash_with(program: &str, labels: &mut HashMap<String, String>) {
    let v1 = labels
        .get(label::VERSION)
        .is_some_and(|v| v.starts_with("1."));
    if !v1 || !labels.contains_key(label::CONFIG_HASH) {
        return;
    }
    let (Some(project), Some(service), Some(dir), Some(files)) = (
        labels.get(label::PROJECT),
        labels.get(label::SERVICE),
        labels.get(label::WORKING_DIR),
        labels.get(label::CONFIG_FILES),
    ) else {
        return;
    };
    let mut command = Command::new(program);
    command
        .env_clear()
        .envs(compose_env(std::env::vars_os()))
        .current_dir(dir)
        .arg("--project-name")
        .arg(project);
    for file in files.split(',').filter(|f| !f.is_empty()) {
        command.arg("--file").arg(file);
    }
    command
        .arg("config")
        .arg(format!("--hash={service}"))
        .kill_on_drop(true);
    let output = match tokio::time::timeout(TIMEOUT, command.output()).await {
        Ok(Ok(output)) if output.status.success() => output,
        Ok(Ok(output)) => {
            tracing::warn!(
                service,
                "docker-compose config --hash failed ({}); compose will recreate the service once",
                String::from_utf8_lossy(&output.stderr).trim()
            );
            return;
        }
        Ok(Err(e)) => {
            // The container image has no compose, and a host may not have it either: the
            // update goes on, compose only recreates the service once more later.
            tracing::warn!(
                service,
                "cannot run {program} ({e}): its config-hash label is left as it was, so the \
                 next `docker-compose up -d` recreates the service once, onto the same image"
            );
            return;
        }
        Err(_) => {
            tracing::warn!(service, "docker-compose config --hash timed out");
            return;
        }
    };
    match parse_hash(&String::from_utf8_lossy(&output.stdout), service) {
        Some(hash) => {
            labels.insert(label::CONFIG_HASH.to_string(), hash);
        }
        None => tracing::warn!(service, "docker-compose printed no hash for the service"),
    }
}

/// The environment compose runs with, out of tidewatch's own `vars`: `PATH` and `HOME` to find
/// itself and the user's Docker config, and the `DOCKER_*` and `COMPOSE_*` variables that may
/// point it at the engine or be part of its project's settings. Nothing else: tidewatch's
/// environment may hold a registry's `password_env` and other secrets that compose has no use
/// for (and a compose file could interpolate into a container it starts).
fn compose_env(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Vec<(OsString, OsString)> {
    vars.into_iter()
        .filter(|(name, _)| {
            name.to_str().is_some_and(|name| {
                matches!(name, "PATH" | "HOME")
                    || name.starts_with("DOCKER_")
                    || name.starts_with("COMPOSE_")
            })
        })
        .collect()
}

/// `SERVICE HASH` lines, as `docker-compose config --hash` prints them.
fn parse_hash(stdout: &str, service: &str) -> Option<String> {
    stdout.lines().find_map(|line| {
        let (name, hash) = line.trim().split_once(' ')?;
        (name == service && !hash.trim().is_empty()).then(|| hash.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_line_of_the_service_is_read() {
        let out = "db 1111\nweb 94cbfb56aa\n";
        assert_eq!(parse_hash(out, "web").as_deref(), Some("94cbfb56aa"));
        assert_eq!(parse_hash(out, "cache"), None);
    }

    #[test]
    fn compose_gets_path_home_and_docker_and_compose_variables_only() {
        let vars = [
            ("PATH", "/usr/local/bin:/usr/bin"),
            ("HOME", "/root"),
            ("DOCKER_HOST", "unix:///run/docker.sock"),
            ("DOCKER_CONFIG", "/etc/tidewatch/docker"),
            ("COMPOSE_PROJECT_NAME", "shop"),
            ("REGISTRY_PASSWORD", "hunter2"),
            ("TIDEWATCH_CONFIG", "/etc/tidewatch/agent.toml"),
            ("AWS_SECRET_ACCESS_KEY", "hunter3"),
            ("NOTIFY_SOCKET", "/run/systemd/notify"),
            ("MY_DOCKER_HOST", "tcp://elsewhere:2375"),
            ("PATHEXT", ".x"),
        ]
        .map(|(name, value)| (OsString::from(name), OsString::from(value)));
        let names: Vec<OsString> = compose_env(vars).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "PATH",
                "HOME",
                "DOCKER_HOST",
                "DOCKER_CONFIG",
                "COMPOSE_PROJECT_NAME"
            ]
            .map(OsString::from)
        );
    }

    #[tokio::test]
    async fn compose_runs_without_the_rest_of_tidewatchs_environment() {
        use std::os::unix::fs::PermissionsExt;
        // A "compose" that answers with the names of its environment as the service's hash.
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("docker-compose");
        std::fs::write(
            &program,
            "#!/bin/sh\nprintf 'web %s\\n' \"$(env | cut -d= -f1 | sort | paste -sd+ -)\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut labels = HashMap::from([
            (label::VERSION.to_string(), "1.29.2".to_string()),
            (label::PROJECT.to_string(), "shop".to_string()),
            (label::SERVICE.to_string(), "web".to_string()),
            (
                label::WORKING_DIR.to_string(),
                dir.path().display().to_string(),
            ),
            (label::CONFIG_FILES.to_string(), "compose.yml".to_string()),
            (label::CONFIG_HASH.to_string(), "old-hash".to_string()),
        ]);
        refresh_config_hash_with(&program.display().to_string(), &mut labels).await;
        let names = &labels[label::CONFIG_HASH];
        assert_ne!(names, "old-hash", "the fake compose did not run");
        // What the shell adds itself is allowed too.
        let others: Vec<&str> = names
            .split('+')
            .filter(|n| {
                !(matches!(*n, "PATH" | "HOME" | "PWD" | "OLDPWD" | "SHLVL" | "_")
                    || n.starts_with("DOCKER_")
                    || n.starts_with("COMPOSE_"))
            })
            .collect();
        assert!(others.is_empty(), "compose was given {others:?}");
    }

    #[tokio::test]
    async fn without_compose_the_hash_is_left_as_it_was_and_nothing_fails() {
        let dir = std::env::temp_dir().display().to_string();
        let mut labels = HashMap::from([
            (label::VERSION.to_string(), "1.29.2".to_string()),
            (label::PROJECT.to_string(), "shop".to_string()),
            (label::SERVICE.to_string(), "web".to_string()),
            (label::WORKING_DIR.to_string(), dir),
            (
                label::CONFIG_FILES.to_string(),
                "docker-compose.yml".to_string(),
            ),
            (label::CONFIG_HASH.to_string(), "old-hash".to_string()),
        ]);
        let before = labels.clone();
        refresh_config_hash_with("tidewatch-test-no-such-compose", &mut labels).await;
        assert_eq!(labels, before);
    }

    #[tokio::test]
    async fn non_compose_containers_are_left_alone() {
        let mut labels = HashMap::from([("a".to_string(), "b".to_string())]);
        refresh_config_hash(&mut labels).await;
        assert_eq!(labels.len(), 1);
    }
}
