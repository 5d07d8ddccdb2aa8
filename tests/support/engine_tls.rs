//! The test lane's engine over TLS: `dockerd --tlsverify` on `tcp://127.0.0.1:2376` in the
//! lane's network namespace, with a CA and a client certificate it trusts.
//!
//! Only lane 2 (`scripts/lane current`) has that listener, and its address and certificates
//! reach the tests through the environment `scripts/lane current exec` sets; the tests that need
//! them are named `lane2_...` so that the runner of lane 1 leaves them out.

use std::path::{Path, PathBuf};

/// The address of the lane's TLS listener.
const HOST_VAR: &str = "TIDEWATCH_TEST_ENGINE_TLS_HOST";
/// A directory in `DOCKER_CERT_PATH` layout: `ca.pem` (the CA the engine trusts, which also
/// signed its server certificate), `cert.pem` and `key.pem` (a client certificate it signed).
const CERTS_VAR: &str = "TIDEWATCH_TEST_ENGINE_TLS_CERTS";

/// The lane's engine over TLS.
pub struct TlsEngine {
    host: String,
    certs: PathBuf,
}

impl TlsEngine {
    /// The lane's TLS listener, as its environment gives it. Panics when the variables are
    /// missing: a lane2_ test run anywhere else must fail, not pass without having tested.
    pub fn require() -> TlsEngine {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.is_empty())
                .unwrap_or_else(|| {
                    panic!(
                        "{name} is not set: the lane2_ tests need lane 2's TLS engine; run them via \
                         `scripts/lane current exec -- target/debug/deps/tests-<hash> lane2_`"
                    )
                })
        };
        let engine = TlsEngine {
            host: var(HOST_VAR),
            certs: PathBuf::from(var(CERTS_VAR)),
        };
        for file in ["ca.pem", "cert.pem", "key.pem"] {
            let path = engine.certs.join(file);
            assert!(
                path.is_file(),
                "{CERTS_VAR} has no {file}: {}",
                path.display()
            );
        }
        engine
    }

    /// `tcp://127.0.0.1:2376`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The directory of `ca.pem`, `cert.pem` and `key.pem` (`DOCKER_CERT_PATH`).
    pub fn certs(&self) -> &Path {
        &self.certs
    }

    /// The body of a `[docker]` table reaching the engine over TLS with `ca` as the CA, and
    /// the lane's client certificate.
    pub fn docker_table_with_ca(&self, ca: &Path) -> String {
        format!(
            "host = {:?}\ntls_ca = {:?}\ntls_cert = {:?}\ntls_key = {:?}\n",
            self.host,
            ca.to_string_lossy(),
            self.certs.join("cert.pem").to_string_lossy(),
            self.certs.join("key.pem").to_string_lossy(),
        )
    }

    /// The body of a `[docker]` table reaching the engine over TLS with the lane's files.
    pub fn docker_table(&self) -> String {
        self.docker_table_with_ca(&self.certs.join("ca.pem"))
    }
}
