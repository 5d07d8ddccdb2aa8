//! `tidewatch check`: what it reports for each container, what it asks the registry, and that it
//! changes nothing.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

use crate::support::{
    pull, push, repo_digests, scratch_dir, tag, tidewatch, Engine, Outcome, Registry, Status,
    TestBed,
};

/// A dead registry may cost a connect or read timeout, but a check must still end well inside
/// a scheduling interval.
const DEAD_REGISTRY_BOUND: Duration = Duration::from_secs(60);

#[test]
fn a_v1_container_is_up_to_date_then_update_available_after_v2_is_pushed_and_stays_untouched() {
    let bed = TestBed::new("check-update-available");
    let registry = Registry::start();
    let image = registry.image("app", "stable");
    bed.build_app(&image, "1");
    let v1 = push(&image);
    bed.run("web", &image, &[]);
    let agent = bed.agent(&[registry.host()]);

    let check = agent.check(&[]);
    check.assert_exit(0);
    assert_eq!(
        check.rows.len(),
        1,
        "only the bed's one container is in scope; {check}"
    );
    let row = check.row("web");
    assert_eq!(row.status, Status::UpToDate, "{check}");
    assert_eq!(row.current_digest.as_deref(), Some(v1.as_str()), "{check}");
    assert_eq!(
        row.available_digest.as_deref(),
        Some(v1.as_str()),
        "{check}"
    );

    let container = bed.container_id("web");
    let running_image = bed.image_id("web");
    bed.build_app(&image, "2");
    push(&image);
    let v2 = registry.manifest_digest("app", "stable");
    assert_ne!(v1, v2, "v2 must be a new digest");

    let check = agent.check(&[]);
    check.assert_exit(0);
    let row = check.row("web");
    assert_eq!(row.status, Status::UpdateAvailable, "{check}");
    assert_eq!(row.current_digest.as_deref(), Some(v1.as_str()), "{check}");
    assert_eq!(
        row.available_digest.as_deref(),
        Some(v2.as_str()),
        "{check}"
    );

    assert_eq!(
        bed.container_id("web"),
        container,
        "check replaced the container"
    );
    assert_eq!(
        bed.image_id("web"),
        running_image,
        "check changed the container's image"
    );
    assert!(bed.is_running("web"), "check stopped the container");
}

#[test]
fn thirty_containers_on_three_images_cost_three_manifest_heads_and_no_gets() {
    let bed = TestBed::new("check-request-count");
    let registry = Registry::start();
    let repos = ["alpha", "beta", "gamma"];
    bed.run_pushed(&registry, &repos, 10);
    let agent = bed.agent(&[registry.host()]);
    // Pushing made requests of its own; only what the check adds counts.
    let count = |method: &str| -> Vec<usize> {
        repos
            .iter()
            .map(|repo| registry.manifest_requests(method, repo))
            .collect()
    };
    let (heads_before, gets_before) = (count("HEAD"), count("GET"));

    let check = agent.check(&[]);

    check.assert_exit(0);
    assert_eq!(check.rows.len(), 30, "{check}");
    assert!(
        check.rows.iter().all(|row| row.status == Status::UpToDate),
        "{check}"
    );
    let added = |after: Vec<usize>, before: &[usize]| -> Vec<usize> {
        after.iter().zip(before).map(|(a, b)| a - b).collect()
    };
    let requests = || format!("registry requests: {:#?}", registry.requests());
    assert_eq!(
        added(count("HEAD"), &heads_before),
        vec![1, 1, 1],
        "one HEAD per image, not per container; {}",
        requests()
    );
    assert_eq!(
        added(count("GET"), &gets_before),
        vec![0, 0, 0],
        "a HEAD answers a single-arch tag; {}",
        requests()
    );
}

