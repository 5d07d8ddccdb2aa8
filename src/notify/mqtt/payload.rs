//! What the MQTT notifier publishes, and where: topics, the retained per-container state and
//! Home Assistant's discovery configuration. Pure, so every topic and payload is tested on
//! literals; `mqtt` does the talking.
//!
//! | topic | payload |
//! | --- | --- |
//! | `PREFIX/HOST/availability` | `online` / `offline` (retained; `offline` is the Last Will) |
//! | `PREFIX/HOST/CONTAINER/state` | [`State`] as JSON (retained) |
//! | `PREFIX/HOST/CONTAINER/install` | the install token: queues `update CONTAINER` |
//! | `homeassistant/update/tidewatch_HOST/CONTAINER/config` | [`discovery`] (retained) |
//!
//! Container and host names come from the engine and the system: each becomes one topic level
//! through [`topic_level`], and one discovery id through [`discovery_id`], so no name can add a
//! level, a wildcard or a NUL.

use std::hash::Hasher;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use crate::plan::detect::{CheckRow, Status};

/// The longest topic level or discovery id made from a name, in bytes.
pub const MAX_LEVEL: usize = 64;

/// Home Assistant's default discovery prefix.
pub const DISCOVERY_PREFIX: &str = "homeassistant";

/// The availability payloads.
pub const ONLINE: &str = "online";
/// See [`ONLINE`].
pub const OFFLINE: &str = "offline";

/// `name` as one topic level: ASCII letters, digits, `_`, `-` and `.` kept, anything else
/// (`/`, `+`, `#`, NUL, spaces, non-ASCII) replaced by `_`, at most [`MAX_LEVEL`] bytes. A
/// name that had to change gets a short hash of the original, so two odd names do not share a
/// topic. Docker's own names (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`) pass unchanged.
pub fn topic_level(name: &str) -> String {
    sanitise(name, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
    })
}

/// `name` as a Home Assistant discovery id (`node_id`, `object_id`), which allows
/// `[a-zA-Z0-9_-]` only; like [`topic_level`] otherwise.
pub fn discovery_id(name: &str) -> String {
    sanitise(name, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '_' | '-')
    })
}

fn sanitise(name: &str, keep: impl Fn(char) -> bool) -> String {
    let clean: String = name
        .chars()
        .map(|c| if keep(c) { c } else { '_' })
        .collect();
    // `.` and `..` alone are valid MQTT levels but read like paths; an empty name is no level.
    let odd = clean.is_empty() || clean == "." || clean == "..";
    if clean == name && name.len() <= MAX_LEVEL && !odd {
        return clean;
    }
    let hash = format!("{:08x}", fnv1a(name.as_bytes()) as u32);
    // All ASCII by now, so any byte index is a char boundary.
    let keep_len = MAX_LEVEL - hash.len() - 1;
    let head = &clean[..clean.len().min(keep_len)];
    format!("{head}-{hash}")
}

/// FNV-1a: stable across runs and builds (std's hashers are not), so a name keeps its topic.
fn fnv1a(bytes: &[u8]) -> u64 {
    struct Fnv(u64);
    impl Hasher for Fnv {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.0 ^= u64::from(*b);
                self.0 = self.0.wrapping_mul(0x100_0000_01b3);
            }
        }
    }
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    h.write(bytes);
    h.finish()
}

/// The topics of one agent (`host`) under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
    host: String,
}

impl Topics {
    /// Topics under `prefix` (validated by the configuration) for the agent on `host`.
    pub fn new(prefix: &str, host: &str) -> Topics {
        Topics {
            prefix: prefix.to_string(),
            host: topic_level(host),
        }
    }

    /// `PREFIX/HOST/availability`.
    pub fn availability(&self) -> String {
        format!("{}/{}/availability", self.prefix, self.host)
    }

    /// `PREFIX/HOST/CONTAINER/state`.
    pub fn state(&self, container: &str) -> String {
        format!(
            "{}/{}/{}/state",
            self.prefix,
            self.host,
            topic_level(container)
        )
    }

    /// `PREFIX/HOST/CONTAINER/install`.
    pub fn install(&self, container: &str) -> String {
        format!(
            "{}/{}/{}/install",
            self.prefix,
            self.host,
            topic_level(container)
        )
    }

    /// `PREFIX/HOST/+/install`: what the daemon subscribes to when install is enabled.
    pub fn install_filter(&self) -> String {
        format!("{}/{}/+/install", self.prefix, self.host)
    }

    /// The container level of an install topic, if `topic` is one of ours.
    pub fn install_level<'t>(&self, topic: &'t str) -> Option<&'t str> {
        let rest = topic
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix('/')?
            .strip_prefix(self.host.as_str())?
            .strip_prefix('/')?;
        let level = rest.strip_suffix("/install")?;
        (!level.is_empty() && !level.contains('/')).then_some(level)
    }

    /// `homeassistant/update/tidewatch_HOST/CONTAINER/config`.
    pub fn discovery(&self, container: &str) -> String {
        format!(
            "{DISCOVERY_PREFIX}/update/{}/{}/config",
            self.node_id(),
            discovery_id(container)
        )
    }

    /// The Home Assistant node (the device): `tidewatch_HOST`.
    pub fn node_id(&self) -> String {
        discovery_id(&format!("tidewatch_{}", self.host))
    }
}

