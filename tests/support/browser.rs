//! A real browser for the status board's tests: Debian's `chromium`, headless, driven over
//! WebDriver by `chromedriver` on a free loopback port, through fantoccini. Each browser has
//! a fresh profile in its test's directory; screenshots go there too.
//!
//! The calls are blocking (the tests are plain threads): each runs on the browser's own
//! single-threaded runtime.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tokio::runtime::Runtime;

use super::objects::free_port;

/// How long chromedriver may take to answer, and a page to show what is awaited.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Without the background-networking flags chromium's own outgoing connections (updates,
/// sync, safe browsing) fail many at a time here; the page under test is all on loopback.
const CHROMIUM_ARGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
];

/// A headless chromium and its chromedriver, ended on drop.
pub struct Browser {
    runtime: Runtime,
    client: Option<Client>,
    driver: Child,
    dir: PathBuf,
}

impl Browser {
    /// Starts chromedriver and a chromium session with its profile under `dir`.
    pub fn start(dir: &Path) -> Browser {
        let port = free_port();
        let log = std::fs::File::create(dir.join("chromedriver.log"))
            .unwrap_or_else(|error| panic!("cannot create the chromedriver log: {error}"));
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start chromedriver (scripts/test-env installs chromium-driver): {error}")
            });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|error| panic!("no runtime for the browser: {error}"));
        let profile = dir.join("chromium-profile");
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_string(),
            json!({ "binary": "/usr/bin/chromium", "args": args }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + START_TIMEOUT;
        let client = loop {
            // Plain HTTP to a loopback chromedriver: no TLS connector is needed.
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            let attempt = runtime.block_on(
                ClientBuilder::new(connector)
                    .capabilities(capabilities.clone())
                    .connect(&url),
            );
            match attempt {
                Ok(client) => break client,
                Err(error) if Instant::now() < deadline => {
                    let _ = error;
                    thread::sleep(Duration::from_millis(200));
                }
                Err(error) => panic!("no WebDriver session on {url}: {error}"),
            }
        };
        Browser {
            runtime,
            client: Some(client),
            driver,
            dir: dir.to_path_buf(),
        }
    }

    fn client(&self) -> &Client {
        self.client
            .as_ref()
            .expect("the session is open until drop")
    }

    /// Opens `url`.
    pub fn open(&self, url: &str) {
        self.runtime
            .block_on(self.client().goto(url))
            .unwrap_or_else(|error| panic!("cannot open {url}: {error}"));
    }

    /// Runs `script` in the page and returns its value.
    pub fn eval(&self, script: &str) -> Value {
        self.runtime
            .block_on(self.client().execute(script, vec![]))
            .unwrap_or_else(|error| panic!("script failed: {error}\n{script}"))
    }

    /// The text of the first element `css` selects, or `None` when there is none.
    pub fn text(&self, css: &str) -> Option<String> {
        let found = self.eval(&format!(
            "const e = document.querySelector({}); return e ? e.textContent : null;",
            json!(css)
        ));
        found.as_str().map(str::to_string)
    }

    /// Waits until the text of `css` contains `wanted`; returns it. Panics with what the page
    /// showed (and a screenshot) after `timeout`.
    pub fn wait_for_text(&self, css: &str, wanted: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.text(css);
            if let Some(text) = &text {
                if text.contains(wanted) {
                    return text.clone();
                }
            }
            if Instant::now() >= deadline {
                let shot = self.screenshot("timeout");
                panic!(
                    "{css} never showed {wanted:?}; last {text:?}; status line {:?}; screenshot {}",
                    self.text("#action-status"),
                    shot.display()
                );
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Clicks the element `xpath` selects, waiting up to `timeout` for it to be there.
    pub fn click(&self, xpath: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .runtime
                .block_on(self.client().find(Locator::XPath(xpath)));
            match found {
                Ok(element) => {
                    // The list is re-rendered by polling: an element may be replaced between
                    // finding and clicking it, then it is found again.
                    if self.runtime.block_on(element.click()).is_ok() {
                        return;
                    }
                }
                Err(_) if Instant::now() < deadline => {}
                Err(error) => {
                    let shot = self.screenshot("missing");
                    panic!("no {xpath}: {error}; screenshot {}", shot.display())
                }
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Types `text` into the input `css` selects.
    pub fn fill(&self, css: &str, text: &str) {
        self.runtime.block_on(async {
            let input = self
                .client()
                .find(Locator::Css(css))
                .await
                .unwrap_or_else(|error| panic!("no {css}: {error}"));
            input
                .send_keys(text)
                .await
                .unwrap_or_else(|error| panic!("cannot type into {css}: {error}"));
        });
    }

    /// The text of an open `alert()`, if the page opened one.
    pub fn alert(&self) -> Option<String> {
        self.runtime.block_on(self.client().get_alert_text()).ok()
    }

    /// Saves a PNG of the page as `NAME.png` in the test's directory; returns its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .runtime
            .block_on(self.client().screenshot())
            .unwrap_or_else(|error| panic!("no screenshot: {error}"));
        let path = self.dir.join(format!("{name}.png"));
        std::fs::write(&path, png)
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
        println!("screenshot: {}", path.display());
        // The test's directory goes with a passing test: TIDEWATCH_SCREENSHOTS=DIR keeps a copy.
        if let Some(keep) = std::env::var_os("TIDEWATCH_SCREENSHOTS") {
            let kept = Path::new(&keep).join(format!("{name}.png"));
            if let Err(error) = std::fs::copy(&path, &kept) {
                println!("cannot keep {}: {error}", kept.display());
            }
        }
        path
    }

    /// Resizes the window, e.g. to a phone's width.
    pub fn resize(&self, width: u32, height: u32) {
        self.runtime
            .block_on(self.client().set_window_size(width, height))
            .unwrap_or_else(|error| panic!("cannot resize the window: {error}"));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.runtime.block_on(client.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
