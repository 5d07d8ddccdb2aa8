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
        let published = checkout
            .publish(async |c| pin_web(c))
            .await
            .unwrap()
            .unwrap();
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
        let again = checkout
            .publish(async |c| pin_web(c))
            .await
            .unwrap()
            .unwrap();
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
            .publish(async |c| {
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

/// The files of a repository that a real registry's `app:stable` is pinned in: a compose stack
/// (with an ignored service), a Deployment with an init container, a kustomization, and a file
/// that is not YAML.
fn deploy_files(app: &str) -> Vec<(String, String)> {
    vec![
        (
            "stacks/web/compose.yaml".into(),
            format!(
                "# web, deployed by Komodo\nservices:\n  web:\n    image: \"{app}\"   # followed\n    \
                 restart: unless-stopped\n\n  frozen:\n    image: '{app}'\n    labels:\n      \
                 tidewatch.policy: ignore\n"
            ),
        ),
        (
            "k8s/app/deployment.yaml".into(),
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  template:\n    \
                 spec:\n      initContainers:\n        - name: migrate\n          image: {app}\n      \
                 containers:\n        - name: app\n          image: {app}  # the app\n"
            ),
        ),
        (
            "k8s/app/frozen.yaml".into(),
            format!(
                "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: frozen\n  annotations:\n    \
                 tidewatch.policy: ignore\nspec:\n  template:\n    spec:\n      containers:\n        \
                 - name: db\n          image: {app}\n"
            ),
        ),
        (
            "k8s/kustomization.yaml".into(),
            format!(
                "resources:\n  - app/deployment.yaml\nimages:\n  - name: {}\n    newTag: stable\n",
                app.rsplit_once(':').unwrap().0
            ),
        ),
        (
            "stacks/broken/compose.yaml".into(),
            "services:\n  web:\n    image: [unclosed\n".into(),
        ),
    ]
}

fn agent_config(root: &Path, registry_host: &str, repo: &str) -> Config {
    let text = format!(
        "[agent]\nstate_dir = \"{}\"\n[[registry]]\nhost = \"{registry_host}\"\ninsecure = true\n\
         [[gitops]]\nrepo = \"{repo}\"\nbranch = \"deploy\"\n\
         files = [\"stacks/*/compose.yaml\", \"k8s/**/*.yaml\"]\n\
         author_name = \"tidewatch\"\nauthor_email = \"tidewatch@example.org\"\n",
        root.join("state").display()
    );
    Config::parse(&text, "agent.toml").unwrap_or_else(|e| panic!("{e}"))
}

/// An agent's configuration with one `[[gitops]]` table and its registry client: runs one
/// repository's write-back as a cycle does.
struct Writer {
    config: std::sync::Arc<Config>,
    client: tidewatch::registry::RegistryClient,
}

impl Writer {
    fn new(root: &Path, registry_host: &str, repo: &str) -> Writer {
        let config = std::sync::Arc::new(agent_config(root, registry_host, repo));
        let client = tidewatch::registry::RegistryClient::new(config.clone()).unwrap();
        Writer { config, client }
    }

    fn run(&self, mode: tidewatch::gitops::run::Mode) -> tidewatch::gitops::run::RepoReport {
        let settings = tidewatch::gitops::run::Settings {
            watch: &self.config.watch,
            services: &self.config.services,
            state_dir: &self.config.agent.state_dir,
            registry: Some(&self.client),
            verify: &self.config.verify,
        };
        let known = tidewatch::gitops::plan::Lookups::new();
        block_on(tidewatch::gitops::run::run(
            &self.config.gitops[0],
            &settings,
            &self.client,
            &known,
            mode,
        ))
    }
}

#[test]
fn new_digests_from_a_real_registry_are_pinned_in_one_commit_and_nothing_else_changes() {
    use tidewatch::gitops::run::Mode;
    use tidewatch::plan::detect::Status;

    use crate::support::{push, Registry, TestBed};

    let bed = TestBed::new("gitops-pin");
    let registry = Registry::start();
    let image = registry.image("app", "stable");
    bed.build_app(&image, "1");
    let v1 = push(&image);
    let root = scratch_dir("gitops-pin");
    let files = deploy_files(&image);
    let seed: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let remote = Remote::seeded(root.path(), "deploy", &seed);
    let writer = Writer::new(root.path(), &registry.host(), &remote.file_url());
    let head_requests = || registry.manifest_requests("HEAD", "app");

    // A dry run shows the diff and commits nothing.
    let before = head_requests();
    let dry = writer.run(Mode::DryRun);
    println!("dry run diff:\n{}", dry.diff.as_deref().unwrap_or_default());
    let diff = dry.diff.unwrap();
    assert_eq!(
        diff.matches(&format!("\n+    image: \"{image}@{v1}\"   # followed\n"))
            .count(),
        1,
        "{diff}"
    );
    assert_eq!(remote.log().len(), 1);
    // Six images of one reference, two of them ignored: one HEAD.
    assert_eq!(head_requests() - before, 1, "one HEAD per unique reference");

    let started = Instant::now();
    let report = writer.run(Mode::Apply);
    println!("push to commit: {:?}", started.elapsed());
    let rows: Vec<(&str, Status)> = report
        .rows
        .iter()
        .map(|r| (r.container.as_str(), r.status))
        .collect();
    let kustomized = format!("k8s/kustomization.yaml#images/{}", registry.repo("app"));
    assert_eq!(
        rows,
        [
            (
                "k8s/app/deployment.yaml#Deployment/app/app",
                Status::UpdateAvailable
            ),
            (
                "k8s/app/deployment.yaml#Deployment/app/migrate",
                Status::UpdateAvailable
            ),
            ("k8s/app/frozen.yaml#StatefulSet/frozen/db", Status::Skipped),
            (kustomized.as_str(), Status::UpdateAvailable),
            ("stacks/broken/compose.yaml", Status::Error),
            ("stacks/web/compose.yaml#web", Status::UpdateAvailable),
            ("stacks/web/compose.yaml#frozen", Status::Skipped),
        ]
    );
    let broken = &report.rows[4];
    assert!(
        broken
            .detail
            .as_deref()
            .unwrap()
            .starts_with("stacks/broken/compose.yaml:4:1: "),
        "{broken:?}"
    );
    let Some(Published::Pushed {
        commit,
        attempts: 1,
    }) = report.published
    else {
        panic!("expected one push: {report:?}");
    };
    let log = remote.log();
    assert_eq!(log.len(), 2);
    println!("sample commit:\n{}", remote.show_commit(&commit));
    // Only the pinned lines changed (the kustomization gains its digest line).
    assert_eq!(
        remote.numstat(&log[1].0, &log[0].0),
        "2\t2\tk8s/app/deployment.yaml\n1\t0\tk8s/kustomization.yaml\n1\t1\tstacks/web/compose.yaml\n"
    );
    let compose = remote.show("stacks/web/compose.yaml");
    assert_eq!(
        compose,
        files[0]
            .1
            .replacen(&format!("\"{image}\""), &format!("\"{image}@{v1}\""), 1)
    );

    // Nothing new: no commit.
    let again = writer.run(Mode::Apply);
    assert_eq!(again.published, Some(Published::Unchanged), "{again:?}");
    assert_eq!(remote.log().len(), 2);

    // A new push: the pins move to it, in one more commit.
    bed.build_app(&image, "2");
    let v2 = push(&image);
    let third = writer.run(Mode::Apply);
    assert!(
        matches!(third.published, Some(Published::Pushed { .. })),
        "{third:?}"
    );
    assert_eq!(remote.log().len(), 3);
    let compose = remote.show("stacks/web/compose.yaml");
    assert!(
        compose.contains(&format!("image: \"{image}@{v2}\"   # followed\n")),
        "{compose}"
    );
    assert!(
        compose.contains(&format!("image: '{image}'\n")),
        "ignored service untouched: {compose}"
    );
    assert!(remote
        .show("k8s/kustomization.yaml")
        .contains(&format!("digest: {v2}")));
}

#[test]
fn a_pin_a_verify_rule_refuses_is_one_blocked_notice_and_history_row_then_pinned_once_signed() {
    use crate::support::agent_cli::append_config;
    use crate::support::receiver::{announced, Receiver};
    use crate::support::{cosign, push, Registry, TestBed};

    let bed = TestBed::new("gitops-verify");
    let registry = Registry::start();
    let image = registry.image("app", "stable");
    bed.build_app(&image, "1");
    let v1 = push(&image);
    let root = scratch_dir("gitops-verify");
    let stack = format!("services:\n  web:\n    image: {image}\n");
    let remote = Remote::seeded(root.path(), "main", &[("stacks/web/compose.yaml", &stack)]);
    let signer = cosign::Signer::generate();
    let key = signer.write_public(root.path(), "cosign.pub");
    let receiver = Receiver::start();
    // No container: the repository's file is all there is to update.
    let agent = bed.agent(&[registry.host()]);
    append_config(
        &agent,
        &format!(
            "{}{}\n[[notify]]\nkind = \"webhook\"\nurl = {:?}\n",
            remote.table("stacks/*/compose.yaml"),
            cosign::keyed_rule(&registry, "app", &key, ""),
            receiver.url()
        ),
    );
    let row_name = "stacks/web/compose.yaml#web";
    let update = || {
        let outcome = agent.run(&["update", "--json"]);
        let report: serde_json::Value = serde_json::from_str(&outcome.stdout).unwrap_or_else(|e| {
            panic!(
                "update --json ({e}): {}\n{}",
                outcome.stdout, outcome.stderr
            )
        });
        (outcome.code, report["gitops"][0].clone())
    };

    // CI pushed and has not signed yet: nothing is pinned, the row says which rule and why,
    // and `update` fails as it does for a refused container update. Twice: one notice.
    for _ in 0..2 {
        let (code, repo) = update();
        assert_eq!(code, 1, "{repo:#}");
        let row = &repo["rows"][0];
        assert_eq!(row["status"], "error", "{repo:#}");
        assert_eq!(row["signature"], "rejected", "{repo:#}");
        let detail = row["detail"].as_str().unwrap_or_default();
        assert!(
            detail.starts_with("blocked by") && detail.ends_with("no signature"),
            "{detail}"
        );
        assert_eq!(repo["pins"], serde_json::json!([]), "{repo:#}");
        assert_eq!(repo["commit"], serde_json::Value::Null, "{repo:#}");
    }
    assert_eq!(remote.log().len(), 1, "an unsigned digest was committed");

    // Signed: the next cycle pins it.
    cosign::sign(&registry, "app", &v1, &signer);
    let (code, repo) = update();
    assert_eq!(code, 0, "{repo:#}");
    assert_eq!(repo["pins"][0]["to_digest"], v1.as_str(), "{repo:#}");
    assert_eq!(remote.log().len(), 2, "one commit");

    // Each run waited for its notifications before it exited.
    let bodies = receiver.bodies();
    let events: Vec<Vec<(String, String)>> = bodies.iter().map(|b| announced(b)).collect();
    assert_eq!(
        events,
        [
            vec![(row_name.to_owned(), "blocked".to_owned())],
            vec![(row_name.to_owned(), "updated".to_owned())],
        ],
        "one blocked notice, not one per cycle, then the pin: {bodies:#?}"
    );
    assert!(
        bodies[0].contains(&v1)
            && bodies[0].contains(&format!("no signature in {}", remote.file_url())),
        "{}",
        bodies[0]
    );
    let history = agent.run(&["history", "--json", row_name]);
    assert_eq!(history.code, 0, "{}", history.stderr);
    let rows: serde_json::Value = serde_json::from_str(&history.stdout).unwrap();
    let outcomes: Vec<(&str, &str)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["outcome"].as_str().unwrap_or_default(),
                r["to_digest"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [("updated", v1.as_str()), ("blocked", v1.as_str())],
        "one history row for the blocked digest, newest first: {rows:#}"
    );

    // Git holds what a file's row runs: rolling it back is reverting the commit.
    let rollback = agent.run(&["rollback", row_name]);
    assert_ne!(rollback.code, 0, "{}", rollback.stdout);
    assert!(
        rollback.stderr.contains(&format!(
            "{row_name}: a row of a [[gitops]] file, not a container; revert the commit"
        )),
        "{}",
        rollback.stderr
    );
    assert_eq!(remote.log().len(), 2, "the rollback committed nothing");
}

#[test]
fn check_and_update_carry_the_files_rows_and_compose_deploys_the_committed_digest() {
    use crate::support::agent_cli::append_config;
    use crate::support::compose::Compose;
    use crate::support::{docker, push, Registry, TestBed, SCOPE_LABEL, TEST_LABEL};

    let bed = TestBed::new("gitops-cli");
    let registry = Registry::start();
    let image = registry.image("app", "stable");
    bed.build_app(&image, "1");
    let v1 = push(&image);
    // A container and the repository's compose file share the reference.
    bed.run("web", &image, &[]);
    let root = scratch_dir("gitops-cli");
    let stack = format!(
        "services:\n  web:\n    image: {image}  # the app\n    labels:\n      \
         {TEST_LABEL}: \"{id}\"\n      {SCOPE_LABEL}: \"{scope}\"\n",
        id = bed.id(),
        scope = bed.scope()
    );
    let remote = Remote::seeded(root.path(), "main", &[("stacks/web/compose.yaml", &stack)]);
    let agent = bed.agent(&[registry.host()]);
    append_config(&agent, &remote.table("stacks/*/compose.yaml"));

    // HEADs of the tag only: the containerd image store's pull by digest HEADs the digests.
    let tag_heads = || {
        registry
            .requests()
            .iter()
            .filter(|r| r.method == "HEAD" && r.uri == "/v2/app/manifests/stable")
            .count()
    };
    let before = tag_heads();
    let check = agent.check(&[]);
    let heads = tag_heads() - before;
    println!("check: {heads} HEAD(s) of app:stable for one container and one file");
    assert_eq!(heads, 1, "one HEAD per unique reference; {check}");
    let json: serde_json::Value = serde_json::from_str(&check.outcome.stdout).unwrap();
    let git_row = json
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["container"] == "stacks/web/compose.yaml#web")
        .unwrap_or_else(|| panic!("no row of the file: {check}"));
    assert_eq!(git_row["source"], "git");
    assert_eq!(git_row["status"], "update_available");
    assert_eq!(git_row["available_digest"], v1.as_str());
    assert_eq!(remote.log().len(), 1, "check commits nothing");

    let dry = agent.run(&["update", "--dry-run"]);
    assert_eq!(dry.code, 0, "{}\n{}", dry.stdout, dry.stderr);
    assert!(
        dry.stdout
            .contains(&format!("+    image: {image}@{v1}  # the app\n")),
        "{}",
        dry.stdout
    );
    let dry_json = agent.run(&["update", "--dry-run", "--json"]);
    assert_eq!(dry_json.code, 0, "{}\n{}", dry_json.stdout, dry_json.stderr);
    let dry_json: serde_json::Value = serde_json::from_str(&dry_json.stdout).unwrap();
    let repo = &dry_json["gitops"][0];
    assert_eq!(repo["rows"][0]["container"], "stacks/web/compose.yaml#web");
    assert_eq!(repo["rows"][0]["source"], "git");
    assert_eq!(repo["commit"], serde_json::Value::Null, "{dry_json:#}");
    assert!(
        repo["diff"]
            .as_str()
            .is_some_and(|d| d.contains(&format!("+    image: {image}@{v1}  # the app\n"))),
        "{dry_json:#}"
    );
    assert_eq!(remote.log().len(), 1, "a dry run commits nothing");

    bed.build_app(&image, "2");
    let v2 = push(&image);
    let before = tag_heads();
    let update = agent.run(&["update", "--json"]);
    let heads = tag_heads() - before;
    println!("update: {heads} HEAD(s) of app:stable for one container and one file");
    assert_eq!(update.code, 0, "{}\n{}", update.stdout, update.stderr);
    assert_eq!(heads, 1, "the write-back uses the cycle's answer");
    println!(
        "push to commit (one `tidewatch update`): {:?}",
        update.elapsed
    );
    println!("{}", update.stdout);
    let log = remote.log();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].1, "tidewatch@example.org");
    // `update --json` names the commit and the pin beside the cycle's report.
    let report: serde_json::Value = serde_json::from_str(&update.stdout).unwrap();
    assert!(report["results"].is_array(), "{report:#}");
    let repo = &report["gitops"][0];
    assert_eq!(repo["commit"], log[0].0.as_str(), "{report:#}");
    assert_eq!(repo["attempts"], 1);
    assert_eq!(repo["pins"][0]["container"], "stacks/web/compose.yaml#web");
    // The file named the tag alone before.
    assert_eq!(repo["pins"][0]["from_digest"], serde_json::Value::Null);
    assert_eq!(repo["pins"][0]["to_digest"], v2.as_str());
    assert_eq!(
        remote.numstat(&log[1].0, &log[0].0),
        "1\t1\tstacks/web/compose.yaml\n"
    );

    // The history has the pin beside the container's update.
    let history = agent.run(&["history", "--json"]);
    let entries: serde_json::Value = serde_json::from_str(&history.stdout).unwrap();
    let pinned = entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["container"] == "stacks/web/compose.yaml#web")
        .unwrap_or_else(|| panic!("no history row of the file: {}", history.stdout));
    assert_eq!(pinned["to_digest"], v2.as_str());
    assert_eq!(pinned["outcome"], "updated");
    assert!(
        pinned["reason"]
            .as_str()
            .unwrap()
            .starts_with("pinned in git: commit "),
        "{pinned}"
    );

    // What Komodo does on the push: a fresh clone, `compose up -d`.
    let fresh = root.path().join("fresh");
    git(
        root.path(),
        &[
            "clone",
            "-q",
            "--depth=1",
            &remote.file_url(),
            fresh.to_str().unwrap(),
        ],
    );
    let committed = std::fs::read_to_string(fresh.join("stacks/web/compose.yaml")).unwrap();
    assert!(
        committed.contains(&format!("image: {image}@{v2}  # the app\n")),
        "{committed}"
    );
    let compose = Compose::new(&bed, &committed);
    compose.up();
    let id = compose.container_id("web");
    let running = docker(&["inspect", "--format", "{{.Config.Image}}", &id]);
    assert_eq!(running.trim(), format!("{image}@{v2}"));
}

