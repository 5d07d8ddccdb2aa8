use chrono::TimeZone;
use proptest::prelude::*;

use super::*;
use crate::plan::detect::Status;
use crate::release_notes::ReleaseNotes;

const OLD: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const NEW: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn row(name: &str, status: Status) -> CheckRow {
    CheckRow {
        container: name.to_string(),
        image: "registry.lan/web:1".to_string(),
        current_digest: Some(OLD.to_string()),
        available_digest: Some(NEW.to_string()),
        status,
        detail: None,
        notes: ReleaseNotes::default(),
        signature: None,
    }
}

fn noted(status: Status, current: Option<&str>, available: Option<&str>) -> CheckRow {
    CheckRow {
        notes: ReleaseNotes {
            current_version: current.map(str::to_string),
            available_version: available.map(str::to_string),
            changes_url: Some("https://github.com/acme/web/compare/a...b".to_string()),
        },
        ..row("web", status)
    }
}

#[test]
fn docker_names_are_their_own_topic_level() {
    for name in ["web", "my_app-1", "stack_web.1.abc"] {
        assert_eq!(topic_level(name), name);
    }
    assert_eq!(discovery_id("web-1_a"), "web-1_a");
}

#[test]
fn odd_names_lose_separators_and_wildcards_and_keep_apart() {
    let a = topic_level("a/b");
    let b = topic_level("a+b");
    let c = topic_level("a_b");
    assert!(a.starts_with("a_b-") && b.starts_with("a_b-"), "{a} {b}");
    assert_eq!(c, "a_b");
    assert!(a != b && a != c && b != c);
    assert_eq!(topic_level("x#\0y").len(), "x__y-".len() + 8);
    assert!(topic_level("").starts_with('-'));
    assert_ne!(topic_level(".."), "..");
}

#[test]
fn long_names_are_cut_to_the_bound_with_their_hash() {
    let long = "w".repeat(300);
    let level = topic_level(&long);
    assert_eq!(level.len(), MAX_LEVEL);
    assert_ne!(level, topic_level(&"w".repeat(301)));
}

#[test]
fn discovery_ids_have_no_dots() {
    let id = discovery_id("stack_web.1");
    assert!(
        id.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
        "{id}"
    );
}

proptest! {
    #[test]
    fn any_name_makes_one_bounded_level(name in ".{0,200}") {
        for level in [topic_level(&name), discovery_id(&name)] {
            prop_assert!(!level.is_empty() && level.len() <= MAX_LEVEL);
            prop_assert!(!level.contains(['/', '+', '#', '\0']));
        }
    }
}

#[test]
fn topics_follow_prefix_host_container() {
    let t = Topics::new("home/servers", "nas.lan");
    assert_eq!(t.state("web"), "home/servers/nas.lan/web/state");
    assert_eq!(t.availability(), "home/servers/nas.lan/availability");
    assert_eq!(t.install("web"), "home/servers/nas.lan/web/install");
    assert_eq!(t.install_filter(), "home/servers/nas.lan/+/install");
    // A dot is fine in a topic level, not in a discovery id.
    assert!(
        t.node_id().starts_with("tidewatch_nas_lan-"),
        "{}",
        t.node_id()
    );
    assert_eq!(
        t.discovery("web"),
        format!("homeassistant/update/{}/web/config", t.node_id())
    );
    let plain = Topics::new("tidewatch", "nas");
    assert_eq!(
        plain.discovery("web"),
        "homeassistant/update/tidewatch_nas/web/config"
    );
}

#[test]
fn install_levels_are_read_from_our_topics_only() {
    let t = Topics::new("tidewatch", "nas");
    assert_eq!(t.install_level("tidewatch/nas/web/install"), Some("web"));
    assert_eq!(t.install_level("tidewatch/other/web/install"), None);
    assert_eq!(t.install_level("tidewatch/nas/web/state"), None);
    assert_eq!(t.install_level("tidewatch/nas//install"), None);
    assert_eq!(t.install_level("tidewatchx/nas/web/install"), None);
}

#[test]
fn without_version_labels_the_short_digests_stand_for_versions() {
    let v = versions(&row("web", Status::UpdateAvailable));
    assert_eq!(v.current.as_deref(), Some("sha256:111111111111"));
    assert_eq!(v.available.as_deref(), Some("sha256:222222222222"));
    assert_eq!(v.changes_url, None);
    assert_eq!(short_digest("abc"), "abc");
}

