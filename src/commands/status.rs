//! `tidewatch status [--json]`: what the daemon is doing, for a person or a monitoring check.
//!
//! With `[api]`, from the running daemon's `GET /v1/status` (on the configured listener only,
//! with the configured token, bounded in size and time: the answer is untrusted like any
//! peer's). Without `[api]`, or when the daemon does not answer, from the state directory, which
//! knows the last cycle, quarantined digests, rollback holds and history, but not what the
//! registries offer now nor when the next cycle is due.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Exit, Failure};
use crate::api::{LastCycle, NextCycle};
use crate::config::{ApiConfig, Config};
use crate::error_chain::error_chain;
use crate::image_ref::short_digest;
use crate::output;
use crate::plan::detect::{CheckRow, Status};
use crate::plan::update::WaitReason;
use crate::state::{HistoryEntry, SharedStore, DB_FILE};

/// How many history entries `status` shows, newest first.
pub const STATUS_HISTORY: usize = 5;

/// How long the daemon has to answer, connection included. It answers from memory.
const API_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest `/v1/status` body read: a row is a few hundred bytes, so this is tens of
/// thousands of containers. Beyond it, the daemon is not believed.
const API_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Where a status came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The running daemon's API.
    Daemon,
    /// The state directory.
    StateDir,
}

/// An update found and held back, as `/v1/status` gives it in `pending`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// The container.
    pub container: String,
    /// The digest it would move to.
    pub to_digest: String,
    /// Why it waits, for people.
    pub reason: String,
    /// Why it waits, for scripts (as `/v1/status`'s `reason_kind`).
    pub reason_kind: String,
    /// When the wait ends by itself, if it does.
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
}

/// What `status --json` prints. Field names are a contract, documented in README.md.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusView {
    /// Where it came from.
    pub source: Source,
    /// The API address asked (`[api] listen`), `None` without `[api]`.
    pub api: Option<String>,
    /// Why the API was not used although `[api]` is set.
    pub api_error: Option<String>,
    /// The last cycle of the daemon; `None` before its first.
    pub last_cycle: Option<LastCycle>,
    /// When the next scheduled cycle is due (only the daemon knows).
    pub next_cycle: Option<NextCycle>,
    /// Containers with a newer image that the next cycle may apply (only the daemon knows).
    pub available: Vec<CheckRow>,
    /// Updates held back: by the daemon, every reason; from the state directory, quarantined
    /// digests and rollback holds only.
    pub held: Vec<Held>,
    /// Containers whose last check failed (only the daemon knows).
    pub errors: Vec<CheckRow>,
    /// The newest history entries, newest first.
    pub history: Vec<HistoryEntry>,
    /// The fields above that are empty because the source cannot know them.
    pub unknown: Vec<&'static str>,
}

impl StatusView {
    /// 0 when the last cycle had no failure (or none ran yet), 1 otherwise.
    pub fn exit(&self) -> Exit {
        match self.last_cycle {
            Some(c) if !c.succeeded => Exit::Failures,
            _ => Exit::Success,
        }
    }
}

/// The parts of `/v1/status` that `status` shows. Fields a daemon older than `status` lacks
/// default to empty.
#[derive(Debug, Deserialize)]
struct DaemonStatus {
    last_cycle: Option<LastCycle>,
    #[serde(default)]
    containers: Vec<CheckRow>,
    #[serde(default)]
    pending: Vec<Held>,
    #[serde(default)]
    next_cycle: Option<NextCycle>,
    #[serde(default)]
    history: Vec<HistoryEntry>,
}

/// What the state directory holds.
#[derive(Debug, Default)]
struct StateFacts {
    last_cycle: Option<LastCycle>,
    held: Vec<Held>,
    history: Vec<HistoryEntry>,
}

