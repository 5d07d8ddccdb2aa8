//! `[[notify]] kind = "mqtt"` against a real mosquitto: retained state that a subscriber
//! connecting afterwards receives, Home Assistant discovery, the daemon's reconnection after a
//! broker restart, and the install command with and without its token.

use std::time::Duration;

use serde_json::Value;

use crate::support::mqtt::{Broker, Message};
use crate::support::settings;
use crate::support::{page, push, Registry, TestBed, Updater, QUICK_STOP, START_TIMEOUT};

/// A bound for the daemon's cycles and reconnections on a slow machine, not a measure.
const DAEMON_TIMEOUT: Duration = Duration::from_secs(90);

fn json(message: &Message) -> Value {
    serde_json::from_str(&message.payload)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {message:?}"))
}

/// `sha256:` and 12 hex digits, as the notifier shows a digest for a version.
fn short(digest: &str) -> String {
    digest.chars().take("sha256:".len() + 12).collect()
}

/// A `[[notify]]` table for `broker`, with discovery, and `extra` lines.
fn notify_mqtt(broker: &Broker, prefix: &str, extra: &str) -> String {
    format!(
        "[[notify]]\nkind = \"mqtt\"\nurl = {:?}\ntopic_prefix = {prefix:?}\n\
         homeassistant_discovery = true\n{extra}",
        broker.url()
    )
}

/// Checks the keys Home Assistant's MQTT `update` platform needs and the ones tidewatch must
/// leave out, and returns the state topic.
fn assert_update_discovery(config: &Value, container: &str) -> String {
    for key in [
        "state_topic",
        "value_template",
        "latest_version_topic",
        "latest_version_template",
        "unique_id",
        "name",
    ] {
        assert!(config[key].is_string(), "no {key}: {config:#}");
    }
    assert_eq!(config["name"], container, "{config:#}");
    assert!(
        config["device"]["identifiers"]
            .as_array()
            .is_some_and(|ids| !ids.is_empty()),
        "{config:#}"
    );
    assert!(config["device"]["name"].is_string(), "{config:#}");
    assert!(config["device"]["sw_version"].is_string(), "{config:#}");
    assert!(config.get("device_class").is_none(), "{config:#}");
    let state = config["state_topic"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        state.ends_with(&format!("/{container}/state")),
        "{config:#}"
    );
    assert_eq!(config["latest_version_topic"], state.as_str());
    state
}

#[test]
fn an_update_leaves_retained_state_and_discovery_that_a_later_subscriber_receives() {
    let bed = TestBed::new("mqtt-update");
    let registry = Registry::start();
    let broker = Broker::anonymous();
    let image = registry.image("app", "stable");
    bed.web_on_v1(&image, &[]);
    let updater = bed.updater(&[registry.host()]);
    settings::append(&updater, &notify_mqtt(&broker, bed.id(), ""));
    bed.build_app(&image, "2");
    let v2 = push(&image);

    let update = updater.update(&[]);

    update.assert_exit(0);
    let web = bed.name("web");
    // Subscribed to only now that `update` has exited: what arrives is what the broker kept.
    let discovery = broker.retained(&format!("homeassistant/update/+/{web}/config"));
    let config = json(&discovery);
    let state_topic = assert_update_discovery(&config, &web);
    assert!(
        config.get("command_topic").is_none() && config.get("payload_install").is_none(),
        "install is off by default: {config:#}"
    );
    assert!(
        config.get("availability_topic").is_none(),
        "a one-shot update has no availability to keep: {config:#}"
    );
    assert!(state_topic.starts_with(&format!("{}/", bed.id())));
    let state = json(&broker.retained(&state_topic));
    assert_eq!(state["status"], "up_to_date", "{state:#}");
    assert_eq!(state["current_digest"], v2.as_str(), "{state:#}");
    assert_eq!(state["available_digest"], v2.as_str(), "{state:#}");
    assert_eq!(state["current_version"], short(&v2).as_str(), "{state:#}");
    assert_eq!(state["last_result"], "updated", "{state:#}");
    assert!(state["checked_at"].is_string(), "{state:#}");
    assert!(state.get("changes_url").is_some(), "{state:#}");
}

