//! `tidewatch update` recreates a container with everything the user gave it: a container made
//! with many `docker run` settings, one made by docker-compose, and a dry run that changes
//! nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::agent_cli::{append_config, run_agent};
use crate::support::compose::Compose;
use crate::support::http;
use crate::support::objects::{
    containers_named, create, free_port, inspect_container, inspect_image, wait_healthy, Objects,
};
use crate::support::release::{build_app_declaring, push_from_elsewhere};
use crate::support::{docker, push, Agent, Outcome, Registry, TestBed};

/// A short health gate: the app's HEALTHCHECK passes within seconds, and a test that fails
/// should fail quickly.
const UPDATE_SETTINGS: &str = "[update]\nmin_running = \"2s\"\nhealth_timeout = \"60s\"";

/// How long a published port may take to answer after the update.
const PORT_TIMEOUT: Duration = Duration::from_secs(15);

/// The label in which compose v2 records the image id a container was created from; tidewatch
/// must keep it truthful.
const COMPOSE_IMAGE_LABEL: &str = "com.docker.compose.image";
/// The label the test app's image carries its version in.
const VERSION_LABEL: &str = "tidewatch.test.version";

/// `HostConfig` fields that may differ between the old and the new container, and why. Every
/// other field must be identical.
const HOST_CONFIG_MAY_DIFFER: [&str; 1] = [
    // Anonymous volumes (`-v /anon`, an image VOLUME) are re-attached by name as explicit
    // mounts; what is mounted where is compared through `.Mounts` instead.
    "Mounts",
];

/// `Config` fields a user sets with `docker run` that must be identical (env, labels and volumes
/// are compared apart).
const CONFIG_KEPT: [&str; 14] = [
    "Hostname",
    "Domainname",
    "User",
    "WorkingDir",
    "StopSignal",
    "StopTimeout",
    "ExposedPorts",
    "Entrypoint",
    "Cmd",
    "Healthcheck",
    "Tty",
    "OpenStdin",
    "AttachStdout",
    "AttachStderr",
];

