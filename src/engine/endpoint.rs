//! Where the engine is and how to reach it: `[docker]` when it names a host, else the
//! environment the way the docker CLI reads it (`DOCKER_HOST`, `DOCKER_TLS_VERIFY`,
//! `DOCKER_CERT_PATH`), else the default socket.
//!
//! Plain HTTP to another machine hands whoever is on the way an engine, which is root on its
//! host: it is refused unless `[docker] insecure = true`. Loopback and unix sockets are local.

use std::path::{Path, PathBuf};

use crate::config::engine_host::{authority, is_loopback, split, Scheme};
use crate::config::{ClientCert, DockerConfig, TlsFiles};

use super::{EngineError, DEFAULT_SOCKET};

/// The address tidewatch connects to, settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The address as configured or found in `DOCKER_HOST`, for messages.
    pub host: String,
    /// How to reach it.
    pub transport: Transport,
}

/// How the engine is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A unix socket at this path.
    Unix(String),
    /// Plain HTTP to `host:port`.
    Http(String),
    /// TLS to `host:port`, verified with these files.
    Tls {
        /// `host:port`.
        authority: String,
        /// The CA and client certificate.
        files: TlsFiles,
        /// Whether the files came from `DOCKER_CERT_PATH` (for messages).
        from_env: bool,
    },
}

