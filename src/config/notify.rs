//! `[[notify]]`: where each cycle's updates, rollbacks and failures are announced. Kept apart
//! from the rest of the configuration because it has rules of its own per kind of service.

use std::fmt;
use std::ops::Range;
use std::path::Path;

use lettre::message::Mailbox;
use reqwest::Url;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::raw::RawNotify;
use super::{ConfigError, ConfiguredLogin, Locator, Secret};

/// What happened to a container. The names are part of the configuration (`events = [...]`)
/// and of the webhook's JSON. Defined here, with the configuration that names it, so that
/// config needs nothing of `notify`, which re-exports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A monitor-only container has a newer digest on its registry.
    UpdateAvailable,
    /// A container was recreated on a new digest and is healthy.
    Updated,
    /// A new container was not healthy; the old one runs again.
    RolledBack,
    /// An update could not be done.
    Failed,
    /// A new digest was not pulled: no signature that its `[[verify]]` rule trusts names it.
    /// Announced once per digest, however many cycles it stays blocked.
    Blocked,
}

impl EventKind {
    /// Every kind, the default of `events`.
    pub const ALL: [EventKind; 5] = [
        EventKind::UpdateAvailable,
        EventKind::Updated,
        EventKind::RolledBack,
        EventKind::Failed,
        EventKind::Blocked,
    ];

    /// The contract name (`update_available`...).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::UpdateAvailable => "update_available",
            EventKind::Updated => "updated",
            EventKind::RolledBack => "rolled_back",
            EventKind::Failed => "failed",
            EventKind::Blocked => "blocked",
        }
    }
}

/// Which service a notifier talks to, hence the message's format. The names are part of the
/// configuration contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyKind {
    /// A generic JSON `POST` of every event.
    Webhook,
    /// A Slack incoming webhook.
    Slack,
    /// A Discord webhook.
    Discord,
    /// An ntfy topic URL.
    Ntfy,
    /// A Gotify server.
    Gotify,
    /// An email through an SMTP server.
    Email,
    /// Retained per-container state on an MQTT broker, with Home Assistant discovery.
    Mqtt,
}

impl NotifyKind {
    /// The configuration name (`webhook`, `slack`...).
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyKind::Webhook => "webhook",
            NotifyKind::Slack => "slack",
            NotifyKind::Discord => "discord",
            NotifyKind::Ntfy => "ntfy",
            NotifyKind::Gotify => "gotify",
            NotifyKind::Email => "email",
            NotifyKind::Mqtt => "mqtt",
        }
    }
}

impl fmt::Display for NotifyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the connection to an SMTP server is protected, from the URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://` (port 25 by default): plain text, for a relay on the host or the LAN.
    None,
    /// `smtp+starttls://` (port 587 by default): upgraded with STARTTLS, refused if the server
    /// cannot.
    StartTls,
    /// `smtps://` (port 465 by default): TLS from the first byte.
    Tls,
}

/// The SMTP side of a `kind = "email"` notifier.
#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// The server's host name (also the name its certificate must carry).
    pub host: String,
    /// The server's port.
    pub port: u16,
    /// Plain, STARTTLS or TLS.
    pub security: SmtpSecurity,
    /// The sender.
    pub from: Mailbox,
    /// The recipients (at least one).
    pub to: Vec<Mailbox>,
    /// `username` + `password_file`, sent only over an encrypted connection.
    pub login: Option<ConfiguredLogin>,
}

/// The broker side of a `kind = "mqtt"` notifier.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    /// The broker's host name (also the name its certificate must carry).
    pub host: String,
    /// The broker's port: 1883 for `mqtt://`, 8883 for `mqtts://` unless the URL says.
    pub port: u16,
    /// `mqtts://`: TLS from the first byte, verified against the system's trust store.
    pub tls: bool,
    /// `username` + `password_file`.
    pub login: Option<ConfiguredLogin>,
    /// `topic_prefix`: the first levels of every topic but discovery's (`tidewatch`).
    pub topic_prefix: String,
    /// `homeassistant_discovery`: one Home Assistant `update` entity per container.
    pub discovery: bool,
    /// `install_token_file`: the payload the `install` command topic must carry. Without it
    /// the command topic is not subscribed to and discovery offers no install.
    pub install_token: Option<Secret>,
}

