//! Notifications end to end, against receivers on 127.0.0.1 run by the test itself: a small
//! HTTP server and a small SMTP server that record what they were sent.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::config::Config;
use crate::plan::detect::{CheckRow, Status};
use crate::report::{CycleReport, StepOutcome, StepResult};

const OLD: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const NEW: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn event(container: &str, kind: EventKind) -> Event {
    Event {
        container: container.to_string(),
        image: format!("127.0.0.1:5000/{container}:latest"),
        event: kind,
        from_digest: Some(OLD.to_string()),
        to_digest: Some(NEW.to_string()),
        detail: String::new(),
        notes: Default::default(),
    }
}

fn step(container: &str, outcome: StepOutcome, detail: &str) -> StepResult {
    StepResult {
        container: container.to_string(),
        image: format!("127.0.0.1:5000/{container}:latest"),
        from_digest: Some(OLD.to_string()),
        to_digest: Some(NEW.to_string()),
        outcome,
        detail: detail.to_string(),
        notes: Default::default(),
    }
}

fn row(container: &str, status: Status) -> CheckRow {
    CheckRow {
        container: container.to_string(),
        image: format!("127.0.0.1:5000/{container}:latest"),
        current_digest: Some(OLD.to_string()),
        available_digest: Some(NEW.to_string()),
        status,
        detail: None,
        notes: Default::default(),
        signature: None,
    }
}

/// Retries in milliseconds rather than seconds.
fn fast() -> Retry {
    Retry {
        attempts: 5,
        first_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(40),
        attempt_timeout: Duration::from_secs(10),
    }
}

fn notifications(toml: &str) -> Notifications {
    let config = Config::parse(toml, "agent.toml").expect("test config is valid");
    Notifications::new(&config.notify)
        .expect("notifiers build")
        .with_retry(fast())
}

/// One HTTP request as the receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("a UTF-8 body")
    }
}

/// An HTTP server on 127.0.0.1 that answers the given statuses in turn, then 200, one request
/// per connection, and records every request.
struct HttpReceiver {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Received>>>,
}

/// `(path, Location)`: a request for `path` is answered `307` to `Location`.
type Redirects = Arc<Vec<(String, String)>>;

impl HttpReceiver {
    async fn start(statuses: &[u16]) -> HttpReceiver {
        HttpReceiver::start_with(statuses, Vec::new()).await
    }

    /// [`HttpReceiver::start`], redirecting requests for the given paths.
    async fn start_with(statuses: &[u16], redirects: Vec<(String, String)>) -> HttpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let statuses = Arc::new(Mutex::new(
            statuses.iter().copied().collect::<VecDeque<_>>(),
        ));
        let redirects: Redirects = Arc::new(redirects);
        let recorded = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (seen, statuses, redirects) =
                    (recorded.clone(), statuses.clone(), redirects.clone());
                tokio::spawn(async move {
                    let _ = serve_http(stream, seen, statuses, redirects).await;
                });
            }
        });
        HttpReceiver { addr, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }
}

async fn serve_http(
    stream: TcpStream,
    seen: Arc<Mutex<Vec<Received>>>,
    statuses: Arc<Mutex<VecDeque<u16>>>,
    redirects: Redirects,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).await?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await?;
    let answer = match redirects.iter().find(|(from, _)| *from == path) {
        Some((_, to)) => format!("307 Moved\r\nlocation: {to}"),
        None => format!(
            "{} Test",
            statuses.lock().unwrap().pop_front().unwrap_or(200)
        ),
    };
    seen.lock().unwrap().push(Received {
        method,
        path,
        headers,
        body,
    });
    let stream = reader.get_mut();
    stream
        .write_all(
            format!("HTTP/1.1 {answer}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    stream.shutdown().await
}

/// One email as the SMTP receiver got it.
#[derive(Debug, Clone, Default)]
struct Mail {
    from: String,
    to: Vec<String>,
    data: String,
}

/// The smallest SMTP server lettre will talk to: 220, EHLO 250, MAIL/RCPT 250, DATA 354, "."
/// 250, QUIT 221.
async fn smtp_receiver() -> (SocketAddr, Arc<Mutex<Vec<Mail>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mails = Arc::new(Mutex::new(Vec::new()));
    let recorded = mails.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let mails = recorded.clone();
            tokio::spawn(async move {
                let _ = smtp_session(stream, mails).await;
            });
        }
    });
    (addr, mails)
}

