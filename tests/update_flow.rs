//! `tidewatch update`, `rollback`, `history` and `run` end to end: dependency order proved by
//! the engine's own events, rollback of replacements that are not healthy, quarantine and holds,
//! and the daemon picking up a push and stopping on SIGTERM.

use std::time::Duration;

use crate::support::{
    docker, page, push, Broken, Event, Registry, TestBed, Web, QUICK_STOP, RUN_INTERVAL,
    START_TIMEOUT,
};

/// A bound for an engine event to come through `docker events` once it happened.
const EVENT_LAG: Duration = Duration::from_secs(10);

/// A sidecar that only sleeps: it has no port and no healthcheck of its own, and is there to
/// share another container's network namespace.
const SIDECAR: &str = r#"FROM scratch
COPY busybox /bin/busybox
ENTRYPOINT ["/bin/busybox", "sleep", "86400"]
"#;

/// The position of the first event of container `id` with `action`; panics showing them all.
fn position(events: &[Event], id: &str, action: &str) -> usize {
    events
        .iter()
        .position(|event| event.id == id && event.action == action)
        .unwrap_or_else(|| {
            let shown: Vec<String> = events
                .iter()
                .map(|event| format!("  {} {:.12} {}", event.time_nano, event.id, event.action))
                .collect();
            panic!(
                "no `{action}` event of container {id:.12}; events:\n{}",
                shown.join("\n")
            )
        })
}

#[test]
fn pushing_new_digests_recreates_the_proxy_healthy_before_the_app_and_moves_the_sidecar_onto_the_new_app(
) {
    let bed = TestBed::new("flow-order");
    let registry = Registry::start();
    let proxy_image = registry.image("proxy", "stable");
    let app_image = registry.image("app", "stable");
    let sidecar_image = registry.image("sidecar", "stable");
    bed.build_app(&proxy_image, "proxy-1");
    push(&proxy_image);
    bed.build_app(&app_image, "app-1");
    push(&app_image);
    bed.build_dockerfile(&sidecar_image, SIDECAR);
    let sidecar_digest = push(&sidecar_image);

    let proxy_name = bed.name("proxy");
    let app_name = bed.name("app");
    // "app" sorts before "proxy": only the label puts the proxy first.
    let old_app = bed.run_with(
        "app",
        QUICK_STOP,
        &app_image,
        &[],
        &[("tidewatch.depends-on", &proxy_name)],
    );
    let old_proxy = bed.run_with("proxy", QUICK_STOP, &proxy_image, &[], &[]);
    let shared = format!("container:{app_name}");
    let mut sidecar_options = QUICK_STOP.to_vec();
    sidecar_options.extend(["--network", &shared]);
    let old_sidecar = bed.run_with("sidecar", &sidecar_options, &sidecar_image, &[], &[]);
    bed.wait_until_serving("sidecar", &page("app-1"), START_TIMEOUT);
    bed.wait_until_serving("proxy", &page("proxy-1"), START_TIMEOUT);
    let updater = bed.updater(&[registry.host()]);

    bed.build_app(&proxy_image, "proxy-2");
    let proxy_v2 = push(&proxy_image);
    bed.build_app(&app_image, "app-2");
    let app_v2 = push(&app_image);
    let events = bed.follow_events();
    let update = updater.update(&[]);

    update.assert_exit(0);
    let order: Vec<(&str, &str)> = update
        .report
        .results
        .iter()
        .map(|result| (result.container.as_str(), result.outcome.as_str()))
        .collect();
    let sidecar_name = bed.name("sidecar");
    assert_eq!(
        order,
        [
            (proxy_name.as_str(), "updated"),
            (app_name.as_str(), "updated"),
            (sidecar_name.as_str(), "updated"),
        ],
        "{update:#?}"
    );
    assert_eq!(update.result("proxy").to_digest.as_ref(), Some(&proxy_v2));
    assert_eq!(update.result("app").to_digest.as_ref(), Some(&app_v2));

    let new_proxy = bed.container_id("proxy");
    let new_app = bed.container_id("app");
    let new_sidecar = bed.container_id("sidecar");
    assert_ne!(new_proxy, old_proxy, "the proxy was recreated");
    assert_ne!(new_app, old_app, "the app was recreated");
    assert_ne!(new_sidecar, old_sidecar, "the sidecar was recreated");

    // Followed live rather than asked for afterwards: the engine replays only its last 256
    // events, and on a busy engine the start of the update falls out of them.
    events.wait_for("the new app's start", EVENT_LAG, |e| {
        e.id == new_app && e.action == "start"
    });
    let events = events.seen();
    let proxy_healthy = position(&events, &new_proxy, "health_status: healthy");
    let app_started = position(&events, &new_app, "start");
    assert!(
        proxy_healthy < app_started,
        "the new proxy must be healthy before the new app starts: event {proxy_healthy} vs \
         {app_started}; {events:#?}"
    );
    let gap = events[app_started].time_nano - events[proxy_healthy].time_nano;
    println!(
        "new proxy healthy {:.3} s before the new app started",
        gap as f64 / 1e9
    );

    // The sidecar's image did not change, yet it moved into the new app's namespace.
    let mode = bed.network_mode("sidecar");
    assert!(
        mode == format!("container:{new_app}") || mode == format!("container:{app_name}"),
        "the sidecar's NetworkMode should name the new app ({new_app:.12}), not the old one \
         ({old_app:.12}): {mode}"
    );
    assert!(bed.is_running("sidecar"));
    assert!(
        bed.serves("sidecar").contains(&page("app-2")),
        "the sidecar reaches the new app on 127.0.0.1"
    );
    let sidecar = update.result("sidecar");
    assert_eq!(
        sidecar.to_digest, None,
        "the sidecar keeps its image ({sidecar_digest}); {sidecar:?}"
    );
    assert_eq!(
        bed.container_names(),
        [app_name, proxy_name, sidecar_name],
        "the old containers are removed once their replacements are healthy"
    );
}

