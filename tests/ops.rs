//! Operating tidewatch: the daemon woken by a registry's push notification (and how long that
//! takes), the HTTP API, notifications, and the policies, windows, cooldowns and tag tracking
//! that decide what an update cycle may touch.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::daemon_api::{
    call, notify_push, parse_status, start_daemon, start_daemon_on, status_row,
};
use crate::support::http;
use crate::support::objects::inspect_container;
use crate::support::receiver::{announced, Receiver};
use crate::support::settings::{self, ApiSettings};
use crate::support::smtp::SmtpServer;
use crate::support::{
    docker, page, push, tidewatch, Registry, Status, TestBed, Updater, QUICK_STOP, START_TIMEOUT,
};

/// The bound on push → serving the new version through the registry webhook. The daemon's
/// interval is an hour, so only the webhook can make it.
const WEBHOOK_LAG_BOUND: Duration = Duration::from_secs(60);
/// How long to watch for something that must not happen (a cycle, a notification).
const QUIET: Duration = Duration::from_secs(3);

/// The registry configuration that notifies tidewatch's webhook of every push, as the README
/// shows it, with a short backoff so that a refused notification is not held for long.
fn notifications_yaml(api: &ApiSettings) -> String {
    format!(
        "notifications:
  endpoints:
    - name: tidewatch
      url: http://{host}/v1/hooks/registry
      headers:
        Authorization: [Bearer {secret}]
      timeout: 2s
      threshold: 3
      backoff: 1s
      ignore:
        actions: [pull]
",
        host = api.host,
        secret = api.hook_secret
    )
}

#[test]
fn a_registry_push_notification_updates_the_container_within_seconds_despite_an_hour_interval() {
    let bed = TestBed::new("ops-registry-webhook");
    // The API's port must be known before the registry starts, for its notification endpoint.
    let api = settings::api_settings(bed.dir());
    let registry = Registry::start_with(&notifications_yaml(&api));
    let updater = bed.updater(&[registry.host()]);
    settings::set_interval(&updater, "1h");
    settings::enable_api(&updater, &api);

    // The daemon runs before the first push, so that the registry's notification of v1 is
    // delivered (and found to concern no container) before web exists, not retried later.
    let mut daemon = start_daemon(&updater, &api);
    let image = registry.image("app", "stable");
    bed.build_app(&image, "1");
    push(&image);
    daemon.wait_for_log(
        "registry push: no container uses",
        1,
        Duration::from_secs(30),
    );
    bed.run_with("web", QUICK_STOP, &image, &[], &[]);
    bed.wait_until_serving("web", &page("1"), START_TIMEOUT);

    bed.build_app(&image, "2");
    push(&image);
    let lag = bed.wait_until_serving("web", &page("2"), WEBHOOK_LAG_BOUND);

    eprintln!(
        "registry webhook: push finished -> web serving v2 in {:.2} s (interval 1h)",
        lag.as_secs_f64()
    );
    // Serving v2 comes before the health gate passes and the cycle ends.
    daemon.wait_for_log("cycle finished", 2, Duration::from_secs(30));
    let log = daemon.stderr();
    assert_eq!(
        log.matches("registry push: checking the containers that use it")
            .count(),
        1,
        "the daemon says the push of v2 woke it; stderr:\n{log}"
    );
    assert_eq!(
        log.matches("cycle finished").count(),
        2,
        "the start-up cycle and the one the push triggered, no other; stderr:\n{log}"
    );
    let (code, _) = daemon.terminate(Duration::from_secs(15));
    assert_eq!(code, 0, "stderr:\n{}", daemon.stderr());
}

