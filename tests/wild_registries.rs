//! Registries as they are in the wild: private images behind token auth and basic auth, with
//! credentials from agent.toml, Docker's config.json and credential helpers; TLS with a private
//! CA; rate limits, outages and garbage; pull-through mirrors that lag their origin.
//!
//! Every test runs the real `tidewatch` binary against real distribution registries, the test
//! doubles of `support` (token server, flaky front) standing where a hosted service would.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::support::{
    docker, image_id, push, repo_digests, tag, CredentialHelper, DockerConfig, EngineTrust, Fault,
    FlakyServer, Length, Registry, RegistryEntry, Requests, Seen, Status, TestBed, TestCa,
    TokenRequest, TokenServer,
};

/// The user the test registries know, and passwords distinctive enough to grep logs for.
const USER: &str = "ci";
const PASSWORD: &str = "tw-pass-Zq81xkP3";
const WRONG_PASSWORD: &str = "tw-wrong-Hh27mcV9";
/// The User-Agent prefix of tidewatch's requests, to tell them from the engine's.
const TIDEWATCH_AGENT: &str = "tidewatch/";
/// A misbehaving registry may cost retries and timeouts, but a run must still end well inside
/// a scheduling interval.
const MISBEHAVING_BOUND: Duration = Duration::from_secs(60);

/// The versions of `app:stable` a scenario publishes: the bed's container runs `v1`, the
/// registry now serves `v2`.
struct Published {
    v1: String,
    v2: String,
}

/// Builds and pushes v1 of `image`, runs it as the bed's container `name`, then builds and
/// pushes v2, with `push` doing the pushing (and returning the digest). The engine is then left
/// as a server's is when CI built v2 elsewhere: without v2, its tag still on v1, so an update
/// has to pull.
fn publish_and_run(
    bed: &TestBed,
    image: &str,
    name: &str,
    push: impl Fn(&str) -> String,
) -> Published {
    bed.build_app(image, &format!("{name}-1"));
    let v1 = push(image);
    bed.run(name, image, &[]);
    let v2 = publish_from_elsewhere(bed, image, &format!("{name}-2"), &push);
    assert_ne!(v1, v2, "v2 must be a new digest");
    Published { v1, v2 }
}

/// Builds the app's `version` as `image`, pushes it with `push` and returns its digest, then
/// puts the engine back as a server's is when CI built it elsewhere: `image` names the image it
/// named before, and the new one is gone.
///
/// Another name holds the previous image while the build takes `image` from it: the containerd
/// image store deletes an image whose last name moves away, even one a container runs. Ids are
/// asked of the engine rather than taken from the build's output: with BuildKit on that store,
/// `docker build --quiet` prints the config digest, which `docker tag` does not take.
fn publish_from_elsewhere(
    bed: &TestBed,
    image: &str,
    version: &str,
    push: impl Fn(&str) -> String,
) -> String {
    let keep = format!("tidewatch-test-keep/{}:{version}", bed.id());
    tag(&image_id(image), &keep);
    bed.build_app(image, version);
    let built = image_id(image);
    let digest = push(image);
    docker(&["image", "rm", "--force", &built]);
    tag(&keep, image);
    // Only a name goes: `image` still names the image.
    docker(&["image", "rm", &keep]);
    digest
}

/// A `DOCKER_CONFIG` for tidewatch with nothing in it, so the credentials a test means are the
/// only ones there are.
fn empty_docker_config(bed: &TestBed) -> PathBuf {
    DockerConfig::new(&bed.dir().join("empty-docker-config"))
        .dir()
        .to_owned()
}

/// A password file as `echo "$PASSWORD" > file` writes it, trailing newline included.
fn password_file(bed: &TestBed, name: &str, password: &str) -> PathBuf {
    let path = bed.dir().join(name);
    fs::write(&path, format!("{password}\n"))
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
    path
}

/// A docker client configuration that can push to `host` as [`USER`].
fn pusher(bed: &TestBed, host: &str) -> DockerConfig {
    let mut config = DockerConfig::new(&bed.dir().join("pusher"));
    config.auth(host, USER, PASSWORD);
    config
}

/// Whether the bed's container `name` runs the image the engine knows as `<repo>@<digest>` for
/// one of `repos`.
fn runs_digest(bed: &TestBed, name: &str, repos: &[String], digest: &str) -> bool {
    let image = bed.image_id(name);
    let digests = repo_digests(&image);
    repos
        .iter()
        .any(|repo| digests.contains(&format!("{repo}@{digest}")))
}

// --- token auth -----------------------------------------------------------------------------

#[test]
fn a_private_image_behind_token_auth_is_checked_and_updated_with_username_and_password_file() {
    let bed = TestBed::new("wild-token-update");
    let tokens = TokenServer::start(&[(USER, PASSWORD)]);
    let registry = Registry::options().token_auth(&tokens).start();
    let pusher = pusher(&bed, &registry.host());
    let image = registry.image("app", "stable");
    let published = publish_and_run(&bed, &image, "web", |image| pusher.push(image));
    let agent = bed
        .agent_for(&[RegistryEntry::new(&registry.host())
            .insecure(true)
            .username(USER)
            .password_file(&password_file(&bed, "registry-password", PASSWORD))])
        .env("DOCKER_CONFIG", empty_docker_config(&bed));

    let check = agent.check(&[]);
    check.assert_exit(0);
    let row = check.row("web");
    assert_eq!(row.status, Status::UpdateAvailable, "{check}");
    assert_eq!(
        row.available_digest.as_deref(),
        Some(published.v2.as_str()),
        "{check}"
    );

    let update = agent.update(&[]);
    let result = update
        .result("web")
        .unwrap_or_else(|| panic!("web was not updated; {update}"));
    assert_eq!(result.outcome, "updated", "{update}");
    assert_eq!(
        result.to_digest.as_deref(),
        Some(published.v2.as_str()),
        "{update}"
    );
    assert_eq!(update.outcome.code, 0, "{update}");
    assert!(
        runs_digest(&bed, "web", &[registry.repo("app")], &published.v2),
        "web does not run v2 after the update; {update}"
    );
    let asked = tokens.requests_from(TIDEWATCH_AGENT);
    assert!(
        asked
            .iter()
            .all(|request| request.user.as_deref() == Some(USER)),
        "tidewatch asked for tokens without its credentials: {asked:#?}"
    );
}

