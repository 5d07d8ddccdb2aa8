//! Fleets (issue #20): agents on several Swarm managers act as one, against the three-node
//! Swarm of `scripts/fleet` (three managers; a test that needs a worker demotes one). Run in
//! the fleet lane: `scripts/fleet exec -- <test binary> fleet::`.

use std::time::{Duration, Instant};

use crate::support::{
    agent_dir, tidewatch, DockerConfig, Fleet, NodeContainers, RegistryEntry, TestBed,
    CYCLE_FINISHED,
};

const USER: &str = "fleet";
const PASSWORD: &str = "tw-fleet-Hv83kqZ5";
/// How long a roll-out of a few tiny tasks on three nodes may take on a loaded machine.
const CONVERGE: Duration = Duration::from_secs(90);

/// The history outcomes (`outcome to_digest`) of the bed's `name` in an agent's store.
fn history(updater: &crate::support::Updater, name: &str) -> Vec<String> {
    let (run, rows) = updater.history(name);
    assert_eq!(run.code, 0, "{run:#?}");
    rows.iter()
        .map(|row| format!("{} {}", row.outcome, row.to_digest))
        .collect()
}

#[test]
fn a_global_service_of_a_private_image_rolls_on_all_three_nodes_by_the_leaders_agent_alone() {
    let fleet = Fleet::require();
    let _shape = fleet.shared();
    let bed = TestBed::new("fleet-global");
    let services = bed.services();
    let registry = fleet.registry(&[(USER, PASSWORD)]);
    let mut pusher = DockerConfig::new(&bed.dir().join("pusher"));
    pusher.auth(&registry.host(), USER, PASSWORD);
    let image = registry.image("web", "stable");
    bed.build_app(&image, "web-1");
    let v1 = pusher.push(&image);
    // Only tidewatch's config holds the password: the nodes get v1 here, and v2 only through
    // the credentials tidewatch forwards with the update.
    for node in [2, 3] {
        fleet.docker_with(
            node,
            pusher.dir(),
            &["pull", "--quiet", &format!("{image}@{v1}")],
        );
    }
    let pinned = format!("{image}@{v1}");
    services.create_global("web", 3, &pinned, &[], &["--no-resolve-image"]);
    bed.build_app(&image, "web-2");
    let v2 = pusher.push(&image);
    let password = bed.dir().join("registry-password");
    std::fs::write(&password, PASSWORD).unwrap_or_else(|error| panic!("{error}"));
    let entry = RegistryEntry::new(&registry.host())
        .insecure(true)
        .username(USER)
        .password_file(&password);
    let leader = fleet.leader();
    let follower = fleet.nodes().find(|n| *n != leader).unwrap_or(1);
    let leaders_agent = bed.fleet_agent(&fleet, leader, std::slice::from_ref(&entry));
    let followers_agent = bed.fleet_agent(&fleet, follower, &[entry]);

    // A follower's agent checks the service and says who leads, but leaves it alone.
    let check = tidewatch(["-c", &followers_agent.config().to_string_lossy(), "check"]);
    assert!(
        check
            .stdout
            .contains(&format!("the swarm leader is fleet-{leader}")),
        "{check:#?}"
    );
    let skipped = followers_agent.update(&[]);
    skipped.assert_exit(0);
    let result = skipped.result("web");
    assert_eq!(result.outcome, "skipped", "{skipped:#?}");
    assert!(
        result
            .detail
            .contains(&format!("swarm leader (fleet-{leader})")),
        "{skipped:#?}"
    );
    assert!(
        services.image("web").ends_with(&v1),
        "the follower moved it"
    );
    assert!(history(&followers_agent, "web").is_empty());

    let started = Instant::now();
    let update = leaders_agent.update(&[]);
    let took = started.elapsed();

    update.assert_exit(0);
    assert_eq!(update.result("web").outcome, "updated", "{update:#?}");
    assert!(services.image("web").ends_with(&v2));
    let reached = fleet.wait_on_digest(&bed.name("web"), &v2, &[1, 2, 3], started, CONVERGE);
    assert_eq!(
        history(&leaders_agent, "web"),
        [format!("updated {v2}")],
        "one history entry on the leader's agent"
    );
    assert!(!update.outcome.stderr.contains(PASSWORD), "password logged");
    println!(
        "fleet: global service on 3 nodes, monitor 1s: `tidewatch update` on the leader \
         {:.1}s; each node's tasks on the new digest after {}",
        took.as_secs_f64(),
        reached
            .iter()
            .map(|(node, at)| format!("node {node} {:.1}s", at.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

#[test]
fn three_agents_on_three_managers_give_each_push_one_updated_and_no_failed() {
    let fleet = Fleet::require();
    let _shape = fleet.shared();
    let bed = TestBed::new("fleet-three");
    let services = bed.services();
    let registry = fleet.registry(&[]);
    let image = registry.image("api", "stable");
    bed.build_app(&image, "api-1");
    let v1 = crate::support::push(&image);
    services.create_global("api", 3, &image, &[], &[]);
    let entry = RegistryEntry::new(&registry.host()).insecure(true);
    let agents: Vec<_> = fleet
        .nodes()
        .map(|node| bed.fleet_agent(&fleet, node, std::slice::from_ref(&entry)))
        .collect();
    let mut daemons: Vec<_> = agents.iter().map(|a| a.spawn_run()).collect();
    let mut pushed = Vec::new();
    for version in ["api-2", "api-3"] {
        bed.build_app(&image, version);
        let digest = crate::support::push(&image);
        let since = Instant::now();
        fleet.wait_on_digest(&bed.name("api"), &digest, &[1, 2, 3], since, CONVERGE);
        println!(
            "fleet: 3 agents running, push -> every node on it in {:.1}s",
            since.elapsed().as_secs_f64()
        );
        pushed.push(digest);
    }
    // Two more cycles of every agent after the last roll-out: a follower that acted late, or
    // a leader that saw a conflict, would have written history by then.
    for daemon in &mut daemons {
        let cycles = daemon.stderr().matches(CYCLE_FINISHED).count();
        daemon.wait_for_log(CYCLE_FINISHED, cycles + 2, Duration::from_secs(60));
    }
    for daemon in &mut daemons {
        daemon.terminate(Duration::from_secs(30));
    }

    let mut all: Vec<String> = agents.iter().flat_map(|a| history(a, "api")).collect();
    all.sort();
    let mut wanted: Vec<String> = pushed.iter().map(|d| format!("updated {d}")).collect();
    wanted.sort();
    assert_eq!(
        all, wanted,
        "each push once, as updated, across the three histories (v1 {v1})"
    );
    let counts: Vec<usize> = agents.iter().map(|a| history(a, "api").len()).collect();
    println!("fleet: history entries per agent (nodes 1-3) after two pushes: {counts:?}");
    for (agent, daemon) in agents.iter().zip(&daemons) {
        assert!(
            !daemon.stderr().contains("outcome=failed"),
            "{}: {}",
            agent_dir(agent).display(),
            daemon.stderr()
        );
    }
}

#[test]
fn a_workers_agent_updates_its_own_container_and_leaves_the_service_tasks_alone() {
    let fleet = Fleet::require();
    let _shape = fleet.exclusive();
    let bed = TestBed::new("fleet-worker");
    let services = bed.services();
    let containers = NodeContainers::new(&fleet, &bed);
    let registry = fleet.registry(&[]);
    let image = registry.image("app", "stable");
    bed.build_app(&image, "app-1");
    let v1 = crate::support::push(&image);
    // Node 1 stays a manager (the bed's own helpers talk to it); the worker is the other
    // follower, so the leader keeps its place.
    let leader = fleet.leader();
    let worker = [3, 2].into_iter().find(|n| *n != leader).unwrap_or(3);
    let _demoted = fleet.demote(worker);
    services.create_global("svc", 3, &image, &[], &[]);
    fleet.docker(worker, &["pull", "--quiet", &image]);
    containers.run(worker, "app", &image);
    let task_before = fleet.task_images(&bed.name("svc"));
    let filter = format!("label=com.docker.swarm.service.name={}", bed.name("svc"));
    let task_ids = fleet.docker(
        worker,
        &["ps", "--quiet", "--no-trunc", "--filter", &filter],
    );
    bed.build_app(&image, "app-2");
    let v2 = crate::support::push(&image);
    let agent = bed.fleet_agent(
        &fleet,
        worker,
        &[RegistryEntry::new(&registry.host()).insecure(true)],
    );

    let check = tidewatch(["-c", &agent.config().to_string_lossy(), "check"]);
    let update = agent.update(&[]);

    assert!(check.stdout.contains("swarm worker"), "{check:#?}");
    update.assert_exit(0);
    let result = update.result("app");
    assert_eq!(result.outcome, "updated", "{update:#?}");
    assert_eq!(result.from_digest.as_deref(), Some(v1.as_str()));
    assert_eq!(result.to_digest.as_deref(), Some(v2.as_str()));
    assert!(
        !update.outcome.stdout.contains(&bed.name("svc")),
        "the worker's agent planned the service: {update:#?}"
    );
    let (reference, _) = containers
        .image_of(worker, "app")
        .split_once(' ')
        .map(|(r, id)| (r.to_owned(), id.to_owned()))
        .unwrap_or_default();
    assert_eq!(reference, image);
    assert_eq!(
        fleet.docker(
            worker,
            &["ps", "--quiet", "--no-trunc", "--filter", &filter]
        ),
        task_ids,
        "the service's task container on the worker was replaced"
    );
    assert_eq!(fleet.task_images(&bed.name("svc")), task_before);
    assert!(services.image("svc").ends_with(&v1));
}

#[test]
fn when_the_leaders_node_stops_a_surviving_managers_agent_rolls_out_the_next_push() {
    let fleet = Fleet::require();
    let _shape = fleet.exclusive();
    // Node 1 runs the bed's builds and `docker service` commands, so it must survive.
    fleet.lead_elsewhere(1);
    let leader = fleet.leader();
    let bed = TestBed::new("fleet-leader");
    let services = bed.services();
    let registry = fleet.registry(&[]);
    let image = registry.image("db", "stable");
    bed.build_app(&image, "db-1");
    crate::support::push(&image);
    let elsewhere = format!("node.hostname!=fleet-{leader}");
    // A task on each surviving node, none on the node that is lost.
    services.create_global("db", 2, &image, &[], &["--constraint", &elsewhere]);
    let entry = RegistryEntry::new(&registry.host()).insecure(true);
    let agents: Vec<_> = fleet
        .nodes()
        .map(|node| bed.fleet_agent(&fleet, node, std::slice::from_ref(&entry)))
        .collect();
    let mut daemons: Vec<_> = agents.iter().map(|a| a.spawn_run()).collect();
    for daemon in &mut daemons {
        daemon.wait_for_log(CYCLE_FINISHED, 1, Duration::from_secs(60));
    }

    let lost = Instant::now();
    fleet.stop(leader);
    let stopped = lost.elapsed();
    bed.build_app(&image, "db-2");
    let v2 = crate::support::push(&image);
    let pushed = Instant::now();
    let survivors: Vec<usize> = fleet.nodes().filter(|n| *n != leader).collect();
    fleet.wait_on_digest(&bed.name("db"), &v2, &survivors, pushed, CONVERGE);
    let new_leader = fleet.leader();
    println!(
        "fleet: leader's node {leader} stopped ({:.1}s to stop its engine); the next push on \
         every surviving node {:.1}s after the push, {:.1}s after the loss began; new leader \
         node {new_leader}; run interval {}s",
        stopped.as_secs_f64(),
        pushed.elapsed().as_secs_f64(),
        lost.elapsed().as_secs_f64(),
        crate::support::RUN_INTERVAL.as_secs()
    );
    assert_ne!(new_leader, leader);
    fleet.start(leader);
    // Two cycles of every agent after the node came back, its own included.
    for daemon in &mut daemons {
        let cycles = daemon.stderr().matches(CYCLE_FINISHED).count();
        daemon.wait_for_log(CYCLE_FINISHED, cycles + 2, Duration::from_secs(90));
    }
    for daemon in &mut daemons {
        daemon.terminate(Duration::from_secs(30));
    }
    let histories: Vec<Vec<String>> = agents.iter().map(|a| history(a, "db")).collect();
    let all: Vec<&String> = histories.iter().flatten().collect();
    assert_eq!(all, [&format!("updated {v2}")], "{histories:?}");
    assert!(
        histories[leader - 1].is_empty(),
        "the stopped node's agent recorded it: {histories:?}"
    );
}
