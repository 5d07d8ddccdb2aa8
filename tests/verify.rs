//! `[[verify]]`: a new digest is pulled only when a cosign signature that the rule trusts names
//! it. Signatures are made here (a key pair generated per test) and pushed to the real test
//! registry in cosign's layout.

use std::time::Duration;

use serde_json::Value;

use crate::support::cosign::{
    self, keyed_bundle, keyed_rule, keyless_bundle, payload, push_bundle, push_signatures,
    referrers_tag, statement, trusted_root, Fulcio, Rekor, SigLayer, Signer,
};
use crate::support::receiver::{announced, Receiver};
use crate::support::{
    push, settings, with_swarm_settings, Agent, Registry, Request, Status, TestBed, Update,
    Updater, CYCLE_FINISHED, QUICK_STOP,
};

/// How long a container may take to serve its first page after `docker run`.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the agent in its container may take to notice a push and act on it.
const PICK_UP: Duration = Duration::from_secs(60);

fn page(version: &str) -> String {
    format!("tidewatch test app version {version}")
}

/// A registry with `app:stable` at v1, container `web` serving it, v2 pushed (unsigned), and
/// an agent.toml with `rule` appended.
struct Scene {
    registry: Registry,
    /// `check` with the same agent.toml as `updater`.
    agent: Agent,
    updater: Updater,
    old: String,
    v1: String,
    v2: String,
}

fn scene(bed: &TestBed, rule: impl FnOnce(&Registry) -> String) -> Scene {
    let registry = Registry::start();
    let image = registry.image("app", "stable");
    bed.build_app(&image, "1");
    let v1 = push(&image);
    let old = bed.run_with("web", QUICK_STOP, &image, &[], &[]);
    bed.wait_until_serving("web", &page("1"), START_TIMEOUT);
    let agent = bed.agent(&[registry.host()]);
    let updater = bed.updater_of(&agent);
    settings::append(&updater, &rule(&registry));
    bed.build_app(&image, "2");
    let v2 = push(&image);
    Scene {
        registry,
        agent,
        updater,
        old,
        v1,
        v2,
    }
}

/// The row `update --json` printed for the bed's container `name`.
fn row<'a>(update: &'a Update, updater: &Updater, name: &str) -> &'a Value {
    let full = updater.full(name);
    update
        .report
        .containers
        .iter()
        .find(|row| row["container"] == full.as_str())
        .unwrap_or_else(|| panic!("no row for {full}: {update:#?}"))
}

fn field<'a>(row: &'a Value, key: &str) -> &'a str {
    row[key].as_str().unwrap_or_default()
}

/// A key file for `signer` in the bed's directory.
fn key_file(bed: &TestBed, signer: &Signer, name: &str) -> std::path::PathBuf {
    signer.write_public(bed.dir(), name)
}

#[test]
fn a_digest_signed_with_the_rule_s_key_is_updated() {
    let bed = TestBed::new("verify-signed");
    let signer = Signer::generate();
    let key = key_file(&bed, &signer, "cosign.pub");
    let s = scene(&bed, |r| keyed_rule(r, "app", &key, ""));
    cosign::sign(&s.registry, "app", &s.v2, &signer);

    let update = s.updater.update(&[]);

    assert_updated_verified(&bed, &s, &update);
}

/// Checks that `update` replaced web with v2, its signature verified.
fn assert_updated_verified(bed: &TestBed, s: &Scene, update: &Update) {
    update.assert_exit(0);
    let result = update.result("web");
    assert_eq!(result.outcome, "updated", "{update:#?}");
    assert_eq!(result.to_digest.as_deref(), Some(s.v2.as_str()));
    assert_eq!(
        field(row(update, &s.updater, "web"), "signature"),
        "verified"
    );
    assert!(bed.serves("web").contains(&page("2")));
}