#[test]
fn one_token_request_per_repository_scope_per_cycle_however_many_containers_use_it() {
    let bed = TestBed::new("wild-token-count");
    let tokens = TokenServer::start(&[(USER, PASSWORD)]);
    let registry = Registry::options().token_auth(&tokens).start();
    let pusher = pusher(&bed, &registry.host());
    // Two tags of one repository and a second repository: three references, two scopes.
    let images = [
        (registry.image("app", "stable"), "app-stable", 3),
        (registry.image("app", "canary"), "app-canary", 2),
        (registry.image("tool", "stable"), "tool", 2),
    ];
    for (image, name, containers) in &images {
        bed.build_app(image, name);
        pusher.push(image);
        for n in 0..*containers {
            bed.run(&format!("{name}-{n}"), image, &[]);
        }
    }
    let agent = bed
        .agent_for(&[RegistryEntry::new(&registry.host())
            .insecure(true)
            .username(USER)
            .password_file(&password_file(&bed, "registry-password", PASSWORD))])
        .env("DOCKER_CONFIG", empty_docker_config(&bed));
    let expected = [
        ("repository:app:pull".to_owned(), 1),
        ("repository:tool:pull".to_owned(), 1),
    ]
    .into_iter()
    .collect();

    let check = agent.check(&[]);
    check.assert_exit(0);
    assert_eq!(check.rows.len(), 7, "{check}");
    assert!(
        check.rows.iter().all(|row| row.status == Status::UpToDate),
        "{check}"
    );
    let in_check = tokens.requests_from(TIDEWATCH_AGENT);

    // An update cycle with something to do: a new app:stable.
    publish_from_elsewhere(&bed, &images[0].0, "app-stable-2", |image| {
        pusher.push(image)
    });
    let update = agent.update(&[]);
    assert_eq!(update.outcome.code, 0, "{update}");
    let in_cycle = tokens
        .requests_from(TIDEWATCH_AGENT)
        .split_off(in_check.len());

    // Both cycles are measured before either is judged, so a failure shows both.
    let (check_counts, cycle_counts) = (scope_counts(&in_check), scope_counts(&in_cycle));
    eprintln!("token requests by scope: check {check_counts:?}, update {cycle_counts:?}");
    assert_eq!(
        check_counts, expected,
        "one token per repository scope in a check; requests: {in_check:#?}"
    );
    assert_eq!(
        cycle_counts, expected,
        "one token per repository scope in an update cycle; requests: {in_cycle:#?}\n{update}"
    );
}

#[test]
fn a_token_endpoint_answering_the_largest_expires_in_does_not_crash_check_or_update() {
    let bed = TestBed::new("wild-token-expiry");
    let tokens = TokenServer::start(&[(USER, PASSWORD)]);
    tokens.answer_expires_in(TIDEWATCH_AGENT, u64::MAX);
    let registry = Registry::options().token_auth(&tokens).start();
    let pusher = pusher(&bed, &registry.host());
    let image = registry.image("app", "stable");
    let published = publish_and_run(&bed, &image, "web", |image| pusher.push(image));
    let agent = bed
        .agent_for(&[RegistryEntry::new(&registry.host())
            .insecure(true)
            .username(USER)
            .password_file(&password_file(&bed, "registry-password", PASSWORD))])
        .env("DOCKER_CONFIG", empty_docker_config(&bed));

    let check = agent.check(&[]);
    check.assert_exit(0);
    let row = check.row("web");
    assert_eq!(row.status, Status::UpdateAvailable, "{check}");
    assert_eq!(
        row.available_digest.as_deref(),
        Some(published.v2.as_str()),
        "{check}"
    );

    let update = agent.update(&[]);
    assert_eq!(update.outcome.code, 0, "{update}");
    let result = update
        .result("web")
        .unwrap_or_else(|| panic!("web was not updated; {update}"));
    assert_eq!(result.outcome, "updated", "{update}");
}

/// How many of `requests` asked for each scope.
fn scope_counts(requests: &[TokenRequest]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for scope in requests.iter().flat_map(|request| &request.scopes) {
        *counts.entry(scope.clone()).or_insert(0) += 1;
    }
    counts
}

// --- credentials stay with their registry -----------------------------------------------------

#[test]
fn a_tag_list_link_to_another_host_is_not_followed_and_tracking_uses_the_pages_seen() {
    let bed = TestBed::new("wild-link-origin");
    let origin = Registry::start();
    let front = FlakyServer::front(&origin);
    // Where a hostile registry would send the agent, with its token and then its credentials.
    let elsewhere = FlakyServer::front(&Registry::start());
    let current = front.image("app", "1.0.0");
    bed.build_app(&current, "1.0.0");
    push(&current);
    let newer = front.image("app", "1.1.0");
    bed.build_app(&newer, "1.1.0");
    let newer_digest = push(&newer);
    bed.run("web", &current, &[("tidewatch.track", "semver:^1")]);
    let link = format!(
        "<{}/v2/app/tags/list?n=1000&last=1.1.0>; rel=\"next\"",
        elsewhere.url()
    );
    front.add_tag_list_headers(&[("Link", &link)]);

    let check = bed.agent(&[front.host(), elsewhere.host()]).check(&[]);

    let followed: Vec<_> = elsewhere
        .seen()
        .into_iter()
        .filter(|seen| seen.user_agent.starts_with(TIDEWATCH_AGENT))
        .collect();
    assert!(
        followed.is_empty(),
        "tidewatch followed a Link to another host: {followed:#?}; {check}"
    );
    check.assert_exit(0);
    let row = check.row("web");
    assert_eq!(row.status, Status::UpdateAvailable, "{check}");
    assert_eq!(
        row.available_digest.as_deref(),
        Some(newer_digest.as_str()),
        "the first page's 1.1.0 is still chosen; {check}"
    );
}

