//! Notifications: what a cycle did, announced to webhooks, chat services and email, and every
//! container's state, retained on an MQTT broker ([`mqtt`]).
//!
//! This module owns turning a [`CycleReport`] into [`Event`]s, remembering which were already
//! announced (in the state store, so a restart does not announce them again), and sending one
//! message per notifier per cycle. Sending never blocks or fails an update:
//! [`Notifications::dispatch`] returns at once and its task retries with backoff, then logs and
//! gives up.
//!
//! The cycle calls [`Notifications::announce`] with its report; that is [`events_of`], then
//! [`dedupe`], then [`Notifications::dispatch`].

mod message;
pub mod mqtt;
mod send;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinHandle;

use crate::config::{NotifyConfig, NotifyKind};
use crate::plan::detect::{CheckRow, Signature, Status};
use crate::release_notes::ReleaseNotes;
use crate::report::{CycleReport, StepOutcome, StepResult};
use crate::shutdown::Shutdown;
use crate::state::SharedStore;

pub use crate::config::EventKind;
pub use send::{Notifier, NotifyError};

/// One thing to announce about one container. Field names are part of the webhook's JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Container name.
    pub container: String,
    /// Its image reference.
    pub image: String,
    /// What happened.
    pub event: EventKind,
    /// The digest it ran.
    pub from_digest: Option<String>,
    /// The digest it was moved to, or that is available.
    pub to_digest: Option<String>,
    /// Why, in words (may be empty).
    pub detail: String,
    /// The versions and where to read what changed (each field absent when unknown).
    #[serde(flatten)]
    pub notes: ReleaseNotes,
}

impl Event {
    /// The digest this event is about, which with the container and the kind makes it unique:
    /// the new digest, else the old one, else none.
    pub fn digest(&self) -> &str {
        self.to_digest
            .as_deref()
            .or(self.from_digest.as_deref())
            .unwrap_or("")
    }
}

/// The events of one cycle: `updated`, `rolled_back` and `failed` from the steps it applied and
/// those it recovered after a crash, then `update_available` for the containers that
/// `notify_only` says are monitor-only (they are reported, never updated), and `blocked` for
/// the new digests that their `[[verify]]` rule refused. Skipped steps are not events.
pub fn events_of(report: &CycleReport, notify_only: impl Fn(&str) -> bool) -> Vec<Event> {
    let steps = report
        .recovered
        .iter()
        .chain(&report.results)
        .filter_map(step_event);
    let row_event = |row: &CheckRow, event| row_event(row, event, String::new());
    let available = report
        .containers
        .iter()
        .filter(|row| row.status == Status::UpdateAvailable && notify_only(&row.container))
        .map(|row| row_event(row, EventKind::UpdateAvailable));
    let blocked = report
        .containers
        .iter()
        .filter(|row| row.signature == Some(Signature::Rejected))
        .map(|row| row_event(row, EventKind::Blocked));
    steps.chain(available).chain(blocked).collect()
}

/// The events of a cycle's `[[gitops]]` write-back: `updated` for each image a pushed commit
/// pinned (the detail names the commit and the repository), `update_available` for the
/// images whose policy is `notify`, and `blocked` for the new digests that a `[[verify]]` rule
/// kept out of the repository, as for containers.
pub fn events_of_write_back(reports: &[crate::gitops::run::RepoReport]) -> Vec<Event> {
    use crate::gitops::checkout::Published;
    let mut events = Vec::new();
    for r in reports {
        if let Some(Published::Pushed { commit, .. }) = &r.published {
            let short = &commit[..commit.len().min(12)];
            events.extend(r.pins.iter().map(|p| Event {
                container: p.row.clone(),
                image: p.image.clone(),
                event: EventKind::Updated,
                from_digest: p.old.clone(),
                to_digest: Some(p.new.clone()),
                detail: format!("pinned in git: commit {short} to {}", r.repo),
                notes: ReleaseNotes::default(),
            }));
        }
        events.extend(
            r.rows
                .iter()
                .filter(|row| row.status == Status::UpdateAvailable)
                .filter(|row| row.detail.as_deref() == Some(crate::gitops::plan::NOTIFY_ONLY))
                .map(|row| row_event(row, EventKind::UpdateAvailable, format!(" in {}", r.repo))),
        );
        events.extend(
            r.rows
                .iter()
                .filter(|row| row.signature == Some(Signature::Rejected))
                .map(|row| row_event(row, EventKind::Blocked, format!(" in {}", r.repo))),
        );
    }
    events
}

