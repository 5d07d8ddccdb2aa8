//! A misbehaving front for a registry: a pass-through proxy on its own port that, when told,
//! answers some requests itself the way registries in trouble do (429 with `Retry-After`, 503,
//! 500, bytes that are not HTTP, a login page instead of a manifest), adds headers such as
//! `RateLimit-Remaining`, pads manifests past any sensible size, or slows manifest requests
//! down.
//!
//! Images are pushed and pulled *through* it while it behaves, so the engine records repo digests
//! under its host; then the test switches a fault on. Every request is recorded with when it
//! came, what was answered and whether a fault answered it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, SystemTime};

use serde_json::json;

use super::registry::Registry;
use super::serve::{http_server, is_engine_agent, Reply, ServerRequest};
use super::tcp_server::TcpServer;

/// How long the origin may take over one forwarded request (blobs included).
const ORIGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// How a request is answered instead of being passed to the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `429 Too Many Requests` with `Retry-After: <seconds>`.
    RateLimited { retry_after: u64 },
    /// `503 Service Unavailable`, no `Retry-After`.
    Unavailable,
    /// `500 Internal Server Error` with a distribution-style error body.
    ServerError,
    /// Something else listening on the port: an SSH banner, then the connection closes.
    NotHttp,
    /// `200 OK` with an HTML sign-in page and no digest, as a captive portal or a misrouted
    /// proxy answers.
    HtmlPage,
    /// `200 OK` with a JSON tag list of about `bytes` bytes, without `Content-Length` (the body
    /// ends when the connection closes), so only reading it tells how large it is.
    HugeTagList { bytes: usize },
    /// The origin's own answer, a manifest or index, with spaces after its JSON up to `bytes`
    /// bytes: still JSON, its digest header kept, only too large. `length` says how its size
    /// is announced.
    PaddedManifest { bytes: usize, length: Length },
    /// The origin's tags sorted and sent `n` at a time after `last`, with a `Link` to the next
    /// page while there is one: how distribution 3, GHCR and Docker Hub page a tag list, where
    /// Debian's distribution 2.8 ignores `n` and sends every tag in storage order.
    PagedTags,
}

/// How a [`Fault::PaddedManifest`] announces its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    /// A true `Content-Length`: a client can refuse before reading the body.
    Declared,
    /// `Transfer-Encoding: chunked`: only reading tells how large it is.
    Chunked,
    /// Neither: the body ends when the connection closes.
    Absent,
}

/// Which requests a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requests {
    /// `/v2/<repo>/manifests/<tag or digest>`.
    Manifests,
    /// `/v2/<repo>/manifests/<tag>`: tag lookups only, digests still pass.
    ManifestsByTag,
    /// `GET /v2/<repo>/manifests/<tag or digest>`: reads of a manifest, its `HEAD`s still pass.
    ManifestGets,
    /// `/v2/<repo>/tags/list`.
    TagLists,
    /// Everything, `/v2/` included.
    All,
}

/// One request the front received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// GET, HEAD, PUT, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The client's `User-Agent`: `tidewatch/...`, `docker/...` or `containerd/...`.
    pub user_agent: String,
    /// The status answered, `None` when the answer was not HTTP.
    pub status: Option<u16>,
    /// Whether a fault answered it (rather than the origin).
    pub faulted: bool,
    /// When it arrived.
    pub at: SystemTime,
}

impl Seen {
    /// True for a request the container engine sent (dockerd, or containerd for it).
    pub fn is_from_engine(&self) -> bool {
        is_engine_agent(&self.user_agent)
    }

    /// True for `METHOD /v2/<repo>/manifests/...`.
    pub fn is_manifest(&self, method: &str, repo: &str) -> bool {
        self.method == method && self.path.starts_with(&format!("/v2/{repo}/manifests/"))
    }
}

struct Rule {
    requests: Requests,
    fault: Fault,
    /// How many more matching requests it answers; `None` for all of them.
    remaining: Option<usize>,
}

#[derive(Default)]
struct Behaviour {
    rules: Vec<Rule>,
    manifest_headers: Vec<(String, String)>,
    tag_list_headers: Vec<(String, String)>,
    manifest_delay: Duration,
}