/// The longest `topic_prefix`, in bytes: topics stay well under brokers' limits.
pub const MAX_TOPIC_PREFIX: usize = 128;

/// `[[notify]]`: one notifier.
#[derive(Clone)]
pub struct NotifyConfig {
    /// The service.
    pub kind: NotifyKind,
    /// Where to send. For Slack and Discord the URL itself is the credential, so it is never
    /// logged or shown: [`NotifyConfig::target`] is what may be.
    pub url: Url,
    /// The events this notifier announces, in [`EventKind`] order, without duplicates.
    pub events: Vec<EventKind>,
    /// `token_file`: Gotify's application token, or an ntfy access token.
    pub token: Option<Secret>,
    /// The SMTP settings, for `kind = "email"` only.
    pub email: Option<EmailConfig>,
    /// The broker settings, for `kind = "mqtt"` only.
    pub mqtt: Option<MqttConfig>,
}

impl NotifyConfig {
    /// `scheme://host[:port]`: the part of the URL that logs and errors may show.
    pub fn target(&self) -> String {
        redacted(&self.url)
    }

    /// Whether this notifier announces `event`.
    pub fn wants(&self, event: EventKind) -> bool {
        self.events.contains(&event)
    }
}

/// `scheme://host[:port]` of `url`, without user, password, path or query (any of which may
/// be a secret).
pub fn redacted(url: &Url) -> String {
    let mut out = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    out
}

impl fmt::Debug for NotifyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotifyConfig")
            .field("kind", &self.kind)
            .field("url", &self.target())
            .field("events", &self.events)
            .field("token", &self.token)
            .field("email", &self.email)
            .field("mqtt", &self.mqtt)
            .finish()
    }
}

const HTTP_KINDS: &[NotifyKind] = &[
    NotifyKind::Webhook,
    NotifyKind::Slack,
    NotifyKind::Discord,
    NotifyKind::Ntfy,
    NotifyKind::Gotify,
];

pub(super) fn validate(
    raw: Vec<RawNotify>,
    at: &Locator<'_>,
) -> Result<Vec<NotifyConfig>, ConfigError> {
    raw.into_iter().map(|n| validate_one(n, at)).collect()
}

