//! `cargo bench --bench check`: how long one `tidewatch check` detection pass takes over 100
//! containers and 20 references on a local registry, next to a floor made of the raw requests
//! such a pass cannot avoid; first on an idle engine, then on one busy with about 100
//! healthchecks a second. What it sets up, measures and prints is described in
//! `benches/README.md`.
//!
//! Needs a Docker engine (`DOCKER_HOST` or the default socket), `docker-registry` (CNCF
//! distribution) on `PATH` and a static `/bin/busybox`. Everything it creates carries the run's
//! label and is removed when the run ends, fails or panics.

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, ensure, Context as _};
use bollard::models::{ContainerCreateBody, HealthConfig, HostConfig, ImageInspect};
use bollard::query_parameters::{
    BuildImageOptions, CreateContainerOptions, ListContainersOptions, ListImagesOptions,
    PushImageOptions, RemoveContainerOptions, RemoveImageOptions,
};
use bollard::Docker;
use futures_util::future::join_all;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use tidewatch::config::{Config, DockerConfig};
use tidewatch::cycle::detect_on;
use tidewatch::engine::Engine;
use tidewatch::image_ref::ImageRef;
use tidewatch::plan::detect::Status;
use tidewatch::registry::{RegistryClient, MANIFEST_MEDIA_TYPES};
use tokio::runtime::Handle;