#[test]
fn over_ssh_with_a_key_and_known_hosts_the_pin_is_pushed_and_an_unknown_host_is_refused() {
    use crate::support::git::SshServer;

    let root = scratch_dir("gitops-ssh");
    let remote = seeded(root.path());
    let server = SshServer::start(&root.path().join("sshd"));
    let table_with = |known_hosts: &Path| {
        table(
            &format!(
                "ssh_key_file = \"{}\"\nknown_hosts_file = \"{}\"\n",
                server.client_key.display(),
                known_hosts.display()
            ),
            &server.url(&remote.bare),
        )
    };
    let checkout = Checkout::new(&table_with(&server.known_hosts), &root.path().join("state"));
    let started = Instant::now();
    let published = block_on(async {
        checkout.sync().await.unwrap();
        checkout
            .publish(async |c| pin_web(c))
            .await
            .unwrap()
            .unwrap()
    });
    println!("ssh: fetch, commit and push took {:?}", started.elapsed());
    assert!(
        matches!(published, Published::Pushed { attempts: 1, .. }),
        "{published:?}"
    );
    assert_eq!(remote.log().len(), 2);
    assert_eq!(remote.log()[0].1, "tidewatch@example.org");

    // A known_hosts without this server's key: refused, never trusted on first use.
    let empty = root.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let stranger = Checkout::new(&table_with(&empty), &root.path().join("state2"));
    let e = block_on(stranger.sync()).unwrap_err();
    let shown = e.to_string();
    assert!(shown.contains("Host key verification failed"), "{shown}");
    assert!(!shown.contains(&format!("{}@", server.user)), "{shown}");
    assert!(!std::fs::read_to_string(&empty)
        .unwrap()
        .contains("127.0.0.1"));
}

