//! Watching the engine while tidewatch works on it.
//!
//! [`Events`] follows `docker events` for the bed's containers, so a test can act the moment
//! the engine reports a stop signal, a rename, a create or a start, instead of guessing with a
//! sleep. Polling `docker ps` costs tens of milliseconds a look and can miss a short state (a
//! container set aside while its replacement is being created) altogether; the engine emits each
//! event when the change is done.
//!
//! [`Monitor`] polls `docker ps --all` throughout a test and keeps every state the bed's
//! containers were seen in, for checks such as "the service never lost both containers".

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::bed::{TestBed, TEST_LABEL};
use super::docker::docker;
use super::poller::Poller;

/// One container event, e.g. `rename` with attributes `name` (the new name) and `oldName`.
#[derive(Debug, Clone)]
pub struct Event {
    /// `create`, `start`, `kill`, `die`, `stop`, `rename`, `destroy`, `health_status: healthy`...
    pub action: String,
    /// The container's full id.
    pub id: String,
    /// The container's name when the event happened (after it, for a rename).
    pub name: String,
    /// All attributes: the container's labels, `signal` for a kill, `exitCode` for a die...
    pub attributes: BTreeMap<String, String>,
    /// When, in nanoseconds since the epoch, by the engine's clock.
    pub time_nano: i64,
}

impl Event {
    /// The attribute `key`, if present.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

#[derive(Default)]
struct Seen {
    events: Vec<Event>,
    ended: bool,
}

/// `docker events` for one bed's containers, from the moment [`TestBed::events`] was called.
pub struct Events {
    child: Child,
    seen: Arc<(Mutex<Seen>, Condvar)>,
    reader: Option<JoinHandle<()>>,
}

impl TestBed {
    /// Starts following the events of this bed's containers. Events are replayed from the
    /// moment of this call, so none is lost while `docker events` connects.
    pub fn follow_events(&self) -> Events {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| format!("{}.{:09}", elapsed.as_secs(), elapsed.subsec_nanos()))
            .unwrap_or_else(|error| panic!("the clock is before 1970: {error}"));
        let mut child = Command::new("docker")
            .args([
                "events",
                "--since",
                &since,
                "--filter",
                "type=container",
                "--filter",
                &format!("label={TEST_LABEL}={}", self.id()),
                "--format",
                "{{json .}}",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot run `docker events`: {error} (run scripts/test-env)")
            });
        let stdout = child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("`docker events` has no stdout pipe"));
        let seen = Arc::new((Mutex::new(Seen::default()), Condvar::new()));
        let shared = Arc::clone(&seen);
        let reader = thread::spawn(move || {
            let (lock, changed) = &*shared;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(event) = parse_event(&line) {
                    lock.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .events
                        .push(event);
                    changed.notify_all();
                }
            }
            lock.lock().unwrap_or_else(|e| e.into_inner()).ended = true;
            changed.notify_all();
        });
        Events {
            child,
            seen,
            reader: Some(reader),
        }
    }
}

