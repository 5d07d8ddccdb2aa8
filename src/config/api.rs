//! `[api]`: where the HTTP API listens, the secrets that guard it, the names it answers to, and
//! the limits that keep slow or numerous clients from holding its connections.
//!
//! The secrets are read here, at start-up, so a missing or empty file fails before anything
//! listens; they are held as [`Secret`]s and never appear in `Debug` output or errors.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::{at_most, count, raw, ConfigError, Locator, Secret};

/// A secret shorter than this is refused: it guards endpoints that recreate containers.
const MIN_SECRET_LEN: usize = 16;

/// Default `header_read_timeout`: far more than a client on any network needs to send a
/// request head, short enough that half-sent requests do not pile up.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// `header_read_timeout` bounds: below a second a slow link fails honest clients; beyond five
/// minutes the timeout no longer protects anything.
const MIN_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(300);

/// Default `max_connections`: a scraper, a registry and a few CI jobs at once, with room to
/// spare, while the descriptors shared with the engine socket, SQLite and registries stay free.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
/// The most `max_connections`: the usual soft limit of open files is 1024, and the agent's own
/// connections need some of them.
const MAX_MAX_CONNECTIONS: usize = 512;

/// `[api]`: the HTTP API of `tidewatch run`.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The bearer token `POST /v1/update` requires (and `GET /v1/status` and `/metrics` beyond
    /// loopback). `None` (loopback only): no token needed, and `force=true` refused.
    pub token: Option<Secret>,
    /// The shared secret `POST /v1/hooks/registry` requires: `hook_secret_file`, else the
    /// token. `None` (loopback only): no secret needed.
    pub hook_secret: Option<Secret>,
    /// `public_read = true`: `GET /v1/status` and `/metrics` need no token even when `listen`
    /// is not a loopback address. They always need none on loopback.
    pub public_read: bool,
    /// How long a connection may take to send a request head, counted from when it opens or
    /// from the end of the previous response (so it is the keep-alive idle timeout too).
    pub header_read_timeout: Duration,
    /// How many connections are served at once; further ones wait, unaccepted, until one
    /// closes.
    pub max_connections: usize,
    /// `allowed_hosts`: the names requests may give in `Host` besides the loopback ones (which
    /// are always accepted). `None`: any name when `listen` is not loopback, loopback names
    /// only when it is.
    pub allowed_hosts: Option<Vec<HostName>>,
}

/// A host as a request names it in `Host` (without the port) and as `allowed_hosts` lists
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostName {
    /// A DNS name, lowercase, without a trailing dot.
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
}

impl HostName {
    /// `text` as a host: `tidewatch.example.com` (any case, a trailing dot or not),
    /// `192.168.1.5`, `[fd00::5]` (or `fd00::5`). `None` for anything else: a port, a scheme,
    /// a path, a wildcard, or a name whose last label is a number, which browsers read as an
    /// IPv4 address (`127.1`).
    pub fn parse(text: &str) -> Option<HostName> {
        if let Some(inner) = text.strip_prefix('[') {
            let ip: Ipv6Addr = inner.strip_suffix(']')?.parse().ok()?;
            return Some(HostName::Ip(IpAddr::V6(ip)));
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Some(HostName::Ip(ip));
        }
        let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
        let is_label = |label: &str| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        let is_number = |label: &str| {
            let digits = label.strip_prefix("0x").unwrap_or(label);
            label.bytes().all(|b| b.is_ascii_digit())
                || (digits.len() < label.len() && digits.bytes().all(|b| b.is_ascii_hexdigit()))
        };
        let last = name.rsplit('.').next().unwrap_or_default();
        (name.len() <= 253 && name.split('.').all(is_label) && !is_number(last))
            .then_some(HostName::Dns(name))
    }

