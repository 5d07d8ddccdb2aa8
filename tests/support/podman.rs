//! Podman's Docker-compatible service as a second engine: `podman system service` on a socket of
//! its own, with a configuration, storage, network and event log of its own (test-owned files
//! named by `CONTAINERS_CONF`, `CONTAINERS_STORAGE_CONF` and `CONTAINERS_REGISTRIES_CONF`), so the
//! machine's own Podman setup, if any, is neither used nor changed.
//!
//! The service is started once per test binary, by the first test that asks for it. A watchdog
//! shell, in a session of its own, waits for the test binary to exit, then removes whatever
//! containers are left, stops the service and deletes its directory: statics are never dropped,
//! and the service must not outlive the tests.
//!
//! Images are built by docker and pushed to a test registry ([`TestBed::build_app`], [`push`]);
//! Podman pulls them from there, once the registry is [trusted](PodmanBed::trust) for plain HTTP.
//!
//! [`push`]: super::push

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use super::bed::{TestBed, IMAGE_LABEL, SCOPE_LABEL, TEST_LABEL};
use super::docker::stdout_of;
use super::registry::Registry;

/// Where the services of all test binaries keep their sockets and state, one directory each.
/// Short, because a unix socket path has room for about 100 bytes.
const BASE_DIR: &str = "/run/tidewatch-podman";
/// How long the service may take to answer `GET /_ping`, and to reload its configuration.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Written by the service (at log level info) when it has reloaded its configuration after a
/// SIGHUP; the registries configuration is reloaded before it.
const RELOADED: &str = "Applied new storage configuration";
/// The ulimits every test container gets. Podman gives containers 1048576 open files and
/// processes unless told otherwise; where the service may not raise its own limits that far
/// (no CAP_SYS_RESOURCE, as in CI's sandbox), the OCI runtime fails every start with "error
/// setting rlimit type 7". Lowering is always allowed.
const ULIMITS: &str = r#"["nofile=4096:4096", "nproc=4096:4096"]"#;

/// Starts the service on socket `$1` with its files in `$2`, waits for process `$3` (the test
/// binary) to exit, then removes what is left and stops it.
const WATCHDOG: &str = r#"podman --log-level=info system service --time=0 "unix://$1" >>"$2/service.log" 2>&1 &
svc=$!
echo "$svc" >"$2/service.pid"
tail --pid="$3" -f /dev/null
podman rm --all --force --time 0 >/dev/null 2>&1
kill "$svc"
wait "$svc"
umount "$2/root/overlay" 2>/dev/null
rm -rf "$2"
"#;

/// The one Podman service of this test binary.
pub struct Podman {
    dir: PathBuf,
    socket: PathBuf,
    /// The service's process id, for SIGHUP.
    pid: u32,
    /// Serialises changes to registries.conf and the reloads they need.
    registries: Mutex<()>,
}

