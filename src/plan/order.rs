//! The dependency graph between containers and the order updates follow.
//!
//! A dependency is updated (and healthy) before its dependents: networking before the apps behind
//! it, a database before the services that use it. Edges come from labels
//! (`tidewatch.depends-on`, Watchtower's `com.centurylinklabs.watchtower.depends-on`, compose's
//! `com.docker.compose.depends_on`), from engine settings (legacy links, `container:` network /
//! pid / ipc modes, `volumes_from`) and from `[[service]] depends_on` in the config.
//!
//! Everything here is pure: the engine adapter turns inspect results into [`Node`]s, and callers
//! get back names in the order to touch them. References that match no container never fail the
//! build; they come back as [`GraphWarning`]s for the caller to log.

use std::collections::{btree_map, BTreeMap, BTreeSet, VecDeque};
use std::fmt;

/// Label listing the names of containers this one depends on, comma-separated.
pub const DEPENDS_ON_LABEL: &str = "tidewatch.depends-on";
/// Watchtower's label with the same meaning and format as [`DEPENDS_ON_LABEL`]; honoured so that
/// hosts migrating from Watchtower keep their ordering.
pub const WATCHTOWER_DEPENDS_ON_LABEL: &str = "com.centurylinklabs.watchtower.depends-on";
/// Label compose writes with a service's `depends_on`: `service:condition:restart,...`.
pub const COMPOSE_DEPENDS_ON_LABEL: &str = "com.docker.compose.depends_on";
/// Label compose writes with the project a container belongs to.
pub const COMPOSE_PROJECT_LABEL: &str = "com.docker.compose.project";
/// Label compose writes with the service a container runs.
pub const COMPOSE_SERVICE_LABEL: &str = "com.docker.compose.service";
/// Label compose writes on `compose run` containers.
pub const COMPOSE_ONEOFF_LABEL: &str = "com.docker.compose.oneoff";

/// One container as the graph sees it, built by the engine adapter from an inspect result.
///
/// Settings keep the form inspect reports them in; an unset mode is the empty string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    /// Full container id.
    pub id: String,
    /// Container name without the leading `/`. Names are unique on an engine.
    pub name: String,
    /// Container labels.
    pub labels: BTreeMap<String, String>,
    /// Legacy links as inspect reports them, e.g. `/db:/web/db`.
    pub links: Vec<String>,
    /// `HostConfig.NetworkMode`, e.g. `bridge`, `host`, `container:<id-or-name>`.
    pub network_mode: String,
    /// `HostConfig.PidMode`, e.g. `host`, `container:<id-or-name>`, or empty.
    pub pid_mode: String,
    /// `HostConfig.IpcMode`, e.g. `private`, `shareable`, `container:<id-or-name>`.
    pub ipc_mode: String,
    /// `HostConfig.VolumesFrom`: `name-or-id` with an optional `:ro` / `:rw` suffix.
    pub volumes_from: Vec<String>,
}

/// Extra edges from the config: `[[service]] name = "web" depends_on = ["db"]`.
///
/// Both `name` and the entries of `depends_on` are resolved like any other reference: container
/// name, full id, or unique id prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDependency {
    /// The dependent container.
    pub name: String,
    /// The containers it depends on.
    pub depends_on: Vec<String>,
}

/// Which kernel namespace a `container:<x>` mode shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Namespace {
    /// `network_mode: container:<x>`.
    Network,
    /// `pid_mode: container:<x>`.
    Pid,
    /// `ipc_mode: container:<x>`.
    Ipc,
}

/// Where an edge comes from; callers branch on it (namespace sharers must be recreated with their
/// target, compose `restart` dependents restarted) and it explains an order to a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EdgeKind {
    /// The `tidewatch.depends-on` label.
    TidewatchLabel,
    /// Watchtower's `com.centurylinklabs.watchtower.depends-on` label.
    WatchtowerLabel,
    /// Compose's `depends_on`; `restart` is the entry's restart flag.
    Compose {
        /// Compose restarts the dependent when it updates the dependency.
        restart: bool,
    },
    /// A legacy `--link`.
    Link,
    /// A `container:<x>` network, pid or ipc mode: the dependent lives in the dependency's
    /// namespace.
    Namespace(Namespace),
    /// `volumes_from`.
    VolumesFrom,
    /// `[[service]] depends_on` in the config.
    Config,
}

impl fmt::Display for EdgeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EdgeKind::TidewatchLabel => write!(f, "label {DEPENDS_ON_LABEL}"),
            EdgeKind::WatchtowerLabel => write!(f, "label {WATCHTOWER_DEPENDS_ON_LABEL}"),
            EdgeKind::Compose { .. } => write!(f, "compose depends_on"),
            EdgeKind::Link => write!(f, "link"),
            EdgeKind::Namespace(Namespace::Network) => write!(f, "network_mode"),
            EdgeKind::Namespace(Namespace::Pid) => write!(f, "pid_mode"),
            EdgeKind::Namespace(Namespace::Ipc) => write!(f, "ipc_mode"),
            EdgeKind::VolumesFrom => write!(f, "volumes_from"),
            EdgeKind::Config => write!(f, "config depends_on"),
        }
    }
}

/// `dependent` depends on `dependency`: the dependency is updated first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// Name of the container that depends on the other.
    pub dependent: String,
    /// Name of the container depended on.
    pub dependency: String,
    /// Where the edge comes from.
    pub kind: EdgeKind,
}

