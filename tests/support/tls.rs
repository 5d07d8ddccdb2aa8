//! A private certificate authority made in the test, for registries that serve TLS with a
//! certificate no system trusts, the way a company registry does.
//!
//! The docker engine is told to trust the CA for one `host:port` through
//! `/etc/docker/certs.d/<host:port>/ca.crt` ([`EngineTrust`]); tidewatch is told through
//! `ca_file`; the tests' own probes through [`TestCa::client_config`].

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Where dockerd looks for per-registry CA certificates.
const DOCKER_CERTS_DIR: &str = "/etc/docker/certs.d";

/// A CA certificate and its key.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    cert: rcgen::Certificate,
}

/// A server certificate (PEM) and its private key (PEM).
pub struct ServerCert {
    /// The certificate, PEM: distribution's `http.tls.certificate`.
    pub cert_pem: String,
    /// Its private key, PEM: distribution's `http.tls.key`.
    pub key_pem: String,
}

impl TestCa {
    /// A new CA called `name`.
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap_or_else(|error| panic!("CA key: {error}"));
        let mut params =
            CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|error| panic!("{error}"));
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&key)
            .unwrap_or_else(|error| panic!("CA certificate: {error}"));
        TestCa {
            issuer: Issuer::new(params, key),
            cert,
        }
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// Writes the CA certificate (PEM) to `path` and returns it.
    pub fn write_cert(&self, path: &Path) -> PathBuf {
        fs::write(path, self.cert_pem())
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
        path.to_owned()
    }

    /// A server certificate for the loopback addresses (IP SANs `127.0.0.1` and `::1`, DNS SAN
    /// `localhost`), signed by this CA.
    pub fn loopback_server_cert(&self) -> ServerCert {
        let key = KeyPair::generate().unwrap_or_else(|error| panic!("server key: {error}"));
        let names = ["127.0.0.1", "::1", "localhost"].map(str::to_owned);
        let mut params =
            CertificateParams::new(names.to_vec()).unwrap_or_else(|error| panic!("{error}"));
        params
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&key, &self.issuer)
            .unwrap_or_else(|error| panic!("server certificate: {error}"));
        ServerCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A rustls client configuration that trusts this CA and nothing else.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.cert.der().clone())
            .unwrap_or_else(|error| panic!("CA certificate refused by rustls: {error}"));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|error| panic!("rustls protocol versions: {error}"))
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }
}

/// The docker engine trusting a CA for one registry `host:port`, until dropped.
pub struct EngineTrust {
    dir: PathBuf,
}

impl EngineTrust {
    /// Writes `/etc/docker/certs.d/<host>/ca.crt`. dockerd reads that directory at each
    /// connection, so no restart is needed; the port makes the directory this test's own.
    pub fn install(ca: &TestCa, host: &str) -> EngineTrust {
        let dir = Path::new(DOCKER_CERTS_DIR).join(host);
        fs::create_dir_all(&dir).unwrap_or_else(|error| {
            panic!(
                "cannot create {} (the docker engine's CA directory; run the tests as root): {error}",
                dir.display()
            )
        });
        ca.write_cert(&dir.join("ca.crt"));
        EngineTrust { dir }
    }
}

impl Drop for EngineTrust {
    fn drop(&mut self) {
        if let Err(error) = fs::remove_dir_all(&self.dir) {
            eprintln!("cannot remove {}: {error}", self.dir.display());
        }
    }
}
