//! Containers the update tests need beyond [`TestBed::run`]: started with extra `docker run`
//! options, images from a Dockerfile of the test's own (broken on purpose, slow to become
//! healthy, a sidecar), what a container serves and its health.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use super::bed::{TestBed, IMAGE_LABEL, SCOPE_LABEL, TEST_LABEL};
use super::docker::{build, docker, try_docker};
use super::images::{page, push, APP_PORT};

/// The static busybox the test images are made of (see `images.rs`).
const BUSYBOX: &str = "/bin/busybox";

/// How long a test container gets to serve its first page.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// What [`TestBed::web_on_v1`] started.
pub struct Web {
    /// The manifest digest `docker push` reported for version 1.
    pub digest: String,
    /// The id of the container "web".
    pub id: String,
}

/// `docker run` options the update tests give every container they start.
///
/// busybox as PID 1 ignores SIGTERM, so a plain `docker stop` would wait its full 10 s before
/// SIGKILL, and every recreate would cost that much. A one-second stop timeout is a user setting
/// like any other: tidewatch stops the old container with it (and carries it over).
pub const QUICK_STOP: &[&str] = &["--stop-timeout", "1"];

/// An image that cannot pass tidewatch's health gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    /// Serves like the app, but its HEALTHCHECK always fails.
    FailingHealthcheck,
    /// Its process exits with code 3 as soon as it starts.
    ExitsAtOnce,
}

impl TestBed {
    /// Like [`TestBed::run`], with extra `docker run` options before the image and `command`
    /// after it. Returns the container id.
    pub fn run_with(
        &self,
        name: &str,
        options: &[&str],
        image: &str,
        command: &[&str],
        labels: &[(&str, &str)],
    ) -> String {
        let name = self.name(name);
        let mut args = vec!["run", "-d", "--name", &name];
        let mut all = vec![(TEST_LABEL, self.id()), (SCOPE_LABEL, self.scope())];
        all.retain(|(key, _)| !labels.iter().any(|(own, _)| own == key));
        all.extend_from_slice(labels);
        let labels: Vec<String> = all
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        for label in &labels {
            args.extend(["--label", label]);
        }
        args.extend_from_slice(options);
        args.push(image);
        args.extend_from_slice(command);
        docker(&args)
    }

