//! The multi-node Swarm of `scripts/fleet`: three engines in namespaces of their own, joined as
//! three managers, reached on their sockets. The fleet lane runs the tests with the variables
//! `scripts/fleet exec` sets; `DOCKER_HOST` is node 1, so the bed's helpers (builds, pushes,
//! `docker service`) act there.
//!
//! Tests that change the fleet's shape (stop a node, demote one) hold [`Fleet::exclusive`];
//! the others hold [`Fleet::shared`], so they run side by side but never during such a change.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::agent::RegistryEntry;
use super::bed::{TestBed, SCOPE_LABEL, TEST_LABEL};
use super::cycle::Updater;
use super::docker::stdout_of;
use super::registry::{Registry, RegistryOptions};
use super::swarm::with_swarm_settings;

/// Held shared by the tests that leave the fleet as it is, exclusively by those that change it.
static SHAPE: RwLock<()> = RwLock::new(());

/// The fleet's nodes, as `scripts/fleet env` describes them.
pub struct Fleet {
    /// `[docker] host` of each node, node 1 first.
    hosts: Vec<String>,
    /// The bridge's address on this machine, where the nodes reach the tests' registries.
    address: String,
    /// `scripts/fleet`, to stop and start a node.
    script: PathBuf,
}

impl Fleet {
    /// The fleet the lane started; panics saying how to start one when the variables are not
    /// there (the fleet tests never skip).
    pub fn require() -> Fleet {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!(
                    "{name} is not set: the fleet tests run in the fleet lane \
                     (`scripts/fleet up`, then `scripts/fleet exec -- <test binary> fleet::`)"
                )
            })
        };
        let hosts: Vec<String> = var("TIDEWATCH_TEST_FLEET_NODES")
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        assert_eq!(hosts.len(), 3, "the fleet has three nodes: {hosts:?}");
        Fleet {
            hosts,
            address: var("TIDEWATCH_TEST_FLEET_ADDRESS"),
            script: PathBuf::from(var("TIDEWATCH_TEST_FLEET_SCRIPT")),
        }
    }

    /// For a test that leaves the fleet's shape alone.
    pub fn shared(&self) -> RwLockReadGuard<'static, ()> {
        SHAPE
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// For a test that stops or demotes a node. Waits for the fleet to be whole first (a
    /// failed test may have left a node down).
    pub fn exclusive(&self) -> RwLockWriteGuard<'static, ()> {
        let guard = SHAPE
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.script(&["up"]);
        guard
    }

    /// The node numbers, 1 to 3.
    pub fn nodes(&self) -> impl Iterator<Item = usize> {
        1..=self.hosts.len()
    }

    /// Node `node`'s engine address, for `[docker] host`.
    pub fn host(&self, node: usize) -> &str {
        &self.hosts[node - 1]
    }

    /// `docker ARGS` against node `node`; panics with its stderr.
    pub fn docker(&self, node: usize, args: &[&str]) -> String {
        self.try_docker(node, args)
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// `docker ARGS` against node `node`.
    pub fn try_docker(&self, node: usize, args: &[&str]) -> Result<String, String> {
        self.try_docker_with(node, None, args)
    }

    /// `docker ARGS` against node `node` with the client configuration (credentials) in
    /// `config_dir`; panics with its stderr.
    pub fn docker_with(&self, node: usize, config_dir: &Path, args: &[&str]) -> String {
        self.try_docker_with(node, Some(config_dir), args)
            .unwrap_or_else(|error| panic!("{error}"))
    }

    fn try_docker_with(
        &self,
        node: usize,
        config_dir: Option<&Path>,
        args: &[&str],
    ) -> Result<String, String> {
        let mut command = Command::new("docker");
        if let Some(dir) = config_dir {
            command.env("DOCKER_CONFIG", dir);
        }
        command.env("DOCKER_HOST", self.host(node)).args(args);
        let shown = format!("docker {} (node {node})", args.join(" "));
        stdout_of(command, &shown, "run scripts/test-env")
    }

    /// A registry on the bridge's address with basic auth for `users` (anonymous without).
    pub fn registry(&self, users: &[(&str, &str)]) -> Registry {
        let options = RegistryOptions::default().listen_on(&self.address);
        if users.is_empty() {
            options.start()
        } else {
            options.htpasswd(users).start()
        }
    }

    /// The node Swarm says is the leader, asked of the first node that answers.
    pub fn leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            for node in self.nodes() {
                let listed = self.try_docker(
                    node,
                    &["node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}"],
                );
                let leader = listed.ok().and_then(|lines| {
                    lines
                        .lines()
                        .find(|line| line.ends_with(" Leader"))
                        .and_then(|line| line.strip_prefix("fleet-"))
                        .and_then(|rest| rest.split(' ').next()?.parse().ok())
                });
                if let Some(leader) = leader {
                    return leader;
                }
            }
            assert!(Instant::now() < deadline, "the fleet has no leader");
            thread::sleep(Duration::from_millis(300));
        }
    }

    /// Stops node `node`'s engine (its task containers go with it).
    pub fn stop(&self, node: usize) {
        self.script(&["stop", &node.to_string()]);
    }

    /// Starts node `node`'s engine again; it rejoins the Swarm by itself.
    pub fn start(&self, node: usize) {
        self.script(&["start", &node.to_string()]);
    }

    /// Demotes node `node` to a worker until the guard drops (then promoted back). Needs
    /// [`Fleet::exclusive`]: two managers left means no quorum to lose.
    pub fn demote(&self, node: usize) -> Demoted<'_> {
        let other = self.nodes().find(|n| *n != node).unwrap_or(1);
        self.docker(other, &["node", "demote", &format!("fleet-{node}")]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self
            .docker(node, &["info", "--format", "{{.Swarm.ControlAvailable}}"])
            .trim()
            != "false"
        {
            assert!(Instant::now() < deadline, "node {node} is still a manager");
            thread::sleep(Duration::from_millis(200));
        }
        Demoted { fleet: self, node }
    }

    /// Makes sure node `node` is not the leader: a leader demoted hands leadership to another
    /// manager, and is promoted back as a follower. Needs [`Fleet::exclusive`].
    pub fn lead_elsewhere(&self, node: usize) {
        if self.leader() != node {
            return;
        }
        drop(self.demote(node));
        // `up` waits until all three are reachable managers again.
        self.script(&["up"]);
        assert_ne!(self.leader(), node, "node {node} leads again");
    }

    fn script(&self, args: &[&str]) {
        let mut command = Command::new(&self.script);
        command.args(args);
        let shown = format!("{} {}", self.script.display(), args.join(" "));
        stdout_of(command, &shown, "scripts/fleet is part of the checkout")
            .unwrap_or_else(|error| panic!("{error}"));
    }

    /// The images the running task containers of `service` (full name) run on each node,
    /// as their containers say (`repo:tag@sha256:...`): the node's own view.
    pub fn task_images(&self, service: &str) -> Vec<(usize, Vec<String>)> {
        let filter = format!("label=com.docker.swarm.service.name={service}");
        self.nodes()
            .map(|node| {
                // `docker ps` shows the image without its digest; inspect keeps it.
                let ids = self
                    .try_docker(node, &["ps", "--quiet", "--filter", &filter])
                    .unwrap_or_default();
                let mut images: Vec<String> = ids
                    .split_whitespace()
                    .filter_map(|id| {
                        self.try_docker(
                            node,
                            &["container", "inspect", "--format", "{{.Config.Image}}", id],
                        )
                        .ok()
                    })
                    .collect();
                images.sort();
                images.dedup();
                (node, images)
            })
            .collect()
    }

    /// Waits until every node in `nodes` runs `service`'s tasks on `digest` alone; returns when
    /// each got there, measured from `since`. Panics showing what they run after `timeout`.
    pub fn wait_on_digest(
        &self,
        service: &str,
        digest: &str,
        nodes: &[usize],
        since: Instant,
        timeout: Duration,
    ) -> Vec<(usize, Duration)> {
        let mut reached: Vec<(usize, Duration)> = Vec::new();
        loop {
            for (node, images) in self.task_images(service) {
                let on = !images.is_empty() && images.iter().all(|i| i.ends_with(digest));
                if nodes.contains(&node) && on && !reached.iter().any(|(n, _)| *n == node) {
                    reached.push((node, since.elapsed()));
                }
            }
            if reached.len() == nodes.len() {
                return reached;
            }
            if since.elapsed() > timeout {
                panic!(
                    "{service} is not on {digest} on nodes {nodes:?} after {timeout:?}: {:?}",
                    self.task_images(service)
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A node demoted to a worker for a test; promoted back on drop.
pub struct Demoted<'a> {
    fleet: &'a Fleet,
    node: usize,
}

impl Drop for Demoted<'_> {
    fn drop(&mut self) {
        let other = self.fleet.nodes().find(|n| *n != self.node).unwrap_or(1);
        let name = format!("fleet-{}", self.node);
        if let Err(error) = self.fleet.try_docker(other, &["node", "promote", &name]) {
            eprintln!("promoting {name} back: {error}");
        }
    }
}

/// Containers a test runs on fleet nodes, removed on drop (the bed removes only node 1's).
pub struct NodeContainers<'a> {
    fleet: &'a Fleet,
    bed: &'a TestBed,
}

impl<'a> NodeContainers<'a> {
    /// The bed's containers on the fleet's nodes.
    pub fn new(fleet: &'a Fleet, bed: &'a TestBed) -> NodeContainers<'a> {
        NodeContainers { fleet, bed }
    }

    /// `docker run --detach` of the bed's container `name` from `image` on `node`, labelled
    /// with the bed's id and scope; returns its id.
    pub fn run(&self, node: usize, name: &str, image: &str) -> String {
        let test = format!("{TEST_LABEL}={}", self.bed.id());
        let scope = format!("{SCOPE_LABEL}={}", self.bed.scope());
        self.fleet.docker(
            node,
            &[
                "run",
                "--detach",
                "--name",
                &self.bed.name(name),
                "--label",
                &test,
                "--label",
                &scope,
                image,
            ],
        )
    }

    /// The image reference and image id of the bed's container `name` on `node`.
    pub fn image_of(&self, node: usize, name: &str) -> String {
        self.fleet.docker(
            node,
            &[
                "container",
                "inspect",
                "--format",
                "{{.Config.Image}} {{.Image}}",
                &self.bed.name(name),
            ],
        )
    }
}

