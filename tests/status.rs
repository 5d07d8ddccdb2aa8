//! `tidewatch status`: what the daemon is doing, asked of the running daemon's API, and of the
//! state directory once the daemon has stopped (issue 22).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::Value;

use crate::support::daemon_api::start_daemon;
use crate::support::settings;
use crate::support::{
    docker, push, tidewatch, Broken, Outcome, Registry, TestBed, Updater, QUICK_STOP,
};

/// How long the daemon may take to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Makes the API's secret files private, as the README says to, so that `status` prints nothing
/// on stderr but what it means to say.
fn private_secrets(updater: &Updater) {
    let dir = updater
        .config()
        .parent()
        .expect("the agent.toml has a directory");
    for file in ["api.token", "hook.secret"] {
        let path = dir.join(file);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|error| panic!("cannot chmod {}: {error}", path.display()));
    }
}

/// `tidewatch -c agent.toml status ARGS`.
fn status(updater: &Updater, args: &[&str]) -> Outcome {
    let config = updater.config().to_string_lossy().into_owned();
    let mut all = vec!["-c", config.as_str(), "status"];
    all.extend_from_slice(args);
    tidewatch(all)
}

/// `status --json`, parsed.
fn status_json(updater: &Updater) -> (Outcome, Value) {
    let outcome = status(updater, &["--json"]);
    let json = serde_json::from_str(&outcome.stdout)
        .unwrap_or_else(|error| panic!("status --json is not JSON ({error}): {outcome:#?}"));
    (outcome, json)
}

#[test]
fn status_tells_the_last_cycle_from_the_running_daemon_and_from_the_state_dir_once_it_stopped() {
    let bed = TestBed::new("status-daemon");
    let registry = Registry::start();
    let image = registry.image("app", "stable");
    bed.web_on_v1(&image, &[]);
    let updater = bed.updater(&[registry.host()]);
    settings::set_interval(&updater, "1h");
    let api = settings::api(&updater);
    private_secrets(&updater);
    let web = updater.full("web");

    // The start-up cycle tries a broken image and rolls web back: a failed cycle.
    bed.build_broken(&image, Broken::ExitsAtOnce, "broken");
    let bad = push(&image);
    let mut daemon = start_daemon(&updater, &api);

    let (running, json) = status_json(&updater);
    assert_eq!(running.code, 1, "the last cycle rolled back; {running:#?}");
    assert_eq!(json["source"], "daemon", "{json:#}");
    assert_eq!(json["api"], api.host.as_str(), "{json:#}");
    assert_eq!(json["last_cycle"]["succeeded"], false, "{json:#}");
    assert_eq!(json["last_cycle"]["counts"]["rolled_back"], 1, "{json:#}");
    assert_eq!(json["next_cycle"]["reason_kind"], "interval", "{json:#}");
    assert_eq!(
        json["next_cycle"]["reason"], "every 1h (interval)",
        "{json:#}"
    );
    assert_eq!(json["held"][0]["container"], web.as_str(), "{json:#}");
    assert_eq!(json["held"][0]["to_digest"], bad.as_str(), "{json:#}");
    assert_eq!(json["held"][0]["reason_kind"], "quarantined", "{json:#}");
    assert_eq!(json["history"][0]["container"], web.as_str(), "{json:#}");
    assert_eq!(json["history"][0]["outcome"], "rolled_back", "{json:#}");
    assert_eq!(json["unknown"], serde_json::json!([]), "{json:#}");
    let text = status(&updater, &[]);
    eprintln!(
        "status after a rollback:\n{}\nstatus --json:\n{}",
        text.stdout, running.stdout
    );
    assert_eq!(text.code, 1, "{text:#?}");
    assert!(
        text.stdout
            .contains(&format!("source:      the daemon at {}", api.host)),
        "{text:#?}"
    );
    assert!(
        text.stdout.contains("FAILED; 0 updated, 1 rolled back"),
        "{text:#?}"
    );
    assert!(text.stdout.contains("every 1h (interval)"), "{text:#?}");
    assert_eq!(text.stderr, "", "{text:#?}");

    let (code, _) = daemon.terminate(STOP_TIMEOUT);
    assert_eq!(code, 0, "stderr:\n{}", daemon.stderr());
    let (stopped, after) = status_json(&updater);
    assert_eq!(
        stopped.code, 1,
        "the last cycle is remembered; {stopped:#?}"
    );
    assert_eq!(after["source"], "state_dir", "{after:#}");
    assert!(after["api_error"].is_string(), "{after:#}");
    assert_eq!(
        stopped.stderr.lines().count(),
        1,
        "one line says the daemon did not answer; {stopped:#?}"
    );
    assert!(stopped.stderr.contains("did not answer"), "{stopped:#?}");
    assert_eq!(after["last_cycle"], json["last_cycle"], "{after:#}");
    assert_eq!(after["history"], json["history"], "{after:#}");
    assert_eq!(after["held"][0]["container"], web.as_str(), "{after:#}");
    assert_eq!(after["held"][0]["to_digest"], bad.as_str(), "{after:#}");
    assert_eq!(after["next_cycle"], Value::Null, "{after:#}");
    assert_eq!(
        after["unknown"],
        serde_json::json!(["next_cycle", "available", "errors"]),
        "{after:#}"
    );
    let text = status(&updater, &[]);
    assert!(
        text.stdout
            .contains("next cycle:  unknown without the daemon"),
        "{text:#?}"
    );

    // A good image lifts the quarantine; the next daemon's start-up cycle applies it.
    bed.build_app(&image, "3");
    push(&image);
    let mut daemon = start_daemon(&updater, &api);
    let (good, json) = status_json(&updater);
    assert_eq!(good.code, 0, "the last cycle went well; {good:#?}");
    assert_eq!(json["last_cycle"]["succeeded"], true, "{json:#}");
    assert_eq!(json["last_cycle"]["counts"]["updated"], 1, "{json:#}");
    assert_eq!(json["held"], serde_json::json!([]), "{json:#}");
    assert_eq!(json["history"][0]["outcome"], "updated", "{json:#}");
    let text = status(&updater, &[]);
    eprintln!("status against the running daemon:\n{}", text.stdout);
    let (code, _) = daemon.terminate(STOP_TIMEOUT);
    assert_eq!(code, 0, "stderr:\n{}", daemon.stderr());
    let text = status(&updater, &[]);
    assert_eq!(text.code, 0, "{text:#?}");
    eprintln!("status once the daemon stopped:\n{}", text.stdout);
}