/// `event` of a row, about its available digest; the detail is the row's, then `suffix`.
fn row_event(row: &CheckRow, event: EventKind, suffix: String) -> Event {
    Event {
        container: row.container.clone(),
        image: row.image.clone(),
        event,
        from_digest: row.current_digest.clone(),
        to_digest: row.available_digest.clone(),
        detail: format!("{}{suffix}", row.detail.as_deref().unwrap_or_default()),
        notes: row.notes.clone(),
    }
}

fn step_event(step: &StepResult) -> Option<Event> {
    let event = match step.outcome {
        StepOutcome::Updated => EventKind::Updated,
        StepOutcome::RolledBack => EventKind::RolledBack,
        StepOutcome::Failed => EventKind::Failed,
        StepOutcome::Skipped => return None,
    };
    Some(Event {
        container: step.container.clone(),
        image: step.image.clone(),
        event,
        from_digest: step.from_digest.clone(),
        to_digest: step.to_digest.clone(),
        detail: step.detail.clone(),
        notes: step.notes.clone(),
    })
}

/// Keeps the events not announced before, and records them as announced: each `(container,
/// digest, event)` passes once, also across restarts (see [`Event::digest`]).
///
/// An event is recorded before it is sent, so a notifier that stays down past its retries
/// misses it rather than repeating it every cycle. When the store cannot be written the event
/// is kept: a repeated message is better than a lost failure.
pub async fn dedupe(store: &SharedStore, events: Vec<Event>) -> Vec<Event> {
    if events.is_empty() {
        return events;
    }
    store
        .with(move |s| {
            events
                .into_iter()
                .filter(
                    |e| match s.mark_notified(&e.container, e.digest(), e.event.as_str()) {
                        Ok(new) => new,
                        Err(err) => {
                            tracing::warn!(container = %e.container, event = e.event.as_str(), "recording a notification: {err}");
                            true
                        }
                    },
                )
                .collect()
        })
        .await
}

/// This machine's host name, which messages are signed with; `localhost` if it cannot be read.
pub fn host_name() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// How hard a message is tried: `attempts` tries, each cut off after `attempt_timeout`, with
/// waits doubling from `first_delay` up to `max_delay` between them. Errors that another try
/// cannot fix (a 4xx answer, a refused address) are not retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// Tries in all (at least one is made).
    pub attempts: u32,
    /// The wait after the first failure.
    pub first_delay: Duration,
    /// The longest wait between two tries.
    pub max_delay: Duration,
    /// How long one try may take.
    pub attempt_timeout: Duration,
}

impl Default for Retry {
    /// Five tries over a minute at most: 8 s each, 1 + 2 + 4 + 8 s between them.
    fn default() -> Self {
        Retry {
            attempts: 5,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(8),
            attempt_timeout: Duration::from_secs(8),
        }
    }
}

/// Every configured notifier, ready to send.
pub struct Notifications {
    notifiers: Vec<Arc<Notifier>>,
    mqtt: Vec<Arc<mqtt::Mqtt>>,
    retry: Retry,
}

impl Notifications {
    /// Builds a notifier per `[[notify]]`. Fails only when an HTTP or SMTP client cannot be set
    /// up (e.g. the system's TLS roots cannot be loaded); nothing is sent yet.
    pub fn new(configs: &[NotifyConfig]) -> Result<Notifications, NotifyError> {
        let mqtt = configs
            .iter()
            .filter_map(mqtt::Mqtt::new)
            .map(Arc::new)
            .collect();
        let configs: Vec<&NotifyConfig> = configs
            .iter()
            .filter(|c| c.kind != NotifyKind::Mqtt)
            .collect();
        let notifiers = if configs.is_empty() {
            Vec::new()
        } else {
            let http = reqwest::Client::builder()
                .user_agent(concat!("tidewatch/", env!("CARGO_PKG_VERSION")))
                .redirect(send::same_origin_redirects())
                .build()
                .map_err(|e| NotifyError::Http(e.without_url()))?;
            configs
                .iter()
                .map(|c| Notifier::new(c, &http).map(Arc::new))
                .collect::<Result<_, _>>()?
        };
        Ok(Notifications {
            notifiers,
            mqtt,
            retry: Retry::default(),
        })
    }

    /// Replaces the retry policy (tests shorten it).
    pub fn with_retry(mut self, retry: Retry) -> Notifications {
        self.retry = retry;
        self
    }

    /// True when no notifier is configured.
    pub fn is_empty(&self) -> bool {
        self.notifiers.is_empty() && self.mqtt.is_empty()
    }