#[test]
fn a_container_pulled_from_a_multi_arch_index_tag_is_up_to_date() {
    let bed = TestBed::new("check-multiarch-tag");
    let registry = Registry::start();
    let (index, _amd64) = bed.push_multiarch_index(&registry, "multi", "stable");
    bed.forget(&registry.repo("multi"));
    let image = registry.image("multi", "stable");
    pull(&image);
    let repo = registry.repo("multi");
    assert_eq!(
        repo_digests(&image),
        [format!("{repo}@{index}")],
        "precondition"
    );
    bed.run("web", &image, &[]);

    let check = bed.agent(&[registry.host()]).check(&[]);

    check.assert_exit(0);
    let row = check.row("web");
    assert_eq!(row.status, Status::UpToDate, "{check}");
    assert_eq!(
        row.available_digest.as_deref(),
        Some(index.as_str()),
        "{check}"
    );
}

#[test]
fn a_container_pulled_by_its_platform_digest_and_tagged_is_up_to_date_not_a_false_update() {
    let bed = TestBed::new("check-multiarch-platform");
    let registry = Registry::start();
    let (_index, amd64) = bed.push_multiarch_index(&registry, "multi", "stable");
    bed.forget(&registry.repo("multi"));
    // The engine now knows the image only by its amd64 manifest digest, never the index's.
    let by_digest = format!("{}@{amd64}", registry.repo("multi"));
    let image = registry.image("multi", "stable");
    pull(&by_digest);
    tag(&by_digest, &image);
    assert_eq!(repo_digests(&image), [by_digest], "precondition");
    bed.run("web", &image, &[]);

    let check = bed.agent(&[registry.host()]).check(&[]);

    check.assert_exit(0);
    assert_eq!(check.row("web").status, Status::UpToDate, "{check}");
}

#[test]
fn a_container_on_an_oci_media_type_image_is_up_to_date() {
    let bed = TestBed::new("check-oci-media-types");
    let registry = Registry::start();
    let digest = bed.push_oci(&registry, "oci", "stable");
    bed.forget(&registry.repo("oci"));
    let image = registry.image("oci", "stable");
    pull(&image);
    let repo = registry.repo("oci");
    assert_eq!(
        repo_digests(&image),
        [format!("{repo}@{digest}")],
        "precondition"
    );
    bed.run("web", &image, &[]);

    let check = bed.agent(&[registry.host()]).check(&[]);

    check.assert_exit(0);
    let row = check.row("web");
    assert_eq!(row.status, Status::UpToDate, "{check}");
    assert_eq!(
        row.current_digest.as_deref(),
        Some(digest.as_str()),
        "{check}"
    );
    assert_eq!(
        row.available_digest.as_deref(),
        Some(digest.as_str()),
        "{check}"
    );
}

#[test]
fn a_locally_built_image_is_unknown_and_update_leaves_it_alone() {
    let bed = TestBed::new("check-local-image");
    let registry = Registry::start();
    // On the test registry's host so that nothing is looked up off the machine. The registry
    // has another image under the same tag, which a false positive would replace it with.
    let image = registry.image("local", "dev");
    bed.build_app(&image, "pushed");
    push(&image);
    bed.build_local(&image);
    if Engine::containerd_store() {
        // The trap: this store makes up a repo digest from the local manifest and the name.
        assert_eq!(repo_digests(&image).len(), 1, "precondition");
    } else {
        assert!(repo_digests(&image).is_empty(), "precondition");
    }
    bed.run("dev", &image, &[]);
    let container = bed.container_id("dev");
    let agent = bed.agent(&[registry.host()]);

    let check = agent.check(&[]);

    check.assert_exit(0);
    let row = check.row("dev");
    assert_eq!(row.status, Status::Unknown, "{check}");
    assert_eq!(
        row.current_digest, None,
        "a local image has no digest of the repository's; {check}"
    );

    let update = bed.updater_of(&agent).update(&[]);
    assert_eq!(update.outcome.code, 0, "{update:#?}");
    assert_eq!(bed.container_id("dev"), container, "{update:?}");
}

