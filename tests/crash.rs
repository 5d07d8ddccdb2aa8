//! `kill -9` in the middle of a recreate, then `tidewatch update` again: the service ends on the
//! new image, healthy, with its data, under its one name, and was never without a container.
//!
//! The service stops slowly (its app ignores SIGTERM and runs with `--stop-timeout 4`), so a
//! recreate takes seconds and the points where the agent is killed are states that last. Each
//! kill is triggered by what the engine reports (its events), never by a sleep.

use std::time::Duration;

use serde_json::Value;

use crate::support::{
    docker, push, repo_digests, show_events, Agent, Events, OnTerm, Outcome, Registry, Sighting,
    Snapshot, TestBed, Volume,
};

/// The old container's stop timeout, in seconds: long enough that "stopping" is a state.
const STOP_TIMEOUT: &str = "4";

/// How long the first update may take to reach a kill point (it pulls, then stops the old
/// container for up to STOP_TIMEOUT).
const REACH: Duration = Duration::from_secs(60);

/// A slow-stopping service on v1 with data in a named volume, v2 pushed, and an agent for it.
struct Service {
    // Dropped in this order: the bed removes its containers before the volume goes.
    bed: TestBed,
    volume: Volume,
    registry: Registry,
    agent: Agent,
    /// The container's docker name.
    name: String,
    /// The v1 container's id.
    old_id: String,
    /// The digest of v2, which the update must end on.
    v2: String,
    /// What v1 wrote into the volume.
    marker: String,
}

impl Service {
    fn start(test: &str) -> Service {
        let bed = TestBed::new(test);
        let registry = Registry::start();
        let image = registry.image("app", "stable");
        bed.build_app_stopping(&image, "1", OnTerm::Ignore);
        push(&image);
        let volume = bed.volume("data");
        let mount = format!("{}:/data", volume.name());
        let old_id = bed.run_service(
            "web",
            &["--stop-timeout", STOP_TIMEOUT, "--volume", &mount],
            &image,
            &[],
        );
        let name = bed.name("web");
        let marker = format!("written by v1 of {name}");
        docker(&[
            "exec",
            &name,
            "/bin/busybox",
            "sh",
            "-c",
            &format!("echo '{marker}' > /data/marker"),
        ]);
        bed.build_app_stopping(&image, "2", OnTerm::Ignore);
        let v2 = push(&image);
        let agent = bed.agent(&[registry.host()]);
        Service {
            bed,
            volume,
            registry,
            agent,
            name,
            old_id,
            v2,
            marker,
        }
    }

    fn inspect(&self, container: &str, format: &str) -> String {
        docker(&["container", "inspect", "--format", format, container])
    }
}

/// Where in the recreate the first `tidewatch update` is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillPoint {
    /// The engine has sent SIGTERM to the old container, which is still running out its stop
    /// timeout.
    OldStopping,
    /// The old container has just been renamed aside.
    OldAside,
    /// A new container has just been created under the service's name.
    NewCreated,
    /// The new container runs and its healthcheck has not passed yet.
    HealthGate,
}

impl KillPoint {
    /// Waits until the update reaches this point; returns the event that marks it, or why the
    /// update was already past it.
    fn reach(self, service: &Service, events: &Events) -> Result<String, String> {
        let (old, name) = (service.old_id.as_str(), service.name.as_str());
        let event = match self {
            KillPoint::OldStopping => events.wait_for("SIGTERM to the old container", REACH, |e| {
                e.action == "kill" && e.id == old && e.attribute("signal") == Some("15")
            }),
            KillPoint::OldAside => events.wait_for("the old container set aside", REACH, |e| {
                e.action == "rename" && e.id == old && e.name.contains("-tidewatch-old-")
            }),
            KillPoint::NewCreated => events.wait_for("a new container created", REACH, |e| {
                e.action == "create" && e.id != old && e.name == name
            }),
            KillPoint::HealthGate => {
                let started = events.wait_for("the new container started", REACH, |e| {
                    e.action == "start" && e.id != old && e.name == name
                });
                let health = service.inspect(&started.id, "{{.State.Health.Status}}");
                if health != "starting" {
                    return Err(format!(
                        "the kill must land while the health gate waits, but the new container \
                         is already {health}"
                    ));
                }
                started
            }
        };
        Ok(format!("{} {}", event.action, event.name))
    }

    /// Why the kill landed past this point, if it did: on a busy machine the agent can take
    /// its next step between the event and the kill, and the run then tests another branch.
    fn missed(self, service: &Service, found: &[Sighting]) -> Option<String> {
        let holder = found.iter().find(|c| c.name == service.name);
        (self == KillPoint::OldAside && holder.is_some())
            .then(|| format!("the kill landed after the new container was created: {found:#?}"))
    }