/// Runs `update` and checks that web was left alone with an `error` row naming the rule and
/// `why`.
fn assert_blocked(bed: &TestBed, s: &Scene, why: &str) -> Update {
    let update = s.updater.update(&[]);
    assert!(
        update.report.results.is_empty(),
        "nothing applied: {update:#?}"
    );
    assert!(
        update.report.plan.steps.is_empty(),
        "nothing planned: {update:#?}"
    );
    let row = row(&update, &s.updater, "web");
    assert_eq!(field(row, "status"), "error", "{row}");
    assert_eq!(field(row, "signature"), "rejected", "{row}");
    let detail = field(row, "detail");
    assert!(
        detail.starts_with("blocked by verify rule 1 (") && detail.ends_with(why),
        "names the rule and why ({why}): {detail}"
    );
    assert_eq!(field(row, "available_digest"), s.v2, "{row}");
    assert_eq!(
        bed.container_id("web"),
        s.old,
        "the old container is untouched"
    );
    assert!(bed.serves("web").contains(&page("1")));
    update
}

#[test]
fn an_unsigned_digest_is_not_pulled_and_each_cycle_asks_once_more_for_its_sig_tag() {
    let bed = TestBed::new("verify-unsigned");
    let signer = Signer::generate();
    let key = key_file(&bed, &signer, "cosign.pub");
    let s = scene(&bed, |r| keyed_rule(r, "app", &key, ""));
    let sig = format!("/v2/app/manifests/{}", cosign::sig_tag(&s.v2));
    let referrers_api = format!("/v2/app/referrers/{}", s.v2);
    let referrers = format!("/v2/app/manifests/{}", referrers_tag(&s.v2));
    let before = s.registry.access_log().len();

    let first = assert_blocked(&bed, &s, "no signature");
    let second = assert_blocked(&bed, &s, "no signature");

    // A rejection is an error row, so the run exits 1, but nothing loops: each cycle is one
    // HEAD of the tag, one GET of the `.sig` tag, one of the referrers API (distribution 2.8
    // has none) and one of the referrers tag schema's index, each a 404, and no pull.
    first.assert_exit(1);
    second.assert_exit(1);
    let requests: Vec<_> = s.registry.access_log().split_off(before);
    for uri in [&sig, &referrers_api, &referrers] {
        let gets: Vec<_> = requests
            .iter()
            .filter(|r| r.method == "GET" && r.uri == *uri)
            .collect();
        assert_eq!(gets.len(), 2, "one GET {uri} per cycle: {requests:#?}");
        assert!(gets.iter().all(|r| r.status == Some(404)), "{gets:#?}");
    }
    let heads = s.registry.manifest_requests("HEAD", "app");
    assert!(heads >= 2, "{requests:#?}");
    assert!(
        !requests.iter().any(|r| r.is_from_engine()),
        "the engine pulled nothing: {requests:#?}"
    );
    // Beside the tag's HEAD, the containerd image store makes detection HEAD the digest the
    // container runs as well; either way nothing but manifest HEADs and the signature lookups.
    assert!(
        requests
            .iter()
            .all(|r| [&sig, &referrers_api, &referrers].contains(&&r.uri)
                || (r.method == "HEAD" && r.uri.starts_with("/v2/app/manifests/"))),
        "manifest HEADs and the signature lookups per cycle, nothing else: {requests:#?}"
    );
}

#[test]
fn a_digest_signed_by_another_key_is_not_pulled() {
    let bed = TestBed::new("verify-other-key");
    let (ours, theirs) = (Signer::generate(), Signer::generate());
    let key = key_file(&bed, &ours, "cosign.pub");
    let s = scene(&bed, |r| keyed_rule(r, "app", &key, ""));
    cosign::sign(&s.registry, "app", &s.v2, &theirs);

    let update = assert_blocked(&bed, &s, "signed by another key");
    update.assert_exit(1);
}

#[test]
fn a_signature_of_another_digest_pushed_under_this_digest_s_tag_is_not_accepted() {
    let bed = TestBed::new("verify-other-digest");
    let signer = Signer::generate();
    let key = key_file(&bed, &signer, "cosign.pub");
    let s = scene(&bed, |r| keyed_rule(r, "app", &key, ""));
    // A genuine signature of v1, replayed as v2's.
    let replayed = SigLayer::keyed(&signer, payload(&s.registry.repo("app"), &s.v1));
    push_signatures(&s.registry, "app", &s.v2, &[replayed]);

    let update = assert_blocked(&bed, &s, "signature is for another digest");
    update.assert_exit(1);
}

