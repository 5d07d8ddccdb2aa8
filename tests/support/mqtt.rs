//! A throw-away MQTT broker: Debian's `mosquitto` (installed by `scripts/test-env`) on a free
//! loopback port, with a configuration file of its own, no persistence, and either anonymous
//! access or a password file made with `mosquitto_passwd`. Run inside the lane's namespace when
//! the tests are. Clients are `mosquitto_sub` and `mosquitto_pub` (`mosquitto-clients`).

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::objects::free_port;

/// How long a broker may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// One message, as `mosquitto_sub` printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub retained: bool,
    pub payload: String,
}

/// A running mosquitto; killed on drop.
pub struct Broker {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    /// `(user, password)` the clients log in with, when the broker wants a login.
    login: Option<(String, String)>,
}

impl Broker {
    /// A broker that lets anyone in.
    pub fn anonymous() -> Broker {
        Broker::start(None)
    }

    /// A broker that wants `user` with `password` (and refuses anonymous clients).
    pub fn with_login(user: &str, password: &str) -> Broker {
        Broker::start(Some((user.to_owned(), password.to_owned())))
    }

    fn start(login: Option<(String, String)>) -> Broker {
        let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("no temp dir: {error}"));
        let port = free_port();
        // `user root`: mosquitto started by root otherwise becomes the `mosquitto` user, who
        // cannot read this directory; it has no effect when not started by root.
        let mut config = format!(
            "listener {port} 127.0.0.1\npersistence false\nlog_dest file {log}\nlog_type all\n\
             user root\n",
            log = dir.path().join("mosquitto.log").display(),
        );
        match &login {
            None => config.push_str("allow_anonymous true\n"),
            Some((user, password)) => {
                let file = dir.path().join("passwd");
                let status = Command::new("mosquitto_passwd")
                    .args(["-b", "-c"])
                    .arg(&file)
                    .args([user, password])
                    .status()
                    .unwrap_or_else(|error| panic!("cannot run mosquitto_passwd: {error}"));
                assert!(status.success(), "mosquitto_passwd failed: {status}");
                config.push_str(&format!(
                    "allow_anonymous false\npassword_file {}\n",
                    file.display()
                ));
            }
        }
        fs::write(dir.path().join("mosquitto.conf"), config)
            .unwrap_or_else(|error| panic!("cannot write mosquitto.conf: {error}"));
        let mut broker = Broker {
            child: None,
            port,
            dir,
            login,
        };
        broker.launch();
        broker
    }

    /// Starts mosquitto on the configuration and waits until it listens.
    fn launch(&mut self) {
        let program = ["/usr/sbin/mosquitto", "mosquitto"]
            .into_iter()
            .find(|p| !p.starts_with('/') || Path::new(p).exists())
            .unwrap_or("mosquitto");
        let child = Command::new(program)
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start mosquitto (scripts/test-env installs it): {error}")
            });
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("mosquitto exited ({status}); log:\n{}", self.log());
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "mosquitto does not listen on {} after {START_TIMEOUT:?}; log:\n{}",
                self.port,
                self.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the broker (as a crash would: its retained messages are gone, since it keeps
    /// none on disk) and starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `mqtt://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Its log.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// Where to keep files that go with it (password files for the agent).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn client_args(&self, command: &mut Command) {
        command.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some((user, password)) = &self.login {
            command.args(["-u", user, "-P", password]);
        }
    }

    /// The first message on `filter` that a new subscriber receives, within `timeout`: a
    /// retained one at once, else the next one published.
    pub fn first(&self, filter: &str, timeout: Duration) -> Message {
        self.receive(filter, false, timeout)
    }

    /// The retained message on `filter` that a new subscriber receives at once; panics when
    /// there is none (the wait is only a bound for a slow machine).
    pub fn retained(&self, filter: &str) -> Message {
        let message = self.receive(filter, true, Duration::from_secs(20));
        assert!(message.retained, "not retained: {message:?}");
        message
    }

    fn receive(&self, filter: &str, retained_only: bool, timeout: Duration) -> Message {
        let mut command = Command::new("mosquitto_sub");
        self.client_args(&mut command);
        command.args(["-t", filter, "-C", "1", "-F", "%r\t%t\t%p"]);
        command.args(["-W", &timeout.as_secs().max(1).to_string()]);
        if retained_only {
            command.arg("--retained-only");
        }
        let output = command
            .output()
            .unwrap_or_else(|error| panic!("cannot run mosquitto_sub: {error}"));
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let line = text.trim_end_matches('\n');
        let mut parts = line.splitn(3, '\t');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(retained), Some(topic), Some(payload)) if output.status.success() => Message {
                topic: topic.to_owned(),
                retained: retained == "1",
                payload: payload.to_owned(),
            },
            _ => panic!(
                "no message on {filter} within {timeout:?} ({}): {}\nbroker log:\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr),
                self.log()
            ),
        }
    }

    /// Publishes `payload` on `topic` (not retained), with the broker's login.
    pub fn publish(&self, topic: &str, payload: &str) {
        let mut command = Command::new("mosquitto_pub");
        self.client_args(&mut command);
        let output = command
            .args(["-t", topic, "-m", payload, "-q", "1"])
            .output()
            .unwrap_or_else(|error| panic!("cannot run mosquitto_pub: {error}"));
        assert!(
            output.status.success(),
            "mosquitto_pub on {topic} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// A file holding `contents`, beside the broker's configuration.
    pub fn write_file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        fs::write(&path, contents)
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
        path
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}
