//! Engine objects a test sets up beside its containers (user networks, named volumes, containers
//! made with any `docker create` options), the guard that removes them, and reading them back
//! with `docker inspect`.

use std::cell::RefCell;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::bed::{TestBed, SCOPE_LABEL, TEST_LABEL};
use super::docker::{docker, try_docker};

/// How long a container may take to report `healthy`.
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(30);

/// Networks and volumes made for one bed, removed on drop.
///
/// A network cannot be removed while a container is on it, and a volume while one mounts it, so
/// the drop first removes the bed's containers itself, whatever the order in which the guard and
/// the bed are dropped.
pub struct Objects {
    bed_id: String,
    networks: RefCell<Vec<String>>,
    volumes: RefCell<Vec<String>>,
}

impl Objects {
    /// A guard for the objects of `bed`.
    pub fn new(bed: &TestBed) -> Objects {
        Objects {
            bed_id: bed.id().to_owned(),
            networks: RefCell::default(),
            volumes: RefCell::default(),
        }
    }

    /// Creates the user network `<bed id>-<name>` and returns its name.
    pub fn network(&self, name: &str) -> String {
        let network = format!("{}-{name}", self.bed_id);
        docker(&["network", "create", &self.label(), &network]);
        self.networks.borrow_mut().push(network.clone());
        network
    }

    /// Creates the user network `<bed id>-<name>` on a /24 subnet of its own, so containers can
    /// be given static addresses on it. Returns its name and the subnet's first three octets
    /// ("10.X.Y"). Parallel tests pick subnets at random; one already taken is retried.
    pub fn network_with_subnet(&self, name: &str) -> (String, String) {
        let network = format!("{}-{name}", self.bed_id);
        let mut failures = Vec::new();
        for attempt in 0..10u32 {
            let seed = random_u32(&network, attempt);
            // 10.200.0.0 to 10.249.255.0: clear of docker's default pools (172.17/16 to
            // 172.31/16 and 192.168/16).
            let prefix = format!("10.{}.{}", 200 + seed % 50, (seed >> 8) % 256);
            let subnet = format!("--subnet={prefix}.0/24");
            match try_docker(&["network", "create", &self.label(), &subnet, &network]) {
                Ok(_) => {
                    self.networks.borrow_mut().push(network.clone());
                    return (network, prefix);
                }
                Err(error) => failures.push(error),
            }
        }
        panic!(
            "cannot create network {network} on a free subnet:\n{}",
            failures.join("\n")
        );
    }

    /// Creates the named volume `<bed id>-<name>` and returns its name.
    pub fn volume(&self, name: &str) -> String {
        let volume = format!("{}-{name}", self.bed_id);
        docker(&["volume", "create", &self.label(), &volume]);
        self.remove_volume_on_drop(&volume);
        volume
    }

    /// Removes the volume `name` on drop too: an anonymous volume that tidewatch re-attached by
    /// name is no longer removed with its container by `docker rm --volumes`.
    pub fn remove_volume_on_drop(&self, name: &str) {
        let mut volumes = self.volumes.borrow_mut();
        if !volumes.iter().any(|volume| volume == name) {
            volumes.push(name.to_owned());
        }
    }

    fn label(&self) -> String {
        format!("--label={TEST_LABEL}={}", self.bed_id)
    }
}

impl Drop for Objects {
    fn drop(&mut self) {
        let containers = format!("label={TEST_LABEL}={}", self.bed_id);
        let report = |result: Result<String, String>| {
            if let Err(error) = result {
                eprintln!("cleanup of {}: {error}", self.bed_id);
            }
        };
        match try_docker(&["ps", "--all", "--quiet", "--filter", &containers]) {
            Ok(ids) if !ids.is_empty() => {
                let mut args = vec!["rm", "--force", "--volumes"];
                args.extend(ids.split_whitespace());
                report(try_docker(&args));
            }
            Ok(_) => {}
            Err(error) => eprintln!("cleanup of {}: {error}", self.bed_id),
        }
        for network in self.networks.get_mut().iter() {
            report(try_docker(&["network", "rm", network]));
        }
        let volumes = self.volumes.get_mut();
        if !volumes.is_empty() {
            let mut args = vec!["volume", "rm", "--force"];
            args.extend(volumes.iter().map(String::as_str));
            report(try_docker(&args));
        }
    }
}

/// `docker create`s the bed's container `name` from `image` with `options`, labelled with the bed
/// id and scope like [`TestBed::run`]; returns its id. It is not started, so that networks can be
/// connected first: the 20.10 CLI takes one `--network` at create.
pub fn create(bed: &TestBed, name: &str, options: &[String], image: &str) -> String {
    let name = bed.name(name);
    let mut args: Vec<String> = vec!["create".into(), "--name".into(), name];
    args.push(format!("--label={TEST_LABEL}={}", bed.id()));
    args.push(format!("--label={SCOPE_LABEL}={}", bed.scope()));
    args.extend(options.iter().cloned());
    args.push(image.to_owned());
    docker(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// `docker container inspect` of `container` (name or id), as JSON.
pub fn inspect_container(container: &str) -> Value {
    inspect_one(&["container", "inspect", container])
}

/// `docker image inspect` of `image` (reference or id), as JSON.
pub fn inspect_image(image: &str) -> Value {
    inspect_one(&["image", "inspect", image])
}

fn inspect_one(args: &[&str]) -> Value {
    let json = docker(args);
    let mut list: Vec<Value> = serde_json::from_str(&json).unwrap_or_else(|error| {
        panic!(
            "`docker {}` printed no JSON list ({error}): {json}",
            args.join(" ")
        )
    });
    assert_eq!(list.len(), 1, "`docker {}`: {json}", args.join(" "));
    list.remove(0)
}

/// The names of every container, running or not, whose name contains `fragment`, sorted.
pub fn containers_named(fragment: &str) -> Vec<String> {
    let filter = format!("name={fragment}");
    let names = docker(&["ps", "--all", "--filter", &filter, "--format", "{{.Names}}"]);
    let mut names: Vec<String> = names.lines().map(str::to_owned).collect();
    names.sort();
    names
}

/// Waits until `container`'s HEALTHCHECK says `healthy`; panics with its state after
/// [`HEALTHY_TIMEOUT`].
pub fn wait_healthy(container: &str) {
    let started = Instant::now();
    loop {
        let state = inspect_container(container)["State"].clone();
        if state["Health"]["Status"] == "healthy" {
            return;
        }
        if started.elapsed() > HEALTHY_TIMEOUT {
            panic!("{container} not healthy after {HEALTHY_TIMEOUT:?}: {state:#}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A loopback port nothing listens on right now, to publish a container port on.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap_or_else(|error| panic!("no free loopback port: {error}"))
}

/// A number that differs between attempts, beds and test processes.
fn random_u32(seed: &str, attempt: u32) -> u32 {
    use std::collections::hash_map::RandomState;
    use std::hash::BuildHasher;
    RandomState::new().hash_one((seed, attempt, std::process::id())) as u32
}