async fn smtp_session(stream: TcpStream, mails: Arc<Mutex<Vec<Mail>>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 localhost test ESMTP\r\n").await?;
    let mut mail = Mail::default();
    while let Some(line) = lines.next_line().await? {
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            b"250 localhost\r\n"
        } else if let Some(from) = upper.strip_prefix("MAIL FROM:") {
            mail.from = line[line.len() - from.len()..].trim().to_string();
            b"250 OK\r\n"
        } else if let Some(to) = upper.strip_prefix("RCPT TO:") {
            mail.to
                .push(line[line.len() - to.len()..].trim().to_string());
            b"250 OK\r\n"
        } else if upper == "DATA" {
            write.write_all(b"354 go ahead\r\n").await?;
            while let Some(data) = lines.next_line().await? {
                if data == "." {
                    break;
                }
                mail.data.push_str(&data);
                mail.data.push('\n');
            }
            mails.lock().unwrap().push(std::mem::take(&mut mail));
            b"250 queued\r\n"
        } else if upper == "QUIT" {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else if upper == "RSET" || upper == "NOOP" {
            b"250 OK\r\n"
        } else {
            b"502 not implemented\r\n"
        };
        write.write_all(reply).await?;
    }
    Ok(())
}

#[tokio::test]
async fn three_events_make_one_webhook_post() {
    let receiver = HttpReceiver::start(&[]).await;
    let n = notifications(&format!(
        "[[notify]]\nkind = \"webhook\"\nurl = \"{}\"\n",
        receiver.url("/hooks/tidewatch")
    ));
    let mut web = event("web", EventKind::Updated);
    web.detail = "healthy on the new image".into();
    let events = vec![
        web,
        event("api", EventKind::RolledBack),
        event("db", EventKind::Failed),
    ];
    n.dispatch("box1", events).await.unwrap();

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let r = &requests[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/hooks/tidewatch")
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body = r.json();
    assert_eq!(body["host"], "box1");
    let events = body["events"].as_array().unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(
        events[0],
        json!({
            "container": "web",
            "image": "127.0.0.1:5000/web:latest",
            "event": "updated",
            "from_digest": OLD,
            "to_digest": NEW,
            "detail": "healthy on the new image",
        })
    );
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["updated", "rolled_back", "failed"]);
}

#[tokio::test]
async fn a_receiver_failing_twice_gets_the_message_on_the_third_try() {
    let receiver = HttpReceiver::start(&[503, 500]).await;
    let n = notifications(&format!(
        "[[notify]]\nkind = \"webhook\"\nurl = \"{}\"\n",
        receiver.url("/hook")
    ));
    n.dispatch("box1", vec![event("web", EventKind::Updated)])
        .await
        .unwrap();

    let requests = receiver.requests();
    assert_eq!(
        requests.len(),
        3,
        "two refusals, then the one that got through"
    );
    assert!(requests.iter().all(|r| r.body == requests[0].body));
    assert_eq!(requests[2].json()["events"][0]["container"], "web");
}

#[tokio::test]
async fn a_refusal_is_not_retried_and_an_outage_is_tried_a_bounded_number_of_times() {
    let refusing = HttpReceiver::start(&[404]).await;
    let down = HttpReceiver::start(&[503; 20]).await;
    let n = notifications(&format!(
        "[[notify]]\nkind = \"webhook\"\nurl = \"{}\"\n[[notify]]\nkind = \"webhook\"\nurl = \"{}\"\n",
        refusing.url("/gone"),
        down.url("/busy")
    ));
    n.dispatch("box1", vec![event("web", EventKind::Updated)])
        .await
        .unwrap();
    assert_eq!(refusing.requests().len(), 1);
    assert_eq!(down.requests().len(), 5);
}

