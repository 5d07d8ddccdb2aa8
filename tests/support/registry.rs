//! Throw-away registries: the CNCF distribution registry (`docker-registry`) on a free loopback
//! port, one per test, and "dead" registries that refuse connections or never answer.
//!
//! [`Registry::start`] gives the plain one: HTTP, anonymous. [`Registry::options`] gives the
//! ones found in the wild: basic auth from an htpasswd file, token auth against a
//! [`TokenServer`], TLS with a private CA, a pull-through mirror of another registry. The
//! registry's own helpers ([`Registry::manifest_digest`]) get past its auth and TLS themselves.
//!
//! Request counts come from the registry's own log, so they are what the registry actually
//! served, whoever sent it.

use std::fs;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::htpasswd;
use super::http;
use super::serve::is_engine_agent;
use super::tcp_server::{loopback, TcpServer};
use super::tls::TestCa;
use super::token_server::{self, Access, TokenIssuer, TokenServer};

/// Media types a registry may answer a manifest request with. Asking for all of them matters:
/// distribution 2.x rewrites a schema-2 manifest to schema 1 (another digest) for a client that
/// does not accept schema 2.
pub const MANIFEST_MEDIA_TYPES: &str = "application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json";

/// How long a registry may take to answer `GET /v2/` after it was spawned.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// The registry binary; `TIDEWATCH_TEST_REGISTRY` overrides it.
const REGISTRY_BIN: &str = "docker-registry";

/// A running registry on `127.0.0.1:PORT` with filesystem storage in its own directory. Killed on
/// drop; when the test is failing, its directory (config, log, blobs) is kept and printed.
pub struct Registry {
    dir: TempDir,
    /// The address it listens on: 127.0.0.1 unless [`RegistryOptions::listen_on`] says.
    ip: String,
    port: u16,
    child: Option<Child>,
    /// Set when the registry serves TLS: how the tests' probes trust it.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// How the tests' probes get past the registry's auth.
    probe: ProbeAuth,
}

/// How a test registry is set up beyond the plain one; see [`Registry::options`].
#[derive(Default)]
pub struct RegistryOptions {
    /// Whole top-level YAML sections appended to the configuration.
    extra_yaml: String,
    htpasswd: Vec<(String, String)>,
    token: Option<TokenAuth>,
    tls: Option<TlsFiles>,
    mirror_of: Option<String>,
    listen_on: Option<String>,
}

struct TokenAuth {
    realm: String,
    issuer: TokenIssuer,
}

struct TlsFiles {
    cert_pem: String,
    key_pem: String,
    client: Arc<rustls::ClientConfig>,
}

#[derive(Clone)]
enum ProbeAuth {
    Anonymous,
    /// The `Authorization` value for the first htpasswd user.
    Basic(String),
    /// Tokens minted directly, so probes never show up in the token server's counts.
    Token(TokenIssuer),
}

impl RegistryOptions {
    /// Appends `extra` (whole top-level YAML sections, e.g. `notifications:`) to the
    /// configuration.
    pub fn yaml(mut self, extra: &str) -> RegistryOptions {
        self.extra_yaml.push_str(extra);
        self
    }

    /// Basic auth: only `users` (`(name, password)`) may push or pull.
    pub fn htpasswd(mut self, users: &[(&str, &str)]) -> RegistryOptions {
        assert!(!users.is_empty(), "an htpasswd registry needs a user");
        self.htpasswd = users
            .iter()
            .map(|(user, password)| ((*user).to_owned(), (*password).to_owned()))
            .collect();
        self
    }

    /// Token auth: the registry sends clients to `server` for tokens and trusts the tokens it
    /// signs.
    pub fn token_auth(mut self, server: &TokenServer) -> RegistryOptions {
        self.token = Some(TokenAuth {
            realm: server.realm(),
            issuer: server.issuer().clone(),
        });
        self
    }

