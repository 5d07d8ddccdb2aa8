//! [`TestBed`]: one test's identity, scratch directory and containers, cleaned up on drop.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use tempfile::TempDir;

use super::docker::{docker, try_docker, Engine};

/// Label every test container carries: `tidewatch.test=<bed id>`, for cleanup.
pub const TEST_LABEL: &str = "tidewatch.test";
/// Label every test image carries: `tidewatch.test.image=<bed id>`, for cleanup. Not the
/// container label: containers inherit image labels, and a container must be cleaned by the
/// test that ran it.
pub const IMAGE_LABEL: &str = "tidewatch.test.image";
/// The label an agent's `[watch] scope` selects on.
pub const SCOPE_LABEL: &str = "tidewatch.scope";

/// One test's world: a unique id, which is also the `tidewatch.scope` of its containers, a
/// scratch directory, and everything it ran or built. Dropping it removes the containers and
/// images; when the test is failing, the directory is kept and printed.
pub struct TestBed {
    id: String,
    dir: TempDir,
}

impl TestBed {
    /// A new bed for the test `name`; panics unless the docker engine answers.
    pub fn new(name: &str) -> TestBed {
        Engine::require();
        let id = unique_id(name);
        let dir = super::scratch_dir(&format!("{id}-"));
        TestBed { id, dir }
    }

    /// The bed's unique id: lowercase, usable in container names, labels and repositories.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The `tidewatch.scope` value of this bed's containers.
    pub fn scope(&self) -> &str {
        &self.id
    }

    /// The bed's scratch directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The docker name of the bed's container `name` (names are prefixed with the bed id so
    /// parallel tests can all have a "web").
    pub fn name(&self, name: &str) -> String {
        format!("{}-{name}", self.id)
    }

    /// Runs `image` detached as the bed's container `name`, labelled with the bed id, the bed's
    /// scope (unless `labels` sets `tidewatch.scope` itself) and `labels`. Returns its id.
    pub fn run(&self, name: &str, image: &str, labels: &[(&str, &str)]) -> String {
        let name = self.name(name);
        let mut all = vec![(TEST_LABEL, self.id.as_str())];
        if !labels.iter().any(|(key, _)| *key == SCOPE_LABEL) {
            all.push((SCOPE_LABEL, self.scope()));
        }
        all.extend_from_slice(labels);

        let mut args = vec!["run".to_owned(), "-d".to_owned(), "--name".to_owned(), name];
        for (key, value) in all {
            args.push("--label".to_owned());
            args.push(format!("{key}={value}"));
        }
        args.push(image.to_owned());
        docker(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// The id of the bed's container `name`.
    pub fn container_id(&self, name: &str) -> String {
        self.inspect(name, "{{.Id}}")
    }

    /// The id of the image the bed's container `name` runs (not what its tag points to now).
    pub fn image_id(&self, name: &str) -> String {
        self.inspect(name, "{{.Image}}")
    }

    /// Whether the bed's container `name` is running.
    pub fn is_running(&self, name: &str) -> bool {
        self.inspect(name, "{{.State.Running}}") == "true"
    }

    fn inspect(&self, name: &str, format: &str) -> String {
        docker(&["container", "inspect", "--format", format, &self.name(name)])
    }

    /// Removes everything this bed created in the engine. Errors are reported, not raised:
    /// cleanup runs in drop, where a panic would abort the whole test binary.
    fn cleanup(&self) {
        let containers = format!("label={TEST_LABEL}={}", self.id);
        self.remove_listed(
            &["ps", "--all", "--quiet", "--filter", &containers],
            &["rm", "--force", "--volumes"],
            true,
        );
        let images = format!("label={IMAGE_LABEL}={}", self.id);
        // An image built FROM another of the bed's must go first: the engine refuses to remove
        // a parent before its children, so what one pass leaves, the next removes.
        for pass in 1..=3 {
            let done = self.remove_listed(
                &["image", "ls", "--quiet", "--filter", &images],
                &["rmi", "--force"],
                pass == 3,
            );
            if done {
                break;
            }
        }
    }

    /// Runs the `remove` command on the ids that the `list` command prints, if any. True when
    /// that went through (or there was nothing to remove); a failure is reported when `report`.
    fn remove_listed(&self, list: &[&str], remove: &[&str], report: bool) -> bool {
        let listed = match try_docker(list) {
            Ok(listed) => listed,
            Err(error) => {
                eprintln!("cleanup of {}: {error}", self.id);
                return true;
            }
        };
        // An image with several tags is listed once per tag.
        let mut ids: Vec<&str> = listed.split_whitespace().collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return true;
        }
        let args: Vec<&str> = remove.iter().copied().chain(ids).collect();
        match try_docker(&args) {
            Ok(_) => true,
            Err(error) => {
                if report {
                    eprintln!("cleanup of {}: {error}", self.id);
                }
                false
            }
        }
    }
}

impl Drop for TestBed {
    fn drop(&mut self) {
        self.cleanup();
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "test bed {} kept for inspection: {}",
                self.id,
                self.dir.path().display()
            );
        }
    }
}

/// "tw-<name>-<8 hex>": readable in `docker ps`, unique across parallel tests and runs.
fn unique_id(name: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    // RandomState is randomly keyed per process; mixing in pid, a counter and the time makes
    // ids from concurrent test processes differ too.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u32(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    hasher.write_u128(nanos);

    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(24)
        .collect();
    format!(
        "tw-{}-{:08x}",
        slug.trim_matches('-'),
        hasher.finish() as u32
    )
}
