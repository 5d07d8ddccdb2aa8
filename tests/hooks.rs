//! Lifecycle hooks on the real engine: each runs in the right container at the right moment
//! (a marker file in a volume shared by the old and the new container records the order),
//! exit 75 defers an update, a failing pre-update leaves the old container alone, a failing or
//! hung post-update rolls back, and nothing runs unless `[update] lifecycle_hooks` is on.

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{
    docker, push, try_docker, Background, Registry, TestBed, Updater, QUICK_STOP,
};

/// Where the marker volume is mounted in the test containers.
const MARKS: &str = "/marks";

/// A busybox image with a shell (for label hooks) whose `VERSION` tells the old container from
/// the new one; it only sleeps, so the health gate is `min_running`.
fn hooked_image(version: &str) -> String {
    format!(
        r#"FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENV VERSION={version}
ENTRYPOINT ["/bin/busybox", "sleep", "86400"]
"#
    )
}

/// A hook command that appends `moment` and the container's version to the marker file.
fn mark(moment: &str) -> String {
    format!("echo {moment} $VERSION >> {MARKS}/order")
}

/// The marker file as the bed's container `name` sees it, trimmed ("" when no hook wrote it).
fn order(bed: &TestBed, name: &str) -> String {
    try_docker(&[
        "exec",
        &bed.name(name),
        "/bin/busybox",
        "cat",
        "/marks/order",
    ])
    .unwrap_or_default()
}

