//! [`EngineProxy`]: a unix socket in front of the test engine that passes every byte through
//! unchanged and writes down each request tidewatch makes of the engine, with the engine's
//! answer, so that a test can count what one command or one cycle costs the engine.
//!
//! Both directions are read as HTTP/1.1 (several requests on one connection, bodies framed by
//! `Content-Length` or chunked encoding). A request is written down before its first byte goes
//! on to the engine, and each piece of an answer before it goes back to the client: whatever
//! tidewatch has seen, the log has too. A connection upgraded to a raw stream (`101`) is passed
//! through without being read further.

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, BufReader, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use super::docker::Engine;

/// A message head longer than this is not HTTP we understand: the rest of the connection is
/// passed through unread. The engine's heads are a few hundred bytes.
const MAX_HEAD: usize = 64 * 1024;
/// The longest a unix socket path may be (`sun_path`, with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// One request to the engine, as the proxy saw it go by.
#[derive(Debug, Clone)]
pub struct EngineRequest {
    /// `GET`, `POST`, `DELETE`...
    pub method: String,
    /// The path without the API version prefix and without the query: `/containers/json`,
    /// `/images/sha256:.../json`, `/_ping`.
    pub path: String,
    /// The query string, without its `?`; empty when there is none.
    pub query: String,
    /// The status of the engine's answer, once its head went by.
    pub status: Option<u16>,
    /// The body of the answer, de-chunked, as far as it went by.
    pub answer: Vec<u8>,
}

impl EngineRequest {
    /// `METHOD /path`, e.g. `GET /containers/json`.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The answer's body as JSON; panics when it is not.
    pub fn answer_json(&self) -> Value {
        serde_json::from_slice(&self.answer).unwrap_or_else(|error| {
            panic!(
                "the engine's answer to {} is not JSON ({error}): {}",
                self.line(),
                String::from_utf8_lossy(&self.answer)
            )
        })
    }
}

/// Called with each request (its answer still to come) before its first byte goes on to the
/// engine: a test acts there to put something between tidewatch's read and its write.
pub type BeforeRequest = Arc<dyn Fn(&EngineRequest) + Send + Sync>;

/// The requests seen so far, in the order they were sent (across connections: the order their
/// heads reached the proxy).
type Log = Arc<Mutex<Vec<EngineRequest>>>;

fn lock(log: &Log) -> MutexGuard<'_, Vec<EngineRequest>> {
    // A connection thread that panicked leaves whole entries behind: still readable.
    log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The connections being relayed, by number: both ends of each, to close them on drop.
#[derive(Default)]
struct Connections {
    next: u64,
    open: HashMap<u64, [UnixStream; 2]>,
}

type Shared = Arc<Mutex<Connections>>;