    /// Builds `image` from a Dockerfile whose build context holds only `busybox` (the static
    /// binary), labelled with the bed id like every test image. Returns the image id.
    pub fn build_dockerfile(&self, image: &str, dockerfile: &str) -> String {
        static BUILDS: AtomicU32 = AtomicU32::new(0);
        let context = self.dir().join(format!(
            "dockerfile-{}",
            BUILDS.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&context)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", context.display()));
        fs::copy(BUSYBOX, context.join("busybox")).unwrap_or_else(|error| {
            panic!("cannot copy {BUSYBOX} into the build context: {error} (run scripts/test-env)")
        });
        write(&context.join("Dockerfile"), dockerfile);
        build(
            &["--label", &format!("{IMAGE_LABEL}={}", self.id())],
            image,
            &context,
        )
    }

    /// Builds a broken image as `image`; `tag` goes into a label so that every build is a new
    /// digest.
    pub fn build_broken(&self, image: &str, broken: Broken, tag: &str) -> String {
        let body = match broken {
            Broken::FailingHealthcheck => format!(
                r#"HEALTHCHECK --interval=1s --timeout=2s --retries=2 CMD ["/bin/busybox", "false"]
ENTRYPOINT ["/bin/busybox", "httpd", "-f", "-p", "{APP_PORT}", "-h", "/"]"#
            ),
            Broken::ExitsAtOnce => {
                r#"ENTRYPOINT ["/bin/busybox", "sh", "-c", "echo giving up; exit 3"]"#.to_owned()
            }
        };
        self.build_dockerfile(
            image,
            &format!(
                "FROM scratch\nCOPY busybox /bin/busybox\nLABEL tidewatch.test.version={tag}\n{body}\n"
            ),
        )
    }

    /// Builds the app as `image`, serving `version` like [`TestBed::build_app`], but healthy
    /// only `delay_secs` seconds after it starts: a replacement that keeps tidewatch in its
    /// health gate for a while. Failed checks before then fall in the start period, so they
    /// leave it `starting` rather than `unhealthy`.
    pub fn build_slow_app(&self, image: &str, version: &str, delay_secs: u32) -> String {
        self.build_dockerfile(
            image,
            &format!(
                r#"FROM scratch
COPY busybox /bin/busybox
LABEL tidewatch.test.version={version}
HEALTHCHECK --interval=1s --timeout=2s --retries=3 --start-period=60s CMD ["/bin/busybox", "test", "-e", "/tmp/ready"]
ENTRYPOINT ["/bin/busybox", "sh", "-c", "/bin/busybox mkdir -p /tmp /www; echo 'tidewatch test app version {version}' > /www/index.html; (/bin/busybox sleep {delay_secs}; /bin/busybox touch /tmp/ready) & exec /bin/busybox httpd -f -p {APP_PORT} -h /www"]
"#
            ),
        )
    }

    /// What the bed's container `name` serves on the app port, asked from inside it (or from
    /// inside whatever network namespace it shares).
    pub fn serves(&self, name: &str) -> String {
        docker(&[
            "exec",
            &self.name(name),
            "/bin/busybox",
            "wget",
            "-q",
            "-O",
            "-",
            &format!("http://127.0.0.1:{APP_PORT}/"),
        ])
    }

    /// Like [`TestBed::serves`], `None` while nothing answers (or the container is gone).
    pub fn try_serves(&self, name: &str) -> Option<String> {
        try_docker(&[
            "exec",
            &self.name(name),
            "/bin/busybox",
            "wget",
            "-q",
            "-O",
            "-",
            &format!("http://127.0.0.1:{APP_PORT}/"),
        ])
        .ok()
    }

    /// Where most update tests start: the app at version 1 built as `image` and pushed, and
    /// the bed's container "web" (with [`QUICK_STOP`] and `labels`) serving it.
    pub fn web_on_v1(&self, image: &str, labels: &[(&str, &str)]) -> Web {
        self.build_app(image, "1");
        let digest = push(image);
        let id = self.run_with("web", QUICK_STOP, image, &[], labels);
        self.wait_until_serving("web", &page("1"), START_TIMEOUT);
        Web { digest, id }
    }

    /// Waits until the bed's container `name` serves a page containing `wanted`; panics after
    /// `timeout` with what it served last.
    pub fn wait_until_serving(&self, name: &str, wanted: &str, timeout: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let served = self.try_serves(name);
            if served.as_deref().is_some_and(|page| page.contains(wanted)) {
                return started.elapsed();
            }
            if started.elapsed() > timeout {
                panic!(
                    "{} did not serve {wanted:?} within {timeout:?}; last served: {served:?}",
                    self.name(name)
                );
            }
            thread::sleep(Duration::from_millis(250));
        }
    }

    /// Waits until the bed's container `name` is running and its HEALTHCHECK says healthy.
    pub fn wait_until_healthy(&self, name: &str, timeout: Duration) {
        let started = Instant::now();
        loop {
            let health = self.health(name);
            if health == "healthy" {
                return;
            }
            if started.elapsed() > timeout {
                panic!(
                    "{} not healthy within {timeout:?}: {health}",
                    self.name(name)
                );
            }
            thread::sleep(Duration::from_millis(250));
        }
    }

