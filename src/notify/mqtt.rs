//! `[[notify]] kind = "mqtt"`: every container's state, retained on an MQTT broker, and with
//! `homeassistant_discovery` one Home Assistant `update` entity per container. Topics and
//! payloads are in [`payload`]; this module talks to the broker.
//!
//! The daemon holds one connection ([`Mqtt::start`]): a task polls its event loop, reconnects
//! with backoff, announces `online` on the availability topic (the Last Will says `offline`)
//! and republishes what it last published after every reconnect, since a restarted broker may
//! have lost its retained messages. One-shot commands (`update`, `check`) connect, publish and
//! disconnect cleanly ([`Mqtt::publish`] without a started connection).
//!
//! With `install_token_file`, the daemon subscribes to `PREFIX/HOST/+/install`: a message whose
//! payload is the token queues `update CONTAINER` exactly like `POST /v1/update?container=`;
//! any other payload, a retained message or a container it has not published is refused.

pub mod payload;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::Utc;
use rumqttc::{
    AsyncClient, Event as MqttEvent, EventLoop, LastWill, MqttOptions, Outgoing, Packet, Publish,
    QoS, TlsConfiguration, Transport,
};
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use self::payload::{Offer, Topics, OFFLINE, ONLINE};
use crate::api::Trigger;
use crate::config::{MqttConfig, NotifyConfig};
use crate::plan::detect::CheckRow;
use crate::report::StepResult;
use crate::shutdown::Shutdown;

/// The longest a one-shot publication (connect, publish, acknowledgements, disconnect) takes.
const ONE_SHOT_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest the daemon waits for room to queue a cycle's messages; what does not fit is
/// published from memory at the next reconnect.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest the daemon's goodbye (`offline`, disconnect) takes at shutdown.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(3);
/// Reconnection backoff: from the first to the last, doubling.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// What a broker may send us in one packet: install commands are a token long.
const MAX_INCOMING: usize = 16 * 1024;
/// Our largest packet: a discovery configuration is about a kilobyte.
const MAX_OUTGOING: usize = 256 * 1024;
/// Requests queued for the event loop.
const REQUEST_QUEUE: usize = 1024;
/// MQTT 3.1.1 servers must accept client ids of 23 bytes; mosquitto takes more, but no need.
const MAX_CLIENT_ID: usize = 23;

/// Why the broker could not be reached or did not take the messages. Never holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// Connecting, the TLS handshake, the broker's answer (a refused login) or the connection.
    /// (Boxed: it is large, and the other variants are not.)
    #[error("{0}")]
    Connection(Box<rumqttc::ConnectionError>),
    /// The TLS client could not be set up (the system's trust store).
    #[error("setting up TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The event loop is gone.
    #[error("the MQTT client stopped")]
    Client(#[from] rumqttc::ClientError),
    /// Not done within [`ONE_SHOT_TIMEOUT`].
    #[error("not acknowledged within {0:?}")]
    Timeout(Duration),
}

impl From<rumqttc::ConnectionError> for MqttError {
    fn from(e: rumqttc::ConnectionError) -> MqttError {
        MqttError::Connection(Box::new(e))
    }
}

/// What the notifier remembers between cycles.
#[derive(Default)]
struct Memory {
    /// Topic -> payload of every retained message published, for republishing on reconnect.
    retained: BTreeMap<String, Vec<u8>>,
    /// Topic level -> container name, of the containers published: the only ones an install
    /// command can name.
    containers: BTreeMap<String, String>,
    /// Container -> how its last update ended.
    last_result: BTreeMap<String, String>,
}

/// The daemon's connection.
struct Live {
    client: AsyncClient,
    topics: Topics,
}

/// One `kind = "mqtt"` notifier.
pub struct Mqtt {
    config: MqttConfig,
    /// `mqtt[s]://host:port`, for logs.
    target: String,
    live: OnceLock<Live>,
    memory: Mutex<Memory>,
}

