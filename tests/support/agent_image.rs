//! The agent's container image (`packaging/image/build`), built from the test binary, and the
//! agent run in it the Watchtower way: `docker run -d` with the engine's socket and an
//! agent.toml mounted, on the host's network so it reaches the loopback test registries.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use super::bed::{TestBed, IMAGE_LABEL, TEST_LABEL};
use super::cycle::RUN_INTERVAL;
use super::docker::{docker, try_docker};

/// The engine socket, as the agent container mounts it.
const SOCKET: &str = "/var/run/docker.sock";
/// What `tidewatch run` logs at the end of each cycle.
pub const CYCLE_FINISHED: &str = "cycle finished";
/// The label of the agent's image (packaging/image/build).
const AGENT_LABEL: &str = "tidewatch.agent";

impl TestBed {
    /// Builds the agent image from the test binary (the debug build) with
    /// `packaging/image/build`, tagged `image` and labelled with the bed id like every test
    /// image. Returns what the script printed (the image and its size).
    pub fn build_agent_image(&self, image: &str) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/image/build");
        let label = format!("{IMAGE_LABEL}={}", self.id());
        let output = Command::new(&script)
            .args([env!("CARGO_BIN_EXE_tidewatch"), image, "--"])
            // No cache: a cached layer is shared with another test's image, which its cleanup
            // may delete mid-build (see `support::docker::build`).
            .args(["--no-cache", "--label", &label])
            .env("TMPDIR", self.dir())
            .output()
            .unwrap_or_else(|error| panic!("cannot run {}: {error}", script.display()));
        let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        assert!(
            output.status.success(),
            "{} failed ({}): {stdout}\n{}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// A new digest of the agent image at `image`: the image as it is, with another
    /// `tidewatch.test.version` label.
    pub fn rebuild_agent_image(&self, image: &str, version: &str) -> String {
        self.build_dockerfile(
            image,
            &format!("FROM {image}\nLABEL tidewatch.test.version={version}\n"),
        )
    }

    /// Runs `image` as the bed's container `name`, the Watchtower way, with an agent.toml that
    /// watches the bed's scope (the agent's own container included), trusts `registries`
    /// over plain HTTP, runs a cycle every [`RUN_INTERVAL`] with a short health gate, and sets
    /// `[update] self_update`. Its state is the image's volume.
    pub fn run_agent(
        &self,
        name: &str,
        image: &str,
        registries: &[String],
        self_update: bool,
    ) -> AgentContainer {
        self.run_agent_with(name, image, registries, self_update, &[])
    }

    /// Like [`TestBed::run_agent`], with extra `docker run` options (a restart policy...).
    pub fn run_agent_with(
        &self,
        name: &str,
        image: &str,
        registries: &[String],
        self_update: bool,
        options: &[&str],
    ) -> AgentContainer {
        self.run_agent_configured(name, image, registries, self_update, options, "")
    }

    /// Like [`TestBed::run_agent_with`], with `extra` appended to its agent.toml.
    pub fn run_agent_configured(
        &self,
        name: &str,
        image: &str,
        registries: &[String],
        self_update: bool,
        options: &[&str],
        extra: &str,
    ) -> AgentContainer {
        let mut toml = format!(
            "[agent]\ninterval = \"{}s\"\n\n[watch]\nscope = {:?}\n\n\
             [update]\nmin_running = \"1s\"\nhealth_timeout = \"20s\"\nself_update = {self_update}\n",
            RUN_INTERVAL.as_secs(),
            self.scope(),
        );
        for host in registries {
            toml.push_str(&format!(
                "\n[[registry]]\nhost = {host:?}\ninsecure = true\n"
            ));
        }
        toml.push_str(extra);
        let config = self.dir().join(format!("{name}-agent.toml"));
        fs::write(&config, toml)
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", config.display()));
        let socket = format!("{SOCKET}:{SOCKET}");
        let mount = format!("{}:/etc/tidewatch/agent.toml:ro", config.display());
        let mut all = vec!["--network", "host", "-v", &socket, "-v", &mount];
        all.extend_from_slice(options);
        self.run_with(name, &all, image, &[], &[]);
        AgentContainer {
            name: self.name(name),
            bed: self.id().to_owned(),
        }
    }
}

/// The agent's container, and its successors under the same name. Dropping it removes every
/// agent container of the bed with its volumes (the state), before the bed removes the rest;
/// when the test is failing, the agent's log is printed first.
pub struct AgentContainer {
    name: String,
    bed: String,
}

impl AgentContainer {
    /// What the agent under the name logged so far (`docker logs`: its stderr).
    pub fn logs(&self) -> String {
        match Command::new("docker").args(["logs", &self.name]).output() {
            Ok(output) => format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(error) => format!("(cannot run `docker logs {}`: {error})", self.name),
        }
    }

    /// Waits until the agent under the name has logged `needle` `count` times; panics after
    /// `timeout` with the log.
    pub fn wait_for_log(&self, needle: &str, count: usize, timeout: Duration) {
        let started = Instant::now();
        while self.logs().matches(needle).count() < count {
            assert!(
                started.elapsed() < timeout,
                "{} did not log {needle:?} {count} time(s) within {timeout:?}; log:\n{}",
                self.name,
                self.logs()
            );
            thread::sleep(Duration::from_millis(250));
        }
    }

    /// Waits until the agent under the name has finished one more cycle than it had so far.
    pub fn wait_for_next_cycle(&self, timeout: Duration) {
        let cycles = self.logs().matches(CYCLE_FINISHED).count();
        self.wait_for_log(CYCLE_FINISHED, cycles + 1, timeout);
    }

    /// `tidewatch history --json CONTAINER` run inside the agent's container, newest first.
    pub fn history(&self, container: &str) -> serde_json::Value {
        let history = self.exec(&["history", "--json", container]);
        serde_json::from_str(&history)
            .unwrap_or_else(|error| panic!("history --json: {error}\n{history}"))
    }

    /// `tidewatch ARGS` run inside the agent's container, with its configuration; stdout.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut all = vec!["exec", self.name.as_str(), "/usr/bin/tidewatch"];
        all.extend_from_slice(args);
        docker(&all)
    }
}

impl Drop for AgentContainer {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("log of {}:\n{}", self.name, self.logs());
        }
        let filter = [
            "--filter".to_owned(),
            format!("label={TEST_LABEL}={}", self.bed),
            "--filter".to_owned(),
            format!("label={AGENT_LABEL}=true"),
        ];
        let mut list = vec!["ps", "--all", "--quiet"];
        list.extend(filter.iter().map(String::as_str));
        let ids = match try_docker(&list) {
            Ok(ids) => ids,
            Err(error) => return eprintln!("cleanup of {}: {error}", self.name),
        };
        for id in ids.split_whitespace() {
            // A successor has its predecessor's anonymous volume by name: `rm -v` keeps it.
            let volumes = try_docker(&[
                "container",
                "inspect",
                "--format",
                "{{range .Mounts}}{{if eq .Type \"volume\"}}{{.Name}} {{end}}{{end}}",
                id,
            ])
            .unwrap_or_default();
            if let Err(error) = try_docker(&["rm", "--force", "--volumes", id]) {
                eprintln!("cleanup of {}: {error}", self.name);
            }
            for volume in volumes.split_whitespace() {
                // Already gone with `rm -v`, or still used by another agent container of the
                // bed that is removed next.
                let _ = try_docker(&["volume", "rm", volume]);
            }
        }
    }
}