/// Something in the inputs the graph could not use. None of these stop ordering; the caller logs
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphWarning {
    /// A reference matches no container; the edge is dropped.
    UnknownReference {
        /// The container holding the reference.
        container: String,
        /// Where the reference was found.
        via: EdgeKind,
        /// The reference as written.
        reference: String,
    },
    /// An id prefix matches more than one container; the edge is dropped rather than guessed.
    AmbiguousReference {
        /// The container holding the reference.
        container: String,
        /// Where the reference was found.
        via: EdgeKind,
        /// The reference as written.
        reference: String,
        /// Names of the containers it matches.
        candidates: Vec<String>,
    },
    /// A compose `depends_on` entry names a service with no container in the project.
    UnknownComposeService {
        /// The container holding the `depends_on` label.
        container: String,
        /// Its compose project.
        project: String,
        /// The service named in `depends_on`.
        service: String,
    },
    /// A container carries compose's `depends_on` but no project label, so services cannot be
    /// mapped to containers.
    ComposeWithoutProject {
        /// The container holding the `depends_on` label.
        container: String,
    },
    /// A container names itself as a dependency; the edge is dropped because it cannot constrain
    /// any order.
    SelfReference {
        /// The container.
        container: String,
        /// Where the reference was found.
        via: EdgeKind,
    },
    /// A `[[service]]` entry in the config names no container, or an id prefix shared by
    /// several; its edges are dropped.
    UnknownConfigService {
        /// The name in the config.
        name: String,
    },
    /// Two nodes share a name; the later one is left out of the graph.
    DuplicateName {
        /// The shared name.
        name: String,
        /// Id of the node left out.
        ignored_id: String,
    },
}

impl fmt::Display for GraphWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GraphWarning::UnknownReference {
                container,
                via,
                reference,
            } => write!(
                f,
                "container {container:?}: {via} refers to {reference:?}, which matches no container"
            ),
            GraphWarning::AmbiguousReference {
                container,
                via,
                reference,
                candidates,
            } => write!(
                f,
                "container {container:?}: {via} refers to {reference:?}, which matches several \
                 containers ({}); ignored",
                candidates.join(", ")
            ),
            GraphWarning::UnknownComposeService {
                container,
                project,
                service,
            } => write!(
                f,
                "container {container:?}: compose depends_on names service {service:?}, which has \
                 no container in project {project:?}"
            ),
            GraphWarning::ComposeWithoutProject { container } => write!(
                f,
                "container {container:?}: has {COMPOSE_DEPENDS_ON_LABEL} but no \
                 {COMPOSE_PROJECT_LABEL} label; ignored"
            ),
            GraphWarning::SelfReference { container, via } => {
                write!(
                    f,
                    "container {container:?}: {via} refers to itself; ignored"
                )
            }
            GraphWarning::UnknownConfigService { name } => {
                write!(
                    f,
                    "config: [[service]] {name:?} matches no single container"
                )
            }
            GraphWarning::DuplicateName { name, ignored_id } => write!(
                f,
                "two containers are named {name:?}; ignoring the one with id {ignored_id}"
            ),
        }
    }
}

/// Some of the containers to order depend on each other in a loop, so no order satisfies them.
///
/// `path` is one concrete loop, read as "depends on": `a -> b -> a` means `a` depends on `b` and
/// `b` on `a`. `members` is every container caught in the same knot, which can be more than the
/// loop shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dependency cycle: {}{}", .path.join(" -> "), also_involving(.members, .path))]
pub struct CycleError {
    /// Every container in the cycle, sorted by name.
    pub members: Vec<String>,
    /// One loop through the cycle, starting and ending at its first member by name.
    pub path: Vec<String>,
}

fn also_involving(members: &[String], path: &[String]) -> String {
    let rest: Vec<&str> = members
        .iter()
        .filter(|m| !path.contains(m))
        .map(String::as_str)
        .collect();
    if rest.is_empty() {
        String::new()
    } else {
        format!(" (also involving {})", rest.join(", "))
    }
}

/// The outcome of ordering a selection that may contain cycles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateOrder {
    /// Containers that can be updated, dependencies first.
    pub order: Vec<String>,
    /// The cycles found, ordered by their first member.
    pub cycles: Vec<CycleError>,
    /// Containers not on a cycle but depending on one, directly or not, sorted by name. They
    /// cannot go before the cycle is resolved, so they are left untouched along with it.
    pub blocked: Vec<String>,
}

/// Dependencies between containers, resolved to names.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    /// Node names, sorted. A node's index is its position here, so comparing indices compares
    /// names; ordering relies on that for its tie-break. Every index stored below is built from
    /// this list, so indexing it cannot go out of bounds.
    names: Vec<String>,
    index: BTreeMap<String, usize>,
    /// `dependencies[i]`: what node `i` depends on.
    dependencies: Vec<BTreeSet<usize>>,
    /// `dependents[i]`: what depends on node `i`.
    dependents: Vec<BTreeSet<usize>>,
    edges: Vec<Edge>,
}