#[test]
fn a_generic_image_webhook_updates_the_container_and_one_without_the_secret_is_refused() {
    let bed = TestBed::new("ops-generic-webhook");
    let registry = Registry::start();
    let image = registry.image("app", "stable");
    let old = bed.web_on_v1(&image, &[]).id;
    let updater = bed.updater(&[registry.host()]);
    settings::set_interval(&updater, "1h");
    let api = settings::api(&updater);
    let mut daemon = start_daemon(&updater, &api);

    bed.build_app(&image, "2");
    push(&image);
    let body = serde_json::json!({ "image": image }).to_string();
    let refused = call(&api, "POST", "/v1/hooks/registry", None, &body);
    let wrong = call(
        &api,
        "POST",
        "/v1/hooks/registry",
        Some("not-the-secret"),
        &body,
    );
    // The API token is not the hook secret when a hook_secret_file is set.
    let token = call(&api, "POST", "/v1/hooks/registry", Some(&api.token), &body);

    assert_eq!(refused.status, 401, "{refused:?}");
    assert_eq!(wrong.status, 401, "{wrong:?}");
    assert_eq!(token.status, 401, "{token:?}");
    thread::sleep(QUIET);
    assert_eq!(bed.container_id("web"), old, "nothing changed");
    assert_eq!(
        daemon.stderr().matches("cycle finished").count(),
        1,
        "no cycle was queued; stderr:\n{}",
        daemon.stderr()
    );

    notify_push(&api, &image);
    let lag = bed.wait_until_serving("web", &page("2"), WEBHOOK_LAG_BOUND);
    eprintln!(
        "generic webhook: accepted -> web serving v2 in {:.2} s",
        lag.as_secs_f64()
    );
    daemon.wait_for_log("cycle finished", 2, Duration::from_secs(30));
    let (code, _) = daemon.terminate(Duration::from_secs(15));
    assert_eq!(code, 0, "stderr:\n{}", daemon.stderr());
}

#[test]
fn the_api_reports_health_metrics_and_status_and_runs_a_cycle_only_for_the_token() {
    let bed = TestBed::new("ops-api");
    let registry = Registry::start();
    let image = registry.image("app", "stable");
    let v1 = bed.web_on_v1(&image, &[]).digest;
    let updater = bed.updater(&[registry.host()]);
    settings::set_interval(&updater, "1h");
    let api = settings::api(&updater);
    let mut daemon = start_daemon(&updater, &api);

    let health = call(&api, "GET", "/healthz", None, "");
    assert_eq!(
        (health.status, health.body.trim()),
        (200, "ok"),
        "{health:?}"
    );
    let status = call(&api, "GET", "/v1/status", None, "");
    assert_eq!(status.status, 200, "{status:?}");
    let status = parse_status(&status);
    assert_eq!(status["last_cycle"]["succeeded"], true, "{status:#}");
    let web = status_row(&status, &bed.name("web"));
    assert_eq!(web["image"], image.as_str(), "{status:#}");
    assert_eq!(web["status"], "up_to_date", "{status:#}");
    assert_eq!(web["current_digest"], v1.as_str(), "{status:#}");

    bed.build_app(&image, "2");
    push(&image);
    let refused = call(&api, "POST", "/v1/update", None, "");
    let wrong = call(&api, "POST", "/v1/update", Some("not-the-token"), "");
    assert_eq!(refused.status, 401, "{refused:?}");
    assert_eq!(wrong.status, 401, "{wrong:?}");
    thread::sleep(QUIET);
    assert!(bed.serves("web").contains(&page("1")), "nothing changed");
    assert_eq!(
        daemon.stderr().matches("cycle finished").count(),
        1,
        "no cycle was queued; stderr:\n{}",
        daemon.stderr()
    );

    let accepted = call(&api, "POST", "/v1/update", Some(&api.token), "");
    assert_eq!(accepted.status, 202, "{accepted:?}");
    daemon.wait_for_log("cycle finished", 2, Duration::from_secs(60));
    bed.wait_until_serving("web", &page("2"), Duration::from_secs(10));
    let metrics = call(&api, "GET", "/metrics", None, "");
    assert_eq!(metrics.status, 200, "{metrics:?}");
    assert!(
        metrics
            .body
            .contains("tidewatch_updates_total{outcome=\"updated\"} 1"),
        "the triggered cycle's update is counted:\n{}",
        metrics.body
    );
    let (code, _) = daemon.terminate(Duration::from_secs(15));
    assert_eq!(code, 0, "stderr:\n{}", daemon.stderr());
}

