//! One actor per Swarm, the pure part: which agent updates services when one runs on every
//! manager, and what a service update that lost a race to another actor means.
//!
//! Every manager's agent sees the same services and the same new digests; if each updated
//! them, the second update of a push would be refused ("update out of sequence") and reported
//! as a failure of an update that succeeded. So only the agent on the Swarm leader updates
//! services; the leader is whatever Swarm's Raft elected, so a new leader's agent takes over
//! on its next cycle with nothing to configure.

/// A manager of the Swarm as `GET /nodes` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manager {
    /// The node id.
    pub id: String,
    /// The node's host name (`Description.Hostname`).
    pub hostname: String,
    /// `ManagerStatus.Leader`.
    pub leader: bool,
}

/// Whether this node's agent acts on services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    /// This node is the Swarm leader: its agent updates services.
    Leader,
    /// Another manager leads (its host name, when Swarm names one: none during an election).
    Follower {
        /// The leader's host name.
        leader: Option<String>,
    },
}

impl Leadership {
    /// Why a follower leaves a service alone, for its step's `skipped` detail.
    pub fn why_not(&self) -> Option<String> {
        match self {
            Leadership::Leader => None,
            Leadership::Follower {
                leader: Some(leader),
            } => Some(format!(
                "services are updated by the agent on the swarm leader ({leader})"
            )),
            Leadership::Follower { leader: None } => Some(
                "the swarm has no leader at the moment: services are updated once it has one"
                    .into(),
            ),
        }
    }

    /// Says who leads, for `check`'s note.
    pub fn describe(&self) -> String {
        match self {
            Leadership::Leader => {
                "this node is the swarm leader: its agent updates services".into()
            }
            Leadership::Follower { leader: Some(l) } => {
                format!("the swarm leader is {l}: the agent there updates services")
            }
            Leadership::Follower { leader: None } => "the swarm has no leader at the moment".into(),
        }
    }
}

/// This node's leadership among `managers`, from its own node id (`/info`'s
/// `Swarm.NodeID`). A node that cannot find itself there is not the leader.
pub fn leadership(this_node: &str, managers: &[Manager]) -> Leadership {
    let leader = managers.iter().find(|m| m.leader);
    match leader {
        Some(m) if !this_node.is_empty() && m.id == this_node => Leadership::Leader,
        Some(m) => Leadership::Follower {
            leader: Some(if m.hostname.is_empty() {
                m.id.clone()
            } else {
                m.hostname.clone()
            }),
        },
        None => Leadership::Follower { leader: None },
    }
}

/// The engine's refusal of a service update at a version that is no longer the service's:
/// another actor (an agent, a person's `docker service update`) changed it in between. Swarm
/// answers 500 with "rpc error: ... update out of sequence".
pub fn is_version_conflict(status: u16, message: &str) -> bool {
    status == 500 && message.contains("out of sequence")
}

/// The engine's refusal of a service update because this manager stopped leading the Swarm
/// while it was asked (an election): Swarm's Raft answers "node lost leader status" or "no
/// elected cluster leader", the daemon "The swarm does not have a leader". Not a failure of the
/// update: the next cycle of whichever agent then leads does it.
pub fn is_leadership_lost(status: u16, message: &str) -> bool {
    (status == 500 || status == 503)
        && [
            "node lost leader status",
            "no elected cluster leader",
            "does not have a leader",
        ]
        .iter()
        .any(|said| message.contains(said))
}

/// The `skipped` detail of a service update refused because the Swarm's leadership moved.
pub const LEADERSHIP_MOVED: &str =
    "the swarm's leadership moved while the service was being updated: left for the agent that leads next";

/// What a service that changed under this agent's update now means, after reading it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Raced {
    /// It is on the digest this agent wanted: another actor did the update.
    DoneElsewhere,
    /// It is on something else: the next cycle compares again.
    NextCycle,
}

/// Decides on a service whose pinned digest is now `now` when this agent wanted `wanted`.
pub fn after_race(now: Option<&str>, wanted: &str) -> Raced {
    if now == Some(wanted) {
        Raced::DoneElsewhere
    } else {
        Raced::NextCycle
    }
}

/// The `skipped` detail of a service another actor already moved to the wanted digest.
pub const DONE_ELSEWHERE: &str = "done by another actor: the service is already on this digest";

#[cfg(test)]
mod tests {
    use super::*;

    fn manager(id: &str, hostname: &str, leader: bool) -> Manager {
        Manager {
            id: id.into(),
            hostname: hostname.into(),
            leader,
        }
    }

    #[test]
    fn the_node_marked_leader_acts_and_the_others_name_it() {
        let managers = [
            manager("a1", "fleet-1", false),
            manager("b2", "fleet-2", true),
            manager("c3", "fleet-3", false),
        ];
        assert_eq!(leadership("b2", &managers), Leadership::Leader);
        let follower = leadership("a1", &managers);
        assert_eq!(
            follower,
            Leadership::Follower {
                leader: Some("fleet-2".into())
            }
        );
        assert!(follower.why_not().is_some_and(|w| w.contains("fleet-2")));
        assert!(follower.describe().contains("fleet-2"));
    }

    #[test]
    fn without_a_leader_nobody_acts() {
        let managers = [
            manager("a1", "fleet-1", false),
            manager("b2", "fleet-2", false),
        ];
        for node in ["a1", "b2", ""] {
            assert_eq!(
                leadership(node, &managers),
                Leadership::Follower { leader: None }
            );
        }
        assert_eq!(leadership("a1", &[]), Leadership::Follower { leader: None });
    }

    #[test]
    fn an_unknown_node_id_is_never_the_leader() {
        let managers = [manager("", "fleet-1", true)];
        assert!(matches!(
            leadership("", &managers),
            Leadership::Follower { .. }
        ));
        let unnamed = [manager("x9", "", true)];
        assert_eq!(
            leadership("a1", &unnamed),
            Leadership::Follower {
                leader: Some("x9".into())
            }
        );
    }

    #[test]
    fn update_out_of_sequence_is_a_version_conflict_and_other_errors_are_not() {
        assert!(is_version_conflict(
            500,
            "rpc error: code = Unknown desc = update out of sequence"
        ));
        assert!(!is_version_conflict(500, "rpc error: no such service"));
        assert!(!is_version_conflict(404, "update out of sequence"));
        assert!(!is_version_conflict(400, "invalid spec"));
    }

    #[test]
    fn a_raced_service_on_the_wanted_digest_was_done_by_another_actor() {
        assert_eq!(
            after_race(Some("sha256:bb"), "sha256:bb"),
            Raced::DoneElsewhere
        );
        assert_eq!(after_race(Some("sha256:cc"), "sha256:bb"), Raced::NextCycle);
        assert_eq!(after_race(None, "sha256:bb"), Raced::NextCycle);
    }

    #[test]
    fn an_election_during_the_update_is_told_from_a_failure() {
        let lost = "rpc error: code = Unknown desc = raft: failed to process the request: node \
                    lost leader status";
        assert!(is_leadership_lost(500, lost));
        assert!(is_leadership_lost(
            500,
            "rpc error: code = Unknown desc = raft: no elected cluster leader"
        ));
        assert!(is_leadership_lost(
            503,
            "The swarm does not have a leader. It's possible that too few managers are online."
        ));
        assert!(!is_leadership_lost(
            500,
            "rpc error: code = Unknown desc = update out of sequence"
        ));
        assert!(
            !is_leadership_lost(400, lost),
            "a client error is not an election"
        );
        assert!(!is_version_conflict(500, lost));
    }
}
