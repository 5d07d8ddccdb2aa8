//! The PEM files of a TLS connection to the engine, read into a rustls client configuration.
//!
//! The configuration is built here rather than by bollard's `connect_with_ssl`, which trusts the
//! system's root CAs besides the given one and always offers a client certificate: here the
//! given CA is the only one trusted (as `docker --tlsverify --tlscacert` does), a client
//! certificate is optional, and a file that cannot be used is named before anything is sent.
//! Here, with the configuration, because start-up reads the configured files with it to fail
//! early; the engine reads them again (or those of `DOCKER_CERT_PATH`) when it connects.
//! Key material is never put into an error or a log line.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsFiles;

/// A TLS file that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("{what} {}: {problem}", path.display())]
pub struct TlsFileError {
    /// What the file is for (`tls_ca`, `tls_cert`, `tls_key`).
    pub what: &'static str,
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it; never its content.
    pub problem: String,
}

impl TlsFileError {
    fn new(what: &'static str, path: &Path, problem: impl ToString) -> TlsFileError {
        TlsFileError {
            what,
            path: path.to_path_buf(),
            problem: problem.to_string(),
        }
    }
}

/// The certificates (PEM) in `path`: at least one.
pub fn read_certs(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let bytes = std::fs::read(path).map_err(|e| TlsFileError::new(what, path, e))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsFileError::new(what, path, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(TlsFileError::new(
            what,
            path,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(certs)
}

/// The private key (PEM: PKCS#8, PKCS#1 or SEC1) in `path`.
pub fn read_key(what: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsFileError> {
    let bytes = std::fs::read(path).map_err(|e| TlsFileError::new(what, path, e))?;
    // The PEM parser's own error says nothing of the content; its kind is all that is kept.
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        let problem = match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "holds no PEM private key (-----BEGIN PRIVATE KEY-----)".to_string()
            }
            _ => "is not a readable PEM private key".to_string(),
        };
        TlsFileError::new(what, path, problem)
    })
}

/// A rustls client configuration for `files`: their CA as the only trust anchor, and their
/// client certificate when there is one. The crypto provider is aws-lc-rs, the one reqwest and
/// lettre already use here.
pub fn client_config(files: &TlsFiles) -> Result<rustls::ClientConfig, TlsFileError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certs("tls_ca", &files.ca)? {
        roots
            .add(cert)
            .map_err(|e| TlsFileError::new("tls_ca", &files.ca, e))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsFileError::new("tls_ca", &files.ca, e))?
        .with_root_certificates(roots);
    match &files.client {
        Some(client) => {
            let certs = read_certs("tls_cert", &client.cert)?;
            let key = read_key("tls_key", &client.key)?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                TlsFileError::new(
                    "tls_key",
                    &client.key,
                    format!("does not go with tls_cert {}: {e}", client.cert.display()),
                )
            })
        }
        None => Ok(builder.with_no_client_auth()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClientCert;

    struct Pki {
        dir: tempfile::TempDir,
    }

    impl Pki {
        /// A CA, and a client certificate with its key signed by it, as files.
        fn new() -> Pki {
            let dir = tempfile::tempdir().unwrap();
            let ca_key = rcgen::KeyPair::generate().unwrap();
            let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let ca_cert = ca.self_signed(&ca_key).unwrap();
            let issuer = rcgen::Issuer::new(ca, ca_key);
            let client_key = rcgen::KeyPair::generate().unwrap();
            let client = rcgen::CertificateParams::new(vec!["client".to_string()])
                .unwrap()
                .signed_by(&client_key, &issuer)
                .unwrap();
            std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
            std::fs::write(dir.path().join("cert.pem"), client.pem()).unwrap();
            std::fs::write(dir.path().join("key.pem"), client_key.serialize_pem()).unwrap();
            let other_key = rcgen::KeyPair::generate().unwrap();
            std::fs::write(dir.path().join("other-key.pem"), other_key.serialize_pem()).unwrap();
            Pki { dir }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        fn files(&self, cert: &str, key: &str) -> TlsFiles {
            TlsFiles {
                ca: self.path("ca.pem"),
                client: Some(ClientCert {
                    cert: self.path(cert),
                    key: self.path(key),
                }),
            }
        }
    }

    #[test]
    fn a_ca_with_a_client_certificate_and_a_ca_alone_make_configurations() {
        let pki = Pki::new();
        let config = client_config(&pki.files("cert.pem", "key.pem")).unwrap();
        assert!(config.client_auth_cert_resolver.has_certs());
        let ca_only = TlsFiles {
            ca: pki.path("ca.pem"),
            client: None,
        };
        let config = client_config(&ca_only).unwrap();
        assert!(!config.client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn a_missing_file_is_named() {
        let pki = Pki::new();
        let e = client_config(&pki.files("cert.pem", "missing-key.pem")).unwrap_err();
        assert_eq!(e.what, "tls_key");
        assert!(e.to_string().contains("missing-key.pem"), "{e}");
    }

    #[test]
    fn a_key_in_place_of_a_certificate_and_the_other_way_round_are_named() {
        let pki = Pki::new();
        let e = client_config(&pki.files("key.pem", "key.pem")).unwrap_err();
        assert_eq!(e.what, "tls_cert", "{e}");
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        let e = client_config(&pki.files("cert.pem", "cert.pem")).unwrap_err();
        assert_eq!(e.what, "tls_key", "{e}");
        assert!(e.to_string().contains("no PEM private key"), "{e}");
    }

    #[test]
    fn a_key_that_does_not_go_with_the_certificate_is_refused_without_showing_it() {
        let pki = Pki::new();
        let e = client_config(&pki.files("cert.pem", "other-key.pem")).unwrap_err();
        let message = e.to_string();
        assert!(message.contains("does not go with tls_cert"), "{message}");
        let key = std::fs::read_to_string(pki.path("other-key.pem")).unwrap();
        let body = key.lines().nth(1).unwrap();
        assert!(!message.contains(body), "{message}");
    }
}