/// Distinct image references, each its own repository on the bench registry.
const REFERENCES: usize = 20;
/// Containers running each reference.
const CONTAINERS_PER_REFERENCE: usize = 5;
/// Rounds run and thrown away before measuring (connection set-up, engine caches).
const WARM_UPS: usize = 1;
/// Rounds measured.
const ROUNDS: usize = 5;
/// Engine requests in flight in the floor: the product's `INSPECT_CONCURRENCY`, which is private.
const ENGINE_CONCURRENCY: usize = 16;
/// tidewatch should take at most this many times the floor.
const TARGET_RATIO: f64 = 2.0;
/// Marks every image and container of one run, so cleanup removes exactly those.
const RUN_LABEL: &str = "tidewatch.bench";
/// Marks the containers of the second scenario's load.
const LOAD_LABEL: &str = "tidewatch.bench.load";
/// Containers added as load in the second scenario.
const LOAD_CONTAINERS: usize = 100;
/// How often each load container's healthcheck runs.
const LOAD_INTERVAL: Duration = Duration::from_secs(1);
/// How long the load containers may take to be healthy.
const LOAD_READY: Duration = Duration::from_secs(120);
/// How tidewatch's registry client announces itself (`tidewatch/VERSION`).
const TIDEWATCH_USER_AGENT: &str = "tidewatch/";
/// The floor's HTTP client announces itself differently, so the registry log tells the two apart.
const FLOOR_USER_AGENT: &str = "tidewatch-bench-floor";
/// Where the static busybox the images are made of comes from.
const BUSYBOX: &str = "/bin/busybox";
const DOCKERFILE: &str = "FROM scratch\n\
                          COPY busybox /bin/busybox\n\
                          CMD [\"/bin/busybox\", \"sleep\", \"3600\"]\n";

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs bench targets too, without
    // it, and a test run is no place for a benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        println!("check bench: skipped (run it with `cargo bench --bench check`)");
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("check bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    // The same runtime shape as the `tidewatch` binary.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;

    let docker_config = DockerConfig::default();
    let engine = runtime
        .block_on(Engine::connect(&docker_config))
        .context("cannot reach the Docker engine (start dockerd or set DOCKER_HOST)")?;
    let docker = runtime
        .block_on(async { Docker::connect_with_defaults()?.negotiate_version().await })
        .with_context(|| format!("connecting to the Docker engine at {}", engine.host()))?;

    let run_id = format!(
        "tidewatch-bench-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default()
    );
    // Dropped (in reverse order) on every way out of this function, panics included: the
    // registry stops before its directory goes, and the engine objects go last.
    let _engine_objects = EngineCleanup {
        handle: runtime.handle().clone(),
        docker: docker.clone(),
        run_id: run_id.clone(),
    };
    let dir = tempfile::Builder::new()
        .prefix("tidewatch-bench-")
        .tempdir()
        .context("creating a temporary directory")?;
    let mut registry = Registry::start(dir.path())?;

    runtime.block_on(async {
        tokio::select! {
            result = bench(&engine, &docker, &mut registry, &run_id) => result,
            // Without a signal handler the branch is disabled and the bench runs on.
            Ok(()) = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
    })
}

/// Everything between setting up and cleaning up: the scenarios, one after the other.
async fn bench(
    engine: &Engine,
    docker: &Docker,
    registry: &mut Registry,
    run_id: &str,
) -> anyhow::Result<()> {
    registry.wait_until_ready().await?;
    let fixture = set_up(docker, registry, run_id).await?;
    let config = Arc::new(
        Config::parse(&format!("[watch]\nscope = {run_id:?}\n"), "bench")
            .context("parsing the bench configuration")?,
    );
    eprintln!("measuring on an idle engine: {WARM_UPS} warm-up + {ROUNDS} rounds");
    let idle = measure(engine, docker, &config, &fixture, registry).await?;
    let load = start_load(docker, &fixture, run_id).await?;
    eprintln!("measuring under healthcheck load: {WARM_UPS} warm-up + {ROUNDS} rounds");
    let busy = measure(engine, docker, &config, &fixture, registry).await?;

    println!();
    println!(
        "check: {} containers, {REFERENCES} references, registry {} ({ROUNDS} rounds after \
         {WARM_UPS} warm-up)",
        fixture.containers,
        registry.host()
    );
    idle.print("idle engine");
    busy.print(&format!(
        "under healthcheck load: {load} more containers, each checked every {}s \
         (about {} healthchecks a second)",
        LOAD_INTERVAL.as_secs(),
        load as u64 / LOAD_INTERVAL.as_secs().max(1)
    ));
    println!();
    println!(
        "manifest requests per detect(): {REFERENCES} HEAD, 0 GET in each of the {} rounds \
         (counted by tidewatch and by the registry's access log)",
        2 * (WARM_UPS + ROUNDS)
    );
    Ok(())
}

/// The times of one scenario's measured rounds.
#[derive(Default)]
struct Measurements {
    tidewatch: Samples,
    inventory: Samples,
    resolve: Samples,
    floor_registry: Samples,
    floor_engine: Samples,
    floor: Samples,
    /// The most containers `inventory()` saw: the scope's, as the engine lists only those.
    seen: usize,
}

/// Runs the warm-ups and rounds of one scenario.
async fn measure(
    engine: &Engine,
    docker: &Docker,
    config: &Arc<Config>,
    fixture: &Fixture,
    registry: &Registry,
) -> anyhow::Result<Measurements> {
    let mut m = Measurements::default();
    for round in 0..WARM_UPS + ROUNDS {
        // Each round starts one step further along the list, so no measurement always
        // follows the same one (or always meets a warmer engine).
        let mut t = Duration::ZERO;
        let (mut a, mut b) = (Duration::ZERO, Duration::ZERO);
        let (mut inv, mut res) = (Duration::ZERO, Duration::ZERO);
        for step in 0..4 {
            match (round + step) % 4 {
                0 => t = time_detect(engine, config, fixture, registry).await?,
                1 => (a, b) = time_floor(docker, fixture).await?,
                2 => {
                    let seen;
                    (inv, seen) = time_inventory(engine, config).await?;
                    m.seen = m.seen.max(seen);
                }
                _ => res = time_resolve(config, fixture, registry).await?,
            }
        }
        if round >= WARM_UPS {
            m.tidewatch.push(t);
            m.floor_registry.push(a);
            m.floor_engine.push(b);
            m.floor.push(a + b);
            m.inventory.push(inv);
            m.resolve.push(res);
        }
    }
    Ok(m)
}

impl Measurements {
    /// The scenario's table, under `title`.
    fn print(&self, title: &str) {
        println!();
        println!("{title}");
        println!(
            "  inventory() listed {} container(s): the engine filters by the scope's labels",
            self.seen
        );
        println!("{:<38} {:>10} {:>10}", "", "median", "min");
        row("tidewatch: detect()", &self.tidewatch);
        row("  inventory() alone", &self.inventory);
        row("  resolve_all() alone", &self.resolve);
        row("floor: (a) + (b)", &self.floor);
        row(
            &format!("  (a) {REFERENCES} HEADs, all in flight"),
            &self.floor_registry,
        );
        row(
            &format!("  (b) list + {REFERENCES} image inspects"),
            &self.floor_engine,
        );
        let median_ratio = ratio(self.tidewatch.median(), self.floor.median());
        let min_ratio = ratio(self.tidewatch.min(), self.floor.min());
        println!(
            "{:<38} {:>9.2}x {:>9.2}x   target: within {TARGET_RATIO}x ({})",
            "ratio tidewatch / floor",
            median_ratio,
            min_ratio,
            if median_ratio <= TARGET_RATIO {
                "met"
            } else {
                "missed"
            }
        );
    }
}

/// What was set up: the references with the digests they were pushed as.
struct Fixture {
    /// `127.0.0.1:PORT/bench-N:latest` -> `sha256:...`.
    digests: BTreeMap<String, String>,
    /// The same references, parsed as tidewatch parses them.
    references: Vec<ImageRef>,
    /// `http://127.0.0.1:PORT/v2/bench-N/manifests/latest` -> `sha256:...`.
    manifest_urls: Vec<(String, String)>,
    /// The label filter that selects the run's containers.
    scope_filter: String,
    /// How many containers run.
    containers: usize,
}

/// Builds and pushes the images, then creates and starts the containers.
async fn set_up(docker: &Docker, registry: &Registry, run_id: &str) -> anyhow::Result<Fixture> {
    let busybox = std::fs::read(BUSYBOX).with_context(|| format!("reading {BUSYBOX}"))?;
    let context = tar(&[
        ("Dockerfile", 0o644, DOCKERFILE.as_bytes()),
        ("busybox", 0o755, &busybox),
    ]);

    eprintln!(
        "setting up: {REFERENCES} images on {}, {} containers, scope {run_id}",
        registry.host(),
        REFERENCES * CONTAINERS_PER_REFERENCE
    );
    let repositories: Vec<String> = (0..REFERENCES)
        .map(|n| format!("{}/bench-{n}", registry.host()))
        .collect();
    for (n, repository) in repositories.iter().enumerate() {
        // No build cache: the images (and the layers under them) are this run's alone, so
        // removing them cannot take anything of anyone else's with them.
        let options = BuildImageOptions {
            dockerfile: "Dockerfile".into(),
            t: Some(format!("{repository}:latest")),
            nocache: true,
            rm: true,
            forcerm: true,
            labels: Some(HashMap::from([
                (RUN_LABEL.to_string(), run_id.to_string()),
                (format!("{RUN_LABEL}.image"), n.to_string()),
            ])),
            ..Default::default()
        };
        docker
            .build_image(
                options,
                None,
                Some(bollard::body_full(context.clone().into())),
            )
            .try_collect::<Vec<_>>()
            .await
            .with_context(|| format!("building {repository}:latest"))?;
    }

    let pushed: Vec<(String, String)> = stream::iter(&repositories)
        .map(|repository| push(docker, repository))
        .buffered(4)
        .try_collect()
        .await?;

    let scope_filter = format!("{}={run_id}", tidewatch::labels::SCOPE);
    let containers = REFERENCES * CONTAINERS_PER_REFERENCE;
    stream::iter(0..containers)
        .map(|i| {
            start_container(
                docker,
                format!("{run_id}-{i:03}"),
                format!("{}:latest", pushed[i % REFERENCES].0),
                HashMap::from([
                    (tidewatch::labels::SCOPE.to_string(), run_id.to_string()),
                    (RUN_LABEL.to_string(), run_id.to_string()),
                ]),
                None,
            )
        })
        .buffer_unordered(8)
        .try_collect::<()>()
        .await?;

    let digests: BTreeMap<String, String> = pushed
        .iter()
        .map(|(repository, digest)| (format!("{repository}:latest"), digest.clone()))
        .collect();
    let references = digests
        .keys()
        .map(|r| ImageRef::parse(r).with_context(|| format!("parsing {r}")))
        .collect::<anyhow::Result<_>>()?;
    let manifest_urls = pushed
        .iter()
        .map(|(repository, digest)| {
            let name = repository.split_once('/').map_or("", |(_, name)| name);
            (
                format!("http://{}/v2/{name}/manifests/latest", registry.host()),
                digest.clone(),
            )
        })
        .collect();
    Ok(Fixture {
        digests,
        references,
        manifest_urls,
        scope_filter,
        containers,
    })
}

/// Pushes `repository:latest` and returns the repository with the digest it was pushed as.
async fn push(docker: &Docker, repository: &str) -> anyhow::Result<(String, String)> {
    let reference = format!("{repository}:latest");
    docker
        .push_image(
            repository,
            Some(PushImageOptions {
                tag: Some("latest".into()),
                ..Default::default()
            }),
            None,
        )
        .try_collect::<Vec<_>>()
        .await
        .with_context(|| format!("pushing {reference}"))?;
    let image = docker
        .inspect_image(&reference)
        .await
        .with_context(|| format!("inspecting {reference}"))?;
    let prefix = format!("{repository}@");
    let digest = image
        .repo_digests
        .unwrap_or_default()
        .iter()
        .find_map(|d| d.strip_prefix(&prefix).map(str::to_string))
        .ok_or_else(|| anyhow!("{reference} has no repo digest after the push"))?;
    Ok((repository.to_string(), digest))
}

/// Creates and starts container `name` running `image`, with `labels` and `healthcheck`.
async fn start_container(
    docker: &Docker,
    name: String,
    image: String,
    labels: HashMap<String, String>,
    healthcheck: Option<HealthConfig>,
) -> anyhow::Result<()> {
    let body = ContainerCreateBody {
        image: Some(image),
        labels: Some(labels),
        healthcheck,
        // No network: a hundred veth pairs would only slow set-up and cleanup.
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let created = docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name.clone()),
                ..Default::default()
            }),
            body,
        )
        .await
        .with_context(|| format!("creating container {name}"))?;
    docker
        .start_container(&created.id, None)
        .await
        .with_context(|| format!("starting container {name}"))
}