impl Graph {
    /// Builds the graph from the containers in scope and the config's extra edges.
    ///
    /// Never fails: references that match no container, or several, are dropped from the graph
    /// and returned as warnings.
    pub fn build(mut nodes: Vec<Node>, config: &[ConfigDependency]) -> (Graph, Vec<GraphWarning>) {
        let mut warnings = Vec::new();

        // Stable, so of two nodes with the same name the first given is kept.
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let mut unique: Vec<Node> = Vec::with_capacity(nodes.len());
        for node in nodes {
            match unique.last() {
                Some(last) if last.name == node.name => {
                    warnings.push(GraphWarning::DuplicateName {
                        name: node.name,
                        ignored_id: node.id,
                    })
                }
                _ => unique.push(node),
            }
        }
        let nodes = unique;

        let mut collect = EdgeCollector {
            nodes: &nodes,
            resolver: Resolver::new(&nodes),
            found: BTreeSet::new(),
            warnings,
        };
        for (from, node) in nodes.iter().enumerate() {
            collect.node(from, node);
        }
        for entry in config {
            collect.config_entry(entry);
        }
        let EdgeCollector {
            found, warnings, ..
        } = collect;

        let names: Vec<String> = nodes.into_iter().map(|n| n.name).collect();
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let mut dependencies = vec![BTreeSet::new(); names.len()];
        let mut dependents = vec![BTreeSet::new(); names.len()];
        let mut edges = Vec::with_capacity(found.len());
        for (from, to, kind) in found {
            dependencies[from].insert(to);
            dependents[to].insert(from);
            edges.push(Edge {
                dependent: names[from].clone(),
                dependency: names[to].clone(),
                kind,
            });
        }

        let graph = Graph {
            names,
            index,
            dependencies,
            dependents,
            edges,
        };
        (graph, warnings)
    }

    /// Every edge, sorted by dependent, then dependency, then kind. Two containers can be joined
    /// by several edges of different kinds.
    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    /// Orders the selected containers so that, for every edge between two of them, the
    /// dependency comes first; among containers free to go, the first by name goes first.
    ///
    /// Only edges between selected containers count: if `a` depends on `b` and `b` on `c`, but
    /// only `a` and `c` are selected, they are not ordered relative to each other. Selected names
    /// that are not in the graph are left out of the result.
    ///
    /// Fails with the first cycle by name; [`Graph::order_partial`] orders around cycles and
    /// reports all of them.
    pub fn order(&self, selected: &BTreeSet<String>) -> Result<Vec<String>, CycleError> {
        let partial = self.order_partial(selected);
        match partial.cycles.into_iter().next() {
            Some(cycle) => Err(cycle),
            None => Ok(partial.order),
        }
    }

    /// Like [`Graph::order`], but containers on a cycle, and those depending on one, are set
    /// aside instead of failing the whole selection.
    pub fn order_partial(&self, selected: &BTreeSet<String>) -> UpdateOrder {
        let chosen: BTreeSet<usize> = selected
            .iter()
            .filter_map(|name| self.index.get(name).copied())
            .collect();

        // Kahn's algorithm. `ready` is a sorted set of indices, and indices sort like names, so
        // popping its first element breaks ties by name.
        let mut waiting_on: BTreeMap<usize, usize> = chosen
            .iter()
            .map(|&i| (i, self.dependencies[i].intersection(&chosen).count()))
            .collect();
        let mut ready: BTreeSet<usize> = waiting_on
            .iter()
            .filter(|&(_, &count)| count == 0)
            .map(|(&i, _)| i)
            .collect();
        let mut order = Vec::with_capacity(chosen.len());
        while let Some(next) = ready.pop_first() {
            waiting_on.remove(&next);
            order.push(self.names[next].clone());
            for dependent in self.dependents[next].intersection(&chosen) {
                if let Some(count) = waiting_on.get_mut(dependent) {
                    *count -= 1;
                    if *count == 0 {
                        ready.insert(*dependent);
                    }
                }
            }
        }

        // Whatever still waits is on a cycle or behind one. Cycles are the strongly connected
        // components of more than one node (self-references were dropped at build time).
        let stuck: BTreeSet<usize> = waiting_on.into_keys().collect();
        let mut cycles = Vec::new();
        let mut on_cycle = BTreeSet::new();
        for component in self.components(&stuck) {
            if component.len() > 1 {
                on_cycle.extend(component.iter().copied());
                cycles.push(self.cycle_error(&component));
            }
        }
        cycles.sort_by(|a, b| a.members.cmp(&b.members));
        let blocked = stuck
            .difference(&on_cycle)
            .map(|&i| self.names[i].clone())
            .collect();

        UpdateOrder {
            order,
            cycles,
            blocked,
        }
    }

    /// Containers that run in `name`'s network, pid or ipc namespace (`container:<name>` modes),
    /// sorted by name. When `name` is recreated they must be recreated onto the new container,
    /// even if their own image is unchanged.
    ///
    /// Direct sharers only: a container sharing a sharer's namespace is found by asking again for
    /// that sharer, which is recreated too.
    pub fn namespace_dependents(&self, name: &str) -> Vec<String> {
        self.direct_dependents(name, |kind| matches!(kind, EdgeKind::Namespace(_)))
    }

    /// Compose dependents of `name` whose `depends_on` entry has `restart: true`, sorted by name:
    /// compose would restart them after updating `name`, so tidewatch does too.
    pub fn restart_dependents(&self, name: &str) -> Vec<String> {
        self.direct_dependents(name, |kind| {
            matches!(kind, EdgeKind::Compose { restart: true })
        })
    }

    /// Everything that depends on `name` through any edge, directly or not, sorted by name and
    /// without `name` itself. When an update of `name` is rolled back, these are skipped.
    pub fn dependents_transitive(&self, name: &str) -> Vec<String> {
        let Some(&start) = self.index.get(name) else {
            return Vec::new();
        };
        let mut seen = BTreeSet::new();
        let mut queue = VecDeque::from([start]);
        while let Some(node) = queue.pop_front() {
            for &dependent in &self.dependents[node] {
                if dependent != start && seen.insert(dependent) {
                    queue.push_back(dependent);
                }
            }
        }
        seen.into_iter().map(|i| self.names[i].clone()).collect()
    }

    fn direct_dependents(&self, name: &str, wanted: impl Fn(EdgeKind) -> bool) -> Vec<String> {
        let found: BTreeSet<&str> = self
            .edges
            .iter()
            .filter(|e| e.dependency == name && wanted(e.kind))
            .map(|e| e.dependent.as_str())
            .collect();
        found.into_iter().map(str::to_owned).collect()
    }