#[tokio::test]
async fn each_notifier_gets_only_the_events_it_wants() {
    let receiver = HttpReceiver::start(&[]).await;
    let n = notifications(&format!(
        r#"
[[notify]]
kind = "webhook"
url = "{all}"
[[notify]]
kind = "webhook"
url = "{failures}"
events = ["failed", "rolled_back"]
[[notify]]
kind = "webhook"
url = "{available}"
events = ["update_available"]
"#,
        all = receiver.url("/all"),
        failures = receiver.url("/failures"),
        available = receiver.url("/available"),
    ));
    assert!(n.wants(EventKind::Failed) && n.wants(EventKind::UpdateAvailable));
    n.dispatch(
        "box1",
        vec![
            event("web", EventKind::Updated),
            event("api", EventKind::Updated),
            event("db", EventKind::Failed),
        ],
    )
    .await
    .unwrap();

    let mut requests = receiver.requests();
    requests.sort_by(|a, b| a.path.cmp(&b.path));
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/all", "/failures"], "nothing for /available");
    assert_eq!(requests[0].json()["events"].as_array().unwrap().len(), 3);
    let failures = requests[1].json();
    let failures = failures["events"].as_array().unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["container"], "db");
}

#[tokio::test]
async fn chat_services_get_their_own_format_and_tokens_go_in_headers() {
    let receiver = HttpReceiver::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let gotify_token = dir.path().join("gotify.token");
    std::fs::write(&gotify_token, "AbCdEf123\n").unwrap();
    let ntfy_token = dir.path().join("ntfy.token");
    std::fs::write(&ntfy_token, "tk_ntfy\n").unwrap();
    let n = notifications(&format!(
        r#"
[[notify]]
kind = "slack"
url = "{slack}"
[[notify]]
kind = "discord"
url = "{discord}"
[[notify]]
kind = "ntfy"
url = "{ntfy}"
token_file = "{ntfy_token}"
[[notify]]
kind = "gotify"
url = "{gotify}"
token_file = "{gotify_token}"
"#,
        slack = receiver.url("/services/T0/B0/slacksecret"),
        discord = receiver.url("/api/webhooks/1/discordsecret"),
        ntfy = receiver.url("/ops-alerts"),
        gotify = receiver.url("/"),
        ntfy_token = ntfy_token.display(),
        gotify_token = gotify_token.display(),
    ));
    n.dispatch(
        "box1",
        vec![
            event("web", EventKind::Updated),
            event("db", EventKind::Failed),
        ],
    )
    .await
    .unwrap();

    let requests = receiver.requests();
    assert_eq!(requests.len(), 4, "{requests:?}");
    let at = |prefix: &str| {
        requests
            .iter()
            .find(|r| r.path.starts_with(prefix))
            .unwrap_or_else(|| panic!("nothing posted to {prefix}"))
    };
    let slack = at("/services/").json();
    assert!(slack["text"]
        .as_str()
        .unwrap()
        .starts_with("*tidewatch on box1: 1 failed, 1 updated*\ndb failed to update"));
    let discord = at("/api/webhooks/").json();
    assert!(discord["content"]
        .as_str()
        .unwrap()
        .contains("\nweb updated: "));

    let ntfy = at("/ops-alerts");
    assert_eq!(
        ntfy.header("title"),
        Some("tidewatch on box1: 1 failed, 1 updated")
    );
    assert_eq!(ntfy.header("priority"), Some("high"));
    assert_eq!(ntfy.header("authorization"), Some("Bearer tk_ntfy"));
    assert!(ntfy.text().contains("web updated: "));

    let gotify = at("/message");
    assert_eq!(gotify.path, "/message", "the token is not in the URL");
    assert_eq!(gotify.header("x-gotify-key"), Some("AbCdEf123"));
    assert_eq!(gotify.json()["priority"], 8);
}

