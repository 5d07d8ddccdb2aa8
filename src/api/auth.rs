//! Who may call what: the bearer token for `/v1/update` (and, beyond loopback, for
//! `/v1/status` and `/metrics`), the shared secret for the registry webhook. Both travel only in
//! `Authorization: Bearer`: a secret in the URL would land in proxies' access logs.
//! Secrets are compared in constant time and never logged.

use axum::extract::{Query, Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{error, ApiState};
use crate::config::Secret;

/// Middleware: `/v1/update` needs the API token.
pub(super) async fn require_token(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    if allowed(state.token.as_ref(), bearer(request.headers()).as_deref()) {
        next.run(request).await
    } else {
        refuse("a bearer token from [api] token_file is required")
    }
}

/// Middleware: `/v1/status` and `/metrics` need the API token when the API listens beyond
/// loopback (unless `[api] public_read`): they name containers, images, digests and errors.
pub(super) async fn require_read_token(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    if allowed(
        state.read_token.as_ref(),
        bearer(request.headers()).as_deref(),
    ) {
        next.run(request).await
    } else {
        refuse("a bearer token from [api] token_file is required (the API listens beyond loopback; [api] public_read = true opens this to everyone)")
    }
}

/// Middleware: the webhook needs the hook secret as a bearer token. `?secret=` (accepted before
/// #13) is refused outright, right or wrong, so that senders still using it are told to move.
pub(super) async fn require_hook_secret(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    let in_query =
        Query::<SecretParam>::try_from_uri(request.uri()).is_ok_and(|q| q.0.secret.is_some());
    if in_query {
        tracing::info!("registry webhook refused: the secret was sent in the URL");
        return error(
            StatusCode::BAD_REQUEST,
            "the hook secret is not accepted in the URL (?secret=), where proxies log it: send it as `Authorization: Bearer <secret>`, and consider replacing the secret",
        );
    }
    if allowed(
        state.hook_secret.as_ref(),
        bearer(request.headers()).as_deref(),
    ) {
        next.run(request).await
    } else {
        refuse("the secret from [api] hook_secret_file is required as `Authorization: Bearer <secret>`")
    }
}

#[derive(Deserialize)]
struct SecretParam {
    secret: Option<String>,
}

/// With no secret configured (validation allows that on loopback only) everyone may call.
pub(super) fn allowed(expected: Option<&Secret>, given: Option<&str>) -> bool {
    match (expected, given) {
        (None, _) => true,
        (Some(expected), Some(given)) => same(given, expected),
        (Some(_), None) => false,
    }
}

/// Constant time in the content; only a length mismatch returns early, and the length of a
/// random token tells an attacker nothing useful.
fn same(given: &str, expected: &Secret) -> bool {
    given.as_bytes().ct_eq(expected.expose().as_bytes()).into()
}

/// The credentials of `Authorization: Bearer <credentials>` (the scheme is case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim().to_string())
}

fn refuse(message: &str) -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, message);
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Bearer realm=\"tidewatch\""),
    );
    response.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(authorization: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(authorization).unwrap());
        h
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer(&headers("Bearer abc")).as_deref(), Some("abc"));
        assert_eq!(bearer(&headers("bearer  abc ")).as_deref(), Some("abc"));
        assert_eq!(bearer(&headers("Basic abc")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn only_the_exact_secret_is_allowed() {
        let secret = Secret::new("0123456789abcdef");
        assert!(allowed(Some(&secret), Some("0123456789abcdef")));
        assert!(!allowed(Some(&secret), Some("0123456789abcdeF")));
        assert!(!allowed(Some(&secret), Some("0123456789abcdef0")));
        assert!(!allowed(Some(&secret), Some("")));
        assert!(!allowed(Some(&secret), None));
        assert!(allowed(None, None));
    }
}