    /// Strongly connected components of the subgraph induced by `within` (Tarjan).
    fn components(&self, within: &BTreeSet<usize>) -> Vec<Vec<usize>> {
        struct Tarjan<'a> {
            graph: &'a Graph,
            within: &'a BTreeSet<usize>,
            next_index: usize,
            index: BTreeMap<usize, usize>,
            low: BTreeMap<usize, usize>,
            stack: Vec<usize>,
            on_stack: BTreeSet<usize>,
            components: Vec<Vec<usize>>,
        }

        impl Tarjan<'_> {
            // Recursion depth is bounded by the number of containers on one host. The map
            // lookups below cannot miss: `v` is indexed on entry and `w` before it is read.
            fn visit(&mut self, v: usize) {
                self.index.insert(v, self.next_index);
                self.low.insert(v, self.next_index);
                self.next_index += 1;
                self.stack.push(v);
                self.on_stack.insert(v);

                let graph = self.graph;
                for &w in graph.dependencies[v].intersection(self.within) {
                    if !self.index.contains_key(&w) {
                        self.visit(w);
                        let low = self.low[&v].min(self.low[&w]);
                        self.low.insert(v, low);
                    } else if self.on_stack.contains(&w) {
                        let low = self.low[&v].min(self.index[&w]);
                        self.low.insert(v, low);
                    }
                }

                if self.low[&v] == self.index[&v] {
                    let mut component = Vec::new();
                    while let Some(w) = self.stack.pop() {
                        self.on_stack.remove(&w);
                        component.push(w);
                        if w == v {
                            break;
                        }
                    }
                    component.sort_unstable();
                    self.components.push(component);
                }
            }
        }

        let mut tarjan = Tarjan {
            graph: self,
            within,
            next_index: 0,
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            components: Vec::new(),
        };
        for &v in within {
            if !tarjan.index.contains_key(&v) {
                tarjan.visit(v);
            }
        }
        tarjan.components
    }

    /// Describes a cycle by its members and the shortest loop from its first member, taking
    /// lower names first so the message is stable.
    fn cycle_error(&self, component: &[usize]) -> CycleError {
        let members: Vec<String> = component.iter().map(|&i| self.names[i].clone()).collect();
        let inside: BTreeSet<usize> = component.iter().copied().collect();
        let Some(&start) = inside.first() else {
            return CycleError {
                members,
                path: Vec::new(),
            };
        };

        // Breadth-first search back to `start`, remembering how each node was reached.
        let mut came_from: BTreeMap<usize, usize> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        let mut last = None;
        'search: while let Some(v) = queue.pop_front() {
            for &w in self.dependencies[v].intersection(&inside) {
                if w == start {
                    last = Some(v);
                    break 'search;
                }
                if let btree_map::Entry::Vacant(e) = came_from.entry(w) {
                    e.insert(v);
                    queue.push_back(w);
                }
            }
        }

        // Walk back from the last step before `start`, then turn the walk around.
        let mut between = Vec::new();
        let mut at = last;
        while let Some(v) = at.filter(|&v| v != start) {
            between.push(v);
            at = came_from.get(&v).copied();
        }
        between.reverse();
        let path = std::iter::once(start)
            .chain(between)
            .chain(std::iter::once(start))
            .map(|i| self.names[i].clone())
            .collect();
        CycleError { members, path }
    }
}

/// Resolves the references found on nodes and in the config into edges, collecting warnings for
/// those that resolve to nothing usable.
struct EdgeCollector<'a> {
    nodes: &'a [Node],
    resolver: Resolver<'a>,
    /// A set, so a reference repeated in one source makes one edge.
    found: BTreeSet<(usize, usize, EdgeKind)>,
    warnings: Vec<GraphWarning>,
}

