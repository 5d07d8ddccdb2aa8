//! The update plan: which containers to recreate, in which order, and why the others wait.
//! Pure: detections, quarantine, holds and the dependency graph come in as values.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::order::Graph;

/// A container whose reference points to a new digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Container name.
    pub container: String,
    /// The image reference it was created with.
    pub image: String,
    /// The digest it runs.
    pub from_digest: Option<String>,
    /// The digest its reference points to now.
    pub to_digest: String,
}

/// Why a step is in the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "of")]
pub enum Reason {
    /// Its reference points to a new digest.
    NewDigest,
    /// It shares the namespace of a container being recreated (`container:<name>`), so it must
    /// join the new one even though its own image did not change.
    SharesNamespace(String),
    /// `tidewatch rollback`: back to the image it ran before its last update.
    Rollback,
}

/// One recreate, in plan order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedStep {
    /// Container name.
    pub container: String,
    /// Its image reference.
    pub image: String,
    /// The digest it runs.
    pub from_digest: Option<String>,
    /// The digest it moves to; `None` when it is recreated on its own image.
    pub to_digest: Option<String>,
    /// Why.
    pub reason: Reason,
}

/// A container with a new digest that is not updated this cycle, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Waiting {
    /// Container name.
    pub container: String,
    /// The digest it would move to.
    pub to_digest: String,
    /// Why it waits.
    pub reason: String,
}

/// The ordered plan of one cycle.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Recreates, dependencies first.
    pub steps: Vec<PlannedStep>,
    /// Updates found but held back.
    pub waiting: Vec<Waiting>,
}

/// What the state store says about a container, as plain values.
#[derive(Debug, Clone, Default)]
pub struct Marks {
    /// `(container, digest)` -> why that digest is quarantined for that container.
    pub quarantined: BTreeMap<(String, String), String>,
    /// container -> `(held digest, digest rolled back from)` after `tidewatch rollback`.
    pub holds: BTreeMap<String, (String, String)>,
}