/// A push of a `broken` image to a running v1 container: rolled back, quarantined, not retried,
/// and a newer good digest lifts the quarantine. `why` is part of the expected reason.
fn a_broken_update_is_rolled_back_and_quarantined_until_a_newer_digest(
    test: &str,
    broken: Broken,
    why: &str,
) {
    let bed = TestBed::new(test);
    let registry = Registry::start();
    let image = registry.image("app", "stable");
    let Web {
        digest: v1,
        id: old,
    } = bed.web_on_v1(&image, &[]);
    let updater = bed.updater(&[registry.host()]);

    bed.build_broken(&image, broken, "broken");
    let bad = push(&image);
    let update = updater.update(&[]);

    update.assert_exit(1);
    let result = update.result("web");
    assert_eq!(result.outcome, "rolled_back", "{update:#?}");
    assert_eq!(result.to_digest.as_ref(), Some(&bad), "{update:#?}");
    assert!(
        result.detail.contains(why),
        "the reason should say {why:?}: {result:?}"
    );
    assert_eq!(
        bed.container_id("web"),
        old,
        "the old container runs again under its name"
    );
    assert!(bed.is_running("web"));
    assert!(bed.serves("web").contains(&page("1")));
    assert_eq!(
        bed.container_names(),
        [bed.name("web")],
        "the refused replacement is removed"
    );
    assert_eq!(
        docker(&["image", "inspect", "--format", "{{.Id}}", &image]),
        bed.image_id("web"),
        "the tag points at the old image again, so a plain `docker run` does not pick up the \
         refused one"
    );

    let (history, rows) = updater.history("web");
    assert_eq!(history.code, 0, "{history:#?}");
    let newest = rows
        .first()
        .unwrap_or_else(|| panic!("no history; {history:#?}"));
    assert_eq!(newest.container, bed.name("web"), "{rows:#?}");
    assert_eq!(newest.outcome, "rolled_back", "{rows:#?}");
    assert_eq!(newest.from_digest.as_ref(), Some(&v1), "{rows:#?}");
    assert_eq!(newest.to_digest, bad, "{rows:#?}");
    assert!(newest.reason.contains(why), "{rows:#?}");

    // The registry still offers the broken digest: it is not tried again.
    let again = updater.update(&[]);
    again.assert_exit(0);
    assert!(
        again.report.results.is_empty(),
        "nothing is recreated; {again:#?}"
    );
    assert_eq!(bed.container_id("web"), old, "nothing is recreated");
    let dry_run = updater.dry_run(&[]);
    assert_eq!(dry_run.outcome.code, 0, "{dry_run:#?}");
    assert!(dry_run.plan.steps.is_empty(), "{dry_run:#?}");
    let waiting = dry_run.waiting("web");
    assert_eq!(waiting.to_digest, bad, "{dry_run:#?}");
    assert!(waiting.reason.contains("quarantined"), "{dry_run:#?}");

    bed.build_app(&image, "3");
    let v3 = push(&image);
    let update = updater.update(&[]);

    update.assert_exit(0);
    let result = update.result("web");
    assert_eq!(result.outcome, "updated", "{update:#?}");
    assert_eq!(result.to_digest.as_ref(), Some(&v3), "{update:#?}");
    assert_ne!(bed.container_id("web"), old);
    assert!(bed.serves("web").contains(&page("3")));
}

