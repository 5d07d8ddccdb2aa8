//! Fleet mode on Docker Swarm (issue #7): on a manager, services are checked like containers
//! and updated by pointing them at the new digest, so that Swarm rolls their tasks; task
//! containers are never recreated by tidewatch. Against a real single-node Swarm.

use std::time::{Duration, Instant};

use crate::support::{
    docker, push, tag, with_swarm_settings, Broken, DockerConfig, Engine, Registry, RegistryEntry,
    Status, TestBed,
};

const USER: &str = "ci";
const PASSWORD: &str = "tw-swarm-Pq72mxW1";

/// The digest a service's spec image is pinned to.
fn pinned_digest(image: &str) -> &str {
    image
        .split_once('@')
        .map(|(_, digest)| digest)
        .unwrap_or_else(|| panic!("service image {image} is not pinned to a digest"))
}

/// The id of the image the engine has for `repo@digest`. On the containerd store that id is
/// the digest itself, and an image a task pulled as `repo:tag@digest` has no `repo@digest` name
/// to inspect it by.
fn image_id(repo: &str, digest: &str) -> String {
    if Engine::containerd_store() {
        return digest.to_owned();
    }
    docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        &format!("{repo}@{digest}"),
    ])
}

/// The time `key` (`StartedAt`, `CompletedAt`) of a service's `UpdateStatus`. Parsed: RFC 3339
/// times compare as strings only at equal precision, and the engine trims trailing zeros.
fn timestamp(status: &serde_json::Value, key: &str) -> chrono::DateTime<chrono::FixedOffset> {
    let text = status[key].as_str().unwrap_or_default();
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|error| panic!("UpdateStatus.{key} {text:?}: {error}; {status}"))
}

#[test]
fn a_two_replica_service_rolls_to_a_new_digest_start_first_without_a_moment_at_zero_tasks() {
    let bed = TestBed::new("swarm-roll");
    let services = bed.services();
    let registry = Registry::start();
    let image = registry.image("web", "stable");
    bed.build_app(&image, "web-1");
    let v1 = push(&image);
    services.create("web", 2, &image, &[], &[]);
    assert_eq!(pinned_digest(&services.image("web")), v1);
    bed.build_app(&image, "web-2");
    let v2 = push(&image);
    let updater = bed.updater(&[registry.host()]);
    with_swarm_settings(updater.config());

    let watch = services.watch_running("web");
    let started = Instant::now();
    let update = updater.update(&[]);
    let took = started.elapsed();
    let (min_running, looks) = watch.finish();

    update.assert_exit(0);
    let result = update.result("web");
    assert_eq!(result.outcome, "updated", "{update:#?}");
    assert_eq!(result.from_digest.as_deref(), Some(v1.as_str()));
    assert_eq!(result.to_digest.as_deref(), Some(v2.as_str()));
    let spec_image = services.image("web");
    assert_eq!(
        pinned_digest(&spec_image),
        v2,
        "the service is pinned to v2"
    );
    assert!(
        spec_image.starts_with(&image),
        "the service keeps its tag: {spec_image}"
    );
    services.wait_running("web", 2, Duration::from_secs(30));
    let v2_image = image_id(&registry.repo("web"), &v2);
    services.wait_tasks_on("web", &v2_image, Duration::from_secs(30));
    assert!(
        looks >= 5,
        "too few looks at the tasks to tell: {looks} in {took:?}"
    );
    assert!(
        min_running >= 1,
        "the service ran {min_running} tasks at some moment during the update"
    );
    let status = services.update_status("web");
    assert_eq!(status["State"], "completed", "{status}");
    let (history_run, history) = updater.history("web");
    assert_eq!(history_run.code, 0, "{history_run:#?}");
    assert_eq!(history[0].outcome, "updated", "{history:#?}");
    let swarm_took = timestamp(&status, "CompletedAt") - timestamp(&status, "StartedAt");
    println!(
        "swarm convergence, 2 replicas, start-first, monitor 1s: `tidewatch update` {:.1}s \
         (check, roll-out, polling); swarm's own roll-out (UpdateStatus StartedAt -> \
         CompletedAt) {:.1}s; fewest running tasks seen {min_running} in {looks} looks",
        took.as_secs_f64(),
        swarm_took.as_seconds_f64(),
    );
}