#[test]
fn updating_a_container_keeps_every_docker_run_setting_its_volumes_data_and_published_port() {
    let bed = TestBed::new("preserve-settings");
    let objects = Objects::new(&bed);
    let registry = Registry::start();
    let image = registry.image("app", "stable");
    let v1_image = build_app_declaring(&bed, &image, "1", &["/declared"]);
    let v1 = push(&image);

    // A static address on each network: one given at create, one when connecting.
    let (front, front_subnet) = objects.network_with_subnet("front");
    let (back, back_subnet) = objects.network_with_subnet("back");
    let (front_ip, back_ip) = (format!("{front_subnet}.11"), format!("{back_subnet}.23"));
    let data = objects.volume("data");
    let port = free_port();
    let name = bed.name("web");
    let options = strings(&[
        "--network",
        &front,
        "--ip",
        &front_ip,
        "--network-alias",
        "web-front",
        "--network-alias",
        "www",
        "--volume",
        &format!("{data}:/named"),
        "--volume",
        "/anon",
        "--publish",
        &format!("127.0.0.1:{port}:8080"),
        "--label",
        &format!("com.docker.compose.project={}", bed.id()),
        "--label",
        "com.docker.compose.service=web",
        "--label",
        "com.docker.compose.container-number=1",
        "--label",
        "com.docker.compose.oneoff=False",
        "--label",
        &format!("{COMPOSE_IMAGE_LABEL}={v1_image}"),
        "--label",
        "com.example.team=shop",
        "--env",
        "MY_SETTING=kept",
        "--memory",
        "64m",
        "--cpu-shares",
        "512",
        "--pids-limit",
        "100",
        "--cap-add",
        "NET_ADMIN",
        "--cap-drop",
        "MKNOD",
        "--security-opt",
        "no-new-privileges",
        "--add-host",
        "db.internal:10.1.2.3",
        "--log-opt",
        "max-size=1m",
        "--log-opt",
        "max-file=2",
        "--restart",
        "unless-stopped",
        "--hostname",
        "web-host",
        "--domainname",
        "shop.internal",
        "--stop-timeout",
        "4",
        "--stop-signal",
        "SIGINT",
        "--ulimit",
        "nofile=1024:2048",
        "--tmpfs",
        "/scratch:size=1m",
        "--workdir",
        "/www",
        "--init",
    ]);
    create(&bed, "web", &options, &image);
    docker(&[
        "network", "connect", "--alias", "web-back", "--alias", "api", "--ip", &back_ip, &back,
        &name,
    ]);
    docker(&["start", &name]);
    wait_healthy(&name);
    docker(&[
        "exec",
        &name,
        "/bin/busybox",
        "sh",
        "-c",
        "echo named > /named/kept && echo anonymous > /anon/kept && \
         echo declared > /declared/kept",
    ]);
    let old = inspect_container(&name);
    for mount in array(&old["Mounts"]) {
        // Anonymous volumes outlive `docker rm --volumes` once they are mounted by name.
        objects.remove_volume_on_drop(text(&mount["Name"]));
    }

    let v2 = push_from_elsewhere(&image, || {
        build_app_declaring(&bed, &image, "2", &["/declared"])
    });
    let agent = agent(&bed, &registry);
    let update = run_agent(&agent, &["update", &name]);

    assert_eq!(update.code, 0, "update failed: {update:#?}");
    let new = inspect_container(&name);
    let v2_image = text(&inspect_image(&format!("{}@{v2}", registry.repo("app")))["Id"]).to_owned();
    assert_ne!(new["Id"], old["Id"], "the container was not recreated");
    assert_eq!(
        text(&new["Image"]),
        v2_image,
        "the new container does not run v2"
    );
    assert_eq!(
        containers_named(&name),
        [name.as_str()],
        "exactly one container is left: no `-tidewatch-old-` copy"
    );

    let differences = user_setting_differences(&old, &new);
    assert!(
        differences.is_empty(),
        "the new container differs from the old one in what the user set:\n{}",
        differences.join("\n")
    );

    for (network, ip) in [(&front, &front_ip), (&back, &back_ip)] {
        assert_eq!(
            new["NetworkSettings"]["Networks"][network]["IPAddress"], *ip,
            "the static address on {network}"
        );
    }
    let env = array(&new["Config"]["Env"]);
    assert!(
        env.contains(&Value::from("MY_SETTING=kept")),
        "the user's env is kept: {env:?}"
    );
    assert!(
        env.contains(&Value::from("APP_VERSION=2")) && !env.contains(&Value::from("APP_VERSION=1")),
        "the new image's ENV applies, the old image's is gone: {env:?}"
    );
    let labels = &new["Config"]["Labels"];
    assert_eq!(labels[VERSION_LABEL], "2", "the new image's LABEL applies");
    assert_eq!(
        labels[COMPOSE_IMAGE_LABEL], v2_image,
        "compose's image label names the image the container now runs"
    );

    for (path, content) in [
        ("/named/kept", "named"),
        ("/anon/kept", "anonymous"),
        ("/declared/kept", "declared"),
    ] {
        assert_eq!(
            docker(&["exec", &name, "/bin/busybox", "cat", path]),
            content,
            "data written to {path} before the update"
        );
    }
    assert_serves(port, "tidewatch test app version 2");

    let history = history(&agent, &name);
    assert_eq!(history.len(), 1, "one history entry: {history:#?}");
    let entry = &history[0];
    assert_eq!(
        (
            &entry["container"],
            &entry["outcome"],
            &entry["from_digest"],
            &entry["to_digest"]
        ),
        (
            &Value::from(name.as_str()),
            &Value::from("updated"),
            &Value::from(v1.as_str()),
            &Value::from(v2.as_str())
        ),
        "{entry:#}"
    );
}