#[test]
fn in_warn_mode_an_unsigned_digest_is_updated_and_the_result_says_so() {
    let bed = TestBed::new("verify-warn");
    let signer = Signer::generate();
    let key = key_file(&bed, &signer, "cosign.pub");
    let s = scene(&bed, |r| keyed_rule(r, "app", &key, "mode = \"warn\"\n"));

    let update = s.updater.update(&[]);

    update.assert_exit(0);
    let result = update.result("web");
    assert_eq!(result.outcome, "updated", "{update:#?}");
    assert!(
        result.detail.starts_with("UNVERIFIED (verify rule 1 (")
            && result.detail.contains("is in warn mode): no signature"),
        "{}",
        result.detail
    );
    let row = row(&update, &s.updater, "web");
    assert_eq!(field(row, "signature"), "unverified", "{row}");
    assert!(bed.serves("web").contains(&page("2")));
}

#[test]
fn check_shows_whether_an_available_digest_is_verified() {
    let bed = TestBed::new("verify-check");
    let signer = Signer::generate();
    let key = key_file(&bed, &signer, "cosign.pub");
    let s = scene(&bed, |r| keyed_rule(r, "app", &key, ""));

    let unsigned = s.agent.check(&[]);
    cosign::sign(&s.registry, "app", &s.v2, &signer);
    let signed = s.agent.check(&[]);

    let row = unsigned.row("web");
    assert_eq!(row.status, Status::Error, "{unsigned}");
    assert_eq!(row.signature.as_deref(), Some("rejected"), "{unsigned}");
    let row = signed.row("web");
    assert_eq!(row.status, Status::UpdateAvailable, "{signed}");
    assert_eq!(row.signature.as_deref(), Some("verified"), "{signed}");
    assert_eq!(bed.container_id("web"), s.old, "check changes nothing");
}

#[test]
fn a_digest_signed_two_cycles_late_is_updated_on_the_next_cycle_after_one_blocked_notice() {
    let bed = TestBed::new("verify-signed-late");
    let signer = Signer::generate();
    let key = key_file(&bed, &signer, "cosign.pub");
    let receiver = Receiver::start();
    let s = scene(&bed, |r| {
        keyed_rule(r, "app", &key, "")
            + &format!(
                "[[notify]]\nkind = \"webhook\"\nurl = {:?}\n",
                receiver.url()
            )
    });

    let first = assert_blocked(&bed, &s, "no signature");
    let second = assert_blocked(&bed, &s, "no signature");
    cosign::sign(&s.registry, "app", &s.v2, &signer);
    let third = s.updater.update(&[]);

    first.assert_exit(1);
    second.assert_exit(1);
    third.assert_exit(0);
    assert_eq!(third.result("web").outcome, "updated", "{third:#?}");
    assert!(bed.serves("web").contains(&page("2")));
    // Each run waited for its notifications before it exited.
    let bodies = receiver.bodies();
    let events: Vec<Vec<(String, String)>> = bodies.iter().map(|b| announced(b)).collect();
    let web = bed.name("web");
    assert_eq!(
        events,
        [
            vec![(web.clone(), "blocked".to_owned())],
            vec![(web.clone(), "updated".to_owned())],
        ],
        "one blocked notice, not one per cycle, then the update: {bodies:#?}"
    );
    assert!(
        bodies[0].contains(&s.v2) && bodies[0].contains("no signature"),
        "{}",
        bodies[0]
    );
    let (history, rows) = s.updater.history("web");
    assert_eq!(history.code, 0, "{history:?}");
    let outcomes: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.outcome.as_str(), r.to_digest.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [("updated", s.v2.as_str()), ("blocked", s.v2.as_str())],
        "one history row for the blocked digest, newest first: {rows:#?}"
    );
}

