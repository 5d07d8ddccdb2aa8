//! GitOps write-back against real git: a bare repository served over `file://`, a working copy
//! in a state directory, commits and pushes as tidewatch makes them, and another person pushing
//! in between.

use std::path::Path;
use std::time::{Duration, Instant};

use tidewatch::config::{Config, GitopsConfig};
use tidewatch::gitops::checkout::{Checkout, Published};
use tidewatch::gitops::git::GitError;

use crate::support::git::{git, Remote};
use crate::support::scratch_dir;

const COMPOSE: &str = "\
# the web stack
services:
  web:
    image: \"registry.lan:5000/app:stable\"   # pinned by tidewatch
    restart: unless-stopped

  db:
    image: postgres:16
";

fn table(extra: &str, repo: &str) -> GitopsConfig {
    let text = format!(
        "[[gitops]]\nrepo = {repo:?}\nbranch = \"deploy\"\nfiles = [\"stacks/*/compose.yaml\"]\n\
         author_name = \"tidewatch\"\nauthor_email = \"tidewatch@example.org\"\n{extra}"
    );
    Config::parse(&text, "agent.toml")
        .unwrap_or_else(|e| panic!("{e}"))
        .gitops
        .remove(0)
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// Pins web's image in the working copy's compose file: the one-line edit a cycle makes.
fn pin_web(checkout: &Checkout) -> Result<Option<String>, GitError> {
    let path = "stacks/web/compose.yaml";
    let text = checkout.read(path)?;
    let pinned = text.replace(
        "\"registry.lan:5000/app:stable\"",
        "\"registry.lan:5000/app:stable@sha256:1111111111111111111111111111111111111111111111111111111111111111\"",
    );
    checkout.write(path, &pinned)?;
    Ok(Some(
        "tidewatch: pin 1 image(s): app\n\nstacks/web/compose.yaml#web registry.lan:5000/app:stable\n  (none) -> sha256:1111"
            .to_string(),
    ))
}

fn seeded(root: &Path) -> Remote {
    Remote::seeded(
        root,
        "deploy",
        &[
            ("stacks/web/compose.yaml", COMPOSE),
            ("stacks/web/README.md", "not matched\n"),
            ("docs/compose.yaml", "services: {}\n"),
        ],
    )
}

#[test]
fn a_cycle_commits_once_as_the_configured_author_and_a_rerun_commits_nothing() {
    let root = scratch_dir("gitops-commit");
    let remote = seeded(root.path());
    let state = root.path().join("state");
    let checkout = Checkout::new(&table("", &remote.file_url()), &state);
    block_on(async {
        let tip = checkout.sync().await.unwrap();
        assert_eq!(tip, remote.log()[0].0);
        assert!(checkout.dir().starts_with(state.join("gitops")));
        // Tracked files the globs match, and nothing else.
        assert_eq!(checkout.files().await.unwrap(), ["stacks/web/compose.yaml"]);
        let started = Instant::now();
        let published = checkout.publish(pin_web).await.unwrap().unwrap();
        let Published::Pushed { commit, attempts } = published else {
            panic!("expected a push, got {published:?}");
        };
        println!("commit and push took {:?}", started.elapsed());
        assert_eq!(attempts, 1);
        let log = remote.log();
        assert_eq!(log.len(), 2, "{log:?}");
        assert_eq!(log[0].0, commit);
        assert_eq!(log[0].1, "tidewatch@example.org");
        assert_eq!(log[0].2, "tidewatch: pin 1 image(s): app");
        // One line changed in one file; the comment and the quoting are kept.
        assert_eq!(
            remote.numstat(&log[1].0, &log[0].0),
            "1\t1\tstacks/web/compose.yaml\n"
        );
        assert!(remote
            .show("stacks/web/compose.yaml")
            .contains("image: \"registry.lan:5000/app:stable@sha256:1111111111111111111111111111111111111111111111111111111111111111\"   # pinned by tidewatch\n"));
        println!("{}", remote.show_commit(&commit));

        // The next cycle: the same pin changes nothing, so nothing is committed.
        checkout.sync().await.unwrap();
        let again = checkout.publish(pin_web).await.unwrap().unwrap();
        assert_eq!(again, Published::Unchanged);
        assert_eq!(remote.log().len(), 2);
    });
}

#[test]
fn a_push_rejected_because_the_branch_moved_is_re_applied_on_the_new_tip() {
    let root = scratch_dir("gitops-race");
    let remote = seeded(root.path());
    let checkout = Checkout::new(&table("", &remote.file_url()), &root.path().join("state"));
    let mut calls = 0;
    let published = block_on(async {
        checkout.sync().await.unwrap();
        checkout
            .publish(|c| {
                calls += 1;
                if calls == 1 {
                    // Someone pushes between tidewatch's fetch and its push.
                    remote.commit(&[("stacks/web/notes.txt", "hello\n")], "a person's change");
                }
                pin_web(c)
            })
            .await
            .unwrap()
            .unwrap()
    });
    let Published::Pushed { commit, attempts } = published else {
        panic!("expected a push, got {published:?}");
    };
    assert_eq!((attempts, calls), (2, 2));
    let log = remote.log();
    let subjects: Vec<&str> = log.iter().map(|(_, _, s)| s.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "tidewatch: pin 1 image(s): app",
            "a person's change",
            "seed"
        ]
    );
    assert_eq!(log[0].0, commit);
    // Both commits are kept: tidewatch's sits on the person's, nothing was forced.
    assert_eq!(
        git(&remote.bare, &["rev-parse", &format!("{commit}^")]).trim(),
        log[1].0
    );
    assert_eq!(remote.show("stacks/web/notes.txt"), "hello\n");
}