#[tokio::test]
async fn a_redirect_to_another_server_is_not_followed_and_gets_no_token() {
    // Two servers on loopback, told apart by their port: the second must see nothing.
    let elsewhere = HttpReceiver::start(&[]).await;
    let receiver = HttpReceiver::start_with(
        &[],
        vec![
            ("/message".to_string(), elsewhere.url("/message")),
            ("/ops".to_string(), elsewhere.url("/ops")),
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "AbCdEf123\n").unwrap();
    let n = notifications(&format!(
        "[[notify]]\nkind = \"gotify\"\nurl = \"{gotify}\"\ntoken_file = \"{token}\"\n\
         [[notify]]\nkind = \"ntfy\"\nurl = \"{ntfy}\"\ntoken_file = \"{token}\"\n",
        gotify = receiver.url("/"),
        ntfy = receiver.url("/ops"),
        token = token.display(),
    ));
    n.dispatch("box1", vec![event("web", EventKind::Updated)])
        .await
        .unwrap();

    let leaked: Vec<(String, bool)> = elsewhere
        .requests()
        .into_iter()
        .map(|r| {
            let token = r.header("x-gotify-key").is_some() || r.header("authorization").is_some();
            (r.path, token)
        })
        .collect();
    assert!(
        leaked.is_empty(),
        "(path, with a token) sent elsewhere: {leaked:?}"
    );
    // Asked once each: a redirect elsewhere needs a person, not another try.
    let mut paths: Vec<String> = receiver.requests().into_iter().map(|r| r.path).collect();
    paths.sort();
    assert_eq!(paths, ["/message", "/ops"]);

    // What the log says: where it pointed, as scheme://host:port only.
    let e = n.notifiers[0]
        .send("box1", &[event("web", EventKind::Updated)])
        .await
        .unwrap_err();
    assert!(matches!(e, NotifyError::Redirected { .. }), "{e}");
    assert!(!e.is_transient());
    let to = format!("http://{}", elsewhere.addr);
    assert!(
        e.to_string().contains(&format!("a redirect to {to},")),
        "{e}"
    );
}

#[tokio::test]
async fn a_redirect_on_the_same_server_is_followed_with_the_token() {
    let receiver = HttpReceiver::start_with(
        &[],
        vec![("/old/message".to_string(), "/new/message".to_string())],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "AbCdEf123\n").unwrap();
    let n = notifications(&format!(
        "[[notify]]\nkind = \"gotify\"\nurl = \"{url}\"\ntoken_file = \"{token}\"\n",
        url = receiver.url("/old"),
        token = token.display(),
    ));
    n.dispatch("box1", vec![event("web", EventKind::Updated)])
        .await
        .unwrap();

    let requests = receiver.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/old/message", "/new/message"]);
    assert_eq!(requests[1].header("x-gotify-key"), Some("AbCdEf123"));
    assert_eq!(requests[1].json()["title"], "tidewatch on box1: 1 updated");
}

#[tokio::test]
async fn one_email_names_every_container() {
    let (addr, mails) = smtp_receiver().await;
    let n = notifications(&format!(
        r#"
[[notify]]
kind = "email"
url = "smtp://{addr}"
from = "tidewatch@box1.example.com"
to = ["ops@example.com", "Dev Team <dev@example.com>"]
"#
    ));
    n.dispatch(
        "box1",
        vec![
            event("web", EventKind::Updated),
            event("api", EventKind::Updated),
            event("db", EventKind::RolledBack),
        ],
    )
    .await
    .unwrap();

    let mails = mails.lock().unwrap().clone();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = &mails[0];
    assert_eq!(mail.from, "<tidewatch@box1.example.com>");
    assert_eq!(mail.to, ["<ops@example.com>", "<dev@example.com>"]);
    assert!(
        mail.data
            .contains("Subject: tidewatch on box1: 1 rolled back, 2 updated"),
        "{}",
        mail.data
    );
    for name in ["web updated", "api updated", "db rolled back"] {
        assert!(
            mail.data.contains(name),
            "{name} missing from\n{}",
            mail.data
        );
    }
}

#[tokio::test]
async fn errors_and_targets_never_show_a_webhook_secret() {
    // A port nobody listens on: bind one, then let it go.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let config = Config::parse(
        &format!("[[notify]]\nkind = \"slack\"\nurl = \"http://{addr}/services/T0/B0/SeCrEt?token=hush\"\n"),
        "agent.toml",
    )
    .unwrap();
    let http = reqwest::Client::new();
    let notifier = Notifier::new(&config.notify[0], &http).unwrap();
    assert_eq!(notifier.target(), format!("http://{addr}"));
    assert!(!format!("{:?}", config.notify[0]).contains("SeCrEt"));

    let err = notifier
        .send("box1", &[event("web", EventKind::Updated)])
        .await
        .expect_err("nothing listens there");
    assert!(err.is_transient(), "{err}");
    let shown = err.to_string();
    assert!(
        !shown.contains("SeCrEt") && !shown.contains("hush"),
        "{shown}"
    );
}

