//! The HTTP API of `tidewatch run`: health, Prometheus metrics, the status of the last cycle,
//! the status board, and triggers (`POST /v1/update`, `/v1/rollback`, `/v1/release`, a
//! registry's push webhook).
//!
//! The API runs no cycle itself: it reads the [`StatusBoard`] and [`Metrics`] the daemon
//! records into, and sends [`Trigger`]s on a channel the daemon receives from. So a request
//! never waits for a cycle, and two cycles never run at once.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /healthz` | `200 ok` |
//! | `GET /metrics` | Prometheus text (token beyond loopback, unless `public_read`) |
//! | `GET /v1/status` | [`StatusSnapshot`] as JSON (token beyond loopback, unless `public_read`) |
//! | `POST /v1/update[?container=NAME][&force=true]` | token: `202`, sends [`Trigger::Cycle`] |
//! | `POST /v1/rollback?container=NAME` | token (one must be configured): `202`, sends [`Trigger::Rollback`] |
//! | `POST /v1/release?container=NAME` | token (one must be configured): `202`, sends [`Trigger::Release`] |
//! | `GET /` | the status board ([`board`]): HTML; its data needs the token where `/v1/status` does |
//! | `GET /board.js`, `GET /board.css` | the board's script and style sheet |
//! | `POST /v1/hooks/registry` | hook secret: `202`, sends [`Trigger::Images`] |
//! | `POST /v1/hooks/github` | signed with the hook secret: `202`, sends [`Trigger::Images`] for a container push |
//! | `POST /v1/hooks/dockerhub[/SECRET]` | hook secret (bearer or path): `202`, sends [`Trigger::Images`] |
//!
//! A request must name the API's own host: on loopback, a loopback name, and the names of
//! `[api] allowed_hosts` ([`rebinding`]). A `POST` from another origin is refused, and its body
//! must be JSON ([`forgery`]). Each connection has [`ApiConfig::header_read_timeout`] to send a
//! request head, and at most [`ApiConfig::max_connections`] are served at once (#13).

mod actions;
mod auth;
pub mod board;
mod dockerhub;
mod forgery;
mod github;
mod hook;
mod push_hooks;
mod rebinding;
mod status;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::Semaphore;

use crate::config::{ApiConfig, Secret};
use crate::image_ref::ImageRef;
use crate::metrics::{self, Metrics};
use crate::shutdown::Shutdown;

pub use actions::{Action, ActionKind, ActionState, KEPT_ACTIONS};
pub use hook::{parse_hook, HookError, HookImages};
pub use status::{
    AgentFacts, EngineFacts, LastCycle, NextCycle, StatusBoard, StatusRow, StatusSnapshot,
    STATUS_HISTORY,
};

/// How many triggers may wait for the daemon; beyond that the API answers 503.
pub const TRIGGER_QUEUE: usize = 16;

/// The largest webhook body accepted (413 beyond). Distribution batches events, but a batch of
/// even a few hundred stays far below this.
pub const HOOK_BODY_LIMIT: usize = 1024 * 1024;

/// How long requests still being answered at shutdown may take before [`serve`] returns anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How long a webhook body may take to arrive once its head has (408 beyond). A registry's
/// notification is a few KiB; even the largest body accepted needs only ~35 KiB/s. Without
/// it, a caller past the secret could hold a connection open by sending a byte at a time.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The pause after a failed `accept` (out of descriptors, most likely) before the next: the
/// failure repeats at once, and a tight loop would take a core while it lasts.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// A request for the daemon to run a cycle sooner than its schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// `POST /v1/update`: a cycle over every container, or just `container`.
    Cycle {
        /// Only this container (by name).
        container: Option<String>,
        /// `force=true`: let updates through closed maintenance windows (`Agent::cycle`'s
        /// `force`).
        force: bool,
    },
    /// A registry push: check (and update) only the containers that use these references,
    /// normalised as [`ImageRef`] prints them (`host/repo:tag`).
    Images(Vec<String>),
    /// `POST /v1/rollback`: back to the image `container` ran before its last update, as
    /// `tidewatch rollback` does.
    Rollback {
        /// The container (by name).
        container: String,
    },
    /// `POST /v1/release`: lift the quarantined digests and the rollback hold of `container`.
    Release {
        /// The container (by name).
        container: String,
    },
}