pub(super) async fn run(config: Arc<Config>, json: bool) -> Result<Exit, Failure> {
    let mut api_error = None;
    let mut view = None;
    if let Some(api) = &config.api {
        match fetch(api).await.and_then(|body| parse_daemon_status(&body)) {
            Ok(status) => view = Some(from_daemon(api, status)),
            Err(why) => {
                eprintln!(
                    "tidewatch: the daemon's API at {} did not answer ({why}); showing what the state directory holds",
                    api_address(api.listen)
                );
                api_error = Some(why);
            }
        }
    }
    let view = match view {
        Some(view) => view,
        None => {
            let facts = read_state(&config.agent.state_dir).await?;
            from_state(config.api.as_ref(), api_error, facts)
        }
    };
    if json {
        let text = serde_json::to_string_pretty(&view).context("encoding the status")?;
        println!("{text}");
    } else {
        print!(
            "{}",
            render(
                &view,
                &config.agent.state_dir.display().to_string(),
                Utc::now()
            )
        );
    }
    Ok(view.exit())
}

/// Where to reach a listener: a wildcard address (`0.0.0.0`, `::`) is reached on loopback.
fn api_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// `GET /v1/status` on the configured listener, with the token if one is configured. No proxy
/// (it would see the token) and no redirect (it could lead elsewhere) are followed.
async fn fetch(api: &ApiConfig) -> Result<Vec<u8>, String> {
    let url = format!("http://{}/v1/status", api_address(api.listen));
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(API_TIMEOUT)
        .build()
        .map_err(|e| error_chain(&e))?;
    let mut request = client.get(&url);
    if let Some(token) = &api.token {
        request = request.bearer_auth(token.expose());
    }
    let mut response = request.send().await.map_err(|e| error_chain(&e))?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(format!("it answered {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| error_chain(&e))? {
        if body.len() + chunk.len() > API_BODY_LIMIT {
            return Err(format!(
                "its answer is larger than {} MiB",
                API_BODY_LIMIT / 1024 / 1024
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn parse_daemon_status(body: &[u8]) -> Result<DaemonStatus, String> {
    serde_json::from_slice(body).map_err(|e| format!("its answer is not a status: {e}"))
}

fn from_daemon(api: &ApiConfig, status: DaemonStatus) -> StatusView {
    let held = status.pending;
    let is_held = |row: &CheckRow| held.iter().any(|h| h.container == row.container);
    let available = status
        .containers
        .iter()
        .filter(|r| r.status == Status::UpdateAvailable && !is_held(r))
        .cloned()
        .collect();
    let errors = status
        .containers
        .iter()
        .filter(|r| r.status == Status::Error)
        .cloned()
        .collect();
    let mut history = status.history;
    history.truncate(STATUS_HISTORY);
    StatusView {
        source: Source::Daemon,
        api: Some(api_address(api.listen).to_string()),
        api_error: None,
        last_cycle: status.last_cycle,
        next_cycle: status.next_cycle,
        available,
        held,
        errors,
        history,
        unknown: Vec::new(),
    }
}

fn from_state(api: Option<&ApiConfig>, api_error: Option<String>, facts: StateFacts) -> StatusView {
    StatusView {
        source: Source::StateDir,
        api: api.map(|a| api_address(a.listen).to_string()),
        api_error,
        last_cycle: facts.last_cycle,
        next_cycle: None,
        available: Vec::new(),
        held: facts.held,
        errors: Vec::new(),
        history: facts.history,
        unknown: vec!["next_cycle", "available", "errors"],
    }
}

/// Reads the state directory without creating it: a server where tidewatch never ran has no
/// state, and `status` is not the command that should make one.
async fn read_state(state_dir: &Path) -> anyhow::Result<StateFacts> {
    if !state_dir.join(DB_FILE).exists() {
        return Ok(StateFacts::default());
    }
    let store = SharedStore::open(state_dir)
        .await
        .context("opening the state store")?;
    store
        .with(|s| {
            let mut held: Vec<Held> = s
                .quarantined(None)?
                .into_iter()
                .map(|q| Held {
                    reason: WaitReason::Quarantined { why: q.reason }.to_string(),
                    reason_kind: "quarantined".to_string(),
                    container: q.container,
                    to_digest: q.digest,
                    until: None,
                })
                .collect();
            held.extend(s.holds()?.into_iter().map(|h| Held {
                container: h.container,
                to_digest: h.skipped_digest,
                reason: WaitReason::RollbackHold.to_string(),
                reason_kind: "rollback_hold".to_string(),
                until: None,
            }));
            Ok::<_, crate::state::StateError>(StateFacts {
                last_cycle: s.last_cycle()?,
                held,
                history: s.history(None, STATUS_HISTORY)?,
            })
        })
        .await
        .context("reading the state store")
}

/// The status for people. `state_dir` names the source when it is the state directory; `now`
/// dates what is relative ("5m ago").
fn render(view: &StatusView, state_dir: &str, now: DateTime<Utc>) -> String {
    const WHEN: &str = "%Y-%m-%d %H:%M:%S UTC";
    let mut out = String::new();
    let source = match (view.source, &view.api) {
        (Source::Daemon, Some(api)) => format!("the daemon at {api}"),
        (Source::Daemon, None) => "the daemon".to_string(),
        (Source::StateDir, Some(api)) => {
            format!("the state directory {state_dir} (the daemon at {api} did not answer)")
        }
        (Source::StateDir, None) => {
            format!("the state directory {state_dir} (no [api] to ask the daemon)")
        }
    };
    let _ = writeln!(out, "source:      {source}");
    match &view.last_cycle {
        Some(c) => {
            let took = (c.finished_at - c.started_at).to_std().unwrap_or_default();
            let n = c.counts;
            let _ = writeln!(
                out,
                "last cycle:  {} ({} ago), took {}: {}; {} updated, {} rolled back, {} failed, {} skipped, {} check errors",
                c.finished_at.format(WHEN),
                seconds(now - c.finished_at),
                humantime::format_duration(Duration::from_millis(
                    u64::try_from(took.as_millis()).unwrap_or(u64::MAX)
                )),
                if c.succeeded { "ok" } else { "FAILED" },
                n.updated,
                n.rolled_back,
                n.failed,
                n.skipped,
                n.check_errors
            );
        }
        None => {
            let _ = writeln!(out, "last cycle:  none recorded yet");
        }
    }
    match &view.next_cycle {
        Some(next) => {
            let _ = writeln!(
                out,
                "next cycle:  {} (in {}), {}",
                next.at.format(WHEN),
                seconds(next.at - now),
                next.reason
            );
        }
        None if view.unknown.contains(&"next_cycle") => {
            let _ = writeln!(out, "next cycle:  unknown without the daemon");
        }
        None => {
            let _ = writeln!(out, "next cycle:  not scheduled yet");
        }
    }
    if view.unknown.contains(&"available") {
        let _ = writeln!(
            out,
            "available:   unknown without the daemon (`tidewatch check` asks the registries)"
        );
    } else {
        let rows = view.available.iter().map(|r| {
            vec![
                r.container.clone(),
                r.image.clone(),
                short(r.available_digest.as_deref()),
            ]
        });
        section(&mut out, "available", &["CONTAINER", "IMAGE", "TO"], rows);
    }
    let rows = view.held.iter().map(|h| {
        vec![
            h.container.clone(),
            short(Some(&h.to_digest)),
            h.until
                .map_or("-".to_string(), |u| u.format(WHEN).to_string()),
            h.reason.clone(),
        ]
    });
    section(
        &mut out,
        "held",
        &["CONTAINER", "TO", "UNTIL", "REASON"],
        rows,
    );
    if !view.errors.is_empty() {
        let rows = view.errors.iter().map(|r| {
            vec![
                r.container.clone(),
                r.image.clone(),
                r.detail.clone().unwrap_or_default(),
            ]
        });
        section(&mut out, "errors", &["CONTAINER", "IMAGE", "DETAIL"], rows);
    }
    if view.history.is_empty() {
        let _ = writeln!(out, "history:     none");
    } else {
        let _ = writeln!(out, "history:     the newest {}", view.history.len());
        indent(&mut out, &output::history_table(&view.history));
    }
    out
}

fn short(digest: Option<&str>) -> String {
    digest.map_or("-".into(), |d| short_digest(d).to_string())
}

/// Whole seconds, as people read them ("4m 58s"); a time already past reads as 0s.
fn seconds(d: chrono::TimeDelta) -> String {
    let secs = u64::try_from(d.num_seconds()).unwrap_or(0);
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

/// `label:` and how many rows, then their table indented; `none` without rows.
fn section(
    out: &mut String,
    label: &str,
    header: &[&str],
    rows: impl Iterator<Item = Vec<String>>,
) {
    let rows: Vec<Vec<String>> = rows.collect();
    let label = format!("{label}:");
    if rows.is_empty() {
        let _ = writeln!(out, "{label:<12} none");
    } else {
        let _ = writeln!(out, "{label:<12} {}", rows.len());
        indent(out, &output::table(header, &rows));
    }
}

fn indent(out: &mut String, table: &str) {
    for line in table.lines() {
        let _ = writeln!(out, "  {line}");
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::api::{self, ApiState, StatusBoard};
    use crate::config::{Secret, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_CONNECTIONS};
    use crate::metrics::Metrics;
    use crate::shutdown;
    use crate::state::CycleCounts;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    /// `[api] listen` on every address of `port` (so reads need the token), with `token`.
    fn api_config(port: u16, token: Option<&str>) -> ApiConfig {
        ApiConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
            token: token.map(Secret::new),
            hook_secret: None,
            public_read: false,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            allowed_hosts: None,
        }
    }

    #[tokio::test]
    async fn the_token_is_sent_to_a_daemon_that_wants_it() {
        const TOKEN: &str = "token-0123456789abcdef";
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let config = api_config(port, Some(TOKEN));
        let (tx, _triggers) = api::trigger_channel();
        let state = ApiState::new(&config, tx, StatusBoard::default(), Metrics::new());
        let (stop, shutdown) = shutdown::channel();
        let server = tokio::spawn(api::serve(listener, state, shutdown));

        let answer = fetch(&config).await.unwrap();
        assert_eq!(parse_daemon_status(&answer).unwrap().last_cycle, None);
        for other in [Some("another-token-0123456789"), None] {
            let refused = fetch(&api_config(port, other)).await.unwrap_err();
            assert!(refused.contains("401"), "{refused}");
            assert!(!refused.contains(TOKEN), "{refused}");
        }
        stop.trigger();
        server.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn an_answer_larger_than_the_bound_is_not_read() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let peer = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = [0u8; 1024];
            let _ = stream.read(&mut head).await;
            let size = API_BODY_LIMIT + 1;
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n");
            stream.write_all(head.as_bytes()).await.unwrap();
            let chunk = vec![b' '; 64 * 1024];
            // The client hangs up once it has had enough.
            for _ in 0..=size / chunk.len() {
                if stream.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        });
        let refused = fetch(&api_config(port, None)).await.unwrap_err();
        assert!(refused.contains("larger than 16 MiB"), "{refused}");
        peer.abort();
    }

    fn empty_view() -> StatusView {
        from_state(None, None, StateFacts::default())
    }

    /// The `status --json` field names README.md documents, in its order.
    fn documented_fields() -> Vec<String> {
        let readme = include_str!("../../README.md");
        let line = readme
            .lines()
            .find(|l| l.starts_with("`status --json` prints `{"))
            .expect("README.md documents `status --json` in a line starting \"`status --json` prints `{\"");
        let inside = line
            .split_once("`{")
            .and_then(|(_, rest)| rest.split_once("}`"))
            .expect("the documented object ends with }`")
            .0;
        inside
            .split(',')
            .map(|f| f.trim().trim_matches('"').to_string())
            .collect()
    }

    #[test]
    fn status_json_has_exactly_the_fields_readme_documents() {
        let json = serde_json::to_value(empty_view()).unwrap();
        let fields: Vec<String> = json.as_object().unwrap().keys().cloned().collect();
        let mut documented = documented_fields();
        let mut sorted = fields.clone();
        sorted.sort();
        documented.sort();
        assert_eq!(sorted, documented, "README.md and `status --json` disagree");
    }

    #[test]
    fn a_failed_last_cycle_exits_1_and_none_or_a_good_one_exits_0() {
        let mut view = empty_view();
        assert_eq!(view.exit(), Exit::Success);
        let cycle = LastCycle {
            started_at: at("2026-12-07T11:00:00Z"),
            finished_at: at("2026-12-07T11:00:03Z"),
            succeeded: true,
            counts: CycleCounts::default(),
        };
        view.last_cycle = Some(cycle);
        assert_eq!(view.exit(), Exit::Success);
        view.last_cycle = Some(LastCycle {
            succeeded: false,
            ..cycle
        });
        assert_eq!(view.exit(), Exit::Failures);
    }

    #[test]
    fn a_daemon_answer_splits_available_held_and_errors() {
        let body = br#"{
            "last_cycle": {"started_at": "2026-12-07T11:00:00Z",
                           "finished_at": "2026-12-07T11:00:03Z", "succeeded": false},
            "containers": [
                {"container": "web", "image": "r/web:1", "current_digest": "sha256:a",
                 "available_digest": "sha256:b", "status": "update_available", "detail": null},
                {"container": "db", "image": "r/db:1", "current_digest": "sha256:c",
                 "available_digest": "sha256:d", "status": "update_available", "detail": null},
                {"container": "tool", "image": "r/tool:1", "current_digest": null,
                 "available_digest": null, "status": "error", "detail": "registry down"}
            ],
            "pending": [{"container": "db", "to_digest": "sha256:d", "reason": "monitor only",
                         "reason_kind": "monitor_only"}]
        }"#;
        // An answer of a daemon older than `status`: no counts, until, next_cycle or history.
        let status = parse_daemon_status(body).unwrap();
        let api = api_config(8787, None);
        let view = from_daemon(&api, status);
        assert_eq!(view.api.as_deref(), Some("127.0.0.1:8787"));
        assert_eq!(view.available.len(), 1);
        assert_eq!(view.available[0].container, "web");
        assert_eq!(view.held[0].container, "db");
        assert_eq!(view.held[0].until, None);
        assert_eq!(view.errors[0].container, "tool");
        assert_eq!(view.last_cycle.unwrap().counts, CycleCounts::default());
        assert_eq!(view.exit(), Exit::Failures);
        assert!(view.unknown.is_empty());
    }

    #[test]
    fn a_status_from_the_state_directory_says_what_it_cannot_know() {
        let text = render(&empty_view(), "/var/lib/tidewatch", Utc::now());
        assert!(text.contains("no [api]"), "{text}");
        assert!(
            text.contains("next cycle:  unknown without the daemon"),
            "{text}"
        );
        assert!(
            text.contains("available:   unknown without the daemon"),
            "{text}"
        );
        assert!(text.contains("last cycle:  none recorded yet"), "{text}");
    }

    #[test]
    fn the_daemon_is_asked_on_loopback_when_it_listens_everywhere() {
        assert_eq!(
            api_address("0.0.0.0:8787".parse().unwrap()).to_string(),
            "127.0.0.1:8787"
        );
        assert_eq!(
            api_address("[::]:8787".parse().unwrap()).to_string(),
            "[::1]:8787"
        );
        assert_eq!(
            api_address("192.168.1.5:8787".parse().unwrap()).to_string(),
            "192.168.1.5:8787"
        );
    }
}