#[test]
fn only_a_reference_whose_digest_moved_may_cost_a_second_head() {
    // On the containerd store the running digest is the image id, which a local build has too:
    // where the tag moved, one HEAD of `repo@<image id>` tells a pulled image from a local one.
    let bed = TestBed::new("check-confirm-count");
    let registry = Registry::start();
    let repos = ["moved", "same"];
    for repo in repos {
        let image = registry.image(repo, "v1");
        bed.build_app(&image, repo);
        push(&image);
        for n in 0..3 {
            bed.run(&format!("{repo}-{n}"), &image, &[]);
        }
    }
    // A new digest from this engine: the running image loses its tag here, as with CI's push
    // followed by a `docker pull` or a local build.
    let moved = registry.image("moved", "v1");
    bed.build_app(&moved, "moved-again");
    push(&moved);
    let agent = bed.agent(&[registry.host()]);
    let heads = |repo: &str| registry.manifest_requests("HEAD", repo);
    let before: Vec<usize> = repos.iter().map(|r| heads(r)).collect();

    let check = agent.check(&[]);

    check.assert_exit(0);
    for n in 0..3 {
        assert_eq!(
            check.row(&format!("moved-{n}")).status,
            Status::UpdateAvailable,
            "{check}"
        );
        assert_eq!(
            check.row(&format!("same-{n}")).status,
            Status::UpToDate,
            "{check}"
        );
    }
    let added: Vec<usize> = repos
        .iter()
        .zip(&before)
        .map(|(r, b)| heads(r) - b)
        .collect();
    let expected = if Engine::containerd_store() {
        [2, 1]
    } else {
        [1, 1]
    };
    assert_eq!(
        added,
        expected,
        "HEADs per reference (containerd store: {}); registry requests: {:#?}",
        Engine::containerd_store(),
        registry.requests()
    );
}

#[test]
fn a_digest_pinned_container_is_skipped() {
    let bed = TestBed::new("check-digest-pinned");
    let registry = Registry::start();
    let image = registry.image("app", "stable");
    bed.build_app(&image, "1");
    let digest = push(&image);
    bed.run("pinned", &format!("{}@{digest}", registry.repo("app")), &[]);

    let check = bed.agent(&[registry.host()]).check(&[]);

    check.assert_exit(0);
    assert_eq!(check.row("pinned").status, Status::Skipped, "{check}");
}

#[test]
fn a_container_labelled_enable_false_is_skipped() {
    let bed = TestBed::new("check-enable-false");
    let registry = Registry::start();
    let image = registry.image("app", "stable");
    bed.build_app(&image, "1");
    push(&image);
    bed.run("opted-out", &image, &[("tidewatch.enable", "false")]);
    bed.run("web", &image, &[]);

    let check = bed.agent(&[registry.host()]).check(&[]);

    check.assert_exit(0);
    assert_eq!(check.row("opted-out").status, Status::Skipped, "{check}");
    assert_eq!(check.row("web").status, Status::UpToDate, "{check}");
}

#[test]
fn with_label_enable_only_containers_labelled_enable_true_are_checked() {
    let bed = TestBed::new("check-label-enable");
    let registry = Registry::start();
    let image = registry.image("app", "stable");
    bed.build_app(&image, "1");
    push(&image);
    bed.run("opted-in", &image, &[("tidewatch.enable", "true")]);
    bed.run("unlabelled", &image, &[]);

    let check = bed.agent_with(&[registry.host()], true).check(&[]);

    check.assert_exit(0);
    assert_eq!(check.row("opted-in").status, Status::UpToDate, "{check}");
    assert_eq!(check.row("unlabelled").status, Status::Skipped, "{check}");
}

#[test]
fn containers_outside_the_scope_are_not_listed() {
    let bed = TestBed::new("check-scope");
    let registry = Registry::start();
    let image = registry.image("app", "stable");
    bed.build_app(&image, "1");
    push(&image);
    bed.run("inside", &image, &[]);
    let elsewhere = format!("{}-elsewhere", bed.scope());
    bed.run("outside", &image, &[("tidewatch.scope", &elsewhere)]);

    let check = bed.agent(&[registry.host()]).check(&[]);

    check.assert_exit(0);
    assert_eq!(check.rows.len(), 1, "{check}");
    assert_eq!(check.row("inside").status, Status::UpToDate, "{check}");
}

