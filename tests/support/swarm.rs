//! Docker Swarm for the service tests: the test engine made a single-node Swarm manager (once
//! per test process, and only by the tests that need it), services tied to a bed and removed
//! when it is done, and watching a service's tasks while it rolls.
//!
//! Swarm is set up here rather than in `scripts/test-env`: only these tests need it, and
//! `docker swarm init` is idempotent enough to run lazily (an active node is reused). The other
//! tests do not mind a Swarm-mode engine: their containers are plain ones, and services carry
//! a bed's scope, so no other bed's agent sees them.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use super::bed::{TestBed, SCOPE_LABEL, TEST_LABEL};
use super::docker::{docker, try_docker};
use super::poller::Poller;

/// How often [`Services::watch_running`] counts running tasks.
const WATCH_EVERY: Duration = Duration::from_millis(50);

/// `[swarm]` for agents in tests: a short monitor so roll-outs are quick, and a timeout well
/// above what a roll-out of a few tiny tasks takes on a loaded CI machine, yet below the
/// harness's limit for one tidewatch run.
pub const SWARM_SETTINGS: &str = "\n[swarm]\nmonitor = \"1s\"\ntimeout = \"90s\"\n";

/// Makes the test engine a Swarm manager unless it is one; panics if it is a worker or
/// cannot be made a manager. Done once per test process.
pub fn require_swarm() {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        let state = |format: &str| try_docker(&["info", "--format", format]);
        if state("{{.Swarm.LocalNodeState}}")? != "active" {
            // Another test process may init at the same moment: its success is ours too.
            if let Err(error) = try_docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]) {
                if !error.contains("already part of a swarm") {
                    return Err(error);
                }
            }
        }
        match state("{{.Swarm.ControlAvailable}}")?.as_str() {
            "true" => Ok(()),
            other => Err(format!(
                "the test engine is in a swarm but not a manager (ControlAvailable={other})"
            )),
        }
    });
    if let Err(error) = ready {
        panic!("cannot make the test engine a swarm manager: {error}");
    }
}

/// Appends [`SWARM_SETTINGS`] to an agent's config file.
pub fn with_swarm_settings(config: &Path) {
    let mut file = OpenOptions::new()
        .append(true)
        .open(config)
        .unwrap_or_else(|error| panic!("cannot open {}: {error}", config.display()));
    file.write_all(SWARM_SETTINGS.as_bytes())
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", config.display()));
}

/// The Swarm services of one bed: named like its containers, labelled with its id and scope,
/// removed on drop.
pub struct Services<'a> {
    bed: &'a TestBed,
}

impl TestBed {
    /// This bed's services; makes the engine a Swarm manager first if it is not one.
    pub fn services(&self) -> Services<'_> {
        require_swarm();
        Services { bed: self }
    }
}

