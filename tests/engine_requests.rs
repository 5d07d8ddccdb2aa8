//! What tidewatch asks of the engine, counted by a proxy in front of it
//! ([`EngineProxy`](crate::support::EngineProxy)): detection lists the scope's containers (one
//! list per scope label, filtered by the engine) and inspects each distinct image once; a
//! container is inspected only when its list entry shows an image id where its reference
//! belongs, or when a cycle has something to update and needs the full settings of the
//! containers in its scope.
//!
//! The expected requests are worked out from the engine's own answers, which the proxy keeps:
//! they come to 2 lists, K image inspects and no container inspect. The engine is shared with
//! other tests, whose containers are in other scopes: the lists must not show them.

use std::collections::{BTreeMap, BTreeSet};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::daemon_api::{call, notify_push, parse_status, start_daemon, status_row};
use crate::support::settings;
use crate::support::{
    docker, percent_decode, push, EngineProxy, EngineRequest, Registry, Status, TestBed,
    QUICK_STOP, SCOPE_LABEL, TEST_LABEL,
};

/// How long the proxy may take to see a finished client's connections close.
const SETTLE: Duration = Duration::from_secs(10);
/// How long the webhook's cycle may take, pull and health gate included.
const CYCLE_BOUND: Duration = Duration::from_secs(90);

/// The labels that mark the container of a Swarm task, which the inventory leaves out.
const SWARM_TASK_LABELS: [&str; 2] = ["com.docker.swarm.service.id", "com.docker.swarm.task.id"];

#[test]
fn a_check_of_six_containers_on_three_images_lists_the_scope_inspects_each_image_once_and_no_container(
) {
    let bed = TestBed::new("requests-check");
    let registry = Registry::start();
    let repos = ["alpha", "beta", "gamma"];
    bed.run_pushed(&registry, &repos, 2);
    let proxy = EngineProxy::start();
    let agent = bed.agent_on(&proxy.host(), &[registry.host()]);

    let check = agent.check(&[]);
    proxy.settle(SETTLE);

    check.assert_exit(0);
    assert_eq!(check.rows.len(), 6, "{check}");
    assert!(
        check.rows.iter().all(|row| row.status == Status::UpToDate),
        "every tag is current; {check}"
    );
    let requests = proxy.requests();
    let shown = show(&requests);
    let list = scope_lists(&requests, &bed, &shown);
    let ours = containers_of(&bed, &list);
    assert_eq!(
        (ours.len(), entries(&list).count()),
        (6, 6),
        "the lists show the bed's containers and no other; {shown}"
    );
    let our_images: BTreeSet<&str> = ours.iter().map(|c| c.image_id.as_str()).collect();
    assert_eq!(our_images.len(), repos.len(), "{shown}");

    let mut expected = BTreeMap::from([
        // `Engine::connect`: the engine's API versions, from which the client's is chosen (and
        // Docker told from Podman). bollard's own negotiation and `/_ping` are not used.
        ("GET /version".to_owned(), 1),
        // The inventory: the scope's containers, one list per scope label (tidewatch's and
        // Watchtower's), which the engine filters.
        ("GET /containers/json".to_owned(), 2),
        // The engine's facts: Swarm role, platform, image store.
        ("GET /info".to_owned(), 1),
    ]);
    expected.extend(services_listed(&requests));
    expected.extend(inspects_after(&list));
    assert_eq!(tally(&requests), expected, "{shown}");
    // What the map says, for the bed's own containers and images in so many words.
    for image in &our_images {
        assert_eq!(
            count(&requests, &format!("GET /images/{image}/json")),
            1,
            "each image once, not once per container; {shown}"
        );
    }
    for container in &ours {
        assert_eq!(
            count(&requests, &format!("GET /containers/{}/json", container.id)),
            0,
            "detection needs no container inspect; {shown}"
        );
    }
    eprintln!(
        "engine requests of one check ({} containers in scope on {} images, {} listed in all): \
         {:?}",
        ours.len(),
        our_images.len(),
        list.as_array().map_or(0, Vec::len),
        tally(&requests)
    );
}