/// Builds the plan of one cycle.
/// `images` gives the image reference of every watched container, for the steps of namespace
/// sharers whose own image did not change.
pub fn plan(
    candidates: &[Candidate],
    images: &BTreeMap<String, String>,
    marks: &Marks,
    graph: &Graph,
) -> Plan {
    let mut waiting = Vec::new();
    let mut chosen: BTreeMap<String, &Candidate> = BTreeMap::new();
    for c in candidates {
        if let Some(why) = marks
            .quarantined
            .get(&(c.container.clone(), c.to_digest.clone()))
        {
            waiting.push(Waiting {
                container: c.container.clone(),
                to_digest: c.to_digest.clone(),
                reason: format!("digest quarantined after a failed update: {why}"),
            });
            continue;
        }
        if let Some((held, skipped)) = marks.holds.get(&c.container) {
            if c.to_digest == *held || c.to_digest == *skipped {
                waiting.push(Waiting {
                    container: c.container.clone(),
                    to_digest: c.to_digest.clone(),
                    reason: "held on its rollback digest until a newer one is pushed".into(),
                });
                continue;
            }
        }
        chosen.insert(c.container.clone(), c);
    }

    // Sharers of a recreated container's namespace follow it, transitively (a sidecar of a
    // sidecar), unless they are updated anyway.
    let mut sharers: BTreeMap<String, String> = BTreeMap::new();
    let mut frontier: Vec<String> = chosen.keys().cloned().collect();
    while let Some(owner) = frontier.pop() {
        for s in graph.namespace_dependents(&owner) {
            if !chosen.contains_key(&s) && !sharers.contains_key(&s) {
                sharers.insert(s.clone(), owner.clone());
                frontier.push(s);
            }
        }
    }

    let selected: BTreeSet<String> = chosen.keys().chain(sharers.keys()).cloned().collect();
    let order = graph.order_partial(&selected);
    for cycle in &order.cycles {
        for member in &cycle.members {
            if let Some(c) = chosen.get(member) {
                waiting.push(Waiting {
                    container: member.clone(),
                    to_digest: c.to_digest.clone(),
                    reason: cycle.to_string(),
                });
            }
        }
    }
    for blocked in &order.blocked {
        if let Some(c) = chosen.get(blocked) {
            waiting.push(Waiting {
                container: blocked.clone(),
                to_digest: c.to_digest.clone(),
                reason: "depends on containers in a dependency cycle".into(),
            });
        }
    }

    let steps = order
        .order
        .iter()
        .filter_map(|name| {
            if let Some(c) = chosen.get(name) {
                Some(PlannedStep {
                    container: name.clone(),
                    image: c.image.clone(),
                    from_digest: c.from_digest.clone(),
                    to_digest: Some(c.to_digest.clone()),
                    reason: Reason::NewDigest,
                })
            } else {
                sharers.get(name).map(|owner| PlannedStep {
                    container: name.clone(),
                    image: images.get(name).cloned().unwrap_or_default(),
                    from_digest: None,
                    to_digest: None,
                    reason: Reason::SharesNamespace(owner.clone()),
                })
            }
        })
        .collect();
    waiting.sort_by(|a, b| a.container.cmp(&b.container));
    Plan { steps, waiting }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::order::{ConfigDependency, Node};

    fn node(name: &str, labels: &[(&str, &str)], network_mode: &str) -> Node {
        Node {
            id: format!("{name}-id"),
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            network_mode: network_mode.into(),
            ..Default::default()
        }
    }

    fn candidate(name: &str) -> Candidate {
        Candidate {
            container: name.into(),
            image: format!("reg/{name}:latest"),
            from_digest: Some("sha256:old".into()),
            to_digest: format!("sha256:new-{name}"),
        }
    }

    fn names(plan: &Plan) -> Vec<&str> {
        plan.steps.iter().map(|s| s.container.as_str()).collect()
    }

    #[test]
    fn networking_is_updated_before_the_apps_that_depend_on_it() {
        let (graph, _) = Graph::build(
            vec![
                node("app", &[("tidewatch.depends-on", "traefik")], "bridge"),
                node("traefik", &[], "bridge"),
            ],
            &[],
        );
        let p = plan(
            &[candidate("app"), candidate("traefik")],
            &BTreeMap::new(),
            &Marks::default(),
            &graph,
        );
        assert_eq!(names(&p), ["traefik", "app"]);
        assert!(p.waiting.is_empty());
    }

    #[test]
    fn quarantined_digest_waits_but_a_newer_one_goes() {
        let (graph, _) = Graph::build(vec![node("web", &[], "bridge")], &[]);
        let mut marks = Marks::default();
        marks.quarantined.insert(
            ("web".into(), "sha256:new-web".into()),
            "exited with code 1".into(),
        );
        let p = plan(&[candidate("web")], &BTreeMap::new(), &marks, &graph);
        assert!(p.steps.is_empty());
        assert_eq!(p.waiting.len(), 1);
        assert!(p.waiting[0].reason.contains("quarantined"));

        let mut newer = candidate("web");
        newer.to_digest = "sha256:newer".into();
        let p = plan(&[newer], &BTreeMap::new(), &marks, &graph);
        assert_eq!(names(&p), ["web"]);
    }

    #[test]
    fn rollback_hold_keeps_the_container_until_a_newer_digest() {
        let (graph, _) = Graph::build(vec![node("web", &[], "bridge")], &[]);
        let mut marks = Marks::default();
        marks
            .holds
            .insert("web".into(), ("sha256:old".into(), "sha256:new-web".into()));
        let p = plan(&[candidate("web")], &BTreeMap::new(), &marks, &graph);
        assert!(p.steps.is_empty());
        assert!(p.waiting[0].reason.contains("held"));

        let mut newer = candidate("web");
        newer.to_digest = "sha256:newer".into();
        assert_eq!(
            names(&plan(&[newer], &BTreeMap::new(), &marks, &graph)),
            ["web"]
        );
    }

    #[test]
    fn namespace_sidecar_is_recreated_after_its_owner_even_when_unchanged() {
        let (graph, _) = Graph::build(
            vec![
                node("app", &[], "bridge"),
                node("sidecar", &[], "container:app"),
                node("sidecar2", &[], "container:sidecar"),
            ],
            &[],
        );
        let p = plan(
            &[candidate("app")],
            &BTreeMap::new(),
            &Marks::default(),
            &graph,
        );
        assert_eq!(names(&p), ["app", "sidecar", "sidecar2"]);
        assert_eq!(p.steps[1].reason, Reason::SharesNamespace("app".into()));
        assert_eq!(p.steps[1].to_digest, None);
    }

    #[test]
    fn cycle_members_wait_and_are_named_while_others_proceed() {
        let (graph, _) = Graph::build(
            vec![
                node("a", &[], "bridge"),
                node("b", &[], "bridge"),
                node("c", &[], "bridge"),
            ],
            &[
                ConfigDependency {
                    name: "a".into(),
                    depends_on: vec!["b".into()],
                },
                ConfigDependency {
                    name: "b".into(),
                    depends_on: vec!["a".into()],
                },
            ],
        );
        let p = plan(
            &[candidate("a"), candidate("b"), candidate("c")],
            &BTreeMap::new(),
            &Marks::default(),
            &graph,
        );
        assert_eq!(names(&p), ["c"]);
        let waiting: Vec<&str> = p.waiting.iter().map(|w| w.container.as_str()).collect();
        assert_eq!(waiting, ["a", "b"]);
        assert!(
            p.waiting[0].reason.contains("cycle"),
            "{}",
            p.waiting[0].reason
        );
    }
}