#[test]
fn a_check_through_a_broker_login_publishes_the_available_update() {
    let bed = TestBed::new("mqtt-check");
    let registry = Registry::start();
    let broker = Broker::with_login("tidewatch", "broker-secret");
    let image = registry.image("app", "stable");
    bed.build_app(&image, "1");
    let v1 = push(&image);
    bed.run_with("web", QUICK_STOP, &image, &[], &[]);
    let updater = bed.updater(&[registry.host()]);
    let password = broker.write_file("mqtt.password", "broker-secret\n");
    settings::append(
        &updater,
        &notify_mqtt(
            &broker,
            "tw",
            &format!("username = \"tidewatch\"\npassword_file = {password:?}\n"),
        ),
    );
    bed.build_app(&image, "2");
    let v2 = push(&image);

    let check = crate::support::tidewatch([
        "-c",
        &updater.config().to_string_lossy(),
        "check",
        &bed.name("web"),
    ]);

    assert_eq!(check.code, 0, "{check:?}");
    let state = json(&broker.retained(&format!("tw/+/{}/state", bed.name("web"))));
    assert_eq!(state["status"], "update_available", "{state:#}");
    assert_eq!(state["current_version"], short(&v1).as_str(), "{state:#}");
    assert_eq!(state["available_version"], short(&v2).as_str(), "{state:#}");
    assert_eq!(state["last_result"], Value::Null, "{state:#}");
    assert!(
        !check.stderr.contains("broker-secret"),
        "the password is never logged: {}",
        check.stderr
    );
}

#[test]
fn a_broker_that_refuses_the_login_does_not_fail_the_update_nor_see_the_password_logged() {
    let bed = TestBed::new("mqtt-refused");
    let registry = Registry::start();
    let broker = Broker::with_login("tidewatch", "the-right-one");
    let image = registry.image("app", "stable");
    bed.web_on_v1(&image, &[]);
    let updater = bed.updater(&[registry.host()]);
    let password = broker.write_file("mqtt.password", "a-wrong-one\n");
    settings::append(
        &updater,
        &notify_mqtt(
            &broker,
            "tw",
            &format!("username = \"tidewatch\"\npassword_file = {password:?}\n"),
        ),
    );
    bed.build_app(&image, "2");
    push(&image);

    let update = updater.update(&[]);

    update.assert_exit(0);
    assert!(bed.serves("web").contains(&page("2")));
    let stderr = &update.outcome.stderr;
    assert!(stderr.contains("MQTT: publishing the state"), "{stderr}");
    assert!(!stderr.contains("a-wrong-one"), "{stderr}");
}

#[test]
fn an_mqtts_broker_is_trusted_through_the_system_trust_store_and_not_otherwise() {
    use crate::support::{tidewatch_with_env, TestCa};

    let bed = TestBed::new("mqtt-tls");
    let registry = Registry::start();
    let ca = TestCa::new("tidewatch mqtt test CA");
    let broker = Broker::over_tls(&ca);
    let image = registry.image("app", "stable");
    bed.build_app(&image, "1");
    let v1 = push(&image);
    bed.run_with("web", QUICK_STOP, &image, &[], &[]);
    let updater = bed.updater(&[registry.host()]);
    settings::append(&updater, &notify_mqtt(&broker, "tw", ""));
    let config = updater.config().to_string_lossy().into_owned();
    let web = bed.name("web");
    let check = |env: &[(std::ffi::OsString, std::ffi::OsString)]| {
        tidewatch_with_env(["-c", config.as_str(), "check", web.as_str()], env)
    };
    let state_topic = format!("tw/+/{web}/state");

    // The test CA is in no trust store: the broker's certificate is refused, and the check
    // itself still succeeds.
    let untrusted = check(&[]);
    assert_eq!(untrusted.code, 0, "{untrusted:?}");
    assert!(
        untrusted.stderr.contains("MQTT") && untrusted.stderr.contains("certificate"),
        "{}",
        untrusted.stderr
    );
    broker.assert_nothing_retained(&state_topic, Duration::from_secs(2));

    // The system trust store, as `SSL_CERT_FILE` extends it (what `update-ca-certificates`
    // does for good): the state arrives over TLS.
    let ca_file = broker
        .ca_file()
        .expect("a TLS broker")
        .as_os_str()
        .to_owned();
    let trusted = check(&[("SSL_CERT_FILE".into(), ca_file)]);
    assert_eq!(trusted.code, 0, "{trusted:?}");
    let state = json(&broker.retained(&state_topic));
    assert_eq!(state["status"], "up_to_date", "{state:#}");
    assert_eq!(state["current_version"], short(&v1).as_str(), "{state:#}");
}