    /// TLS with a certificate for 127.0.0.1 signed by `ca`.
    pub fn tls(mut self, ca: &TestCa) -> RegistryOptions {
        let cert = ca.loopback_server_cert();
        self.tls = Some(TlsFiles {
            cert_pem: cert.cert_pem,
            key_pem: cert.key_pem,
            client: ca.client_config(),
        });
        self
    }

    /// A pull-through cache (`proxy.remoteurl`) of the registry at `remote_url`
    /// ("http://127.0.0.1:PORT"). It serves pulls only: pushes go to the remote.
    pub fn mirror_of(mut self, remote_url: &str) -> RegistryOptions {
        self.mirror_of = Some(remote_url.to_owned());
        self
    }

    /// Listens on `ip` (an address of this machine, such as the fleet's bridge) instead of
    /// 127.0.0.1: engines in other network namespaces cannot reach this one's loopback.
    pub fn listen_on(mut self, ip: &str) -> RegistryOptions {
        self.listen_on = Some(ip.to_owned());
        self
    }

    /// Starts the registry and waits until it answers `GET /v2/` with 200.
    pub fn start(self) -> Registry {
        assert!(
            self.htpasswd.is_empty() || self.token.is_none(),
            "a registry has one auth scheme"
        );
        // Another process may take the free port between our probe and the registry's bind; a
        // few attempts make that race harmless.
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Registry::try_start(&self) {
                Ok(registry) => return registry,
                Err(failure) => failures.push(failure),
            }
        }
        panic!("registry did not start:\n{}", failures.join("\n---\n"));
    }

    fn probe_auth(&self) -> ProbeAuth {
        if let Some(token) = &self.token {
            ProbeAuth::Token(token.issuer.clone())
        } else if let Some((user, password)) = self.htpasswd.first() {
            use base64::Engine as _;
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            ProbeAuth::Basic(format!("Basic {encoded}"))
        } else {
            ProbeAuth::Anonymous
        }
    }

    /// Writes the files the configuration points to and returns the `auth:`, `http.tls:` and
    /// `proxy:` parts of config.yml, indented for their places.
    fn write_files(&self, dir: &std::path::Path) -> Result<ExtraConfig, String> {
        let write = |name: &str, contents: &str| -> Result<PathBuf, String> {
            let path = dir.join(name);
            fs::write(&path, contents)
                .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
            Ok(path)
        };
        let mut extra = ExtraConfig::default();
        if !self.htpasswd.is_empty() {
            let path = dir.join("htpasswd");
            let users: Vec<(&str, &str)> = self
                .htpasswd
                .iter()
                .map(|(user, password)| (user.as_str(), password.as_str()))
                .collect();
            htpasswd::write(&path, &users);
            extra.top.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: tidewatch-test\n    path: {}\n",
                path.display()
            ));
        }
        if let Some(token) = &self.token {
            let bundle = token
                .issuer
                .write_root_bundle(&dir.join("token-signer.pem"));
            extra.top.push_str(&format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    \
                 issuer: {issuer}\n    rootcertbundle: {bundle}\n",
                realm = token.realm,
                service = token_server::SERVICE,
                issuer = token_server::ISSUER,
                bundle = bundle.display(),
            ));
        }
        if let Some(remote) = &self.mirror_of {
            extra
                .top
                .push_str(&format!("proxy:\n  remoteurl: {remote}\n"));
        }
        if let Some(tls) = &self.tls {
            let cert = write("server.crt", &tls.cert_pem)?;
            let key = write("server.key", &tls.key_pem)?;
            extra.http.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
        }
        Ok(extra)
    }
}

/// Configuration beyond the plain registry's: top-level sections and lines under `http:`.
#[derive(Default)]
struct ExtraConfig {
    top: String,
    http: String,
}