#[test]
fn an_https_registry_naming_a_plain_http_token_endpoint_gets_no_credentials_and_an_error() {
    let bed = TestBed::new("wild-realm-downgrade");
    let ca = TestCa::new("wild-realm-downgrade");
    let tokens = TokenServer::start(&[(USER, PASSWORD)]);
    assert!(tokens.realm().starts_with("http://"), "precondition");
    let registry = Registry::options().tls(&ca).token_auth(&tokens).start();
    let _trust = EngineTrust::install(&ca, &registry.host());
    let pusher = pusher(&bed, &registry.host());
    let image = registry.image("app", "stable");
    publish_and_run(&bed, &image, "web", |image| pusher.push(image));
    let ca_file = ca.write_cert(&bed.dir().join("registry-ca.pem"));
    let agent = bed
        .agent_for(&[RegistryEntry::new(&registry.host())
            .insecure(false)
            .ca_file(&ca_file)
            .username(USER)
            .password_file(&password_file(&bed, "registry-password", PASSWORD))])
        .env("DOCKER_CONFIG", empty_docker_config(&bed));

    let check = agent.check(&[]);

    let asked = tokens.requests_from(TIDEWATCH_AGENT);
    assert!(
        asked.is_empty(),
        "tidewatch asked the plain-HTTP realm (user {:?}); {check}",
        asked.iter().map(|r| r.user.clone()).collect::<Vec<_>>()
    );
    check.assert_exit(1);
    let row = check.row("web");
    assert_eq!(row.status, Status::Error, "{check}");
    let detail = row.detail.as_deref().unwrap_or_default();
    assert!(
        detail.contains(&registry.host()) && detail.contains("plain HTTP"),
        "the error names the registry and the downgrade; {check}"
    );
}

// --- bounded answers --------------------------------------------------------------------------

#[test]
fn a_tag_list_larger_than_its_limit_fails_the_row_naming_the_registry_and_repository() {
    let bed = TestBed::new("wild-huge-tags");
    let origin = Registry::start();
    let front = FlakyServer::front(&origin);
    let current = front.image("app", "1.0.0");
    bed.build_app(&current, "1.0.0");
    push(&current);
    bed.run("web", &current, &[("tidewatch.track", "semver:^1")]);
    front.fail_always(
        Requests::TagLists,
        Fault::HugeTagList {
            bytes: 6 * 1024 * 1024,
        },
    );

    let check = bed.agent(&[front.host()]).check(&[]);

    check.assert_exit(1);
    let row = check.row("web");
    assert_eq!(row.status, Status::Error, "{check}");
    let detail = row.detail.as_deref().unwrap_or_default();
    assert!(
        detail.contains(&front.host()) && detail.contains("app") && detail.contains("bytes"),
        "the error names the registry, the repository and the limit; {check}"
    );
}

/// #13: distribution refuses to store a manifest over 4 MiB, so a registry that sends one is
/// broken or hostile; reading it whole would let it decide how much memory the agent takes.
#[test]
fn a_manifest_larger_than_4_mib_fails_the_row_naming_the_registry_and_nothing_is_pulled() {
    let bed = TestBed::new("wild-huge-manifest");
    let origin = Registry::start();
    let front = FlakyServer::front(&origin);
    let image = front.image("app", "stable");
    bed.build_app(&image, "web-1");
    push(&image);
    bed.run("web", &image, &[]);
    // app:stable is now a multi-arch index whose amd64 image web does not run: whether web is
    // up to date takes a GET of the index.
    bed.push_multiarch_index(&origin, "app", "stable");
    let container = bed.container_id("web");
    let running = bed.image_id("web");
    let agent = bed.agent(&[front.host()]);

    for length in [Length::Declared, Length::Chunked, Length::Absent] {
        front.heal();
        front.fail_always(
            Requests::ManifestGets,
            Fault::PaddedManifest {
                bytes: 5 * 1024 * 1024,
                length,
            },
        );
        let mark = front.mark();

        let update = agent.update(&[]);

        assert_eq!(
            update.outcome.code, 1,
            "{length:?}: an error row, not a crash; {update}"
        );
        let row = update.row("web");
        assert_eq!(row.status, Status::Error, "{length:?}; {update}");
        let detail = row.detail.as_deref().unwrap_or_default();
        assert!(
            detail.contains(&front.host()) && detail.contains("4194304 bytes"),
            "{length:?}: the error names the registry and the limit; {update}"
        );
        assert!(
            update
                .result("web")
                .is_none_or(|result| result.outcome != "updated"),
            "{length:?}; {update}"
        );
        let seen = front.seen_since(mark);
        assert!(
            seen.iter()
                .any(|seen| seen.faulted && seen.user_agent.starts_with(TIDEWATCH_AGENT)),
            "{length:?}: tidewatch never read the padded index: {seen:#?}"
        );
        let pulled: Vec<&Seen> = seen.iter().filter(|seen| seen.is_from_engine()).collect();
        assert!(
            pulled.is_empty(),
            "{length:?}: the engine was sent to the registry: {pulled:#?}"
        );
        assert_eq!(bed.container_id("web"), container, "web was replaced");
        assert_eq!(bed.image_id("web"), running, "web's image changed");
        assert!(bed.is_running("web"), "web was stopped");
    }
}

/// Tag tracking reads at most `max_tags` tags: a repository with thousands of CI tags costs a
/// bounded amount per cycle, and what lies beyond is said to be unseen.
#[test]
fn a_tag_list_longer_than_max_tags_is_cut_with_a_warning_and_tracking_chooses_among_the_tags_seen()
{
    let bed = TestBed::new("wild-max-tags");
    let origin = Registry::start();
    let front = FlakyServer::front(&origin);
    let mut digests = BTreeMap::new();
    for patch in 0..8 {
        let version = format!("1.0.{patch}");
        let image = front.image("app", &version);
        bed.build_app(&image, &version);
        digests.insert(version, push(&image));
    }
    bed.run(
        "web",
        &front.image("app", "1.0.0"),
        &[("tidewatch.track", "semver:^1")],
    );
    // Pages in lexical order, here also the order of the versions.
    front.fail_always(Requests::TagLists, Fault::PagedTags);
    let agent = bed.agent_for(&[RegistryEntry::new(&front.host()).insecure(true).max_tags(5)]);
    let mark = front.mark();

    let check = agent.check(&[]);

    check.assert_exit(0);
    let row = check.row("web");
    assert_eq!(row.status, Status::UpdateAvailable, "{check}");
    assert_eq!(
        row.available_digest.as_deref(),
        Some(digests["1.0.4"].as_str()),
        "the newest of the 5 tags seen (1.0.0 to 1.0.4), not 1.0.7; {check}"
    );
    assert!(
        check.outcome.stderr.contains("tag list cut at max_tags"),
        "a warning says tags were left unseen; {check}"
    );
    let pages = front
        .seen_since(mark)
        .into_iter()
        .filter(|seen| seen.user_agent.starts_with(TIDEWATCH_AGENT))
        .filter(|seen| seen.path == "/v2/app/tags/list")
        .count();
    assert_eq!(pages, 1, "one page of 5 holds all it needs; {check}");
}

