//! The update plan: which containers to recreate, in which order, and why the others wait.
//! Pure: detections, quarantine, holds and the dependency graph come in as values.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Local, Utc};
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use super::order::{CycleError, Graph};
use crate::config::{Policy, Window};

/// A container whose reference points to a new digest.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Container name.
    pub container: String,
    /// The image reference it was created with.
    pub image: String,
    /// The digest it runs.
    pub from_digest: Option<String>,
    /// The digest its reference points to now.
    pub to_digest: String,
    /// With tag tracking: the newer tag's reference it moves to.
    pub new_image: Option<String>,
    /// Its policy (label, `[[service]]`, `[watch]` default).
    pub policy: Policy,
    /// Its maintenance window, if it has one.
    pub window: Option<Window>,
    /// How old `to_digest` must be before it is rolled out.
    pub min_age: Duration,
    /// When `to_digest` was first seen for this container.
    pub first_seen: Option<DateTime<Utc>>,
    /// The container this agent runs in: never a step of the plan (see [`Plan::self_update`]).
    pub own: bool,
}

/// When the plan is made, and whether a trigger asked to ignore maintenance windows.
#[derive(Debug, Clone, Copy)]
pub struct Moment {
    /// Now.
    pub now: DateTime<Local>,
    /// `?force=true`: maintenance windows do not hold updates back.
    pub force: bool,
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
    /// With tag tracking: the reference it is recreated with (a newer tag).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_image: Option<String>,
    /// Why.
    pub reason: Reason,
}

/// A container with a new digest that is not updated this cycle, and why.
///
/// Serialised as `container`, `to_digest`, `reason` (the reason's text) and `reason_kind`
/// ([`WaitReason::kind`]): the API and `--json` outputs have always given `reason` as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// Container name.
    pub container: String,
    /// The digest it would move to.
    pub to_digest: String,
    /// Why it waits.
    pub reason: WaitReason,
}

impl Serialize for Waiting {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Waiting", 5)?;
        s.serialize_field("container", &self.container)?;
        s.serialize_field("to_digest", &self.to_digest)?;
        s.serialize_field("reason", &self.reason.to_string())?;
        s.serialize_field("reason_kind", self.reason.kind())?;
        s.serialize_field("until", &self.reason.until())?;
        s.end()
    }
}

/// Why an update waits. Code branches on the variant; people read its `Display` text, which is
/// what logs, tables and the `reason` field of the JSON outputs show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitReason {
    /// Its policy is `notify`: updates are reported, never applied.
    MonitorOnly,
    /// The digest was first seen less than `min_age` ago.
    MinAge {
        /// How long ago it was first seen, in whole seconds.
        age: Duration,
        /// The container's `min_age`.
        min_age: Duration,
        /// When it is old enough.
        until: DateTime<Utc>,
    },
    /// Its maintenance window is closed.
    OutsideWindow {
        /// The window's schedule as written.
        expression: String,
        /// How long the window stays open.
        length: Duration,
        /// When it next opens.
        opens: DateTime<Local>,
    },
    /// The digest failed an update of this container before.
    Quarantined {
        /// What went wrong then.
        why: String,
    },
    /// `tidewatch rollback` holds it on the digest it rolled back to, and this is that digest
    /// or the one it rolled back from.
    RollbackHold,
    /// The agent's own container, while `[update] self_update` is off.
    OwnContainer,
    /// It is on a dependency cycle.
    DependencyCycle(CycleError),
    /// It depends, directly or not, on containers on a dependency cycle.
    BehindCycle,
    /// Its pre-update lifecycle hook exited 75 (EX_TEMPFAIL): the update is tried again next
    /// cycle. Found while applying, not planning.
    PreUpdateHook {
        /// Which hook said so, with its output.
        why: String,
    },
}

impl WaitReason {
    /// When the wait ends by itself (`min_age` reached, the maintenance window opens); `None`
    /// when it takes something else (a newer digest, a fixed dependency, a setting).
    pub fn until(&self) -> Option<DateTime<Utc>> {
        match self {
            WaitReason::MinAge { until, .. } => Some(*until),
            WaitReason::OutsideWindow { opens, .. } => Some(opens.with_timezone(&Utc)),
            _ => None,
        }
    }