/// Starts the load of the second scenario: [`LOAD_CONTAINERS`] containers of the first
/// reference's image, outside the run's scope, each running `/bin/busybox true` as its
/// healthcheck every [`LOAD_INTERVAL`]; returns how many once all of them are healthy (so
/// their checks run).
async fn start_load(docker: &Docker, fixture: &Fixture, run_id: &str) -> anyhow::Result<usize> {
    let image = fixture
        .digests
        .keys()
        .next()
        .ok_or_else(|| anyhow!("no image to run the load on"))?;
    eprintln!(
        "starting the load: {LOAD_CONTAINERS} containers of {image} with a healthcheck every {}s",
        LOAD_INTERVAL.as_secs()
    );
    let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    let healthcheck = HealthConfig {
        test: Some(vec!["CMD".into(), BUSYBOX.into(), "true".into()]),
        interval: Some(nanos(LOAD_INTERVAL)),
        timeout: Some(nanos(Duration::from_secs(10))),
        retries: Some(3),
        ..Default::default()
    };
    // The run's label for cleanup, and no scope label: the load is not what is checked.
    let labels = HashMap::from([
        (RUN_LABEL.to_string(), run_id.to_string()),
        (LOAD_LABEL.to_string(), run_id.to_string()),
    ]);
    stream::iter(0..LOAD_CONTAINERS)
        .map(|i| {
            start_container(
                docker,
                format!("{run_id}-load-{i:03}"),
                image.clone(),
                labels.clone(),
                Some(healthcheck.clone()),
            )
        })
        .buffer_unordered(8)
        .try_collect::<()>()
        .await?;

    let healthy = HashMap::from([
        ("label".to_string(), vec![format!("{LOAD_LABEL}={run_id}")]),
        ("health".to_string(), vec!["healthy".to_string()]),
    ]);
    let deadline = Instant::now() + LOAD_READY;
    loop {
        let ready = docker
            .list_containers(Some(ListContainersOptions {
                filters: Some(healthy.clone()),
                ..Default::default()
            }))
            .await
            .context("listing the load's healthy containers")?
            .len();
        if ready == LOAD_CONTAINERS {
            return Ok(ready);
        }
        ensure!(
            Instant::now() < deadline,
            "only {ready} of the {LOAD_CONTAINERS} load containers were healthy after {}s",
            LOAD_READY.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One `detect` with a fresh registry client, checked: every container up to date with the
/// pushed digest, one HEAD per reference and no GET, both by tidewatch's counters and by the
/// registry's access log.
async fn time_detect(
    engine: &Engine,
    config: &Arc<Config>,
    fixture: &Fixture,
    server: &Registry,
) -> anyhow::Result<Duration> {
    let registry = RegistryClient::new(config.clone()).context("creating the registry client")?;
    let logged_before = server.manifest_requests(TIDEWATCH_USER_AGENT)?;
    let start = Instant::now();
    let inventory = engine
        .inventory(config.watch.include_stopped, config.watch.scope.as_deref())
        .await
        .context("inventory")?;
    let detections = detect_on(&registry, config, &inventory, &[]).await;
    let elapsed = start.elapsed();

    ensure!(
        detections.len() == fixture.containers,
        "detect saw {} containers in scope; expected {}",
        detections.len(),
        fixture.containers
    );
    for d in &detections {
        let expected = fixture.digests.get(&d.row.image);
        ensure!(
            d.row.status == Status::UpToDate && d.row.available_digest.as_ref() == expected,
            "{}: detect said {} ({:?}, available {:?}); expected up_to_date at {:?}",
            d.row.container,
            d.row.status.as_str(),
            d.row.detail,
            d.row.available_digest,
            expected
        );
    }
    let counts = registry.counts();
    let heads = counts.manifest_heads.load(Ordering::Relaxed);
    let gets = counts.manifest_gets.load(Ordering::Relaxed);
    ensure!(
        heads == REFERENCES as u64 && gets == 0,
        "detect sent {heads} manifest HEADs and {gets} GETs; expected {REFERENCES} and 0"
    );
    let logged = server
        .await_manifest_requests(TIDEWATCH_USER_AGENT, logged_before, heads)
        .await?;
    ensure!(
        logged == (REFERENCES as u64, 0),
        "the registry logged {} manifest HEADs and {} GETs from detect; expected {REFERENCES} and 0",
        logged.0,
        logged.1
    );
    Ok(elapsed)
}

/// `Engine::inventory` on its own, as detect calls it, to show where detect's time goes; also
/// how many running containers it saw.
async fn time_inventory(engine: &Engine, config: &Config) -> anyhow::Result<(Duration, usize)> {
    let start = Instant::now();
    let inventory = engine
        .inventory(false, config.watch.scope.as_deref())
        .await
        .context("inventory")?;
    Ok((start.elapsed(), inventory.observed.len()))
}

/// `RegistryClient::resolve_all` on its own, with a fresh client.
async fn time_resolve(
    config: &Arc<Config>,
    fixture: &Fixture,
    server: &Registry,
) -> anyhow::Result<Duration> {
    let registry = RegistryClient::new(config.clone()).context("creating the registry client")?;
    let logged_before = server.manifest_requests(TIDEWATCH_USER_AGENT)?;
    let start = Instant::now();
    let resolved = registry.resolve_all(fixture.references.clone()).await;
    let elapsed = start.elapsed();
    for (reference, result) in resolved {
        result.with_context(|| format!("resolving {reference}"))?;
    }
    // Let its log lines land, so the next detect's count starts clean.
    let heads = registry.counts().manifest_heads.load(Ordering::Relaxed);
    server
        .await_manifest_requests(TIDEWATCH_USER_AGENT, logged_before, heads)
        .await?;
    Ok(elapsed)
}

/// The floor: (a) the registry requests and (b) the engine requests a detection pass needs,
/// made directly. Returns both times.
async fn time_floor(docker: &Docker, fixture: &Fixture) -> anyhow::Result<(Duration, Duration)> {
    // A fresh client, as tidewatch gets: both pay for their connections.
    let http = reqwest::Client::builder()
        .user_agent(FLOOR_USER_AGENT)
        .build()
        .context("creating the floor's HTTP client")?;
    let registry = time_registry_floor(&http, &fixture.manifest_urls).await?;
    let engine = time_engine_floor(docker, fixture).await?;
    Ok((registry, engine))
}

/// (a) One HEAD per reference, all in flight at once, reading `Docker-Content-Digest`.
async fn time_registry_floor(
    http: &reqwest::Client,
    urls: &[(String, String)],
) -> anyhow::Result<Duration> {
    let accept = &MANIFEST_MEDIA_TYPES.join(", ");
    let start = Instant::now();
    let answers = join_all(urls.iter().map(|(url, _)| async move {
        let response = http
            .head(url)
            .header(reqwest::header::ACCEPT, accept)
            .send()
            .await?
            .error_for_status()?;
        Ok::<_, reqwest::Error>(
            response
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        )
    }))
    .await;
    let elapsed = start.elapsed();
    for ((url, expected), answer) in urls.iter().zip(answers) {
        let digest = answer.with_context(|| format!("HEAD {url}"))?;
        ensure!(
            digest.as_ref() == Some(expected),
            "HEAD {url} answered digest {digest:?}; expected {expected}"
        );
    }
    Ok(elapsed)
}

/// (b) What detection needs of the engine: list the run's containers (with the scope's label
/// filter), then inspect each distinct image they run.
async fn time_engine_floor(docker: &Docker, fixture: &Fixture) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let summaries = docker
        .list_containers(Some(ListContainersOptions {
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![fixture.scope_filter.clone()],
            )])),
            ..Default::default()
        }))
        .await
        .context("listing containers")?;
    let mut image_ids: Vec<String> = summaries
        .iter()
        .filter_map(|s| s.image_id.clone())
        .collect();
    image_ids.sort();
    image_ids.dedup();
    let images: Vec<ImageInspect> = stream::iter(&image_ids)
        .map(|id| docker.inspect_image(id))
        .buffer_unordered(ENGINE_CONCURRENCY)
        .try_collect()
        .await
        .context("inspecting an image")?;
    let elapsed = start.elapsed();
    ensure!(
        summaries.len() == fixture.containers && images.len() == REFERENCES,
        "the floor saw {} containers and {} images; expected {} and {REFERENCES}",
        summaries.len(),
        images.len(),
        fixture.containers
    );
    Ok(elapsed)
}