/// Waits until the marker file of the bed's container `name` holds `text`.
fn wait_for_mark(bed: &TestBed, name: &str, text: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !order(bed, name).contains(text) {
        assert!(
            Instant::now() < deadline,
            "no {text:?} in the marker file within {timeout:?}: {:?}",
            order(bed, name)
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Turns hooks on for `updater`, with extra `agent.toml` text after `[update]`.
fn enable_hooks(updater: &Updater, extra: &str) {
    let path = updater.config();
    let written = fs::read_to_string(path).unwrap();
    assert!(
        written.trim_end().ends_with("health_timeout = \"20s\""),
        "{written}"
    );
    fs::write(path, format!("{written}lifecycle_hooks = true\n{extra}")).unwrap();
}

/// A bed with `web` on v1 of the hooked image (with `labels` and the marker volume), and v2
/// pushed. Returns the bed, registry (kept alive), volume guard, updater and old container id.
struct Scene {
    bed: TestBed,
    _registry: Registry,
    _volume: crate::support::Volume,
    updater: Updater,
    old: String,
}

fn scene(name: &str, labels: &[(&str, &str)]) -> Scene {
    let bed = TestBed::new(name);
    let registry = Registry::start();
    let image = registry.image("hooked", "stable");
    bed.build_dockerfile(&image, &hooked_image("1"));
    push(&image);
    let volume = bed.volume("marks");
    let mount = format!("{}:{MARKS}", volume.name());
    let mut options = QUICK_STOP.to_vec();
    options.extend(["--volume", &mount]);
    let old = bed.run_with("web", &options, &image, &[], labels);
    let updater = bed.updater(&[registry.host()]);
    bed.build_dockerfile(&image, &hooked_image("2"));
    push(&image);
    Scene {
        bed,
        _registry: registry,
        _volume: volume,
        updater,
        old,
    }
}

#[test]
fn hooks_run_in_the_old_container_before_and_the_new_one_after_with_none_of_our_environment() {
    let pre_check = mark("pre-check");
    let pre_update = format!(
        "{} && echo dumped the database && env > {MARKS}/env",
        mark("pre-update")
    );
    let post_update = mark("post-update");
    let post_check = mark("post-check");
    let s = scene(
        "hooks-order",
        &[
            (
                "com.centurylinklabs.watchtower.lifecycle.pre-check",
                &pre_check,
            ),
            (
                "com.centurylinklabs.watchtower.lifecycle.pre-update",
                &pre_update,
            ),
            (
                "com.centurylinklabs.watchtower.lifecycle.pre-update-timeout",
                "1",
            ),
            ("tidewatch.hook.post-update", &post_update),
            (
                "com.centurylinklabs.watchtower.lifecycle.post-check",
                &post_check,
            ),
        ],
    );
    enable_hooks(&s.updater, "");

    let update = s.updater.update(&[]);

    update.assert_exit(0);
    let result = update.result("web");
    assert_eq!(result.outcome, "updated", "{update:#?}");
    assert_ne!(s.bed.container_id("web"), s.old, "web was recreated");
    assert_eq!(
        order(&s.bed, "web"),
        "pre-check 1\npre-update 1\npost-update 2\npost-check 2",
        "each hook ran once, at its moment, in the container it belongs to"
    );
    assert!(
        result.detail.contains("pre-update hook") && result.detail.contains("dumped the database"),
        "the hooks' output is in the result: {}",
        result.detail
    );
    assert!(
        update.outcome.stderr.contains("dumped the database"),
        "and in the log: {}",
        update.outcome.stderr
    );
    let (history, rows) = s.updater.history("web");
    assert_eq!(history.code, 0, "{history:?}");
    assert!(
        rows[0].reason.contains("dumped the database"),
        "and in the history: {rows:#?}"
    );
    let env = try_docker(&[
        "exec",
        &s.bed.name("web"),
        "/bin/busybox",
        "cat",
        "/marks/env",
    ])
    .unwrap_or_default();
    assert!(
        env.contains("VERSION=1"),
        "the container's own environment: {env}"
    );
    assert!(
        !env.contains("CARGO") && !env.contains("RUST"),
        "none of tidewatch's: {env}"
    );
}

#[test]
fn a_pre_update_exit_75_defers_the_update_to_a_later_cycle() {
    // `[[service]] hooks` (argv, no shell) win over the label, which would fail the update.
    let s = scene("hooks-defer", &[("tidewatch.hook.pre-update", "exit 3")]);
    let service = format!(
        "\n[[service]]\nname = \"{}\"\nhooks = {{ pre_update = [\"/bin/busybox\", \"sh\", \"-c\", \
         \"test -e {MARKS}/go || exit 75\"], timeout = \"30s\" }}\n",
        s.bed.name("web")
    );
    enable_hooks(&s.updater, &service);

    let deferred = s.updater.update(&[]);

    deferred.assert_exit(0);
    assert!(deferred.report.results.is_empty(), "{deferred:#?}");
    let waiting = deferred
        .report
        .plan
        .waiting
        .iter()
        .find(|w| w.container == s.bed.name("web"))
        .unwrap_or_else(|| panic!("web should wait: {deferred:#?}"));
    assert!(
        waiting
            .reason
            .contains("pre-update hook ([[service]] hooks.pre_update) exited 75"),
        "{waiting:?}"
    );
    assert_eq!(
        s.bed.container_id("web"),
        s.old,
        "the old container was not touched"
    );
    assert!(s.bed.is_running("web"));
    let (_, rows) = s.updater.history("web");
    assert!(rows.is_empty(), "a deferral is no outcome: {rows:#?}");

    docker(&[
        "exec",
        &s.bed.name("web"),
        "/bin/busybox",
        "touch",
        "/marks/go",
    ]);
    let next = s.updater.update(&[]);

    next.assert_exit(0);
    assert_eq!(next.result("web").outcome, "updated", "{next:#?}");
    assert_ne!(s.bed.container_id("web"), s.old);
}

#[test]
fn a_failing_pre_update_hook_leaves_the_old_container_untouched_with_4_kib_of_its_output() {
    let s = scene(
        "hooks-pre-fails",
        &[(
            "tidewatch.hook.pre-update",
            "echo queue not drained; yes 0123456789 | head -c 20000; exit 3",
        )],
    );
    enable_hooks(&s.updater, "");

    let update = s.updater.update(&[]);

    update.assert_exit(1);
    let result = update.result("web");
    assert_eq!(result.outcome, "failed", "{update:#?}");
    assert!(
        result.detail.contains("exited 3") && result.detail.contains("queue not drained"),
        "{}",
        result.detail
    );
    let lines = result.detail.matches("0123456789").count();
    assert!(
        result.detail.contains("[truncated]") && lines > 0 && lines <= 4096 / 11,
        "only the first 4 KiB of the output are kept: {lines} lines; {}",
        result.detail
    );
    assert_eq!(s.bed.container_id("web"), s.old);
    assert!(s.bed.is_running("web"));
}

#[test]
fn a_failing_post_update_hook_rolls_back() {
    let post = format!("{}; exit 4", mark("post-update"));
    let s = scene(
        "hooks-post-fails",
        &[
            ("tidewatch.hook.pre-update", &mark("pre-update")),
            ("tidewatch.hook.post-update", &post),
        ],
    );
    enable_hooks(&s.updater, "");

    let update = s.updater.update(&[]);

    update.assert_exit(1);
    let result = update.result("web");
    assert_eq!(result.outcome, "rolled_back", "{update:#?}");
    assert!(
        result.detail.contains("post-update hook"),
        "{}",
        result.detail
    );
    assert!(result.detail.contains("exited 4"), "{}", result.detail);
    assert_eq!(
        s.bed.container_id("web"),
        s.old,
        "the old container is back"
    );
    assert!(s.bed.is_running("web"));
    assert_eq!(order(&s.bed, "web"), "pre-update 1\npost-update 2");
}

#[test]
fn a_post_update_hook_that_outlives_its_timeout_rolls_back() {
    let s = scene(
        "hooks-post-hangs",
        &[
            ("tidewatch.hook.post-update", "sleep 600"),
            ("tidewatch.hook.timeout", "2s"),
        ],
    );
    enable_hooks(&s.updater, "");

    let update = s.updater.update(&[]);

    update.assert_exit(1);
    let result = update.result("web");
    assert_eq!(result.outcome, "rolled_back", "{update:#?}");
    assert!(
        result.detail.contains("timed out after 2s"),
        "{}",
        result.detail
    );
    assert_eq!(s.bed.container_id("web"), s.old);
    assert!(s.bed.is_running("web"));
}

#[test]
fn without_lifecycle_hooks_the_labels_are_ignored() {
    let s = scene(
        "hooks-off",
        &[
            (
                "com.centurylinklabs.watchtower.lifecycle.pre-check",
                &mark("pre-check"),
            ),
            (
                "com.centurylinklabs.watchtower.lifecycle.pre-update",
                "exit 75",
            ),
            ("tidewatch.hook.post-update", "exit 1"),
        ],
    );

    let update = s.updater.update(&[]);

    update.assert_exit(0);
    assert_eq!(update.result("web").outcome, "updated", "{update:#?}");
    assert_eq!(order(&s.bed, "web"), "", "no hook ran");
}

#[test]
fn killed_while_a_pre_update_hook_runs_the_next_update_recovers_and_finishes_the_job() {
    let hook = format!(
        "if [ -e {MARKS}/go ]; then {}; else echo hung >> {MARKS}/order; sleep 600; fi",
        mark("pre-update")
    );
    let s = scene("hooks-crash", &[("tidewatch.hook.pre-update", &hook)]);
    enable_hooks(&s.updater, "");
    let config = s.updater.config().to_string_lossy().into_owned();
    let first = Background::start(&["-c", &config, "update", "--json"]);
    wait_for_mark(&s.bed, "web", "hung", Duration::from_secs(60));
    first.kill9();
    assert_eq!(s.bed.container_id("web"), s.old, "killed before the stop");
    docker(&[
        "exec",
        &s.bed.name("web"),
        "/bin/busybox",
        "touch",
        "/marks/go",
    ]);

    let update = s.updater.update(&[]);

    update.assert_exit(0);
    assert_eq!(update.report.recovered.len(), 1, "{update:#?}");
    assert!(
        update.report.recovered[0].detail.starts_with("recovered:"),
        "{update:#?}"
    );
    assert_eq!(update.result("web").outcome, "updated", "{update:#?}");
    assert_ne!(s.bed.container_id("web"), s.old);
    assert_eq!(order(&s.bed, "web"), "hung\npre-update 1");
}

#[test]
fn rollback_runs_pre_rollback_in_the_current_container_and_post_update_in_the_restored_one() {
    let s = scene(
        "hooks-rollback",
        &[
            ("tidewatch.hook.pre-rollback", &mark("pre-rollback")),
            ("tidewatch.hook.post-update", &mark("post-update")),
        ],
    );
    enable_hooks(&s.updater, "");
    let update = s.updater.update(&[]);
    update.assert_exit(0);
    assert_eq!(update.result("web").outcome, "updated", "{update:#?}");

    let rollback = s.updater.rollback("web");

    assert_eq!(rollback.code, 0, "{rollback:?}");
    assert_eq!(
        order(&s.bed, "web"),
        "post-update 2\npre-rollback 2\npost-update 1"
    );
}

#[test]
fn sigterm_during_a_pre_update_hook_stops_waiting_and_leaves_the_old_container_running() {
    let hook = format!("echo hung >> {MARKS}/order; sleep 600");
    let s = scene(
        "hooks-sigterm",
        &[
            ("tidewatch.hook.pre-update", &hook),
            ("tidewatch.hook.timeout", "10m"),
        ],
    );
    enable_hooks(&s.updater, "");
    let mut daemon = s.updater.spawn_run();
    wait_for_mark(&s.bed, "web", "hung", Duration::from_secs(60));

    // Far below the hook's 10 minutes: only shutdown can end the wait this soon.
    let (code, took) = daemon.terminate(Duration::from_secs(60));

    println!("run exited {took:?} after SIGTERM during a hook");
    assert_eq!(code, 0, "{}", daemon.stderr());
    assert!(
        daemon.stderr().contains("the agent is shutting down"),
        "{}",
        daemon.stderr()
    );
    assert_eq!(s.bed.container_id("web"), s.old, "the old container stays");
    assert!(s.bed.is_running("web"));
    let (_, rows) = s.updater.history("web");
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0].outcome, "failed", "{rows:#?}");
    assert!(rows[0].reason.contains("shutting down"), "{rows:#?}");
}