/// A registry whose every tag page names a next one, on its own origin, would keep the agent
/// listing for ever: `max_tag_pages` ends it, and the tags read so far still count.
#[test]
fn a_tag_list_that_never_ends_stops_after_max_tag_pages_with_a_warning_and_the_row_resolves() {
    let bed = TestBed::new("wild-endless-tags");
    let origin = Registry::start();
    let front = FlakyServer::front(&origin);
    let current = front.image("app", "1.0.0");
    bed.build_app(&current, "1.0.0");
    push(&current);
    let newer = front.image("app", "1.1.0");
    bed.build_app(&newer, "1.1.0");
    let newer_digest = push(&newer);
    bed.run("web", &current, &[("tidewatch.track", "semver:^1")]);
    front.add_tag_list_headers(&[("Link", "</v2/app/tags/list?n=1000>; rel=\"next\"")]);
    let agent = bed.agent_for(&[RegistryEntry::new(&front.host())
        .insecure(true)
        .max_tag_pages(3)]);
    let mark = front.mark();

    let check = agent.check(&[]);

    check.assert_exit(0);
    let row = check.row("web");
    assert_eq!(row.status, Status::UpdateAvailable, "{check}");
    assert_eq!(
        row.available_digest.as_deref(),
        Some(newer_digest.as_str()),
        "{check}"
    );
    assert!(
        check
            .outcome
            .stderr
            .contains("tag list cut at max_tag_pages"),
        "a warning says the list was cut; {check}"
    );
    let pages = front
        .seen_since(mark)
        .into_iter()
        .filter(|seen| seen.user_agent.starts_with(TIDEWATCH_AGENT))
        .filter(|seen| seen.path == "/v2/app/tags/list")
        .count();
    assert_eq!(pages, 3, "max_tag_pages = 3; {check}");
    assert!(
        check.outcome.elapsed < MISBEHAVING_BOUND,
        "check took {:?}; {check}",
        check.outcome.elapsed
    );
}

#[test]
fn a_token_answer_larger_than_64_kib_is_refused_naming_the_registry() {
    let bed = TestBed::new("wild-huge-token");
    let tokens = TokenServer::start(&[(USER, PASSWORD)]);
    tokens.pad_answers(TIDEWATCH_AGENT, 128 * 1024);
    let registry = Registry::options().token_auth(&tokens).start();
    let pusher = pusher(&bed, &registry.host());
    let image = registry.image("app", "stable");
    publish_and_run(&bed, &image, "web", |image| pusher.push(image));
    let agent = bed
        .agent_for(&[RegistryEntry::new(&registry.host())
            .insecure(true)
            .username(USER)
            .password_file(&password_file(&bed, "registry-password", PASSWORD))])
        .env("DOCKER_CONFIG", empty_docker_config(&bed));

    let check = agent.check(&[]);

    check.assert_exit(1);
    let row = check.row("web");
    assert_eq!(row.status, Status::Error, "{check}");
    let detail = row.detail.as_deref().unwrap_or_default();
    assert!(
        detail.contains(&registry.host()) && detail.contains("65536 bytes"),
        "the error names the registry and the limit; {check}"
    );
}

#[test]
fn regex_tracking_looks_up_the_likely_newest_tags_only_and_several_at_a_time() {
    let bed = TestBed::new("wild-regex-bound");
    let origin = Registry::start();
    let front = FlakyServer::front(&origin);
    let mut digests = Vec::new();
    for build in 1..=5 {
        let image = front.image("app", &format!("build-{build}"));
        bed.build_app(&image, &format!("build-{build}"));
        digests.push(push(&image));
    }
    bed.run(
        "web",
        &front.image("app", "build-1"),
        &[("tidewatch.track", "regex:build-[0-9]+")],
    );
    front.delay_manifests(Duration::from_millis(400));
    front.reset_max_in_flight();
    let agent = bed.agent_for(&[RegistryEntry::new(&front.host())
        .insecure(true)
        .concurrency(4)
        .max_track_candidates(3)]);

    let check = agent.check(&[]);

    check.assert_exit(0);
    let row = check.row("web");
    assert_eq!(row.status, Status::UpdateAvailable, "{check}");
    assert_eq!(
        row.available_digest.as_deref(),
        Some(digests[4].as_str()),
        "build-5, built last, wins; {check}"
    );
    let looked_up: Vec<String> = front
        .seen()
        .into_iter()
        .filter(|seen| seen.method == "HEAD" && seen.user_agent.starts_with(TIDEWATCH_AGENT))
        .map(|seen| seen.path)
        .collect();
    for old in ["build-1", "build-2"] {
        assert!(
            !looked_up
                .iter()
                .any(|path| path.ends_with(&format!("/{old}"))),
            "{old} is beyond the 3 likely newest candidates: {looked_up:#?}; {check}"
        );
    }
    let most = front.max_in_flight();
    assert!(
        most >= 2,
        "candidates were looked up one at a time ({most} in flight) with concurrency 4; {check}"
    );
}

// --- basic auth and where credentials come from ----------------------------------------------

/// A basic-auth registry with `app:stable` at v2 while the bed's `web` runs v1.
fn basic_registry_with_an_update(bed: &TestBed) -> (Registry, Published) {
    let registry = Registry::options().htpasswd(&[(USER, PASSWORD)]).start();
    let pusher = pusher(bed, &registry.host());
    let image = registry.image("app", "stable");
    let published = publish_and_run(bed, &image, "web", |image| pusher.push(image));
    (registry, published)
}

/// Checks with `agent` and expects `web` to be `update_available` to `published.v2`: proof that
/// the authenticated HEAD went through.
fn assert_update_available(agent: &crate::support::Agent, published: &Published) {
    let check = agent.check(&[]);
    check.assert_exit(0);
    let row = check.row("web");
    assert_eq!(row.status, Status::UpdateAvailable, "{check}");
    assert_eq!(
        row.available_digest.as_deref(),
        Some(published.v2.as_str()),
        "{check}"
    );
    assert_eq!(
        row.current_digest.as_deref(),
        Some(published.v1.as_str()),
        "{check}"
    );
}

#[test]
fn basic_auth_works_with_username_and_password_file() {
    let bed = TestBed::new("wild-basic-file");
    let (registry, published) = basic_registry_with_an_update(&bed);
    let agent = bed
        .agent_for(&[RegistryEntry::new(&registry.host())
            .insecure(true)
            .username(USER)
            .password_file(&password_file(&bed, "registry-password", PASSWORD))])
        .env("DOCKER_CONFIG", empty_docker_config(&bed));
    assert_update_available(&agent, &published);
}

