//! Driving update cycles the way a user does: `update [--dry-run] --json`, `rollback NAME`,
//! `history --json`, and the `run` daemon as a child process, with an agent.toml whose health
//! gate and interval are short enough for tests.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::agent::{tidewatch, Agent, Outcome, StepResult};
use super::bed::TestBed;

/// The interval of `run` in tests: short, so a push is picked up within seconds.
pub const RUN_INTERVAL: Duration = Duration::from_secs(2);

/// A tidewatch agent for update tests: the bed's agent.toml plus an `[update]` section with a
/// short health gate, and a `run` interval of [`RUN_INTERVAL`].
pub struct Updater {
    config: PathBuf,
    prefix: String,
}

impl TestBed {
    /// Writes the bed's agent.toml (see [`TestBed::agent`]) tuned for updates, and returns the
    /// agent that uses it.
    pub fn updater(&self, registries: &[String]) -> Updater {
        self.updater_of(&self.agent(registries))
    }

    /// Tunes `agent`'s configuration for updates like [`TestBed::updater`] does, and returns the
    /// updater that uses it; `agent` still checks with the same file.
    pub fn updater_of(&self, agent: &Agent) -> Updater {
        let config = agent.config().to_path_buf();
        let written = fs::read_to_string(&config)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", config.display()));
        // The bed writes `[agent] interval = "5m"`; a second `[agent]` table would be a TOML
        // error, so the value is replaced in place.
        let default_interval = "interval = \"5m\"\n";
        assert!(
            written.contains(default_interval),
            "the bed's agent.toml changed shape; cannot set the interval:\n{written}"
        );
        let tuned = written.replacen(
            default_interval,
            &format!("interval = \"{}s\"\n", RUN_INTERVAL.as_secs()),
            1,
        ) + "\n[update]\n\
               min_running = \"1s\"\n\
               health_timeout = \"20s\"\n";
        fs::write(&config, tuned)
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", config.display()));
        Updater {
            config,
            prefix: format!("{}-", self.id()),
        }
    }
}

impl Updater {
    /// The agent.toml.
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// The docker name of the bed's container `name`.
    pub fn full(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn args(&self, command: &[&str], names: &[&str]) -> Vec<String> {
        let mut args = vec!["-c".to_owned(), self.config.to_string_lossy().into_owned()];
        args.extend(command.iter().map(|arg| (*arg).to_owned()));
        args.extend(names.iter().map(|name| self.full(name)));
        args
    }

    /// `tidewatch update --json [NAMES]`.
    pub fn update(&self, names: &[&str]) -> Update {
        let outcome = tidewatch(self.args(&["update", "--json"], names));
        let report = parse_json(&outcome, "update --json");
        Update {
            outcome,
            report,
            prefix: self.prefix.clone(),
        }
    }

    /// `tidewatch update --dry-run --json [NAMES]`: the plan alone.
    pub fn dry_run(&self, names: &[&str]) -> DryRun {
        let outcome = tidewatch(self.args(&["update", "--dry-run", "--json"], names));
        let plan = parse_json(&outcome, "update --dry-run --json");
        DryRun {
            outcome,
            plan,
            prefix: self.prefix.clone(),
        }
    }

    /// `tidewatch rollback NAME`.
    pub fn rollback(&self, name: &str) -> Outcome {
        tidewatch(self.args(&["rollback"], &[name]))
    }

    /// `tidewatch history --json NAME`, newest first.
    pub fn history(&self, name: &str) -> (Outcome, Vec<HistoryRow>) {
        let outcome = tidewatch(self.args(&["history", "--json"], &[name]));
        let rows = parse_json(&outcome, "history --json");
        (outcome, rows)
    }

    /// Starts `tidewatch run` in the background; stopped (SIGKILL) on drop if still running.
    pub fn spawn_run(&self) -> Daemon {
        self.spawn_run_with_env(&[])
    }

    /// `tidewatch run` with extra environment variables.
    pub fn spawn_run_with_env(&self, env: &[(&str, &str)]) -> Daemon {
        let dir = self
            .config
            .parent()
            .unwrap_or_else(|| panic!("{} has no directory", self.config.display()));
        let stdout = dir.join("run.stdout");
        let stderr = dir.join("run.stderr");
        let create = |path: &Path| {
            fs::File::create(path)
                .unwrap_or_else(|error| panic!("cannot create {}: {error}", path.display()))
        };
        let child = Command::new(env!("CARGO_BIN_EXE_tidewatch"))
            .args(self.args(&["run"], &[]))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(create(&stdout))
            .stderr(create(&stderr))
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start `tidewatch run`: {error}"));
        Daemon {
            child,
            stderr,
            exited: None,
        }
    }
}

/// The result of one `update --json`: `{"recovered", "containers", "plan", "results"}`.
#[derive(Debug)]
pub struct Update {
    pub outcome: Outcome,
    pub report: Report,
    prefix: String,
}

/// What `update --json` prints.
#[derive(Debug, Clone, Deserialize)]
pub struct Report {
    pub recovered: Vec<StepResult>,
    pub containers: Vec<serde_json::Value>,
    pub plan: Plan,
    pub results: Vec<StepResult>,
}

/// The ordered plan, as `update --json` and `update --dry-run --json` print it.
#[derive(Debug, Clone, Deserialize)]
pub struct Plan {
    pub steps: Vec<PlannedStep>,
    pub waiting: Vec<Waiting>,
}

/// One planned recreate.
#[derive(Debug, Clone, Deserialize)]
pub struct PlannedStep {
    pub container: String,
    pub to_digest: Option<String>,
}

/// An update found and held back.
#[derive(Debug, Clone, Deserialize)]
pub struct Waiting {
    pub container: String,
    pub to_digest: String,
    pub reason: String,
}

impl Update {
    /// The result of the bed's container `name`; panics unless there is exactly one.
    pub fn result(&self, name: &str) -> &StepResult {
        let full = format!("{}{name}", self.prefix);
        let mut matching = self.report.results.iter().filter(|r| r.container == full);
        match (matching.next(), matching.next()) {
            (Some(result), None) => result,
            _ => panic!("expected exactly one result for {full}; {self:#?}"),
        }
    }

