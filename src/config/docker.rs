//! `[docker]`: the engine's address and, for an engine on another machine, the TLS files that
//! verify it and identify tidewatch to it.
//!
//! The files are read and parsed here, at start-up, so a missing or wrong one fails with its
//! place in agent.toml before anything is contacted; the engine reads them again when it
//! connects. Their content never appears in errors.

use std::path::PathBuf;

use toml::Spanned;

use super::engine_host::{self, Scheme};
use super::{raw, tls, ConfigError, Locator};

/// `[docker]`: how to reach the engine.
#[derive(Debug, Clone, Default)]
pub struct DockerConfig {
    /// The engine address (`unix:///var/run/docker.sock`, `tcp://host:2376`); `None` means
    /// `DOCKER_HOST` (with `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`), then the default socket.
    pub host: Option<String>,
    /// TLS to `host`, verified with these files.
    pub tls: Option<TlsFiles>,
    /// Plain HTTP to an engine on another machine is accepted.
    pub insecure: bool,
}

/// The PEM files of a TLS connection to the engine, as `docker --tlsverify` takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA that signed the engine's certificate: the only one trusted for it.
    pub ca: PathBuf,
    /// The certificate tidewatch presents, for an engine that asks for one (`--tlsverify`).
    pub client: Option<ClientCert>,
}

/// A client certificate and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// The certificate (chain), PEM.
    pub cert: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
}

pub(super) fn validate(raw: raw::RawDocker, at: &Locator<'_>) -> Result<DockerConfig, ConfigError> {
    let insecure = raw.insecure.as_ref().is_some_and(|i| *i.get_ref());
    let scheme = match &raw.host {
        Some(host) => match engine_host::split(host.get_ref()) {
            Some((scheme, rest)) => Some((scheme, rest)),
            None => {
                return Err(at.error(
                    host.span(),
                    format!(
                        "docker host {:?} is not supported: use unix:///path/to/docker.sock, tcp://host:port or https://host:port",
                        host.get_ref()
                    ),
                ))
            }
        },
        None => None,
    };
    let first_tls_key = [&raw.tls_ca, &raw.tls_cert, &raw.tls_key]
        .into_iter()
        .flatten()
        .next();
    match (scheme, first_tls_key) {
        (None, Some(key)) => {
            return Err(at.error(
                key.span(),
                "TLS files need the engine's address too: host = \"tcp://HOST:2376\" (for DOCKER_HOST, set DOCKER_TLS_VERIFY and DOCKER_CERT_PATH instead)",
            ))
        }
        (Some((Scheme::Unix, _)), Some(key)) => {
            return Err(at.error(
                key.span(),
                "tls_ca, tls_cert and tls_key are for a tcp:// or https:// host; this host is a unix socket: remove them",
            ))
        }
        (Some((Scheme::Http, _)), Some(key)) => {
            return Err(at.error(
                key.span(),
                "an http:// host is plain HTTP: write it tcp:// or https:// to use the TLS files",
            ))
        }
        _ => {}
    }
    let tls = tls_files(&raw, at)?;
    if let (Some(flag), Some(_)) = (&raw.insecure, &tls) {
        if *flag.get_ref() {
            return Err(at.error(
                flag.span(),
                "insecure = true allows plain HTTP, and the TLS files ask for TLS: keep one of them",
            ));
        }
    }
    if let (Some(host), Some((scheme, rest)), None) = (&raw.host, scheme, &tls) {
        if scheme == Scheme::Https {
            return Err(at.error(
                host.span(),
                "an https:// host needs tls_ca: the CA that signed the engine's certificate",
            ));
        }
        let plain = matches!(scheme, Scheme::Tcp | Scheme::Http);
        if plain && !engine_host::is_loopback(rest) && !insecure {
            return Err(at.error(
                host.span(),
                format!(
                    "docker host {} is another machine, and plain tcp:// to it lets anyone on the way drive its engine: give tls_ca, tls_cert and tls_key for TLS, or set insecure = true to accept that",
                    host.get_ref()
                ),
            ));
        }
    }
    Ok(DockerConfig {
        host: raw.host.map(Spanned::into_inner),
        tls,
        insecure,
    })
}

