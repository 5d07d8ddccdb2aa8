//! Registry authentication: the `WWW-Authenticate` challenge and the bearer-token dance that
//! GHCR, Docker Hub and distribution's token mode use. Tokens are cached per registry and scope
//! until shortly before they expire, so a cycle asks for a token once per repository, not once
//! per container.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;

use super::{read_capped, RegistryError, MAX_TOKEN_ANSWER_BYTES};

pub use crate::credentials::Credentials;

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Bearer realm="...",service="...",scope="..."`.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The `service` parameter, echoed to the token endpoint.
        service: Option<String>,
        /// The `scope` the registry asks for, if it said.
        scope: Option<String>,
    },
    /// `Basic realm="..."`.
    Basic,
}

/// Parses a `WWW-Authenticate` header value; `None` for schemes we do not speak.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header
        .split_once(char::is_whitespace)
        .unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(rest);
    Some(Challenge::Bearer {
        realm: params.get("realm")?.clone(),
        service: params.get("service").cloned(),
        scope: params.get("scope").cloned(),
    })
}

/// `key="value",key2=value2`, where quoted values may contain commas (scopes do).
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            // A bare value is a token: the whitespace allowed before the comma is not part of it.
            match after.find(',') {
                Some(end) => (after[..end].trim(), &after[end..]),
                None => (after.trim(), ""),
            }
        };
        out.insert(key, value.to_string());
        rest = after.trim_start_matches([',', ' ']);
    }
    out
}

/// Held while a token for one `(registry, scope)` is being fetched.
type Gate = std::sync::Arc<Mutex<()>>;

#[derive(Clone)]
struct CachedToken {
    value: String,
    expires: Instant,
}

/// Bearer tokens by `(registry, scope)`.
#[derive(Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<(String, String), CachedToken>>,
    /// One token request per `(registry, scope)` at a time: references of one repository are
    /// resolved concurrently, and all but the first wait for its token instead of asking too.
    fetching: Mutex<HashMap<(String, String), Gate>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// Tokens are dropped this long before they expire, so none expires in flight.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);
/// Lifetime assumed when the token endpoint does not say (the distribution spec's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// The longest a token is kept, whatever `expires_in` says: hosted registries hand out tokens
/// for minutes, and a token endpoint's number must not reach the clock unbounded (a huge
/// `expires_in` overflowed `Instant` and panicked the cycle).
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// When a token fetched at `now` with `expires_in` (seconds, as the token endpoint said) is
/// dropped from the cache: a little before it expires, at most [`MAX_TOKEN_LIFETIME`] away.
fn token_expiry(now: Instant, expires_in: Option<u64>) -> Instant {
    let lifetime = expires_in
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TOKEN_LIFETIME)
        .min(MAX_TOKEN_LIFETIME)
        .saturating_sub(EXPIRY_MARGIN)
        .max(Duration::from_secs(1));
    // Within a day of now cannot overflow on any platform tokio runs on; if it did, a token
    // that is not cached is only asked for again.
    now.checked_add(lifetime).unwrap_or(now)
}

impl TokenCache {
    /// A cached, unexpired token for `registry` and `scope`.
    pub async fn get(&self, registry: &str, scope: &str) -> Option<String> {
        let tokens = self.tokens.lock().await;
        let t = tokens.get(&(registry.to_string(), scope.to_string()))?;
        (t.expires > Instant::now()).then(|| t.value.clone())
    }

    /// Forgets the token for `registry` and `scope` (after the registry refused it).
    pub async fn forget(&self, registry: &str, scope: &str) {
        self.tokens
            .lock()
            .await
            .remove(&(registry.to_string(), scope.to_string()));
    }

    /// A token for `scope` after the registry refused `refused` (or no token): one that another
    /// request fetched meanwhile, else a new one from the token endpoint.
    pub async fn renew(
        &self,
        http: &reqwest::Client,
        registry: &str,
        challenge: (&str, Option<&str>, &str),
        scope: &str,
        credentials: Option<&Credentials>,
        refused: Option<&str>,
    ) -> Result<(String, bool), RegistryError> {
        // `scope` keys the cache (what we ask per repository); the challenge's own scope is
        // what the token endpoint is asked for.
        let (realm, service, asked) = challenge;
        let key = (registry.to_string(), scope.to_string());
        let gate = self.fetching.lock().await.entry(key).or_default().clone();
        let _turn = gate.lock().await;
        if let Some(token) = self.get(registry, scope).await {
            if Some(token.as_str()) != refused {
                return Ok((token, false));
            }
        }
        let token = self
            .fetch(http, registry, realm, service, asked, credentials)
            .await?;
        if asked != scope {
            if let Some(cached) = self
                .tokens
                .lock()
                .await
                .get(&(registry.to_string(), asked.to_string()))
                .cloned()
            {
                self.tokens
                    .lock()
                    .await
                    .insert((registry.to_string(), scope.to_string()), cached);
            }
        }
        Ok((token, true))
    }

    /// Asks the token endpoint of `challenge` for a token for `scope`, and caches it.
    pub async fn fetch(
        &self,
        http: &reqwest::Client,
        registry: &str,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        credentials: Option<&Credentials>,
    ) -> Result<String, RegistryError> {
        let mut query: Vec<(&str, &str)> = vec![("scope", scope)];
        if let Some(service) = service {
            query.push(("service", service));
        }
        let mut request = http.get(realm).query(&query);
        if let Some(c) = credentials {
            request = request.basic_auth(&c.username, Some(&c.password));
        }
        tracing::debug!(registry, realm, scope, "requesting registry token");
        let response = request
            .send()
            .await
            .map_err(|e| RegistryError::transport(registry, e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(RegistryError::Unauthorized {
                registry: registry.to_string(),
                repository: scope.to_string(),
                detail: format!("token endpoint {realm} answered {status}"),
            });
        }
        let what = format!("the token for {scope} from {realm}");
        let body = read_capped(response, MAX_TOKEN_ANSWER_BYTES, registry, &what).await?;
        let body: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
                registry: registry.to_string(),
                reason: format!("token endpoint {realm} sent an unreadable answer: {e}"),
            })?;
        let value = body
            .token
            .or(body.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| RegistryError::Protocol {
                registry: registry.to_string(),
                reason: format!("token endpoint {realm} sent no token"),
            })?;
        let expires = token_expiry(Instant::now(), body.expires_in);
        self.tokens.lock().await.insert(
            (registry.to_string(), scope.to_string()),
            CachedToken {
                value: value.clone(),
                expires,
            },
        );
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ghcr_style_bearer_challenge_is_parsed() {
        let c = parse_challenge(
            r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:o/app:pull""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://ghcr.io/token".into(),
                service: Some("ghcr.io".into()),
                scope: Some("repository:o/app:pull".into()),
            })
        );
    }

    #[test]
    fn scope_with_commas_stays_whole() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull,push""#,
        );
        let Some(Challenge::Bearer { scope, .. }) = c else {
            panic!("not bearer")
        };
        assert_eq!(scope.as_deref(), Some("repository:library/nginx:pull,push"));
    }

    #[test]
    fn a_bare_value_ends_before_the_whitespace_ahead_of_its_comma() {
        let c = parse_challenge("Bearer realm=https://r.example/token ,  service=harbor-registry ");
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://r.example/token".into(),
                service: Some("harbor-registry".into()),
                scope: None,
            })
        );
    }

    #[test]
    fn basic_and_unknown_schemes() {
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(
            parse_challenge("Bearer service=\"x\""),
            None,
            "realm is required"
        );
    }

    #[test]
    fn a_huge_expires_in_is_capped_at_a_day_instead_of_overflowing_the_clock() {
        let now = Instant::now();
        assert_eq!(
            token_expiry(now, Some(u64::MAX)),
            now + MAX_TOKEN_LIFETIME - EXPIRY_MARGIN
        );
        assert_eq!(token_expiry(now, Some(300)), now + Duration::from_secs(290));
        assert_eq!(token_expiry(now, None), now + Duration::from_secs(50));
        assert_eq!(token_expiry(now, Some(0)), now + Duration::from_secs(1));
    }

    #[test]
    fn credentials_debug_hides_the_password() {
        let c = Credentials {
            username: "u".into(),
            password: "s3cret".into(),
        };
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// A quoted-string's content as registries send it: any visible ASCII or space but `"` and
    /// `\` (no quoted-pairs), so commas, `=` and spaces included.
    fn quoted_content() -> impl Strategy<Value = String> {
        "[ !#-\\[\\]-~]{0,40}"
    }

    /// A parameter value, and how it is written: quoted, or bare when it is a token.
    fn param(key: &'static str) -> impl Strategy<Value = (String, String)> {
        (
            prop_oneof![quoted_content(), "[a-zA-Z0-9!#$%&'*+.^_`|~-]{1,20}"],
            any::<bool>(),
            prop::sample::select(vec![key.to_string(), key.to_ascii_uppercase()]),
        )
            .prop_map(|(value, bare, key)| {
                let token = !value.is_empty()
                    && value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+.^_`|~-".contains(c));
                let written = if bare && token {
                    format!("{key}={value}")
                } else {
                    format!("{key}=\"{value}\"")
                };
                (value, written)
            })
    }

    proptest! {
        #[test]
        fn parsing_never_panics_and_values_come_from_the_header(header in prop_oneof![
            any::<String>(),
            "(Bearer|Basic|bearer|Negotiate)?[ \t]{0,2}([a-z]{0,6}=?\"?[a-z0-9:/,= .\"]{0,12}\"?,? ?){0,5}",
        ]) {
            if let Some(Challenge::Bearer { realm, service, scope }) = parse_challenge(&header) {
                for value in [Some(realm), service, scope].into_iter().flatten() {
                    prop_assert!(header.contains(&value), "{:?} not in {:?}", value, header);
                }
            }
        }

        #[test]
        fn a_well_formed_bearer_challenge_reads_back(
            scheme in prop_oneof![Just("Bearer"), Just("bearer"), Just("BEARER")],
            realm in param("realm"),
            service in prop::option::of(param("service")),
            scope in prop::option::of(param("scope")),
            error in prop::option::of(param("error")),
            order in any::<usize>(),
            separator in prop_oneof![Just(","), Just(", "), Just(" ,  ")],
        ) {
            let mut params: Vec<&String> = [Some(&realm), service.as_ref(), scope.as_ref(), error.as_ref()]
                .into_iter()
                .flatten()
                .map(|(_, written)| written)
                .collect();
            let turn = order % params.len();
            params.rotate_left(turn);
            let header = format!("{scheme} {}", params.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(separator));
            prop_assert_eq!(
                parse_challenge(&header),
                Some(Challenge::Bearer {
                    realm: realm.0.clone(),
                    service: service.map(|(v, _)| v),
                    scope: scope.map(|(v, _)| v),
                }),
                "{}",
                header
            );
        }

        #[test]
        fn basic_is_basic_whatever_follows(rest in any::<String>()) {
            prop_assert_eq!(parse_challenge(&format!("Basic {rest}")), Some(Challenge::Basic));
        }
    }
}