const WORKFLOW: &str = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
const ACTIONS: &str = "https://token.actions.githubusercontent.com";

/// A keyless `[[verify]]` table for `repo` trusting `root` (a trusted_root.json written into
/// the bed), with `identity_line` (`identity = ...` or `identity_regex = ...`) and `extra`.
fn keyless_rule(
    bed: &TestBed,
    registry: &Registry,
    root: &str,
    identity_line: &str,
    extra: &str,
) -> String {
    let path = bed.dir().join("trusted_root.json");
    std::fs::write(&path, root).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    format!(
        "[[verify]]\nimages = [{:?}]\n{identity_line}\nissuer = {ACTIONS:?}\ntrusted_root = {path:?}\n{extra}",
        registry.repo("app"),
    )
}

/// Another repository's workflow, signing with a genuine certificate of its own.
const FORK: &str = "https://github.com/mallory/app/.github/workflows/release.yml@refs/heads/main";

/// A scene whose rule trusts keyless signatures by [`WORKFLOW`] under a new test CA and log.
fn keyless_scene(bed: &TestBed) -> (Scene, Fulcio, Rekor) {
    let (fulcio, rekor) = (Fulcio::new(), Rekor::new());
    let root = trusted_root(&fulcio, Some(&rekor));
    let s = scene(bed, |r| {
        keyless_rule(bed, r, &root, &format!("identity = {WORKFLOW:?}"), "")
    });
    (s, fulcio, rekor)
}

/// Signs v2 keyless as `identity`, with a certificate from `fulcio` and the log's bundle from
/// `rekor` when given.
fn sign_keyless(s: &Scene, fulcio: &Fulcio, rekor: Option<&Rekor>, identity: &str) {
    let layer = SigLayer::keyless(
        fulcio,
        rekor,
        identity,
        ACTIONS,
        payload(&s.registry.repo("app"), &s.v2),
    );
    push_signatures(&s.registry, "app", &s.v2, &[layer]);
}

#[test]
fn a_keyless_signature_from_the_workflow_under_the_trusted_root_is_updated() {
    let bed = TestBed::new("verify-keyless");
    let (fulcio, rekor) = (Fulcio::new(), Rekor::new());
    let root = trusted_root(&fulcio, Some(&rekor));
    let s = scene(&bed, |r| {
        keyless_rule(
            &bed,
            r,
            &root,
            "identity_regex = \"^https://github.com/acme/app/\\\\.github/workflows/.*@refs/heads/main$\"",
            "",
        )
    });
    sign_keyless(&s, &fulcio, Some(&rekor), WORKFLOW);

    let update = s.updater.update(&[]);

    assert_updated_verified(&bed, &s, &update);
}

#[test]
fn a_keyless_signature_from_another_workflow_is_not_pulled() {
    let bed = TestBed::new("verify-keyless-identity");
    let (s, fulcio, rekor) = keyless_scene(&bed);
    sign_keyless(&s, &fulcio, Some(&rekor), FORK);

    let update = assert_blocked(&bed, &s, "identity does not match");
    update.assert_exit(1);
}