fn lock_connections(connections: &Shared) -> MutexGuard<'_, Connections> {
    connections
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A counting proxy for the test engine on a unix socket of its own; stops on drop.
pub struct EngineProxy {
    // Held for the socket's directory, removed on drop.
    _dir: TempDir,
    socket: PathBuf,
    log: Log,
    connections: Shared,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl EngineProxy {
    /// Listens on a fresh socket and forwards every connection to the test engine's socket
    /// (`DOCKER_HOST`, which must be a `unix://` address, else the default socket).
    pub fn start() -> EngineProxy {
        EngineProxy::start_to(&Engine::host(), Arc::new(|_: &EngineRequest| {}))
    }

    /// Like [`EngineProxy::start`], to the engine at `host` (a `unix://` address), calling
    /// `before` with each request before it is passed on.
    pub fn start_to(host: &str, before: BeforeRequest) -> EngineProxy {
        let engine = PathBuf::from(host.strip_prefix("unix://").unwrap_or_else(|| {
            panic!("the engine proxy forwards to a unix socket; the test engine is at {host}")
        }));
        let dir = super::scratch_dir("engine-proxy-");
        let socket = dir.path().join("engine.sock");
        assert!(
            socket.as_os_str().len() <= MAX_SOCKET_PATH,
            "{} is too long for a unix socket path",
            socket.display()
        );
        let listener = UnixListener::bind(&socket)
            .unwrap_or_else(|error| panic!("cannot listen on {}: {error}", socket.display()));

        let log = Log::default();
        let connections = Shared::default();
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let (log, connections, stop) = (
                Arc::clone(&log),
                Arc::clone(&connections),
                Arc::clone(&stop),
            );
            thread::spawn(move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    // A client the engine refuses sees its connection closed, as it would
                    // without the proxy.
                    let Ok(upstream) = UnixStream::connect(&engine) else {
                        eprintln!("engine proxy: cannot reach {}", engine.display());
                        continue;
                    };
                    let before = Arc::clone(&before);
                    if let Err(error) = relay(client, upstream, &log, &connections, before) {
                        eprintln!("engine proxy: cannot relay a connection: {error}");
                    }
                }
            })
        };
        EngineProxy {
            _dir: dir,
            socket,
            log,
            connections,
            stop,
            accept: Some(accept),
        }
    }

    /// The proxy's address, for `[docker] host`: `unix:///.../engine.sock`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Every request seen so far, in order.
    pub fn requests(&self) -> Vec<EngineRequest> {
        lock(&self.log).clone()
    }

    /// How many requests have been seen so far: a mark to take [`EngineProxy::requests_since`]
    /// from.
    pub fn mark(&self) -> usize {
        lock(&self.log).len()
    }

    /// The requests seen since `mark`.
    pub fn requests_since(&self, mark: usize) -> Vec<EngineRequest> {
        lock(&self.log)[mark..].to_vec()
    }

    /// Waits until every connection has ended (a client that exited has closed all of its);
    /// panics after `timeout`.
    pub fn settle(&self, timeout: Duration) {
        let started = Instant::now();
        loop {
            let open = lock_connections(&self.connections).open.len();
            if open == 0 {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "engine proxy: {open} connection(s) still open after {timeout:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for EngineProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so that it sees the flag.
        let _ = UnixStream::connect(&self.socket);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        // Ends the connection threads blocked in a read.
        for ends in lock_connections(&self.connections).open.values() {
            for end in ends {
                let _ = end.shutdown(Shutdown::Both);
            }
        }
    }
}

/// A request waiting for its answer: where it is in the log, and whether its answer has a body
/// at all.
struct Pending {
    index: usize,
    head: bool,
}

/// Relays one connection, a thread for each direction; the connection is forgotten when both
/// have ended.
fn relay(
    client: UnixStream,
    upstream: UnixStream,
    log: &Log,
    connections: &Shared,
    before: BeforeRequest,
) -> io::Result<()> {
    let (client_out, upstream_out) = (client.try_clone()?, upstream.try_clone()?);
    let ends = [client.try_clone()?, upstream.try_clone()?];
    let number = {
        let mut connections = lock_connections(connections);
        let number = connections.next;
        connections.next += 1;
        connections.open.insert(number, ends);
        number
    };
    let directions = Arc::new(AtomicUsize::new(2));
    let ended = move |connections: &Shared| {
        if directions.fetch_sub(1, Ordering::SeqCst) == 1 {
            lock_connections(connections).open.remove(&number);
        }
    };
    let (pending, answered) = mpsc::channel();

    let (requests, connections_here, done) =
        (Arc::clone(log), Arc::clone(connections), ended.clone());
    thread::spawn(move || {
        // An error is a connection that broke; the engine or client sees it as they would.
        let _ = pass_requests(
            BufReader::new(client),
            upstream_out,
            &requests,
            pending,
            &*before,
        );
        done(&connections_here);
    });
    let (answers, connections_here) = (Arc::clone(log), Arc::clone(connections));
    thread::spawn(move || {
        let _ = pass_answers(BufReader::new(upstream), client_out, &answers, answered);
        ended(&connections_here);
    });
    Ok(())
}

/// Client to engine: writes each request down, then passes it on.
fn pass_requests(
    mut from: BufReader<UnixStream>,
    mut to: UnixStream,
    log: &Log,
    pending: Sender<Pending>,
    before: &(dyn Fn(&EngineRequest) + Send + Sync),
) -> io::Result<()> {
    while let Some((raw, head)) = next_head(&mut from, &mut to)? {
        let (method, target) = head.request_line();
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let request = EngineRequest {
            method: method.to_owned(),
            path: without_version(path).to_owned(),
            query: query.to_owned(),
            status: None,
            answer: Vec::new(),
        };
        before(&request);
        let index = {
            let mut log = lock(log);
            log.push(request);
            log.len() - 1
        };
        let _ = pending.send(Pending {
            index,
            head: method == "HEAD",
        });
        to.write_all(&raw)?;
        pass_body(&mut from, &mut to, head.request_body(), &mut |_| {})?;
    }
    to.shutdown(Shutdown::Write)
}

/// Engine to client: writes down each answer's status and body as they go back.
fn pass_answers(
    mut from: BufReader<UnixStream>,
    mut to: UnixStream,
    log: &Log,
    answered: Receiver<Pending>,
) -> io::Result<()> {
    // Requests whose answers are still to come, oldest first: HTTP/1.1 answers in order.
    let mut waiting = VecDeque::new();
    while let Some((raw, head)) = next_head(&mut from, &mut to)? {
        let status = head.status();
        // `100 Continue` and the like come before the answer, and have no body.
        if (100..200).contains(&status) && status != 101 {
            to.write_all(&raw)?;
            continue;
        }
        waiting.extend(answered.try_iter());
        let request = match waiting.pop_front() {
            Some(request) => Some(request),
            // Written down before it was passed on, so it is there unless its thread died.
            None => answered.recv().ok(),
        };
        if let Some(request) = &request {
            lock(log)[request.index].status = Some(status);
        }
        to.write_all(&raw)?;
        if status == 101 {
            io::copy(&mut from, &mut to)?;
            break;
        }
        let body = head.answer_body(status, request.as_ref().is_some_and(|r| r.head));
        pass_body(&mut from, &mut to, body, &mut |piece| {
            if let Some(request) = &request {
                lock(log)[request.index].answer.extend_from_slice(piece);
            }
        })?;
    }
    to.shutdown(Shutdown::Write)
}

/// The next message head, as sent and parsed; `None` at the end of the stream, or once a
/// head that is not HTTP and everything after it went through unread.
fn next_head(
    from: &mut BufReader<UnixStream>,
    to: &mut UnixStream,
) -> io::Result<Option<(Vec<u8>, Head)>> {
    let Some(raw) = read_head(from)? else {
        return Ok(None);
    };
    match Head::parse(&raw) {
        Some(head) => Ok(Some((raw, head))),
        None => {
            to.write_all(&raw)?;
            io::copy(from, to)?;
            Ok(None)
        }
    }
}

/// `/v1.41/containers/json` -> `/containers/json`; a path without the prefix is kept.
fn without_version(path: &str) -> &str {
    let Some(rest) = path.strip_prefix("/v") else {
        return path;
    };
    let (version, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let is_version = !version.is_empty() && version.chars().all(|c| c.is_ascii_digit() || c == '.');
    if is_version {
        tail
    } else {
        path
    }
}

/// Reads one message head (start line and header lines, through the empty line), as sent;
/// `None` when the stream ends before its first byte. A head past [`MAX_HEAD`] is returned as
/// far as it was read, which [`Head::parse`] refuses.
fn read_head(from: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
    let mut raw = Vec::new();
    loop {
        let start = raw.len();
        if from.read_until(b'\n', &mut raw)? == 0 {
            return match raw.is_empty() {
                true => Ok(None),
                false => Err(io::ErrorKind::UnexpectedEof.into()),
            };
        }
        let line = &raw[start..];
        if line == b"\r\n" || line == b"\n" || raw.len() > MAX_HEAD {
            return Ok(Some(raw));
        }
    }
}

/// How a message's body is framed.
enum Body {
    None,
    Length(u64),
    Chunked,
    /// Everything until the engine closes the connection.
    UntilClose,
}

/// A parsed message head.
struct Head {
    start: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn parse(raw: &[u8]) -> Option<Head> {
        if raw.len() > MAX_HEAD {
            return None;
        }
        let text = std::str::from_utf8(raw).ok()?;
        let mut lines = text.lines();
        let start = lines.next()?.to_owned();
        if start.split(' ').count() < 3 {
            return None;
        }
        let headers = lines
            .take_while(|line| !line.is_empty())
            .map(|line| {
                let (name, value) = line.split_once(':')?;
                Some((name.trim().to_owned(), value.trim().to_owned()))
            })
            .collect::<Option<_>>()?;
        Some(Head { start, headers })
    }

    /// `(METHOD, target)` of a request line.
    fn request_line(&self) -> (&str, &str) {
        let mut parts = self.start.split(' ');
        (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        )
    }

    /// The status of an answer's status line (0 when it has none).
    fn status(&self) -> u16 {
        self.start
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The framing both kinds of message share: chunked, else a length.
    fn framed_body(&self) -> Option<Body> {
        let chunked = self.header("Transfer-Encoding").is_some_and(|codings| {
            codings
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
        });
        if chunked {
            return Some(Body::Chunked);
        }
        self.header("Content-Length")
            .and_then(|length| length.parse().ok())
            .map(Body::Length)
    }

    /// A request without framing has no body.
    fn request_body(&self) -> Body {
        self.framed_body().unwrap_or(Body::None)
    }

    /// An answer to HEAD, and a 204 or 304, has no body; one without framing runs until the
    /// connection closes.
    fn answer_body(&self, status: u16, to_head: bool) -> Body {
        if to_head || status == 204 || status == 304 {
            return Body::None;
        }
        self.framed_body().unwrap_or(Body::UntilClose)
    }
}

/// Passes a body through, showing each piece of its content (de-chunked) to `keep` first.
fn pass_body(
    from: &mut BufReader<UnixStream>,
    to: &mut UnixStream,
    body: Body,
    keep: &mut dyn FnMut(&[u8]),
) -> io::Result<()> {
    match body {
        Body::None => Ok(()),
        Body::Length(length) => pass_bytes(from, to, Some(length), keep),
        Body::UntilClose => pass_bytes(from, to, None, keep),
        Body::Chunked => loop {
            let mut line = Vec::new();
            from.read_until(b'\n', &mut line)?;
            to.write_all(&line)?;
            let text = String::from_utf8_lossy(&line);
            let size = text.split(';').next().unwrap_or_default().trim();
            let size = u64::from_str_radix(size, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                // Trailers, through the empty line.
                return match read_head(from)? {
                    Some(trailers) => to.write_all(&trailers),
                    None => Ok(()),
                };
            }
            pass_bytes(from, to, Some(size), keep)?;
            let mut end = Vec::new();
            from.read_until(b'\n', &mut end)?;
            to.write_all(&end)?;
        },
    }
}

/// Passes `length` bytes through (all of them until the end of the stream when `None`).
fn pass_bytes(
    from: &mut BufReader<UnixStream>,
    to: &mut UnixStream,
    length: Option<u64>,
    keep: &mut dyn FnMut(&[u8]),
) -> io::Result<()> {
    let mut left = length.unwrap_or(u64::MAX);
    while left > 0 {
        let buffered = from.fill_buf()?;
        if buffered.is_empty() {
            return match length {
                Some(_) => Err(io::ErrorKind::UnexpectedEof.into()),
                None => Ok(()),
            };
        }
        let take = buffered
            .len()
            .min(usize::try_from(left).unwrap_or(usize::MAX));
        keep(&buffered[..take]);
        to.write_all(&buffered[..take])?;
        from.consume(take);
        left -= take as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::without_version;

    #[test]
    fn the_version_prefix_is_dropped_and_other_paths_are_kept() {
        assert_eq!(
            without_version("/v1.41/containers/json"),
            "/containers/json"
        );
        assert_eq!(without_version("/_ping"), "/_ping");
        assert_eq!(without_version("/version"), "/version");
        assert_eq!(without_version("/volumes/x"), "/volumes/x");
    }
}