#[test]
fn a_cycle_report_becomes_events() {
    let report = CycleReport {
        recovered: vec![step(
            "cache",
            StepOutcome::Updated,
            "finished after a restart",
        )],
        containers: vec![
            row("web", Status::UpToDate),
            row("api", Status::UpdateAvailable),
            row("metrics", Status::UpdateAvailable),
            row("tool", Status::Unknown),
        ],
        plan: Default::default(),
        monitor_only: Default::default(),
        rules: Default::default(),
        results: vec![
            step("api", StepOutcome::Updated, "healthy on the new image"),
            step(
                "db",
                StepOutcome::RolledBack,
                "new container exited with code 3",
            ),
            step("worker", StepOutcome::Failed, "pull failed"),
            step(
                "sidecar",
                StepOutcome::Skipped,
                "its dependency db was not updated",
            ),
        ],
    };
    let events = events_of(&report, |name| name == "metrics" || name == "tool");
    let got: Vec<(&str, EventKind)> = events
        .iter()
        .map(|e| (e.container.as_str(), e.event))
        .collect();
    assert_eq!(
        got,
        [
            ("cache", EventKind::Updated),
            ("api", EventKind::Updated),
            ("db", EventKind::RolledBack),
            ("worker", EventKind::Failed),
            ("metrics", EventKind::UpdateAvailable),
        ]
    );
    let metrics = &events[4];
    assert_eq!(metrics.from_digest.as_deref(), Some(OLD));
    assert_eq!(metrics.to_digest.as_deref(), Some(NEW));
    assert_eq!(events[2].detail, "new container exited with code 3");
}

#[tokio::test]
async fn each_announcement_passes_dedupe_once_also_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = SharedStore::open(dir.path()).await.unwrap();
    let first = dedupe(
        &store,
        vec![
            event("web", EventKind::UpdateAvailable),
            event("web", EventKind::UpdateAvailable),
            event("db", EventKind::Failed),
        ],
    )
    .await;
    assert_eq!(first.len(), 2, "a repeat within one batch passes once");

    let mut newer = event("web", EventKind::UpdateAvailable);
    newer.to_digest = Some("sha256:3333".into());
    let second = dedupe(
        &store,
        vec![
            event("web", EventKind::UpdateAvailable),
            event("web", EventKind::Updated),
            newer.clone(),
        ],
    )
    .await;
    let got: Vec<(EventKind, &str)> = second.iter().map(|e| (e.event, e.digest())).collect();
    assert_eq!(
        got,
        [
            (EventKind::Updated, NEW),
            (EventKind::UpdateAvailable, "sha256:3333")
        ],
        "another event or digest is another announcement"
    );
    drop(store);

    let store = SharedStore::open(dir.path()).await.unwrap();
    let after_restart = dedupe(
        &store,
        vec![
            event("web", EventKind::UpdateAvailable),
            event("db", EventKind::Failed),
            newer,
        ],
    )
    .await;
    assert!(after_restart.is_empty(), "{after_restart:?}");
}

#[tokio::test]
async fn announce_sends_a_monitor_only_update_once() {
    let receiver = HttpReceiver::start(&[]).await;
    let n = notifications(&format!(
        "[[notify]]\nkind = \"webhook\"\nurl = \"{}\"\nevents = [\"update_available\"]\n",
        receiver.url("/hook")
    ));
    let dir = tempfile::tempdir().unwrap();
    let store = SharedStore::open(dir.path()).await.unwrap();
    let report = CycleReport {
        containers: vec![row("metrics", Status::UpdateAvailable)],
        results: vec![step("web", StepOutcome::Updated, "healthy")],
        ..Default::default()
    };
    let monitor_only = |name: &str| name == "metrics";

    n.announce(&store, "box1", &report, monitor_only)
        .await
        .await
        .unwrap();
    n.announce(&store, "box1", &report, monitor_only)
        .await
        .await
        .unwrap();

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1, "the second cycle has nothing new");
    let body = requests[0].json();
    assert_eq!(body["events"].as_array().unwrap().len(), 1);
    assert_eq!(body["events"][0]["container"], "metrics");

    // `updated` was not wanted by any notifier, so it was not recorded as announced either.
    let later = dedupe(&store, vec![event("web", EventKind::Updated)]).await;
    assert_eq!(later.len(), 1);
}

