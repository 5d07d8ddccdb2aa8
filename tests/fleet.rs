//! Fleets (issue #20): agents on several Swarm managers act as one, against the three-node
//! Swarm of `scripts/fleet` (three managers; a test that needs a worker demotes one). Run in
//! the fleet lane: `scripts/fleet exec -- <test binary> fleet::`.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{
    agent_dir, tidewatch, BeforeRequest, Broken, DockerConfig, EngineProxy, EngineRequest, Fleet,
    NodeContainers, Registry, RegistryEntry, Services, TestBed, Update, Updater, CYCLE_FINISHED,
};

const USER: &str = "fleet";
const PASSWORD: &str = "tw-fleet-Hv83kqZ5";
/// How long a roll-out of a few tiny tasks on three nodes may take on a loaded machine.
const CONVERGE: Duration = Duration::from_secs(90);

/// The history outcomes (`outcome to_digest`) of the bed's `name` in an agent's store.
fn history(updater: &Updater, name: &str) -> Vec<String> {
    let (run, rows) = updater.history(name);
    assert_eq!(run.code, 0, "{run:#?}");
    rows.iter()
        .map(|row| format!("{} {}", row.outcome, row.to_digest))
        .collect()
}

/// An agent for each of the fleet's nodes, node 1 first, reading `registry` anonymously.
fn every_nodes_agent(fleet: &Fleet, bed: &TestBed, registry: &Registry) -> Vec<Updater> {
    let entry = RegistryEntry::new(&registry.host()).insecure(true);
    fleet
        .nodes()
        .map(|node| bed.fleet_agent(fleet, node, std::slice::from_ref(&entry)))
        .collect()
}

/// A global service `name` on the three nodes, of the test app built and pushed to `registry`
/// as `<name>:stable` (`<name>-1`); returns the image and its digest.
fn global_service(
    bed: &TestBed,
    services: &Services,
    registry: &Registry,
    name: &str,
) -> (String, String) {
    let image = registry.image(name, "stable");
    bed.build_app(&image, &format!("{name}-1"));
    let v1 = crate::support::push(&image);
    services.create_global(name, 3, &image, &[], &[]);
    (image, v1)
}