impl Podman {
    /// The service, started on first use; panics with the reason when Podman cannot be started
    /// (not installed: run scripts/test-env).
    pub fn require() -> &'static Podman {
        static PODMAN: OnceLock<Result<Podman, String>> = OnceLock::new();
        match PODMAN.get_or_init(Podman::start) {
            Ok(podman) => podman,
            Err(error) => panic!("podman service: {error}"),
        }
    }

    /// The service's address, as `[docker] host` takes it.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The service's log (its requests and errors, at level info).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("service.log")).unwrap_or_default()
    }

    fn start() -> Result<Podman, String> {
        let found = Command::new("podman")
            .arg("--version")
            .output()
            .map_err(|error| format!("cannot run podman: {error} (run scripts/test-env)"))?;
        if !found.status.success() {
            return Err(format!("`podman --version` failed: {found:?}"));
        }
        let dir = PathBuf::from(BASE_DIR).join(format!("test-{}", std::process::id()));
        // A directory of an earlier binary with the same pid is a leftover.
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)
            .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
        write_config(&dir)?;
        let socket = dir.join("podman.sock");

        Command::new("setsid")
            .args(["sh", "-c", WATCHDOG, "podman-watchdog"])
            .arg(&socket)
            .arg(&dir)
            .arg(std::process::id().to_string())
            .envs(config_env(&dir))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| format!("cannot run setsid: {error}"))?;

        let deadline = Instant::now() + START_TIMEOUT;
        let pid_file = dir.join("service.pid");
        loop {
            let pid = fs::read_to_string(&pid_file)
                .ok()
                .and_then(|pid| pid.trim().parse().ok());
            if let (Some(pid), true) = (pid, ping(&socket)) {
                return Ok(Podman {
                    dir,
                    socket,
                    pid,
                    registries: Mutex::new(()),
                });
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "did not answer on {} within {START_TIMEOUT:?}; log:\n{}",
                    socket.display(),
                    fs::read_to_string(dir.join("service.log")).unwrap_or_default()
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Lets Podman pull from `registry` over plain HTTP: it is added to registries.conf as
    /// insecure, and the service reloads it (on SIGHUP).
    pub fn trust(&self, registry: &Registry) {
        let _one_at_a_time = self
            .registries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let path = self.dir.join("registries.conf");
        let entry = format!(
            "\n[[registry]]\nlocation = \"{}\"\ninsecure = true\n",
            registry.host()
        );
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(entry.as_bytes()))
            .unwrap_or_else(|error| panic!("cannot append to {}: {error}", path.display()));
        let reloads = self.log().matches(RELOADED).count();
        let hup = Command::new("kill")
            .args(["-HUP", &self.pid.to_string()])
            .status()
            .unwrap_or_else(|error| panic!("cannot run kill: {error}"));
        assert!(hup.success(), "kill -HUP {} failed", self.pid);
        let deadline = Instant::now() + START_TIMEOUT;
        while self.log().matches(RELOADED).count() == reloads {
            assert!(
                Instant::now() < deadline,
                "podman did not reload its configuration within {START_TIMEOUT:?}; log:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `podman --remote ARGS` against the service and returns its trimmed stdout; panics
    /// with the command and its stderr.
    pub fn podman(&self, args: &[&str]) -> String {
        self.try_podman(args)
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// Like [`Podman::podman`], with the error returned (for cleanup paths, which must not
    /// panic).
    pub fn try_podman(&self, args: &[&str]) -> Result<String, String> {
        let mut podman = Command::new("podman");
        podman
            .args(["--remote", "--url", &self.host()])
            .args(args)
            .envs(config_env(&self.dir))
            .stdin(Stdio::null());
        stdout_of(
            podman,
            &format!("podman {}", args.join(" ")),
            "run scripts/test-env",
        )
    }
}

/// The environment that points Podman (service and client) at the test's own configuration.
fn config_env(dir: &Path) -> Vec<(String, PathBuf)> {
    [
        ("CONTAINERS_CONF", "containers.conf"),
        ("CONTAINERS_STORAGE_CONF", "storage.conf"),
        ("CONTAINERS_REGISTRIES_CONF", "registries.conf"),
    ]
    .into_iter()
    .map(|(variable, file)| (variable.to_owned(), dir.join(file)))
    .collect()
}

/// Writes the service's configuration: everything it keeps under `dir`; the cgroupfs cgroup
/// manager and a file event log, since there is no systemd; modest ulimits (see [`ULIMITS`]);
/// no registry to resolve short names against.
fn write_config(dir: &Path) -> Result<(), String> {
    let path = |name: &str| dir.join(name).display().to_string();
    let files = [
        (
            "containers.conf",
            format!(
                "[containers]\n\
                 default_ulimits = {ULIMITS}\n\
                 log_driver = \"k8s-file\"\n\
                 \n\
                 [network]\n\
                 network_config_dir = \"{networks}\"\n\
                 \n\
                 [engine]\n\
                 cgroup_manager = \"cgroupfs\"\n\
                 events_logger = \"file\"\n\
                 events_logfile_path = \"{events}\"\n\
                 tmp_dir = \"{tmp}\"\n\
                 volume_path = \"{volumes}\"\n",
                networks = path("networks"),
                events = path("events.log"),
                tmp = path("tmp"),
                volumes = path("volumes"),
            ),
        ),
        (
            "storage.conf",
            format!(
                "[storage]\n\
                 driver = \"overlay\"\n\
                 graphroot = \"{root}\"\n\
                 runroot = \"{runroot}\"\n",
                root = path("root"),
                runroot = path("runroot"),
            ),
        ),
        (
            "registries.conf",
            "unqualified-search-registries = []\n".to_owned(),
        ),
    ];
    for (name, contents) in files {
        fs::write(dir.join(name), contents)
            .map_err(|error| format!("cannot write {}: {error}", path(name)))?;
    }
    Ok(())
}

/// Whether the service answers `GET /_ping` on `socket`.
fn ping(socket: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream
        .write_all(b"GET /_ping HTTP/1.0\r\nHost: podman\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.") && answer.contains(" 200 ")
}

/// A test bed's containers, volumes and images on the Podman service; removed on drop.
pub struct PodmanBed<'a> {
    bed: &'a TestBed,
    podman: &'static Podman,
}

impl TestBed {
    /// This bed on the Podman service (started on first use).
    pub fn on_podman(&self) -> PodmanBed<'_> {
        PodmanBed {
            bed: self,
            podman: Podman::require(),
        }
    }
}

impl PodmanBed<'_> {
    /// The service's address, for `[docker] host`.
    pub fn host(&self) -> String {
        self.podman.host()
    }

    /// The service.
    pub fn podman(&self) -> &'static Podman {
        self.podman
    }

    /// Lets Podman pull from `registry` (see [`Podman::trust`]).
    pub fn trust(&self, registry: &Registry) {
        self.podman.trust(registry);
    }

    /// `podman run -d` of `image` as the bed's container `name`, labelled with the bed id and
    /// scope, with `options` before the image. Returns the container id.
    pub fn run(&self, name: &str, options: &[&str], image: &str) -> String {
        self.container(&["run", "--detach"], name, options, image)
    }

    /// `podman create` of `image` as the bed's container `name`, like [`PodmanBed::run`] but
    /// not started. Returns the container id.
    pub fn create(&self, name: &str, options: &[&str], image: &str) -> String {
        self.container(&["create"], name, options, image)
    }

    fn container(&self, command: &[&str], name: &str, options: &[&str], image: &str) -> String {
        let name = self.bed.name(name);
        let test_label = format!("{TEST_LABEL}={}", self.bed.id());
        let scope_label = format!("{SCOPE_LABEL}={}", self.bed.scope());
        let mut args = command.to_vec();
        args.extend(["--name", &name]);
        args.extend(["--label", &test_label, "--label", &scope_label]);
        args.extend_from_slice(options);
        args.push(image);
        self.podman.podman(&args)
    }

    /// Creates the named volume `<bed id>-<name>`, labelled with the bed id; returns its name.
    pub fn volume(&self, name: &str) -> String {
        let name = self.bed.name(name);
        let label = format!("{TEST_LABEL}={}", self.bed.id());
        self.podman
            .podman(&["volume", "create", "--label", &label, &name])
    }

    /// `podman container inspect --format FORMAT` of the bed's container `name`.
    pub fn inspect(&self, name: &str, format: &str) -> String {
        self.podman.podman(&[
            "container",
            "inspect",
            "--format",
            format,
            &self.bed.name(name),
        ])
    }

    /// The id of the bed's container `name`.
    pub fn container_id(&self, name: &str) -> String {
        self.inspect(name, "{{.Id}}")
    }

    /// Whether the bed's container `name` is running.
    pub fn is_running(&self, name: &str) -> bool {
        self.inspect(name, "{{.State.Running}}") == "true"
    }

    /// The names of the bed's containers, sorted.
    pub fn container_names(&self) -> Vec<String> {
        let filter = format!("label={TEST_LABEL}={}", self.bed.id());
        let listed =
            self.podman
                .podman(&["ps", "--all", "--filter", &filter, "--format", "{{.Names}}"]);
        let mut names: Vec<String> = listed.lines().map(str::to_owned).collect();
        names.sort();
        names
    }

    /// Removes, without panicking, what `list` prints with `remove`.
    fn remove_listed(&self, list: &[&str], remove: &[&str]) {
        let listed = match self.podman.try_podman(list) {
            Ok(listed) => listed,
            Err(error) => return eprintln!("podman cleanup of {}: {error}", self.bed.id()),
        };
        let mut ids: Vec<&str> = listed.split_whitespace().collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return;
        }
        let args: Vec<&str> = remove.iter().copied().chain(ids).collect();
        if let Err(error) = self.podman.try_podman(&args) {
            eprintln!("podman cleanup of {}: {error}", self.bed.id());
        }
    }
}

impl Drop for PodmanBed<'_> {
    fn drop(&mut self) {
        let containers = format!("label={TEST_LABEL}={}", self.bed.id());
        self.remove_listed(
            &["ps", "--all", "--quiet", "--filter", &containers],
            &["rm", "--force", "--time", "0"],
        );
        self.remove_listed(
            &["volume", "ls", "--quiet", "--filter", &containers],
            &["volume", "rm", "--force"],
        );
        let images = format!("label={IMAGE_LABEL}={}", self.bed.id());
        self.remove_listed(
            &["images", "--quiet", "--filter", &images],
            &["rmi", "--force"],
        );
    }
}
