//! The syntax of an engine address (`unix://`, `tcp://`, `http://`, `https://`), which
//! `[docker] host` and `DOCKER_HOST` share. Here, with the configuration, because start-up
//! checks the configured address with it; the engine settles either address with it when it
//! connects (`engine::endpoint`).

/// How an engine address is spoken to, by its scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `unix:///path/to.sock`.
    Unix,
    /// `tcp://host:port`: TLS when there are TLS files, else plain HTTP.
    Tcp,
    /// `http://host:port`: plain HTTP.
    Http,
    /// `https://host:port`: TLS.
    Https,
}

/// The scheme of `host` and what follows it; `None` for a scheme tidewatch does not speak.
pub fn split(host: &str) -> Option<(Scheme, &str)> {
    let (scheme, rest) = host.split_once("://")?;
    let scheme = match scheme {
        "unix" => Scheme::Unix,
        "tcp" => Scheme::Tcp,
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        _ => return None,
    };
    (!rest.is_empty()).then_some((scheme, rest))
}

/// `host:port` of a network address (`tcp://10.0.0.5:2376/` gives `10.0.0.5:2376`).
pub fn authority(rest: &str) -> &str {
    rest.split('/').next().unwrap_or(rest)
}

/// True when plain HTTP to `host` (a tcp:// or http:// address) stays on this machine.
pub fn is_loopback(rest: &str) -> bool {
    crate::net::is_loopback(authority(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_judged_on_the_host_alone() {
        assert!(is_loopback("127.0.0.1:2376"));
        assert!(is_loopback("localhost:2375/"));
        assert!(is_loopback("[::1]:2375"));
        assert!(!is_loopback("10.0.0.5:2375"));
        assert!(!is_loopback("localhost.example.com:2375"));
        assert_eq!(split("tcp://"), None);
        assert_eq!(split("npipe:////./pipe/docker_engine"), None);
    }
}
