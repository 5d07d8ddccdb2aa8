//! Container labels tidewatch reads, and the Watchtower labels it understands so a server can
//! switch without relabelling.

use std::collections::BTreeMap;

/// `tidewatch.scope=NAME`: which agent (by `[watch] scope`) looks after the container.
pub const SCOPE: &str = "tidewatch.scope";
/// `tidewatch.enable=true|false`.
pub const ENABLE: &str = "tidewatch.enable";
/// `tidewatch.policy=update|notify|ignore`.
pub const POLICY: &str = "tidewatch.policy";

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
}

/// The value of `ours`, else of Watchtower's `theirs`.
pub fn get<'a>(labels: &'a BTreeMap<String, String>, ours: &str, theirs: &str) -> Option<&'a str> {
    labels
        .get(ours)
        .or_else(|| labels.get(theirs))
        .map(|v| v.trim())
}