/// The versions and release notes of a row, as Home Assistant compares them: it offers an
/// update whenever the two strings differ, so they differ exactly when the check found one.
/// The images' version labels (the release notes) when both are known and differ, else the
/// short digests (`sha256:` and 12 hex digits); without an update, the available version is
/// the installed one. This is the one place that decides it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Versions {
    /// What the container runs.
    pub current: Option<String>,
    /// What its reference points to.
    pub available: Option<String>,
    /// Where the changes between them are described.
    pub changes_url: Option<String>,
}

/// See [`Versions`].
pub fn versions(row: &CheckRow) -> Versions {
    let notes = &row.notes;
    if row.status != Status::UpdateAvailable {
        let current = notes
            .current_version
            .clone()
            .or_else(|| row.current_digest.as_deref().map(short_digest));
        return Versions {
            available: current.clone(),
            current,
            changes_url: None,
        };
    }
    let (current, available) = match (&notes.current_version, &notes.available_version) {
        // A rebuild under the same version label is still an update: digests tell it apart.
        (Some(current), Some(available)) if current != available => {
            (Some(current.clone()), Some(available.clone()))
        }
        _ => (
            row.current_digest.as_deref().map(short_digest),
            row.available_digest.as_deref().map(short_digest),
        ),
    };
    Versions {
        current,
        available,
        changes_url: notes.changes_url.clone(),
    }
}

/// `sha256:` and the first 12 hex digits, as `docker images` shows an id.
pub fn short_digest(digest: &str) -> String {
    match digest.split_once(':') {
        Some((algorithm, hex)) => format!("{algorithm}:{}", &hex[..hex.len().min(12)]),
        None => digest.chars().take(12).collect(),
    }
}

/// The retained state of one container. Field names are part of the MQTT contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct State {
    /// The check's verdict (`up_to_date`, `update_available`...).
    pub status: String,
    /// The digest the container runs.
    pub current_digest: Option<String>,
    /// The digest its reference points to.
    pub available_digest: Option<String>,
    /// See [`Versions`].
    pub current_version: Option<String>,
    /// See [`Versions`].
    pub available_version: Option<String>,
    /// How its last update ended (`updated`, `rolled_back`, `failed`, `skipped`), if one was
    /// tried since the agent started.
    pub last_result: Option<String>,
    /// See [`Versions`].
    pub changes_url: Option<String>,
    /// When this was found, RFC 3339 in UTC.
    pub checked_at: String,
}

/// The state of `row`, found at `at`, with the last update's result.
pub fn state(row: &CheckRow, last_result: Option<&str>, at: DateTime<Utc>) -> State {
    let v = versions(row);
    State {
        status: row.status.as_str().to_string(),
        current_digest: row.current_digest.clone(),
        available_digest: row.available_digest.clone(),
        current_version: v.current,
        available_version: v.available,
        last_result: last_result.map(str::to_string),
        changes_url: v.changes_url,
        checked_at: at.to_rfc3339_opts(SecondsFormat::Secs, true),
    }
}

/// What discovery says beyond the row: how the agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    /// A daemon keeps the availability topic: entities go unavailable when it stops. A
    /// one-shot `update` or `check` publishes no availability, so its entities stay usable.
    pub availability: bool,
    /// `install` is enabled: the command topic and its payload are offered.
    pub install: bool,
}

/// The Home Assistant discovery configuration of `row`'s `update` entity (MQTT Update's
/// documented schema). `install_payload` is the install token, sent only when `offer.install`.
/// No `device_class`: `firmware` is for devices' firmware, not a container's image.
pub fn discovery(
    topics: &Topics,
    host: &str,
    row: &CheckRow,
    offer: Offer,
    install_payload: Option<&str>,
) -> Value {
    let state_topic = topics.state(&row.container);
    let mut config = json!({
        "name": row.container,
        "unique_id": format!("{}_{}", topics.node_id(), discovery_id(&row.container)),
        "state_topic": state_topic,
        "value_template": "{{ value_json.current_version }}",
        "latest_version_topic": state_topic,
        // An unknown latest version reads as the installed one: no update offered.
        "latest_version_template":
            "{{ value_json.available_version or value_json.current_version }}",
        "json_attributes_topic": state_topic,
        "title": row.image,
        "device": {
            "identifiers": [topics.node_id()],
            "name": format!("tidewatch on {host}"),
            "manufacturer": "tidewatch",
            "model": "container update agent",
            "sw_version": env!("CARGO_PKG_VERSION"),
        },
        "origin": {
            "name": "tidewatch",
            "sw_version": env!("CARGO_PKG_VERSION"),
        },
    });
    let Value::Object(map) = &mut config else {
        unreachable!("json! of an object literal is an object");
    };
    if let Some(url) = versions(row).changes_url {
        map.insert("release_url".into(), Value::String(url));
    }
    if offer.availability {
        map.insert("availability_topic".into(), topics.availability().into());
        map.insert("payload_available".into(), ONLINE.into());
        map.insert("payload_not_available".into(), OFFLINE.into());
    }
    if let (true, Some(payload)) = (offer.install, install_payload) {
        map.insert(
            "command_topic".into(),
            topics.install(&row.container).into(),
        );
        map.insert("payload_install".into(), payload.into());
    }
    config
}

#[cfg(test)]
mod tests;
