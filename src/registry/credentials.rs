//! Which credentials to use for a registry, in order: `agent.toml` (`username` with
//! `password_file`/`password_env`), then the Docker config of the engine's user
//! (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`: `auths`, `credsStore`,
//! `credHelpers`). The same credentials are given to the engine for pulls.

use docker_credential::{CredentialRetrievalError, DockerCredential};

use super::auth::Credentials;
use crate::config::RegistryConfig;

/// Credentials found for a registry, and where they came from (for error messages).
#[derive(Debug, Clone)]
pub struct Found {
    /// The credentials, if any source had some.
    pub credentials: Option<Credentials>,
    /// What was tried, in words, never the secret: `password_file /etc/tidewatch/ghcr`,
    /// `docker config (auths, credsStore, credHelpers)`, `no credentials (anonymous)`.
    pub source: String,
}

/// Looks up credentials for `host` (as it appears in references: `ghcr.io`, `docker.io`).
pub fn lookup(host: &str, settings: &RegistryConfig) -> Found {
    if let Some(login) = &settings.login {
        return Found {
            credentials: Some(Credentials {
                username: login.username.clone(),
                password: login.password.expose().to_string(),
            }),
            source: login.source.clone(),
        };
    }
    // docker_credential reports a missing file like an unreadable one; a missing file only
    // means there are no credentials there.
    if !docker_config_path().is_some_and(|p| p.exists()) {
        return Found {
            credentials: None,
            source: "no credentials (anonymous)".into(),
        };
    }
    // Docker keeps Docker Hub's credentials under its v1 index URL.
    let server = if host == "docker.io" {
        "https://index.docker.io/v1/"
    } else {
        host
    };
    match docker_credential::get_credential(server) {
        Ok(DockerCredential::UsernamePassword(username, password)) => Found {
            credentials: Some(Credentials { username, password }),
            source: "docker config (DOCKER_CONFIG or ~/.docker/config.json)".into(),
        },
        // An identity token is exchanged like a refresh token; Docker Hub and GHCR accept it
        // as the password of the `<token>` user in the token request.
        Ok(DockerCredential::IdentityToken(token)) => Found {
            credentials: Some(Credentials {
                username: "<token>".into(),
                password: token,
            }),
            source: "docker config identity token".into(),
        },
        Err(CredentialRetrievalError::NoCredentialConfigured)
        | Err(CredentialRetrievalError::ConfigNotFound) => Found {
            credentials: None,
            source: "no credentials (anonymous)".into(),
        },
        Err(e) => {
            // Helper output may contain secrets: say which failure, never what it printed.
            let why = match e {
                CredentialRetrievalError::HelperFailure { helper, .. } => {
                    format!("credential helper docker-credential-{helper} failed")
                }
                other => other.to_string(),
            };
            tracing::warn!(registry = host, "docker config: {why}");
            Found {
                credentials: None,
                source: format!("docker config ({why}), then anonymous"),
            }
        }
    }
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, as the docker CLI reads it.
fn docker_config_path() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".docker")))?;
    Some(dir.join("config.json"))
}