#[test]
fn a_webhook_cycle_lists_its_scope_once_and_inspects_only_containers_in_it() {
    let bed = TestBed::new("requests-webhook");
    let registry = Registry::start();
    let (app, db) = (
        registry.image("app", "stable"),
        registry.image("db", "stable"),
    );
    for image in [&app, &db] {
        bed.build_app(image, "1");
        push(image);
    }
    let web = bed.run_with("web", QUICK_STOP, &app, &[], &[]);
    let cache = bed.run_with("cache", QUICK_STOP, &db, &[], &[]);
    let store = bed.run_with("db", QUICK_STOP, &db, &[], &[]);
    let proxy = EngineProxy::start();
    let updater = bed.updater_of(&bed.agent_on(&proxy.host(), &[registry.host()]));
    settings::set_interval(&updater, "1h");
    let api = settings::api(&updater);
    let mut daemon = start_daemon(&updater, &api);
    let start_up = last_cycle(&api);
    bed.build_app(&app, "2");
    let v2 = push(&app);

    let mark = proxy.mark();
    notify_push(&api, &app);
    let finished = wait_for_next_cycle(&api, &start_up);
    let requests = proxy.requests_since(mark);

    let shown = show(&requests);
    assert_eq!(finished["succeeded"], true, "{finished:#}; {shown}");
    let status = parse_status(&call(&api, "GET", "/v1/status", None, ""));
    let row = status_row(&status, &bed.name("web"));
    assert_eq!(
        row["current_digest"],
        v2.as_str(),
        "web was updated; {status:#}"
    );
    assert_ne!(bed.container_id("web"), web, "web was recreated; {shown}");
    assert_eq!(
        count(&requests, "GET /containers/json"),
        2,
        "the cycle goes on with the lists that chose its containers; {shown}"
    );
    // The containers in scope are the bed's: those before the cycle, and web's successor.
    let in_scope: BTreeSet<String> = [&web, &cache, &store]
        .into_iter()
        .cloned()
        .chain(bed_containers(&bed))
        .collect();
    let is_ours = |container: &str| in_scope.contains(container) || container.starts_with(bed.id());
    let list = scope_lists(&requests, &bed, &shown);
    let unlisted_references: BTreeSet<String> = inspects_after(&list)
        .into_keys()
        .filter_map(|line| {
            let path = line.strip_prefix("GET ")?;
            container_of(path).map(str::to_owned)
        })
        .collect();
    let inspected: BTreeSet<&str> = requests
        .iter()
        .filter(|r| r.method == "GET")
        .filter_map(|r| container_of(&r.path))
        .collect();
    let strangers: Vec<&&str> = inspected
        .iter()
        .filter(|c| !is_ours(c) && !unlisted_references.contains(**c))
        .collect();
    assert!(
        strangers.is_empty(),
        "inspected containers out of scope: {}; {shown}",
        explain(&strangers, &requests, &list)
    );
    for (name, id) in [("web", &web), ("cache", &cache), ("db", &store)] {
        assert!(
            inspected.contains(id.as_str()),
            "{name} is in scope: its settings are read for the update; {shown}"
        );
    }
    eprintln!(
        "engine requests of one webhook cycle ({} listed): {:?}",
        list.as_array().map_or(0, Vec::len),
        tally(&requests)
    );
    let (code, _) = daemon.terminate(Duration::from_secs(15));
    assert_eq!(code, 0, "stderr:\n{}", daemon.stderr());
}

/// What a failure message says of each of `containers`: the requests naming it, with the
/// ones just before, and its entry in the list answer, if it has one. Short, and first in the
/// message, so that it survives a log cut to its head.
fn explain(containers: &[&&str], requests: &[EngineRequest], list: &Value) -> String {
    let lines: Vec<String> = containers
        .iter()
        .map(|container| {
            let asked: Vec<String> = requests
                .iter()
                .enumerate()
                .filter(|(_, r)| container_of(&r.path) == Some(**container))
                .map(|(i, r)| {
                    let before: Vec<String> = requests[i.saturating_sub(3)..i]
                        .iter()
                        .map(EngineRequest::line)
                        .collect();
                    format!("#{i} {:?} after {before:?}", r.status)
                })
                .collect();
            let entry = entries(list)
                .find(|c| text(&c["Id"]) == **container)
                .map(|c| {
                    format!(
                        "names {} image {} image id {} scope {} test {}",
                        c["Names"],
                        c["Image"],
                        c["ImageID"],
                        c["Labels"][SCOPE_LABEL],
                        c["Labels"][TEST_LABEL]
                    )
                });
            format!(
                "{container}: asked {asked:?}; listed as {}",
                entry.as_deref().unwrap_or("(not listed)")
            )
        })
        .collect();
    lines.join(" | ")
}

/// The entries of every container list in `requests`, as one list answer, after checking that
/// each list asked the engine for one of the scope labels of `bed`.
fn scope_lists(requests: &[EngineRequest], bed: &TestBed, shown: &str) -> Value {
    let lists: Vec<&EngineRequest> = requests
        .iter()
        .filter(|r| r.line() == "GET /containers/json")
        .collect();
    let mut labels: Vec<String> = lists.iter().map(|r| label_filter(&r.query)).collect();
    labels.sort();
    let mut expected = vec![
        format!("{SCOPE_LABEL}={}", bed.scope()),
        format!("com.centurylinklabs.watchtower.scope={}", bed.scope()),
    ];
    expected.sort();
    assert_eq!(labels, expected, "one list per scope label; {shown}");
    Value::Array(
        lists
            .iter()
            .flat_map(|r| entries(&r.answer_json()).cloned().collect::<Vec<_>>())
            .collect(),
    )
}