    /// Waits until a container other than `old` runs under the bed's name `name`: the
    /// replacement tidewatch started. Returns its id.
    pub fn wait_for_replacement(&self, name: &str, old: &str, timeout: Duration) -> String {
        let started = Instant::now();
        loop {
            let state = try_docker(&[
                "container",
                "inspect",
                "--format",
                "{{.Id}} {{.State.Running}}",
                &self.name(name),
            ]);
            if let Some((id, "true")) = state.as_deref().ok().and_then(|s| s.split_once(' ')) {
                if id != old {
                    return id.to_owned();
                }
            }
            if started.elapsed() > timeout {
                panic!(
                    "no replacement of {} started within {timeout:?}; containers: {:?}",
                    self.name(name),
                    self.container_names()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The HEALTHCHECK status of the bed's container `name` ("starting", "healthy", ...), or
    /// "none" when it has no healthcheck.
    pub fn health(&self, name: &str) -> String {
        docker(&[
            "container",
            "inspect",
            "--format",
            "{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}",
            &self.name(name),
        ])
    }

    /// The `HostConfig.NetworkMode` of the bed's container `name`.
    pub fn network_mode(&self, name: &str) -> String {
        docker(&[
            "container",
            "inspect",
            "--format",
            "{{.HostConfig.NetworkMode}}",
            &self.name(name),
        ])
    }

    /// Names of every container of this bed, running or not.
    pub fn container_names(&self) -> Vec<String> {
        let listed = docker(&[
            "ps",
            "--all",
            "--format",
            "{{.Names}}",
            "--filter",
            &format!("label={TEST_LABEL}={}", self.id()),
        ]);
        let mut names: Vec<String> = listed.lines().map(str::to_owned).collect();
        names.sort();
        names
    }
}

fn write(path: &Path, contents: &str) {
    fs::write(path, contents)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
}

impl TestBed {
    /// Creates and starts the bed's container `name` through the Engine API itself, with a
    /// `StopTimeout` (seconds) the docker CLI cannot express (it takes a 32-bit number; the
    /// API takes 64 bits), `binds` as `-v` takes them, and `labels`. Returns the container id.
    pub fn run_with_stop_timeout(
        &self,
        name: &str,
        image: &str,
        stop_timeout: i64,
        binds: &[&str],
        labels: &[(&str, &str)],
    ) -> String {
        let mut all = serde_json::Map::new();
        for (key, value) in [(TEST_LABEL, self.id()), (SCOPE_LABEL, self.scope())]
            .iter()
            .chain(labels)
        {
            all.insert((*key).to_owned(), serde_json::Value::from(*value));
        }
        let body = serde_json::json!({
            "Image": image,
            "Labels": all,
            "StopTimeout": stop_timeout,
            "HostConfig": { "Binds": binds },
        });
        let (status, answer) = engine_api(
            "POST",
            &format!("/containers/create?name={}", self.name(name)),
            Some(&body),
        );
        assert_eq!(status, 201, "creating {name} through the API: {answer}");
        let id = serde_json::from_str::<serde_json::Value>(&answer)
            .ok()
            .and_then(|created| created["Id"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("the engine created {name} without an id: {answer}"));
        let (status, answer) = engine_api("POST", &format!("/containers/{id}/start"), None);
        assert_eq!(status, 204, "starting {name}: {answer}");
        id
    }
}

/// One request to the engine's unix socket (HTTP/1.0: the engine answers, then closes).
fn engine_api(method: &str, path: &str, body: Option<&serde_json::Value>) -> (u16, String) {
    use std::io::{Read, Write};
    let host = super::docker::Engine::host();
    let socket = host
        .strip_prefix("unix://")
        .unwrap_or_else(|| panic!("the Engine API helper speaks to a unix socket, not {host}"));
    let mut stream = std::os::unix::net::UnixStream::connect(socket)
        .unwrap_or_else(|error| panic!("cannot connect to {socket}: {error}"));
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: docker\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .unwrap_or_else(|error| panic!("writing to {socket}: {error}"));
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .unwrap_or_else(|error| panic!("reading from {socket}: {error}"));
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer from {socket}: {answer}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}