    /// A stable name for the variant, for the `reason_kind` field of JSON outputs.
    pub fn kind(&self) -> &'static str {
        match self {
            WaitReason::MonitorOnly => "monitor_only",
            WaitReason::MinAge { .. } => "min_age",
            WaitReason::OutsideWindow { .. } => "maintenance_window",
            WaitReason::Quarantined { .. } => "quarantined",
            WaitReason::RollbackHold => "rollback_hold",
            WaitReason::OwnContainer => "own_container",
            WaitReason::DependencyCycle(_) => "dependency_cycle",
            WaitReason::BehindCycle => "behind_dependency_cycle",
            WaitReason::PreUpdateHook { .. } => "pre_update_hook",
        }
    }
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const LOCAL_TIME: &str = "%Y-%m-%d %H:%M:%S %Z";
        match self {
            WaitReason::MonitorOnly => f.write_str("monitor only (policy notify)"),
            WaitReason::MinAge {
                age,
                min_age,
                until,
            } => write!(
                f,
                "digest first seen {} ago; min_age {} lets it go at {}",
                humantime::format_duration(*age),
                humantime::format_duration(*min_age),
                until.with_timezone(&Local).format(LOCAL_TIME)
            ),
            WaitReason::OutsideWindow {
                expression,
                length,
                opens,
            } => write!(
                f,
                "outside its maintenance window ({expression}, {}); next opens {}",
                humantime::format_duration(*length),
                opens.format(LOCAL_TIME)
            ),
            WaitReason::Quarantined { why } => {
                write!(f, "digest quarantined after a failed update: {why}")
            }
            WaitReason::RollbackHold => {
                f.write_str("held on its rollback digest until a newer one is pushed")
            }
            WaitReason::OwnContainer => f.write_str(OWN_CONTAINER),
            WaitReason::DependencyCycle(cycle) => write!(f, "{cycle}"),
            WaitReason::BehindCycle => f.write_str("depends on containers in a dependency cycle"),
            WaitReason::PreUpdateHook { why } => {
                write!(f, "deferred to the next cycle: {why}")
            }
        }
    }
}

/// The ordered plan of one cycle.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Recreates, dependencies first.
    pub steps: Vec<PlannedStep>,
    /// Updates found but held back.
    pub waiting: Vec<Waiting>,
    /// The agent's own container, replaced after the steps when `[update] self_update` is on
    /// (and nothing else holds its update back).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub self_update: Option<PlannedStep>,
}

/// What the state store says about a container, as plain values.
#[derive(Debug, Clone, Default)]
pub struct Marks {
    /// `(container, digest)` -> why that digest is quarantined for that container.
    pub quarantined: BTreeMap<(String, String), String>,
    /// container -> `(held digest, digest rolled back from)` after `tidewatch rollback`.
    pub holds: BTreeMap<String, (String, String)>,
}

/// Why the agent's own container is not a step.
pub const OWN_CONTAINER: &str = "this agent's own container; see [update] self_update";

/// Builds the plan of one cycle.
/// `images` gives the image reference of every watched container, for the steps of namespace
/// sharers whose own image did not change. The agent's own container is never a step: it is
/// the plan's `self_update` when `self_update` allows it, else it waits.
pub fn plan(
    candidates: &[Candidate],
    images: &BTreeMap<String, String>,
    marks: &Marks,
    graph: &Graph,
    moment: Moment,
    self_update: bool,
) -> Plan {
    let mut waiting = Vec::new();
    let mut chosen: BTreeMap<String, &Candidate> = BTreeMap::new();
    let mut own = None;
    for c in candidates {
        match held_back(c, marks, moment, self_update) {
            Some(reason) => waiting.push(Waiting {
                container: c.container.clone(),
                to_digest: c.to_digest.clone(),
                reason,
            }),
            None if c.own => own = Some(new_digest_step(c)),
            None => {
                chosen.insert(c.container.clone(), c);
            }
        }
    }

    let updated: BTreeSet<String> = chosen.keys().cloned().collect();
    let followers: BTreeMap<String, Follower> = namespace_followers(graph, &updated)
        .into_iter()
        .map(|f| (f.container.clone(), f))
        .collect();
    let selected: BTreeSet<String> = updated
        .into_iter()
        .chain(followers.keys().cloned())
        .collect();
    let order = graph.order_partial(&selected);
    let on_cycles = order.cycles.iter().flat_map(|cycle| {
        let reason = WaitReason::DependencyCycle(cycle.clone());
        cycle.members.iter().map(move |m| (m, reason.clone()))
    });
    let behind_cycles = order.blocked.iter().map(|b| (b, WaitReason::BehindCycle));
    for (name, reason) in on_cycles.chain(behind_cycles) {
        if let Some(c) = chosen.get(name) {
            waiting.push(Waiting {
                container: name.clone(),
                to_digest: c.to_digest.clone(),
                reason,
            });
        }
    }

    let steps = order
        .order
        .iter()
        .filter_map(|name| match chosen.get(name) {
            Some(c) => Some(new_digest_step(c)),
            None => followers.get(name).map(|f| f.step(images)),
        })
        .collect();
    waiting.sort_by(|a, b| a.container.cmp(&b.container));
    Plan {
        steps,
        waiting,
        self_update: own,
    }
}

