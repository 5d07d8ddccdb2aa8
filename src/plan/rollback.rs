//! The plan of `tidewatch rollback NAME`: NAME back to the digest it ran before its last
//! update, then the containers sharing its namespaces, which follow it onto the restored
//! container as they follow an update. Pure: the undone update and the dependency graph come
//! in as values.

use std::collections::{BTreeMap, BTreeSet};

use super::order::Graph;
use super::update::{namespace_followers, Plan, PlannedStep, Reason};

/// The update a rollback undoes, as the history recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollback {
    /// The container.
    pub container: String,
    /// Its image reference, as it runs now.
    pub image: String,
    /// The digest its last update moved it to, which the rollback leaves.
    pub leaving: String,
    /// The digest it ran before that update, which it goes back to; `None` when the history
    /// does not know it.
    pub back_to: Option<String>,
}

impl Rollback {
    /// The hold to record once the rollback succeeded, as `(held digest, digest rolled back
    /// from)`: the next cycles leave the container on `back_to` until another digest is
    /// pushed. `None` when `back_to` is unknown, as there is no digest to hold it on.
    pub fn hold(&self) -> Option<(String, String)> {
        self.back_to
            .clone()
            .map(|held| (held, self.leaving.clone()))
    }
}

/// The rollback as the first step, then every container sharing its namespaces, directly or
/// through another sharer, each after the one whose namespace it shares and recreated on its
/// own image (`images` gives them by container name). Without them, the sharers would stay in
/// the namespaces of the container the rollback removes.
pub fn plan(rollback: &Rollback, images: &BTreeMap<String, String>, graph: &Graph) -> Plan {
    let step = PlannedStep {
        container: rollback.container.clone(),
        image: rollback.image.clone(),
        from_digest: Some(rollback.leaving.clone()),
        to_digest: rollback.back_to.clone(),
        new_image: None,
        reason: Reason::Rollback,
    };
    let recreated = BTreeSet::from([rollback.container.clone()]);
    let mut followers = namespace_followers(graph, &recreated);
    // Discovery order is breadth-first, which can put a sharer of two followers' namespaces
    // before one of them; the graph's order puts each after every container it shares with.
    // A namespace cycle (which engines refuse to create) keeps discovery order, after the rest.
    let selected: BTreeSet<String> = recreated
        .iter()
        .cloned()
        .chain(followers.iter().map(|f| f.container.clone()))
        .collect();
    let order = graph.order_partial(&selected).order;
    let position = |name: &str| order.iter().position(|n| n == name).unwrap_or(usize::MAX);
    followers.sort_by_key(|f| position(&f.container));
    Plan {
        steps: std::iter::once(step)
            .chain(followers.iter().map(|f| f.step(images)))
            .collect(),
        waiting: Vec::new(),
        self_update: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::order::Node;

    fn node(name: &str, network_mode: &str) -> Node {
        Node {
            id: format!("{name}-id"),
            name: name.into(),
            network_mode: network_mode.into(),
            ..Default::default()
        }
    }

    fn web(back_to: Option<&str>) -> Rollback {
        Rollback {
            container: "web".into(),
            image: "reg/web:latest".into(),
            leaving: "sha256:broken".into(),
            back_to: back_to.map(str::to_owned),
        }
    }

    #[test]
    fn a_rollback_goes_from_the_updated_digest_back_to_the_one_before() {
        let (graph, _) = Graph::build(vec![node("web", "bridge"), node("db", "bridge")], &[]);
        let plan = plan(&web(Some("sha256:good")), &BTreeMap::new(), &graph);
        assert_eq!(
            plan,
            Plan {
                steps: vec![PlannedStep {
                    container: "web".into(),
                    image: "reg/web:latest".into(),
                    from_digest: Some("sha256:broken".into()),
                    to_digest: Some("sha256:good".into()),
                    new_image: None,
                    reason: Reason::Rollback,
                }],
                waiting: Vec::new(),
                self_update: None,
            }
        );
    }

    #[test]
    fn namespace_sharers_follow_the_rolled_back_container_on_their_own_images() {
        let (graph, _) = Graph::build(
            vec![
                node("web", "bridge"),
                node("vpn", "container:web"),
                node("exporter", "container:vpn"),
                node("db", "bridge"),
            ],
            &[],
        );
        let images = BTreeMap::from([
            ("vpn".to_string(), "reg/vpn:2".to_string()),
            ("exporter".to_string(), "reg/exporter:1".to_string()),
        ]);
        let plan = plan(&web(Some("sha256:good")), &images, &graph);
        let steps: Vec<(&str, &str, &Reason)> = plan
            .steps
            .iter()
            .map(|s| (s.container.as_str(), s.image.as_str(), &s.reason))
            .collect();
        assert_eq!(
            steps,
            [
                ("web", "reg/web:latest", &Reason::Rollback),
                ("vpn", "reg/vpn:2", &Reason::SharesNamespace("web".into())),
                (
                    "exporter",
                    "reg/exporter:1",
                    &Reason::SharesNamespace("vpn".into())
                ),
            ]
        );
        assert!(plan.steps[1..]
            .iter()
            .all(|s| s.from_digest.is_none() && s.to_digest.is_none()));
    }

    #[test]
    fn a_sharer_of_two_followers_namespaces_goes_after_both() {
        // `tap` shares web's network and `zz`'s ipc; `zz` shares web's network. Found in the
        // order they are discovered, `tap` (first by name) would be recreated before `zz` and
        // left in the ipc namespace of the `zz` that is then removed.
        let tap = Node {
            ipc_mode: "container:zz".into(),
            ..node("tap", "container:web")
        };
        let (graph, _) = Graph::build(
            vec![node("web", "bridge"), tap, node("zz", "container:web")],
            &[],
        );
        let plan = plan(&web(Some("sha256:good")), &BTreeMap::new(), &graph);
        let order: Vec<&str> = plan.steps.iter().map(|s| s.container.as_str()).collect();
        assert_eq!(order, ["web", "zz", "tap"]);
    }

    #[test]
    fn the_container_is_held_on_the_digest_it_went_back_to_when_that_is_known() {
        assert_eq!(
            web(Some("sha256:good")).hold(),
            Some(("sha256:good".into(), "sha256:broken".into()))
        );
        assert_eq!(web(None).hold(), None);
    }
}