#[test]
fn a_push_the_server_refuses_is_one_error_row_naming_the_repository_and_is_not_retried() {
    use tidewatch::gitops::run::{write_back, Settings};
    use tidewatch::image_ref::ImageRef;
    use tidewatch::plan::detect::Status;

    let root = scratch_dir("gitops-refused");
    let remote = seeded(root.path());
    // A branch protection: every push is refused by the server's hook.
    let hook = remote.bare.join("hooks/pre-receive");
    let tries = root.path().join("tries");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho try >> '{}'\necho 'protected branch' >&2\nexit 1\n",
            tries.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = table("", &remote.file_url());
    let defaults = Config::default();
    let state = root.path().join("state");
    let settings = Settings {
        watch: &defaults.watch,
        services: &defaults.services,
        state_dir: &state,
        registry: None,
        verify: &[],
    };
    let mut lookups = tidewatch::gitops::plan::Lookups::new();
    lookups.insert(
        ImageRef::parse("registry.lan:5000/app:stable").unwrap(),
        Ok("sha256:2222222222222222222222222222222222222222222222222222222222222222".into()),
    );
    let checkout = Checkout::new(&config, &state);
    let report = block_on(async {
        checkout.sync().await.unwrap();
        let files = vec![tidewatch::gitops::plan::ScannedFile::scan(
            "stacks/web/compose.yaml",
            checkout.read("stacks/web/compose.yaml").unwrap(),
        )];
        write_back(
            &config,
            &settings,
            &checkout,
            &files,
            &lookups,
            &Default::default(),
            false,
        )
        .await
    });
    assert_eq!(report.rows.len(), 1, "{report:?}");
    let row = &report.rows[0];
    assert_eq!(row.container, remote.file_url());
    assert_eq!(row.status, Status::Error);
    let detail = row.detail.as_deref().unwrap();
    assert!(
        detail.starts_with(&format!(
            "repository {}: git push failed: ",
            remote.file_url()
        )),
        "{detail}"
    );
    assert!(detail.contains("protected branch"), "{detail}");
    assert_eq!(remote.log().len(), 1);
    assert_eq!(
        std::fs::read_to_string(&tries).unwrap(),
        "try\n",
        "pushed once"
    );
    // The next cycle starts from the server's tip again: the local commit is gone.
    let tip = block_on(checkout.sync()).unwrap();
    assert_eq!(tip, remote.log()[0].0);
}

