//! What keeps a web page from using its visitor's browser against the API (cross-site request
//! forgery, #13): a page may send a "simple" `POST` anywhere, `text/plain` and without
//! credentials, and a loopback API without a token would act on it.
//!
//! So a request that changes state is refused when a browser says it comes from another origin
//! (`403`), and its body, if any, must be declared JSON (`415`): a page can declare that only
//! after a CORS preflight, which the API never grants. Clients that are not browsers (curl, CI,
//! registries) send no `Origin` and declare their JSON.

use axum::extract::Request;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN, TRANSFER_ENCODING};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::error;

/// Middleware: refuses a request whose `Origin` is not the API's own.
pub(super) async fn same_origin(request: Request, next: Next) -> Response {
    if is_same_origin(request.headers()) {
        next.run(request).await
    } else {
        // Debug-formatted: the header is the caller's text.
        tracing::info!(
            origin = ?request.headers().get(ORIGIN),
            "API request refused: from another origin"
        );
        error(
            StatusCode::FORBIDDEN,
            "requests from another origin (a web page) may not change anything here",
        )
    }
}

/// Middleware: refuses a request with a body that is not declared JSON.
pub(super) async fn json_body(request: Request, next: Next) -> Response {
    if !has_body(request.headers()) || declares_json(request.headers()) {
        next.run(request).await
    } else {
        error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a request body must be sent as Content-Type: application/json",
        )
    }
}

/// No `Origin` (not a browser, or a same-origin `GET`), or `http://` and the request's `Host`.
/// The API speaks plain HTTP, so its own origin is `http://`; `Origin: null` (a sandboxed or
/// local page) is another origin. A browser's `Sec-Fetch-Site`, when it sends one, must say
/// `same-origin` (or `none`: typed by the user): `same-site` covers the other ports of the same
/// host, which are other origins.
fn is_same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.as_bytes(), b"same-origin" | b"none") {
            return false;
        }
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let (Ok(origin), Some(Ok(host))) = (origin.to_str(), headers.get(HOST).map(|h| h.to_str()))
    else {
        return false;
    };
    let Some(authority) = strip_prefix_ignore_case(origin.trim(), "http://") else {
        return false;
    };
    normal_authority(authority) == normal_authority(host)
}

/// `host[:port]` lowercased, without the default port (an origin never names it, a `Host`
/// may).
fn normal_authority(authority: &str) -> String {
    let authority = authority.trim().to_ascii_lowercase();
    match authority.strip_suffix(":80") {
        Some(host) => host.to_string(),
        None => authority,
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Whether a body follows the head: a `Content-Length` other than 0, or any transfer coding.
fn has_body(headers: &HeaderMap) -> bool {
    match headers.get(CONTENT_LENGTH) {
        Some(length) => length.as_bytes() != b"0",
        None => headers.contains_key(TRANSFER_ENCODING),
    }
}

/// `application/json` or a JSON-based type (`application/<something>+json`, as a distribution
/// registry's `application/vnd.docker.distribution.events.v1+json`), with any parameters.
fn declares_json(headers: &HeaderMap) -> bool {
    let Some(Ok(value)) = headers.get(CONTENT_TYPE).map(|v| v.to_str()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .and_then(|subtype| subtype.strip_suffix("+json"))
            .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        h
    }

    #[test]
    fn the_origin_must_be_plain_http_on_the_requested_host_and_port() {
        let host = ("host", "127.0.0.1:8787");
        assert!(is_same_origin(&headers(&[host])));
        assert!(is_same_origin(&headers(&[
            host,
            ("origin", "http://127.0.0.1:8787")
        ])));
        assert!(is_same_origin(&headers(&[
            ("host", "Tidewatch.Example"),
            ("origin", "HTTP://tidewatch.example")
        ])));
        assert!(is_same_origin(&headers(&[
            ("host", "tidewatch.example:80"),
            ("origin", "http://tidewatch.example")
        ])));
        for origin in [
            "http://127.0.0.1:8788",
            "http://127.0.0.1",
            "https://127.0.0.1:8787",
            "http://localhost:8787",
            "http://127.0.0.1:8787.evil.example",
            "null",
            "",
        ] {
            assert!(
                !is_same_origin(&headers(&[host, ("origin", origin)])),
                "{origin}"
            );
        }
        assert!(!is_same_origin(&headers(&[(
            "origin",
            "http://127.0.0.1:8787"
        )])));
        let own = ("origin", "http://127.0.0.1:8787");
        for site in ["same-origin", "none"] {
            assert!(is_same_origin(&headers(&[
                host,
                own,
                ("sec-fetch-site", site)
            ])));
        }
        for site in ["same-site", "cross-site", ""] {
            assert!(
                !is_same_origin(&headers(&[host, own, ("sec-fetch-site", site)])),
                "{site}"
            );
        }
    }

    #[test]
    fn json_and_json_based_types_are_json() {
        for value in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/vnd.docker.distribution.events.v1+json",
        ] {
            assert!(
                declares_json(&headers(&[("content-type", value)])),
                "{value}"
            );
        }
        for value in [
            "text/plain",
            "text/plain; charset=application/json",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/+json",
            "text/x+json",
            "application/jsonp",
        ] {
            assert!(
                !declares_json(&headers(&[("content-type", value)])),
                "{value}"
            );
        }
        assert!(!declares_json(&HeaderMap::new()));
    }

    #[test]
    fn a_body_is_announced_by_its_length_or_coding() {
        assert!(!has_body(&HeaderMap::new()));
        assert!(!has_body(&headers(&[("content-length", "0")])));
        assert!(has_body(&headers(&[("content-length", "2")])));
        assert!(has_body(&headers(&[("transfer-encoding", "chunked")])));
    }
}
