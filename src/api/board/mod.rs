//! The status board (#16): `GET /` serves one page, rendered on the server from the same
//! [`StatusSnapshot`] as `GET /v1/status`, so it reads without JavaScript; `/board.js` then
//! refreshes it by polling `/v1/status` and adds the actions (check now, update, roll back,
//! release), which send the API token from `sessionStorage` as `Authorization: Bearer`.
//!
//! Every asset is embedded in the binary. The page runs no inline script or style: the
//! Content-Security-Policy allows only this origin's `/board.js` and `/board.css`, no frames,
//! no form posts, so a string that slipped past escaping still could not run.

mod render;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::ApiState;

pub use render::{escape, page};

/// The script: polling, rendering with `textContent`, the token and the actions.
pub const SCRIPT: &str = include_str!("board.js");
/// The style sheet: light and dark by `prefers-color-scheme`, narrow screens.
pub const STYLE: &str = include_str!("board.css");

/// Only this origin's script, style and requests; nothing framed, posted or based elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The headers every board response carries.
fn hardened(content_type: &'static str, cache: &'static str, body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    for (name, value) in [
        ("content-security-policy", CSP),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

/// `GET /`: the page. When reads need the token (beyond loopback, without `public_read`) it
/// carries no data: the script asks for the token and fetches the status with it.
pub(super) async fn get_page(State(state): State<ApiState>) -> Response {
    let html = if state.read_token.is_some() {
        page(None)
    } else {
        page(Some(&state.board.snapshot()))
    };
    hardened("text/html; charset=utf-8", "no-store", html)
}

/// `GET /board.js`.
pub(super) async fn get_script() -> Response {
    hardened("text/javascript; charset=utf-8", "no-cache", SCRIPT)
}

/// `GET /board.css`.
pub(super) async fn get_style() -> Response {
    hardened("text/css; charset=utf-8", "no-cache", STYLE)
}
