//! Sending: one attempt per [`Notifier::send`], and [`deliver`], which retries with backoff and
//! logs. Logs and errors name a notifier by its kind and `scheme://host[:port]` only: a Slack
//! or Discord URL is itself the credential, and a query may hold a token.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, LOCATION};
use reqwest::{redirect, StatusCode, Url};

use super::message::{self, Format};
use super::{Event, EventKind, Retry};
use crate::config::{redacted, NotifyConfig, NotifyKind, Secret, SmtpSecurity};
use crate::error_chain::error_chain;

/// Why one attempt to send a message failed.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The HTTP request did not complete (connection, TLS). Its URL is stripped.
    #[error("{}", error_chain(.0))]
    Http(reqwest::Error),
    /// The service answered with a redirect to another scheme, host or port, which is not
    /// followed: the message and its token are for the configured server only.
    #[error("answered {status}, a redirect to {to}, which is not followed: point url at the server itself")]
    Redirected {
        /// The status.
        status: StatusCode,
        /// `scheme://host[:port]` of where it pointed (the rest may hold a secret).
        to: String,
    },
    /// The service answered with an error status.
    #[error("answered {status}{}", if .body.is_empty() { String::new() } else { format!(": {}", .body) })]
    Status {
        /// The status.
        status: StatusCode,
        /// The start of what it said, on one line.
        body: String,
    },
    /// The SMTP server refused the message, or could not be reached.
    #[error("{0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    /// The attempt took longer than the retry policy allows.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The message could not be put together.
    #[error("building the message: {0}")]
    Build(String),
}

impl NotifyError {
    /// Whether another try may succeed: network trouble, timeouts, 5xx, 408 and 429, SMTP's
    /// 4xx. A 4xx answer, a refused address or a bad certificate needs a person.
    pub fn is_transient(&self) -> bool {
        match self {
            NotifyError::Http(e) => !e.is_builder(),
            NotifyError::Status { status, .. } => {
                status.is_server_error()
                    || *status == StatusCode::TOO_MANY_REQUESTS
                    || *status == StatusCode::REQUEST_TIMEOUT
            }
            NotifyError::Smtp(e) => !(e.is_permanent() || e.is_client() || e.is_tls()),
            NotifyError::Timeout(_) => true,
            NotifyError::Build(_) | NotifyError::Redirected { .. } => false,
        }
    }
}

enum Channel {
    Http {
        client: reqwest::Client,
        format: Format,
        url: Url,
        token: Option<Secret>,
    },
    Email {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
        to: Vec<Mailbox>,
    },
}

/// One configured notifier.
pub struct Notifier {
    kind: NotifyKind,
    target: String,
    events: Vec<EventKind>,
    channel: Channel,
}