#[test]
fn after_a_cycle_that_updated_web_v1_status_shows_it_up_to_date_on_the_new_digest() {
    let bed = TestBed::new("ops-status-after-update");
    let (registry, updater, _, v2) = web_with_v2_pushed(&bed, &[]);
    settings::set_interval(&updater, "1h");
    let api = settings::api(&updater);
    // The start-up cycle has the update to make.
    let mut daemon = start_daemon(&updater, &api);
    bed.wait_until_serving("web", &page("2"), Duration::from_secs(10));

    let status = parse_status(&call(&api, "GET", "/v1/status", None, ""));

    let web = status_row(&status, &bed.name("web"));
    assert_eq!(web["image"], registry.image("app", "stable").as_str());
    assert_eq!(
        (&web["status"], &web["current_digest"]),
        (&Value::from("up_to_date"), &Value::from(v2.as_str())),
        "web runs v2 since the cycle this status reports on; {status:#}"
    );
    let (code, _) = daemon.terminate(Duration::from_secs(15));
    assert_eq!(code, 0, "stderr:\n{}", daemon.stderr());
}

/// Until #13 the hook also took its secret as `?secret=`, which proxies and access logs keep;
/// now only the header is accepted, and the query form is told so.
#[test]
fn the_registry_hook_refuses_its_secret_in_the_url_refuses_garbage_and_ignores_pulls() {
    let bed = TestBed::new("ops-hook-forms");
    let (registry, updater, old, _) = web_with_v2_pushed(&bed, &[]);
    settings::set_interval(&updater, "1h");
    let api = settings::api(&updater);
    // The start-up cycle updates web to v2; v3 is what the hook must bring.
    let mut daemon = start_daemon(&updater, &api);
    bed.wait_until_serving("web", &page("2"), Duration::from_secs(10));
    assert_ne!(bed.container_id("web"), old);
    let image = registry.image("app", "stable");
    bed.build_app(&image, "3");
    push(&image);
    let (repo, tag) = image.rsplit_once(':').unwrap_or_default();
    let (host, repository) = repo.split_once('/').unwrap_or_default();
    let event = |action: &str| {
        serde_json::json!({ "events": [{
            "action": action,
            "target": {
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "repository": repository,
                "tag": tag,
            },
            "request": { "host": host },
        }]})
        .to_string()
    };
    let hook = "/v1/hooks/registry";
    let in_the_url = format!("{hook}?secret={}", api.hook_secret);

    let query = call(&api, "POST", &in_the_url, None, &event("push"));
    let garbage = call(&api, "POST", hook, Some(&api.hook_secret), "{not json");
    let pull = call(&api, "POST", hook, Some(&api.hook_secret), &event("pull"));
    thread::sleep(QUIET);

    assert_eq!(query.status, 400, "{query:?}");
    assert!(
        query.body.contains("Authorization: Bearer"),
        "says where the secret goes: {query:?}"
    );
    assert!(!query.body.contains(&api.hook_secret), "{query:?}");
    assert_eq!(garbage.status, 400, "{garbage:?}");
    assert_eq!(
        pull.status, 200,
        "a pull is acknowledged and ignored: {pull:?}"
    );
    assert_eq!(
        daemon.stderr().matches("cycle finished").count(),
        1,
        "none queued a cycle; stderr:\n{}",
        daemon.stderr()
    );
    assert!(bed.serves("web").contains(&page("2")));
    assert!(
        !daemon.stderr().contains(&api.hook_secret),
        "the secret is not logged"
    );

    let pushed = call(&api, "POST", hook, Some(&api.hook_secret), &event("push"));

    assert_eq!(pushed.status, 202, "{pushed:?}");
    bed.wait_until_serving("web", &page("3"), WEBHOOK_LAG_BOUND);
    daemon.wait_for_log("cycle finished", 2, Duration::from_secs(30));
    let (code, _) = daemon.terminate(Duration::from_secs(15));
    assert_eq!(code, 0, "stderr:\n{}", daemon.stderr());
}

