//! `tidewatch check` and `update` against Podman's Docker-compatible service (`podman system
//! service`, Debian 12's Podman 4.3), started by the tests on a socket of its own.
//!
//! The containers are run with `podman run`, as a Podman user runs them. Podman runs a
//! container's HEALTHCHECK from systemd timers, and the test machines have no systemd: the
//! containers that are to update are run with `--no-healthcheck` (the health gate is then
//! "running for `min_running`"), and one test pins down what happens to a HEALTHCHECK without
//! those timers.

use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::http;
use crate::support::{
    page, push, Broken, PodmanBed, Registry, Status, TestBed, APP_PORT, START_TIMEOUT,
};

/// Options of every container these tests update: no healthcheck (see the module doc), and a
/// one-second stop timeout, since busybox as PID 1 ignores SIGTERM.
const NO_TIMERS: [&str; 3] = ["--no-healthcheck", "--stop-timeout", "1"];

/// A loopback port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap_or_else(|error| panic!("cannot find a free loopback port: {error}"))
}

/// What the host gets on `127.0.0.1:port`, once it serves a page containing `expected`; panics
/// with the last answer after [`START_TIMEOUT`].
fn wait_for_page(port: u16, expected: &str) -> String {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let answer = http::request(
            &format!("127.0.0.1:{port}"),
            "GET",
            "/",
            &[],
            Duration::from_secs(5),
        );
        match answer {
            Ok(response) if response.body.contains(expected) => return response.body,
            _ if Instant::now() > deadline => {
                panic!("127.0.0.1:{port} did not serve {expected:?}: {answer:?}")
            }
            _ => thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Lets Podman pull from `registry`, and publishes the app's version 1 there as `app:stable`.
/// Returns the image reference and its digest.
fn publish_v1(bed: &TestBed, pod: &PodmanBed, registry: &Registry) -> (String, String) {
    pod.trust(registry);
    let image = registry.image("app", "stable");
    bed.build_app(&image, "1");
    let v1 = push(&image);
    (image, v1)
}

#[test]
fn on_podman_a_push_is_found_by_check_and_update_recreates_the_container_with_its_settings() {
    let bed = TestBed::new("podman-update");
    let pod = bed.on_podman();
    let registry = Registry::start();
    let (image, v1) = publish_v1(&bed, &pod, &registry);
    let volume = pod.volume("data");
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:{APP_PORT}");
    let mount = format!("{volume}:/data");
    let mut options = NO_TIMERS.to_vec();
    options.extend(["--env", "GREETING=hello", "--publish", &publish]);
    options.extend(["--volume", &mount]);
    let old = pod.run("web", &options, &image);
    wait_for_page(port, &page("1"));
    let agent = bed.agent_on(&pod.host(), &[registry.host()]);
    let updater = bed.updater_of(&agent);

    let check = agent.check(&[]);
    check.assert_exit(0);
    let row = check.row("web");
    assert_eq!(row.status, Status::UpToDate, "{check}");
    assert_eq!(row.current_digest.as_deref(), Some(v1.as_str()), "{check}");

    bed.build_app(&image, "2");
    let v2 = push(&image);
    let check = agent.check(&[]);
    check.assert_exit(0);
    let row = check.row("web");
    assert_eq!(row.status, Status::UpdateAvailable, "{check}");
    assert_eq!(
        row.available_digest.as_deref(),
        Some(v2.as_str()),
        "{check}"
    );
    assert_eq!(pod.container_id("web"), old, "check changes nothing");

    let update = updater.update(&[]);
    update.assert_exit(0);
    let result = update.result("web");
    assert_eq!(result.outcome, "updated", "{update:#?}");
    assert_eq!(result.to_digest.as_ref(), Some(&v2), "{update:#?}");
    assert_ne!(pod.container_id("web"), old, "the container was recreated");
    assert_eq!(
        pod.container_names(),
        [bed.name("web")],
        "the old container is removed once its replacement runs"
    );
    assert!(wait_for_page(port, &page("2")).contains(&page("2")));
    let env = pod.inspect("web", "{{json .Config.Env}}");
    assert!(env.contains("\"GREETING=hello\""), "env kept: {env}");
    assert!(
        env.contains("\"APP_VERSION=2\""),
        "the new image's env: {env}"
    );
    let old_short_id = &old[..12];
    assert!(
        !env.contains(&format!("HOSTNAME={old_short_id}")),
        "the old container's hostname is not carried over as env: {env}"
    );
    let mounts = pod.inspect("web", "{{range .Mounts}}{{.Name}}:{{.Destination}} {{end}}");
    assert_eq!(
        mounts.trim(),
        mount,
        "the named volume is mounted again, and nothing else"
    );

    // Still in scope (label kept), and the new image's repo digest is what Podman reports.
    let check = agent.check(&[]);
    check.assert_exit(0);
    let row = check.row("web");
    assert_eq!(row.status, Status::UpToDate, "{check}");
    assert_eq!(row.current_digest.as_deref(), Some(v2.as_str()), "{check}");
}

#[test]
fn on_podman_an_update_whose_process_exits_at_once_is_rolled_back() {
    let bed = TestBed::new("podman-rollback");
    let pod = bed.on_podman();
    let registry = Registry::start();
    let (image, _) = publish_v1(&bed, &pod, &registry);
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:{APP_PORT}");
    let mut options = NO_TIMERS.to_vec();
    options.extend(["--publish", &publish]);
    let old = pod.run("web", &options, &image);
    let old_image = pod.inspect("web", "{{.Image}}");
    wait_for_page(port, &page("1"));
    let updater = bed.updater_of(&bed.agent_on(&pod.host(), &[registry.host()]));

    bed.build_broken(&image, Broken::ExitsAtOnce, "broken");
    let bad = push(&image);
    let update = updater.update(&[]);

    update.assert_exit(1);
    let result = update.result("web");
    assert_eq!(result.outcome, "rolled_back", "{update:#?}");
    assert_eq!(result.to_digest.as_ref(), Some(&bad), "{update:#?}");
    assert!(result.detail.contains("exited with code 3"), "{update:#?}");
    assert_eq!(pod.container_id("web"), old, "the old container runs again");
    assert!(pod.is_running("web"));
    wait_for_page(port, &page("1"));
    assert_eq!(pod.container_names(), [bed.name("web")]);
    assert_eq!(
        pod.podman()
            .podman(&["image", "inspect", "--format", "{{.Id}}", &image])
            .trim_start_matches("sha256:"),
        old_image.trim_start_matches("sha256:"),
        "the tag points at the old image again"
    );
}

#[test]
fn on_podman_without_systemd_a_healthcheck_never_runs_and_the_update_is_rolled_back_saying_so() {
    let bed = TestBed::new("podman-healthcheck");
    let pod = bed.on_podman();
    let registry = Registry::start();
    let (image, _) = publish_v1(&bed, &pod, &registry);
    let old = pod.run("web", &["--stop-timeout", "1"], &image);
    let updater = bed.updater_of(&bed.agent_on(&pod.host(), &[registry.host()]));

    bed.build_app(&image, "2");
    push(&image);
    let update = updater.update(&[]);

    update.assert_exit(1);
    let result = update.result("web");
    assert_eq!(result.outcome, "rolled_back", "{update:#?}");
    assert!(
        result.detail.contains("HEALTHCHECK never ran"),
        "the reason should say that Podman never ran the check: {update:#?}"
    );
    assert_eq!(pod.container_id("web"), old, "the old container runs again");
    assert!(pod.is_running("web"));
}

#[test]
fn on_podman_a_container_recreated_on_a_new_image_takes_that_images_healthcheck() {
    let bed = TestBed::new("podman-new-healthcheck");
    let pod = bed.on_podman();
    let registry = Registry::start();
    let (image, _) = publish_v1(&bed, &pod, &registry);
    // Stopped, and recreated stopped (`include_stopped`): no health gate, which could not pass
    // here (see the module doc), yet the new container's settings are all there to inspect.
    let old = pod.create("web", &[], &image);
    let agent = bed.agent_on(&pod.host(), &[registry.host()]);
    let config = std::fs::read_to_string(agent.config())
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", agent.config().display()));
    let config = config.replacen(
        "label_enable = false\n",
        "label_enable = false\ninclude_stopped = true\n",
        1,
    );
    std::fs::write(agent.config(), config)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", agent.config().display()));
    let updater = bed.updater_of(&agent);
    let inherited = pod.inspect("web", "{{json .Config.Healthcheck.Test}}");
    assert!(inherited.contains("wget"), "v1's HEALTHCHECK: {inherited}");

    // Version 2 checks for a file instead of fetching the page.
    bed.build_slow_app(&image, "2", 1);
    let v2 = push(&image);
    let update = updater.update(&[]);

    update.assert_exit(0);
    let result = update.result("web");
    assert_eq!(result.outcome, "updated", "{update:#?}");
    assert_eq!(result.to_digest.as_ref(), Some(&v2), "{update:#?}");
    assert_ne!(pod.container_id("web"), old, "the container was recreated");
    assert!(!pod.is_running("web"), "and left stopped");
    let healthcheck = pod.inspect("web", "{{json .Config.Healthcheck.Test}}");
    assert!(
        healthcheck.contains("/tmp/ready"),
        "the new image's HEALTHCHECK applies, not the old image's carried over: {healthcheck}"
    );
}