impl Notifier {
    /// Sets up the notifier for `config`; HTTP ones share `http`'s connection pool.
    pub fn new(config: &NotifyConfig, http: &reqwest::Client) -> Result<Notifier, NotifyError> {
        let format = match config.kind {
            NotifyKind::Webhook => Some(Format::Webhook),
            NotifyKind::Slack => Some(Format::Slack),
            NotifyKind::Discord => Some(Format::Discord),
            NotifyKind::Ntfy => Some(Format::Ntfy),
            NotifyKind::Gotify => Some(Format::Gotify),
            // MQTT is not a message per cycle: `Notifications` keeps it apart (see `mqtt`).
            NotifyKind::Email | NotifyKind::Mqtt => None,
        };
        let channel = match (format, &config.email) {
            (Some(format), _) => Channel::Http {
                client: http.clone(),
                format,
                url: config.url.clone(),
                token: config.token.clone(),
            },
            (None, Some(email)) => {
                let tls = || TlsParameters::new(email.host.clone());
                let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&email.host)
                    .port(email.port);
                let mut builder = match email.security {
                    SmtpSecurity::None => builder.tls(Tls::None),
                    SmtpSecurity::StartTls => builder.tls(Tls::Required(tls()?)),
                    SmtpSecurity::Tls => builder.tls(Tls::Wrapper(tls()?)),
                };
                if let Some(login) = &email.login {
                    builder = builder.credentials(Credentials::new(
                        login.username.clone(),
                        login.password.expose().to_string(),
                    ));
                }
                Channel::Email {
                    transport: builder.build(),
                    from: email.from.clone(),
                    to: email.to.clone(),
                }
            }
            (None, None) => {
                return Err(NotifyError::Build(format!(
                    "kind = \"{}\" is not sent as a message",
                    config.kind
                )))
            }
        };
        Ok(Notifier {
            kind: config.kind,
            target: config.target(),
            events: config.events.clone(),
            channel,
        })
    }

    /// The service.
    pub fn kind(&self) -> NotifyKind {
        self.kind
    }

    /// `scheme://host[:port]`, what logs may show of where it sends.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Whether it announces `event`.
    pub fn wants(&self, event: EventKind) -> bool {
        self.events.contains(&event)
    }

    /// Sends one message announcing `events` from `host`: one attempt, no retry.
    pub async fn send(&self, host: &str, events: &[Event]) -> Result<(), NotifyError> {
        match &self.channel {
            Channel::Http {
                client,
                format,
                url,
                token,
            } => {
                let m = message::http_message(*format, url, host, events)
                    .map_err(|e| NotifyError::Build(e.to_string()))?;
                let mut request = client
                    .post(m.url)
                    .header(CONTENT_TYPE, m.content_type)
                    .body(m.body);
                for (name, value) in m.headers {
                    let value = HeaderValue::from_str(&value).map_err(|_| {
                        NotifyError::Build(format!("{name} {value:?} is not a valid header value"))
                    })?;
                    request = request.header(name, value);
                }
                if let Some(token) = token {
                    // Gotify also takes `?token=`, but a header stays out of proxies' access logs.
                    let (name, value) = match format {
                        Format::Gotify => ("X-Gotify-Key", token.expose().to_string()),
                        _ => (AUTHORIZATION.as_str(), format!("Bearer {}", token.expose())),
                    };
                    let mut value = HeaderValue::from_str(&value).map_err(|_| {
                        NotifyError::Build(
                            "token_file holds characters a header cannot carry".into(),
                        )
                    })?;
                    value.set_sensitive(true);
                    request = request.header(name, value);
                }
                let response = request
                    .send()
                    .await
                    .map_err(|e| NotifyError::Http(e.without_url()))?;
                let status = response.status();
                if status.is_success() {
                    return Ok(());
                }
                if status.is_redirection() {
                    // Only a redirect the policy stopped ends here (see `same_origin_redirects`).
                    let to = response
                        .headers()
                        .get(LOCATION)
                        .and_then(|l| l.to_str().ok())
                        .and_then(|l| response.url().join(l).ok())
                        .map_or_else(|| "nowhere".to_string(), |u| redacted(&u));
                    return Err(NotifyError::Redirected { status, to });
                }
                let text = response.text().await.unwrap_or_default();
                let body: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
                Err(NotifyError::Status {
                    status,
                    body: body.chars().take(200).collect(),
                })
            }
            Channel::Email {
                transport,
                from,
                to,
            } => {
                let (subject, text) = message::email_text(host, events);
                let mut builder = Message::builder()
                    .from(from.clone())
                    .subject(subject)
                    // Generated from the host name; mail without one looks like spam.
                    .message_id(None)
                    .header(ContentType::TEXT_PLAIN);
                for recipient in to {
                    builder = builder.to(recipient.clone());
                }
                let email = builder
                    .body(text)
                    .map_err(|e| NotifyError::Build(e.to_string()))?;
                transport.send(email).await?;
                Ok(())
            }
        }
    }
}

/// The redirect policy of the notifiers' HTTP client: a redirect is followed (up to 10) only
/// on the scheme, host and port the notifier was configured with. reqwest drops
/// `Authorization` on a redirect to another host, but not Gotify's `X-Gotify-Key`, and the
/// message itself is for the configured server only; such a redirect ends the attempt with
/// [`NotifyError::Redirected`].
pub(super) fn same_origin_redirects() -> redirect::Policy {
    redirect::Policy::custom(|attempt| {
        let same = attempt
            .previous()
            .first()
            .is_some_and(|first| same_origin(first, attempt.url()));
        if !same {
            attempt.stop()
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else {
            attempt.follow()
        }
    })
}

/// As many redirects as reqwest's default policy follows.
const MAX_REDIRECTS: usize = 10;

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Sends `events` through `notifier` under `retry`, and logs the outcome. Returns whether it
/// was sent.
pub(super) async fn deliver(
    notifier: &Notifier,
    host: &str,
    events: &[Event],
    retry: &Retry,
) -> bool {
    let (kind, target) = (notifier.kind.as_str(), notifier.target.as_str());
    let mut delay = retry.first_delay;
    let attempts = retry.attempts.max(1);
    for attempt in 1..=attempts {
        let result = tokio::time::timeout(retry.attempt_timeout, notifier.send(host, events))
            .await
            .unwrap_or(Err(NotifyError::Timeout(retry.attempt_timeout)));
        match result {
            Ok(()) => {
                tracing::info!(
                    notifier = kind,
                    target,
                    events = events.len(),
                    "notification sent"
                );
                return true;
            }
            Err(e) if attempt < attempts && e.is_transient() => {
                tracing::warn!(
                    notifier = kind,
                    target,
                    attempt,
                    "notification not sent, trying again in {delay:?}: {e}"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(retry.max_delay);
            }
            Err(e) => {
                tracing::error!(
                    notifier = kind,
                    target,
                    attempt,
                    events = events.len(),
                    "notification given up: {e}"
                );
                return false;
            }
        }
    }
    false
}
