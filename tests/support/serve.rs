//! A tiny HTTP/1.1 server on `std::net` for the test doubles that stand in for parts of a
//! registry deployment (the token server, the misbehaving front of a registry) and for the
//! webhook receiver of notification tests.
//!
//! One request per connection (every reply says `Connection: close`), one thread per
//! connection ([`TcpServer`]), so a slow or stuck handler never holds up the others. That is all
//! HTTP clients need (reqwest and docker's Go client both reconnect) and keeps the server small
//! enough to trust.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::tcp_server::TcpServer;

/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// A request head longer than this is refused; registries' heads are a few hundred bytes.
const MAX_HEAD: usize = 64 * 1024;

/// A request as the handler sees it: the body already read in full.
#[derive(Debug, Clone)]
pub struct ServerRequest {
    /// GET, HEAD, PATCH, ...
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Every header, in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl ServerRequest {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// Every value of the query parameter `key`, percent-decoded, in order.
    pub fn query_values(&self, key: &str) -> Vec<String> {
        let Some((_, query)) = self.target.split_once('?') else {
            return Vec::new();
        };
        urlencoded_values(query, key)
    }

    /// Every value of the field `key` of an `application/x-www-form-urlencoded` body,
    /// percent-decoded, in order; nothing when the body is of another type. OAuth2 clients
    /// (containerd's token fetcher) send their grants this way.
    pub fn form_values(&self, key: &str) -> Vec<String> {
        let is_form = self.header("Content-Type").is_some_and(|value| {
            value
                .split(';')
                .next()
                .is_some_and(|kind| kind.trim().eq_ignore_ascii_case(FORM_TYPE))
        });
        if !is_form {
            return Vec::new();
        }
        urlencoded_values(&String::from_utf8_lossy(&self.body), key)
    }
}

/// Whether `user_agent` is the container engine's: dockerd's own client (`docker/20.10.24
/// go/go1.19.8 ...`), or containerd's (`containerd/2.1.9`), which pushes and pulls for dockerd
/// when it keeps its images in the containerd image store.
pub fn is_engine_agent(user_agent: &str) -> bool {
    ["docker/", "containerd/"]
        .iter()
        .any(|engine| user_agent.starts_with(engine))
}

/// The media type of an HTML form body.
const FORM_TYPE: &str = "application/x-www-form-urlencoded";

/// The values of `key` in `name=value&name=value` text (a query string or a form body).
fn urlencoded_values(text: &str, key: &str) -> Vec<String> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .filter(|(name, _)| percent_decode(name) == key)
        .map(|(_, value)| percent_decode(value))
        .collect()
}

/// What the handler answers.
pub enum Reply {
    /// A well-formed response; `Content-Length` and `Connection: close` are added.
    Http {
        /// The status code.
        status: u16,
        /// Headers besides `Content-Length` and `Connection`.
        headers: Vec<(String, String)>,
        /// The body (not sent for HEAD).
        body: Vec<u8>,
    },
    /// Bytes written as they are, then the connection is closed: for proxies and for garbage.
    Raw(Vec<u8>),
}

impl Reply {
    /// A response with a JSON body.
    pub fn json(status: u16, body: &serde_json::Value) -> Reply {
        Reply::Http {
            status,
            headers: vec![("Content-Type".to_owned(), "application/json".to_owned())],
            body: body.to_string().into_bytes(),
        }
    }

    /// A response with no body and the given headers.
    pub fn status(status: u16, headers: &[(&str, &str)]) -> Reply {
        Reply::Http {
            status,
            headers: headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
            body: Vec::new(),
        }
    }
}

/// Listens on a free loopback port and answers every request with `handler`; stops accepting
/// when the server is dropped.
pub fn http_server(handler: impl Fn(&ServerRequest) -> Reply + Send + Sync + 'static) -> TcpServer {
    TcpServer::start(move |stream| {
        // A client that hangs up mid-request is its own problem, not the test's.
        let _ = serve_one(stream, &handler);
    })
}

/// The first byte of a TLS record that carries a handshake (a ClientHello, when it opens a
/// connection).
const TLS_HANDSHAKE: u8 = 0x16;

/// How long a connection answered [`BAD_REQUEST`] waits for its client to hang up.
const TLS_LINGER: Duration = Duration::from_millis(500);

/// What Go's net/http server answers bytes that are not an HTTP request, a TLS ClientHello
/// included.
const BAD_REQUEST: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
    Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request";