impl Drop for NodeContainers<'_> {
    fn drop(&mut self) {
        let filter = format!("label={TEST_LABEL}={}", self.bed.id());
        for node in self.fleet.nodes() {
            let Ok(ids) = self
                .fleet
                .try_docker(node, &["ps", "--all", "--quiet", "--filter", &filter])
            else {
                continue;
            };
            for id in ids.split_whitespace() {
                let _ = self.fleet.try_docker(node, &["rm", "--force", id]);
            }
        }
    }
}

impl TestBed {
    /// An updater for the agent of node `node`, with its config and state in a directory of
    /// its own (`node-N`), `[swarm]` set for tests and the `run` interval of tests.
    pub fn fleet_agent(&self, fleet: &Fleet, node: usize, registries: &[RegistryEntry]) -> Updater {
        self.fleet_agent_at(&format!("node-{node}"), fleet.host(node), registries)
    }

    /// Like [`TestBed::fleet_agent`], for an agent (in directory `name`) that reaches its
    /// node's engine at `host`, e.g. through an [`super::EngineProxy`].
    pub fn fleet_agent_at(&self, name: &str, host: &str, registries: &[RegistryEntry]) -> Updater {
        let dir: PathBuf = self.dir().join(name);
        let agent = self.agent_in(&dir, host, registries);
        with_swarm_settings(agent.config());
        self.updater_of(&agent)
    }
}

/// The directory of a fleet agent's files, for its logs.
pub fn agent_dir(updater: &Updater) -> &Path {
    updater
        .config()
        .parent()
        .unwrap_or_else(|| panic!("{} has no directory", updater.config().display()))
}
