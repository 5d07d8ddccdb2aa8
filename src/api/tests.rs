//! The API served on 127.0.0.1:0 and called over HTTP, as a CI job or a registry would.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::*;
use crate::plan::detect::{CheckRow, Status};
use crate::plan::update::{WaitReason, Waiting};
use crate::report::{CycleReport, StepOutcome, StepResult};
use crate::shutdown;

const TOKEN: &str = "token-0123456789abcdef";
const HOOK_SECRET: &str = "hook-0123456789abcdef";

/// Every route that changes something: each must refuse what a web page could send.
const ALL_POSTS: [&str; 5] = [
    "/v1/update",
    "/v1/hooks/registry",
    "/v1/hooks/github",
    "/v1/hooks/dockerhub",
    "/v1/hooks/dockerhub/hook-0123456789abcdef",
];

/// A running API and what the daemon would hold.
struct Served {
    base: String,
    http: reqwest::Client,
    triggers: mpsc::Receiver<Trigger>,
    board: StatusBoard,
    metrics: Metrics,
    stop: shutdown::Trigger,
    server: JoinHandle<std::io::Result<()>>,
}

impl Served {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Nothing was sent to the daemon.
    fn assert_nothing_sent(&mut self) {
        assert_eq!(self.triggers.try_recv().ok(), None);
    }

    /// The port the API listens on.
    fn port(&self) -> u16 {
        self.base.rsplit(':').next().unwrap().parse().unwrap()
    }
}

async fn serve_with(token: Option<&str>, hook_secret: Option<&str>) -> Served {
    serve_configured(token, hook_secret, |_| {}).await
}

/// Served on loopback, with `[api] listen` saying `ip` (the port the test binds is kept): the
/// API decides what is public from the configured address.
async fn serve_as(token: Option<&str>, hook_secret: Option<&str>, ip: &str) -> Served {
    let ip: std::net::IpAddr = ip.parse().unwrap();
    serve_configured(token, hook_secret, |config| config.listen.set_ip(ip)).await
}

/// Served on 127.0.0.1 with the configuration `adjust` leaves.
async fn serve_configured(
    token: Option<&str>,
    hook_secret: Option<&str>,
    adjust: impl FnOnce(&mut ApiConfig),
) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bound = listener.local_addr().unwrap();
    let mut config = ApiConfig {
        listen: bound,
        token: token.map(Secret::new),
        hook_secret: hook_secret.map(Secret::new),
        public_read: false,
        header_read_timeout: crate::config::DEFAULT_HEADER_READ_TIMEOUT,
        max_connections: crate::config::DEFAULT_MAX_CONNECTIONS,
        allowed_hosts: None,
    };
    adjust(&mut config);
    let (tx, triggers) = trigger_channel();
    let board = StatusBoard::default();
    let metrics = Metrics::new();
    let state = ApiState::new(&config, tx, board.clone(), metrics.clone())
        .with_body_read_timeout(Duration::from_secs(1));
    let (stop, shutdown) = shutdown::channel();
    let server = tokio::spawn(serve(listener, state, shutdown));
    Served {
        base: format!("http://{bound}"),
        // A proxy from the environment must not see loopback test traffic.
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        triggers,
        board,
        metrics,
        stop,
        server,
    }
}

async fn serve_guarded() -> Served {
    serve_with(Some(TOKEN), Some(HOOK_SECRET)).await
}

fn row(container: &str, status: Status) -> CheckRow {
    CheckRow {
        container: container.into(),
        image: "127.0.0.1:5000/app:latest".into(),
        current_digest: Some("sha256:aaaa".into()),
        available_digest: Some("sha256:bbbb".into()),
        status,
        detail: None,
        notes: Default::default(),
        signature: None,
    }
}

fn a_cycle_that_updated_web_and_holds_api() -> CycleReport {
    let mut report = CycleReport {
        containers: vec![
            row("web", Status::UpToDate),
            row("api", Status::UpdateAvailable),
        ],
        results: vec![StepResult {
            container: "web".into(),
            image: "127.0.0.1:5000/app:latest".into(),
            from_digest: Some("sha256:aaaa".into()),
            to_digest: Some("sha256:bbbb".into()),
            outcome: StepOutcome::Updated,
            detail: "healthy on the new image".into(),
            notes: Default::default(),
        }],
        ..CycleReport::default()
    };
    report.plan.waiting = vec![Waiting {
        container: "api".into(),
        to_digest: "sha256:bbbb".into(),
        reason: WaitReason::Quarantined {
            why: "exited with code 3".into(),
        },
    }];
    report
}