impl Services<'_> {
    /// `docker service create` of the bed's service `name` with `replicas` tasks of `image`,
    /// labelled with the bed's id and scope (the service and its task containers, so that an
    /// agent that did not leave task containers alone would see them) and `labels`, plus
    /// extra `options`. Update settings are left unset, so `[swarm]` supplies them. Waits until
    /// every task runs; returns the service id.
    pub fn create(
        &self,
        name: &str,
        replicas: usize,
        image: &str,
        labels: &[(&str, &str)],
        options: &[&str],
    ) -> String {
        let count = replicas.to_string();
        self.create_as(
            name,
            &["--replicas", &count],
            replicas,
            image,
            labels,
            options,
        )
    }

    /// Like [`Services::create`], a global service (a task on every node) on a Swarm of
    /// `nodes` nodes.
    pub fn create_global(
        &self,
        name: &str,
        nodes: usize,
        image: &str,
        labels: &[(&str, &str)],
        options: &[&str],
    ) -> String {
        self.create_as(name, &["--mode", "global"], nodes, image, labels, options)
    }

    fn create_as(
        &self,
        name: &str,
        mode: &[&str],
        tasks: usize,
        image: &str,
        labels: &[(&str, &str)],
        options: &[&str],
    ) -> String {
        let full = self.bed.name(name);
        let mut args: Vec<String> = ["service", "create", "--detach", "--name", &full]
            .iter()
            .chain(mode)
            .map(|arg| (*arg).to_owned())
            .collect();
        let own = [(TEST_LABEL, self.bed.id()), (SCOPE_LABEL, self.bed.scope())];
        for (key, value) in own.iter().chain(labels) {
            args.extend(["--label".to_owned(), format!("{key}={value}")]);
        }
        for (key, value) in own {
            args.extend(["--container-label".to_owned(), format!("{key}={value}")]);
        }
        args.extend(options.iter().map(|option| (*option).to_owned()));
        args.push(image.to_owned());
        let id = docker(&args.iter().map(String::as_str).collect::<Vec<_>>());
        self.wait_running(name, tasks, Duration::from_secs(60));
        id
    }

    /// The image in the service's spec (`repo:tag@sha256:...` once docker pinned it).
    pub fn image(&self, name: &str) -> String {
        self.inspect(name, "{{.Spec.TaskTemplate.ContainerSpec.Image}}")
    }

    /// The service's `UpdateStatus` as JSON (`null` before its first update).
    pub fn update_status(&self, name: &str) -> serde_json::Value {
        let json = self.inspect(name, "{{json .UpdateStatus}}");
        serde_json::from_str(&json)
            .unwrap_or_else(|error| panic!("UpdateStatus of {name}: {error}: {json}"))
    }

    fn inspect(&self, name: &str, format: &str) -> String {
        docker(&[
            "service",
            "inspect",
            "--format",
            format,
            &self.bed.name(name),
        ])
    }

    /// How many of the service's tasks are running now (old and new alike).
    pub fn running_tasks(&self, name: &str) -> usize {
        running_tasks(&self.bed.name(name))
    }

    /// The image ids the running containers of the service's tasks run.
    pub fn task_image_ids(&self, name: &str) -> Vec<String> {
        let filter = format!(
            "label=com.docker.swarm.service.name={}",
            self.bed.name(name)
        );
        let ids = docker(&["ps", "--quiet", "--filter", &filter]);
        let mut images: Vec<String> = ids
            .split_whitespace()
            .map(|id| docker(&["container", "inspect", "--format", "{{.Image}}", id]))
            .collect();
        images.sort();
        images.dedup();
        images
    }

    /// Waits until the service's running containers all run image `image_id` (old tasks stop
    /// a little after Swarm reports the roll-out done); panics showing what they run.
    pub fn wait_tasks_on(&self, name: &str, image_id: &str, timeout: Duration) {
        let started = Instant::now();
        loop {
            let running = self.task_image_ids(name);
            if running == [image_id] {
                return;
            }
            if started.elapsed() > timeout {
                panic!("the tasks of {name} run {running:?} after {timeout:?}, not {image_id}");
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until a task of the service has failed or been rejected; returns its error.
    pub fn wait_task_error(&self, name: &str, timeout: Duration) -> String {
        let service = self.bed.name(name);
        let started = Instant::now();
        loop {
            let errors = docker(&[
                "service",
                "ps",
                "--no-trunc",
                "--format",
                "{{.Error}}",
                &service,
            ]);
            if let Some(error) = errors.lines().find(|line| !line.trim().is_empty()) {
                return error.to_owned();
            }
            if started.elapsed() > timeout {
                panic!("no task of {name} failed within {timeout:?}");
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until `replicas` tasks of the service run; panics showing `docker service ps`.
    pub fn wait_running(&self, name: &str, replicas: usize, timeout: Duration) {
        let started = Instant::now();
        while self.running_tasks(name) < replicas {
            if started.elapsed() > timeout {
                let tasks = try_docker(&["service", "ps", "--no-trunc", &self.bed.name(name)]);
                panic!(
                    "service {name} did not get {replicas} running tasks within {timeout:?}:\n{}",
                    tasks.unwrap_or_else(|error| error)
                );
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Counts the service's running tasks every [`WATCH_EVERY`]; [`Poller::finish`] stops and
    /// returns the fewest running tasks seen and how many looks that took.
    pub fn watch_running(&self, name: &str) -> RunningWatch {
        let service = self.bed.name(name);
        Poller::start(
            WATCH_EVERY,
            (usize::MAX, 0),
            move |(min, samples): &mut (usize, usize)| {
                *min = (*min).min(running_tasks(&service));
                *samples += 1;
            },
        )
    }

    fn cleanup(&self) {
        let filter = format!("label={TEST_LABEL}={}", self.bed.id());
        let listed = match try_docker(&["service", "ls", "--quiet", "--filter", &filter]) {
            Ok(listed) => listed,
            Err(error) => return eprintln!("cleanup of {}: {error}", self.bed.id()),
        };
        let ids: Vec<&str> = listed.split_whitespace().collect();
        if ids.is_empty() {
            return;
        }
        let args: Vec<&str> = ["service", "rm"].iter().copied().chain(ids).collect();
        if let Err(error) = try_docker(&args) {
            eprintln!("cleanup of {}: {error}", self.bed.id());
        }
    }
}

impl Drop for Services<'_> {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// Tasks of `service` whose current state is running, whatever their desired state (an old
/// task on its way out still serves).
fn running_tasks(service: &str) -> usize {
    // A task list that cannot be read counts as nothing seen, not as zero running.
    try_docker(&["service", "ps", "--format", "{{.CurrentState}}", service])
        .map(|states| {
            states
                .lines()
                .filter(|state| state.starts_with("Running"))
                .count()
        })
        .unwrap_or(usize::MAX)
}

/// A running-task count kept up in the background; see [`Services::watch_running`].
pub type RunningWatch = Poller<(usize, usize)>;