impl Endpoint {
    /// Settles the address from `config`, else from the environment as `env` reads it.
    pub fn resolve(
        config: &DockerConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Endpoint, EngineError> {
        let var = |name: &str| env(name).filter(|value| !value.is_empty());
        let (host, from_env) = match &config.host {
            Some(host) => (host.clone(), false),
            None => match var("DOCKER_HOST") {
                Some(host) => (host, true),
                None => (DEFAULT_SOCKET.to_string(), false),
            },
        };
        let Some((scheme, rest)) = split(&host) else {
            return Err(EngineError::BadHost { host });
        };
        // The configured files were checked by the configuration; those of DOCKER_CERT_PATH
        // are looked up now, as the docker CLI does: only with DOCKER_TLS_VERIFY set.
        let tls = if from_env {
            match var("DOCKER_TLS_VERIFY") {
                Some(_) if scheme != Scheme::Unix => Some(env_tls_files(&host, &var)?),
                _ => None,
            }
        } else {
            config.tls.clone()
        };
        let transport = match (scheme, tls) {
            (Scheme::Unix, _) => Transport::Unix(rest.to_string()),
            (Scheme::Tcp | Scheme::Https, Some(files)) => Transport::Tls {
                authority: authority(rest).to_string(),
                files,
                from_env,
            },
            (Scheme::Https, None) | (Scheme::Http, Some(_)) => {
                return Err(EngineError::BadTls { host })
            }
            (Scheme::Tcp | Scheme::Http, None) => {
                if !is_loopback(rest) && !config.insecure {
                    return Err(EngineError::PlainToRemote { host });
                }
                Transport::Http(authority(rest).to_string())
            }
        };
        Ok(Endpoint { host, transport })
    }
}

/// `ca.pem`, and `cert.pem` with `key.pem` when they are there, in `DOCKER_CERT_PATH` (default
/// `~/.docker`). Without `ca.pem` there is nothing to verify the engine by: refused.
fn env_tls_files(
    host: &str,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<TlsFiles, EngineError> {
    let dir = match var("DOCKER_CERT_PATH") {
        Some(dir) => PathBuf::from(dir),
        None => match var("HOME") {
            Some(home) => Path::new(&home).join(".docker"),
            None => {
                return Err(EngineError::EnvTls {
                    host: host.to_string(),
                    problem: "DOCKER_TLS_VERIFY is set, but neither DOCKER_CERT_PATH nor HOME"
                        .to_string(),
                })
            }
        },
    };
    let (ca, cert, key) = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    if !ca.exists() {
        return Err(EngineError::EnvTls {
            host: host.to_string(),
            problem: format!(
                "DOCKER_TLS_VERIFY is set, and there is no {} (DOCKER_CERT_PATH) to verify the engine by",
                ca.display()
            ),
        });
    }
    let client = match (cert.exists(), key.exists()) {
        (true, true) => Some(ClientCert { cert, key }),
        (false, false) => None,
        (true, false) | (false, true) => {
            return Err(EngineError::EnvTls {
                host: host.to_string(),
                problem: format!(
                    "{} has one of cert.pem and key.pem without the other",
                    dir.display()
                ),
            })
        }
    };
    Ok(TlsFiles { ca, client })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn resolve(config: &DockerConfig, env: &[(&str, &str)]) -> Result<Endpoint, EngineError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Endpoint::resolve(config, &|name| env.get(name).cloned())
    }

    fn host(host: &str) -> DockerConfig {
        DockerConfig {
            host: Some(host.to_string()),
            ..DockerConfig::default()
        }
    }

    fn cert_dir(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for name in files {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        dir
    }

    #[test]
    fn without_config_or_environment_the_default_socket() {
        let e = resolve(&DockerConfig::default(), &[("DOCKER_HOST", "")]).unwrap();
        assert_eq!(e.host, DEFAULT_SOCKET);
        assert_eq!(
            e.transport,
            Transport::Unix("/var/run/docker.sock".to_string())
        );
    }

    #[test]
    fn the_configured_host_wins_over_docker_host() {
        let e = resolve(
            &host("unix:///run/podman/podman.sock"),
            &[
                ("DOCKER_HOST", "tcp://10.0.0.5:2376"),
                ("DOCKER_TLS_VERIFY", "1"),
            ],
        )
        .unwrap();
        assert_eq!(
            e.transport,
            Transport::Unix("/run/podman/podman.sock".to_string())
        );
    }

    #[test]
    fn plain_tcp_to_loopback_is_allowed_and_to_another_machine_refused_unless_insecure() {
        let e = resolve(&host("tcp://127.0.0.1:2375"), &[]).unwrap();
        assert_eq!(e.transport, Transport::Http("127.0.0.1:2375".to_string()));
        let e = resolve(
            &DockerConfig::default(),
            &[("DOCKER_HOST", "tcp://10.0.0.5:2375")],
        )
        .unwrap_err();
        assert!(matches!(e, EngineError::PlainToRemote { .. }), "{e}");
        let message = e.to_string();
        assert!(message.contains("tcp://10.0.0.5:2375"), "{message}");
        assert!(message.contains("DOCKER_TLS_VERIFY"), "{message}");
        assert!(message.contains("insecure = true"), "{message}");
        let insecure = DockerConfig {
            insecure: true,
            ..DockerConfig::default()
        };
        let e = resolve(&insecure, &[("DOCKER_HOST", "tcp://10.0.0.5:2375")]).unwrap();
        assert_eq!(e.transport, Transport::Http("10.0.0.5:2375".to_string()));
    }

    #[test]
    fn docker_tls_verify_takes_the_files_of_docker_cert_path() {
        let dir = cert_dir(&["ca.pem", "cert.pem", "key.pem"]);
        let path = dir.path().to_str().unwrap();
        let e = resolve(
            &DockerConfig::default(),
            &[
                ("DOCKER_HOST", "tcp://10.0.0.5:2376"),
                ("DOCKER_TLS_VERIFY", "1"),
                ("DOCKER_CERT_PATH", path),
            ],
        )
        .unwrap();
        assert_eq!(
            e.transport,
            Transport::Tls {
                authority: "10.0.0.5:2376".to_string(),
                files: TlsFiles {
                    ca: dir.path().join("ca.pem"),
                    client: Some(ClientCert {
                        cert: dir.path().join("cert.pem"),
                        key: dir.path().join("key.pem"),
                    }),
                },
                from_env: true,
            }
        );
    }

    #[test]
    fn docker_cert_path_defaults_to_dot_docker_in_home_and_a_ca_alone_is_enough() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".docker")).unwrap();
        std::fs::write(home.path().join(".docker/ca.pem"), "").unwrap();
        let e = resolve(
            &DockerConfig::default(),
            &[
                ("DOCKER_HOST", "tcp://localhost:2376"),
                ("DOCKER_TLS_VERIFY", "1"),
                ("HOME", home.path().to_str().unwrap()),
            ],
        )
        .unwrap();
        let Transport::Tls { files, .. } = e.transport else {
            panic!("not TLS: {e:?}");
        };
        assert_eq!(files.ca, home.path().join(".docker/ca.pem"));
        assert_eq!(files.client, None);
    }

    #[test]
    fn docker_tls_verify_without_a_ca_or_with_half_a_client_certificate_is_refused() {
        for files in [&["cert.pem", "key.pem"][..], &["ca.pem", "cert.pem"][..]] {
            let dir = cert_dir(files);
            let e = resolve(
                &DockerConfig::default(),
                &[
                    ("DOCKER_HOST", "tcp://10.0.0.5:2376"),
                    ("DOCKER_TLS_VERIFY", "1"),
                    ("DOCKER_CERT_PATH", dir.path().to_str().unwrap()),
                ],
            )
            .unwrap_err();
            assert!(matches!(e, EngineError::EnvTls { .. }), "{e}");
            assert!(e.to_string().contains("tcp://10.0.0.5:2376"), "{e}");
        }
    }

    #[test]
    fn docker_tls_verify_is_ignored_for_a_unix_socket_as_the_docker_cli_does() {
        let e = resolve(
            &DockerConfig::default(),
            &[
                ("DOCKER_HOST", "unix:///run/docker.sock"),
                ("DOCKER_TLS_VERIFY", "1"),
                ("DOCKER_CERT_PATH", "/nonexistent"),
            ],
        )
        .unwrap();
        assert_eq!(e.transport, Transport::Unix("/run/docker.sock".to_string()));
    }

    #[test]
    fn unknown_schemes_and_https_without_files_are_refused() {
        let e = resolve(&host("ssh://user@host"), &[]).unwrap_err();
        assert!(matches!(e, EngineError::BadHost { .. }), "{e}");
        let e = resolve(
            &DockerConfig::default(),
            &[("DOCKER_HOST", "https://10.0.0.5:2376")],
        )
        .unwrap_err();
        assert!(matches!(e, EngineError::BadTls { .. }), "{e}");
    }
}
