//! Container labels tidewatch reads, and the Watchtower labels it understands so a server can
//! switch without relabelling.

use std::collections::BTreeMap;

/// `tidewatch.scope=NAME`: which agent (by `[watch] scope`) looks after the container.
pub const SCOPE: &str = "tidewatch.scope";
/// `tidewatch.enable=true|false`.
pub const ENABLE: &str = "tidewatch.enable";
/// `tidewatch.policy=update|notify|ignore`.
pub const POLICY: &str = "tidewatch.policy";
/// `tidewatch.stop-signal=SIGNAL`: the signal that asks the old container to stop before it is
/// replaced, for images whose `STOPSIGNAL` is not the one their process handles.
pub const STOP_SIGNAL: &str = "tidewatch.stop-signal";

/// `tidewatch.hook.<moment>=COMMAND`: a lifecycle hook, run as `/bin/sh -c COMMAND` inside the
/// container (see `plan::hooks`): `pre-check`, `pre-update`, `post-update`, `post-check` or
/// `pre-rollback`.
pub const HOOK_PREFIX: &str = "tidewatch.hook.";
/// `tidewatch.hook.timeout=DURATION` (humantime): how long each of the container's hooks may run.
pub const HOOK_TIMEOUT: &str = "tidewatch.hook.timeout";

/// Set by Swarm on the containers of a service's tasks: the service they belong to. Such
/// containers are never recreated directly; their service is updated instead.
pub const SWARM_SERVICE_ID: &str = "com.docker.swarm.service.id";
/// Set by Swarm on a task's container: the task it runs.
pub const SWARM_TASK_ID: &str = "com.docker.swarm.task.id";

/// Watchtower's equivalents, read when tidewatch's own label is absent.
pub mod watchtower {
    /// `com.centurylinklabs.watchtower.scope`.
    pub const SCOPE: &str = "com.centurylinklabs.watchtower.scope";
    /// `com.centurylinklabs.watchtower.enable`.
    pub const ENABLE: &str = "com.centurylinklabs.watchtower.enable";
    /// `com.centurylinklabs.watchtower.monitor-only=true`: tidewatch's policy `notify`.
    pub const MONITOR_ONLY: &str = "com.centurylinklabs.watchtower.monitor-only";
    /// `com.centurylinklabs.watchtower.stop-signal`.
    pub const STOP_SIGNAL: &str = "com.centurylinklabs.watchtower.stop-signal";
    /// `com.centurylinklabs.watchtower.lifecycle.<moment>=COMMAND`, for `pre-check`,
    /// `pre-update`, `post-update` and `post-check`.
    pub const LIFECYCLE_PREFIX: &str = "com.centurylinklabs.watchtower.lifecycle.";
}

/// The value of `ours`, else of Watchtower's `theirs`.
pub fn get<'a>(labels: &'a BTreeMap<String, String>, ours: &str, theirs: &str) -> Option<&'a str> {
    labels
        .get(ours)
        .or_else(|| labels.get(theirs))
        .map(|v| v.trim())
}

/// The signal the container's labels ask to be stopped with, if any.
pub fn stop_signal(labels: &BTreeMap<String, String>) -> Option<&str> {
    get(labels, STOP_SIGNAL, watchtower::STOP_SIGNAL).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn stop_signal_prefers_ours_then_watchtower_and_ignores_blank() {
        let both = labels(&[
            (STOP_SIGNAL, "SIGINT"),
            (watchtower::STOP_SIGNAL, "SIGUSR1"),
        ]);
        assert_eq!(stop_signal(&both), Some("SIGINT"));
        let theirs = labels(&[(watchtower::STOP_SIGNAL, " SIGHUP ")]);
        assert_eq!(stop_signal(&theirs), Some("SIGHUP"));
        assert_eq!(stop_signal(&labels(&[(STOP_SIGNAL, "  ")])), None);
        assert_eq!(stop_signal(&labels(&[])), None);
    }
}
