//! The agent in its own container (packaging/image), run the Watchtower way: it updates the
//! other containers of its scope, never recreates itself in a cycle, and with `[update]
//! self_update` is replaced by a successor on its new image, which goes on working.

use std::time::{Duration, Instant};

use crate::support::{
    docker, page, push, repo_digests, try_docker, Registry, TestBed, CYCLE_FINISHED,
};

/// How long the agent may take to notice a push and act on it.
const PICK_UP: Duration = Duration::from_secs(60);

/// A registry with the app at v1 running as the bed's "web", and the agent image (built from
/// the test binary) pushed as `tidewatch:latest`. Returns the registry, the app's and the
/// agent's references.
fn app_and_agent_image(bed: &TestBed) -> (Registry, String, String) {
    let registry = Registry::start();
    let app = registry.image("app", "stable");
    bed.web_on_v1(&app, &[]);
    let agent_image = registry.image("tidewatch", "latest");
    let built = bed.build_agent_image(&agent_image);
    println!("agent image from the debug binary: {built}");
    push(&agent_image);
    (registry, app, agent_image)
}

#[test]
fn the_agent_in_its_container_updates_another_container_but_never_itself_without_self_update() {
    let bed = TestBed::new("image-no-self-update");
    let (registry, app, agent_image) = app_and_agent_image(&bed);
    let agent = bed.run_agent("agent", &agent_image, &[registry.host()], false);
    agent.wait_for_log(CYCLE_FINISHED, 1, PICK_UP);
    let agent_id = bed.container_id("agent");
    let logs = agent.logs();
    assert!(
        logs.contains(&format!("container={agent_id}")),
        "the agent knows the container it runs in ({agent_id:.12}); log:\n{logs}"
    );

    bed.rebuild_agent_image(&agent_image, "2");
    let agent_v2 = push(&agent_image);
    bed.build_app(&app, "2");
    push(&app);
    let took = bed.wait_until_serving("web", &page("2"), PICK_UP);
    println!(
        "the agent in its container served web v2 {:.1} s after the push",
        took.as_secs_f64()
    );

    let dry_run = agent.exec(&["update", "--dry-run", "--json"]);
    let plan: serde_json::Value = serde_json::from_str(&dry_run)
        .unwrap_or_else(|error| panic!("update --dry-run --json: {error}\n{dry_run}"));
    let waiting = &plan["waiting"];
    let own = waiting
        .as_array()
        .and_then(|rows| rows.iter().find(|w| w["container"] == bed.name("agent")))
        .unwrap_or_else(|| panic!("the agent's own update should wait; {plan:#}"));
    assert_eq!(own["to_digest"], agent_v2.as_str(), "{plan:#}");
    assert_eq!(
        own["reason"], "this agent's own container; see [update] self_update",
        "{plan:#}"
    );
    // Cycles went on after the push of its image without touching it.
    agent.wait_for_next_cycle(PICK_UP);
    assert_eq!(
        bed.container_id("agent"),
        agent_id,
        "the agent is left as it is"
    );
    assert!(bed.is_running("agent"));
    assert_eq!(bed.container_names(), [bed.name("agent"), bed.name("web")]);
}