#[test]
fn an_image_failing_its_healthcheck_is_rolled_back_by_swarm_and_reported_rolled_back() {
    let bed = TestBed::new("swarm-rollback");
    let services = bed.services();
    let registry = Registry::start();
    let image = registry.image("api", "stable");
    bed.build_app(&image, "api-1");
    let v1 = push(&image);
    services.create("api", 1, &image, &[], &[]);
    bed.build_broken(&image, Broken::FailingHealthcheck, "api-2");
    let v2 = push(&image);
    let updater = bed.updater(&[registry.host()]);
    with_swarm_settings(updater.config());

    let update = updater.update(&[]);

    update.assert_exit(1);
    let result = update.result("api");
    assert_eq!(result.outcome, "rolled_back", "{update:#?}");
    assert!(
        result.detail.contains("rolled the service back"),
        "{update:#?}"
    );
    assert_eq!(result.to_digest.as_deref(), Some(v2.as_str()));
    assert_eq!(
        pinned_digest(&services.image("api")),
        v1,
        "swarm put the previous spec back"
    );
    services.wait_running("api", 1, Duration::from_secs(30));
    let v1_image = image_id(&registry.repo("api"), &v1);
    services.wait_tasks_on("api", &v1_image, Duration::from_secs(30));
    let (_, history) = updater.history("api");
    assert_eq!(history[0].outcome, "rolled_back", "{history:#?}");
    assert_eq!(history[0].to_digest, v2);
    // The refused digest is quarantined for the service: the next cycle does not roll it
    // out again.
    let dry = updater.dry_run(&[]);
    assert!(
        dry.waiting("api").reason.contains("quarantined"),
        "{dry:#?}"
    );
}

#[test]
fn a_private_image_updates_with_the_credentials_tidewatch_forwards_to_swarm() {
    let bed = TestBed::new("swarm-private");
    let services = bed.services();
    let registry = Registry::options().htpasswd(&[(USER, PASSWORD)]).start();
    let mut pusher = DockerConfig::new(&bed.dir().join("pusher"));
    pusher.auth(&registry.host(), USER, PASSWORD);
    let image = registry.image("private", "stable");
    bed.build_app(&image, "private-1");
    let v1 = pusher.push(&image);
    // Created pinned and without credentials: the node's own pull of v1 is refused, and it
    // runs the v1 it has.
    services.create(
        "private",
        1,
        &format!("{image}@{v1}"),
        &[],
        &["--no-resolve-image"],
    );
    // v1 keeps a second name: on the containerd store a build that moves an image's only name
    // deletes it, and the control service below must find v1 on the node.
    tag(
        &image_id(&registry.repo("private"), &v1),
        &format!("{image}-v1"),
    );
    let v2_image = bed.build_app(&image, "private-2");
    let v2 = pusher.push(&image);
    // The node must pull v2 itself, and only the credentials sent with the update let it:
    // a control service moved to v2 without them gets its task rejected.
    docker(&["image", "rm", "--force", &v2_image]);
    services.create(
        "control",
        1,
        &format!("{image}@{v1}"),
        &[],
        &["--no-resolve-image"],
    );
    docker(&[
        "service",
        "update",
        "--detach",
        "--no-resolve-image",
        "--image",
        &format!("{image}@{v2}"),
        &bed.name("control"),
    ]);
    let refused = services.wait_task_error("control", Duration::from_secs(60));
    assert!(refused.contains("No such image"), "{refused}");
    docker(&["service", "rm", &bed.name("control")]);
    let password = bed.dir().join("registry-password");
    std::fs::write(&password, PASSWORD).unwrap_or_else(|error| panic!("{error}"));
    let empty = DockerConfig::new(&bed.dir().join("empty-docker-config"));
    let agent = bed
        .agent_for(&[RegistryEntry::new(&registry.host())
            .insecure(true)
            .username(USER)
            .password_file(&password)])
        .env("DOCKER_CONFIG", empty.dir());
    with_swarm_settings(agent.config());

    let update = agent.update(&[]);

    assert_eq!(update.outcome.code, 0, "{update:#?}");
    let result = update
        .result("private")
        .unwrap_or_else(|| panic!("no result for the service; {update:#?}"));
    assert_eq!(result.outcome, "updated", "{update:#?}");
    assert_eq!(pinned_digest(&services.image("private")), v2);
    let pulled = image_id(&registry.repo("private"), &v2);
    services.wait_tasks_on("private", &pulled, Duration::from_secs(30));
    assert!(
        !update.outcome.stderr.contains(PASSWORD),
        "the password was logged"
    );
}

