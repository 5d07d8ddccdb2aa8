//! Lifecycle hooks: which command runs, at which moment, for how long, from a container's
//! labels and its `[[service]] hooks`. Pure; `engine::exec` runs what this decides.
//!
//! For each moment the first of these that is set wins: `[[service]] hooks` (argv, no shell),
//! `tidewatch.hook.<moment>`, then Watchtower's `com.centurylinklabs.watchtower.lifecycle.<moment>`
//! (both strings, run as `/bin/sh -c VALUE` inside the container, as Watchtower runs them).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::config::{ServiceHooks, DEFAULT_HOOK_TIMEOUT, MAX_HOOK_TIMEOUT};
use crate::labels;

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HookMoment {
    /// Before a cycle checks the container.
    PreCheck,
    /// In the old container, before it is stopped for an update; exit 75 defers the update.
    PreUpdate,
    /// In the new container once it runs and passed the health gate; failing rolls back.
    PostUpdate,
    /// After a cycle, in the container as it then is.
    PostCheck,
    /// In the current container before `tidewatch rollback` replaces it.
    PreRollback,
}

impl HookMoment {
    /// The moment's name as labels spell it (`pre-update`).
    pub fn label(self) -> &'static str {
        match self {
            HookMoment::PreCheck => "pre-check",
            HookMoment::PreUpdate => "pre-update",
            HookMoment::PostUpdate => "post-update",
            HookMoment::PostCheck => "post-check",
            HookMoment::PreRollback => "pre-rollback",
        }
    }

    /// The `[[service]] hooks` key (`pre_update`).
    pub fn key(self) -> &'static str {
        match self {
            HookMoment::PreCheck => "pre_check",
            HookMoment::PreUpdate => "pre_update",
            HookMoment::PostUpdate => "post_update",
            HookMoment::PostCheck => "post_check",
            HookMoment::PreRollback => "pre_rollback",
        }
    }

    /// Watchtower's label for the moment's timeout in minutes, where it has one.
    fn watchtower_timeout(self) -> Option<String> {
        match self {
            HookMoment::PreUpdate | HookMoment::PostUpdate => Some(format!(
                "{}{}-timeout",
                labels::watchtower::LIFECYCLE_PREFIX,
                self.label()
            )),
            _ => None,
        }
    }

    /// Whether Watchtower has a label for the moment (it has no pre-rollback).
    fn in_watchtower(self) -> bool {
        self != HookMoment::PreRollback
    }
}

impl fmt::Display for HookMoment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Exit status a pre-update hook returns to defer the update to the next cycle (EX_TEMPFAIL,
/// as with Watchtower).
pub const EXIT_DEFER: i64 = 75;

/// One command to run inside a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// When.
    pub moment: HookMoment,
    /// What `docker exec` runs: the argv of `[[service]] hooks`, or `/bin/sh -c LABEL`.
    pub argv: Vec<String>,
    /// How long tidewatch waits for it.
    pub timeout: Duration,
    /// Where it was set (a label's name, or `[[service]] hooks.pre_update`), for messages.
    pub source: String,
}

/// The hook of `moment` for a container with `labels` and `[[service]] hooks` `service`, if
/// any. `unbounded` stands in for a timeout of zero ("no timeout" to Watchtower): tidewatch
/// never waits without bound, so the caller passes its health timeout.
pub fn hook_for(
    moment: HookMoment,
    labels: &BTreeMap<String, String>,
    service: &ServiceHooks,
    unbounded: Duration,
) -> Option<Hook> {
    let cap = |d: Duration| {
        let d = if d.is_zero() { unbounded } else { d };
        d.min(MAX_HOOK_TIMEOUT)
    };
    if let Some(argv) = service_argv(moment, service) {
        return Some(Hook {
            moment,
            argv: argv.clone(),
            timeout: cap(service.timeout.unwrap_or(DEFAULT_HOOK_TIMEOUT)),
            source: format!("[[service]] hooks.{}", moment.key()),
        });
    }
    let ours = format!("{}{}", labels::HOOK_PREFIX, moment.label());
    let theirs = format!("{}{}", labels::watchtower::LIFECYCLE_PREFIX, moment.label());
    let (source, command) = [(ours, true), (theirs, moment.in_watchtower())]
        .into_iter()
        .filter(|(_, read)| *read)
        .find_map(|(name, _)| {
            let value = labels.get(&name)?.trim();
            (!value.is_empty()).then(|| (name, value.to_string()))
        })?;
    let timeout = own_timeout(labels)
        .or_else(|| watchtower_timeout(moment, labels))
        .unwrap_or(DEFAULT_HOOK_TIMEOUT);
    Some(Hook {
        moment,
        argv: vec!["/bin/sh".into(), "-c".into(), command],
        timeout: cap(timeout),
        source,
    })
}

