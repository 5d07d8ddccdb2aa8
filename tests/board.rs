//! The status board (#16) in a real browser (headless chromium over WebDriver), against the
//! real daemon, engine and registry: badges, Check now, Update now refused without the token,
//! Update anyway through a closed window, Roll back, Release hold, and hostile label text
//! shown as text. Each test leaves screenshots in its bed's directory.

use std::time::Duration;

use crate::support::browser::Browser;
use crate::support::daemon_api::start_daemon;
use crate::support::{push, settings, Registry, TestBed, QUICK_STOP};

/// How long the page may take to show what a cycle or an action did.
const SHOWN: Duration = Duration::from_secs(60);
/// How long a button may take to appear (the page polls every few seconds).
const BUTTON: Duration = Duration::from_secs(15);

const HOSTILE: &str = "<img src=x onerror=alert(1)>";

fn labels(version: &'static str) -> [(&'static str, &'static str); 2] {
    [
        (
            "org.opencontainers.image.source",
            "https://github.com/acme/app",
        ),
        ("org.opencontainers.image.version", version),
    ]
}

/// The CSS of `container`'s cell `column` (1-based, the name's cell being 1) in the list.
fn cell(container: &str, column: usize) -> String {
    if column == 1 {
        format!("#rows tr[data-container=\"{container}\"] th")
    } else {
        format!(
            "#rows tr[data-container=\"{container}\"] td:nth-of-type({})",
            column - 1
        )
    }
}

fn badge(container: &str) -> String {
    format!("#rows tr[data-container=\"{container}\"] .badge")
}

fn button(container: &str, label: &str) -> String {
    format!("//tr[@data-container='{container}']//button[normalize-space()='{label}']")
}

fn short(digest: &str) -> String {
    digest.trim_start_matches("sha256:")[..12].to_string()
}

/// The app's image at version 1.0.0 pushed (its digest returned) and a container "watched"
/// on it with policy notify (monitor only).
fn watched_app(bed: &TestBed, image: &str) -> String {
    bed.build_app_with_labels(image, "1", &labels("1.0.0"));
    let v1 = push(image);
    bed.run_with(
        "watched",
        QUICK_STOP,
        image,
        &[],
        &[("tidewatch.policy", "notify")],
    );
    v1
}

