//! Running the `tidewatch` binary the way a user does: an agent.toml in the bed's directory,
//! `tidewatch -c FILE check --json`, and the rows it prints.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use super::bed::TestBed;
use super::docker::Engine;

/// How long one `tidewatch` run may take before the test fails; a hang must not stall CI.
/// `TIDEWATCH_TEST_TIMEOUT` (seconds) overrides it.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// What one `tidewatch` run did.
#[derive(Debug)]
pub struct Outcome {
    /// The exit code; a run killed by a signal panics instead.
    pub code: i32,
    /// Everything printed on stdout.
    pub stdout: String,
    /// Everything printed on stderr (logs, error messages).
    pub stderr: String,
    /// Wall-clock time from spawn to exit.
    pub elapsed: Duration,
}

/// Runs the `tidewatch` binary with `args`, with a timeout. Output goes through files, not
/// pipes, so a chatty run cannot block on a full pipe while we wait for it.
pub fn tidewatch<I, S>(args: I) -> Outcome
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    tidewatch_with_env(args, &[])
}

/// Like [`tidewatch`], with `env` added to the process's environment (`DOCKER_CONFIG`, `PATH`,
/// `RUST_LOG`, a password variable...).
pub fn tidewatch_with_env<I, S>(args: I, env: &[(OsString, OsString)]) -> Outcome
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args
        .into_iter()
        .map(|arg| arg.as_ref().to_owned())
        .collect();
    let shown = args
        .iter()
        .map(|arg| arg.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let scratch = super::scratch_dir("tidewatch-run-");
    let stdout_path = scratch.path().join("stdout");
    let stderr_path = scratch.path().join("stderr");
    let create = |path: &Path| {
        fs::File::create(path)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", path.display()))
    };

    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidewatch"))
        .args(&args)
        .envs(env.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::null())
        .stdout(create(&stdout_path))
        .stderr(create(&stderr_path))
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run `tidewatch {shown}`: {error}"));

    let timeout = std::env::var("TIDEWATCH_TEST_TIMEOUT")
        .ok()
        .and_then(|secs| secs.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(RUN_TIMEOUT);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "`tidewatch {shown}` still running after {timeout:?}; stderr:\n{}",
                    fs::read_to_string(&stderr_path).unwrap_or_default()
                );
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(error) => panic!("cannot wait for `tidewatch {shown}`: {error}"),
        }
    };
    let elapsed = started.elapsed();
    let read = |path: &Path| fs::read_to_string(path).unwrap_or_default();
    let (stdout, stderr) = (read(&stdout_path), read(&stderr_path));
    let code = status.code().unwrap_or_else(|| {
        panic!("`tidewatch {shown}` died by a signal ({status}); stderr:\n{stderr}")
    });
    Outcome {
        code,
        stdout,
        stderr,
        elapsed,
    }
}

/// A tidewatch agent configured for one test bed: its scope, its registries, its state, and
/// the environment its runs get.
pub struct Agent {
    config: PathBuf,
    prefix: String,
    env: Vec<(OsString, OsString)>,
}

/// One `[[registry]]` table of an agent.toml, written with the contract's key names.
#[derive(Debug, Clone)]
pub struct RegistryEntry {
    host: String,
    /// `key = value` lines, values already in TOML syntax.
    keys: Vec<String>,
}

impl RegistryEntry {
    /// `host = "<host>"` and nothing else: every other key at its default.
    pub fn new(host: &str) -> RegistryEntry {
        RegistryEntry {
            host: host.to_owned(),
            keys: Vec::new(),
        }
    }

    fn key(mut self, key: &str, value: String) -> RegistryEntry {
        self.keys.push(format!("{key} = {value}"));
        self
    }

    /// `insecure = <insecure>`.
    pub fn insecure(self, insecure: bool) -> RegistryEntry {
        self.key("insecure", insecure.to_string())
    }

    /// `username = "<user>"`.
    pub fn username(self, user: &str) -> RegistryEntry {
        self.key("username", format!("{user:?}"))
    }

    /// `password_file = "<path>"`.
    pub fn password_file(self, path: &Path) -> RegistryEntry {
        self.key("password_file", format!("{:?}", path.to_string_lossy()))
    }

    /// `password_env = "<variable>"`.
    pub fn password_env(self, variable: &str) -> RegistryEntry {
        self.key("password_env", format!("{variable:?}"))
    }