/// #13: a web page can make its visitor's browser send a `text/plain` POST to a loopback API
/// without a preflight; without a token configured, that queued a forced cycle which went
/// through the closed maintenance window.
#[test]
fn a_cross_site_post_cannot_force_an_update_through_a_closed_window() {
    let bed = TestBed::new("ops-api-cross-site");
    let (_registry, updater, old, _) = web_with_v2_pushed(&bed, &[]);
    let closed = (now_hour() + 12) % 24;
    settings::watch(
        &updater,
        &format!("window = {{ schedule = \"0 {closed} * * *\", length = \"1m\" }}"),
    );
    settings::set_interval(&updater, "1h");
    let host = settings::open_api(&updater, "");
    let mut daemon = start_daemon_on(&updater, &host);
    let post = |headers: &[(&str, &str)]| {
        http::send(
            &host,
            "POST",
            "/v1/update?force=true",
            headers,
            b"{}",
            Duration::from_secs(10),
        )
        .unwrap_or_else(|error| panic!("POST /v1/update on {host}: {error}"))
    };

    // What fetch(..., {method: "POST", mode: "no-cors", body: "{}"}) sends from a page.
    let from_a_page = post(&[
        ("Origin", "http://attacker.example"),
        ("Content-Type", "text/plain;charset=UTF-8"),
    ]);
    let text_plain = post(&[("Content-Type", "text/plain")]);
    let json_without_token = post(&[("Content-Type", "application/json")]);
    thread::sleep(QUIET);

    assert_eq!(from_a_page.status, 403, "{from_a_page:?}");
    assert_eq!(text_plain.status, 415, "{text_plain:?}");
    assert_eq!(json_without_token.status, 403, "{json_without_token:?}");
    assert!(
        json_without_token.body.contains("[api] token_file"),
        "says what to configure: {json_without_token:?}"
    );
    assert_eq!(bed.container_id("web"), old, "the window held");
    assert_eq!(
        daemon.stderr().matches("cycle finished").count(),
        1,
        "no cycle was queued; stderr:\n{}",
        daemon.stderr()
    );

    // Unforced, a local caller may still ask for a cycle: the update waits for the window.
    let unforced = http::send(
        &host,
        "POST",
        "/v1/update",
        &[],
        b"",
        Duration::from_secs(10),
    )
    .unwrap_or_else(|error| panic!("POST /v1/update on {host}: {error}"));
    assert_eq!(unforced.status, 202, "{unforced:?}");
    daemon.wait_for_log("cycle finished", 2, Duration::from_secs(60));
    assert_eq!(bed.container_id("web"), old, "the window held");
    let (code, _) = daemon.terminate(Duration::from_secs(15));
    assert_eq!(code, 0, "stderr:\n{}", daemon.stderr());
}

/// #13: 200 half-sent requests all stayed open past 40 s, each holding a descriptor of the
/// agent's. Now each is cut off after `header_read_timeout`, and at most `max_connections`
/// are accepted at once (the rest wait in the kernel's backlog).
#[test]
fn half_sent_requests_are_cut_off_and_never_hold_more_than_max_connections() {
    const HALF_SENT: usize = 200;
    const MAX_CONNECTIONS: usize = 16;
    let bed = TestBed::new("ops-api-half-sent");
    let updater = bed.updater(&[]);
    settings::set_interval(&updater, "1h");
    let host = settings::open_api(
        &updater,
        &format!("header_read_timeout = \"1s\"\nmax_connections = {MAX_CONNECTIONS}\n"),
    );
    let mut daemon = start_daemon_on(&updater, &host);
    let before = daemon.open_descriptors();

    let started = Instant::now();
    let mut held: Vec<TcpStream> = (0..HALF_SENT)
        .map(|_| {
            let mut stream = TcpStream::connect(&host)
                .unwrap_or_else(|error| panic!("connecting to {host}: {error}"));
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .unwrap_or_else(|error| panic!("writing to {host}: {error}"));
            stream
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    let during = daemon.open_descriptors();

    // The last ones wait for HALF_SENT / MAX_CONNECTIONS rounds of the 1 s timeout.
    let deadline = started + Duration::from_secs(40);
    let mut still_open = 0;
    for stream in &mut held {
        let left = deadline.saturating_duration_since(Instant::now());
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(10))))
            .unwrap_or_else(|error| panic!("{error}"));
        let mut buffer = [0u8; 256];
        let closed = loop {
            match stream.read(&mut buffer) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(error) => {
                    break !matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    )
                }
            }
        };
        if !closed {
            still_open += 1;
        }
    }
    let all_closed = started.elapsed();
    eprintln!(
        "{HALF_SENT} half-sent requests: descriptors {before} -> {during} while held, all closed after {:.1} s",
        all_closed.as_secs_f64()
    );

    assert!(
        during <= before + MAX_CONNECTIONS + 4,
        "{during} descriptors open while {HALF_SENT} requests were held, {before} before; stderr:\n{}",
        daemon.stderr()
    );
    assert_eq!(still_open, 0, "still open 40 s after they were sent");
    let health = http::request(&host, "GET", "/healthz", &[], Duration::from_secs(5));
    assert!(
        matches!(&health, Ok(response) if response.status == 200),
        "the API answers again: {health:?}"
    );
    let (code, _) = daemon.terminate(Duration::from_secs(15));
    assert_eq!(code, 0, "stderr:\n{}", daemon.stderr());
}