    /// Panics, showing the whole run, unless tidewatch exited with `code`.
    pub fn assert_exit(&self, code: i32) {
        assert_eq!(self.outcome.code, code, "unexpected exit code; {self:#?}");
    }

    /// The `containers` row of the bed's container or service `name`; panics unless there is
    /// exactly one.
    pub fn row(&self, name: &str) -> &serde_json::Value {
        let full = format!("{}{name}", self.prefix);
        let mut matching = self
            .report
            .containers
            .iter()
            .filter(|row| row["container"] == full.as_str());
        match (matching.next(), matching.next()) {
            (Some(row), None) => row,
            _ => panic!("expected exactly one row for {full}; {self:#?}"),
        }
    }
}

/// The result of one `update --dry-run --json`.
#[derive(Debug)]
pub struct DryRun {
    pub outcome: Outcome,
    pub plan: Plan,
    prefix: String,
}

impl DryRun {
    /// Why the bed's container `name` waits; panics when it does not.
    pub fn waiting(&self, name: &str) -> &Waiting {
        let full = format!("{}{name}", self.prefix);
        self.plan
            .waiting
            .iter()
            .find(|w| w.container == full)
            .unwrap_or_else(|| panic!("{full} is not waiting; {self:#?}"))
    }
}

/// One row of `history --json`.
#[derive(Debug, Clone, Deserialize)]
pub struct HistoryRow {
    pub container: String,
    pub from_digest: Option<String>,
    pub to_digest: String,
    /// `updated`, `rolled_back`, `failed` or `blocked`.
    pub outcome: String,
    pub reason: String,
    /// Release notes, when they were known.
    #[serde(default)]
    pub current_version: Option<String>,
    #[serde(default)]
    pub available_version: Option<String>,
    #[serde(default)]
    pub changes_url: Option<String>,
}

/// `tidewatch run` as a child process.
pub struct Daemon {
    child: Child,
    stderr: PathBuf,
    exited: Option<ExitStatus>,
}

impl Daemon {
    /// How many file descriptors it has open now (Linux: the entries of `/proc/PID/fd`).
    pub fn open_descriptors(&self) -> usize {
        let dir = format!("/proc/{}/fd", self.child.id());
        fs::read_dir(&dir)
            .unwrap_or_else(|error| panic!("cannot list {dir}: {error}"))
            .count()
    }

    /// Its process id, e.g. to read its memory in `/proc/PID/status`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until its log contains `needle` `count` times; panics after `timeout`.
    pub fn wait_for_log(&mut self, needle: &str, count: usize, timeout: Duration) {
        let started = Instant::now();
        while self.stderr().matches(needle).count() < count {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
                panic!(
                    "`tidewatch run` exited ({status}); stderr:\n{}",
                    self.stderr()
                );
            }
            if started.elapsed() > timeout {
                panic!(
                    "`tidewatch run` did not log {needle:?} {count} time(s) within {timeout:?}; \
                     stderr:\n{}",
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends SIGTERM and waits for it to exit; returns its exit code and how long it took.
    /// Panics when it is still running after `timeout` or died by a signal.
    pub fn terminate(&mut self, timeout: Duration) -> (i32, Duration) {
        let pid = self.child.id().to_string();
        let sent = Instant::now();
        let kill = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap_or_else(|error| panic!("cannot run `kill -TERM {pid}`: {error}"));
        assert!(kill.success(), "`kill -TERM {pid}` failed: {kill}");
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if sent.elapsed() > timeout => panic!(
                    "`tidewatch run` still running {timeout:?} after SIGTERM; stderr:\n{}",
                    self.stderr()
                ),
                Ok(None) => thread::sleep(Duration::from_millis(20)),
                Err(error) => panic!("cannot wait for `tidewatch run`: {error}"),
            }
        };
        let took = sent.elapsed();
        self.exited = Some(status);
        let code = status.code().unwrap_or_else(|| {
            panic!(
                "`tidewatch run` died by a signal ({status}); stderr:\n{}",
                self.stderr()
            )
        });
        (code, took)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.exited.is_none() {
            // Already gone is fine: all we want is that it does not outlive the test.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn parse_json<T: DeserializeOwned>(outcome: &Outcome, what: &str) -> T {
    serde_json::from_str(&outcome.stdout).unwrap_or_else(|error| {
        panic!(
            "`{what}` output is not what the contract says ({error})\nexit {}\nstdout:\n{}\n\
             stderr:\n{}",
            outcome.code, outcome.stdout, outcome.stderr
        )
    })
}