#[test]
fn with_self_update_the_agent_hands_over_to_a_successor_on_its_new_digest_which_goes_on_updating() {
    let bed = TestBed::new("image-self-update");
    let (registry, app, agent_image) = app_and_agent_image(&bed);
    let agent = bed.run_agent("agent", &agent_image, &[registry.host()], true);
    agent.wait_for_log(CYCLE_FINISHED, 1, PICK_UP);
    let old = bed.container_id("agent");

    bed.rebuild_agent_image(&agent_image, "2");
    let agent_v2 = push(&agent_image);
    let pushed = Instant::now();
    let new = bed.wait_for_replacement("agent", &old, PICK_UP);
    // The old agent is removed by its successor once it has stopped.
    while try_docker(&["container", "inspect", &old]).is_ok() {
        assert!(
            pushed.elapsed() < PICK_UP,
            "the old agent {old:.12} is still there; containers: {:?}\nlog of the successor:\n{}",
            bed.container_names(),
            agent.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    println!(
        "the successor agent ran alone {:.1} s after the push of its image",
        pushed.elapsed().as_secs_f64()
    );
    assert_eq!(
        bed.container_names(),
        [bed.name("agent"), bed.name("web")],
        "exactly one agent, under its name"
    );
    assert_ne!(new, old);
    let runs = docker(&["container", "inspect", "--format", "{{.Image}}", &new]);
    assert!(
        repo_digests(&runs).contains(&format!(
            "{}@{agent_v2}",
            agent_image.trim_end_matches(":latest")
        )),
        "the successor runs the new digest {agent_v2}: {:?}",
        repo_digests(&runs)
    );
    agent.wait_for_log(CYCLE_FINISHED, 1, PICK_UP);
    let rows = agent.history(&bed.name("agent"));
    assert_eq!(rows[0]["outcome"], "updated", "{rows:#}");
    assert_eq!(rows[0]["to_digest"], agent_v2.as_str(), "{rows:#}");

    bed.build_app(&app, "2");
    push(&app);
    let took = bed.wait_until_serving("web", &page("2"), PICK_UP);
    println!(
        "the successor served web v2 {:.1} s after the push",
        took.as_secs_f64()
    );
    assert_eq!(bed.container_id("agent"), new, "the successor stays");
}

#[test]
fn a_successor_agent_that_exits_is_removed_and_the_old_agent_takes_its_name_back() {
    let bed = TestBed::new("image-self-update-fails");
    let (registry, _, agent_image) = app_and_agent_image(&bed);
    let agent = bed.run_agent("agent", &agent_image, &[registry.host()], true);
    agent.wait_for_log(CYCLE_FINISHED, 1, PICK_UP);
    let old = bed.container_id("agent");

    // The new image's agent exits at once (a usage error: exit code 2).
    bed.build_dockerfile(
        &agent_image,
        &format!(
            "FROM {agent_image}\nLABEL tidewatch.test.version=broken\n\
             ENTRYPOINT [\"/usr/bin/tidewatch\", \"no-such-command\"]\n"
        ),
    );
    let broken = push(&agent_image);
    agent.wait_for_log("self-update: the successor agent exited", 1, PICK_UP);
    agent.wait_for_next_cycle(PICK_UP);

    assert_eq!(
        bed.container_id("agent"),
        old,
        "the old agent runs on under its name"
    );
    assert!(bed.is_running("agent"));
    assert_eq!(
        bed.container_names(),
        [bed.name("agent"), bed.name("web")],
        "the successor is removed"
    );
    let rows = agent.history(&bed.name("agent"));
    assert_eq!(rows[0]["outcome"], "rolled_back", "{rows:#}");
    assert_eq!(rows[0]["to_digest"], broken.as_str(), "{rows:#}");
    let dry_run = agent.exec(&["update", "--dry-run", "--json"]);
    assert!(
        dry_run.contains("quarantined"),
        "the refused digest is not tried again: {dry_run}"
    );
}

#[test]
fn an_agent_killed_during_its_self_update_ends_as_one_agent_under_its_name_on_the_new_digest() {
    let bed = TestBed::new("image-self-update-crash");
    let (registry, _, agent_image) = app_and_agent_image(&bed);
    let agent = bed.run_agent_with(
        "agent",
        &agent_image,
        &[registry.host()],
        true,
        &["--restart", "always"],
    );
    agent.wait_for_log(CYCLE_FINISHED, 1, PICK_UP);
    let old = bed.container_id("agent");
    let events = bed.follow_events();

    bed.rebuild_agent_image(&agent_image, "2");
    let agent_v2 = push(&agent_image);
    events.wait_for("the agent setting itself aside", PICK_UP, |event| {
        event.id == old && event.action == "rename"
    });
    // A crash: its process is killed, and the restart policy brings the container back.
    let pid = docker(&["container", "inspect", "--format", "{{.State.Pid}}", &old]);
    assert_ne!(pid, "0", "the old agent is not running any more");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap_or_else(|error| panic!("cannot run `kill -KILL {pid}`: {error}"));
    assert!(killed.success(), "`kill -KILL {pid}` failed: {killed}");

    // Whether the successor was created before the kill or not, it ends with one agent, under
    // its name, on the new digest.
    let deadline = Instant::now() + PICK_UP;
    let wanted = format!("{}@{agent_v2}", agent_image.trim_end_matches(":latest"));
    loop {
        let names = bed.container_names();
        let on_v2 = try_docker(&[
            "container",
            "inspect",
            "--format",
            "{{.Image}}",
            &bed.name("agent"),
        ])
        .is_ok_and(|image| repo_digests(&image).contains(&wanted));
        if names == [bed.name("agent"), bed.name("web")] && on_v2 && bed.is_running("agent") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no single agent on {agent_v2}; containers: {names:?}\nlog:\n{}",
            agent.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_ne!(bed.container_id("agent"), old);
    agent.wait_for_log(CYCLE_FINISHED, 1, PICK_UP);
    let rows = agent.history(&bed.name("agent"));
    println!("history after the crash: {rows:#}");
    assert_eq!(rows[0]["outcome"], "updated", "{rows:#}");
    assert_eq!(rows[0]["to_digest"], agent_v2.as_str(), "{rows:#}");
}