/// The `label` filter of a container list's query (`filters={"label":["k=v"]}`, URL-encoded);
/// empty when it has none.
fn label_filter(query: &str) -> String {
    let Some(encoded) = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("filters="))
    else {
        return String::new();
    };
    let filters: Value = serde_json::from_str(&percent_decode(encoded))
        .unwrap_or_else(|e| panic!("the list's filters are not JSON ({e}): {encoded}"));
    text(&filters["label"][0]).to_owned()
}

/// One container of a list answer.
struct Listed {
    id: String,
    image_id: String,
}

/// The containers of `bed` in a list answer.
fn containers_of(bed: &TestBed, list: &Value) -> Vec<Listed> {
    entries(list)
        .filter(|c| c["Labels"][TEST_LABEL] == bed.id())
        .map(|c| Listed {
            id: text(&c["Id"]).to_owned(),
            image_id: text(&c["ImageID"]).to_owned(),
        })
        .collect()
}

/// The ids of the containers `bed` has now.
fn bed_containers(bed: &TestBed) -> Vec<String> {
    let filter = format!("label={TEST_LABEL}={}", bed.id());
    docker(&["ps", "--all", "--quiet", "--no-trunc", "--filter", &filter])
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// What the inventory asks after a container list that answered `list`: one inspect per
/// distinct image of the containers that are not Swarm tasks, and one of each such container
/// whose entry shows an image id (or nothing) where its reference belongs, which the engine
/// does once a pull or build moved the container's tag.
fn inspects_after(list: &Value) -> BTreeMap<String, usize> {
    let containers: Vec<&Value> = entries(list)
        .filter(|c| {
            !SWARM_TASK_LABELS
                .iter()
                .any(|label| c["Labels"].get(label).is_some())
        })
        .collect();
    let images: BTreeSet<&str> = containers.iter().map(|c| text(&c["ImageID"])).collect();
    let unreferenced = containers.iter().filter(|c| {
        let image = text(&c["Image"]);
        image.is_empty() || image.starts_with("sha256:")
    });
    images
        .into_iter()
        .map(|image| (format!("GET /images/{image}/json"), 1))
        .chain(unreferenced.map(|c| (format!("GET /containers/{}/json", text(&c["Id"])), 1)))
        .collect()
}

/// `GET /services` and `GET /nodes` once each, when `/info` says the engine is a Swarm
/// manager: its services are watched like containers, and `check` names the leader.
fn services_listed(requests: &[EngineRequest]) -> Vec<(String, usize)> {
    let info = only(requests, "GET /info").answer_json();
    let swarm = &info["Swarm"];
    let manager = swarm["LocalNodeState"] == "active" && swarm["ControlAvailable"] == true;
    let lines = ["GET /services", "GET /nodes"];
    lines
        .into_iter()
        .filter(|_| manager)
        .map(|line| (line.to_owned(), 1))
        .collect()
}

/// The container a `/containers/{id or name}/json` path inspects.
fn container_of(path: &str) -> Option<&str> {
    let container = path.strip_prefix("/containers/")?.strip_suffix("/json")?;
    // `/containers/json` is the list.
    (!container.is_empty()).then_some(container)
}

fn entries(list: &Value) -> impl Iterator<Item = &Value> {
    list.as_array().into_iter().flatten()
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// `METHOD /path` of each request, counted.
fn tally(requests: &[EngineRequest]) -> BTreeMap<String, usize> {
    let mut tally = BTreeMap::new();
    for request in requests {
        *tally.entry(request.line()).or_default() += 1;
    }
    tally
}

fn count(requests: &[EngineRequest], line: &str) -> usize {
    requests.iter().filter(|r| r.line() == line).count()
}

/// The one request that is `line`; panics unless there is exactly one.
fn only<'a>(requests: &'a [EngineRequest], line: &str) -> &'a EngineRequest {
    let mut matching = requests.iter().filter(|r| r.line() == line);
    match (matching.next(), matching.next()) {
        (Some(request), None) => request,
        _ => panic!("expected exactly one {line}; {}", show(requests)),
    }
}

/// Every request on a line, with its status, for failure messages.
fn show(requests: &[EngineRequest]) -> String {
    let lines: Vec<String> = requests
        .iter()
        .map(|r| match r.status {
            Some(status) => format!("  {} -> {status}", r.line()),
            None => format!("  {} -> (no answer)", r.line()),
        })
        .collect();
    format!("engine requests:\n{}", lines.join("\n"))
}

/// The `last_cycle` of `/v1/status`.
fn last_cycle(api: &settings::ApiSettings) -> Value {
    let status = parse_status(&call(api, "GET", "/v1/status", None, ""));
    status["last_cycle"].clone()
}

/// Waits until `/v1/status` shows a cycle that finished after `previous`; returns it.
fn wait_for_next_cycle(api: &settings::ApiSettings, previous: &Value) -> Value {
    let started = Instant::now();
    loop {
        let last = last_cycle(api);
        if last["finished_at"] != previous["finished_at"] {
            return last;
        }
        assert!(
            started.elapsed() < CYCLE_BOUND,
            "no cycle finished within {CYCLE_BOUND:?} of the webhook; last: {last:#}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}
