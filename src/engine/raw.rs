//! Requests bollard cannot make: its models leave some fields out (`Config.MacAddress` since
//! API 1.44 deprecated it) and it speaks no libpod. These few go over hyper directly, one
//! request per connection, on the engine's own address.

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{https_client, Connector, Engine, EngineError};
use crate::error_chain::error_chain;

/// The largest answer read: a container inspect is a few KiB; anything near this is not one.
const MAX_BODY: usize = 4 * 1024 * 1024;

impl Engine {
    /// The MAC address the container's creator asked for on its primary network
    /// (`Config.MacAddress`), as the engine recorded it: 20.10 and 28.x both keep it there
    /// and leave it empty when the engine picked the address itself. bollard's model no
    /// longer carries the field, and the address in `NetworkSettings` is the one in use,
    /// which since Docker 28 is random when nobody chose one.
    pub async fn chosen_mac(&self, container: &str) -> Result<Option<String>, EngineError> {
        #[derive(Deserialize)]
        struct Inspect {
            #[serde(rename = "Config")]
            config: Option<Config>,
        }
        #[derive(Deserialize)]
        struct Config {
            #[serde(rename = "MacAddress")]
            mac_address: Option<String>,
        }
        let api = self.api_version();
        let what = || format!("reading the MAC address container {container} was created with");
        let body = self
            .raw_get(&format!("/v{api}/containers/{container}/json"))
            .await
            .map_err(|reason| EngineError::Raw {
                what: what(),
                reason,
            })?;
        let inspect: Inspect = serde_json::from_slice(&body).map_err(|e| EngineError::Raw {
            what: what(),
            reason: e.to_string(),
        })?;
        Ok(inspect
            .config
            .and_then(|c| c.mac_address)
            .filter(|mac| !mac.is_empty()))
    }

    /// `GET path` on the engine's address, over the same transport as bollard's client (TLS
    /// included); the body of a 200 answer.
    pub(super) async fn raw_get(&self, path: &str) -> Result<Bytes, String> {
        let host = self.host();
        let connect_error = |e: std::io::Error| format!("connecting to {host}: {e}");
        match &*self.connector {
            Connector::Unix(socket) => {
                let stream = tokio::net::UnixStream::connect(socket)
                    .await
                    .map_err(connect_error)?;
                get(stream, request(path, "docker")?).await
            }
            Connector::Http(authority) => {
                let stream = tokio::net::TcpStream::connect(authority.as_str())
                    .await
                    .map_err(connect_error)?;
                get(stream, request(path, authority)?).await
            }
            Connector::Tls { authority, config } => {
                let client = https_client(config);
                let response = client
                    .request(request(&format!("https://{authority}{path}"), authority)?)
                    .await
                    .map_err(|e| error_chain(&e))?;
                read(response).await
            }
        }
        .map_err(|e| format!("GET {path} on {host}: {e}"))
    }
}

/// A GET of `uri` with `host` as its Host header.
fn request(uri: &str, host: &str) -> Result<hyper::Request<Empty<Bytes>>, String> {
    hyper::Request::get(uri)
        .header(hyper::header::HOST, host)
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("GET {uri}: {e}"))
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
    let body = read(response).await;
    drop(sender);
    // The connection ends with the sender; its own error, if any, says no more than the above.
    let _ = connection.await;
    body
}

/// The body of a 200 answer, at most [`MAX_BODY`] bytes.
async fn read<B>(response: hyper::Response<B>) -> Result<Bytes, String>
where
    B: hyper::body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let status = response.status();
    // Bounded: whatever answers on the engine's address is not trusted to stop talking.
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if status != hyper::StatusCode::OK {
        return Err(format!(
            "{status}: {}",
            String::from_utf8_lossy(&body).trim()
        ));
    }
    Ok(body)
}