struct State {
    origin: String,
    behaviour: Mutex<Behaviour>,
    seen: Mutex<Vec<Seen>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// A running front; passes everything through until a fault is switched on.
pub struct FlakyServer {
    server: TcpServer,
    state: Arc<State>,
}

impl FlakyServer {
    /// A front for the plain (HTTP) registry `origin`.
    pub fn front(origin: &Registry) -> FlakyServer {
        assert!(
            origin.url().starts_with("http://"),
            "the front speaks plain HTTP to its origin"
        );
        let state = Arc::new(State {
            origin: origin.host(),
            behaviour: Mutex::default(),
            seen: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let handling = Arc::clone(&state);
        let server = http_server(move |request| handle(&handling, request));
        FlakyServer { server, state }
    }

    /// "127.0.0.1:PORT", as in image references and the agent config.
    pub fn host(&self) -> String {
        self.server.host()
    }

    /// "http://127.0.0.1:PORT", for a mirror's `remoteurl`.
    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    /// A repository behind the front: "127.0.0.1:PORT/NAME".
    pub fn repo(&self, name: &str) -> String {
        format!("{}/{name}", self.host())
    }

    /// An image reference behind the front: "127.0.0.1:PORT/REPO:TAG".
    pub fn image(&self, repo: &str, tag: &str) -> String {
        format!("{}/{repo}:{tag}", self.host())
    }

    /// Answers the next `times` matching requests with `fault`, then passes them again.
    pub fn fail(&self, requests: Requests, fault: Fault, times: usize) {
        self.add_rule(requests, fault, Some(times));
    }

    /// Answers every matching request with `fault` until [`FlakyServer::heal`].
    pub fn fail_always(&self, requests: Requests, fault: Fault) {
        self.add_rule(requests, fault, None);
    }

    fn add_rule(&self, requests: Requests, fault: Fault, remaining: Option<usize>) {
        lock(&self.state.behaviour).rules.push(Rule {
            requests,
            fault,
            remaining,
        });
    }

    /// Drops every fault: everything passes again.
    pub fn heal(&self) {
        lock(&self.state.behaviour).rules.clear();
    }

    /// Adds `headers` to every manifest response passed from the origin.
    pub fn add_manifest_headers(&self, headers: &[(&str, &str)]) {
        lock(&self.state.behaviour).manifest_headers.extend(
            headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned())),
        );
    }

    /// Adds `headers` to every tag list (`/v2/<repo>/tags/list`) passed from the origin: a
    /// `Link` of the front's choosing, say.
    pub fn add_tag_list_headers(&self, headers: &[(&str, &str)]) {
        lock(&self.state.behaviour).tag_list_headers.extend(
            headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned())),
        );
    }

    /// Holds every manifest request for `delay` before answering it, so concurrent requests
    /// overlap long enough to be counted.
    pub fn delay_manifests(&self, delay: Duration) {
        lock(&self.state.behaviour).manifest_delay = delay;
    }

    /// Every request so far, in order of arrival.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.state.seen).clone()
    }

    /// How many requests have arrived so far: a mark for [`FlakyServer::seen_since`].
    pub fn mark(&self) -> usize {
        lock(&self.state.seen).len()
    }

    /// The requests that arrived after `mark`, in order: those of one run, without the
    /// engine's pushes before it (containerd's pusher asks for manifests too).
    pub fn seen_since(&self, mark: usize) -> Vec<Seen> {
        lock(&self.state.seen)
            .get(mark..)
            .unwrap_or_default()
            .to_vec()
    }

    /// The `METHOD /v2/<repo>/manifests/...` requests so far.
    pub fn manifest_requests(&self, method: &str, repo: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|seen| seen.is_manifest(method, repo))
            .collect()
    }

    /// The most manifest requests that were in flight at once since the last reset.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// Starts counting [`FlakyServer::max_in_flight`] afresh.
    pub fn reset_max_in_flight(&self) {
        self.state.max_in_flight.store(0, Ordering::SeqCst);
    }
}