#[test]
fn a_keyless_signature_from_another_ca_or_without_its_log_entry_is_not_pulled() {
    let bed = TestBed::new("verify-keyless-untrusted");
    let (s, fulcio, rekor) = keyless_scene(&bed);

    sign_keyless(&s, &Fulcio::new(), Some(&rekor), WORKFLOW);
    let other_ca = s.updater.update(&[]);
    sign_keyless(&s, &fulcio, None, WORKFLOW);
    let unlogged = s.updater.update(&[]);
    sign_keyless(&s, &fulcio, Some(&Rekor::new()), WORKFLOW);
    let other_log = s.updater.update(&[]);
    // A genuine log entry, but of another signing: replayed to date this one.
    let keyless = |p| SigLayer::keyless(&fulcio, Some(&rekor), WORKFLOW, ACTIONS, p);
    let logged = keyless(payload(&s.registry.repo("app"), &s.v1));
    let mut replayed = keyless(payload(&s.registry.repo("app"), &s.v2));
    let bundle = "dev.sigstore.cosign/bundle".to_owned();
    replayed
        .annotations
        .insert(bundle.clone(), logged.annotations[&bundle].clone());
    push_signatures(&s.registry, "app", &s.v2, &[replayed]);
    let other_entry = s.updater.update(&[]);

    for (update, why) in [
        (&other_ca, "not issued by the trusted root"),
        (&unlogged, "no transparency log entry"),
        (&other_log, "a log the root does not name"),
        (&other_entry, "the log entry is for another signature"),
    ] {
        assert!(update.report.results.is_empty(), "{update:#?}");
        let row = row(update, &s.updater, "web");
        assert_eq!(field(row, "signature"), "rejected", "{row}");
        let detail = field(row, "detail");
        assert!(
            detail.contains("certificate not trusted") && detail.contains(why),
            "{why}: {detail}"
        );
    }
    assert_eq!(bed.container_id("web"), s.old);
}

#[test]
fn with_tlog_off_a_keyless_signature_needs_no_log_entry() {
    let bed = TestBed::new("verify-keyless-no-tlog");
    let fulcio = Fulcio::new();
    let root = trusted_root(&fulcio, None);
    let s = scene(&bed, |r| {
        keyless_rule(
            &bed,
            r,
            &root,
            &format!("identity = {WORKFLOW:?}"),
            "tlog = false\n",
        )
    });
    sign_keyless(&s, &fulcio, None, WORKFLOW);

    let update = s.updater.update(&[]);

    update.assert_exit(0);
    assert_eq!(update.result("web").outcome, "updated", "{update:#?}");
}

#[test]
fn a_swarm_service_is_rolled_only_to_a_signed_digest() {
    let bed = TestBed::new("verify-swarm");
    let services = bed.services();
    let signer = Signer::generate();
    let key = key_file(&bed, &signer, "cosign.pub");
    let registry = Registry::start();
    let image = registry.image("app", "stable");
    bed.build_app(&image, "1");
    let v1 = push(&image);
    services.create("web", 1, &image, &[], &[]);
    bed.build_app(&image, "2");
    let v2 = push(&image);
    let updater = bed.updater(&[registry.host()]);
    with_swarm_settings(updater.config());
    settings::append(&updater, &keyed_rule(&registry, "app", &key, ""));

    let blocked = updater.update(&[]);
    let pinned_after_blocked = services.image("web");
    cosign::sign(&registry, "app", &v2, &signer);
    let signed = updater.update(&[]);

    assert!(blocked.report.results.is_empty(), "{blocked:#?}");
    let row = row(&blocked, &updater, "web");
    assert_eq!(field(row, "signature"), "rejected", "{row}");
    assert!(field(row, "detail").ends_with("no signature"), "{row}");
    assert!(
        pinned_after_blocked.ends_with(&v1),
        "the service stays on v1: {pinned_after_blocked}"
    );
    signed.assert_exit(0);
    assert_eq!(signed.result("web").outcome, "updated", "{signed:#?}");
    assert!(
        services.image("web").ends_with(&v2),
        "{}",
        services.image("web")
    );
}

#[test]
fn the_agent_replaces_itself_only_with_a_signed_image() {
    let bed = TestBed::new("verify-self-update");
    let signer = Signer::generate();
    let key = key_file(&bed, &signer, "cosign.pub");
    let registry = Registry::start();
    let agent_image = registry.image("tidewatch", "latest");
    bed.build_agent_image(&agent_image);
    push(&agent_image);
    let mount = format!("{}:/etc/tidewatch/cosign.pub:ro", key.display());
    let rule = format!(
        "\n[[verify]]\nimages = [{:?}]\nkey = \"/etc/tidewatch/cosign.pub\"\n",
        registry.repo("tidewatch")
    );
    let agent = bed.run_agent_configured(
        "agent",
        &agent_image,
        &[registry.host()],
        true,
        &["-v", &mount],
        &rule,
    );
    agent.wait_for_log(CYCLE_FINISHED, 1, PICK_UP);
    let old = bed.container_id("agent");

    bed.rebuild_agent_image(&agent_image, "2");
    let v2 = push(&agent_image);
    agent.wait_for_next_cycle(PICK_UP);
    agent.wait_for_next_cycle(PICK_UP);
    let kept = bed.container_id("agent");
    let logs = agent.logs();
    cosign::sign(&registry, "tidewatch", &v2, &signer);
    let new = bed.wait_for_replacement("agent", &old, PICK_UP);

    assert_eq!(kept, old, "not replaced while unsigned; log:\n{logs}");
    assert!(
        logs.contains("blocked by verify rule 1") && logs.contains("no signature"),
        "each cycle says why; log:\n{logs}"
    );
    assert_ne!(new, old);
}