/// One request the registry served, from its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// GET, HEAD, PUT, ...
    pub method: String,
    /// The request URI as logged: path and query.
    pub uri: String,
    /// The status answered, when the line says.
    pub status: Option<u16>,
    /// The client's `User-Agent`, empty when the line does not say.
    pub user_agent: String,
}

impl Request {
    /// True for a request the container engine sent (dockerd, or containerd for it).
    pub fn is_from_engine(&self) -> bool {
        is_engine_agent(&self.user_agent)
    }
}

impl Registry {
    /// Starts a plain registry (HTTP, anonymous) on a free port and waits until `GET /v2/`
    /// answers 200.
    pub fn start() -> Registry {
        RegistryOptions::default().start()
    }

    /// Like [`Registry::start`], with `extra` (whole top-level YAML sections, e.g.
    /// `notifications:`) appended to its configuration.
    pub fn start_with(extra: &str) -> Registry {
        RegistryOptions::default().yaml(extra).start()
    }

    /// A registry with auth, TLS or as a mirror: `Registry::options().htpasswd(..).start()`.
    pub fn options() -> RegistryOptions {
        RegistryOptions::default()
    }

    fn try_start(options: &RegistryOptions) -> Result<Registry, String> {
        let dir = super::scratch_dir("registry-");
        let port = free_port();
        let ip = options.listen_on.clone().unwrap_or("127.0.0.1".to_owned());
        let extra = options.write_files(dir.path())?;
        let config = dir.path().join("config.yml");
        let yaml = config_yml(&dir.path().join("data"), &ip, port, &extra) + &options.extra_yaml;
        fs::write(&config, yaml)
            .map_err(|error| format!("cannot write {}: {error}", config.display()))?;
        let log_path = dir.path().join("registry.log");
        let log = fs::File::create(&log_path)
            .map_err(|error| format!("cannot create {}: {error}", log_path.display()))?;
        let stderr = log
            .try_clone()
            .map_err(|error| format!("cannot share {}: {error}", log_path.display()))?;

        let binary = std::env::var("TIDEWATCH_TEST_REGISTRY").unwrap_or(REGISTRY_BIN.to_owned());
        let child = Command::new(&binary)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .map_err(|error| {
                format!("cannot run `{binary} serve`: {error} (run scripts/test-env)")
            })?;
        let mut registry = Registry {
            dir,
            ip,
            port,
            child: Some(child),
            tls: options.tls.as_ref().map(|tls| Arc::clone(&tls.client)),
            probe: options.probe_auth(),
        };
        registry.wait_until_ready()?;
        Ok(registry)
    }