#[test]
fn post_update_naming_one_container_updates_that_one_only() {
    let bed = TestBed::new("ops-api-one-container");
    let registry = Registry::start();
    let image = registry.image("app", "stable");
    bed.build_app(&image, "1");
    push(&image);
    bed.run_with("web", QUICK_STOP, &image, &[], &[]);
    let other = bed.run_with("other", QUICK_STOP, &image, &[], &[]);
    bed.wait_until_serving("web", &page("1"), START_TIMEOUT);
    bed.wait_until_serving("other", &page("1"), START_TIMEOUT);
    let updater = bed.updater(&[registry.host()]);
    settings::set_interval(&updater, "1h");
    let api = settings::api(&updater);
    let mut daemon = start_daemon(&updater, &api);
    bed.build_app(&image, "2");
    push(&image);

    let path = format!("/v1/update?container={}", bed.name("web"));
    let accepted = call(&api, "POST", &path, Some(&api.token), "");

    assert_eq!(accepted.status, 202, "{accepted:?}");
    daemon.wait_for_log("cycle finished", 2, Duration::from_secs(60));
    assert!(bed.serves("web").contains(&page("2")));
    assert_eq!(
        bed.container_id("other"),
        other,
        "only the named container moves"
    );
    assert!(bed.serves("other").contains(&page("1")));
    let (code, _) = daemon.terminate(Duration::from_secs(15));
    assert_eq!(code, 0, "stderr:\n{}", daemon.stderr());
}

/// A `[[notify]]` webhook table for `receiver`.
fn notify_webhook(receiver: &Receiver) -> String {
    format!(
        "[[notify]]\nkind = \"webhook\"\nurl = {:?}\n",
        receiver.url()
    )
}

#[test]
fn an_update_of_two_containers_is_announced_in_one_webhook_message_and_only_once() {
    let bed = TestBed::new("ops-notify-updated");
    let registry = Registry::start();
    let receiver = Receiver::start();
    let (api_image, web_image) = (
        registry.image("api", "stable"),
        registry.image("web", "stable"),
    );
    bed.build_app(&api_image, "api-1");
    push(&api_image);
    bed.build_app(&web_image, "web-1");
    push(&web_image);
    bed.run_with("api", QUICK_STOP, &api_image, &[], &[]);
    bed.run_with("web", QUICK_STOP, &web_image, &[], &[]);
    bed.wait_until_serving("api", &page("api-1"), START_TIMEOUT);
    bed.wait_until_serving("web", &page("web-1"), START_TIMEOUT);
    let updater = bed.updater(&[registry.host()]);
    settings::append(&updater, &notify_webhook(&receiver));
    bed.build_app(&api_image, "api-2");
    let api_v2 = push(&api_image);
    bed.build_app(&web_image, "web-2");
    push(&web_image);

    let update = updater.update(&[]);

    update.assert_exit(0);
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 1, "one message per cycle: {bodies:#?}");
    assert_eq!(
        announced(&bodies[0]),
        [
            (bed.name("api"), "updated".to_owned()),
            (bed.name("web"), "updated".to_owned()),
        ],
        "{}",
        bodies[0]
    );
    let message: Value = serde_json::from_str(&bodies[0]).unwrap_or_default();
    let api_event = message["events"]
        .as_array()
        .and_then(|events| events.iter().find(|e| e["container"] == bed.name("api")))
        .cloned()
        .unwrap_or_default();
    assert_eq!(api_event["to_digest"], api_v2.as_str(), "{message:#}");
    assert_eq!(api_event["image"], api_image.as_str(), "{message:#}");
    assert!(message["host"].is_string(), "{message:#}");

    // `update` waits for its notifications before it exits, and the receiver keeps a body
    // before it answers: whatever this run sent is in `bodies()` already.
    let again = updater.update(&[]);
    again.assert_exit(0);
    assert_eq!(
        receiver.bodies().len(),
        1,
        "nothing new to announce: {:#?}",
        receiver.bodies()
    );
}