/// A container recreated only because it shares a namespace (`container:<name>` network, pid
/// or ipc mode) of one that is: left alone, it would stay in the namespace of the removed
/// container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Follower {
    /// The sharing container.
    pub container: String,
    /// The recreated container whose namespace it shares.
    pub owner: String,
}

impl Follower {
    /// Its step: recreated on its own image, which `images` gives by container name.
    pub fn step(&self, images: &BTreeMap<String, String>) -> PlannedStep {
        PlannedStep {
            container: self.container.clone(),
            image: images.get(&self.container).cloned().unwrap_or_default(),
            from_digest: None,
            to_digest: None,
            new_image: None,
            reason: Reason::SharesNamespace(self.owner.clone()),
        }
    }
}

/// The containers that must follow `recreated` onto new containers: those sharing a namespace
/// of one of them, and transitively those sharing a follower's (a sidecar of a sidecar). None
/// of `recreated` is a follower: it is recreated anyway.
///
/// Breadth first from `recreated` in name order, so each follower comes after the owner it was
/// found through, and that owner is the nearest recreated container (the first by name among
/// equally near ones).
pub fn namespace_followers(graph: &Graph, recreated: &BTreeSet<String>) -> Vec<Follower> {
    let mut followers: Vec<Follower> = Vec::new();
    let mut owners: VecDeque<String> = recreated.iter().cloned().collect();
    while let Some(owner) = owners.pop_front() {
        for sharer in graph.namespace_dependents(&owner) {
            if recreated.contains(&sharer) || followers.iter().any(|f| f.container == sharer) {
                continue;
            }
            owners.push_back(sharer.clone());
            followers.push(Follower {
                container: sharer,
                owner: owner.clone(),
            });
        }
    }
    followers
}

/// Why candidate `c` cannot go this cycle whatever the other containers do, if it cannot:
/// its own rules, then the marks the state store keeps, then whether it is the agent itself.
fn held_back(
    c: &Candidate,
    marks: &Marks,
    moment: Moment,
    self_update: bool,
) -> Option<WaitReason> {
    if let Some(reason) = held_by_rules(c, moment) {
        return Some(reason);
    }
    let key = (c.container.clone(), c.to_digest.clone());
    if let Some(why) = marks.quarantined.get(&key) {
        return Some(WaitReason::Quarantined { why: why.clone() });
    }
    if let Some((held, skipped)) = marks.holds.get(&c.container) {
        if c.to_digest == *held || c.to_digest == *skipped {
            return Some(WaitReason::RollbackHold);
        }
    }
    (c.own && !self_update).then_some(WaitReason::OwnContainer)
}

/// The step that moves candidate `c` to its new digest.
fn new_digest_step(c: &Candidate) -> PlannedStep {
    PlannedStep {
        container: c.container.clone(),
        image: c.image.clone(),
        from_digest: c.from_digest.clone(),
        to_digest: Some(c.to_digest.clone()),
        new_image: c.new_image.clone(),
        reason: Reason::NewDigest,
    }
}

