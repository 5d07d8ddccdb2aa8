//! What keeps a web page from reaching the API under a name of its own (DNS rebinding, #13): a
//! page on evil.example whose name is then pointed at 127.0.0.1 sends requests its browser
//! deems same-origin, so the `Origin` check ([`super::forgery`]) passes and the answers are the
//! page's to read. Only the `Host` header gives it away: it names evil.example.
//!
//! So the `Host` must name this machine: always when the API listens on loopback (`localhost`,
//! `*.localhost`, `127.x.x.x`, `[::1]`, any port), and beyond loopback once `[api]
//! allowed_hosts` is set; its names are accepted too (a reverse proxy that passes the public
//! name on). Another name gets `421 Misdirected Request` (RFC 9110, 15.5.20): the request was
//! meant for another site, and this server will not answer for one. `/healthz` is not
//! checked: it says and changes nothing, and health probes often name the address they dialled.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::HOST;
use axum::http::{StatusCode, Version};
use axum::middleware::Next;
use axum::response::Response;

use super::{error, ApiState};
use crate::config::HostName;

/// The names the API answers to.
#[derive(Debug, Clone)]
pub(super) enum Hosts {
    /// Any: a listener beyond loopback without `allowed_hosts`.
    Any,
    /// The loopback names and these.
    Only(Arc<[HostName]>),
}

impl Hosts {
    /// For a listener on a loopback address or not, with `allowed_hosts` as configured.
    pub(super) fn new(loopback: bool, allowed_hosts: Option<&[HostName]>) -> Hosts {
        match (loopback, allowed_hosts) {
            (false, None) => Hosts::Any,
            (_, allowed) => Hosts::Only(allowed.unwrap_or_default().into()),
        }
    }
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// It names a host this API does not answer to.
    OtherHost,
    /// HTTP/1.1 without `Host`, which the protocol requires (RFC 9112, 3.2).
    NoHost,
}

/// Middleware: refuses a request that names a host the API does not answer to.
pub(super) async fn named_host(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    // A header that is not text names nothing this API answers to.
    let host = headers.get(HOST).map(|h| h.to_str().unwrap_or("\u{fffd}"));
    let authority = request.uri().authority().map(|a| a.as_str());
    match judge(&state.hosts, request.version(), host, authority) {
        Ok(()) => next.run(request).await,
        Err(Refusal::OtherHost) => {
            // Debug-formatted: the header is the caller's text.
            tracing::info!(
                host = ?headers.get(HOST),
                "API request refused: it names another host"
            );
            error(
                StatusCode::MISDIRECTED_REQUEST,
                "this API answers only to requests that name it (localhost, 127.0.0.1, [::1] or a name in [api] allowed_hosts): a web page whose DNS name was pointed at this machine (DNS rebinding) may not use it",
            )
        }
        Err(Refusal::NoHost) => error(
            StatusCode::BAD_REQUEST,
            "an HTTP/1.1 request must name the host it is for in a Host header",
        ),
    }
}

/// Whether a request over `version`, with the `Host` header `host` and the request target's
/// `authority` (only the absolute form has one), names a host of `hosts`.
///
/// An HTTP/1.0 request naming none is let through: browsers always name one, so it is not a
/// page's, and a client that old reached the listener directly.
fn judge(
    hosts: &Hosts,
    version: Version,
    host: Option<&str>,
    authority: Option<&str>,
) -> Result<(), Refusal> {
    let Hosts::Only(allowed) = hosts else {
        return Ok(());
    };
    if host.is_none() && authority.is_none() {
        return if version >= Version::HTTP_11 {
            Err(Refusal::NoHost)
        } else {
            Ok(())
        };
    }
    let known = |named: &str| {
        host_of(named)
            .and_then(HostName::parse)
            .is_some_and(|name| name.is_loopback() || allowed.contains(&name))
    };
    if host.into_iter().chain(authority).all(known) {
        Ok(())
    } else {
        Err(Refusal::OtherHost)
    }
}

/// The host of an authority, `host[:port]` or `[v6][:port]`; `None` when it is not one.
fn host_of(authority: &str) -> Option<&str> {
    let authority = authority.trim();
    let end = match authority.strip_prefix('[') {
        Some(rest) => rest.find(']')? + 2,
        None => authority.rfind(':').unwrap_or(authority.len()),
    };
    let (host, port) = authority.split_at(end);
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    port_ok.then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(names: &[&str]) -> Hosts {
        let names: Vec<HostName> = names.iter().map(|n| HostName::parse(n).unwrap()).collect();
        Hosts::new(true, Some(&names))
    }

    #[test]
    fn the_host_is_read_without_its_port() {
        assert_eq!(host_of("localhost:8787"), Some("localhost"));
        assert_eq!(host_of("localhost"), Some("localhost"));
        assert_eq!(host_of("[::1]:8787"), Some("[::1]"));
        assert_eq!(host_of("[::1]"), Some("[::1]"));
        assert_eq!(host_of(" Example.com:80 "), Some("Example.com"));
        for bad in [
            "localhost:",
            "localhost:http",
            "[::1]x",
            "[::1",
            "::1",
            "a:1:2",
        ] {
            assert!(host_of(bad).and_then(HostName::parse).is_none(), "{bad}");
        }
    }

    #[test]
    fn on_loopback_only_loopback_names_and_allowed_hosts_pass() {
        let hosts = only(&["proxy.example.com"]);
        let judge = |host: &str| judge(&hosts, Version::HTTP_11, Some(host), None);
        for host in [
            "localhost:8787",
            "app.localhost",
            "127.0.0.1:8787",
            "127.9.9.9",
            "[::1]:8787",
            "Proxy.Example.com",
        ] {
            assert_eq!(judge(host), Ok(()), "{host}");
        }
        for host in [
            "evil.example:8787",
            "localhost.evil.example",
            "0.0.0.0:8787",
            "",
            "\u{fffd}",
        ] {
            assert_eq!(judge(host), Err(Refusal::OtherHost), "{host}");
        }
    }

    #[test]
    fn an_absolute_target_must_name_an_allowed_host_too() {
        let hosts = only(&[]);
        assert_eq!(
            judge(
                &hosts,
                Version::HTTP_11,
                Some("localhost"),
                Some("evil.example:8787")
            ),
            Err(Refusal::OtherHost)
        );
        assert_eq!(
            judge(&hosts, Version::HTTP_10, None, Some("evil.example")),
            Err(Refusal::OtherHost)
        );
        assert_eq!(
            judge(&hosts, Version::HTTP_11, None, Some("127.0.0.1:8787")),
            Ok(())
        );
    }

    #[test]
    fn no_host_is_fine_in_http_1_0_only() {
        let hosts = only(&[]);
        assert_eq!(judge(&hosts, Version::HTTP_10, None, None), Ok(()));
        assert_eq!(
            judge(&hosts, Version::HTTP_11, None, None),
            Err(Refusal::NoHost)
        );
    }

    #[test]
    fn beyond_loopback_without_allowed_hosts_any_name_passes() {
        let hosts = Hosts::new(false, None);
        assert_eq!(
            judge(&hosts, Version::HTTP_11, Some("evil.example"), None),
            Ok(())
        );
        assert_eq!(judge(&hosts, Version::HTTP_11, None, None), Ok(()));
        let hosts = Hosts::new(false, Some(&[]));
        assert_eq!(
            judge(&hosts, Version::HTTP_11, Some("evil.example"), None),
            Err(Refusal::OtherHost)
        );
        assert_eq!(
            judge(&hosts, Version::HTTP_11, Some("localhost"), None),
            Ok(())
        );
    }
}
