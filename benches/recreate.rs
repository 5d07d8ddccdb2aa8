//! What a recreate costs, as figures (never assertions): the downtime of one recreate by
//! `tidewatch update` next to `docker-compose up -d` on the same kind of service, measured in
//! the same run; and the resident memory of an idle `tidewatch run` watching 50 containers.
//!
//! It runs only with `--bench`, which `cargo bench` passes: `cargo test --all-targets` runs this
//! binary too, without it, and then it does nothing. The test bed is the integration tests' own
//! (`tests/support`), so it needs what they need (`scripts/test-env`).

#[path = "../tests/support/mod.rs"]
mod support;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use support::{push, OnTerm, Registry, TestBed, APP_PORT};

/// Recreates measured per tool.
const ROUNDS: usize = 5;
/// How often the published port is asked for the page.
const PROBE_EVERY: Duration = Duration::from_millis(10);
/// Containers the idle agent watches.
const WATCHED: usize = 50;
/// How long, and how often, the idle agent's memory is sampled.
const RSS_WINDOW: Duration = Duration::from_secs(5);
const RSS_SAMPLES: u32 = 6;

fn main() -> ExitCode {
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("recreate: skipped (run it with `cargo bench --bench recreate`)");
        return ExitCode::SUCCESS;
    }
    downtime();
    idle_rss();
    ExitCode::SUCCESS
}

/// Downtime of one recreate: tidewatch and compose each recreate their own copy of the app
/// (busybox httpd that exits on SIGTERM, with a published port) ROUNDS times, alternating.
fn downtime() {
    let bed = TestBed::new("bench-downtime");
    let registry = Registry::start();

    let tw_image = registry.image("app", "tidewatch");
    bed.build_app_stopping(&tw_image, "tw0", OnTerm::Exit);
    push(&tw_image);
    let tw_port = free_port();
    bed.run_service(
        "web",
        &["--publish", &format!("127.0.0.1:{tw_port}:{APP_PORT}")],
        &tw_image,
        &[],
    );
    let agent = bed.agent(&[registry.host()]);

    let compose_image = registry.image("app", "compose");
    bed.build_app_stopping(&compose_image, "compose0", OnTerm::Exit);
    push(&compose_image);
    let compose_port = free_port();
    let compose = Compose::up(&bed, &compose_image, compose_port);

    wait_serving(tw_port, "tw0");
    wait_serving(compose_port, "compose0");
    let (mut tidewatch, mut compose_gaps) = (Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let (old, new) = (format!("tw{}", round - 1), format!("tw{round}"));
        bed.build_app_stopping(&tw_image, &new, OnTerm::Exit);
        push(&tw_image);
        let probe = Probe::start(tw_port, &new);
        let update = agent.command(&["update"]);
        assert_eq!(update.code, 0, "tidewatch update failed: {update:?}");
        tidewatch.push(probe.gap(&old, &new));

        let (old, new) = (format!("compose{}", round - 1), format!("compose{round}"));
        bed.build_app_stopping(&compose_image, &new, OnTerm::Exit);
        push(&compose_image);
        compose.run(&["pull", "--quiet"]);
        let probe = Probe::start(compose_port, &new);
        compose.run(&["up", "--detach"]);
        compose_gaps.push(probe.gap(&old, &new));
    }

    println!(
        "downtime of one recreate (old stopped -> new serving), busybox httpd exiting on SIGTERM, \
         {ROUNDS} rounds, port polled every {} ms:",
        PROBE_EVERY.as_millis()
    );
    let tw = summary("tidewatch update", &tidewatch);
    let compose_name = format!("{} up -d", compose_program());
    let dc = summary(&compose_name, &compose_gaps);
    println!(
        "  ratio tidewatch/compose: median {:.2}, min {:.2} (target: <= 1)",
        tw.median / dc.median,
        tw.min / dc.min
    );
}

