//! The one background server under the test doubles (the HTTP servers of [`super::serve`], the
//! webhook receiver, the SMTP server, the registry that never answers): a `std::net` listener
//! on a loopback port, the thread that accepts on it, and the stop on drop. Each double brings
//! only what it does with a connection.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

/// A listening server on `127.0.0.1:PORT`; stops accepting on drop. Connections already handed
/// out are left to finish on their own threads.
pub struct TcpServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TcpServer {
    /// Listens on a free loopback port and hands every connection to `handler`.
    pub fn start(handler: impl Fn(TcpStream) + Send + Sync + 'static) -> TcpServer {
        TcpServer::start_on(0, handler)
    }

    /// Listens on `127.0.0.1:port` (0: a free one) and hands every connection to `handler`, on
    /// a thread of its own, so a slow or stuck connection never holds up the others.
    pub fn start_on(port: u16, handler: impl Fn(TcpStream) + Send + Sync + 'static) -> TcpServer {
        // std sets SO_REUSEADDR on Unix listeners, so a just-killed registry's port is usable.
        let listener = TcpListener::bind(loopback(port))
            .unwrap_or_else(|error| panic!("cannot listen on 127.0.0.1:{port}: {error}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|error| panic!("cannot read the listener's port: {error}"))
            .port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let handler = Arc::new(handler);
        let thread = thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let handler = Arc::clone(&handler);
                thread::spawn(move || handler(stream));
            }
        });
        TcpServer {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// "127.0.0.1:PORT".
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(loopback(self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `127.0.0.1:port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}
