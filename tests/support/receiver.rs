//! A webhook receiver for notification tests: an HTTP server on a loopback port that answers
//! every request `200` and keeps the bodies, in the order received.

use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::serve::{http_server, Reply};
use super::tcp_server::TcpServer;

/// The listener and what it has received so far. Stopped on drop.
pub struct Receiver {
    server: TcpServer,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    /// Listens on a free loopback port.
    pub fn start() -> Receiver {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&bodies);
        // Kept before it is answered, so a sender that has its answer finds its body here.
        let server = http_server(move |request| {
            let body = String::from_utf8_lossy(&request.body).into_owned();
            kept.lock().unwrap_or_else(|e| e.into_inner()).push(body);
            Reply::status(200, &[])
        });
        Receiver { server, bodies }
    }

    /// The URL to post to.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.server.host())
    }

    /// The bodies received so far.
    pub fn bodies(&self) -> Vec<String> {
        self.bodies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The `(container, event)` pairs of a webhook message, sorted.
pub fn announced(body: &str) -> Vec<(String, String)> {
    let message: Value = serde_json::from_str(body)
        .unwrap_or_else(|error| panic!("the notification is not JSON ({error}): {body}"));
    let mut pairs: Vec<(String, String)> = message["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events in {message:#}"))
        .iter()
        .map(|event| {
            (
                event["container"].as_str().unwrap_or_default().to_owned(),
                event["event"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    pairs.sort();
    pairs
}