#[test]
fn the_board_checks_updates_and_rolls_back_a_container_in_a_browser() {
    let bed = TestBed::new("board-flow");
    let registry = Registry::start();
    let image = registry.image("app", "stable");
    let v1 = watched_app(&bed, &image);
    bed.run_with("web", QUICK_STOP, &image, &[], &[]);
    let updater = bed.updater(&[registry.host()]);
    settings::set_interval(&updater, "1h");
    let web = updater.full("web");
    let watched = updater.full("watched");
    // web's window opens on the 1st of January at midnight only: closed while this runs.
    settings::append(
        &updater,
        &format!("[[service]]\nname = {web:?}\nwindow = {{ schedule = \"0 0 1 1 *\", length = \"1m\" }}\n"),
    );
    let api = settings::api(&updater);
    let mut daemon = start_daemon(&updater, &api);
    let browser = Browser::start(bed.dir());
    browser.open(&format!("http://{}/", api.host));

    // The server-rendered rows, then the script's.
    browser.wait_for_text(&badge(&web), "up to date", SHOWN);
    browser.wait_for_text(&badge(&watched), "up to date", SHOWN);
    browser.wait_for_text(&cell(&web, 5), "window 0 0 1 1 *", SHOWN);
    browser.wait_for_text("#facts", "engine docker", SHOWN);
    let old_web = bed.container_id("web");

    bed.build_app_with_labels(&image, "2", &labels("2.0.0"));
    let v2 = push(&image);

    // Without the token nothing can be asked.
    browser.click("//button[@id='check-now']", BUTTON);
    browser.wait_for_text("#action-status", "refused", SHOWN);

    browser.fill("#token", &api.token);
    browser.click("//form[@id='token-form']//button[@type='submit']", BUTTON);
    browser.wait_for_text("#action-status", "Token set", SHOWN);
    browser.click("//button[@id='check-now']", BUTTON);
    browser.wait_for_text("#action-status", "Check now: done", SHOWN);
    browser.wait_for_text(&badge(&watched), "update available", SHOWN);
    browser.wait_for_text(&cell(&watched, 3), &short(&v2), SHOWN);
    browser.wait_for_text(&cell(&watched, 4), "1.0.0 → 2.0.0", SHOWN);
    browser.wait_for_text(&badge(&web), "waiting", SHOWN);
    browser.wait_for_text(&cell(&web, 2), "maintenance window", SHOWN);
    assert_eq!(bed.container_id("web"), old_web, "the window holds web");

    // "Update now" without the token: refused, and nothing moves.
    browser.click("//button[@id='forget']", BUTTON);
    browser.click(&button(&web, "Update now"), BUTTON);
    browser.wait_for_text("#action-status", "refused", SHOWN);
    assert_eq!(bed.container_id("web"), old_web, "refused: web unchanged");

    // With it, "Update now" honours the window; "Update anyway" goes through it.
    browser.fill("#token", &api.token);
    browser.click("//form[@id='token-form']//button[@type='submit']", BUTTON);
    browser.click(&button(&web, "Update now"), BUTTON);
    browser.wait_for_text("#action-status", "the update waits", SHOWN);
    assert_eq!(
        bed.container_id("web"),
        old_web,
        "the window still holds web"
    );
    browser.click(&button(&web, "Update anyway"), BUTTON);
    browser.wait_for_text("#action-status", "done", SHOWN);
    browser.wait_for_text(&badge(&web), "up to date", SHOWN);
    browser.wait_for_text(&cell(&web, 3), &short(&v2), SHOWN);
    assert_ne!(bed.container_id("web"), old_web, "web was recreated");
    let history = format!("#history-rows tr[data-container=\"{web}\"]");
    browser.wait_for_text(&history, "updated", SHOWN);
    browser.wait_for_text(&history, &short(&v2), SHOWN);
    browser.wait_for_text(&cell(&web, 7), "20", SHOWN);
    browser.screenshot("board-updated");

    // "Roll back": v1 again, held there.
    let new_web = bed.container_id("web");
    browser.click(&button(&web, "Roll back"), BUTTON);
    browser.wait_for_text("#action-status", "rolled back to", SHOWN);
    browser.wait_for_text(&badge(&web), "held", SHOWN);
    browser.wait_for_text(&cell(&web, 3), &short(&v1), SHOWN);
    assert_ne!(bed.container_id("web"), new_web, "web was recreated on v1");
    browser.screenshot("board-rolled-back");

    // "Release hold": the hold goes, and the window holds v2 again.
    browser.click(&button(&web, "Release hold"), BUTTON);
    browser.wait_for_text("#action-status", "the rollback hold", SHOWN);
    browser.wait_for_text(&badge(&web), "waiting", SHOWN);

    // On a phone's width the list scrolls sideways instead of overflowing the page.
    browser.resize(390, 844);
    let overflow =
        browser.eval("return document.documentElement.scrollWidth <= window.innerWidth + 1;");
    browser.screenshot("board-phone");
    assert_eq!(
        overflow,
        serde_json::json!(true),
        "the page fits a phone's width"
    );

    let stderr = daemon.stderr();
    assert!(!stderr.contains(&api.token), "the token is never logged");
    let (code, _) = daemon.terminate(Duration::from_secs(15));
    assert_eq!(code, 0, "stderr:\n{}", daemon.stderr());
}

