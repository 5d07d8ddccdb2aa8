//! Release notes: the versions and the link to what changed, from the OCI labels of the
//! running image (the engine's) and of the candidate (its config blob on the registry, read
//! once per changed reference and never for an unchanged one).

use crate::support::{push, Fault, FlakyServer, Registry, Requests, Status, TestBed};

const SOURCE: &str = "org.opencontainers.image.source";
const VERSION: &str = "org.opencontainers.image.version";
const REVISION: &str = "org.opencontainers.image.revision";
const OLD_REVISION: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567";
const NEW_REVISION: &str = "fedcba98765432100123456789abcdef01234567";

/// The labels docker/metadata-action puts on an image built from github.com/acme/app.
fn oci_labels<'a>(version: &'a str, revision: &'a str) -> [(&'a str, &'a str); 3] {
    [
        (SOURCE, "https://github.com/acme/app"),
        (VERSION, version),
        (REVISION, revision),
    ]
}

/// `GET /v2/REPO/blobs/...` requests tidewatch (not the engine) sent the registry so far.
fn config_reads(registry: &Registry, repo: &str) -> usize {
    let prefix = format!("/v2/{repo}/blobs/");
    registry
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.uri.starts_with(&prefix) && !r.is_from_engine())
        .count()
}

#[test]
fn check_shows_versions_and_a_compare_link_reading_each_changed_config_once() {
    let bed = TestBed::new("notes-check");
    let registry = Registry::start();
    let app = registry.image("app", "stable");
    let other = registry.image("other", "stable");
    bed.build_app_with_labels(&app, "1", &oci_labels("1.0.0", OLD_REVISION));
    push(&app);
    bed.build_app_with_labels(&other, "other", &oci_labels("3.0.0", OLD_REVISION));
    push(&other);
    bed.run("web", &app, &[]);
    bed.run("api", &app, &[]);
    bed.run(
        "docs",
        &app,
        &[(
            "tidewatch.changelog",
            "https://changes.example/app/{old_version}...{new_version}",
        )],
    );
    bed.run("other", &other, &[]);
    bed.build_app_with_labels(&app, "2", &oci_labels("2.0.0", NEW_REVISION));
    push(&app);
    let agent = bed.agent(&[registry.host()]);
    let before = (
        config_reads(&registry, "app"),
        config_reads(&registry, "other"),
    );

    let check = agent.check(&[]);

    check.assert_exit(0);
    let compare = format!("https://github.com/acme/app/compare/{OLD_REVISION}...{NEW_REVISION}");
    for name in ["web", "api"] {
        let row = check.row(name);
        assert_eq!(row.current_version.as_deref(), Some("1.0.0"), "{check}");
        assert_eq!(row.available_version.as_deref(), Some("2.0.0"), "{check}");
        assert_eq!(
            row.changes_url.as_deref(),
            Some(compare.as_str()),
            "{check}"
        );
    }
    let docs = check.row("docs");
    assert_eq!(
        docs.changes_url.as_deref(),
        Some("https://changes.example/app/1.0.0...2.0.0"),
        "the container's tidewatch.changelog wins; {check}"
    );
    let unchanged = check.row("other");
    assert_eq!(
        (
            &unchanged.current_version,
            &unchanged.available_version,
            &unchanged.changes_url
        ),
        (&None, &None, &None),
        "no update, no notes; {check}"
    );
    let after = (
        config_reads(&registry, "app"),
        config_reads(&registry, "other"),
    );
    eprintln!("config blob reads by check: app {before:?} -> {after:?} (app, other)");
    assert_eq!(
        after.0 - before.0,
        1,
        "one config read for the changed reference, used by its three containers"
    );
    assert_eq!(after.1, before.1, "none for the unchanged reference");

    let table = agent.run(&["check"]);
    assert!(
        table.stdout.contains("1.0.0 -> 2.0.0") && table.stdout.contains(&compare),
        "{}",
        table.stdout
    );
}

#[test]
fn an_update_carries_its_release_notes_into_its_result_and_the_history() {
    let bed = TestBed::new("notes-update");
    let registry = Registry::start();
    let app = registry.image("app", "stable");
    bed.build_app_with_labels(&app, "1", &oci_labels("1.0.0", OLD_REVISION));
    push(&app);
    bed.run("web", &app, &[]);
    bed.build_app_with_labels(&app, "2", &oci_labels("2.0.0", NEW_REVISION));
    push(&app);
    let agent = bed.agent(&[registry.host()]);
    let updater = bed.updater_of(&agent);

    let update = updater.update(&[]);

    assert_eq!(update.outcome.code, 0, "{update:#?}");
    let compare = format!("https://github.com/acme/app/compare/{OLD_REVISION}...{NEW_REVISION}");
    let step = update.result("web");
    assert_eq!(step.outcome, "updated", "{update:#?}");
    assert_eq!(step.current_version.as_deref(), Some("1.0.0"));
    assert_eq!(step.available_version.as_deref(), Some("2.0.0"));
    assert_eq!(step.changes_url.as_deref(), Some(compare.as_str()));
    let row = update
        .report
        .containers
        .iter()
        .find(|row| row["container"] == step.container.as_str())
        .unwrap_or_else(|| panic!("no row for web; {update:#?}"));
    assert_eq!(
        row["changes_url"], compare,
        "the check before the update saw it too; {update:#?}"
    );

    let (outcome, history) = updater.history("web");
    assert_eq!(outcome.code, 0, "{outcome:?}");
    let newest = history.first().expect("a history row");
    assert_eq!(newest.outcome, "updated");
    assert_eq!(newest.current_version.as_deref(), Some("1.0.0"));
    assert_eq!(newest.available_version.as_deref(), Some("2.0.0"));
    assert_eq!(newest.changes_url.as_deref(), Some(compare.as_str()));
}

#[test]
fn notes_that_cannot_be_read_leave_their_fields_out_and_the_verdict_as_it_is() {
    let bed = TestBed::new("notes-unreadable");
    let origin = Registry::start();
    let front = FlakyServer::front(&origin);
    let app = front.image("app", "stable");
    bed.build_app_with_labels(&app, "1", &oci_labels("1.0.0", OLD_REVISION));
    push(&app);
    bed.run("web", &app, &[]);
    bed.build_app_with_labels(&app, "2", &oci_labels("2.0.0", NEW_REVISION));
    push(&app);
    // HEADs still answer, so the update is seen; reading the new manifest fails.
    front.fail_always(Requests::ManifestGets, Fault::ServerError);

    let check = bed.agent(&[front.host()]).check(&[]);

    check.assert_exit(0);
    let row = check.row("web");
    assert_eq!(row.status, Status::UpdateAvailable, "{check}");
    assert_eq!(
        row.current_version.as_deref(),
        Some("1.0.0"),
        "the running image's side needs no registry; {check}"
    );
    assert_eq!(
        (&row.available_version, &row.changes_url),
        (&None, &None),
        "{check}"
    );
    assert!(
        check.outcome.stderr.contains("release notes"),
        "the failure is logged: {check}"
    );
}