#[tokio::test]
async fn healthz_says_ok() {
    let s = serve_guarded().await;
    let r = s.http.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn update_with_the_token_queues_a_cycle_for_the_named_container() {
    let mut s = serve_guarded().await;
    let r = s
        .http
        .post(s.url("/v1/update?container=web&force=true"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(
        s.triggers.try_recv().ok(),
        Some(Trigger::Cycle {
            container: Some("web".into()),
            force: true
        })
    );
    let r = s
        .http
        .post(s.url("/v1/update"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(
        s.triggers.try_recv().ok(),
        Some(Trigger::Cycle {
            container: None,
            force: false
        })
    );
}

#[tokio::test]
async fn update_without_a_token_is_401_and_sends_nothing() {
    let mut s = serve_guarded().await;
    let r = s.http.post(s.url("/v1/update")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    s.assert_nothing_sent();
}

#[tokio::test]
async fn update_with_a_wrong_token_is_401_and_sends_nothing() {
    let mut s = serve_guarded().await;
    for wrong in [
        "token-0123456789abcdeX",
        "token-0123456789abcde",
        HOOK_SECRET,
    ] {
        let r = s
            .http
            .post(s.url("/v1/update"))
            .bearer_auth(wrong)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{wrong}");
    }
    // The token is only accepted as a header: a query parameter would end up in access logs.
    let r = s
        .http
        .post(s.url(&format!("/v1/update?secret={TOKEN}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    s.assert_nothing_sent();
}

#[tokio::test]
async fn update_with_an_unknown_parameter_is_400_and_sends_nothing() {
    let mut s = serve_guarded().await;
    for query in ["?name=web", "?force=yes", "?container="] {
        let r = s
            .http
            .post(s.url(&format!("/v1/update{query}")))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{query}");
    }
    s.assert_nothing_sent();
}

#[tokio::test]
async fn without_a_configured_token_loopback_callers_may_trigger() {
    let mut s = serve_with(None, None).await;
    let r = s.http.post(s.url("/v1/update")).send().await.unwrap();
    assert_eq!(r.status(), 202);
    assert!(s.triggers.try_recv().is_ok());
}

#[tokio::test]
async fn registry_push_notification_queues_a_check_of_the_pushed_tag() {
    let mut s = serve_guarded().await;
    let body = r#"{"events": [
        {"action": "push",
         "target": {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "repository": "team/app", "digest": "sha256:1111"},
         "request": {"host": "127.0.0.1:5000"}},
        {"action": "push",
         "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "repository": "team/app", "digest": "sha256:2222", "tag": "v2"},
         "request": {"host": "127.0.0.1:5000"}}
    ]}"#;
    let r = s
        .http
        .post(s.url("/v1/hooks/registry"))
        .bearer_auth(HOOK_SECRET)
        .header(
            "content-type",
            "application/vnd.docker.distribution.events.v1+json",
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(
        s.triggers.try_recv().ok(),
        Some(Trigger::Images(vec!["127.0.0.1:5000/team/app:v2".into()]))
    );
}

#[tokio::test]
async fn ci_can_name_the_image_with_the_secret_in_the_header() {
    let mut s = serve_guarded().await;
    let r = s
        .http
        .post(s.url("/v1/hooks/registry"))
        .bearer_auth(HOOK_SECRET)
        .header("content-type", "application/json")
        .body(r#"{"image": "ghcr.io/org/app:main"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(
        s.triggers.try_recv().ok(),
        Some(Trigger::Images(vec!["ghcr.io/org/app:main".into()]))
    );
}

/// #13: a secret in the URL ends up in proxies' and servers' access logs.
#[tokio::test]
async fn the_hook_secret_in_the_query_is_refused_with_a_pointer_to_the_header() {
    let mut s = serve_guarded().await;
    for query in [
        format!("?secret={HOOK_SECRET}"),
        "?secret=hook-0123456789abcdeX".to_string(),
    ] {
        let r = s
            .http
            .post(s.url(&format!("/v1/hooks/registry{query}")))
            .header("content-type", "application/json")
            .body(r#"{"image": "ghcr.io/org/app:main"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{query}");
        let text = r.text().await.unwrap();
        assert!(text.contains("Authorization: Bearer"), "{text}");
        assert!(!text.contains(HOOK_SECRET), "{text}");
    }
    // Refused even alongside the right header, and when no secret is configured: the URL is
    // what must not carry it.
    let r = s
        .http
        .post(s.url(&format!("/v1/hooks/registry?secret={HOOK_SECRET}")))
        .bearer_auth(HOOK_SECRET)
        .header("content-type", "application/json")
        .body(r#"{"image": "ghcr.io/org/app:main"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    s.assert_nothing_sent();
    let mut open = serve_with(None, None).await;
    let r = open
        .http
        .post(open.url("/v1/hooks/registry?secret=anything-at-all-here"))
        .header("content-type", "application/json")
        .body(r#"{"image": "ghcr.io/org/app:main"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    open.assert_nothing_sent();
}

#[tokio::test]
async fn public_read_opens_status_and_metrics_beyond_loopback_but_not_the_posts() {
    let mut s = serve_configured(Some(TOKEN), Some(HOOK_SECRET), |config| {
        config.listen.set_ip("0.0.0.0".parse().unwrap());
        config.public_read = true;
    })
    .await;
    for path in ["/v1/status", "/metrics"] {
        let r = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let r = s.http.post(s.url("/v1/update")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    s.assert_nothing_sent();
}

/// A raw connection that has sent `sent` and nothing more.
async fn connect_and_send(s: &Served, sent: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(s.base.trim_start_matches("http://"))
        .await
        .unwrap();
    stream.write_all(sent.as_bytes()).await.unwrap();
    stream
}

/// Reads until the server closes `stream` and returns how long that took, or `None` when it
/// is still open after `bound`.
async fn closed_within(stream: &mut tokio::net::TcpStream, bound: Duration) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let started = tokio::time::Instant::now();
    let mut buffer = [0u8; 1024];
    tokio::time::timeout(bound, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
    .map(|()| started.elapsed())
}

/// Reads one answer's head and its short body (`Content-Length` only) from `stream`, within
/// `bound`; `None` when nothing complete came.
async fn answer_within(stream: &mut tokio::net::TcpStream, bound: Duration) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    tokio::time::timeout(bound, async {
        loop {
            let text = String::from_utf8_lossy(&answer).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if body.len() >= length {
                    return Some(text);
                }
            }
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => answer.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// #13: 200 half-sent requests all stayed open past 40 s.
#[tokio::test]
async fn half_sent_requests_are_closed_after_the_header_read_timeout() {
    let s = serve_configured(None, None, |config| {
        config.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(connect_and_send(&s, "GET /healthz HTTP/1.1\r\nHost: x\r\n").await);
    }
    // And one that never sends a byte.
    held.push(connect_and_send(&s, "").await);
    for stream in &mut held {
        let closed = closed_within(stream, Duration::from_secs(5)).await;
        assert!(
            closed.is_some(),
            "still open 5 s after a 1 s header timeout"
        );
    }
    let r = s.http.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "the API still answers");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_read_timeout() {
    let s = serve_configured(None, None, |config| {
        config.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let mut stream = connect_and_send(&s, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let answer = answer_within(&mut stream, Duration::from_secs(5)).await;
    assert!(
        answer
            .as_deref()
            .is_some_and(|a| a.starts_with("HTTP/1.1 200")),
        "{answer:?}"
    );
    let closed = closed_within(&mut stream, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "an idle connection still open after 5 s");
}

/// #13: without a cap, anyone reaching the port could take every descriptor the agent shares
/// with the engine socket, SQLite and registry connections.
#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let s = serve_configured(None, None, |config| {
        config.max_connections = 2;
        config.header_read_timeout = Duration::from_secs(60);
    })
    .await;
    let first = connect_and_send(&s, "GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
    let _second = connect_and_send(&s, "GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
    // Let the server take both before the third arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut third = connect_and_send(
        &s,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let early = answer_within(&mut third, Duration::from_secs(1)).await;
    assert_eq!(early, None, "served beyond max_connections = 2");

    drop(first);
    let answer = answer_within(&mut third, Duration::from_secs(5)).await;
    assert!(
        answer
            .as_deref()
            .is_some_and(|a| a.starts_with("HTTP/1.1 200")),
        "served once a slot is free: {answer:?}"
    );
}

/// #13: a web page may POST `text/plain` (no preflight) to a loopback API; a JSON body must
/// say so, which a page can only do after a CORS preflight the API never grants.
#[tokio::test]
async fn a_body_that_is_not_declared_json_is_415_and_sends_nothing() {
    let mut s = serve_with(None, None).await;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonx"),
        None,
    ] {
        for path in ALL_POSTS {
            let mut request = s
                .http
                .post(s.url(path))
                .body(r#"{"image": "ghcr.io/org/app:main"}"#);
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), 415, "{path} {content_type:?}");
            let text = r.text().await.unwrap();
            assert!(text.contains("application/json"), "{text}");
        }
    }
    s.assert_nothing_sent();
    for content_type in [
        "application/json",
        "Application/JSON; charset=utf-8",
        "application/vnd.docker.distribution.events.v1+json",
    ] {
        let r = s
            .http
            .post(s.url("/v1/hooks/registry"))
            .header("content-type", content_type)
            .body(r#"{"image": "ghcr.io/org/app:main"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{content_type}");
        assert!(s.triggers.try_recv().is_ok());
    }
}

/// #13: a browser names the page's origin; only the API's own may change anything.
#[tokio::test]
async fn a_post_from_another_origin_is_403_and_sends_nothing() {
    let mut s = serve_with(None, None).await;
    let port = s.base.rsplit(':').next().unwrap().to_string();
    for origin in [
        "http://evil.example".to_string(),
        "https://evil.example".to_string(),
        format!("http://evil.example:{port}"),
        format!("http://127.0.0.1:{}", port.parse::<u32>().unwrap() + 1),
        format!("https://127.0.0.1:{port}"),
        "null".to_string(),
        "not an origin".to_string(),
    ] {
        for path in ALL_POSTS {
            let r = s
                .http
                .post(s.url(path))
                .header("origin", &origin)
                .header("content-type", "application/json")
                .body(r#"{"image": "ghcr.io/org/app:main"}"#)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "{path} from {origin}");
        }
    }
    s.assert_nothing_sent();
    // The API's own origin (a page it served, were there one) is fine.
    let r = s
        .http
        .post(s.url("/v1/update"))
        .header("origin", &s.base)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert!(s.triggers.try_recv().is_ok());
}

/// #13: `force=true` lets updates through closed maintenance windows; on a loopback API
/// without a token, any local process (or a web page) could ask for that.
#[tokio::test]
async fn force_without_a_configured_token_is_403_and_says_to_configure_one() {
    let mut s = serve_with(None, None).await;
    let r = s
        .http
        .post(s.url("/v1/update?container=web&force=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let text = r.text().await.unwrap();
    assert!(text.contains("[api] token_file"), "{text}");
    s.assert_nothing_sent();
    // Without force, loopback callers still may.
    let r = s.http.post(s.url("/v1/update")).send().await.unwrap();
    assert_eq!(r.status(), 202);
}

/// #13: status and metrics name containers, images, digests and error details.
#[tokio::test]
async fn status_and_metrics_need_the_token_when_listening_beyond_loopback() {
    for ip in ["0.0.0.0", "192.168.1.5", "::"] {
        let s = serve_as(Some(TOKEN), Some(HOOK_SECRET), ip).await;
        for path in ["/v1/status", "/metrics"] {
            let r = s.http.get(s.url(path)).send().await.unwrap();
            assert_eq!(r.status(), 401, "{path} on {ip}");
            assert!(r.headers().contains_key("www-authenticate"));
            let r = s
                .http
                .get(s.url(path))
                .bearer_auth(HOOK_SECRET)
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                401,
                "{path} on {ip}: the hook secret is not the token"
            );
            let r = s
                .http
                .get(s.url(path))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{path} on {ip}");
        }
        // Health checks need no secret anywhere.
        let r = s.http.get(s.url("/healthz")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
}

/// A caller past the secret (or anyone, on a loopback API without one) must not hold a
/// connection by sending the body a byte at a time. (The tests' body timeout is 1 s.)
#[tokio::test]
async fn a_hook_body_that_does_not_arrive_is_408_and_the_connection_closed() {
    let mut s = serve_guarded().await;
    let mut stream = connect_and_send(
        &s,
        &format!(
            "POST /v1/hooks/registry HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {HOOK_SECRET}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
        ),
    )
    .await;
    let answer = answer_within(&mut stream, Duration::from_secs(5)).await;
    assert!(
        answer
            .as_deref()
            .is_some_and(|a| a.starts_with("HTTP/1.1 408")),
        "{answer:?}"
    );
    let closed = closed_within(&mut stream, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "still open after the 408");
    s.assert_nothing_sent();
}

#[tokio::test]
async fn hook_with_a_wrong_or_missing_secret_is_401_and_sends_nothing() {
    let mut s = serve_guarded().await;
    let body = r#"{"image": "ghcr.io/org/app:main"}"#;
    let r = s
        .http
        .post(s.url("/v1/hooks/registry"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = s
        .http
        .post(s.url("/v1/hooks/registry"))
        .bearer_auth("hook-0123456789abcdeX")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = s
        .http
        .post(s.url("/v1/hooks/registry"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the API token is not the hook secret");
    s.assert_nothing_sent();
}

#[tokio::test]
async fn malformed_hook_body_is_400_and_sends_nothing() {
    let mut s = serve_guarded().await;
    for body in [
        "not json",
        r#"{"events": "push"}"#,
        r#"{"image": "Bad Ref"}"#,
        "{}",
    ] {
        let r = s
            .http
            .post(s.url("/v1/hooks/registry"))
            .bearer_auth(HOOK_SECRET)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let text = r.text().await.unwrap();
        assert!(text.contains("\"error\""), "{text}");
    }
    s.assert_nothing_sent();
}

#[tokio::test]
async fn oversized_hook_body_is_413_and_sends_nothing() {
    let mut s = serve_guarded().await;
    let mut body = String::from(r#"{"image": "app", "padding": ""#);
    body.push_str(&"x".repeat(HOOK_BODY_LIMIT));
    body.push_str("\"}");
    let r = s
        .http
        .post(s.url("/v1/hooks/registry"))
        .bearer_auth(HOOK_SECRET)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    s.assert_nothing_sent();
}

#[tokio::test]
async fn pull_events_are_acknowledged_without_a_trigger() {
    let mut s = serve_guarded().await;
    let body = r#"{"events": [{"action": "pull",
        "target": {"repository": "app", "tag": "latest"}, "request": {"host": "127.0.0.1:5000"}}]}"#;
    let r = s
        .http
        .post(s.url("/v1/hooks/registry"))
        .bearer_auth(HOOK_SECRET)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.assert_nothing_sent();
}

#[tokio::test]
async fn a_full_trigger_queue_is_503() {
    let s = serve_with(None, None).await;
    for _ in 0..TRIGGER_QUEUE {
        let r = s.http.post(s.url("/v1/update")).send().await.unwrap();
        assert_eq!(r.status(), 202);
    }
    let r = s.http.post(s.url("/v1/update")).send().await.unwrap();
    assert_eq!(r.status(), 503);
}

#[tokio::test]
async fn status_is_null_before_the_first_cycle() {
    let s = serve_guarded().await;
    let r = s.http.get(s.url("/v1/status")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut json: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let agent = json.as_object_mut().unwrap().remove("agent").unwrap();
    assert_eq!(agent["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        json,
        serde_json::json!({
            "last_cycle": null,
            "containers": [],
            "pending": [],
            "next_cycle": null,
            "gitops": [],
            "history": [],
            "last_cycle_requests": null,
            "engine": null,
            "actions": []
        })
    );
}

#[tokio::test]
async fn status_shows_the_last_cycle_its_rows_and_what_waits() {
    let s = serve_guarded().await;
    let started = Utc::now();
    s.board.update(
        &a_cycle_that_updated_web_and_holds_api(),
        started,
        Utc::now(),
    );
    let r = s.http.get(s.url("/v1/status")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let json: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(json["last_cycle"]["succeeded"], true);
    assert!(json["last_cycle"]["started_at"].is_string());
    assert!(json["last_cycle"]["finished_at"].is_string());
    assert_eq!(json["containers"][1]["container"], "api");
    assert_eq!(json["containers"][1]["status"], "update_available");
    assert_eq!(json["containers"][1]["available_digest"], "sha256:bbbb");
    assert_eq!(json["pending"][0]["container"], "api");
    assert_eq!(json["pending"][0]["to_digest"], "sha256:bbbb");
    assert!(json["pending"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("quarantined"));
}

#[tokio::test]
async fn metrics_name_every_series_after_a_cycle() {
    let s = serve_guarded().await;
    let report = a_cycle_that_updated_web_and_holds_api();
    s.board.update(&report, Utc::now(), Utc::now());
    s.metrics.record_cycle(&report, Duration::from_secs(3));
    s.metrics.record_registry("127.0.0.1:5000", 2, 0);
    let r = s.http.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = r.text().await.unwrap();
    for line in [
        "tidewatch_checks_total 1",
        "tidewatch_updates_total{outcome=\"updated\"} 1",
        "tidewatch_updates_total{outcome=\"rolled_back\"} 0",
        "tidewatch_updates_total{outcome=\"failed\"} 0",
        "tidewatch_updates_total{outcome=\"skipped\"} 0",
        "tidewatch_rollbacks_total 0",
        "tidewatch_registry_requests_total{registry=\"127.0.0.1:5000\"} 2",
        "tidewatch_registry_errors_total{registry=\"127.0.0.1:5000\"} 0",
        "tidewatch_cycle_duration_seconds_count 1",
        "tidewatch_containers{status=\"up_to_date\"} 1",
        "tidewatch_containers{status=\"update_available\"} 1",
        "tidewatch_containers{status=\"error\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    assert!(text.contains("tidewatch_last_successful_cycle_timestamp_seconds "));
}

#[tokio::test]
async fn the_server_stops_on_shutdown() {
    let s = serve_guarded().await;
    let r = s.http.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let url = s.url("/healthz");
    s.stop.trigger();
    let result = tokio::time::timeout(Duration::from_secs(10), s.server)
        .await
        .expect("serve returns after shutdown")
        .unwrap();
    assert!(result.is_ok());
    let refused = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(url)
        .send()
        .await;
    assert!(refused.is_err(), "still answering after shutdown");
}

#[test]
fn a_trigger_selects_containers_by_name_or_normalised_image() {
    let all = Trigger::Cycle {
        container: None,
        force: false,
    };
    assert!(all.selects("web", "nginx"));
    let web = Trigger::Cycle {
        container: Some("web".into()),
        force: false,
    };
    assert!(web.selects("web", "nginx"));
    assert!(!web.selects("db", "nginx"));
    let pushed = Trigger::Images(vec![
        "docker.io/library/nginx:latest".into(),
        "127.0.0.1:5000/team/app:v2".into(),
    ]);
    assert!(pushed.selects("web", "nginx"));
    assert!(pushed.selects("app", "127.0.0.1:5000/team/app:v2"));
    assert!(!pushed.selects("app", "127.0.0.1:5000/team/app:v1"));
    assert!(!pushed.selects("tool", "sha256:0123"));
}

/// Sends `request` (head and body, as written) on a connection of its own and returns the
/// answer's status and body.
async fn ask(s: &Served, request: &str) -> (u16, String) {
    let mut stream = connect_and_send(s, request).await;
    let answer = answer_within(&mut stream, Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("no answer to {request:?}"));
    let status = answer
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"));
    let body = answer.split_once("\r\n\r\n").unwrap_or_default().1;
    (status, body.to_string())
}

/// `GET path` naming `host` (none: no `Host` line), over `version`.
fn get_naming(path: &str, version: &str, host: Option<&str>) -> String {
    let host = host.map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
    format!("GET {path} {version}\r\n{host}Connection: close\r\n\r\n")
}

/// `POST path` with a JSON body, as a page served from `host` sends it (its `Origin` is
/// `http://host`, so the origin check sees nothing amiss).
fn post_from_page_at(path: &str, host: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\n\
         Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    )
}

/// #13: a page on evil.example whose name is then pointed at 127.0.0.1 (DNS rebinding) is,
/// to the browser, talking to its own origin: `Origin` and `Host` both say evil.example, so
/// only the `Host` gives it away.
#[tokio::test]
async fn a_rebinding_page_is_421_on_loopback_for_status_and_update() {
    let mut s = serve_with(None, None).await;
    let port = s.port();
    for host in [
        format!("evil.example:{port}"),
        "evil.example".to_string(),
        format!("127.0.0.1.evil.example:{port}"),
        format!("localhost.evil.example:{port}"),
        format!("0.0.0.0:{port}"),
        format!("192.168.1.5:{port}"),
    ] {
        for path in ["/v1/status", "/metrics"] {
            let (status, body) = ask(&s, &get_naming(path, "HTTP/1.1", Some(&host))).await;
            assert_eq!(status, 421, "GET {path} naming {host}: {body}");
            assert!(body.contains("DNS rebinding"), "{body}");
        }
        for path in ALL_POSTS {
            let (status, body) = ask(&s, &post_from_page_at(path, &host)).await;
            assert_eq!(status, 421, "POST {path} naming {host}: {body}");
        }
    }
    s.assert_nothing_sent();
    // A health check says nothing and changes nothing, whatever name it was sent to.
    let (status, _) = ask(
        &s,
        &get_naming("/healthz", "HTTP/1.1", Some("evil.example")),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn loopback_names_are_served_with_or_without_a_port() {
    let mut s = serve_with(None, None).await;
    let port = s.port();
    for host in [
        format!("localhost:{port}"),
        "localhost".to_string(),
        format!("LocalHost.:{port}"),
        format!("tidewatch.localhost:{port}"),
        format!("127.0.0.1:{port}"),
        "127.0.0.1".to_string(),
        format!("127.1.2.3:{port}"),
        format!("[::1]:{port}"),
        "[::1]".to_string(),
    ] {
        let (status, body) = ask(&s, &get_naming("/v1/status", "HTTP/1.1", Some(&host))).await;
        assert_eq!(status, 200, "GET /v1/status naming {host}: {body}");
        let (status, body) = ask(&s, &post_from_page_at("/v1/update", &host)).await;
        assert_eq!(status, 202, "POST /v1/update naming {host}: {body}");
        assert!(s.triggers.try_recv().is_ok(), "{host}");
    }
}

/// Browsers always send `Host`; a request without one is an old or hand-written client's.
#[tokio::test]
async fn without_a_host_http_1_0_is_served_and_http_1_1_is_400() {
    let s = serve_with(None, None).await;
    let (status, body) = ask(&s, &get_naming("/v1/status", "HTTP/1.0", None)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = ask(&s, &get_naming("/v1/status", "HTTP/1.1", None)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Host"), "{body}");
}

/// A request target in absolute form names its host there too; the two must both be ours.
#[tokio::test]
async fn an_absolute_request_target_naming_another_host_is_421() {
    let s = serve_with(None, None).await;
    let port = s.port();
    let (status, body) = ask(
        &s,
        &format!(
            "GET http://evil.example:{port}/v1/status HTTP/1.1\r\nHost: localhost:{port}\r\n\
             Connection: close\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(status, 421, "{body}");
}

#[tokio::test]
async fn allowed_hosts_restrict_the_host_beyond_loopback() {
    let allowed = ["tidewatch.example.com", "192.168.1.5"]
        .map(|name| crate::config::HostName::parse(name).unwrap());
    let mut s = serve_configured(Some(TOKEN), Some(HOOK_SECRET), |config| {
        config.listen.set_ip("0.0.0.0".parse().unwrap());
        config.public_read = true;
        config.allowed_hosts = Some(allowed.to_vec());
    })
    .await;
    let port = s.port();
    for host in [
        format!("tidewatch.example.com:{port}"),
        "TIDEWATCH.example.com".to_string(),
        format!("192.168.1.5:{port}"),
        format!("localhost:{port}"),
    ] {
        let (status, body) = ask(&s, &get_naming("/v1/status", "HTTP/1.1", Some(&host))).await;
        assert_eq!(status, 200, "GET /v1/status naming {host}: {body}");
    }
    for host in [
        format!("evil.example:{port}"),
        format!("tidewatch.example.com.evil.example:{port}"),
        format!("192.168.1.6:{port}"),
    ] {
        let (status, body) = ask(&s, &get_naming("/v1/status", "HTTP/1.1", Some(&host))).await;
        assert_eq!(status, 421, "GET /v1/status naming {host}: {body}");
        let update = format!(
            "POST /v1/update HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n\
             Connection: close\r\n\r\n"
        );
        let (status, body) = ask(&s, &update).await;
        assert_eq!(status, 421, "POST /v1/update naming {host}: {body}");
    }
    s.assert_nothing_sent();
    let update = format!(
        "POST /v1/update HTTP/1.1\r\nHost: tidewatch.example.com\r\nAuthorization: Bearer {TOKEN}\r\n\
         Connection: close\r\n\r\n"
    );
    let (status, body) = ask(&s, &update).await;
    assert_eq!(status, 202, "{body}");
    assert!(s.triggers.try_recv().is_ok());
}

#[tokio::test]
async fn beyond_loopback_without_allowed_hosts_any_host_is_served() {
    let s = serve_configured(Some(TOKEN), Some(HOOK_SECRET), |config| {
        config.listen.set_ip("0.0.0.0".parse().unwrap());
        config.public_read = true;
    })
    .await;
    let (status, body) = ask(
        &s,
        &get_naming("/v1/status", "HTTP/1.1", Some("tidewatch.example.com")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// A reverse proxy on the same machine (Caddy, by default) passes the public name on.
#[tokio::test]
async fn on_loopback_allowed_hosts_add_a_proxys_name() {
    let s = serve_configured(None, None, |config| {
        config.allowed_hosts = Some(vec![crate::config::HostName::parse(
            "tidewatch.example.com",
        )
        .unwrap()]);
    })
    .await;
    let (status, body) = ask(
        &s,
        &get_naming("/v1/status", "HTTP/1.1", Some("tidewatch.example.com")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = ask(
        &s,
        &get_naming("/v1/status", "HTTP/1.1", Some("evil.example")),
    )
    .await;
    assert_eq!(status, 421, "{body}");
    let (status, body) = ask(&s, &get_naming("/v1/status", "HTTP/1.1", Some("localhost"))).await;
    assert_eq!(status, 200, "{body}");
}

/// `X-Hub-Signature-256` as GitHub computes it.
fn github_signature(secret: &str, body: &str) -> String {
    use aws_lc_rs::hmac;
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        body.as_bytes(),
    );
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

async fn deliver_github(s: &Served, event: &str, body: &str, signature: Option<&str>) -> u16 {
    let mut request = s
        .http
        .post(s.url("/v1/hooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
        .header("user-agent", "GitHub-Hookshot/044aadd")
        .body(body.to_string());
    if let Some(signature) = signature {
        request = request.header("x-hub-signature-256", signature);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn a_signed_github_package_push_queues_its_ghcr_reference() {
    let mut s = serve_guarded().await;
    let body = super::github::tests::package_event("published", "CONTAINER", "main");
    let signature = github_signature(HOOK_SECRET, &body);
    assert_eq!(
        deliver_github(&s, "package", &body, Some(&signature)).await,
        202
    );
    assert_eq!(
        s.triggers.try_recv().ok(),
        Some(Trigger::Images(vec![
            "ghcr.io/octo-org/hello-world:main".into()
        ]))
    );
}

#[tokio::test]
async fn a_github_delivery_unsigned_or_signed_otherwise_is_401_and_sends_nothing() {
    let mut s = serve_guarded().await;
    let body = super::github::tests::package_event("published", "CONTAINER", "main");
    let wrong_secret = github_signature("hook-0123456789abcdeX", &body);
    let other_body = github_signature(HOOK_SECRET, &body.replace("main", "evil"));
    let bearer_is_not_enough = s
        .http
        .post(s.url("/v1/hooks/github"))
        .bearer_auth(HOOK_SECRET)
        .header("content-type", "application/json")
        .header("x-github-event", "package")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(bearer_is_not_enough.status(), 401);
    for signature in [None, Some(wrong_secret.as_str()), Some(other_body.as_str())] {
        assert_eq!(
            deliver_github(&s, "package", &body, signature).await,
            401,
            "{signature:?}"
        );
    }
    s.assert_nothing_sent();
    // Without a hook secret nothing can be verified: refused even on loopback.
    let mut open = serve_with(None, None).await;
    assert_eq!(
        deliver_github(&open, "package", &body, Some(&wrong_secret)).await,
        401
    );
    open.assert_nothing_sent();
}

#[tokio::test]
async fn signed_github_events_that_are_not_container_pushes_are_202_and_send_nothing() {
    let mut s = serve_guarded().await;
    let ping = r#"{"zen": "Keep it logically awesome.", "hook_id": 1}"#;
    let deleted = super::github::tests::package_event("deleted", "CONTAINER", "main");
    let npm = super::github::tests::package_event("published", "npm", "1.0.0");
    let untagged = super::github::tests::package_event("published", "CONTAINER", "");
    for (event, body) in [
        ("ping", ping),
        ("push", ping),
        ("package", deleted.as_str()),
        ("package", npm.as_str()),
        ("package", untagged.as_str()),
    ] {
        let signature = github_signature(HOOK_SECRET, body);
        assert_eq!(
            deliver_github(&s, event, body, Some(&signature)).await,
            202,
            "{event}"
        );
    }
    s.assert_nothing_sent();
    let garbage = r#"{"action": 7}"#;
    let signature = github_signature(HOOK_SECRET, garbage);
    assert_eq!(
        deliver_github(&s, "package", garbage, Some(&signature)).await,
        400
    );
    s.assert_nothing_sent();
}

/// POSTs `body` as JSON to `path`, with `bearer` as the bearer token when given.
async fn post_json(s: &Served, path: &str, body: &str, bearer: Option<&str>) -> reqwest::Response {
    let mut request = s
        .http
        .post(s.url(path))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_docker_hub_push_queues_its_reference_with_the_secret_in_the_header_or_the_path() {
    let mut s = serve_guarded().await;
    let body = super::dockerhub::tests::push_body("acme/app", "latest");
    let expected = Some(Trigger::Images(vec!["docker.io/acme/app:latest".into()]));
    for (path, bearer) in [
        ("/v1/hooks/dockerhub".to_string(), Some(HOOK_SECRET)),
        (format!("/v1/hooks/dockerhub/{HOOK_SECRET}"), None),
    ] {
        let r = post_json(&s, &path, &body, bearer).await;
        assert_eq!(r.status(), 202, "{path}");
        assert_eq!(s.triggers.try_recv().ok(), expected, "{path}");
    }
}

#[tokio::test]
async fn a_docker_hub_push_without_the_secret_is_401_and_sends_nothing() {
    let mut s = serve_guarded().await;
    let body = super::dockerhub::tests::push_body("acme/app", "latest");
    for path in [
        "/v1/hooks/dockerhub".to_string(),
        "/v1/hooks/dockerhub/hook-0123456789abcdeX".to_string(),
        format!("/v1/hooks/dockerhub/{TOKEN}"),
        format!("/v1/hooks/dockerhub?secret={HOOK_SECRET}"),
    ] {
        let r = post_json(&s, &path, &body, None).await;
        // A secret in the query is refused outright, as for the registry hook.
        let expected = if path.contains('?') { 400 } else { 401 };
        assert_eq!(r.status(), expected, "{path}");
        let text = r.text().await.unwrap();
        assert!(
            !text.contains(HOOK_SECRET),
            "the secret is not echoed: {text}"
        );
    }
    s.assert_nothing_sent();
    let other_registry = super::dockerhub::tests::push_body("ghcr.io/acme/app", "latest");
    let path = format!("/v1/hooks/dockerhub/{HOOK_SECRET}");
    let r = post_json(&s, &path, &other_registry, None).await;
    assert_eq!(r.status(), 400);
    s.assert_nothing_sent();
}

#[tokio::test]
async fn rollback_and_release_need_the_token_and_queue_an_action_the_board_follows() {
    let mut s = serve_guarded().await;
    for path in ["/v1/rollback?container=web", "/v1/release?container=web"] {
        let r = s.http.post(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} without the token");
        let r = s
            .http
            .post(s.url(path))
            .bearer_auth("token-0123456789abcdeX")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path} with a wrong token");
    }
    s.assert_nothing_sent();
    for (path, bad) in [
        ("/v1/rollback", "?container=NAME is required"),
        ("/v1/release?container=%20", "must not be empty"),
        (
            "/v1/release?container=web&force=true",
            "expected ?container=NAME",
        ),
    ] {
        let r = s
            .http
            .post(s.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{path}");
        assert!(r.text().await.unwrap().contains(bad), "{path}");
    }
    s.assert_nothing_sent();

    let r = s
        .http
        .post(s.url("/v1/rollback?container=/web"))
        .bearer_auth(TOKEN)
        .header("origin", &s.base)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["queued"], "rollback");
    assert_eq!(body["container"], "web");
    let id = body["action"].as_u64().unwrap();
    let trigger = s.triggers.try_recv().unwrap();
    assert_eq!(
        trigger,
        Trigger::Rollback {
            container: "web".into()
        }
    );
    let r = s
        .http
        .post(s.url("/v1/release?container=db"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(
        s.triggers.try_recv().unwrap(),
        Trigger::Release {
            container: "db".into()
        }
    );

    // The daemon's side: taken, then finished; /v1/status shows where each stands.
    s.board.action_started(&trigger);
    s.board
        .action_finished(&trigger, true, "web: rolled back".into());
    let status: serde_json::Value = s
        .http
        .get(s.url("/v1/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let actions = status["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 2, "{status:#}");
    assert_eq!(actions[0]["id"], id);
    assert_eq!(actions[0]["action"], "rollback");
    assert_eq!(actions[0]["state"], "done");
    assert_eq!(actions[0]["detail"], "web: rolled back");
    assert_eq!(actions[1]["action"], "release");
    assert_eq!(actions[1]["state"], "queued");
}

#[tokio::test]
async fn rollback_and_release_are_refused_where_no_token_is_configured() {
    let mut s = serve_with(None, None).await;
    for path in ["/v1/rollback?container=web", "/v1/release?container=web"] {
        let r = s.http.post(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 403, "{path}");
        assert!(r.text().await.unwrap().contains("needs the API token"));
    }
    s.assert_nothing_sent();
}

#[tokio::test]
async fn a_browser_post_from_another_site_is_refused_by_its_fetch_metadata() {
    let mut s = serve_guarded().await;
    for site in ["cross-site", "same-site"] {
        let r = s
            .http
            .post(s.url("/v1/update?container=web"))
            .bearer_auth(TOKEN)
            .header("sec-fetch-site", site)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{site}");
    }
    s.assert_nothing_sent();
    let r = s
        .http
        .post(s.url("/v1/update?container=web"))
        .bearer_auth(TOKEN)
        .header("sec-fetch-site", "same-origin")
        .header("origin", &s.base)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

#[tokio::test]
async fn the_board_is_served_with_a_strict_policy_and_escapes_what_it_shows() {
    let s = serve_guarded().await;
    let hostile = "<img src=x onerror=alert(1)>";
    let mut report = a_cycle_that_updated_web_and_holds_api();
    report.containers[1].notes.available_version = Some(hostile.into());
    report.containers[1].notes.changes_url = Some("javascript:alert(1)".into());
    s.board.update(&report, Utc::now(), Utc::now());

    let r = s.http.get(s.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = r.text().await.unwrap();
    assert!(!html.contains(hostile), "{html}");
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{html}"
    );
    assert!(!html.contains("javascript:"), "{html}");
    assert!(html.contains("data-container=\"web\""), "{html}");
    assert!(html.contains("<script src=\"/board.js\" defer></script>"));
    assert!(!html.contains("<script>"), "no inline script");

    for (path, kind, text) in [
        ("/board.js", "text/javascript", "textContent"),
        ("/board.css", "text/css", "prefers-color-scheme"),
    ] {
        let r = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind),
            "{path}"
        );
        assert!(r.text().await.unwrap().contains(text), "{path}");
    }
}

#[tokio::test]
async fn beyond_loopback_the_board_shows_no_data_until_the_script_has_the_token() {
    let s = serve_as(Some(TOKEN), Some(HOOK_SECRET), "0.0.0.0").await;
    s.board.update(
        &a_cycle_that_updated_web_and_holds_api(),
        Utc::now(),
        Utc::now(),
    );
    let r = s.http.get(s.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"locked\""), "{html}");
    assert!(!html.contains("data-container"), "{html}");
    let r = s.http.get(s.url("/v1/status")).send().await.unwrap();
    assert_eq!(r.status(), 401);
}