    /// `ca_file = "<path>"`.
    pub fn ca_file(self, path: &Path) -> RegistryEntry {
        self.key("ca_file", format!("{:?}", path.to_string_lossy()))
    }

    /// `mirror = ["<host>", ...]`.
    pub fn mirror(self, hosts: &[String]) -> RegistryEntry {
        let list: Vec<String> = hosts.iter().map(|host| format!("{host:?}")).collect();
        self.key("mirror", format!("[{}]", list.join(", ")))
    }

    /// `concurrency = <n>`.
    pub fn concurrency(self, n: usize) -> RegistryEntry {
        self.key("concurrency", n.to_string())
    }

    /// `max_tags = <n>`.
    pub fn max_tags(self, n: usize) -> RegistryEntry {
        self.key("max_tags", n.to_string())
    }

    /// `max_tag_pages = <n>`.
    pub fn max_tag_pages(self, n: usize) -> RegistryEntry {
        self.key("max_tag_pages", n.to_string())
    }

    /// `max_track_candidates = <n>`.
    pub fn max_track_candidates(self, n: usize) -> RegistryEntry {
        self.key("max_track_candidates", n.to_string())
    }

    fn toml(&self) -> String {
        let mut table = format!("\n[[registry]]\nhost = {:?}\n", self.host);
        for line in &self.keys {
            table.push_str(line);
            table.push('\n');
        }
        table
    }
}

impl TestBed {
    /// Writes an agent.toml watching this bed's scope, with `registries` ("127.0.0.1:PORT")
    /// declared insecure.
    pub fn agent(&self, registries: &[String]) -> Agent {
        self.agent_with(registries, false)
    }

    /// Like [`TestBed::agent`], with `[watch] label_enable` set as given.
    pub fn agent_with(&self, registries: &[String], label_enable: bool) -> Agent {
        let entries: Vec<RegistryEntry> = registries
            .iter()
            .map(|host| RegistryEntry::new(host).insecure(true))
            .collect();
        self.agent_config(&host_table(&Engine::host()), &entries, label_enable)
    }

    /// Like [`TestBed::agent`], for the engine at `host` (`[docker] host`) instead of docker.
    pub fn agent_on(&self, host: &str, registries: &[String]) -> Agent {
        self.agent_with_docker(&host_table(host), registries)
    }

    /// Like [`TestBed::agent`], with `docker` as the body of the `[docker]` table (`host`,
    /// `tls_ca`... lines; empty: the environment decides, as without the table).
    pub fn agent_with_docker(&self, docker: &str, registries: &[String]) -> Agent {
        let entries: Vec<RegistryEntry> = registries
            .iter()
            .map(|host| RegistryEntry::new(host).insecure(true))
            .collect();
        self.agent_config(docker, &entries, false)
    }

    /// An agent with the `[[registry]]` tables `registries`, written as they are (no key
    /// added).
    pub fn agent_for(&self, registries: &[RegistryEntry]) -> Agent {
        self.agent_config(&host_table(&Engine::host()), registries, false)
    }

    /// Like [`TestBed::agent_for`], for the engine at `host`, with its config file and state
    /// directory in `dir`: one of several agents of a bed on several engines, each with a
    /// history of its own.
    pub fn agent_in(&self, dir: &Path, host: &str, registries: &[RegistryEntry]) -> Agent {
        fs::create_dir_all(dir)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", dir.display()));
        self.agent_config_in(dir, &host_table(host), registries, false)
    }

    fn agent_config(
        &self,
        docker: &str,
        registries: &[RegistryEntry],
        label_enable: bool,
    ) -> Agent {
        self.agent_config_in(self.dir(), docker, registries, label_enable)
    }

    fn agent_config_in(
        &self,
        dir: &Path,
        docker: &str,
        registries: &[RegistryEntry],
        label_enable: bool,
    ) -> Agent {
        let mut toml = format!(
            "[agent]\n\
             interval = \"5m\"\n\
             state_dir = {state_dir:?}\n\
             \n\
             [docker]\n\
             {docker}\
             \n\
             [watch]\n\
             scope = {scope:?}\n\
             label_enable = {label_enable}\n",
            state_dir = dir.join("state").to_string_lossy(),
            scope = self.scope(),
        );
        for registry in registries {
            toml.push_str(&registry.toml());
        }
        // One file per agent: a test may compare two agents of the same bed.
        let config = (1..)
            .map(|n| match n {
                1 => dir.join("agent.toml"),
                n => dir.join(format!("agent-{n}.toml")),
            })
            .find(|path| !path.exists())
            .unwrap_or_else(|| unreachable!("an unbounded range always has a next name"));
        fs::write(&config, toml)
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", config.display()));
        Agent {
            config,
            prefix: format!("{}-", self.id()),
            env: Vec::new(),
        }
    }
}