#[test]
fn a_semver_tag_policy_moves_a_files_tag_to_the_newest_version_with_its_digest() {
    use tidewatch::gitops::run::Mode;

    use crate::support::{push, Registry, TestBed};

    let bed = TestBed::new("gitops-semver");
    let registry = Registry::start();
    let old = registry.image("api", "1.0.0");
    bed.build_app(&old, "1.0.0");
    push(&old);
    let new = registry.image("api", "1.1.0");
    bed.build_app_with_labels(
        &new,
        "1.1.0",
        &[
            (
                "org.opencontainers.image.source",
                "https://github.com/acme/api",
            ),
            ("org.opencontainers.image.version", "1.1.0"),
        ],
    );
    let v110 = push(&new);
    let root = scratch_dir("gitops-semver");
    let compose = format!(
        "services:\n  api:\n    image: {old}  # followed by version\n    labels:\n      \
         tidewatch.track: semver\n"
    );
    let remote = Remote::seeded(
        root.path(),
        "deploy",
        &[("stacks/api/compose.yaml", &compose)],
    );
    let writer = Writer::new(root.path(), &registry.host(), &remote.file_url());
    let report = writer.run(Mode::Apply);
    assert_eq!(report.pins.len(), 1, "{report:?}");
    assert_eq!(report.pins[0].tag.as_deref(), Some("1.1.0"));
    // The release-note link the new image's labels give is in the row and the commit.
    let link = Some("https://github.com/acme/api");
    assert_eq!(report.rows[0].notes.changes_url.as_deref(), link);
    assert_eq!(
        report.rows[0].notes.available_version.as_deref(),
        Some("1.1.0")
    );
    let body = git(&remote.bare, &["log", "-1", "--format=%B", "deploy"]);
    println!("{body}");
    assert!(body.contains("\n  https://github.com/acme/api\n"), "{body}");
    assert_eq!(
        remote.show("stacks/api/compose.yaml"),
        compose.replace(&format!("{old}  #"), &format!("{new}@{v110}  #"))
    );
    // Next cycle: already on the newest version and its digest.
    let again = writer.run(Mode::Apply);
    assert_eq!(again.published, Some(Published::Unchanged), "{again:?}");
}