#[test]
fn hostile_label_text_is_shown_as_text_on_the_board() {
    let bed = TestBed::new("board-hostile");
    let registry = Registry::start();
    let image = registry.image("app", "stable");
    watched_app(&bed, &image);
    bed.build_app_with_labels(&image, "2", &labels(HOSTILE));
    push(&image);
    let updater = bed.updater(&[registry.host()]);
    settings::set_interval(&updater, "1h");
    let watched = updater.full("watched");
    let api = settings::api(&updater);
    let mut daemon = start_daemon(&updater, &api);
    let browser = Browser::start(bed.dir());
    browser.open(&format!("http://{}/", api.host));

    let version = cell(&watched, 4);
    // As the server rendered it, then as the script renders it after a poll.
    let shown = browser.wait_for_text(&version, HOSTILE, SHOWN);
    assert!(shown.contains(&format!("1.0.0 → {HOSTILE}")), "{shown}");
    std::thread::sleep(Duration::from_secs(6));
    browser.wait_for_text(&version, HOSTILE, SHOWN);
    let images = browser.eval("return document.querySelectorAll('main img').length;");
    assert_eq!(images, serde_json::json!(0), "the text made no element");
    assert_eq!(browser.alert(), None, "no script ran");
    browser.screenshot("board-hostile");
    let (code, _) = daemon.terminate(Duration::from_secs(15));
    assert_eq!(code, 0, "stderr:\n{}", daemon.stderr());
}

