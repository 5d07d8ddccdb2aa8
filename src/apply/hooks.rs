//! Running the lifecycle hooks of a recreate (`plan::hooks` decides which), and of a cycle's
//! checks, inside the containers they belong to.

use crate::engine::{ExecEnd, ExecRun, Observed};
use crate::plan::hooks::{hook_for, Hook, HookMoment, EXIT_DEFER};

use super::Applier;

/// How a hook's run bears on the step around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum HookVerdict {
    /// It exited 0 (or there was none); the words for the history, if it ran.
    Passed(Option<String>),
    /// A pre-update hook exited 75: try again next cycle.
    Defer(String),
    /// It failed, timed out or could not be run.
    Failed(String),
}

impl Applier<'_> {
    /// The hook of `moment` for `container`, when `[update] lifecycle_hooks` is on.
    pub(crate) fn hook(&self, moment: HookMoment, container: &Observed) -> Option<Hook> {
        if !self.settings.lifecycle_hooks {
            return None;
        }
        let service = self
            .services
            .get(&container.name)
            .map(|s| s.hooks.clone())
            .unwrap_or_default();
        hook_for(
            moment,
            &container.labels,
            &service,
            self.settings.health_timeout,
        )
    }

    /// Runs the `moment` hook (pre-check or post-check) of each of `containers` that has one
    /// and is running, one after another. A failure is logged and changes nothing else: the
    /// check goes on, as with Watchtower.
    pub async fn run_check_hooks(&self, moment: HookMoment, containers: &[&Observed]) {
        for container in containers {
            if container.state != "running" {
                continue;
            }
            if let Some(hook) = self.hook(moment, container) {
                // By name: after the cycle, the container may be a replacement.
                self.run_hook(&hook, &container.name, &container.name).await;
            }
        }
    }

    /// Runs `hook` in container `target` (an id or name; `name` is the service's name for
    /// messages), logs what it did and says how that bears on the step.
    pub(super) async fn run_hook(&self, hook: &Hook, target: &str, name: &str) -> HookVerdict {
        let what = format!("{} hook ({})", hook.moment, hook.source);
        let mut shutdown = self.shutdown.clone();
        // Shutdown stops the wait as a timeout does: a pre-update hook then leaves the old
        // container as it is, a post-update hook rolls back.
        let ran = tokio::select! {
            ran = self.engine.exec(target, &hook.argv, hook.timeout) => ran,
            () = shutdown.wait() => {
                tracing::warn!(container = %name, hook = %hook.moment, "{what}: the agent is shutting down");
                return HookVerdict::Failed(format!(
                    "{what} was left running: the agent is shutting down"
                ));
            }
        };
        let run = match ran {
            Ok(run) => run,
            Err(e) => {
                tracing::warn!(container = %name, hook = %hook.moment, "{what} could not run: {e}");
                return HookVerdict::Failed(format!("{what} could not run: {e}"));
            }
        };
        let summary = summary(&what, hook, &run);
        match run.end {
            ExecEnd::Exited(0) => {
                tracing::info!(container = %name, hook = %hook.moment, "{summary}");
                HookVerdict::Passed(Some(summary))
            }
            ExecEnd::Exited(EXIT_DEFER) if hook.moment == HookMoment::PreUpdate => {
                tracing::info!(container = %name, hook = %hook.moment, "{summary}");
                HookVerdict::Defer(summary)
            }
            _ => {
                tracing::warn!(container = %name, hook = %hook.moment, "{summary}");
                HookVerdict::Failed(summary)
            }
        }
    }
}

/// One line for the log and the history: how the hook ended, and its (capped) output.
fn summary(what: &str, hook: &Hook, run: &ExecRun) -> String {
    let end = match run.end {
        ExecEnd::Exited(code) => format!("exited {code}"),
        ExecEnd::TimedOut => format!(
            "timed out after {} (its process may still run in the container)",
            humantime::format_duration(hook.timeout)
        ),
        ExecEnd::Unknown => "ended without an exit status".to_string(),
    };
    let output = run.output.trim_end();
    if output.is_empty() {
        return format!("{what} {end}");
    }
    let more = if run.truncated { " [truncated]" } else { "" };
    format!("{what} {end}; output: {output:?}{more}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn hook() -> Hook {
        Hook {
            moment: HookMoment::PostUpdate,
            argv: vec!["/bin/true".into()],
            timeout: Duration::from_secs(90),
            source: "tidewatch.hook.post-update".into(),
        }
    }

    #[test]
    fn a_summary_says_how_it_ended_with_its_output_quoted() {
        let run = ExecRun {
            end: ExecEnd::Exited(3),
            output: "no db\n".into(),
            truncated: true,
        };
        assert_eq!(
            summary("post-update hook (x)", &hook(), &run),
            "post-update hook (x) exited 3; output: \"no db\" [truncated]"
        );
        let run = ExecRun {
            end: ExecEnd::TimedOut,
            output: String::new(),
            truncated: false,
        };
        assert_eq!(
            summary("post-update hook (x)", &hook(), &run),
            "post-update hook (x) timed out after 1m 30s (its process may still run in the container)"
        );
    }
}