#[test]
fn basic_auth_works_with_username_and_password_env() {
    let bed = TestBed::new("wild-basic-env");
    let (registry, published) = basic_registry_with_an_update(&bed);
    let agent = bed
        .agent_for(&[RegistryEntry::new(&registry.host())
            .insecure(true)
            .username(USER)
            .password_env("TW_TEST_REGISTRY_PASSWORD")])
        .env("DOCKER_CONFIG", empty_docker_config(&bed))
        .env("TW_TEST_REGISTRY_PASSWORD", PASSWORD);
    assert_update_available(&agent, &published);
}

#[test]
fn basic_auth_works_with_an_auths_entry_in_docker_config_json() {
    let bed = TestBed::new("wild-basic-auths");
    let (registry, published) = basic_registry_with_an_update(&bed);
    let mut config = DockerConfig::new(&bed.dir().join("tidewatch-docker-config"));
    config.auth(&registry.host(), USER, PASSWORD);
    let agent = bed
        .agent_for(&[RegistryEntry::new(&registry.host()).insecure(true)])
        .env("DOCKER_CONFIG", config.dir());
    assert_update_available(&agent, &published);
}

#[test]
fn basic_auth_works_with_a_cred_helper_named_in_docker_config_json() {
    let bed = TestBed::new("wild-basic-helper");
    let (registry, published) = basic_registry_with_an_update(&bed);
    let helper = CredentialHelper::install(
        &bed.dir().join("helper"),
        "twtest",
        &registry.host(),
        USER,
        PASSWORD,
    );
    let mut config = DockerConfig::new(&bed.dir().join("tidewatch-docker-config"));
    config.cred_helper(&registry.host(), "twtest");
    let agent = bed
        .agent_for(&[RegistryEntry::new(&registry.host()).insecure(true)])
        .env("DOCKER_CONFIG", config.dir())
        .env("PATH", helper.path_env());

    assert_update_available(&agent, &published);
    let calls = helper.calls();
    assert!(
        calls
            .iter()
            .any(|call| call.starts_with("get ") && call.ends_with(&registry.host())),
        "docker-credential-twtest was not asked for {}: {calls:?}",
        registry.host()
    );
}

#[test]
fn basic_auth_works_with_a_creds_store_in_docker_config_json() {
    let bed = TestBed::new("wild-basic-store");
    let (registry, published) = basic_registry_with_an_update(&bed);
    let helper = CredentialHelper::install(
        &bed.dir().join("helper"),
        "twtest",
        &registry.host(),
        USER,
        PASSWORD,
    );
    let mut config = DockerConfig::new(&bed.dir().join("tidewatch-docker-config"));
    config.creds_store("twtest");
    let agent = bed
        .agent_for(&[RegistryEntry::new(&registry.host()).insecure(true)])
        .env("DOCKER_CONFIG", config.dir())
        .env("PATH", helper.path_env());

    assert_update_available(&agent, &published);
    assert!(
        !helper.calls().is_empty(),
        "the credsStore helper was never run"
    );
}

// --- refusals and secrecy -------------------------------------------------------------------

#[test]
fn a_refused_login_names_the_registry_the_repository_and_the_credential_source_tried() {
    let bed = TestBed::new("wild-refused");
    let tokens = TokenServer::start(&[(USER, PASSWORD)]);
    let token_registry = Registry::options().token_auth(&tokens).start();
    let basic_registry = Registry::options().htpasswd(&[(USER, PASSWORD)]).start();
    let helper_registry = Registry::options().htpasswd(&[(USER, PASSWORD)]).start();
    let anonymous_registry = Registry::options().htpasswd(&[(USER, PASSWORD)]).start();
    // (registry, repository, what the detail must name as the source tried). For credentials
    // from the Docker config the file is named; which entry of it (the helper) is a nicety.
    let cases = [
        (&token_registry, "token-repo", "password_file"),
        (&basic_registry, "basic-repo", "password_file"),
        (&helper_registry, "helper-repo", "config.json"),
        (&anonymous_registry, "anon-repo", ""),
    ];
    for (registry, repo, _) in &cases {
        let image = registry.image(repo, "stable");
        bed.build_app(&image, repo);
        let mut pusher = DockerConfig::new(&bed.dir().join(format!("pusher-{repo}")));
        pusher.auth(&registry.host(), USER, PASSWORD);
        pusher.push(&image);
        bed.run(repo, &image, &[]);
    }
    let wrong = password_file(&bed, "wrong-password", WRONG_PASSWORD);
    let helper = CredentialHelper::install(
        &bed.dir().join("helper"),
        "twtest",
        &helper_registry.host(),
        USER,
        WRONG_PASSWORD,
    );
    let mut config = DockerConfig::new(&bed.dir().join("tidewatch-docker-config"));
    config.cred_helper(&helper_registry.host(), "twtest");
    let agent = bed
        .agent_for(&[
            RegistryEntry::new(&token_registry.host())
                .insecure(true)
                .username(USER)
                .password_file(&wrong),
            RegistryEntry::new(&basic_registry.host())
                .insecure(true)
                .username(USER)
                .password_file(&wrong),
            RegistryEntry::new(&helper_registry.host()).insecure(true),
            RegistryEntry::new(&anonymous_registry.host()).insecure(true),
        ])
        .env("DOCKER_CONFIG", config.dir())
        .env("PATH", helper.path_env());

    let check = agent.check(&[]);

    check.assert_exit(1);
    for (registry, repo, source) in &cases {
        let row = check.row(repo);
        assert_eq!(row.status, Status::Error, "{check}");
        let detail = row.detail.as_deref().unwrap_or_default();
        assert!(
            detail.contains(&registry.host()),
            "the detail names the registry {}; {check}",
            registry.host()
        );
        assert!(
            detail.contains(repo),
            "the detail names the repository {repo}; {check}"
        );
        if source.is_empty() {
            assert!(
                detail.contains("anonymous") || detail.contains("no credentials"),
                "the detail says no credentials were tried; {check}"
            );
        } else {
            assert!(
                detail.contains(source),
                "the detail names the source tried, {source}; {check}"
            );
        }
    }
    let everything = format!("{}{}", check.outcome.stdout, check.outcome.stderr);
    assert!(
        !everything.contains(WRONG_PASSWORD),
        "the refused password was printed; {check}"
    );
}