#[test]
fn a_dead_registry_fails_only_its_own_rows_and_the_check_ends_in_bounded_time() {
    let bed = TestBed::new("check-dead-registry");
    let healthy = Registry::start();
    let refusing = Registry::start();
    let silent = Registry::start();
    for (name, registry) in [
        ("healthy", &healthy),
        ("refused", &refusing),
        ("hung", &silent),
    ] {
        let image = registry.image("app", "stable");
        bed.build_app(&image, name);
        push(&image);
        bed.run(name, &image, &[]);
    }
    let hosts = [healthy.host(), refusing.host(), silent.host()];
    // The images keep their repo digests; only the registries behind them go away.
    let _refusing = refusing.into_refusing();
    let _silent = silent.into_silent();

    let check = bed.agent(&hosts).check(&[]);

    check.assert_exit(1);
    assert_eq!(check.row("healthy").status, Status::UpToDate, "{check}");
    for name in ["refused", "hung"] {
        let row = check.row(name);
        assert_eq!(row.status, Status::Error, "{check}");
        assert!(
            row.detail
                .as_deref()
                .is_some_and(|detail| !detail.is_empty()),
            "an error row says what went wrong; {check}"
        );
    }
    assert!(
        check.outcome.elapsed < DEAD_REGISTRY_BOUND,
        "check took {:?} (bound {DEAD_REGISTRY_BOUND:?}); {check}",
        check.outcome.elapsed
    );
}

#[test]
fn an_engine_socket_with_nothing_behind_it_is_named_with_the_cause_and_the_check_exits_1() {
    let dir = scratch_dir("dead-engine-");
    // No file at all (wrong path, engine not installed), and a socket file nobody listens on
    // any more (an engine that died).
    let missing = dir.path().join("missing.sock");
    let dead = dir.path().join("dead.sock");
    drop(
        UnixListener::bind(&dead)
            .unwrap_or_else(|error| panic!("cannot bind {}: {error}", dead.display())),
    );
    for (socket, cause) in [(&missing, "not found"), (&dead, "Connection refused")] {
        let host = format!("unix://{}", socket.display());
        let outcome = run_config(
            |good| good.replace("unix:///var/run/docker.sock", &host),
            &["check"],
        );

        assert_eq!(outcome.code, 1, "{outcome:#?}");
        let message = format!("engine at {host} is not reachable");
        assert!(
            outcome.stderr.contains(&message),
            "stderr should say {message:?}; {outcome:#?}"
        );
        assert!(
            outcome.stderr.contains(cause),
            "stderr should give the cause ({cause:?}); {outcome:#?}"
        );
        assert_eq!(
            outcome.stderr.matches(cause).count(),
            1,
            "the cause is said once; {outcome:#?}"
        );
    }
}

// Configuration errors: exit 2, and the message says where. These need no engine: a bad file
// must be rejected before anything is contacted.

/// A complete, valid agent.toml keeping its state in `dir`.
fn good_config(dir: &Path) -> String {
    format!(
        "[agent]\n\
         interval = \"5m\"\n\
         state_dir = {state_dir:?}\n\
         \n\
         [docker]\n\
         host = \"unix:///var/run/docker.sock\"\n\
         \n\
         [watch]\n\
         scope = \"t-config\"\n\
         label_enable = false\n\
         \n\
         [[registry]]\n\
         host = \"127.0.0.1:5000\"\n\
         insecure = true\n",
        state_dir = dir.join("state").to_string_lossy()
    )
}

/// Runs `tidewatch -c agent.toml ARGS` on the good config, in a fresh directory.
fn run_good_config(args: &[&str]) -> Outcome {
    run_config(|good| good, args)
}

/// Runs `tidewatch -c agent.toml ARGS` on the good config with line `line` (1-based) replaced
/// by `replacement`.
fn run_config_with_line(line: usize, replacement: &str, args: &[&str]) -> Outcome {
    run_config(
        |good| {
            let mut lines: Vec<&str> = good.lines().collect();
            lines[line - 1] = replacement;
            lines.join("\n") + "\n"
        },
        args,
    )
}