#[tokio::test]
async fn without_notifiers_nothing_is_recorded() {
    let n = Notifications::new(&[]).unwrap();
    assert!(n.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let store = SharedStore::open(dir.path()).await.unwrap();
    let report = CycleReport {
        results: vec![step("web", StepOutcome::Updated, "healthy")],
        ..Default::default()
    };
    n.announce(&store, "box1", &report, |_| false)
        .await
        .await
        .unwrap();
    assert_eq!(
        dedupe(&store, vec![event("web", EventKind::Updated)])
            .await
            .len(),
        1
    );
}

/// An update with release notes whose version label tries to format, link and ping.
fn event_with_notes(container: &str) -> Event {
    Event {
        notes: ReleaseNotes {
            current_version: Some("1.0.0".into()),
            available_version: Some("2.0.0 [x](https://evil) <!channel> @everyone *b*".into()),
            changes_url: Some("https://github.com/acme/app/compare/aaa1...bbb2".into()),
        },
        ..event(container, EventKind::Updated)
    }
}

#[tokio::test]
async fn release_notes_reach_every_notifier_in_its_own_form_and_labels_cannot_inject_markup() {
    let receiver = HttpReceiver::start(&[]).await;
    let (addr, mails) = smtp_receiver().await;
    let n = notifications(&format!(
        r#"
[[notify]]
kind = "webhook"
url = "{webhook}"
[[notify]]
kind = "slack"
url = "{slack}"
[[notify]]
kind = "discord"
url = "{discord}"
[[notify]]
kind = "ntfy"
url = "{ntfy}"
[[notify]]
kind = "email"
url = "smtp://{addr}"
from = "tidewatch@box1.example.com"
to = ["ops@example.com"]
"#,
        webhook = receiver.url("/hook"),
        slack = receiver.url("/services/T0/B0/x"),
        discord = receiver.url("/api/webhooks/1/x"),
        ntfy = receiver.url("/ops"),
    ));
    n.dispatch("box1", vec![event_with_notes("web")])
        .await
        .unwrap();
    let requests = receiver.requests();
    let at = |prefix: &str| {
        requests
            .iter()
            .find(|r| r.path.starts_with(prefix))
            .unwrap_or_else(|| panic!("nothing posted to {prefix}"))
    };
    let link = "https://github.com/acme/app/compare/aaa1...bbb2";

    let webhook = at("/hook").json();
    let e = &webhook["events"][0];
    assert_eq!(e["current_version"], "1.0.0", "{webhook}");
    assert_eq!(
        e["available_version"],
        "2.0.0 [x](https://evil) <!channel> @everyone *b*"
    );
    assert_eq!(e["changes_url"], link);
    assert_eq!(e["container"], "web", "the old fields stay");

    let slack = at("/services/").json()["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        slack.ends_with(&format!(
            "version 1.0.0 -&gt; 2.0.0 [x](https://evil) &lt;!channel&gt; @everyone \
             \u{200B}*\u{200B}b\u{200B}*\u{200B} <{link}|changes>"
        )),
        "{slack}"
    );
    assert_eq!(slack.matches('<').count(), 1, "one link only: {slack}");

    let discord = at("/api/webhooks/").json()["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        discord.ends_with(&format!(
            "version 1.0.0 -\\> 2.0.0 \\[x\\](https://evil) \\<!channel\\> @\u{200B}everyone \
             \\*b\\* [changes](<{link}>)"
        )),
        "{discord}"
    );

    let ntfy = at("/ops").text();
    assert!(
        ntfy.contains(" version 1.0.0 -> 2.0.0 ") && ntfy.ends_with(&format!("changes: {link}")),
        "{ntfy}"
    );

    let mails = mails.lock().unwrap().clone();
    // Quoted-printable folds long lines with a soft break.
    let text = mails[0].data.replace("=\r\n", "").replace("=\n", "");
    assert!(text.contains(&format!("changes: {link}")), "{text}");
    assert!(text.contains("version 1.0.0 -> 2.0.0"), "{text}");
}