    fn wait_until_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            // The log line proves that *our* process holds the port: if another one took it
            // between free_port() and our bind, GET /v2/ could be answered by that one.
            let listening = self
                .log()
                .contains(&format!("listening on {}", self.host()));
            let probe = self.get_v2();
            if listening && matches!(&probe, Ok(response) if response.status == 200) {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                let why = match exited {
                    Some(status) => format!("exited with {status}"),
                    None => {
                        format!("GET /v2/ did not answer 200 within {START_TIMEOUT:?}: {probe:?}")
                    }
                };
                self.stop();
                return Err(format!(
                    "registry on {}: {why}\n{}",
                    self.host(),
                    self.log()
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `GET /v2/` with the registry's own credentials: 200 once it is up and its auth works.
    fn get_v2(&self) -> std::io::Result<http::Response> {
        let authorization = self.authorization(None);
        let headers: Vec<(&str, &str)> = authorization
            .iter()
            .map(|value| ("Authorization", value.as_str()))
            .collect();
        http::request_over(
            &self.host(),
            self.tls.as_ref(),
            "GET",
            "/v2/",
            &headers,
            Duration::from_secs(2),
        )
    }

    /// The `Authorization` value that lets the tests' probes in, for `repo` (pull) or for the
    /// base endpoint.
    fn authorization(&self, repo: Option<&str>) -> Option<String> {
        match &self.probe {
            ProbeAuth::Anonymous => None,
            ProbeAuth::Basic(value) => Some(value.clone()),
            ProbeAuth::Token(issuer) => {
                let access: Vec<Access> = repo.into_iter().map(Access::pull).collect();
                Some(format!(
                    "Bearer {}",
                    issuer.mint("tidewatch-test-probe", &access)
                ))
            }
        }
    }

    /// "127.0.0.1:PORT", as in image references and the agent config.
    pub fn host(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    /// "http://127.0.0.1:PORT" or "https://...": where a mirror finds this registry.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.host())
    }

    /// A repository on this registry: "127.0.0.1:PORT/NAME".
    pub fn repo(&self, name: &str) -> String {
        format!("{}/{name}", self.host())
    }

    /// An image reference on this registry: "127.0.0.1:PORT/REPO:TAG".
    pub fn image(&self, repo: &str, tag: &str) -> String {
        format!("{}/{repo}:{tag}", self.host())
    }

    /// The digest the registry serves for `repo:reference` (a tag or digest), asked with a HEAD
    /// that accepts every manifest type.
    pub fn manifest_digest(&self, repo: &str, reference: &str) -> String {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let authorization = self.authorization(Some(repo));
        let mut headers = vec![("Accept", MANIFEST_MEDIA_TYPES)];
        headers.extend(
            authorization
                .iter()
                .map(|value| ("Authorization", value.as_str())),
        );
        let response = http::request_over(
            &self.host(),
            self.tls.as_ref(),
            "HEAD",
            &path,
            &headers,
            Duration::from_secs(10),
        )
        .unwrap_or_else(|error| panic!("HEAD {path} on {}: {error}", self.host()));
        assert_eq!(
            response.status,
            200,
            "HEAD {path} on {}: {response:?}",
            self.host()
        );
        response
            .header("Docker-Content-Digest")
            .unwrap_or_else(|| panic!("HEAD {path}: no Docker-Content-Digest in {response:?}"))
            .to_owned()
    }

    /// The registry's log so far (its "response completed" lines and everything else).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_else(|error| format!("(no log: {error})"))
    }

    /// Where the registry logs to.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// Every request the registry has served, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.wait_for_quiet_log();
        self.log().lines().filter_map(parse_request).collect()
    }

    /// Every request, from the access log's lines: unlike [`Registry::requests`], this has
    /// those the registry's router does not know (2.8 has no OCI 1.1 referrers API, and logs
    /// its 404 there only).
    pub fn access_log(&self) -> Vec<Request> {
        self.wait_for_quiet_log();
        self.log().lines().filter_map(parse_access_line).collect()
    }

    /// How many `METHOD /v2/REPO/manifests/...` requests the registry has served.
    pub fn manifest_requests(&self, method: &str, repo: &str) -> usize {
        let prefix = format!("/v2/{repo}/manifests/");
        self.requests()
            .iter()
            .filter(|request| request.method == method && request.uri.starts_with(&prefix))
            .count()
    }

    /// The registry logs a request just *after* answering it, so a client can be done before
    /// its last request is in the log. Waiting until the log stops growing closes that gap.
    fn wait_for_quiet_log(&self) {
        let size = || {
            fs::metadata(self.log_path())
                .map(|meta| meta.len())
                .unwrap_or(0)
        };
        let mut last = size();
        loop {
            thread::sleep(Duration::from_millis(200));
            let now = size();
            if now == last {
                return;
            }
            last = now;
        }
    }

    /// Kills the registry; its port and directory stay reserved until drop.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Already exited is fine: all we want is that it is gone.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the registry and leaves its port refusing connections, keeping its images'
    /// references (pushed while it was alive) pointing at a registry that is down.
    pub fn into_refusing(mut self) -> DeadRegistry {
        self.stop();
        DeadRegistry::refusing_on(self.port)
    }

    /// Kills the registry and puts a listener on its port that accepts and never answers.
    pub fn into_silent(mut self) -> DeadRegistry {
        self.stop();
        DeadRegistry::silent_on(self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
        if thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "registry {} kept for inspection: {}",
                self.host(),
                self.dir.path().display()
            );
        }
    }
}