impl Mqtt {
    /// The notifier of `config`, which must be `kind = "mqtt"`; `None` otherwise. Nothing is
    /// connected yet.
    pub fn new(config: &NotifyConfig) -> Option<Mqtt> {
        let mqtt = config.mqtt.clone()?;
        Some(Mqtt {
            target: config.target(),
            config: mqtt,
            live: OnceLock::new(),
            memory: Mutex::new(Memory::default()),
        })
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        // A panic while holding it leaves maps that are still maps.
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn options(&self, client_id: &str) -> Result<MqttOptions, MqttError> {
        let id: String = client_id.chars().take(MAX_CLIENT_ID).collect();
        let mut options = MqttOptions::new(id, &self.config.host, self.config.port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_session(true)
            .set_max_packet_size(MAX_INCOMING, MAX_OUTGOING);
        if let Some(login) = &self.config.login {
            options.set_credentials(login.username.clone(), login.password.expose());
        }
        if self.config.tls {
            use rustls_platform_verifier::BuilderVerifierExt;
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_platform_verifier()?
                .with_no_client_auth();
            options.set_transport(Transport::Tls(TlsConfiguration::Rustls(Arc::new(tls))));
        }
        Ok(options)
    }

    /// The retained messages of `rows` (and `results`' outcomes), remembered for install
    /// commands and reconnects.
    fn messages(
        &self,
        topics: &Topics,
        host: &str,
        rows: &[CheckRow],
        results: &[StepResult],
        availability: bool,
    ) -> Vec<(String, Vec<u8>)> {
        let now = Utc::now();
        let offer = Offer {
            availability,
            install: self.config.install_token.is_some(),
        };
        let token = self.config.install_token.as_ref().map(|t| t.expose());
        let mut memory = self.memory();
        for r in results {
            memory
                .last_result
                .insert(r.container.clone(), r.outcome.to_string());
        }
        let mut out = Vec::new();
        for row in rows {
            memory
                .containers
                .insert(payload::topic_level(&row.container), row.container.clone());
            let last = memory.last_result.get(&row.container).map(String::as_str);
            let state = payload::state(row, last, now);
            // A struct of strings and options: serialising it cannot fail.
            let body = serde_json::to_vec(&state).unwrap_or_default();
            out.push((topics.state(&row.container), body));
            if self.config.discovery {
                let config = payload::discovery(topics, host, row, offer, token);
                out.push((
                    topics.discovery(&row.container),
                    config.to_string().into_bytes(),
                ));
            }
        }
        for (topic, body) in &out {
            memory.retained.insert(topic.clone(), body.clone());
        }
        out
    }

    /// Publishes the state of `rows` from `host`: through the daemon's connection once
    /// [`Self::start`] ran, else on a connection of its own, closed when done. Errors are
    /// logged, never returned: a broker that is down does not fail a cycle.
    pub async fn publish(&self, host: &str, rows: &[CheckRow], results: &[StepResult]) {
        if let Some(live) = self.live.get() {
            let messages = self.messages(&live.topics, host, rows, results, true);
            let queued = tokio::time::timeout(QUEUE_TIMEOUT, async {
                for (topic, body) in messages {
                    live.client
                        .publish(topic, QoS::AtLeastOnce, true, body)
                        .await?;
                }
                Ok::<_, rumqttc::ClientError>(())
            })
            .await;
            if !matches!(queued, Ok(Ok(()))) {
                tracing::info!(broker = %self.target, "MQTT: the broker is not reachable; the state is published when it is");
            }
            return;
        }
        let topics = Topics::new(&self.config.topic_prefix, host);
        let messages = self.messages(&topics, host, rows, results, false);
        let count = messages.len();
        match self.once(host, messages).await {
            Ok(()) => tracing::debug!(broker = %self.target, count, "MQTT: state published"),
            Err(e) => tracing::warn!(broker = %self.target, "MQTT: publishing the state: {e}"),
        }
    }

    /// Connects, publishes `messages` retained with QoS 1, waits for the broker's
    /// acknowledgements, and disconnects cleanly.
    async fn once(&self, host: &str, messages: Vec<(String, Vec<u8>)>) -> Result<(), MqttError> {
        // Not the daemon's id: a broker drops the older of two sessions with one id.
        let id = format!("tw-{}-{}", std::process::id(), payload::topic_level(host));
        let (client, mut events) = AsyncClient::new(self.options(&id)?, messages.len().max(1) + 2);
        let expected = messages.len();
        for (topic, body) in messages {
            client.publish(topic, QoS::AtLeastOnce, true, body).await?;
        }
        let run = async {
            let mut acked = 0;
            if expected == 0 {
                client.disconnect().await?;
            }
            loop {
                match events.poll().await? {
                    MqttEvent::Incoming(Packet::PubAck(_)) => {
                        acked += 1;
                        if acked == expected {
                            client.disconnect().await?;
                        }
                    }
                    MqttEvent::Outgoing(Outgoing::Disconnect) => return Ok(()),
                    _ => {}
                }
            }
        };
        tokio::time::timeout(ONE_SHOT_TIMEOUT, run)
            .await
            .map_err(|_| MqttError::Timeout(ONE_SHOT_TIMEOUT))?
    }

    /// Opens the daemon's connection for the agent on `host` and keeps it until `shutdown`,
    /// when it says `offline` and disconnects. Install commands go to `triggers`. The returned
    /// task ends after the goodbye.
    pub fn start(
        self: &Arc<Self>,
        host: &str,
        shutdown: Shutdown,
        triggers: Option<mpsc::Sender<Trigger>>,
    ) -> Result<JoinHandle<()>, MqttError> {
        let topics = Topics::new(&self.config.topic_prefix, host);
        let id = format!("tidewatch-{}", payload::topic_level(host));
        let mut options = self.options(&id)?;
        options.set_last_will(LastWill::new(
            topics.availability(),
            OFFLINE,
            QoS::AtLeastOnce,
            true,
        ));
        let (client, events) = AsyncClient::new(options, REQUEST_QUEUE);
        // `start` runs once per daemon; a second call keeps the first connection.
        let _ = self.live.set(Live {
            client: client.clone(),
            topics: topics.clone(),
        });
        let me = self.clone();
        Ok(tokio::spawn(async move {
            me.run(events, client, topics, shutdown, triggers).await;
        }))
    }

    async fn run(
        self: Arc<Self>,
        mut events: EventLoop,
        client: AsyncClient,
        topics: Topics,
        mut shutdown: Shutdown,
        triggers: Option<mpsc::Sender<Trigger>>,
    ) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let event = tokio::select! {
                event = events.poll() => event,
                _ = shutdown.wait() => break,
            };
            match event {
                Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                    backoff = FIRST_BACKOFF;
                    tracing::info!(broker = %self.target, "MQTT: connected");
                    // In a task: publishing waits for room in the queue this loop empties.
                    let me = self.clone();
                    let client = client.clone();
                    let topics = topics.clone();
                    tokio::spawn(async move { me.republish(&client, &topics).await });
                }
                Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                    self.command(&topics, &p, triggers.as_ref());
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(
                        broker = %self.target,
                        retry_in_secs = backoff.as_secs(),
                        "MQTT: {e}"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.wait() => break,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        // A clean goodbye: the Last Will is only for a connection that breaks.
        let _ = client.try_publish(topics.availability(), QoS::AtLeastOnce, true, OFFLINE);
        let _ = client.try_disconnect();
        let goodbye = async {
            loop {
                match events.poll().await {
                    Ok(MqttEvent::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        };
        let _ = tokio::time::timeout(GOODBYE_TIMEOUT, goodbye).await;
    }

    /// After a (re)connection: subscribe to install commands, say `online`, and publish again
    /// what the broker may have lost.
    async fn republish(&self, client: &AsyncClient, topics: &Topics) {
        let retained: Vec<(String, Vec<u8>)> = self
            .memory()
            .retained
            .iter()
            .map(|(t, b)| (t.clone(), b.clone()))
            .collect();
        let count = retained.len();
        let sent = async {
            if self.config.install_token.is_some() {
                client
                    .subscribe(topics.install_filter(), QoS::AtLeastOnce)
                    .await?;
            }
            client
                .publish(topics.availability(), QoS::AtLeastOnce, true, ONLINE)
                .await?;
            for (topic, body) in retained {
                client.publish(topic, QoS::AtLeastOnce, true, body).await?;
            }
            Ok::<_, rumqttc::ClientError>(())
        };
        match tokio::time::timeout(QUEUE_TIMEOUT, sent).await {
            Ok(Ok(())) => tracing::info!(broker = %self.target, count, "MQTT: state republished"),
            _ => {
                tracing::warn!(broker = %self.target, "MQTT: republishing the state did not finish; it is tried again at the next connection")
            }
        }
    }

    /// An install command: `update CONTAINER` when the payload is the install token and the
    /// container is one this agent published. The payload is never logged.
    fn command(&self, topics: &Topics, p: &Publish, triggers: Option<&mpsc::Sender<Trigger>>) {
        let Some(level) = topics.install_level(&p.topic) else {
            return;
        };
        let (Some(token), Some(triggers)) = (&self.config.install_token, triggers) else {
            return;
        };
        // A retained command would run again at every reconnect.
        if p.retain {
            tracing::warn!(topic = %p.topic, "MQTT install refused: the message is retained (publish it without retain)");
            return;
        }
        let right: bool = p.payload.as_ref().ct_eq(token.expose().as_bytes()).into();
        if !right {
            tracing::warn!(topic = %p.topic, "MQTT install refused: the payload is not the install token");
            return;
        }
        let Some(container) = self.memory().containers.get(level).cloned() else {
            tracing::warn!(topic = %p.topic, "MQTT install refused: no container published under this topic");
            return;
        };
        let trigger = Trigger::Cycle {
            container: Some(container.clone()),
            force: false,
        };
        match triggers.try_send(trigger) {
            Ok(()) => tracing::info!(%container, "update triggered through MQTT"),
            Err(e) => {
                tracing::warn!(%container, "MQTT install not queued: {e}");
            }
        }
    }
}
