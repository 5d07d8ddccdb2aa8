//! The HTTP API of `tidewatch run`: health, Prometheus metrics, the status of the last cycle,
//! and triggers (`POST /v1/update`, a registry's push webhook).
//!
//! The API runs no cycle itself: it reads the [`StatusBoard`] and [`Metrics`] the daemon
//! records into, and sends [`Trigger`]s on a channel the daemon receives from. So a request
//! never waits for a cycle, and two cycles never run at once.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /healthz` | `200 ok` |
//! | `GET /metrics` | Prometheus text |
//! | `GET /v1/status` | [`StatusSnapshot`] as JSON |
//! | `POST /v1/update[?container=NAME][&force=true]` | token: `202`, sends [`Trigger::Cycle`] |
//! | `POST /v1/hooks/registry` | hook secret: `202`, sends [`Trigger::Images`] |

mod auth;
mod hook;
mod status;

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::mpsc::{self, error::TrySendError};

use crate::config::{ApiConfig, Secret};
use crate::image_ref::ImageRef;
use crate::metrics::{self, Metrics};
use crate::shutdown::Shutdown;

pub use hook::{parse_hook, HookError, HookImages};
pub use status::{LastCycle, StatusBoard, StatusSnapshot};

/// How many triggers may wait for the daemon; beyond that the API answers 503.
pub const TRIGGER_QUEUE: usize = 16;

/// The largest webhook body accepted (413 beyond). Distribution batches events, but a batch of
/// even a few hundred stays far below this.
pub const HOOK_BODY_LIMIT: usize = 1024 * 1024;

/// How long requests still being answered at shutdown may take before [`serve`] returns anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

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
        }
    }
}

/// The channel the API sends triggers on; the daemon keeps the receiver.
pub fn trigger_channel() -> (mpsc::Sender<Trigger>, mpsc::Receiver<Trigger>) {
    mpsc::channel(TRIGGER_QUEUE)
}

/// What the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    triggers: mpsc::Sender<Trigger>,
    board: StatusBoard,
    metrics: Metrics,
    token: Option<Secret>,
    hook_secret: Option<Secret>,
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
            hook_secret: config.hook_secret.clone(),
        }
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
    let update = post(post_update).route_layer(middleware::from_fn_with_state(
        state.clone(),
        auth::require_token,
    ));
    let hook = post(post_registry_hook)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_hook_secret,
        ))
        .layer(DefaultBodyLimit::max(HOOK_BODY_LIMIT));
    Router::new()
        .route("/healthz", get(get_healthz))
        .route("/metrics", get(get_metrics))
        .route("/v1/status", get(get_status))
        .route("/v1/update", update)
        .route("/v1/hooks/registry", hook)
        .with_state(state)
}

/// Answers on `listener` until `shutdown` fires, then lets open requests finish for a few
/// seconds. The caller binds, so a busy port fails at start-up with the daemon's context.
pub async fn serve(
    listener: TcpListener,
    state: ApiState,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "HTTP API listening");
    }
    let mut graceful = shutdown.clone();
    let server = axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { graceful.wait().await });
    let mut deadline = shutdown;
    tokio::select! {
        result = server => result,
        _ = async {
            deadline.wait().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::warn!("HTTP API: requests still open at shutdown were cut off");
            Ok(())
        }
    }
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
    let container = match params
        .container
        .map(|c| c.trim().trim_start_matches('/').to_string())
    {
        Some(c) if c.is_empty() => {
            return error(StatusCode::BAD_REQUEST, "container must not be empty")
        }
        c => c,
    };
    tracing::info!(container = ?container, force = params.force, "update requested over the API");
    let trigger = Trigger::Cycle {
        container: container.clone(),
        force: params.force,
    };
    if let Err(why) = state.send(trigger) {
        return error(StatusCode::SERVICE_UNAVAILABLE, why);
    }
    (
        StatusCode::ACCEPTED,
        Json(json!({ "queued": "cycle", "container": container, "force": params.force })),
    )
        .into_response()
}

async fn post_registry_hook(
    State(state): State<ApiState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return error(e.status(), &e.body_text()),
    };
    let found = match parse_hook(&body) {
        Ok(found) => found,
        Err(e) => {
            tracing::info!("registry webhook refused: {e}");
            return error(StatusCode::BAD_REQUEST, &e.to_string());
        }
    };
    // A registry resends what is not acknowledged, so events with nothing to follow (pulls,
    // blob pushes) are acknowledged too: 200 rather than 202, since nothing was queued.
    if found.images.is_empty() {
        tracing::debug!(
            ignored = found.ignored,
            "registry webhook: nothing to check"
        );
        return (
            StatusCode::OK,
            Json(json!({ "queued": [], "ignored": found.ignored })),
        )
            .into_response();
    }
    tracing::info!(images = ?found.images, "registry push notified");
    if let Err(why) = state.send(Trigger::Images(found.images.clone())) {
        return error(StatusCode::SERVICE_UNAVAILABLE, why);
    }
    (
        StatusCode::ACCEPTED,
        Json(json!({ "queued": found.images, "ignored": found.ignored })),
    )
        .into_response()
}

#[cfg(test)]
mod tests;