#[test]
fn an_interrupted_cycle_leaves_nothing_for_the_next() {
    let root = scratch_dir("gitops-reset");
    let remote = seeded(root.path());
    let checkout = Checkout::new(&table("", &remote.file_url()), &root.path().join("state"));
    block_on(async {
        let tip = checkout.sync().await.unwrap();
        // A cycle that wrote, committed locally and left a stray file, then died.
        pin_web(&checkout).unwrap();
        git(checkout.dir(), &["commit", "-q", "-a", "-m", "half done"]);
        std::fs::write(checkout.dir().join("stacks/web/compose.yaml"), "garbage").unwrap();
        std::fs::write(checkout.dir().join("stray.yaml"), "x").unwrap();
        assert_eq!(checkout.sync().await.unwrap(), tip);
        assert_eq!(checkout.read("stacks/web/compose.yaml").unwrap(), COMPOSE);
        assert!(!checkout.dir().join("stray.yaml").exists());
        assert_eq!(checkout.diff().await.unwrap(), "");
    });
    assert_eq!(remote.log().len(), 1);
}

#[test]
fn a_dry_run_diff_shows_the_pinned_line_and_pushes_nothing() {
    let root = scratch_dir("gitops-diff");
    let remote = seeded(root.path());
    let checkout = Checkout::new(&table("", &remote.file_url()), &root.path().join("state"));
    let diff = block_on(async {
        checkout.sync().await.unwrap();
        pin_web(&checkout).unwrap();
        checkout.diff().await.unwrap()
    });
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .collect();
    assert_eq!(
        changed,
        [
            "-    image: \"registry.lan:5000/app:stable\"   # pinned by tidewatch",
            "+    image: \"registry.lan:5000/app:stable@sha256:1111111111111111111111111111111111111111111111111111111111111111\"   # pinned by tidewatch",
        ]
    );
    assert_eq!(remote.log().len(), 1);
}

#[test]
fn a_missing_branch_or_repository_is_an_error_naming_the_repository() {
    let root = scratch_dir("gitops-missing");
    let remote = seeded(root.path());
    let wrong_branch = table("", &remote.file_url()).clone();
    let mut wrong_branch = wrong_branch;
    wrong_branch.branch = "nope".into();
    let e = block_on(Checkout::new(&wrong_branch, &root.path().join("s1")).sync()).unwrap_err();
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!(
            "repository {}: git fetch failed: ",
            remote.file_url()
        )),
        "{shown}"
    );
    assert!(
        shown.contains("couldn't find remote ref refs/heads/nope"),
        "{shown}"
    );

    let gone = format!("file://{}/nothing.git", root.path().display());
    let e = block_on(Checkout::new(&table("", &gone), &root.path().join("s2")).sync()).unwrap_err();
    assert!(matches!(e, GitError::Failed { step: "fetch", .. }), "{e}");
}

#[test]
fn an_https_repository_that_hangs_is_stopped_and_its_token_never_shown() {
    let root = scratch_dir("gitops-hang");
    let token = root.path().join("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    // Accepts connections (the kernel does) and never answers the TLS handshake.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = table(
        &format!("username = \"bot\"\ntoken_file = \"{}\"\n", token.display()),
        &format!("https://bot@127.0.0.1:{port}/ops/deploy.git"),
    );
    let checkout =
        Checkout::new(&config, &root.path().join("state")).with_timeout(Duration::from_secs(2));
    let started = Instant::now();
    let e = block_on(checkout.sync()).unwrap_err();
    let took = started.elapsed();
    assert!(matches!(e, GitError::Timeout { step: "fetch", .. }), "{e}");
    assert!(took < Duration::from_secs(10), "stopped after {took:?}");
    let shown = e.to_string();
    assert_eq!(
        shown,
        format!("repository https://127.0.0.1:{port}/ops/deploy.git: git fetch did not finish within 2s and was stopped")
    );
    drop(listener);

    // Refused outright: git's own message, without the token or the user.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let config = table(
        &format!("username = \"bot\"\ntoken_file = \"{}\"\n", token.display()),
        &format!("https://bot@127.0.0.1:{port}/ops/deploy.git"),
    );
    let e = block_on(Checkout::new(&config, &root.path().join("state2")).sync()).unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(
        matches!(e, GitError::Failed { step: "fetch", .. }),
        "{shown}"
    );
    assert!(
        !shown.contains("s3cret") && !shown.contains("bot@"),
        "{shown}"
    );
    assert!(shown.contains(&format!("127.0.0.1:{port}")), "{shown}");
}