#[test]
fn a_trace_level_run_never_prints_the_password_or_a_token() {
    let bed = TestBed::new("wild-trace");
    let tokens = TokenServer::start(&[(USER, PASSWORD)]);
    let token_registry = Registry::options().token_auth(&tokens).start();
    let basic_registry = Registry::options().htpasswd(&[(USER, PASSWORD)]).start();
    for (registry, name) in [(&token_registry, "tokened"), (&basic_registry, "basic")] {
        let image = registry.image("app", "stable");
        let mut pusher = DockerConfig::new(&bed.dir().join(format!("pusher-{name}")));
        pusher.auth(&registry.host(), USER, PASSWORD);
        publish_and_run(&bed, &image, name, |image| pusher.push(image));
    }
    let secret = password_file(&bed, "registry-password", PASSWORD);
    let agent = bed
        .agent_for(&[
            RegistryEntry::new(&token_registry.host())
                .insecure(true)
                .username(USER)
                .password_file(&secret),
            RegistryEntry::new(&basic_registry.host())
                .insecure(true)
                .username(USER)
                .password_file(&secret),
        ])
        .env("DOCKER_CONFIG", empty_docker_config(&bed))
        .env("RUST_LOG", "trace");

    let check = agent.check(&[]);

    check.assert_exit(0);
    for name in ["tokened", "basic"] {
        assert_eq!(
            check.row(name).status,
            Status::UpdateAvailable,
            "{name}: the authenticated check must have gone through; {check}"
        );
    }
    let issued: Vec<String> = tokens
        .requests_from(TIDEWATCH_AGENT)
        .into_iter()
        .filter_map(|request| request.token)
        .collect();
    assert!(!issued.is_empty(), "tidewatch was issued no token");
    let output = format!("{}{}", check.outcome.stdout, check.outcome.stderr);
    assert!(
        output.contains("TRACE"),
        "RUST_LOG=trace printed no trace lines; was it honoured?\n{output}"
    );
    let basic_header = STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let mut secrets = vec![
        ("the password", PASSWORD.to_owned()),
        ("the basic credentials", basic_header),
    ];
    for token in issued {
        // A token printed in part (cut by a log formatter) still leaks its signature.
        let signature = token.rsplit('.').next().unwrap_or_default().to_owned();
        secrets.push(("a token", token));
        secrets.push(("a token's signature", signature));
    }
    for (what, secret) in secrets {
        if let Some(at) = output.find(&secret) {
            let line_start = output[..at].rfind('\n').map_or(0, |n| n + 1);
            let line_end = output[at..].find('\n').map_or(output.len(), |n| at + n);
            panic!(
                "{what} was printed at trace level:\n{}",
                &output[line_start..line_end]
            );
        }
    }
}

// --- TLS with a private CA ------------------------------------------------------------------

#[test]
fn a_private_ca_registry_is_refused_without_ca_file_and_checked_with_it() {
    let bed = TestBed::new("wild-tls");
    let ca = TestCa::new("wild-tls");
    let registry = Registry::options().tls(&ca).start();
    let _trust = EngineTrust::install(&ca, &registry.host());
    let image = registry.image("app", "stable");
    let published = publish_and_run(&bed, &image, "web", push);
    let secure = || RegistryEntry::new(&registry.host()).insecure(false);

    let without = bed.agent_for(&[secure()]).check(&[]);

    without.assert_exit(1);
    let row = without.row("web");
    assert_eq!(row.status, Status::Error, "{without}");
    let detail = row.detail.as_deref().unwrap_or_default();
    assert!(
        detail.contains(&registry.host()),
        "the error names the host; {without}"
    );
    let lower = detail.to_lowercase();
    assert!(
        ["certificate", "tls", "issuer"]
            .iter()
            .any(|cause| lower.contains(cause)),
        "the error names a TLS cause; {without}"
    );

    let ca_file = ca.write_cert(&bed.dir().join("registry-ca.pem"));
    let with = bed.agent_for(&[secure().ca_file(&ca_file)]);
    assert_update_available(&with, &published);
}

#[test]
fn a_ca_file_is_trusted_for_its_own_registry_only() {
    let bed = TestBed::new("wild-tls-scope");
    // One company CA signs both registries' certificates; only one registry lists it.
    let ca = TestCa::new("wild-tls-scope");
    let listed = Registry::options().tls(&ca).start();
    let unlisted = Registry::options().tls(&ca).start();
    let mut trust = Vec::new();
    for (registry, name) in [(&listed, "listed"), (&unlisted, "unlisted")] {
        trust.push(EngineTrust::install(&ca, &registry.host()));
        let image = registry.image("app", "stable");
        bed.build_app(&image, name);
        push(&image);
        bed.run(name, &image, &[]);
    }
    let ca_file = ca.write_cert(&bed.dir().join("registry-ca.pem"));
    let agent = bed.agent_for(&[
        RegistryEntry::new(&listed.host())
            .insecure(false)
            .ca_file(&ca_file),
        RegistryEntry::new(&unlisted.host()).insecure(false),
    ]);

    let check = agent.check(&[]);

    check.assert_exit(1);
    assert_eq!(check.row("listed").status, Status::UpToDate, "{check}");
    let row = check.row("unlisted");
    assert_eq!(
        row.status,
        Status::Error,
        "{} has no ca_file, so its private CA is not trusted; {check}",
        unlisted.host()
    );
    assert!(
        row.detail
            .as_deref()
            .is_some_and(|detail| detail.contains(&unlisted.host())),
        "{check}"
    );
}

// --- rate limits, outages, garbage ----------------------------------------------------------

/// A plain registry behind a flaky front, `app:stable` at v2 while the bed's `web` runs v1,
/// everything pushed through the front.
fn fronted_registry_with_an_update(bed: &TestBed) -> (Registry, FlakyServer, Published) {
    let origin = Registry::start();
    let front = FlakyServer::front(&origin);
    let image = front.image("app", "stable");
    let published = publish_and_run(bed, &image, "web", push);
    (origin, front, published)
}