/// The TLS files, each read and parsed now; `tls_cert` and `tls_key` go together and need
/// `tls_ca`.
fn tls_files(raw: &raw::RawDocker, at: &Locator<'_>) -> Result<Option<TlsFiles>, ConfigError> {
    let client = match (&raw.tls_cert, &raw.tls_key) {
        (Some(cert), Some(key)) => {
            tls::read_certs("tls_cert", cert.get_ref()).map_err(|e| at.error(cert.span(), e))?;
            tls::read_key("tls_key", key.get_ref()).map_err(|e| at.error(key.span(), e))?;
            Some(ClientCert {
                cert: cert.get_ref().clone(),
                key: key.get_ref().clone(),
            })
        }
        (Some(cert), None) => {
            return Err(at.error(
                cert.span(),
                "tls_cert needs tls_key: the private key of the client certificate",
            ))
        }
        (None, Some(key)) => {
            return Err(at.error(
                key.span(),
                "tls_key needs tls_cert: the client certificate the key belongs to",
            ))
        }
        (None, None) => None,
    };
    let Some(ca) = &raw.tls_ca else {
        if let Some(cert) = &raw.tls_cert {
            return Err(at.error(
                cert.span(),
                "tls_cert needs tls_ca: the CA that signed the engine's certificate, which is the only one trusted for it",
            ));
        }
        return Ok(None);
    };
    let files = TlsFiles {
        ca: ca.get_ref().clone(),
        client,
    };
    // Parsing the whole set also checks that the key goes with the certificate.
    tls::client_config(&files).map_err(|e| {
        let span = match e.what {
            "tls_cert" => raw.tls_cert.as_ref().map(Spanned::span),
            "tls_key" => raw.tls_key.as_ref().map(Spanned::span),
            _ => None,
        };
        at.error(span.unwrap_or_else(|| ca.span()), e)
    })?;
    Ok(Some(files))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, "agent.toml").map_err(|e| e.to_string())
    }

    /// A CA, a client certificate it signed and its key, as files in `dir`.
    fn pki(dir: &Path) -> (String, String, String) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["tidewatch".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        (
            write("ca.pem", ca.pem()),
            write("cert.pem", cert.pem()),
            write("key.pem", key.serialize_pem()),
        )
    }

    #[test]
    fn a_remote_host_with_tls_files_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = pki(dir.path());
        let c = parse(&format!(
            "[docker]\nhost = \"tcp://10.0.0.5:2376\"\ntls_ca = {ca:?}\ntls_cert = {cert:?}\ntls_key = {key:?}\n"
        ))
        .unwrap();
        let tls = c.docker.tls.unwrap();
        assert_eq!(tls.ca.display().to_string(), ca);
        let client = tls.client.unwrap();
        assert_eq!(client.cert.display().to_string(), cert);
        assert_eq!(client.key.display().to_string(), key);
        assert!(!c.docker.insecure);
        // A CA alone: the engine is verified, and tidewatch shows no certificate.
        let c = parse(&format!(
            "[docker]\nhost = \"https://engine.example:2376\"\ntls_ca = {ca:?}\n"
        ))
        .unwrap();
        assert_eq!(c.docker.tls.unwrap().client, None);
    }

    #[test]
    fn plain_tcp_to_another_machine_is_refused_at_the_host_saying_how_to_fix_it() {
        let e = parse("[docker]\nhost = \"tcp://10.0.0.5:2375\"\n").unwrap_err();
        assert!(e.starts_with("agent.toml:2:8:"), "{e}");
        assert!(e.contains("tcp://10.0.0.5:2375"), "{e}");
        assert!(e.contains("tls_ca"), "{e}");
        assert!(e.contains("insecure = true"), "{e}");
        let e = parse("[docker]\nhost = \"http://docker.example:2375\"\n").unwrap_err();
        assert!(e.starts_with("agent.toml:2:8:"), "{e}");
    }

    #[test]
    fn plain_tcp_to_loopback_or_with_insecure_is_accepted() {
        let c = parse("[docker]\nhost = \"tcp://127.0.0.1:2375\"\n").unwrap();
        assert_eq!(c.docker.host.as_deref(), Some("tcp://127.0.0.1:2375"));
        assert!(c.docker.tls.is_none());
        parse("[docker]\nhost = \"tcp://localhost:2375\"\n").unwrap();
        let c = parse("[docker]\nhost = \"tcp://10.0.0.5:2375\"\ninsecure = true\n").unwrap();
        assert!(c.docker.insecure);
    }

    #[test]
    fn half_a_client_certificate_is_refused_at_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = pki(dir.path());
        let e = parse(&format!(
            "[docker]\nhost = \"tcp://10.0.0.5:2376\"\ntls_ca = {ca:?}\ntls_cert = {cert:?}\n"
        ))
        .unwrap_err();
        assert!(e.starts_with("agent.toml:4:12:"), "{e}");
        assert!(e.contains("tls_cert needs tls_key"), "{e}");
        let e = parse(&format!(
            "[docker]\nhost = \"tcp://10.0.0.5:2376\"\ntls_ca = {ca:?}\ntls_key = {key:?}\n"
        ))
        .unwrap_err();
        assert!(e.starts_with("agent.toml:4:11:"), "{e}");
        assert!(e.contains("tls_key needs tls_cert"), "{e}");
    }

    #[test]
    fn a_client_certificate_without_a_ca_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_, cert, key) = pki(dir.path());
        let e = parse(&format!(
            "[docker]\nhost = \"tcp://10.0.0.5:2376\"\ntls_cert = {cert:?}\ntls_key = {key:?}\n"
        ))
        .unwrap_err();
        assert!(e.starts_with("agent.toml:3:12:"), "{e}");
        assert!(e.contains("tls_cert needs tls_ca"), "{e}");
    }

    #[test]
    fn tls_files_with_a_unix_socket_an_http_host_or_no_host_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _, _) = pki(dir.path());
        let e = parse(&format!(
            "[docker]\nhost = \"unix:///var/run/docker.sock\"\ntls_ca = {ca:?}\n"
        ))
        .unwrap_err();
        assert!(e.starts_with("agent.toml:3:10:"), "{e}");
        assert!(e.contains("unix socket"), "{e}");
        let e = parse(&format!(
            "[docker]\nhost = \"http://10.0.0.5:2376\"\ntls_ca = {ca:?}\n"
        ))
        .unwrap_err();
        assert!(e.starts_with("agent.toml:3:10:"), "{e}");
        let e = parse(&format!("[docker]\ntls_ca = {ca:?}\n")).unwrap_err();
        assert!(e.starts_with("agent.toml:2:10:"), "{e}");
        assert!(e.contains("DOCKER_TLS_VERIFY"), "{e}");
    }

    #[test]
    fn an_unreadable_or_wrong_file_is_named_at_its_place_without_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = pki(dir.path());
        let e =
            parse("[docker]\nhost = \"tcp://10.0.0.5:2376\"\ntls_ca = \"/nonexistent/ca.pem\"\n")
                .unwrap_err();
        assert!(e.starts_with("agent.toml:3:10:"), "{e}");
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        // The key where the certificate belongs, and the other way round.
        let e = parse(&format!(
            "[docker]\nhost = \"tcp://10.0.0.5:2376\"\ntls_ca = {ca:?}\ntls_cert = {key:?}\ntls_key = {cert:?}\n"
        ))
        .unwrap_err();
        assert!(e.starts_with("agent.toml:4:12:"), "{e}");
        assert!(e.contains(&key), "{e}");
        let secret = std::fs::read_to_string(&key).unwrap();
        assert!(!e.contains(secret.lines().nth(1).unwrap()), "{e}");
    }

    #[test]
    fn insecure_with_tls_files_and_https_without_them_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _, _) = pki(dir.path());
        let e = parse(&format!(
            "[docker]\nhost = \"tcp://10.0.0.5:2376\"\ntls_ca = {ca:?}\ninsecure = true\n"
        ))
        .unwrap_err();
        assert!(e.starts_with("agent.toml:4:12:"), "{e}");
        let e = parse("[docker]\nhost = \"https://10.0.0.5:2376\"\n").unwrap_err();
        assert!(e.starts_with("agent.toml:2:8:"), "{e}");
        assert!(e.contains("tls_ca"), "{e}");
    }

    #[test]
    fn an_unknown_scheme_is_refused_at_the_host() {
        let e = parse("[docker]\nhost = \"ssh://root@engine\"\n").unwrap_err();
        assert!(e.starts_with("agent.toml:2:8:"), "{e}");
        assert!(e.contains("not supported"), "{e}");
    }
}