#[test]
fn status_with_a_bad_configuration_exits_2() {
    let bed = TestBed::new("status-bad-config");
    let config = bed.dir().join("bad.toml");
    std::fs::write(&config, "[agent]\nintervall = \"5m\"\n").unwrap();
    let outcome = tidewatch(["-c", &config.to_string_lossy(), "status"]);
    assert_eq!(outcome.code, 2, "{outcome:#?}");
    assert!(outcome.stderr.contains("intervall"), "{outcome:#?}");
}

/// A busybox image with a shell, for a label hook; it only sleeps.
const SHELL_IMAGE: &str = r#"FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENTRYPOINT ["/bin/busybox", "sleep", "86400"]
"#;

#[test]
fn a_restarted_daemon_reports_its_previous_run_s_last_cycle_until_its_first_cycle_ends() {
    let bed = TestBed::new("status-restart");
    let registry = Registry::start();
    let image = registry.image("gate", "stable");
    bed.build_dockerfile(&image, SHELL_IMAGE);
    push(&image);
    // With hooks on, its pre-check hook holds a cycle until /go exists: the test decides
    // when the restarted daemon's first cycle may end.
    bed.run_with(
        "gate",
        QUICK_STOP,
        &image,
        &[],
        &[
            (
                "tidewatch.hook.pre-check",
                "until [ -e /go ]; do sleep 0.1; done",
            ),
            ("tidewatch.hook.timeout", "2m"),
        ],
    );
    let updater = bed.updater(&[registry.host()]);
    settings::set_interval(&updater, "1h");
    let api = settings::api(&updater);
    private_secrets(&updater);

    let mut first = start_daemon(&updater, &api);
    let (_, before) = status_json(&updater);
    let (code, _) = first.terminate(STOP_TIMEOUT);
    assert_eq!(code, 0, "stderr:\n{}", first.stderr());
    assert!(before["last_cycle"].is_object(), "{before:#}");

    let config = fs::read_to_string(updater.config()).expect("agent.toml");
    let hooked = config.replacen(
        "health_timeout = \"20s\"\n",
        "health_timeout = \"20s\"\nlifecycle_hooks = true\n",
        1,
    );
    assert_ne!(
        hooked, config,
        "the [update] table is where the test expects it"
    );
    fs::write(updater.config(), hooked).expect("agent.toml");
    let mut second = updater.spawn_run();
    // Logged once the daemon has read the state store, before its first cycle.
    second.wait_for_log("tidewatch running", 1, Duration::from_secs(60));

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let during = loop {
        let (outcome, json) = status_json(&updater);
        if json["source"] == "daemon" {
            break json;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the restarted daemon's API does not answer: {outcome:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        !second.stderr().contains("cycle finished"),
        "the first cycle is still held by the hook; stderr:\n{}",
        second.stderr()
    );
    assert_eq!(
        during["last_cycle"],
        before["last_cycle"],
        "the previous run's last cycle, before this run's first one ends: {during:#}\nstderr:\n{}",
        second.stderr()
    );
    assert_eq!(during["history"], before["history"], "{during:#}");

    docker(&["exec", &bed.name("gate"), "touch", "/go"]);
    second.wait_for_log("cycle finished", 1, Duration::from_secs(60));
    let (_, after) = status_json(&updater);
    assert_ne!(
        after["last_cycle"]["started_at"], before["last_cycle"]["started_at"],
        "this run's cycle replaces it: {after:#}"
    );
    let (code, _) = second.terminate(STOP_TIMEOUT);
    assert_eq!(code, 0, "stderr:\n{}", second.stderr());
}