impl Trigger {
    /// Whether this trigger asks for the container `name` created from `image`, so the daemon
    /// can narrow a cycle to what the trigger names.
    pub fn selects(&self, name: &str, image: &str) -> bool {
        match self {
            Trigger::Cycle { container, .. } => container.as_deref().is_none_or(|c| c == name),
            Trigger::Images(images) => ImageRef::parse(image)
                .map(|r| images.contains(&r.to_string()))
                .unwrap_or(false),
            Trigger::Rollback { container } | Trigger::Release { container } => container == name,
        }
    }
}

/// The channel the API sends triggers on; the daemon keeps the receiver.
pub fn trigger_channel() -> (mpsc::Sender<Trigger>, mpsc::Receiver<Trigger>) {
    mpsc::channel(TRIGGER_QUEUE)
}

/// What the handlers share, and the limits [`serve`] applies. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    triggers: mpsc::Sender<Trigger>,
    board: StatusBoard,
    metrics: Metrics,
    token: Option<Secret>,
    /// The token `GET /v1/status` and `/metrics` need: `None` on loopback or with
    /// `public_read`.
    read_token: Option<Secret>,
    hook_secret: Option<Secret>,
    /// The names requests may give in `Host`.
    hosts: rebinding::Hosts,
    /// How [`serve`] serves connections: `[api] header_read_timeout` and `max_connections`.
    header_read_timeout: Duration,
    max_connections: usize,
    /// [`BODY_READ_TIMEOUT`], shorter in tests.
    body_read_timeout: Duration,
}

impl ApiState {
    /// The state for `config`'s secrets, sending on `triggers` and reading `board` and
    /// `metrics` (clones of those the daemon records into).
    pub fn new(
        config: &ApiConfig,
        triggers: mpsc::Sender<Trigger>,
        board: StatusBoard,
        metrics: Metrics,
    ) -> ApiState {
        ApiState {
            triggers,
            board,
            metrics,
            token: config.token.clone(),
            read_token: if config.listen.ip().is_loopback() || config.public_read {
                None
            } else {
                config.token.clone()
            },
            hook_secret: config.hook_secret.clone(),
            hosts: rebinding::Hosts::new(
                config.listen.ip().is_loopback(),
                config.allowed_hosts.as_deref(),
            ),
            header_read_timeout: config.header_read_timeout,
            max_connections: config.max_connections,
            body_read_timeout: BODY_READ_TIMEOUT,
        }
    }

    /// This state with another [`BODY_READ_TIMEOUT`], so that a test need not wait for it.
    #[cfg(test)]
    fn with_body_read_timeout(mut self, timeout: Duration) -> ApiState {
        self.body_read_timeout = timeout;
        self
    }

    /// Queues `trigger` without waiting: a full queue already holds cycles that will run.
    /// The error says why it was not queued (the request is answered 503).
    fn send(&self, trigger: Trigger) -> Result<(), &'static str> {
        self.triggers.try_send(trigger).map_err(|e| match e {
            TrySendError::Full(_) => {
                "too many triggers are waiting for the daemon; try again later"
            }
            TrySendError::Closed(_) => "the daemon is stopping",
        })
    }
}