impl Events {
    /// Waits for the first event (since the start) that matches `wanted` and returns it; panics
    /// after `timeout`, naming `what` and listing the events seen.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        wanted: impl Fn(&Event) -> bool,
    ) -> Event {
        let deadline = Instant::now() + timeout;
        let (lock, changed) = &*self.seen;
        let mut seen = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(event) = seen.events.iter().find(|e| wanted(e)) {
                return event.clone();
            }
            let now = Instant::now();
            if seen.ended || now >= deadline {
                let why = if seen.ended {
                    "`docker events` ended"
                } else {
                    "timed out"
                };
                panic!(
                    "waiting for {what}: {why} after {timeout:?}; events seen:\n{}",
                    show_events(&seen.events)
                );
            }
            seen = changed
                .wait_timeout(seen, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Every event so far.
    pub fn seen(&self) -> Vec<Event> {
        let (lock, _) = &*self.seen;
        lock.lock()
            .unwrap_or_else(|e| e.into_inner())
            .events
            .clone()
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// The events, one a line, for failure messages; healthcheck runs (`exec_*`) are left out.
pub fn show_events(events: &[Event]) -> String {
    events
        .iter()
        .filter(|e| !e.action.starts_with("exec_"))
        .map(|e| {
            let detail: Vec<String> = ["signal", "exitCode", "oldName"]
                .iter()
                .filter_map(|key| e.attribute(key).map(|value| format!("{key}={value}")))
                .collect();
            format!(
                "  {:<28} {} {} {}\n",
                e.action,
                &e.id[..12.min(e.id.len())],
                e.name,
                detail.join(" ")
            )
        })
        .collect()
}

fn parse_event(line: &str) -> Option<Event> {
    let value: Value = serde_json::from_str(line).ok()?;
    let actor = &value["Actor"];
    let attributes: BTreeMap<String, String> = actor["Attributes"]
        .as_object()?
        .iter()
        .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
        .collect();
    Some(Event {
        action: value["Action"].as_str()?.to_owned(),
        id: actor["ID"].as_str()?.to_owned(),
        name: attributes.get("name").cloned().unwrap_or_default(),
        attributes,
        time_nano: value["timeNano"].as_i64().unwrap_or_default(),
    })
}

/// One container as `docker ps --all` listed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    /// Full id.
    pub id: String,
    /// Name, without docker's leading `/`.
    pub name: String,
    /// `created`, `running`, `exited`...
    pub state: String,
}

/// The bed's containers at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Time since the monitor started.
    pub at: Duration,
    pub containers: Vec<Sighting>,
}

impl Snapshot {
    /// The container named `name`, if any.
    pub fn named(&self, name: &str) -> Vec<&Sighting> {
        self.containers.iter().filter(|c| c.name == name).collect()
    }

    /// The container with id `id`, if listed.
    pub fn with_id(&self, id: &str) -> Option<&Sighting> {
        self.containers.iter().find(|c| c.id == id)
    }
}

impl std::fmt::Display for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:>7.3}s:", self.at.as_secs_f64())?;
        if self.containers.is_empty() {
            write!(f, " (none)")?;
        }
        for c in &self.containers {
            write!(
                f,
                " [{} {} {}]",
                &c.id[..12.min(c.id.len())],
                c.name,
                c.state
            )?;
        }
        Ok(())
    }
}

impl TestBed {
    /// The bed's containers now, as `docker ps --all` lists them.
    pub fn containers(&self) -> Vec<Sighting> {
        list(self.id())
    }

    /// Starts polling the bed's containers; [`Poller::finish`] stops and returns each
    /// distinct state seen, in order.
    pub fn monitor(&self) -> Monitor {
        let bed = self.id().to_owned();
        let started = Instant::now();
        Poller::start(
            Duration::from_millis(10),
            Vec::new(),
            move |snapshots: &mut Vec<Snapshot>| {
                let containers = list(&bed);
                // Only changes are kept: a test may run for a minute.
                if snapshots.last().map(|s| &s.containers) != Some(&containers) {
                    snapshots.push(Snapshot {
                        at: started.elapsed(),
                        containers,
                    });
                }
            },
        )
    }
}

fn list(bed: &str) -> Vec<Sighting> {
    let listed = docker(&[
        "ps",
        "--all",
        "--no-trunc",
        "--filter",
        &format!("label={TEST_LABEL}={bed}"),
        "--format",
        "{{.ID}}\t{{.Names}}\t{{.State}}",
    ]);
    let mut containers: Vec<Sighting> = listed
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            Some(Sighting {
                id: fields.next()?.to_owned(),
                name: fields.next()?.to_owned(),
                state: fields.next()?.to_owned(),
            })
        })
        .collect();
    containers.sort_by(|a, b| a.id.cmp(&b.id));
    containers
}

/// Polls `docker ps --all` for one bed in the background; see [`TestBed::monitor`].
pub type Monitor = Poller<Vec<Snapshot>>;