/// The closing figures of #16, printed, not asserted (a shared machine's timings are noise):
/// the page's weight for 100 containers, how soon a browser shows it, and the daemon's memory
/// while the board is open and polling. `cargo test --test tests board::figures -- --ignored
/// --nocapture`; starting 100 containers takes a minute or two.
#[test]
#[ignore = "prints figures; starts 100 containers"]
fn figures_for_100_containers() {
    const CONTAINERS: usize = 100;
    let bed = TestBed::new("board-figures");
    let registry = Registry::start();
    let image = registry.image("app", "stable");
    bed.build_app_with_labels(&image, "1", &labels("1.0.0"));
    push(&image);
    for n in 0..CONTAINERS {
        bed.run_with(
            &format!("c{n:03}"),
            QUICK_STOP,
            &image,
            &["/bin/busybox", "sleep", "86400"],
            &[],
        );
    }
    let updater = bed.updater(&[registry.host()]);
    settings::set_interval(&updater, "1h");
    let api = settings::api(&updater);
    let mut daemon = start_daemon(&updater, &api);

    let get = |path: &str| {
        let r = crate::support::http::request(&api.host, "GET", path, &[], Duration::from_secs(10))
            .unwrap_or_else(|error| panic!("GET {path}: {error}"));
        assert_eq!(r.status, 200, "{path}");
        r.body.len()
    };
    let (html, js, css) = (get("/"), get("/board.js"), get("/board.css"));
    let status = get("/v1/status");
    println!(
        "page weight for {CONTAINERS} containers: HTML {html} B + JS {js} B + CSS {css} B = {} B (uncompressed); /v1/status {status} B per poll",
        html + js + css
    );

    let browser = Browser::start(bed.dir());
    let started = std::time::Instant::now();
    browser.open(&format!("http://{}/", api.host));
    let loaded = started.elapsed();
    let rows = format!("return document.querySelectorAll('#rows tr').length === {CONTAINERS} && document.documentElement.classList.contains('js') && document.querySelector('#rows td.actions') !== null;");
    let deadline = std::time::Instant::now() + SHOWN;
    while browser.eval(&rows) != serde_json::json!(true) {
        assert!(
            std::time::Instant::now() < deadline,
            "the script never rendered {CONTAINERS} rows"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let scripted = started.elapsed();
    let paint = browser.eval(
        "const p = performance.getEntriesByName('first-contentful-paint')[0]; const n = performance.getEntriesByType('navigation')[0]; return [p ? p.startTime : null, n.domContentLoadedEventEnd, n.responseEnd];",
    );
    println!(
        "first render with {CONTAINERS} containers: first contentful paint {:.0} ms, DOMContentLoaded {:.0} ms, HTML received {:.0} ms (browser's clock); page loaded after {} ms and the script's first render of all rows after {} ms (test's clock, WebDriver round trips included)",
        paint[0].as_f64().unwrap_or(f64::NAN),
        paint[1].as_f64().unwrap_or(f64::NAN),
        paint[2].as_f64().unwrap_or(f64::NAN),
        loaded.as_millis(),
        scripted.as_millis()
    );
    browser.screenshot("board-100");

    // Polling every 5 s for a minute, then the daemon's resident memory.
    let rss = || {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", daemon.pid())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .unwrap_or("VmRSS: ?")
            .to_string()
    };
    println!("daemon {} after its first cycle, board open", rss());
    std::thread::sleep(Duration::from_secs(60));
    println!(
        "daemon {} after 60 s with the board open and polling /v1/status every 5 s",
        rss()
    );
    drop(browser);
    let (code, _) = daemon.terminate(Duration::from_secs(15));
    assert_eq!(code, 0, "stderr:\n{}", daemon.stderr());
}

#[test]
fn the_board_shows_the_gitops_files_rows_the_commit_that_pinned_them_and_then_up_to_date() {
    use crate::support::daemon_api::{call, parse_status};
    use crate::support::git::Remote;
    use crate::support::scratch_dir;

    let bed = TestBed::new("board-gitops");
    let registry = Registry::start();
    let image = registry.image("app", "stable");
    bed.build_app(&image, "1");
    let v1 = push(&image);
    let root = scratch_dir("board-gitops");
    let stack = format!("services:\n  web:\n    image: {image}\n");
    let remote = Remote::seeded(root.path(), "main", &[("compose.yaml", &stack)]);
    // No container: the repository's file is all the board has to show but the history.
    let updater = bed.updater(&[registry.host()]);
    settings::append(&updater, &remote.table("*.yaml"));
    let api = settings::api(&updater);
    let mut daemon = start_daemon(&updater, &api);
    let browser = Browser::start(bed.dir());
    browser.open(&format!("http://{}/", api.host));

    // The start-up cycle's write-back pinned the file: the row says what the file had and
    // the commit that changed it.
    let row = "#gitops-rows tr[data-row=\"compose.yaml#web\"]";
    let log = remote.log();
    assert_eq!(log.len(), 2, "the seed and the pin: {log:?}");
    let commit = &log[0].0;
    browser.wait_for_text(&format!("{row} td:nth-of-type(4)"), &commit[..12], SHOWN);
    browser.wait_for_text(
        &format!("{row} td:nth-of-type(4)"),
        &remote.file_url(),
        SHOWN,
    );
    browser.wait_for_text(&format!("{row} td:nth-of-type(2)"), &short(&v1), SHOWN);
    browser.screenshot("board-gitops-pinned");
    // The next write-backs find the file on the registry's digest.
    browser.wait_for_text(&format!("{row} .badge"), "up to date", SHOWN);
    browser.wait_for_text(
        "#history-rows tr[data-container=\"compose.yaml#web\"]",
        "pinned in git",
        SHOWN,
    );
    let status = parse_status(&call(&api, "GET", "/v1/status", None, ""));
    let repo = &status["gitops"][0];
    assert_eq!(repo["commit"], commit.as_str(), "{status:#}");
    assert_eq!(repo["rows"][0]["container"], "compose.yaml#web");
    assert_eq!(repo["rows"][0]["source"], "git");
    assert_eq!(repo["rows"][0]["current_digest"], v1.as_str());
    assert_eq!(
        status["containers"],
        serde_json::json!([]),
        "a file's row is not a container's"
    );
    browser.screenshot("board-gitops-current");
    assert_eq!(remote.log().len(), 2, "nothing new to pin");
    daemon.terminate(Duration::from_secs(30));
}