#[test]
fn a_compose_service_updated_by_tidewatch_is_left_alone_by_the_next_docker_compose_up() {
    let bed = TestBed::new("preserve-compose");
    let registry = Registry::start();
    let image = registry.image("app", "stable");
    let v1_image = bed.build_app(&image, "1");
    push(&image);
    let compose = Compose::new(
        &bed,
        &format!(
            r#"version: "2.4"
services:
  web:
    image: {image}
    # tini forwards SIGTERM to httpd, so stopping takes no 10 s grace period
    init: true
    environment:
      MY_SETTING: kept
    volumes:
      - data:/data
    labels:{{labels}}
volumes:
  data: {{}}
"#
        ),
    );
    compose.up();
    let created = compose.container_id("web");
    wait_healthy(&created);
    let hash_on_v1 = compose.config_hash("web");
    assert_eq!(
        inspect_container(&created)["Config"]["Labels"]["com.docker.compose.config-hash"],
        hash_on_v1,
        "precondition: compose's hash is the label of the container it created"
    );
    let old = inspect_container(&created);

    let v2 = push_from_elsewhere(&image, || bed.build_app(&image, "2"));
    let update = run_agent(&agent(&bed, &registry), &["update"]);

    assert_eq!(update.code, 0, "update failed: {update:#?}");
    let updated = compose.container_id("web");
    assert_ne!(updated, created, "tidewatch did not recreate the service");
    let new = inspect_container(&updated);
    let v2_image = text(&inspect_image(&format!("{}@{v2}", registry.repo("app")))["Id"]).to_owned();
    assert_eq!(text(&new["Image"]), v2_image);
    let compose_labels = |inspect: &Value| -> BTreeMap<String, Value> {
        object(&inspect["Config"]["Labels"])
            .iter()
            .filter(|(key, _)| key.starts_with("com.docker.compose."))
            // The hash names the image the tag points to: it is refreshed, checked below. So
            // does Compose v2's image label, which names the new image, also checked below.
            .filter(|(key, _)| {
                !["com.docker.compose.config-hash", "com.docker.compose.image"]
                    .contains(&key.as_str())
            })
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    };
    assert_eq!(
        compose_labels(&new),
        compose_labels(&old),
        "compose's labels are kept"
    );
    assert_eq!(
        new["Name"], old["Name"],
        "the container keeps compose's name"
    );
    if let Some(label) = new["Config"]["Labels"]["com.docker.compose.image"].as_str() {
        assert_eq!(
            label, v2_image,
            "Compose v2's image label names the new image"
        );
    }

    let hash_on_v2 = compose.config_hash("web");
    let label = new["Config"]["Labels"]["com.docker.compose.config-hash"].clone();
    assert_eq!(
        label, hash_on_v2,
        "the config-hash label is compose's hash with the tag on v2"
    );
    let printed = compose.up();
    let after = compose.container_id("web");

    assert!(
        after == updated && !printed.contains("Recreat"),
        "`docker-compose up -d` recreated the container tidewatch had updated \
         ({updated} -> {after}).\n\
         compose's config hash of `web`: {hash_on_v1} while the tag named v1 (image {v1_image}), \
         {hash_on_v2} once tidewatch pointed the tag at v2 (image {v2_image}); \
         the container's com.docker.compose.config-hash label: {label}.\n\
         compose printed:\n{printed}"
    );
    assert_eq!(
        text(&inspect_container(&after)["Image"]),
        v2_image,
        "the service runs v2"
    );
}

