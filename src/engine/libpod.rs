//! What only Podman's own (libpod) API tells, asked on the same address as its Docker-compatible
//! one. bollard speaks the Docker API only, so these few requests go over hyper directly.

use bollard::models::HealthConfig;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};

use super::Engine;

/// The libpod API version asked for: Podman 4.0 and later answer it.
const LIBPOD_API: &str = "v4.0.0";

impl Engine {
    /// The HEALTHCHECK that image `id` defines, from libpod's image inspect. Podman's
    /// Docker-compatible image inspect leaves it out (4.3 at least), and without it an inherited
    /// healthcheck looks like one the user set.
    pub async fn podman_image_healthcheck(&self, id: &str) -> Result<Option<HealthConfig>, String> {
        #[derive(Deserialize)]
        struct LibpodImage {
            #[serde(rename = "Healthcheck")]
            healthcheck: Option<HealthConfig>,
        }
        let body = self
            .libpod_get(&format!("/{LIBPOD_API}/libpod/images/{id}/json"))
            .await?;
        serde_json::from_slice::<LibpodImage>(&body)
            .map(|image| image.healthcheck)
            .map_err(|e| format!("libpod image inspect of {id}: {e}"))
    }

    /// `GET path` on the engine's address; the body of a 200 answer.
    async fn libpod_get(&self, path: &str) -> Result<Bytes, String> {
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, "podman")
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("GET {path}: {e}"))?;
        let host = self.host();
        // These requests go over a bare connection, without the TLS of bollard's client: to a
        // TLS engine they are not sent at all, rather than in plain text.
        if self.tls {
            return Err(format!(
                "GET {path} on {host}: libpod requests over TLS are not supported"
            ));
        }
        let connect_error = |e: std::io::Error| format!("connecting to {host}: {e}");
        if let Some(socket) = host.strip_prefix("unix://") {
            let stream = tokio::net::UnixStream::connect(socket)
                .await
                .map_err(connect_error)?;
            get(stream, request).await
        } else {
            let address = host
                .strip_prefix("tcp://")
                .or_else(|| host.strip_prefix("http://"))
                .unwrap_or(host)
                .trim_end_matches('/');
            let stream = tokio::net::TcpStream::connect(address)
                .await
                .map_err(connect_error)?;
            get(stream, request).await
        }
        .map_err(|e| format!("GET {path} on {host}: {e}"))
    }
}

/// Sends `request` over `stream` (one request per connection) and returns the body of a 200.
async fn get<S>(stream: S, request: hyper::Request<Empty<Bytes>>) -> Result<Bytes, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let connection = tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    drop(sender);
    // The connection ends with the sender; its own error, if any, says no more than the above.
    let _ = connection.await;
    if status != hyper::StatusCode::OK {
        return Err(format!(
            "{status}: {}",
            String::from_utf8_lossy(&body).trim()
        ));
    }
    Ok(body)
}