/// Runs the daemon, monitor only (so the new digest stays available cycle after cycle), for
/// three cycles; returns the registry's requests meanwhile and how many cycles' HEADs it saw.
fn three_daemon_cycles(s: &Scene) -> (Vec<Request>, usize) {
    let config = std::fs::read_to_string(s.updater.config()).unwrap();
    let monitor_only = config.replacen("[watch]\n", "[watch]\npolicy = \"notify\"\n", 1);
    std::fs::write(s.updater.config(), monitor_only).unwrap();
    let before = s.registry.access_log().len();

    let mut daemon = s.updater.spawn_run();
    daemon.wait_for_log(CYCLE_FINISHED, 3, Duration::from_secs(60));
    daemon.terminate(Duration::from_secs(30));

    let requests: Vec<_> = s.registry.access_log().split_off(before);
    let heads = requests.iter().filter(|r| r.method == "HEAD").count();
    assert!(heads >= 3, "one HEAD a cycle: {requests:#?}");
    (requests, heads)
}

#[test]
fn a_verified_digest_is_not_looked_up_again_by_the_daemon() {
    let bed = TestBed::new("verify-cache");
    let signer = Signer::generate();
    let key = key_file(&bed, &signer, "cosign.pub");
    let s = scene(&bed, |r| keyed_rule(r, "app", &key, ""));
    cosign::sign(&s.registry, "app", &s.v2, &signer);
    let sig = format!("/v2/app/manifests/{}", cosign::sig_tag(&s.v2));

    let (requests, heads) = three_daemon_cycles(&s);

    let sig_gets = requests.iter().filter(|r| r.uri == sig).count();
    assert_eq!(
        sig_gets, 1,
        "the .sig tag is read once over {heads} cycles: {requests:#?}"
    );
    assert_eq!(bed.container_id("web"), s.old, "monitor only");
}

#[test]
fn a_digest_verified_by_its_bundle_is_not_looked_up_again_by_the_daemon() {
    let bed = TestBed::new("verify-bundle-cache");
    let signer = Signer::generate();
    let key = key_file(&bed, &signer, "cosign.pub");
    let s = scene(&bed, |r| keyed_rule(r, "app", &key, ""));
    let bundle = keyed_bundle(&signer, &statement(&s.registry.repo("app"), &s.v2));
    push_bundle(&s.registry, "app", &s.v2, bundle);
    let lookups = [
        format!("/v2/app/manifests/{}", cosign::sig_tag(&s.v2)),
        format!("/v2/app/referrers/{}", s.v2),
        format!("/v2/app/manifests/{}", referrers_tag(&s.v2)),
    ];

    let (requests, heads) = three_daemon_cycles(&s);

    for uri in &lookups {
        let gets = requests.iter().filter(|r| r.uri == *uri).count();
        assert_eq!(
            gets, 1,
            "{uri} is read once over {heads} cycles: {requests:#?}"
        );
    }
}