/// Idle RSS of `tidewatch run` watching WATCHED containers, after its first cycle.
fn idle_rss() {
    let bed = TestBed::new("bench-idle-rss");
    let registry = Registry::start();
    let image = registry.image("sleeper", "stable");
    bed.build_app(&image, "1");
    push(&image);
    for n in 0..WATCHED {
        // No healthcheck: 50 of them would keep the engine busy while we measure.
        bed.run_service(
            &format!("sleep-{n}"),
            &["--no-healthcheck", "--entrypoint", "/bin/busybox"],
            &image,
            &["sleep", "86400"],
        );
    }
    // bed.agent's interval is 5m: no second cycle during the measurement.
    let agent = bed.agent(&[registry.host()]);
    let mut run = agent.spawn(&["run"]);
    run.wait_for_stderr("cycle finished", Duration::from_secs(300));
    let status = PathBuf::from(format!("/proc/{}/status", run.pid()));
    let mut samples = Vec::new();
    for n in 0..RSS_SAMPLES {
        if n > 0 {
            thread::sleep(RSS_WINDOW / (RSS_SAMPLES - 1));
        }
        samples.push(status_kib(&status, "VmRSS:"));
    }
    // File-backed pages (the binary's own code, libc) count in VmRSS too; the split says how
    // much is the agent's own memory.
    let (anon, file) = (
        status_kib(&status, "RssAnon:"),
        status_kib(&status, "RssFile:"),
    );
    let peak = status_kib(&status, "VmHWM:");
    let cycle = run
        .stderr()
        .lines()
        .find(|line| line.contains("cycle finished"))
        .unwrap_or_default()
        .to_owned();
    let max = samples.iter().copied().max().unwrap_or_default();
    println!(
        "idle RSS of `tidewatch run` watching {WATCHED} containers, after its first cycle:\n  \
         max {:.1} MiB over {} samples in {}s (target: < 10 MiB); samples KiB {samples:?}\n  \
         at the last sample: anonymous {:.1} MiB, file-backed {:.1} MiB; peak during the cycle \
         (VmHWM) {:.1} MiB\n  first cycle: {cycle}",
        mib(max),
        RSS_SAMPLES,
        RSS_WINDOW.as_secs(),
        mib(anon),
        mib(file),
        mib(peak),
    );
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A `KEY:  N kB` line of /proc/PID/status, in KiB.
fn status_kib(path: &PathBuf, key: &str) -> u64 {
    let text = fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    text.lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {}:\n{text}", path.display()))
}

struct Summary {
    median: f64,
    min: f64,
}

/// Prints one tool's gaps and returns their median and minimum, in ms.
fn summary(tool: &str, gaps: &[Duration]) -> Summary {
    let mut ms: Vec<f64> = gaps.iter().map(|gap| gap.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let median = if ms.len() % 2 == 1 {
        ms[ms.len() / 2]
    } else {
        (ms[ms.len() / 2 - 1] + ms[ms.len() / 2]) / 2.0
    };
    let min = ms.first().copied().unwrap_or_default();
    let rounds: Vec<String> = gaps
        .iter()
        .map(|gap| format!("{:.0}", gap.as_secs_f64() * 1e3))
        .collect();
    println!(
        "  {tool:<22} median {median:>6.0} ms  min {min:>6.0} ms  (rounds, ms: {})",
        rounds.join(" ")
    );
    Summary { median, min }
}

/// One GET of the app's page; the version it names, if it answered.
fn version_served(port: u16) -> Option<String> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_millis(200)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: app\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    if !response.starts_with("HTTP/1.") || !response.contains(" 200 ") {
        return None;
    }
    let page = response.split("\r\n\r\n").nth(1)?;
    page.trim()
        .strip_prefix("tidewatch test app version ")
        .map(str::to_owned)
}

fn wait_serving(port: u16, version: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while version_served(port).as_deref() != Some(version) {
        assert!(
            Instant::now() < deadline,
            "port {port} does not serve version {version}"
        );
        thread::sleep(PROBE_EVERY);
    }
}

/// Asks the published port for the page every PROBE_EVERY until it serves the new version.
struct Probe {
    samples: JoinHandle<Vec<(Instant, Option<String>)>>,
    give_up: Arc<AtomicBool>,
}

impl Probe {
    fn start(port: u16, new: &str) -> Probe {
        let new = new.to_owned();
        let give_up = Arc::new(AtomicBool::new(false));
        let giving_up = Arc::clone(&give_up);
        let samples = thread::spawn(move || {
            let mut samples = Vec::new();
            let mut next = Instant::now();
            while !giving_up.load(Ordering::SeqCst) {
                let served = version_served(port);
                let done = served.as_deref() == Some(new.as_str());
                samples.push((Instant::now(), served));
                if done {
                    break;
                }
                next += PROBE_EVERY;
                thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            samples
        });
        Probe { samples, give_up }
    }

    /// The time from the last answer of `old` to the first answer of `new`.
    fn gap(self, old: &str, new: &str) -> Duration {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.samples.is_finished() && Instant::now() < deadline {
            thread::sleep(PROBE_EVERY);
        }
        self.give_up.store(true, Ordering::SeqCst);
        let samples = self
            .samples
            .join()
            .unwrap_or_else(|_| panic!("the probe thread panicked"));
        let first_new = samples
            .iter()
            .position(|(_, v)| v.as_deref() == Some(new))
            .unwrap_or_else(|| panic!("version {new} was never served"));
        let last_old = samples[..first_new]
            .iter()
            .rposition(|(_, v)| v.as_deref() == Some(old))
            .unwrap_or_else(|| panic!("version {old} was not served before {new}"));
        samples[first_new].0 - samples[last_old].0
    }
}

/// The compose program: v1's `docker-compose`, or Compose v2 where the lane names it
/// (`TIDEWATCH_TEST_COMPOSE`, scripts/lane), run standalone with the same arguments.
fn compose_program() -> String {
    std::env::var("TIDEWATCH_TEST_COMPOSE").unwrap_or_else(|_| "docker-compose".to_owned())
}

/// A one-service compose project for the bench's compose side.
struct Compose {
    dir: PathBuf,
    project: String,
}

impl Compose {
    /// Writes the compose file and brings the service up.
    fn up(bed: &TestBed, image: &str, port: u16) -> Compose {
        let dir = bed.dir().join("compose");
        fs::create_dir_all(&dir)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", dir.display()));
        // The bed label gets the container cleaned up with the bed; without a tidewatch.scope
        // label it is out of the agent's scope.
        let file = format!(
            "version: \"2.4\"\nservices:\n  web:\n    image: {image}\n    ports:\n      - \
             \"127.0.0.1:{port}:{APP_PORT}\"\n    labels:\n      tidewatch.test: \"{}\"\n",
            bed.id()
        );
        fs::write(dir.join("docker-compose.yml"), file)
            .unwrap_or_else(|error| panic!("cannot write the compose file: {error}"));
        let compose = Compose {
            dir,
            project: bed.id().to_owned(),
        };
        compose.run(&["up", "--detach"]);
        compose
    }

    fn run(&self, args: &[&str]) {
        let output = Command::new(compose_program())
            .arg("--project-name")
            .arg(&self.project)
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|error| {
                panic!("cannot run docker-compose: {error} (run scripts/test-env)")
            });
        assert!(
            output.status.success(),
            "docker-compose {}: {}\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        let _ = Command::new(compose_program())
            .arg("--project-name")
            .arg(&self.project)
            .args(["down", "--timeout", "1"])
            .current_dir(&self.dir)
            .output();
    }
}

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap_or_else(|error| panic!("cannot find a free port: {error}"))
}