/// Wall times of the measured rounds.
#[derive(Default)]
struct Samples(Vec<Duration>);

impl Samples {
    fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    fn median(&self) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort();
        match sorted.len() {
            0 => Duration::ZERO,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
        }
    }

    fn min(&self) -> Duration {
        self.0.iter().copied().min().unwrap_or_default()
    }
}

fn row(label: &str, samples: &Samples) {
    println!(
        "{label:<38} {:>10} {:>10}",
        millis(samples.median()),
        millis(samples.min())
    );
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(f64::MIN_POSITIVE)
}

/// A `docker-registry serve` on a free loopback port, stopped when dropped.
struct Registry {
    child: Child,
    port: u16,
    access_log: PathBuf,
    error_log: PathBuf,
}

impl Registry {
    fn start(dir: &Path) -> anyhow::Result<Registry> {
        // Another process could take the port before the registry binds it; the readiness
        // check then fails with the registry's own complaint.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free loopback port")?
            .port();
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\n\
                 log:\n  level: warn\n  formatter: text\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: 127.0.0.1:{port}\n",
                dir.join("data").display()
            ),
        )
        .context("writing the registry configuration")?;
        let access_log = dir.join("access.log");
        let error_log = dir.join("registry.log");
        let create = |path: &Path| {
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))
        };
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            // distribution writes its access log to stdout and everything else to stderr.
            .stdout(create(&access_log)?)
            .stderr(create(&error_log)?)
            .spawn()
            .context("starting docker-registry (CNCF distribution) from PATH")?;
        Ok(Registry {
            child,
            port,
            access_log,
            error_log,
        })
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    async fn wait_until_ready(&mut self) -> anyhow::Result<()> {
        let url = format!("http://{}/v2/", self.host());
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().context("watching docker-registry")? {
                bail!(
                    "docker-registry exited ({status}): {}",
                    std::fs::read_to_string(&self.error_log).unwrap_or_default()
                );
            }
            if let Ok(response) = http.get(&url).send().await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("docker-registry did not answer on {url} within 10s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Manifest HEADs and GETs in the access log from clients whose user agent starts with
    /// `agent`. Lines look like
    /// `127.0.0.1 - - [...] "HEAD /v2/app/manifests/latest HTTP/1.1" 200 525 "" "tidewatch/0.1.0"`.
    fn manifest_requests(&self, agent: &str) -> anyhow::Result<(u64, u64)> {
        let log = std::fs::read_to_string(&self.access_log)
            .with_context(|| format!("reading {}", self.access_log.display()))?;
        let mut counts = (0, 0);
        for line in log.lines() {
            let quoted: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
            let (Some(request), Some(user_agent)) = (quoted.first(), quoted.last()) else {
                continue;
            };
            if !user_agent.starts_with(agent) || !request.contains("/manifests/") {
                continue;
            }
            if request.starts_with("HEAD ") {
                counts.0 += 1;
            } else if request.starts_with("GET ") {
                counts.1 += 1;
            }
        }
        Ok(counts)
    }

    /// Manifest (HEADs, GETs) from `agent` logged since `before`, once at least `heads` HEADs
    /// are: the access log line may be written just after the answer is sent.
    async fn await_manifest_requests(
        &self,
        agent: &str,
        before: (u64, u64),
        heads: u64,
    ) -> anyhow::Result<(u64, u64)> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let now = self.manifest_requests(agent)?;
            let since = (now.0 - before.0, now.1 - before.1);
            if since.0 >= heads || Instant::now() > deadline {
                return Ok(since);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Already gone is fine; anything else is worth a line.
        if let Err(e) = self.child.kill() {
            if e.kind() != std::io::ErrorKind::InvalidInput {
                eprintln!("check bench: stopping docker-registry: {e}");
            }
        }
        let _ = self.child.wait();
    }
}

/// Removes the run's containers, then its images, when dropped.
struct EngineCleanup {
    handle: Handle,
    docker: Docker,
    run_id: String,
}

impl Drop for EngineCleanup {
    fn drop(&mut self) {
        // Drop runs outside the runtime (after `block_on` returned or unwound), so blocking on
        // it here is allowed.
        let errors = self.handle.block_on(remove_run(&self.docker, &self.run_id));
        for e in errors {
            eprintln!("check bench: cleanup: {e:#}");
        }
    }
}

/// Removes every container and image labelled with the run; returns what could not be removed.
async fn remove_run(docker: &Docker, run_id: &str) -> Vec<anyhow::Error> {
    let filter = HashMap::from([("label".to_string(), vec![format!("{RUN_LABEL}={run_id}")])]);
    let mut errors = Vec::new();

    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filter.clone()),
            ..Default::default()
        }))
        .await;
    let ids: Vec<String> = match containers {
        Ok(list) => list.into_iter().filter_map(|c| c.id).collect(),
        Err(e) => {
            errors.push(anyhow!(e).context("listing the run's containers"));
            Vec::new()
        }
    };
    let removed = stream::iter(&ids)
        .map(|id| async move {
            let options = RemoveContainerOptions {
                force: true,
                ..Default::default()
            };
            docker
                .remove_container(id, Some(options))
                .await
                .with_context(|| format!("removing container {id}"))
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    errors.extend(removed.into_iter().filter_map(Result::err));

    let images = docker
        .list_images(Some(ListImagesOptions {
            filters: Some(filter),
            ..Default::default()
        }))
        .await;
    match images {
        Ok(list) => {
            for image in list {
                let options = RemoveImageOptions {
                    force: true,
                    ..Default::default()
                };
                if let Err(e) = docker.remove_image(&image.id, Some(options), None).await {
                    errors.push(anyhow!(e).context(format!("removing image {}", image.id)));
                }
            }
        }
        Err(e) => errors.push(anyhow!(e).context("listing the run's images")),
    }
    if !ids.is_empty() {
        eprintln!("cleaned up {} containers and the run's images", ids.len());
    }
    errors
}

/// A tar archive of regular files (ustar), enough for a build context.
fn tar(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, mode, data) in files {
        let mut header = [0u8; 512];
        header[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut header[100..108], u64::from(*mode));
        octal(&mut header[108..116], 0); // uid
        octal(&mut header[116..124], 0); // gid
        octal(&mut header[124..136], data.len() as u64);
        octal(&mut header[136..148], 0); // mtime
        header[156] = b'0'; // regular file
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        // The checksum is computed with its own field read as spaces.
        header[148..156].fill(b' ');
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        header[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    // Two empty blocks end the archive.
    out.resize(out.len() + 1024, 0);
    out
}

/// Writes `value` as zero-padded octal with a trailing NUL, filling `field`.
fn octal(field: &mut [u8], value: u64) {
    let digits = format!("{value:0width$o}\0", width = field.len() - 1);
    field.copy_from_slice(digits.as_bytes());
}