#[test]
fn a_monitor_only_container_is_announced_once_as_update_available_and_not_updated() {
    let bed = TestBed::new("ops-notify-monitor");
    let registry = Registry::start();
    let receiver = Receiver::start();
    let image = registry.image("app", "stable");
    let old = bed.web_on_v1(&image, &[("tidewatch.policy", "notify")]).id;
    let updater = bed.updater(&[registry.host()]);
    settings::append(&updater, &notify_webhook(&receiver));
    bed.build_app(&image, "2");
    let v2 = push(&image);

    let first = updater.update(&[]);
    let second = updater.update(&[]);

    first.assert_exit(0);
    second.assert_exit(0);
    assert!(first.report.results.is_empty(), "{first:#?}");
    assert!(second.report.results.is_empty(), "{second:#?}");
    // Both runs have exited, having waited for their notifications (see above).
    let bodies = receiver.bodies();
    assert_eq!(
        bodies.len(),
        1,
        "announced once over two cycles: {bodies:#?}"
    );
    assert_eq!(
        announced(&bodies[0]),
        [(bed.name("web"), "update_available".to_owned())],
        "{}",
        bodies[0]
    );
    assert!(
        bodies[0].contains(&v2),
        "names the new digest: {}",
        bodies[0]
    );
    assert_eq!(bed.container_id("web"), old, "monitor only: not recreated");
    assert!(bed.serves("web").contains(&page("1")));
}

#[test]
fn an_update_is_announced_in_one_plain_text_email() {
    let bed = TestBed::new("ops-notify-email");
    let smtp = SmtpServer::start();
    let (_registry, updater, _, v2) = web_with_v2_pushed(&bed, &[]);
    settings::append(
        &updater,
        &format!(
            "[[notify]]\nkind = \"email\"\nurl = {url:?}\nfrom = \"tidewatch@test.example\"\n\
             to = [\"ops@test.example\", \"oncall@test.example\"]\n",
            url = smtp.url()
        ),
    );

    let update = updater.update(&[]);

    update.assert_exit(0);
    assert_eq!(update.result("web").outcome, "updated", "{update:#?}");
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "one email per cycle: {mails:#?}");
    let mail = &mails[0];
    assert_eq!(mail.from, "<tidewatch@test.example>", "{mail:#?}");
    assert_eq!(
        mail.to,
        ["<ops@test.example>", "<oncall@test.example>"],
        "{mail:#?}"
    );
    assert!(
        mail.data.contains("Subject: tidewatch on ") && mail.data.contains("1 updated"),
        "{mail:#?}"
    );
    assert!(mail.data.contains(&bed.name("web")), "names web: {mail:#?}");
    assert!(
        mail.data.contains(&v2[..19]),
        "names the new digest (at least its start): {mail:#?}"
    );
}

/// A bed with the app at version 1 running as "web" (labelled `labels`) and version 2 pushed,
/// and the updater for it.
fn web_with_v2_pushed(
    bed: &TestBed,
    labels: &[(&str, &str)],
) -> (Registry, Updater, String, String) {
    let registry = Registry::start();
    let image = registry.image("app", "stable");
    let old = bed.web_on_v1(&image, labels).id;
    let updater = bed.updater(&[registry.host()]);
    bed.build_app(&image, "2");
    let v2 = push(&image);
    (registry, updater, old, v2)
}