#[test]
fn a_cosign_3_bundle_signed_with_the_rule_s_key_is_found_through_the_referrers_tag_and_updated() {
    let bed = TestBed::new("verify-bundle");
    let signer = Signer::generate();
    let key = key_file(&bed, &signer, "cosign.pub");
    let s = scene(&bed, |r| keyed_rule(r, "app", &key, ""));
    let bundle = keyed_bundle(&signer, &statement(&s.registry.repo("app"), &s.v2));
    let artifact = push_bundle(&s.registry, "app", &s.v2, bundle);
    let before = s.registry.access_log().len();

    let update = s.updater.update(&[]);

    assert_updated_verified(&bed, &s, &update);
    // The referrers API answered 404 (distribution 2.8), so the tag schema's index was read,
    // then the artifact manifest it lists.
    let requests: Vec<_> = s.registry.access_log().split_off(before);
    let status = |uri: String| {
        requests
            .iter()
            .find(|r| r.method == "GET" && r.uri == uri)
            .and_then(|r| r.status)
    };
    assert_eq!(
        status(format!("/v2/app/referrers/{}", s.v2)),
        Some(404),
        "{requests:#?}"
    );
    assert_eq!(
        status(format!("/v2/app/manifests/{}", referrers_tag(&s.v2))),
        Some(200),
        "{requests:#?}"
    );
    assert_eq!(
        status(format!("/v2/app/manifests/{artifact}")),
        Some(200),
        "{requests:#?}"
    );
}

#[test]
fn a_bundle_whose_statement_names_another_digest_is_not_accepted() {
    let bed = TestBed::new("verify-bundle-other-digest");
    let signer = Signer::generate();
    let key = key_file(&bed, &signer, "cosign.pub");
    let s = scene(&bed, |r| keyed_rule(r, "app", &key, ""));
    // A genuine bundle of v1, attached to v2 as its referrer.
    let bundle = keyed_bundle(&signer, &statement(&s.registry.repo("app"), &s.v1));
    push_bundle(&s.registry, "app", &s.v2, bundle);

    let update = assert_blocked(&bed, &s, "signature is for another digest");
    update.assert_exit(1);
}

#[test]
fn a_keyless_bundle_from_another_workflow_is_not_pulled_and_one_from_the_workflow_is() {
    let bed = TestBed::new("verify-bundle-keyless");
    let (s, fulcio, rekor) = keyless_scene(&bed);
    let v2 = statement(&s.registry.repo("app"), &s.v2);
    push_bundle(
        &s.registry,
        "app",
        &s.v2,
        keyless_bundle(&fulcio, &rekor, FORK, ACTIONS, &v2),
    );

    let blocked = assert_blocked(&bed, &s, "identity does not match");
    push_bundle(
        &s.registry,
        "app",
        &s.v2,
        keyless_bundle(&fulcio, &rekor, WORKFLOW, ACTIONS, &v2),
    );
    let signed = s.updater.update(&[]);

    blocked.assert_exit(1);
    assert_updated_verified(&bed, &s, &signed);
}

#[test]
fn with_a_signature_repository_the_signatures_are_looked_up_there_only() {
    let bed = TestBed::new("verify-signature-repository");
    let signer = Signer::generate();
    let key = key_file(&bed, &signer, "cosign.pub");
    let s = scene(&bed, |r| {
        keyed_rule(
            r,
            "app",
            &key,
            &format!("signature_repository = {:?}\n", r.repo("signatures")),
        )
    });

    // Beside the image, where this rule does not look.
    cosign::sign(&s.registry, "app", &s.v2, &signer);
    let beside = assert_blocked(&bed, &s, "no signature");
    // Where CI put it with COSIGN_REPOSITORY set.
    cosign::sign(&s.registry, "signatures", &s.v2, &signer);
    let before = s.registry.access_log().len();
    let update = s.updater.update(&[]);

    beside.assert_exit(1);
    assert_updated_verified(&bed, &s, &update);
    let requests: Vec<_> = s.registry.access_log().split_off(before);
    let sig_tag = cosign::sig_tag(&s.v2);
    let read = |repo: &str| {
        requests
            .iter()
            .any(|r| r.method == "GET" && r.uri == format!("/v2/{repo}/manifests/{sig_tag}"))
    };
    assert!(read("signatures"), "{requests:#?}");
    assert!(!read("app"), "{requests:#?}");
}