/// The routes, for [`serve`] and for tests that drive them directly.
pub fn router(state: ApiState) -> Router {
    // Layers added later run first: the origin, then the secret, then the body's type.
    let guarded = |handler: axum::routing::MethodRouter<ApiState>| {
        handler
            .route_layer(middleware::from_fn(forgery::json_body))
            .route_layer(middleware::from_fn_with_state(
                state.clone(),
                auth::require_token,
            ))
            .route_layer(middleware::from_fn(forgery::same_origin))
    };
    // A push webhook: not from a web page, then (where the caller can send one) the hook
    // secret as a bearer token, then a body declared JSON and bounded in size. GitHub's
    // deliveries carry a signature instead (checked by the handler, which needs the body);
    // Docker Hub's may carry the secret in the path.
    let push_hook = |handler: axum::routing::MethodRouter<ApiState>, bearer_secret: bool| {
        let handler = handler.route_layer(middleware::from_fn(forgery::json_body));
        let handler = if bearer_secret {
            handler.route_layer(middleware::from_fn_with_state(
                state.clone(),
                auth::require_hook_secret,
            ))
        } else {
            handler
        };
        handler
            .route_layer(middleware::from_fn(forgery::same_origin))
            .layer(DefaultBodyLimit::max(HOOK_BODY_LIMIT))
    };
    let hook = push_hook(post(push_hooks::post_registry_hook), true);
    let github = push_hook(post(push_hooks::post_github_hook), false);
    let dockerhub = push_hook(post(push_hooks::post_dockerhub_hook), true);
    let dockerhub_in_path = push_hook(post(push_hooks::post_dockerhub_hook_in_path), false);
    let read = |handler: axum::routing::MethodRouter<ApiState>| {
        handler.route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_read_token,
        ))
    };
    let named = Router::new()
        .route("/metrics", read(get(get_metrics)))
        .route("/v1/status", read(get(get_status)))
        .route("/v1/update", guarded(post(post_update)))
        .route("/v1/rollback", guarded(post(post_rollback)))
        .route("/v1/release", guarded(post(post_release)))
        .route("/", get(board::get_page))
        .route("/board.js", get(board::get_script))
        .route("/board.css", get(board::get_style))
        .route("/v1/hooks/registry", hook)
        .route("/v1/hooks/github", github)
        .route("/v1/hooks/dockerhub", dockerhub)
        .route("/v1/hooks/dockerhub/{secret}", dockerhub_in_path)
        // Outermost, so it runs first: a page that reached the API under its own name gets
        // nothing else to go on.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            rebinding::named_host,
        ));
    Router::new()
        .route("/healthz", get(get_healthz))
        .merge(named)
        .with_state(state)
}

/// Answers on `listener` until `shutdown` fires, then lets open requests finish for a few
/// seconds. The caller binds, so a busy port fails at start-up with the daemon's context.
///
/// At most `max_connections` connections are served at once: beyond that, `accept` waits, so
/// further clients wait in the kernel's backlog (holding no descriptor of the agent's) until
/// a connection closes. A connection that sends no complete request head within
/// `header_read_timeout` (from when it opens, or since the last response) is closed, so a
/// slot is never held for long by a client that sends nothing.
pub async fn serve(
    listener: TcpListener,
    state: ApiState,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "HTTP API listening");
    }
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(state.header_read_timeout);
    let slots = Arc::new(Semaphore::new(state.max_connections));
    let service = TowerToHyperService::new(router(state));
    let open = GracefulShutdown::new();
    let mut stop = shutdown;
    loop {
        let slot = tokio::select! {
            _ = stop.wait() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                // Never closed; were it, no connection could be served.
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            _ = stop.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("HTTP API: accepting a connection: {e}");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
        };
        let connection = open.watch(http.serve_connection(TokioIo::new(stream), service.clone()));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("HTTP API connection: {e}");
            }
            drop(slot);
        });
    }
    // No new connections from here; those open finish the request they are answering.
    drop(listener);
    tokio::select! {
        _ = open.shutdown() => {}
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("HTTP API: requests still open at shutdown were cut off");
        }
    }
    Ok(())
}

/// A JSON error body: `{"error": "..."}`.
fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn get_healthz() -> &'static str {
    "ok"
}