#[test]
fn a_rate_limited_registry_is_asked_again_after_retry_after_and_the_row_ends_update_available() {
    let bed = TestBed::new("wild-429-check");
    let (_origin, front, published) = fronted_registry_with_an_update(&bed);
    let healthy = Registry::start();
    let other = healthy.image("other", "stable");
    bed.build_app(&other, "other");
    push(&other);
    bed.run("other", &other, &[]);
    front.fail(
        Requests::Manifests,
        Fault::RateLimited { retry_after: 1 },
        2,
    );
    let agent = bed.agent(&[front.host(), healthy.host()]);
    let mark = front.mark();

    let check = agent.check(&[]);

    check.assert_exit(0);
    let row = check.row("web");
    assert_eq!(row.status, Status::UpdateAvailable, "{check}");
    assert_eq!(
        row.available_digest.as_deref(),
        Some(published.v2.as_str()),
        "{check}"
    );
    assert_eq!(check.row("other").status, Status::UpToDate, "{check}");
    // The lookups of the tag. On the containerd image store tidewatch then also asks about the
    // running digest (to tell a pulled image from a local build of it): not a retry.
    let heads: Vec<Seen> = front
        .seen_since(mark)
        .into_iter()
        .filter(|seen| seen.method == "HEAD" && seen.path == "/v2/app/manifests/stable")
        .collect();
    let statuses: Vec<Option<u16>> = heads.iter().map(|seen| seen.status).collect();
    assert_eq!(
        statuses,
        [Some(429), Some(429), Some(200)],
        "two refusals, then the answer; {heads:#?}\n{check}"
    );
    for pair in heads.windows(2) {
        let waited = pair[1]
            .at
            .duration_since(pair[0].at)
            .unwrap_or(Duration::ZERO);
        // Retry-After is whole seconds; a little slack for the clocks of two processes.
        assert!(
            waited >= Duration::from_millis(950),
            "asked again {waited:?} after a 429 with Retry-After: 1; {check}"
        );
    }
}

#[test]
fn while_a_registry_keeps_rate_limiting_no_container_is_touched() {
    let bed = TestBed::new("wild-429-update");
    let (_origin, front, _published) = fronted_registry_with_an_update(&bed);
    let container = bed.container_id("web");
    let running = bed.image_id("web");
    front.fail_always(Requests::Manifests, Fault::RateLimited { retry_after: 1 });
    let agent = bed.agent(&[front.host()]);
    let mark = front.mark();

    let update = agent.update(&[]);

    assert!(
        update.outcome.elapsed < MISBEHAVING_BOUND,
        "update took {:?}; {update}",
        update.outcome.elapsed
    );
    assert_ne!(
        update.row("web").status,
        Status::UpdateAvailable,
        "nothing is known while every answer is 429; {update}"
    );
    assert!(
        update
            .result("web")
            .is_none_or(|result| result.outcome != "updated"),
        "{update}"
    );
    assert_eq!(bed.container_id("web"), container, "web was replaced");
    assert_eq!(bed.image_id("web"), running, "web's image changed");
    assert!(bed.is_running("web"), "web was stopped");
    let pulled: Vec<_> = front
        .seen_since(mark)
        .into_iter()
        .filter(|seen| !seen.user_agent.starts_with(TIDEWATCH_AGENT))
        .filter(|seen| seen.method == "GET" && seen.path.contains("/manifests/sha256:"))
        .collect();
    assert!(
        pulled.is_empty(),
        "the engine pulled while the registry refused: {pulled:#?}"
    );
}

#[test]
fn after_503s_the_update_goes_through_and_nothing_is_pulled_before_the_registry_answers() {
    let bed = TestBed::new("wild-503-update");
    let (_origin, front, published) = fronted_registry_with_an_update(&bed);
    front.fail(Requests::Manifests, Fault::Unavailable, 2);
    let agent = bed.agent(&[front.host()]);

    let update = agent.update(&[]);

    assert_eq!(update.outcome.code, 0, "{update}");
    let result = update
        .result("web")
        .unwrap_or_else(|| panic!("web was not updated; {update}"));
    assert_eq!(result.outcome, "updated", "{update}");
    assert!(
        runs_digest(&bed, "web", &[front.repo("app")], &published.v2),
        "web does not run v2; {update}"
    );
    // The engine goes to the registry only once it answers again.
    let seen = front.seen();
    let first_fault = seen.iter().position(|seen| seen.faulted);
    let last_fault = seen.iter().rposition(|seen| seen.faulted);
    let (Some(first_fault), Some(last_fault)) = (first_fault, last_fault) else {
        panic!("the 503s were never sent: {seen:#?}");
    };
    let engine_meanwhile: Vec<_> = seen[first_fault..=last_fault]
        .iter()
        .filter(|seen| !seen.user_agent.starts_with(TIDEWATCH_AGENT))
        .collect();
    assert!(
        engine_meanwhile.is_empty(),
        "the engine was sent to the registry while it answered 503: {engine_meanwhile:#?}"
    );
    let v2_manifest = format!("/v2/app/manifests/{}", published.v2);
    assert!(
        seen[last_fault..]
            .iter()
            .any(|seen| seen.is_from_engine() && seen.path == v2_manifest),
        "the engine pulled v2 after the registry recovered: {seen:#?}"
    );
}

#[test]
fn registries_answering_500_or_garbage_fail_only_their_own_rows() {
    let bed = TestBed::new("wild-garbage");
    let healthy = Registry::start();
    let image = healthy.image("app", "stable");
    bed.build_app(&image, "healthy");
    push(&image);
    bed.run("healthy", &image, &[]);
    let faults = [
        ("error500", Fault::ServerError),
        ("not-http", Fault::NotHttp),
        ("html", Fault::HtmlPage),
    ];
    let mut fronts = Vec::new();
    for (name, fault) in faults {
        let origin = Registry::start();
        let front = FlakyServer::front(&origin);
        let image = front.image("app", "stable");
        bed.build_app(&image, name);
        push(&image);
        bed.run(name, &image, &[]);
        front.fail_always(Requests::All, fault);
        fronts.push((name, origin, front));
    }
    let mut hosts = vec![healthy.host()];
    hosts.extend(fronts.iter().map(|(_, _, front)| front.host()));

    let check = bed.agent(&hosts).check(&[]);

    check.assert_exit(1);
    assert_eq!(check.row("healthy").status, Status::UpToDate, "{check}");
    for (name, _, front) in &fronts {
        let row = check.row(name);
        assert_eq!(row.status, Status::Error, "{name}; {check}");
        assert!(
            row.detail
                .as_deref()
                .is_some_and(|detail| detail.contains(&front.host())),
            "the error row of {name} names its registry; {check}"
        );
    }
    assert!(
        check.outcome.elapsed < MISBEHAVING_BOUND,
        "check took {:?}; {check}",
        check.outcome.elapsed
    );
}

