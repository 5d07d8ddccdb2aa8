//! A compose project in a test bed: its file in the bed's directory, the bed id as project name,
//! and `down` on drop. Compose v1 (Debian 12's `docker-compose`) on the 20.10 lane; Compose v2
//! where the lane names its program (`TIDEWATCH_TEST_COMPOSE`, scripts/lane), run standalone
//! with the same arguments.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use super::bed::{TestBed, SCOPE_LABEL, TEST_LABEL};

/// A compose project named after its bed.
pub struct Compose {
    project: String,
    file: PathBuf,
}

impl Compose {
    /// Writes `yaml` as the bed's docker-compose.yml. `{labels}` in it is replaced by the
    /// labels (a YAML mapping, indented for a service) that put a service's containers in the
    /// bed's scope and cleanup.
    pub fn new(bed: &TestBed, yaml: &str) -> Compose {
        let labels = format!(
            "\n      {TEST_LABEL}: {id:?}\n      {SCOPE_LABEL}: {scope:?}",
            id = bed.id(),
            scope = bed.scope()
        );
        let file = bed.dir().join("docker-compose.yml");
        fs::write(&file, yaml.replace("{labels}", &labels))
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", file.display()));
        Compose {
            project: bed.id().to_owned(),
            file,
        }
    }

    /// `docker-compose up -d`; returns what it printed (it reports progress on stderr).
    pub fn up(&self) -> String {
        let (stdout, stderr) = self
            .run(&["up", "-d"])
            .unwrap_or_else(|error| panic!("{error}"));
        format!("{stdout}{stderr}")
    }

    /// The id of the container of `service`; panics unless there is exactly one.
    pub fn container_id(&self, service: &str) -> String {
        let (ids, _) = self
            .run(&["ps", "--quiet", service])
            .unwrap_or_else(|error| panic!("{error}"));
        let ids: Vec<&str> = ids.split_whitespace().collect();
        match ids[..] {
            [id] => id.to_owned(),
            _ => panic!("expected one container of service {service}, got {ids:?}"),
        }
    }

    /// The config hash compose computes for `service` now (what `up` compares with the
    /// container's `com.docker.compose.config-hash` label).
    pub fn config_hash(&self, service: &str) -> String {
        let (printed, _) = self
            .run(&["config", &format!("--hash={service}")])
            .unwrap_or_else(|error| panic!("{error}"));
        // "SERVICE HASH"
        printed
            .split_whitespace()
            .nth(1)
            .unwrap_or_else(|| panic!("no hash in `docker-compose config --hash`: {printed}"))
            .to_owned()
    }

    /// Whether this is Compose v2.
    pub fn is_v2() -> bool {
        std::env::var_os("TIDEWATCH_TEST_COMPOSE").is_some()
    }

    /// `compose ps --format json` of `service`: its container's `State` and `Health`.
    pub fn state(&self, service: &str) -> (String, String) {
        let (printed, _) = self
            .run(&["ps", "--format", "json", service])
            .unwrap_or_else(|error| panic!("{error}"));
        let row: serde_json::Value = serde_json::from_str(printed.lines().next().unwrap_or(""))
            .unwrap_or_else(|error| panic!("not compose's JSON ({error}): {printed}"));
        let field = |name: &str| row[name].as_str().unwrap_or_default().to_owned();
        (field("State"), field("Health"))
    }

    /// Runs `COMPOSE -p PROJECT -f FILE ARGS`; returns its stdout and stderr.
    fn run(&self, args: &[&str]) -> Result<(String, String), String> {
        let file = self.file.to_string_lossy();
        let mut all = vec!["--ansi", "never", "-p", &self.project, "-f", &file];
        all.extend_from_slice(args);
        let program =
            std::env::var("TIDEWATCH_TEST_COMPOSE").unwrap_or_else(|_| "docker-compose".to_owned());
        let command = format!("{program} {}", all.join(" "));
        let output = Command::new(&program)
            .args(&all)
            .output()
            .map_err(|error| format!("cannot run `{command}`: {error} (run scripts/test-env)"))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if !output.status.success() {
            return Err(format!(
                "`{command}` failed ({}): {stdout}{stderr}",
                output.status
            ));
        }
        Ok((stdout, stderr))
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        if let Err(error) = self.run(&["down", "--volumes", "--remove-orphans"]) {
            eprintln!("cleanup of compose project {}: {error}", self.project);
        }
    }
}