/// The body of a `[docker]` table naming `host`.
fn host_table(host: &str) -> String {
    format!("host = {host:?}\n")
}

impl Agent {
    /// The agent.toml this agent runs with.
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// Adds `key=value` to the environment of every run of this agent.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Agent {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// `tidewatch -c agent.toml ARGS`, in this agent's environment.
    pub fn run(&self, args: &[&str]) -> Outcome {
        let mut all = vec![OsStr::new("-c"), self.config.as_os_str()];
        all.extend(args.iter().map(OsStr::new));
        tidewatch_with_env(all, &self.env)
    }

    /// `tidewatch -c agent.toml check --json [NAMES]`, with `names` being the bed's short names.
    pub fn check(&self, names: &[&str]) -> Check {
        let outcome = self.run_on(&["check", "--json"], names);
        let rows = parse_rows(&outcome);
        Check {
            outcome,
            rows,
            prefix: self.prefix.clone(),
        }
    }

    /// `tidewatch -c agent.toml update --json [NAMES]`: one cycle, applied.
    pub fn update(&self, names: &[&str]) -> UpdateRun {
        let outcome = self.run_on(&["update", "--json"], names);
        let value: Value = serde_json::from_str(&outcome.stdout).unwrap_or_else(|error| {
            panic!(
                "`update --json` printed no JSON ({error}); exit {}\nstdout:\n{}\nstderr:\n{}",
                outcome.code, outcome.stdout, outcome.stderr
            )
        });
        let part = |key: &str| value.get(key).cloned().unwrap_or(Value::Null);
        let containers: Vec<Row> =
            serde_json::from_value(part("containers")).unwrap_or_else(|error| {
                panic!(
                    "`update --json` containers: {error}; stdout:\n{}",
                    outcome.stdout
                )
            });
        let results: Vec<StepResult> =
            serde_json::from_value(part("results")).unwrap_or_else(|error| {
                panic!(
                    "`update --json` results: {error}; stdout:\n{}",
                    outcome.stdout
                )
            });
        UpdateRun {
            outcome,
            containers,
            results,
            prefix: self.prefix.clone(),
        }
    }

    fn run_on(&self, command: &[&str], names: &[&str]) -> Outcome {
        let full: Vec<String> = names
            .iter()
            .map(|name| format!("{}{name}", self.prefix))
            .collect();
        let mut args: Vec<&str> = command.to_vec();
        args.extend(full.iter().map(String::as_str));
        self.run(&args)
    }
}

/// The result of one `update --json` run by an [`Agent`] (in its environment, with its
/// `[[registry]]` tables); [`Updater`](super::Updater) runs updates with a short health gate.
#[derive(Debug)]
pub struct UpdateRun {
    /// The run itself: exit code, output, duration.
    pub outcome: Outcome,
    /// Every container's status, as `check` gives it.
    pub containers: Vec<Row>,
    /// What applying the plan did.
    pub results: Vec<StepResult>,
    prefix: String,
}

/// One step of `update --json`'s `results`.
#[derive(Debug, Clone, Deserialize)]
pub struct StepResult {
    /// The container name.
    pub container: String,
    /// Its image reference.
    pub image: String,
    /// The digest it ran before.
    pub from_digest: Option<String>,
    /// The digest it was moved to.
    pub to_digest: Option<String>,
    /// `updated`, `rolled_back`, `failed` or `skipped`.
    pub outcome: String,
    /// Why, in words.
    pub detail: String,
    /// The release notes' versions and link, when known.
    #[serde(default)]
    pub current_version: Option<String>,
    /// See `current_version`.
    #[serde(default)]
    pub available_version: Option<String>,
    /// See `current_version`.
    #[serde(default)]
    pub changes_url: Option<String>,
}

impl UpdateRun {
    /// The step of the bed's container `name`, if it had one.
    pub fn result(&self, name: &str) -> Option<&StepResult> {
        let full = format!("{}{name}", self.prefix);
        self.results.iter().find(|result| result.container == full)
    }

