//! What to do with a recreate that a crash or `kill -9` interrupted. The engine is trusted over
//! the journal: the journal says which containers are involved and how far the procedure got,
//! the engine says where they are now. Pure; `apply::recover` gathers the facts and carries the
//! decision out.

/// How far the interrupted procedure got, by its journal entry's last step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Recorded, nothing touched.
    Planned,
    /// The new image pulled; the stop of the old container may have been asked for.
    Pulled,
    /// Past the stop: set aside, replacement created, started or judged healthy.
    Underway,
    /// The update was being undone.
    RollingBack,
}

/// An interrupted recreate, as the journal and the engine tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interrupted<'a> {
    /// The container's name.
    pub container: &'a str,
    /// How far the procedure got.
    pub progress: Progress,
    /// The old container was running before the update.
    pub was_running: bool,
    /// The old container is this agent's own (a self-update).
    pub own: bool,
    /// The old container's current name, when it still exists.
    pub old_name: Option<&'a str>,
    /// The id of another container holding the name, when one does: the replacement.
    pub replacement: Option<&'a str>,
}

/// What recovery does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The old container is gone, which happens only after its replacement was healthy: the
    /// update is done.
    Committed,
    /// Neither container exists: nothing can be put back; a human recreates it.
    Lost,
    /// This agent's successor exists: start it and let it take over.
    AwaitSuccessor(String),
    /// A stopped container's replacement exists: existing is all it can prove; keep it.
    KeepStopped,
    /// Start the replacement and keep it if it proves healthy now, else restore the old one.
    ProveHealthy(String),
    /// Nothing was touched (or only a stop was asked for, which is waited out): the old
    /// container runs again if it ran, and the update is retried next cycle.
    Retry {
        /// Stop the old container first, to wait out a stop the dead agent asked for.
        stop_first: bool,
    },
    /// Put the old container back, discarding the replacement if there is one.
    Restore(Option<String>),
}

/// Decides what recovery does with `interrupted`.
pub fn decide(interrupted: &Interrupted<'_>) -> Decision {
    let i = interrupted;
    let undoing = i.progress == Progress::RollingBack;
    match (i.old_name, i.replacement) {
        (None, Some(_)) => Decision::Committed,
        (None, None) => Decision::Lost,
        // With the agent running again before its successor took over (it would have stopped
        // this agent first): stopping the old container, as for others, would stop the agent
        // itself.
        (Some(_), Some(new_id)) if i.own && !undoing => Decision::AwaitSuccessor(new_id.into()),
        (Some(_), Some(_)) if !i.was_running && !undoing => Decision::KeepStopped,
        (Some(_), Some(new_id)) if !undoing => Decision::ProveHealthy(new_id.into()),
        (Some(old_name), None)
            if !i.own
                && matches!(i.progress, Progress::Planned | Progress::Pulled)
                && old_name.trim_start_matches('/') == i.container =>
        {
            // `Pulled` is journalled just before the stop request, so the engine may still be
            // carrying out a stop the dead agent asked for; it goes on without its client and
            // would stop the container after a plain start.
            Decision::Retry {
                stop_first: i.progress == Progress::Pulled,
            }
        }
        (Some(_), replacement) => Decision::Restore(replacement.map(str::to_string)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interrupted(progress: Progress) -> Interrupted<'static> {
        Interrupted {
            container: "web",
            progress,
            was_running: true,
            own: false,
            old_name: Some("/web-tidewatch-old-1"),
            replacement: Some("new"),
        }
    }

    #[test]
    fn a_gone_old_container_means_committed_and_no_container_at_all_means_lost() {
        let gone = Interrupted {
            old_name: None,
            ..interrupted(Progress::Underway)
        };
        assert_eq!(decide(&gone), Decision::Committed);
        let nothing = Interrupted {
            replacement: None,
            ..gone
        };
        assert_eq!(decide(&nothing), Decision::Lost);
    }

    #[test]
    fn a_replacement_proves_itself_unless_the_update_was_being_undone() {
        assert_eq!(
            decide(&interrupted(Progress::Underway)),
            Decision::ProveHealthy("new".into())
        );
        assert_eq!(
            decide(&interrupted(Progress::RollingBack)),
            Decision::Restore(Some("new".into()))
        );
        let stopped = Interrupted {
            was_running: false,
            ..interrupted(Progress::Underway)
        };
        assert_eq!(decide(&stopped), Decision::KeepStopped);
    }

    #[test]
    fn the_agents_own_successor_takes_over_and_its_own_container_is_never_just_restarted() {
        let own = Interrupted {
            own: true,
            ..interrupted(Progress::Underway)
        };
        assert_eq!(decide(&own), Decision::AwaitSuccessor("new".into()));
        let untouched = Interrupted {
            replacement: None,
            old_name: Some("/web"),
            ..own
        };
        assert_eq!(decide(&untouched), Decision::Restore(None));
    }

    #[test]
    fn an_untouched_container_is_retried_and_a_pending_stop_waited_out_first() {
        let untouched = |progress| Interrupted {
            old_name: Some("/web"),
            replacement: None,
            ..interrupted(progress)
        };
        assert_eq!(
            decide(&untouched(Progress::Planned)),
            Decision::Retry { stop_first: false }
        );
        assert_eq!(
            decide(&untouched(Progress::Pulled)),
            Decision::Retry { stop_first: true }
        );
        // Set aside already: the name is free, the old container must get it back.
        let aside = Interrupted {
            replacement: None,
            ..interrupted(Progress::Pulled)
        };
        assert_eq!(decide(&aside), Decision::Restore(None));
        assert_eq!(
            decide(&untouched(Progress::Underway)),
            Decision::Restore(None)
        );
    }
}