    /// Opens the daemon's MQTT connections (see [`mqtt::Mqtt::start`]), which publish from
    /// then on; install commands go to `triggers`. The tasks end after their goodbye, once
    /// `shutdown` fires. A notifier whose TLS cannot be set up is logged and left out.
    pub fn start_mqtt(
        &self,
        host: &str,
        shutdown: &Shutdown,
        triggers: Option<&tokio::sync::mpsc::Sender<crate::api::Trigger>>,
    ) -> Vec<JoinHandle<()>> {
        self.mqtt
            .iter()
            .filter_map(
                |m| match m.start(host, shutdown.clone(), triggers.cloned()) {
                    Ok(task) => Some(task),
                    Err(e) => {
                        tracing::error!("MQTT: {e}");
                        None
                    }
                },
            )
            .collect()
    }

    /// Whether some MQTT notifier takes install commands.
    pub fn mqtt_install(configs: &[NotifyConfig]) -> bool {
        configs
            .iter()
            .any(|c| c.mqtt.as_ref().is_some_and(|m| m.install_token.is_some()))
    }

    /// Publishes `rows` (with the outcomes of `results`) to the MQTT notifiers, in a task
    /// that ends when they are published or given up on. Must be called within a Tokio
    /// runtime.
    pub fn publish_state(
        &self,
        host: &str,
        rows: Vec<CheckRow>,
        results: Vec<StepResult>,
    ) -> JoinHandle<()> {
        let mqtt = self.mqtt.clone();
        let host = host.to_string();
        tokio::spawn(async move {
            let sends = mqtt.iter().map(|m| m.publish(&host, &rows, &results));
            futures_util::future::join_all(sends).await;
        })
    }

    /// Whether some notifier announces `event`.
    pub fn wants(&self, event: EventKind) -> bool {
        self.notifiers.iter().any(|n| n.wants(event))
    }

    /// The events of `report` that some notifier wants and that were not announced before,
    /// recorded as announced and sent (see [`events_of`], [`dedupe`], [`Self::dispatch`]).
    /// Returns once they are recorded; the sending goes on in the returned task. Not for a dry
    /// run, which must not write the store.
    pub async fn announce(
        &self,
        store: &SharedStore,
        host: &str,
        report: &CycleReport,
        notify_only: impl Fn(&str) -> bool,
    ) -> JoinHandle<()> {
        let mut events = events_of(report, notify_only);
        events.retain(|e| self.wants(e.event));
        let events = dedupe(store, events).await;
        let messages = self.dispatch(host, events);
        if self.mqtt.is_empty() {
            return messages;
        }
        let results = report
            .recovered
            .iter()
            .chain(&report.results)
            .cloned()
            .collect();
        let state = self.publish_state(host, report.current_rows(), results);
        tokio::spawn(async move {
            let _ = messages.await;
            let _ = state.await;
        })
    }

    /// The events of a `[[gitops]]` write-back that some notifier wants and that were not
    /// announced before, recorded and sent like a cycle's (see [`Self::announce`]).
    pub async fn announce_write_back(
        &self,
        store: &SharedStore,
        host: &str,
        reports: &[crate::gitops::run::RepoReport],
    ) -> JoinHandle<()> {
        let mut events = events_of_write_back(reports);
        events.retain(|e| self.wants(e.event));
        let events = dedupe(store, events).await;
        self.dispatch(host, events)
    }

    /// Sends `events` from `host`: one message per notifier, holding the events it wants, in a
    /// spawned task that retries (see [`Retry`]) and logs what it could not send. Returns at
    /// once; awaiting the handle waits for every notifier to succeed or give up. Must be called
    /// within a Tokio runtime.
    pub fn dispatch(&self, host: &str, events: Vec<Event>) -> JoinHandle<()> {
        let jobs: Vec<(Arc<Notifier>, Vec<Event>)> = self
            .notifiers
            .iter()
            .filter_map(|n| {
                let mine: Vec<Event> = events
                    .iter()
                    .filter(|e| n.wants(e.event))
                    .cloned()
                    .collect();
                (!mine.is_empty()).then(|| (n.clone(), mine))
            })
            .collect();
        let retry = self.retry.clone();
        let host = host.to_string();
        tokio::spawn(async move {
            let sends = jobs
                .iter()
                .map(|(notifier, events)| send::deliver(notifier, &host, events, &retry));
            futures_util::future::join_all(sends).await;
        })
    }
}

#[cfg(test)]
mod tests;