#[test]
fn rate_limit_remaining_is_shown_in_the_rows_detail() {
    let bed = TestBed::new("wild-ratelimit-header");
    let (_origin, front, _published) = fronted_registry_with_an_update(&bed);
    front.add_manifest_headers(&[
        ("RateLimit-Limit", "100;w=21600"),
        ("RateLimit-Remaining", "76;w=21600"),
    ]);

    let check = bed.agent(&[front.host()]).check(&[]);

    check.assert_exit(0);
    let row = check.row("web");
    assert_eq!(row.status, Status::UpdateAvailable, "{check}");
    assert!(
        row.detail
            .as_deref()
            .is_some_and(|detail| detail.contains("76")),
        "the detail shows the 76 pulls remaining; {check}"
    );
}

#[test]
fn a_registry_that_says_no_pulls_remain_is_not_asked_again_in_that_cycle() {
    let bed = TestBed::new("wild-ratelimit-low");
    let origin = Registry::start();
    let front = FlakyServer::front(&origin);
    for repo in ["first", "second", "third"] {
        let image = front.image(repo, "stable");
        bed.build_app(&image, repo);
        push(&image);
        bed.run(repo, &image, &[]);
    }
    front.add_manifest_headers(&[
        ("RateLimit-Limit", "100;w=21600"),
        ("RateLimit-Remaining", "0;w=21600"),
    ]);
    // One request at a time, so the first answer is read before any other is sent.
    let agent = bed.agent_for(&[RegistryEntry::new(&front.host())
        .insecure(true)
        .concurrency(1)]);
    let mark = front.mark();

    let check = agent.check(&[]);

    let heads: Vec<_> = front
        .seen_since(mark)
        .into_iter()
        .filter(|seen| seen.method == "HEAD" && seen.path.contains("/manifests/"))
        .collect();
    assert_eq!(
        heads.len(),
        1,
        "after `RateLimit-Remaining: 0` the other references wait; {check}"
    );
    let deferred: Vec<_> = check
        .rows
        .iter()
        .filter(|row| row.available_digest.is_none())
        .collect();
    assert_eq!(deferred.len(), 2, "two rows deferred; {check}");
    for row in deferred {
        assert_ne!(row.status, Status::UpToDate, "{check}");
        assert!(
            row.detail
                .as_deref()
                .is_some_and(|detail| !detail.is_empty()),
            "a deferred row says why; {check}"
        );
    }
}

#[test]
fn concurrency_bounds_the_requests_in_flight_to_one_registry() {
    let bed = TestBed::new("wild-concurrency");
    let origin = Registry::start();
    let front = FlakyServer::front(&origin);
    let repos = ["one", "two", "three", "four", "five"];
    for repo in repos {
        let image = front.image(repo, "stable");
        bed.build_app(&image, repo);
        push(&image);
        bed.run(repo, &image, &[]);
    }
    front.delay_manifests(Duration::from_millis(500));
    front.reset_max_in_flight();
    let agent = bed.agent_for(&[RegistryEntry::new(&front.host())
        .insecure(true)
        .concurrency(2)]);

    let check = agent.check(&[]);

    check.assert_exit(0);
    assert!(
        check.rows.iter().all(|row| row.status == Status::UpToDate),
        "{check}"
    );
    let most = front.max_in_flight();
    eprintln!("most manifest requests in flight with concurrency = 2: {most}");
    assert!(
        (1..=2).contains(&most),
        "{most} requests were in flight at once with concurrency = 2; {check}"
    );
}

// --- mirrors --------------------------------------------------------------------------------

#[test]
fn an_update_pulls_through_a_lagging_mirror_and_moves_to_the_origins_digest() {
    let bed = TestBed::new("wild-mirror");
    let origin = Registry::start();
    // The mirror reaches the origin through a front, so its tag lookups can be cut while
    // digests still pass: that is what makes its cached tag lag.
    let link = FlakyServer::front(&origin);
    let mirror = Registry::options().mirror_of(&link.url()).start();
    let image = origin.image("app", "stable");
    bed.build_app(&image, "1");
    let v1 = push(&image);
    bed.run("web", &image, &[]);
    assert_eq!(
        mirror.manifest_digest("app", "stable"),
        v1,
        "mirror caches v1"
    );

    // The server never had v2: CI built it elsewhere. Its tag still names v1.
    let v2 = publish_from_elsewhere(&bed, &image, "2", push);
    link.fail_always(Requests::ManifestsByTag, Fault::ServerError);
    assert_eq!(
        mirror.manifest_digest("app", "stable"),
        v1,
        "precondition: the mirror lags"
    );
    assert_eq!(origin.manifest_digest("app", "stable"), v2, "precondition");
    // The engine's pull of v2 goes to the mirror, which answers it. Docker's classic store GETs
    // the manifest; the containerd store resolves the digest with a HEAD and then GETs only
    // what its content store lacks, which may still hold v2's blobs from the build here.
    let v2_manifest = format!("/v2/app/manifests/{v2}");
    let v2_asked = || {
        mirror
            .requests()
            .iter()
            .filter(|request| {
                request.is_from_engine()
                    && ["GET", "HEAD"].contains(&request.method.as_str())
                    && request.uri == v2_manifest
                    && request.status == Some(200)
            })
            .count()
    };
    let v2_asked_before = v2_asked();
    let agent = bed.agent_for(&[
        RegistryEntry::new(&origin.host())
            .insecure(true)
            .mirror(&[mirror.host()]),
        RegistryEntry::new(&mirror.host()).insecure(true),
    ]);

    let update = agent.update(&[]);

    assert_eq!(update.outcome.code, 0, "{update}");
    let result = update
        .result("web")
        .unwrap_or_else(|| panic!("web was not updated; {update}"));
    assert_eq!(result.outcome, "updated", "{update}");
    assert_eq!(result.to_digest.as_deref(), Some(v2.as_str()), "{update}");
    assert!(
        runs_digest(&bed, "web", &[origin.repo("app"), mirror.repo("app")], &v2),
        "web does not run the origin's v2; {update}"
    );
    assert!(
        v2_asked() > v2_asked_before,
        "v2 was not pulled through the mirror; mirror requests: {:#?}",
        mirror.requests()
    );

    let after = agent.check(&[]);
    assert_eq!(
        after.row("web").status,
        Status::UpToDate,
        "after the update through the mirror, web is up to date; {after}"
    );
}
