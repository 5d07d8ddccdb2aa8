//! `tidewatch` as a process the test keeps a hand on: started in the background, watched, and
//! killed with SIGKILL at a moment the test chooses; and the commands besides `check`.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use super::agent::{tidewatch, Agent, Outcome};

impl Agent {
    /// `tidewatch -c agent.toml ARGS`, run to completion (see [`tidewatch`]).
    pub fn command(&self, args: &[&str]) -> Outcome {
        let config = self.config().to_string_lossy().into_owned();
        let all: Vec<&str> = ["-c", config.as_str()]
            .into_iter()
            .chain(args.iter().copied())
            .collect();
        tidewatch(all)
    }

    /// `tidewatch -c agent.toml ARGS` started in the background.
    pub fn spawn(&self, args: &[&str]) -> Background {
        let config = self.config().to_string_lossy().into_owned();
        let all: Vec<&str> = ["-c", config.as_str()]
            .into_iter()
            .chain(args.iter().copied())
            .collect();
        Background::start(&all)
    }

    /// `tidewatch history CONTAINER --json`, newest entry first.
    pub fn history(&self, container: &str) -> Vec<Value> {
        let outcome = self.command(&["history", container, "--json"]);
        assert_eq!(outcome.code, 0, "`history` failed: {outcome:?}");
        match serde_json::from_str(&outcome.stdout) {
            Ok(Value::Array(entries)) => entries,
            _ => panic!("`history --json` did not print an array: {outcome:?}"),
        }
    }
}

/// A `tidewatch` process running in the background. Output goes to files, so it never blocks
/// on a full pipe; dropping it kills the process if it still runs.
pub struct Background {
    child: Child,
    shown: String,
    started: Instant,
    dir: TempDir,
}

impl Background {
    /// Starts the `tidewatch` binary with `args`.
    pub fn start(args: &[&str]) -> Background {
        let shown = args.join(" ");
        let dir = tempfile::tempdir().unwrap_or_else(|error| {
            panic!("cannot create a directory for tidewatch output: {error}")
        });
        let create = |name: &str| {
            let path = dir.path().join(name);
            fs::File::create(&path)
                .unwrap_or_else(|error| panic!("cannot create {}: {error}", path.display()))
        };
        let child = Command::new(env!("CARGO_BIN_EXE_tidewatch"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(create("stdout"))
            .stderr(create("stderr"))
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run `tidewatch {shown}`: {error}"));
        Background {
            child,
            shown,
            started: Instant::now(),
            dir,
        }
    }

    /// The process id, e.g. to read `/proc/PID/status`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process has written to stderr so far.
    pub fn stderr(&self) -> String {
        self.read("stderr")
    }

    /// What the process has written to stdout so far.
    pub fn stdout(&self) -> String {
        self.read("stdout")
    }

    fn read(&self, name: &str) -> String {
        let path: PathBuf = self.dir.path().join(name);
        fs::read_to_string(path).unwrap_or_default()
    }

    /// Waits until stderr contains `text`; panics, with stderr, if the process exits first or
    /// `timeout` passes.
    pub fn wait_for_stderr(&mut self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stderr().contains(text) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "`tidewatch {}` exited ({status}) before writing {text:?}; stderr:\n{}",
                    self.shown,
                    self.stderr()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "`tidewatch {}` did not write {text:?} within {timeout:?}; stderr:\n{}",
                    self.shown,
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGKILL and reaps the process; returns its stderr. Panics if it had already exited
    /// on its own: then the kill did not interrupt anything and the test would prove nothing.
    pub fn kill9(mut self) -> String {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "`tidewatch {}` exited ({status}) after {:?}, before it could be killed; stderr:\n{}",
                self.shown,
                self.started.elapsed(),
                self.stderr()
            );
        }
        // std's kill() is SIGKILL on Unix.
        self.child
            .kill()
            .unwrap_or_else(|error| panic!("cannot kill `tidewatch {}`: {error}", self.shown));
        let status = self
            .child
            .wait()
            .unwrap_or_else(|error| panic!("cannot reap `tidewatch {}`: {error}", self.shown));
        if status.signal() != Some(9) {
            panic!(
                "`tidewatch {}` ended with {status}, not by our SIGKILL; stderr:\n{}",
                self.shown,
                self.stderr()
            );
        }
        self.stderr()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