/// `tidewatch run` with `updater`, after its start-up cycle.
fn start(updater: &Updater) -> crate::support::Daemon {
    let mut daemon = updater.spawn_run();
    daemon.wait_for_log("cycle finished", 1, DAEMON_TIMEOUT);
    daemon
}

#[test]
fn the_daemon_is_online_and_publishes_its_state_again_after_a_broker_restart() {
    let bed = TestBed::new("mqtt-restart");
    let registry = Registry::start();
    let mut broker = Broker::anonymous();
    let image = registry.image("app", "stable");
    bed.build_app(&image, "1");
    let v1 = push(&image);
    bed.run_with("web", QUICK_STOP, &image, &[], &[]);
    let updater = bed.updater(&[registry.host()]);
    settings::set_interval(&updater, "1h");
    settings::append(&updater, &notify_mqtt(&broker, "tw", ""));
    let mut daemon = start(&updater);
    let web = bed.name("web");
    let config = json(&broker.first(
        &format!("homeassistant/update/+/{web}/config"),
        DAEMON_TIMEOUT,
    ));
    let state_topic = assert_update_discovery(&config, &web);
    let availability = config["availability_topic"]
        .as_str()
        .unwrap_or_else(|| panic!("the daemon's discovery has availability: {config:#}"))
        .to_owned();
    assert_eq!(config["payload_available"], "online");
    assert_eq!(
        broker.first(&availability, DAEMON_TIMEOUT).payload,
        "online"
    );

    broker.restart();

    // A fresh broker without persistence has nothing retained until the daemon reconnects and
    // publishes again; the subscriber waits (bounded) for that.
    daemon.wait_for_log("MQTT: connected", 2, DAEMON_TIMEOUT);
    let state = json(&broker.first(&state_topic, DAEMON_TIMEOUT));
    assert_eq!(state["current_digest"], v1.as_str(), "{state:#}");
    assert_eq!(broker.retained(&availability).payload, "online");
    assert!(
        broker
            .retained(&format!("homeassistant/update/+/{web}/config"))
            .retained
    );

    let (code, _) = daemon.terminate(Duration::from_secs(15));
    assert_eq!(code, 0, "stderr:\n{}", daemon.stderr());
    assert_eq!(
        broker.retained(&availability).payload,
        "offline",
        "a daemon that stops says so"
    );
}