    /// Checks that the engine, just after the kill, is in the state this point means, so each
    /// test covers the recovery branch it is named after.
    fn assert_found(self, service: &Service, found: &[Sighting]) {
        let old = found.iter().find(|c| c.id == service.old_id);
        let holder = found.iter().find(|c| c.name == service.name);
        let shown = format!("{found:#?}");
        let old =
            old.unwrap_or_else(|| panic!("the old container is gone after the kill: {shown}"));
        match self {
            KillPoint::OldStopping => {
                assert_eq!(old.name, service.name, "{shown}");
                assert_eq!(found.len(), 1, "{shown}");
            }
            KillPoint::OldAside => {
                assert!(old.name.contains("-tidewatch-old-"), "{shown}");
                assert!(holder.is_none(), "{shown}");
            }
            KillPoint::NewCreated | KillPoint::HealthGate => {
                assert!(old.name.contains("-tidewatch-old-"), "{shown}");
                let holder = holder.unwrap_or_else(|| panic!("no new container: {shown}"));
                assert_ne!(holder.id, service.old_id, "{shown}");
                if self == KillPoint::HealthGate {
                    assert_eq!(holder.state, "running", "{shown}");
                }
            }
        }
    }
}

/// How often a scenario is set up again when the kill landed past its point.
const ATTEMPTS: usize = 3;

/// Kills the first update at `point`, runs `update` again, and checks the service came through.
/// A kill that landed past `point` (a timing race on a busy machine, not a finding) sets the
/// scenario up again, up to [`ATTEMPTS`] times.
fn crash_then_update(test: &str, point: KillPoint) {
    let mut misses = Vec::new();
    while misses.len() < ATTEMPTS {
        match crash_attempt(test, point) {
            Ok(()) => return,
            Err(missed) => {
                eprintln!("{test}: {missed}; setting the scenario up again");
                misses.push(missed);
            }
        }
    }
    panic!("{test}: the kill never landed at {point:?} in {ATTEMPTS} attempts: {misses:#?}");
}

/// One [`crash_then_update`]; `Err` when the kill landed past `point`.
fn crash_attempt(test: &str, point: KillPoint) -> Result<(), String> {
    let service = Service::start(test);
    let events = service.bed.follow_events();
    let monitor = service.bed.monitor();

    let first = service.agent.spawn(&["update"]);
    let reached = point.reach(&service, &events);
    let first_stderr = first.kill9();
    let reached = reached?;
    let found = service.bed.containers();
    if let Some(missed) = point.missed(&service, &found) {
        return Err(missed);
    }
    let context = format!(
        "killed at {point:?} ({reached}); first update's stderr:\n{first_stderr}\n\
         containers after the kill: {found:#?}"
    );
    point.assert_found(&service, &found);

    let second = service.agent.command(&["update", "--json"]);
    let snapshots = monitor.finish();
    let context = format!(
        "{context}\nsecond update: exit {}\nstdout:\n{}\nstderr:\n{}\ncontainers over time:\n{}\n\
         events:\n{}",
        second.code,
        second.stdout,
        second.stderr,
        show(&snapshots),
        show_events(&events.seen()),
    );

    let final_id = assert_updated(&service, &second, &context);
    assert_never_without_the_service(&service, &snapshots, &final_id, &context);
    eprintln!(
        "{test}: killed at {point:?} ({reached}); found {}; second update exit {}, {}",
        found
            .iter()
            .map(|c| format!("{} {}", c.name, c.state))
            .collect::<Vec<_>>()
            .join(", "),
        second.code,
        outcomes(&second)
    );
    Ok(())
}