    /// Whether this name always means this machine: `localhost` and `*.localhost` (RFC 6761:
    /// browsers never ask DNS for them), `127.0.0.0/8` and `::1`.
    pub fn is_loopback(&self) -> bool {
        match self {
            HostName::Dns(name) => name == "localhost" || name.ends_with(".localhost"),
            HostName::Ip(IpAddr::V4(ip)) => ip.is_loopback(),
            HostName::Ip(IpAddr::V6(ip)) => {
                ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        }
    }
}

/// `None` when `listen` is absent: then there is no API, and the other keys are not read.
pub(super) fn validate(
    raw: raw::RawApi,
    at: &Locator<'_>,
) -> Result<Option<ApiConfig>, ConfigError> {
    let Some(listen_value) = raw.listen else {
        return Ok(None);
    };
    let listen: SocketAddr = listen_value.get_ref().trim().parse().map_err(|_| {
        at.error(
            listen_value.span(),
            format!(
                "listen {:?} must be an IP address and port, like \"127.0.0.1:8787\", \"[::1]:8787\" or \"0.0.0.0:8787\"",
                listen_value.get_ref()
            ),
        )
    })?;
    let token = raw
        .token_file
        .map(|f| read_secret(&f, "token_file", at))
        .transpose()?;
    let hook_secret = raw
        .hook_secret_file
        .map(|f| read_secret(&f, "hook_secret_file", at))
        .transpose()?;
    if token.is_none() && !listen.ip().is_loopback() {
        return Err(at.error(
            listen_value.span(),
            format!(
                "listen {listen} is reachable from other machines: set token_file too, so that only holders of the token can trigger updates (or listen on 127.0.0.1)"
            ),
        ));
    }
    let header_read_timeout = match &raw.header_read_timeout {
        Some(value) => {
            let timeout = at_most(value, "header_read_timeout", MAX_HEADER_READ_TIMEOUT, at)?;
            if timeout < MIN_HEADER_READ_TIMEOUT {
                return Err(at.error(
                    value.span(),
                    format!(
                        "header_read_timeout {:?} is too short: at least 1s",
                        value.get_ref()
                    ),
                ));
            }
            timeout
        }
        None => DEFAULT_HEADER_READ_TIMEOUT,
    };
    let max_connections = count(
        &raw.max_connections,
        "max_connections",
        MAX_MAX_CONNECTIONS,
        at,
    )?
    .unwrap_or(DEFAULT_MAX_CONNECTIONS);
    let allowed_hosts = raw
        .allowed_hosts
        .map(|entries| entries.iter().map(|e| allowed_host(e, at)).collect())
        .transpose()?;
    Ok(Some(ApiConfig {
        listen,
        hook_secret: hook_secret.or_else(|| token.clone()),
        token,
        public_read: raw.public_read.unwrap_or(false),
        header_read_timeout,
        max_connections,
        allowed_hosts,
    }))
}

/// One `allowed_hosts` entry.
fn allowed_host(entry: &Spanned<String>, at: &Locator<'_>) -> Result<HostName, ConfigError> {
    HostName::parse(entry.get_ref().trim()).ok_or_else(|| {
        at.error(
            entry.span(),
            format!(
                "allowed_hosts entry {:?} must be a host name or IP address, without scheme, port or wildcard, like \"tidewatch.example.com\", \"192.168.1.5\" or \"[fd00::5]\"",
                entry.get_ref()
            ),
        )
    })
}

/// Reads a secret file; a trailing newline (`echo secret > file`) is not part of the secret.
fn read_secret(
    file: &Spanned<PathBuf>,
    key: &str,
    at: &Locator<'_>,
) -> Result<Secret, ConfigError> {
    let path = file.get_ref().display();
    let text = std::fs::read_to_string(file.get_ref())
        .map_err(|e| at.error(file.span(), format!("{key} {path}: {e}")))?;
    let secret = text.trim_end_matches(['\n', '\r']);
    // The secret travels in an `Authorization` header: only visible ASCII can match there, so
    // anything else would lock every client out.
    if !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(at.error(
            file.span(),
            format!(
                "{key} {path}: the secret must be printable ASCII without spaces or line breaks"
            ),
        ));
    }
    if secret.len() < MIN_SECRET_LEN {
        return Err(at.error(
            file.span(),
            format!(
                "{key} {path}: the secret has {} characters; use at least {MIN_SECRET_LEN} (e.g. `openssl rand -hex 32`)",
                secret.len()
            ),
        ));
    }
    Ok(Secret(secret.to_string()))
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use std::path::Path;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, "agent.toml").map_err(|e| e.to_string())
    }

    fn secret_file(dir: &Path, name: &str, content: &str) -> String {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    }

    #[test]
    fn no_listen_means_no_api() {
        assert!(parse("").unwrap().api.is_none());
        let c = parse("[api]\ntoken_file = \"/nonexistent/token\"\n").unwrap();
        assert!(c.api.is_none());
    }

    #[test]
    fn loopback_without_a_token_is_accepted() {
        let api = parse("[api]\nlisten = \"127.0.0.1:8787\"\n")
            .unwrap()
            .api
            .unwrap();
        assert_eq!(api.listen.to_string(), "127.0.0.1:8787");
        assert!(api.token.is_none());
        assert!(api.hook_secret.is_none());
        assert!(parse("[api]\nlisten = \"[::1]:8787\"\n")
            .unwrap()
            .api
            .is_some());
    }

    #[test]
    fn all_interfaces_without_a_token_is_refused_at_the_listen_value() {
        let e = parse("[api]\nlisten = \"0.0.0.0:8787\"\n").unwrap_err();
        assert!(e.starts_with("agent.toml:2:10:"), "{e}");
        assert!(e.contains("token_file"), "{e}");
        let e = parse("[api]\nlisten = \"192.168.1.5:8787\"\n").unwrap_err();
        assert!(e.starts_with("agent.toml:2:10:"), "{e}");
    }

    #[test]
    fn all_interfaces_with_a_token_is_accepted_and_the_token_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let token = secret_file(dir.path(), "token", "token-0123456789abcdef\n");
        let c = parse(&format!(
            "[api]\nlisten = \"0.0.0.0:8787\"\ntoken_file = \"{token}\"\n"
        ))
        .unwrap();
        let api = c.api.clone().unwrap();
        assert_eq!(api.token.unwrap().expose(), "token-0123456789abcdef");
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn hook_secret_defaults_to_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let token = secret_file(dir.path(), "token", "token-0123456789abcdef");
        let hook = secret_file(dir.path(), "hook", "hook-0123456789abcdef");
        let api = parse(&format!(
            "[api]\nlisten = \"127.0.0.1:8787\"\ntoken_file = \"{token}\"\n"
        ))
        .unwrap()
        .api
        .unwrap();
        assert_eq!(api.hook_secret.unwrap().expose(), "token-0123456789abcdef");
        let api = parse(&format!(
            "[api]\nlisten = \"127.0.0.1:8787\"\ntoken_file = \"{token}\"\nhook_secret_file = \"{hook}\"\n"
        ))
        .unwrap()
        .api
        .unwrap();
        assert_eq!(api.hook_secret.unwrap().expose(), "hook-0123456789abcdef");
    }

    #[test]
    fn listen_without_a_port_points_at_the_value() {
        let e = parse("[api]\nlisten = \"localhost\"\n").unwrap_err();
        assert!(e.starts_with("agent.toml:2:10:"), "{e}");
        assert!(e.contains("IP address and port"), "{e}");
    }

    #[test]
    fn missing_token_file_is_named_at_its_place() {
        let e = parse("[api]\nlisten = \"127.0.0.1:8787\"\ntoken_file = \"/nonexistent/tok\"\n")
            .unwrap_err();
        assert!(e.starts_with("agent.toml:3:14:"), "{e}");
        assert!(e.contains("/nonexistent/tok"), "{e}");
    }

    #[test]
    fn short_or_spaced_secrets_are_refused_without_being_shown() {
        let dir = tempfile::tempdir().unwrap();
        let short = secret_file(dir.path(), "short", "hunter2\n");
        let e = parse(&format!(
            "[api]\nlisten = \"127.0.0.1:8787\"\nhook_secret_file = \"{short}\"\n"
        ))
        .unwrap_err();
        assert!(e.starts_with("agent.toml:3:20:"), "{e}");
        assert!(e.contains("at least 16"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let spaced = secret_file(dir.path(), "spaced", "correct horse battery staple");
        let e = parse(&format!(
            "[api]\nlisten = \"127.0.0.1:8787\"\ntoken_file = \"{spaced}\"\n"
        ))
        .unwrap_err();
        assert!(e.contains("printable ASCII"), "{e}");
        assert!(!e.contains("horse"), "{e}");
    }

    #[test]
    fn limits_have_defaults_and_bounds() {
        let api = parse("[api]\nlisten = \"127.0.0.1:8787\"\n")
            .unwrap()
            .api
            .unwrap();
        assert_eq!(api.header_read_timeout, super::DEFAULT_HEADER_READ_TIMEOUT);
        assert_eq!(api.max_connections, super::DEFAULT_MAX_CONNECTIONS);
        assert!(!api.public_read);
        let api = parse(
            "[api]\nlisten = \"127.0.0.1:8787\"\nheader_read_timeout = \"2s\"\nmax_connections = 3\npublic_read = true\n",
        )
        .unwrap()
        .api
        .unwrap();
        assert_eq!(api.header_read_timeout, std::time::Duration::from_secs(2));
        assert_eq!(api.max_connections, 3);
        assert!(api.public_read);
        for (line, expected) in [
            ("header_read_timeout = \"500ms\"", "at least 1s"),
            ("header_read_timeout = \"10m\"", "at most 5m"),
            ("header_read_timeout = \"soon\"", "bad duration"),
            ("max_connections = 0", "1 to 512"),
            ("max_connections = 100000", "1 to 512"),
        ] {
            let e = parse(&format!("[api]\nlisten = \"127.0.0.1:8787\"\n{line}\n")).unwrap_err();
            assert!(e.starts_with("agent.toml:3:"), "{line}: {e}");
            assert!(e.contains(expected), "{line}: {e}");
        }
    }

    #[test]
    fn allowed_hosts_are_read_as_names_and_addresses() {
        use super::HostName;
        let api = parse("[api]\nlisten = \"127.0.0.1:8787\"\n")
            .unwrap()
            .api
            .unwrap();
        assert_eq!(api.allowed_hosts, None);
        let api = parse(
            "[api]\nlisten = \"127.0.0.1:8787\"\nallowed_hosts = [\"Tidewatch.Example.com.\", \"192.168.1.5\", \"[fd00::5]\", \"fd00::6\"]\n",
        )
        .unwrap()
        .api
        .unwrap();
        assert_eq!(
            api.allowed_hosts.unwrap(),
            [
                HostName::Dns("tidewatch.example.com".into()),
                HostName::Ip("192.168.1.5".parse().unwrap()),
                HostName::Ip("fd00::5".parse().unwrap()),
                HostName::Ip("fd00::6".parse().unwrap()),
            ]
        );
    }

    #[test]
    fn an_allowed_host_with_a_port_scheme_or_wildcard_is_refused_at_the_entry() {
        for entry in [
            "tidewatch.example.com:8787",
            "http://tidewatch.example.com",
            "tidewatch.example.com/",
            "*.example.com",
            "",
            "127.1",
            "[::1]:8787",
        ] {
            let e = parse(&format!(
                "[api]\nlisten = \"127.0.0.1:8787\"\nallowed_hosts = [\"ok.example\", {entry:?}]\n"
            ))
            .unwrap_err();
            // The second entry: after `allowed_hosts = ["ok.example", `.
            assert!(e.starts_with("agent.toml:3:32:"), "{entry}: {e}");
            assert!(e.contains("host name or IP address"), "{entry}: {e}");
        }
        let e = parse("[api]\nlisten = \"127.0.0.1:8787\"\nallowed_hosts = \"ok.example\"\n")
            .unwrap_err();
        assert!(e.starts_with("agent.toml:3:17:"), "{e}");
    }

    #[test]
    fn loopback_names_are_localhost_and_loopback_addresses() {
        use super::HostName;
        for host in [
            "localhost",
            "LOCALHOST.",
            "tidewatch.localhost",
            "127.0.0.1",
            "127.1.2.3",
            "[::1]",
            "[::ffff:127.0.0.1]",
        ] {
            let name = HostName::parse(host).unwrap_or_else(|| panic!("{host}"));
            assert!(name.is_loopback(), "{host}");
        }
        for host in [
            "localhost.evil.example",
            "evil.example",
            "127.0.0.1.evil.example",
            "0.0.0.0",
            "[::]",
            "192.168.1.5",
        ] {
            let name = HostName::parse(host).unwrap_or_else(|| panic!("{host}"));
            assert!(!name.is_loopback(), "{host}");
        }
        for host in [
            "127.1",
            "0x7f.1",
            "2130706433",
            "evil.example:80",
            "a..b",
            "[::1",
        ] {
            assert_eq!(HostName::parse(host), None, "{host}");
        }
    }

    #[test]
    fn unknown_api_key_is_named() {
        let e = parse("[api]\nlisten = \"127.0.0.1:8787\"\ntoken = \"x\"\n").unwrap_err();
        assert!(e.starts_with("agent.toml:3:1:"), "{e}");
        assert!(e.contains("token_file"), "{e}");
    }
}