#[test]
fn an_install_command_updates_its_container_only_with_the_token() {
    let bed = TestBed::new("mqtt-install");
    let registry = Registry::start();
    let broker = Broker::anonymous();
    let image = registry.image("app", "stable");
    bed.build_app(&image, "1");
    push(&image);
    bed.run_with("web", QUICK_STOP, &image, &[], &[]);
    let other = bed.run_with("other", QUICK_STOP, &image, &[], &[]);
    bed.wait_until_serving("web", &page("1"), START_TIMEOUT);
    let updater = bed.updater(&[registry.host()]);
    settings::set_interval(&updater, "1h");
    let token = broker.write_file("install.token", "press-to-update\n");
    settings::append(
        &updater,
        &notify_mqtt(&broker, "tw", &format!("install_token_file = {token:?}\n")),
    );
    let mut daemon = start(&updater);
    let web = bed.name("web");
    let config = json(&broker.first(
        &format!("homeassistant/update/+/{web}/config"),
        DAEMON_TIMEOUT,
    ));
    let command_topic = config["command_topic"]
        .as_str()
        .unwrap_or_else(|| panic!("install is offered: {config:#}"))
        .to_owned();
    assert_eq!(config["payload_install"], "press-to-update");
    let old_web = bed.container_id("web");
    bed.build_app(&image, "2");
    push(&image);

    broker.publish(&command_topic, "not-the-token");
    daemon.wait_for_log("MQTT install refused", 1, DAEMON_TIMEOUT);
    // The right token for a container the agent never published names nothing.
    let unknown = command_topic.replacen(&format!("/{web}/"), "/not-a-container/", 1);
    assert_ne!(unknown, command_topic);
    broker.publish(&unknown, "press-to-update");
    daemon.wait_for_log("MQTT install refused", 2, DAEMON_TIMEOUT);
    broker.publish(&command_topic, "press-to-update");
    daemon.wait_for_log("cycle finished", 2, DAEMON_TIMEOUT);

    let stderr = daemon.stderr();
    assert_eq!(
        stderr.matches("update triggered through MQTT").count(),
        1,
        "the wrong payload queued nothing: {stderr}"
    );
    assert!(
        !stderr.contains("press-to-update"),
        "the token is never logged"
    );
    assert!(!stderr.contains("not-the-token"), "nor a payload");
    assert_ne!(bed.container_id("web"), old_web, "web was updated");
    assert!(bed.serves("web").contains(&page("2")));
    assert_eq!(
        bed.container_id("other"),
        other,
        "only the named container moves"
    );
    let (code, _) = daemon.terminate(Duration::from_secs(15));
    assert_eq!(code, 0, "stderr:\n{}", daemon.stderr());
}

#[test]
fn version_labels_reach_home_assistant_as_versions_and_a_release_link() {
    let bed = TestBed::new("mqtt-notes");
    let registry = Registry::start();
    let broker = Broker::anonymous();
    let image = registry.image("app", "stable");
    let labels = |version: &'static str, revision: &'static str| {
        [
            (
                "org.opencontainers.image.source",
                "https://github.com/acme/app",
            ),
            ("org.opencontainers.image.version", version),
            ("org.opencontainers.image.revision", revision),
        ]
    };
    bed.build_app_with_labels(&image, "1", &labels("1.0.0", "aaaa111"));
    push(&image);
    bed.run_with("web", QUICK_STOP, &image, &[], &[]);
    bed.wait_until_serving("web", &page("1"), START_TIMEOUT);
    let updater = bed.updater(&[registry.host()]);
    settings::append(&updater, &notify_mqtt(&broker, bed.id(), ""));
    bed.build_app_with_labels(&image, "2", &labels("2.0.0", "bbbb222"));
    push(&image);
    let web = bed.name("web");
    let config_topic = format!("homeassistant/update/+/{web}/config");
    let link = "https://github.com/acme/app/compare/aaaa111...bbbb222";

    let check =
        crate::support::tidewatch(["-c", &updater.config().to_string_lossy(), "check", &web]);

    assert_eq!(check.code, 0, "{check:?}");
    let config = json(&broker.retained(&config_topic));
    println!("discovery payload of a pending update:\n{config:#}");
    let state_topic = assert_update_discovery(&config, &web);
    assert_eq!(config["release_url"], link, "{config:#}");
    let state = json(&broker.retained(&state_topic));
    println!("state of a pending update:\n{state:#}");
    assert_eq!(state["status"], "update_available", "{state:#}");
    assert_eq!(state["current_version"], "1.0.0", "{state:#}");
    assert_eq!(state["available_version"], "2.0.0", "{state:#}");
    assert_eq!(state["changes_url"], link, "{state:#}");

    updater.update(&[]).assert_exit(0);

    let state = json(&broker.retained(&state_topic));
    assert_eq!(state["status"], "up_to_date", "{state:#}");
    assert_eq!(state["current_version"], "2.0.0", "{state:#}");
    assert_eq!(
        state["available_version"], "2.0.0",
        "nothing pending, so Home Assistant offers nothing: {state:#}"
    );
    assert_eq!(state["last_result"], "updated", "{state:#}");
    let config = json(&broker.retained(&config_topic));
    assert!(
        config.get("release_url").is_none(),
        "no link once nothing is pending: {config:#}"
    );
}