#[test]
fn a_container_labelled_policy_ignore_is_skipped_and_never_updated() {
    let bed = TestBed::new("ops-policy-ignore");
    let (registry, _, old, _) = web_with_v2_pushed(&bed, &[("tidewatch.policy", "ignore")]);

    let check = bed.agent(&[registry.host()]).check(&[]);
    let update = bed.updater(&[registry.host()]).update(&[]);

    assert_eq!(check.row("web").status, Status::Skipped, "{check}");
    update.assert_exit(0);
    assert!(update.report.results.is_empty(), "{update:#?}");
    assert_eq!(bed.container_id("web"), old);
    assert!(bed.serves("web").contains(&page("1")));
}

/// `tidewatch update --force --json` with the updater's configuration.
fn update_forced(updater: &Updater) -> (i32, Value, String) {
    let config = updater.config().to_string_lossy().into_owned();
    let outcome = tidewatch(["-c", &config, "update", "--force", "--json"]);
    let report = serde_json::from_str(&outcome.stdout).unwrap_or_else(|error| {
        panic!(
            "`update --force --json` printed no JSON ({error}):\n{}\n{}",
            outcome.stdout, outcome.stderr
        )
    });
    (outcome.code, report, outcome.stderr)
}

#[test]
fn outside_its_maintenance_window_an_update_waits_unless_forced() {
    let bed = TestBed::new("ops-window");
    let (_registry, updater, old, v2) = web_with_v2_pushed(&bed, &[]);
    // A one-minute window twelve hours away (in whatever time zone the agent reads it).
    let closed = (now_hour() + 12) % 24;
    settings::watch(
        &updater,
        &format!("window = {{ schedule = \"0 {closed} * * *\", length = \"1m\" }}"),
    );

    let dry_run = updater.dry_run(&[]);
    let update = updater.update(&[]);

    assert_eq!(dry_run.outcome.code, 0, "{dry_run:#?}");
    assert!(dry_run.plan.steps.is_empty(), "{dry_run:#?}");
    let waiting = dry_run.waiting("web");
    assert_eq!(waiting.to_digest, v2, "{dry_run:#?}");
    assert!(
        waiting.reason.contains("window"),
        "says it waits for the window: {waiting:?}"
    );
    update.assert_exit(0);
    assert!(update.report.results.is_empty(), "{update:#?}");
    assert_eq!(bed.container_id("web"), old);

    let (code, report, stderr) = update_forced(&updater);

    assert_eq!(code, 0, "{report:#}\n{stderr}");
    let results = report["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(results.len(), 1, "{report:#}");
    assert_eq!(results[0]["container"], bed.name("web"), "{report:#}");
    assert_eq!(results[0]["outcome"], "updated", "{report:#}");
    assert_eq!(results[0]["to_digest"], v2.as_str(), "{report:#}");
    assert!(bed.serves("web").contains(&page("2")));
}

/// The current hour, UTC (the test machines run in UTC, as the agent does).
fn now_hour() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default();
    ((secs / 3600) % 24) as u32
}

#[test]
fn a_digest_younger_than_min_age_waits() {
    let bed = TestBed::new("ops-min-age");
    let (_registry, updater, old, v2) = web_with_v2_pushed(&bed, &[]);
    settings::watch(&updater, "min_age = \"1h\"");

    let update = updater.update(&[]);
    let dry_run = updater.dry_run(&[]);

    update.assert_exit(0);
    assert!(update.report.results.is_empty(), "{update:#?}");
    assert_eq!(bed.container_id("web"), old);
    assert!(bed.serves("web").contains(&page("1")));
    let waiting = dry_run.waiting("web");
    assert_eq!(waiting.to_digest, v2, "{dry_run:#?}");
    assert!(waiting.reason.contains("min_age"), "{waiting:?}");
}

#[test]
fn update_dry_run_shows_a_digest_never_seen_before_waiting_for_min_age() {
    let bed = TestBed::new("ops-min-age-dry-run");
    let (_registry, updater, _, v2) = web_with_v2_pushed(&bed, &[]);
    settings::watch(&updater, "min_age = \"1h\"");

    // No cycle has seen v2 yet: its age is zero, as the `update` after it will find.
    let dry_run = updater.dry_run(&[]);

    assert!(
        dry_run.plan.steps.is_empty(),
        "a dry run must not plan what `update` would hold back; {dry_run:#?}"
    );
    let waiting = dry_run.waiting("web");
    assert_eq!(waiting.to_digest, v2, "{dry_run:#?}");
    assert!(waiting.reason.contains("min_age"), "{waiting:?}");
}

#[test]
fn with_include_stopped_a_stopped_container_is_recreated_on_the_new_digest_and_stays_stopped() {
    let bed = TestBed::new("ops-include-stopped");
    let (registry, updater, old, v2) = web_with_v2_pushed(&bed, &[]);
    docker(&["stop", &bed.name("web")]);
    settings::watch(&updater, "include_stopped = true");

    let update = updater.update(&[]);

    update.assert_exit(0);
    let result = update.result("web");
    assert_eq!(result.outcome, "updated", "{update:#?}");
    assert_eq!(result.to_digest.as_ref(), Some(&v2), "{update:#?}");
    assert_ne!(bed.container_id("web"), old, "recreated");
    assert!(!bed.is_running("web"), "left stopped; {update:#?}");
    let by_digest = format!("{}@{v2}", registry.repo("app"));
    let v2_image = docker(&["image", "inspect", "--format", "{{.Id}}", &by_digest]);
    assert_eq!(bed.image_id("web"), v2_image, "on the new digest");
}

#[test]
fn a_container_tracking_semver_caret_1_moves_to_the_highest_1_x_tag_and_not_to_2() {
    let bed = TestBed::new("ops-track-semver");
    let registry = Registry::start();
    let v1_0 = registry.image("app", "1.0.0");
    bed.build_app(&v1_0, "1.0.0");
    push(&v1_0);
    let old = bed.run_with(
        "web",
        QUICK_STOP,
        &v1_0,
        &[],
        &[("tidewatch.track", "semver:^1")],
    );
    bed.wait_until_serving("web", &page("1.0.0"), START_TIMEOUT);
    let updater = bed.updater(&[registry.host()]);
    let v1_1 = registry.image("app", "1.1.0");
    bed.build_app(&v1_1, "1.1.0");
    let v1_1_digest = push(&v1_1);
    let v2_0 = registry.image("app", "2.0.0");
    bed.build_app(&v2_0, "2.0.0");
    push(&v2_0);

    let update = updater.update(&[]);

    update.assert_exit(0);
    let result = update.result("web");
    assert_eq!(result.outcome, "updated", "{update:#?}");
    assert_eq!(result.to_digest.as_ref(), Some(&v1_1_digest), "{update:#?}");
    assert_ne!(bed.container_id("web"), old);
    let config_image = inspect_container(&bed.name("web"))["Config"]["Image"].clone();
    assert_eq!(
        config_image,
        v1_1.as_str(),
        "the container runs the new tag"
    );
    assert!(bed.serves("web").contains(&page("1.1.0")));
}

#[test]
fn run_tells_systemd_it_is_ready_what_it_watches_and_that_it_stops() {
    let bed = TestBed::new("ops-sd-notify");
    let registry = Registry::start();
    let updater = bed.updater(&[registry.host()]);
    let socket_path = bed.dir().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).expect("bind notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("set a read timeout");
    let receive = || {
        let mut buffer = [0u8; 4096];
        let size = socket
            .recv(&mut buffer)
            .expect("a notification within 30 s");
        String::from_utf8_lossy(&buffer[..size]).into_owned()
    };

    let mut daemon =
        updater.spawn_run_with_env(&[("NOTIFY_SOCKET", socket_path.to_str().expect("utf-8"))]);

    let first = receive();
    assert!(first.lines().any(|l| l == "READY=1"), "{first:?}");
    let second = receive();
    assert!(
        second.starts_with("STATUS=watching through unix://"),
        "{second:?}"
    );
    daemon.wait_for_log("cycle finished", 1, Duration::from_secs(60));
    let (code, _) = daemon.terminate(Duration::from_secs(10));
    assert_eq!(code, 0, "{}", daemon.stderr());
    assert_eq!(receive(), "STOPPING=1");
}
