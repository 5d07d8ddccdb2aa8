//! A service as an operator runs one: the test app with a chosen way of stopping, started with
//! `docker run` options (stop timeout, published port, named volume), and the named volume itself.

use super::bed::{TestBed, SCOPE_LABEL, TEST_LABEL};
use super::docker::{docker, try_docker};
use super::images::APP_PORT;

/// What the app does when `docker stop` sends it SIGTERM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnTerm {
    /// Ignores it and keeps serving, so a stop lasts the container's whole stop timeout and ends
    /// with SIGKILL: a slow-stopping service.
    Ignore,
    /// Exits at once, as a well-behaved service does.
    Exit,
}

impl TestBed {
    /// Builds the test app (see [`TestBed::build_app`]) as `image`, with an entrypoint that
    /// handles SIGTERM as `on_term` says. Returns the image id.
    ///
    /// The plain app runs httpd as PID 1 with no SIGTERM handler; the kernel then drops SIGTERM,
    /// so it would stop only after the default 10 s. Saying what happens explicitly keeps the
    /// tests independent of that detail.
    pub fn build_app_stopping(&self, image: &str, version: &str, on_term: OnTerm) -> String {
        let httpd = format!("/bin/busybox httpd -f -p {APP_PORT} -h /www");
        let script = match on_term {
            // An ignored signal stays ignored across exec.
            OnTerm::Ignore => format!("trap '' TERM; exec {httpd}"),
            // sh stays PID 1 so that its trap, not the kernel's PID-1 rule, decides.
            OnTerm::Exit => format!("{httpd} & trap 'exit 0' TERM; wait"),
        };
        let entrypoint = serde_json::json!(["/bin/busybox", "sh", "-c", script]);
        self.build_app_with_entrypoint(image, version, &entrypoint.to_string())
    }

    /// Runs `image` detached as the bed's container `name`, like [`TestBed::run`], with extra
    /// `docker run` options before the image and `command` after it. Returns its id.
    pub fn run_service(
        &self,
        name: &str,
        options: &[&str],
        image: &str,
        command: &[&str],
    ) -> String {
        let name = self.name(name);
        let test_label = format!("{TEST_LABEL}={}", self.id());
        let scope_label = format!("{SCOPE_LABEL}={}", self.scope());
        let mut args = vec!["run", "--detach", "--name", &name];
        args.extend(["--label", &test_label, "--label", &scope_label]);
        args.extend_from_slice(options);
        args.push(image);
        args.extend_from_slice(command);
        docker(&args)
    }

    /// Creates the named volume `<bed id>-<name>`; it is removed when the returned guard drops.
    pub fn volume(&self, name: &str) -> Volume {
        let name = self.name(name);
        docker(&[
            "volume",
            "create",
            "--label",
            &format!("{TEST_LABEL}={}", self.id()),
            &name,
        ]);
        Volume {
            name,
            bed: self.id().to_owned(),
        }
    }
}

/// A named volume of a test bed. Dropping it removes the bed's containers that use it, then the
/// volume (the bed's own cleanup keeps named volumes, as `docker rm --volumes` does).
pub struct Volume {
    name: String,
    bed: String,
}

impl Volume {
    /// The volume's name, for `--volume NAME:/path`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let users = try_docker(&[
            "ps",
            "--all",
            "--quiet",
            "--filter",
            &format!("volume={}", self.name),
            "--filter",
            &format!("label={TEST_LABEL}={}", self.bed),
        ]);
        let result = users.and_then(|users| {
            let users: Vec<&str> = users.split_whitespace().collect();
            if !users.is_empty() {
                let args: Vec<&str> = ["rm", "--force"].into_iter().chain(users).collect();
                try_docker(&args)?;
            }
            try_docker(&["volume", "rm", "--force", &self.name])
        });
        if let Err(error) = result {
            eprintln!("cleanup of volume {}: {error}", self.name);
        }
    }
}
