//! Just enough HTTP/1.1 to probe a registry (`GET /v2/`, `HEAD` a manifest) or a test app (what
//! page it serves), in plain text or over TLS.
//!
//! Written on `std::net` on purpose: what the tests believe about the registry must not come
//! through the HTTP stack the product itself uses. TLS is rustls's bare connection, verified
//! against the test's own CA only.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;

/// Status, headers and body of a response.
#[derive(Debug)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    headers: Vec<(String, String)>,
    /// The body as text, as sent: chunked encoding is not undone (busybox httpd and the
    /// registry's small answers do not use it).
    pub body: String,
}

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Sends one request to `host` ("127.0.0.1:PORT") and reads the response. Every step is
/// bounded by `timeout`, so a registry that hangs fails the caller instead of the test run.
pub fn request(
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> io::Result<Response> {
    request_over(host, None, method, path, headers, timeout)
}

/// Like [`request`], with `body` sent after the headers (and its `Content-Length`, when it is
/// not empty).
pub fn send(
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> io::Result<Response> {
    request_with_body(host, None, method, path, headers, body, timeout)
}

/// Like [`request`], over TLS when `tls` is given (the server must present a certificate for
/// the host's IP address that `tls` trusts).
pub fn request_over(
    host: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> io::Result<Response> {
    request_with_body(host, tls, method, path, headers, b"", timeout)
}

fn request_with_body(
    host: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> io::Result<Response> {
    let address: std::net::SocketAddr = host
        .parse()
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: {error}")))?;
    let mut stream = TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;

    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);

    let raw = match tls {
        None => exchange(&mut stream, &request),
        Some(config) => {
            let name = ServerName::IpAddress(address.ip().into());
            let connection = rustls::ClientConnection::new(Arc::clone(config), name)
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
            exchange(&mut rustls::StreamOwned::new(connection, stream), &request)
        }
    }?;
    parse(&raw)
}

/// Writes the request head and reads the whole answer: `Connection: close` lets us read to the
/// end instead of parsing lengths and chunks.
fn exchange(stream: &mut impl ReadWrite, request: &[u8]) -> io::Result<Vec<u8>> {
    stream.write_all(request)?;
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Ok(_) => Ok(raw),
        // A TLS peer that closes without close_notify has still said all it had to say.
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof && !raw.is_empty() => Ok(raw),
        Err(error) => Err(error),
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn parse(raw: &[u8]) -> io::Result<Response> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not an HTTP status line: {status_line:?}"),
            )
        })?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    Ok(Response {
        status,
        headers,
        body: body.to_owned(),
    })
}
