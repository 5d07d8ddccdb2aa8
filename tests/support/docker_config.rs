//! Docker's client configuration (`$DOCKER_CONFIG/config.json`) as a test writes it: `auths`
//! entries, `credsStore`, per-registry `credHelpers`, and the `docker-credential-NAME` helper
//! programs those name. The same directory serves the `docker` CLI (to push to a registry that
//! wants credentials) and tidewatch (to find them the way the engine's user does).

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::docker::try_docker_with;

/// A `DOCKER_CONFIG` directory and its config.json, rewritten on every change.
pub struct DockerConfig {
    dir: PathBuf,
    json: Value,
}

impl DockerConfig {
    /// An empty configuration (`{}`) in `dir`, which is created.
    pub fn new(dir: &Path) -> DockerConfig {
        fs::create_dir_all(dir)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", dir.display()));
        let config = DockerConfig {
            dir: dir.to_owned(),
            json: json!({}),
        };
        config.save();
        config
    }

    /// The directory, for `DOCKER_CONFIG`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Adds `auths.<host>.auth = base64(user:password)`, what `docker login` writes without a
    /// credential store.
    pub fn auth(&mut self, host: &str, user: &str, password: &str) -> &mut DockerConfig {
        self.json["auths"][host] = json!({ "auth": STANDARD.encode(format!("{user}:{password}")) });
        self.save();
        self
    }

    /// Adds `credHelpers.<host> = <helper>`: run `docker-credential-<helper>` for that host.
    pub fn cred_helper(&mut self, host: &str, helper: &str) -> &mut DockerConfig {
        self.json["credHelpers"][host] = json!(helper);
        self.save();
        self
    }

    /// Sets `credsStore = <helper>`: run `docker-credential-<helper>` for every host.
    pub fn creds_store(&mut self, helper: &str) -> &mut DockerConfig {
        self.json["credsStore"] = json!(helper);
        self.save();
        self
    }

    fn save(&self) {
        let path = self.dir.join("config.json");
        fs::write(&path, self.json.to_string())
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
    }

    /// Runs `docker ARGS` with this configuration; panics with stderr on failure.
    pub fn docker(&self, args: &[&str]) -> String {
        try_docker_with(Some(&self.dir), args).unwrap_or_else(|error| panic!("{error}"))
    }

    /// Pushes `image` with these credentials and returns the manifest digest.
    pub fn push(&self, image: &str) -> String {
        let output = self.docker(&["push", image]);
        super::images::digest_in_push_output(image, &output)
    }

    /// Pulls `image` with these credentials.
    pub fn pull(&self, image: &str) {
        self.docker(&["pull", "--quiet", image]);
    }
}

/// A `docker-credential-<name>` program in a directory of its own, answering `get` for one
/// host with fixed credentials and logging every host it is asked about.
pub struct CredentialHelper {
    bin: PathBuf,
    log: PathBuf,
}

impl CredentialHelper {
    /// Installs `docker-credential-<name>` in `dir/bin`, answering `host` with `user` and
    /// `secret`, and "credentials not found" for any other host.
    pub fn install(dir: &Path, name: &str, host: &str, user: &str, secret: &str) -> Self {
        let bin = dir.join("bin");
        fs::create_dir_all(&bin)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", bin.display()));
        let log = dir.join(format!("docker-credential-{name}.log"));
        for value in [host, user, secret] {
            assert!(
                value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c)),
                "{value:?} must be plain to sit unquoted in the helper script"
            );
        }
        // The protocol: the action as the argument, the server on stdin, JSON on stdout; a
        // missing entry is "credentials not found in native keychain" on stdout and exit 1.
        let script = format!(
            r#"#!/bin/sh
read -r server
echo "$1 $server" >> {log}
if [ "$1" != get ]; then exit 1; fi
case "$server" in
    {host}|http://{host}|https://{host})
        printf '{{"ServerURL":"%s","Username":"{user}","Secret":"{secret}"}}\n' "$server" ;;
    *)
        echo "credentials not found in native keychain"; exit 1 ;;
esac
"#,
            log = log.display(),
        );
        let path = bin.join(format!("docker-credential-{name}"));
        fs::write(&path, script)
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|error| panic!("cannot make {} executable: {error}", path.display()));
        CredentialHelper { bin, log }
    }

    /// `PATH` with the helper's directory first.
    pub fn path_env(&self) -> OsString {
        let mut paths = vec![self.bin.clone()];
        if let Some(path) = std::env::var_os("PATH") {
            paths.extend(std::env::split_paths(&path));
        }
        std::env::join_paths(paths).unwrap_or_else(|error| panic!("bad PATH: {error}"))
    }

    /// Every call so far, as "ACTION SERVER".
    pub fn calls(&self) -> Vec<String> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// `errno` for "Text file busy": an executable open for writing.
const ETXTBSY: i32 = 26;

#[test]
fn a_credential_helper_answers_its_host_only() {
    let dir = super::scratch_dir("selftest-");
    let helper = CredentialHelper::install(dir.path(), "selftest", "127.0.0.1:5999", "ci", "pw");
    let spawn = || {
        std::process::Command::new("docker-credential-selftest")
            .arg("get")
            .env("PATH", helper.path_env())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
    };
    let run = |server: &str| {
        // A process another test thread forks while the helper is being written holds it open
        // for writing until that child execs, and running it meanwhile fails with ETXTBSY.
        // That lasts a moment; later runs (by docker or tidewatch) are long past it.
        let mut attempts = 0;
        let mut child = loop {
            match spawn() {
                Err(error) if error.raw_os_error() == Some(ETXTBSY) && attempts < 50 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                spawned => break spawned,
            }
        }
        .unwrap_or_else(|error| panic!("cannot run the helper: {error}"));
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("no stdin"));
        writeln!(stdin, "{server}").unwrap_or_else(|error| panic!("{error}"));
        drop(stdin);
        child
            .wait_with_output()
            .unwrap_or_else(|error| panic!("{error}"))
    };

    let found = run("127.0.0.1:5999");
    assert!(found.status.success());
    let answer: Value =
        serde_json::from_slice(&found.stdout).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(answer["Username"], "ci");
    assert_eq!(answer["Secret"], "pw");
    assert!(!run("ghcr.io").status.success());
    assert_eq!(helper.calls(), ["get 127.0.0.1:5999", "get ghcr.io"]);
}