/// `tidewatch.hook.timeout`, when it is a duration; an unreadable one is no setting.
fn own_timeout(labels: &BTreeMap<String, String>) -> Option<Duration> {
    humantime::parse_duration(labels.get(labels::HOOK_TIMEOUT)?.trim()).ok()
}

/// Watchtower's `lifecycle.<moment>-timeout`, whole minutes.
fn watchtower_timeout(moment: HookMoment, labels: &BTreeMap<String, String>) -> Option<Duration> {
    let minutes: u64 = labels
        .get(&moment.watchtower_timeout()?)?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(minutes.saturating_mul(60)))
}

fn service_argv(moment: HookMoment, service: &ServiceHooks) -> Option<&Vec<String>> {
    match moment {
        HookMoment::PreCheck => service.pre_check.as_ref(),
        HookMoment::PreUpdate => service.pre_update.as_ref(),
        HookMoment::PostUpdate => service.post_update.as_ref(),
        HookMoment::PostCheck => service.post_check.as_ref(),
        HookMoment::PreRollback => service.pre_rollback.as_ref(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEALTH: Duration = Duration::from_secs(120);

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sh(command: &str) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), command.into()]
    }

    #[test]
    fn watchtower_labels_run_under_the_shell_with_their_minutes() {
        let l = labels(&[
            (
                "com.centurylinklabs.watchtower.lifecycle.pre-update",
                "pg_dump > /b",
            ),
            (
                "com.centurylinklabs.watchtower.lifecycle.pre-update-timeout",
                "5",
            ),
            (
                "com.centurylinklabs.watchtower.lifecycle.post-update",
                "warm",
            ),
            (
                "com.centurylinklabs.watchtower.lifecycle.pre-check",
                "echo hi",
            ),
        ]);
        let none = ServiceHooks::default();
        let pre = hook_for(HookMoment::PreUpdate, &l, &none, HEALTH).unwrap();
        assert_eq!(pre.argv, sh("pg_dump > /b"));
        assert_eq!(pre.timeout, Duration::from_secs(300));
        assert_eq!(
            pre.source,
            "com.centurylinklabs.watchtower.lifecycle.pre-update"
        );
        let post = hook_for(HookMoment::PostUpdate, &l, &none, HEALTH).unwrap();
        assert_eq!(
            post.timeout, DEFAULT_HOOK_TIMEOUT,
            "Watchtower's default minute"
        );
        let check = hook_for(HookMoment::PreCheck, &l, &none, HEALTH).unwrap();
        assert_eq!(check.argv, sh("echo hi"));
        assert_eq!(hook_for(HookMoment::PostCheck, &l, &none, HEALTH), None);
    }

    #[test]
    fn a_zero_timeout_is_the_health_timeout_and_nothing_waits_past_the_maximum() {
        let zero = labels(&[
            ("com.centurylinklabs.watchtower.lifecycle.pre-update", "x"),
            (
                "com.centurylinklabs.watchtower.lifecycle.pre-update-timeout",
                "0",
            ),
        ]);
        let none = ServiceHooks::default();
        let hook = hook_for(HookMoment::PreUpdate, &zero, &none, HEALTH).unwrap();
        assert_eq!(hook.timeout, HEALTH);
        let huge = labels(&[
            ("com.centurylinklabs.watchtower.lifecycle.pre-update", "x"),
            (
                "com.centurylinklabs.watchtower.lifecycle.pre-update-timeout",
                "100000000",
            ),
        ]);
        let hook = hook_for(HookMoment::PreUpdate, &huge, &none, HEALTH).unwrap();
        assert_eq!(hook.timeout, MAX_HOOK_TIMEOUT);
        let long_health = Duration::from_secs(24 * 3600);
        let hook = hook_for(HookMoment::PreUpdate, &zero, &none, long_health).unwrap();
        assert_eq!(hook.timeout, MAX_HOOK_TIMEOUT);
    }

    #[test]
    fn our_labels_win_over_watchtowers_and_our_timeout_over_their_minutes() {
        let l = labels(&[
            ("tidewatch.hook.pre-update", "  ours  "),
            ("tidewatch.hook.timeout", "90s"),
            (
                "com.centurylinklabs.watchtower.lifecycle.pre-update",
                "theirs",
            ),
            (
                "com.centurylinklabs.watchtower.lifecycle.pre-update-timeout",
                "5",
            ),
            ("tidewatch.hook.pre-rollback", "drain"),
            (
                "com.centurylinklabs.watchtower.lifecycle.pre-rollback",
                "not a watchtower label",
            ),
        ]);
        let none = ServiceHooks::default();
        let hook = hook_for(HookMoment::PreUpdate, &l, &none, HEALTH).unwrap();
        assert_eq!(hook.argv, sh("ours"));
        assert_eq!(hook.timeout, Duration::from_secs(90));
        assert_eq!(hook.source, "tidewatch.hook.pre-update");
        let rollback = hook_for(HookMoment::PreRollback, &l, &none, HEALTH).unwrap();
        assert_eq!(rollback.argv, sh("drain"));
        let only_theirs = labels(&[("com.centurylinklabs.watchtower.lifecycle.pre-rollback", "x")]);
        assert_eq!(
            hook_for(HookMoment::PreRollback, &only_theirs, &none, HEALTH),
            None,
            "Watchtower has no pre-rollback label"
        );
    }

    #[test]
    fn blank_labels_and_unreadable_timeouts_are_no_setting() {
        let l = labels(&[
            ("tidewatch.hook.post-update", "   "),
            (
                "com.centurylinklabs.watchtower.lifecycle.post-update",
                "theirs",
            ),
            ("tidewatch.hook.timeout", "soon"),
            (
                "com.centurylinklabs.watchtower.lifecycle.post-update-timeout",
                "-1",
            ),
        ]);
        let none = ServiceHooks::default();
        let hook = hook_for(HookMoment::PostUpdate, &l, &none, HEALTH).unwrap();
        assert_eq!(hook.argv, sh("theirs"));
        assert_eq!(hook.timeout, DEFAULT_HOOK_TIMEOUT);
    }

    #[test]
    fn service_hooks_are_argv_without_a_shell_and_win_over_labels() {
        let l = labels(&[
            ("tidewatch.hook.pre-update", "label"),
            ("tidewatch.hook.timeout", "5s"),
        ]);
        let service = ServiceHooks {
            pre_update: Some(vec![
                "/usr/bin/drain".into(),
                "--queue".into(),
                "a b".into(),
            ]),
            timeout: Some(Duration::from_secs(30)),
            ..Default::default()
        };
        let hook = hook_for(HookMoment::PreUpdate, &l, &service, HEALTH).unwrap();
        assert_eq!(hook.argv, ["/usr/bin/drain", "--queue", "a b"]);
        assert_eq!(hook.timeout, Duration::from_secs(30));
        assert_eq!(hook.source, "[[service]] hooks.pre_update");
        // Moments the service leaves unset still come from the labels.
        let post = ServiceHooks {
            post_update: Some(vec!["/bin/true".into()]),
            ..Default::default()
        };
        let hook = hook_for(HookMoment::PreUpdate, &l, &post, HEALTH).unwrap();
        assert_eq!(hook.argv, sh("label"));
        assert_eq!(hook.timeout, Duration::from_secs(5));
    }
}