#[test]
fn lane2_compose_v2_depends_on_orders_the_update_and_compose_then_finds_both_services_current() {
    assert!(
        Compose::is_v2(),
        "needs Compose v2: run it with `scripts/lane current exec` (scripts/test does)"
    );
    let bed = TestBed::new("preserve-compose-v2");
    let registry = Registry::start();
    let (db, web) = (
        registry.image("db", "stable"),
        registry.image("web", "stable"),
    );
    bed.build_app(&db, "db1");
    push(&db);
    bed.build_app(&web, "web1");
    push(&web);
    let compose = Compose::new(
        &bed,
        &format!(
            r#"services:
  db:
    image: {db}
    init: true
    labels:{{labels}}
  web:
    image: {web}
    init: true
    depends_on:
      db:
        condition: service_healthy
    labels:{{labels}}
"#
        ),
    );
    compose.up();
    let (db_before, web_before) = (compose.container_id("db"), compose.container_id("web"));
    wait_healthy(&web_before);
    let depends_on =
        &inspect_container(&web_before)["Config"]["Labels"]["com.docker.compose.depends_on"];
    assert_eq!(
        depends_on.as_str(),
        Some("db:service_healthy:false"),
        "precondition: Compose v2 records depends_on"
    );

    // Names sort web before db: only depends_on puts db first.
    push_from_elsewhere(&web, || bed.build_app(&web, "web2"));
    push_from_elsewhere(&db, || bed.build_app(&db, "db2"));
    let update = run_agent(&agent(&bed, &registry), &["update", "--json"]);

    assert_eq!(update.code, 0, "update failed: {update:#?}");
    let report: Value = serde_json::from_str(&update.stdout)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {update:#?}"));
    let order: Vec<String> = array(&report["results"])
        .iter()
        .filter(|result| result["outcome"] == "updated")
        .map(|result| text(&result["container"]).to_owned())
        .collect();
    assert_eq!(
        order,
        vec![bed.name("db-1"), bed.name("web-1")],
        "db, which web depends on, goes first: {report:#}"
    );
    let (db_after, web_after) = (compose.container_id("db"), compose.container_id("web"));
    assert!(
        db_after != db_before && web_after != web_before,
        "{report:#}"
    );
    wait_healthy(&web_after);

    let printed = compose.up();

    assert_eq!(
        (compose.container_id("db"), compose.container_id("web")),
        (db_after, web_after.clone()),
        "`docker compose up -d` recreated what tidewatch had updated:\n{printed}"
    );
    assert!(!printed.contains("Recreat"), "{printed}");
    assert_eq!(
        compose.state("web"),
        ("running".to_owned(), "healthy".to_owned()),
        "`docker compose ps` of web"
    );
}

#[test]
fn a_dry_run_lists_the_step_and_leaves_the_container_on_v1_and_the_state_untouched() {
    let bed = TestBed::new("preserve-dry-run");
    let registry = Registry::start();
    let image = registry.image("app", "stable");
    let v1_image = bed.build_app(&image, "1");
    let v1 = push(&image);
    let container = bed.run("web", &image, &[]);
    let name = bed.name("web");
    let v2 = push_from_elsewhere(&image, || bed.build_app(&image, "2"));
    let agent = agent(&bed, &registry);

    let dry_run = run_agent(&agent, &["update", "--dry-run", &name]);
    let json = run_agent(&agent, &["update", "--dry-run", "--json", &name]);

    assert_eq!(dry_run.code, 0, "{dry_run:#?}");
    assert!(
        dry_run.stdout.lines().any(|line| line.contains(&name)),
        "the plan lists {name}: {dry_run:#?}"
    );
    assert_eq!(json.code, 0, "{json:#?}");
    let plan: Value = serde_json::from_str(&json.stdout).unwrap_or_else(|error| {
        panic!("`update --dry-run --json` is not JSON ({error}): {json:#?}")
    });
    // `update --json` wraps the plan in {"recovered", "containers", "plan", "results"}; a dry
    // run prints the plan itself.
    let plan = if plan.get("plan").is_some() {
        &plan["plan"]
    } else {
        &plan
    };
    let steps = array(&plan["steps"]);
    assert_eq!(steps.len(), 1, "one step: {plan:#}");
    assert_eq!(
        (
            &steps[0]["container"],
            &steps[0]["from_digest"],
            &steps[0]["to_digest"]
        ),
        (
            &Value::from(name.as_str()),
            &Value::from(v1.as_str()),
            &Value::from(v2.as_str())
        ),
        "{plan:#}"
    );

    assert_eq!(
        bed.container_id("web"),
        container,
        "the container was replaced"
    );
    assert_eq!(
        bed.image_id("web"),
        v1_image,
        "the container's image changed"
    );
    assert!(bed.is_running("web"), "the container was stopped");
    assert_eq!(
        docker(&["image", "inspect", "--format", "{{.Id}}", &image]),
        v1_image,
        "the tag was moved"
    );
    let pulled = docker(&[
        "image",
        "ls",
        "--quiet",
        "--digests",
        "--filter",
        &format!("reference={}", registry.repo("app")),
        "--format",
        "{{.Digest}}",
    ]);
    assert!(!pulled.contains(&v2), "v2 was pulled: {pulled}");
    assert_eq!(
        history(&agent, &name),
        Vec::<Value>::new(),
        "a dry run writes no history"
    );
}

/// Every way in which `new` does not have the settings the user gave `old`, in words; the
/// image's own ENV and LABEL (`APP_VERSION`, the version label, compose's image id label) are
/// expected to change and left out.
fn user_setting_differences(old: &Value, new: &Value) -> Vec<String> {
    let mut differences = Vec::new();
    for (field, old_value) in &object(&old["HostConfig"]) {
        let new_value = &new["HostConfig"][field];
        if !HOST_CONFIG_MAY_DIFFER.contains(&field.as_str()) && new_value != old_value {
            differences.push(format!("HostConfig.{field}: {old_value} -> {new_value}"));
        }
    }
    for field in CONFIG_KEPT {
        let (old_value, new_value) = (&old["Config"][field], &new["Config"][field]);
        if new_value != old_value {
            differences.push(format!("Config.{field}: {old_value} -> {new_value}"));
        }
    }
    for (network, old_endpoint) in &object(&old["NetworkSettings"]["Networks"]) {
        let new_endpoint = &new["NetworkSettings"]["Networks"][network];
        let old_aliases = aliases(old_endpoint, old);
        let new_aliases = aliases(new_endpoint, new);
        if new_aliases != old_aliases {
            differences.push(format!(
                "aliases on {network}: {old_aliases:?} -> {new_aliases:?}"
            ));
        }
        let (old_ipam, new_ipam) = (&old_endpoint["IPAMConfig"], &new_endpoint["IPAMConfig"]);
        if new_ipam != old_ipam {
            differences.push(format!("IPAMConfig on {network}: {old_ipam} -> {new_ipam}"));
        }
    }
    let networks = |inspect: &Value| -> BTreeSet<String> {
        object(&inspect["NetworkSettings"]["Networks"])
            .keys()
            .cloned()
            .collect()
    };
    if networks(new) != networks(old) {
        differences.push(format!(
            "networks: {:?} -> {:?}",
            networks(old),
            networks(new)
        ));
    }
    if mounts(new) != mounts(old) {
        differences.push(format!("mounts: {:#?} -> {:#?}", mounts(old), mounts(new)));
    }
    // `-v /anon` is in `Config.Volumes`; the new container mounts that volume by name instead.
    let volume_paths = |inspect: &Value| -> BTreeSet<String> {
        let declared = object(&inspect["Config"]["Volumes"]).into_iter();
        let mounted_by_name = array(&inspect["HostConfig"]["Mounts"])
            .into_iter()
            .filter(|mount| mount["Type"] == "volume")
            .map(|mount| text(&mount["Target"]).to_owned());
        declared
            .map(|(path, _)| path)
            .chain(mounted_by_name)
            .collect()
    };
    if volume_paths(new) != volume_paths(old) {
        differences.push(format!(
            "volume paths (Config.Volumes and volume mounts): {:?} -> {:?}",
            volume_paths(old),
            volume_paths(new)
        ));
    }
    let user_env = |inspect: &Value| -> BTreeSet<String> {
        array(&inspect["Config"]["Env"])
            .iter()
            .map(|entry| text(entry).to_owned())
            .filter(|entry| !entry.starts_with("APP_VERSION="))
            .collect()
    };
    if user_env(new) != user_env(old) {
        differences.push(format!(
            "env besides the image's APP_VERSION: {:?} -> {:?}",
            user_env(old),
            user_env(new)
        ));
    }
    let user_labels = |inspect: &Value| -> BTreeMap<String, Value> {
        object(&inspect["Config"]["Labels"])
            .iter()
            .filter(|(key, _)| ![VERSION_LABEL, COMPOSE_IMAGE_LABEL].contains(&key.as_str()))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    };
    if user_labels(new) != user_labels(old) {
        differences.push(format!(
            "labels besides the image's version: {:?} -> {:?}",
            user_labels(old),
            user_labels(new)
        ));
    }
    differences
}

/// The bed's agent for `registry`, with a short health gate.
fn agent(bed: &TestBed, registry: &Registry) -> Agent {
    let agent = bed.agent(&[registry.host()]);
    append_config(&agent, UPDATE_SETTINGS);
    agent
}

/// `tidewatch history NAME --json`.
fn history(agent: &Agent, name: &str) -> Vec<Value> {
    let outcome = run_agent(agent, &["history", name, "--json"]);
    assert_eq!(outcome.code, 0, "{outcome:#?}");
    parse_list(&outcome)
}

fn parse_list(outcome: &Outcome) -> Vec<Value> {
    serde_json::from_str(&outcome.stdout)
        .unwrap_or_else(|error| panic!("not a JSON list ({error}): {outcome:#?}"))
}

/// Waits until `127.0.0.1:port` serves a page containing `page`.
fn assert_serves(port: u16, page: &str) {
    let host = format!("127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        let response = http::request(&host, "GET", "/", &[], Duration::from_secs(2));
        match &response {
            Ok(response) if response.status == 200 && response.body.contains(page) => return,
            _ if started.elapsed() > PORT_TIMEOUT => {
                panic!("{host} does not serve {page:?} after {PORT_TIMEOUT:?}: {response:?}")
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// An endpoint's aliases, without the short id of the container the engine adds itself.
fn aliases(endpoint: &Value, container: &Value) -> BTreeSet<String> {
    let short_id = &text(&container["Id"])[..12];
    array(&endpoint["Aliases"])
        .iter()
        .map(|alias| text(alias).to_owned())
        .filter(|alias| alias != short_id)
        .collect()
}

/// What is mounted where: (type, volume name or bind source, destination, read-write, driver).
fn mounts(container: &Value) -> BTreeSet<(String, String, String, bool, String)> {
    array(&container["Mounts"])
        .iter()
        .map(|mount| {
            let source = if mount["Type"] == "volume" {
                &mount["Name"]
            } else {
                &mount["Source"]
            };
            (
                text(&mount["Type"]).to_owned(),
                text(source).to_owned(),
                text(&mount["Destination"]).to_owned(),
                mount["RW"].as_bool().unwrap_or_default(),
                mount["Driver"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
}

/// The items of a JSON list; `null` (how inspect shows an empty list) is none.
fn array(value: &Value) -> Vec<Value> {
    match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items.clone(),
        other => panic!("not a list: {other}"),
    }
}

fn object(value: &Value) -> serde_json::Map<String, Value> {
    match value {
        Value::Null => serde_json::Map::new(),
        Value::Object(map) => map.clone(),
        other => panic!("not an object: {other}"),
    }
}