#[test]
fn an_update_between_two_version_labels_shows_them_and_the_changes_link() {
    let v = versions(&noted(
        Status::UpdateAvailable,
        Some("1.0.0"),
        Some("1.1.0"),
    ));
    assert_eq!(v.current.as_deref(), Some("1.0.0"));
    assert_eq!(v.available.as_deref(), Some("1.1.0"));
    assert_eq!(
        v.changes_url.as_deref(),
        Some("https://github.com/acme/web/compare/a...b")
    );
}

#[test]
fn an_update_the_labels_cannot_tell_apart_is_shown_by_digest() {
    // Home Assistant offers an update only when the two strings differ.
    for (current, available) in [
        (Some("1.0.0"), Some("1.0.0")),
        (Some("1.0.0"), None),
        (None, Some("1.1.0")),
    ] {
        let v = versions(&noted(Status::UpdateAvailable, current, available));
        assert_eq!(v.current.as_deref(), Some("sha256:111111111111"));
        assert_eq!(v.available.as_deref(), Some("sha256:222222222222"));
    }
}

#[test]
fn without_an_update_the_available_version_is_the_installed_one() {
    for status in [
        Status::UpToDate,
        Status::Skipped,
        Status::Unknown,
        Status::Error,
    ] {
        let v = versions(&noted(status, Some("1.0.0"), None));
        assert_eq!(v.current.as_deref(), Some("1.0.0"), "{status:?}");
        assert_eq!(v.available, v.current, "{status:?}");
        assert_eq!(v.changes_url, None, "{status:?}");
        // Digests that differ without an update (an index against its platform manifest)
        // offer nothing either.
        let v = versions(&row("web", status));
        assert_eq!(
            v.available.as_deref(),
            Some("sha256:111111111111"),
            "{status:?}"
        );
    }
}

#[test]
fn state_names_every_contract_field() {
    let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    let state = state(
        &row("web", Status::UpdateAvailable),
        Some("rolled_back"),
        at,
    );
    let json = serde_json::to_value(&state).unwrap();
    assert_eq!(
        json,
        json!({
            "status": "update_available",
            "current_digest": OLD,
            "available_digest": NEW,
            "current_version": "sha256:111111111111",
            "available_version": "sha256:222222222222",
            "last_result": "rolled_back",
            "changes_url": null,
            "checked_at": "2026-01-02T03:04:05Z",
        })
    );
}

#[test]
fn discovery_follows_home_assistants_update_schema() {
    let t = Topics::new("tidewatch", "nas");
    let offer = Offer {
        availability: true,
        install: false,
    };
    let d = discovery(&t, "nas", &row("web", Status::UpToDate), offer, None);
    assert_eq!(d["state_topic"], "tidewatch/nas/web/state");
    assert_eq!(d["latest_version_topic"], "tidewatch/nas/web/state");
    assert_eq!(d["json_attributes_topic"], "tidewatch/nas/web/state");
    assert_eq!(d["value_template"], "{{ value_json.current_version }}");
    assert_eq!(d["availability_topic"], "tidewatch/nas/availability");
    assert_eq!(d["payload_available"], "online");
    assert_eq!(d["payload_not_available"], "offline");
    assert_eq!(d["name"], "web");
    assert_eq!(d["unique_id"], "tidewatch_nas_web");
    assert_eq!(d["device"]["identifiers"], json!(["tidewatch_nas"]));
    assert_eq!(d["device"]["sw_version"], env!("CARGO_PKG_VERSION"));
    for absent in [
        "device_class",
        "command_topic",
        "payload_install",
        "release_url",
    ] {
        assert!(d.get(absent).is_none(), "{absent} in {d}");
    }
}

#[test]
fn install_is_offered_only_when_enabled() {
    let t = Topics::new("tidewatch", "nas");
    let r = row("web", Status::UpdateAvailable);
    let on = Offer {
        availability: false,
        install: true,
    };
    let d = discovery(&t, "nas", &r, on, Some("s3cret"));
    assert_eq!(d["command_topic"], "tidewatch/nas/web/install");
    assert_eq!(d["payload_install"], "s3cret");
    assert!(d.get("availability_topic").is_none());
    let off = Offer {
        availability: false,
        install: false,
    };
    let d = discovery(&t, "nas", &r, off, Some("s3cret"));
    assert!(d.get("command_topic").is_none() && d.get("payload_install").is_none());
}
