//! The parts of one manifest request that [`RegistryClient::send`] loops over: sending it once
//! (counted, its rate limit headers kept), answering an auth challenge, and deciding whether
//! and how long to back off before trying again.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};

use super::auth::{self, Challenge};
use super::{
    header_str, jitter, ratelimit, realm_gets_credentials, Authorization, RegistryClient,
    RegistryError, RegistryState, MANIFEST_MEDIA_TYPES, MAX_RETRY_WAIT, RATE_LIMIT_TRIES,
};
use crate::image_ref::ImageRef;

impl RegistryClient {
    /// Sends the request once with `authorization`, counting it and keeping the rate limit the
    /// answer reports. Any answer is `Ok`; only a transport failure is an error.
    pub(super) async fn send_once(
        &self,
        method: &Method,
        url: &str,
        registry: &str,
        state: &RegistryState,
        authorization: &Authorization,
    ) -> Result<reqwest::Response, RegistryError> {
        let request = state
            .http
            .request(method.clone(), url)
            .header(ACCEPT, MANIFEST_MEDIA_TYPES.join(", "));
        let request = match authorization {
            Authorization::None => request,
            Authorization::Bearer(token) => {
                request.header(AUTHORIZATION, format!("Bearer {token}"))
            }
            Authorization::Basic(c) => request.basic_auth(&c.username, Some(&c.password)),
        };
        match *method {
            Method::HEAD => self.counts.manifest_heads.fetch_add(1, Ordering::Relaxed),
            _ => self.counts.manifest_gets.fetch_add(1, Ordering::Relaxed),
        };
        state.requests.fetch_add(1, Ordering::Relaxed);
        tracing::trace!(%method, url, "registry request");
        let response = request
            .send()
            .await
            .map_err(|e| RegistryError::transport(registry, e))?;
        tracing::debug!(%method, url, status = %response.status(), "registry answered");
        if let Some(rl) = ratelimit::from_headers(response.headers()) {
            *state.rate_limit.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((rl, Instant::now()));
        }
        Ok(response)
    }

    /// The authorization to try again with after a 401 whose challenge is in `headers`, `None`
    /// when it cannot be answered: no challenge the agent understands, or Basic without
    /// credentials. A Bearer challenge is answered with a token for `scope` from the realm it
    /// names (with the registry's credentials unless that would send them in clear to
    /// another host); `sent` is what the refused request carried, so a refused cached token
    /// is not handed back again.
    pub(super) async fn answer_challenge(
        &self,
        headers: &HeaderMap,
        url: &str,
        reference: &ImageRef,
        scope: &str,
        state: &RegistryState,
        sent: &Authorization,
    ) -> Result<Option<Authorization>, RegistryError> {
        let registry = reference.registry();
        let credentials = state.credentials.credentials.as_ref();
        let challenge =
            header_str(headers, WWW_AUTHENTICATE.as_str()).and_then(auth::parse_challenge);
        let (realm, service, asked) = match challenge {
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => (realm, service, scope),
            Some(Challenge::Basic) => return Ok(credentials.cloned().map(Authorization::Basic)),
            None => return Ok(None),
        };
        let credentials = if realm_gets_credentials(url, &realm, registry)? {
            credentials
        } else {
            tracing::warn!(
                registry,
                realm,
                "the token endpoint is on another host over plain HTTP; asking it without credentials"
            );
            None
        };
        let refused = match sent {
            Authorization::Bearer(t) => Some(t.as_str()),
            _ => None,
        };
        let (token, fetched) = self
            .tokens
            .renew(
                &state.http,
                registry,
                (
                    &realm,
                    service.as_deref(),
                    asked.as_deref().unwrap_or(scope),
                ),
                scope,
                credentials,
                refused,
            )
            .await
            .map_err(|e| match e {
                RegistryError::Unauthorized { detail, .. } => RegistryError::Unauthorized {
                    registry: registry.to_string(),
                    repository: reference.repository().to_string(),
                    detail: format!("{detail}; tried {}", state.credentials.source),
                },
                other => other,
            })?;
        if fetched {
            self.counts.tokens.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Some(Authorization::Bearer(token)))
    }
}

impl RegistryState {
    /// Waits until the registry's backoff, if any, is over.
    pub(super) async fn wait_out_backoff(&self) {
        let until = *self.backoff_until.lock().await;
        if let Some(until) = until {
            tokio::time::sleep_until(until.into()).await;
        }
    }

    /// Holds every request to this registry back for `delay` plus some jitter, so requests
    /// that were refused together do not all come back at once. A longer backoff already set
    /// is kept.
    pub(super) async fn back_off(&self, registry: &str, status: StatusCode, delay: Duration) {
        let wait = delay + jitter(delay / 4 + Duration::from_millis(100));
        tracing::warn!(registry, %status, wait_ms = wait.as_millis() as u64, "registry asks to slow down; backing off");
        let until = Instant::now() + wait;
        let mut backoff = self.backoff_until.lock().await;
        if backoff.is_none_or(|b| b < until) {
            *backoff = Some(until);
        }
    }
}

/// How long to back off before trying again a request the registry answered with `status`,
/// after `retries` earlier retries of it; `None` to give up. Only 429 and 503 are retried, up
/// to [`RATE_LIMIT_TRIES`] tries in all, after `Retry-After` or else 1s, 2s, 4s...; a wait
/// longer than [`MAX_RETRY_WAIT`] gives up, and the next cycle tries again.
pub(super) fn retry_delay(
    status: StatusCode,
    retry_after: Option<Duration>,
    retries: u32,
) -> Option<Duration> {
    let retryable = matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    );
    if !retryable || retries + 1 >= RATE_LIMIT_TRIES {
        return None;
    }
    let delay = retry_after.unwrap_or(Duration::from_secs(1 << retries));
    (delay <= MAX_RETRY_WAIT).then_some(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn rate_limited_requests_back_off_one_then_two_seconds_and_then_give_up() {
        let delays: Vec<Option<Duration>> = (0..RATE_LIMIT_TRIES)
            .map(|retries| retry_delay(StatusCode::TOO_MANY_REQUESTS, None, retries))
            .collect();
        assert_eq!(delays, [Some(SECOND), Some(2 * SECOND), None]);
        assert_eq!(
            retry_delay(StatusCode::SERVICE_UNAVAILABLE, None, 0),
            Some(SECOND)
        );
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_longest_wait_of_a_cycle() {
        let seven = Some(7 * SECOND);
        assert_eq!(retry_delay(StatusCode::TOO_MANY_REQUESTS, seven, 1), seven);
        assert_eq!(
            retry_delay(StatusCode::TOO_MANY_REQUESTS, Some(MAX_RETRY_WAIT), 0),
            Some(MAX_RETRY_WAIT)
        );
        assert_eq!(
            retry_delay(
                StatusCode::TOO_MANY_REQUESTS,
                Some(MAX_RETRY_WAIT + SECOND),
                0
            ),
            None
        );
    }

    #[test]
    fn other_refusals_are_not_retried() {
        for status in [
            StatusCode::UNAUTHORIZED,
            StatusCode::FORBIDDEN,
            StatusCode::NOT_FOUND,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::BAD_GATEWAY,
        ] {
            assert_eq!(retry_delay(status, Some(SECOND), 0), None, "{status}");
        }
    }
}