#[test]
fn the_daemon_pins_a_push_within_a_cycle_and_commits_nothing_while_nothing_changes() {
    use crate::support::agent_cli::append_config;
    use crate::support::{push, Registry, TestBed, RUN_INTERVAL};

    let bed = TestBed::new("gitops-daemon");
    let registry = Registry::start();
    let image = registry.image("app", "stable");
    bed.build_app(&image, "1");
    let v1 = push(&image);
    let root = scratch_dir("gitops-daemon");
    let stack = format!("services:\n  web:\n    image: {image}\n");
    let remote = Remote::seeded(root.path(), "main", &[("compose.yaml", &stack)]);
    let agent = bed.agent(&[registry.host()]);
    append_config(&agent, &remote.table("*.yaml"));
    let mut daemon = bed.updater_of(&agent).spawn_run();
    let commits_within = |count: usize, limit: Duration| {
        let deadline = Instant::now() + limit;
        while remote.log().len() < count {
            assert!(
                Instant::now() < deadline,
                "no commit {count} within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    commits_within(2, Duration::from_secs(60));
    assert!(remote
        .show("compose.yaml")
        .contains(&format!("{image}@{v1}\n")));

    bed.build_app(&image, "2");
    let v2 = push(&image);
    let pushed = Instant::now();
    commits_within(3, Duration::from_secs(60));
    println!(
        "daemon (interval {RUN_INTERVAL:?}): push to commit in {:?}",
        pushed.elapsed()
    );
    assert!(remote
        .show("compose.yaml")
        .contains(&format!("{image}@{v2}\n")));
    // Several more cycles with nothing new: no more commits.
    std::thread::sleep(RUN_INTERVAL * 3);
    assert_eq!(remote.log().len(), 3);
    daemon.wait_for_log("gitops: pinned and pushed", 2, Duration::from_secs(5));
    daemon.terminate(Duration::from_secs(30));
}