/// `node 1 14.7s, node 2 16.3s, ...` of what [`Fleet::wait_on_digest`] returns.
fn per_node(reached: &[(usize, Duration)]) -> String {
    reached
        .iter()
        .map(|(node, at)| format!("node {node} {:.1}s", at.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks what a follower's `update`, run beside the leader's, did with the bed's service
/// `name` while the leader moved it to `new`: it is `skipped` when the follower read the spec
/// first, or it is no step at all, its row `up_to_date` on `new`, when the leader's spec
/// update came first. Either way the follower changed nothing.
fn assert_follower_left_it(update: &Update, name: &str, new: &str, node: usize) {
    if update.report.results.is_empty() {
        let row = update.row(name);
        assert_eq!(row["status"], "up_to_date", "node {node}: {update:#?}");
        assert_eq!(row["current_digest"], new, "node {node}: {update:#?}");
    } else {
        assert_eq!(
            update.result(name).outcome,
            "skipped",
            "node {node}: {update:#?}"
        );
    }
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
        per_node(&reached)
    );
}

#[test]
fn an_unhealthy_digest_of_a_global_service_is_rolled_back_on_every_node() {
    let fleet = Fleet::require();
    let _shape = fleet.shared();
    let bed = TestBed::new("fleet-unhealthy");
    let services = bed.services();
    let registry = fleet.registry(&[]);
    let (image, v1) = global_service(&bed, &services, &registry, "api");
    bed.build_broken(&image, Broken::FailingHealthcheck, "api-2");
    let v2 = crate::support::push(&image);
    let agents = every_nodes_agent(&fleet, &bed, &registry);
    let leader = fleet.leader();

    // Every manager's agent runs a cycle at once, as three running agents would.
    let started = Instant::now();
    let updates: Vec<_> = std::thread::scope(|scope| {
        let running: Vec<_> = agents
            .iter()
            .map(|agent| scope.spawn(|| (agent.update(&[]), started.elapsed())))
            .collect();
        running
            .into_iter()
            .map(|run| run.join().unwrap_or_else(|_| panic!("an update panicked")))
            .collect()
    });

    for (node, (update, _)) in fleet.nodes().zip(&updates) {
        if node == leader {
            assert_eq!(update.result("api").outcome, "rolled_back", "{update:#?}");
        } else {
            assert_follower_left_it(update, "api", &v2, node);
        }
    }
    let (leaders, took) = &updates[leader - 1];
    leaders.assert_exit(1);
    assert_eq!(
        leaders.result("api").to_digest.as_deref(),
        Some(v2.as_str())
    );
    assert!(
        services.image("api").ends_with(&v1),
        "swarm did not put the previous spec back: {}",
        services.image("api")
    );
    let back = fleet.wait_on_digest(&bed.name("api"), &v1, &[1, 2, 3], started, CONVERGE);
    let histories: Vec<Vec<String>> = agents.iter().map(|a| history(a, "api")).collect();
    let all: Vec<&String> = histories.iter().flatten().collect();
    assert_eq!(all, [&format!("rolled_back {v2}")], "{histories:?}");
    println!(
        "fleet: unhealthy digest on a global service of 3 nodes: the leader's (node {leader}) \
         `tidewatch update` reported rolled_back after {:.1}s; every node's tasks on the old \
         digest after {}",
        took.as_secs_f64(),
        per_node(&back)
    );
}

#[test]
fn three_agents_on_three_managers_give_each_push_one_updated_and_no_failed() {
    let fleet = Fleet::require();
    let _shape = fleet.shared();
    let bed = TestBed::new("fleet-three");
    let services = bed.services();
    let registry = fleet.registry(&[]);
    let (image, v1) = global_service(&bed, &services, &registry, "api");
    let agents = every_nodes_agent(&fleet, &bed, &registry);
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
    let agents = every_nodes_agent(&fleet, &bed, &registry);
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

/// `[swarm] delay` of the node-loss test: the roll-out has a window to lose a node in.
const NODE_DELAY: &str = "delay = \"5s\"\n";
/// `[swarm] timeout` of the node-loss test's cycle that loses the node: waiting on a node
/// that is gone ends soon.
const SHORT_TIMEOUT: &str = "timeout = \"20s\"\n";

#[test]
fn a_node_lost_in_the_middle_of_a_roll_out_is_reported_within_the_timeout_and_converges_later() {
    let fleet = Fleet::require();
    let _shape = fleet.exclusive();
    let leader = fleet.leader();
    // Node 1 runs the bed's builds and `docker service` commands, and the leader's agent
    // must keep its engine: the node lost is the third one.
    let lost = fleet.nodes().find(|n| *n != 1 && *n != leader).unwrap_or(3);
    let bed = TestBed::new("fleet-lost");
    let services = bed.services();
    let registry = fleet.registry(&[]);
    let (image, v1) = global_service(&bed, &services, &registry, "web");
    bed.build_app(&image, "web-2");
    let v2 = crate::support::push(&image);
    let agents = every_nodes_agent(&fleet, &bed, &registry);
    let agent = &agents[leader - 1];
    let config = std::fs::read_to_string(agent.config()).unwrap_or_else(|e| panic!("{e}"));
    let default_timeout = "timeout = \"90s\"\n";
    assert!(config.contains(default_timeout), "{config}");
    std::fs::write(
        agent.config(),
        config.replacen(default_timeout, &format!("{SHORT_TIMEOUT}{NODE_DELAY}"), 1),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    // The roll-out runs in the leader's agent; node `lost` stops once Swarm says it is
    // updating, and what Swarm says is noted as it changes.
    let started = Instant::now();
    let mut said: Vec<(f64, String)> = Vec::new();
    let mut stopped_at = None;
    let (update, took) = std::thread::scope(|scope| {
        let running = scope.spawn(|| (agent.update(&[]), started.elapsed()));
        while !running.is_finished() {
            let status = services.update_status("web");
            let now = format!("{} {}", status["State"], status["Message"]);
            if said.last().map(|(_, s)| s) != Some(&now) {
                said.push((started.elapsed().as_secs_f64(), now));
            }
            if stopped_at.is_none() && status["State"] == "updating" {
                let on = fleet.task_images(&bed.name("web"));
                let at = started.elapsed();
                fleet.stop(lost);
                stopped_at = Some((at, started.elapsed() - at, on));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        running
            .join()
            .unwrap_or_else(|_| panic!("the update panicked"))
    });
    let (stopped_at, stopping, on_at_loss) =
        stopped_at.unwrap_or_else(|| panic!("swarm never said updating: {said:?} {update:#?}"));

    let result = update.result("web");
    assert!(
        ["updated", "rolled_back", "failed"].contains(&result.outcome.as_str()),
        "{update:#?}"
    );
    assert!(!result.detail.is_empty(), "{update:#?}");
    let reported = format!("{} ({})", result.outcome, result.detail);
    // The next cycles wait as long as a whole roll-out with the delay takes.
    let whole = format!("{default_timeout}{NODE_DELAY}");
    std::fs::write(agent.config(), config.replacen(default_timeout, &whole, 1))
        .unwrap_or_else(|e| panic!("{e}"));

    let back = Instant::now();
    fleet.start(lost);
    // Swarm finishes the roll-out its own way once the node is back: completed, or rolled
    // back when the lost node's task counted as a failure.
    let settled = loop {
        let status = services.update_status("web");
        let now = format!("{} {}", status["State"], status["Message"]);
        if said.last().map(|(_, s)| s) != Some(&now) {
            said.push((started.elapsed().as_secs_f64(), now));
        }
        let state = status["State"].as_str().unwrap_or_default().to_owned();
        if ["completed", "rollback_completed"].contains(&state.as_str()) {
            break state;
        }
        assert!(
            back.elapsed() < CONVERGE,
            "swarm did not finish the roll-out after the node returned: {said:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let settled_after = back.elapsed();

    // The right thing for the next cycle: nothing when Swarm completed, or when it rolled
    // back and tidewatch saw it (the digest is quarantined); the update again when tidewatch
    // gave up waiting before Swarm rolled back.
    let again = settled == "rollback_completed" && result.outcome != "rolled_back";
    let next = agent.update(&[]);
    let acted: Vec<&str> = next
        .report
        .results
        .iter()
        .filter(|r| r.container == bed.name("web") && r.outcome != "skipped")
        .map(|r| r.outcome.as_str())
        .collect();
    let wanted: &[&str] = if again { &["updated"] } else { &[] };
    assert_eq!(
        acted, wanted,
        "swarm {settled}; first {reported}; {next:#?}"
    );
    let on = if settled == "completed" || again {
        &v2
    } else {
        &v1
    };
    let converged = fleet.wait_on_digest(&bed.name("web"), on, &[1, 2, 3], back, CONVERGE);
    // The other agents' next cycles leave it alone.
    for (node, agent) in fleet.nodes().zip(&agents).filter(|(n, _)| *n != leader) {
        let next = agent.update(&[]);
        let moved = next
            .report
            .results
            .iter()
            .filter(|r| r.container == bed.name("web") && r.outcome != "skipped")
            .count();
        assert_eq!(moved, 0, "node {node}'s next cycle acted: {next:#?}");
    }
    let histories: Vec<Vec<String>> = agents.iter().map(|a| history(a, "web")).collect();
    let all: Vec<&String> = histories.iter().flatten().collect();
    assert_eq!(
        all.len(),
        1 + usize::from(again),
        "the first cycle's entry, and the retry's: {histories:?}"
    );
    assert!(
        all.iter().filter(|h| h.starts_with("updated")).count() <= 1,
        "{histories:?}"
    );
    assert!(all.iter().all(|h| h.ends_with(&v2)), "{histories:?}");
    assert!(services.image("web").ends_with(on.as_str()));
    println!(
        "fleet: node {lost} lost {:.1}s into a roll-out ({:.1}s to stop its engine; tasks \
         then: {on_at_loss:?}); the leader's `tidewatch update` ([swarm] timeout 20s, delay \
         5s) returned after {:.1}s: {reported}; after the node returned swarm said {settled} \
         within {:.1}s, the next cycle {}, every node on {} within {:.1}s; swarm said \
         {said:?}; histories {histories:?}",
        stopped_at.as_secs_f64(),
        stopping.as_secs_f64(),
        took.as_secs_f64(),
        settled_after.as_secs_f64(),
        if again { "updated again" } else { "left it" },
        if on == &v2 {
            "the new digest"
        } else {
            "the old digest"
        },
        converged
            .iter()
            .map(|(_, at)| at.as_secs_f64())
            .fold(0.0, f64::max),
    );
}

/// Whether `request` is a service update (`POST /services/{id}/update`).
fn is_service_update(request: &EngineRequest) -> bool {
    request.method == "POST"
        && request.path.starts_with("/services/")
        && request.path.ends_with("/update")
}

#[test]
fn a_service_update_refused_as_out_of_sequence_is_skipped_not_failed() {
    let fleet = Fleet::require();
    let _shape = fleet.shared();
    let leader = fleet.leader();
    let person = fleet.nodes().find(|n| *n != leader).unwrap_or(1);
    let bed = TestBed::new("fleet-race");
    let services = bed.services();
    let registry = fleet.registry(&[]);
    let (image, v1) = global_service(&bed, &services, &registry, "web");
    // A person's `docker service update` on another manager, run between tidewatch's read of
    // the service and its update (the proxy holds the update back until it is done): the
    // engine then refuses tidewatch's update, whose version is no longer the service's.
    let between: Arc<Mutex<Option<Vec<String>>>> = Arc::default();
    let person_said: Arc<Mutex<Vec<String>>> = Arc::default();
    let hook: BeforeRequest = {
        let (between, person_said) = (Arc::clone(&between), Arc::clone(&person_said));
        let host = fleet.host(person).to_owned();
        Arc::new(move |request: &EngineRequest| {
            let args = is_service_update(request)
                .then(|| between.lock().ok()?.take())
                .flatten();
            if let Some(args) = args {
                let said = Command::new("docker")
                    .env("DOCKER_HOST", &host)
                    .args(&args)
                    .output()
                    .map(|o| format!("{}: {}", o.status, String::from_utf8_lossy(&o.stderr)))
                    .unwrap_or_else(|error| error.to_string());
                if let Ok(mut all) = person_said.lock() {
                    all.push(said);
                }
            }
        })
    };
    let proxy = EngineProxy::start_to(fleet.host(leader), hook);
    let agent = bed.fleet_agent_at(
        "leader-via-proxy",
        &proxy.host(),
        &[RegistryEntry::new(&registry.host()).insecure(true)],
    );
    let person_updates = |args: &[&str]| {
        let mut all = vec!["service", "update", "--detach"];
        all.extend_from_slice(args);
        let name = bed.name("web");
        all.push(&name);
        let owned = all.into_iter().map(str::to_owned).collect();
        *between.lock().unwrap_or_else(|p| p.into_inner()) = Some(owned);
    };
    let refusals = |mark: usize| -> Vec<(u16, String)> {
        proxy
            .requests_since(mark)
            .iter()
            .filter(|r| is_service_update(r) && r.status != Some(200))
            .map(|r| {
                let message = r.answer_json()["message"].as_str().unwrap_or("").to_owned();
                (r.status.unwrap_or(0), message)
            })
            .collect()
    };

    // The person changes something else: tidewatch's update is refused, the service is not
    // on the new digest, so the next cycle compares again.
    bed.build_app(&image, "web-2");
    let v2 = crate::support::push(&image);
    person_updates(&["--label-add", "touched-by=a-person"]);
    let mark = proxy.mark();
    let raced = agent.update(&[]);
    let refused = refusals(mark);

    raced.assert_exit(0);
    let result = raced.result("web");
    assert_eq!(result.outcome, "skipped", "{raced:#?}");
    assert!(result.detail.contains("next cycle"), "{raced:#?}");
    assert_eq!(refused.len(), 1, "{refused:?}; the person: {person_said:?}");
    let (status, message) = &refused[0];
    let version = fleet.docker(leader, &["version", "--format", "{{.Server.Version}}"]);
    assert!(
        tidewatch::plan::actor::is_version_conflict(*status, message),
        "engine {version} refused the stale update with {status} {message:?}, which is not \
         taken for a version conflict"
    );
    assert!(services.image("web").ends_with(&v1));
    assert!(history(&agent, "web").is_empty());
    let next = agent.update(&[]);
    assert_eq!(next.result("web").outcome, "updated", "{next:#?}");

    // The person rolls the service to the very digest tidewatch wanted: done by another actor.
    bed.build_app(&image, "web-3");
    let v3 = crate::support::push(&image);
    let pinned = format!("{image}@{v3}");
    person_updates(&["--no-resolve-image", "--image", &pinned]);
    let mark = proxy.mark();
    let done = agent.update(&[]);
    let refused_again = refusals(mark);

    done.assert_exit(0);
    let result = done.result("web");
    assert_eq!(result.outcome, "skipped", "{done:#?}");
    assert_eq!(
        result.detail,
        tidewatch::plan::actor::DONE_ELSEWHERE,
        "{done:#?}"
    );
    assert_eq!(
        refused_again.len(),
        1,
        "{refused_again:?}; the person: {person_said:?}"
    );
    assert!(!done.outcome.stderr.contains("outcome=failed"), "{done:#?}");
    assert_eq!(history(&agent, "web"), [format!("updated {v2}")]);
    println!(
        "fleet: a service update with a stale version (a person's `docker service update` on \
         node {person} in between) refused by engine {version} with {status} {message:?}; \
         reported skipped: {:?}, then {:?}",
        raced.result("web").detail,
        result.detail
    );
}