#[test]
fn a_service_is_rolled_after_the_service_it_depends_on_has_converged() {
    let bed = TestBed::new("swarm-order");
    let services = bed.services();
    let registry = Registry::start();
    let db_image = registry.image("db", "stable");
    let app_image = registry.image("app", "stable");
    bed.build_app(&db_image, "db-1");
    push(&db_image);
    bed.build_app(&app_image, "app-1");
    push(&app_image);
    // "app" sorts before "db": only the label puts db first.
    let db_name = bed.name("db");
    services.create(
        "app",
        1,
        &app_image,
        &[("tidewatch.depends-on", &db_name)],
        &[],
    );
    services.create("db", 1, &db_image, &[], &[]);
    bed.build_app(&db_image, "db-2");
    push(&db_image);
    bed.build_app(&app_image, "app-2");
    push(&app_image);
    let updater = bed.updater(&[registry.host()]);
    with_swarm_settings(updater.config());

    let update = updater.update(&[]);

    update.assert_exit(0);
    let order: Vec<(&str, &str)> = update
        .report
        .results
        .iter()
        .map(|r| (r.container.as_str(), r.outcome.as_str()))
        .collect();
    let app_name = bed.name("app");
    assert_eq!(
        order,
        [
            (db_name.as_str(), "updated"),
            (app_name.as_str(), "updated")
        ]
    );
    // Swarm's own record: db's roll-out completed before app's started.
    let db_done = timestamp(&services.update_status("db"), "CompletedAt");
    let app_started = timestamp(&services.update_status("app"), "StartedAt");
    assert!(
        db_done <= app_started,
        "db completed at {db_done}, app started at {app_started}"
    );
}

#[test]
fn task_containers_are_not_listed_and_a_service_shares_the_check_of_its_reference() {
    let bed = TestBed::new("swarm-tasks");
    let services = bed.services();
    let registry = Registry::start();
    let image = registry.image("worker", "stable");
    bed.build_app(&image, "worker-1");
    push(&image);
    services.create("worker", 2, &image, &[], &[]);
    bed.run("plain", &image, &[]);
    bed.build_app(&image, "worker-2");
    let v2 = push(&image);
    let agent = bed.agent(&[registry.host()]);
    let heads_before = registry.manifest_requests("HEAD", "worker");

    let check = agent.check(&[]);

    check.assert_exit(0);
    // On the containerd store the container's image lost its tag to v2, and the digest it runs
    // is confirmed with one HEAD of `repo@v1` (tests/check.rs counts that rule).
    let confirmation = usize::from(Engine::containerd_store());
    assert_eq!(
        registry.manifest_requests("HEAD", "worker") - heads_before,
        1 + confirmation,
        "one HEAD for the reference the service and the container share"
    );
    let names: Vec<&str> = check.rows.iter().map(|r| r.container.as_str()).collect();
    assert_eq!(
        names,
        [bed.name("plain"), bed.name("worker")],
        "the plain container and the service, no task container: {check}"
    );
    // The task containers carry the bed's scope label, so only their swarm labels keep them
    // out; the service itself is checked.
    let row = check.row("worker");
    assert_eq!(row.status, Status::UpdateAvailable, "{check}");
    assert_eq!(
        row.available_digest.as_deref(),
        Some(v2.as_str()),
        "{check}"
    );
    let dry = bed.updater(&[registry.host()]).dry_run(&[]);
    let steps: Vec<&str> = dry
        .plan
        .steps
        .iter()
        .map(|s| s.container.as_str())
        .collect();
    assert_eq!(steps, [bed.name("plain"), bed.name("worker")], "{dry:#?}");
}