/// Configuration for `docker-registry serve`: loopback only, text logs with one "response
/// completed" line per request, storage in the test's directory, and the variant's extras.
fn config_yml(storage: &std::path::Path, ip: &str, port: u16, extra: &ExtraConfig) -> String {
    format!(
        "version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: {ip}:{port}
  # A fixed secret silences the start-up warning; nothing here is load-balanced.
  secret: tidewatch-test
{http}{top}",
        storage = storage.display(),
        http = extra.http,
        top = extra.top,
    )
}

/// Parses one "response completed" line of distribution's text log, e.g.
/// `time=".." level=info msg="response completed" .. http.request.method=HEAD ..
/// http.request.uri=/v2/app/manifests/v1 ..`. Failed requests log `msg="response completed with
/// error"` and count too. Values are quoted when they hold characters such as `:` or `?`.
fn parse_request(line: &str) -> Option<Request> {
    if !line.contains("msg=\"response completed") {
        return None;
    }
    Some(Request {
        method: logfmt_value(line, "http.request.method")?,
        uri: logfmt_value(line, "http.request.uri")?,
        status: logfmt_value(line, "http.response.status").and_then(|s| s.parse().ok()),
        user_agent: logfmt_value(line, "http.request.useragent").unwrap_or_default(),
    })
}

/// Parses one access log line, e.g. `127.0.0.1 - - [07/Dec/2026:21:04:14 +0000] "GET
/// /v2/app/referrers/sha256:20.. HTTP/1.1" 404 19 "" "tidewatch/0.1.0"`.
fn parse_access_line(line: &str) -> Option<Request> {
    let (_, rest) = line.split_once("] \"")?;
    let (request, rest) = rest.split_once("\" ")?;
    let mut words = request.split(' ');
    let (method, uri) = (words.next()?, words.next()?);
    let status = rest.split(' ').next()?.parse().ok()?;
    let user_agent = rest.rsplit('"').nth(1).unwrap_or_default();
    Some(Request {
        method: method.to_owned(),
        uri: uri.to_owned(),
        status: Some(status),
        user_agent: user_agent.to_owned(),
    })
}

/// The value of `key=value` or `key="value"` in a logrus text line.
fn logfmt_value(line: &str, key: &str) -> Option<String> {
    let needle = format!(" {key}=");
    let start = line.find(&needle)? + needle.len();
    let rest = &line[start..];
    if let Some(quoted) = rest.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => value.push(chars.next()?),
                '"' => return Some(value),
                _ => value.push(c),
            }
        }
        None
    } else {
        Some(rest.split(' ').next()?.to_owned())
    }
}

/// A registry host where nothing useful answers. Dropping it frees the port.
pub struct DeadRegistry {
    port: u16,
    _holder: Holder,
}

enum Holder {
    /// A socket bound to the port but not listening: connections are refused (RST), and no
    /// other test can start a registry there meanwhile.
    Refusing(tokio::net::TcpSocket),
    Silent(TcpServer),
}

impl DeadRegistry {
    /// A free port where connections are refused.
    pub fn refusing() -> DeadRegistry {
        Self::refusing_on(free_port())
    }

    /// A free port with a listener that accepts connections and never answers.
    pub fn silent() -> DeadRegistry {
        Self::silent_on(free_port())
    }

    fn refusing_on(port: u16) -> DeadRegistry {
        let socket = tokio::net::TcpSocket::new_v4()
            .and_then(|socket| {
                // The registry we replace may leave connections in TIME_WAIT on this port.
                socket.set_reuseaddr(true)?;
                socket.bind(loopback(port))?;
                Ok(socket)
            })
            .unwrap_or_else(|error| panic!("cannot reserve 127.0.0.1:{port}: {error}"));
        DeadRegistry {
            port,
            _holder: Holder::Refusing(socket),
        }
    }