fn handle(state: &State, request: &ServerRequest) -> Reply {
    let manifest = manifest_reference(request.path());
    let arrived = SystemTime::now();
    let tag_list = request.path().ends_with("/tags/list");
    let fault = take_fault(state, &request.method, manifest, tag_list);
    let (delay, extra_headers) = {
        let behaviour = lock(&state.behaviour);
        let headers = if tag_list {
            behaviour.tag_list_headers.clone()
        } else {
            behaviour.manifest_headers.clone()
        };
        (behaviour.manifest_delay, headers)
    };

    if manifest.is_some() {
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    }
    if manifest.is_some() && !delay.is_zero() {
        thread::sleep(delay);
    }
    let reply = match fault {
        Some(Fault::PaddedManifest { bytes, length }) => {
            padded(forward(&state.origin, request), bytes, length)
        }
        Some(Fault::PagedTags) => paged_tags(&state.origin, request),
        Some(fault) => fault_reply(fault),
        None => {
            let reply = forward(&state.origin, request);
            match reply {
                Reply::Raw(raw)
                    if (manifest.is_some() || tag_list) && !extra_headers.is_empty() =>
                {
                    Reply::Raw(with_headers(raw, &extra_headers))
                }
                reply => reply,
            }
        }
    };
    if manifest.is_some() {
        state.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    lock(&state.seen).push(Seen {
        method: request.method.clone(),
        path: request.path().to_owned(),
        user_agent: request.header("User-Agent").unwrap_or_default().to_owned(),
        status: status_of(&reply),
        faulted: fault.is_some(),
        at: arrived,
    });
    reply
}

/// For `/v2/<repo>/manifests/<reference>`, the reference.
fn manifest_reference(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v2/")?;
    let (_, reference) = rest.rsplit_once("/manifests/")?;
    Some(reference)
}

/// The fault that answers this request, if any, using up one of its answers.
fn take_fault(
    state: &State,
    method: &str,
    manifest: Option<&str>,
    tag_list: bool,
) -> Option<Fault> {
    let mut behaviour = lock(&state.behaviour);
    let rule = behaviour.rules.iter_mut().find(|rule| {
        let applies = match rule.requests {
            Requests::All => true,
            Requests::TagLists => tag_list,
            Requests::Manifests => manifest.is_some(),
            Requests::ManifestsByTag => manifest.is_some_and(|r| !r.starts_with("sha256:")),
            Requests::ManifestGets => manifest.is_some() && method == "GET",
        };
        applies && rule.remaining != Some(0)
    })?;
    if let Some(remaining) = &mut rule.remaining {
        *remaining -= 1;
    }
    Some(rule.fault)
}

fn fault_reply(fault: Fault) -> Reply {
    let error = |code: &str, message: &str| {
        json!({ "errors": [{ "code": code, "message": message, "detail": null }] })
            .to_string()
            .into_bytes()
    };
    let json_type = ("Content-Type".to_owned(), "application/json".to_owned());
    match fault {
        Fault::RateLimited { retry_after } => Reply::Http {
            status: 429,
            headers: vec![
                json_type,
                ("Retry-After".to_owned(), retry_after.to_string()),
            ],
            body: error("TOOMANYREQUESTS", "you have reached your pull rate limit"),
        },
        Fault::Unavailable => Reply::Http {
            status: 503,
            headers: vec![("Content-Type".to_owned(), "text/plain".to_owned())],
            body: b"upstream connect error or disconnect/reset before headers\n".to_vec(),
        },
        Fault::ServerError => Reply::Http {
            status: 500,
            headers: vec![json_type],
            body: error("UNKNOWN", "unknown error"),
        },
        Fault::HugeTagList { bytes } => {
            let tags: Vec<String> = (0..bytes / 12).map(|n| format!("t{n:08}")).collect();
            let body = json!({ "name": "app", "tags": tags }).to_string();
            Reply::Raw(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                     Connection: close\r\n\r\n{body}"
                )
                .into_bytes(),
            )
        }
        Fault::PaddedManifest { .. } | Fault::PagedTags => {
            unreachable!("answered from the origin's answer")
        }
        Fault::NotHttp => Reply::Raw(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n".to_vec()),
        Fault::HtmlPage => Reply::Http {
            status: 200,
            headers: vec![(
                "Content-Type".to_owned(),
                "text/html; charset=utf-8".to_owned(),
            )],
            body: b"<!doctype html><html><body><h1>Sign in to continue</h1></body></html>\n"
                .to_vec(),
        },
    }
}

/// Sends `request` to the origin with `Connection: close` and returns the origin's answer as
/// raw bytes, passed on unchanged (its own `Connection: close` included).
fn forward(origin: &str, request: &ServerRequest) -> Reply {
    match try_forward(origin, request) {
        Ok(raw) => Reply::Raw(raw),
        Err(error) => Reply::Http {
            status: 502,
            headers: Vec::new(),
            body: format!("origin {origin}: {error}\n").into_bytes(),
        },
    }
}

fn try_forward(origin: &str, request: &ServerRequest) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(origin)?;
    stream.set_read_timeout(Some(ORIGIN_TIMEOUT))?;
    stream.set_write_timeout(Some(ORIGIN_TIMEOUT))?;
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.target);
    // Host is kept, so the origin builds upload locations that point back at the front.
    for (name, value) in &request.headers {
        let hop_by_hop = [
            "connection",
            "keep-alive",
            "proxy-connection",
            "transfer-encoding",
            "content-length",
        ];
        if !hop_by_hop.contains(&name.to_ascii_lowercase().as_str()) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    // The body was read whole (de-chunked), so it goes on with its length.
    if !request.body.is_empty() || ["POST", "PUT", "PATCH"].contains(&request.method.as_str()) {
        head.push_str(&format!("Content-Length: {}\r\n", request.body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(&request.body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    Ok(raw)
}

/// The origin's `200` answer `reply` with its body padded with spaces to `bytes` bytes and its
/// size announced as `length` says; any other answer as it is.
fn padded(reply: Reply, bytes: usize, length: Length) -> Reply {
    let Some((head, body)) = ok_answer(&reply) else {
        return reply;
    };
    let mut body = body.to_vec();
    body.resize(body.len().max(bytes), b' ');
    let mut out = String::new();
    for line in head.lines() {
        let name = line
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !["content-length", "transfer-encoding", "connection"].contains(&name.as_str()) {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n");
    let out = match length {
        Length::Declared => {
            out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
            let mut out = out.into_bytes();
            out.extend_from_slice(&body);
            out
        }
        Length::Chunked => {
            out.push_str("Transfer-Encoding: chunked\r\n\r\n");
            let mut out = out.into_bytes();
            for chunk in body.chunks(64 * 1024) {
                out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                out.extend_from_slice(chunk);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
            out
        }
        Length::Absent => {
            out.push_str("\r\n");
            let mut out = out.into_bytes();
            out.extend_from_slice(&body);
            out
        }
    };
    Reply::Raw(out)
}

/// The head and body of `reply` when it is the origin's `200`. The origin answers with a
/// `Content-Length` (the forwarded request said `Connection: close`), so the body is the rest.
fn ok_answer(reply: &Reply) -> Option<(String, &[u8])> {
    let Reply::Raw(raw) = reply else {
        return None;
    };
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let ok = head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200");
    ok.then(|| (head, &raw[end + 4..]))
}

/// The page of the origin's tag list that `request` asks for ([`Fault::PagedTags`]).
fn paged_tags(origin: &str, request: &ServerRequest) -> Reply {
    let whole = ServerRequest {
        target: request.path().to_owned(),
        ..request.clone()
    };
    let reply = forward(origin, &whole);
    let Some(list) = ok_answer(&reply)
        .and_then(|(_, body)| serde_json::from_slice::<serde_json::Value>(body).ok())
    else {
        return reply;
    };
    let mut tags: Vec<String> = list["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|tag| tag.as_str().map(str::to_owned))
        .collect();
    tags.sort();
    if let Some(last) = request.query_values("last").pop() {
        tags.retain(|tag| *tag > last);
    }
    let n = request
        .query_values("n")
        .pop()
        .and_then(|n| n.parse().ok())
        .unwrap_or(tags.len());
    let more = tags.len() > n;
    tags.truncate(n);
    let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    if let (true, Some(last)) = (more, tags.last()) {
        headers.push((
            "Link".to_owned(),
            format!("<{}?n={n}&last={last}>; rel=\"next\"", request.path()),
        ));
    }
    Reply::Http {
        status: 200,
        headers,
        body: json!({ "name": list["name"], "tags": tags })
            .to_string()
            .into_bytes(),
    }
}

/// `raw` with `headers` inserted after its status line.
fn with_headers(raw: Vec<u8>, headers: &[(String, String)]) -> Vec<u8> {
    let Some(end) = raw.windows(2).position(|w| w == b"\r\n") else {
        return raw;
    };
    let mut out = raw[..end + 2].to_vec();
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(&raw[end + 2..]);
    out
}

fn status_of(reply: &Reply) -> Option<u16> {
    match reply {
        Reply::Http { status, .. } => Some(*status),
        Reply::Raw(raw) => {
            let line = raw.split(|b| *b == b'\r').next()?;
            let line = std::str::from_utf8(line).ok()?;
            line.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[test]
fn manifest_paths_and_raw_statuses_are_read() {
    assert_eq!(
        manifest_reference("/v2/team/app/manifests/stable"),
        Some("stable")
    );
    assert_eq!(manifest_reference("/v2/app/blobs/sha256:aa"), None);
    assert_eq!(
        status_of(&Reply::Raw(b"HTTP/1.1 404 Not Found\r\n\r\n".to_vec())),
        Some(404)
    );
    assert_eq!(status_of(&Reply::Raw(b"SSH-2.0-x\r\n".to_vec())), None);
    assert_eq!(
        with_headers(
            b"HTTP/1.1 200 OK\r\nA: 1\r\n\r\n".to_vec(),
            &[("B".to_owned(), "2".to_owned())]
        ),
        b"HTTP/1.1 200 OK\r\nB: 2\r\nA: 1\r\n\r\n"
    );
}

#[test]
fn a_padded_answer_keeps_the_origins_head_and_announces_its_size_as_told() {
    let origin = || {
        Reply::Raw(
            b"HTTP/1.1 200 OK\r\nDocker-Content-Digest: sha256:aa\r\nContent-Length: 2\r\n\
              Connection: close\r\n\r\n{}"
                .to_vec(),
        )
    };
    let text = |reply: Reply| match reply {
        Reply::Raw(raw) => String::from_utf8(raw).unwrap(),
        Reply::Http { .. } => panic!("not the origin's answer"),
    };
    let declared = text(padded(origin(), 10, Length::Declared));
    assert_eq!(
        declared,
        "HTTP/1.1 200 OK\r\nDocker-Content-Digest: sha256:aa\r\nConnection: close\r\n\
         Content-Length: 10\r\n\r\n{}        "
    );
    let chunked = text(padded(origin(), 10, Length::Chunked));
    assert!(
        chunked.ends_with("Transfer-Encoding: chunked\r\n\r\na\r\n{}        \r\n0\r\n\r\n"),
        "{chunked:?}"
    );
    let absent = text(padded(origin(), 10, Length::Absent));
    assert!(
        absent.ends_with("Connection: close\r\n\r\n{}        "),
        "{absent:?}"
    );
    assert!(!absent.contains("Content-Length"), "{absent:?}");
    let refused = text(padded(
        Reply::Raw(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()),
        10,
        Length::Declared,
    ));
    assert_eq!(
        refused,
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
    );
}

#[test]
fn the_front_passes_pushes_through_then_answers_with_the_faults_it_is_given() {
    use super::bed::TestBed;
    use super::http;
    use super::images::push;
    use super::registry::MANIFEST_MEDIA_TYPES;

    let bed = TestBed::new("selftest-flaky");
    let origin = Registry::start();
    let front = FlakyServer::front(&origin);
    let image = front.image("app", "v1");
    bed.build_app(&image, "1");
    let digest = push(&image);
    assert_eq!(
        origin.manifest_digest("app", "v1"),
        digest,
        "pushed through"
    );

    let head = || {
        http::request(
            &front.host(),
            "HEAD",
            "/v2/app/manifests/v1",
            &[("Accept", MANIFEST_MEDIA_TYPES)],
            Duration::from_secs(5),
        )
    };
    front.fail(
        Requests::Manifests,
        Fault::RateLimited { retry_after: 1 },
        2,
    );
    front.add_manifest_headers(&[("RateLimit-Remaining", "7;w=21600")]);
    for _ in 0..2 {
        let limited = head().unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(limited.status, 429, "{limited:?}");
        assert_eq!(limited.header("Retry-After"), Some("1"), "{limited:?}");
    }
    let passed = head().unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(passed.status, 200, "{passed:?}");
    assert_eq!(
        passed.header("Docker-Content-Digest"),
        Some(digest.as_str())
    );
    assert_eq!(passed.header("RateLimit-Remaining"), Some("7;w=21600"));

    front.fail_always(Requests::All, Fault::NotHttp);
    let garbage = http::request(&front.host(), "GET", "/v2/", &[], Duration::from_secs(5));
    assert!(
        garbage.is_err(),
        "an SSH banner parsed as HTTP: {garbage:?}"
    );
    front.heal();
    front.fail(Requests::Manifests, Fault::HtmlPage, 1);
    let page = head().unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(page.status, 200);
    assert_eq!(page.header("Docker-Content-Digest"), None);

    let heads: Vec<(Option<u16>, bool)> = front
        .manifest_requests("HEAD", "app")
        .iter()
        .skip_while(|seen| !seen.faulted)
        .map(|seen| (seen.status, seen.faulted))
        .collect();
    assert_eq!(
        heads,
        [
            (Some(429), true),
            (Some(429), true),
            (Some(200), false),
            (Some(200), true)
        ]
    );
}
