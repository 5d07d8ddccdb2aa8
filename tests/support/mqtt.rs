//! A throw-away MQTT broker: Debian's `mosquitto` (installed by `scripts/test-env`) on a free
//! loopback port, with a configuration file of its own, no persistence, and either anonymous
//! access or a password file made with `mosquitto_passwd`, in plain MQTT or over TLS with a
//! certificate from a test CA. Run inside the lane's namespace when the tests are. Clients are
//! `mosquitto_sub` and `mosquitto_pub` (`mosquitto-clients`).

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::objects::free_port;
use super::tls::TestCa;

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
    /// Over TLS: the CA certificate (PEM file) its certificate is signed by.
    ca_file: Option<PathBuf>,
}

impl Broker {
    /// A broker that lets anyone in.
    pub fn anonymous() -> Broker {
        Broker::start(None, None)
    }

    /// A broker that wants `user` with `password` (and refuses anonymous clients).
    pub fn with_login(user: &str, password: &str) -> Broker {
        Broker::start(Some((user.to_owned(), password.to_owned())), None)
    }

    /// A broker that lets anyone in, over TLS only, with a certificate for the loopback
    /// addresses that `ca` signed.
    pub fn over_tls(ca: &TestCa) -> Broker {
        Broker::start(None, Some(ca))
    }

    fn start(login: Option<(String, String)>, tls: Option<&TestCa>) -> Broker {
        let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("no temp dir: {error}"));
        let port = free_port();
        // `user root`: mosquitto started by root otherwise becomes the `mosquitto` user, who
        // cannot read this directory; it has no effect when not started by root.
        let mut config = format!(
            "listener {port} 127.0.0.1\npersistence false\nlog_dest file {log}\nlog_type all\n\
             user root\n",
            log = dir.path().join("mosquitto.log").display(),
        );
        let ca_file = tls.map(|ca| {
            let server = ca.loopback_server_cert();
            let write = |name: &str, pem: &str| {
                let path = dir.path().join(name);
                fs::write(&path, pem)
                    .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
                path
            };
            // Options of the listener above: it takes TLS connections only.
            config.push_str(&format!(
                "certfile {}\nkeyfile {}\n",
                write("server.pem", &server.cert_pem).display(),
                write("server.key", &server.key_pem).display()
            ));
            ca.write_cert(&dir.path().join("ca.pem"))
        });
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
            ca_file,
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

    /// `mqtt://127.0.0.1:PORT`, or `mqtts://` over TLS.
    pub fn url(&self) -> String {
        let scheme = if self.ca_file.is_some() {
            "mqtts"
        } else {
            "mqtt"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Over TLS: the CA certificate (PEM file) that signed the broker's.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
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
        // The chain is checked; the host name not, which mosquitto's clients match against an
        // IP address SAN unreliably. What tidewatch checks is the test's business, not theirs.
        if let Some(ca) = &self.ca_file {
            command.arg("--cafile").arg(ca).arg("--insecure");
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

    /// Panics when a new subscriber to `filter` receives a retained message (it waits
    /// `wait` for one).
    pub fn assert_nothing_retained(&self, filter: &str, wait: Duration) {
        let mut command = Command::new("mosquitto_sub");
        self.client_args(&mut command);
        command.args(["-t", filter, "-C", "1", "--retained-only", "-F", "%t\t%p"]);
        command.args(["-W", &wait.as_secs().max(1).to_string()]);
        let output = command
            .output()
            .unwrap_or_else(|error| panic!("cannot run mosquitto_sub: {error}"));
        // 27: mosquitto_sub's exit status when -W ran out.
        assert!(
            output.stdout.is_empty() && output.status.code() == Some(27),
            "a retained message on {filter} ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
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