    fn silent_on(port: u16) -> DeadRegistry {
        DeadRegistry {
            port,
            _holder: Holder::Silent(silent_listener(port)),
        }
    }

    /// "127.0.0.1:PORT", as in image references and the agent config.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Accepts connections and holds them open without a byte of answer, like a registry behind a
/// wedged proxy. They close when the listener is dropped and its thread lets go of them.
fn silent_listener(port: u16) -> TcpServer {
    let held = Mutex::new(Vec::new());
    TcpServer::start_on(port, move |stream| {
        held.lock().unwrap_or_else(|e| e.into_inner()).push(stream);
    })
}

/// A port nothing listens on right now, as chosen by the kernel.
fn free_port() -> u16 {
    TcpListener::bind(loopback(0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap_or_else(|error| panic!("cannot find a free loopback port: {error}"))
}

#[test]
fn an_access_log_line_gives_method_uri_status_and_agent() {
    let line = r#"127.0.0.1 - - [07/Dec/2026:21:04:14 +0000] "GET /v2/app/referrers/sha256:20 HTTP/1.1" 404 19 "" "tidewatch/0.1.0""#;
    let request = parse_access_line(line).unwrap();
    assert_eq!(
        (
            request.method.as_str(),
            request.uri.as_str(),
            request.status,
            request.user_agent.as_str()
        ),
        (
            "GET",
            "/v2/app/referrers/sha256:20",
            Some(404),
            "tidewatch/0.1.0"
        )
    );
    assert!(parse_access_line(r#"time="x" level=info msg="response completed""#).is_none());
}

#[test]
fn registry_log_lines_parse_into_requests() {
    // Verbatim from docker-registry 2.8.2 (Debian bookworm), shortened only in the middle.
    let ok = r#"time="2026-11-26T12:26:42.861343589Z" level=info msg="response completed" go.version=go1.19.8 http.request.host="127.0.0.1:5999" http.request.method=GET http.request.remoteaddr="127.0.0.1:34632" http.request.uri=/v2/ http.response.status=200"#;
    let failed = r#"time="2026-11-26T12:26:42.874600246Z" level=error msg="response completed with error" err.code="manifest unknown" http.request.method=HEAD http.request.uri=/v2/foo/manifests/latest http.response.status=404"#;
    let by_digest = r#"time="2026-11-26T12:28:44Z" level=info msg="response completed" http.request.method=HEAD http.request.uri="/v2/team/app/manifests/sha256:ae04217b" http.request.useragent="docker/28.5.2+dfsg4 go/go1.27.1 containerd-client/2.1.9+unknown" http.response.status=200"#;
    let access =
        r#"127.0.0.1 - - [26/Nov/2026:12:26:42 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7.88.1""#;

    let request = |method: &str, uri: &str, status: u16, user_agent: &str| Request {
        method: method.to_owned(),
        uri: uri.to_owned(),
        status: Some(status),
        user_agent: user_agent.to_owned(),
    };
    assert_eq!(parse_request(ok), Some(request("GET", "/v2/", 200, "")));
    assert_eq!(
        parse_request(failed),
        Some(request("HEAD", "/v2/foo/manifests/latest", 404, ""))
    );
    let engine = "docker/28.5.2+dfsg4 go/go1.27.1 containerd-client/2.1.9+unknown";
    assert_eq!(
        parse_request(by_digest),
        Some(request(
            "HEAD",
            "/v2/team/app/manifests/sha256:ae04217b",
            200,
            engine
        ))
    );
    assert!(parse_request(by_digest).is_some_and(|request| request.is_from_engine()));
    // The Apache-style access line repeats the request; counting it too would double-count.
    assert_eq!(parse_request(access), None);
}

#[test]
fn a_registry_counts_the_manifest_requests_it_served() {
    let registry = Registry::start();
    let send = |method: &str, path: &str| {
        http::request(&registry.host(), method, path, &[], Duration::from_secs(5))
            .unwrap_or_else(|error| panic!("{method} {path}: {error}"));
    };
    send("HEAD", "/v2/app/manifests/v1");
    send(
        "HEAD",
        "/v2/app/manifests/sha256:0000000000000000000000000000000000000000000000000000000000000000",
    );
    send("GET", "/v2/app/manifests/v1");
    send("HEAD", "/v2/app-other/manifests/v1");
    send(
        "HEAD",
        "/v2/app/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000",
    );

    assert_eq!(registry.manifest_requests("HEAD", "app"), 2);
    assert_eq!(registry.manifest_requests("GET", "app"), 1);
    assert_eq!(registry.manifest_requests("HEAD", "app-other"), 1);
}

#[test]
fn dead_registries_refuse_connections_or_never_answer() {
    let probe = |host: &str| http::request(host, "GET", "/v2/", &[], Duration::from_secs(1));

    let refusing = Registry::start().into_refusing();
    let error = probe(&refusing.host()).expect_err("a refusing registry answered");
    assert_eq!(
        error.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "{error}"
    );

    let silent = DeadRegistry::silent();
    let error = probe(&silent.host()).expect_err("a silent registry answered");
    assert!(
        matches!(
            error.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "expected a read timeout, got {error}"
    );
}

// The variants in the wild. Each test shows that the variant refuses what it should and that a
// client with the right credentials or trust gets through, docker included.

mod variants {
    use std::time::Duration;

    use super::super::bed::TestBed;
    use super::super::docker::try_docker_with;
    use super::super::docker_config::DockerConfig;
    use super::super::flaky_server::{Fault, FlakyServer, Requests};
    use super::super::http;
    use super::super::images::{pull, push};
    use super::super::tls::{EngineTrust, TestCa};
    use super::super::token_server::{self, Access, TokenIssuer, TokenServer};
    use super::Registry;

    const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

    #[test]
    fn an_htpasswd_registry_wants_basic_credentials_and_takes_its_users() {
        let bed = TestBed::new("selftest-htpasswd");
        let registry = Registry::options().htpasswd(&[("ci", "s3cret")]).start();

        let anonymous = http::request(&registry.host(), "GET", "/v2/", &[], PROBE_TIMEOUT)
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(anonymous.status, 401, "{anonymous:?}");
        assert!(
            anonymous
                .header("WWW-Authenticate")
                .is_some_and(|challenge| challenge.starts_with("Basic")),
            "{anonymous:?}"
        );

        let image = registry.image("app", "v1");
        bed.build_app(&image, "1");
        let stranger = DockerConfig::new(&bed.dir().join("stranger"));
        assert!(
            try_docker_with(Some(stranger.dir()), &["push", &image]).is_err(),
            "a push without credentials went through"
        );
        let mut config = DockerConfig::new(&bed.dir().join("docker"));
        config.auth(&registry.host(), "ci", "s3cret");
        let digest = config.push(&image);
        assert_eq!(registry.manifest_digest("app", "v1"), digest);
    }

    #[test]
    fn a_tls_registry_is_trusted_through_its_ca_and_by_nothing_else() {
        let bed = TestBed::new("selftest-tls");
        let ca = TestCa::new("selftest");
        let registry = Registry::options().tls(&ca).start();
        assert!(registry.url().starts_with("https://"), "{}", registry.url());
        // dockerd treats loopback registries as insecure and would push without this; the CA
        // is installed anyway, as it must be for any other address.
        let _trust = EngineTrust::install(&ca, &registry.host());

        let image = registry.image("app", "v1");
        bed.build_app(&image, "1");
        let digest = push(&image);
        assert_eq!(registry.manifest_digest("app", "v1"), digest);

        let stranger = TestCa::new("stranger").client_config();
        let refused = http::request_over(
            &registry.host(),
            Some(&stranger),
            "GET",
            "/v2/",
            &[],
            PROBE_TIMEOUT,
        );
        assert!(
            refused.is_err(),
            "a client trusting another CA got in: {refused:?}"
        );
        let plain = http::request(&registry.host(), "GET", "/v2/", &[], PROBE_TIMEOUT)
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(plain.status, 400, "plain HTTP to a TLS port: {plain:?}");
    }

    #[test]
    fn a_token_registry_sends_clients_to_its_token_server_and_trusts_only_its_tokens() {
        let bed = TestBed::new("selftest-token");
        let tokens = TokenServer::start(&[("ci", "s3cret")]);
        let registry = Registry::options().token_auth(&tokens).start();

        let anonymous = http::request(&registry.host(), "GET", "/v2/", &[], PROBE_TIMEOUT)
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(anonymous.status, 401, "{anonymous:?}");
        let challenge = anonymous.header("WWW-Authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer")
                && challenge.contains(&format!("realm=\"{}\"", tokens.realm()))
                && challenge.contains(&format!("service=\"{}\"", token_server::SERVICE)),
            "{challenge}"
        );

        let image = registry.image("app", "v1");
        bed.build_app(&image, "1");
        let mut config = DockerConfig::new(&bed.dir().join("docker"));
        config.auth(&registry.host(), "ci", "s3cret");
        let digest = config.push(&image);
        assert_eq!(registry.manifest_digest("app", "v1"), digest);
        let docker_asked = tokens.requests_from_engine();
        assert!(
            docker_asked
                .iter()
                .any(|request| request.user.as_deref() == Some("ci")
                    && request.granted.iter().any(|access| access.name == "app"
                        && access.actions.contains(&"push".to_owned()))),
            "docker's push asked for no push token as ci: {docker_asked:#?}"
        );

        let head = |token: &str| {
            http::request(
                &registry.host(),
                "HEAD",
                "/v2/app/manifests/v1",
                &[
                    ("Authorization", &format!("Bearer {token}")),
                    ("Accept", super::MANIFEST_MEDIA_TYPES),
                ],
                PROBE_TIMEOUT,
            )
            .unwrap_or_else(|error| panic!("{error}"))
            .status
        };
        assert_eq!(
            head(&tokens.issuer().mint("ci", &[Access::pull("app")])),
            200
        );
        assert_eq!(
            head(&tokens.issuer().mint("nobody", &[])),
            401,
            "a token without access to app"
        );
        assert_eq!(
            head(&TokenIssuer::new().mint("ci", &[Access::pull("app")])),
            401,
            "a token signed by an untrusted key"
        );
    }

    #[test]
    fn a_mirror_serves_the_origin_and_keeps_its_cached_tag_when_it_cannot_ask_the_origin() {
        let bed = TestBed::new("selftest-mirror");
        let origin = Registry::start();
        let link = FlakyServer::front(&origin);
        let mirror = Registry::options().mirror_of(&link.url()).start();
        let image = origin.image("app", "stable");
        bed.build_app(&image, "1");
        let v1 = push(&image);
        assert_eq!(
            mirror.manifest_digest("app", "stable"),
            v1,
            "mirror caches v1"
        );

        bed.build_app(&image, "2");
        let v2 = push(&image);
        assert_ne!(v1, v2);
        link.fail_always(Requests::ManifestsByTag, Fault::ServerError);

        assert_eq!(origin.manifest_digest("app", "stable"), v2);
        assert_eq!(
            mirror.manifest_digest("app", "stable"),
            v1,
            "the mirror's tag lags the origin's"
        );
        // Digests still reach the origin through the mirror.
        pull(&format!("{}@{v2}", mirror.repo("app")));
        assert_eq!(mirror.manifest_digest("app", &v2), v2);
    }
}
