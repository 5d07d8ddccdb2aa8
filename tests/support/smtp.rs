//! A minimal SMTP server for email notification tests: plain SMTP on a loopback port, accepting
//! every sender and recipient, keeping each message's envelope and data.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::tcp_server::TcpServer;

/// One message the server accepted.
#[derive(Debug, Clone, Default)]
pub struct Mail {
    /// The `MAIL FROM` address, as sent (`<...>`).
    pub from: String,
    /// The `RCPT TO` addresses, as sent.
    pub to: Vec<String>,
    /// What came after `DATA`: headers and body, dot-stuffing left as is.
    pub data: String,
}

/// The server and what it has accepted so far. Stopped on drop.
pub struct SmtpServer {
    server: TcpServer,
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpServer {
    /// Listens on a free loopback port.
    pub fn start() -> SmtpServer {
        let mails = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&mails);
        let server = TcpServer::start(move |stream| {
            if let Err(error) = session(stream, &kept) {
                eprintln!("smtp server: {error}");
            }
        });
        SmtpServer { server, mails }
    }

    /// `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.server.host())
    }

    /// The messages accepted so far.
    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// One SMTP session: greeting, EHLO/HELO, then any number of transactions until QUIT.
fn session(stream: TcpStream, mails: &Mutex<Vec<Mail>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut reply = |text: &str| writer.write_all(format!("{text}\r\n").as_bytes());
    reply("220 localhost ESMTP test")?;
    let mut mail = Mail::default();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let command = line.trim_end();
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => reply("250-localhost\r\n250 8BITMIME")?,
            "HELO" | "RSET" | "NOOP" => reply("250 OK")?,
            "MAIL" => {
                mail = Mail {
                    from: argument(command),
                    ..Mail::default()
                };
                reply("250 OK")?;
            }
            "RCPT" => {
                mail.to.push(argument(command));
                reply("250 OK")?;
            }
            "DATA" => {
                reply("354 end with <CRLF>.<CRLF>")?;
                loop {
                    let mut data = String::new();
                    if reader.read_line(&mut data)? == 0 {
                        return Ok(());
                    }
                    if data == ".\r\n" {
                        break;
                    }
                    mail.data.push_str(&data);
                }
                mails
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(std::mem::take(&mut mail));
                reply("250 OK queued")?;
            }
            "QUIT" => {
                reply("221 bye")?;
                return Ok(());
            }
            _ => reply("502 not implemented")?,
        }
    }
}

/// What follows the colon of `MAIL FROM:<a>` or `RCPT TO:<b>`, trimmed.
fn argument(command: &str) -> String {
    command
        .split_once(':')
        .map(|(_, rest)| rest.trim().to_owned())
        .unwrap_or_default()
}
