//! Talking to `tidewatch run`'s HTTP API from a test: starting the daemon and waiting for its
//! API, one request with or without a bearer secret, and reading `/v1/status`.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::cycle::{Daemon, Updater};
use super::http::{self, Response};
use super::settings::ApiSettings;

/// One request to the daemon's API; panics when it does not answer.
pub fn call(
    api: &ApiSettings,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &str,
) -> Response {
    let bearer = auth.map(|secret| format!("Bearer {secret}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(bearer) = &bearer {
        headers.push(("Authorization", bearer.as_str()));
    }
    http::send(
        &api.host,
        method,
        path,
        &headers,
        body.as_bytes(),
        Duration::from_secs(10),
    )
    .unwrap_or_else(|error| panic!("{method} {path} on {}: {error}", api.host))
}

/// Starts `run` and waits for its start-up cycle and its API.
pub fn start_daemon(updater: &Updater, api: &ApiSettings) -> Daemon {
    start_daemon_on(updater, &api.host)
}

/// Starts `run` and waits for its start-up cycle and its API on `host`.
pub fn start_daemon_on(updater: &Updater, host: &str) -> Daemon {
    let mut daemon = updater.spawn_run();
    daemon.wait_for_log("cycle finished", 1, Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let probe = http::request(host, "GET", "/healthz", &[], Duration::from_secs(2));
        if matches!(&probe, Ok(response) if response.status == 200) {
            return daemon;
        }
        assert!(
            Instant::now() < deadline,
            "the API on {host} does not answer: {probe:?}; stderr:\n{}",
            daemon.stderr()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// The body of a `/v1/status` answer, as JSON.
pub fn parse_status(response: &Response) -> Value {
    assert_eq!(response.status, 200, "{response:?}");
    serde_json::from_str(&response.body)
        .unwrap_or_else(|error| panic!("/v1/status is not JSON ({error}): {}", response.body))
}

/// The row of `container` in a `/v1/status` answer.
pub fn status_row<'a>(status: &'a Value, container: &str) -> &'a Value {
    status["containers"]
        .as_array()
        .and_then(|rows| rows.iter().find(|row| row["container"] == container))
        .unwrap_or_else(|| panic!("no row for {container} in {status:#}"))
}

/// Tells the daemon through its registry webhook, with the hook secret, that `image` was
/// pushed; panics unless the hook accepts it.
pub fn notify_push(api: &ApiSettings, image: &str) {
    let body = serde_json::json!({ "image": image }).to_string();
    let accepted = call(
        api,
        "POST",
        "/v1/hooks/registry",
        Some(&api.hook_secret),
        &body,
    );
    assert_eq!(accepted.status, 202, "{accepted:?}");
}