impl EdgeCollector<'_> {
    fn node(&mut self, from: usize, node: &Node) {
        for (label, kind) in [
            (DEPENDS_ON_LABEL, EdgeKind::TidewatchLabel),
            (WATCHTOWER_DEPENDS_ON_LABEL, EdgeKind::WatchtowerLabel),
        ] {
            if let Some(value) = node.labels.get(label) {
                for reference in split_list(value) {
                    self.reference(from, reference, kind);
                }
            }
        }
        for link in &node.links {
            // Inspect reports `/target:/self/alias`; the part before the colon is the target.
            let target = link.split(':').next().unwrap_or(link);
            if !target.trim_start_matches('/').is_empty() {
                self.reference(from, target, EdgeKind::Link);
            }
        }
        for (mode, namespace) in [
            (&node.network_mode, Namespace::Network),
            (&node.pid_mode, Namespace::Pid),
            (&node.ipc_mode, Namespace::Ipc),
        ] {
            if let Some(target) = mode.strip_prefix("container:") {
                self.reference(from, target, EdgeKind::Namespace(namespace));
            }
        }
        for source in &node.volumes_from {
            // Container names cannot hold a colon, so anything after one is the access mode.
            let target = source.split(':').next().unwrap_or(source);
            if !target.is_empty() {
                self.reference(from, target, EdgeKind::VolumesFrom);
            }
        }
        self.compose(from, node);
    }

    fn config_entry(&mut self, entry: &ConfigDependency) {
        let from = match self.resolver.resolve(&entry.name) {
            Resolved::One(from) => from,
            Resolved::None | Resolved::Ambiguous(_) => {
                self.warnings.push(GraphWarning::UnknownConfigService {
                    name: entry.name.clone(),
                });
                return;
            }
        };
        for reference in &entry.depends_on {
            self.reference(from, reference, EdgeKind::Config);
        }
    }

    /// Adds an edge from node `from` to the container `reference` names.
    fn reference(&mut self, from: usize, reference: &str, kind: EdgeKind) {
        let container = || self.nodes[from].name.clone();
        let warning = match self.resolver.resolve(reference) {
            Resolved::One(to) if to != from => {
                self.found.insert((from, to, kind));
                return;
            }
            Resolved::One(_) => GraphWarning::SelfReference {
                container: container(),
                via: kind,
            },
            Resolved::None => GraphWarning::UnknownReference {
                container: container(),
                via: kind,
                reference: reference.to_owned(),
            },
            Resolved::Ambiguous(candidates) => GraphWarning::AmbiguousReference {
                container: container(),
                via: kind,
                reference: reference.to_owned(),
                candidates: candidates
                    .iter()
                    .map(|&i| self.nodes[i].name.clone())
                    .collect(),
            },
        };
        self.warnings.push(warning);
    }

    /// Adds the edges of `node`'s compose `depends_on` label. Each service maps to the
    /// containers running it in the same project, so equally named services in other projects
    /// are not confused.
    fn compose(&mut self, from: usize, node: &Node) {
        let Some(value) = node.labels.get(COMPOSE_DEPENDS_ON_LABEL) else {
            return;
        };
        let Some(project) = node.labels.get(COMPOSE_PROJECT_LABEL) else {
            self.warnings.push(GraphWarning::ComposeWithoutProject {
                container: node.name.clone(),
            });
            return;
        };
        for entry in split_list(value) {
            // `service[:condition[:restart]]`: older compose versions leave out the last parts.
            let mut parts = entry.split(':');
            let service = parts.next().unwrap_or(entry).trim();
            let restart = parts.nth(1).is_some_and(|r| r.trim() == "true");
            if service.is_empty() {
                continue;
            }
            let kind = EdgeKind::Compose { restart };
            let mut matched = false;
            for (to, other) in self.nodes.iter().enumerate() {
                let label = |key: &str| other.labels.get(key).map(String::as_str);
                // `compose run` containers carry the service label too, but compose does not
                // wait for them and neither should an update.
                if label(COMPOSE_PROJECT_LABEL) != Some(project.as_str())
                    || label(COMPOSE_SERVICE_LABEL) != Some(service)
                    || label(COMPOSE_ONEOFF_LABEL).is_some_and(|v| v.eq_ignore_ascii_case("true"))
                {
                    continue;
                }
                matched = true;
                if to == from {
                    self.warnings.push(GraphWarning::SelfReference {
                        container: node.name.clone(),
                        via: kind,
                    });
                } else {
                    self.found.insert((from, to, kind));
                }
            }
            if !matched {
                self.warnings.push(GraphWarning::UnknownComposeService {
                    container: node.name.clone(),
                    project: project.clone(),
                    service: service.to_owned(),
                });
            }
        }
    }
}

/// Splits a comma-separated label value, dropping blanks.
fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

enum Resolved {
    One(usize),
    None,
    Ambiguous(Vec<usize>),
}

/// Resolves a container reference the way the engine does: full id, then name, then unique id
/// prefix.
struct Resolver<'a> {
    nodes: &'a [Node],
    by_name: BTreeMap<&'a str, usize>,
}