fn validate_one(n: RawNotify, at: &Locator<'_>) -> Result<NotifyConfig, ConfigError> {
    let kind = *n.kind.get_ref();
    // Keys that only some kinds take are refused elsewhere, rather than silently ignored.
    let email_only = &[NotifyKind::Email][..];
    let mqtt_only = &[NotifyKind::Mqtt][..];
    let with_login = &[NotifyKind::Email, NotifyKind::Mqtt][..];
    // The MQTT notifier publishes every container's state each cycle: it has no events to pick.
    let not_mqtt = &[
        NotifyKind::Webhook,
        NotifyKind::Slack,
        NotifyKind::Discord,
        NotifyKind::Ntfy,
        NotifyKind::Gotify,
        NotifyKind::Email,
    ][..];
    let keys = [
        (
            "token_file",
            n.token_file.as_ref().map(Spanned::span),
            &[NotifyKind::Gotify, NotifyKind::Ntfy][..],
        ),
        ("from", n.from.as_ref().map(Spanned::span), email_only),
        ("to", n.to.as_ref().map(Spanned::span), email_only),
        (
            "username",
            n.username.as_ref().map(Spanned::span),
            with_login,
        ),
        (
            "password_file",
            n.password_file.as_ref().map(Spanned::span),
            with_login,
        ),
        ("events", n.events.as_ref().map(Spanned::span), not_mqtt),
        (
            "topic_prefix",
            n.topic_prefix.as_ref().map(Spanned::span),
            mqtt_only,
        ),
        (
            "homeassistant_discovery",
            n.homeassistant_discovery.as_ref().map(Spanned::span),
            mqtt_only,
        ),
        (
            "install_token_file",
            n.install_token_file.as_ref().map(Spanned::span),
            mqtt_only,
        ),
    ];
    for (key, span, kinds) in keys {
        if let Some(span) = span.filter(|_| !kinds.contains(&kind)) {
            let names: Vec<String> = kinds.iter().map(|k| format!("\"{k}\"")).collect();
            return Err(at.error(
                span,
                format!(
                    "`{key}` is only for kind = {}, and this notifier is kind = \"{kind}\"",
                    names.join(" or ")
                ),
            ));
        }
    }

    let url = url(&n, at)?;
    let events = match &n.events {
        None => EventKind::ALL.to_vec(),
        Some(list) => {
            let mut events = list.get_ref().clone();
            if events.is_empty() {
                return Err(at.error(
                    list.span(),
                    "events must name at least one of \"update_available\", \"updated\", \"rolled_back\", \"failed\", \"blocked\" (or be left out for all five)",
                ));
            }
            events.sort();
            events.dedup();
            events
        }
    };
    let token = match &n.token_file {
        Some(file) => Some(read_secret("token_file", file, at)?),
        None if kind == NotifyKind::Gotify => {
            return Err(at.error(
                n.kind.span(),
                "kind = \"gotify\" needs token_file: a file holding the application's token",
            ))
        }
        None => None,
    };
    // SMTP refuses a password over a plain connection (see `email`); ntfy and Gotify tokens
    // get the same rule, except for a server on this machine.
    let has_credentials = token.is_some() || !url.username().is_empty() || url.password().is_some();
    if matches!(kind, NotifyKind::Ntfy | NotifyKind::Gotify)
        && has_credentials
        && url.scheme() == "http"
        && !crate::net::is_loopback(url.host_str().unwrap_or_default())
    {
        return Err(at.error(
            url_span(&n),
            format!(
                "kind = \"{kind}\" sends its token with every message, and plain http:// to another machine shows it to anyone on the way: use https:// (http:// only to a loopback address)"
            ),
        ));
    }
    let email = match kind {
        NotifyKind::Email => Some(email(&n, &url, at)?),
        _ => None,
    };
    let mqtt = match kind {
        NotifyKind::Mqtt => Some(mqtt(&n, &url, at)?),
        _ => None,
    };
    Ok(NotifyConfig {
        kind,
        url,
        events,
        token,
        email,
        mqtt,
    })
}

/// `url`, or `url_file` for URLs that are themselves the secret. The URL is never repeated in
/// an error, since it may be one.
fn url(n: &RawNotify, at: &Locator<'_>) -> Result<Url, ConfigError> {
    let kind = *n.kind.get_ref();
    let (text, span, source) = match (&n.url, &n.url_file) {
        (Some(_), Some(file)) => {
            return Err(at.error(
                file.span(),
                "url and url_file are exclusive: keep one of them",
            ))
        }
        (Some(url), None) => (
            url.get_ref().trim().to_string(),
            url.span(),
            "url".to_string(),
        ),
        (None, Some(file)) => {
            let secret = read_secret("url_file", file, at)?;
            (
                secret.expose().trim().to_string(),
                file.span(),
                format!("url_file {}", file.get_ref().display()),
            )
        }
        (None, None) => {
            let example = match kind {
                NotifyKind::Email => "\"smtp://mail.example.com:25\"",
                NotifyKind::Mqtt => "\"mqtt://broker.lan:1883\"",
                _ => "\"https://hooks.example.com/tidewatch\"",
            };
            return Err(at.error(
                n.kind.span(),
                format!("kind = \"{kind}\" needs url (or url_file), e.g. url = {example}"),
            ));
        }
    };
    let url = Url::parse(&text)
        .map_err(|e| at.error(span.clone(), format!("{source}: not a URL ({e})")))?;
    let scheme_ok = match kind {
        NotifyKind::Email => matches!(url.scheme(), "smtp" | "smtp+starttls" | "smtps"),
        NotifyKind::Mqtt => matches!(url.scheme(), "mqtt" | "mqtts"),
        _ => HTTP_KINDS.contains(&kind) && matches!(url.scheme(), "http" | "https"),
    };
    if !scheme_ok || url.host_str().is_none_or(str::is_empty) {
        let expected = match kind {
            NotifyKind::Email => {
                "smtp://host[:port] (plain), smtp+starttls://host[:port] or smtps://host[:port]"
            }
            NotifyKind::Mqtt => "mqtt://host[:port] (plain) or mqtts://host[:port] (TLS)",
            _ => "an http:// or https:// URL",
        };
        return Err(at.error(
            span,
            format!("{source}: kind = \"{kind}\" expects {expected}"),
        ));
    }
    Ok(url)
}