async fn get_metrics(State(state): State<ApiState>) -> Response {
    // Containers by status come from the board, which knows the whole picture even after a
    // cycle that looked at only some containers.
    state.board.read(|s| {
        state
            .metrics
            .set_containers(s.containers.iter().map(|r| &r.status))
    });
    match state.metrics.encode() {
        Ok(text) => ([(CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the metrics could not be encoded",
        ),
    }
}

async fn get_status(State(state): State<ApiState>) -> Json<StatusSnapshot> {
    Json(state.board.snapshot())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateParams {
    container: Option<String>,
    #[serde(default)]
    force: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContainerParams {
    container: Option<String>,
}

/// A refusal: the status and the message of its [`error`] body.
type Refusal = (StatusCode, String);

/// The container a query names, trimmed of blanks and docker's leading `/`; an empty one is
/// refused.
fn container_param(container: Option<String>) -> Result<Option<String>, Refusal> {
    match container.map(|c| c.trim().trim_start_matches('/').to_string()) {
        Some(c) if c.is_empty() => Err((
            StatusCode::BAD_REQUEST,
            "container must not be empty".to_string(),
        )),
        c => Ok(c),
    }
}

/// Queues `trigger` for the daemon, recorded on the board as an action: `202` with `body`
/// and the action's id, or `503` when it could not be queued.
fn queue(state: &ApiState, trigger: Trigger, mut body: serde_json::Value) -> Response {
    let id = state.board.queue_action(&trigger);
    if let Err(why) = state.send(trigger) {
        if let Some(id) = id {
            state.board.drop_action(id, why);
        }
        return error(StatusCode::SERVICE_UNAVAILABLE, why);
    }
    body["action"] = json!(id);
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

async fn post_update(
    State(state): State<ApiState>,
    params: Result<Query<UpdateParams>, QueryRejection>,
) -> Response {
    let params = match params {
        Ok(Query(p)) => p,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("{} (expected ?container=NAME&force=true)", e.body_text()),
            )
        }
    };
    let container = match container_param(params.container) {
        Ok(c) => c,
        Err((status, why)) => return error(status, &why),
    };
    // Forcing lets updates through closed maintenance windows: not for whoever can reach a
    // loopback port. With a token configured, `auth::require_token` has already checked it.
    if params.force && state.token.is_none() {
        return error(
            StatusCode::FORBIDDEN,
            "force=true needs the API token: set [api] token_file and send it as `Authorization: Bearer <token>`",
        );
    }
    tracing::info!(container = ?container, force = params.force, "update requested over the API");
    let body = json!({ "queued": "cycle", "container": container, "force": params.force });
    let trigger = Trigger::Cycle {
        container,
        force: params.force,
    };
    queue(&state, trigger, body)
}

/// The container a rollback or release names. Both override what the agent decided (a
/// quarantine, a newer digest), so, like `force`, they need a configured token: not for
/// whoever can reach a loopback port.
fn named_container(
    state: &ApiState,
    params: Result<Query<ContainerParams>, QueryRejection>,
    what: &str,
) -> Result<String, Refusal> {
    let params = params.map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("{} (expected ?container=NAME)", e.body_text()),
        )
    })?;
    if state.token.is_none() {
        return Err((
            StatusCode::FORBIDDEN,
            format!("{what} needs the API token: set [api] token_file and send it as `Authorization: Bearer <token>`"),
        ));
    }
    container_param(params.0.container)?.ok_or_else(|| {
        (
            StatusCode::BAD_REQUEST,
            "?container=NAME is required".to_string(),
        )
    })
}

/// A request about one named container, queued as `trigger(name)`; `queued` names it in the
/// answer and the log, `what` in a refusal.
fn queue_named(
    state: &ApiState,
    params: Result<Query<ContainerParams>, QueryRejection>,
    what: &str,
    queued: &str,
    trigger: fn(String) -> Trigger,
) -> Response {
    let container = match named_container(state, params, what) {
        Ok(c) => c,
        Err((status, why)) => return error(status, &why),
    };
    tracing::info!(?container, "{queued} requested over the API");
    let body = json!({ "queued": queued, "container": container });
    queue(state, trigger(container), body)
}

async fn post_rollback(
    State(state): State<ApiState>,
    params: Result<Query<ContainerParams>, QueryRejection>,
) -> Response {
    queue_named(&state, params, "a rollback", "rollback", |container| {
        Trigger::Rollback { container }
    })
}

async fn post_release(
    State(state): State<ApiState>,
    params: Result<Query<ContainerParams>, QueryRejection>,
) -> Response {
    queue_named(&state, params, "releasing a hold", "release", |container| {
        Trigger::Release { container }
    })
}

#[cfg(test)]
mod tests;