fn run_config(edit: impl FnOnce(String) -> String, args: &[&str]) -> Outcome {
    let dir = scratch_dir("config-");
    let path = dir.path().join("agent.toml");
    fs::write(&path, edit(good_config(dir.path())))
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
    let mut all = vec![OsStr::new("-c"), path.as_os_str()];
    all.extend(args.iter().map(OsStr::new));
    tidewatch(all)
}

fn assert_config_error(outcome: &Outcome, mentions: &[&str]) {
    assert_eq!(outcome.code, 2, "config errors exit 2; {outcome:#?}");
    for needle in mentions {
        assert!(
            outcome.stderr.contains(needle),
            "stderr should mention {needle:?}; {outcome:#?}"
        );
    }
}

#[test]
fn validate_accepts_a_good_config() {
    let outcome = run_good_config(&["validate"]);
    assert_eq!(outcome.code, 0, "{outcome:#?}");
}

#[test]
fn an_unknown_key_is_named_with_its_file_line_and_column() {
    // Line 10 is `label_enable = false`; a typo there must not be silently ignored.
    let outcome = run_config_with_line(10, "label_enabled = false", &["check", "--json"]);
    assert_config_error(&outcome, &["label_enabled", "agent.toml:10:1"]);
}

#[test]
fn a_bad_interval_is_rejected_at_its_line() {
    let outcome =
        run_config_with_line(2, "interval = \"every now and then\"", &["check", "--json"]);
    // Column 12 is where the value starts: the place to fix.
    assert_config_error(&outcome, &["agent.toml:2:12", "every now and then"]);
}

#[test]
fn a_bad_cron_schedule_is_rejected_at_its_line() {
    let outcome = run_config_with_line(2, "schedule = \"*/5 * * *\"", &["check", "--json"]);
    assert_config_error(&outcome, &["agent.toml:2:12", "*/5 * * *"]);
}

#[test]
fn interval_and_schedule_together_are_rejected() {
    let both = "interval = \"5m\"\nschedule = \"*/5 * * * *\"";
    let outcome = run_config_with_line(2, both, &["check", "--json"]);
    assert_config_error(&outcome, &["interval", "schedule", "agent.toml:"]);
}

#[test]
fn a_missing_config_file_is_named() {
    let dir = scratch_dir("config-");
    let missing = dir.path().join("nowhere").join("agent.toml");
    let missing = missing.to_string_lossy();
    let outcome = tidewatch(["-c", &missing, "check", "--json"]);
    assert_config_error(&outcome, &[&missing]);
}

#[test]
fn check_on_a_server_without_any_tidewatch_configuration_runs_on_the_defaults() {
    let bed = TestBed::new("check-no-config");
    let registry = Registry::start();
    let image = registry.image("app", "stable");
    bed.build_app(&image, "1");
    let digest = push(&image);
    // No scope label: the defaults look after unscoped containers. The bed's label still ties
    // the container to the bed for clean-up.
    let name = bed.name("unscoped");
    crate::support::docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        &format!("{}={}", crate::support::TEST_LABEL, bed.id()),
        &image,
    ]);
    assert!(
        !Path::new("/etc/tidewatch/agent.toml").exists(),
        "this test needs a machine where tidewatch was never configured"
    );

    // No -c and no TIDEWATCH_CONFIG: the default path, which does not exist.
    let outcome = tidewatch(["check", "--json", name.as_str()]);

    assert_eq!(outcome.code, 0, "{outcome:#?}");
    let rows: serde_json::Value = serde_json::from_str(&outcome.stdout).expect("JSON rows");
    let rows = rows.as_array().expect("an array of rows");
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["container"], name.as_str(), "{rows:#?}");
    assert_eq!(rows[0]["status"], "up_to_date", "{rows:#?}");
    assert_eq!(rows[0]["current_digest"], digest.as_str(), "{rows:#?}");
}