/// "recovered: OUTCOME (DETAIL); results: OUTCOME (DETAIL)" of an `update --json`.
fn outcomes(outcome: &Outcome) -> String {
    let report: Value = serde_json::from_str(&outcome.stdout).unwrap_or_default();
    ["recovered", "results"]
        .iter()
        .map(|key| {
            let steps: Vec<String> = report[key]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| format!("{} ({})", r["outcome"], r["detail"]))
                .collect();
            format!("{key}: {}", steps.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The service runs v2, healthy, alone under its name, with v1's data; history says `updated`.
/// Returns the final container's id.
fn assert_updated(service: &Service, second: &Outcome, context: &str) -> String {
    let report: Value = serde_json::from_str(&second.stdout)
        .unwrap_or_else(|error| panic!("`update --json` is not JSON ({error}); {context}"));
    let outcomes: Vec<&str> = ["recovered", "results"]
        .iter()
        .flat_map(|key| report[key].as_array().into_iter().flatten())
        .filter(|r| r["container"] == service.name.as_str())
        .filter_map(|r| r["outcome"].as_str())
        .collect();
    assert_eq!(
        outcomes.last(),
        Some(&"updated"),
        "the second update did not end with the service updated; {context}"
    );

    let containers = service.bed.containers();
    assert_eq!(
        containers.len(),
        1,
        "expected one container, no aside copy; {context}"
    );
    let container = &containers[0];
    assert_eq!(container.name, service.name, "{context}");
    let state = service.inspect(&container.id, "{{.State.Status}}");
    assert_eq!(state, "running", "{context}");
    let health = service.inspect(&container.id, "{{.State.Health.Status}}");
    assert_eq!(health, "healthy", "{context}");

    let image = service.inspect(&container.id, "{{.Image}}");
    let v2 = format!("{}@{}", service.registry.repo("app"), service.v2);
    assert!(
        repo_digests(&image).contains(&v2),
        "the container runs {image}, not {v2}; {context}"
    );

    let mounted = service.inspect(
        &container.id,
        "{{range .Mounts}}{{if eq .Destination \"/data\"}}{{.Name}}{{end}}{{end}}",
    );
    assert_eq!(mounted, service.volume.name(), "{context}");
    let data = docker(&["exec", &container.id, "/bin/busybox", "cat", "/data/marker"]);
    assert_eq!(data, service.marker, "{context}");

    let history = service.agent.history(&service.name);
    let last = history
        .first()
        .unwrap_or_else(|| panic!("no history for {}; {context}", service.name));
    assert_eq!(
        last["outcome"], "updated",
        "history: {history:#?}; {context}"
    );
    assert_eq!(
        last["to_digest"],
        service.v2.as_str(),
        "history: {history:#?}; {context}"
    );
    container.id.clone()
}

/// At every moment the name is held by at most one container, and the service has its old
/// container (running, stopped or aside) or, once that is removed, its final replacement.
fn assert_never_without_the_service(
    service: &Service,
    snapshots: &[Snapshot],
    final_id: &str,
    context: &str,
) {
    let first = snapshots
        .first()
        .unwrap_or_else(|| panic!("the monitor saw nothing; {context}"));
    assert!(
        first.with_id(&service.old_id).is_some(),
        "the monitor started after the old container was gone; {context}"
    );
    for snapshot in snapshots {
        let named = snapshot.named(&service.name);
        assert!(
            named.len() <= 1,
            "two containers named {} at {snapshot}; {context}",
            service.name
        );
        let old = snapshot.with_id(&service.old_id).is_some();
        let replaced = named.first().is_some_and(|c| c.id == final_id);
        assert!(
            old || replaced,
            "at {snapshot} the service has neither its old container nor its final one; {context}"
        );
    }
}

fn show(snapshots: &[Snapshot]) -> String {
    snapshots.iter().map(|s| format!("  {s}\n")).collect()
}

#[test]
fn killed_while_the_old_container_stops_the_next_update_finishes_the_job() {
    crash_then_update("crash-stopping", KillPoint::OldStopping);
}

#[test]
fn killed_right_after_the_old_container_is_set_aside_the_next_update_finishes_the_job() {
    crash_then_update("crash-aside", KillPoint::OldAside);
}

#[test]
fn killed_right_after_the_new_container_is_created_the_next_update_finishes_the_job() {
    crash_then_update("crash-created", KillPoint::NewCreated);
}

#[test]
fn killed_in_the_health_gate_the_next_update_finishes_the_job() {
    crash_then_update("crash-health-gate", KillPoint::HealthGate);
}

/// The engine finishes a stop that the killed agent asked for. An agent restarted within the
/// stop timeout must not leave the container to that stop: here it cannot reach the registry,
/// so nothing else will start the container again (and `update` only looks at running ones).
#[test]
fn killed_while_the_old_container_stops_a_restart_that_cannot_update_leaves_it_running() {
    let mut service = Service::start("crash-stopping-offline");
    let events = service.bed.follow_events();
    let monitor = service.bed.monitor();

    let first = service.agent.spawn(&["update"]);
    KillPoint::OldStopping
        .reach(&service, &events)
        .unwrap_or_else(|missed| panic!("{missed}"));
    let first_stderr = first.kill9();
    service.registry.stop();
    let second = service.agent.command(&["update", "--json"]);
    // The stop the killed agent asked for ends with SIGKILL (the app ignores SIGTERM).
    let old = service.old_id.clone();
    events.wait_for("the old container's interrupted stop to end", REACH, |e| {
        e.action == "die" && e.id == old
    });
    let snapshots = monitor.finish();
    let context = format!(
        "first update's stderr:\n{first_stderr}\nsecond update: exit {}\nstdout:\n{}\nstderr:\n{}\n\
         containers over time:\n{}\nevents:\n{}",
        second.code,
        second.stdout,
        second.stderr,
        show(&snapshots),
        show_events(&events.seen()),
    );

    let containers = service.bed.containers();
    assert_eq!(containers.len(), 1, "{context}");
    let container = &containers[0];
    assert_eq!(container.id, service.old_id, "{context}");
    assert_eq!(container.name, service.name, "{context}");
    // Inspect, not `docker ps`: the engine reports `die` before its list shows the exit.
    let state = service.inspect(&container.id, "{{.State.Status}}");
    assert_eq!(
        state, "running",
        "the old container was left stopped by the interrupted stop; {context}"
    );
    let data = docker(&["exec", &container.id, "/bin/busybox", "cat", "/data/marker"]);
    assert_eq!(data, service.marker, "{context}");
}