fn serve_one(stream: TcpStream, handler: &dyn Fn(&ServerRequest) -> Reply) -> io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    // A client that tries TLS first (containerd's resolver does, for a registry on loopback)
    // falls back to plain HTTP only when its handshake is answered in HTTP ("server gave HTTP
    // response to HTTPS client"), as a Go registry answers it. Closing instead is an EOF to
    // that client, which it reports as the push's error.
    if reader.fill_buf()?.first() == Some(&TLS_HANDSHAKE) {
        stream.write_all(BAD_REQUEST)?;
        stream.flush()?;
        // Closing with the rest of the hello unread would reset the connection, and a reset
        // can overtake the answer; so, like Go, close our side and read until the client hangs
        // up (it does once it has read the answer), for a moment at most.
        stream.shutdown(std::net::Shutdown::Write)?;
        stream.set_read_timeout(Some(TLS_LINGER))?;
        let _ = io::copy(&mut reader, &mut io::sink());
        return Ok(());
    }
    let request = read_request(&mut reader)?;
    let reply = handler(&request);
    match reply {
        Reply::Raw(bytes) => stream.write_all(&bytes)?,
        Reply::Http {
            status,
            headers,
            body,
        } => {
            let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
            for (name, value) in &headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str(&format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            ));
            stream.write_all(head.as_bytes())?;
            if request.method != "HEAD" {
                stream.write_all(&body)?;
            }
        }
    }
    stream.flush()?;
    stream.shutdown(std::net::Shutdown::Both)
}

/// Reads a request head and its body (by `Content-Length`, or chunked as docker's pushes send).
pub fn read_request(reader: &mut impl BufRead) -> io::Result<ServerRequest> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line)?;
        total += n;
        if n == 0 || total > MAX_HEAD {
            return Err(invalid(
                "connection closed before the end of the request head",
            ));
        }
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        if line.is_empty() {
            break;
        }
        lines.push(line);
    }
    let mut request_line = lines.first().map(|l| l.split(' ')).into_iter().flatten();
    let (Some(method), Some(target)) = (request_line.next(), request_line.next()) else {
        return Err(invalid("not an HTTP request line"));
    };
    let (method, target) = (method.to_owned(), target.to_owned());
    let headers: Vec<(String, String)> = lines
        .iter()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let mut request = ServerRequest {
        method,
        target,
        headers,
        body: Vec::new(),
    };
    let chunked = request
        .header("Transfer-Encoding")
        .is_some_and(|value| value.eq_ignore_ascii_case("chunked"));
    if chunked {
        request.body = read_chunked(reader)?;
    } else if let Some(length) = request.header("Content-Length") {
        let length: usize = length.parse().map_err(|_| invalid("bad Content-Length"))?;
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        request.body = body;
    }
    Ok(request)
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line)?;
        let size = size_line.trim().split(';').next().unwrap_or_default();
        let size =
            usize::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size in the body"))?;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0; 2];
        reader.read_exact(&mut crlf)?;
    }
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_owned())
}

/// Decodes `%XX` escapes and `+` (a space in a query string).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

#[test]
fn query_values_are_percent_decoded_and_repeatable() {
    let request = ServerRequest {
        method: "GET".to_owned(),
        target: "/token?scope=repository%3Aapp%3Apull&service=reg&scope=repository:b/c:pull,push&x"
            .to_owned(),
        headers: Vec::new(),
        body: Vec::new(),
    };
    assert_eq!(request.path(), "/token");
    assert_eq!(
        request.query_values("scope"),
        ["repository:app:pull", "repository:b/c:pull,push"]
    );
    assert_eq!(request.query_values("service"), ["reg"]);
    assert_eq!(request.query_values("x"), [""]);
    assert!(request.query_values("account").is_empty());
    assert_eq!(percent_decode("a%2"), "a%2", "a cut escape stays as it is");
}

#[test]
fn a_chunked_body_is_read_whole() {
    let raw =
        b"PATCH /v2/app/blobs/uploads/1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
        5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
    let request = read_request(&mut &raw[..]).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(request.method, "PATCH");
    assert_eq!(request.body, b"hello, world");
}

#[test]
fn form_fields_are_read_from_a_form_body_only() {
    let form = |content_type: &str| ServerRequest {
        method: "POST".to_owned(),
        target: "/token?scope=from-query".to_owned(),
        headers: vec![("content-type".to_owned(), content_type.to_owned())],
        body: b"grant_type=password&scope=repository%3Aapp%3Apull+repository%3Aapp%3Apull%2Cpush"
            .to_vec(),
    };
    let request = form("application/x-www-form-urlencoded; charset=utf-8");
    assert_eq!(request.form_values("grant_type"), ["password"]);
    assert_eq!(
        request.form_values("scope"),
        ["repository:app:pull repository:app:pull,push"]
    );
    assert!(form("application/json").form_values("scope").is_empty());
}

#[test]
fn a_tls_client_hello_is_answered_in_plain_http_as_go_servers_do() {
    let server = http_server(|_| Reply::status(200, &[]));
    let mut stream = TcpStream::connect(server.host()).unwrap_or_else(|error| panic!("{error}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap_or_else(|error| panic!("{error}"));
    // A record header (handshake, TLS 1.0 record version) and the start of a ClientHello: the
    // server answers on the first byte, without waiting for a line end that never comes.
    stream
        .write_all(&[
            0x16, 0x03, 0x01, 0x00, 0xf4, 0x01, 0x00, 0x00, 0xf0, 0x03, 0x03,
        ])
        .unwrap_or_else(|error| panic!("{error}"));
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(
        answer.starts_with(b"HTTP/1.1 400 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}