    /// The status row of the bed's container `name`; panics when there is none.
    pub fn row(&self, name: &str) -> &Row {
        let full = format!("{}{name}", self.prefix);
        self.containers
            .iter()
            .find(|row| row.container == full)
            .unwrap_or_else(|| panic!("no row for container {full}; {self}"))
    }
}

impl std::fmt::Display for UpdateRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "exit {} after {:?}; containers:",
            self.outcome.code, self.outcome.elapsed
        )?;
        for row in &self.containers {
            writeln!(f, "  {row:?}")?;
        }
        writeln!(f, "results:")?;
        for result in &self.results {
            writeln!(f, "  {result:?}")?;
        }
        write!(f, "stderr:\n{}", self.outcome.stderr)
    }
}

/// The result of one `check --json`.
#[derive(Debug)]
pub struct Check {
    /// The run itself: exit code, output, duration.
    pub outcome: Outcome,
    /// The rows parsed from stdout, in the order printed.
    pub rows: Vec<Row>,
    prefix: String,
}

impl Check {
    /// The row of the bed's container `name`; panics (showing every row) when there is none or
    /// more than one.
    pub fn row(&self, name: &str) -> &Row {
        let full = format!("{}{name}", self.prefix);
        let mut matching = self.rows.iter().filter(|row| row.container == full);
        match (matching.next(), matching.next()) {
            (Some(row), None) => row,
            _ => panic!("expected exactly one row for container {full}; {self}"),
        }
    }

    /// Panics, with stderr and the rows, unless tidewatch exited with `code`.
    pub fn assert_exit(&self, code: i32) {
        assert_eq!(self.outcome.code, code, "unexpected exit code; {self}");
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "exit {} after {:?}; rows:",
            self.outcome.code, self.outcome.elapsed
        )?;
        for row in &self.rows {
            writeln!(f, "  {row:?}")?;
        }
        write!(f, "stderr:\n{}", self.outcome.stderr)
    }
}

/// One container in `check --json` output.
#[derive(Debug, Clone, Deserialize)]
pub struct Row {
    /// The container name, without docker's leading `/`.
    pub container: String,
    /// The image reference the container was created from.
    pub image: String,
    /// `sha256:...` of the running image's manifest in the registry, when known.
    pub current_digest: Option<String>,
    /// `sha256:...` the registry serves for the image reference now, when known.
    pub available_digest: Option<String>,
    /// The verdict.
    pub status: Status,
    /// Why, in words, when there is more to say (always for `error`).
    pub detail: Option<String>,
    /// The running image's version label (release notes; absent when unknown).
    #[serde(default)]
    pub current_version: Option<String>,
    /// The candidate image's version label.
    #[serde(default)]
    pub available_version: Option<String>,
    /// Where to read what changed.
    #[serde(default)]
    pub changes_url: Option<String>,
    /// `verified`, `unverified` or `rejected` when a `[[verify]]` rule covered the update.
    #[serde(default)]
    pub signature: Option<String>,
}

/// What `check` concluded for a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    UpToDate,
    UpdateAvailable,
    Unknown,
    Skipped,
    Error,
}

/// The contract: stdout is a JSON array of objects that all have these keys.
const ROW_KEYS: [&str; 6] = [
    "container",
    "image",
    "current_digest",
    "available_digest",
    "status",
    "detail",
];

fn parse_rows(outcome: &Outcome) -> Vec<Row> {
    let complain = |why: String| -> ! {
        panic!(
            "`check --json` output breaks the contract: {why}\nexit {}\nstdout:\n{}\nstderr:\n{}",
            outcome.code, outcome.stdout, outcome.stderr
        )
    };
    let value: Value = serde_json::from_str(&outcome.stdout)
        .unwrap_or_else(|error| complain(format!("not JSON: {error}")));
    let rows = value
        .as_array()
        .unwrap_or_else(|| complain("not an array".to_owned()));
    rows.iter()
        .map(|row| {
            let object = row
                .as_object()
                .unwrap_or_else(|| complain(format!("row is not an object: {row}")));
            // serde would quietly read a missing `*_digest` as null; the contract wants the key.
            let missing: Vec<&str> = ROW_KEYS
                .into_iter()
                .filter(|key| !object.contains_key(*key))
                .collect();
            if !missing.is_empty() {
                complain(format!("row {row} lacks {missing:?}"));
            }
            serde_json::from_value(row.clone())
                .unwrap_or_else(|error| complain(format!("bad row {row}: {error}")))
        })
        .collect()
}