/// Where the URL was given: `url`, else `url_file`, else the notifier's `kind`.
fn url_span(n: &RawNotify) -> Range<usize> {
    n.url
        .as_ref()
        .map(|u| u.span())
        .or_else(|| n.url_file.as_ref().map(|f| f.span()))
        .unwrap_or_else(|| n.kind.span())
}

fn email(n: &RawNotify, url: &Url, at: &Locator<'_>) -> Result<EmailConfig, ConfigError> {
    let span = url_span(n);
    if !url.username().is_empty() || url.password().is_some() {
        return Err(at.error(
            span,
            "the SMTP url takes no user or password: use username and password_file",
        ));
    }
    let (security, default_port) = match url.scheme() {
        "smtps" => (SmtpSecurity::Tls, 465),
        "smtp+starttls" => (SmtpSecurity::StartTls, 587),
        _ => (SmtpSecurity::None, 25),
    };
    let mailbox = |value: &Spanned<String>, key: &str| -> Result<Mailbox, ConfigError> {
        value.get_ref().trim().parse::<Mailbox>().map_err(|e| {
            at.error(
                value.span(),
                format!(
                    "{key} {:?}: {e} (expected an address like \"ops@example.com\" or \"Ops <ops@example.com>\")",
                    value.get_ref()
                ),
            )
        })
    };
    let Some(from) = &n.from else {
        return Err(at.error(
            n.kind.span(),
            "kind = \"email\" needs from, e.g. from = \"tidewatch@host.example.com\"",
        ));
    };
    let from = mailbox(from, "from")?;
    let to = match &n.to {
        Some(list) if !list.get_ref().is_empty() => list
            .get_ref()
            .iter()
            .map(|t| mailbox(t, "to"))
            .collect::<Result<Vec<_>, _>>()?,
        Some(list) => return Err(at.error(list.span(), "to must name at least one recipient")),
        None => {
            return Err(at.error(
                n.kind.span(),
                "kind = \"email\" needs to, e.g. to = [\"ops@example.com\"]",
            ))
        }
    };
    let login = match (&n.username, &n.password_file) {
        (None, None) => None,
        (Some(user), None) => {
            return Err(at.error(user.span(), "username needs password_file"));
        }
        (None, Some(file)) => {
            return Err(at.error(file.span(), "password_file needs a username"));
        }
        (Some(user), Some(file)) => {
            if security == SmtpSecurity::None {
                return Err(at.error(
                    user.span(),
                    "a password is only sent over an encrypted connection: use smtps:// or smtp+starttls://",
                ));
            }
            Some(ConfiguredLogin {
                username: user.get_ref().clone(),
                password: read_secret("password_file", file, at)?,
                source: format!("password_file {}", file.get_ref().display()),
            })
        }
    };
    Ok(EmailConfig {
        host: url.host_str().unwrap_or_default().to_string(),
        port: url.port().unwrap_or(default_port),
        security,
        from,
        to,
        login,
    })
}