/// Why the container's own rules (policy, min_age, window) hold this update back, if they do.
fn held_by_rules(c: &Candidate, moment: Moment) -> Option<WaitReason> {
    if c.policy != Policy::Update {
        return Some(WaitReason::MonitorOnly);
    }
    if let Some(first_seen) = c.first_seen {
        let age = (moment.now.with_timezone(&Utc) - first_seen)
            .to_std()
            .unwrap_or_default();
        if age < c.min_age {
            let until = chrono::Duration::from_std(c.min_age)
                .ok()
                .and_then(|min_age| first_seen.checked_add_signed(min_age))
                .unwrap_or(chrono::DateTime::<Utc>::MAX_UTC);
            return Some(WaitReason::MinAge {
                age: Duration::from_secs(age.as_secs()),
                min_age: c.min_age,
                until,
            });
        }
    }
    if moment.force {
        return None;
    }
    let window = c.window.as_ref()?;
    let opens = window.closed_until(moment.now)?;
    Some(WaitReason::OutsideWindow {
        expression: window.expression.clone(),
        length: window.length,
        opens,
    })
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
            new_image: None,
            policy: Policy::Update,
            window: None,
            min_age: Duration::ZERO,
            first_seen: None,
            own: false,
        }
    }

    fn at(hour: u32, minute: u32) -> Moment {
        use chrono::TimeZone;
        Moment {
            now: Local
                .with_ymd_and_hms(2026, 11, 28, hour, minute, 0)
                .unwrap(),
            force: false,
        }
    }

    fn now() -> Moment {
        Moment {
            now: Local::now(),
            force: false,
        }
    }

    fn window(schedule: &str, length: Duration) -> Window {
        Window {
            schedule: Box::new(crate::config::parse_cron(schedule).unwrap()),
            length,
            expression: schedule.into(),
        }
    }

    #[test]
    fn wait_reasons_read_as_they_always_have() {
        let opens = at(2, 0).now;
        let zone = opens.format("%Z");
        let cycle = CycleError {
            members: vec!["a".into(), "b".into(), "c".into()],
            path: vec!["a".into(), "b".into(), "a".into()],
        };
        let cases = [
            (WaitReason::MonitorOnly, "monitor only (policy notify)".into()),
            (
                WaitReason::MinAge {
                    age: Duration::from_secs(60),
                    min_age: Duration::from_secs(600),
                    until: opens.with_timezone(&Utc),
                },
                format!("digest first seen 1m ago; min_age 10m lets it go at 2026-11-28 02:00:00 {zone}"),
            ),
            (
                WaitReason::OutsideWindow {
                    expression: "0 2 * * 6".into(),
                    length: Duration::from_secs(7200),
                    opens,
                },
                format!("outside its maintenance window (0 2 * * 6, 2h); next opens 2026-11-28 02:00:00 {zone}"),
            ),
            (
                WaitReason::Quarantined {
                    why: "exited with code 1".into(),
                },
                "digest quarantined after a failed update: exited with code 1".into(),
            ),
            (
                WaitReason::RollbackHold,
                "held on its rollback digest until a newer one is pushed".into(),
            ),
            (
                WaitReason::OwnContainer,
                "this agent's own container; see [update] self_update".into(),
            ),
            (
                WaitReason::DependencyCycle(cycle),
                "dependency cycle: a -> b -> a (also involving c)".into(),
            ),
            (
                WaitReason::BehindCycle,
                "depends on containers in a dependency cycle".into(),
            ),
        ];
        for (reason, text) in cases {
            assert_eq!(reason.to_string(), text, "{reason:?}");
        }
    }

    #[test]
    fn a_waiting_update_serialises_its_reason_as_text_and_kind() {
        let waiting = Waiting {
            container: "web".into(),
            to_digest: "sha256:new".into(),
            reason: WaitReason::Quarantined {
                why: "exited".into(),
            },
        };
        assert_eq!(
            serde_json::to_value(&waiting).unwrap(),
            serde_json::json!({
                "container": "web",
                "to_digest": "sha256:new",
                "reason": "digest quarantined after a failed update: exited",
                "reason_kind": "quarantined",
                "until": null
            })
        );
    }

    #[test]
    fn monitor_only_container_waits() {
        let (graph, _) = Graph::build(vec![node("web", &[], "bridge")], &[]);
        let mut c = candidate("web");
        c.policy = Policy::Notify;
        let p = plan(
            &[c],
            &BTreeMap::new(),
            &Marks::default(),
            &graph,
            now(),
            false,
        );
        assert!(p.steps.is_empty());
        assert_eq!(p.waiting[0].reason, WaitReason::MonitorOnly);
    }

    #[test]
    fn young_digest_waits_for_min_age() {
        let (graph, _) = Graph::build(vec![node("web", &[], "bridge")], &[]);
        let moment = now();
        let mut c = candidate("web");
        c.min_age = Duration::from_secs(600);
        c.first_seen = Some(moment.now.with_timezone(&Utc) - chrono::Duration::seconds(60));
        let p = plan(
            &[c.clone()],
            &BTreeMap::new(),
            &Marks::default(),
            &graph,
            moment,
            false,
        );
        assert!(p.steps.is_empty());
        assert_eq!(
            p.waiting[0].reason,
            WaitReason::MinAge {
                age: Duration::from_secs(60),
                min_age: Duration::from_secs(600),
                until: moment.now.with_timezone(&Utc) + chrono::Duration::seconds(540),
            }
        );

        c.first_seen = Some(moment.now.with_timezone(&Utc) - chrono::Duration::seconds(601));
        let p = plan(
            &[c],
            &BTreeMap::new(),
            &Marks::default(),
            &graph,
            moment,
            false,
        );
        assert_eq!(names(&p), ["web"]);
    }

    #[test]
    fn maintenance_window_holds_updates_until_it_opens_unless_forced() {
        let (graph, _) = Graph::build(vec![node("web", &[], "bridge")], &[]);
        let mut c = candidate("web");
        // Saturdays 02:00 for two hours; 2026-11-28 is a Saturday.
        c.window = Some(window("0 2 * * 6", Duration::from_secs(7200)));
        let p = plan(
            &[c.clone()],
            &BTreeMap::new(),
            &Marks::default(),
            &graph,
            at(1, 59),
            false,
        );
        assert!(p.steps.is_empty());
        assert_eq!(
            p.waiting[0].reason,
            WaitReason::OutsideWindow {
                expression: "0 2 * * 6".into(),
                length: Duration::from_secs(7200),
                opens: at(2, 0).now,
            }
        );
        let p = plan(
            &[c.clone()],
            &BTreeMap::new(),
            &Marks::default(),
            &graph,
            at(3, 30),
            false,
        );
        assert_eq!(names(&p), ["web"]);
        let p = plan(
            &[c.clone()],
            &BTreeMap::new(),
            &Marks::default(),
            &graph,
            at(4, 0),
            false,
        );
        assert!(p.steps.is_empty(), "the window closed at 04:00");
        let forced = Moment {
            force: true,
            ..at(4, 0)
        };
        let p = plan(
            &[c],
            &BTreeMap::new(),
            &Marks::default(),
            &graph,
            forced,
            false,
        );
        assert_eq!(names(&p), ["web"]);
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
            now(),
            false,
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
        let p = plan(
            &[candidate("web")],
            &BTreeMap::new(),
            &marks,
            &graph,
            now(),
            false,
        );
        assert!(p.steps.is_empty());
        assert_eq!(p.waiting.len(), 1);
        assert_eq!(
            p.waiting[0].reason,
            WaitReason::Quarantined {
                why: "exited with code 1".into()
            }
        );

        let mut newer = candidate("web");
        newer.to_digest = "sha256:newer".into();
        let p = plan(&[newer], &BTreeMap::new(), &marks, &graph, now(), false);
        assert_eq!(names(&p), ["web"]);
    }

    #[test]
    fn rollback_hold_keeps_the_container_until_a_newer_digest() {
        let (graph, _) = Graph::build(vec![node("web", &[], "bridge")], &[]);
        let mut marks = Marks::default();
        marks
            .holds
            .insert("web".into(), ("sha256:old".into(), "sha256:new-web".into()));
        let p = plan(
            &[candidate("web")],
            &BTreeMap::new(),
            &marks,
            &graph,
            now(),
            false,
        );
        assert!(p.steps.is_empty());
        assert_eq!(p.waiting[0].reason, WaitReason::RollbackHold);

        let mut newer = candidate("web");
        newer.to_digest = "sha256:newer".into();
        assert_eq!(
            names(&plan(
                &[newer],
                &BTreeMap::new(),
                &marks,
                &graph,
                now(),
                false
            )),
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
            now(),
            false,
        );
        assert_eq!(names(&p), ["app", "sidecar", "sidecar2"]);
        assert_eq!(p.steps[1].reason, Reason::SharesNamespace("app".into()));
        assert_eq!(p.steps[1].to_digest, None);
    }

    fn follower(container: &str, owner: &str) -> Follower {
        Follower {
            container: container.into(),
            owner: owner.into(),
        }
    }

    #[test]
    fn namespace_followers_are_found_breadth_first_through_the_nearest_owner() {
        let (graph, _) = Graph::build(
            vec![
                node("app", &[], "bridge"),
                node("db", &[], "bridge"),
                node("proxy", &[], "container:app"),
                node("metrics", &[], "container:proxy"),
                node("backup", &[], "container:db"),
                Node {
                    ipc_mode: "container:db".into(),
                    ..node("shared", &[], "container:app")
                },
                node("lonely", &[], "bridge"),
            ],
            &[],
        );
        let recreated = BTreeSet::from(["app".to_string(), "db".to_string()]);
        assert_eq!(
            namespace_followers(&graph, &recreated),
            [
                follower("proxy", "app"),
                follower("shared", "app"),
                follower("backup", "db"),
                follower("metrics", "proxy"),
            ]
        );
    }

    #[test]
    fn a_recreated_container_is_never_its_owners_follower() {
        let (graph, _) = Graph::build(
            vec![
                node("app", &[], "bridge"),
                node("sidecar", &[], "container:app"),
                node("sidecar2", &[], "container:sidecar"),
            ],
            &[],
        );
        let both = BTreeSet::from(["app".to_string(), "sidecar".to_string()]);
        assert_eq!(
            namespace_followers(&graph, &both),
            [follower("sidecar2", "sidecar")]
        );
        assert_eq!(
            namespace_followers(&graph, &BTreeSet::from(["sidecar2".to_string()])),
            []
        );
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
            now(),
            false,
        );
        assert_eq!(names(&p), ["c"]);
        let waiting: Vec<&str> = p.waiting.iter().map(|w| w.container.as_str()).collect();
        assert_eq!(waiting, ["a", "b"]);
        let cycle = CycleError {
            members: vec!["a".into(), "b".into()],
            path: vec!["a".into(), "b".into(), "a".into()],
        };
        assert_eq!(p.waiting[0].reason, WaitReason::DependencyCycle(cycle));
    }

    #[test]
    fn the_agents_own_container_is_never_a_step_it_waits_or_is_the_self_update() {
        let (graph, _) = Graph::build(
            vec![node("tidewatch", &[], "host"), node("web", &[], "bridge")],
            &[],
        );
        let mut own = candidate("tidewatch");
        own.own = true;
        let candidates = [own.clone(), candidate("web")];

        let p = plan(
            &candidates,
            &BTreeMap::new(),
            &Marks::default(),
            &graph,
            now(),
            false,
        );
        assert_eq!(names(&p), ["web"]);
        assert_eq!(p.self_update, None);
        assert_eq!(p.waiting.len(), 1);
        assert_eq!(p.waiting[0].container, "tidewatch");
        assert_eq!(p.waiting[0].reason, WaitReason::OwnContainer);

        let p = plan(
            &candidates,
            &BTreeMap::new(),
            &Marks::default(),
            &graph,
            now(),
            true,
        );
        assert_eq!(
            names(&p),
            ["web"],
            "the agent is replaced after the steps, not among them"
        );
        assert!(p.waiting.is_empty());
        let step = p.self_update.expect("self_update is on");
        assert_eq!(step.container, "tidewatch");
        assert_eq!(step.to_digest.as_deref(), Some("sha256:new-tidewatch"));

        // Its own rules still apply: a quarantined digest waits, self_update or not.
        let mut marks = Marks::default();
        marks.quarantined.insert(
            ("tidewatch".into(), "sha256:new-tidewatch".into()),
            "the successor agent exited".into(),
        );
        let p = plan(&[own], &BTreeMap::new(), &marks, &graph, now(), true);
        assert_eq!(p.self_update, None);
        assert_eq!(p.waiting[0].reason.kind(), "quarantined");
    }
}