impl<'a> Resolver<'a> {
    fn new(nodes: &'a [Node]) -> Self {
        let by_name = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.as_str(), i))
            .collect();
        Resolver { nodes, by_name }
    }

    fn resolve(&self, reference: &str) -> Resolved {
        // Names are stored without the leading slash, but links and some modes carry it.
        let reference = reference.trim().trim_start_matches('/');
        if reference.is_empty() {
            return Resolved::None;
        }
        if let Some(i) = self.nodes.iter().position(|n| n.id == reference) {
            return Resolved::One(i);
        }
        if let Some(&i) = self.by_name.get(reference) {
            return Resolved::One(i);
        }
        let matches: Vec<usize> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| !n.id.is_empty() && n.id.starts_with(reference))
            .map(|(i, _)| i)
            .collect();
        match matches.as_slice() {
            [] => Resolved::None,
            [one] => Resolved::One(*one),
            _ => Resolved::Ambiguous(matches),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A container with a made-up full id derived from its name, so tests can also refer to it by
    /// id.
    fn node(name: &str) -> Node {
        Node {
            id: format!("{}{}", hex(name), "0".repeat(64 - 2 * name.len())),
            name: name.to_owned(),
            ..Node::default()
        }
    }

    fn hex(name: &str) -> String {
        name.bytes().map(|b| format!("{b:02x}")).collect()
    }

    fn labelled(mut node: Node, key: &str, value: &str) -> Node {
        node.labels.insert(key.to_owned(), value.to_owned());
        node
    }

    fn compose(name: &str, project: &str, service: &str) -> Node {
        let node = labelled(node(name), COMPOSE_PROJECT_LABEL, project);
        labelled(node, COMPOSE_SERVICE_LABEL, service)
    }

    fn depends_on(name: &str, on: &str) -> Node {
        labelled(node(name), DEPENDS_ON_LABEL, on)
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn select(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn build(nodes: Vec<Node>) -> Graph {
        let (graph, warnings) = Graph::build(nodes, &[]);
        assert_eq!(warnings, vec![], "unexpected warnings");
        graph
    }

    fn all(graph: &Graph) -> BTreeSet<String> {
        graph.names.iter().cloned().collect()
    }

    #[test]
    fn traefik_before_apps() {
        let graph = build(vec![
            depends_on("blog", "traefik"),
            depends_on("api", "traefik"),
            node("traefik"),
        ]);

        let order = graph.order(&all(&graph)).unwrap();

        assert_eq!(order, names(&["traefik", "api", "blog"]));
    }

    #[test]
    fn ties_break_by_name() {
        let graph = build(vec![
            node("c"),
            depends_on("b", "z"),
            node("a"),
            node("z"),
            node("d"),
        ]);

        let order = graph.order(&all(&graph)).unwrap();

        // `b` waits for `z`; everything else is free and goes by name.
        assert_eq!(order, names(&["a", "c", "d", "z", "b"]));
    }

    #[test]
    fn chain_orders_dependencies_first_at_every_level() {
        let graph = build(vec![
            depends_on("app", "db"),
            depends_on("db", "storage"),
            node("storage"),
            depends_on("worker", "app,db"),
        ]);

        let order = graph.order(&all(&graph)).unwrap();

        assert_eq!(order, names(&["storage", "db", "app", "worker"]));
    }

    #[test]
    fn cycle_names_its_members_and_leaves_others_ordered() {
        let graph = build(vec![
            depends_on("a", "b"),
            depends_on("b", "a"),
            depends_on("c", "a"),
            depends_on("e", "d"),
            node("d"),
        ]);

        let partial = graph.order_partial(&all(&graph));

        assert_eq!(partial.order, names(&["d", "e"]));
        assert_eq!(
            partial.cycles,
            vec![CycleError {
                members: names(&["a", "b"]),
                path: names(&["a", "b", "a"]),
            }]
        );
        assert_eq!(partial.blocked, names(&["c"]));
    }

    #[test]
    fn order_fails_with_the_cycle_in_its_message() {
        let graph = build(vec![
            depends_on("a", "b"),
            depends_on("b", "c"),
            depends_on("c", "a"),
            node("d"),
        ]);

        let err = graph.order(&all(&graph)).unwrap_err();

        assert_eq!(err.to_string(), "dependency cycle: a -> b -> c -> a");
        assert_eq!(err.members, names(&["a", "b", "c"]));
    }

    #[test]
    fn cycle_message_mentions_members_off_the_shortest_loop() {
        let graph = build(vec![
            depends_on("a", "b"),
            depends_on("b", "a,c"),
            depends_on("c", "b"),
        ]);

        let err = graph.order(&all(&graph)).unwrap_err();

        assert_eq!(
            err.to_string(),
            "dependency cycle: a -> b -> a (also involving c)"
        );
    }

    #[test]
    fn separate_cycles_are_reported_separately() {
        let graph = build(vec![
            depends_on("a", "b"),
            depends_on("b", "a"),
            depends_on("x", "y"),
            depends_on("y", "x"),
        ]);

        let partial = graph.order_partial(&all(&graph));

        let members: Vec<_> = partial.cycles.iter().map(|c| c.members.clone()).collect();
        assert_eq!(members, vec![names(&["a", "b"]), names(&["x", "y"])]);
        assert!(partial.order.is_empty());
        assert!(partial.blocked.is_empty());
    }

    #[test]
    fn cycle_outside_the_selection_does_not_matter() {
        let graph = build(vec![depends_on("a", "b"), depends_on("b", "a"), node("c")]);

        assert_eq!(
            graph.order(&select(&["a", "c"])).unwrap(),
            names(&["a", "c"])
        );
    }

    #[test]
    fn only_edges_among_selected_containers_constrain_order() {
        // c <- b <- a, but with `b` unselected nothing ties `a` to `c`.
        let graph = build(vec![depends_on("a", "b"), depends_on("b", "c"), node("c")]);

        assert_eq!(
            graph.order(&select(&["a", "c"])).unwrap(),
            names(&["a", "c"])
        );
    }

    #[test]
    fn selected_names_not_in_the_graph_are_left_out() {
        let graph = build(vec![node("web")]);

        assert_eq!(
            graph.order(&select(&["ghost", "web"])).unwrap(),
            names(&["web"])
        );
    }

    #[test]
    fn compose_depends_on_maps_services_within_project_only() {
        let web = labelled(
            compose("shop-web-1", "shop", "web"),
            COMPOSE_DEPENDS_ON_LABEL,
            "db:service_healthy:false",
        );
        let graph = build(vec![
            web,
            compose("shop-db-1", "shop", "db"),
            compose("blog-db-1", "blog", "db"),
        ]);

        assert_eq!(
            graph.edges(),
            [Edge {
                dependent: "shop-web-1".into(),
                dependency: "shop-db-1".into(),
                kind: EdgeKind::Compose { restart: false },
            }]
        );
        assert_eq!(
            graph.order(&all(&graph)).unwrap(),
            names(&["blog-db-1", "shop-db-1", "shop-web-1"])
        );
    }

    #[test]
    fn compose_service_with_replicas_depends_on_each() {
        let web = labelled(
            compose("p-web-1", "p", "web"),
            COMPOSE_DEPENDS_ON_LABEL,
            "db",
        );
        let graph = build(vec![
            web,
            compose("p-db-2", "p", "db"),
            compose("p-db-1", "p", "db"),
        ]);

        assert_eq!(graph.dependents_transitive("p-db-1"), names(&["p-web-1"]));
        assert_eq!(graph.dependents_transitive("p-db-2"), names(&["p-web-1"]));
    }

    #[test]
    fn compose_restart_flag_picks_restart_dependents() {
        let api = labelled(
            compose("p-api-1", "p", "api"),
            COMPOSE_DEPENDS_ON_LABEL,
            "db:service_healthy:true,cache:service_started:false",
        );
        let worker = labelled(
            compose("p-worker-1", "p", "worker"),
            COMPOSE_DEPENDS_ON_LABEL,
            "db:service_started:true",
        );
        let graph = build(vec![
            api,
            worker,
            compose("p-db-1", "p", "db"),
            compose("p-cache-1", "p", "cache"),
        ]);

        assert_eq!(
            graph.restart_dependents("p-db-1"),
            names(&["p-api-1", "p-worker-1"])
        );
        assert!(graph.restart_dependents("p-cache-1").is_empty());
        assert_eq!(
            graph.order(&all(&graph)).unwrap(),
            names(&["p-cache-1", "p-db-1", "p-api-1", "p-worker-1"])
        );
    }

    #[test]
    fn older_compose_depends_on_formats_are_understood() {
        let web = labelled(
            compose("p-web-1", "p", "web"),
            COMPOSE_DEPENDS_ON_LABEL,
            "db, cache:service_started",
        );
        let graph = build(vec![
            web,
            compose("p-db-1", "p", "db"),
            compose("p-cache-1", "p", "cache"),
        ]);

        let kinds: Vec<_> = graph.edges().iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec![EdgeKind::Compose { restart: false }; 2]);
        assert_eq!(graph.dependents_transitive("p-db-1"), names(&["p-web-1"]));
        assert_eq!(
            graph.dependents_transitive("p-cache-1"),
            names(&["p-web-1"])
        );
    }

    #[test]
    fn compose_run_containers_are_not_dependencies() {
        let web = labelled(
            compose("p-web-1", "p", "web"),
            COMPOSE_DEPENDS_ON_LABEL,
            "db:service_started:true",
        );
        let one_off = labelled(
            compose("p-db-run-1a2b", "p", "db"),
            COMPOSE_ONEOFF_LABEL,
            "True",
        );
        let graph = build(vec![web, compose("p-db-1", "p", "db"), one_off]);

        assert!(graph.restart_dependents("p-db-run-1a2b").is_empty());
        assert_eq!(graph.restart_dependents("p-db-1"), names(&["p-web-1"]));
    }

    #[test]
    fn compose_service_missing_from_project_is_a_warning() {
        let web = labelled(
            compose("p-web-1", "p", "web"),
            COMPOSE_DEPENDS_ON_LABEL,
            "db:service_healthy:false",
        );
        let orphan = labelled(node("loose"), COMPOSE_DEPENDS_ON_LABEL, "db");

        let (graph, warnings) = Graph::build(vec![web, orphan, compose("q-db-1", "q", "db")], &[]);

        assert!(graph.edges().is_empty());
        assert_eq!(
            warnings,
            vec![
                GraphWarning::ComposeWithoutProject {
                    container: "loose".into()
                },
                GraphWarning::UnknownComposeService {
                    container: "p-web-1".into(),
                    project: "p".into(),
                    service: "db".into(),
                },
            ]
        );
    }

    #[test]
    fn namespace_sidecar_is_a_dependent() {
        let torrent = Node {
            network_mode: "container:vpn".into(),
            ..node("torrent")
        };
        let graph = build(vec![torrent, node("vpn"), depends_on("web", "vpn")]);

        assert_eq!(graph.namespace_dependents("vpn"), names(&["torrent"]));
        assert_eq!(
            graph.order(&all(&graph)).unwrap(),
            names(&["vpn", "torrent", "web"])
        );
    }

    #[test]
    fn sharing_several_namespaces_lists_the_sharer_once() {
        let debug = Node {
            network_mode: "container:app".into(),
            pid_mode: "container:app".into(),
            ipc_mode: "container:app".into(),
            ..node("debug")
        };
        let graph = build(vec![debug, node("app")]);

        assert_eq!(graph.namespace_dependents("app"), names(&["debug"]));
        let kinds: Vec<_> = graph.edges().iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            vec![
                EdgeKind::Namespace(Namespace::Network),
                EdgeKind::Namespace(Namespace::Pid),
                EdgeKind::Namespace(Namespace::Ipc),
            ]
        );
    }

    #[test]
    fn non_container_modes_are_not_edges() {
        let app = Node {
            network_mode: "host".into(),
            pid_mode: "host".into(),
            ipc_mode: "shareable".into(),
            ..node("app")
        };
        let other = Node {
            network_mode: "bridge".into(),
            ..node("other")
        };

        let graph = build(vec![app, other]);

        assert!(graph.edges().is_empty());
    }

    #[test]
    fn container_mode_by_id_prefix_resolves() {
        let vpn = node("vpn");
        let db = node("db");
        let sidecar = Node {
            network_mode: format!("container:{}", &vpn.id[..12]),
            pid_mode: format!("container:{}", db.id),
            ..node("sidecar")
        };
        let graph = build(vec![sidecar, vpn, db]);

        assert_eq!(graph.namespace_dependents("vpn"), names(&["sidecar"]));
        assert_eq!(graph.namespace_dependents("db"), names(&["sidecar"]));
    }

    #[test]
    fn ambiguous_id_prefix_is_a_warning() {
        let one = Node {
            id: "abc1".repeat(16),
            ..node("one")
        };
        let two = Node {
            id: "abc2".repeat(16),
            ..node("two")
        };
        let sidecar = Node {
            network_mode: "container:abc".into(),
            ..node("sidecar")
        };

        let (graph, warnings) = Graph::build(vec![one, two, sidecar], &[]);

        assert!(graph.edges().is_empty());
        assert_eq!(
            warnings,
            vec![GraphWarning::AmbiguousReference {
                container: "sidecar".into(),
                via: EdgeKind::Namespace(Namespace::Network),
                reference: "abc".into(),
                candidates: names(&["one", "two"]),
            }]
        );
    }

    #[test]
    fn name_wins_over_id_prefix() {
        // "db" is also valid hex, so it could be read as an id prefix; the engine prefers names.
        let db = node("db");
        let other = Node {
            id: format!("db{}", "0".repeat(62)),
            ..node("other")
        };
        let graph = build(vec![depends_on("app", "db"), db, other]);

        assert_eq!(graph.dependents_transitive("db"), names(&["app"]));
        assert!(graph.dependents_transitive("other").is_empty());
    }

    #[test]
    fn unknown_dependency_is_a_warning() {
        let (graph, warnings) = Graph::build(vec![depends_on("web", "db,ghost"), node("db")], &[]);

        assert_eq!(
            warnings,
            vec![GraphWarning::UnknownReference {
                container: "web".into(),
                via: EdgeKind::TidewatchLabel,
                reference: "ghost".into(),
            }]
        );
        assert_eq!(
            warnings[0].to_string(),
            r#"container "web": label tidewatch.depends-on refers to "ghost", which matches no container"#
        );
        assert_eq!(graph.order(&all(&graph)).unwrap(), names(&["db", "web"]));
    }

    #[test]
    fn depends_on_label_tolerates_spaces_slashes_and_blanks() {
        let graph = build(vec![
            depends_on("web", " /db , ,cache,"),
            node("db"),
            node("cache"),
        ]);

        assert_eq!(
            graph.order(&all(&graph)).unwrap(),
            names(&["cache", "db", "web"])
        );
    }

    #[test]
    fn watchtower_depends_on_label_is_understood() {
        let web = labelled(node("web"), WATCHTOWER_DEPENDS_ON_LABEL, "proxy");
        let graph = build(vec![web, node("proxy")]);

        assert_eq!(
            graph.edges(),
            [Edge {
                dependent: "web".into(),
                dependency: "proxy".into(),
                kind: EdgeKind::WatchtowerLabel,
            }]
        );
        assert_eq!(graph.order(&all(&graph)).unwrap(), names(&["proxy", "web"]));
    }

    #[test]
    fn legacy_link_target_is_a_dependency() {
        let web = Node {
            links: vec!["/db:/web/db".into(), "/cache:/web/redis".into()],
            ..node("web")
        };
        let graph = build(vec![web, node("db"), node("cache")]);

        assert_eq!(graph.dependents_transitive("db"), names(&["web"]));
        assert_eq!(graph.dependents_transitive("cache"), names(&["web"]));
        assert!(graph.namespace_dependents("db").is_empty());
    }

    #[test]
    fn volumes_from_with_access_mode_is_a_dependency() {
        let data = node("data");
        let app = Node {
            volumes_from: vec!["data:ro".into()],
            ..node("app")
        };
        let backup = Node {
            volumes_from: vec![data.id[..10].to_owned()],
            ..node("backup")
        };
        let graph = build(vec![app, backup, data]);

        assert_eq!(
            graph.order(&all(&graph)).unwrap(),
            names(&["data", "app", "backup"])
        );
    }

    #[test]
    fn config_depends_on_adds_edges_and_reports_unknown_services() {
        let config = [
            ConfigDependency {
                name: "web".into(),
                depends_on: vec!["db".into()],
            },
            ConfigDependency {
                name: "gone".into(),
                depends_on: vec!["db".into()],
            },
        ];

        let (graph, warnings) = Graph::build(vec![node("web"), node("db")], &config);

        assert_eq!(
            warnings,
            vec![GraphWarning::UnknownConfigService {
                name: "gone".into()
            }]
        );
        assert_eq!(
            graph.edges(),
            [Edge {
                dependent: "web".into(),
                dependency: "db".into(),
                kind: EdgeKind::Config,
            }]
        );
    }

    #[test]
    fn self_reference_is_dropped_with_a_warning() {
        let (graph, warnings) = Graph::build(vec![depends_on("web", "web")], &[]);

        assert!(graph.edges().is_empty());
        assert_eq!(
            warnings,
            vec![GraphWarning::SelfReference {
                container: "web".into(),
                via: EdgeKind::TidewatchLabel,
            }]
        );
        assert_eq!(graph.order(&all(&graph)).unwrap(), names(&["web"]));
    }

    #[test]
    fn duplicate_name_keeps_the_first_node() {
        let first = node("web");
        let second = Node {
            id: "f".repeat(64),
            ..depends_on("web", "db")
        };

        let (graph, warnings) = Graph::build(vec![first, second, node("db")], &[]);

        assert_eq!(
            warnings,
            vec![GraphWarning::DuplicateName {
                name: "web".into(),
                ignored_id: "f".repeat(64),
            }]
        );
        assert!(graph.edges().is_empty());
    }

    #[test]
    fn dependents_transitive_follows_every_kind_of_edge() {
        let sidecar = Node {
            network_mode: "container:app".into(),
            ..node("sidecar")
        };
        let graph = build(vec![
            node("db"),
            depends_on("app", "db"),
            sidecar,
            depends_on("unrelated", "other"),
            node("other"),
        ]);

        assert_eq!(
            graph.dependents_transitive("db"),
            names(&["app", "sidecar"])
        );
        assert!(graph.dependents_transitive("sidecar").is_empty());
        assert!(graph.dependents_transitive("ghost").is_empty());
    }

    #[test]
    fn dependents_transitive_through_a_cycle_leaves_out_the_start() {
        let graph = build(vec![
            depends_on("a", "b"),
            depends_on("b", "a"),
            depends_on("c", "b"),
        ]);

        assert_eq!(graph.dependents_transitive("a"), names(&["b", "c"]));
    }
}