#[test]
fn an_update_whose_healthcheck_fails_is_rolled_back_and_its_digest_quarantined() {
    a_broken_update_is_rolled_back_and_quarantined_until_a_newer_digest(
        "flow-failing-healthcheck",
        Broken::FailingHealthcheck,
        "unhealthy",
    );
}

#[test]
fn an_update_whose_process_exits_at_once_is_rolled_back_and_its_digest_quarantined() {
    a_broken_update_is_rolled_back_and_quarantined_until_a_newer_digest(
        "flow-exits-at-once",
        Broken::ExitsAtOnce,
        "exited with code 3",
    );
}

#[test]
fn rollback_returns_to_the_previous_image_and_holds_it_there_until_a_newer_digest() {
    let bed = TestBed::new("flow-rollback");
    let registry = Registry::start();
    let image = registry.image("app", "stable");
    let v1 = bed.web_on_v1(&image, &[]).digest;
    let updater = bed.updater(&[registry.host()]);
    bed.build_app(&image, "2");
    let v2 = push(&image);
    let update = updater.update(&[]);
    update.assert_exit(0);
    assert_eq!(update.result("web").outcome, "updated", "{update:#?}");
    assert!(bed.serves("web").contains(&page("2")));

    let rollback = updater.rollback("web");

    assert_eq!(rollback.code, 0, "{rollback:#?}");
    assert!(bed.serves("web").contains(&page("1")), "{rollback:#?}");
    assert_eq!(bed.health("web"), "healthy", "{rollback:#?}");
    let held = bed.container_id("web");

    // v2 is still what the registry offers; the hold keeps the container on v1.
    let update = updater.update(&[]);
    update.assert_exit(0);
    assert!(
        update.report.results.is_empty(),
        "nothing is recreated; {update:#?}"
    );
    assert_eq!(bed.container_id("web"), held);
    assert!(bed.serves("web").contains(&page("1")));
    let dry_run = updater.dry_run(&[]);
    let waiting = dry_run.waiting("web");
    assert_eq!(waiting.to_digest, v2, "{dry_run:#?}");
    assert!(waiting.reason.contains("held"), "{dry_run:#?}");

    let (history, rows) = updater.history("web");
    assert_eq!(history.code, 0, "{history:#?}");
    let outcomes: Vec<(&str, Option<&str>, &str)> = rows
        .iter()
        .map(|row| {
            (
                row.outcome.as_str(),
                row.from_digest.as_deref(),
                row.to_digest.as_str(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("rolled_back", Some(v2.as_str()), v1.as_str()),
            ("updated", Some(v1.as_str()), v2.as_str()),
        ],
        "newest first: the rollback from v2 to v1, then the update from v1 to v2; {rows:#?}"
    );

    bed.build_app(&image, "3");
    let v3 = push(&image);
    let update = updater.update(&[]);

    update.assert_exit(0);
    let result = update.result("web");
    assert_eq!(result.outcome, "updated", "{update:#?}");
    assert_eq!(result.to_digest.as_ref(), Some(&v3), "{update:#?}");
    assert!(bed.serves("web").contains(&page("3")));
}

#[test]
fn run_picks_up_a_push_within_a_few_intervals_makes_a_manual_update_wait_and_stops_on_sigterm() {
    let bed = TestBed::new("flow-run");
    let registry = Registry::start();
    let image = registry.image("app", "stable");
    bed.web_on_v1(&image, &[]);
    let updater = bed.updater(&[registry.host()]);
    let mut daemon = updater.spawn_run();
    daemon.wait_for_log("cycle finished", 1, Duration::from_secs(60));

    bed.build_app(&image, "2");
    push(&image);
    let picked_up = bed.wait_until_serving("web", &page("2"), Duration::from_secs(60));
    println!(
        "run served v2 {:.1} s after the push (interval {RUN_INTERVAL:?})",
        picked_up.as_secs_f64()
    );

    // v3 keeps the daemon's cycle in its health gate for a while: long enough for a manual
    // update to find the cycle lock taken.
    bed.build_slow_app(&image, "3", 8);
    push(&image);
    let aside = format!("{}-tidewatch-old-", bed.name("web"));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !bed
        .container_names()
        .iter()
        .any(|name| name.starts_with(&aside))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "run did not start updating to v3; stderr:\n{}",
            daemon.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let manual = updater.update(&[]);
    manual.assert_exit(0);
    assert!(
        manual
            .outcome
            .stderr
            .contains("another cycle is in progress"),
        "a manual update says it waits for the daemon's cycle; {manual:#?}"
    );
    assert!(
        bed.serves("web").contains(&page("3")),
        "the daemon's cycle finished before the manual one ran; {manual:#?}"
    );
    println!(
        "manual update waited and finished in {:.1} s",
        manual.outcome.elapsed.as_secs_f64()
    );

    let (code, took) = daemon.terminate(Duration::from_secs(15));
    println!("run exited {:.2} s after SIGTERM", took.as_secs_f64());
    assert_eq!(code, 0, "stderr:\n{}", daemon.stderr());
}

#[test]
fn when_the_proxy_update_is_rolled_back_the_app_that_depends_on_it_is_skipped_for_that_cycle() {
    let bed = TestBed::new("flow-dependency-failed");
    let registry = Registry::start();
    let proxy_image = registry.image("proxy", "stable");
    let app_image = registry.image("app", "stable");
    bed.build_app(&proxy_image, "proxy-1");
    push(&proxy_image);
    bed.build_app(&app_image, "app-1");
    push(&app_image);
    let proxy_name = bed.name("proxy");
    let old_app = bed.run_with(
        "app",
        QUICK_STOP,
        &app_image,
        &[],
        &[("tidewatch.depends-on", &proxy_name)],
    );
    let old_proxy = bed.run_with("proxy", QUICK_STOP, &proxy_image, &[], &[]);
    bed.wait_until_serving("app", &page("app-1"), START_TIMEOUT);
    bed.wait_until_serving("proxy", &page("proxy-1"), START_TIMEOUT);
    let updater = bed.updater(&[registry.host()]);

    bed.build_broken(&proxy_image, Broken::FailingHealthcheck, "proxy-broken");
    push(&proxy_image);
    bed.build_app(&app_image, "app-2");
    let app_v2 = push(&app_image);
    let update = updater.update(&[]);

    update.assert_exit(1);
    assert_eq!(update.result("proxy").outcome, "rolled_back", "{update:#?}");
    let app = update.result("app");
    assert_eq!(app.outcome, "skipped", "{update:#?}");
    assert!(
        app.detail.contains(&proxy_name),
        "the app's result names the dependency that failed: {app:?}"
    );
    assert_eq!(bed.container_id("proxy"), old_proxy);
    assert_eq!(bed.container_id("app"), old_app, "the app was not touched");
    assert!(bed.serves("app").contains(&page("app-1")));
    assert!(bed.serves("proxy").contains(&page("proxy-1")));

    // Skipped for that cycle only: with the proxy's digest quarantined, the next cycle updates
    // the app on the proxy it has.
    let next = updater.update(&[]);
    next.assert_exit(0);
    let app = next.result("app");
    assert_eq!(app.outcome, "updated", "{next:#?}");
    assert_eq!(app.to_digest.as_ref(), Some(&app_v2), "{next:#?}");
    assert!(bed.serves("app").contains(&page("app-2")));
}

#[test]
fn sigterm_during_the_health_gate_rolls_back_without_quarantine_and_exits_0() {
    let bed = TestBed::new("flow-sigterm-in-gate");
    let registry = Registry::start();
    let image = registry.image("app", "stable");
    let old = bed.web_on_v1(&image, &[]).id;
    let updater = bed.updater(&[registry.host()]);
    let mut daemon = updater.spawn_run();
    daemon.wait_for_log("cycle finished", 1, Duration::from_secs(60));

    // Healthy only long after the health timeout: the daemon is in the gate when stopped.
    bed.build_slow_app(&image, "2", 600);
    let v2 = push(&image);
    bed.wait_for_replacement("web", &old, Duration::from_secs(60));
    let (code, took) = daemon.terminate(Duration::from_secs(15));

    println!(
        "run exited {:.2} s after SIGTERM in the health gate",
        took.as_secs_f64()
    );
    assert_eq!(code, 0, "stderr:\n{}", daemon.stderr());
    assert_eq!(
        bed.container_id("web"),
        old,
        "the replacement in its gate is rolled back; stderr:\n{}",
        daemon.stderr()
    );
    assert!(bed.is_running("web"));
    assert!(bed.serves("web").contains(&page("1")));
    assert_eq!(bed.container_names(), [bed.name("web")]);
    let (_, rows) = updater.history("web");
    let newest = rows
        .first()
        .unwrap_or_else(|| panic!("no history; stderr:\n{}", daemon.stderr()));
    assert_eq!(
        (newest.outcome.as_str(), newest.to_digest.as_str()),
        ("rolled_back", v2.as_str()),
        "{rows:#?}"
    );
    // Not the image's fault: the digest is not quarantined and the next cycle tries it again.
    let dry_run = updater.dry_run(&[]);
    assert!(dry_run.plan.waiting.is_empty(), "{dry_run:#?}");
    let planned: Vec<(&str, Option<&str>)> = dry_run
        .plan
        .steps
        .iter()
        .map(|step| (step.container.as_str(), step.to_digest.as_deref()))
        .collect();
    assert_eq!(
        planned,
        [(bed.name("web").as_str(), Some(v2.as_str()))],
        "{dry_run:#?}"
    );
}

#[test]
fn when_the_app_update_is_rolled_back_its_sidecar_still_reaches_the_restored_app() {
    let bed = TestBed::new("flow-sidecar-rollback");
    let registry = Registry::start();
    let app_image = registry.image("app", "stable");
    let sidecar_image = registry.image("sidecar", "stable");
    bed.build_app(&app_image, "app-1");
    push(&app_image);
    bed.build_dockerfile(&sidecar_image, SIDECAR);
    push(&sidecar_image);
    let old_app = bed.run_with("app", QUICK_STOP, &app_image, &[], &[]);
    let shared = format!("container:{}", bed.name("app"));
    let mut sidecar_options = QUICK_STOP.to_vec();
    sidecar_options.extend(["--network", &shared]);
    bed.run_with("sidecar", &sidecar_options, &sidecar_image, &[], &[]);
    bed.wait_until_serving("sidecar", &page("app-1"), START_TIMEOUT);
    let updater = bed.updater(&[registry.host()]);

    bed.build_broken(&app_image, Broken::ExitsAtOnce, "app-broken");
    push(&app_image);
    let update = updater.update(&[]);

    update.assert_exit(1);
    assert_eq!(update.result("app").outcome, "rolled_back", "{update:#?}");
    assert_eq!(bed.container_id("app"), old_app);
    assert!(bed.serves("app").contains(&page("app-1")));
    // The old app was stopped and started again, which gives it a new network namespace; the
    // sidecar must be in that one, not in the namespace that died with the stop.
    let sidecar = update.result("sidecar");
    assert_eq!(sidecar.outcome, "skipped", "{update:#?}");
    assert!(
        sidecar.detail.contains("restarted to rejoin"),
        "the sidecar's result says it was restarted: {sidecar:?}"
    );
    assert!(bed.is_running("sidecar"), "{update:#?}");
    let served = bed.try_serves("sidecar");
    assert!(
        served
            .as_deref()
            .is_some_and(|page_served| page_served.contains(&page("app-1"))),
        "the sidecar should reach the restored app on 127.0.0.1; it got {served:?}; \
         {update:#?}"
    );
}

#[test]
fn updating_an_app_by_name_takes_its_sidecar_along() {
    let bed = TestBed::new("flow-sidecar-by-name");
    let registry = Registry::start();
    let app_image = registry.image("app", "stable");
    let sidecar_image = registry.image("sidecar", "stable");
    bed.build_app(&app_image, "app-1");
    push(&app_image);
    bed.build_dockerfile(&sidecar_image, SIDECAR);
    push(&sidecar_image);
    bed.run_with("app", QUICK_STOP, &app_image, &[], &[]);
    let shared = format!("container:{}", bed.name("app"));
    let mut sidecar_options = QUICK_STOP.to_vec();
    sidecar_options.extend(["--network", &shared]);
    bed.run_with("sidecar", &sidecar_options, &sidecar_image, &[], &[]);
    // On the same image, so it has the same update available, but not named.
    let other = bed.run_with("other", QUICK_STOP, &app_image, &[], &[]);
    bed.wait_until_serving("sidecar", &page("app-1"), START_TIMEOUT);
    let updater = bed.updater(&[registry.host()]);
    bed.build_app(&app_image, "app-2");
    push(&app_image);

    // `update NAME`: "only these containers (and the sharers of their namespaces)".
    let update = updater.update(&["app"]);

    update.assert_exit(0);
    assert_eq!(update.result("app").outcome, "updated", "{update:#?}");
    assert_eq!(update.result("sidecar").outcome, "updated", "{update:#?}");
    let served = bed.try_serves("sidecar");
    assert!(
        served
            .as_deref()
            .is_some_and(|page_served| page_served.contains(&page("app-2"))),
        "the sidecar should reach the new app on 127.0.0.1; it got {served:?}; {update:#?}"
    );
    assert_eq!(update.report.results.len(), 2, "{update:#?}");
    assert_eq!(bed.container_id("other"), other, "only the named app moves");
}

#[test]
fn rollback_of_an_app_takes_its_sidecar_along_to_the_restored_app() {
    let bed = TestBed::new("flow-sidecar-manual-rollback");
    let registry = Registry::start();
    let app_image = registry.image("app", "stable");
    let sidecar_image = registry.image("sidecar", "stable");
    bed.build_app(&app_image, "app-1");
    push(&app_image);
    bed.build_dockerfile(&sidecar_image, SIDECAR);
    push(&sidecar_image);
    bed.run_with("app", QUICK_STOP, &app_image, &[], &[]);
    let shared = format!("container:{}", bed.name("app"));
    let mut sidecar_options = QUICK_STOP.to_vec();
    sidecar_options.extend(["--network", &shared]);
    bed.run_with("sidecar", &sidecar_options, &sidecar_image, &[], &[]);
    bed.wait_until_serving("sidecar", &page("app-1"), START_TIMEOUT);
    let updater = bed.updater(&[registry.host()]);
    bed.build_app(&app_image, "app-2");
    push(&app_image);
    updater.update(&[]).assert_exit(0);
    assert!(
        bed.serves("sidecar").contains(&page("app-2")),
        "precondition"
    );

    let rollback = updater.rollback("app");

    assert_eq!(rollback.code, 0, "{rollback:#?}");
    assert!(bed.serves("app").contains(&page("app-1")), "{rollback:#?}");
    assert!(
        rollback
            .stdout
            .contains(&format!("{}: recreated", bed.name("sidecar"))),
        "rollback says the sidecar moved along; {rollback:#?}"
    );
    let app = bed.container_id("app");
    let mode = bed.network_mode("sidecar");
    assert!(
        mode == format!("container:{app}") || mode == format!("container:{}", bed.name("app")),
        "the sidecar's NetworkMode should name the restored app ({app:.12}): {mode}; \
         {rollback:#?}"
    );
    let served = bed.try_serves("sidecar");
    assert!(
        served
            .as_deref()
            .is_some_and(|page_served| page_served.contains(&page("app-1"))),
        "the sidecar should reach the restored app on 127.0.0.1; it got {served:?}; \
         {rollback:#?}"
    );
}

/// A process that stops on SIGUSR1 only, and says so in `/out/signal`: SIGTERM, the image's
/// stop signal, would be ignored (it is PID 1 without a handler for it). `$VERSION` tells the
/// two builds apart.
fn usr1_only(version: &str) -> String {
    format!(
        r#"FROM scratch
COPY busybox /bin/busybox
ENV VERSION={version}
ENTRYPOINT ["/bin/busybox", "sh", "-c", "trap 'echo $VERSION > /out/signal; exit 0' USR1; while true; do /bin/busybox sleep 1; done"]
"#
    )
}

#[test]
fn the_watchtower_stop_signal_label_is_what_stops_the_old_container() {
    let bed = TestBed::new("flow-stop-signal");
    let registry = Registry::start();
    let image = registry.image("usr1", "stable");
    bed.build_dockerfile(&image, &usr1_only("one"));
    push(&image);
    let out = bed.dir().join("out");
    std::fs::create_dir_all(&out).expect("create the signal directory");
    let mount = format!("{}:/out", out.display());
    let old = bed.run_with(
        "usr1",
        &["--stop-timeout", "30", "-v", &mount],
        &image,
        &[],
        &[("com.centurylinklabs.watchtower.stop-signal", "SIGUSR1")],
    );
    let updater = bed.updater(&[registry.host()]);
    bed.build_dockerfile(&image, &usr1_only("two"));
    push(&image);

    let update = updater.update(&[]);

    update.assert_exit(0);
    assert_eq!(update.result("usr1").outcome, "updated", "{update:#?}");
    let signalled = std::fs::read_to_string(out.join("signal")).unwrap_or_default();
    assert_eq!(
        signalled.trim(),
        "one",
        "the old container should have been stopped by SIGUSR1; {update:#?}"
    );
    assert_ne!(bed.container_id("usr1"), old, "replaced");
    assert!(bed.is_running("usr1"), "the new container runs");
}

/// Issue #13: a stop timeout read from the engine met the clock unchecked, and `i64::MAX`
/// seconds (which the Engine API accepts) panicked the cycle mid-recreate.
#[test]
fn a_stop_signal_label_with_the_largest_stop_timeout_still_updates_the_container() {
    let bed = TestBed::new("flow-stop-timeout-max");
    let registry = Registry::start();
    let image = registry.image("usr1", "stable");
    bed.build_dockerfile(&image, &usr1_only("one"));
    push(&image);
    let out = bed.dir().join("out");
    std::fs::create_dir_all(&out).expect("create the signal directory");
    let mount = format!("{}:/out", out.display());
    let old = bed.run_with_stop_timeout(
        "usr1",
        &image,
        i64::MAX,
        &[&mount],
        &[("tidewatch.stop-signal", "SIGUSR1")],
    );
    let updater = bed.updater(&[registry.host()]);
    bed.build_dockerfile(&image, &usr1_only("two"));
    push(&image);

    let update = updater.update(&[]);

    update.assert_exit(0);
    assert_eq!(update.result("usr1").outcome, "updated", "{update:#?}");
    let signalled = std::fs::read_to_string(out.join("signal")).unwrap_or_default();
    assert_eq!(signalled.trim(), "one", "stopped by SIGUSR1; {update:#?}");
    assert_ne!(bed.container_id("usr1"), old, "replaced");
    assert!(bed.is_running("usr1"), "the new container runs");
}