fn mqtt(n: &RawNotify, url: &Url, at: &Locator<'_>) -> Result<MqttConfig, ConfigError> {
    let span = url_span(n);
    if !url.username().is_empty() || url.password().is_some() {
        return Err(at.error(
            span,
            "the MQTT url takes no user or password: use username and password_file",
        ));
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() {
        return Err(at.error(
            span,
            "the MQTT url names the broker only (mqtt://host[:port]): topics come from topic_prefix",
        ));
    }
    let tls = url.scheme() == "mqtts";
    let host = url.host_str().unwrap_or_default().to_string();
    let login = match (&n.username, &n.password_file) {
        (None, None) => None,
        (Some(user), None) => return Err(at.error(user.span(), "username needs password_file")),
        (None, Some(file)) => return Err(at.error(file.span(), "password_file needs a username")),
        (Some(user), Some(file)) => Some(ConfiguredLogin {
            username: user.get_ref().clone(),
            password: read_secret("password_file", file, at)?,
            source: format!("password_file {}", file.get_ref().display()),
        }),
    };
    let install_token = n
        .install_token_file
        .as_ref()
        .map(|file| read_secret("install_token_file", file, at))
        .transpose()?;
    // Like ntfy's and Gotify's tokens: a password or the install token crosses the network in
    // the clear only to a broker on this machine.
    if !tls && (login.is_some() || install_token.is_some()) && !crate::net::is_loopback(&host) {
        return Err(at.error(
            span,
            "a password or install token over plain mqtt:// to another machine is shown to anyone on the way: use mqtts:// (mqtt:// only to a loopback address)",
        ));
    }
    let topic_prefix = match &n.topic_prefix {
        None => "tidewatch".to_string(),
        Some(prefix) => {
            let text = prefix.get_ref();
            check_topic_prefix(text)
                .map_err(|why| at.error(prefix.span(), format!("topic_prefix {text:?}: {why}")))?;
            text.clone()
        }
    };
    Ok(MqttConfig {
        port: url.port().unwrap_or(if tls { 8883 } else { 1883 }),
        host,
        tls,
        login,
        topic_prefix,
        discovery: n
            .homeassistant_discovery
            .as_ref()
            .is_some_and(|d| *d.get_ref()),
        install_token,
    })
}

/// A prefix is one or more topic levels: not empty, no empty level (a leading, trailing or
/// doubled `/`), no wildcard, no NUL, no `$` at the start (the broker's own topics).
fn check_topic_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() || prefix.len() > MAX_TOPIC_PREFIX {
        return Err(format!(
            "expected 1 to {MAX_TOPIC_PREFIX} bytes, e.g. \"tidewatch\" or \"home/servers\""
        ));
    }
    if prefix.split('/').any(str::is_empty) {
        return Err("a topic level is empty (a leading, trailing or doubled `/`)".to_string());
    }
    if let Some(c) = prefix
        .chars()
        .find(|c| matches!(c, '+' | '#' | '\0') || c.is_control())
    {
        return Err(format!("{c:?} is not allowed in a topic prefix"));
    }
    if prefix.starts_with('$') {
        return Err("topics starting with `$` are the broker's own".to_string());
    }
    Ok(())
}

/// Reads a secret now, so a missing file fails at start-up. A trailing newline from
/// `echo secret > file` is not part of it.
fn read_secret(
    key: &str,
    file: &Spanned<impl AsRef<Path>>,
    at: &Locator<'_>,
) -> Result<Secret, ConfigError> {
    let path = file.get_ref().as_ref();
    let text = std::fs::read_to_string(path)
        .map_err(|e| at.error(file.span(), format!("{key} {}: {e}", path.display())))?;
    let secret = text.trim_end_matches(['\n', '\r']).to_string();
    if secret.is_empty() {
        return Err(at.error(file.span(), format!("{key} {} is empty", path.display())));
    }
    Ok(Secret(secret))
}

#[cfg(test)]
mod tests;
