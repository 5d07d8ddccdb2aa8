//! The push webhooks: a registry's notifications (`/v1/hooks/registry`), GitHub's package
//! events (`/v1/hooks/github`) and Docker Hub's (`/v1/hooks/dockerhub`). Each reads a bounded
//! body in bounded time, finds the references a push names and queues a check of them; the
//! daemon then checks only containers and services that follow those references.

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::dockerhub::parse_dockerhub;
use super::github::{parse_github, signature_ok, GithubEvent};
use super::hook::parse_hook;
use super::{auth, error, ApiState, Trigger};

/// `POST /v1/hooks/registry` (the hook secret was checked by the route's middleware).
pub(super) async fn post_registry_hook(
    State(state): State<ApiState>,
    request: Request,
) -> Response {
    let body = match read_body(&state, request).await {
        Ok(body) => body,
        Err(refused) => return refused,
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
    queue(&state, found.images, found.ignored)
}

/// `POST /v1/hooks/github`: GitHub signs each delivery with the webhook's secret, which must be
/// `[api] hook_secret_file`'s; GitHub cannot send a bearer token.
pub(super) async fn post_github_hook(State(state): State<ApiState>, request: Request) -> Response {
    let header = |headers: &HeaderMap, name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let event = header(request.headers(), "x-github-event").unwrap_or_default();
    let signature = header(request.headers(), "x-hub-signature-256");
    let body = match read_body(&state, request).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let Some(secret) = state.hook_secret.as_ref() else {
        return error(
            StatusCode::UNAUTHORIZED,
            "GitHub signs its deliveries: set [api] hook_secret_file and give the webhook the same secret",
        );
    };
    if !signature_ok(secret.expose().as_bytes(), &body, signature.as_deref()) {
        tracing::info!("GitHub webhook refused: X-Hub-Signature-256 missing or wrong");
        return error(
            StatusCode::UNAUTHORIZED,
            "X-Hub-Signature-256 is not the body's HMAC-SHA256 under [api] hook_secret_file",
        );
    }
    match parse_github(&event, &body) {
        Ok(GithubEvent::Pushed(image)) => {
            tracing::info!(%image, "GitHub package push notified");
            queue(&state, vec![image], 0)
        }
        Ok(GithubEvent::Ignored(why)) => {
            // Debug-formatted: the event name is the caller's text.
            tracing::info!(event = ?event, "GitHub webhook ignored: {why}");
            ignored()
        }
        Err(e) => {
            tracing::info!("GitHub webhook refused: {e}");
            error(StatusCode::BAD_REQUEST, &e.to_string())
        }
    }
}

/// `POST /v1/hooks/dockerhub` with the hook secret as a bearer token (checked by the route's
/// middleware).
pub(super) async fn post_dockerhub_hook(
    State(state): State<ApiState>,
    request: Request,
) -> Response {
    dockerhub(state, request).await
}

/// `POST /v1/hooks/dockerhub/<secret>`: Docker Hub sends no header of the user's choosing, so
/// the secret is the last part of the path. Compared in constant time, never logged.
pub(super) async fn post_dockerhub_hook_in_path(
    State(state): State<ApiState>,
    Path(secret): Path<String>,
    request: Request,
) -> Response {
    if !auth::allowed(state.hook_secret.as_ref(), Some(&secret)) {
        tracing::info!("Docker Hub webhook refused: wrong secret in the path");
        return error(
            StatusCode::UNAUTHORIZED,
            "the path must end with the secret from [api] hook_secret_file",
        );
    }
    dockerhub(state, request).await
}

async fn dockerhub(state: ApiState, request: Request) -> Response {
    let body = match read_body(&state, request).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    match parse_dockerhub(&body) {
        Ok(Some(image)) => {
            tracing::info!(%image, "Docker Hub push notified");
            queue(&state, vec![image], 0)
        }
        Ok(None) => {
            tracing::info!("Docker Hub webhook ignored: the push names no tag");
            ignored()
        }
        Err(e) => {
            tracing::info!("Docker Hub webhook refused: {e}");
            error(StatusCode::BAD_REQUEST, &e.to_string())
        }
    }
}

/// The body, read here rather than by an extractor to bound how long it may take (its size is
/// bounded by the route's `DefaultBodyLimit`).
async fn read_body(state: &ApiState, request: Request) -> Result<Bytes, Response> {
    match tokio::time::timeout(state.body_read_timeout, Bytes::from_request(request, state)).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(e)) => Err(error(e.status(), &e.body_text())),
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive in time",
        )),
    }
}

/// Queues a check of `images`: `202` with what was queued, `503` when the daemon cannot take it.
fn queue(state: &ApiState, images: Vec<String>, ignored: usize) -> Response {
    if let Err(why) = state.send(Trigger::Images(images.clone())) {
        return error(StatusCode::SERVICE_UNAVAILABLE, why);
    }
    (
        StatusCode::ACCEPTED,
        Json(json!({ "queued": images, "ignored": ignored })),
    )
        .into_response()
}

/// `202` for a delivery acknowledged and acted on by doing nothing: the sender must not retry.
fn ignored() -> Response {
    (
        StatusCode::ACCEPTED,
        Json(json!({ "queued": [], "ignored": 1 })),
    )
        .into_response()
}