#[test]
fn a_cycle_reports_release_notes_on_its_events() {
    let notes = event_with_notes("web").notes;
    let report = CycleReport {
        containers: vec![CheckRow {
            notes: notes.clone(),
            ..row("cache", Status::UpdateAvailable)
        }],
        results: vec![StepResult {
            notes: notes.clone(),
            ..step("web", StepOutcome::RolledBack, "unhealthy")
        }],
        ..CycleReport::default()
    };
    let events = events_of(&report, |_| true);
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.notes == notes), "{events:?}");
}

#[test]
fn a_rejected_signature_is_a_blocked_event_and_a_let_through_one_is_not() {
    let mut blocked = row("web", Status::Error);
    blocked.signature = Some(crate::plan::detect::Signature::Rejected);
    blocked.detail = Some("blocked by verify rule 1 (r/web): no signature".into());
    let mut warned = row("api", Status::UpdateAvailable);
    warned.signature = Some(crate::plan::detect::Signature::Unverified);
    let report = CycleReport {
        containers: vec![blocked, warned, row("db", Status::Error)],
        ..CycleReport::default()
    };
    let events = events_of(&report, |_| false);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].event, EventKind::Blocked);
    assert_eq!(events[0].container, "web");
    assert_eq!(events[0].to_digest.as_deref(), Some(NEW));
    assert!(events[0].detail.ends_with("no signature"));
    assert_eq!(
        message::title("box", &events),
        "tidewatch on box: 1 blocked"
    );
}

#[test]
fn a_pushed_write_back_is_one_updated_event_per_pin_notify_rows_are_available_and_refused_pins_blocked(
) {
    use crate::gitops::checkout::Published;
    use crate::gitops::plan::{Pin, NOTIFY_ONLY};
    use crate::gitops::run::RepoReport;
    let mut watched = row("k8s/app.yaml#Deployment/app/app", Status::UpdateAvailable);
    watched.detail = Some(NOTIFY_ONLY.into());
    watched.available_digest = Some("sha256:cccc".into());
    let mut refused = row("stacks/api/compose.yaml#api", Status::Error);
    refused.signature = Some(crate::plan::detect::Signature::Rejected);
    refused.detail = Some("blocked by verify rule 1 (r/api): no signature".into());
    refused.available_digest = Some("sha256:dddd".into());
    let pushed = RepoReport {
        repo: "file:///srv/deploy.git (main)".into(),
        rows: vec![
            row("stacks/web/compose.yaml#web", Status::UpdateAvailable),
            watched,
            refused,
            row("stacks/db/compose.yaml#db", Status::Error),
        ],
        published: Some(Published::Pushed {
            commit: "0123456789abcdef0123".into(),
            attempts: 1,
        }),
        diff: None,
        message: None,
        pins: vec![Pin {
            row: "stacks/web/compose.yaml#web".into(),
            image: "registry.lan/app:stable".into(),
            old: None,
            new: "sha256:bbbb".into(),
            tag: None,
            link: None,
        }],
    };
    let events = events_of_write_back(&[pushed]);
    let shown: Vec<(&str, EventKind, Option<&str>, &str)> = events
        .iter()
        .map(|e| {
            (
                e.container.as_str(),
                e.event,
                e.to_digest.as_deref(),
                e.detail.as_str(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            (
                "stacks/web/compose.yaml#web",
                EventKind::Updated,
                Some("sha256:bbbb"),
                "pinned in git: commit 0123456789ab to file:///srv/deploy.git (main)"
            ),
            (
                "k8s/app.yaml#Deployment/app/app",
                EventKind::UpdateAvailable,
                Some("sha256:cccc"),
                "policy notify in file:///srv/deploy.git (main)"
            ),
            (
                "stacks/api/compose.yaml#api",
                EventKind::Blocked,
                Some("sha256:dddd"),
                "blocked by verify rule 1 (r/api): no signature in file:///srv/deploy.git (main)"
            ),
        ]
    );
}
