//! What was asked of the daemon over the API and how it went, for the status board: a request
//! is `queued` when the API accepts it, `running` when the daemon takes it, then `done` or
//! `failed` with a sentence saying what happened. Field names are part of the API contract.
//!
//! A trigger carries no id: the daemon answers triggers one at a time in the order they were
//! queued, so the oldest queued request asking for the same thing is the one being answered.

use std::collections::VecDeque;

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;

use super::Trigger;

/// How many requests `GET /v1/status` remembers, oldest dropped first.
pub const KEPT_ACTIONS: usize = 20;

/// What was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// `POST /v1/update`: a cycle over every container ("Check now").
    Check,
    /// `POST /v1/update?container=NAME`: a cycle over one container ("Update now").
    Update,
    /// `POST /v1/rollback?container=NAME`.
    Rollback,
    /// `POST /v1/release?container=NAME`.
    Release,
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionState {
    /// Accepted, waiting for the daemon (a cycle may be running).
    Queued,
    /// The daemon is on it.
    Running,
    /// Finished as asked.
    Done,
    /// Finished without doing what was asked; `detail` says why.
    Failed,
}

/// One request and how it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    /// Unique in this run of the daemon; `POST` answers give it.
    pub id: u64,
    /// What was asked.
    pub action: ActionKind,
    /// The container it names, if any.
    pub container: Option<String>,
    /// `force=true` ("Update anyway").
    pub force: bool,
    /// Where it stands.
    pub state: ActionState,
    /// What happened, for people; `None` until it finished.
    pub detail: Option<String>,
    /// When the API accepted it.
    pub requested_at: DateTime<Utc>,
    /// When the daemon finished it.
    pub finished_at: Option<DateTime<Utc>>,
}

/// The kind, container and force a trigger asks for; `None` for what no person asked
/// (registry pushes).
fn asks(trigger: &Trigger) -> Option<(ActionKind, Option<&str>, bool)> {
    match trigger {
        Trigger::Cycle {
            container: None,
            force,
        } => Some((ActionKind::Check, None, *force)),
        Trigger::Cycle {
            container: Some(c),
            force,
        } => Some((ActionKind::Update, Some(c), *force)),
        Trigger::Rollback { container } => Some((ActionKind::Rollback, Some(container), false)),
        Trigger::Release { container } => Some((ActionKind::Release, Some(container), false)),
        Trigger::Images(_) => None,
    }
}

/// The requests of this run, oldest first, at most [`KEPT_ACTIONS`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actions {
    list: VecDeque<Action>,
    last_id: u64,
}

impl Actions {
    /// Records `trigger` as queued; its id, or `None` for a trigger no person asked for.
    pub fn queue(&mut self, trigger: &Trigger, at: DateTime<Utc>) -> Option<u64> {
        let (action, container, force) = asks(trigger)?;
        self.last_id += 1;
        if self.list.len() == KEPT_ACTIONS {
            self.list.pop_front();
        }
        self.list.push_back(Action {
            id: self.last_id,
            action,
            container: container.map(str::to_string),
            force,
            state: ActionState::Queued,
            detail: None,
            requested_at: at.trunc_subsecs(0),
            finished_at: None,
        });
        Some(self.last_id)
    }

    /// The daemon took `trigger`: the oldest queued request asking for it is running.
    pub fn start(&mut self, trigger: &Trigger) {
        let Some(wanted) = asks(trigger) else { return };
        if let Some(a) = self.list.iter_mut().find(|a| {
            a.state == ActionState::Queued && (a.action, a.container.as_deref(), a.force) == wanted
        }) {
            a.state = ActionState::Running;
        }
    }

    /// The daemon finished `trigger`: the oldest running request asking for it ends.
    pub fn finish(&mut self, trigger: &Trigger, ok: bool, detail: String, at: DateTime<Utc>) {
        let Some(wanted) = asks(trigger) else { return };
        if let Some(a) = self.list.iter_mut().find(|a| {
            a.state == ActionState::Running && (a.action, a.container.as_deref(), a.force) == wanted
        }) {
            a.state = if ok {
                ActionState::Done
            } else {
                ActionState::Failed
            };
            a.detail = Some(detail);
            a.finished_at = Some(at.trunc_subsecs(0));
        }
    }

    /// The request `id` could not be queued after all: it failed with `why`.
    pub fn drop_queued(&mut self, id: u64, why: &str, at: DateTime<Utc>) {
        if let Some(a) = self.list.iter_mut().find(|a| a.id == id) {
            a.state = ActionState::Failed;
            a.detail = Some(why.to_string());
            a.finished_at = Some(at.trunc_subsecs(0));
        }
    }

    /// The requests, oldest first.
    pub fn list(&self) -> Vec<Action> {
        self.list.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(container: &str, force: bool) -> Trigger {
        Trigger::Cycle {
            container: Some(container.into()),
            force,
        }
    }

    #[test]
    fn a_request_goes_from_queued_to_running_to_its_result() {
        let mut actions = Actions::default();
        let t = Utc::now();
        let id = actions.queue(&update("web", false), t).unwrap();
        assert_eq!(actions.list()[0].state, ActionState::Queued);
        actions.start(&update("web", false));
        assert_eq!(actions.list()[0].state, ActionState::Running);
        actions.finish(&update("web", false), true, "updated".into(), t);
        let a = &actions.list()[0];
        assert_eq!((a.id, a.state), (id, ActionState::Done));
        assert_eq!(a.detail.as_deref(), Some("updated"));
        assert_eq!(a.action, ActionKind::Update);
    }

    #[test]
    fn the_oldest_queued_request_for_the_same_thing_is_the_one_answered() {
        let mut actions = Actions::default();
        let t = Utc::now();
        let first = actions.queue(&update("web", false), t).unwrap();
        let forced = actions.queue(&update("web", true), t).unwrap();
        let second = actions.queue(&update("web", false), t).unwrap();
        actions.start(&update("web", true));
        actions.finish(&update("web", true), false, "rolled back".into(), t);
        actions.start(&update("web", false));
        let state = |id| actions.list().iter().find(|a| a.id == id).unwrap().state;
        assert_eq!(state(forced), ActionState::Failed);
        assert_eq!(state(first), ActionState::Running);
        assert_eq!(state(second), ActionState::Queued);
    }

    #[test]
    fn pushes_are_not_recorded_and_only_the_newest_requests_are_kept() {
        let mut actions = Actions::default();
        let t = Utc::now();
        assert_eq!(actions.queue(&Trigger::Images(vec!["a".into()]), t), None);
        for _ in 0..KEPT_ACTIONS + 3 {
            actions.queue(
                &Trigger::Release {
                    container: "web".into(),
                },
                t,
            );
        }
        let list = actions.list();
        assert_eq!(list.len(), KEPT_ACTIONS);
        assert_eq!(list[0].id, 4);
        actions.drop_queued(list[0].id, "the daemon is stopping", t);
        assert_eq!(actions.list()[0].state, ActionState::Failed);
    }
}
